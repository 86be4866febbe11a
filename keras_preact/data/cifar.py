"""Loading CIFAR-10 / CIFAR-100 into numpy arrays from tfds, the official
python archives, or `.npz` shards."""

import glob
import os
import pathlib
import re
import tarfile

import numpy as np

from keras_preact.data.safe_pickle import safe_loads
from keras_preact.validation import check_choice

VALID_NAMES = ("cifar10", "cifar100")
VALID_SOURCES = ("tfds", "archive", "npz")
VALID_SPLITS = ("train", "test")

# Official archive layout: archive file name, top folder, members per split,
# label key in each pickled dict.
_ARCHIVES = {
    "cifar10": {
        "file": "cifar-10-python.tar.gz",
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "label_key": b"labels",
        "num_classes": 10,
    },
    "cifar100": {
        "file": "cifar-100-python.tar.gz",
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "label_key": b"fine_labels",
        "num_classes": 100,
    },
}


def load_cifar(name="cifar100", source="tfds", data_dir=None, split="train", download=True):
    """Loads CIFAR-10 or CIFAR-100 as numpy arrays.

    Args:
        name: `"cifar10"` or `"cifar100"`.
        source: where to read from:
            - `"tfds"`: `tfds.load(name, split=split, data_dir=data_dir,
              download=download)` (TensorFlow Datasets).
            - `"archive"`: the official `cifar-10-python.tar.gz` /
              `cifar-100-python.tar.gz`. `data_dir` is the `.tar.gz` file,
              a folder holding it, or the extracted folder
              (`cifar-10-batches-py` / `cifar-100-python`) or its parent.
              Pickles are read with a restricted unpickler that refuses
              anything but numpy arrays and plain containers.
            - `"npz"`: a folder of `train*.npz` (read in natural sort order
              and concatenated) and `test.npz`, each with `x` (N, 32, 32, 3)
              uint8 and `y` (N,) labels, e.g. `data/cifar100` holding
              `train_0.npz` ... `train_3.npz` and `test.npz`.
        data_dir: see `source`; required for `"archive"` and `"npz"`, optional
            for `"tfds"` (tfds' default folder).
        split: `"train"` or `"test"`.
        download: `"tfds"` only: let tfds download and prepare the data.

    Returns:
        `(images, labels)`: `images` uint8 `(N, 32, 32, 3)` RGB,
        `labels` int64 `(N,)` (fine labels for CIFAR-100).

    Raises:
        ValueError: unknown argument values, missing files, or files that are
            truncated, foreign, or not shaped like CIFAR (the message names
            the file). `UnsafePickleError` (a `ValueError`) for an archive
            pickle that references code other than numpy's.

    Example:

    >>> x, y = load_cifar("cifar100", source="npz", data_dir="data/cifar100", split="test")
    >>> x.shape, x.dtype, y.dtype
    ((10000, 32, 32, 3), dtype('uint8'), dtype('int64'))
    """
    check_choice("name", name, VALID_NAMES)
    check_choice("source", source, VALID_SOURCES)
    check_choice("split", split, VALID_SPLITS)
    if source != "tfds" and data_dir is None:
        raise ValueError(f"source={source!r} needs data_dir (a path). Received: data_dir=None.")
    where = f"tfds:{name}" if source == "tfds" else os.fspath(data_dir)
    if source == "tfds":
        images, labels = _load_tfds(name, split, data_dir, download)
    elif source == "archive":
        images, labels = _load_archive(name, split, where)
    else:
        images, labels = _load_npz(split, where)
    return _validate(images, labels, _ARCHIVES[name]["num_classes"], where)


def _validate(images, labels, num_classes, where):
    images = np.asarray(images)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise ValueError(
            f"Data from {where} is not CIFAR-shaped: expected uint8 images of "
            f"shape (N, 32, 32, 3), got {images.dtype} {images.shape}."
        )
    if len(images) != len(labels):
        raise ValueError(f"Data from {where} has {len(images)} images but {len(labels)} labels.")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"Labels from {where} range over [{labels.min()}, {labels.max()}], "
            f"outside [0, {num_classes - 1}] (wrong dataset name?)."
        )
    return images, labels


def _load_tfds(name, split, data_dir, download):
    import tensorflow_datasets as tfds

    ds = tfds.load(name, split=split, data_dir=data_dir, download=download, as_supervised=True,
                   batch_size=-1)
    return tfds.as_numpy(ds)


def _natural_key(path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", os.path.basename(path))]


def _load_npz(split, data_dir):
    files = sorted(glob.glob(os.path.join(data_dir, f"{split}*.npz")), key=_natural_key)
    if not files:
        raise ValueError(
            f"No {split}*.npz files in data_dir={data_dir!r}. Expected "
            "train_0.npz.. / test.npz holding arrays 'x' and 'y'."
        )
    xs, ys = [], []
    for f in files:
        try:
            with np.load(f, allow_pickle=False) as z:
                xs.append(z["x"])
                ys.append(z["y"])
        except Exception as e:
            raise ValueError(
                f"Could not read CIFAR arrays 'x', 'y' from {f} ({type(e).__name__}: {e})."
            ) from e
    return np.concatenate(xs), np.concatenate(ys)


def _read_archive_members(name, data_dir):
    """Returns {member base name: bytes} for the pickles of `name`."""
    spec = _ARCHIVES[name]
    wanted = set(spec["train"] + spec["test"])
    candidates = [data_dir, *(os.path.join(data_dir, spec[key]) for key in ("file", "folder"))]
    for path in candidates:
        if os.path.isfile(path):
            return _read_tar(path, spec["folder"], wanted)
    for path in candidates:
        if os.path.isdir(path) and all(os.path.isfile(os.path.join(path, m)) for m in wanted):
            return {m: pathlib.Path(path, m).read_bytes() for m in wanted}
    raise ValueError(
        f"No {name} archive found at data_dir={data_dir!r}. Expected the file "
        f"{spec['file']!r}, a folder holding it, or the extracted folder "
        f"{spec['folder']!r} (or its parent)."
    )


def _read_tar(path, folder, wanted):
    out = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                parts = member.name.replace("\\", "/").split("/")
                if member.isfile() and parts[:-1] == [folder] and parts[-1] in wanted:
                    # Read the bytes only; nothing is extracted to disk.
                    out[parts[1]] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ValueError(
            f"{path} is not a readable CIFAR tar archive ({type(e).__name__}: {e}). "
            "It may be truncated or a different file."
        ) from e
    missing = sorted(wanted - set(out))
    if missing:
        raise ValueError(
            f"{path} lacks the CIFAR members {[f'{folder}/{m}' for m in missing]} "
            "(truncated archive, or the archive of the other CIFAR?)."
        )
    return out


def _load_archive(name, split, data_dir):
    spec = _ARCHIVES[name]
    members = _read_archive_members(name, data_dir)
    xs, ys = [], []
    for m in spec[split]:
        source = f"{data_dir}:{spec['folder']}/{m}"
        batch = safe_loads(members[m], source=source)
        if not isinstance(batch, dict) or b"data" not in batch or spec["label_key"] not in batch:
            raise ValueError(
                f"{source} is not a CIFAR batch: expected a dict with keys "
                f"b'data' and {spec['label_key']!r}."
            )
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[spec["label_key"]])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise ValueError(
                f"{source}: b'data' should be uint8 (N, 3072), got "
                f"{data.dtype} {data.shape}."
            )
        # Rows are 1024 red, 1024 green, 1024 blue values, row-major.
        xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(labels)
    return np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys)
