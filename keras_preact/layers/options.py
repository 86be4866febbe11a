"""Names of the unit orderings and shortcut variants compared in the paper."""

# The paper's Fig. 4 / Table 2: where BN and ReLU sit around the weights.
UNIT_ORDERINGS = (
    "full_preact",
    "original",
    "bn_after_addition",
    "relu_before_addition",
    "relu_only_preact",
)
PRE_ACTIVATION_ORDERINGS = ("full_preact", "relu_only_preact")

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


# Moved to keras_preact.validation; re-exported until the callers switch.
from keras_preact.validation import check_choice as validate_choice  # noqa: E402


DATA_FORMATS = ("channels_last", "channels_first")


def standardize_data_format(data_format):
    """Returns `data_format`, or Keras' global default when it is `None`."""
    import keras

    if data_format is None:
        return keras.config.image_data_format()
    return validate_choice("data_format", data_format, DATA_FORMATS)
