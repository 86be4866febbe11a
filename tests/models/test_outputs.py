"""keras_preact.models.outputs: whether a model outputs probabilities or logits is
read, never guessed."""

import keras
import numpy as np
import pytest

import keras_preact
from keras_preact.models.outputs import classifier_output
from keras_preact.models.outputs import outputs_logits
from keras_preact.training import compile_for_paper


def _preact(activation="softmax"):
    return keras_preact.PreActResNet(
        8, classes=5, input_shape=(8, 8, 3), classifier_activation=activation
    )


def _behind_preprocessing(activation="softmax"):
    inputs = keras.Input((8, 8, 3))
    outputs = _preact(activation)(keras.layers.Rescaling(1 / 255)(inputs))
    return keras.Model(inputs, outputs)


def _in_sequential(activation="softmax"):
    return keras.Sequential([keras.Input((8, 8, 3)), _preact(activation)])


def _logits_then_softmax_layer():
    return keras.Sequential(
        [keras.Input((8, 8, 3)), _preact(None), keras.layers.Softmax()]
    )


def _logits_then_ops_softmax():
    inputs = keras.Input((8, 8, 3))
    return keras.Model(inputs, keras.ops.softmax(_preact(None)(inputs)))


def _softmax_then_dropout():
    return keras.Sequential(
        [keras.Input((8, 8, 3)), _preact(), keras.layers.Dropout(0.1)]
    )


def _softmax_then_linear_activation():
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Activation("linear")(_preact()(inputs))
    return keras.Model(inputs, keras.layers.Activation(None)(outputs))


MODELS = {
    "preact_softmax": (_preact, "probabilities"),
    "preact_logits": (lambda: _preact(None), "logits"),
    "preprocessing_in_front": (_behind_preprocessing, "probabilities"),
    "preprocessing_in_front_logits": (
        lambda: _behind_preprocessing(None),
        "logits",
    ),
    "sequential_wrapper": (_in_sequential, "probabilities"),
    "softmax_layer_after_logits": (_logits_then_softmax_layer, "probabilities"),
    "ops_softmax_after_logits": (_logits_then_ops_softmax, "probabilities"),
    "dropout_after_softmax": (_softmax_then_dropout, "probabilities"),
    "linear_activation_after_softmax": (
        _softmax_then_linear_activation,
        "probabilities",
    ),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_classifier_output_is_read_from_the_graph(name):
    build, expected = MODELS[name]
    assert classifier_output(build()) == expected


@pytest.mark.parametrize(
    "name",
    [
        "preprocessing_in_front",
        "sequential_wrapper",
        "preact_logits",
        "linear_activation_after_softmax",
    ],
)
def test_compiled_loss_is_the_cross_entropy_of_the_outputs(name):
    """The regression: a softmax applied twice gave 1.623 instead of 1.810."""
    model = MODELS[name][0]()
    compile_for_paper(model)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (6, 8, 8, 3)).astype("float32")
    y = np.arange(6) % 5
    loss = model.evaluate(x, y, verbose=0)[0]
    outputs = keras.ops.convert_to_numpy(model(x, training=False))
    if MODELS[name][1] == "logits":
        outputs = np.exp(outputs) / np.exp(outputs).sum(-1, keepdims=True)
    expected = -np.log(outputs[np.arange(6), y]).mean()
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def _sigmoid_head():
    return keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="sigmoid")]
    )


def _relu_head():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.ReLU()])


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3)

    def call(self, x):
        return self.dense(x)


def _two_outputs():
    inputs = keras.Input((4,))
    return keras.Model(inputs, [keras.layers.Dense(3)(inputs), keras.layers.Dense(2)(inputs)])


@pytest.mark.parametrize(
    "build, message",
    [
        (_sigmoid_head, "activation 'sigmoid'"),
        (_relu_head, "ReLU"),
        (_Subclassed, "subclassed"),
        (_two_outputs, "one output"),
    ],
)
def test_unreadable_outputs_are_refused(build, message):
    with pytest.raises(ValueError, match=message):
        compile_for_paper(build())


def test_explicit_from_logits_wins_and_is_validated():
    model = _sigmoid_head()
    assert outputs_logits(model, from_logits=False) is False
    compile_for_paper(model, from_logits=False)
    with pytest.raises(ValueError, match="from_logits='yes'"):
        outputs_logits(model, from_logits="yes")
