"""keras_preact.data.array_pipeline: CIFAR batches in numpy, without TensorFlow."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_preact
from keras_preact import normalization as nz
from keras_preact.data import CIFARBatches
from keras_preact.data.array_pipeline import pad_crop_flip

from _checks import check_a_model_gets_its_own_layout
from _checks import random_images

REPO = Path(__file__).resolve().parents[2]
BACKEND = keras.backend.backend()


def _epoch(ds):
    xs, ys = zip(*(ds[i] for i in range(len(ds))))
    return np.concatenate(xs), np.concatenate(ys)


# ----------------------------------------------------------------------------
# No TensorFlow needed.


@pytest.mark.skipif(BACKEND == "tensorflow", reason="TensorFlow is the backend itself")
def test_imports_and_batches_without_tensorflow():
    # `import tensorflow` raises in this process: the package, the loader and
    # the numpy pipeline must not need it.
    script = textwrap.dedent(
        """
        import sys
        sys.modules["tensorflow"] = None
        import numpy as np
        from keras_preact.data import CIFARBatches, load_cifar
        x = np.zeros((8, 32, 32, 3), np.uint8)
        ds = CIFARBatches(x, np.arange(8) % 10, training=True, batch_size=4, seed=0)
        images, labels = ds[1]
        print("OK", images.shape, labels.shape)
        """
    )
    env = dict(os.environ, KERAS_BACKEND=BACKEND, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env,
        timeout=300, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OK (4, 32, 32, 3) (4,)" in proc.stdout


# ----------------------------------------------------------------------------
# Shapes, dtypes, normalization.


@pytest.mark.parametrize(
    "n, batch, training, drop_remainder, data_format, sizes",
    [
        (50, 16, False, None, "channels_last", [16, 16, 16, 2]),
        (50, 16, True, None, "channels_last", [16, 16, 16]),
        (50, 16, True, False, "channels_first", [16, 16, 16, 2]),
        (48, 16, False, True, "channels_first", [16, 16, 16]),
        (5, 8, False, None, "channels_last", [5]),
    ],
)
def test_batch_shapes_and_dtypes(n, batch, training, drop_remainder, data_format, sizes):
    ds = CIFARBatches(random_images(n), np.arange(n) % 10, training=training, batch_size=batch,
                      drop_remainder=drop_remainder, data_format=data_format, seed=0)
    assert len(ds) == len(sizes)
    for i, size in enumerate(sizes):
        images, labels = ds[i]
        shape = (size, 32, 32, 3) if data_format == "channels_last" else (size, 3, 32, 32)
        assert images.shape == shape and images.dtype == np.float32
        assert images.flags["C_CONTIGUOUS"]
        assert labels.shape == (size,) and labels.dtype == np.int32
    with pytest.raises(IndexError):
        ds[len(sizes)]


def test_data_format_defaults_to_keras_setting():
    keras.config.set_image_data_format("channels_first")
    ds = CIFARBatches(random_images(4), np.arange(4), training=False, batch_size=4)
    assert ds.data_format == "channels_first" and ds[0][0].shape == (4, 3, 32, 32)
    keras.config.set_image_data_format("channels_last")
    last = CIFARBatches(random_images(4), np.arange(4), training=False, batch_size=4)
    np.testing.assert_array_equal(ds[0][0], last[0][0].transpose(0, 3, 1, 2))


@pytest.mark.parametrize("training", [True, False], ids=["training", "evaluation"])
def test_a_model_gets_batches_in_its_data_format(training):
    check_a_model_gets_its_own_layout(lambda **kw: CIFARBatches(
        random_images(8), np.arange(8), training=training, batch_size=4, seed=0, **kw))


# (pixel value, per-channel result) for the library's statistics tables:
# (v - mean) / std with the CIFAR-100 / CIFAR-10 statistics, written out.
NORMALIZED = {
    100: {
        0: (-1.896787, -1.897327, -1.596666),
        128: (-0.019129, 0.060099, 0.221051),
        255: (1.843861, 2.002233, 2.024568),
    },
    10: {
        0: (-1.989221, -1.980222, -1.706993),
        128: (0.042751, 0.081335, 0.211903),
        255: (2.058848, 2.126786, 2.115808),
    },
}


@pytest.mark.parametrize("num_classes", [100, 10])
@pytest.mark.parametrize("value", [0, 128, 255])
def test_normalization_values(num_classes, value):
    x = np.full((3, 32, 32, 3), value, np.uint8)
    ds = CIFARBatches(x, np.array([0, 1, 2]), training=False, batch_size=3,
                      num_classes=num_classes)
    images, _ = ds[0]
    np.testing.assert_allclose(images[1, 5, 7], NORMALIZED[num_classes][value], atol=1e-5)
    assert np.ptp(images.reshape(-1, 3), axis=0).max() == 0


def test_default_statistics_follow_the_labels():
    x = random_images(4)
    # A label >= 10 means CIFAR-100 statistics, as in cifar_dataset.
    hundred = CIFARBatches(x, np.array([0, 1, 2, 50]), training=False, batch_size=4)
    ten = CIFARBatches(x, np.array([0, 1, 2, 5]), training=False, batch_size=4)
    assert hundred.statistics == nz.STATISTICS["cifar100"] and hundred.pad_value == 0
    assert ten.statistics == nz.STATISTICS["cifar10"] and ten.pad_value == 0
    custom = CIFARBatches(x, np.arange(4), training=False, batch_size=4,
                          normalization=((100, 110, 120), (50, 60, 70)))
    expected = (x.astype(np.float64) - (100, 110, 120)) / (50, 60, 70)
    np.testing.assert_allclose(custom[0][0], expected, atol=1e-5)


def test_real_cifar100_is_normalized(shared_data):
    d = np.load(shared_data / "cifar100" / "test.npz")
    x, y = d["x"][:2000], d["y"][:2000]
    out, labels = _epoch(CIFARBatches(x, y, training=False, batch_size=500))
    np.testing.assert_array_equal(labels, y)
    per_channel = out.reshape(-1, 3)
    np.testing.assert_allclose(per_channel.mean(0), 0.0, atol=0.05)
    np.testing.assert_allclose(per_channel.std(0), 1.0, atol=0.05)


# ----------------------------------------------------------------------------
# normalization=: pixels for a model that normalizes its own input.


@pytest.mark.parametrize("training, augment, statistics", [
    (True, "paper", "cifar100"),
    (True, "none", ((100.0, 110.0, 120.0), (50.0, 60.0, 70.0))),
    (False, "paper", "cifar10"),
])
def test_pixels_for_a_self_normalizing_model(training, augment, statistics):
    """normalization=model: 0-255 pixels (padding the model's mean colour) that
    the model's own normalization turns into the normalized batches."""
    # What PreActResNet(..., input_normalization=statistics) starts with
    # (building one imports TensorFlow, which this file does without).
    model = keras.Sequential([keras.Input((32, 32, 3)), nz.input_normalization_layer(statistics)])
    x, y = random_images(32, seed=6), np.arange(32) % 10
    args = dict(training=training, augment=augment, batch_size=16, seed=1, num_classes=10)
    pixels = CIFARBatches(x, y, normalization=model, **args)
    normalized = CIFARBatches(x, y, normalization=statistics, **args)
    assert pixels.statistics is None and pixels.pad_value == nz.model_statistics(model).mean
    layer = model.get_layer(nz.INPUT_NORMALIZATION_LAYER)
    for i in range(len(pixels)):
        (px, py), (nx, ny) = pixels[i], normalized[i]
        np.testing.assert_array_equal(py, ny)
        assert px.dtype == np.float32 and px.min() >= 0 and px.max() <= 255
        np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(px)), nx, atol=1e-4)
    if not training:  # Evaluation pixels are the images, exactly.
        np.testing.assert_array_equal(_epoch(pixels)[0], x)
    # None: pixels with black padding; a model without its own normalization:
    # the default statistics.
    black = CIFARBatches(x, y, normalization=None, **args)
    plain = CIFARBatches(x, y, normalization=keras.Sequential([keras.Input((32, 32, 3))]), **args)
    assert black.statistics is None and black.pad_value == 0
    assert plain.statistics == nz.STATISTICS["cifar10"] and plain.pad_value == 0
    np.testing.assert_array_equal(_epoch(plain)[0], _epoch(CIFARBatches(x, y, **args))[0])


# ----------------------------------------------------------------------------
# The same batches as the tf.data pipeline.


@pytest.mark.parametrize("num_classes, normalization", [
    (10, "auto"), (100, "auto"), (100, None), (10, ((100.0, 110.0, 120.0), (50.0, 60.0, 70.0)))])
def test_eval_batches_equal_cifar_dataset(num_classes, normalization):
    tf = pytest.importorskip("tensorflow")  # noqa: F841
    from keras_preact.data import cifar_dataset

    x, y = random_images(50, seed=1), np.arange(50) % num_classes
    args = dict(training=False, batch_size=16, num_classes=num_classes,
                normalization=normalization)
    ours, theirs = CIFARBatches(x, y, **args), list(cifar_dataset(x, y, **args))
    assert len(ours) == len(theirs) == 4
    for i, (tx, ty) in enumerate(theirs):
        ox, oy = ours[i]
        np.testing.assert_allclose(ox, tx.numpy(), rtol=0, atol=1e-6)
        np.testing.assert_array_equal(oy, ty.numpy())


def test_unaugmented_training_epoch_equals_cifar_dataset():
    pytest.importorskip("tensorflow")
    from keras_preact.data import cifar_dataset

    # One image per label, so both shuffled epochs can be put back in order.
    n = 100
    x, y = random_images(n, seed=2), np.random.default_rng(0).permutation(n)
    ours = _epoch(CIFARBatches(x, y, training=True, augment="none", batch_size=20, seed=0))
    xs, ys = zip(*((a.numpy(), b.numpy()) for a, b in cifar_dataset(
        x, y, training=True, augment="none", batch_size=20, seed=0)))
    theirs = np.concatenate(xs), np.concatenate(ys)
    assert sorted(ours[1]) == sorted(theirs[1]) == list(range(n))
    np.testing.assert_allclose(
        ours[0][np.argsort(ours[1])], theirs[0][np.argsort(theirs[1])], rtol=0, atol=1e-6
    )


# ----------------------------------------------------------------------------
# The paper's augmentation.


def _loop_reference(images, offsets_y, offsets_x, flips, pad, mode, fill=0.0):
    out = np.empty_like(images)
    h, w = images.shape[1:3]
    for i, image in enumerate(images):
        padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode=mode)
        if mode == "constant":
            padded = np.full_like(padded, 0) + np.asarray(fill, images.dtype)
            padded[pad : pad + h, pad : pad + w] = image
        crop = padded[offsets_y[i] : offsets_y[i] + h, offsets_x[i] : offsets_x[i] + w]
        out[i] = crop[:, ::-1] if flips[i] else crop
    return out


@pytest.mark.parametrize("pad, mode, fill", [
    (4, "constant", 0.0), (4, "reflect", 0.0), (1, "constant", 0.0), (0, "constant", 0.0),
    (4, "constant", nz.STATISTICS["cifar100"].mean), (2, "constant", 7.0),
    (4, "reflect", nz.STATISTICS["cifar100"].mean),
])
def test_pad_crop_flip_equals_per_image_loop(pad, mode, fill):
    rng = np.random.default_rng(pad)
    x = rng.standard_normal((12, 32, 32, 3)).astype(np.float32)
    oy, ox = rng.integers(0, 2 * pad + 1, 12), rng.integers(0, 2 * pad + 1, 12)
    flips = np.arange(12) % 2 == 0
    out = pad_crop_flip(x, oy, ox, flips, pad=pad, pad_mode=mode, pad_value=fill)
    assert out.shape == x.shape and out.dtype == x.dtype
    np.testing.assert_array_equal(out, _loop_reference(x, oy, ox, flips, pad, mode, fill))


def test_pad_crop_flip_pads_with_zeros_after_normalization():
    ds = CIFARBatches(np.full((2, 32, 32, 3), 200, np.uint8), np.arange(2), training=False,
                      batch_size=2)
    normalized = ds[0][0]
    out = pad_crop_flip(normalized, np.array([0, 8]), np.array([0, 8]),
                        np.array([False, False]))
    # Offset (0, 0): 4 rows and columns of padding top-left; (8, 8): bottom-right.
    assert (out[0, :4] == 0).all() and (out[0, :, :4] == 0).all()
    assert (out[1, -4:] == 0).all() and (out[1, :, -4:] == 0).all()
    np.testing.assert_array_equal(out[0, 4:, 4:], normalized[0, :28, :28])


def test_training_batch_is_the_drawn_crop_of_the_shuffled_images():
    x, y = random_images(64, seed=3), np.arange(64)
    train = CIFARBatches(x, y, training=True, batch_size=16, seed=5, num_classes=64)
    normalized = _epoch(CIFARBatches(x, y, training=False, batch_size=64,
                                     num_classes=64))[0]
    order = train.order()
    for i in range(len(train)):
        images, labels = train[i]
        idx = order[i * 16 : (i + 1) * 16]
        np.testing.assert_array_equal(labels, y[idx])
        draws = train.augmentation_draws(i)
        np.testing.assert_array_equal(images, pad_crop_flip(normalized[idx], **draws))


def test_augmentation_statistics():
    n = 4096
    # Pixels (normalization=None): the draws do not depend on the scale.
    ds = CIFARBatches(np.zeros((n, 32, 32, 3), np.uint8), np.zeros(n, np.int64),
                      training=True, batch_size=128, seed=0, normalization=None)
    draws = [ds.augmentation_draws(i) for i in range(len(ds))]
    for key in ("offsets_y", "offsets_x"):
        offsets = np.concatenate([d[key] for d in draws])
        # Uniform over the 9 offsets 0..8: every one, about n/9 times each.
        assert offsets.min() == 0 and offsets.max() == 8
        counts = np.bincount(offsets, minlength=9)
        assert len(counts) == 9 and counts.min() > n / 9 * 0.75
        assert abs(offsets.mean() - 4) < 0.2
    flips = np.concatenate([d["flips"] for d in draws])
    assert flips.dtype == bool and abs(flips.mean() - 0.5) < 0.04


def test_unaugmented_datasets_draw_nothing():
    x, y = random_images(8), np.arange(8)
    assert CIFARBatches(x, y, training=True, augment="none", batch_size=4,
                        seed=0).augmentation_draws(0) is None
    assert CIFARBatches(x, y, training=False, batch_size=4).augmentation_draws(0) is None


def test_seeded_deterministic_and_new_every_epoch():
    x, y = random_images(64, seed=4), np.arange(64) % 10
    a = CIFARBatches(x, y, training=True, batch_size=16, seed=7)
    b = CIFARBatches(x, y, training=True, batch_size=16, seed=7)
    first = _epoch(a)
    for got, want in zip(_epoch(b), first):
        np.testing.assert_array_equal(got, want)
    # The order batches are asked for does not matter (fit may reorder them).
    np.testing.assert_array_equal(b[3][0], a[3][0])
    np.testing.assert_array_equal(b[0][0], a[0][0])
    # Each epoch: a new permutation of all examples, new crops.
    assert sorted(a.order()) == list(range(64))
    a.on_epoch_end()
    assert a.epoch == 1 and sorted(a.order()) == list(range(64))
    assert list(a.order()) != list(a.order(0))
    second = _epoch(a)
    assert not np.array_equal(second[0], first[0])
    # Another seed: other batches.
    c = CIFARBatches(x, y, training=True, batch_size=16, seed=8)
    assert not np.array_equal(_epoch(c)[0], first[0])
    # Evaluation batches never change.
    ev = CIFARBatches(x, y, training=False, batch_size=16)
    before = _epoch(ev)[0]
    ev.on_epoch_end()
    np.testing.assert_array_equal(_epoch(ev)[0], before)


def test_unseeded_uses_numpy_global_seed():
    x, y = random_images(32), np.arange(32) % 10
    np.random.seed(3)
    a = CIFARBatches(x, y, training=True, batch_size=16)
    np.random.seed(3)
    b = CIFARBatches(x, y, training=True, batch_size=16)
    assert a.seed == b.seed
    np.testing.assert_array_equal(a[0][0], b[0][0])


# ----------------------------------------------------------------------------
# Bad input.


@pytest.mark.parametrize(
    "images, labels, kwargs, match",
    [
        (random_images(4)[..., :1], np.arange(4), {}, r"shape \(N, H, W, 3\)"),
        (random_images(4)[0], np.arange(4), {}, r"shape \(N, H, W, 3\)"),
        (np.zeros((0, 32, 32, 3), np.uint8), np.arange(0), {}, "at least one image"),
        (random_images(4).astype(bool), np.arange(4), {}, "dtype bool"),
        (np.full((4, 32, 32, 3), 300.0), np.arange(4), {}, r"\[0, 255\]"),
        (np.full((4, 32, 32, 3), np.nan), np.arange(4), {}, r"\[0, 255\]"),
        (random_images(4), np.arange(3), {}, "differ in length: 4 vs 3"),
        (random_images(4), np.arange(4) * 0.5, {}, "integer class ids"),
        (random_images(4), np.arange(4) + 10, {"num_classes": 10},
         r"Label 10 is outside \[0, 10\) for num_classes=10"),
        (random_images(4), np.arange(4) - 1, {}, "outside"),
        (random_images(4), np.arange(4), {"batch_size": 0}, "batch_size"),
        (random_images(4), np.arange(4), {"batch_size": 2.0}, "batch_size"),
        (random_images(4), np.arange(4), {"batch_size": 8, "training": True}, "No batch"),
        (random_images(4), np.arange(4), {"augment": "randaugment"}, "augment"),
        (random_images(4), np.arange(4), {"pad": -1}, "pad"),
        (random_images(4), np.arange(4), {"pad_mode": "edge"}, "pad_mode"),
        (random_images(4), np.arange(4), {"pad_mode": "reflect", "pad": 32}, "reflect"),
        (random_images(4), np.arange(4), {"seed": -3}, "seed"),
        (random_images(4), np.arange(4), {"data_format": "NHWC"}, "data_format"),
        (random_images(4), np.arange(4), {"normalization": ((1, 2), (1, 1))}, "mean"),
        (random_images(4), np.arange(4), {"normalization": ((1, 1, 1), (1, 0, 1))}, "std"),
        (random_images(4), np.arange(4), {"normalization": "cifar1000"},
         "normalization='cifar1000'"),
    ],
)
def test_bad_input(images, labels, kwargs, match):
    args = dict(training=False, batch_size=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        CIFARBatches(images, labels, **args)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(offsets_y=np.array([0, 9])), r"offsets_y in \[0, 8\]"),
        (dict(offsets_x=np.array([-1, 0])), r"offsets_x in \[0, 8\]"),
        (dict(flips=np.array([True])), r"flips of shape \(2,\)"),
        (dict(pad_mode="wrap"), "pad_mode"),
        (dict(images=np.zeros((2, 32, 32))), r"\(B, H, W, C\)"),
    ],
)
def test_pad_crop_flip_bad_input(kwargs, match):
    args = dict(images=np.zeros((2, 32, 32, 3)), offsets_y=np.array([0, 8]),
                offsets_x=np.array([4, 4]), flips=np.array([True, False]))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        pad_crop_flip(**args)


def test_bad_batch_index():
    ds = CIFARBatches(random_images(4), np.arange(4), training=False, batch_size=2)
    with pytest.raises(ValueError, match="int batch index"):
        ds["0"]


# ----------------------------------------------------------------------------
# model.fit on every backend.


class _RecordingBatches(CIFARBatches):
    """Records the (epoch, batch index) of every batch fetched."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fetched = []

    def __getitem__(self, index):
        self.fetched.append((self.epoch, index))
        return super().__getitem__(index)


def test_fit_with_the_paper_setup():
    x, y = random_images(48, seed=5), np.arange(48) % 10
    train = _RecordingBatches(x, y, training=True, batch_size=16, seed=0)
    test = CIFARBatches(x[:20], y[:20], training=False, batch_size=8)
    # A tiny net keeps XLA's compile time on CPU short; the pipeline is what
    # is under test.
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(4, 3, strides=2),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    keras_preact.training.compile_for_paper(model, learning_rate=0.01)
    history = model.fit(train, validation_data=test, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert np.isfinite(history.history["loss"]).all()
    assert np.isfinite(history.history["val_top1"]).all()
    # fit calls on_epoch_end between epochs: each of its two epochs read all
    # three batches with its own shuffle and crops (Keras may also fetch a
    # batch to build the model, and calls on_epoch_end once before epoch 1).
    epochs = {}
    for epoch, index in train.fetched:
        epochs.setdefault(epoch, []).append(index)
    full = [e for e, indices in epochs.items() if sorted(indices) == [0, 1, 2]]
    assert len(full) == 2, train.fetched
    assert train.epoch == max(full) + 1
    assert model.evaluate(test, verbose=0, return_dict=True)["top1"] >= 0.0
