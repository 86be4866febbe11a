"""Converting a published checkpoint's state dict into a keras_preact model.

One function per source names, for each variable of the keras_preact
network, the source tensor it takes (`_pytorchcv`, `_timm`); `_assign`
checks the whole state dict against those names and shapes, then assigns.
"""

import numpy as np

from keras_preact.models.features import residual_units
from keras_preact.models.layouts import split_into_stages
from keras_preact.models.preact_resnet import PreActResNet
from keras_preact.pretrained.registry import builder_arguments
from keras_preact.pretrained.registry import get_checkpoint

# Our batch-norm variables and the Torch names of the same tensors.
_BATCH_NORM = (
    ("gamma", "weight"), ("beta", "bias"),
    ("moving_mean", "running_mean"), ("moving_variance", "running_var"),
)
# The one kind of tensor skipped: Torch's batch-norm step counter, a buffer
# that carries no weights (older files lack it).
_COUNTER = "num_batches_tracked"
# Our layout of each kind of tensor -> the source's: (shape, array) maps.
_LAYOUTS = {
    "vector": (lambda shape: tuple(shape), lambda array: array),
    # Keras HWIO <- Torch OIHW.
    "conv": (lambda shape: (shape[3], shape[2], shape[0], shape[1]),
             lambda array: array.transpose(2, 3, 1, 0)),
    # Keras (in, out) <- Torch Linear (out, in).
    "linear": (lambda shape: (shape[1], shape[0]), lambda array: array.T),
    # Keras (in, out) <- a 1x1 convolution head (out, in, 1, 1).
    "conv1x1": (lambda shape: (shape[1], shape[0], 1, 1),
                lambda array: array[:, :, 0, 0].T),
}


def convert(state_dict, name, **builder_kwargs):
    """Builds checkpoint `name`'s network with the weights of `state_dict`.

    The model is `keras_preact.PreActResNet` with the checkpoint's
    architecture, classes and input statistics (it takes 0-255 pixels):
    `keras_preact.pretrained.builder_arguments(checkpoint, **builder_kwargs)`.
    Every tensor of `state_dict` is used exactly once, except the batch
    norms' `num_batches_tracked` counters, which carry no weights. Without
    the top (`include_top=False`) the classifier's tensors are still
    checked, but not assigned. All names and shapes are checked before
    anything is assigned.

    Args:
        state_dict: mapping. The source's parameter names to NumPy arrays
            or torch tensors, as the source's file holds them.
        name: str. A name in `keras_preact.pretrained.CHECKPOINTS`, such
            as `"pytorchcv/preresnet164bn_cifar100"`.
        **builder_kwargs: `PreActResNet` arguments that the checkpoint does
            not fix, or fixes to the given value: for example
            `input_normalization=None` (inputs already normalized with the
            checkpoint's statistics), `classifier_activation=None` (logits),
            `include_top=False` and `pooling` (a backbone), `data_format`.

    Returns:
        A `keras.Model`.

    Raises:
        ValueError: `name` is not a checkpoint; a builder argument
            contradicts the checkpoint or is `weights`; `state_dict` is not
            the checkpoint's network (another depth, classes or source): the
            message names the first mismatch, a missing tensor, an
            unexpected one or a shape (name, expected, got).

    Example:

    >>> model = convert(torch.load(path, weights_only=True),
    ...                 "pytorchcv/preresnet20_cifar10")
    """
    checkpoint = get_checkpoint(name)
    if "weights" in builder_kwargs:
        raise ValueError(
            f"Invalid weights={builder_kwargs['weights']!r}: convert takes "
            "the weights from state_dict. Pass the other builder arguments."
        )
    model = PreActResNet(**builder_arguments(checkpoint, **builder_kwargs))
    stages = split_into_stages(residual_units(model))
    names = _pytorchcv if checkpoint.source == "pytorchcv" else _timm
    tensors = _Tensors(model, checkpoint.classes)
    names(tensors, stages)
    _assign(tensors, state_dict, checkpoint)
    return model


def _pytorchcv(tensors, stages):
    """osmr's pytorchcv PreResNet (ImageNet) and CIFARPreResNet."""
    stem_bn = tensors.layer("stem_bn")  # ImageNet: conv-BN-ReLU-pool.
    stem = "features.init_block" + ("" if stem_bn is None else ".conv")
    tensors.conv(stem, tensors.layer("stem_conv"))
    tensors.batch_norm("features.init_block.bn", stem_bn)
    for s, stage in enumerate(stages, 1):
        for u, unit in enumerate(stage, 1):
            prefix = f"features.stage{s}.unit{u}"
            # `body.conv{i}` is the BN-ReLU before conv i, then conv i.
            for i, (bn, conv) in enumerate(_branch(unit), 1):
                tensors.batch_norm(f"{prefix}.body.conv{i}.bn", bn)
                tensors.conv(f"{prefix}.body.conv{i}.conv", conv)
            tensors.conv(f"{prefix}.identity_conv", unit.projection)
    tensors.batch_norm("features.post_activ.bn", tensors.layer("post_bn"))
    tensors.classifier("output", "linear")


def _timm(tensors, stages):
    """timm's ResNetV2 (`PreActBasic`, `PreActBottleneck`)."""
    tensors.conv("stem.conv", tensors.layer("stem_conv"))
    for s, stage in enumerate(stages):
        for u, unit in enumerate(stage):
            prefix = f"stages.{s}.blocks.{u}"
            tensors.conv(f"{prefix}.downsample.conv", unit.projection)
            # `norm{i}` is the BN-ReLU before `conv{i}`.
            for i, (bn, conv) in enumerate(_branch(unit), 1):
                tensors.batch_norm(f"{prefix}.norm{i}", bn)
                tensors.conv(f"{prefix}.conv{i}", conv)
    tensors.batch_norm("norm", tensors.layer("post_bn"))
    tensors.classifier("head.fc", "conv1x1")


def _branch(unit):
    """A full pre-activation unit's (BN-ReLU, conv) pairs, in order."""
    return zip([unit.preact_bn, *unit.bns], unit.convs)


class _Tensors:
    """The source tensors a model needs, in the order they are named.

    `expected` holds `(source name, layout, our variable or None, our
    shape)`; `counters` the `num_batches_tracked` names that may be skipped.
    """

    def __init__(self, model, classes):
        self.model, self.classes = model, classes
        self.expected, self.counters = [], set()

    def layer(self, name):
        """The model's layer called `name`, or `None`."""
        return next((layer for layer in self.model.layers
                     if layer.name == name), None)

    def conv(self, source, layer):
        """A bias-free convolution's kernel (nothing for `layer=None`)."""
        if layer is not None:
            self.expected.append((f"{source}.weight", "conv", layer.kernel,
                                  tuple(layer.kernel.shape)))

    def batch_norm(self, source, layer):
        """A batch norm's four tensors (nothing for `layer=None`)."""
        if layer is None:
            return
        for ours, theirs in _BATCH_NORM:
            variable = getattr(layer, ours)
            self.expected.append((f"{source}.{theirs}", "vector", variable,
                                  tuple(variable.shape)))
        self.counters.add(f"{source}.{_COUNTER}")

    def classifier(self, source, layout):
        """The classifier's weight and bias: checked always, assigned only
        when the model has its top."""
        dense = self.layer("predictions")
        top = dense is not None
        features = self.layer("post_bn").gamma.shape[0]
        self.expected += [
            (f"{source}.weight", layout, dense.kernel if top else None,
             (features, self.classes)),
            (f"{source}.bias", "vector", dense.bias if top else None,
             (self.classes,)),
        ]


def _numpy(value):
    """A NumPy array of an array or a torch tensor (bfloat16 ones as
    float32: NumPy has no bfloat16)."""
    if not hasattr(value, "detach"):
        return np.asarray(value)
    value = value.detach().cpu()
    return (value.float() if value.is_floating_point() else value).numpy()


def _assign(tensors, state_dict, checkpoint):
    """Checks `state_dict` against `tensors.expected`, then assigns it.

    Raises:
        ValueError: naming the first missing tensor or wrong shape, in
            the model's order, else the first unexpected tensor, in the
            state dict's order.
    """
    arrays = {key: _numpy(value) for key, value in state_dict.items()}
    problem = None
    for key, layout, _, shape in tensors.expected:
        expected = _LAYOUTS[layout][0](shape)
        if key not in arrays:
            problem = f"missing tensor {key!r} of shape {expected}"
        elif arrays[key].shape != expected:
            problem = (f"tensor {key!r} has shape {arrays[key].shape}, "
                       f"expected {expected}")
        if problem:
            break
    names = {key for key, *_ in tensors.expected} | tensors.counters
    unexpected = [key for key in arrays if key not in names]
    if problem is None and unexpected:
        problem = f"unexpected tensor {unexpected[0]!r}"
    if problem:
        raise ValueError(
            f"The state dict is not the network of {checkpoint.name!r} "
            f"({dict(checkpoint.architecture)}, {checkpoint.classes} "
            f"classes): {problem}. The state dict holds {len(arrays)} "
            f"tensors, {len(unexpected)} of them unknown to this network, "
            f"which takes {len(tensors.expected)} (batch-norm counters "
            "aside). Convert a file with the name of its own checkpoint."
        )
    for key, layout, variable, _ in tensors.expected:
        if variable is not None:
            array = _LAYOUTS[layout][1](arrays[key])
            variable.assign(array.astype(variable.dtype))
