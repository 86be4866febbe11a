"""keras_preact.training.compile: `compile_for_paper` and its metrics (PaperSGD
itself: tests/training/test_optimizers.py)."""

import keras
import numpy as np
import pytest

from keras_preact.training import accuracy_metrics
from keras_preact.training import compile_for_paper


def test_training_steps_lower_the_loss():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8, 8, 3)).astype("float32")
    y = (x.mean(axis=(1, 2)) @ rng.normal(size=(3, 10))).argmax(-1)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(8, 3, padding="same", use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    compile_for_paper(model, 0.1)
    first = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(first) == {"loss", "top1", "top5"}
    for _ in range(15):
        model.train_on_batch(x, y)
    last = model.evaluate(x, y, verbose=0, return_dict=True)
    assert last["loss"] < 0.9 * first["loss"]
    assert last["top5"] >= last["top1"]


def test_compile_for_paper_options():
    logits_model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(10)])
    compile_for_paper(logits_model, one_hot=True, label_smoothing=0.1)
    assert logits_model.loss.get_config()["from_logits"] is True
    assert logits_model.loss.get_config()["label_smoothing"] == pytest.approx(0.1)
    softmax_model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(10, activation="softmax")]
    )
    compile_for_paper(softmax_model)
    assert softmax_model.loss.get_config()["from_logits"] is False
    assert [m.name for m in accuracy_metrics(one_hot=True)] == ["top1", "top5"]
    with pytest.raises(ValueError, match="label_smoothing"):
        compile_for_paper(softmax_model, label_smoothing=0.1)


def _out_of_range_error():
    """What a label out of range raises from a compiled step on this backend."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.errors.JaxRuntimeError  # Its message holds the ValueError's.
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.errors.InvalidArgumentError
    return ValueError


# torch.compile takes about 20 s per model on CPU: one slow test below covers it.
JIT_COMPILE = [False] if keras.backend.backend() == "torch" else [False, True]


@pytest.mark.parametrize("jit_compile", JIT_COMPILE,
                         ids=["eager-or-graph", "jit"][:len(JIT_COMPILE)])
@pytest.mark.parametrize("labels, bad", [
    ([0, 1, 2, 3, 0, 1, 2, 3], 3),
    ([0, 1, 2, 0, -1, 0, 1, 2], -1),  # in the second step
    ([[0], [1], [2], [0], [1], [2], [0], [7]], 7),  # (N, 1) labels
], ids=["above", "negative", "column"])
def test_fit_with_arrays_refuses_labels_out_of_range(labels, bad, jit_compile):
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    # Two steps per execution where the backend runs them (not torch).
    steps = 1 if keras.backend.backend() == "torch" else 2

    def run(method):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        compile_for_paper(model, jit_compile=jit_compile, steps_per_execution=steps)
        return getattr(model, method)(x, np.array(labels), batch_size=4, verbose=0)

    if keras.backend.backend() == "tensorflow" and jit_compile:
        # XLA has no op that raises; its cross-entropy is NaN for such a label.
        assert np.isnan(run("fit").history["loss"][0])
        return
    message = rf"Label {bad} is outside \[0, 3\) for a model with 3 classes\."
    for method in ("fit", "evaluate"):
        with pytest.raises(_out_of_range_error(), match=message):
            run(method)


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() != "torch", reason="torch.compile is torch's")
def test_torch_compile_keeps_the_check():
    x = np.random.default_rng(0).normal(size=(4, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    compile_for_paper(model, jit_compile=True)
    assert np.isfinite(model.fit(x, np.array([0, 1, 2, 1]), verbose=0).history["loss"][0])
    with pytest.raises(ValueError, match=r"Label 3 is outside \[0, 3\) for a model with 3"):
        model.fit(x, np.array([0, 1, 2, 3]), verbose=0)


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() != "torch", reason="torch.compile is torch's")
def test_torch_compile_trains_like_eager():
    """`jit_compile=True` on torch (Keras compiles the train step with
    `torch.compile`) takes the same steps as eager: losses, weights and BN
    statistics, through bottleneck units, projection shortcuts and drop path."""
    import keras_preact

    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 8, 8, 3)).astype("float32")
    y = np.array([0, 1, 2, 1, 0, 2, 2, 1])
    results = []
    for jit_compile in (False, True):
        keras.utils.set_random_seed(0)
        model = keras_preact.PreActResNet(11, layout="cifar", input_shape=(8, 8, 3),
                                          classes=3, drop_path_rate=0.2)
        compile_for_paper(model, 0.1, jit_compile=jit_compile)
        history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        assert model.jit_compile is jit_compile
        results.append((history.history["loss"],
                        [keras.ops.convert_to_numpy(w) for w in model.weights]))
    (eager_loss, eager_weights), (compiled_loss, compiled_weights) = results
    np.testing.assert_allclose(compiled_loss, eager_loss, rtol=1e-4)
    assert len(compiled_weights) == len(eager_weights)
    for compiled, eager in zip(compiled_weights, eager_weights):
        np.testing.assert_allclose(compiled, eager, rtol=1e-4, atol=1e-5)
