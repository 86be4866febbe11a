"""Access to a built network's residual units and per-stage features."""

import keras

from keras_preact.layers.residual_unit import ResidualUnit
from keras_preact.models.layouts import split_into_stages


def residual_units(model):
    """Returns the model's residual unit layers, in forward order.

    Args:
        model: a model built by `keras_preact.PreActResNet` (or a variant).

    Returns:
        A list of `keras_preact.layers.ResidualUnit` layers.

    Raises:
        ValueError: the model has no `ResidualUnit` layer.
    """
    units = [layer for layer in model.layers if isinstance(layer, ResidualUnit)]
    if not units:
        raise ValueError(
            f"Model {model.name!r} has no ResidualUnit layers. Expected a "
            "model built by keras_preact."
        )
    return units


def batch_norm_layers(model):
    """Returns every BatchNormalization layer of a model, in forward order.

    The ones inside residual units included, and those of nested models
    (a backbone inside a classifier). Fine-tuning freezes them: a
    `keras.layers.BatchNormalization` with `trainable = False` runs in
    inference mode, with its moving statistics, whatever `training` is.

    Args:
        model: a `keras.Model`, such as one built by
            `keras_preact.PreActResNet` or a model around it.

    Returns:
        A list of `keras.layers.BatchNormalization` layers.

    Example:

    >>> for layer in batch_norm_layers(model):
    ...     layer.trainable = False
    """
    found = []
    for layer in model.layers:
        if isinstance(layer, ResidualUnit):
            found += [bn for bn in (layer.preact_bn, *layer.bns,
                                    layer.projection_bn, layer.post_add_bn)
                      if bn is not None]
        elif isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found += batch_norm_layers(layer)
    return found


def feature_extractor(model):
    """Builds a model returning the output of each stage.

    The output of stage `s` is the output of its last residual unit (the
    features a detection or segmentation neck would take): for a 224x224
    ImageNet-layout input, 56x56 (stage 1) down to 7x7 (stage 4) maps; for
    a 32x32 CIFAR input, 32x32, 16x16 and 8x8. The input is the model's.

    Args:
        model: a model built by `keras_preact.PreActResNet` (or a variant).

    Returns:
        A `keras.Model` with the same input, returning a dict
        `{"stage1": ..., "stage2": ..., ...}` of 4D feature maps.

    Raises:
        ValueError: the model has no `ResidualUnit` layer.

    Example:

    >>> backbone = keras_preact.PreActResNet50(include_top=False)
    >>> features = keras_preact.feature_extractor(backbone)
    """
    # Stages read from the units with the builder's stride rule, not names.
    stages = split_into_stages(residual_units(model))
    outputs = {
        f"stage{index}": units[-1].output
        for index, units in enumerate(stages, start=1)
    }
    return keras.Model(model.inputs, outputs, name=f"{model.name}_features")
