"""TensorFlow augmentation and layout ops used inside the tf.data pipelines.

Everything here runs in a tf.data graph, so it uses `tensorflow` directly
(whatever the Keras backend is) and stateless random ops driven by explicit
seeds, so a pipeline with `seed=...` is reproducible. Decoding, cropping
windows, resizing and normalization live in `keras_preact.image_ops`.
"""

import numpy as np
import tensorflow as tf


def _pad(images, pad, pad_mode, pad_value):
    """Pads the height and width of `(B, H, W, C)` images by `pad` per side."""
    paddings = [[0, 0], [pad, pad], [pad, pad], [0, 0]]
    if pad_mode == "reflect" or not np.any(pad_value):
        return tf.pad(images, paddings, mode=pad_mode.upper())
    # tf.pad takes one constant: pad each channel with its own value.
    fill = np.broadcast_to(np.asarray(pad_value, np.float32), [images.shape[-1]])
    channels = tf.unstack(images, axis=-1)
    return tf.stack(
        [tf.pad(c, paddings[:-1], constant_values=v) for c, v in zip(channels, fill)], axis=-1
    )


def random_pad_crop_flip_batch(images, seed, pad=4, pad_mode="constant", flip=True, pad_value=0.0):
    """The paper's CIFAR augmentation on a batch, vectorized.

    Pads each image by `pad` pixels on every side, takes a random `H x W`
    crop (independent offset per image) and flips each image horizontally
    with probability 0.5 (He et al. 2016, Sec. 4.2; fb.resnet.torch
    `RandomCrop(32, 4)` + `HorizontalFlip(0.5)`).

    Args:
        images: float `(B, H, W, C)` tensor with a static `H`, `W`, `C`.
        seed: int tensor of shape `(2,)` for the stateless random ops.
        pad: int >= 0, padding per side in pixels.
        pad_mode: `"constant"` (the paper) or `"reflect"`; checked by the
            caller (`cifar_dataset`).
        flip: whether to apply random horizontal flips.
        pad_value: the `"constant"` padding, a number or one per channel:
            0 for normalized images (the mean colour), the mean colour for
            0-255 pixels.

    Returns:
        A tensor of the same shape and dtype.
    """
    batch = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    seeds = tf.random.experimental.stateless_split(seed, 3)
    if pad > 0:
        images_p = _pad(images, pad, pad_mode, pad_value)
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


def one_stream(make_dataset, same):
    """`make_dataset()`, made anew on every iteration when `same`: its random
    ops restart, so every iteration is the same stream (Keras' JAX and torch
    trainers iterate a dataset once to build the model, then to train)."""
    if not same:
        return make_dataset()
    return tf.data.Dataset.range(1).flat_map(lambda _: make_dataset())


def in_data_format(ds, data_format):
    """`ds`, a dataset of channels-last `(images, labels)` batches, in `data_format`."""
    if data_format == "channels_last":
        return ds
    return ds.map(lambda x, y: (tf.transpose(x, (0, 3, 1, 2)), y), num_parallel_calls=-1)
