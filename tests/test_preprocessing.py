"""Normalization constants and keras.ops `normalize`."""

import numpy as np
import pytest

from keras_preact import preprocessing as pp


def test_cifar100_constants_match_real_training_split(shared_data):
    files = sorted((shared_data / "cifar100").glob("train_*.npz"))
    if len(files) != 4:
        pytest.skip("CIFAR-100 training shards not found")
    # Exact statistics from per-channel histograms of the uint8 pixels.
    hist = np.zeros((3, 256), np.int64)
    for f in files:
        x = np.load(f)["x"]
        for c in range(3):
            hist[c] += np.bincount(x[..., c].ravel(), minlength=256)
    assert hist.sum() == 3 * 50_000 * 32 * 32
    values = np.arange(256, dtype=np.float64)
    mean = (hist * values).sum(1) / hist.sum(1)
    std = np.sqrt((hist * (values - mean[:, None]) ** 2).sum(1) / hist.sum(1))
    np.testing.assert_allclose(mean, pp.CIFAR100_MEAN, atol=1e-3)
    np.testing.assert_allclose(std, pp.CIFAR100_STD, atol=1e-3)


def test_published_constants():
    # CIFAR-10: the widely published per-channel statistics on [0, 1].
    np.testing.assert_allclose(
        np.array(pp.CIFAR10_MEAN) / 255, (0.49139968, 0.48215841, 0.44653091), atol=2e-6
    )
    np.testing.assert_allclose(
        np.array(pp.CIFAR10_STD) / 255, (0.24703223, 0.24348513, 0.26158784), atol=2e-6
    )
    np.testing.assert_allclose(pp.IMAGENET_MEAN, (123.675, 116.28, 103.53))
    np.testing.assert_allclose(pp.IMAGENET_STD, (58.395, 57.12, 57.375))
    for c in (pp.CIFAR10_MEAN, pp.CIFAR10_STD, pp.CIFAR100_MEAN, pp.CIFAR100_STD,
              pp.IMAGENET_MEAN, pp.IMAGENET_STD):
        assert isinstance(c, tuple) and len(c) == 3


def test_normalize_values_channels_last():
    import keras

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2, 4, 5, 3), dtype=np.uint8)
    out = keras.ops.convert_to_numpy(pp.normalize(x, pp.CIFAR100_MEAN, pp.CIFAR100_STD))
    expected = (x.astype(np.float64) - pp.CIFAR100_MEAN) / pp.CIFAR100_STD
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    # Pixel 0 and 255 land near the ends of the normalized range.
    assert -2.0 < out.min() and out.max() < 2.1


def test_normalize_channels_first():
    import keras

    x = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    out = keras.ops.convert_to_numpy(
        pp.normalize(x, (1.0, 2.0, 3.0), (2.0, 4.0, 8.0), data_format="channels_first")
    )
    expected = (x - np.array([1.0, 2.0, 3.0])[:, None, None]) / np.array([2.0, 4.0, 8.0])[:, None, None]
    np.testing.assert_allclose(out, expected, rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mean=(1.0, 2.0), std=(1.0, 1.0, 1.0)), "one value per channel"),
        (dict(mean=(1.0, 2.0, 3.0), std=(1.0, 0.0, 1.0)), "std values > 0"),
        (dict(mean=5.0, std=(1.0, 1.0, 1.0)), "sequence of 3 numbers"),
        (dict(mean=(0, 0, 0), std=(1, 1, 1), data_format="nhwc"), "Unknown data_format"),
    ],
)
def test_normalize_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pp.normalize(np.zeros((1, 2, 2, 3), np.float32), **kwargs)
