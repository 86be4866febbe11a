"""Checks shared by several test files (one home, imported, never copied)."""

import numpy as np

import keras

from conftest import BACKEND


def numpy(values):
    """float32 NumPy copies of tensors or variables."""
    return [keras.ops.convert_to_numpy(keras.ops.cast(v, "float32")) for v in values]


def assert_all_close(actual, expected, tolerance, what):
    """Two lists of arrays, equal in length and close element by element."""
    assert len(actual) == len(expected), what
    for index, (a, b) in enumerate(zip(actual, expected)):
        np.testing.assert_allclose(a, b, err_msg=f"{what} [{index}]", **tolerance)


def gradient_step(layer, x, cotangent, training):
    """One forward and backward pass of `sum(layer(x) * cotangent)`.

    `x` is cast to the layer's compute dtype, as the layer before it in a
    model would give it (`stateless_call` does not cast its inputs as
    `__call__` does). The layer's state updates (BN moving statistics, seed
    states) are applied, as a training step would. Each backend
    differentiates with its own machinery; on JAX under `jax.jit`, as `fit`
    runs it, so a tracer leaking out of a recomputed function fails here.

    Returns:
        `(outputs, input_gradient, weight_gradients)` as float32 NumPy
        arrays; weight gradients follow `layer.trainable_variables`.
    """
    x = keras.ops.cast(x, layer.compute_dtype)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = layer(x, training=training)
            loss = tf.reduce_sum(tf.cast(outputs, "float32") * cotangent)
        gradients = tape.gradient(loss, [x] + layer.trainable_variables)
    elif BACKEND == "torch":
        import torch

        x = x.detach().requires_grad_(True)
        outputs = layer(x, training=training)
        loss = torch.sum(outputs.float() * keras.ops.convert_to_tensor(cotangent))
        gradients = torch.autograd.grad(
            loss, [x] + [v.value for v in layer.trainable_variables]
        )
        outputs = outputs.detach()
    else:
        import jax

        def loss_fn(trainable, x, non_trainable):
            outputs, non_trainable = layer.stateless_call(
                trainable, non_trainable, x, training=training
            )
            loss = jax.numpy.sum(outputs.astype("float32") * cotangent)
            return loss, (outputs, non_trainable)

        step = jax.jit(jax.value_and_grad(loss_fn, argnums=(1, 0), has_aux=True))
        (_, (outputs, non_trainable)), (input_gradient, weight_gradients) = step(
            [v.value for v in layer.trainable_variables],
            x,
            [v.value for v in layer.non_trainable_variables],
        )
        for variable, value in zip(layer.non_trainable_variables, non_trainable):
            variable.assign(value)
        gradients = [input_gradient] + list(weight_gradients)
    assert keras.backend.standardize_dtype(outputs.dtype) == layer.compute_dtype
    outputs, *gradients = numpy([outputs] + list(gradients))
    return outputs, gradients[0], gradients[1:]
