"""keras_preact.layers.drop_path: `DropPath` drops whole examples in training only."""

import numpy as np
import pytest

import keras

from keras_preact.layers import DropPath


def test_drop_path_is_identity_at_inference_and_random_in_training():
    layer = DropPath(0.5, seed=0)
    x = np.ones((64, 2, 2, 3), "float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), x)
    y = keras.ops.convert_to_numpy(layer(x, training=True))
    per_example = y.reshape(64, -1)
    # Each example is kept whole (scaled by 2) or dropped whole.
    assert set(np.unique(per_example)) <= {0.0, 2.0}
    assert np.all(per_example.min(axis=1) == per_example.max(axis=1))
    assert 0 < (per_example[:, 0] == 0).sum() < 64


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rate": 1.0}, r"rate=1.0\. .*\[0, 1\)"),
        ({"rate": True}, "rate=True"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DropPath(**kwargs)
