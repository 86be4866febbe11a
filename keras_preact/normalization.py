"""Per-channel input statistics (RGB, 0-255 scale): the value type, the named
table, `normalize` in `keras.ops` (`keras_preact.image_ops.normalize` is the
same function in TensorFlow ops), the builder's input layer, and what the
pipelines and the export do with their `normalization=` argument."""

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
        raise ValueError(f"Expected {name} to be a sequence of numbers, one per channel. "
                         f"Received: {name}={values!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"Expected finite {name} values. Received: {name}={values!r}")
    return values


@dataclasses.dataclass(frozen=True)
class Statistics:
    """Per-channel mean and standard deviation of pixels on the 0-255 scale.

    Args:
        mean: sequence of per-channel means, kept as a tuple of floats.
        std: sequence of per-channel standard deviations, as many as `mean`.

    Raises:
        ValueError: non-numbers, lengths that differ, a std <= 0, or the 0-1
            scale (a largest mean in (0, 1] or a std below 1).

    Example:

    >>> Statistics((125.3, 123.0, 113.9), (63, 62.1, 66.7)).std
    (63.0, 62.1, 66.7)
    """

    mean: tuple
    std: tuple

    def __post_init__(self):
        mean, std = _floats("mean", self.mean), _floats("std", self.std)
        if len(mean) != len(std) or not mean:
            raise ValueError("Expected mean and std to have one value per channel each. Received "
                             f"{len(mean)} and {len(std)} values: mean={mean!r}, std={std!r}")
        if min(std) <= 0:
            raise ValueError(f"Expected all std values > 0. Received: std={std!r}")
        scaled = [n for n, low in (("mean", 0 < max(mean) <= 1), ("std", min(std) < 1)) if low]
        if scaled:
            raise ValueError(f"Expected statistics on the 0-255 pixel scale; mean={mean!r}, "
                             f"std={std!r} look like the 0-1 scale: multiply "
                             f"{'both' if len(scaled) == 2 else 'the ' + scaled[0]} by 255.")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def isclose(self, other, rtol=1e-5):
        """Whether `other` (anything `resolve_statistics` takes) has these values."""
        other = resolve_statistics(other, channels=len(self.mean))
        return np.allclose(self.mean + self.std, other.mean + other.std, rtol=rtol, atol=0)


STATISTICS = {
    # Published CIFAR-10 training-split values (0.49139968, 0.48215841,
    # 0.44653091) / (0.24703223, 0.24348513, 0.26158784) x 255.
    "cifar10": Statistics((125.307, 122.950, 113.865), (62.993, 62.089, 66.705)),
    # The 50,000 CIFAR-100 training images (a test recomputes them).
    "cifar100": Statistics((129.304, 124.070, 112.434), (68.170, 65.392, 70.418)),
    # ILSVRC-2012, as fb.resnet.torch and torchvision use them.
    "imagenet": Statistics(tuple(v * 255 for v in (0.485, 0.456, 0.406)),
                           tuple(v * 255 for v in (0.229, 0.224, 0.225))),
}


def resolve_statistics(value, channels=3):
    """The `Statistics` that `value` names.

    Args:
        value: a name in `STATISTICS` (`"cifar10"`, `"cifar100"`,
            `"imagenet"`), a `(mean, std)` pair on the 0-255 scale, or a
            `Statistics`.
        channels: int, or None for any. Channels expected. Defaults to `3`.

    Returns:
        A `Statistics` of `channels` values each.

    Raises:
        ValueError: an unknown name, not a pair, the refusals of
            `Statistics`, or another number of channels.

    Example:

    >>> resolve_statistics("cifar100").mean
    (129.304, 124.07, 112.434)
    """
    statistics = value
    if isinstance(value, str):
        if value not in STATISTICS:
            raise ValueError(f"Unknown statistics={value!r}. Expected one of "
                             f"{sorted(STATISTICS)} or a (mean, std) pair.")
        statistics = STATISTICS[value]
    elif not isinstance(value, Statistics):
        try:
            if not isinstance(value, (tuple, list, np.ndarray)):
                raise TypeError(value)
            mean, std = value
        except (TypeError, ValueError):
            raise ValueError(f"Expected statistics to be one of {sorted(STATISTICS)}, a (mean, "
                             f"std) pair or a Statistics. Received: {value!r}") from None
        statistics = Statistics(mean, std)
    if channels is not None and len(statistics.mean) != channels:
        raise ValueError(f"Expected one value per channel ({channels}). Received "
                         f"{len(statistics.mean)} values: {statistics}")
    return statistics


def normalization_constants(statistics, shape, data_format):
    """`(mean, 1 / std)` as float32 numpy arrays that broadcast over images of
    `shape`: the one arithmetic of `normalize` and `image_ops.normalize`."""
    axis = -1 if standardize_data_format(data_format) == "channels_last" else -3
    channels = shape[axis] if len(shape) >= -axis else None
    if channels is None:
        raise ValueError(f"normalize needs a known channel dimension. Received shape {shape}.")
    statistics = resolve_statistics(statistics, channels)
    shape = (channels,) if axis == -1 else (channels, 1, 1)
    mean, inverse_std = np.float32(statistics.mean), np.float32([1 / s for s in statistics.std])
    return np.reshape(mean, shape), np.reshape(inverse_std, shape)


def normalize(images, statistics, data_format=None):
    """Normalizes images per channel, `(images - mean) / std`, in `keras.ops`.

    Args:
        images: 0-255 pixels, any real dtype, `(..., H, W, C)` (or
            `(..., C, H, W)` for `"channels_first"`).
        statistics: anything `resolve_statistics` takes.
        data_format: `"channels_last"`, `"channels_first"` or `None`
            (`keras.config.image_data_format()`). Defaults to `None`.

    Returns:
        A float32 tensor of the same shape, on the current Keras backend.

    Raises:
        ValueError: an unknown `data_format` or channel dimension, or
            `statistics` that `resolve_statistics` refuses.

    Example:

    >>> x = normalize(np.full((1, 32, 32, 3), 128, "uint8"), "cifar100")
    """
    images = keras.ops.convert_to_tensor(images)
    mean, inverse_std = normalization_constants(statistics, tuple(images.shape), data_format)
    return keras.ops.multiply(keras.ops.subtract(keras.ops.cast(images, "float32"), mean),
                              inverse_std)


def input_normalization_layer(statistics, data_format=None):
    """The float32 `keras.layers.Normalization` named `INPUT_NORMALIZATION_LAYER`
    that maps 0-255 pixels to `(pixels - mean) / std` at a model's input.

    Its mean and variance are constants of its config (they survive `.keras`
    save and load) and it adds no weights.

    Args:
        statistics: anything `resolve_statistics` takes, with one value per
            channel of the images.
        data_format: `"channels_last"`, `"channels_first"` or `None`
            (`keras.config.image_data_format()`). Defaults to `None`.
    """
    statistics = resolve_statistics(statistics, channels=None)
    first = standardize_data_format(data_format) == "channels_first"
    return keras.layers.Normalization(
        axis=1 if first else -1, mean=list(statistics.mean),
        variance=[s * s for s in statistics.std], dtype="float32", name=INPUT_NORMALIZATION_LAYER,
    )


def model_statistics(model):
    """The `Statistics` a model normalizes its 0-255 inputs with, or `None`.

    Args:
        model: a `keras.Model`, e.g. built with `PreActResNet(...,
            input_normalization=...)` or loaded from its `.keras` file.

    Returns:
        The `Statistics` of its first `INPUT_NORMALIZATION_LAYER` (in the
        model, then in the models it contains, one level deep), or `None`
        for a model that expects normalized inputs.
    """
    for inner in [m for m in (model, *model.layers) if isinstance(m, keras.Model)]:
        found = {layer.name: layer for layer in inner.layers}.get(INPUT_NORMALIZATION_LAYER)
        if isinstance(found, keras.layers.Normalization):
            mean = keras.ops.convert_to_numpy(found.mean).ravel().tolist()
            variance = keras.ops.convert_to_numpy(found.variance).ravel().tolist()
            return Statistics(mean, [v**0.5 for v in variance])
    return None


def cifar_statistics(num_classes):
    """The CIFAR pipelines' `"auto"`: CIFAR-100's for 100 classes, else CIFAR-10's."""
    return STATISTICS["cifar100" if num_classes == 100 else "cifar10"]


def pipeline_statistics(normalization, default):
    """What `cifar_dataset`, `imagenet_dataset` and `CIFARBatches` do with
    their `normalization=` argument.

    Args:
        normalization: anything `resolve_statistics` takes: output
            `(pixels - mean) / std`, padded with 0 (the mean colour);
            `"auto"`: `default`; `None`: float32 0-255 pixels, padded with 0
            (black); a `keras.Model` that normalizes its own input
            (`model_statistics`): 0-255 pixels padded with its mean colour,
            which it maps to 0 (as fb.resnet.torch pads normalized images
            with zeros); any other `keras.Model`: `default`.
        default: anything `resolve_statistics` takes.

    Returns:
        `(statistics, pad_value)`: the `Statistics`, or `None` for pixels;
        the constant padding, 0.0 or a per-channel tuple on 0-255.

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
    try:
        auto = isinstance(normalization, str) and normalization == "auto"
        return resolve_statistics(default if auto else normalization), 0.0
    except ValueError as e:
        raise ValueError(
            f"Invalid normalization={normalization!r} ({e}). Expected 'auto', None, "
            f"a keras.Model, one of {sorted(STATISTICS)}, a (mean, std) pair or a Statistics."
        ) from None


def model_data_format(model):
    """The image data format of `model`'s layers that have one (None: none or both)."""
    formats = {getattr(layer, "data_format", None) for layer in model.layers} - {None}
    return formats.pop() if len(formats) == 1 else None


def pipeline_data_format(normalization, data_format=None):
    """The image layout a pipeline gives: `data_format` (a ValueError unless
    "channels_last", "channels_first" or None) when given, else the model's
    when `normalization` is a `keras.Model` (the pipeline feeds that model),
    else `keras.config.image_data_format()`."""
    if data_format is None and isinstance(normalization, keras.Model):
        data_format = model_data_format(normalization)
    return standardize_data_format(data_format)


def serving_statistics(model, normalization=None):
    """What `export_saved_model` does with its `normalization=` argument: the
    model's own statistics (`model_statistics`) win.

    Args:
        model: a `keras.Model`.
        normalization: `None` (the model's), or anything `resolve_statistics` takes.

    Returns:
        `(statistics, in_model)`: the `Statistics`, and whether the model
        applies them itself (`True`) or the served graph does (`False`).

    Raises:
        ValueError: malformed statistics, statistics that contradict the
            model's (both are named), or `None` for a model that records
            none (the message gives both ways out).
    """
    recorded = model_statistics(model)
    given = None if normalization is None else resolve_statistics(normalization)
    if recorded is None and given is None:
        names = "|".join(repr(name) for name in STATISTICS)
        raise ValueError(
            f"Model {model.name!r} records no input statistics, so the export cannot "
            "tell how to normalize pixels. Either rebuild it with "
            f"PreActResNet(..., input_normalization={names}|(mean, std)) and copy the "
            f"weights, or pass normalization={names}|(mean, std) (CLI: --normalization "
            f"{'|'.join(STATISTICS)})."
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
