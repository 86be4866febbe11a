"""The paper's named networks, in the keras.applications style."""

from keras_preact.models.preact_resnet import PreActResNet

_VARIANT_DOC = """Builds the Pre-activation ResNet-{depth} of He et al. (2016).

{layout_text}

Args:
    include_top: bool. Whether to include the classifier. Defaults to `True`.
    weights: `None` or the path to a `.weights.h5` / `.keras` file saved from
        the same architecture.
    input_tensor: optional Keras tensor to use as the model's input.
    input_shape: optional shape tuple without the batch axis. Defaults to
        `{default_shape}` with the top, `(None, None, 3)` without it.
    pooling: `None`, `"avg"` or `"max"`, for `include_top=False`.
    classes: int. Number of classes. Defaults to `{classes}`.
    classifier_activation: activation of the classifier, or `None` for
        logits. Defaults to `"softmax"`.
    name: str. Model name. Defaults to `"preact_resnet{depth}"`.
    **kwargs: any other argument of `keras_preact.PreActResNet`, such as
        `unit_ordering`, `shortcut`, `width_multiplier`, `drop_path_rate`,
        `remat` or `data_format`.

Returns:
    A functional `keras.Model`.

Example:

>>> model = keras_preact.PreActResNet{depth}(classes={classes})
>>> model.output_shape
(None, {classes})
"""

_CIFAR_TEXT = (
    "CIFAR layout (32x32 inputs): a 3x3 conv stem and three stages of {n} "
    "{block} units each."
)
_IMAGENET_TEXT = (
    "ImageNet layout (224x224 inputs, fb.resnet.torch): a 7x7 stem with "
    "max pooling and four stages of {units} {block} units."
)


def _variant(depth, layout):
    defaults = {"cifar": 10, "imagenet": 1000}

    def build(
        include_top=True,
        weights=None,
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=defaults[layout],
        classifier_activation="softmax",
        name=None,
        **kwargs,
    ):
        return PreActResNet(
            depth,
            layout=layout,
            include_top=include_top,
            weights=weights,
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            name=name,
            **kwargs,
        )

    if layout == "cifar":
        bottleneck = depth >= 164
        n = (depth - 2) // (9 if bottleneck else 6)
        text = _CIFAR_TEXT.format(
            n=n, block="bottleneck" if bottleneck else "basic"
        )
        shape = "(32, 32, 3)"
    else:
        from keras_preact.models.layouts import IMAGENET_DEPTHS

        block, units = IMAGENET_DEPTHS[depth]
        text = _IMAGENET_TEXT.format(units=units, block=block)
        shape = "(224, 224, 3)"
    build.__name__ = build.__qualname__ = f"PreActResNet{depth}"
    build.__doc__ = _VARIANT_DOC.format(
        depth=depth,
        layout_text=text,
        default_shape=shape,
        classes=defaults[layout],
    )
    return build


CIFAR_DEPTHS = (20, 32, 44, 56, 110, 164, 1001)
IMAGENET_VARIANT_DEPTHS = (18, 34, 50, 101, 152, 200)

PreActResNet20 = _variant(20, "cifar")
PreActResNet32 = _variant(32, "cifar")
PreActResNet44 = _variant(44, "cifar")
PreActResNet56 = _variant(56, "cifar")
PreActResNet110 = _variant(110, "cifar")
PreActResNet164 = _variant(164, "cifar")
PreActResNet1001 = _variant(1001, "cifar")
PreActResNet18 = _variant(18, "imagenet")
PreActResNet34 = _variant(34, "imagenet")
PreActResNet50 = _variant(50, "imagenet")
PreActResNet101 = _variant(101, "imagenet")
PreActResNet152 = _variant(152, "imagenet")
PreActResNet200 = _variant(200, "imagenet")
