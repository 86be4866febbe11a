"""TensorFlow image ops: the one home of decoding, centre crop, resize, normalize.

Used by the tf.data pipelines (`keras_preact.data`, on every Keras backend)
and inside exported serving graphs (`keras_preact.export`, executed by TF
Serving), so they are TensorFlow ops on purpose. Images are RGB, channels
last, pixels on the 0-255 scale until `normalize`. Importing this module
imports TensorFlow; without it, a `ModuleNotFoundError` gives the install line.
"""

from keras_preact.install_hints import import_tensorflow
from keras_preact.normalization import normalization_constants

tf = import_tensorflow("keras_preact.image_ops (decode, crop, resize, normalize)")

# Fraction of the shorter side kept by the ImageNet evaluation centre crop
# (224 / 256), as in fb.resnet.torch and the TF Model Garden.
CENTER_CROP_FRACTION = 0.875


def _pair(image_size):
    if isinstance(image_size, (tuple, list)):
        return int(image_size[0]), int(image_size[1])
    return int(image_size), int(image_size)


def default_eval_resize(image_size):
    """Shorter side an ImageNet evaluation resizes to before the centre crop.

    Args:
        image_size: int or `(height, width)` of the model input, in pixels.

    Returns:
        int, `round(max(image_size) / CENTER_CROP_FRACTION)` (256 for 224).
    """
    return int(round(max(_pair(image_size)) / CENTER_CROP_FRACTION))


def center_crop_window(shape, image_size, eval_resize=None):
    """Crop window equal to "resize shorter side to `eval_resize`, centre crop".

    Cropping `image_size * short / eval_resize` original pixels around the
    centre and resizing that window to `image_size` equals resizing first and
    cropping `image_size` (up to interpolation), and decodes less.

    Args:
        shape: int32 tensor `[h, w, ...]` of the decoded image.
        image_size: int or `(height, width)` of the output, in pixels.
        eval_resize: shorter-side size the crop refers to; `None` means
            `default_eval_resize(image_size)` (the 0.875 crop).

    Returns:
        int32 tensor `[offset_y, offset_x, crop_h, crop_w]`, inside the image.
    """
    height, width = _pair(image_size)
    eval_resize = float(eval_resize or default_eval_resize(image_size))
    h, w = shape[0], shape[1]
    short = tf.cast(tf.minimum(h, w), tf.float32)

    def crop(size, limit):
        size = tf.cast(tf.round(short * (size / eval_resize)), tf.int32)
        return tf.minimum(tf.maximum(size, 1), limit)

    crop_h, crop_w = crop(height, h), crop(width, w)
    return tf.stack([(h - crop_h + 1) // 2, (w - crop_w + 1) // 2, crop_h, crop_w])


def _size_checks(encoded, max_image_bytes):
    if max_image_bytes is None:
        return []
    size = tf.strings.length(encoded)
    too_big = f"Encoded image is larger than max_image_bytes={int(max_image_bytes)}."
    return [
        tf.debugging.assert_less_equal(size, int(max_image_bytes), message=too_big),
        tf.debugging.assert_greater(size, 0, message="Encoded image is empty (0 bytes)."),
    ]


def decode(encoded, window_fn=None, max_image_bytes=None):
    """Decodes one JPEG/PNG/GIF/BMP string (or its crop window) to RGB uint8.

    With `window_fn`, only the window is decoded: JPEGs with the fused
    `tf.image.decode_and_crop_jpeg` (decodes only the window's blocks), other
    formats (ImageNet has PNGs named .JPEG) decoded whole and sliced.
    Greyscale, CMYK and RGBA images become 3 channels.

    Args:
        encoded: scalar `tf.string` tensor, the encoded file bytes.
        window_fn: `None` (whole image) or a function of the int32 `[h, w, c]`
            image shape returning `[offset_y, offset_x, height, width]`, e.g.
            `lambda shape: center_crop_window(shape, 224)`.
        max_image_bytes: `None`, or the largest accepted encoded size in bytes.

    Returns:
        uint8 tensor `(H, W, 3)` on 0-255.

    Raises:
        tf.errors.InvalidArgumentError: at run time, for bytes that are not a
            decodable image, or (with `max_image_bytes`) empty or too large.
    """

    def whole():
        return tf.io.decode_image(encoded, channels=3, dtype=tf.uint8, expand_animations=False)

    def jpeg_window():
        window = window_fn(tf.image.extract_jpeg_shape(encoded))
        return tf.image.decode_and_crop_jpeg(encoded, window, channels=3)

    def other_window():
        image = whole()
        window = window_fn(tf.shape(image))
        return tf.slice(image, [window[0], window[1], 0], [window[2], window[3], 3])

    with tf.control_dependencies(_size_checks(encoded, max_image_bytes)):
        if not window_fn:
            image = whole()
        else:
            image = tf.cond(tf.io.is_jpeg(encoded), jpeg_window, other_window)
    image.set_shape((None, None, 3))
    return image


def resize(image, image_size):
    """Bilinear resize to `image_size` (the identity when the size matches).

    Args:
        image: `(H, W, C)` or `(B, H, W, C)` tensor, any real dtype.
        image_size: int or `(height, width)`, in pixels.

    Returns:
        float32 tensor `(height, width, C)` (or batched), values not rounded.
    """
    return tf.image.resize(tf.cast(image, tf.float32), _pair(image_size), method="bilinear")


def decode_and_resize(encoded, image_size, eval_resize=None, max_image_bytes=None):
    """The evaluation input of one encoded image: float32 pixels on 0-255.

    With `eval_resize=None` the whole image is decoded and resized to
    `image_size` (a CIFAR 32x32 image passes unchanged); with an int, the
    centre crop of `center_crop_window` is decoded and resized (ImageNet).

    Args:
        encoded: scalar `tf.string`, the encoded file bytes.
        image_size: int or `(height, width)`, in pixels.
        eval_resize: `None`, or the shorter side before the centre crop.
        max_image_bytes: as in `decode`.

    Returns:
        float32 tensor `(height, width, 3)` on 0-255 (not rounded).

    Raises:
        tf.errors.InvalidArgumentError: as `decode`.
    """
    def window_fn(shape):
        return center_crop_window(shape, image_size, eval_resize)

    image = resize(decode(encoded, eval_resize and window_fn, max_image_bytes), image_size)
    return tf.ensure_shape(image, (*_pair(image_size), 3))


def normalize(images, statistics, data_format="channels_last"):
    """`keras_preact.normalization.normalize` in TensorFlow ops, for tf.data and
    serving graphs: the same arguments, float32 values and errors, but
    `data_format` defaults to `"channels_last"`, the layout decoded here."""
    images = tf.cast(images, tf.float32)
    mean, inverse_std = normalization_constants(statistics, tuple(images.shape), data_format)
    return (images - tf.constant(mean)) * tf.constant(inverse_std)
