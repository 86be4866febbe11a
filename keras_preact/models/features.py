"""Access to a built network's residual units and per-stage features."""

import re

import keras

from keras_preact.layers.residual_unit import ResidualUnit

_UNIT_NAME = re.compile(r"stage(\d+)_unit(\d+)$")


def residual_units(model):
    """Returns the model's residual unit layers, in forward order.

    Args:
        model: a model built by `keras_preact.PreActResNet` (or a variant).

    Returns:
        A list of `keras_preact.layers.ResidualUnit` layers.
    """
    units = [layer for layer in model.layers if isinstance(layer, ResidualUnit)]
    if not units:
        raise ValueError(
            f"Model {model.name!r} has no ResidualUnit layers. Expected a "
            "model built by keras_preact."
        )
    return units


def feature_extractor(model):
    """Builds a model returning the output of each stage.

    The output of stage `s` is the output of its last residual unit (the
    features a detection or segmentation neck would take).

    Args:
        model: a model built by `keras_preact.PreActResNet` (or a variant).

    Returns:
        A `keras.Model` with the same input, returning a dict
        `{"stage1": ..., "stage2": ..., ...}`.

    Example:

    >>> backbone = keras_preact.PreActResNet50(include_top=False)
    >>> features = keras_preact.feature_extractor(backbone)
    """
    last_unit_of_stage = {}
    for layer in residual_units(model):
        match = _UNIT_NAME.match(layer.name)
        if match:
            last_unit_of_stage[int(match.group(1))] = layer
    outputs = {
        f"stage{stage}": last_unit_of_stage[stage].output
        for stage in sorted(last_unit_of_stage)
    }
    return keras.Model(model.inputs, outputs, name=f"{model.name}_features")
