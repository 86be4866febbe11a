"""keras_preact.layers.batch_normalization: the fused BN(-ReLU) is the same layer
to a user as Keras' BN + ReLU.

`keras_preact.layers.BatchNormalization` runs the backend's fused kernel
(torch, TensorFlow) or Keras' generic path (JAX; and wherever the kernel does
not apply). Each configuration builds it and `keras.layers.BatchNormalization`
followed by `ops.relu` with the same weights (random moving statistics
included), runs one forward and backward pass, and compares outputs, input
and weight gradients and the moving statistics after the step. Files saved
before the fused layer existed (`tests/fixtures/pre_fusion`, written by
`make_fixtures.py` in that folder at commit b63bf0a) load after it and give
the logits stored with them.
"""

import os
import sys
import zipfile

import numpy as np
import pytest

import keras
import keras_preact
from keras_preact.layers import BatchNormalization
from keras_preact.layers import ResidualUnit
from keras_preact.layers import batch_normalization as fused_module

from _checks import gradient_step
from _checks import numpy
from conftest import BACKEND

FIXTURES = os.path.join(os.path.dirname(__file__), os.pardir, "fixtures", "pre_fusion")
sys.path.insert(0, FIXTURES)
from make_fixtures import MODELS as FIXTURE_MODELS  # noqa: E402

sys.path.remove(FIXTURES)

BN_ARGS = dict(momentum=0.9, epsilon=1e-5)
# Float32: the same formula summed in another order. Half precision: one
# rounding of the output (and of the gradient that flows back through it).
TOLERANCE = {
    "float32": dict(rtol=1e-4, atol=1e-5),
    "mixed_float16": dict(rtol=5e-3, atol=5e-3),
    "mixed_bfloat16": dict(rtol=3e-2, atol=3e-2),
}
FUSED_KERNEL = {
    "torch": "_torch_batch_norm",
    "tensorflow": "_tensorflow_batch_norm",
    "jax": None,
}


class KerasBatchNormThenActivation(keras.layers.Layer):
    """The reference: `keras.layers.BatchNormalization`, then the activation."""

    def __init__(self, activation=None, **kwargs):
        super().__init__(dtype=kwargs.pop("dtype", None))
        self.bn = keras.layers.BatchNormalization(**kwargs)
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        self.bn.build(input_shape)

    def call(self, inputs, training=None):
        return self.activation(self.bn(inputs, training=training))


class Remat(keras.layers.Layer):
    """Runs `layer` the way `ResidualUnit(remat=True)` runs its forward pass:
    under `keras.remat`, in a `keras.StatelessScope` on snapshots of the
    variables, state updates assigned after (`_rematerialized_forward`)."""

    def __init__(self, layer):
        super().__init__(dtype=layer.dtype_policy)
        self.layer = layer

    def build(self, input_shape):
        self.layer.build(input_shape)

    def call(self, inputs, training=None):
        return ResidualUnit._rematerialized_forward(self, inputs, training)

    def _forward(self, inputs, training):
        return self.layer(inputs, training=training)


def random_weights(variables, seed=3):
    """Scales and variances in [0.5, 1.5], offsets and means N(0, 0.5); the
    last channel's moving variance is 2e-5, of the order of epsilon."""
    rng = np.random.default_rng(seed)
    values = []
    for variable in variables:
        shape = tuple(variable.shape)
        if variable.name in ("gamma", "moving_variance"):
            value = rng.uniform(0.5, 1.5, shape)
            if variable.name == "moving_variance":
                value[-1] = 2e-5
        else:
            value = rng.normal(0.0, 0.5, shape)
        values.append(value.astype("float32"))
    return values


def build_pair(shape, policy, layer_args, setup):
    """The fused layer and the Keras reference, built with equal weights."""
    keras.config.set_dtype_policy(policy)
    fused = BatchNormalization(**BN_ARGS, **layer_args)
    reference = KerasBatchNormThenActivation(**BN_ARGS, **layer_args)
    layers = []
    for layer in (fused, reference):
        if setup == "frozen":
            layer.trainable = False
        if setup == "remat":
            layer = Remat(layer)
        layer.build(shape)
        layers.append(layer)
    values = random_weights(fused.weights)
    for layer in (fused, reference.bn):
        for variable, value in zip(layer.weights, values):
            variable.assign(value)
    return layers


# (id, input shape, layer arguments, dtype policy, training, set-up)
CASES = [
    ("nhwc_training", (4, 5, 6, 3), dict(axis=-1, activation="relu"), "float32", True, None),
    ("nchw_training", (4, 3, 5, 6), dict(axis=1, activation="relu"), "float32", True, None),
    ("nhwc_inference", (4, 5, 6, 3), dict(axis=-1, activation="relu"), "float32", False, None),
    ("nchw_inference", (4, 3, 5, 6), dict(axis=1, activation="relu"), "float32", False, None),
    ("no_activation", (4, 5, 6, 3), dict(axis=-1), "float32", True, None),
    ("axis_3", (4, 5, 6, 3), dict(axis=3, activation="relu"), "float32", True, None),
    (
        "no_scale_no_center", (4, 5, 6, 3),
        dict(axis=-1, activation="relu", scale=False, center=False), "float32", True, None,
    ),
    ("mixed_float16", (4, 5, 6, 3), dict(axis=-1, activation="relu"), "mixed_float16", True, None),
    ("mixed_bfloat16", (4, 5, 6, 3), dict(axis=-1, activation="relu"), "mixed_bfloat16", True, None),
    (
        "mixed_bfloat16_nchw_inference", (4, 3, 5, 6),
        dict(axis=1, activation="relu"), "mixed_bfloat16", False, None,
    ),
    # Keras: a frozen BN runs in inference mode, even in a training step.
    ("trainable_false", (4, 5, 6, 3), dict(axis=-1, activation="relu"), "float32", True, "frozen"),
    ("remat_training", (4, 5, 6, 3), dict(axis=-1, activation="relu"), "float32", True, "remat"),
    ("remat_nchw_inference", (4, 3, 5, 6), dict(axis=1, activation="relu"), "float32", False, "remat"),
    (
        "remat_mixed_bfloat16", (4, 5, 6, 3),
        dict(axis=-1, activation="relu"), "mixed_bfloat16", True, "remat",
    ),
    # Where the fused kernel of some backend does not apply: Keras' path.
    ("rank_2", (8, 3), dict(axis=-1, activation="relu"), "float32", True, None),
    ("rank_3_axis_1", (4, 3, 5), dict(axis=1, activation="relu"), "float32", True, None),
    ("one_value_per_channel", (1, 1, 1, 3), dict(axis=-1, activation="relu"), "float32", True, None),
    ("other_activation", (4, 5, 6, 3), dict(axis=-1, activation="tanh"), "float32", True, None),
]


@pytest.mark.parametrize(
    "shape, layer_args, policy, training, setup",
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_same_as_keras_batch_norm_then_relu(shape, layer_args, policy, training, setup):
    rng = np.random.default_rng(0)
    # Channels N(1, 2), N(-0.5, 0.5) and N(0, 0.005): the last one's
    # variance is of the order of epsilon (1e-5), so epsilon's place in the
    # formula shows (centred, as Keras' torch path computes E[x^2] - E[x]^2).
    channel_shape = [
        3 if axis == layer_args["axis"] % len(shape) else 1 for axis in range(len(shape))
    ]
    spread = np.reshape([2.0, 0.5, 0.005], channel_shape)
    offset = np.reshape([1.0, -0.5, 0.0], channel_shape)
    x = (rng.normal(size=shape) * spread + offset).astype("float32")
    cotangent = rng.normal(size=shape).astype("float32")
    tolerance = TOLERANCE[policy]
    fused, reference = build_pair(shape, policy, layer_args, setup)
    results = [gradient_step(layer, x, cotangent, training) for layer in (fused, reference)]
    (out, dx, dw), (ref_out, ref_dx, ref_dw) = results
    np.testing.assert_allclose(out, ref_out, err_msg="outputs", **tolerance)
    np.testing.assert_allclose(dx, ref_dx, err_msg="input gradient", **tolerance)
    assert len(dw) == len(ref_dw) == (0 if setup == "frozen" else len(fused.trainable_variables))
    for name, a, b in zip(("gamma", "beta"), dw, ref_dw):
        np.testing.assert_allclose(a, b, err_msg=f"{name} gradient", **tolerance)
    # Moving statistics: float32 sums of the same (rounded) inputs.
    for variable, ref_variable in zip(fused.non_trainable_variables, reference.non_trainable_variables):
        np.testing.assert_allclose(
            *numpy([variable, ref_variable]), err_msg=variable.name, **TOLERANCE["float32"]
        )
    if training and setup != "frozen":  # The step moved the statistics.
        initial = random_weights(fused.weights)[-2:]
        moved = numpy(fused.non_trainable_variables)
        assert all(np.abs(a - b).max() > 1e-3 for a, b in zip(moved, initial))


@pytest.mark.parametrize(
    "shape, axis, dtype, expected",
    [
        ((2, 4, 4, 3), -1, "float32", FUSED_KERNEL[BACKEND]),
        ((2, 3, 4, 4), 1, "float32", FUSED_KERNEL[BACKEND]),
        ((2, 4, 4, 3), -1, "bfloat16", FUSED_KERNEL[BACKEND]),
        ((2, 4, 4, 3), -1, "float16", FUSED_KERNEL[BACKEND]),
        ((2, 4, 4, 3), 2, "float32", FUSED_KERNEL[BACKEND] if BACKEND == "torch" else None),
        ((2, 3), -1, "float32", FUSED_KERNEL[BACKEND] if BACKEND == "torch" else None),
        ((2, 4, 4, 3), -1, "float64", None),
    ],
)
def test_fused_kernel_where_it_applies(shape, axis, dtype, expected):
    layer = BatchNormalization(axis=axis, dtype=dtype if dtype == "float64" else None)
    layer.build(shape)
    x = keras.ops.ones(shape, dtype=dtype)
    kernel = fused_module._fused_kernel(layer, x, None, True)
    assert (kernel.__name__ if kernel else None) == expected
    assert fused_module._fused_kernel(layer, x, keras.ops.ones(shape[:-1]), True) is None


def test_renorm_and_mask_take_keras_path():
    layer = BatchNormalization(renorm=True)
    layer.build((2, 4, 4, 3))
    assert fused_module._fused_kernel(layer, keras.ops.ones((2, 4, 4, 3)), None, True) is None


# === Same variables, config and files ===


def test_variables_and_config_are_keras_ones():
    fused = BatchNormalization(axis=1, activation="relu", **BN_ARGS, name="bn")
    plain = keras.layers.BatchNormalization(axis=1, **BN_ARGS, name="bn")
    for layer in (fused, plain):
        layer.build((None, 8, 4, 4))
    describe = lambda layer: [  # noqa: E731
        (v.path, tuple(v.shape), v.dtype, v.trainable) for v in layer.weights
    ]
    assert describe(fused) == describe(plain)
    assert [v.path for v in fused.weights] == [
        "bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance"
    ]
    assert fused.count_params() == plain.count_params() == 32
    assert fused.get_config() == {**plain.get_config(), "activation": "relu"}
    assert isinstance(fused, keras.layers.BatchNormalization)
    restored = BatchNormalization.from_config(fused.get_config())
    assert restored.get_config() == fused.get_config()
    assert BatchNormalization.from_config(plain.get_config()).activation is (
        keras.activations.linear
    )


def test_keras_file_round_trip(tmp_path):
    inputs = keras.Input((4, 4, 3))
    outputs = BatchNormalization(activation="relu", name="bn")(inputs)
    model = keras.Model(inputs, outputs)
    model.get_layer("bn").set_weights(random_weights(model.get_layer("bn").weights))
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    layer = restored.get_layer("bn")
    assert type(layer) is BatchNormalization
    assert layer.activation is keras.activations.relu
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype("float32")
    np.testing.assert_allclose(
        restored.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6
    )


# Slow on JAX only: 10-25 s per model on 2 cores, compiling each eager op.
@pytest.mark.slow
@pytest.mark.parametrize("name", list(FIXTURE_MODELS))
def test_files_saved_before_the_fused_layer_load_after(name, tmp_path):
    stored = np.load(os.path.join(FIXTURES, f"{name}.npz"))
    keras_file = os.path.join(FIXTURES, f"{name}.keras")
    # The same weights as a `.weights.h5` file: the one inside the `.keras`.
    weights_file = str(tmp_path / f"{name}.weights.h5")
    with zipfile.ZipFile(keras_file) as archive, open(weights_file, "wb") as out:
        out.write(archive.read("model.weights.h5"))
    kwargs = dict(FIXTURE_MODELS[name], classifier_activation=None)
    models = [
        keras.saving.load_model(keras_file),
        keras_preact.PreActResNet(**kwargs, weights=keras_file),
        keras_preact.PreActResNet(**kwargs, weights=weights_file),
    ]
    for model in models:
        # The units are rebuilt from their config: with the fused layer.
        unit_bns = [
            layer
            for unit in keras_preact.residual_units(model)
            for layer in unit._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)
        ]
        assert unit_bns and all(type(bn) is BatchNormalization for bn in unit_bns)
        logits = model(stored["inputs"], training=False)  # Eager: no compile.
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(logits), stored["outputs"], rtol=1e-4, atol=1e-5
        )


# === The unit and the model use it ===


@pytest.mark.parametrize("layout", ["cifar", "imagenet"])
def test_model_batch_norms_are_fused(layout):
    kwargs = dict(stage_units=(1,) * (3 if layout == "cifar" else 4))
    model = keras_preact.PreActResNet(
        layout=layout, block_type="bottleneck", base_width=4, classes=3, **kwargs
    )
    bns = [
        layer for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert bns and all(type(bn) is BatchNormalization for bn in bns)
    # The head keeps Keras' ResNetV2 names: "post_bn" then "post_relu".
    assert model.get_layer("post_bn").activation is keras.activations.linear
    assert model.get_layer("post_relu") is not None


def test_fit_matches_keras_batch_norm():
    """A compiled `fit` (XLA on TensorFlow, jit on JAX) of conv -> BN-ReLU ->
    dense trains like conv -> Keras BN -> ReLU -> dense."""
    x = np.random.default_rng(0).normal(size=(8, 6, 6, 3)).astype("float32")
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    results = []
    for fused in (True, False):
        keras.utils.set_random_seed(5)
        bn = (
            [BatchNormalization(activation="relu", **BN_ARGS)]
            if fused
            else [keras.layers.BatchNormalization(**BN_ARGS), keras.layers.ReLU()]
        )
        model = keras.Sequential(
            [keras.Input((6, 6, 3)), keras.layers.Conv2D(4, 3, use_bias=False), *bn,
             keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)]
        )
        model.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile="auto",
        )
        history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        results.append((history.history["loss"], numpy(model.weights)))
    (loss, weights), (ref_loss, ref_weights) = results
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5, atol=1e-5)
    for a, b in zip(weights, ref_weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_bad_activation():
    with pytest.raises(ValueError, match="nonexistent"):
        BatchNormalization(activation="nonexistent")
