"""Network layouts of the paper: CIFAR (6n+2 / 9n+2) and ImageNet (4 stages),
each a stem, `Stage`s of residual units and a head."""

import dataclasses

from keras_preact.validation import check_choice
from keras_preact.validation import check_int

LAYOUTS = ("cifar", "imagenet")
BLOCK_TYPES = ("basic", "bottleneck")
# The stride rule: the first unit of every stage but the first downsamples
# by this stride (He et al. 2016, Sec. 4 / ResNet Sec. 3.3; fb.resnet.torch).
DOWNSAMPLING_STRIDES = 2

# fb.resnet.torch's `preresnet.lua` (the layout of the paper's Table 5).
IMAGENET_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}

_DEFAULTS = {
    # base width, stage multipliers, total stride, default image size,
    # where the bottleneck stride goes in the source of that layout, classes.
    "cifar": (16, (1, 2, 4), 4, 32, "1x1", 10),
    "imagenet": (64, (1, 2, 4, 8), 32, 224, "3x3", 1000),
}


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage: `units` residual units of one width at one resolution.

    Attributes:
        index: int. 1-based; its units are the layers `stage{index}_unit{u}`.
        units: int. Number of residual units.
        filters: int. Width of the units' convolutions (x4 bottleneck output).
        strides: int. Stride of its first unit (the others have 1): 1 for
            the first stage, `DOWNSAMPLING_STRIDES` for the others.
    """

    index: int
    units: int
    filters: int
    strides: int

    def unit_name(self, unit):
        """The layer name of unit `unit` (1-based) of this stage."""
        return f"stage{self.index}_unit{unit}"


def split_into_stages(units):
    """Groups a built network's `ResidualUnit`s (in forward order) by stage.

    Returns one list of units per stage, by the stride rule: a stage starts
    at the first unit and at every unit with `DOWNSAMPLING_STRIDES`.
    """
    stages = []
    for unit in units:
        if not stages or unit.strides == DOWNSAMPLING_STRIDES:
            stages.append([])
        stages[-1].append(unit)
    return stages


@dataclasses.dataclass(frozen=True)
class Layout:
    """Everything the builder needs to know about a network's shape."""

    name: str
    depth: int
    bottleneck: bool
    stages: tuple
    stem_filters: int
    stride_on: str
    total_stride: int
    default_size: int
    default_classes: int


def resolve_layout(
    layout="cifar", depth=None, block_type=None, stage_units=None,
    base_width=None, width_multiplier=1, stride_on=None,
):
    """Turns the builder's arguments into a validated `Layout`.

    CIFAR nets have three stages of `n` units: basic units for depth `6n+2`,
    bottleneck units for `9n+2` (both forms: basic below 164). ImageNet
    nets take the depths of the paper's Table 5, or any `stage_units`.

    Returns:
        A `Layout`; its `stages` hold the stride rule (`Stage.strides`).

    Raises:
        ValueError: for an unknown layout or block type, a depth that the
            layout cannot have, inconsistent `depth` and `stage_units`, a
            `width_multiplier` or `base_width` that is not an int >= 1, or
            a `stride_on` other than `None`, `"1x1"` and `"3x3"`.
    """
    check_choice("layout", layout, LAYOUTS)
    check_choice("block_type", block_type, (None, *BLOCK_TYPES))
    width_multiplier = check_int("width_multiplier", width_multiplier, low=1)
    width, multipliers, total_stride, size, default_stride_on, classes = (
        _DEFAULTS[layout]
    )
    base_width = check_int(
        "base_width", width if base_width is None else base_width, low=1
    )
    check_choice("stride_on", stride_on, (None, "1x1", "3x3"))

    if stage_units is not None:
        block_type, stage_units = _check_stage_units(
            layout, stage_units, block_type, len(multipliers)
        )
    elif layout == "cifar":
        block_type, stage_units = _cifar_units(depth, block_type)
    else:
        block_type, stage_units = _imagenet_units(depth, block_type)

    bottleneck = block_type == "bottleneck"
    implied_depth = sum(stage_units) * (3 if bottleneck else 2) + 2
    if depth is not None and depth != implied_depth:
        raise ValueError(
            f"Invalid depth={depth!r} for stage_units={stage_units} of "
            f"{block_type} units, which give depth {implied_depth}."
        )
    stages = tuple(
        Stage(index, units, base_width * multiplier * width_multiplier,
              1 if index == 1 else DOWNSAMPLING_STRIDES)
        for index, (units, multiplier) in enumerate(
            zip(stage_units, multipliers), start=1
        )
    )
    return Layout(
        name=layout, depth=implied_depth, bottleneck=bottleneck,
        stages=stages, stem_filters=base_width,
        stride_on=stride_on or default_stride_on, total_stride=total_stride,
        default_size=size, default_classes=classes,
    )


def _cifar_units(depth, block_type):
    forms = "6n+2 (basic units, e.g. 8, 20, 56, 110) or 9n+2 (bottleneck units, e.g. 11, 29, 164)"
    if not isinstance(depth, int) or isinstance(depth, bool):
        raise ValueError(f"Invalid depth={depth!r}. Expected an int: {forms}.")
    fits = [kind for kind, c in (("bottleneck", 9), ("basic", 6))
            if depth >= c + 2 and (depth - 2) % c == 0]
    if block_type is None and fits:  # a depth of both forms: the paper's choice at that depth
        block_type = fits[0] if depth >= 164 else fits[-1]
    if block_type not in fits:
        units = f" with {block_type} units" if block_type else ""
        raise ValueError(f"Invalid depth={depth} for the CIFAR layout{units}: depth must be "
                         f"{forms}, n >= 1.")
    n = (depth - 2) // (9 if block_type == "bottleneck" else 6)
    return block_type, (n, n, n)


def _imagenet_units(depth, block_type):
    if depth not in IMAGENET_DEPTHS:
        raise ValueError(
            f"Invalid depth={depth!r} for the ImageNet layout. Expected one "
            f"of {sorted(IMAGENET_DEPTHS)}, or pass stage_units."
        )
    default_block, units = IMAGENET_DEPTHS[depth]
    if block_type is not None and block_type != default_block:
        raise ValueError(
            f"Invalid block_type={block_type!r} for ImageNet depth {depth}, "
            f"which uses {default_block!r} units."
        )
    return default_block, units


def _check_stage_units(layout, stage_units, block_type, num_stages):
    units = tuple(stage_units)
    if len(units) != num_stages or not all(
        isinstance(u, int) and u >= 1 for u in units
    ):
        raise ValueError(
            f"Invalid stage_units={stage_units!r} for the {layout} layout. "
            f"Expected {num_stages} ints >= 1."
        )
    if block_type is None:
        raise ValueError(
            "Invalid block_type=None with stage_units given. Expected "
            "'basic' or 'bottleneck'."
        )
    return block_type, units
