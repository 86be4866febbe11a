"""The unit orderings and shortcut variants compared in the paper."""

from typing import NamedTuple

import keras

from keras_preact.validation import check_choice


class Ordering(NamedTuple):
    """Where an ordering puts BN and ReLU, besides the BN-ReLU between each
    two convolutions that every ordering has: `"bn_relu"` (a BN with the
    ReLU that follows it fused in), `"bn"`, `"relu"` or `None`."""

    before_convs: str | None  # The pre-activation; a projection shortcut shares it.
    after_convs: str | None
    after_addition: str | None


# The paper's Fig. 4 / Table 2.
UNIT_ORDERING_TABLE = {
    "full_preact": Ordering("bn_relu", None, None),
    "original": Ordering(None, "bn", "relu"),
    "bn_after_addition": Ordering(None, None, "bn_relu"),
    "relu_before_addition": Ordering(None, "bn_relu", None),
    "relu_only_preact": Ordering("relu", "bn", None),
}
UNIT_ORDERINGS = tuple(UNIT_ORDERING_TABLE)

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
    """What `unit_ordering` applies before its first convolution:
    `("bn_relu",)`, `("relu",)`, or `()` for the post-activation orderings.
    The network applies it once more after its last unit (Sec. 4.1)."""
    step = UNIT_ORDERING_TABLE[check_choice(
        "unit_ordering", unit_ordering, UNIT_ORDERINGS
    )].before_convs
    return (step,) if step else ()


def standardize_data_format(data_format):
    """Returns `data_format`, or Keras' global default when it is `None`;
    a `ValueError` for anything but those and `DATA_FORMATS`."""
    if data_format is None:
        return keras.config.image_data_format()
    return check_choice("data_format", data_format, DATA_FORMATS)
