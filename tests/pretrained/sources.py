"""The published checkpoints' source models, built offline with random weights.

The converter tests build each checkpoint's architecture in its own source
package (osmr's pytorchcv, timm), fill it with random weights and random
batch-norm statistics, convert its state dict and compare logits. Nothing
here downloads: only the architecture is built.

- pytorchcv's ImageNet and CIFAR entry points live in
  `pytorchcv.models.preresnet` and `pytorchcv.models.preresnet_cifar`; they
  are called directly because `pytorchcv.model_provider.get_model` imports
  every model of the package, some of which need torchvision.
- timm's real model code is used. `import timm` needs a few torchvision
  names at import time (its data transforms and frozen batch norm, none of
  which a ResNetV2 uses); when torchvision is not installed,
  `_torchvision_stub` provides exactly those names for the duration of the
  import and removes them afterwards.

Example:

```python
model = build_source("pytorchcv/preresnet20_cifar10", seed=0)
logits = source_logits(model, images)  # images: NHWC, already normalized
weights = state_dict(model)            # {name: numpy array}
```
"""

import contextlib
import enum
import importlib
import importlib.util
import math
import sys
import types
from typing import NamedTuple

import numpy as np


class Source(NamedTuple):
    """How to build one checkpoint's architecture in its source package.

    Attributes:
        package: `"pytorchcv"` or `"timm"`, the package that defines it.
        architecture: the package's model name (pytorchcv's entry point,
            timm's `create_model` name without the pretrained tag).
        classes: the checkpoint's number of classes.
        image_size: the side of the square images the tests feed it: the
            checkpoint's own for CIFAR, a small one for the ImageNet models
            (their pooling is global, so any size of at least 32 works).
    """

    package: str
    architecture: str
    classes: int
    image_size: int


def _pytorchcv(architecture, classes, image_size):
    return Source("pytorchcv", architecture, classes, image_size)


def _timm(architecture):
    return Source("timm", architecture, 1000, 64)


# Keys are the checkpoint names of `weights="<source>/<checkpoint>"`. The
# 1001- and 272-layer CIFAR networks are left out: too slow for the suite.
SOURCES = {
    "pytorchcv/preresnet20_cifar10": _pytorchcv("preresnet20_cifar10", 10, 32),
    "pytorchcv/preresnet20_cifar100": _pytorchcv("preresnet20_cifar100", 100, 32),
    "pytorchcv/preresnet56_cifar10": _pytorchcv("preresnet56_cifar10", 10, 32),
    "pytorchcv/preresnet56_cifar100": _pytorchcv("preresnet56_cifar100", 100, 32),
    "pytorchcv/preresnet110_cifar10": _pytorchcv("preresnet110_cifar10", 10, 32),
    "pytorchcv/preresnet110_cifar100": _pytorchcv("preresnet110_cifar100", 100, 32),
    "pytorchcv/preresnet164bn_cifar10": _pytorchcv("preresnet164bn_cifar10", 10, 32),
    "pytorchcv/preresnet164bn_cifar100": _pytorchcv("preresnet164bn_cifar100", 100, 32),
    "pytorchcv/preresnet18": _pytorchcv("preresnet18", 1000, 64),
    "pytorchcv/preresnet34": _pytorchcv("preresnet34", 1000, 64),
    "pytorchcv/preresnet50": _pytorchcv("preresnet50", 1000, 64),
    "pytorchcv/preresnet50b": _pytorchcv("preresnet50b", 1000, 64),
    "pytorchcv/preresnet101": _pytorchcv("preresnet101", 1000, 64),
    "pytorchcv/preresnet101b": _pytorchcv("preresnet101b", 1000, 64),
    "timm/resnetv2_18.ra4_e3600_r224_in1k": _timm("resnetv2_18"),
    "timm/resnetv2_34.ra4_e3600_r224_in1k": _timm("resnetv2_34"),
    "timm/resnetv2_50.a1h_in1k": _timm("resnetv2_50"),
    "timm/resnetv2_101.a1h_in1k": _timm("resnetv2_101"),
}


def installed(name):
    """Whether the source package of checkpoint `name` is installed.

    Args:
        name: str. A key of `SOURCES`.

    Returns:
        True when the package can be found (without importing it).
    """
    return importlib.util.find_spec(_source(name).package) is not None


def build_source(name, seed=0):
    """The source model of checkpoint `name` with random weights.

    Every parameter and batch-norm statistic is drawn from a generator
    seeded with `seed`, so a seed gives the same model every time:

    - convolution kernels He-normal, `N(0, 2 / fan_in)`; the last kernel of
      each residual branch is scaled by `1 / sqrt(units)`, so the sum over
      the units keeps the activations of a deep network of order one;
    - batch norm: running mean `N(0, 0.5^2)`, running variance
      `U(0.5, 2)`, gamma `U(-1, 1.5)` (some gammas negative, so a
      layout that moves a BN-ReLU across a max pool does not match),
      beta `N(0, 0.5^2)`;
    - classifier kernel `N(0, 1 / fan_in)`, bias `N(0, 0.5^2)`.

    pytorchcv's fixed-size final average pool (7x7 for ImageNet, 8x8 for
    CIFAR) is replaced by a global average pool: the same at the
    checkpoint's input size (224, 32), and defined at smaller sizes.

    Args:
        name: str. A key of `SOURCES`.
        seed: int. Seed of the random weights.

    Returns:
        A `torch.nn.Module` in eval mode, on the CPU, in float32.

    Raises:
        ValueError: if `name` is not a key of `SOURCES`.
        ImportError: if the source package is not installed.
    """
    import torch

    source = _source(name)
    if source.package == "pytorchcv":
        model = _pytorchcv_model(source.architecture)
    else:
        model = _timm_model(source.architecture, source.classes)
    model = model.to(device="cpu", dtype=torch.float32).eval()
    _randomize(model, _residual_units(model, source.package), seed)
    return model


def state_dict(model):
    """The model's state dict as NumPy arrays, as a published file holds it.

    Args:
        model: a `torch.nn.Module`.

    Returns:
        A dict from every state-dict name to a NumPy array: the floating
        tensors in float32, the integer `num_batches_tracked` counters of
        the batch norms unchanged (int64).
    """
    import torch

    return {
        key: value.detach().to(torch.float32).numpy() if value.is_floating_point()
        else value.detach().numpy()
        for key, value in model.state_dict().items()
    }


def source_logits(model, images):
    """The source model's logits on NHWC images.

    Args:
        model: a `torch.nn.Module` from `build_source`.
        images: float32 NumPy array `(batch, height, width, 3)`, already
            normalized the way the checkpoint expects.

    Returns:
        float32 NumPy array `(batch, classes)`.
    """
    import torch

    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"images must be NHWC with 3 channels. Received: shape={images.shape}"
        )
    with torch.no_grad():
        logits = model(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()))
    return logits.numpy().astype(np.float32)


def _source(name):
    if name not in SOURCES:
        raise ValueError(
            f"Unknown checkpoint {name!r}. Valid names: {', '.join(SOURCES)}"
        )
    return SOURCES[name]


def _pytorchcv_model(architecture):
    import torch

    module = importlib.import_module(
        "pytorchcv.models.preresnet_cifar" if "_cifar" in architecture
        else "pytorchcv.models.preresnet"
    )
    model = getattr(module, architecture)()
    model.features.final_pool = torch.nn.AdaptiveAvgPool2d(1)
    return model


def _timm_model(architecture, classes):
    if importlib.util.find_spec("torchvision") is None:
        with _torchvision_stub():
            import timm
    else:
        import timm
    return timm.create_model(architecture, pretrained=False, num_classes=classes)


@contextlib.contextmanager
def _torchvision_stub():
    """The torchvision names `import timm` needs, while the block runs.

    `timm.layers` imports `torchvision.ops.misc.FrozenBatchNorm2d`;
    `timm.data` (imported by `timm.models`) imports six dataset classes,
    `torchvision.transforms.ToTensor` (a base class) and
    `torchvision.transforms.functional.InterpolationMode`. Only the enum is
    real (timm builds tables from its members at import time); the classes
    raise if they are ever instantiated. Optional torchvision imports of
    timm (feature extraction, more datasets) fail as they do without
    torchvision, and timm takes its fallbacks.
    """

    class _Unavailable:
        def __init__(self, *args, **kwargs):
            raise ImportError(
                f"{type(self).__name__} needs torchvision, which is not installed"
            )

    class InterpolationMode(enum.Enum):
        NEAREST = "nearest"
        NEAREST_EXACT = "nearest-exact"
        BILINEAR = "bilinear"
        BICUBIC = "bicubic"
        BOX = "box"
        HAMMING = "hamming"
        LANCZOS = "lanczos"

    names = {
        "torchvision.ops.misc": ["FrozenBatchNorm2d"],
        "torchvision.datasets": [
            "CIFAR10", "CIFAR100", "MNIST", "KMNIST", "FashionMNIST", "ImageFolder",
        ],
        "torchvision.transforms": ["ToTensor"],
    }
    modules = {
        name: types.ModuleType(name)
        for name in ("torchvision", "torchvision.ops", "torchvision.ops.misc",
                     "torchvision.datasets", "torchvision.transforms",
                     "torchvision.transforms.functional")
    }
    for name, module in modules.items():
        for attribute in names.get(name, ()):
            setattr(module, attribute, type(attribute, (_Unavailable,), {}))
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(modules[parent], child, module)
    modules["torchvision.transforms.functional"].InterpolationMode = InterpolationMode
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name in modules:
            sys.modules.pop(name, None)


def _residual_units(model, package):
    """The model's residual units, each with the module of its shortcut."""
    if package == "pytorchcv":
        from pytorchcv.models.preresnet import PreResUnit

        return [(unit, "identity_conv") for unit in model.modules()
                if isinstance(unit, PreResUnit)]
    from timm.models.resnetv2 import PreActBasic, PreActBottleneck

    return [(unit, "downsample") for unit in model.modules()
            if isinstance(unit, (PreActBasic, PreActBottleneck))]


def _randomize(model, units, seed):
    """Overwrites every parameter and batch-norm statistic of `model`."""
    import torch

    generator = torch.Generator().manual_seed(seed)

    def normal(tensor, std):
        tensor.copy_(torch.randn(tensor.shape, generator=generator) * std)

    def uniform(tensor, low, high):
        tensor.copy_(low + (high - low) * torch.rand(tensor.shape, generator=generator))

    last_kernels = set()
    for unit, shortcut in units:
        branch = [module for child_name, child in unit.named_children()
                  if child_name != shortcut
                  for module in child.modules() if isinstance(module, torch.nn.Conv2d)]
        last_kernels.add(branch[-1])
    branch_scale = 1.0 / math.sqrt(max(len(units), 1))

    written = set()
    classifier = _classifier(model)
    with torch.no_grad():
        for module in model.modules():
            if module is classifier:
                fan_in = module.weight[0].numel()
                normal(module.weight, 1.0 / math.sqrt(fan_in))
                normal(module.bias, 0.5)
            elif isinstance(module, torch.nn.Conv2d):
                fan_in = module.weight[0].numel()
                scale = branch_scale if module in last_kernels else 1.0
                normal(module.weight, scale * math.sqrt(2.0 / fan_in))
                if module.bias is not None:
                    normal(module.bias, 0.5)
            elif isinstance(module, torch.nn.BatchNorm2d):
                normal(module.running_mean, 0.5)
                uniform(module.running_var, 0.5, 2.0)
                uniform(module.weight, -1.0, 1.5)
                normal(module.bias, 0.5)
            else:
                continue
            written.update(id(tensor) for tensor in module.parameters(recurse=False))
            written.update(id(tensor) for tensor in module.buffers(recurse=False)
                           if tensor.is_floating_point())
    missed = [key for key, tensor in model.state_dict(keep_vars=True).items()
              if tensor.is_floating_point() and id(tensor) not in written]
    if missed:
        raise RuntimeError(f"No random values drawn for: {', '.join(missed)}")


def _classifier(model):
    """The final classifier: pytorchcv's `output` Linear, timm's `head.fc`."""
    if hasattr(model, "output"):
        return model.output
    return model.head.fc
