"""TensorFlow image ops used inside exported serving graphs.

These run inside the SavedModel (TensorFlow Serving executes them), so they
are TensorFlow ops on purpose. The same functions are used by the tests to
build the reference "pixel" input for a given encoded image.
"""

import tensorflow as tf

# Fraction of the resized image kept by the ImageNet evaluation center crop
# (224 / 256), as in fb.resnet.torch and the TF Model Garden.
CENTER_CROP_FRACTION = 0.875


def default_eval_resize(image_size):
    """Shorter-side size an ImageNet-style evaluation resizes to before cropping.

    Args:
        image_size: `(height, width)` of the model input.

    Returns:
        `int`, `round(max(image_size) / 0.875)` (256 for 224).
    """
    return int(round(max(image_size) / CENTER_CROP_FRACTION))


def resize_for_eval(image, image_size, eval_resize=None):
    """Resizes one decoded image like the evaluation pipeline.

    With `eval_resize=None` the image is resized straight to `image_size`
    (CIFAR: every image is 32x32 already, so this is a no-op for them). With an
    integer, the shorter side is resized to `eval_resize` (aspect ratio kept)
    and the central `image_size` crop is taken (ImageNet evaluation).
    Bilinear interpolation with antialiasing is used when shrinking.

    Args:
        image: `(H, W, 3)` tensor, any dtype, values on the 0-255 scale.
        image_size: `(height, width)` of the output.
        eval_resize: `None` or the shorter-side size before the center crop.

    Returns:
        float32 `(height, width, 3)` tensor on the 0-255 scale (not rounded).
    """
    height, width = int(image_size[0]), int(image_size[1])
    image = tf.cast(image, tf.float32)
    if eval_resize is None:
        shape = tf.shape(image)
        same = tf.logical_and(tf.equal(shape[0], height), tf.equal(shape[1], width))
        out = tf.cond(
            same,
            lambda: image,
            lambda: tf.image.resize(image, (height, width), antialias=True),
        )
        return tf.ensure_shape(out, (height, width, 3))
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.cast(eval_resize, tf.float32) / tf.reduce_min(shape)
    new_size = tf.maximum(
        tf.cast(tf.round(shape * scale), tf.int32), tf.constant([height, width])
    )
    image = tf.image.resize(image, new_size, antialias=True)
    top = (new_size[0] - height) // 2
    left = (new_size[1] - width) // 2
    image = image[top : top + height, left : left + width, :]
    return tf.ensure_shape(image, (height, width, 3))


def decode_image(encoded, max_image_bytes):
    """Decodes one JPEG/PNG/GIF/BMP string to uint8 RGB `(H, W, 3)`.

    Greyscale and RGBA images are converted to 3 channels. Raises
    `InvalidArgumentError` at run time when the string is longer than
    `max_image_bytes`, empty, or not a decodable image.

    Args:
        encoded: scalar `tf.string` tensor.
        max_image_bytes: largest accepted encoded size in bytes.

    Returns:
        uint8 tensor `(H, W, 3)`.
    """
    size = tf.strings.length(encoded)
    checks = [
        tf.debugging.assert_less_equal(
            size,
            tf.constant(int(max_image_bytes), tf.int32),
            message=f"Encoded image is larger than max_image_bytes={int(max_image_bytes)}.",
        ),
        tf.debugging.assert_greater(
            size, 0, message="Encoded image is empty (0 bytes)."
        ),
    ]
    with tf.control_dependencies(checks):
        image = tf.io.decode_image(
            encoded, channels=3, dtype=tf.uint8, expand_animations=False
        )
    image.set_shape((None, None, 3))
    return image


def decode_and_resize(encoded, image_size, eval_resize, max_image_bytes):
    """`decode_image` then `resize_for_eval`: one encoded image -> float32 pixels."""
    image = decode_image(encoded, max_image_bytes)
    return resize_for_eval(image, image_size, eval_resize)
