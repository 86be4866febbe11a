"""Per-channel normalization constants and a backend-agnostic `normalize`.

All constants are RGB, per channel, on the 0-255 pixel scale.

- `CIFAR100_MEAN` / `CIFAR100_STD`: measured on the 50,000-image CIFAR-100
  training split (`/work/shared/data/cifar100`, see its README: "train
  per-channel statistics equal the published ones"). Population std.
- `CIFAR10_MEAN` / `CIFAR10_STD`: the commonly published CIFAR-10 training
  split statistics (0.49139968, 0.48215841, 0.44653091) /
  (0.24703223, 0.24348513, 0.26158784) x 255 (population std over all
  training pixels), rounded to 3 decimals.
- `IMAGENET_MEAN` / `IMAGENET_STD`: the usual ILSVRC-2012 statistics
  (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225) x 255, as used by
  fb.resnet.torch, torchvision and the TF Model Garden.

The tf.data pipelines in `keras_preact.data` apply the same arithmetic
with TensorFlow ops; `normalize` here uses `keras.ops`, so it runs on any
Keras backend (no TensorFlow import).
"""

import keras

CIFAR10_MEAN = (125.307, 122.950, 113.865)
CIFAR10_STD = (62.993, 62.089, 66.705)

CIFAR100_MEAN = (129.304, 124.070, 112.434)
CIFAR100_STD = (68.170, 65.392, 70.418)

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)

# Named per-channel statistics: the one table of the library.
STATISTICS = {
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": (CIFAR100_MEAN, CIFAR100_STD),
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
}

# Name of the `keras.layers.Normalization` that a model built with
# `input_normalization=...` starts with; `input_statistics` finds it by name.
INPUT_NORMALIZATION_LAYER = "input_normalization"


def _check_stats(name, value, channels):
    try:
        value = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"Expected {name} to be a sequence of {channels} numbers. "
            f"Received: {name}={value!r}"
        ) from None
    if len(value) != channels:
        raise ValueError(
            f"Expected {name} to have one value per channel ({channels}). "
            f"Received {len(value)} values: {name}={value!r}"
        )
    return value


def normalize(images, mean, std, data_format=None):
    """Normalizes images per channel: `(images - mean) / std`.

    Args:
        images: tensor or array of images on the 0-255 scale, any integer or
            float dtype, shape `(..., H, W, C)` (or `(..., C, H, W)` with
            `data_format="channels_first"`).
        mean: sequence of `C` per-channel means (0-255 scale), e.g.
            `CIFAR100_MEAN`.
        std: sequence of `C` per-channel standard deviations, all > 0.
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.

    Returns:
        A float32 tensor of the same shape, on the current Keras backend.

    Raises:
        ValueError: unknown `data_format`, unknown channel count, or `mean` /
            `std` as `resolve_statistics` refuses them.

    Example:

    >>> import numpy as np
    >>> from keras_preact.preprocessing import normalize, CIFAR100_MEAN, CIFAR100_STD
    >>> x = np.full((1, 32, 32, 3), 128, dtype="uint8")
    >>> y = normalize(x, CIFAR100_MEAN, CIFAR100_STD)
    """
    data_format = data_format or keras.config.image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            f"Unknown data_format={data_format!r}. Expected one of "
            "('channels_last', 'channels_first')."
        )
    images = keras.ops.convert_to_tensor(images)
    axis = -1 if data_format == "channels_last" else -3
    channels = images.shape[axis]
    if channels is None:
        raise ValueError(
            "normalize needs a known channel dimension. Received images "
            f"with shape {images.shape}."
        )
    mean, std = resolve_statistics((mean, std), channels)
    shape = [channels] if axis == -1 else [channels, 1, 1]
    mean_t = keras.ops.reshape(keras.ops.convert_to_tensor(mean, "float32"), shape)
    inv_std = keras.ops.reshape(keras.ops.convert_to_tensor([1 / s for s in std], "float32"), shape)
    return (keras.ops.cast(images, "float32") - mean_t) * inv_std


def resolve_statistics(statistics, channels=3):
    """Returns the `(mean, std)` tuples that `statistics` names.

    Args:
        statistics: a name in `STATISTICS` (`"cifar10"`, `"cifar100"`,
            `"imagenet"`) or a `(mean, std)` pair of per-channel sequences on
            the 0-255 scale.
        channels: int. Number of channels expected. Defaults to `3`.

    Returns:
        `(mean, std)`: two tuples of `channels` floats, every std > 0.

    Raises:
        ValueError: for an unknown name, a malformed pair, a wrong number of
            values, a std <= 0, or statistics on the 0-1 scale (every mean
            and std <= 1, some mean > 0).
    """
    if isinstance(statistics, str):
        if statistics not in STATISTICS:
            raise ValueError(
                f"Unknown statistics={statistics!r}. Expected one of "
                f"{sorted(STATISTICS)} or a (mean, std) pair."
            )
        statistics = STATISTICS[statistics]
    try:
        mean, std = statistics
    except (TypeError, ValueError):
        raise ValueError(
            f"Expected statistics to be one of {sorted(STATISTICS)} or a "
            f"(mean, std) pair. Received: statistics={statistics!r}"
        ) from None
    mean = _check_stats("mean", mean, channels)
    std = _check_stats("std", std, channels)
    if any(s <= 0 for s in std):
        raise ValueError(f"Expected all std values > 0. Received: std={std!r}")
    # Zero means with unit stds (the identity) stay allowed.
    if 0 < max(mean) <= 1 and max(std) <= 1:
        raise ValueError(
            f"Expected statistics on the 0-255 pixel scale; mean={mean!r}, "
            f"std={std!r} look like the 0-1 scale: multiply both by 255."
        )
    return mean, std


def input_normalization_layer(statistics, data_format=None):
    """The float32 `keras.layers.Normalization` a model starts with.

    Its mean and variance are constants in its config, so they survive
    `.keras` save and load, and it adds no weights (parameter counts stay
    the paper's).

    Args:
        statistics: as in `resolve_statistics`.
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.

    Returns:
        A `keras.layers.Normalization` named `INPUT_NORMALIZATION_LAYER`
        that maps 0-255 pixels to `(pixels - mean) / std`.
    """
    mean, std = resolve_statistics(statistics)
    data_format = data_format or keras.config.image_data_format()
    return keras.layers.Normalization(
        axis=-1 if data_format == "channels_last" else 1, mean=list(mean),
        variance=[s * s for s in std], dtype="float32", name=INPUT_NORMALIZATION_LAYER,
    )


def input_statistics(model):
    """The `(mean, std)` a model normalizes its 0-255 inputs with, or `None`.

    Args:
        model: a `keras.Model`, typically built with
            `PreActResNet(..., input_normalization=...)` or loaded from a
            `.keras` file of one, possibly nested in another model.

    Returns:
        `(mean, std)` tuples of floats on the 0-255 scale from the first
        `INPUT_NORMALIZATION_LAYER` found (in the model, then in the models
        it contains, one level deep); `None` when the model expects
        normalized inputs.
    """
    for layer in [model, *model.layers]:
        if not isinstance(layer, keras.Model):
            continue
        found = {sub.name: sub for sub in layer.layers}.get(INPUT_NORMALIZATION_LAYER)
        if isinstance(found, keras.layers.Normalization):
            mean = [float(v) for v in keras.ops.convert_to_numpy(found.mean).ravel()]
            variance = keras.ops.convert_to_numpy(found.variance).ravel()
            return tuple(mean), tuple(float(v) ** 0.5 for v in variance)
    return None
