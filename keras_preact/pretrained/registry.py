"""The published pre-activation checkpoints that convert exactly: one table.

Each `Checkpoint` says where the file is and how to check it, which
`keras_preact.PreActResNet` it becomes, how its source evaluates it, and
what its source published for it. `get_checkpoint` resolves a name, and
`checkpoint_for_weights` the `weights=` argument of the builders, with the
keras.applications style short names (`"cifar10"`, `"cifar100"`,
`"imagenet"`).
"""

import dataclasses
import types

from keras_preact.models.layouts import resolve_layout
from keras_preact.normalization import STATISTICS
from keras_preact.normalization import Statistics

SHORT_NAMES = ("cifar10", "cifar100", "imagenet")

PYTORCHCV_RELEASES = "https://github.com/osmr/imgclsmob/releases/download"
PYTORCHCV_RESULTS = (
    "https://github.com/osmr/imgclsmob/blob/"
    "8489d1bfc3b6b1c16d9877668c430a6679033451/pytorch/README.md"
)
TIMM_RESULTS = (
    "https://github.com/huggingface/pytorch-image-models/blob/"
    "4e5207c7bb6592474ca56e28b2cf85be8f1a550f/results/results-imagenet.csv"
)
PYTORCHCV_LICENSE = "MIT (osmr/imgclsmob)"
HUGGING_FACE = "https://huggingface.co"

# osmr/imgclsmob's CIFAR evaluation (cifar10_cls_dataset.py, for CIFAR-10
# and CIFAR-100 alike): no crop, these 0-1 statistics.
PYTORCHCV_CIFAR = Statistics(
    tuple(v * 255 for v in (0.4914, 0.4822, 0.4465)),
    tuple(v * 255 for v in (0.2023, 0.1994, 0.2010)),
)
# timm's ResNetV2 checkpoints take pixels / 127.5 - 1.
HALF_RANGE = Statistics((127.5, 127.5, 127.5), (127.5, 127.5, 127.5))


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """One published checkpoint and the `PreActResNet` it converts into.

    Attributes:
        name: str. `"<source>/<checkpoint>"`, the source's own name, such
            as `"pytorchcv/preresnet164bn_cifar100"`.
        architecture: mapping. The `keras_preact.PreActResNet` arguments
            of the source's layout (`depth`, `layout`, `stride_on`,
            `stem_activation`, `first_unit_preactivation`,
            `first_unit_shortcut`).
        classes: int. Classes of its classifier.
        statistics: `keras_preact.normalization.Statistics`. The per-channel
            mean and std, on the 0-255 scale, that its source normalizes
            with; the converted model carries them.
        image_size: int. The input size of its source's evaluation.
        eval_resize: int or `None`. Shorter side its source resizes to
            before the centre crop of `image_size`; `None`: no resize.
        interpolation: str. The resize's interpolation.
        result: str. The source's published result (not measured here).
        citation: str. Where that result is published.
        license: str. The licence of the weights.
        url: str. The public file.
        file_hash: str. `"sha1:<hex>"` or `"sha256:<hex>"` of the file
            (inside the zip for pytorchcv), or `""` where no pinned hash
            is published.
    """

    name: str
    architecture: types.MappingProxyType
    classes: int
    statistics: Statistics
    image_size: int
    eval_resize: int | None
    interpolation: str
    result: str
    citation: str
    license: str
    url: str
    file_hash: str

    @property
    def source(self):
        """`"pytorchcv"` or `"timm"`."""
        return self.name.split("/", 1)[0]

    @property
    def file_name(self):
        """The checkpoint file's name (the `.pth` inside a pytorchcv zip)."""
        base = self.url.rsplit("/", 1)[-1]
        return base[: -len(".zip")] if base.endswith(".zip") else base


def _pytorchcv(name, error, sha1, tag, classes, result, **architecture):
    """A row of osmr/imgclsmob's `model_metainfos.csv` (pytorchcv):
    `error` is its error field, `sha1` the `.pth` file's SHA-1."""
    cifar = architecture.get("layout", "cifar") == "cifar"
    statistics = PYTORCHCV_CIFAR if cifar else STATISTICS["imagenet"]
    return Checkpoint(
        name=f"pytorchcv/{name}",
        architecture=types.MappingProxyType(architecture),
        classes=classes, statistics=statistics,
        image_size=32 if cifar else 224,
        eval_resize=None if cifar else 256, interpolation="bilinear",
        result=result, citation=PYTORCHCV_RESULTS, license=PYTORCHCV_LICENSE,
        url=f"{PYTORCHCV_RELEASES}/{tag}/{name}-{error}-{sha1[:8]}.pth.zip",
        file_hash=f"sha1:{sha1}",
    )


def _pytorchcv_cifar(depth, dataset, error, sha1, tag):
    basic = depth in (20, 56, 110, 1202)
    name = f"preresnet{depth}{'' if basic or depth == 1001 else 'bn'}_{dataset}"
    classes = 100 if dataset == "cifar100" else 10
    label = "CIFAR-100" if classes == 100 else "CIFAR-10"
    return _pytorchcv(
        name, error, sha1, tag, classes,
        f"{label} top-1 error {int(error) / 100:.2f}%", depth=depth,
        # Stride on the 3x3 of a bottleneck; every first unit
        # pre-activates, an identity shortcut takes its raw input.
        **({} if basic else {"stride_on": "3x3"}), first_unit_shortcut="raw",
    )


def _pytorchcv_imagenet(name, depth, error, sha1, tag, top1_error):
    # fb.resnet.torch's stem (BN-ReLU before the pool), and every unit,
    # the first too, pre-activates; "b": the stride on the 3x3.
    bottleneck = depth >= 50
    stride_on = ("3x3" if name.endswith("b") else "1x1") if bottleneck else None
    return _pytorchcv(
        name, error, sha1, tag, 1000,
        f"ImageNet top-1 error {top1_error}% (224 centre crop)",
        depth=depth, layout="imagenet",
        **({"stride_on": stride_on} if stride_on else {}),
        first_unit_preactivation=True, first_unit_shortcut="raw",
    )


def _timm(name, depth, revision, sha256, top1, crop_fraction):
    # timm's ResNetV2: the stem conv goes straight into the -inf padded
    # pool; the first unit pre-activates; stride on the 3x3.
    return Checkpoint(
        name=f"timm/{name}",
        architecture=types.MappingProxyType(dict(
            depth=depth, layout="imagenet", stride_on="3x3",
            stem_activation=False, first_unit_shortcut="raw",
        )),
        classes=1000, statistics=HALF_RANGE, image_size=224,
        # timm's evaluation: the shorter side to floor(224 / crop_pct),
        # bicubic, then the centre crop.
        eval_resize=int(224 / crop_fraction), interpolation="bicubic",
        result=f"ImageNet top-1 {top1}% (224, crop_pct {crop_fraction})",
        citation=TIMM_RESULTS, license="Apache-2.0",
        url=f"{HUGGING_FACE}/timm/{name}/resolve/{revision}/model.safetensors",
        file_hash=f"sha256:{sha256}" if sha256 else "",
    )


_ROWS = (
    # (depth, dataset, error field, SHA-1, release) from model_metainfos.csv.
    *(_pytorchcv_cifar(*row) for row in (
        (20, "cifar10", "0651", "76cec68d11de5b25be2ea5935681645b76195f1d", "v0.0.164"),
        (20, "cifar100", "3022", "3dbfa6a2b850572bccb28cc2477a0e46c24abcb8", "v0.0.187"),
        (56, "cifar10", "0449", "e9124fcf167d8ca50addef00c3afa4da9f828f29", "v0.0.164"),
        (56, "cifar100", "2505", "ca90a2be6002cd378769b9d4e7c497dd883d31d9", "v0.0.188"),
        (110, "cifar10", "0386", "cc08946a2126a1224d1d2560a47cf766a763c52c", "v0.0.164"),
        (110, "cifar100", "2267", "3954e91581b7f3e5f689385d15f618fe16e995af", "v0.0.191"),
        (164, "cifar10", "0364", "429012d412e82df7961fa071f97c938530e1b005", "v0.0.196"),
        (164, "cifar100", "2018", "a8e67ca6e14f88b009d618b0e9b554312d862174", "v0.0.192"),
        (272, "cifar10", "0325", "1a6a016eb4e4a5549c1fcb89ed5af4c1e5715b72", "v0.0.389"),
        (272, "cifar100", "1963", "6fe0d2e24a60d12ab6b3d0e46065e2f14a46bc0b", "v0.0.389"),
        (542, "cifar10", "0314", "66fd6f2033dff08428e586bcce3e5151ed4274f9", "v0.0.391"),
        (542, "cifar100", "1871", "07f1fb258207d295789981519e8dab892fc08f8d", "v0.0.391"),
        (1001, "cifar10", "0265", "9fedfe5fd643e7355f1062a6db68da310c8962be", "v0.0.209"),
        (1001, "cifar100", "1841", "88f14ed9df1573e98b0ec2a07009a15066855fda", "v0.0.283"),
        (1202, "cifar10", "0339", "6fc686b02191226f39e25a76fc5da26857f7acd9", "v0.0.246"),
    )),
    # (name, depth, error field, SHA-1, release, published top-1 error).
    *(_pytorchcv_imagenet(*row) for row in (
        ("preresnet18", 18, "0972", "5651bc2dbb200382822a6b64375d240f747cc726", "v0.0.140", "28.43"),
        ("preresnet34", 34, "0774", "fd5bd1e883048e29099768465df2dd9e891803f4", "v0.0.300", "24.89"),
        ("preresnet50", 50, "0647", "222ca73b021f893b925c15e24ea2a6bc0fdf2546", "v0.0.330", "22.40"),
        ("preresnet50b", 50, "0655", "8b60378ee3aed878d27a2b4a9ddc596a812c7649", "v0.0.307", "22.51"),
        ("preresnet101", 101, "0563", "8ec82f7d697b7329aea2c95b399093e9cb2b1114", "v0.0.504", "20.81"),
        ("preresnet101b", 101, "0556", "76bfe6d020b55f163e77de6b1c27be6b0bed8b7b", "v0.0.351", "21.04"),
        ("preresnet152", 152, "0464", "baeb6c5208310ab7c919fc0da3c20267471a8fa1", "v0.0.510", "19.36"),
        ("preresnet152b", 152, "0459", "42c9fbcfe4e92463497fa4c2d0b007a191c6c043", "v0.0.523", "19.23"),
        ("preresnet200b", 200, "0468", "f82215f3a5616098e8172a85bb42071f1823a27d", "v0.0.529", "19.07"),
    )),
    # (name, depth, Hugging Face revision, SHA-256 of the file where it is
    # published, top-1 %, crop_pct) from the model cards and timm's results.
    *(_timm(*row) for row in (
        ("resnetv2_18.ra4_e3600_r224_in1k", 18, "main", "8cbd1843d961f937eed89815af452c0dcc63f0bb5c54b60a4cd8ed5fc66ffb3e", "73.572", 0.9),
        ("resnetv2_34.ra4_e3600_r224_in1k", 34, "main", "248e47c20c4e9b995099b5e39d8fb3396efd01d8b4befa2567eebcfa55ab5601", "77.626", 0.9),
        ("resnetv2_50.a1h_in1k", 50, "dcfd4fecb72889c1ce9fd9f7e5b75f8043889864", "", "80.410", 0.95),
        ("resnetv2_101.a1h_in1k", 101, "main", "", "82.042", 0.95),
    )),
)
CHECKPOINTS = types.MappingProxyType({row.name: row for row in _ROWS})

# The checkpoint a short name picks for a (layout, depth): the source's
# best published result at that depth.
DEFAULT_CHECKPOINTS = types.MappingProxyType({
    **{("cifar", depth, dataset): f"pytorchcv/preresnet{depth}{suffix}_{dataset}"
       for depth, suffix in ((20, ""), (56, ""), (110, ""), (164, "bn"),
                             (272, "bn"), (542, "bn"), (1001, ""))
       for dataset in ("cifar10", "cifar100")},
    ("cifar", 1202, "cifar10"): "pytorchcv/preresnet1202_cifar10",
    ("imagenet", 18, "imagenet"): "timm/resnetv2_18.ra4_e3600_r224_in1k",
    ("imagenet", 34, "imagenet"): "timm/resnetv2_34.ra4_e3600_r224_in1k",
    ("imagenet", 50, "imagenet"): "timm/resnetv2_50.a1h_in1k",
    ("imagenet", 101, "imagenet"): "timm/resnetv2_101.a1h_in1k",
    ("imagenet", 152, "imagenet"): "pytorchcv/preresnet152b",
    ("imagenet", 200, "imagenet"): "pytorchcv/preresnet200b",
})


def get_checkpoint(name):
    """The `Checkpoint` called `name` (`"<source>/<checkpoint>"`).

    Raises:
        ValueError: `name` is not in `CHECKPOINTS`; the message lists them.
    """
    if name not in CHECKPOINTS:
        raise ValueError(
            f"Unknown pretrained checkpoint {name!r}. Expected one of: "
            f"{', '.join(CHECKPOINTS)}."
        )
    return CHECKPOINTS[name]


def checkpoint_for_weights(weights, layout, depth):
    """The `Checkpoint` a builder's `weights=` names, or `None` for a path.

    Args:
        weights: the builder's `weights`: a checkpoint name, a short name
            (`"cifar10"`, `"cifar100"`, `"imagenet"`), or a file path.
        layout: `"cifar"` or `"imagenet"`, the network's layout.
        depth: int, the network's depth.

    Returns:
        A `Checkpoint`, or `None` when `weights` is neither kind of name.

    Raises:
        ValueError: a short name with no checkpoint for this layout and
            depth (the message lists the depths that have one), or an
            unknown `"<source>/..."` name of a known source.
    """
    if not isinstance(weights, str):
        return None
    if weights in SHORT_NAMES:
        key = (layout, depth, weights)
        if key not in DEFAULT_CHECKPOINTS:
            networks = ", ".join(
                f"{lay} {d}" for lay, d, data in DEFAULT_CHECKPOINTS
                if data == weights
            )
            raise ValueError(
                f"Invalid weights={weights!r} for the {layout} layout at "
                f"depth {depth}: {weights!r} weights exist for the networks "
                f"({networks}). See keras_preact.pretrained.CHECKPOINTS."
            )
        return CHECKPOINTS[DEFAULT_CHECKPOINTS[key]]
    if weights.split("/", 1)[0] in ("pytorchcv", "timm"):
        return get_checkpoint(weights)
    return None


# Arguments a checkpoint fixes besides its `architecture`: the values every
# source here has.
_FIXED = types.MappingProxyType(dict(
    unit_ordering="full_preact", shortcut="identity", bn_epsilon=1e-5,
))
_LAYOUT_ARGUMENTS = (
    "depth", "layout", "block_type", "stage_units", "base_width",
    "width_multiplier", "stride_on",
)


def builder_arguments(checkpoint, **kwargs):
    """The `keras_preact.PreActResNet` arguments of `checkpoint`'s network.

    The checkpoint's architecture, its classes and its input statistics
    (`input_normalization`), then `kwargs`: arguments the checkpoint does
    not fix (`include_top`, `pooling`, `input_shape`, `drop_path_rate`,
    `classifier_activation`, `data_format`, ...) pass through; an argument
    it fixes may be given only with the checkpoint's value.
    `input_normalization=None` builds the model without the statistics
    (it then takes inputs already normalized with them).

    Args:
        checkpoint: a `Checkpoint`.
        **kwargs: `PreActResNet` arguments (not `weights`).

    Returns:
        A dict of `PreActResNet` arguments.

    Raises:
        ValueError: an argument contradicts the checkpoint: a layout
            argument giving another network, another `unit_ordering`,
            `shortcut`, `bn_epsilon` or stem / first-unit option, `classes`
            other than the checkpoint's with the top, or other input
            statistics.
    """
    architecture = dict(checkpoint.architecture)
    fixed = {**_FIXED, **{k: v for k, v in architecture.items()
                          if k not in _LAYOUT_ARGUMENTS}}
    for key, value in fixed.items():
        if key in kwargs and kwargs[key] != value:
            raise _contradiction(checkpoint, key, kwargs[key], value)
    layout_kwargs = {k: kwargs[k] for k in _LAYOUT_ARGUMENTS if k in kwargs}
    if layout_kwargs:
        source = {k: v for k, v in architecture.items()
                  if k in _LAYOUT_ARGUMENTS}
        if resolve_layout(**{**source, **layout_kwargs}) != resolve_layout(
            **source
        ):
            differing = {k: v for k, v in layout_kwargs.items()
                         if source.get(k) != v} or layout_kwargs
            given = ", ".join(f"{k}={v!r}" for k, v in differing.items())
            raise ValueError(
                f"Invalid {given} for weights={checkpoint.name!r}: the "
                f"checkpoint is the network of {source}."
            )
    if kwargs.get("include_top", True) and kwargs.get(
        "classes"
    ) not in (None, checkpoint.classes):
        raise ValueError(
            f"Invalid classes={kwargs['classes']!r} for weights="
            f"{checkpoint.name!r}, whose classifier has {checkpoint.classes} "
            "classes. Pass that number, or include_top=False for a new "
            "head of your own."
        )
    normalization = kwargs.get("input_normalization", checkpoint.statistics)
    if normalization is not None and not checkpoint.statistics.isclose(
        normalization
    ):
        raise _contradiction(
            checkpoint, "input_normalization", normalization,
            checkpoint.statistics,
        )
    arguments = {**architecture, "classes": checkpoint.classes, **kwargs}
    arguments["input_normalization"] = None if normalization is None else (
        checkpoint.statistics.mean, checkpoint.statistics.std
    )
    return arguments


def _contradiction(checkpoint, key, given, value):
    return ValueError(
        f"Invalid {key}={given!r} for weights={checkpoint.name!r}, which "
        f"needs {key}={value!r}."
    )
