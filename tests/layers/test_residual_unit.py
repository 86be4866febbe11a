"""keras_preact.layers.residual_unit: the units against a direct NumPy
computation of the paper's formulas, how a unit calls its layers (and a unit
called by `stateless_call`), `remat=True` against the plain unit, and files
saved by the earlier unit against the current one."""

import importlib.util
import json
import os
import zipfile

import h5py
import numpy as np
import pytest

import keras
import keras_preact
from keras_preact.layers import SHORTCUTS
from keras_preact.layers import UNIT_ORDERINGS
from keras_preact.layers import BatchNormalization
from keras_preact.layers import PreActBasicUnit
from keras_preact.layers import PreActBottleneckUnit
from keras_preact.layers import ResidualUnit

from _checks import assert_all_close
from _checks import gradient_step
from _checks import numpy
from conftest import BACKEND

EPS = 1e-5


# === An independent NumPy implementation of the unit formulas ===


def np_conv(x, kernel, stride):
    """NHWC convolution with Torch's symmetric padding (k // 2)."""
    k = kernel.shape[0]
    pad = k // 2
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))
    windows = windows[:, ::stride, ::stride]  # (n, h, w, c, kh, kw)
    return np.einsum("nhwcij,ijco->nhwo", windows, kernel)


def np_bn(x, layer):
    gamma, beta, mean, var = (np.asarray(v) for v in layer.get_weights())
    return (x - mean) / np.sqrt(var + EPS) * gamma + beta


def relu(x):
    return np.maximum(x, 0.0)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def reference_unit(unit, x):
    """The unit's output in inference mode, written from the paper's Fig. 2/4."""
    layers = {layer.name: layer for layer in unit._flatten_layers(include_self=False)}
    kernels = [np.asarray(layers[f"conv{i}"].kernel) for i in (1, 2, 3) if f"conv{i}" in layers]
    strides = [1] * len(kernels)
    if unit.bottleneck:
        strides[0 if unit.stride_on == "1x1" else 1] = unit.strides
    else:
        strides[0] = unit.strides
    n = len(kernels)
    bn = lambda name, t: np_bn(t, layers[name])  # noqa: E731
    conv = lambda i, t: np_conv(t, kernels[i], strides[i])  # noqa: E731

    ordering = unit.unit_ordering
    if ordering == "full_preact":
        # BN-ReLU-conv (BN-ReLU-conv)*: the first BN-ReLU is shared.
        a = relu(bn("preact_bn", x)) if unit.preactivate else x
        r = conv(0, a)
        for i in range(1, n):
            r = conv(i, relu(bn(f"bn{i}", r)))
        shortcut_input = a
    elif ordering == "relu_only_preact":
        a = relu(x) if unit.preactivate else x
        r = bn("bn1", conv(0, a))
        for i in range(1, n):
            r = bn(f"bn{i + 1}", conv(i, relu(r)))
        shortcut_input = a
    else:
        a = x
        r = x
        for i in range(n):
            r = conv(i, r)
            last = i == n - 1
            if ordering == "bn_after_addition" and last:
                break
            r = bn(f"bn{i + 1}", r)
            if not last or ordering == "relu_before_addition":
                r = relu(r)
        shortcut_input = x

    if "projection" in layers:
        s = np_conv(shortcut_input, np.asarray(layers["projection"].kernel), unit.strides)
        if "projection_bn" in layers:
            s = bn("projection_bn", s)
        out = s + r
    else:
        s = x  # identity units of every ordering take the raw input
        if unit.shortcut == "constant_scaling":
            out = 0.5 * s + 0.5 * r
        elif unit.shortcut in ("exclusive_gating", "shortcut_only_gating"):
            gate_layer = layers["gate"]
            g = sigmoid(
                np_conv(s, np.asarray(gate_layer.kernel), 1) + np.asarray(gate_layer.bias)
            )
            out = (1 - g) * s + (g * r if unit.shortcut == "exclusive_gating" else r)
        else:  # identity, and dropout (the identity at inference)
            out = s + r

    if ordering == "original":
        out = relu(out)
    elif ordering == "bn_after_addition":
        out = relu(bn("post_add_bn", out))
    return out


def randomize(unit, rng):
    """Gives every weight, BN statistics included, a distinct random value."""
    for weight in unit.weights:
        shape = tuple(weight.shape)
        if "variance" in weight.path:
            value = rng.uniform(0.5, 2.0, shape)
        elif "gamma" in weight.path:
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0.0, 0.5, shape)
        weight.assign(value.astype("float32"))


UNIT_CASES = [
    # (bottleneck, in_channels, filters, strides, stride_on, preactivate)
    (False, 4, 4, 1, "3x3", True),  # identity shortcut
    (False, 3, 4, 2, "3x3", True),  # projection with stride
    (True, 8, 2, 1, "1x1", True),  # bottleneck identity
    (True, 4, 2, 2, "1x1", True),  # bottleneck projection, stride on the 1x1
    (True, 4, 2, 2, "3x3", True),  # bottleneck projection, stride on the 3x3
    (True, 4, 2, 2, "3x3", False),  # input already pre-activated
]


@pytest.mark.parametrize("ordering", UNIT_ORDERINGS)
@pytest.mark.parametrize("case", UNIT_CASES, ids=lambda c: "-".join(map(str, c)))
def test_unit_orderings_match_numpy_formula(ordering, case):
    bottleneck, channels, filters, strides, stride_on, preactivate = case
    unit = ResidualUnit(
        filters,
        bottleneck=bottleneck,
        strides=strides,
        stride_on=stride_on,
        unit_ordering=ordering,
        preactivate=preactivate,
    )
    x = np.random.default_rng(0).normal(size=(2, 6, 6, channels)).astype("float32")
    unit.build(x.shape)
    randomize(unit, np.random.default_rng(1))
    got = keras.ops.convert_to_numpy(unit(x, training=False))
    np.testing.assert_allclose(got, reference_unit(unit, x), rtol=1e-4, atol=1e-4)
    assert got.shape == unit.compute_output_shape(x.shape)


@pytest.mark.parametrize("shortcut", SHORTCUTS)
@pytest.mark.parametrize("ordering", ["full_preact", "original"])
def test_shortcut_variants_match_numpy_formula(shortcut, ordering):
    unit = ResidualUnit(4, shortcut=shortcut, unit_ordering=ordering)
    x = np.random.default_rng(2).normal(size=(2, 5, 5, 4)).astype("float32")
    unit.build(x.shape)
    randomize(unit, np.random.default_rng(3))
    got = keras.ops.convert_to_numpy(unit(x, training=False))
    np.testing.assert_allclose(got, reference_unit(unit, x), rtol=1e-4, atol=1e-4)


def test_projection_shares_the_preactivation_and_has_no_bias_or_bn():
    unit = PreActBottleneckUnit(4)
    unit.build((None, 8, 8, 8))  # 8 -> 16 channels: a projection
    names = sorted(w.path.split("/", 1)[1] for w in unit.weights)
    assert "projection/kernel" in names
    assert not any(name.startswith("projection_bn") for name in names)
    assert not any(name.endswith("bias") for name in names)
    # One BN before each of the three convs, no more.
    assert sum(name.endswith("gamma") for name in names) == 3


def test_first_unit_options():
    # After a bare conv stem, the identity shortcut takes the activated input.
    unit = PreActBasicUnit(4, preactivated_shortcut=True)
    x = np.random.default_rng(4).normal(size=(1, 4, 4, 4)).astype("float32")
    unit.build(x.shape)
    randomize(unit, np.random.default_rng(5))
    plain = PreActBasicUnit(4)
    plain.build(x.shape)
    plain.set_weights(unit.get_weights())
    a = np.maximum(np_bn(x, unit.preact_bn), 0)
    diff = keras.ops.convert_to_numpy(unit(x) - plain(x))
    np.testing.assert_allclose(diff, a - x, atol=1e-4)
    # After the ImageNet stem (already BN-ReLU), no second pre-activation.
    no_preact = PreActBottleneckUnit(4, preactivate=False)
    no_preact.build((None, 8, 8, 16))
    assert no_preact.preact_bn is None
    assert sum("gamma" in w.path for w in no_preact.weights) == 2


def test_unit_drop_path_only_in_training():
    unit = ResidualUnit(4, drop_path_rate=0.9)
    x = np.random.default_rng(6).normal(size=(32, 4, 4, 4)).astype("float32")
    inference = keras.ops.convert_to_numpy(unit(x, training=False))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(unit(x, training=False)), inference
    )
    training = keras.ops.convert_to_numpy(unit(x, training=True))
    # Dropped examples are exactly the (identity) shortcut.
    dropped = np.all(np.isclose(training, x).reshape(32, -1), axis=1)
    assert 10 < dropped.sum() < 32


@pytest.mark.parametrize("layer_cls", [ResidualUnit, PreActBasicUnit, PreActBottleneckUnit])
def test_config_round_trip(layer_cls):
    layer = layer_cls(
        8, strides=2, shortcut="exclusive_gating", drop_path_rate=0.1, name="u"
    )
    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(restored) is layer_cls
    assert restored.get_config() == config


@pytest.mark.parametrize("kwargs", [
    {}, {"unit_ordering": "original"}, {"shortcut": "exclusive_gating"},
])
def test_layers_frozen_inside_a_unit_stay_frozen_in_a_saved_model(kwargs, tmp_path):
    # Fine-tuning freezes the BNs inside trainable units; Keras saves only
    # each layer's own `trainable`.
    model = keras_preact.PreActResNet(
        8, base_width=4, input_shape=(8, 8, 3), classes=3, **kwargs
    )
    assert "frozen_layers" not in model.get_layer("stage2_unit1").get_config()
    for layer in keras_preact.batch_norm_layers(model):
        layer.trainable = False
    model.get_layer("stage1_unit1").convs[0].trainable = False
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert [layer.trainable for layer in keras_preact.batch_norm_layers(loaded)] == [
        False] * len(keras_preact.batch_norm_layers(model))
    assert loaded.get_layer("stage1_unit1").convs[0].trainable is False
    assert [v.path for v in loaded.trainable_weights] == [
        v.path for v in model.trainable_weights]


@pytest.mark.parametrize(
    "layer_cls, kwargs, message",
    [
        (ResidualUnit, {"unit_ordering": "post_bn"}, "unit_ordering='post_bn'"),
        (ResidualUnit, {"shortcut": "gated"}, "shortcut='gated'"),
        (ResidualUnit, {"stride_on": "5x5"}, "stride_on='5x5'"),
        (ResidualUnit, {"strides": 3}, "strides=3"),
        (ResidualUnit, {"filters": 0}, "filters=0"),
        (ResidualUnit, {"filters": 2.0}, "filters=2.0"),
        (ResidualUnit, {"expansion": 0}, "expansion=0"),
        (ResidualUnit, {"drop_path_rate": 1.0}, r"drop_path_rate=1.0\. .*\[0, 1\)"),
        (ResidualUnit, {"shortcut_dropout_rate": -0.5}, "shortcut_dropout_rate=-0.5"),
        (ResidualUnit, {"data_format": "nhwc"}, "data_format='nhwc'"),
        (PreActBottleneckUnit, {"strides": 0}, "strides=0"),
        (ResidualUnit, {"bottleneck": "no"}, r"bottleneck='no'\. Expected True or False"),
        (ResidualUnit, {"remat": "yes"}, r"remat='yes'\. Expected True or False"),
        (ResidualUnit, {"preactivate": 0}, r"preactivate=0\. Expected True or False"),
        (ResidualUnit, {"preactivated_shortcut": "auto"}, r"preactivated_shortcut='auto'"),
        (ResidualUnit, {"shortcut_scale": "0.5"}, r"shortcut_scale='0.5'\. Expected a number"),
        (ResidualUnit, {"gate_bias": float("nan")}, r"gate_bias=nan"),
        (ResidualUnit, {"bn_momentum": 1.5}, r"bn_momentum=1.5"),
    ],
)
def test_bad_arguments(layer_cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        layer_cls(**{"filters": 4, **kwargs})


# The layers each ordering of the paper's Fig. 4 gives a strided bottleneck
# unit with a projection, in the order they are tracked (the order of the
# weights); "+relu": a BN with the ReLU that follows it fused in.
ORDERING_LAYERS = {
    "full_preact": ["preact_bn+relu", "bn1+relu", "bn2+relu", "projection"],
    "original": ["bn1+relu", "bn2+relu", "bn3", "projection", "projection_bn"],
    "bn_after_addition": [
        "bn1+relu", "bn2+relu", "post_add_bn+relu", "projection", "projection_bn"
    ],
    "relu_before_addition": [
        "bn1+relu", "bn2+relu", "bn3+relu", "projection", "projection_bn"
    ],
    "relu_only_preact": ["bn1+relu", "bn2+relu", "bn3", "projection"],
}


def describe_layers(unit):
    """The unit's direct sublayers, in tracking order, as in `ORDERING_LAYERS`."""
    names = []
    for layer in unit._flatten_layers(include_self=False, recursive=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            assert type(layer) is BatchNormalization, layer.name  # The fused one.
            relu = layer.activation is keras.activations.relu
            names.append(layer.name + ("+relu" if relu else ""))
        else:
            names.append(layer.name)
    return names


@pytest.mark.parametrize("ordering", UNIT_ORDERINGS)
def test_unit_layers_follow_the_ordering_table(ordering):
    unit = ResidualUnit(2, bottleneck=True, strides=2, unit_ordering=ordering)
    unit.build((None, 8, 8, 4))
    branch = ["conv1", "pad2", "conv2", "conv3"]
    assert describe_layers(unit) == branch + ORDERING_LAYERS[ordering]
    # Without the pre-activation (the first unit after the ImageNet stem).
    plain = ResidualUnit(2, bottleneck=True, unit_ordering=ordering, preactivate=False)
    plain.build((None, 8, 8, 8))
    assert describe_layers(plain) == ["conv1", "conv2", "conv3"] + [
        name for name in ORDERING_LAYERS[ordering]
        if name != "preact_bn+relu" and not name.startswith("projection")
    ]


# === On torch a unit calls its layers without Keras' per-call bookkeeping ===

# (id, unit arguments, input shape, training)
DIRECT_CALL_CASES = [
    ("basic", dict(filters=8), (2, 6, 6, 8), False),
    ("basic_training", dict(filters=8), (2, 6, 6, 8), True),
    (
        "bottleneck_strided_drop_path",
        dict(filters=2, bottleneck=True, strides=2, drop_path_rate=0.5),
        (2, 6, 6, 4), True,
    ),
    ("exclusive_gating", dict(filters=8, shortcut="exclusive_gating"), (2, 6, 6, 8), True),
    ("dropout_shortcut", dict(filters=8, shortcut="dropout"), (2, 6, 6, 8), True),
    ("original_projection", dict(filters=4, unit_ordering="original"), (2, 6, 6, 8), True),
    ("bn_after_addition", dict(filters=8, unit_ordering="bn_after_addition"), (2, 6, 6, 8), True),
    ("relu_only_preact", dict(filters=8, unit_ordering="relu_only_preact"), (2, 6, 6, 8), False),
]


@pytest.mark.parametrize("remat", [False, True], ids=["plain", "remat"])
@pytest.mark.parametrize(
    "config, shape, training",
    [case[1:] for case in DIRECT_CALL_CASES],
    ids=[case[0] for case in DIRECT_CALL_CASES],
)
def test_layer_calls_of_a_unit(config, shape, training, remat, monkeypatch):
    """On torch (not remat) one `Layer.__call__` per unit: its own; its
    layers run their `call`. TensorFlow and JAX trace the step once, and a
    remat unit recomputes its layers in the backward pass: there every
    layer keeps its `__call__`."""
    unit = ResidualUnit(**config, remat=remat, name="unit")
    unit.build(shape)
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    expected = keras.ops.convert_to_numpy(unit(x, training=False))
    calls = []
    call = keras.Layer.__call__

    def counting_call(layer, *args, **kwargs):
        calls.append(layer.name)
        return call(layer, *args, **kwargs)

    monkeypatch.setattr(keras.Layer, "__call__", counting_call)
    outputs = keras.ops.convert_to_numpy(unit(x, training=training))
    monkeypatch.undo()
    assert calls[0] == "unit"
    if BACKEND == "torch" and not remat:
        assert calls == ["unit"]
    else:
        assert len(calls) > 1
    assert outputs.shape == expected.shape
    if not training:
        np.testing.assert_array_equal(outputs, expected)


@pytest.mark.skipif(BACKEND != "torch", reason="torch module hooks")
@pytest.mark.parametrize("register", ["forward", "forward_pre", "global_forward"])
def test_torch_hooks_on_a_units_layers_run(register):
    """A torch hook on a layer inside a unit runs, as on any torch module,
    though the unit calls its other layers' `call` directly."""
    import torch

    unit = ResidualUnit(filters=8, name="unit")
    unit.build((2, 6, 6, 8))
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 8)).astype("float32")
    expected = keras.ops.convert_to_numpy(unit(x, training=True))
    seen = []
    if register == "forward":
        handle = unit.preact_bn.register_forward_hook(
            lambda module, args, output: seen.append(module.name))
    elif register == "forward_pre":
        handle = unit.convs[1].register_forward_pre_hook(
            lambda module, args: seen.append(module.name))
    else:
        handle = torch.nn.modules.module.register_module_forward_hook(
            lambda module, args, output: seen.append(module.name))
    try:
        outputs = keras.ops.convert_to_numpy(unit(x, training=True))
    finally:
        handle.remove()
    if register == "forward":
        assert seen == [unit.preact_bn.name]
    elif register == "forward_pre":
        assert seen == [unit.convs[1].name]
    else:
        assert {layer.name for layer in unit.convs} <= set(seen)
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-5)
    seen.clear()
    unit(x, training=True)
    assert seen == []


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "torch", reason="torch module hooks under torch.compile")
def test_torch_hooks_on_a_units_layers_run_under_torch_compile():
    """Under `torch.compile(model)` a hook on a layer inside a unit runs at
    every call, as it does on Keras' own layers (the compiled graph must not
    keep a unit's direct path that skipped it)."""
    import torch

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 8))
    units = [PreActBasicUnit(8) for _ in range(3)]
    x = inputs
    for unit in units:
        x = unit(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    data = torch.rand(2, 16, 16, 8)
    plain = model(data, training=False).detach().clone()
    count = {"calls": 0}

    def zero_output(module, args, output):
        count["calls"] += 1
        return output * 0

    handle = units[1].convs[0].register_forward_hook(zero_output)
    try:
        hooked = model(data, training=False).detach().clone()
        assert not torch.allclose(hooked, plain)
        count["calls"] = 0
        compiled = torch.compile(model)
        for call in range(1, 4):
            outputs = compiled(data, training=False).detach()
            assert count["calls"] == call
            assert torch.allclose(outputs, hooked, rtol=1e-5, atol=1e-6)
    finally:
        handle.remove()


def unit_outputs(unit, x, training, stateless):
    """The unit's outputs on its variables' values: by `stateless_call`,
    which runs its `call` as Keras' trainers run a model's, or by
    `__call__` in a `keras.StatelessScope` on the same values. On JAX under
    `jax.jit`, as its trainer runs it (both ways: XLA fuses bfloat16 ops,
    so a jitted and an eager run round apart)."""
    variables = unit.trainable_variables + unit.non_trainable_variables

    def run(values, x):
        if stateless:
            trainable = values[:len(unit.trainable_variables)]
            non_trainable = values[len(unit.trainable_variables):]
            return unit.stateless_call(trainable, non_trainable, x, training=training)[0]
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return unit(x, training=training)

    if BACKEND == "jax":
        import jax

        run = jax.jit(run)
    return run([v.value for v in variables], x)


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("config, channels", [
    (dict(filters=8, shortcut="exclusive_gating"), 8),
    (dict(filters=8, shortcut="shortcut_only_gating", unit_ordering="original"), 8),
    (dict(filters=4, bottleneck=True, strides=2, drop_path_rate=0.5), 8),
], ids=["exclusive_gating", "shortcut_only_gating_original", "bottleneck_projection"])
def test_stateless_call_under_mixed_precision_equals_call(config, channels, training):
    """`stateless_call` runs the unit's `call` without `__call__`: no cast of
    its float32 inputs, no autocast scope. The unit computes in its compute
    dtype all the same, its convolutions (the gate's with a bias) included,
    and gives `__call__`'s numbers."""
    keras.config.set_dtype_policy("mixed_bfloat16")
    unit = ResidualUnit(**config, name="unit")
    shape = (2, 6, 6, channels)
    unit.build(shape)
    randomize(unit, np.random.default_rng(1))
    assert (unit.gate is not None) == ("gating" in config.get("shortcut", ""))
    x = keras.ops.convert_to_tensor(
        np.random.default_rng(0).normal(size=shape).astype("float32")
    )
    stateless, called = (unit_outputs(unit, x, training, stateless) for stateless in (True, False))
    for outputs in (stateless, called):
        assert keras.backend.standardize_dtype(outputs.dtype) == "bfloat16"
    np.testing.assert_array_equal(*numpy([stateless, called]))


# === `remat=True` changes memory and nothing else: a remat step equals a plain one ===

# Each configuration builds the same unit twice, with `remat=False` and
# `remat=True`, from the same seed (`keras.utils.set_random_seed`: same
# initial weights and the same random seed states), and checks that one
# gradient step and a short `fit` give the same numbers: outputs, input and
# weight gradients, BN moving statistics and seed states after the step, and
# every weight after `fit`. The backward pass of a remat unit recomputes its
# forward pass, so a random mask drawn again, or a state update applied inside
# the recomputation, shows up here as a gradient or state that differs.

SEED = 2016
INPUT_SHAPE = (4, 8, 8, 8)  # Batch 4: a drop-path mask of 4 examples.
CLASSES = 3


def freeze_batch_norms(unit):
    for layer in unit._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def freeze_all(unit):
    unit.trainable = False


# (id, unit arguments, dtype policy, training, set-up applied to the unit)
REMAT_CASES = [
    ("drop_path", dict(filters=8, drop_path_rate=0.5), "float32", True, None),
    ("dropout_shortcut", dict(filters=8, shortcut="dropout"), "float32", True, None),
    ("exclusive_gating", dict(filters=8, shortcut="exclusive_gating"), "float32", True, None),
    (
        "shortcut_only_gating",
        dict(filters=8, shortcut="shortcut_only_gating"),
        "float32", True, None,
    ),
    *[
        (ordering, dict(filters=8, unit_ordering=ordering), "float32", True, None)
        for ordering in UNIT_ORDERINGS
    ],
    (
        "bottleneck_projection",
        dict(filters=2, bottleneck=True, strides=2, drop_path_rate=0.5),
        "float32", True, None,
    ),
    (
        "mixed_bfloat16",
        dict(filters=8, drop_path_rate=0.5, shortcut="exclusive_gating"),
        "mixed_bfloat16", True, None,
    ),
    ("trainable_false", dict(filters=8, drop_path_rate=0.5), "float32", True, freeze_all),
    (
        "bn_trainable_false",
        dict(filters=8, unit_ordering="bn_after_addition"),
        "float32", True, freeze_batch_norms,
    ),
    (
        "inference",
        dict(filters=8, drop_path_rate=0.5, shortcut="dropout"),
        "float32", False, None,
    ),
]

# Float32 paths run the same operations; bfloat16 allows a rounding step.
REMAT_TOLERANCE = {"float32": dict(rtol=1e-5, atol=1e-5), "mixed_bfloat16": dict(rtol=1e-2, atol=1e-2)}


def fit_model(model, x, y, from_logits=True):
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
    )
    # 2 steps of 4 examples, in order; `fit` jit-compiles where it would.
    history = model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    return history.history["loss"], numpy(model.variables)


def build_unit(config, remat, policy, setup, input_shape):
    keras.utils.set_random_seed(SEED)
    keras.config.set_dtype_policy(policy)
    unit = ResidualUnit(**config, remat=remat, name="unit")
    unit.build(input_shape)
    if setup is not None:
        setup(unit)
    return unit


class TinyClassifier(keras.Model):
    """unit -> global average pooling -> dense logits.

    With `unit_training=False` the unit runs in inference mode inside `fit`
    (a frozen block that still passes gradients on); a functional model
    would not allow it, as it passes `fit`'s `training=True` to every layer.
    """

    def __init__(self, unit, unit_training=None):
        super().__init__()
        self.unit = unit
        self.unit_training = unit_training
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.head = keras.layers.Dense(CLASSES, dtype="float32")

    def build(self, input_shape):
        features = self.unit.compute_output_shape(input_shape)[-1]
        self.head.build((None, features))

    def call(self, inputs, training=None):
        if self.unit_training is not None:
            training = self.unit_training
        return self.head(self.pool(self.unit(inputs, training=training)))


def build_model(config, remat, policy, setup, training):
    unit = build_unit(config, remat, policy, setup, (None,) + INPUT_SHAPE[1:])
    model = TinyClassifier(unit, unit_training=None if training else False)
    model.build((None,) + INPUT_SHAPE[1:])
    return model


@pytest.mark.parametrize(
    "config, policy, training, setup",
    [case[1:] for case in REMAT_CASES],
    ids=[case[0] for case in REMAT_CASES],
)
def test_remat_step_equals_plain_step(config, policy, training, setup):
    rng = np.random.default_rng(0)
    x = rng.normal(size=INPUT_SHAPE).astype("float32")
    tolerance = REMAT_TOLERANCE[policy]

    results = {}
    for remat in (False, True):
        unit = build_unit(config, remat, policy, setup, INPUT_SHAPE)
        output_shape = unit.compute_output_shape(INPUT_SHAPE)
        cotangent = np.random.default_rng(1).normal(size=output_shape).astype("float32")
        step = gradient_step(unit, x, cotangent, training)
        results[remat] = step + (numpy(unit.non_trainable_variables),)
    plain, remat = results[False], results[True]
    np.testing.assert_allclose(remat[0], plain[0], err_msg="outputs", **tolerance)
    np.testing.assert_allclose(remat[1], plain[1], err_msg="input gradient", **tolerance)
    assert_all_close(remat[2], plain[2], tolerance, "weight gradients")
    # BN moving statistics and seed states, updated once by the step.
    assert_all_close(remat[3], plain[3], tolerance, "non-trainable variables")

    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    x = rng.normal(size=(8,) + INPUT_SHAPE[1:]).astype("float32")
    fitted = {
        remat: fit_model(build_model(config, remat, policy, setup, training), x, labels)
        for remat in (False, True)
    }
    np.testing.assert_allclose(fitted[True][0], fitted[False][0], err_msg="loss", **tolerance)
    assert_all_close(fitted[True][1], fitted[False][1], tolerance, "weights after fit")


def test_remat_model_trains_like_plain_model():
    """Whole network: same predictions, losses and weights after 2 `fit` steps.

    Bottleneck units, post-activation stem and BN after the addition, and
    stochastic depth in every unit (rates 0.17, 0.33, 0.5).
    """
    kwargs = dict(
        depth=11, block_type="bottleneck", unit_ordering="bn_after_addition",
        drop_path_rate=0.5, base_width=4, classes=5, input_shape=(8, 8, 3),
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 8, 8, 3)).astype("float32")
    y = np.array([0, 1, 2, 3, 4, 0, 1, 2])
    results = {}
    for remat in (False, True):
        keras.utils.set_random_seed(SEED)
        model = keras_preact.PreActResNet(**kwargs, remat=remat)
        predictions = keras.ops.convert_to_numpy(model.predict(x, verbose=0))
        results[remat] = (predictions,) + tuple(fit_model(model, x, y, False))
    plain, remat = results[False], results[True]
    tolerance = REMAT_TOLERANCE["float32"]
    np.testing.assert_allclose(remat[0], plain[0], err_msg="predictions", **tolerance)
    np.testing.assert_allclose(remat[1], plain[1], err_msg="loss", **tolerance)
    assert_all_close(remat[2], plain[2], tolerance, "weights after fit")


# === Files saved by the earlier unit load with the same numbers ===

SAVED = os.path.join(os.path.dirname(__file__), os.pardir, "fixtures", "saved_units")
_spec = importlib.util.spec_from_file_location(
    "saved_units_fixtures", os.path.join(SAVED, "make_fixtures.py")
)
saved_units = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(saved_units)


@pytest.fixture(scope="module")
def saved_files(tmp_path_factory):
    """The `.keras` and `.weights.h5` files of `tests/fixtures/saved_units`,
    unpacked, and their arrays."""
    folder = tmp_path_factory.mktemp("saved_units")
    with zipfile.ZipFile(os.path.join(SAVED, "models.zip")) as archive:
        archive.extractall(folder)
    with np.load(os.path.join(SAVED, "arrays.npz")) as arrays:
        return folder, dict(arrays)


def h5_contents(path):
    """Every group and dataset of an HDF5 file, by path (groups as `None`)."""
    contents = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: contents.__setitem__(
            name, item[()] if isinstance(item, h5py.Dataset) else None
        ))
    return contents


def keras_config(path):
    """The config of a `.keras` file, without Keras' `shared_object_id`s
    (ids of Python objects, different on every save)."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "shared_object_id"}
        return [strip(v) for v in value] if isinstance(value, list) else value

    with zipfile.ZipFile(path) as archive:
        return strip(json.loads(archive.read("config.json")))


def assert_same_outputs(model, arrays, name, training):
    """`model`'s outputs equal the saved ones to float32 rounding."""
    for mode in ("inference", "training") if training else ("inference",):
        key = f"{name}/{BACKEND}/{mode}"
        if key not in arrays:  # A case that draws random numbers in training.
            continue
        expected = arrays[key]
        outputs = keras.ops.convert_to_numpy(
            model(arrays[f"{name}/inputs"], training=mode == "training")
        )
        np.testing.assert_allclose(
            outputs, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max(),
            err_msg=f"{name}: {mode} outputs",
        )


@pytest.mark.parametrize("name", saved_units.CASES)
def test_files_saved_by_the_earlier_unit_load_the_same(name, saved_files, tmp_path):
    """Every ordering, shortcut and unit option, and two whole networks,
    saved by the earlier `ResidualUnit` (`tests/fixtures/saved_units`): a
    seeded build gets the same weights, the `.keras` and `.weights.h5`
    files load into the same weight paths and give the same outputs, and
    saving again writes the same weights file and config."""
    folder, arrays = saved_files
    keras.utils.set_random_seed(saved_units.SEED)
    built = saved_units.build(name)
    np.testing.assert_allclose(
        saved_units.fingerprint(built.weights), arrays[f"{name}/{BACKEND}/initial"],
        rtol=1e-6, atol=1e-6, err_msg=f"{name}: seeded initial weights",
    )
    paths = list(arrays[f"{name}/weight_paths"])
    built.load_weights(folder / f"{name}.weights.h5")
    loaded = keras.saving.load_model(folder / f"{name}.keras")
    for model in (built, loaded):
        assert [w.path for w in model.weights] == paths
    assert_same_outputs(loaded, arrays, name, training=False)
    assert_same_outputs(built, arrays, name, training=True)

    loaded.save(tmp_path / "again.keras")
    assert keras_config(tmp_path / "again.keras") == keras_config(folder / f"{name}.keras")
    loaded.save_weights(tmp_path / "again.weights.h5")
    again = h5_contents(tmp_path / "again.weights.h5")
    saved = h5_contents(folder / f"{name}.weights.h5")
    assert list(again) == list(saved)
    for key, value in saved.items():
        np.testing.assert_array_equal(again[key], value, err_msg=key)
