"""Spatial padding with any constant, for max pooling padded as Torch pads."""

import keras
from keras import ops

from keras_preact.layers.options import standardize_data_format
from keras_preact.validation import check_int
from keras_preact.validation import check_real


@keras.saving.register_keras_serializable(package="keras_preact")
class ConstantPadding2D(keras.layers.Layer):
    """Pads height and width by `padding` on every side with `value`.

    `keras.layers.ZeroPadding2D` with a fill value of choice. Torch's
    `MaxPool2d(3, 2, padding=1)` pads with `-inf`, so a pooled border never
    takes the padding; `ConstantPadding2D(1, -inf)` followed by a `"valid"`
    `keras.layers.MaxPooling2D` is that pooling on any input, negative
    values included (zero padding is only equal on inputs >= 0).

    Args:
        padding: int >= 0. Rows and columns added on each side.
        value: float. The fill value. Defaults to `0.0`.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Raises:
        ValueError: `padding` is not an int >= 0, `value` not a number, or
            `data_format` none of its choices.

    Example:

    >>> pad = ConstantPadding2D(1, float("-inf"))
    >>> pad(keras.ops.zeros((1, 4, 4, 3))).shape
    (1, 6, 6, 3)
    """

    def __init__(self, padding, value=0.0, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = check_int("padding", padding, low=0)
        self.value = check_real("value", value)
        self.data_format = standardize_data_format(data_format)

    def call(self, inputs):
        p = (self.padding, self.padding)
        spatial = [p, p, (0, 0)] if self.data_format == "channels_last" else [
            (0, 0), p, p
        ]
        return ops.pad(inputs, [(0, 0), *spatial], constant_values=self.value)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        axes = (1, 2) if self.data_format == "channels_last" else (2, 3)
        for axis in axes:
            if shape[axis] is not None:
                shape[axis] += 2 * self.padding
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding,
                "value": self.value, "data_format": self.data_format}
