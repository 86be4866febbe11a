"""The paper's named networks, in the keras.applications style: one function
per network, the shared part of the docstring written once (`DOC`)."""

from keras_preact.models.preact_resnet import PreActResNet

DOC = """

{layout} layout: inputs `{shape}` by default (any size >= {stride} without
the top), normalized per channel unless `input_normalization` is given (then
0-255 pixels); outputs `(batch, classes)` probabilities, or logits with
`classifier_activation=None`. See `keras_preact.PreActResNet` for the
network, every other argument and the `ValueError`s it raises.

Reference: He et al., "Identity Mappings in Deep Residual Networks", ECCV
2016 ({reference}).

Args:
    include_top: bool. Whether to include the classifier. Defaults to `True`.
    weights: `None`, a pretrained checkpoint, or the path to a
        `.weights.h5` / `.keras` file saved from the same architecture. A
        checkpoint is a key of `keras_preact.pretrained.CHECKPOINTS` or a
        short name, such as {checkpoints}.
        It builds the checkpoint's network with its trained weights
        (downloaded and converted on first use); the model then takes
        0-255 pixels. See `keras_preact.PreActResNet` and
        docs/pretrained.md. Defaults to `None`.
    input_tensor: optional Keras tensor to use as the model's input.
    input_shape: optional shape tuple without the batch axis. Defaults to
        `{shape}` with the top, `(None, None, 3)` without it.
    pooling: `None`, `"avg"` or `"max"`, for `include_top=False`.
    classes: int or `None`. Number of classes; `None`: the checkpoint's
        with `weights=` a checkpoint, else {classes}. Defaults to `None`.
    classifier_activation: activation of the classifier, or `None` for
        logits. Defaults to `"softmax"`.
    name: str. Model name. Defaults to `"preact_resnet{{depth}}"`.
    **kwargs: any other argument of `keras_preact.PreActResNet`, such as
        `unit_ordering`, `shortcut`, `width_multiplier`, `drop_path_rate`,
        `input_normalization`, `remat` or `data_format`.

Returns:
    A functional `keras.Model`.

Raises:
    ValueError: for an invalid argument (see `keras_preact.PreActResNet`).

Example:

>>> model = keras_preact.{example}
>>> model.output_shape
{output_shape}
"""
CIFAR_DOC = DOC.format(
    layout="CIFAR", shape="(32, 32, 3)", stride=4, classes=10,
    reference="Sec. 4-5, Tables 3-4; KaimingHe/resnet-1k-layers",
    checkpoints='`"pytorchcv/preresnet164bn_cifar100"` or `"cifar100"`',
    example="PreActResNet164(classes=100)", output_shape="(None, 100)",
)
IMAGENET_DOC = DOC.format(
    layout="ImageNet", shape="(224, 224, 3)", stride=32, classes=1000,
    reference="Table 5; fb.resnet.torch preresnet.lua",
    checkpoints='`"timm/resnetv2_50.a1h_in1k"` or `"imagenet"`',
    example='PreActResNet50(include_top=False, pooling="avg")',
    output_shape="(None, 2048)",
)


def _arguments(arguments):
    """A variant's arguments (its `locals()` on entry) for `PreActResNet`."""
    named = {key: value for key, value in arguments.items() if key != "kwargs"}
    return {**named, **arguments["kwargs"]}


def PreActResNet20(include_top=True, weights=None, input_tensor=None,
                   input_shape=None, pooling=None, classes=None,
                   classifier_activation="softmax", name=None, **kwargs):
    """Pre-activation ResNet-20: 3 stages of 3 basic units (CIFAR)."""
    return PreActResNet(20, **_arguments(locals()))


def PreActResNet32(include_top=True, weights=None, input_tensor=None,
                   input_shape=None, pooling=None, classes=None,
                   classifier_activation="softmax", name=None, **kwargs):
    """Pre-activation ResNet-32: 3 stages of 5 basic units (CIFAR)."""
    return PreActResNet(32, **_arguments(locals()))


def PreActResNet44(include_top=True, weights=None, input_tensor=None,
                   input_shape=None, pooling=None, classes=None,
                   classifier_activation="softmax", name=None, **kwargs):
    """Pre-activation ResNet-44: 3 stages of 7 basic units (CIFAR)."""
    return PreActResNet(44, **_arguments(locals()))


def PreActResNet56(include_top=True, weights=None, input_tensor=None,
                   input_shape=None, pooling=None, classes=None,
                   classifier_activation="softmax", name=None, **kwargs):
    """Pre-activation ResNet-56: 3 stages of 9 basic units (CIFAR)."""
    return PreActResNet(56, **_arguments(locals()))


def PreActResNet110(include_top=True, weights=None, input_tensor=None,
                    input_shape=None, pooling=None, classes=None,
                    classifier_activation="softmax", name=None, **kwargs):
    """Pre-activation ResNet-110: 3 stages of 18 basic units (CIFAR)."""
    return PreActResNet(110, **_arguments(locals()))


def PreActResNet164(include_top=True, weights=None, input_tensor=None,
                    input_shape=None, pooling=None, classes=None,
                    classifier_activation="softmax", name=None, **kwargs):
    """Pre-activation ResNet-164: 3 stages of 18 bottleneck units (CIFAR)."""
    return PreActResNet(164, **_arguments(locals()))


def PreActResNet1001(include_top=True, weights=None, input_tensor=None,
                     input_shape=None, pooling=None, classes=None,
                     classifier_activation="softmax", name=None, **kwargs):
    """Pre-activation ResNet-1001: 3 stages of 111 bottleneck units (CIFAR)."""
    return PreActResNet(1001, **_arguments(locals()))


def PreActResNet18(include_top=True, weights=None, input_tensor=None,
                   input_shape=None, pooling=None, classes=None,
                   classifier_activation="softmax", name=None, **kwargs):
    """Pre-activation ResNet-18: basic units (2, 2, 2, 2) (ImageNet)."""
    return PreActResNet(18, layout="imagenet", **_arguments(locals()))


def PreActResNet34(include_top=True, weights=None, input_tensor=None,
                   input_shape=None, pooling=None, classes=None,
                   classifier_activation="softmax", name=None, **kwargs):
    """Pre-activation ResNet-34: basic units (3, 4, 6, 3) (ImageNet)."""
    return PreActResNet(34, layout="imagenet", **_arguments(locals()))


def PreActResNet50(include_top=True, weights=None, input_tensor=None,
                   input_shape=None, pooling=None, classes=None,
                   classifier_activation="softmax", name=None, **kwargs):
    """Pre-activation ResNet-50: bottleneck units (3, 4, 6, 3) (ImageNet)."""
    return PreActResNet(50, layout="imagenet", **_arguments(locals()))


def PreActResNet101(include_top=True, weights=None, input_tensor=None,
                    input_shape=None, pooling=None, classes=None,
                    classifier_activation="softmax", name=None, **kwargs):
    """Pre-activation ResNet-101: bottleneck units (3, 4, 23, 3) (ImageNet)."""
    return PreActResNet(101, layout="imagenet", **_arguments(locals()))


def PreActResNet152(include_top=True, weights=None, input_tensor=None,
                    input_shape=None, pooling=None, classes=None,
                    classifier_activation="softmax", name=None, **kwargs):
    """Pre-activation ResNet-152: bottleneck units (3, 8, 36, 3) (ImageNet)."""
    return PreActResNet(152, layout="imagenet", **_arguments(locals()))


def PreActResNet200(include_top=True, weights=None, input_tensor=None,
                    input_shape=None, pooling=None, classes=None,
                    classifier_activation="softmax", name=None, **kwargs):
    """Pre-activation ResNet-200: bottleneck units (3, 24, 36, 3) (ImageNet)."""
    return PreActResNet(200, layout="imagenet", **_arguments(locals()))


CIFAR_VARIANTS = (
    PreActResNet20, PreActResNet32, PreActResNet44, PreActResNet56,
    PreActResNet110, PreActResNet164, PreActResNet1001,
)
IMAGENET_VARIANTS = (
    PreActResNet18, PreActResNet34, PreActResNet50, PreActResNet101,
    PreActResNet152, PreActResNet200,
)
for _variant in CIFAR_VARIANTS + IMAGENET_VARIANTS:
    _doc = CIFAR_DOC if _variant in CIFAR_VARIANTS else IMAGENET_DOC
    if _variant.__doc__ is not None:  # None under python -OO.
        _variant.__doc__ += _doc
