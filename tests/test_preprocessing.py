"""Input statistics (keras_preact.preprocessing) and the TF image ops
(keras_preact.image_ops), each checked against an independent computation."""

import io

import keras
import numpy as np
import pytest

import keras_preact
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


# ----------------------------------------------------------------------------
# Normalization: keras.ops `normalize` and TF `image_ops.normalize`, one table.

NORMALIZE_CASES = {
    # id: (images shape, dtype, statistics, data_format)
    "cifar100-uint8-last": ((2, 4, 5, 3), "uint8", "cifar100", "channels_last"),
    "pair-float-first": ((2, 3, 2, 2), "float32", ((1.0, 2.0, 3.0), (2.0, 4.0, 8.0)),
                         "channels_first"),
    "imagenet-float-last": ((3, 2, 2, 3), "float32", "imagenet", "channels_last"),
}


def _normalize_reference(x, statistics, data_format):
    mean, std = pp.STATISTICS[statistics] if isinstance(statistics, str) else statistics
    shape = (3,) if data_format == "channels_last" else (3, 1, 1)
    return (x.astype(np.float64) - np.reshape(mean, shape)) / np.reshape(std, shape)


@pytest.mark.parametrize("case", list(NORMALIZE_CASES))
def test_normalize(case):
    shape, dtype, statistics, data_format = NORMALIZE_CASES[case]
    x = np.random.default_rng(0).integers(0, 256, shape).astype(dtype)
    expected = _normalize_reference(x, statistics, data_format)
    mean, std = pp.resolve_statistics(statistics)
    out = keras.ops.convert_to_numpy(pp.normalize(x, mean, std, data_format=data_format))
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    if data_format == "channels_last":  # the TF twin, used by the pipelines and the export
        from keras_preact import image_ops

        tf_out = image_ops.normalize(x, statistics).numpy()
        assert tf_out.dtype == np.float32
        np.testing.assert_allclose(tf_out, out, rtol=1e-6, atol=1e-6)


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


@pytest.mark.parametrize(
    "statistics, match",
    [
        ("cifar", r"Unknown statistics='cifar'. Expected one of \['cifar10', 'cifar100', 'imagenet'\]"),
        (None, "Expected statistics to be one of"),
        (((1.0, 2.0, 3.0),), "Expected statistics to be one of"),
        (((1.0, 2.0), (1.0, 1.0)), "one value per channel"),
        (((0, 0, 0), (1.0, -1.0, 1.0)), "std values > 0"),
        (((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), "0-1 scale: multiply both by 255"),
        ((("a", 0, 0), (1, 1, 1)), "Expected mean to be a sequence of 3 numbers"),
    ],
)
def test_resolve_statistics_bad_input(statistics, match):
    with pytest.raises(ValueError, match=match):
        pp.resolve_statistics(statistics)
    if isinstance(statistics, str):  # the TF normalize refuses the same
        from keras_preact import image_ops

        with pytest.raises(ValueError, match=match):
            image_ops.normalize(np.zeros((1, 3), np.float32), statistics)


# ----------------------------------------------------------------------------
# The model records its statistics; they survive .keras save and load.

RECORDED = {
    # id: (PreActResNet kwargs, expected statistics or None)
    "none": (dict(), None),
    "cifar10": (dict(input_normalization="cifar10"), pp.STATISTICS["cifar10"]),
    "imagenet-channels_first": (
        dict(input_normalization="imagenet", data_format="channels_first", input_shape=(3, 32, 32)),
        pp.STATISTICS["imagenet"]),
    "pair": (dict(input_normalization=((10.0, 20.0, 30.0), (2.0, 3.0, 4.0))),
             ((10.0, 20.0, 30.0), (2.0, 3.0, 4.0))),
}


@pytest.mark.parametrize("case", list(RECORDED))
def test_input_statistics_survive_keras_file(case, tmp_path):
    kwargs, expected = RECORDED[case]
    kwargs = {"input_shape": (32, 32, 3), **kwargs}
    model = keras_preact.PreActResNet(depth=8, base_width=4, classes=10, **kwargs)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    nested = keras.Sequential([model, keras.layers.Activation("linear")])
    for m in (model, loaded, nested):
        got = pp.input_statistics(m)
        if expected is None:
            assert got is None
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-6)
    # The model maps 0-255 pixels itself: the same as normalizing first.
    if expected is not None:
        x = np.random.default_rng(0).integers(0, 256, (2, *kwargs["input_shape"])).astype("float32")
        bare = keras_preact.PreActResNet(depth=8, base_width=4, classes=10,
                                         **{k: v for k, v in kwargs.items() if k != "input_normalization"})
        bare.set_weights(model.get_weights())
        data_format = kwargs.get("data_format", "channels_last")
        normalized = pp.normalize(x, *expected, data_format=data_format)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)),
                                   keras.ops.convert_to_numpy(bare(normalized)), atol=1e-5)


# ----------------------------------------------------------------------------
# TF image ops: centre crop window and decoding, against plain arithmetic.

CROPS = {
    # id: (image shape, image_size, eval_resize)
    "landscape-224": ((375, 500, 3), 224, None),
    "portrait-224": ((500, 333, 3), 224, 256),
    "square-exact": ((224, 224, 3), 224, 224),
    "thin-rect-output": ((100, 1000, 3), (32, 48), None),
}


@pytest.mark.parametrize("case", list(CROPS))
def test_center_crop_window(case):
    from keras_preact import image_ops

    shape, image_size, eval_resize = CROPS[case]
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    resize = eval_resize or round(max(height, width) / 0.875)
    short = min(shape[:2])
    crop_h = min(max(round(short * height / resize), 1), shape[0])
    crop_w = min(max(round(short * width / resize), 1), shape[1])
    expected = [(shape[0] - crop_h + 1) // 2, (shape[1] - crop_w + 1) // 2, crop_h, crop_w]
    got = image_ops.center_crop_window(np.array(shape, np.int32), image_size, eval_resize)
    assert got.numpy().tolist() == expected
    assert image_ops.default_eval_resize(224) == 256 and image_ops.CENTER_CROP_FRACTION == 0.875


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_decode_window_equals_whole_decode_then_slice(fmt):
    """The fused `decode_and_crop_jpeg` (JPEG) and the slice (PNG) paths."""
    import tensorflow as tf
    from PIL import Image

    from keras_preact import image_ops

    pixels = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    encoded = tf.constant(buf.getvalue())
    whole = image_ops.decode(encoded).numpy()
    assert whole.dtype == np.uint8 and whole.shape == (37, 53, 3)
    if fmt == "PNG":
        np.testing.assert_array_equal(whole, pixels)  # lossless
    window = image_ops.decode(encoded, lambda shape: tf.constant([3, 5, 16, 24])).numpy()
    np.testing.assert_array_equal(window, whole[3:19, 5:29])
    resized = image_ops.decode_and_resize(encoded, 16, eval_resize=None).numpy()
    np.testing.assert_allclose(resized, tf.image.resize(whole.astype("float32"), (16, 16)).numpy())
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_image_bytes=10"):
        image_ops.decode(encoded, max_image_bytes=10)


def test_identity_statistics_are_allowed():
    """Zero means and unit stds (inputs already normalized) are not the 0-1 scale."""
    assert pp.resolve_statistics(((0, 0, 0), (1, 1, 1))) == ((0.0,) * 3, (1.0,) * 3)
