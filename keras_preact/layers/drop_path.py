"""Stochastic depth: drops a whole residual branch per example."""

import numbers

import keras
from keras import ops


def check_rate(name, value):
    """`float(value)` if it is a number in `[0, 1)`, else a `ValueError` (in
    `keras_preact.validation`'s style)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            0 <= value < 1):
        raise ValueError(f"Invalid {name}={value!r}. Expected a number in [0, 1).")
    return float(value)


@keras.saving.register_keras_serializable(package="keras_preact")
class DropPath(keras.layers.Layer):
    """Drops the input per example with probability `rate` while training.

    Kept examples are scaled by `1 / (1 - rate)` so that the expected value
    is unchanged and inference needs no rescaling (Huang et al., 2016, as
    implemented in timm). At inference the layer is the identity.

    Args:
        rate: float. Probability of dropping each example's branch, in
            `[0, 1)`. Defaults to `0.0`.
        seed: int or `None`. Seed of the random generator.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments: `inputs` of any shape `(batch, ...)` and scale;
    `training`: drops only when `True`. Returns the same shape and dtype.

    Raises:
        ValueError: `rate` is not a number in `[0, 1)`.

    Example:

    >>> layer = DropPath(0.2)
    >>> layer(keras.ops.ones((2, 4, 4, 8)), training=False).shape
    (2, 4, 4, 8)
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_rate("rate", rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if rate else None
        self.supports_masking = True
        self.built = True

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        keep = 1.0 - self.rate
        mask_shape = (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        mask = keras.random.uniform(
            mask_shape, seed=self.seed_generator, dtype=inputs.dtype
        )
        mask = ops.cast(mask < keep, inputs.dtype)
        return inputs * mask / keep

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config
