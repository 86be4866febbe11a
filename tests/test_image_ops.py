"""keras_preact.image_ops: the centre crop window and decoding, against plain arithmetic,
and what `image_ops.normalize` does beyond `keras_preact.normalization.normalize`
(the two are checked equal in tests/test_normalization.py)."""

import io

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import keras  # noqa: E402

from keras_preact import image_ops  # noqa: E402
from keras_preact import normalization as nz  # noqa: E402

PAIR = ((100.0, 110.0, 120.0), (50.0, 60.0, 70.0))
CROPS = {
    # id: (image shape, image_size, eval_resize)
    "landscape-224": ((375, 500, 3), 224, None),
    "portrait-224": ((500, 333, 3), 224, 256),
    "square-exact": ((224, 224, 3), 224, 224),
    "thin-rect-output": ((100, 1000, 3), (32, 48), None),
}


@pytest.mark.parametrize("case", list(CROPS))
def test_center_crop_window(case):
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
    from PIL import Image

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


def test_tensorflow_twin_defaults_to_channels_last():
    keras.config.set_image_data_format("channels_first")
    x = np.arange(3 * 4 * 4 * 3).reshape(3, 4, 4, 3) % 256
    expected = keras.ops.convert_to_numpy(nz.normalize(x, PAIR, "channels_last"))
    np.testing.assert_array_equal(image_ops.normalize(x, PAIR).numpy(), expected)


def test_tensorflow_twin_needs_a_known_channel_dimension():
    with pytest.raises(ValueError, match="known channel dimension"):
        tf.function(lambda x: image_ops.normalize(x, "cifar10")).get_concrete_function(
            tf.TensorSpec((None, 4, 4, None), tf.float32))
