"""Synthetic input for benchmarks: measures the model, not the input."""

import numpy as np
import tensorflow as tf

from keras_preact.layers.options import standardize_data_format
from keras_preact.validation import check_int


def synthetic_dataset(
    batch_size,
    image_size=224,
    num_classes=1000,
    *,
    channels=3,
    num_batches=None,
    one_hot=False,
    dtype="float32",
    seed=0,
    data_format=None,
):
    """A dataset repeating one random batch, for throughput benchmarks.

    One batch of standard-normal images (the scale of normalized inputs)
    and uniform labels is generated once and repeated, so the input
    pipeline costs next to nothing (as the TF Model Garden's synthetic
    input does).

    Args:
        batch_size: images per batch.
        image_size: int (square) or `(height, width)`.
        num_classes: labels are drawn from `[0, num_classes)`.
        channels: image channels.
        num_batches: number of batches; `None` repeats forever.
        one_hot: float32 one-hot labels instead of int64.
        dtype: image dtype (e.g. `"float32"`, `"bfloat16"`).
        seed: numpy seed for the batch.
        data_format: `"channels_last"`, `"channels_first"` or None (Keras'
            `image_data_format()`); pass the model's.

    Returns:
        A `tf.data.Dataset` of `(images, labels)`: images `(B, H, W, C)` (or
        its transpose `(B, C, H, W)`) of `dtype`, standard normal (normalized
        scale, not 0-255 pixels); labels int64 `(B,)`, or float32
        `(B, num_classes)` with `one_hot`.

    Raises:
        ValueError: `batch_size` or `num_classes` < 1, `num_batches` < 0,
            `image_size` not a positive int or `(height, width)`, or a bad
            `data_format`.

    Example:

    >>> ds = synthetic_dataset(64, 32, 10, num_batches=100)
    >>> model.fit(ds, epochs=1)
    """
    check_int("batch_size", batch_size, low=1)
    data_format = standardize_data_format(data_format)
    if isinstance(image_size, (int, np.integer)):
        image_size = (int(image_size), int(image_size))
    if len(tuple(image_size)) != 2 or min(image_size) < 1:
        raise ValueError(
            f"Invalid image_size={image_size!r}. Expected a positive int or (height, width)."
        )
    check_int("num_classes", num_classes, low=1)
    if num_batches is not None:
        check_int("num_batches", num_batches, low=0)
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((batch_size, *image_size, channels), dtype=np.float32)
    labels = rng.integers(0, num_classes, size=(batch_size,), dtype=np.int64)
    if data_format == "channels_first":
        images = images.transpose(0, 3, 1, 2)
    images = tf.cast(tf.constant(images), dtype)
    labels = tf.one_hot(labels, num_classes, dtype=tf.float32) if one_hot else tf.constant(labels)
    ds = tf.data.Dataset.from_tensors((images, labels)).repeat(num_batches)
    return ds.prefetch(tf.data.AUTOTUNE)
