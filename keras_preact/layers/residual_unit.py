"""The residual unit of He et al. (2016), in every ordering the paper compares."""

import keras
from keras import ops

from keras_preact.layers.drop_path import DropPath
from keras_preact.layers.drop_path import check_rate
from keras_preact.layers.factories import batch_norm
from keras_preact.layers.factories import conv2d
from keras_preact.layers.factories import fresh_initializer
from keras_preact.layers.factories import he_normal_fan_out
from keras_preact.layers.options import SHORTCUTS
from keras_preact.layers.options import STRIDE_POSITIONS
from keras_preact.layers.options import UNIT_ORDERING_STEPS
from keras_preact.layers.options import UNIT_ORDERINGS
from keras_preact.layers.options import preactivation
from keras_preact.layers.options import standardize_data_format
from keras_preact.validation import check_choice
from keras_preact.validation import check_int


def unit_steps(unit_ordering, paddings, convs, preactivate=True):
    """`UNIT_ORDERING_STEPS[unit_ordering]` expanded for one unit's layers
    (`paddings`: one `ZeroPadding2D` or `None` per conv of `convs`);
    `preactivate=False` drops the pre-activation.

    Returns:
        A tuple of `(kind, layer name)` pairs, input to output: `"bn"`,
        `"bn_relu"` (named `"preact_bn"` before the convs, `"bn{i}"` after
        conv `i`, `"post_add_bn"` after the addition), `"pad"`, `"conv"`,
        and, without a layer, `"relu"`, `"branch"` (the shortcut branches
        off) and `"add"`.
    """
    template = UNIT_ORDERING_STEPS[unit_ordering]
    first_conv, addition = template.index("convs"), template.index("add")
    steps = []
    for position, step in enumerate(template):
        if step == "convs":
            steps.append(("branch", None))
            for index, (pad, conv) in enumerate(zip(paddings, convs)):
                if index > 0:  # BN-ReLU between two convolutions.
                    steps.append(("bn_relu", f"bn{index}"))
                if pad is not None:
                    steps.append(("pad", pad.name))
                steps.append(("conv", conv.name))
        elif position < first_conv and not preactivate:
            continue
        elif step in ("relu", "add"):
            steps.append((step, None))
        elif position < first_conv:
            steps.append((step, "preact_bn"))
        else:
            after = "post_add_bn" if position > addition else f"bn{len(convs)}"
            steps.append((step, after))
    return tuple(steps)


@keras.saving.register_keras_serializable(package="keras_preact")
class ResidualUnit(keras.layers.Layer):
    """A residual unit: `x_{l+1} = f(h(x_l) + F(x_l))`.

    By default this is the paper's full pre-activation unit: BN and ReLU
    come before each convolution, the shortcut `h` is the identity and
    nothing follows the addition. Where the unit changes the channel count
    or the resolution, `h` is a bias-free 1x1 projection that takes the same
    pre-activated tensor as the residual branch (BN-ReLU computed once).

    `unit_ordering` and `shortcut` select the alternatives of the paper's
    Table 2 (Fig. 4) and Table 1 (Fig. 2), so its ablations can be rebuilt:

    - `"original"`: conv-BN-ReLU-...-conv-BN, add, ReLU.
    - `"bn_after_addition"`: conv-BN-ReLU-...-conv, add, BN, ReLU.
    - `"relu_before_addition"`: conv-BN-ReLU-...-conv-BN-ReLU, add.
    - `"relu_only_preact"`: ReLU-conv-BN-...-ReLU-conv-BN, add.
    - `"full_preact"`: BN-ReLU-conv-...-BN-ReLU-conv, add.

    Each is one entry of `keras_preact.layers.UNIT_ORDERING_STEPS`;
    `unit.steps` expands it for this unit (`unit_steps`), and building,
    calling and remat all walk it.

    Shortcut variants (applied where shapes match; a unit that changes
    shape always uses the projection):

    - `"identity"`: `h(x) = x`.
    - `"constant_scaling"`: `shortcut_scale * x + (1 - shortcut_scale) * F`.
    - `"exclusive_gating"`: `g * F + (1 - g) * x`, `g = sigmoid(conv1x1(x))`.
    - `"shortcut_only_gating"`: `F + (1 - g) * x`.
    - `"conv1x1"`: a 1x1 convolution on every shortcut.
    - `"dropout"`: `dropout(x) + F` with rate `shortcut_dropout_rate`.

    Post-activation orderings put a BN after the projection convolution, as
    the original ResNet does; pre-activation orderings do not.

    Every BN is a `keras_preact.layers.BatchNormalization`: Keras' layer
    (same variables, weight files and numbers) on the backend's fused
    batch-norm kernel, with the ReLU that directly follows it, if any,
    fused in (`BatchNormalization(activation="relu")`).

    Args:
        filters: int. Width of the unit's convolutions; a bottleneck unit
            outputs `filters * expansion` channels.
        bottleneck: bool. 1x1-3x3-1x1 bottleneck instead of two 3x3
            convolutions. Defaults to `False`.
        strides: int. Spatial stride of the unit, 1 or 2. Defaults to `1`.
        unit_ordering: str. One of the orderings above. Defaults to
            `"full_preact"`.
        shortcut: str. One of the shortcut variants above. Defaults to
            `"identity"`.
        preactivate: bool. For pre-activation orderings: whether the unit
            applies its first (BN-)ReLU. `False` for a unit whose input
            already went through BN-ReLU, such as the first unit after the
            ImageNet stem. Defaults to `True`.
        preactivated_shortcut: bool or `None`. Whether the shortcut takes
            the pre-activated tensor. `None` means: only when it is a
            projection. `True` for the first unit after a bare conv stem
            (the CIFAR nets). Defaults to `None`.
        stride_on: str. Bottleneck only: put the stride on the first
            `"1x1"` convolution (the authors' CIFAR code) or on the `"3x3"`
            (fb.resnet.torch, timm). Defaults to `"3x3"`.
        expansion: int. Bottleneck output expansion. Defaults to `4`.
        drop_path_rate: float. Stochastic depth rate of the residual branch.
            Defaults to `0.0`.
        shortcut_scale: float. Scale of `"constant_scaling"`. Defaults to `0.5`.
        gate_bias: float. Initial bias of the gating 1x1 convolution.
            Defaults to `-6.0` (the paper's best setting).
        shortcut_dropout_rate: float. Rate of `"dropout"`. Defaults to `0.5`.
        kernel_initializer: initializer for the convolutions; each
            convolution gets its own copy (`fresh_initializer`), so no two
            kernels are tied. Defaults to He normal over fan-out,
            `N(0, sqrt(2 / (k * k * out_channels)))`, the authors' `ConvInit`.
        kernel_regularizer: optional regularizer for convolution kernels.
        bn_momentum: float. Defaults to `0.9` (Torch's 0.1).
        bn_epsilon: float. Defaults to `1e-5`.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.
        remat: bool. Recompute the unit's activations in the backward pass
            (`keras.remat`) instead of keeping them, to save memory. Only
            memory and compute change: outputs, gradients, BN moving
            statistics and random masks equal those of `remat=False` up to
            float rounding (see `_rematerialized_forward`;
            `tests/test_remat.py` checks it). Defaults to `False`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: 4D tensor, `(batch, height, width, channels)` for
            `"channels_last"`, `(batch, channels, height, width)` for
            `"channels_first"`. Any scale: the previous layer's output.
        training: bool or `None`. Batch statistics, drop path and shortcut
            dropout when `True`. Defaults to `None` (inference).

    Returns:
        A 4D tensor with `filters` channels (`filters * expansion` for a
        bottleneck) and height and width divided by `strides` (rounded up),
        in the layer's compute dtype.

    Raises:
        ValueError: `filters` or `expansion` is not an int >= 1, `strides`
            is not 1 or 2, `unit_ordering`, `shortcut`, `stride_on` or
            `data_format` is none of its choices, or `drop_path_rate` or
            `shortcut_dropout_rate` is outside `[0, 1)`.

    Reference: He et al., "Identity Mappings in Deep Residual Networks",
    ECCV 2016, Sec. 3-4, Fig. 2 and 4; the authors' `resnet-pre-act.lua`
    (KaimingHe/resnet-1k-layers) and fb.resnet.torch `preresnet.lua`.

    Example:

    >>> unit = ResidualUnit(16, bottleneck=True, strides=2)
    >>> unit(keras.ops.ones((1, 32, 32, 64))).shape
    (1, 16, 16, 64)
    """

    def __init__(
        self, filters, bottleneck=False, strides=1,
        unit_ordering="full_preact", shortcut="identity", preactivate=True,
        preactivated_shortcut=None, stride_on="3x3", expansion=4,
        drop_path_rate=0.0, shortcut_scale=0.5, gate_bias=-6.0,
        shortcut_dropout_rate=0.5, kernel_initializer=None,
        kernel_regularizer=None, bn_momentum=0.9, bn_epsilon=1e-5,
        data_format=None, remat=False, **kwargs,
    ):
        super().__init__(**kwargs)
        filters = check_int("filters", filters, low=1)
        check_choice("strides", strides, (1, 2))
        check_choice("unit_ordering", unit_ordering, UNIT_ORDERINGS)
        check_choice("shortcut", shortcut, SHORTCUTS)
        check_choice("stride_on", stride_on, STRIDE_POSITIONS)
        check_int("expansion", expansion, low=1)

        self.filters = filters
        self.bottleneck = bool(bottleneck)
        self.strides = strides
        self.unit_ordering = unit_ordering
        self.shortcut = shortcut
        self.preactivate = bool(preactivate)
        self.preactivated_shortcut = preactivated_shortcut
        self.stride_on = stride_on
        self.expansion = expansion
        self.drop_path_rate = check_rate("drop_path_rate", drop_path_rate)
        self.shortcut_scale = float(shortcut_scale)
        self.gate_bias = float(gate_bias)
        self.shortcut_dropout_rate = check_rate(
            "shortcut_dropout_rate", shortcut_dropout_rate
        )
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or he_normal_fan_out()
        )
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon
        self.data_format = standardize_data_format(data_format)
        self.remat = bool(remat)
        self.channel_axis = -1 if self.data_format == "channels_last" else 1
        self.output_channels = filters * expansion if bottleneck else filters
        self.is_pre_activation = bool(preactivation(unit_ordering))

        # === Residual branch ===
        self.convs = []
        self.paddings = []
        for index, (kernel, width, strides) in enumerate(self._conv_specs()):
            # Torch pads a strided 3x3 by one pixel on every side; Keras'
            # "same" would pad only bottom/right, so pad explicitly.
            pad = kernel == 3 and strides > 1
            self.paddings.append(keras.layers.ZeroPadding2D(
                1, data_format=self.data_format, dtype=self.dtype_policy,
                name=f"pad{index + 1}",
            ) if pad else None)
            self.convs.append(self._conv(
                width, kernel, strides, name=f"conv{index + 1}",
                padding="valid" if pad else "same",
            ))
        self.steps = unit_steps(
            unit_ordering, self.paddings, self.convs, self.preactivate
        )
        # The BNs the steps name, tracked in step order (the order of the
        # weights): "preact_bn", the branch's "bn{i}", "post_add_bn".
        bns = {
            name: self._batch_norm(name, relu=kind == "bn_relu")
            for kind, name in self.steps if kind in ("bn", "bn_relu")
        }
        self.preact_bn = bns.pop("preact_bn", None)
        post_add_bn = bns.pop("post_add_bn", None)
        self.bns = list(bns.values())
        self.post_add_bn = post_add_bn
        self.drop_path = DropPath(
            self.drop_path_rate, dtype=self.dtype_policy, name="drop_path"
        ) if self.drop_path_rate > 0 else None
        # Shortcut layers depend on the input's channel count: see `build`.
        self.projection = self.projection_bn = None
        self.gate = self.shortcut_dropout = None

    # === Layers ===

    def _conv_specs(self):
        """(kernel size, filters, strides) of each convolution, in order."""
        if not self.bottleneck:
            return [(3, self.filters, self.strides), (3, self.filters, 1)]
        on_1x1 = self.stride_on == "1x1"
        return [
            (1, self.filters, self.strides if on_1x1 else 1),
            (3, self.filters, 1 if on_1x1 else self.strides),
            (1, self.output_channels, 1),
        ]

    def _conv(self, filters, kernel_size, strides, name, padding="same"):
        return conv2d(
            filters, kernel_size, strides, padding=padding,
            kernel_initializer=self.kernel_initializer,
            kernel_regularizer=self.kernel_regularizer,
            data_format=self.data_format, dtype=self.dtype_policy, name=name,
            seed_salt=f"{self.name}/{name}",
        )

    def _batch_norm(self, name, relu=False):
        return batch_norm(
            momentum=self.bn_momentum, epsilon=self.bn_epsilon,
            data_format=self.data_format, dtype=self.dtype_policy, name=name,
            activation="relu" if relu else None,
        )

    def _step_layers(self):
        """The layers `self.steps` name, by name."""
        layers = [self.preact_bn, self.post_add_bn, *self.bns, *self.convs]
        layers += self.paddings
        return {layer.name: layer for layer in layers if layer is not None}

    def build(self, input_shape):
        self.uses_projection = self.shortcut == "conv1x1" or self.strides != 1 or (
            input_shape[self.channel_axis] != self.output_channels
        )
        if self.uses_projection:
            self.projection = self._conv(
                self.output_channels, 1, self.strides, name="projection"
            )
            self.projection.build(input_shape)
            if not self.is_pre_activation:
                self.projection_bn = self._batch_norm("projection_bn")
                self.projection_bn.build(
                    self.projection.compute_output_shape(input_shape)
                )
        elif self.shortcut in ("exclusive_gating", "shortcut_only_gating"):
            self.gate = keras.layers.Conv2D(
                self.output_channels, 1,
                kernel_initializer=fresh_initializer(
                    self.kernel_initializer, f"{self.name}/gate"
                ),
                kernel_regularizer=self.kernel_regularizer,
                bias_initializer=keras.initializers.Constant(self.gate_bias),
                data_format=self.data_format, dtype=self.dtype_policy,
                name="gate",
            )
            self.gate.build(input_shape)
        elif self.shortcut == "dropout":
            self.shortcut_dropout = keras.layers.Dropout(
                self.shortcut_dropout_rate, dtype=self.dtype_policy,
                name="shortcut_dropout",
            )
        # Walk the steps, chaining shapes: each layer sees its input shape.
        layers = self._step_layers()
        shape = input_shape
        for _, name in self.steps:
            if name is not None:
                layers[name].build(shape)
                shape = layers[name].compute_output_shape(shape)
        self.built = True

    # === Forward pass ===

    def call(self, inputs, training=None):
        if not self.remat:
            return self._forward(inputs, training)
        return self._rematerialized_forward(inputs, training)

    def _rematerialized_forward(self, inputs, training):
        """`_forward` under `keras.remat`, with every state update outside it.

        The backward pass runs the recomputed function a second time, so it
        must be pure: a state update inside it (BN moving statistics, a
        `SeedGenerator` advancing) would be read back already updated (a
        new random mask on TensorFlow and torch) or leak a tracer out of
        `jax.checkpoint`. So the function runs the same `_forward`, with the
        real layers, inside a `keras.StatelessScope` that maps every variable
        of the unit to a snapshot of its value taken before the call; the
        values the layers assign come out as extra outputs and are assigned
        once, here, after the function. Both runs of the function see the
        same values, hence draw the same random numbers and compute the
        same batch statistics.
        """
        variables = self.variables
        # Snapshots, not the variables: the assignments below must not change
        # what the recomputation reads (a TensorFlow variable or a torch
        # parameter passed as it is would be read again, already updated).
        snapshots = [ops.copy(v.value) for v in variables]
        # Float values are inputs of the function, so that every backend
        # differentiates through them to the variables; integer ones (random
        # seed states) are captured.
        float_indices = [
            index
            for index, variable in enumerate(variables)
            if keras.backend.is_float_dtype(variable.dtype)
        ]
        assigned = []  # (variable, new value) pairs, filled while tracing.

        def forward(x, *float_values):
            values = list(snapshots)
            for index, value in zip(float_indices, float_values):
                values[index] = value
            with keras.StatelessScope(
                state_mapping=list(zip(variables, values)),
                initialize_variables=False,
            ) as scope:
                before = [scope.get_current_value(v) for v in variables]
                outputs = self._forward(x, training)
                after = [scope.get_current_value(v) for v in variables]
            assigned[:] = [
                (variable, new)
                for variable, old, new in zip(variables, before, after)
                if new is not old
            ]
            return outputs, [new for _, new in assigned]

        outputs, new_values = keras.remat(forward)(
            inputs, *[snapshots[index] for index in float_indices]
        )
        for (variable, _), value in zip(assigned, new_values):
            variable.assign(value)
        return outputs

    def _forward(self, inputs, training):
        """Walks `self.steps` over the unit's layers."""
        layers = self._step_layers()
        preactivated_shortcut = self.preactivated_shortcut
        if preactivated_shortcut is None:
            preactivated_shortcut = self.uses_projection
        x = shortcut_input = inputs
        for kind, name in self.steps:
            if kind == "branch":  # The residual branch starts here.
                if preactivated_shortcut:
                    shortcut_input = x
            elif kind == "add":
                if self.drop_path is not None:
                    x = self.drop_path(x, training=training)
                x = self._merge(shortcut_input, x, training)
            elif kind == "relu":
                x = ops.relu(x)
            else:  # A layer: padding, convolution or BN (with its ReLU).
                x = layers[name](x, training=training)
        return x

    def _merge(self, shortcut_input, residual, training):
        if self.projection is not None:
            shortcut = self.projection(shortcut_input)
            if self.projection_bn is not None:
                shortcut = self.projection_bn(shortcut, training=training)
            return shortcut + residual
        if self.shortcut == "constant_scaling":
            scale = self.shortcut_scale
            return scale * shortcut_input + (1.0 - scale) * residual
        if self.gate is not None:
            gate = ops.sigmoid(self.gate(shortcut_input))
            if self.shortcut == "exclusive_gating":
                residual = gate * residual
            return (1.0 - gate) * shortcut_input + residual
        if self.shortcut_dropout is not None:
            shortcut_input = self.shortcut_dropout(
                shortcut_input, training=training
            )
        return shortcut_input + residual

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        spatial = (1, 2) if self.data_format == "channels_last" else (2, 3)
        for axis in spatial:
            if shape[axis] is not None:
                shape[axis] = -(-shape[axis] // self.strides)
        shape[self.channel_axis] = self.output_channels
        return tuple(shape)

    # === Config ===

    def get_config(self):
        config = super().get_config()
        # The constructor's arguments, in its order.
        config.update({name: getattr(self, name) for name in (
            "filters", "bottleneck", "strides", "unit_ordering", "shortcut",
            "preactivate", "preactivated_shortcut", "stride_on", "expansion",
            "drop_path_rate", "shortcut_scale", "gate_bias",
            "shortcut_dropout_rate", "kernel_initializer",
            "kernel_regularizer", "bn_momentum", "bn_epsilon", "data_format",
            "remat",
        )})
        config["kernel_initializer"] = keras.initializers.serialize(
            self.kernel_initializer
        )
        config["kernel_regularizer"] = keras.regularizers.serialize(
            self.kernel_regularizer
        )
        return config


@keras.saving.register_keras_serializable(package="keras_preact")
class PreActBasicUnit(ResidualUnit):
    """Full pre-activation basic unit: BN-ReLU-conv3x3, BN-ReLU-conv3x3.

    A `ResidualUnit` with `bottleneck=False`; see it for all arguments.

    Example:

    >>> PreActBasicUnit(16)(keras.ops.ones((1, 8, 8, 16))).shape
    (1, 8, 8, 16)
    """

    def __init__(self, filters, **kwargs):
        kwargs.pop("bottleneck", None)
        super().__init__(filters, bottleneck=False, **kwargs)


@keras.saving.register_keras_serializable(package="keras_preact")
class PreActBottleneckUnit(ResidualUnit):
    """Full pre-activation bottleneck: BN-ReLU-conv1x1, -conv3x3, -conv1x1.

    A `ResidualUnit` with `bottleneck=True`; see it for all arguments. It
    outputs `filters * expansion` channels (expansion 4 by default).

    Example:

    >>> PreActBottleneckUnit(16)(keras.ops.ones((1, 8, 8, 64))).shape
    (1, 8, 8, 64)
    """

    def __init__(self, filters, **kwargs):
        kwargs.pop("bottleneck", None)
        super().__init__(filters, bottleneck=True, **kwargs)
