"""The residual unit of He et al. (2016), in every ordering the paper compares."""

import itertools

import keras
from keras import ops

from keras_preact.layers.convolution import Conv2D
from keras_preact.layers.drop_path import DropPath
from keras_preact.layers.drop_path import check_rate
from keras_preact.layers.factories import batch_norm
from keras_preact.layers.factories import conv2d
from keras_preact.layers.factories import fresh_initializer
from keras_preact.layers.factories import he_normal_fan_out
from keras_preact.layers.options import SHORTCUTS
from keras_preact.layers.options import STRIDE_POSITIONS
from keras_preact.layers.options import UNIT_ORDERING_TABLE
from keras_preact.layers.options import UNIT_ORDERINGS
from keras_preact.layers.options import standardize_data_format
from keras_preact.validation import check_bool
from keras_preact.validation import check_choice
from keras_preact.validation import check_int
from keras_preact.validation import check_real


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

    Each is one entry of `keras_preact.layers.UNIT_ORDERING_TABLE`: what
    it puts before the convolutions, after them and after the addition.

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
            `tests/layers/test_residual_unit.py` checks it). Defaults to `False`.
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
            `data_format` is none of its choices, `bottleneck`,
            `preactivate` or `remat` is not a bool, `drop_path_rate` or
            `shortcut_dropout_rate` is outside `[0, 1)`, `bn_momentum`
            outside `[0, 1]`, `bn_epsilon` < 0, or `shortcut_scale` or
            `gate_bias` is not a number.

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
        self.filters = check_int("filters", filters, low=1)
        self.bottleneck = check_bool("bottleneck", bottleneck)
        self.strides = check_choice("strides", strides, (1, 2))
        self.unit_ordering = check_choice(
            "unit_ordering", unit_ordering, UNIT_ORDERINGS
        )
        self.shortcut = check_choice("shortcut", shortcut, SHORTCUTS)
        self.preactivate = check_bool("preactivate", preactivate)
        self.preactivated_shortcut = check_bool(
            "preactivated_shortcut", preactivated_shortcut, allow_none=True
        )
        self.stride_on = check_choice("stride_on", stride_on, STRIDE_POSITIONS)
        self.expansion = check_int("expansion", expansion, low=1)
        self.drop_path_rate = check_rate("drop_path_rate", drop_path_rate)
        self.shortcut_scale = check_real("shortcut_scale", shortcut_scale)
        self.gate_bias = check_real("gate_bias", gate_bias)
        self.shortcut_dropout_rate = check_rate(
            "shortcut_dropout_rate", shortcut_dropout_rate
        )
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or he_normal_fan_out()
        )
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bn_momentum = check_real("bn_momentum", bn_momentum, 0.0, 1.0)
        self.bn_epsilon = check_real("bn_epsilon", bn_epsilon, low=0.0)
        self.data_format = standardize_data_format(data_format)
        self.remat = check_bool("remat", remat)
        self.channel_axis = -1 if self.data_format == "channels_last" else 1
        self.output_channels = filters * expansion if bottleneck else filters
        self._create_branch(UNIT_ORDERING_TABLE[unit_ordering])
        # Shortcut layers depend on the input's channel count: see `build`.
        self.projection = self.projection_bn = None
        self.gate = self.shortcut_dropout = None
        self._frozen_on_load = ()  # names `from_config` read; see `build`

    # === Layers ===

    def _create_branch(self, ordering):
        """The layers of the residual branch, from `ordering`'s entry of the
        table. The attribute names are the keys of the weights files and
        the order of assignment the order of `weights`: both must stay."""
        before = ordering.before_convs if self.preactivate else None
        on_1x1 = self.stride_on == "1x1"
        specs = [  # (kernel size, filters, strides) of each convolution.
            (1, self.filters, self.strides if on_1x1 else 1),
            (3, self.filters, 1 if on_1x1 else self.strides),
            (1, self.output_channels, 1),
        ] if self.bottleneck else [
            (3, self.filters, self.strides), (3, self.filters, 1)
        ]
        self.convs, self.paddings = [], []
        for index, (kernel, width, stride) in enumerate(specs, 1):
            # Torch pads a strided 3x3 by one pixel on every side; Keras'
            # "same" would pad only bottom/right, so pad explicitly.
            pad = kernel == 3 and stride > 1
            self.paddings.append(keras.layers.ZeroPadding2D(
                1, data_format=self.data_format, dtype=self.dtype_policy,
                name=f"pad{index}",
            ) if pad else None)
            self.convs.append(self._make_conv(
                width, kernel, stride, f"conv{index}", "valid" if pad else "same"
            ))
        self.preact_bn = self._make_bn("preact_bn") if before == "bn_relu" else None
        # `bns[i - 1]` follows conv `i`: BN-ReLU between two convolutions,
        # then the ordering's BN (or BN-ReLU) after the last one, if any.
        self.bns = [self._make_bn(f"bn{i}") for i in range(1, len(specs))]
        if ordering.after_convs:
            self.bns.append(self._make_bn(
                f"bn{len(specs)}", relu=ordering.after_convs == "bn_relu"
            ))
        self.post_add_bn = self._make_bn("post_add_bn") if (
            ordering.after_addition == "bn_relu") else None
        self.drop_path = DropPath(
            self.drop_path_rate, dtype=self.dtype_policy, name="drop_path"
        ) if self.drop_path_rate > 0 else None
        self._relu_before_convs = before == "relu"
        self._bn_after_convs = ordering.after_convs is not None
        self._relu_after_addition = ordering.after_addition == "relu"

    def _make_conv(self, filters, kernel_size, strides, name, padding="same"):
        return conv2d(
            filters, kernel_size, strides, padding=padding,
            kernel_initializer=self.kernel_initializer,
            kernel_regularizer=self.kernel_regularizer,
            data_format=self.data_format, dtype=self.dtype_policy, name=name,
            seed_salt=f"{self.name}/{name}",
        )

    def _make_bn(self, name, relu=True):
        return batch_norm(
            momentum=self.bn_momentum, epsilon=self.bn_epsilon,
            data_format=self.data_format, dtype=self.dtype_policy, name=name,
            activation="relu" if relu else None,
        )

    def build(self, input_shape):
        self.uses_projection = self.shortcut == "conv1x1" or self.strides != 1 or (
            input_shape[self.channel_axis] != self.output_channels
        )
        if self.uses_projection:
            self.projection = self._make_conv(
                self.output_channels, 1, self.strides, "projection"
            )
            # Post-activation orderings: a BN after it, as the original ResNet.
            if not UNIT_ORDERING_TABLE[self.unit_ordering].before_convs:
                self.projection_bn = self._make_bn("projection_bn", relu=False)
        elif self.shortcut in ("exclusive_gating", "shortcut_only_gating"):
            self.gate = Conv2D(
                self.output_channels, 1,
                kernel_initializer=fresh_initializer(
                    self.kernel_initializer, f"{self.name}/gate"
                ),
                kernel_regularizer=self.kernel_regularizer,
                bias_initializer=keras.initializers.Constant(self.gate_bias),
                data_format=self.data_format, dtype=self.dtype_policy,
                name="gate",
            )
        elif self.shortcut == "dropout":
            self.shortcut_dropout = keras.layers.Dropout(
                self.shortcut_dropout_rate, dtype=self.dtype_policy,
                name="shortcut_dropout",
            )
        self._preactivated_shortcut = self.uses_projection if (
            self.preactivated_shortcut is None) else self.preactivated_shortcut
        # Each layer is built on the shape it is called on.
        branch = itertools.chain(*itertools.zip_longest(
            self.paddings, self.convs, self.bns
        ))
        for chain in ([self.preact_bn, *branch, self.post_add_bn],
                      [self.projection, self.projection_bn], [self.gate]):
            shape = input_shape
            for layer in chain:
                if layer is not None:
                    layer.build(shape)
                    shape = layer.compute_output_shape(shape)
        for layer in self._weighted_layers():
            if layer.name in self._frozen_on_load:
                layer.trainable = False
        self.built = True

    def _weighted_layers(self):
        """The unit's layers that can hold weights (those built so far)."""
        return [layer for layer in (
            self.preact_bn, *self.convs, *self.bns, self.post_add_bn,
            self.projection, self.projection_bn, self.gate,
        ) if layer is not None]

    # === Forward pass ===

    def call(self, inputs, training=None):
        inputs = ops.cast(inputs, self.compute_dtype)
        if not self.remat:
            return self._forward(inputs, training)
        return self._rematerialized_forward(inputs, training)

    def _forward(self, inputs, training):
        """The paper's full pre-activation unit (Fig. 4e), top to bottom."""
        if self.unit_ordering != "full_preact":
            return self._other_ordering(inputs, training)
        x = inputs
        if self.preact_bn is not None:
            x = self._apply(self.preact_bn, x, training=training)  # BN-ReLU.
        shortcut = x if self._preactivated_shortcut else inputs
        x = self._conv(0, x)
        for index in range(1, len(self.convs)):  # BN-ReLU-conv.
            x = self._apply(self.bns[index - 1], x, training=training)
            x = self._conv(index, x)
        if self.drop_path is not None:
            x = self._apply(self.drop_path, x, training=training)
        return self._merge(shortcut, x, training)

    def _other_ordering(self, inputs, training):
        """The other orderings of Table 2: where BN and ReLU go is the
        unit's entry of `UNIT_ORDERING_TABLE`."""
        x = ops.relu(inputs) if self._relu_before_convs else inputs
        shortcut = x if self._preactivated_shortcut else inputs
        x = self._conv(0, x)
        for index in range(1, len(self.convs)):  # BN-ReLU-conv.
            x = self._apply(self.bns[index - 1], x, training=training)
            x = self._conv(index, x)
        if self._bn_after_convs:
            x = self._apply(self.bns[-1], x, training=training)
        if self.drop_path is not None:
            x = self._apply(self.drop_path, x, training=training)
        x = self._merge(shortcut, x, training)
        if self.post_add_bn is not None:
            x = self._apply(self.post_add_bn, x, training=training)
        elif self._relu_after_addition:
            x = ops.relu(x)
        return x

    def _apply(self, layer, *args, **kwargs):
        """`layer(*args, **kwargs)`; on torch, `layer.call(*args, **kwargs)`.

        torch runs every step eagerly, so Keras' `Layer.__call__`
        bookkeeping (argument binding, input casting, scopes) recurs for
        each of a deep network's hundreds of layers at every step, at about
        the cost of a small convolution on a CPU. The unit's layers need
        none of it: `build` built them, `call` cast the inputs to their
        shared compute dtype, and each one computes in its input's dtype.
        On TensorFlow and JAX the step is traced once, so the layers keep
        their `__call__`. So do the layers of a `remat` unit, whose
        recomputation runs in the backward pass; a layer with torch module
        hooks (`register_forward_hook` and the like), which only `__call__`
        runs; and every layer while `torch.compile` traces the step, which
        it then runs without Python.
        """
        if (self.remat or keras.backend.backend() != "torch"
                or _needs_module_call(layer)):
            return layer(*args, **kwargs)
        return layer.call(*args, **kwargs)

    def _conv(self, index, x):
        """Convolution `index` of the branch, after its padding if it has one."""
        if self.paddings[index] is not None:
            x = self._apply(self.paddings[index], x)
        return self._apply(self.convs[index], x)

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

    def _merge(self, shortcut_input, residual, training):
        if self.projection is not None:
            shortcut = self._apply(self.projection, shortcut_input)
            if self.projection_bn is not None:
                shortcut = self._apply(
                    self.projection_bn, shortcut, training=training
                )
            return shortcut + residual
        if self.shortcut == "constant_scaling":
            scale = self.shortcut_scale
            return scale * shortcut_input + (1.0 - scale) * residual
        if self.gate is not None:
            gate = ops.sigmoid(self._apply(self.gate, shortcut_input))
            if self.shortcut == "exclusive_gating":
                residual = gate * residual
            return (1.0 - gate) * shortcut_input + residual
        if self.shortcut_dropout is not None:
            shortcut_input = self._apply(
                self.shortcut_dropout, shortcut_input, training=training
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
        # Layers frozen inside a trainable unit (fine-tuning freezes its
        # BNs): Keras saves only the unit's own `trainable`.
        frozen = [layer.name for layer in self._weighted_layers()
                  if not layer.trainable]
        if frozen and self.trainable:
            config["frozen_layers"] = frozen
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        frozen = tuple(config.pop("frozen_layers", ()))
        unit = super().from_config(config)
        unit._frozen_on_load = frozen  # applied in `build`
        return unit


@keras.saving.register_keras_serializable(package="keras_preact")
class PreActBasicUnit(ResidualUnit):
    """The basic unit: two 3x3 convolutions (by default the full
    pre-activation BN-ReLU-conv3x3, BN-ReLU-conv3x3).

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
    """The bottleneck unit: 1x1, 3x3, 1x1 convolutions (by default the full
    pre-activation BN-ReLU-conv1x1, BN-ReLU-conv3x3, BN-ReLU-conv1x1).

    A `ResidualUnit` with `bottleneck=True`; see it for all arguments. It
    outputs `filters * expansion` channels (expansion 4 by default).

    Example:

    >>> PreActBottleneckUnit(16)(keras.ops.ones((1, 8, 8, 64))).shape
    (1, 8, 8, 64)
    """

    def __init__(self, filters, **kwargs):
        kwargs.pop("bottleneck", None)
        super().__init__(filters, bottleneck=True, **kwargs)


def _needs_module_call(module):
    """Whether `module` must run through `torch.nn.Module.__call__`: while
    `torch.compile` traces (its guards then follow each layer's hooks), or
    when torch would run hooks around it: its own or global forward and
    backward hooks (torch's own test for its fast path)."""
    import torch
    from torch.nn.modules import module as torch_module

    if torch.compiler.is_compiling():
        return True
    return bool(module._forward_hooks or module._forward_pre_hooks
                or module._backward_hooks or module._backward_pre_hooks
                or torch_module._global_forward_hooks
                or torch_module._global_forward_pre_hooks
                or torch_module._global_backward_hooks
                or torch_module._global_backward_pre_hooks)
