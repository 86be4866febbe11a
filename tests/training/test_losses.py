"""keras_preact.training.losses: `CheckedSparseCategoricalCrossentropy` is Keras'
sparse cross-entropy (value, gradient, configuration, `.keras` round trip) that
refuses labels out of range (in fit: tests/training/test_compile.py)."""

import keras
import numpy as np
import pytest

from keras_preact.training import CheckedSparseCategoricalCrossentropy
from keras_preact.training import compile_for_paper


# torch.compile takes about 20 s per model on CPU (test_compile.py runs it once).
JIT_COMPILE = [False] if keras.backend.backend() == "torch" else [False, True]


def _model(activation=None, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation=activation)])


def _data():
    rng = np.random.default_rng(1)
    return rng.normal(size=(8, 4)).astype("float32"), np.array([0, 4, 1, 3, 2, 2, 4, 0])


@pytest.mark.parametrize("kwargs, labels", [
    (dict(from_logits=True), lambda y: y),
    (dict(from_logits=False), lambda y: y),
    (dict(from_logits=True), lambda y: y[:, None].astype("float32")),
    (dict(from_logits=True, ignore_class=-1), lambda y: np.where(y == 2, -1, y)),
], ids=["logits", "probabilities", "float-column", "ignore_class"])
@pytest.mark.parametrize("jit_compile", JIT_COMPILE,
                         ids=["eager-or-graph", "jit"][:len(JIT_COMPILE)])
def test_equals_keras_sparse_crossentropy_on_valid_labels(kwargs, labels, jit_compile):
    x, y = _data()
    y = labels(y)
    activation = None if kwargs["from_logits"] else "softmax"
    ours, theirs = CheckedSparseCategoricalCrossentropy(**kwargs), \
        keras.losses.SparseCategoricalCrossentropy(**kwargs)
    assert ours.get_config() == theirs.get_config()
    logits = _model(activation)(x)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours(y, logits)),
                               keras.ops.convert_to_numpy(theirs(y, logits)), rtol=0, atol=0)
    # Two training steps: the same gradients give the same weights.
    weights = []
    for loss in (ours, theirs):
        model = _model(activation)
        model.compile(keras.optimizers.SGD(0.5), loss, jit_compile=jit_compile)
        for _ in range(2):
            model.train_on_batch(x, y)
        weights.append([keras.ops.convert_to_numpy(w) for w in model.weights])
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_keras_round_trip(tmp_path):
    x, y = _data()
    model = compile_for_paper(_model())
    model.fit(x, y, batch_size=4, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.loss) is CheckedSparseCategoricalCrossentropy
    assert loaded.loss.get_config() == model.loss.get_config()
    np.testing.assert_allclose(loaded.evaluate(x, y, verbose=0)[0],
                               model.evaluate(x, y, verbose=0)[0], rtol=1e-6)
    with pytest.raises(Exception, match=r"Label 5 is outside \[0, 5\) for a model with 5"):
        loaded.evaluate(x, np.where(y == 4, 5, y), verbose=0)


def test_ignore_class_is_a_valid_label_and_others_are_not():
    x, y = _data()
    logits = _model()(x)
    loss = CheckedSparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)
    assert np.isfinite(keras.ops.convert_to_numpy(loss(np.where(y == 2, -1, y), logits)))
    with pytest.raises(Exception, match=r"Label -2 is outside \[0, 5\) for a model with 5"):
        loss(np.where(y == 2, -2, y), logits)
