"""TensorFlow image ops used inside the tf.data pipelines.

Everything here runs in a tf.data graph, so it uses `tensorflow` directly
(whatever the Keras backend is) and stateless random ops driven by explicit
seeds, so a pipeline with `seed=...` is reproducible.
"""

import tensorflow as tf

VALID_PAD_MODES = ("constant", "reflect")


def tf_normalize(images, mean, std):
    """`(float(images) - mean) / std` per channel, channels last, in TF."""
    mean = tf.constant(mean, tf.float32)
    inv_std = tf.constant([1.0 / s for s in std], tf.float32)
    return (tf.cast(images, tf.float32) - mean) * inv_std


def random_pad_crop_flip_batch(images, seed, pad=4, pad_mode="constant", flip=True):
    """Paper CIFAR augmentation on a batch, vectorized.

    Pads each image by `pad` pixels on every side, takes a random
    `H x W` crop (independent offset per image) and flips each image
    horizontally with probability 0.5.

    Args:
        images: `(B, H, W, C)` tensor.
        seed: int tensor of shape `(2,)` for the stateless random ops.
        pad: padding per side.
        pad_mode: `"constant"` (zeros, as in the paper) or `"reflect"`.
        flip: whether to apply random horizontal flips.

    Returns:
        A tensor of the same shape and dtype.
    """
    if pad_mode not in VALID_PAD_MODES:
        raise ValueError(f"Unknown pad_mode={pad_mode!r}. Expected one of {VALID_PAD_MODES}.")
    shape = tf.shape(images)
    batch = shape[0]
    height, width = images.shape[1], images.shape[2]
    seeds = tf.random.experimental.stateless_split(seed, 3)
    if pad > 0:
        images_p = tf.pad(
            images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode=pad_mode.upper()
        )
        off_y = tf.random.stateless_uniform([batch], seeds[0], 0, 2 * pad + 1, tf.int32)
        off_x = tf.random.stateless_uniform([batch], seeds[1], 0, 2 * pad + 1, tf.int32)
        rows = off_y[:, None] + tf.range(height)[None, :]  # (B, H)
        cols = off_x[:, None] + tf.range(width)[None, :]  # (B, W)
        images = tf.gather(images_p, rows, axis=1, batch_dims=1)  # (B, H, W+2p, C)
        images = tf.gather(images, cols, axis=2, batch_dims=1)  # (B, H, W, C)
    if flip:
        do_flip = tf.random.stateless_uniform([batch], seeds[2]) < 0.5
        images = tf.where(do_flip[:, None, None, None], tf.reverse(images, [2]), images)
    return images


def random_pad_crop_flip_image(image, seed, pad=4, pad_mode="constant", flip=True):
    """Per-image version of `random_pad_crop_flip_batch` (`(H, W, C)` input)."""
    if pad_mode not in VALID_PAD_MODES:
        raise ValueError(f"Unknown pad_mode={pad_mode!r}. Expected one of {VALID_PAD_MODES}.")
    seeds = tf.random.experimental.stateless_split(seed, 2)
    shape = image.shape
    if pad > 0:
        padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]], mode=pad_mode.upper())
        image = tf.image.stateless_random_crop(padded, shape, seed=seeds[0])
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, seed=seeds[1])
    return image
