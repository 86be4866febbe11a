"""keras_preact's PreActResNet in plain PyTorch: the reference of the benchmarks.

The same network as `keras_preact.PreActResNet` with its defaults (He et al. 2016,
"Identity Mappings in Deep Residual Networks"), so the two do the same work per image
and have the same parameter counts:
- "cifar": bare 3x3 conv stem (16), 3 stages, bottleneck units for depth >= 164
  ((depth-2)/9 per stage) and basic units otherwise ((depth-2)/6 per stage), widths
  16/32/64 (x4 output for bottlenecks), stride 2 in the first unit of stages 2 and 3
  (on the first 1x1 conv of a bottleneck, as in the authors' CIFAR code), projection
  (1x1 conv, from the pre-activated input) where the shape changes; the first unit's
  BN-ReLU output feeds both paths.
- "imagenet": 7x7/2 conv + BN + ReLU + 3x3/2 max-pool stem, stages [3,4,6,3] (depth 50)
  etc., widths 64/128/256/512 (x4 output for bottlenecks), stride on the 3x3 conv; the
  first unit has no BN-ReLU of its own (the stem ends in one).
- Each unit: BN-ReLU -> conv ... -> addition (no activation after the addition); final
  BN-ReLU, global average pooling, linear classifier.

`build_model(..., impl="auto")` takes timm's `resnetv2_50` (the same network) for the
ImageNet depth 50 where timm imports, and this file otherwise; `impl="pytorchcv"` builds
osmr's pytorchcv CIFAR PreResNet (stride on the 3x3 conv, the first unit's shortcut
from the raw input: `keras_preact.PreActResNet(**builder_arguments(...))` of its
checkpoint is that network).
"""

import torch
from torch import nn

IMAGENET_STAGES = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}


def cifar_stages(depth):
    if depth >= 164 or (depth - 2) % 6 != 0:
        if (depth - 2) % 9 != 0:
            raise ValueError(
                f"Invalid CIFAR depth={depth!r}. Expected 6n+2 (basic) or 9n+2 (bottleneck)."
            )
        n = (depth - 2) // 9
        return "bottleneck", (n, n, n)
    n = (depth - 2) // 6
    return "basic", (n, n, n)


class _Unit(nn.Module):
    """What both units share: the pre-activation and the shortcut."""

    def __init__(self, in_ch, out_ch, stride, preactivate, preact_shortcut):
        super().__init__()
        self.preact_shortcut = preact_shortcut
        self.bn1 = nn.BatchNorm2d(in_ch) if preactivate else None
        self.relu = nn.ReLU(inplace=True)
        self.proj = (
            nn.Conv2d(in_ch, out_ch, 1, stride, bias=False)
            if stride != 1 or in_ch != out_ch
            else None
        )

    def _preact(self, x):
        pre = x if self.bn1 is None else self.relu(self.bn1(x))
        if self.proj is not None:
            return pre, self.proj(pre)
        return pre, (pre if self.preact_shortcut else x)


class PreActBasic(_Unit):
    expansion = 1

    def __init__(self, in_ch, width, stride, preactivate=True, preact_shortcut=False, **_):
        super().__init__(in_ch, width, stride, preactivate, preact_shortcut)
        self.conv1 = nn.Conv2d(in_ch, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)

    def forward(self, x):
        pre, shortcut = self._preact(x)
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        return out + shortcut


class PreActBottleneck(_Unit):
    expansion = 4

    def __init__(
        self, in_ch, width, stride, preactivate=True, preact_shortcut=False, stride_on="3x3"
    ):
        super().__init__(in_ch, width * 4, stride, preactivate, preact_shortcut)
        s1, s3 = (stride, 1) if stride_on == "1x1" else (1, stride)
        self.conv1 = nn.Conv2d(in_ch, width, 1, s1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, s3, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)

    def forward(self, x):
        pre, shortcut = self._preact(x)
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    """Pre-activation ResNet in PyTorch (NCHW parameters; use channels_last for speed)."""

    def __init__(self, depth, layout="cifar", classes=10):
        super().__init__()
        if layout == "cifar":
            kind, stages = cifar_stages(depth)
            widths = (16, 32, 64)
            self.stem = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            in_ch = 16
            stride_on = "1x1"
        elif layout == "imagenet":
            if depth not in IMAGENET_STAGES:
                raise ValueError(
                    f"Invalid ImageNet depth={depth!r}. Expected one of {sorted(IMAGENET_STAGES)}."
                )
            kind, stages = IMAGENET_STAGES[depth]
            widths = (64, 128, 256, 512)
            self.stem = nn.Sequential(
                nn.Conv2d(3, 64, 7, 2, 3, bias=False),
                nn.BatchNorm2d(64),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, 1),
            )
            in_ch = 64
            stride_on = "3x3"
        else:
            raise ValueError(
                f"Unknown layout={layout!r}. Expected one of ['cifar', 'imagenet']."
            )
        block = PreActBottleneck if kind == "bottleneck" else PreActBasic
        units = []
        for s, (n, width) in enumerate(zip(stages, widths)):
            for u in range(n):
                stride = 2 if (s > 0 and u == 0) else 1
                first = s == 0 and u == 0
                units.append(
                    block(
                        in_ch,
                        width,
                        stride,
                        preactivate=not (first and layout == "imagenet"),
                        preact_shortcut=first and layout == "cifar",
                        stride_on=stride_on,
                    )
                )
                in_ch = width * block.expansion
        self.units = nn.Sequential(*units)
        self.post_bn = nn.BatchNorm2d(in_ch)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(in_ch, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.units(self.stem(x))
        x = self.relu(self.post_bn(x))
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


def build_model(depth, layout, classes, impl="auto"):
    """Returns `(model, impl_used)`; impl in "auto"|"timm"|"reference"|"pytorchcv"."""
    if impl not in ("auto", "timm", "reference", "pytorchcv"):
        raise ValueError(
            f"Unknown impl={impl!r}. Expected one of ['auto', 'timm', 'reference', "
            "'pytorchcv']."
        )
    if impl == "pytorchcv":
        if layout != "cifar":
            raise ValueError(f"impl='pytorchcv' builds the CIFAR layout only; got {layout=!r}.")
        # From its module: pytorchcv's model provider imports torchvision.
        from pytorchcv.models.preresnet_cifar import get_preresnet_cifar

        bottleneck = cifar_stages(depth)[0] == "bottleneck"
        name = f"pytorchcv preresnet{depth}{'bn' if bottleneck else ''}_cifar{classes}"
        return get_preresnet_cifar(classes, depth, bottleneck), name
    if impl in ("auto", "timm") and layout == "imagenet" and depth == 50:
        try:
            import timm

            return timm.create_model("resnetv2_50", num_classes=classes), "timm resnetv2_50"
        except Exception:  # noqa: BLE001 - ImportError or broken torchvision
            if impl == "timm":
                raise
    return PreActResNet(depth, layout, classes), "benchmarks/torch_reference.py"
