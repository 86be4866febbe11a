"""Per-channel input statistics: the value type, the named table, `normalize`,
the builder's input layer, and what the pipelines and the export do with their
`normalization=` argument.

Statistics are RGB, per channel, on the 0-255 pixel scale. `normalize` uses
`keras.ops` (any backend, no TensorFlow); `keras_preact.image_ops.normalize`
is the same function in TensorFlow ops, for tf.data and serving graphs.
"""

import dataclasses
import math

import keras
import numpy as np

from keras_preact.layers.options import standardize_data_format

# Name of the `keras.layers.Normalization` a model built with
# `input_normalization=...` starts with; `model_statistics` finds it by name.
INPUT_NORMALIZATION_LAYER = "input_normalization"


def _floats(name, values):
    try:
        values = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(
            f"Expected {name} to be a sequence of numbers, one per channel. "
            f"Received: {name}={values!r}"
        ) from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"Expected finite {name} values. Received: {name}={values!r}")
    return values


@dataclasses.dataclass(frozen=True)
class Statistics:
    """Per-channel mean and standard deviation of pixels on the 0-255 scale.

    Validated when made: one value per channel in each, every std > 0, and
    not on the 0-1 scale (every mean and std <= 1 with some mean > 0; zero
    means with unit stds, the identity, stay allowed).

    Args:
        mean: sequence of per-channel means, stored as a tuple of floats.
        std: sequence of per-channel standard deviations, as many as `mean`.

    Raises:
        ValueError: non-numbers, lengths that differ, a std <= 0, or
            statistics on the 0-1 scale (the message says to multiply by 255).

    Example:

    >>> Statistics((125.3, 123.0, 113.9), (63.0, 62.1, 66.7)).std
    (63.0, 62.1, 66.7)
    """

    mean: tuple
    std: tuple

    def __post_init__(self):
        mean, std = _floats("mean", self.mean), _floats("std", self.std)
        if len(mean) != len(std) or not mean:
            raise ValueError(
                "Expected mean and std to have one value per channel each. Received "
                f"{len(mean)} and {len(std)} values: mean={mean!r}, std={std!r}"
            )
        if min(std) <= 0:
            raise ValueError(f"Expected all std values > 0. Received: std={std!r}")
        if 0 < max(mean) <= 1 and max(std) <= 1:
            raise ValueError(
                f"Expected statistics on the 0-255 pixel scale; mean={mean!r}, "
                f"std={std!r} look like the 0-1 scale: multiply both by 255."
            )
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def isclose(self, other, rtol=1e-5):
        """Whether `other` (anything `resolve_statistics` takes) has these values."""
        other = resolve_statistics(other, channels=len(self.mean))
        return np.allclose(self.mean + self.std, other.mean + other.std, rtol=rtol, atol=0)


STATISTICS = {
    # The published CIFAR-10 training-split values (0.49139968, 0.48215841,
    # 0.44653091) / (0.24703223, 0.24348513, 0.26158784) x 255, population std.
    "cifar10": Statistics((125.307, 122.950, 113.865), (62.993, 62.089, 66.705)),
    # Measured on the 50,000 CIFAR-100 training images (population std); a
    # test recomputes them from the data.
    "cifar100": Statistics((129.304, 124.070, 112.434), (68.170, 65.392, 70.418)),
    # The usual ILSVRC-2012 values, as fb.resnet.torch and torchvision use them.
    "imagenet": Statistics(
        tuple(v * 255 for v in (0.485, 0.456, 0.406)), tuple(v * 255 for v in (0.229, 0.224, 0.225))
    ),
}


def resolve_statistics(value, channels=3):
    """The `Statistics` that `value` names.

    Args:
        value: a name in `STATISTICS` (`"cifar10"`, `"cifar100"`,
            `"imagenet"`), a `(mean, std)` pair of per-channel sequences on
            the 0-255 scale, or a `Statistics`.
        channels: int. Number of channels expected. Defaults to `3`.

    Returns:
        A `Statistics` with `channels` values in `mean` and in `std`.

    Raises:
        ValueError: an unknown name, something that is not a pair, the
            refusals of `Statistics`, or another number of channels.

    Example:

    >>> resolve_statistics("cifar100").mean
    (129.304, 124.07, 112.434)
    """
    statistics = value
    if isinstance(value, str):
        if value not in STATISTICS:
            raise ValueError(
                f"Unknown statistics={value!r}. Expected one of {sorted(STATISTICS)} "
                "or a (mean, std) pair."
            )
        statistics = STATISTICS[value]
    elif not isinstance(value, Statistics):
        try:
            mean, std = value
        except (TypeError, ValueError):
            raise ValueError(
                f"Expected statistics to be one of {sorted(STATISTICS)}, a (mean, std) pair "
                f"or a Statistics. Received: {value!r}"
            ) from None
        statistics = Statistics(mean, std)
    if len(statistics.mean) != channels:
        raise ValueError(
            f"Expected one value per channel ({channels}). Received {len(statistics.mean)} "
            f"values: mean={statistics.mean!r}, std={statistics.std!r}"
        )
    return statistics


def normalization_constants(statistics, shape, data_format):
    """The float32 mean and 1 / std of `statistics`, shaped for images of `shape`.

    The one arithmetic of `normalize` and `keras_preact.image_ops.normalize`.

    Returns:
        `(mean, inverse_std)` numpy arrays of shape `(C,)` (channels last) or
        `(C, 1, 1)` (channels first).
    """
    axis = -1 if standardize_data_format(data_format) == "channels_last" else -3
    channels = shape[axis] if len(shape) >= -axis else None
    if channels is None:
        raise ValueError(
            f"normalize needs a known channel dimension. Received images of shape {shape}."
        )
    statistics = resolve_statistics(statistics, channels)
    shape = (channels,) if axis == -1 else (channels, 1, 1)
    mean = np.reshape(np.float32(statistics.mean), shape)
    return mean, np.reshape(np.float32([1 / s for s in statistics.std]), shape)


def normalize(images, statistics, data_format=None):
    """Normalizes images per channel: `(images - mean) / std`, in `keras.ops`.

    Args:
        images: tensor or array of 0-255 pixels, any real dtype, shape
            `(..., H, W, C)` (or `(..., C, H, W)` for `"channels_first"`).
        statistics: anything `resolve_statistics` takes.
        data_format: `"channels_last"`, `"channels_first"` or `None`
            (`keras.config.image_data_format()`). Defaults to `None`.

    Returns:
        A float32 tensor of the same shape, on the current Keras backend.

    Raises:
        ValueError: an unknown `data_format`, an unknown channel dimension, or
            `statistics` as `resolve_statistics` refuses them.

    Example:

    >>> x = np.full((1, 32, 32, 3), 128, dtype="uint8")
    >>> y = normalize(x, "cifar100")
    """
    images = keras.ops.convert_to_tensor(images)
    mean, inverse_std = normalization_constants(statistics, tuple(images.shape), data_format)
    return keras.ops.multiply(
        keras.ops.subtract(keras.ops.cast(images, "float32"), mean), inverse_std
    )


def input_normalization_layer(statistics, data_format=None):
    """The float32 `keras.layers.Normalization` a model starts with.

    Its mean and variance are constants in its config, so they survive
    `.keras` save and load, and it adds no weights (parameter counts stay
    the paper's).

    Args:
        statistics: anything `resolve_statistics` takes.
        data_format: `"channels_last"`, `"channels_first"` or `None`
            (`keras.config.image_data_format()`). Defaults to `None`.

    Returns:
        A `keras.layers.Normalization` named `INPUT_NORMALIZATION_LAYER`
        that maps 0-255 pixels to `(pixels - mean) / std`.
    """
    statistics = resolve_statistics(statistics)
    first = standardize_data_format(data_format) == "channels_first"
    return keras.layers.Normalization(
        axis=1 if first else -1, mean=list(statistics.mean),
        variance=[s * s for s in statistics.std], dtype="float32", name=INPUT_NORMALIZATION_LAYER,
    )


def model_statistics(model):
    """The `Statistics` a model normalizes its 0-255 inputs with, or `None`.

    Args:
        model: a `keras.Model`, typically built with
            `PreActResNet(..., input_normalization=...)` or loaded from a
            `.keras` file of one, possibly nested in another model.

    Returns:
        The `Statistics` of the first `INPUT_NORMALIZATION_LAYER` found (in
        the model, then in the models it contains, one level deep); `None`
        when the model expects normalized inputs.
    """
    for layer in [model, *model.layers]:
        if not isinstance(layer, keras.Model):
            continue
        found = {sub.name: sub for sub in layer.layers}.get(INPUT_NORMALIZATION_LAYER)
        if isinstance(found, keras.layers.Normalization):
            mean = keras.ops.convert_to_numpy(found.mean).ravel()
            variance = keras.ops.convert_to_numpy(found.variance).ravel()
            return Statistics(tuple(float(v) for v in mean), tuple(float(v) ** 0.5 for v in variance))
    return None


def cifar_statistics(num_classes):
    """The CIFAR pipelines' `normalization="auto"`: CIFAR-100's for 100 classes, else CIFAR-10's."""
    return STATISTICS["cifar100" if num_classes == 100 else "cifar10"]


def pipeline_statistics(normalization, default):
    """What an input pipeline does with its `normalization=` argument.

    One meaning in `cifar_dataset`, `imagenet_dataset` and `CIFARBatches`.

    Args:
        normalization: one of
            - a name in `STATISTICS`, a `(mean, std)` pair or a `Statistics`:
              output `(pixels - mean) / std`, padded with 0 (the mean colour);
            - `"auto"`: `default`;
            - `None`: float32 pixels on 0-255, padded with 0 (black);
            - a `keras.Model`: if it normalizes its own input
              (`model_statistics(model)` is not None), float32 0-255 pixels
              padded with the model's mean colour, which the model maps to 0,
              as in fb.resnet.torch (normalize, then zero-pad); otherwise
              `default`.
        default: the statistics of `"auto"`, anything `resolve_statistics` takes.

    Returns:
        `(statistics, pad_value)`: the `Statistics` to normalize with, or
        `None` for pixels; the constant padding, 0.0 or a per-channel tuple
        of 0-255 values.

    Raises:
        ValueError: an unknown name or malformed statistics.
    """
    if isinstance(normalization, keras.Model):
        own = model_statistics(normalization)
        if own is not None:
            return None, own.mean
        normalization = default
    if normalization is None:
        return None, 0.0
    if isinstance(normalization, str) and normalization == "auto":
        normalization = default
    try:
        return resolve_statistics(normalization), 0.0
    except ValueError as e:
        raise ValueError(
            f"Invalid normalization={normalization!r} ({e}). Expected 'auto', None, "
            f"a keras.Model, one of {sorted(STATISTICS)}, a (mean, std) pair or a Statistics."
        ) from None


def serving_statistics(model, normalization=None):
    """What the SavedModel export does with its `normalization=` argument.

    The model's own statistics (`model_statistics`, recorded by
    `PreActResNet(..., input_normalization=...)`) win: the model then
    normalizes in its graph and the export adds nothing.

    Args:
        model: a `keras.Model`.
        normalization: `None` (read the model), or anything
            `resolve_statistics` takes.

    Returns:
        `(statistics, in_model)`: the `Statistics`, and whether the model
        applies them itself (`True`) or the served graph does (`False`).

    Raises:
        ValueError: `normalization` is malformed, contradicts the model's
            statistics (both are named), or is `None` for a model that
            records none (the message gives both ways out).
    """
    recorded = model_statistics(model)
    given = None if normalization is None else resolve_statistics(normalization)
    if recorded is None and given is None:
        raise ValueError(
            f"Model {model.name!r} records no input statistics, so the export cannot "
            "tell how to normalize pixels. Either rebuild it with "
            "PreActResNet(..., input_normalization='cifar100'|'imagenet'|(mean, std)) and "
            "copy the weights, or pass normalization='cifar10'|'cifar100'|'imagenet'|"
            "(mean, std) (CLI: --normalization cifar10|cifar100|imagenet)."
        )
    if recorded is not None and given is not None and not recorded.isclose(given):
        def show(values):
            return tuple(round(v, 3) for v in values)

        raise ValueError(
            f"normalization={normalization!r} gives mean={show(given.mean)}, "
            f"std={show(given.std)}, but model {model.name!r} normalizes its inputs with "
            f"mean={show(recorded.mean)}, std={show(recorded.std)}. Pass normalization=None "
            "(CLI: leave out --normalization) to serve the model's own."
        )
    return (recorded, True) if recorded is not None else (given, False)
