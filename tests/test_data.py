"""keras_preact.data: CIFAR loaders, CIFAR / ImageNet / synthetic tf.data pipelines."""

import io
import os
import pickle
import shutil
import tarfile

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import keras  # noqa: E402

from keras_preact import normalization as nz  # noqa: E402
from keras_preact.data import SkipCounter  # noqa: E402
from keras_preact.data import UnsafePickleError  # noqa: E402
from keras_preact.data import cifar_dataset  # noqa: E402
from keras_preact.data import imagenet_dataset  # noqa: E402
from keras_preact.data import load_cifar  # noqa: E402
from keras_preact.data import synthetic_dataset  # noqa: E402
from keras_preact.data.safe_pickle import safe_loads  # noqa: E402


def _as_numpy(ds):
    xs, ys = [], []
    for x, y in ds:
        xs.append(x.numpy())
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys)


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------
# Official-archive fixtures written by the tests.


def _batch_pickle(images, labels, label_key, protocol=2):
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    d = {
        b"batch_label": b"testing batch 1 of 1",
        label_key: [int(v) for v in labels],
        b"data": rows,
        b"filenames": [b"img_%d.png" % i for i in range(len(images))],
    }
    if label_key == b"fine_labels":
        d[b"coarse_labels"] = [int(v) // 5 for v in labels]
    return pickle.dumps(d, protocol=protocol)


def _write_tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _cifar100_archive(tmp_path, n_train=12, n_test=8, train_member=None):
    x_train, x_test = _images(n_train, 1), _images(n_test, 2)
    y_train, y_test = np.arange(n_train) * 7 % 100, np.arange(n_test) * 13 % 100
    members = {
        "cifar-100-python/train": train_member
        or _batch_pickle(x_train, y_train, b"fine_labels"),
        "cifar-100-python/test": _batch_pickle(x_test, y_test, b"fine_labels", protocol=4),
        "cifar-100-python/meta": pickle.dumps({b"fine_label_names": [b"apple"]}, protocol=2),
    }
    path = tmp_path / "cifar-100-python.tar.gz"
    _write_tar(path, members)
    return path, (x_train, y_train), (x_test, y_test)


def test_load_cifar100_archive_roundtrip(tmp_path):
    path, (x_train, y_train), (x_test, y_test) = _cifar100_archive(tmp_path)
    # The archive itself, the folder holding it, and the extracted folder.
    x, y = load_cifar("cifar100", source="archive", data_dir=path, split="train")
    assert x.dtype == np.uint8 and x.shape == (12, 32, 32, 3)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(x, x_train)
    np.testing.assert_array_equal(y, y_train)
    x, y = load_cifar("cifar100", source="archive", data_dir=tmp_path, split="test")
    np.testing.assert_array_equal(x, x_test)
    np.testing.assert_array_equal(y, y_test)
    extract = tmp_path / "extracted"
    with tarfile.open(path) as tar:
        tar.extractall(extract, filter="data")
    x, y = load_cifar("cifar100", source="archive", data_dir=extract, split="test")
    np.testing.assert_array_equal(x, x_test)


def test_load_cifar10_archive_concatenates_batches(tmp_path):
    members, xs, ys = {}, [], []
    for i in range(1, 6):
        x, y = _images(3, 10 + i), np.array([i, 9, 0]) % 10
        members[f"cifar-10-batches-py/data_batch_{i}"] = _batch_pickle(x, y, b"labels")
        xs.append(x)
        ys.append(y)
    members["cifar-10-batches-py/test_batch"] = _batch_pickle(_images(2), [3, 4], b"labels")
    _write_tar(tmp_path / "cifar-10-python.tar.gz", members)
    x, y = load_cifar("cifar10", source="archive", data_dir=tmp_path, split="train")
    np.testing.assert_array_equal(x, np.concatenate(xs))
    np.testing.assert_array_equal(y, np.concatenate(ys))
    # The CIFAR-10 archive is not the CIFAR-100 one.
    with pytest.raises(ValueError, match="No cifar100 archive"):
        load_cifar("cifar100", source="archive", data_dir=tmp_path)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": _Evil(marker), b"fine_labels": [0]}, protocol=2)
    # The payload really runs under a plain pickle.loads...
    pickle.loads(payload)
    assert marker.exists()
    marker.unlink()
    # ...and is refused, without running, by the restricted unpickler.
    with pytest.raises(UnsafePickleError, match=r"system"):
        safe_loads(payload, source="evil")
    assert not marker.exists()
    for builtin in (eval, exec, getattr):
        with pytest.raises(UnsafePickleError, match=builtin.__name__):
            safe_loads(pickle.dumps(_Reduce(builtin)), source="x")
    # Inside an archive: refused, naming the member; nothing is executed.
    path, _, _ = _cifar100_archive(tmp_path, train_member=payload)
    with pytest.raises(UnsafePickleError, match="cifar-100-python/train"):
        load_cifar("cifar100", source="archive", data_dir=path, split="train")
    assert not marker.exists()
    assert isinstance(UnsafePickleError("x"), ValueError)


class _Reduce:
    def __init__(self, fn):
        self.fn = fn

    def __reduce__(self):
        return (self.fn, ("1",))


def test_truncated_and_foreign_archives(tmp_path):
    path, _, _ = _cifar100_archive(tmp_path, n_train=200)
    data = path.read_bytes()
    bad = tmp_path / "bad"
    bad.mkdir()
    truncated = bad / "cifar-100-python.tar.gz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cifar-100-python\.tar\.gz"):
        load_cifar("cifar100", source="archive", data_dir=truncated)
    truncated.write_text("<html>404 Not Found</html>")
    with pytest.raises(ValueError, match="not a readable CIFAR tar archive"):
        load_cifar("cifar100", source="archive", data_dir=truncated)
    # A truncated pickle inside a valid tar.
    good = _batch_pickle(_images(2), [1, 2], b"fine_labels")
    _write_tar(truncated, {"cifar-100-python/train": good[:100],
                           "cifar-100-python/test": good})
    with pytest.raises(ValueError, match="cifar-100-python/train is not a valid CIFAR pickle"):
        load_cifar("cifar100", source="archive", data_dir=truncated)
    # A well-formed pickle that is not a CIFAR batch.
    _write_tar(truncated, {"cifar-100-python/train": pickle.dumps([1, 2]),
                           "cifar-100-python/test": good})
    with pytest.raises(ValueError, match="not a CIFAR batch"):
        load_cifar("cifar100", source="archive", data_dir=truncated)


@pytest.mark.parametrize("args, kwargs, match", [
    (("cifar1000",), dict(source="npz"), "name='cifar1000'"),
    (("cifar10",), dict(source="zip"), "source='zip'"),
    (("cifar10",), dict(source="npz", split="validation"), "split='validation'"),
    (("cifar10",), dict(source="archive", data_dir=None), "needs data_dir"),
    (("cifar10",), dict(source="npz"), "No train"),
])
def test_load_cifar_bad_arguments(tmp_path, args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_cifar(*args, **{"data_dir": tmp_path, **kwargs})


def test_load_cifar_npz_checks_labels(tmp_path):
    np.savez(tmp_path / "train_0.npz", x=_images(4), y=np.array([0, 50, 99, 3], np.uint8))
    x, y = load_cifar("cifar100", source="npz", data_dir=tmp_path)
    assert x.shape == (4, 32, 32, 3) and y.dtype == np.int64
    with pytest.raises(ValueError, match=r"outside \[0, 9\]"):
        load_cifar("cifar10", source="npz", data_dir=tmp_path)


def test_load_cifar_tfds_calls_tfds_load(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    calls = {}

    def fake_load(name, **kwargs):
        calls.update(kwargs, name=name)
        return tf.constant(_images(3)), tf.constant([1, 2, 3], tf.int64)

    monkeypatch.setattr(tfds, "load", fake_load)
    x, y = load_cifar("cifar10", source="tfds", data_dir="/somewhere", split="test", download=False)
    assert calls == dict(name="cifar10", split="test", data_dir="/somewhere", download=False,
                         as_supervised=True, batch_size=-1)
    np.testing.assert_array_equal(x, _images(3))
    np.testing.assert_array_equal(y, [1, 2, 3])


def test_load_real_cifar100_npz(shared_data):
    x, y = load_cifar("cifar100", source="npz", data_dir=shared_data / "cifar100", split="test")
    assert x.shape == (10_000, 32, 32, 3) and x.dtype == np.uint8
    assert y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y), np.full(100, 100))


# ----------------------------------------------------------------------------
# CIFAR pipeline.


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
    x, y = _images(n), np.arange(n)
    ds = cifar_dataset(x, y, training=True, batch_size=16, num_classes=n, seed=3,
                       normalization=((100, 110, 120), (50, 60, 70)), vectorized=vectorized)
    out_x, out_y = _as_numpy(ds)
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
    x, y = _images(64), np.arange(64) % 10
    ds = cifar_dataset(x, y, training=True, batch_size=32, seed=0)
    a, b = _as_numpy(ds), _as_numpy(ds)
    assert not np.allclose(a[0], b[0])
    # Same seed, new pipeline: the same sequence of batches.
    c = _as_numpy(cifar_dataset(x, y, training=True, batch_size=32, seed=0))
    np.testing.assert_array_equal(a[0], c[0])
    np.testing.assert_array_equal(a[1], c[1])
    d = _as_numpy(cifar_dataset(x, y, training=True, batch_size=32, seed=1))
    assert not np.allclose(a[0], d[0])


@pytest.mark.parametrize("vectorized", [True, False])
@pytest.mark.parametrize("start_batch", [3, 9])  # Inside the first pass; past it.
def test_cifar_start_batch_continues_the_stream(vectorized, start_batch):
    """What a resumed run reads: the same batches, images and crops included."""
    x, y = _images(40), np.arange(40) % 10
    args = dict(training=True, batch_size=8, seed=0, repeat=True, vectorized=vectorized)
    whole = list(cifar_dataset(x, y, **args).take(start_batch + 4).as_numpy_iterator())
    tail = list(cifar_dataset(x, y, start_batch=start_batch, **args)
                .take(4).as_numpy_iterator())
    for (xa, ya), (xb, yb) in zip(whole[start_batch:], tail):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)


def test_cifar_eval_deterministic_and_exact():
    x, y = _images(50), np.arange(50) % 10
    ds = cifar_dataset(x, y, training=False, batch_size=16)
    (a, ay), (b, by) = _as_numpy(ds), _as_numpy(ds)
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
    out, _ = _as_numpy(cifar_dataset(x, y, training=False, batch_size=500, num_classes=100))
    per_channel = out.reshape(-1, 3)
    # CIFAR-100 statistics by default for 100 classes: ~zero mean, unit std.
    np.testing.assert_allclose(per_channel.mean(0), 0.0, atol=0.05)
    np.testing.assert_allclose(per_channel.std(0), 1.0, atol=0.05)
    np.testing.assert_allclose(out.min(), (0 - 129.304) / 68.170, atol=0.02)
    assert out.max() <= (255 - 112.434) / 65.392 + 1e-4


@pytest.mark.parametrize("mixup, cutmix", [(0.2, 0.0), (0.0, 1.0), (0.4, 1.0)])
def test_cifar_mixup_cutmix_soft_labels(mixup, cutmix):
    x, y = _images(64), np.arange(64) % 10
    ds = cifar_dataset(x, y, training=True, batch_size=32, mixup_alpha=mixup,
                       cutmix_alpha=cutmix, seed=0)
    out_x, out_y = _as_numpy(ds)
    assert out_x.shape == (64, 32, 32, 3) and out_x.dtype == np.float32
    assert out_y.shape == (64, 10) and out_y.dtype == np.float32
    np.testing.assert_allclose(out_y.sum(1), 1.0, atol=1e-5)
    assert (out_y >= 0).all()
    assert (out_y.max(1) < 1 - 1e-6).any(), "no example was mixed"
    # Evaluation keeps sparse labels.
    _, ey = _as_numpy(cifar_dataset(x, y, training=False, batch_size=32, mixup_alpha=mixup))
    assert ey.dtype == np.int64 and ey.ndim == 1


def test_cifar_mixup_cutmix_fall_back_to_keras_layers(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "keras_cv", None)  # import keras_cv -> ImportError
    x, y = _images(32), np.arange(32) % 10
    for kwargs in (dict(mixup_alpha=0.2), dict(cutmix_alpha=1.0)):
        out_x, out_y = _as_numpy(cifar_dataset(x, y, training=True, batch_size=16, seed=0,
                                               **kwargs))
        assert out_x.shape == (32, 32, 32, 3) and out_y.shape == (32, 10)
        np.testing.assert_allclose(out_y.sum(1), 1.0, atol=1e-5)
        assert (out_y.max(1) < 1 - 1e-6).any()


@pytest.mark.slow
def test_cifar_randaugment():
    x, y = _images(32), np.arange(32)
    out_x, out_y = _as_numpy(cifar_dataset(x, y, training=True, batch_size=16, seed=0,
                                           num_classes=32, augment="randaugment",
                                           normalization=None))
    assert out_x.shape == (32, 32, 32, 3) and out_x.min() >= 0 and out_x.max() <= 255
    assert sorted(out_y) == list(range(32))
    # RandAugment changes pixel values beyond a crop/flip of the source.
    changed = [_find_crop(o, x[i].astype(np.float32)) is None for o, i in zip(out_x, out_y)]
    assert sum(changed) > 8


def test_cifar_reflect_padding_and_no_augment():
    x, y = _images(32), np.arange(32)
    # 5-pixel bright borders: reflected padding stays 200 where zero padding
    # would put 0.
    x[:, :5], x[:, -5:], x[:, :, :5], x[:, :, -5:] = 200, 200, 200, 200
    out_x, out_y = _as_numpy(cifar_dataset(x, y, training=True, batch_size=16, seed=0,
                                           num_classes=32, pad_mode="reflect",
                                           normalization=None))
    assert out_x.shape == (32, 32, 32, 3)
    found = [_find_crop(o, x[i].astype(np.float32), mode="reflect") for o, i in zip(out_x, out_y)]
    assert all(f is not None for f in found)
    assert any(f[:2] != (4, 4) for f in found)
    assert (out_x[:, 0] == 200).all() and (out_x[:, :, -1] == 200).all()
    out_x, out_y = _as_numpy(cifar_dataset(x, y % 10, training=True, batch_size=16, seed=0,
                                           augment="none"))
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
        (dict(num_classes=5), r"outside \[0, 4\]"),
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
        cifar_dataset(_images(8), np.arange(8), **args)


# ----------------------------------------------------------------------------
# ImageNet pipeline.

GREY = "n02692877_airship.JPEG"  # a greyscale ("L") JPEG in imagenet_sample
COLOUR = ["n01440764_tench.JPEG", "n02391049_zebra.JPEG", "n04509417_unicycle.JPEG"]


@pytest.fixture
def jpeg_tree(shared_data, tmp_path):
    """root/train/{a_cls,b_cls}/ with real JPEGs, a corrupt .JPEG, a
    truncated JPEG and a .txt file."""
    src = shared_data / "imagenet_sample"
    root = tmp_path / "imagenet"
    a, b = root / "train" / "b_first", root / "train" / "c_second"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    shutil.copy(src / COLOUR[0], a)
    shutil.copy(src / GREY, a)
    shutil.copy(src / COLOUR[1], b)
    shutil.copy(src / COLOUR[2], b)
    (a / "corrupt.JPEG").write_bytes(os.urandom(2000))
    (b / "truncated.JPEG").write_bytes((src / COLOUR[1]).read_bytes()[:4000])
    (b / "README.txt").write_text("not an image")
    return root


@pytest.fixture
def small_image_tree(tmp_path):
    """root/train/{a,b}/ with two small JPEGs and a PNG made here (fast to decode)."""
    rng = np.random.default_rng(0)
    for cls, names in (("a", ["0.jpg", "1.png"]), ("b", ["2.jpg"])):
        (tmp_path / "small" / "train" / cls).mkdir(parents=True)
        for name in names:
            encode = tf.io.encode_png if name.endswith(".png") else tf.io.encode_jpeg
            image = encode(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).numpy()
            (tmp_path / "small" / "train" / cls / name).write_bytes(image)
    return tmp_path / "small"


def test_imagenet_folder_eval(jpeg_tree):
    counter = SkipCounter()
    ds = imagenet_dataset("folder", jpeg_tree, "train", training=False, batch_size=3,
                          counter=counter)
    assert ds.skip_counter is counter
    assert ds.class_names == ["b_first", "c_second"]
    x, y = _as_numpy(ds)
    # Sorted listing: b_first/{corrupt, tench, airship (grey)},
    # c_second/{zebra, unicycle, truncated}.
    assert x.shape == (4, 224, 224, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(y, [0, 0, 1, 1])
    assert (counter.seen, counter.kept, counter.skipped) == (6, 4, 2)
    assert [os.path.basename(p) for p in counter.ignored_files] == ["README.txt"]
    # Greyscale decodes to 3 equal channels (x[1] is the airship); the
    # colour tench (x[0]) does not.
    imagenet = nz.STATISTICS["imagenet"]
    grey = x[1] * np.array(imagenet.std) + np.array(imagenet.mean)
    colour = x[0] * np.array(imagenet.std) + np.array(imagenet.mean)
    assert np.abs(colour[..., 0] - colour[..., 2]).mean() > 5
    np.testing.assert_allclose(grey[..., 0], grey[..., 1], atol=1e-3)
    np.testing.assert_allclose(grey[..., 0], grey[..., 2], atol=1e-3)
    assert grey.std() > 10
    x2, _ = _as_numpy(ds)
    np.testing.assert_array_equal(x, x2)
    assert counter.skipped == 4  # counts accumulate over passes
    # counter=False: still skipped, not counted.
    ds = imagenet_dataset("folder", jpeg_tree, "train", training=False, batch_size=3,
                          counter=False)
    np.testing.assert_array_equal(_as_numpy(ds)[0], x)
    assert ds.skip_counter is None


def test_imagenet_eval_matches_resize_then_center_crop(shared_data, tmp_path):
    path = shared_data / "imagenet_sample" / COLOUR[0]  # 500x375
    image = tf.io.decode_jpeg(path.read_bytes(), channels=3)
    resized = tf.image.resize(image, [256, int(round(500 * 256 / 375))], method="bilinear")
    top, left = (256 - 224) // 2, (resized.shape[1] - 224) // 2
    ref = resized[top:top + 224, left:left + 224].numpy()
    (tmp_path / "tench").mkdir()
    shutil.copy(path, tmp_path / "tench")
    # split=None: data_dir holds the class folders themselves.
    ds = imagenet_dataset("folder", tmp_path, None, training=False, batch_size=1,
                          normalization=None)
    xb, yb = next(iter(ds))
    out = xb.numpy()[0]
    assert ds.class_names == ["tench"] and int(yb[0]) == 0
    assert np.abs(out - ref).mean() < 4.0  # same crop, different interpolation path
    assert np.abs(out - ref[:, ::-1]).mean() > 2 * np.abs(out - ref).mean()


def test_imagenet_training_random_and_seeded(jpeg_tree):
    for augment in ("inception", "scale"):
        ds = imagenet_dataset("folder", jpeg_tree, "train", training=True, batch_size=2,
                              image_size=64, augment=augment, seed=5)
        (a, ay), (b, by) = _as_numpy(ds), _as_numpy(ds)
        assert a.shape == (4, 64, 64, 3)
        assert sorted(ay) == sorted(by) == [0, 0, 1, 1]
        assert not np.allclose(a, b)
        c, cy = _as_numpy(imagenet_dataset("folder", jpeg_tree, "train", training=True,
                                           batch_size=2, image_size=64, augment=augment, seed=5))
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(ay, cy)
        assert ds.skip_counter.skipped == 4


def _example(image_bytes, label):
    feature = {
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_bytes])),
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
        "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"JPEG"])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_imagenet_tfrecord_shards(shared_data, tmp_path):
    src = shared_data / "imagenet_sample"
    names = COLOUR + [GREY]
    labels_1based = [1, 325, 881, 406]  # Model Garden style: 1..1000
    shards = [tmp_path / "validation-00000-of-00002", tmp_path / "validation-00001-of-00002"]
    with tf.io.TFRecordWriter(str(shards[0])) as w:
        w.write(_example((src / names[0]).read_bytes(), labels_1based[0]))
        w.write(_example(b"\xff\xd8\xff garbage", 7))  # JPEG magic, corrupt body
        w.write(_example((src / names[1]).read_bytes(), labels_1based[1]))
    with tf.io.TFRecordWriter(str(shards[1])) as w:
        for n, lab in zip(names[2:], labels_1based[2:]):
            w.write(_example((src / n).read_bytes(), lab))
    (tmp_path / "train-00000-of-00001").write_bytes(b"")  # other split: not read
    ds = imagenet_dataset("tfrecord", tmp_path, "validation", training=False, batch_size=8,
                          image_size=96, eval_resize=110, label_offset=-1)
    x, y = _as_numpy(ds)
    assert x.shape == (4, 96, 96, 3)
    assert sorted(y) == [0, 324, 405, 880]
    assert ds.skip_counter.skipped == 1
    ds = imagenet_dataset("tfrecord", file_pattern=str(tmp_path / "validation-*"), training=True,
                          batch_size=2, image_size=32, augment="scale",
                          scale_range=(40, 64), seed=0)
    x, y = _as_numpy(ds)
    assert x.shape == (4, 32, 32, 3) and sorted(y) == [1, 325, 406, 881]


def test_imagenet_tfds_source(shared_data, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    src = shared_data / "imagenet_sample"
    jpegs = [(src / n).read_bytes() for n in COLOUR]
    seen = {}

    class FakeBuilder:
        def download_and_prepare(self, download_config=None):
            seen["manual_dir"] = download_config.manual_dir

        def as_dataset(self, split, shuffle_files, read_config, decoders):
            seen.update(split=split, shuffle_files=shuffle_files, decoders=decoders)
            return tf.data.Dataset.from_tensor_slices(
                {"image": jpegs, "label": np.array([0, 339, 880], np.int64)})

    def fake_builder(name, data_dir=None):
        seen.update(name=name, data_dir=data_dir)
        return FakeBuilder()

    monkeypatch.setattr(tfds, "builder", fake_builder)
    ds = imagenet_dataset("tfds", "/tfds", "validation", training=False, batch_size=2,
                          image_size=64, eval_resize=73, manual_dir="/manual")
    x, y = _as_numpy(ds)
    assert x.shape == (3, 64, 64, 3)
    np.testing.assert_array_equal(y, [0, 339, 880])
    assert seen["name"] == "imagenet2012" and seen["data_dir"] == "/tfds"
    assert seen["manual_dir"] == "/manual" and seen["split"] == "validation"
    assert seen["shuffle_files"] is False
    assert isinstance(seen["decoders"]["image"], tfds.decode.SkipDecoding)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(source="lmdb"), "source='lmdb'"),
        (dict(augment="autoaugment"), "augment='autoaugment'"),
        (dict(batch_size=0), "batch_size=0"),
        (dict(image_size=2.5), "image_size=2.5"),
        (dict(normalization=(1, 2)), "normalization=\\(1, 2\\)"),
        (dict(eval_resize=200), "eval_resize=200. Expected an int >= 224"),
        (dict(scale_range=(128, 480), augment="scale"), "scale_range"),
        (dict(area_range=(0.5, 1.5)), "area_range"),
        (dict(split="test"), "No folder for split='test'"),
        (dict(source="tfrecord"), "No TFRecord files match"),
        (dict(data_dir=None), "needs data_dir"),
        (dict(counter=3), "counter=3. Expected a SkipCounter"),
    ],
)
def test_imagenet_bad_input(tmp_path, kwargs, match):
    args = dict(source="folder", data_dir=tmp_path, split="train", training=True, batch_size=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        imagenet_dataset(**args)


# ----------------------------------------------------------------------------
# normalization=: pixels for a model that normalizes its own input.


def _cifar_batches(vectorized=True, training=True, **kwargs):
    x, y = _images(32, seed=7), np.arange(32) % 10
    return _as_numpy(cifar_dataset(x, y, training=training, batch_size=16, seed=3,
                                   num_classes=100, vectorized=vectorized, **kwargs))


def _imagenet_batches(tree, training=True, **kwargs):
    return _as_numpy(imagenet_dataset("folder", tree, "train", training=training,
                                      batch_size=3, image_size=32, seed=5, **kwargs))


# (pipeline, the statistics its model was built with): each pipeline once
# normalized with those statistics and once as pixels for the model.
PIXEL_PIPELINES = [
    ("cifar vectorized", "cifar100"),
    ("cifar per image", ((100.0, 110.0, 120.0), (50.0, 60.0, 70.0))),
    ("cifar evaluation", "cifar100"),
    ("imagenet training", "imagenet"),
]


def _pipeline(name, request):
    if name.startswith("imagenet"):
        tree = request.getfixturevalue("small_image_tree")
        return lambda **kw: _imagenet_batches(tree, training="training" in name, **kw)
    kwargs = dict(vectorized="per image" not in name, training="evaluation" not in name)
    return lambda **kw: _cifar_batches(**kwargs, **kw)


@pytest.mark.parametrize("name, statistics", PIXEL_PIPELINES, ids=[p[0] for p in PIXEL_PIPELINES])
def test_pipelines_give_pixels_to_a_self_normalizing_model(name, statistics, request):
    """normalization=model: 0-255 pixels (padding the model's mean colour) that
    the model's own normalization turns into the normalized batches."""
    batches = _pipeline(name, request)
    # What PreActResNet(..., input_normalization=statistics) starts with.
    model = keras.Sequential([keras.Input((32, 32, 3)), nz.input_normalization_layer(statistics)])
    (pixels, labels), (normalized, labels_n) = (
        batches(normalization=model), batches(normalization=statistics))
    np.testing.assert_array_equal(labels, labels_n)
    assert pixels.dtype == np.float32 and pixels.min() >= 0 and pixels.max() <= 255
    assert pixels.max() > 100  # not normalized
    layer = model.get_layer(nz.INPUT_NORMALIZATION_LAYER)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(pixels)), normalized, atol=1e-4)
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
        out, _ = _as_numpy(cifar_dataset(x, y, training=True, batch_size=16, seed=0,
                                         normalization=normalization, vectorized=False))
        padded = (out != 255).any(-1)
        assert padded.any() and not padded.all()
        np.testing.assert_allclose(out[padded], np.broadcast_to(fill, out[padded].shape),
                                   atol=1e-4)
    # Evaluation pixels are the images, exactly.
    out, _ = _as_numpy(cifar_dataset(_images(8), np.arange(8), training=False, batch_size=8,
                                     normalization=None))
    np.testing.assert_array_equal(out, _images(8))


# ----------------------------------------------------------------------------
# data_format=: channels_first batches are the transpose of channels_last ones.

LAYOUT_PIPELINES = {
    "cifar training": lambda **kw: cifar_dataset(
        _images(32), np.arange(32) % 10, training=True, batch_size=16, seed=3, **kw),
    "cifar per image, pixels": lambda **kw: cifar_dataset(
        _images(32), np.arange(32) % 10, training=True, batch_size=16, seed=3, vectorized=False,
        normalization=None, **kw),
    "cifar evaluation": lambda **kw: cifar_dataset(
        _images(20), np.arange(20) % 10, training=False, batch_size=8, **kw),
    "cifar mixup": lambda **kw: cifar_dataset(
        _images(32), np.arange(32) % 10, training=True, batch_size=16, seed=3, mixup_alpha=0.2,
        **kw),
    "imagenet training": "small_image_tree",
    "imagenet evaluation": "small_image_tree",
    "synthetic": lambda **kw: synthetic_dataset(4, (8, 6), 5, num_batches=2, **kw),
}


def _layout_pipeline(name, request):
    if LAYOUT_PIPELINES[name] == "small_image_tree":
        tree = request.getfixturevalue("small_image_tree")
        return lambda **kw: imagenet_dataset("folder", tree, "train", training="training" in name,
                                             batch_size=2, image_size=16, seed=5, **kw)
    return LAYOUT_PIPELINES[name]


@pytest.mark.parametrize("name", list(LAYOUT_PIPELINES))
def test_channels_first_batches_are_the_transpose(name, request):
    build = _layout_pipeline(name, request)
    last, last_labels = _as_numpy(build(data_format="channels_last"))
    first, first_labels = _as_numpy(build(data_format="channels_first"))
    keras.config.set_image_data_format("channels_first")
    default = _as_numpy(build())[0]  # None (the default): Keras' image data format.
    if "mixup" in name:  # MixUp's draws differ from pipeline to pipeline.
        assert first.shape == default.shape == last.transpose(0, 3, 1, 2).shape
        assert first_labels.shape == last_labels.shape
    else:
        np.testing.assert_array_equal(first, last.transpose(0, 3, 1, 2))
        np.testing.assert_array_equal(first_labels, last_labels)
        np.testing.assert_array_equal(default, first)
    with pytest.raises(ValueError, match="Invalid data_format='NCHW'"):
        build(data_format="NCHW")


# ----------------------------------------------------------------------------
# Every pipeline feeds model.fit on the suite's backend.


@pytest.mark.parametrize("config", ["cifar pixels, self-normalizing model",
                                    "cifar mixup, one-hot labels", "imagenet"])
def test_batches_fit_a_keras_model(config, request):
    layers = [keras.layers.Conv2D(4, 3, strides=2), keras.layers.GlobalAveragePooling2D(),
              keras.layers.Dense(10)]
    if config.startswith("cifar pixels"):
        layers.insert(0, nz.input_normalization_layer("cifar10"))
    model = keras.Sequential([keras.Input((32, 32, 3)), *layers])
    x, y = _images(64), np.arange(64) % 10
    if config.startswith("cifar pixels"):
        ds = cifar_dataset(x, y, training=True, batch_size=16, repeat=True, normalization=model)
    elif config.startswith("cifar mixup"):
        ds = cifar_dataset(x, y, training=True, batch_size=16, mixup_alpha=0.2)
    else:
        ds = imagenet_dataset("folder", request.getfixturevalue("small_image_tree"), "train",
                              training=True, batch_size=2, image_size=32, repeat=True, seed=0)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if "one-hot" in config:
        loss = keras.losses.CategoricalCrossentropy(from_logits=True)
    model.compile("sgd", loss)
    hist = model.fit(ds, steps_per_epoch=2, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(hist.history["loss"][0])


# ----------------------------------------------------------------------------
# Synthetic data.


def test_synthetic_dataset():
    ds = synthetic_dataset(4, 32, 10, num_batches=3)
    batches = list(ds)
    assert len(batches) == 3
    x, y = batches[0]
    assert x.shape == (4, 32, 32, 3) and x.dtype == tf.float32
    assert y.shape == (4,) and y.dtype == tf.int64 and int(tf.reduce_max(y)) < 10
    assert abs(float(tf.math.reduce_std(x)) - 1.0) < 0.2
    x, y = next(iter(synthetic_dataset(2, (8, 6), 5, one_hot=True, dtype="bfloat16")))
    assert x.shape == (2, 8, 6, 3) and x.dtype == tf.bfloat16
    assert y.shape == (2, 5) and y.dtype == tf.float32
    with pytest.raises(ValueError, match="batch_size"):
        synthetic_dataset(0, 32, 10)
    with pytest.raises(ValueError, match="image_size"):
        synthetic_dataset(2, (32, 32, 3), 10)
