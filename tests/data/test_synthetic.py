"""keras_preact.data.synthetic: `synthetic_dataset`, random batches of any shape."""

import pytest

tf = pytest.importorskip("tensorflow")

from keras_preact.data import synthetic_dataset  # noqa: E402

from _checks import check_channels_first_is_the_transpose  # noqa: E402


def test_synthetic_dataset():
    ds = synthetic_dataset(4, 32, 10, num_batches=3)
    batches = list(ds)
    assert len(batches) == 3
    x, y = batches[0]
    assert x.shape == (4, 32, 32, 3) and x.dtype == tf.float32
    assert y.shape == (4,) and y.dtype == tf.int64 and int(tf.reduce_max(y)) < 10
    assert abs(float(tf.math.reduce_std(x)) - 1.0) < 0.2
    x, y = next(iter(synthetic_dataset(2, (8, 6), 5, one_hot=True, dtype="bfloat16")))
    assert x.shape == (2, 8, 6, 3) and x.dtype == tf.bfloat16
    assert y.shape == (2, 5) and y.dtype == tf.float32
    with pytest.raises(ValueError, match="batch_size"):
        synthetic_dataset(0, 32, 10)
    with pytest.raises(ValueError, match="image_size"):
        synthetic_dataset(2, (32, 32, 3), 10)


def test_channels_first_batches_are_the_transpose():
    check_channels_first_is_the_transpose(
        lambda **kw: synthetic_dataset(4, (8, 6), 5, num_batches=2, **kw))
