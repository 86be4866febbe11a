"""The `normalization=` argument, one meaning in `cifar_dataset`,
`imagenet_dataset` and `CIFARBatches` (needs no TensorFlow)."""

import keras

from keras_preact import preprocessing


def resolve_normalization(normalization, default):
    """The statistics a pipeline normalizes with, and its padding value.

    Args:
        normalization: one of
            - a name in `preprocessing.STATISTICS` (`"cifar10"`, `"cifar100"`,
              `"imagenet"`) or a `(mean, std)` pair on the 0-255 scale:
              output `(pixels - mean) / std`, padded with 0 (the mean colour);
            - `"auto"`: `default`;
            - `None`: float32 pixels on 0-255, padded with 0 (black);
            - a `keras.Model`: if it normalizes its own input
              (`preprocessing.input_statistics(model)` is not None, e.g. built
              with `input_normalization=...`), float32 pixels on 0-255 padded
              with the model's mean colour, which the model maps to 0, as in
              fb.resnet.torch (normalize, then zero-pad); otherwise `default`.
        default: the statistics of `"auto"`: a name or a `(mean, std)` pair.

    Returns:
        `(statistics, pad_value)`: the `(mean, std)` tuples to normalize with,
        or `None` for pixels; the constant padding, 0.0 or a per-channel
        tuple of 0-255 values.

    Raises:
        ValueError: for an unknown name or a malformed `(mean, std)` pair.
    """
    if isinstance(normalization, keras.Model):
        own = preprocessing.input_statistics(normalization)
        if own is not None:
            return None, own[0]
        normalization = default
    if normalization is None:
        return None, 0.0
    if isinstance(normalization, str) and normalization == "auto":
        normalization = default
    try:
        return preprocessing.resolve_statistics(normalization), 0.0
    except ValueError as e:
        raise ValueError(
            f"Invalid normalization={normalization!r} ({e}). Expected 'auto', None, "
            f"a keras.Model, one of {sorted(preprocessing.STATISTICS)} or a (mean, std) pair."
        ) from None
