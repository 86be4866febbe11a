"""What a classifier outputs, probabilities or logits, read from its graph:
losses, metrics and the served signature must know whether a softmax was
applied (a wrong guess from `model.layers[-1]`, wrong for a nested model or
a `Softmax` layer after the classifier, applies it twice)."""

import keras

from keras_preact import keras_compat

PROBABILITIES = "probabilities"
LOGITS = "logits"

# Layers that do not change what their input is (a probability stays one).
_PASS_THROUGH = (
    keras.layers.Dropout,
    keras.layers.Identity,
    keras.layers.ActivityRegularization,
)


def classifier_output(model):
    """Whether `model` outputs probabilities (softmax applied) or logits.

    Follows the single output tensor of `model` back to the operation that
    produced it, through nested functional and `Sequential` models and
    layers that pass their input on unchanged in value (`Dropout`,
    `Identity`, a linear `Activation`):

    - a `Softmax` layer, a softmax `Activation` or a layer whose
      `activation` is softmax (`Dense(..., activation="softmax")`), or
      `keras.ops.softmax` in a functional graph: `"probabilities"`;
    - a layer whose `activation` is linear (`Dense(..., activation=None)`,
      keras_preact's `classifier_activation=None`): `"logits"`.

    Args:
        model: a functional or `Sequential` `keras.Model` with one output.

    Returns:
        str: `"probabilities"` or `"logits"`.

    Raises:
        ValueError: when the model is subclassed (no graph to read), has
            several outputs, or its output comes from anything else (a
            sigmoid, a custom layer, a `Lambda`): pass `from_logits`
            explicitly then.

    Example:

    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> classifier_output(model)
    'logits'
    """
    operation = _output_operation(model)
    while True:
        if isinstance(operation, keras.Model):
            operation = _output_operation(operation)
        elif isinstance(operation, _PASS_THROUGH) or _is_linear_activation(
            operation
        ):
            operation = _input_operation(operation, model)
        else:
            break
    kind = _kind_of(operation)
    if kind is None:
        raise ValueError(
            f"Cannot tell whether model {model.name!r} outputs probabilities "
            f"or logits: its output comes from {_describe(operation)}. Pass "
            "`from_logits=True` (logits) or `from_logits=False` "
            "(probabilities) explicitly."
        )
    return kind


def outputs_logits(model, from_logits=None):
    """`from_logits` if given, else whether `classifier_output` is logits.

    Args:
        model: a `keras.Model`.
        from_logits: bool or `None`. An explicit answer wins.

    Returns:
        bool.

    Raises:
        ValueError: `from_logits` is not a bool or `None`, or it is `None`
            and `classifier_output` cannot tell.
    """
    if from_logits is not None:
        if not isinstance(from_logits, bool):
            raise ValueError(
                "Expected from_logits to be True, False or None. "
                f"Received: from_logits={from_logits!r}"
            )
        return from_logits
    return classifier_output(model) == LOGITS


def _output_operation(model):
    if isinstance(model, keras.Sequential) and model.layers:
        return model.layers[-1]
    outputs = getattr(model, "outputs", None)
    if not outputs:
        raise ValueError(
            f"Cannot read the outputs of model {model.name!r} (a subclassed "
            "or unbuilt model has no graph). Pass `from_logits` explicitly."
        )
    if len(outputs) != 1:
        raise ValueError(
            f"Expected a model with one output. Model {model.name!r} has "
            f"{len(outputs)}. Pass `from_logits` explicitly."
        )
    return keras_compat.producer(outputs[0])


def _input_operation(layer, model):
    inputs = keras_compat.call_inputs(layer)
    if len(inputs) != 1:
        raise ValueError(
            f"Cannot follow the output of model {model.name!r} back through "
            f"layer {layer.name!r}. Pass `from_logits` explicitly."
        )
    return keras_compat.producer(inputs[0])


def _activation_name(activation):
    if activation is None:
        return "linear"
    return getattr(activation, "__name__", str(activation))


def _is_linear_activation(operation):
    """`Activation("linear")` / `Activation(None)`: the input, unchanged."""
    return isinstance(operation, keras.layers.Activation) and (
        _activation_name(operation.activation) == "linear"
    )


def _kind_of(operation):
    if isinstance(operation, keras.layers.Softmax):
        return PROBABILITIES
    if type(operation).__name__ == "Softmax":  # keras.ops.softmax in a graph
        return PROBABILITIES
    if not hasattr(operation, "activation"):
        return None
    name = _activation_name(operation.activation)
    if name == "softmax":
        return PROBABILITIES
    if name == "linear":
        return LOGITS
    return None


def _describe(operation):
    activation = getattr(operation, "activation", None)
    text = f"{type(operation).__name__} {getattr(operation, 'name', '')!r}"
    if activation is not None:
        text += f" with activation {_activation_name(activation)!r}"
    return text
