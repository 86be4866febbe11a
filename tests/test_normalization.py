"""keras_preact.normalization: the statistics, `normalize` and its TensorFlow twin
`image_ops.normalize`, the builder's input layer, and the `normalization=`
resolutions of the pipelines and the export, each against plain arithmetic."""

import dataclasses

import keras
import numpy as np
import pytest

import keras_preact
from keras_preact import normalization as nz
from keras_preact.normalization import STATISTICS
from keras_preact.normalization import Statistics

PAIR = ((100.0, 110.0, 120.0), (50.0, 60.0, 70.0))


def _values(statistics):
    return statistics.mean + statistics.std


# ----------------------------------------------------------------------------
# The named statistics, against the data and the published values.


def test_cifar100_statistics_match_real_training_split(shared_data):
    files = sorted((shared_data / "cifar100").glob("train_*.npz"))
    if len(files) != 4:
        pytest.skip("CIFAR-100 training shards not found")
    # Exact statistics from per-channel histograms of the uint8 pixels.
    hist = np.zeros((3, 256), np.int64)
    for f in files:
        x = np.load(f)["x"]
        for c in range(3):
            hist[c] += np.bincount(x[..., c].ravel(), minlength=256)
    assert hist.sum() == 3 * 50_000 * 32 * 32
    values = np.arange(256, dtype=np.float64)
    mean = (hist * values).sum(1) / hist.sum(1)
    std = np.sqrt((hist * (values - mean[:, None]) ** 2).sum(1) / hist.sum(1))
    np.testing.assert_allclose(mean, STATISTICS["cifar100"].mean, atol=1e-3)
    np.testing.assert_allclose(std, STATISTICS["cifar100"].std, atol=1e-3)


def test_published_statistics():
    cifar10, imagenet = STATISTICS["cifar10"], STATISTICS["imagenet"]
    np.testing.assert_allclose(
        np.array(cifar10.mean) / 255, (0.49139968, 0.48215841, 0.44653091), atol=2e-6)
    np.testing.assert_allclose(
        np.array(cifar10.std) / 255, (0.24703223, 0.24348513, 0.26158784), atol=2e-6)
    np.testing.assert_allclose(imagenet.mean, (123.675, 116.28, 103.53))
    np.testing.assert_allclose(imagenet.std, (58.395, 57.12, 57.375))
    assert sorted(STATISTICS) == ["cifar10", "cifar100", "imagenet"]
    for statistics in STATISTICS.values():
        assert isinstance(statistics, Statistics)
        assert all(isinstance(v, float) for v in _values(statistics)) and len(statistics.mean) == 3


# ----------------------------------------------------------------------------
# resolve_statistics and the Statistics value type.

RESOLVED = {
    # id: (value, channels, expected (mean, std))
    "name": ("cifar10", 3, ((125.307, 122.950, 113.865), (62.993, 62.089, 66.705))),
    "pair-of-ints": (((100, 110, 120), (50, 60, 70)), 3, PAIR),
    "pair-of-arrays": ((np.array(PAIR[0]), np.array(PAIR[1])), 3, PAIR),
    "statistics": (Statistics(*PAIR), 3, PAIR),
    "one-channel": (((33,), (78,)), 1, ((33.0,), (78.0,))),
    # Zero means and unit stds (inputs already normalized): not the 0-1 scale.
    "identity": (((0, 0, 0), (1, 1, 1)), 3, ((0.0,) * 3, (1.0,) * 3)),
    # Mean subtraction alone (unit stds): the means are on the 0-255 scale.
    "mean-only": (((125, 123, 114), (1, 1, 1)), 3, ((125.0, 123.0, 114.0), (1.0,) * 3)),
}


@pytest.mark.parametrize("case", list(RESOLVED))
def test_resolve_statistics(case):
    value, channels, (mean, std) = RESOLVED[case]
    statistics = nz.resolve_statistics(value, channels=channels)
    assert statistics == Statistics(mean, std)
    assert statistics.mean == mean and statistics.std == std
    assert all(type(v) is float for v in _values(statistics))
    assert nz.resolve_statistics(statistics, channels=channels) is statistics
    with pytest.raises(dataclasses.FrozenInstanceError):
        statistics.mean = (0.0,)


BAD_STATISTICS = {
    # id: (value, error text); pairs are refused by Statistics(mean, std) too.
    "unknown-name": ("cifar", r"Unknown statistics='cifar'. Expected one of "
                              r"\['cifar10', 'cifar100', 'imagenet'\] or a \(mean, std\) pair"),
    "none": (None, "Expected statistics to be one of .* a Statistics. Received: None"),
    "one-sequence": (((1.0, 2.0, 3.0),), "Expected statistics to be one of"),
    "lengths-differ": (((1.0, 2.0), (1.0, 1.0, 1.0)),
                       r"one value per channel each. Received 2 and 3 values"),
    "two-channels": (((1.0, 2.0), (1.0, 1.0)),
                     r"Expected one value per channel \(3\). Received 2 values"),
    "std-zero": (((0, 0, 0), (1.0, 0.0, 1.0)), r"Expected all std values > 0"),
    "std-negative": (((0, 0, 0), (1.0, -1.0, 1.0)), r"Expected all std values > 0"),
    "zero-one-scale": (((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
                       "look like the 0-1 scale: multiply both by 255"),
    "zero-one-std": (((125.3, 123.0, 113.9), (0.247, 0.243, 0.261)),
                     "look like the 0-1 scale: multiply the std by 255"),
    "zero-one-mean": (((0.49, 0.48, 0.45), (63.0, 62.1, 66.7)),
                      "look like the 0-1 scale: multiply the mean by 255"),
    "mapping": ({"mean": (125, 123, 114), "std": (63, 62, 67)},
                r"Expected statistics to be one of .* Received: \{'mean'"),
    "not-numbers": ((("a", 0, 0), (1, 1, 1)),
                    r"Expected mean to be a sequence of numbers, one per channel. "
                    r"Received: mean=\('a', 0, 0\)"),
    "scalar-std": (((1.0, 2.0, 3.0), 5.0), "Expected std to be a sequence of numbers"),
    "nan": (((np.nan, 0, 0), (1, 1, 1)), "Expected finite mean values"),
    "empty": (((), ()), "one value per channel each. Received 0 and 0 values"),
}


@pytest.mark.parametrize("case", list(BAD_STATISTICS))
def test_bad_statistics(case):
    value, match = BAD_STATISTICS[case]
    with pytest.raises(ValueError, match=match):
        nz.resolve_statistics(value)
    if isinstance(value, tuple) and len(value) == 2 and case != "two-channels":
        with pytest.raises(ValueError, match=match):
            Statistics(*value)


def test_isclose():
    imagenet = STATISTICS["imagenet"]
    assert imagenet.isclose("imagenet") and imagenet.isclose(((123.675, 116.28, 103.53),
                                                              (58.395, 57.12, 57.375)))
    assert imagenet.isclose(Statistics(np.float32(imagenet.mean), np.float32(imagenet.std)))
    assert not imagenet.isclose("cifar100")
    assert not Statistics(*PAIR).isclose(((100.0, 110.0, 120.1), PAIR[1]))


@pytest.mark.parametrize("num_classes, name", [(100, "cifar100"), (10, "cifar10"), (20, "cifar10")])
def test_cifar_statistics_follow_the_number_of_classes(num_classes, name):
    assert nz.cifar_statistics(num_classes) is STATISTICS[name]


# ----------------------------------------------------------------------------
# normalize (keras.ops) and image_ops.normalize (TensorFlow): one table.

NORMALIZE = {
    # id: (images shape, dtype, statistics, data_format)
    "name-uint8-last": ((2, 4, 5, 3), "uint8", "cifar100", "channels_last"),
    "name-uint8-first": ((2, 3, 4, 5), "uint8", "imagenet", "channels_first"),
    "pair-float-first": ((2, 3, 2, 2), "float32", PAIR, "channels_first"),
    "pair-float-last-unbatched": ((4, 4, 3), "float32", PAIR, "channels_last"),
    "statistics-int32-last": ((3, 2, 2, 3), "int32", STATISTICS["cifar10"], "channels_last"),
    "statistics-float64-first": ((1, 3, 3, 2), "float64", Statistics(*PAIR), "channels_first"),
    "one-channel-last": ((2, 3, 3, 1), "uint8", ((33.0,), (78.0,)), "channels_last"),
}


def _reference(x, statistics, data_format):
    shape = (-1,) if data_format == "channels_last" else (-1, 1, 1)
    statistics = nz.resolve_statistics(statistics, channels=x.shape[len(shape) * -1])
    mean, std = np.reshape(statistics.mean, shape), np.reshape(statistics.std, shape)
    return (x.astype(np.float64) - mean) / std


@pytest.mark.parametrize("case", list(NORMALIZE))
def test_normalize_and_its_tensorflow_twin(case):
    shape, dtype, statistics, data_format = NORMALIZE[case]
    x = np.random.default_rng(0).integers(0, 256, shape).astype(dtype)
    out = keras.ops.convert_to_numpy(nz.normalize(x, statistics, data_format=data_format))
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out, _reference(x, statistics, data_format), rtol=1e-5, atol=1e-5)
    # The data format by default is Keras' own.
    keras.config.set_image_data_format(data_format)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(nz.normalize(x, statistics)), out)
    from keras_preact import image_ops  # the pipelines' and serving graphs' copy

    twin = image_ops.normalize(x, statistics, data_format=data_format).numpy()
    assert twin.dtype == np.float32
    np.testing.assert_array_equal(twin, out)


@pytest.mark.parametrize(
    "shape, statistics, data_format, match",
    [
        ((1, 2, 2, 3), "cifar10", "nhwc", "Invalid data_format='nhwc'"),
        ((1, 2, 2, 4), "cifar10", "channels_last", r"one value per channel \(4\)"),
        ((1, 3, 2, 2), "cifar10", "channels_last", r"one value per channel \(2\)"),
        ((1, 2, 2, 3), ((1.0, 2.0, 3.0), (1.0, 0.0, 1.0)), "channels_last", "std values > 0"),
        ((2, 3), "cifar10", "channels_first", "known channel dimension"),
        ((1, 2, 2, 3), "cifar", "channels_last", "Unknown statistics='cifar'"),
    ],
)
def test_normalize_bad_input(shape, statistics, data_format, match):
    from keras_preact import image_ops

    x = np.zeros(shape, np.float32)
    for normalize in (nz.normalize, image_ops.normalize):
        with pytest.raises(ValueError, match=match):
            normalize(x, statistics, data_format=data_format)


# ----------------------------------------------------------------------------
# The model records its statistics; they survive .keras save and load.

RECORDED = {
    # id: (PreActResNet kwargs, expected statistics or None)
    "none": (dict(), None),
    "name": (dict(input_normalization="cifar10"), STATISTICS["cifar10"]),
    "name-channels_first": (
        dict(input_normalization="imagenet", data_format="channels_first", input_shape=(3, 32, 32)),
        STATISTICS["imagenet"]),
    "pair": (dict(input_normalization=((10.0, 20.0, 30.0), (2.0, 3.0, 4.0))),
             Statistics((10.0, 20.0, 30.0), (2.0, 3.0, 4.0))),
    "statistics": (dict(input_normalization=Statistics(*PAIR)), Statistics(*PAIR)),
    # Not RGB: as many values as the input's channels.
    "one-channel": (dict(input_normalization=((120.0,), (60.0,)), input_shape=(32, 32, 1)),
                    Statistics((120.0,), (60.0,))),
    "four-channels-first": (
        dict(input_normalization=((10.0, 20.0, 30.0, 40.0), (2.0, 3.0, 4.0, 5.0)),
             data_format="channels_first", input_shape=(4, 32, 32)),
        Statistics((10.0, 20.0, 30.0, 40.0), (2.0, 3.0, 4.0, 5.0))),
}


@pytest.mark.parametrize("case", list(RECORDED))
def test_model_statistics_survive_keras_file(case, tmp_path):
    kwargs, expected = RECORDED[case]
    kwargs = {"input_shape": (32, 32, 3), **kwargs}
    model = keras_preact.PreActResNet(depth=8, base_width=4, classes=10, **kwargs)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    nested = keras.Sequential([model, keras.layers.Activation("linear")])
    for m in (model, loaded, nested):
        got = nz.model_statistics(m)
        if expected is None:
            assert got is None
        else:
            assert isinstance(got, Statistics) and expected.isclose(got, rtol=1e-6)
    if expected is None:
        return
    # The model maps 0-255 pixels itself: the same as normalizing first.
    x = np.random.default_rng(0).integers(0, 256, (2, *kwargs["input_shape"])).astype("float32")
    bare = keras_preact.PreActResNet(depth=8, base_width=4, classes=10, **{
        k: v for k, v in kwargs.items() if k != "input_normalization"})
    bare.set_weights(model.get_weights())
    normalized = nz.normalize(x, expected, data_format=kwargs.get("data_format", "channels_last"))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)),
                               keras.ops.convert_to_numpy(bare(normalized)), atol=1e-5)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_input_normalization_layer_equals_normalize(data_format):
    x = np.random.default_rng(1).integers(0, 256, (2, 3, 4, 4)).astype("float32")
    if data_format == "channels_last":
        x = x.transpose(0, 2, 3, 1)
    layer = nz.input_normalization_layer("cifar100", data_format)
    assert layer.name == nz.INPUT_NORMALIZATION_LAYER and layer.dtype_policy.name == "float32"
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(x)),
        keras.ops.convert_to_numpy(nz.normalize(x, "cifar100", data_format)), atol=1e-5)
    assert layer.weights == []  # parameter counts stay the paper's


# ----------------------------------------------------------------------------
# normalization= of the pipelines.


def _self_normalizing(statistics):
    """What `PreActResNet(..., input_normalization=statistics)` starts with."""
    return keras.Sequential([keras.Input((32, 32, 3)), nz.input_normalization_layer(statistics)])


PIPELINE = {
    # id: (normalization, default, expected statistics (a name, a pair or None), pad value)
    "name": ("imagenet", "cifar10", "imagenet", 0.0),
    "pair": (PAIR, "cifar10", PAIR, 0.0),
    "statistics": (Statistics(*PAIR), "cifar10", PAIR, 0.0),
    "auto": ("auto", "cifar100", "cifar100", 0.0),
    "auto-statistics-default": ("auto", Statistics(*PAIR), PAIR, 0.0),
    "pixels-black": (None, "cifar100", None, 0.0),
    "pixels-for-a-self-normalizing-model": (
        lambda: _self_normalizing(PAIR), "cifar100", None, PAIR[0]),
    "a-model-without-its-own": (
        lambda: keras.Sequential([keras.Input((32, 32, 3))]), "cifar100", "cifar100", 0.0),
}


@pytest.mark.parametrize("case", list(PIPELINE))
def test_pipeline_statistics(case):
    normalization, default, expected, pad_value = PIPELINE[case]
    if callable(normalization):
        normalization = normalization()
    statistics, pad = nz.pipeline_statistics(normalization, default)
    if expected is None:
        assert statistics is None
    else:
        assert statistics == nz.resolve_statistics(expected)
    np.testing.assert_allclose(pad, pad_value, rtol=1e-6)


def test_model_data_format():
    from _checks import channels_first_model

    assert nz.model_data_format(channels_first_model()) == "channels_first"
    last = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3),
                             keras.layers.MaxPooling2D()])
    assert nz.model_data_format(last) == "channels_last"
    # No layer with a data format, or both formats: no answer.
    assert nz.model_data_format(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])) \
        is None
    both = keras.Sequential([keras.Input((3, 8, 8)),
                             keras.layers.Conv2D(2, 3, data_format="channels_first"),
                             keras.layers.MaxPooling2D(1, data_format="channels_last")])
    assert nz.model_data_format(both) is None


@pytest.mark.parametrize("normalization, data_format, image_data_format, expected", [
    ("model", None, "channels_last", "channels_first"),  # the model's layout wins
    ("model", "channels_last", "channels_first", "channels_last"),  # data_format= wins
    ("cifar10", None, "channels_first", "channels_first"),  # Keras' setting
    (None, "channels_last", "channels_first", "channels_last"),
])
def test_pipeline_data_format(normalization, data_format, image_data_format, expected):
    from _checks import channels_first_model

    keras.config.set_image_data_format(image_data_format)
    if normalization == "model":
        normalization = channels_first_model()
    assert nz.pipeline_data_format(normalization, data_format) == expected
    with pytest.raises(ValueError, match="Invalid data_format='NCHW'"):
        nz.pipeline_data_format(normalization, "NCHW")


@pytest.mark.parametrize(
    "normalization, match",
    [
        ("cifar1000", r"Invalid normalization='cifar1000' \(Unknown statistics='cifar1000'"),
        ("AUTO", "Invalid normalization='AUTO'"),
        (((1.0, 2.0), (1, 1, 1)), "one value per channel"),
        (((0.5, 0.5, 0.5), (0.2, 0.2, 0.2)), "multiply both by 255"),
        (3, r"Invalid normalization=3 .*Expected 'auto', None, a keras.Model"),
    ],
)
def test_pipeline_statistics_bad_input(normalization, match):
    with pytest.raises(ValueError, match=match):
        nz.pipeline_statistics(normalization, "cifar10")


# ----------------------------------------------------------------------------
# normalization= of the export: the model's own statistics win.

SERVING = {
    # id: (model's input_normalization, normalization=, expected (name, in_model))
    "model-records": ("cifar100", None, ("cifar100", True)),
    "same-name": ("imagenet", "imagenet", ("imagenet", True)),
    "same-pair": ("cifar10", (STATISTICS["cifar10"].mean, STATISTICS["cifar10"].std),
                  ("cifar10", True)),
    "same-statistics": ("cifar10", STATISTICS["cifar10"], ("cifar10", True)),
    "export-normalizes": (None, "imagenet", ("imagenet", False)),
}


def _model(input_normalization):
    return keras_preact.PreActResNet(depth=8, base_width=4, classes=10, input_shape=(32, 32, 3),
                                     input_normalization=input_normalization, name="tiny")


@pytest.mark.parametrize("case", list(SERVING))
def test_serving_statistics(case):
    recorded, normalization, (expected, in_model) = SERVING[case]
    statistics, got_in_model = nz.serving_statistics(_model(recorded), normalization)
    assert isinstance(statistics, Statistics) and statistics.isclose(expected, rtol=1e-6)
    assert got_in_model is in_model


@pytest.mark.parametrize(
    "recorded, normalization, match",
    [
        # CIFAR statistics for an ImageNet model: both are named.
        ("imagenet", "cifar100",
         r"(?s)normalization='cifar100' gives mean=\(129\.304.*model 'tiny' normalizes its "
         r"inputs with mean=\(123\.67.*Pass normalization=None \(CLI: leave out --normalization\)"),
        (None, None, r"(?s)records no input statistics.*input_normalization=.*"
                     r"normalization='cifar10'.*CLI: --normalization cifar10\|cifar100\|imagenet"),
        (None, "cifar", "Unknown statistics='cifar'"),
        (None, ((1.0, 2.0), (1.0, 1.0)), "one value per channel"),
        (None, ((0, 0, 0), (1.0, 0.0, 1.0)), "std values > 0"),
    ],
)
def test_serving_statistics_refusals(recorded, normalization, match):
    with pytest.raises(ValueError, match=match):
        nz.serving_statistics(_model(recorded), normalization)

