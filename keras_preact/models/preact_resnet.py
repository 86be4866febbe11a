"""The general Pre-activation ResNet builder."""

import keras

from keras_preact.layers.factories import batch_norm
from keras_preact.layers.factories import conv2d
from keras_preact.layers.factories import he_normal_fan_out
from keras_preact.layers.factories import torch_linear_default
from keras_preact.layers.options import PRE_ACTIVATION_ORDERINGS
from keras_preact.layers.options import SHORTCUTS
from keras_preact.layers.options import UNIT_ORDERINGS
from keras_preact.layers.options import standardize_data_format
from keras_preact.layers.options import validate_choice
from keras_preact.layers.residual_unit import ResidualUnit
from keras_preact.models.layouts import resolve_layout
from keras_preact.models.weights import load_weights_file
from keras_preact.preprocessing import input_normalization_layer
from keras_preact.preprocessing import resolve_statistics

POOLINGS = (None, "avg", "max")


def PreActResNet(
    depth=None,
    *,
    layout="cifar",
    block_type=None,
    stage_units=None,
    base_width=None,
    width_multiplier=1,
    unit_ordering="full_preact",
    shortcut="identity",
    stride_on=None,
    drop_path_rate=0.0,
    remat=False,
    include_top=True,
    input_normalization=None,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=None,
    classifier_activation="softmax",
    kernel_regularizer=None,
    bn_momentum=0.9,
    bn_epsilon=1e-5,
    data_format=None,
    name=None,
):
    """Builds a Pre-activation ResNet (He et al., ECCV 2016).

    The network of "Identity Mappings in Deep Residual Networks", layer for
    layer: a stem, stages of residual units that downsample in their FIRST
    unit, a final BN-ReLU, global pooling and a classifier. Each residual
    unit is one `keras_preact.layers.ResidualUnit` layer named
    `stage{s}_unit{u}`, so even the 1001-layer net is a graph of a few
    hundred nodes that builds in seconds.

    CIFAR layout: a bare 3x3 conv stem with 16 filters, three stages at
    widths 16/32/64 (x4 for bottlenecks). ImageNet layout: conv7x7/2,
    BN-ReLU, maxpool 3x3/2, four stages at widths 64/128/256/512.

    Initialization follows the authors' Torch code (resnet-pre-act.lua,
    fb.resnet.torch): every conv kernel is drawn independently from
    `N(0, sqrt(2 / (k * k * out_channels)))`, BN gamma 1 and beta 0, and the
    classifier keeps Torch's `nn.Linear` default `U(-1/sqrt(n), 1/sqrt(n))`
    (n = fan-in) with a zero bias. Call `keras.utils.set_random_seed(s)`
    before building for a reproducible model.

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
        drop_path_rate: float. Stochastic depth rate of the last unit; unit
            `k` of `N` drops its branch with `drop_path_rate * k / N`.
            Defaults to `0.0` (off).
        remat: bool. Recompute each residual unit's activations in the
            backward pass (`keras.remat`), trading compute for memory: deep
            nets fit larger batches. Nothing else changes: predictions,
            gradients, BN moving statistics and stochastic-depth draws equal
            those of `remat=False` up to float rounding (see
            `ResidualUnit`). Defaults to `False`.
        include_top: bool. Whether to include the classifier. Defaults to
            `True`.
        input_normalization: `None`, a name in
            `keras_preact.preprocessing.STATISTICS` (`"cifar10"`,
            `"cifar100"`, `"imagenet"`) or a `(mean, std)` pair on the 0-255
            scale. When given, the model starts with a float32
            `keras.layers.Normalization` named `"input_normalization"`: it
            takes 0-255 pixels, and export and the pipelines read the
            statistics from it (`keras_preact.preprocessing.input_statistics`).
            `None`: the model takes inputs already normalized. Adds no
            weights. Defaults to `None`.
        weights: `None` or the path to a `.weights.h5` / `.keras` file saved
            from the same architecture. Defaults to `None`.
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

    Example:

    >>> model = PreActResNet(164, classes=100)
    >>> model.output_shape
    (None, 100)
    >>> wide = PreActResNet(8, width_multiplier=2, unit_ordering="original")
    """
    net = resolve_layout(
        layout,
        depth,
        block_type,
        stage_units,
        base_width,
        width_multiplier,
        stride_on,
    )
    validate_choice("unit_ordering", unit_ordering, UNIT_ORDERINGS)
    validate_choice("shortcut", shortcut, SHORTCUTS)
    validate_choice("pooling", pooling, POOLINGS)
    if input_normalization is not None:
        resolve_statistics(input_normalization)
    if classes is None:
        classes = 10 if layout == "cifar" else 1000
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(
            f"Invalid classes={classes!r}. Expected an int >= 1."
        )
    if not 0.0 <= drop_path_rate < 1.0:
        raise ValueError(
            f"Invalid drop_path_rate={drop_path_rate!r}. Expected a float "
            "in [0, 1)."
        )
    data_format = standardize_data_format(data_format)
    input_shape = _input_shape(
        input_shape, input_tensor, include_top, net, data_format
    )
    kernel_init = he_normal_fan_out()
    pre_activation = unit_ordering in PRE_ACTIVATION_ORDERINGS

    def conv(filters, kernel_size, strides, layer_name, padding="same"):
        return conv2d(
            filters,
            kernel_size,
            strides,
            padding=padding,
            kernel_initializer=kernel_init,
            kernel_regularizer=kernel_regularizer,
            data_format=data_format,
            name=layer_name,
        )

    def bn(layer_name):
        return batch_norm(
            momentum=bn_momentum,
            epsilon=bn_epsilon,
            data_format=data_format,
            name=layer_name,
        )

    # === Input ===
    if input_tensor is None:
        inputs = keras.Input(shape=input_shape)
    elif keras.backend.is_keras_tensor(input_tensor):
        inputs = input_tensor
    else:
        inputs = keras.Input(tensor=input_tensor, shape=input_shape)
    x = inputs
    if input_normalization is not None:
        x = input_normalization_layer(input_normalization, data_format)(x)

    # === Stem ===
    if net.name == "cifar":
        x = conv(net.stem_filters, 3, 1, "stem_conv")(x)
        if not pre_activation:
            x = bn("stem_bn")(x)
            x = keras.layers.ReLU(name="stem_relu")(x)
    else:
        pad = dict(data_format=data_format)
        x = keras.layers.ZeroPadding2D(3, name="stem_pad", **pad)(x)
        x = conv(net.stem_filters, 7, 2, "stem_conv", padding="valid")(x)
        x = bn("stem_bn")(x)
        x = keras.layers.ReLU(name="stem_relu")(x)
        # Zero padding is safe before max pooling: inputs are >= 0 here.
        x = keras.layers.ZeroPadding2D(1, name="stem_pool_pad", **pad)(x)
        x = keras.layers.MaxPooling2D(3, 2, name="stem_pool", **pad)(x)

    # === Residual stages ===
    unit_names = [
        f"stage{s + 1}_unit{u + 1}"
        for s, count in enumerate(net.stage_units)
        for u in range(count)
    ]
    total_units = len(unit_names)
    index = 0
    for stage, (count, filters) in enumerate(
        zip(net.stage_units, net.stage_filters)
    ):
        for unit in range(count):
            first_of_net = stage == 0 and unit == 0
            x = ResidualUnit(
                filters,
                bottleneck=net.bottleneck,
                strides=2 if stage > 0 and unit == 0 else 1,
                unit_ordering=unit_ordering,
                shortcut=shortcut,
                # The ImageNet stem already ends in BN-ReLU; after the
                # bare CIFAR stem, the first unit's activation feeds
                # both paths.
                preactivate=not (first_of_net and net.name == "imagenet"),
                preactivated_shortcut=(
                    True if first_of_net and net.name == "cifar" else None
                ),
                stride_on=net.stride_on,
                drop_path_rate=drop_path_rate * (index + 1) / total_units,
                kernel_initializer=kernel_init,
                kernel_regularizer=kernel_regularizer,
                bn_momentum=bn_momentum,
                bn_epsilon=bn_epsilon,
                data_format=data_format,
                remat=remat,
                name=unit_names[index],
            )(x)
            index += 1

    # === Head ===
    # `bn` is the fused-kernel BN (factories.batch_norm). The ReLU stays its
    # own layer: the head keeps keras.applications ResNetV2's layer names
    # ("post_bn", "post_relu"), and "post_relu" is the last feature map.
    if unit_ordering == "full_preact":
        x = bn("post_bn")(x)
    if pre_activation:
        x = keras.layers.ReLU(name="post_relu")(x)
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(
            data_format=data_format, name="avg_pool"
        )(x)
        # Logits and softmax in float32, whatever the global policy.
        x = keras.layers.Dense(
            classes,
            activation=classifier_activation,
            kernel_initializer=torch_linear_default(),
            kernel_regularizer=kernel_regularizer,
            dtype="float32",
            name="predictions",
        )(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(
            data_format=data_format, name="avg_pool"
        )(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(
            data_format=data_format, name="max_pool"
        )(x)

    model_inputs = (
        keras.utils.get_source_inputs(input_tensor)
        if input_tensor is not None
        else inputs
    )
    model = keras.Model(
        model_inputs, x, name=name or f"preact_resnet{net.depth}"
    )
    if weights is not None:
        load_weights_file(model, weights)
    return model


def _input_shape(input_shape, input_tensor, include_top, net, data_format):
    """Validates the input shape and fills in the layout's default."""
    if input_shape is None and input_tensor is not None:
        input_shape = tuple(input_tensor.shape[1:])
    if input_shape is None:
        size = net.default_size if include_top else None
        return (size, size, 3) if data_format == "channels_last" else (
            3,
            size,
            size,
        )
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            f"Invalid input_shape={input_shape!r}. Expected 3 dimensions "
            f"(height, width, channels) for {data_format}, without the batch "
            "axis."
        )
    spatial = input_shape[:2] if data_format == "channels_last" else (
        input_shape[1:]
    )
    for size in spatial:
        if size is not None and size < net.total_stride:
            raise ValueError(
                f"Invalid input_shape={input_shape!r}: the {net.name} layout "
                f"downsamples by {net.total_stride}, so height and width must "
                f"be at least {net.total_stride}."
            )
    return input_shape
