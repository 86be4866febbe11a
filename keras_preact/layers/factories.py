"""The convolution, batch normalization and initializers every part of the
network uses."""

import zlib

import keras

from keras_preact.layers.batch_normalization import BatchNormalization
from keras_preact.layers.convolution import Conv2D


def he_normal_fan_out():
    """He normal over fan-out, untruncated: the authors' conv initialization.

    `N(0, sqrt(2 / n))` with `n = kernel_h * kernel_w * out_channels`, as
    `ConvInit` in KaimingHe/resnet-1k-layers `resnet-pre-act.lua` and
    fb.resnet.torch `models/preresnet.lua` (He et al., 2015, Sec. 2.2).

    Returns:
        An unseeded `keras.initializers.VarianceScaling`: pass it through
        `fresh_initializer` before giving it to a layer.
    """
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal"
    )


def torch_linear_default():
    """Torch's default `nn.Linear` weight: `U(-1/sqrt(n), 1/sqrt(n))`, n = fan-in.

    The authors' code leaves the classifier's weight at this default and
    zeroes its bias (resnet-pre-act.lua: `v.bias:zero()` for `nn.Linear`).
    `VarianceScaling(1/3, "fan_in", "uniform")` has limit
    `sqrt(3 * (1/3) / n) = 1/sqrt(n)`.

    Returns:
        An unseeded `keras.initializers.VarianceScaling`.
    """
    return keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform"
    )


def fresh_initializer(initializer, salt):
    """A new instance of `initializer` for exactly one layer.

    Keras fixes an unseeded initializer's seed when the instance is made, so
    one instance shared by several layers gives every kernel of the same
    shape the same values. Each layer must get its own instance: this clones
    `initializer` from its config. An unseeded one draws a new seed from
    Keras' global generator (so `keras.utils.set_random_seed` makes the
    model reproducible); one with an int seed (or a `SeedGenerator`, whose
    base seed is used) gets that seed mixed with `salt`, so different layers
    still differ and the same layer is the same on every build.

    Args:
        initializer: a `keras.initializers.Initializer`, its name or config.
            Other callables are returned unchanged.
        salt: str. Unique name of the layer within the model, e.g.
            `"stage1_unit2/conv1"`; used only for seeded initializers.

    Returns:
        A `keras.initializers.Initializer` not shared with any other layer.
    """
    initializer = keras.initializers.get(initializer)
    if not isinstance(initializer, keras.initializers.Initializer):
        return initializer
    config = keras.initializers.serialize(initializer)
    seed = config["config"].get("seed")
    if isinstance(seed, dict):  # a serialized keras.random.SeedGenerator
        seed = seed.get("config", {}).get("seed")
        config["config"]["seed"] = seed if isinstance(seed, int) else None
    if isinstance(seed, int):
        config["config"]["seed"] = (seed + zlib.crc32(salt.encode())) % 2**31
    return keras.initializers.deserialize(config)


def conv2d(
    filters, kernel_size, strides, *, name, kernel_initializer,
    kernel_regularizer, data_format, padding="same", dtype=None, seed_salt=None,
):
    """A bias-free `Conv2D` (each is followed or preceded by a BN), with its
    own copy of `kernel_initializer` (see `fresh_initializer`; `seed_salt`
    defaults to `name`)."""
    return Conv2D(
        filters, kernel_size, strides=strides, padding=padding,
        use_bias=False,
        kernel_initializer=fresh_initializer(
            kernel_initializer, seed_salt or name
        ),
        kernel_regularizer=kernel_regularizer, data_format=data_format,
        dtype=dtype, name=name,
    )


def batch_norm(
    *, name, momentum, epsilon, data_format, dtype=None, activation=None
):
    """A batch normalization over the channel axis of `data_format`, with
    `activation` (`None` or `"relu"`) fused into it.

    It is `keras_preact.layers.BatchNormalization`: Keras'
    `BatchNormalization` (same variables, weight files and numbers) on the
    backend's fused kernel where there is one.
    """
    return BatchNormalization(
        axis=-1 if data_format == "channels_last" else 1, momentum=momentum,
        epsilon=epsilon, activation=activation, dtype=dtype, name=name,
    )
