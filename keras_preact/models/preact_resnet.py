"""The general Pre-activation ResNet builder: stem, stages, head."""

import functools
import inspect
import math

import keras

from keras_preact.layers.drop_path import check_rate
from keras_preact.layers.factories import batch_norm
from keras_preact.layers.factories import conv2d
from keras_preact.layers.factories import he_normal_fan_out
from keras_preact.layers.factories import torch_linear_default
from keras_preact.layers.options import SHORTCUTS
from keras_preact.layers.options import UNIT_ORDERINGS
from keras_preact.layers.options import preactivation
from keras_preact.layers.options import standardize_data_format
from keras_preact.layers.padding import ConstantPadding2D
from keras_preact.layers.residual_unit import ResidualUnit
from keras_preact.models.layouts import resolve_layout
from keras_preact.models.weights import load_weights_file
from keras_preact.normalization import input_normalization_layer
from keras_preact.normalization import resolve_statistics
from keras_preact.validation import check_bool
from keras_preact.validation import check_choice
from keras_preact.validation import check_int
from keras_preact.validation import check_real

POOLINGS = (None, "avg", "max")
FIRST_UNIT_SHORTCUTS = ("preactivated", "raw")


def PreActResNet(
    depth=None, *, layout="cifar", block_type=None, stage_units=None,
    base_width=None, width_multiplier=1, unit_ordering="full_preact",
    shortcut="identity", stride_on=None, stem_activation=None,
    first_unit_preactivation=None, first_unit_shortcut=None,
    drop_path_rate=0.0, remat=False,
    include_top=True, input_normalization=None, weights=None,
    input_tensor=None, input_shape=None, pooling=None, classes=None,
    classifier_activation="softmax", kernel_regularizer=None, bn_momentum=0.9,
    bn_epsilon=1e-5, data_format=None, name=None,
):
    """Builds a Pre-activation ResNet (He et al., ECCV 2016).

    The network of "Identity Mappings in Deep Residual Networks", layer for
    layer: a stem, stages of residual units that downsample in their FIRST
    unit (`keras_preact.models.layouts.Stage`), a final BN-ReLU, global
    pooling and a classifier. Each residual unit is one
    `keras_preact.layers.ResidualUnit` layer named `stage{s}_unit{u}`, so
    even the 1001-layer net is a graph of a few hundred nodes that builds
    in seconds.

    CIFAR layout: a bare 3x3 conv stem with 16 filters, three stages at
    widths 16/32/64 (x4 for bottlenecks). ImageNet layout: conv7x7/2,
    BN-ReLU, maxpool 3x3/2, four stages at widths 64/128/256/512.

    Inputs are RGB images, `(batch, height, width, 3)` (`channels_last`) or
    `(batch, 3, height, width)`, float. Without `input_normalization` they
    must be normalized per channel, `(pixels - mean) / std` on the 0-255
    scale (as `keras_preact.data` and `keras_preact.normalization.normalize`
    produce them); with it the model takes 0-255 pixels.

    Outputs: with the top, `(batch, classes)` float32 probabilities (or
    logits for `classifier_activation=None`). Without it, the last feature
    map, `(batch, height / s, width / s, channels)` with `s` 4 (CIFAR) or
    32 (ImageNet), rounded up, and `channels` the last stage's width (x4
    for bottlenecks: 64 / 256 CIFAR, 512 / 2048 ImageNet), or
    `(batch, channels)` with `pooling`.

    Initialization follows the authors' Torch code: every conv kernel drawn
    on its own from `N(0, sqrt(2 / (k * k * out_channels)))`, BN gamma 1
    and beta 0, the classifier `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` with a
    zero bias (`keras_preact.layers.factories`). Call
    `keras.utils.set_random_seed(s)` first for a reproducible model.

    Args:
        depth: int. Network depth: `6n+2` (basic) or `9n+2` (bottleneck) for
            CIFAR, 18/34/50/101/152/200 for ImageNet. Optional when
            `stage_units` is given.
        layout: str. `"cifar"` or `"imagenet"`. Defaults to `"cifar"`.
        block_type: str or `None`. `"basic"` or `"bottleneck"`; `None` picks
            the paper's choice for the depth. Defaults to `None`.
        stage_units: tuple of ints or `None`. Units per stage, overriding the
            depth table (needs `block_type`). Defaults to `None`.
        base_width: int or `None`. Stem and first-stage width (16 CIFAR, 64
            ImageNet). Defaults to `None`.
        width_multiplier: int. Multiplies every stage's width (wide
            variants); the stem keeps `base_width`. Defaults to `1`.
        unit_ordering: str. One of `keras_preact.layers.UNIT_ORDERINGS`:
            the paper's Table 2. Defaults to `"full_preact"`.
        shortcut: str. One of `keras_preact.layers.SHORTCUTS`: the paper's
            Table 1. Defaults to `"identity"`.
        stride_on: str or `None`. Bottleneck stride on the `"1x1"` or the
            `"3x3"` conv; `None` follows each layout's source (the authors'
            CIFAR code: 1x1; fb.resnet.torch: 3x3). Defaults to `None`.
        stem_activation: bool or `None`. Whether the stem ends in BN-ReLU
            (ImageNet: before its max pooling). `False` on ImageNet sends
            the stem conv straight into the pooling, padded with `-inf` as
            Torch pads (timm's ResNetV2). `None`: the layout's source
            (CIFAR: only for the post-activation orderings; ImageNet:
            `True`). Defaults to `None`.
        first_unit_preactivation: bool or `None`. Whether the first unit
            applies its own pre-activation (pre-activation orderings).
            `None`: when the stem does not end in BN-ReLU. `True` after an
            activated stem is pytorchcv's ImageNet PreResNet (BN-ReLU
            twice). Defaults to `None`.
        first_unit_shortcut: `"preactivated"`, `"raw"` or `None`. What the
            first unit's identity shortcut takes when that unit
            pre-activates: its pre-activated tensor (the authors' CIFAR
            code) or its raw input (pytorchcv's CIFAR nets, timm's
            ResNetV2-18/34). A projection shortcut always takes the
            pre-activated tensor. `None`: `"preactivated"` for CIFAR,
            `"raw"` for ImageNet. Defaults to `None`.
        drop_path_rate: float in `[0, 1)`. Stochastic depth rate of the
            last unit; unit `k` of `N` drops its branch with
            `drop_path_rate * k / N`. Defaults to `0.0` (off).
        remat: bool. Recompute each residual unit's activations in the
            backward pass (`keras.remat`): less memory, more compute, the
            same numbers (see `ResidualUnit`). Defaults to `False`.
        include_top: bool. Whether to include the classifier. Defaults to
            `True`.
        input_normalization: `None`, a name in
            `keras_preact.normalization.STATISTICS` (`"cifar10"`,
            `"cifar100"`, `"imagenet"`) or a `(mean, std)` pair on the 0-255
            scale. When given, the model starts with a float32
            `keras.layers.Normalization` named `"input_normalization"`: it
            takes 0-255 pixels, and export and the pipelines read the
            statistics from it (`keras_preact.normalization.model_statistics`).
            `None`: the model takes inputs already normalized. Adds no
            weights. Defaults to `None`.
        weights: `None`, a pretrained checkpoint, or the path to a
            `.weights.h5` / `.keras` file saved from the same architecture.
            A checkpoint is named in full (a key of
            `keras_preact.pretrained.CHECKPOINTS`, such as
            `"pytorchcv/preresnet164bn_cifar100"` or
            `"timm/resnetv2_50.a1h_in1k"`) or by a short name, `"cifar10"`,
            `"cifar100"` or `"imagenet"`, for the checkpoint of that
            dataset at this layout and depth. It builds the checkpoint's
            network with its trained weights
            (`keras_preact.pretrained.build`, which downloads and converts
            them on first use): the arguments given here that differ from
            their defaults must agree with it, the others take its values,
            and the model takes 0-255 pixels (it carries the checkpoint's
            input statistics). See docs/pretrained.md. Defaults to `None`.
        input_tensor: optional Keras tensor to use as the model's input.
        input_shape: optional shape tuple without the batch axis. Defaults
            to `(32, 32, 3)` / `(224, 224, 3)` with the top, and to
            `(None, None, 3)` without it.
        pooling: `None`, `"avg"` or `"max"`: the global pooling of a
            headless model. Defaults to `None` (a 4D feature map).
        classes: int. Number of classes; defaults to 10 (CIFAR) or 1000
            (ImageNet).
        classifier_activation: str, callable or `None`. Activation of the
            classifier; `None` returns logits. Computed in float32 under a
            mixed-precision policy. Defaults to `"softmax"`.
        kernel_regularizer: optional regularizer for conv and dense kernels.
        bn_momentum: float. Defaults to `0.9` (Torch's 0.1).
        bn_epsilon: float. Defaults to `1e-5`.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.
        name: str. Model name. Defaults to `"preact_resnet{depth}"`.

    Returns:
        A functional `keras.Model`.

    Raises:
        ValueError: naming the argument and what is valid, when `layout`,
            `block_type`, `unit_ordering`, `shortcut`, `stride_on`,
            `first_unit_shortcut`, `pooling` or `data_format` is none of
            its choices; `stem_activation` or `first_unit_preactivation`
            is not a bool or `None`, or `stem_activation=False` leaves
            the stem's output unactivated (the first unit does not
            pre-activate); `depth` is
            not `6n+2` / `9n+2` (CIFAR), not in the ImageNet table or not
            what `stage_units` give; `stage_units` lacks one int >= 1 per
            stage or comes without `block_type`; `block_type` contradicts
            an ImageNet depth; `base_width`, `width_multiplier` or
            `classes` is not an int >= 1; `include_top` or `remat` is
            not a bool; `drop_path_rate` is outside
            `[0, 1)`, `bn_momentum` outside `[0, 1]`, `bn_epsilon` < 0;
            `input_shape` lacks 3 dimensions or is smaller than the
            layout's total stride (4 / 32); `input_normalization` is not a
            known name or a `(mean, std)` pair of one value per input
            channel on the 0-255 scale; `weights` is neither a checkpoint
            nor an existing `.weights.h5` / `.keras` file of this
            architecture, or an argument contradicts its checkpoint (see
            `keras_preact.pretrained.build` for the download's errors).

    Reference: He et al., "Identity Mappings in Deep Residual Networks",
    ECCV 2016, Sec. 4-5 and Tables 3-5; KaimingHe/resnet-1k-layers and
    fb.resnet.torch `preresnet.lua`.

    Example:

    >>> model = PreActResNet(164, classes=100)
    >>> model.output_shape
    (None, 100)
    >>> wide = PreActResNet(8, width_multiplier=2, unit_ordering="original")
    """
    arguments = dict(locals())
    if weights is not None:
        # keras_preact.pretrained builds its models with this function.
        from keras_preact import pretrained

        checkpoint = pretrained.registry.checkpoint_for_weights(
            weights, layout, depth
        )
        if checkpoint is not None:
            return pretrained.build(checkpoint.name, **_given(arguments))
    net = resolve_layout(
        layout, depth, block_type, stage_units, base_width, width_multiplier,
        stride_on,
    )
    data_format, input_shape, classes = _check_arguments(
        net, unit_ordering, shortcut, pooling, drop_path_rate, classes,
        input_normalization, data_format, input_shape, input_tensor,
        include_top, bn_momentum, bn_epsilon,
    )
    stem_activation, first_unit = _resolve_first_unit(
        net, unit_ordering, stem_activation, first_unit_preactivation,
        first_unit_shortcut,
    )
    # One base initializer; each conv draws its own copy of it
    # (`fresh_initializer`), in the order the layers are made.
    kernel_initializer = he_normal_fan_out()
    conv = functools.partial(
        conv2d, kernel_initializer=kernel_initializer,
        kernel_regularizer=kernel_regularizer, data_format=data_format,
    )
    bn = functools.partial(
        batch_norm, momentum=bn_momentum, epsilon=bn_epsilon,
        data_format=data_format,
    )

    if input_tensor is None:
        inputs = keras.Input(shape=input_shape)
    elif keras.backend.is_keras_tensor(input_tensor):
        inputs = input_tensor
    else:
        inputs = keras.Input(tensor=input_tensor, shape=input_shape)
    x = inputs
    if input_normalization is not None:
        x = input_normalization_layer(input_normalization, data_format)(x)
    x = _stem(x, net, stem_activation, conv, bn, data_format)
    x = _stages(
        x, net, drop_path_rate, first_unit, unit_ordering=unit_ordering,
        shortcut=shortcut, stride_on=net.stride_on,
        kernel_initializer=kernel_initializer,
        kernel_regularizer=kernel_regularizer, bn_momentum=bn_momentum,
        bn_epsilon=bn_epsilon, data_format=data_format, remat=remat,
    )
    x = _head(
        x, unit_ordering, include_top, pooling, classes,
        classifier_activation, kernel_regularizer, bn, data_format,
    )
    if input_tensor is not None:
        inputs = keras.utils.get_source_inputs(input_tensor)
    model = keras.Model(inputs, x, name=name or f"preact_resnet{net.depth}")
    if weights is not None:
        load_weights_file(model, weights)
    return model


def _given(arguments):
    """The arguments of a `PreActResNet` call that differ from its defaults,
    `weights` left out."""
    defaults = inspect.signature(PreActResNet).parameters
    return {
        key: value for key, value in arguments.items() if key != "weights"
        and not (value is defaults[key].default or (
            type(value) is type(defaults[key].default)
            and value == defaults[key].default
        ))
    }


def _check_arguments(
    net, unit_ordering, shortcut, pooling, drop_path_rate, classes,
    input_normalization, data_format, input_shape, input_tensor, include_top,
    bn_momentum, bn_epsilon,
):
    """Validates what `resolve_layout` does not. Returns the resolved
    `(data_format, input_shape, classes)`, defaults filled in."""
    check_choice("unit_ordering", unit_ordering, UNIT_ORDERINGS)
    check_choice("shortcut", shortcut, SHORTCUTS)
    check_choice("pooling", pooling, POOLINGS)
    check_bool("include_top", include_top)
    check_rate("drop_path_rate", drop_path_rate)
    check_real("bn_momentum", bn_momentum, 0.0, 1.0)
    check_real("bn_epsilon", bn_epsilon, low=0.0)
    classes = check_int(
        "classes", net.default_classes if classes is None else classes, low=1
    )
    data_format = standardize_data_format(data_format)
    if input_shape is None and input_tensor is not None:
        input_shape = tuple(input_tensor.shape[1:])
    if input_shape is None:  # The layout's default.
        size = net.default_size if include_top else None
        first = data_format == "channels_first"
        input_shape = (3, size, size) if first else (size, size, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            f"Invalid input_shape={input_shape!r}. Expected 3 dimensions, "
            f"without the batch axis, in {data_format} order."
        )
    spatial = input_shape[1:] if data_format == "channels_first" else (
        input_shape[:2]
    )
    if any(size is not None and size < net.total_stride for size in spatial):
        raise ValueError(
            f"Invalid input_shape={input_shape!r}: in {data_format} order that "
            f"is height x width {spatial[0]} x {spatial[1]}, and the {net.name} "
            f"layout downsamples by {net.total_stride}, so both must be at least "
            f"{net.total_stride}."
        )
    channels = input_shape[0 if data_format == "channels_first" else -1]
    if input_normalization is not None:
        try:
            resolve_statistics(input_normalization, channels=channels or 3)
        except ValueError as e:
            raise ValueError(
                f"Invalid input_normalization={input_normalization!r}: {e}"
            ) from None
    return data_format, input_shape, classes


def _resolve_first_unit(
    net, unit_ordering, stem_activation, first_unit_preactivation,
    first_unit_shortcut,
):
    """Fills in the layout's defaults of the stem and first-unit options.
    Returns `(stem_activation, first_unit)`, `first_unit` the keyword
    arguments of the first `ResidualUnit`."""
    check_bool("stem_activation", stem_activation, allow_none=True)
    check_bool(
        "first_unit_preactivation", first_unit_preactivation, allow_none=True
    )
    check_choice(
        "first_unit_shortcut", first_unit_shortcut,
        (None, *FIRST_UNIT_SHORTCUTS),
    )
    if stem_activation is None:
        stem_activation = net.name == "imagenet" or not preactivation(
            unit_ordering
        )
    if first_unit_preactivation is None:
        # A post-activation ordering ignores the flag: it keeps the value
        # the layout always had there, so model configs stay the same.
        first_unit_preactivation = not stem_activation if preactivation(
            unit_ordering) else net.name == "cifar"
    if not stem_activation and not (
        preactivation(unit_ordering) and first_unit_preactivation
    ):
        cause = ("first_unit_preactivation=False" if preactivation(
            unit_ordering) else f"unit_ordering={unit_ordering!r}, whose "
            "units start with a convolution")
        raise ValueError(
            f"Invalid stem_activation=False with {cause}: nothing would "
            "activate the stem's output before the first unit's "
            "convolution. Use stem_activation=True or a pre-activating "
            "first unit."
        )
    if first_unit_shortcut is None:
        first_unit_shortcut = (
            "preactivated" if net.name == "cifar" else "raw"
        )
    return stem_activation, dict(
        preactivate=first_unit_preactivation,
        # "raw": the ResidualUnit default (a projection still takes the
        # pre-activated tensor).
        preactivated_shortcut=(
            True if first_unit_shortcut == "preactivated" else None
        ),
    )


def _stem(x, net, stem_activation, conv, bn, data_format):
    """The layers before the first unit (the stem of the layout's source).

    CIFAR: a 3x3 conv, then BN-ReLU if `stem_activation`. ImageNet: a 7x7/2
    conv, BN-ReLU if `stem_activation`, and a 3x3/2 max pooling, padded as
    Torch pads.
    """
    pad = dict(data_format=data_format)
    if net.name == "imagenet":
        x = keras.layers.ZeroPadding2D(3, name="stem_pad", **pad)(x)
        x = conv(net.stem_filters, 7, 2, name="stem_conv", padding="valid")(x)
    else:
        x = conv(net.stem_filters, 3, 1, name="stem_conv")(x)
    if stem_activation:
        x = bn(name="stem_bn")(x)
        x = keras.layers.ReLU(name="stem_relu")(x)
    if net.name == "cifar":
        return x
    if stem_activation:  # Zero padding equals Torch's -inf: inputs are >= 0.
        x = keras.layers.ZeroPadding2D(1, name="stem_pool_pad", **pad)(x)
    else:
        x = ConstantPadding2D(1, -math.inf, name="stem_pool_pad", **pad)(x)
    return keras.layers.MaxPooling2D(3, 2, name="stem_pool", **pad)(x)


def _stages(x, net, drop_path_rate, first_unit, **unit_kwargs):
    """The `ResidualUnit`s `stage{s}_unit{u}`, stage by stage (`net.stages`):
    a stage's first unit has its stride, the others 1; unit `k` of `N` drops
    its branch with `drop_path_rate * k / N`; the net's first unit takes
    `first_unit` (its pre-activation and shortcut input)."""
    total_units = sum(stage.units for stage in net.stages)
    index = 0
    for stage in net.stages:
        for unit in range(1, stage.units + 1):
            first_of_net = index == 0
            index += 1
            x = ResidualUnit(
                stage.filters,
                bottleneck=net.bottleneck,
                strides=stage.strides if unit == 1 else 1,
                drop_path_rate=drop_path_rate * index / total_units,
                name=stage.unit_name(unit),
                **(first_unit if first_of_net else {}),
                **unit_kwargs,
            )(x)
    return x


def _head(
    x, unit_ordering, include_top, pooling, classes, classifier_activation,
    kernel_regularizer, bn, data_format,
):
    """The final activation (the ordering's pre-activation once more, Sec.
    4.1), then the classifier or the global pooling. The ReLU stays its own
    layer: the head keeps keras.applications ResNetV2's names ("post_bn",
    "post_relu"), and "post_relu" is the last feature map."""
    final_activation = preactivation(unit_ordering)
    if "bn_relu" in final_activation:
        x = bn(name="post_bn")(x)
    if final_activation:
        x = keras.layers.ReLU(name="post_relu")(x)
    if include_top or pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(
            data_format=data_format, name="avg_pool"
        )(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(
            data_format=data_format, name="max_pool"
        )(x)
    if not include_top:
        return x
    # Logits and softmax in float32, whatever the global policy.
    return keras.layers.Dense(
        classes, activation=classifier_activation,
        kernel_initializer=torch_linear_default(),
        kernel_regularizer=kernel_regularizer, dtype="float32",
        name="predictions",
    )(x)

