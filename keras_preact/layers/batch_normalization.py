"""Keras' batch normalization on the backend's fused kernel, with an
optional ReLU: the pre-activation of every residual unit."""

import keras
from keras import ops

# Input dtypes the fused kernels take (with float32 gamma, beta and moving
# statistics; half-precision inputs are normalized in float32 inside them).
FUSED_DTYPES = ("float16", "bfloat16", "float32")


@keras.saving.register_keras_serializable(package="keras_preact")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization`, optionally followed by an activation,
    computed by the backend's fused batch-norm kernel where there is one.

    The same layer to a user: the same variables (`gamma`, `beta`,
    `moving_mean`, `moving_variance`, float32, in that order), arguments,
    moving-average convention (`moving = moving * momentum + batch * (1 -
    momentum)` with the biased batch variance), mixed-precision behaviour
    (statistics in float32, output in the compute dtype) and
    `trainable=False` meaning inference mode. The class keeps Keras' name
    because Keras addresses layers kept in a list (a model's layers, a
    unit's branch) by their snake-cased class name in weight files: so
    `.keras` and `.weights.h5` files of models built with
    `keras.layers.BatchNormalization` load into models built with this
    layer, and the other way round. `activation` is the only argument added.

    Only the arithmetic differs, within float rounding
    (`tests/layers/test_batch_normalization.py` compares it with
    `keras.layers.BatchNormalization` + `ops.relu` on every backend):

    - torch: `torch.nn.functional.batch_norm` on a channels-first view of
      the same memory (the channels-last memory format for a 4-D NHWC
      tensor), in training and inference, then an in-place ReLU: one
      kernel where Keras' own layer chains elementwise ops.
    - TensorFlow: `tf.compat.v1.nn.fused_batch_norm` (oneDNN on CPU, cuDNN
      on GPU; XLA has a lowering) for 4-D inputs normalized over axis 1 or
      3, then `tf.nn.relu`.
    - JAX (and any other backend): Keras' own `keras.ops` path; XLA fuses
      it.

    The moving statistics are updated with Keras' formula through
    `Variable.assign` (so `keras.StatelessScope` and `remat` see them).
    Keras' path is taken where the fused kernels do not apply: other ranks
    or axes (TensorFlow), a mask, `renorm`, `synchronized`, float64 and
    integer inputs, torch's meta tensors, and training on one value per
    channel (torch refuses it; Keras gives a zero variance).

    Args:
        activation: `None`, `"relu"` or another Keras activation applied to
            the normalized output. `"relu"` is fused. Defaults to `None`.
        **kwargs: the arguments of `keras.layers.BatchNormalization`
            (`axis`, `momentum`, `epsilon`, `center`, `scale`, initializers,
            regularizers, constraints, `renorm*`, `synchronized`) and base
            layer keyword arguments (`name`, `dtype`).

    Call arguments: as `keras.layers.BatchNormalization`: `inputs` of any
    rank and scale, `training`, `mask`.

    Returns:
        `activation(batch_norm(inputs))`, same shape as `inputs`, in the
        layer's compute dtype.

    Raises:
        ValueError: `activation` is not a Keras activation (and Keras'
            `BatchNormalization` errors, e.g. for an `axis` out of range).

    Reference: Ioffe and Szegedy, "Batch Normalization", ICML 2015.

    Example:

    >>> layer = BatchNormalization(axis=-1, activation="relu")
    >>> x = keras.random.normal((8, 4, 4, 16))
    >>> y = layer(x, training=True)
    >>> y.shape, float(keras.ops.min(y)) >= 0.0
    ((8, 4, 4, 16), True)
    """

    def __init__(self, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.activation = keras.activations.get(activation)

    def call(self, inputs, training=None, mask=None):
        kernel = _fused_kernel(self, inputs, mask, training)
        if kernel is None:
            outputs = super().call(inputs, training=training, mask=mask)
            return self.activation(outputs)
        relu = self.activation is keras.activations.relu
        outputs, batch_mean, batch_variance = kernel(
            inputs, self, bool(training and self.trainable), relu
        )
        if batch_mean is not None:
            momentum = self.momentum
            self.moving_mean.assign(
                self.moving_mean.value * momentum
                + batch_mean * (1.0 - momentum)
            )
            self.moving_variance.assign(
                self.moving_variance.value * momentum
                + batch_variance * (1.0 - momentum)
            )
        outputs = ops.cast(outputs, self.compute_dtype)
        if relu:
            return outputs
        return self.activation(outputs)

    def get_config(self):
        config = super().get_config()
        config["activation"] = keras.activations.serialize(self.activation)
        return config


# === The backends' fused kernels ===
#
# Each takes `(inputs, layer, training, relu)` and returns `(outputs,
# batch_mean, batch_variance)`: the biased batch statistics in float32 when
# training, `None` otherwise (both kernels give the unbiased variance; it is
# rescaled by `(n - 1) / n` to Keras' biased one). `_fused_kernel` picks the
# backend's kernel, or `None` where only Keras' generic path applies.


def _fused_kernel(layer, inputs, mask, training):
    """The fused kernel for this call, or `None` for Keras' generic path."""
    backend = keras.backend.backend()
    if backend not in ("torch", "tensorflow"):
        return None
    if mask is not None or layer.renorm or layer.synchronized:
        return None
    if keras.backend.standardize_dtype(inputs.dtype) not in FUSED_DTYPES:
        return None
    if layer.moving_mean.dtype != "float32":
        return None
    rank = len(inputs.shape)
    axis = layer.axis % rank
    if backend == "tensorflow":
        return _tensorflow_batch_norm if rank == 4 and axis in (1, 3) else None
    if rank < 2 or inputs.device.type == "meta":
        return None
    if training and layer.trainable and inputs.numel() <= inputs.shape[axis]:
        return None  # One value per channel.
    return _torch_batch_norm


def _torch_batch_norm(inputs, layer, training, relu):
    import torch

    axis = layer.axis % inputs.ndim
    # Channels on axis 1, as torch wants them: a view, no copy. A 4-D NHWC
    # tensor becomes NCHW in torch's channels_last memory format, which
    # torch's CPU and cuDNN kernels read as it is.
    x = torch.movedim(inputs, axis, 1) if axis != 1 else inputs
    gamma = layer.gamma.value if layer.scale else None
    beta = layer.beta.value if layer.center else None
    if training:
        channels = x.shape[1]
        # momentum=1 makes torch write the batch mean and the unbiased batch
        # variance into these fresh buffers: the variables stay untouched.
        batch_mean = torch.zeros(channels, dtype=torch.float32, device=x.device)
        unbiased = torch.zeros(channels, dtype=torch.float32, device=x.device)
        y = torch.nn.functional.batch_norm(
            x, batch_mean, unbiased, gamma, beta,
            training=True, momentum=1.0, eps=layer.epsilon,
        )
        count = x.numel() // channels
        batch_variance = unbiased * ((count - 1) / count)
    else:
        y = torch.nn.functional.batch_norm(
            x, layer.moving_mean.value, layer.moving_variance.value,
            gamma, beta, training=False, eps=layer.epsilon,
        )
        batch_mean = batch_variance = None
    if relu:
        y = torch.relu_(y)  # Batch norm's backward does not need its output.
    if axis != 1:
        y = torch.movedim(y, 1, axis)
    return y, batch_mean, batch_variance


def _tensorflow_batch_norm(inputs, layer, training, relu):
    import tensorflow as tf

    data_format = "NCHW" if layer.axis % 4 == 1 else "NHWC"
    channels = inputs.shape[layer.axis]
    gamma = layer.gamma.value if layer.scale else tf.ones([channels])
    beta = layer.beta.value if layer.center else tf.zeros([channels])
    if training:
        y, batch_mean, unbiased = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, epsilon=layer.epsilon,
            data_format=data_format, is_training=True,
        )
        count = tf.cast(tf.size(inputs, out_type=tf.int64) // channels, tf.float32)
        batch_variance = unbiased * ((count - 1.0) / count)
    else:
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta,
            mean=layer.moving_mean.value, variance=layer.moving_variance.value,
            epsilon=layer.epsilon, data_format=data_format, is_training=False,
        )
        batch_mean = batch_variance = None
    if relu:
        y = tf.nn.relu(y)
    return y, batch_mean, batch_variance
