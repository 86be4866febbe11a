"""keras_preact.models.preact_resnet: the `PreActResNet` builder, the checklist
of ../shared/STYLE.md as tables of configurations over shared checks
(`run_backbone_test`, `run_head_test`)."""

import numpy as np
import pytest

import keras
import keras_preact
from keras_preact.layers import SHORTCUTS
from keras_preact.layers import UNIT_ORDERINGS
from keras_preact.layers import ResidualUnit

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
        "pooling", "data_format", "depth", "stage_units", "base_width",
        "width_multiplier", "classes", "drop_path_rate", "input_shape",
        "input_normalization", "weights", "bn_momentum", "bn_epsilon",
    ]:
        assert f"`{argument}`" in raises, argument
