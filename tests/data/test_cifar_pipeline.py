"""keras_preact.data.cifar_pipeline: `cifar_dataset`, the tf.data CIFAR pipeline
(the paper's augmentation, MixUp and CutMix, RandAugment, normalization=,
data_format= and `model.fit`)."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import keras  # noqa: E402

from keras_preact import normalization as nz  # noqa: E402
from keras_preact.data import cifar_dataset  # noqa: E402

from _checks import check_a_model_gets_its_own_layout  # noqa: E402
from _checks import check_batches_fit_a_keras_model  # noqa: E402
from _checks import check_every_iteration_is_the_same_stream  # noqa: E402
from _checks import check_channels_first_is_the_transpose  # noqa: E402
from _checks import check_pixels_for_a_self_normalizing_model  # noqa: E402
from _checks import dataset_arrays  # noqa: E402
from _checks import random_images  # noqa: E402


def _find_crop(out, image, pad=4, mode="constant"):
    """(dy, dx, flipped) such that `out` is that crop of padded `image`."""
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode=mode)
    crops = np.lib.stride_tricks.sliding_window_view(padded, (32, 32), axis=(0, 1))
    crops = np.moveaxis(crops, 2, -1)  # (dy, dx, 32, 32, C)
    for flipped, cand in ((False, crops), (True, crops[:, :, :, ::-1])):
        match = np.argwhere(np.abs(cand - out).max(axis=(2, 3, 4)) <= 1e-5)
        if len(match):
            return int(match[0][0]), int(match[0][1]), flipped
    return None


@pytest.mark.parametrize("vectorized", [True, False])
def test_cifar_training_is_paper_augmentation(vectorized):
    n = 48
    x, y = random_images(n), np.arange(n)
    ds = cifar_dataset(x, y, training=True, batch_size=16, num_classes=n, seed=3,
                       normalization=((100, 110, 120), (50, 60, 70)), vectorized=vectorized)
    out_x, out_y = dataset_arrays(ds)
    assert out_x.shape == (n, 32, 32, 3) and out_x.dtype == np.float32
    assert out_y.dtype == np.int64
    # Every image exactly once per epoch, in shuffled order.
    assert sorted(out_y) == list(range(n)) and list(out_y) != list(range(n))
    norm = (x - np.array([100, 110, 120], np.float32)) / np.array([50, 60, 70], np.float32)
    found = [_find_crop(out_x[i], norm[out_y[i]]) for i in range(n)]
    assert all(f is not None for f in found), "output is not a pad-4 crop (+flip)"
    # Offsets and flips vary over the whole range.
    assert len({f[0] for f in found}) > 3 and len({f[1] for f in found}) > 3
    assert {f[2] for f in found} == {True, False}


def test_cifar_training_random_each_pass_and_seeded():
    x, y = random_images(64), np.arange(64) % 10
    ds = cifar_dataset(x, y, training=True, batch_size=32, seed=0)
    a, b = dataset_arrays(ds), dataset_arrays(ds)
    assert not np.allclose(a[0], b[0])
    # Same seed, new pipeline: the same sequence of batches.
    c = dataset_arrays(cifar_dataset(x, y, training=True, batch_size=32, seed=0))
    np.testing.assert_array_equal(a[0], c[0])
    np.testing.assert_array_equal(a[1], c[1])
    d = dataset_arrays(cifar_dataset(x, y, training=True, batch_size=32, seed=1))
    assert not np.allclose(a[0], d[0])


@pytest.mark.parametrize("vectorized", [True, False])
@pytest.mark.parametrize("start_batch", [3, 9])  # Inside the first pass; past it.
def test_cifar_start_batch_continues_the_stream(vectorized, start_batch):
    """What a resumed run reads: the same batches, images and crops included."""
    x, y = random_images(40), np.arange(40) % 10
    args = dict(training=True, batch_size=8, seed=0, repeat=True, vectorized=vectorized)
    whole = list(cifar_dataset(x, y, **args).take(start_batch + 4).as_numpy_iterator())
    tail = list(cifar_dataset(x, y, start_batch=start_batch, **args)
                .take(4).as_numpy_iterator())
    for (xa, ya), (xb, yb) in zip(whole[start_batch:], tail):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)


def test_cifar_eval_deterministic_and_exact():
    x, y = random_images(50), np.arange(50) % 10
    ds = cifar_dataset(x, y, training=False, batch_size=16)
    (a, ay), (b, by) = dataset_arrays(ds), dataset_arrays(ds)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ay, by)
    assert a.shape == (50, 32, 32, 3)  # last partial batch kept
    np.testing.assert_array_equal(ay, y)
    # 10 classes -> CIFAR-10 statistics by default.
    cifar10 = nz.STATISTICS["cifar10"]
    expected = (x.astype(np.float64) - cifar10.mean) / cifar10.std
    np.testing.assert_allclose(a, expected, atol=1e-5)
    shapes = [xb.shape[0] for xb, _ in ds]
    assert shapes == [16, 16, 16, 2]
    train_shapes = [xb.shape[0] for xb, _ in cifar_dataset(x, y, training=True, batch_size=16)]
    assert train_shapes == [16, 16, 16]  # training drops the remainder


def test_cifar_real_data_normalized_range(shared_data):
    d = np.load(shared_data / "cifar100" / "test.npz")
    x, y = d["x"][:2000], d["y"][:2000]
    out, _ = dataset_arrays(cifar_dataset(x, y, training=False, batch_size=500, num_classes=100))
    per_channel = out.reshape(-1, 3)
    # CIFAR-100 statistics by default for 100 classes: ~zero mean, unit std.
    np.testing.assert_allclose(per_channel.mean(0), 0.0, atol=0.05)
    np.testing.assert_allclose(per_channel.std(0), 1.0, atol=0.05)
    np.testing.assert_allclose(out.min(), (0 - 129.304) / 68.170, atol=0.02)
    assert out.max() <= (255 - 112.434) / 65.392 + 1e-4


@pytest.mark.parametrize("mixup, cutmix", [(0.2, 0.0), (0.0, 1.0), (0.4, 1.0)])
def test_cifar_mixup_cutmix_soft_labels(mixup, cutmix):
    x, y = random_images(64), np.arange(64) % 10
    ds = cifar_dataset(x, y, training=True, batch_size=32, mixup_alpha=mixup,
                       cutmix_alpha=cutmix, seed=0)
    out_x, out_y = dataset_arrays(ds)
    assert out_x.shape == (64, 32, 32, 3) and out_x.dtype == np.float32
    assert out_y.shape == (64, 10) and out_y.dtype == np.float32
    np.testing.assert_allclose(out_y.sum(1), 1.0, atol=1e-5)
    assert (out_y >= 0).all()
    assert (out_y.max(1) < 1 - 1e-6).any(), "no example was mixed"
    # Evaluation keeps sparse labels.
    _, ey = dataset_arrays(cifar_dataset(x, y, training=False, batch_size=32, mixup_alpha=mixup))
    assert ey.dtype == np.int64 and ey.ndim == 1


def test_cifar_mixup_cutmix_fall_back_to_keras_layers(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "keras_cv", None)  # import keras_cv -> ImportError
    x, y = random_images(32), np.arange(32) % 10
    for kwargs in (dict(mixup_alpha=0.2), dict(cutmix_alpha=1.0)):
        out_x, out_y = dataset_arrays(cifar_dataset(x, y, training=True, batch_size=16,
                                                    seed=0, **kwargs))
        assert out_x.shape == (32, 32, 32, 3) and out_y.shape == (32, 10)
        np.testing.assert_allclose(out_y.sum(1), 1.0, atol=1e-5)
        assert (out_y.max(1) < 1 - 1e-6).any()


@pytest.mark.slow
def test_cifar_randaugment():
    x, y = random_images(32), np.arange(32)
    out_x, out_y = dataset_arrays(cifar_dataset(x, y, training=True, batch_size=16, seed=0,
                                                num_classes=32, augment="randaugment",
                                                normalization=None))
    assert out_x.shape == (32, 32, 32, 3) and out_x.min() >= 0 and out_x.max() <= 255
    assert sorted(out_y) == list(range(32))
    # RandAugment changes pixel values beyond a crop/flip of the source.
    changed = [_find_crop(o, x[i].astype(np.float32)) is None for o, i in zip(out_x, out_y)]
    assert sum(changed) > 8


def test_cifar_reflect_padding_and_no_augment():
    x, y = random_images(32), np.arange(32)
    # 5-pixel bright borders: reflected padding stays 200 where zero padding
    # would put 0.
    x[:, :5], x[:, -5:], x[:, :, :5], x[:, :, -5:] = 200, 200, 200, 200
    out_x, out_y = dataset_arrays(cifar_dataset(x, y, training=True, batch_size=16, seed=0,
                                                num_classes=32, pad_mode="reflect",
                                                normalization=None))
    assert out_x.shape == (32, 32, 32, 3)
    found = [_find_crop(o, x[i].astype(np.float32), mode="reflect") for o, i in zip(out_x, out_y)]
    assert all(f is not None for f in found)
    assert any(f[:2] != (4, 4) for f in found)
    assert (out_x[:, 0] == 200).all() and (out_x[:, :, -1] == 200).all()
    out_x, out_y = dataset_arrays(cifar_dataset(x, y % 10, training=True, batch_size=16,
                                                seed=0, augment="none"))
    # augment="none" only shuffles and normalizes.
    cifar10 = nz.STATISTICS["cifar10"]
    norm = (x - np.float32(cifar10.mean)) / np.float32(cifar10.std)
    order = [int(np.argmin(np.abs(norm - o).reshape(32, -1).sum(1))) for o in out_x]
    assert sorted(order) == list(range(32))
    np.testing.assert_allclose(out_x, norm[order], atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(augment="autoaugment"), "augment='autoaugment'"),
        (dict(batch_size=0), "batch_size=0"),
        (dict(mixup_alpha=-1.0), r"mixup_alpha=-1.0. Expected a number >= 0"),
        (dict(pad_mode="wrap"), "pad_mode='wrap'"),
        (dict(pad_mode="reflect", pad=32), r"pad_mode='reflect' needs pad < min\(H, W\) = 32"),
        (dict(num_classes=5), r"Label 5 is outside \[0, 5\) for num_classes=5"),
        (dict(normalization=((1.0, 2.0), (1, 1, 1))), "one value per channel"),
        (dict(normalization="cifar1000"), "normalization='cifar1000'"),
        (dict(start_batch=-1), "start_batch=-1. Expected an int >= 0"),
        (dict(start_batch=2, training=False), "applies to the training stream only"),
    ],
)
def test_cifar_dataset_bad_input(kwargs, match):
    args = dict(training=True, batch_size=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        cifar_dataset(random_images(8), np.arange(8), **args)


# ----------------------------------------------------------------------------
# normalization=: pixels for a model that normalizes its own input.


def _cifar_batches(vectorized=True, training=True, **kwargs):
    x, y = random_images(32, seed=7), np.arange(32) % 10
    return dataset_arrays(cifar_dataset(x, y, training=training, batch_size=16, seed=3,
                                        num_classes=100, vectorized=vectorized, **kwargs))


# (pipeline, the statistics its model was built with): each pipeline once
# normalized with those statistics and once as pixels for the model.
PIXEL_PIPELINES = [
    ("cifar vectorized", "cifar100"),
    ("cifar per image", ((100.0, 110.0, 120.0), (50.0, 60.0, 70.0))),
    ("cifar evaluation", "cifar100"),
]


@pytest.mark.parametrize("name, statistics", PIXEL_PIPELINES, ids=[p[0] for p in PIXEL_PIPELINES])
def test_pipelines_give_pixels_to_a_self_normalizing_model(name, statistics):
    """normalization=model: 0-255 pixels (padding the model's mean colour) that
    the model's own normalization turns into the normalized batches."""
    kwargs = dict(vectorized="per image" not in name, training="evaluation" not in name)
    batches = lambda **kw: _cifar_batches(**kwargs, **kw)  # noqa: E731
    normalized = check_pixels_for_a_self_normalizing_model(batches, statistics)
    if name == "cifar evaluation":  # A model without its own normalization
        # gets the pipeline's default statistics ("cifar100": 100 classes).
        plain = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten()])
        np.testing.assert_array_equal(batches(normalization=plain)[0], normalized)


def test_cifar_pixels_pad_with_the_model_mean_or_black():
    x, y = np.full((16, 32, 32, 3), 255, np.uint8), np.arange(16) % 10
    mean = nz.STATISTICS["cifar100"].mean
    model = keras.Sequential([keras.Input((32, 32, 3)),
                              nz.input_normalization_layer("cifar100")])
    for normalization, fill in ((model, mean), (None, (0, 0, 0))):
        out, _ = dataset_arrays(cifar_dataset(x, y, training=True, batch_size=16, seed=0,
                                              normalization=normalization, vectorized=False))
        padded = (out != 255).any(-1)
        assert padded.any() and not padded.all()
        np.testing.assert_allclose(out[padded], np.broadcast_to(fill, out[padded].shape),
                                   atol=1e-4)
    # Evaluation pixels are the images, exactly.
    out, _ = dataset_arrays(cifar_dataset(random_images(8), np.arange(8), training=False,
                                          batch_size=8, normalization=None))
    np.testing.assert_array_equal(out, random_images(8))


# ----------------------------------------------------------------------------
# data_format=: channels_first batches are the transpose of channels_last ones.


LAYOUT_PIPELINES = {
    "cifar training": lambda **kw: cifar_dataset(
        random_images(32), np.arange(32) % 10, training=True, batch_size=16, seed=3, **kw),
    "cifar per image, pixels": lambda **kw: cifar_dataset(
        random_images(32), np.arange(32) % 10, training=True, batch_size=16, seed=3,
        vectorized=False, normalization=None, **kw),
    "cifar evaluation": lambda **kw: cifar_dataset(
        random_images(20), np.arange(20) % 10, training=False, batch_size=8, **kw),
    "cifar mixup": lambda **kw: cifar_dataset(
        random_images(32), np.arange(32) % 10, training=True, batch_size=16, seed=3,
        mixup_alpha=0.2, **kw),
}


@pytest.mark.parametrize("name", list(LAYOUT_PIPELINES))
def test_channels_first_batches_are_the_transpose(name):
    check_channels_first_is_the_transpose(LAYOUT_PIPELINES[name], mixup="mixup" in name)


@pytest.mark.parametrize("vectorized", [True, False], ids=["per-batch", "per-image"])
def test_every_iteration_of_a_seeded_pipeline_is_the_same_stream(vectorized):
    """Over 3 epochs of 4 batches (each epoch in its own order), and from any
    start batch."""
    x, y = random_images(32), np.arange(32) % 10

    def stream(start_batch=0):
        return cifar_dataset(x, y, training=True, batch_size=8, seed=3, repeat=True,
                             vectorized=vectorized, start_batch=start_batch)

    check_every_iteration_is_the_same_stream(stream(), batches=12)
    labels = dataset_arrays(stream().take(8))[1].reshape(2, 32)
    assert not np.array_equal(*labels)  # epoch 2 is another order
    check_every_iteration_is_the_same_stream(stream(5), batches=7)
    np.testing.assert_array_equal(dataset_arrays(stream(5).take(7))[0],
                                  dataset_arrays(stream().take(12))[0][5 * 8:])


@pytest.mark.parametrize("name", ["cifar training", "cifar evaluation"])
def test_a_model_gets_batches_in_its_data_format(name):
    check_a_model_gets_its_own_layout(LAYOUT_PIPELINES[name])


# ----------------------------------------------------------------------------
# Every pipeline feeds model.fit on the suite's backend.


@pytest.mark.parametrize("config", ["cifar pixels, self-normalizing model",
                                    "cifar mixup, one-hot labels"])
def test_batches_fit_a_keras_model(config):
    x, y = random_images(64), np.arange(64) % 10
    if config.startswith("cifar pixels"):
        def make_dataset(model):
            return cifar_dataset(x, y, training=True, batch_size=16, repeat=True,
                                 normalization=model)
    else:
        def make_dataset(model):
            return cifar_dataset(x, y, training=True, batch_size=16, mixup_alpha=0.2)
    check_batches_fit_a_keras_model(make_dataset, normalizing=config.startswith("cifar pixels"),
                                    one_hot="one-hot" in config)
