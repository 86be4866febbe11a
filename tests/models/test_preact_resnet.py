"""keras_preact.models.preact_resnet: the `PreActResNet` builder, the checklist
of ../shared/STYLE.md as tables of configurations over shared checks
(`run_backbone_test`, `run_head_test`)."""

import csv
import importlib.util
import io
import json
import math
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

import keras
import keras_preact
from keras_preact.layers import SHORTCUTS
from keras_preact.layers import UNIT_ORDERINGS
from keras_preact.layers import ConstantPadding2D
from keras_preact.layers import ResidualUnit
from keras_preact.pretrained.registry import CHECKPOINTS
from keras_preact.pretrained.registry import builder_arguments

from _checks import TINY
from _checks import images
from _checks import tiny
from _checks import train_one_step
from _checks import trainable_count
from conftest import BACKEND


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


# === Layer names, stages and drop path ===


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


@pytest.mark.parametrize(
    "config, kwargs", [("cifar_basic", {}), ("imagenet", dict(stem_activation=False))],
    ids=["cifar", "imagenet_unactivated_stem"],
)
def test_channels_first_matches_channels_last(config, kwargs):
    last = tiny(config, **kwargs)
    size = TINY[config]["input_shape"][0]
    first = tiny(config, data_format="channels_first", input_shape=(3, size, size), **kwargs)
    first.set_weights(randomized(last).get_weights())
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
    # numeric tests in tests/layers/test_residual_unit.py).
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


# === Layouts of other sources: the stem and first-unit options ===


def randomized(model, seed=0):
    """`model` with its BN statistics and offsets drawn at random and some
    BN scales negative (as a trained network has them), so that moving a
    BN-ReLU or a shortcut's input shows in the outputs. Returns `model`."""
    rng = np.random.default_rng(seed)
    draws = {
        "gamma": lambda shape: rng.uniform(-1.0, 1.5, shape),
        "beta": lambda shape: rng.normal(0.0, 0.5, shape),
        "moving_mean": lambda shape: rng.normal(0.0, 0.5, shape),
        "moving_variance": lambda shape: rng.uniform(0.5, 2.0, shape),
    }
    for weight in model.weights:
        draw = draws.get(weight.path.rsplit("/", 1)[-1])
        if draw is not None:
            weight.assign(draw(tuple(weight.shape)).astype("float32"))
    return model


def logits(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


# Trainable parameters of each checkpoint's network (the builder arguments of
# its registry entry), as its source counts them: the "net_weights" column of
# pytorchcv's model_metainfos.csv (`test_pytorchcv_counts_are_its_table`
# reads it again), and for timm the parameters of timm 1.0.31's own model,
# `sum(p.numel() for p in timm.create_model(name).parameters())`.
PUBLISHED_COUNTS = {
    "pytorchcv/preresnet20_cifar10": 272_282,
    "pytorchcv/preresnet20_cifar100": 278_132,
    "pytorchcv/preresnet164bn_cifar100": 1_726_388,
    "pytorchcv/preresnet18": 11_687_848,
    "pytorchcv/preresnet50": 25_549_480,
    "pytorchcv/preresnet101b": 44_541_608,
    "timm/resnetv2_18.ra4_e3600_r224_in1k": 11_687_720,
    "timm/resnetv2_34.ra4_e3600_r224_in1k": 21_795_880,
    "timm/resnetv2_50.a1h_in1k": 25_549_352,
    "timm/resnetv2_101.a1h_in1k": 44_541_480,
}


@pytest.mark.parametrize("name", list(PUBLISHED_COUNTS))
def test_checkpoint_networks_have_the_sources_parameter_counts(name):
    model = keras_preact.PreActResNet(**builder_arguments(CHECKPOINTS[name]))
    assert trainable_count(model) == PUBLISHED_COUNTS[name]


def test_pytorchcv_counts_are_its_table():
    """The pinned pytorchcv counts, read again from the installed package."""
    spec = importlib.util.find_spec("pytorchcv")
    if spec is None:
        pytest.skip("pytorchcv is not installed")
    table = Path(spec.submodule_search_locations[0], "models", "common",
                 "model_metainfos.csv")
    with open(table, newline="") as f:
        rows = {row["model_name"]: int(row["net_weights"]) for row in csv.DictReader(f)}
    pinned = {name.split("/", 1)[1]: count for name, count in PUBLISHED_COUNTS.items()
              if name.startswith("pytorchcv/")}
    assert pinned and pinned == {name: rows[name] for name in pinned}


# Whole networks saved by the builder before it had the stem and first-unit
# options (tests/fixtures/saved_units; its make_fixtures.py names the commit).
SAVED_UNITS = Path(__file__).resolve().parents[1] / "fixtures" / "saved_units"
_spec = importlib.util.spec_from_file_location(
    "saved_units_fixtures", SAVED_UNITS / "make_fixtures.py"
)
saved_units = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(saved_units)


def saved_config(keras_file):
    """The model config of a `.keras` file (a path or a file object), without
    Keras' per-save `shared_object_id`s, with the input layer's generated
    name replaced, and with `keras_preact.layers.Conv2D` written as
    `keras.layers.Conv2D` (the same layer and config; only its torch call
    differs)."""
    with zipfile.ZipFile(keras_file) as archive:
        text = archive.read("config.json").decode()
    text = re.sub(r'"input_layer(_\d+)?"', '"input_layer"', text)
    text = re.sub(r',?\s*"shared_object_id":\s*\d+', "", text)
    config = json.loads(text)["config"]
    for layer in config["layers"]:
        if layer.get("registered_name") == "keras_preact>Conv2D":
            layer.update(module="keras.layers", registered_name=None)
    return config


# Each layout's defaults, spelled out.
DEFAULT_OPTIONS = {
    "cifar": dict(stem_activation=False, first_unit_preactivation=True,
                  first_unit_shortcut="preactivated"),
    "imagenet": dict(stem_activation=True, first_unit_preactivation=False,
                     first_unit_shortcut="raw"),
}


@pytest.mark.parametrize("explicit", [False, True], ids=["defaults", "spelled_out"])
@pytest.mark.parametrize("name", list(saved_units.MODEL_CASES))
def test_defaults_build_the_networks_saved_before_the_options(name, explicit, tmp_path):
    kwargs = dict(saved_units.MODEL_CASES[name], classifier_activation=None, name=name)
    if explicit:
        kwargs.update(DEFAULT_OPTIONS[kwargs.get("layout", "cifar")])
    keras_preact.PreActResNet(**kwargs).save(tmp_path / "built.keras")
    with zipfile.ZipFile(SAVED_UNITS / "models.zip") as archive:
        saved = io.BytesIO(archive.read(f"{name}.keras"))
    assert saved_config(tmp_path / "built.keras") == saved_config(saved)


# (id, builder arguments, the layers before the first unit, the first unit's
# (preactivate, preactivated_shortcut), trainable parameters), as the builder
# gave them before it had the stem and first-unit options.
IMAGENET_STEM = ["stem_pad", "stem_conv", "stem_bn", "stem_relu", "stem_pool_pad", "stem_pool"]
DEFAULT_LAYOUTS = [
    ("cifar", dict(depth=20), ["stem_conv"], (True, True), 272_282),
    ("cifar_original", dict(depth=20, unit_ordering="original"),
     ["stem_conv", "stem_bn", "stem_relu"], (True, True), 272_474),
    ("cifar_relu_only", dict(depth=20, unit_ordering="relu_only_preact"),
     ["stem_conv"], (True, True), 272_250),
    ("imagenet", dict(depth=18, layout="imagenet"), IMAGENET_STEM, (False, None), 11_687_720),
    ("imagenet_original", dict(depth=18, layout="imagenet", unit_ordering="original"),
     IMAGENET_STEM, (False, None), 11_689_512),
    ("imagenet_bottleneck", dict(depth=50, layout="imagenet"),
     IMAGENET_STEM, (False, None), 25_549_352),
]


@pytest.mark.parametrize(
    "kwargs, stem, first_unit, count", [d[1:] for d in DEFAULT_LAYOUTS],
    ids=[d[0] for d in DEFAULT_LAYOUTS],
)
def test_default_stem_first_unit_and_count(kwargs, stem, first_unit, count):
    model = keras_preact.PreActResNet(**kwargs)
    names = [layer.name for layer in model.layers]
    assert names[1:names.index("stage1_unit1")] == stem
    unit = model.get_layer("stage1_unit1")
    assert (unit.preactivate, unit.preactivated_shortcut) == first_unit
    assert trainable_count(model) == count
    if "stem_pool_pad" in names:
        assert type(model.get_layer("stem_pool_pad")) is keras.layers.ZeroPadding2D


# (id, builder arguments, whether "raw" and "preactivated" differ): they
# differ where the first unit pre-activates and its shortcut is an identity;
# a projection takes the pre-activated tensor either way.
FIRST_UNIT_SHORTCUTS = [
    ("cifar_basic_identity", dict(depth=8, base_width=4, input_shape=(16, 16, 3)), True),
    ("cifar_bottleneck_projection", dict(
        depth=11, block_type="bottleneck", base_width=4, input_shape=(16, 16, 3)), False),
    ("imagenet_basic_preactivated", dict(
        layout="imagenet", stage_units=(1, 1, 1, 1), block_type="basic", base_width=4,
        input_shape=(64, 64, 3), first_unit_preactivation=True), True),
    ("imagenet_basic_unactivated_stem", dict(
        layout="imagenet", stage_units=(1, 1, 1, 1), block_type="basic", base_width=4,
        input_shape=(64, 64, 3), stem_activation=False), True),
    ("imagenet_bottleneck_unactivated_stem", dict(
        TINY["imagenet"], stem_activation=False), False),
    ("imagenet_basic_default", dict(
        layout="imagenet", stage_units=(1, 1, 1, 1), block_type="basic", base_width=4,
        input_shape=(64, 64, 3)), False),
]


@pytest.mark.parametrize(
    "kwargs, differ", [f[1:] for f in FIRST_UNIT_SHORTCUTS],
    ids=[f[0] for f in FIRST_UNIT_SHORTCUTS],
)
def test_first_unit_shortcut_raw_or_preactivated(kwargs, differ):
    raw = randomized(keras_preact.PreActResNet(**kwargs, first_unit_shortcut="raw"))
    preactivated = keras_preact.PreActResNet(**kwargs, first_unit_shortcut="preactivated")
    preactivated.set_weights(raw.get_weights())
    x = images(raw)
    a, b = logits(raw, x), logits(preactivated, x)
    if differ:
        assert not np.allclose(a, b, rtol=1e-3, atol=1e-5)
    else:
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_unactivated_imagenet_stem_pools_as_torch_pools():
    """`stem_activation=False`: no stem BN-ReLU, the max pooling padded with
    -inf (Torch's `MaxPool2d(3, 2, padding=1)` on the conv's signed output),
    and the first unit pre-activates."""
    torch = pytest.importorskip("torch")
    model = tiny("imagenet", stem_activation=False)
    names = [layer.name for layer in model.layers]
    assert names[1:names.index("stage1_unit1")] == [
        "stem_pad", "stem_conv", "stem_pool_pad", "stem_pool"
    ]
    pad = model.get_layer("stem_pool_pad")
    assert type(pad) is ConstantPadding2D and pad.value == -math.inf
    assert model.get_layer("stage1_unit1").preact_bn is not None
    stem = keras.Model(
        model.input, [model.get_layer(n).output for n in ("stem_conv", "stem_pool")]
    )
    conv, pooled = (keras.ops.convert_to_numpy(t) for t in stem(images(model)))
    assert conv.min() < 0
    expected = torch.nn.MaxPool2d(3, 2, padding=1)(
        torch.from_numpy(conv.transpose(0, 3, 1, 2).copy())
    ).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(pooled, expected)


def test_first_unit_preactivation_after_the_activated_stem():
    """pytorchcv's ImageNet layout: BN-ReLU in the stem and again in the
    first unit, one more BN over the stem's 4 channels."""
    default = tiny("imagenet")
    model = tiny("imagenet", first_unit_preactivation=True)
    assert default.get_layer("stage1_unit1").preact_bn is None
    assert model.get_layer("stem_bn") is not None
    paths = {w.path for w in model.trainable_weights}
    assert {"stage1_unit1/preact_bn/gamma", "stage1_unit1/preact_bn/beta"} <= paths
    assert trainable_count(model) == trainable_count(default) + 2 * 4


# (id, builder arguments): the new layouts through the checklist's items 1-4.
OTHER_LAYOUTS = [
    ("timm", dict(stem_activation=False)),
    ("pytorchcv_imagenet", dict(first_unit_preactivation=True)),
]


@pytest.mark.parametrize("kwargs", [o[1] for o in OTHER_LAYOUTS], ids=[o[0] for o in OTHER_LAYOUTS])
def test_backbone_of_other_layouts(kwargs):
    run_backbone_test(tiny("imagenet", **kwargs), classes=5)


def test_keras_file_round_trip_of_an_unactivated_stem(tmp_path):
    model = randomized(tiny("imagenet", stem_activation=False, classifier_activation=None))
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    pad = restored.get_layer("stem_pool_pad")
    assert type(pad) is ConstantPadding2D and pad.value == -math.inf
    x = images(model)
    np.testing.assert_array_equal(logits(restored, x), logits(model, x))


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
        (
            dict(depth=20, data_format="channels_first", input_shape=(32, 32, 3)),
            r"input_shape=\(32, 32, 3\): in channels_first order that is height x width 32 x 3",
        ),
        (dict(depth=20, remat="yes"), r"remat='yes'\. Expected True or False"),
        (dict(depth=20, include_top=1), r"include_top=1\. Expected True or False"),
        (dict(depth=20, block_type="dense"), r"block_type='dense'"),
        (dict(stage_units=(1, 1, 1)), r"block_type=None"),
        (dict(stage_units=(1, 0, 1), block_type="basic"), r"stage_units=\(1, 0, 1\)"),
        (dict(depth=20, stage_units=(1, 1, 1), block_type="basic"), r"depth=20 .*depth 8"),
        (dict(depth=20, drop_path_rate=1.5), r"drop_path_rate=1.5"),
        (dict(depth=20, drop_path_rate=-0.1), r"drop_path_rate=-0.1"),
        (dict(depth=20, width_multiplier=0), r"width_multiplier=0"),
        (dict(depth=20, base_width=0), r"base_width=0"),
        (dict(depth=20, stride_on="2x2"), r"stride_on='2x2'"),
        (dict(depth=20, stem_activation="yes"),
         r"stem_activation='yes'\. Expected True or False or None"),
        (dict(depth=18, layout="imagenet", first_unit_preactivation=1),
         r"first_unit_preactivation=1\. Expected True or False or None"),
        (dict(depth=20, first_unit_shortcut="identity"),
         r"first_unit_shortcut='identity'\. Expected one of \[None, 'preactivated', 'raw'\]"),
        (dict(depth=20, stem_activation=False, first_unit_preactivation=False),
         r"stem_activation=False with first_unit_preactivation=False"),
        (dict(depth=18, layout="imagenet", stem_activation=False, first_unit_preactivation=False,
              unit_ordering="relu_only_preact"),
         r"stem_activation=False with first_unit_preactivation=False"),
        (dict(depth=18, layout="imagenet", stem_activation=False, unit_ordering="original"),
         r"stem_activation=False with unit_ordering='original', whose units start with a conv"),
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
        (
            dict(depth=20, input_normalization=((125.3, 123.0, 113.9), (0.247, 0.243, 0.261))),
            r"0-1 scale: multiply the std by 255",
        ),
        (
            dict(depth=20, input_normalization=((0.49, 0.48, 0.45), (63.0, 62.1, 66.7))),
            r"0-1 scale: multiply the mean by 255",
        ),
        (dict(depth=20, input_normalization={"mean": (1, 2, 3), "std": (4, 5, 6)}),
         r"input_normalization=\{'mean'"),
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
        "stem_activation", "first_unit_preactivation", "first_unit_shortcut",
        "pooling", "data_format", "depth", "stage_units", "base_width",
        "width_multiplier", "classes", "drop_path_rate", "input_shape",
        "input_normalization", "weights", "bn_momentum", "bn_epsilon",
    ]:
        assert f"`{argument}`" in raises, argument
