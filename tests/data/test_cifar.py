"""keras_preact.data.cifar: `load_cifar` from the official archives, npz files
and TensorFlow Datasets."""

import pickle
import tarfile

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from keras_preact.data import load_cifar  # noqa: E402

from _checks import batch_pickle  # noqa: E402
from _checks import cifar100_archive  # noqa: E402
from _checks import random_images  # noqa: E402
from _checks import write_tar  # noqa: E402


def test_load_cifar100_archive_roundtrip(tmp_path):
    path, (x_train, y_train), (x_test, y_test) = cifar100_archive(tmp_path)
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
        x, y = random_images(3, 10 + i), np.array([i, 9, 0]) % 10
        members[f"cifar-10-batches-py/data_batch_{i}"] = batch_pickle(x, y, b"labels")
        xs.append(x)
        ys.append(y)
    members["cifar-10-batches-py/test_batch"] = batch_pickle(random_images(2), [3, 4], b"labels")
    write_tar(tmp_path / "cifar-10-python.tar.gz", members)
    x, y = load_cifar("cifar10", source="archive", data_dir=tmp_path, split="train")
    np.testing.assert_array_equal(x, np.concatenate(xs))
    np.testing.assert_array_equal(y, np.concatenate(ys))
    # The CIFAR-10 archive is not the CIFAR-100 one.
    with pytest.raises(ValueError, match="No cifar100 archive"):
        load_cifar("cifar100", source="archive", data_dir=tmp_path)


def test_truncated_and_foreign_archives(tmp_path):
    path, _, _ = cifar100_archive(tmp_path, n_train=200)
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
    good = batch_pickle(random_images(2), [1, 2], b"fine_labels")
    write_tar(truncated, {"cifar-100-python/train": good[:100],
                          "cifar-100-python/test": good})
    with pytest.raises(ValueError, match="cifar-100-python/train is not a valid CIFAR pickle"):
        load_cifar("cifar100", source="archive", data_dir=truncated)
    # A well-formed pickle that is not a CIFAR batch.
    write_tar(truncated, {"cifar-100-python/train": pickle.dumps([1, 2]),
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
    np.savez(tmp_path / "train_0.npz", x=random_images(4), y=np.array([0, 50, 99, 3], np.uint8))
    x, y = load_cifar("cifar100", source="npz", data_dir=tmp_path)
    assert x.shape == (4, 32, 32, 3) and y.dtype == np.int64
    with pytest.raises(ValueError, match=r"outside \[0, 9\]"):
        load_cifar("cifar10", source="npz", data_dir=tmp_path)


def test_load_cifar_tfds_calls_tfds_load(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    calls = {}

    def fake_load(name, **kwargs):
        calls.update(kwargs, name=name)
        return tf.constant(random_images(3)), tf.constant([1, 2, 3], tf.int64)

    monkeypatch.setattr(tfds, "load", fake_load)
    x, y = load_cifar("cifar10", source="tfds", data_dir="/somewhere", split="test", download=False)
    assert calls == dict(name="cifar10", split="test", data_dir="/somewhere", download=False,
                         as_supervised=True, batch_size=-1)
    np.testing.assert_array_equal(x, random_images(3))
    np.testing.assert_array_equal(y, [1, 2, 3])


def test_load_real_cifar100_npz(shared_data):
    x, y = load_cifar("cifar100", source="npz", data_dir=shared_data / "cifar100", split="test")
    assert x.shape == (10_000, 32, 32, 3) and x.dtype == np.uint8
    assert y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y), np.full(100, 100))
