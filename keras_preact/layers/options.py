"""The unit orderings and shortcut variants compared in the paper."""

import keras

from keras_preact.validation import check_choice

# The paper's Fig. 4 / Table 2, each ordering as its steps from the unit's
# input to its output; the one list that building, calling and remat walk
# (`ResidualUnit.steps`). "convs": the unit's convolutions, with a BN-ReLU
# between each two in every ordering; "add": the shortcut addition;
# "bn_relu": a BN with the ReLU that follows it fused in. The steps before
# "convs" are the pre-activation, which a projection shortcut shares.
UNIT_ORDERING_STEPS = {
    "full_preact": ("bn_relu", "convs", "add"),
    "original": ("convs", "bn", "add", "relu"),
    "bn_after_addition": ("convs", "add", "bn_relu"),
    "relu_before_addition": ("convs", "bn_relu", "add"),
    "relu_only_preact": ("relu", "convs", "bn", "add"),
}
UNIT_ORDERINGS = tuple(UNIT_ORDERING_STEPS)

# The paper's Fig. 2 / Table 1: what the shortcut does to its input.
SHORTCUTS = (
    "identity",
    "constant_scaling",
    "exclusive_gating",
    "shortcut_only_gating",
    "conv1x1",
    "dropout",
)

STRIDE_POSITIONS = ("1x1", "3x3")
DATA_FORMATS = ("channels_last", "channels_first")


def preactivation(unit_ordering):
    """The steps of `unit_ordering` before its first convolution: `()` for
    the post-activation orderings. The network applies them once more after
    its last unit (Sec. 4.1)."""
    steps = UNIT_ORDERING_STEPS[check_choice(
        "unit_ordering", unit_ordering, UNIT_ORDERINGS
    )]
    return steps[: steps.index("convs")]


def standardize_data_format(data_format):
    """Returns `data_format`, or Keras' global default when it is `None`;
    a `ValueError` for anything but those and `DATA_FORMATS`."""
    if data_format is None:
        return keras.config.image_data_format()
    return check_choice("data_format", data_format, DATA_FORMATS)
