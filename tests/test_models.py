"""PreActResNet builders: the checklist of ../shared/STYLE.md as tables of
configurations over shared checks (`run_backbone_test`, `run_head_test`)."""

import inspect
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import keras
import keras_preact
from keras_preact.layers import SHORTCUTS
from keras_preact.layers import UNIT_ORDERINGS
from keras_preact.layers import ResidualUnit
from keras_preact.models import variants
from keras_preact.models.layouts import resolve_layout
from keras_preact.models.layouts import split_into_stages

from _checks import assert_all_close
from _checks import numpy
from conftest import BACKEND

# Trainable parameters, from ../shared/reference/PAPER.md.
PAPER_COUNTS = [
    ("PreActResNet20", 100, 278_132),
    ("PreActResNet56", 100, 861_428),
    ("PreActResNet110", 100, 1_736_372),
    ("PreActResNet164", 100, 1_726_388),
    ("PreActResNet1001", 100, 10_350_836),
    ("PreActResNet164", 10, 1_703_258),
    ("PreActResNet1001", 10, 10_327_706),
    ("PreActResNet18", 1000, 11_687_720),
    ("PreActResNet34", 1000, 21_795_880),
    ("PreActResNet50", 1000, 25_549_352),
    ("PreActResNet101", 1000, 44_541_480),
    ("PreActResNet152", 1000, 60_185_128),
    ("PreActResNet200", 1000, 64_666_152),
]
# (name, depth, layout, units per stage): the paper's Tables 3-5.
VARIANTS = [
    ("PreActResNet20", 20, "cifar", (3, 3, 3)),
    ("PreActResNet32", 32, "cifar", (5, 5, 5)),
    ("PreActResNet44", 44, "cifar", (7, 7, 7)),
    ("PreActResNet56", 56, "cifar", (9, 9, 9)),
    ("PreActResNet110", 110, "cifar", (18, 18, 18)),
    ("PreActResNet164", 164, "cifar", (18, 18, 18)),
    ("PreActResNet1001", 1001, "cifar", (111, 111, 111)),
    ("PreActResNet18", 18, "imagenet", (2, 2, 2, 2)),
    ("PreActResNet34", 34, "imagenet", (3, 4, 6, 3)),
    ("PreActResNet50", 50, "imagenet", (3, 4, 6, 3)),
    ("PreActResNet101", 101, "imagenet", (3, 4, 23, 3)),
    ("PreActResNet152", 152, "imagenet", (3, 8, 36, 3)),
    ("PreActResNet200", 200, "imagenet", (3, 24, 36, 3)),
]
KERAS_APPLICATIONS_ARGS = [
    "include_top", "weights", "input_tensor", "input_shape", "pooling",
    "classes", "classifier_activation", "name", "kwargs",
]

TINY = {
    "cifar_basic": dict(depth=8, base_width=4, classes=5, input_shape=(16, 16, 3)),
    "cifar_bottleneck": dict(
        depth=11, block_type="bottleneck", base_width=4, classes=5,
        input_shape=(16, 16, 3), shortcut="exclusive_gating",
    ),
    "imagenet": dict(
        layout="imagenet", stage_units=(1, 1, 1, 1), block_type="bottleneck",
        base_width=4, classes=5, input_shape=(64, 64, 3),
    ),
}


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def tiny(name="cifar_basic", **overrides):
    return keras_preact.PreActResNet(**{**TINY[name], **overrides})


def images(model, batch=2, seed=0):
    shape = (batch,) + tuple(model.input_shape[1:])
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def train_one_step(model, x, y, **compile_args):
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        **compile_args,
    )
    return model.train_on_batch(x, y)


# === The shared checks ===


def run_backbone_test(model, classes):
    """Checklist items 1-4 on one built model: output shape and values,
    symbolic and eager calls agree, config round trip, and one training step
    in which every trainable weight gets a gradient."""
    x = images(model, batch=4)
    eager = keras.ops.convert_to_numpy(model(x, training=False))
    assert eager.shape == (4, classes)
    assert np.all(np.isfinite(eager))
    np.testing.assert_allclose(eager.sum(axis=1), 1.0, rtol=1e-5)
    predicted = model.predict(x, verbose=0)
    np.testing.assert_allclose(predicted, eager, rtol=1e-5, atol=1e-6)

    clone = keras.Model.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(
        clone.predict(x, verbose=0), predicted, rtol=1e-6, atol=1e-6
    )

    before = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    assert np.isfinite(train_one_step(model, x, np.arange(4) % classes))
    after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    unchanged = [
        w.path for w, b, a in zip(model.trainable_weights, before, after)
        if np.array_equal(b, a)
    ]
    assert not unchanged


def run_head_test(model, expected_shape, outputs):
    """Checklist items 6-7: the declared output shape, and what a batch of
    images gives: `"probabilities"` (rows sum to 1), `"logits"` (they do
    not) or `"features"`, always finite."""
    assert model.output_shape == expected_shape
    out = model.predict(images(model), verbose=0)
    assert out.shape == (2,) + expected_shape[1:]
    assert np.all(np.isfinite(out))
    sums_to_one = np.allclose(out.reshape(2, -1).sum(axis=1), 1.0, rtol=1e-5)
    assert sums_to_one == (outputs == "probabilities")


# === Parameter counts, names and the named variants ===


@pytest.mark.parametrize("variant, classes, expected", PAPER_COUNTS)
def test_parameter_counts_match_the_paper(variant, classes, expected):
    model = getattr(keras_preact, variant)(classes=classes)
    assert trainable_count(model) == expected


@pytest.mark.parametrize("name, depth, layout, stage_units", VARIANTS)
def test_named_variants_are_real_functions(name, depth, layout, stage_units):
    variant = getattr(keras_preact, name)
    assert inspect.isfunction(variant) and variant.__qualname__ == name
    assert inspect.getsource(variant).startswith(f"def {name}(")
    parameters = inspect.signature(variant).parameters
    assert list(parameters) == KERAS_APPLICATIONS_ARGS
    classes = {"cifar": 10, "imagenet": 1000}[layout]
    assert parameters["classes"].default == classes
    assert parameters["weights"].default is None
    # Its own summary, then the one shared docstring of its layout.
    shared = variants.CIFAR_DOC if layout == "cifar" else variants.IMAGENET_DOC
    summary, _ = variant.__doc__.split("\n", 1)
    assert f"ResNet-{depth}:" in summary and variant.__doc__.endswith(shared)
    net = resolve_layout(layout, depth)
    assert tuple(stage.units for stage in net.stages) == stage_units


@pytest.mark.parametrize("name, depth", [("PreActResNet32", 32), ("PreActResNet44", 44)])
def test_variants_without_paper_counts_build(name, depth):
    model = getattr(keras_preact, name)(classes=100, name="net")
    # 6n+2 basic: 2 convs of 3x3 per unit.
    assert len(keras_preact.residual_units(model)) == (depth - 2) // 2
    assert model.output_shape == (None, 100) and model.name == "net"


def test_stable_layer_names():
    model = keras_preact.PreActResNet164(classes=100)
    names = [layer.name for layer in model.layers]
    assert names[1] == "stem_conv"
    assert [n for n in names if n.startswith("stage")][:2] == [
        "stage1_unit1",
        "stage1_unit2",
    ]
    assert "stage3_unit18" in names
    assert names[-4:] == ["post_bn", "post_relu", "avg_pool", "predictions"]
    weight_paths = {w.path for w in model.weights}
    assert "stage2_unit1/projection/kernel" in weight_paths
    assert "stage2_unit1/preact_bn/gamma" in weight_paths
    assert model.get_layer("stage2_unit1").stride_on == "1x1"


# (id, builder arguments, stage widths, first-unit strides)
STAGE_CASES = [
    ("cifar", dict(depth=8, base_width=4), [4, 8, 16], [1, 2, 2]),
    ("wide", dict(depth=14, base_width=4, width_multiplier=2), [8, 16, 32], [1, 2, 2]),
    (
        "imagenet",
        dict(layout="imagenet", block_type="basic", stage_units=(1, 2, 1, 2),
             base_width=4, input_shape=(64, 64, 3)),
        [4, 8, 16, 32], [1, 2, 2, 2],
    ),
]


@pytest.mark.parametrize(
    "kwargs, widths, strides", [c[1:] for c in STAGE_CASES], ids=[c[0] for c in STAGE_CASES]
)
def test_units_follow_the_stages(kwargs, widths, strides):
    """The builder walks `Layout.stages`: names, widths, the stride rule,
    and the stages read back from the built units (not their names)."""
    net = resolve_layout(**{k: v for k, v in kwargs.items() if k != "input_shape"})
    assert [stage.filters for stage in net.stages] == widths
    assert [stage.strides for stage in net.stages] == strides
    model = keras_preact.PreActResNet(**kwargs)
    stages = split_into_stages(keras_preact.residual_units(model))
    assert [len(units) for units in stages] == [s.units for s in net.stages]
    for stage, units in zip(net.stages, stages):
        assert [u.name for u in units] == [
            f"stage{stage.index}_unit{u}" for u in range(1, stage.units + 1)
        ]
        assert [u.filters for u in units] == [stage.filters] * stage.units
        assert [u.strides for u in units] == [stage.strides] + [1] * (stage.units - 1)
    names = {layer.name for layer in model.layers}
    assert ("stem_pool" in names) == ("stem_bn" in names) == (net.name == "imagenet")
    first = stages[0][0]
    # The ImageNet stem already ends in BN-ReLU; the CIFAR stem does not.
    assert (first.preact_bn is None) == (net.name == "imagenet")
    assert first.preactivated_shortcut == (True if net.name == "cifar" else None)


def test_stride_position_changes_outputs_not_counts():
    a = tiny("cifar_bottleneck", stride_on="1x1")
    b = tiny("cifar_bottleneck", stride_on="3x3")
    assert trainable_count(a) == trainable_count(b)
    b.set_weights(a.get_weights())
    x = images(a)
    assert not np.allclose(a.predict(x, verbose=0), b.predict(x, verbose=0))
    assert keras_preact.PreActResNet50().get_layer("stage2_unit1").stride_on == "3x3"


def test_drop_path_schedule():
    units = keras_preact.residual_units(tiny(drop_path_rate=0.3))
    np.testing.assert_allclose([u.drop_path_rate for u in units], [0.1, 0.2, 0.3])


# === The STYLE.md checklist on tiny configs ===


@pytest.mark.parametrize("config", sorted(TINY))
def test_backbone(config):
    run_backbone_test(tiny(config), classes=5)


# (id, builder arguments, output shape, what it outputs)
HEADS = [
    ("no_pooling", dict(include_top=False), (None, 4, 4, 16), "features"),
    ("avg_pooling", dict(include_top=False, pooling="avg"), (None, 16), "features"),
    ("max_pooling", dict(include_top=False, pooling="max"), (None, 16), "features"),
    ("logits", dict(classes=7, classifier_activation=None), (None, 7), "logits"),
    ("one_channel", dict(input_shape=(24, 20, 1)), (None, 5), "probabilities"),
    ("four_channels", dict(input_shape=(16, 16, 4)), (None, 5), "probabilities"),
    (
        "input_normalization", dict(input_normalization="cifar100"),
        (None, 5), "probabilities",
    ),
]


@pytest.mark.parametrize(
    "kwargs, shape, outputs", [h[1:] for h in HEADS], ids=[h[0] for h in HEADS]
)
def test_head_and_input_options(kwargs, shape, outputs):
    run_head_test(tiny(**kwargs), shape, outputs)


def test_headless_default_input_is_any_size():
    model = keras_preact.PreActResNet20(include_top=False, pooling="avg")
    assert model.input_shape == (None, None, None, 3)
    out = model.predict(np.zeros((1, 40, 24, 3), "float32"), verbose=0)
    assert out.shape == (1, 64)


def test_given_input_tensor():
    inputs = keras.Input((16, 16, 3))
    model = tiny(input_tensor=inputs, input_shape=None)
    assert model.inputs[0] is inputs
    assert model.output_shape == (None, 5)


def test_predict_on_arrays_and_tf_data():
    tf = pytest.importorskip("tensorflow")
    model = tiny()
    x = images(model, batch=6)
    from_array = model.predict(x, batch_size=3, verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(4)
    np.testing.assert_allclose(
        model.predict(dataset, verbose=0), from_array, rtol=1e-5, atol=1e-6
    )


def test_channels_first_matches_channels_last():
    last = tiny()
    first = tiny(data_format="channels_first", input_shape=(3, 16, 16))
    first.set_weights(last.get_weights())
    x = images(last)
    try:
        got = first.predict(np.transpose(x, (0, 3, 1, 2)), verbose=0)
    except Exception as error:  # pragma: no cover - depends on the backend's CPU kernels
        if BACKEND == "tensorflow" and "NHWC" in str(error):
            pytest.skip(f"TensorFlow's CPU kernels lack NCHW: {error}")
        raise
    np.testing.assert_allclose(got, last.predict(x, verbose=0), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision(policy):
    if policy == "mixed_float16" and BACKEND in ("torch", "tensorflow"):
        # CPU float16 convolutions are missing or very slow on these backends.
        pytest.skip(f"float16 conv on CPU is not supported well by {BACKEND}")
    keras.config.set_dtype_policy(policy)
    model = tiny()
    unit = model.get_layer("stage1_unit1")
    assert unit.compute_dtype == policy.split("_")[1]
    assert all(w.dtype == "float32" for w in model.weights)
    assert model.get_layer("predictions").compute_dtype == "float32"
    x = images(model, batch=4)
    out = model.predict(x, verbose=0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    loss = train_one_step(model, x, np.array([0, 1, 2, 3]))
    assert np.isfinite(loss)


def test_keras_file_round_trip(tmp_path):
    model = tiny("cifar_bottleneck", drop_path_rate=0.1, shortcut="constant_scaling")
    train_one_step(model, images(model, batch=4), np.array([0, 1, 2, 3]))
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    x = images(model)
    np.testing.assert_array_equal(
        restored.predict(x, verbose=0), model.predict(x, verbose=0)
    )
    assert isinstance(restored.get_layer("stage1_unit1"), ResidualUnit)


def test_weights_argument_loads_a_file(tmp_path):
    model = tiny()
    path = tmp_path / "tiny.weights.h5"
    model.save_weights(path)
    loaded = tiny(weights=str(path))
    x = images(model)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="tiny.weights.h5"):
            tiny("cifar_bottleneck", weights=str(path))
    # The ValueError alone, without Keras' "Skipping nested container" warnings.
    assert [str(w.message) for w in caught if issubclass(w.category, UserWarning)] == []


@pytest.mark.parametrize(
    "config, shapes",
    [
        ("imagenet", [(2, 16, 16, 16), (2, 8, 8, 32), (2, 4, 4, 64), (2, 2, 2, 128)]),
        ("cifar_basic", [(2, 16, 16, 4), (2, 8, 8, 8), (2, 4, 4, 16)]),
    ],
)
def test_feature_extractor(config, shapes):
    model = tiny(config, include_top=False)
    out = keras_preact.feature_extractor(model).predict(images(model), verbose=0)
    assert sorted(out) == [f"stage{s}" for s in range(1, len(shapes) + 1)]
    assert [out[f"stage{s}"].shape for s in range(1, len(shapes) + 1)] == shapes


# === Ablation variants (the paper's Tables 1 and 2) ===

# (id, builder arguments): every ordering, and every shortcut on the
# post-activation unit.
ABLATIONS = [(o, dict(unit_ordering=o)) for o in UNIT_ORDERINGS] + [
    (s, dict(shortcut=s, unit_ordering="original")) for s in SHORTCUTS
]


@pytest.mark.parametrize("kwargs", [a[1] for a in ABLATIONS], ids=[a[0] for a in ABLATIONS])
def test_ablation_builds_and_trains(kwargs):
    model = tiny(**kwargs)
    names = [layer.name for layer in model.layers]
    pre_activation = kwargs["unit_ordering"] in ("full_preact", "relu_only_preact")
    assert ("post_relu" in names) == pre_activation
    assert ("post_bn" in names) == (kwargs["unit_ordering"] == "full_preact")
    assert ("stem_bn" in names) == (not pre_activation)
    assert np.isfinite(train_one_step(model, images(model, 4), np.array([0, 1, 2, 3])))


def test_ablation_parameter_counts():
    base = trainable_count(keras_preact.PreActResNet110(classes=10))
    # BN after addition moves a BN but keeps the count (the reason for the
    # numeric tests in test_layers.py).
    # Post-activation units normalize each conv's OUTPUT, so the first unit
    # of stages 2 and 3 has a BN of 32 / 64 channels where the pre-activation
    # unit normalizes its 16 / 32-channel input: +2 * (16 + 32).
    transitions = 2 * (16 + 32)
    for ordering in UNIT_ORDERINGS:
        count = trainable_count(
            keras_preact.PreActResNet110(classes=10, unit_ordering=ordering)
        )
        if ordering == "full_preact":
            assert count == base
        elif ordering == "relu_only_preact":
            # No final BN (64 channels).
            assert count == base - 2 * 64 + transitions
        else:
            # Stem BN (16) instead of the final one (64), and a BN after
            # each of the two projections (32 and 64 channels).
            assert count == base + 2 * 16 - 2 * 64 + 2 * (32 + 64) + transitions


# === Bad input ===


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(depth=165), r"depth=165 .*9n\+2"),
        (dict(depth=21), r"depth=21 .*6n\+2"),
        (dict(depth=51, layout="cifar"), r"depth=51"),
        (dict(depth="20"), r"depth='20'"),
        (dict(depth=42, layout="imagenet"), r"depth=42 .*\[18, 34, 50, 101, 152, 200\]"),
        (dict(depth=50, layout="imagenet", block_type="basic"), r"block_type='basic'"),
        (dict(depth=20, layout="coco"), r"layout='coco'"),
        (dict(depth=20, classes=0), r"classes=0"),
        (dict(depth=20, classes=2.5), r"classes=2.5"),
        (dict(depth=20, unit_ordering="post"), r"unit_ordering='post'"),
        (dict(depth=20, shortcut="gate"), r"shortcut='gate'"),
        (dict(depth=20, include_top=False, pooling="mean"), r"pooling='mean'"),
        (dict(depth=20, input_shape=(2, 2, 3)), r"input_shape=\(2, 2, 3\).*at least 4"),
        (dict(depth=50, layout="imagenet", input_shape=(16, 16, 3)), r"at least 32"),
        (
            dict(depth=20, data_format="channels_first", input_shape=(3, 2, 8)),
            r"input_shape=\(3, 2, 8\).*at least 4",
        ),
        (dict(depth=20, input_shape=(32, 32)), r"input_shape=\(32, 32\)"),
        (dict(depth=20, block_type="dense"), r"block_type='dense'"),
        (dict(stage_units=(1, 1, 1)), r"block_type=None"),
        (dict(stage_units=(1, 0, 1), block_type="basic"), r"stage_units=\(1, 0, 1\)"),
        (dict(depth=20, stage_units=(1, 1, 1), block_type="basic"), r"depth=20 .*depth 8"),
        (dict(depth=20, drop_path_rate=1.5), r"drop_path_rate=1.5"),
        (dict(depth=20, drop_path_rate=-0.1), r"drop_path_rate=-0.1"),
        (dict(depth=20, width_multiplier=0), r"width_multiplier=0"),
        (dict(depth=20, base_width=0), r"base_width=0"),
        (dict(depth=20, stride_on="2x2"), r"stride_on='2x2'"),
        (dict(depth=20, data_format="NHWC"), r"data_format='NHWC'"),
        (dict(depth=20, input_normalization="mnist"), r"mnist"),
        (
            dict(depth=20, input_shape=(32, 32, 1), input_normalization="cifar10"),
            r"input_normalization='cifar10'.*one value per channel \(1\)",
        ),
        (dict(depth=20, input_normalization=("a", "b")), r"input_normalization=\('a', 'b'\)"),
        (
            dict(depth=20, input_normalization=((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))),
            r"0-1 scale: multiply both by 255",
        ),
        (dict(depth=20, bn_momentum=2), r"bn_momentum=2"),
        (dict(depth=20, bn_epsilon=-1e-5), r"bn_epsilon=-1e-05"),
        (dict(depth=20, weights="imagenet"), r"weights='imagenet'"),
        (dict(depth=20, weights="/no/such/file.weights.h5"), r"no such file"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        keras_preact.PreActResNet(**kwargs)


def test_every_raised_error_is_documented():
    """The Raises section names every argument the table above refuses."""
    raises = keras_preact.PreActResNet.__doc__.split("Raises:")[1]
    for argument in [
        "layout", "block_type", "unit_ordering", "shortcut", "stride_on",
        "pooling", "data_format", "depth", "stage_units", "base_width",
        "width_multiplier", "classes", "drop_path_rate", "input_shape",
        "input_normalization", "weights", "bn_momentum", "bn_epsilon",
    ]:
        assert f"`{argument}`" in raises, argument


# === Imports and depth 1001 ===


@pytest.mark.skipif(BACKEND == "tensorflow", reason="checks the non-TF backends")
def test_import_without_tensorflow():
    code = (
        "import sys; sys.modules['tensorflow'] = None\n"
        "import keras_preact\n"
        "m = keras_preact.PreActResNet(8, base_width=2, input_shape=(8, 8, 3))\n"
        "print(m.output_shape)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "KERAS_BACKEND": BACKEND},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(None, 10)" in result.stdout


@pytest.mark.slow
def test_preact_resnet1001_builds_saves_loads_and_trains(tmp_path):
    model = keras_preact.PreActResNet1001(classes=10)
    assert len(keras_preact.residual_units(model)) == 333
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    # One eager step checks the whole graph's gradients: XLA compiling the
    # 1001-layer step on CPU needs over 20 GB (the JAX process was OOM-killed
    # on our 24 GB machine), and tracing it into a TensorFlow graph takes
    # longer than running it.
    loss = train_one_step(model, x, np.array([1, 2]), run_eagerly=True)
    assert np.isfinite(loss)
    path = tmp_path / "preact1001.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert [w.path for w in restored.weights] == [w.path for w in model.weights]
    assert_all_close(numpy(restored.weights), numpy(model.weights), dict(rtol=0, atol=0),
                     "PreActResNet1001 weights after .keras save and load")
    # Training-mode outputs (batch statistics): in inference mode the moving
    # statistics, still near their initial mean 0 and variance 1, normalize
    # nothing, and the sum of 333 units overflows to inf/NaN, which NumPy
    # compares equal to itself and which would prove nothing.
    expected = keras.ops.convert_to_numpy(model(x, training=True))
    restored_outputs = keras.ops.convert_to_numpy(restored(x, training=True))
    assert np.isfinite(expected).all()
    np.testing.assert_array_equal(restored_outputs, expected)
