"""keras_preact.diagnostics.signal: one value per unit, agreement with
independent gradients, no side effects, and a measured property (the
callback: tests/diagnostics/test_callback.py; the figures:
tests/diagnostics/test_plotting.py)."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_preact
from keras_preact.diagnostics import SignalProbe
from keras_preact.diagnostics import SignalPropagation
from keras_preact.diagnostics import signal_propagation

from _checks import signal_batch
from _checks import signal_model


BACKEND = keras.backend.backend()


def mean_ce(logits, y):
    return ops.mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))


def tail_loss_and_grad(tail, h, y):
    """Loss and d loss / d h of the tail sub-model, with the backend's own
    autodiff, WITHOUT the probe's delta trick or StatelessScope."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        h = tf.convert_to_tensor(h)
        with tf.GradientTape() as tape:
            tape.watch(h)
            loss = mean_ce(tail(h, training=True), y)
        return float(loss), np.asarray(tape.gradient(loss, h))
    if BACKEND == "jax":
        import jax

        tv = [v.value for v in tail.trainable_variables]
        ntv = [v.value for v in tail.non_trainable_variables]

        def f(h_):
            out, _ = tail.stateless_call(tv, ntv, h_, training=True)
            return mean_ce(out, y)

        loss, grad = jax.value_and_grad(f)(jax.numpy.asarray(h))
        return float(loss), np.asarray(grad)
    import torch

    h = torch.tensor(np.asarray(h), requires_grad=True)
    loss = mean_ce(tail(h, training=True), ops.convert_to_tensor(y))
    (grad,) = torch.autograd.grad(loss, h)
    return float(loss.detach()), grad.numpy()


def tail_loss(tail, h, y):
    return float(ops.convert_to_numpy(mean_ce(tail(h, training=True), y)))


def snapshot(model):
    return [np.array(ops.convert_to_numpy(v)) for v in model.weights]


def test_one_finite_value_per_unit():
    model = signal_model(20)
    x, y = signal_batch()
    s = signal_propagation(model, x, y)
    units = keras_preact.residual_units(model)
    assert len(units) == 9  # 6n+2 = 20 -> 3 units in each of 3 stages
    assert s.unit_names == tuple(u.name for u in units)
    assert s.forward_std.shape == s.backward_norm.shape == (9,)
    assert np.all(np.isfinite(s.forward_std)) and np.all(s.forward_std > 0)
    assert np.all(np.isfinite(s.backward_norm)) and np.all(s.backward_norm > 0)
    assert s.training is True and s.backend == BACKEND
    assert 0 < s.loss < 20
    assert SignalPropagation.from_dict(s.as_dict()).unit_names == s.unit_names


@pytest.mark.parametrize("ordering", ["full_preact", "original"])
def test_matches_independent_gradient_and_forward(ordering):
    model = signal_model(20, ordering)
    x, y = signal_batch()
    units = keras_preact.residual_units(model)
    # Take the reference values first: the tail calls below update BN moving
    # statistics (training=True outside a StatelessScope), which does not
    # affect training-mode outputs but keeps the comparison honest.
    s = signal_propagation(model, x, y)
    outputs = keras.Model(model.input, [u.output for u in units])(x, training=True)
    expected_std = [float(np.std(ops.convert_to_numpy(o))) for o in outputs]
    np.testing.assert_allclose(s.forward_std, expected_std, rtol=1e-4)
    for k in (0, 4, 8):
        h = ops.convert_to_numpy(keras.Model(model.input, units[k].input)(x, training=True))
        tail = keras.Model(units[k].input, model.output)
        loss, grad = tail_loss_and_grad(tail, h, y)
        assert loss == pytest.approx(s.loss, rel=1e-4)
        assert s.backward_norm[k] == pytest.approx(np.linalg.norm(grad), rel=1e-3)


def test_matches_finite_difference():
    model = signal_model(20)
    x, y = signal_batch()
    units = keras_preact.residual_units(model)
    k = 4
    s = signal_propagation(model, x, y)
    h = ops.convert_to_numpy(keras.Model(model.input, units[k].input)(x, training=True))
    tail = keras.Model(units[k].input, model.output)
    _, grad = tail_loss_and_grad(tail, h, y)
    v = (grad / np.linalg.norm(grad)).astype("float32")  # unit direction of steepest ascent
    eps = 1e-2
    directional = (tail_loss(tail, h + eps * v, y) - tail_loss(tail, h - eps * v, y)) / (2 * eps)
    # Along the gradient direction the directional derivative is ||grad||.
    assert directional == pytest.approx(s.backward_norm[k], rel=0.03)


def test_no_side_effects_and_training_flag():
    model = signal_model(20)
    x, y = signal_batch()
    before = snapshot(model)
    s_train = signal_propagation(model, x, y, training=True)
    s_infer = signal_propagation(model, x, y, training=False)
    for a, b in zip(before, snapshot(model)):
        np.testing.assert_array_equal(a, b)
    # Inference mode uses moving statistics (mean 0, var 1 at init): different signal.
    assert not np.allclose(s_train.forward_std, s_infer.forward_std, rtol=1e-2)
    with pytest.raises(ValueError, match="training"):
        signal_propagation(model, x, y, training="yes")
    with pytest.raises(ValueError, match="batch sizes"):
        signal_propagation(model, x, y[:2])


@pytest.mark.skipif(BACKEND != "jax", reason="jit_compile only changes the JAX path")
def test_jax_jit_matches_eager():
    model = signal_model(8)
    x, y = signal_batch()
    probe = SignalProbe(model, jit_compile=True)
    eager = signal_propagation(model, x, y)
    jitted = probe(x, y)
    np.testing.assert_allclose(jitted.backward_norm, eager.backward_norm, rtol=1e-4)
    np.testing.assert_allclose(jitted.forward_std, eager.forward_std, rtol=1e-4)
    # The compiled program follows the weights (they are arguments, not constants).
    model.set_weights([w * 0.5 if w.ndim == 4 else w for w in model.get_weights()])
    np.testing.assert_allclose(
        probe(x, y).backward_norm, signal_propagation(model, x, y).backward_norm, rtol=1e-4
    )


def test_softmax_output_is_detected():
    logits_model = signal_model(20)
    probs_model = signal_model(20, classifier_activation="softmax")
    probs_model.set_weights(logits_model.get_weights())
    x, y = signal_batch()
    a = signal_propagation(logits_model, x, y)
    b = signal_propagation(probs_model, x, y)
    assert a.loss == pytest.approx(b.loss, rel=1e-4)
    np.testing.assert_allclose(a.backward_norm, b.backward_norm, rtol=1e-3)


def test_model_without_units_is_rejected():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(ValueError, match="no ResidualUnit layers"):
        SignalProbe(model)
    with pytest.raises(ValueError, match=r"units=\[\]"):
        SignalProbe(signal_model(8), units=[])
    with pytest.raises(ValueError, match="keras.Model"):
        SignalProbe("not a model")


@pytest.mark.slow
def test_deep_full_preact_gradient_does_not_vanish():
    # Measured (seeds 0-2, batch of 8 random 16x16 images, base width 4,
    # training-mode BN, every kernel drawn independently) on all three
    # backends at depth 56 (27 units): ||g_first|| / ||g_last|| in
    # 23.9 .. 48.1 (seed 0: 36.0 tensorflow, 23.9 jax, 33.7 torch), and the
    # smallest unit gradient is the last unit's (ratio 1.0). The gradient at the input end is never smaller than at the
    # output end: it does not vanish (a ratio far below 1), nor blow up.
    keras.utils.set_random_seed(0)
    model = signal_model(56)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 10, size=8)
    s = signal_propagation(model, x, y)
    b = s.backward_norm
    assert s.num_units == 27
    assert 10.0 < b[0] / b[-1] < 100.0
    assert b.min() / b[-1] > 0.9
