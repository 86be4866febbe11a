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


def center_crop_window(shape, image_size, eval_resize):
    """Crop window equal to "resize shorter side to eval_resize, center crop".

    Same arithmetic as the evaluation pipeline (`keras_preact.data.imagenet`):
    crop `image_size * short / eval_resize` original pixels around the center,
    then resize that window to `image_size`.

    Args:
        shape: int32 `[h, w, ...]` of the decoded image.
        image_size: `(height, width)` of the output.
        eval_resize: shorter-side size the crop fraction refers to.

    Returns:
        int32 `[offset_y, offset_x, crop_h, crop_w]`.
    """
    h, w = shape[0], shape[1]
    short = tf.cast(tf.minimum(h, w), tf.float32)
    crop_h = tf.maximum(tf.cast(tf.round(short * (image_size[0] / eval_resize)), tf.int32), 1)
    crop_w = tf.maximum(tf.cast(tf.round(short * (image_size[1] / eval_resize)), tf.int32), 1)
    crop_h, crop_w = tf.minimum(crop_h, h), tf.minimum(crop_w, w)
    return tf.stack([(h - crop_h + 1) // 2, (w - crop_w + 1) // 2, crop_h, crop_w])


def _check_size(encoded, max_image_bytes):
    size = tf.strings.length(encoded)
    return [
        tf.debugging.assert_less_equal(
            size,
            tf.constant(int(max_image_bytes), tf.int32),
            message=f"Encoded image is larger than max_image_bytes={int(max_image_bytes)}.",
        ),
        tf.debugging.assert_greater(size, 0, message="Encoded image is empty (0 bytes)."),
    ]


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
    with tf.control_dependencies(_check_size(encoded, max_image_bytes)):
        image = tf.io.decode_image(encoded, channels=3, dtype=tf.uint8, expand_animations=False)
    image.set_shape((None, None, 3))
    return image


def decode_and_resize(encoded, image_size, eval_resize, max_image_bytes):
    """One encoded image -> float32 `(height, width, 3)` pixels on 0-255.

    With `eval_resize=None` the image is decoded and resized straight to
    `image_size` (CIFAR: a 32x32 image passes through unchanged). With an int,
    the evaluation center crop of `center_crop_window` is decoded (JPEGs with
    the fused `decode_and_crop_jpeg`, like the tf.data pipeline) and resized to
    `image_size`. Resizing is bilinear, as in `keras_preact.data`.

    Args:
        encoded: scalar `tf.string`.
        image_size: `(height, width)`.
        eval_resize: `None` or the shorter-side size of the center crop.
        max_image_bytes: largest accepted encoded size.

    Returns:
        float32 tensor `(height, width, 3)` (not rounded).
    """
    height, width = int(image_size[0]), int(image_size[1])
    if eval_resize is None:
        image = tf.cast(decode_image(encoded, max_image_bytes), tf.float32)
        shape = tf.shape(image)
        same = tf.logical_and(tf.equal(shape[0], height), tf.equal(shape[1], width))
        image = tf.cond(
            same,
            lambda: image,
            lambda: tf.image.resize(image, (height, width), method="bilinear"),
        )
        return tf.ensure_shape(image, (height, width, 3))

    def window(shape):
        return center_crop_window(shape, (height, width), float(eval_resize))

    def jpeg():
        return tf.image.decode_and_crop_jpeg(
            encoded, window(tf.image.extract_jpeg_shape(encoded)), channels=3
        )

    def other():
        image = tf.io.decode_image(encoded, channels=3, dtype=tf.uint8, expand_animations=False)
        w = window(tf.shape(image))
        return tf.slice(image, [w[0], w[1], 0], [w[2], w[3], 3])

    with tf.control_dependencies(_check_size(encoded, max_image_bytes)):
        image = tf.cond(tf.io.is_jpeg(encoded), jpeg, other)
    image.set_shape((None, None, 3))
    image = tf.image.resize(tf.cast(image, tf.float32), (height, width), method="bilinear")
    return tf.ensure_shape(image, (height, width, 3))
