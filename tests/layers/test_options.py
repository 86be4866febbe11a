"""keras_preact.layers.options: the orderings and shortcuts of the paper, and
the checks of their names."""

import keras
import pytest

from keras_preact.layers.options import SHORTCUTS
from keras_preact.layers.options import UNIT_ORDERING_TABLE
from keras_preact.layers.options import preactivation
from keras_preact.layers.options import standardize_data_format

# The paper's Fig. 4, read from its drawings: (before the convolutions, after
# them, after the addition); every ordering has BN-ReLU between two convolutions.
FIG4 = {
    "original": (None, "bn", "relu"),  # (a) conv-BN-ReLU-conv-BN, add, ReLU
    "bn_after_addition": (None, None, "bn_relu"),  # (b) ... conv, add, BN-ReLU
    "relu_before_addition": (None, "bn_relu", None),  # (c) ... conv-BN-ReLU, add
    "relu_only_preact": ("relu", "bn", None),  # (d) ReLU-conv-BN-ReLU-conv-BN, add
    "full_preact": ("bn_relu", None, None),  # (e) BN-ReLU-conv-BN-ReLU-conv, add
}


@pytest.mark.parametrize("name", sorted(FIG4))
def test_orderings_are_the_papers_figure_4(name):
    ordering = UNIT_ORDERING_TABLE[name]
    assert tuple(ordering) == FIG4[name]
    assert preactivation(name) == tuple(step for step in ordering[:1] if step)


def test_the_tables_hold_the_papers_variants_only():
    assert set(UNIT_ORDERING_TABLE) == set(FIG4)
    # Fig. 2 / Table 1: identity, constant scaling, two gatings, 1x1 conv, dropout.
    assert SHORTCUTS == ("identity", "constant_scaling", "exclusive_gating",
                         "shortcut_only_gating", "conv1x1", "dropout")


def test_standardize_data_format():
    keras.config.set_image_data_format("channels_first")
    assert standardize_data_format(None) == "channels_first"
    assert standardize_data_format("channels_last") == "channels_last"


@pytest.mark.parametrize("check, value, message", [
    (preactivation, "post",
     "Invalid unit_ordering='post'. Expected one of ['full_preact', 'original', "
     "'bn_after_addition', 'relu_before_addition', 'relu_only_preact']."),
    (standardize_data_format, "NHWC",
     "Invalid data_format='NHWC'. Expected one of ['channels_last', 'channels_first']."),
])
def test_bad_names(check, value, message):
    with pytest.raises(ValueError) as info:
        check(value)
    assert str(info.value) == message
