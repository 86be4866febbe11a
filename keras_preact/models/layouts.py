"""Network layouts of the paper: CIFAR (6n+2 / 9n+2) and ImageNet (4 stages)."""

import dataclasses

LAYOUTS = ("cifar", "imagenet")
BLOCK_TYPES = ("basic", "bottleneck")

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
    # where the bottleneck stride goes in the source of that layout.
    "cifar": (16, (1, 2, 4), 4, 32, "1x1"),
    "imagenet": (64, (1, 2, 4, 8), 32, 224, "3x3"),
}


@dataclasses.dataclass(frozen=True)
class Layout:
    """Everything the builder needs to know about a network's shape."""

    name: str
    depth: int
    bottleneck: bool
    stage_units: tuple
    stage_filters: tuple
    stem_filters: int
    stride_on: str
    total_stride: int
    default_size: int


def resolve_layout(
    layout="cifar",
    depth=None,
    block_type=None,
    stage_units=None,
    base_width=None,
    width_multiplier=1,
    stride_on=None,
):
    """Turns the builder's arguments into a validated `Layout`.

    CIFAR nets have three stages of `n` units: basic units for depth `6n+2`
    (default below depth 164) and bottleneck units for depth `9n+2`. ImageNet
    nets take the depths of the paper's Table 5, or any `stage_units`.

    Raises:
        ValueError: for an unknown layout or block type, a depth that the
            layout cannot have, or inconsistent `depth` and `stage_units`.
    """
    if layout not in LAYOUTS:
        raise ValueError(
            f"Invalid layout={layout!r}. Expected one of {list(LAYOUTS)}."
        )
    if block_type is not None and block_type not in BLOCK_TYPES:
        raise ValueError(
            f"Invalid block_type={block_type!r}. "
            f"Expected None or one of {list(BLOCK_TYPES)}."
        )
    if not isinstance(width_multiplier, int) or width_multiplier < 1:
        raise ValueError(
            f"Invalid width_multiplier={width_multiplier!r}. "
            "Expected a positive int."
        )
    default_width, multipliers, total_stride, size, default_stride_on = (
        _DEFAULTS[layout]
    )
    base_width = default_width if base_width is None else base_width
    if not isinstance(base_width, int) or base_width < 1:
        raise ValueError(
            f"Invalid base_width={base_width!r}. Expected a positive int."
        )

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
    if stride_on is not None and stride_on not in ("1x1", "3x3"):
        raise ValueError(
            f"Invalid stride_on={stride_on!r}. Expected None, '1x1' or '3x3'."
        )
    return Layout(
        name=layout,
        depth=implied_depth,
        bottleneck=bottleneck,
        stage_units=tuple(stage_units),
        stage_filters=tuple(
            base_width * m * width_multiplier for m in multipliers
        ),
        stem_filters=base_width,
        stride_on=stride_on or default_stride_on,
        total_stride=total_stride,
        default_size=size,
    )


def _cifar_units(depth, block_type):
    if not isinstance(depth, int) or isinstance(depth, bool):
        raise ValueError(
            f"Invalid depth={depth!r}. Expected an int: 6n+2 for basic units "
            "(20, 32, 44, 56, 110) or 9n+2 for bottleneck units (164, 1001)."
        )
    if block_type is None:
        block_type = "bottleneck" if depth >= 164 else "basic"
    convs = 9 if block_type == "bottleneck" else 6
    if depth < convs + 2 or (depth - 2) % convs:
        form, examples = (
            ("9n+2", "11, 164, 1001")
            if block_type == "bottleneck"
            else ("6n+2", "8, 20, 56, 110")
        )
        raise ValueError(
            f"Invalid depth={depth} for the CIFAR layout with {block_type} "
            f"units: depth must be {form} with n >= 1 (e.g. {examples})."
        )
    n = (depth - 2) // convs
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
            f"Expected {num_stages} positive ints."
        )
    if block_type is None:
        raise ValueError(
            "block_type must be 'basic' or 'bottleneck' when stage_units is "
            f"given. Received: block_type={block_type!r}."
        )
    return block_type, units
