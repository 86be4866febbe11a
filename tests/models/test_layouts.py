"""keras_preact.models.layouts: the stages a layout gives, and the builder
walking them."""

import pytest

import keras_preact
from keras_preact.models.layouts import resolve_layout
from keras_preact.models.layouts import split_into_stages


# (id, builder arguments, stage widths, first-unit strides)
STAGE_CASES = [
    ("cifar", dict(depth=8, base_width=4), [4, 8, 16], [1, 2, 2]),
    ("wide", dict(depth=14, base_width=4, width_multiplier=2), [8, 16, 32], [1, 2, 2]),
    (
        "imagenet",
        dict(layout="imagenet", block_type="basic", stage_units=(1, 2, 1, 2),
             base_width=4, input_shape=(64, 64, 3)),
        [4, 8, 16, 32], [1, 2, 2, 2],
    ),
]


@pytest.mark.parametrize(
    "kwargs, widths, strides", [c[1:] for c in STAGE_CASES], ids=[c[0] for c in STAGE_CASES]
)
def test_units_follow_the_stages(kwargs, widths, strides):
    """The builder walks `Layout.stages`: names, widths, the stride rule,
    and the stages read back from the built units (not their names)."""
    net = resolve_layout(**{k: v for k, v in kwargs.items() if k != "input_shape"})
    assert [stage.filters for stage in net.stages] == widths
    assert [stage.strides for stage in net.stages] == strides
    model = keras_preact.PreActResNet(**kwargs)
    stages = split_into_stages(keras_preact.residual_units(model))
    assert [len(units) for units in stages] == [s.units for s in net.stages]
    for stage, units in zip(net.stages, stages):
        assert [u.name for u in units] == [
            f"stage{stage.index}_unit{u}" for u in range(1, stage.units + 1)
        ]
        assert [u.filters for u in units] == [stage.filters] * stage.units
        assert [u.strides for u in units] == [stage.strides] + [1] * (stage.units - 1)
    names = {layer.name for layer in model.layers}
    assert ("stem_pool" in names) == ("stem_bn" in names) == (net.name == "imagenet")
    first = stages[0][0]
    # The ImageNet stem already ends in BN-ReLU; the CIFAR stem does not.
    assert (first.preact_bn is None) == (net.name == "imagenet")
    assert first.preactivated_shortcut == (True if net.name == "cifar" else None)


# (depth, block type given, the block type and units per stage it gives)
CIFAR_DEPTHS = [
    (20, None, "basic", 3),  # 6n+2 and 9n+2: basic below 164, as in the paper
    (110, None, "basic", 18),
    (164, None, "bottleneck", 18),  # both forms: bottleneck from 164
    (29, None, "bottleneck", 3),  # 9n+2 only
    (170, None, "basic", 28),  # 6n+2 only
    (20, "bottleneck", "bottleneck", 2),
]


@pytest.mark.parametrize("depth, block_type, expected, units", CIFAR_DEPTHS)
def test_a_cifar_depth_gives_its_block_type(depth, block_type, expected, units):
    layout = resolve_layout("cifar", depth, block_type=block_type)
    assert layout.bottleneck == (expected == "bottleneck")
    assert [stage.units for stage in layout.stages] == [units] * 3


@pytest.mark.parametrize("depth, block_type, message", [
    (21, None, r"Invalid depth=21 for the CIFAR layout: depth must be 6n\+2 \(basic units, "
               r"e.g. 8, 20, 56, 110\) or 9n\+2 \(bottleneck units"),
    (29, "basic", r"Invalid depth=29 for the CIFAR layout with basic units: depth must be 6n\+2"),
])
def test_a_depth_of_neither_form_is_refused(depth, block_type, message):
    with pytest.raises(ValueError, match=message):
        resolve_layout("cifar", depth, block_type=block_type)
