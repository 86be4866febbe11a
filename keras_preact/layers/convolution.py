"""Keras' 2-D convolution, on torch without copies between memory layouts."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_preact")
class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D`, called on torch without layout copies.

    The same layer to a user: the same arguments, variables (`kernel` of
    shape `(kh, kw, in_channels // groups, filters)`, then `bias`), config
    and numbers. The class keeps Keras' name, as
    `keras_preact.layers.BatchNormalization` does, so weight files address
    it as they address Keras' own layer.

    Only the torch backend's call differs (`tests/layers/test_convolution.py`
    compares it with `keras.layers.Conv2D` on every backend). Keras' torch
    convolution copies a channels-last input into a contiguous
    channels-first tensor and copies that again into torch's channels-last
    memory format: two copies of every input at every step. Here `torch.nn.functional.conv2d` takes a
    channels-first view of the same memory instead (a contiguous NHWC
    tensor is an NCHW tensor in the channels-last memory format, which
    torch's CPU and cuDNN kernels read as it is), with the bias in the same
    call, and its output is viewed back the same way. On torch the kernel
    and bias are cast to the input's dtype, so the layer computes in its
    input's dtype whether or not Keras' autocast scope is open. "same" padding that
    torch cannot express (more on one side, as for an even input and a
    stride of 2), torch's meta tensors, a step compiled by `torch.compile`
    (`jit_compile=True`: inductor plans memory formats itself) and every
    other backend take Keras' own `call`.

    Args:
        **kwargs: the arguments of `keras.layers.Conv2D`.

    Example:

    >>> layer = Conv2D(8, 3, padding="same", use_bias=False)
    >>> layer(keras.ops.ones((2, 16, 16, 3))).shape
    (2, 16, 16, 8)
    """

    def call(self, inputs):
        if keras.backend.backend() == "torch":
            outputs = _torch_conv2d(self, inputs)
            if outputs is not None:
                return outputs if self.activation is None else self.activation(outputs)
        return super().call(inputs)


def _torch_padding(layer, spatial_shape):
    """torch's `padding` for `layer` on inputs of `spatial_shape`, or `None`
    where "same" pads one side more than the other."""
    if layer.padding == "valid":
        return (0, 0)
    padding = []
    for size, kernel, stride, dilation in zip(
        spatial_shape, layer.kernel_size, layer.strides, layer.dilation_rate
    ):
        extent = dilation * (kernel - 1) + 1
        total = max((-(-size // stride) - 1) * stride + extent - size, 0)
        if total % 2:
            return None
        padding.append(total // 2)
    return tuple(padding)


def _torch_conv2d(layer, inputs):
    """`layer`'s output by `torch.nn.functional.conv2d` on views, or `None`
    where Keras' path applies."""
    import torch

    if torch.compiler.is_compiling():
        return None  # Inductor plans the memory formats of a compiled step.
    inputs = ops.convert_to_tensor(inputs)
    if inputs.ndim != 4 or inputs.device.type == "meta":
        return None
    channels_last = layer.data_format == "channels_last"
    if channels_last:
        inputs = inputs.permute(0, 3, 1, 2)
    padding = _torch_padding(layer, inputs.shape[2:])
    if padding is None:
        return None
    kernel = ops.convert_to_tensor(layer.kernel, dtype=inputs.dtype)
    kernel = kernel.permute(3, 2, 0, 1)
    if channels_last:
        # The kernel in channels-last memory, as Keras hands it to torch:
        # torch then runs Keras' channels-last convolution (the same
        # numbers, a contiguous NHWC output) also for an input in
        # channels-first memory, such as Keras' max pooling output. A copy
        # of the weights only.
        kernel = kernel.contiguous(memory_format=torch.channels_last)
    bias = (
        ops.convert_to_tensor(layer.bias, dtype=inputs.dtype)
        if layer.use_bias else None
    )
    outputs = torch.nn.functional.conv2d(
        inputs, kernel, bias, layer.strides, padding, layer.dilation_rate,
        layer.groups,
    )
    return outputs.permute(0, 2, 3, 1) if channels_last else outputs
