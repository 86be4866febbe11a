"""The convolution and batch normalization every part of the network uses."""

import keras


def conv2d(
    filters,
    kernel_size,
    strides,
    *,
    name,
    kernel_initializer,
    kernel_regularizer,
    data_format,
    padding="same",
    dtype=None,
):
    """A bias-free `Conv2D`: each is followed (or preceded) by a BN."""
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer=kernel_initializer,
        kernel_regularizer=kernel_regularizer,
        data_format=data_format,
        dtype=dtype,
        name=name,
    )


def batch_norm(*, name, momentum, epsilon, data_format, dtype=None):
    """A `BatchNormalization` over the channel axis of `data_format`."""
    return keras.layers.BatchNormalization(
        axis=-1 if data_format == "channels_last" else 1,
        momentum=momentum,
        epsilon=epsilon,
        dtype=dtype,
        name=name,
    )
