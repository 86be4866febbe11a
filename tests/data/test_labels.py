"""keras_preact.data.labels: every pipeline refuses class ids outside its classes,
with one message (`imagenet_dataset`'s sources as they stream into `model.fit`,
`cifar_dataset` and `CIFARBatches` when built)."""

import re

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import keras  # noqa: E402

from keras_preact.data import CIFARBatches  # noqa: E402
from keras_preact.data import cifar_dataset  # noqa: E402
from keras_preact.data import imagenet_dataset  # noqa: E402
from keras_preact.data.labels import assert_labels  # noqa: E402
from keras_preact.data.labels import check_labels  # noqa: E402

from _checks import dataset_arrays  # noqa: E402
from _checks import random_images  # noqa: E402

HINT = ("TFRecords in the TF Model Garden / imagenet_to_gcs.py format store labels 1..1000 "
        "(0 = background): pass label_offset=-1.")


def _jpeg(seed):
    rng = np.random.default_rng(seed)
    return tf.io.encode_jpeg(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).numpy()


def _tfrecords(tmp_path, labels):
    """`tmp_path/train-00000-of-00001` with one small JPEG per label."""
    with tf.io.TFRecordWriter(str(tmp_path / "train-00000-of-00001")) as writer:
        for i, label in enumerate(labels):
            feature = {
                "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[_jpeg(i)])),
                "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature))
                         .SerializeToString())
    return tmp_path


def _folder(tmp_path):
    """`tmp_path/train/{a, b}/`: labels 0, 0, 1 in listing order."""
    for i, (cls, name) in enumerate((("a", "0.jpg"), ("a", "1.jpg"), ("b", "2.jpg"))):
        (tmp_path / "train" / cls).mkdir(parents=True, exist_ok=True)
        (tmp_path / "train" / cls / name).write_bytes(_jpeg(i))
    return tmp_path


def _tfds(monkeypatch, labels):
    """Makes `tfds.builder("imagenet2012")` give one small JPEG per label."""
    tfds = pytest.importorskip("tensorflow_datasets")

    class Builder:
        def as_dataset(self, split, shuffle_files, read_config, decoders):
            return tf.data.Dataset.from_tensor_slices(
                {"image": [_jpeg(i) for i in range(len(labels))],
                 "label": np.array(labels, np.int64)})

    monkeypatch.setattr(tfds, "builder", lambda name, data_dir=None: Builder())


def _imagenet(source, data_dir, **kwargs):
    return imagenet_dataset(source, data_dir, "train", training=False, batch_size=1,
                            image_size=16, **kwargs)


# (id, dataset builder (tmp_path, monkeypatch), message or None, labels when valid).
PIPELINES = [
    ("folder-fewer-classes", lambda p, m: _imagenet("folder", _folder(p), num_classes=1),
     r"\[Label 1 is outside \[0, 1\) for num_classes=1\.\]", None),
    ("folder", lambda p, m: _imagenet("folder", _folder(p)), None, [0, 0, 1]),
    ("tfrecord-1-based", lambda p, m: _imagenet("tfrecord", _tfrecords(p, [1, 2, 3]),
                                                num_classes=3),
     r"Label 3 is outside \[0, 3\) for num_classes=3\. " + re.escape(HINT), None),
    ("tfrecord-1-based-imagenet", lambda p, m: _imagenet("tfrecord", _tfrecords(p, [1, 1000])),
     r"Label 1000 is outside \[0, 1000\) for num_classes=1000\. TFRecords .* label_offset=-1\.",
     None),
    ("tfrecord-background", lambda p, m: _imagenet("tfrecord", _tfrecords(p, [1, 0]),
                                                   num_classes=3, label_offset=-1),
     r"\[Label -1 is outside \[0, 3\) for num_classes=3\.\]", None),
    ("tfrecord-offset", lambda p, m: _imagenet("tfrecord", _tfrecords(p, [1, 2, 3]),
                                               num_classes=3, label_offset=-1),
     None, [0, 1, 2]),
    ("tfds", lambda p, m: _tfds(m, [0, 1000]) or _imagenet("tfds", p),
     r"\[Label 1000 is outside \[0, 1000\) for num_classes=1000\.\]", None),
    ("tfds-valid", lambda p, m: _tfds(m, [0, 999]) or _imagenet("tfds", p), None, [0, 999]),
]


@pytest.mark.parametrize("build, message, labels",
                         [p[1:] for p in PIPELINES], ids=[p[0] for p in PIPELINES])
def test_a_streamed_label_out_of_range_stops_fit(build, message, labels, tmp_path, monkeypatch):
    """The batch with the label raises from `model.fit` on every backend (the
    model's own loss is Keras', so the pipeline is what refuses)."""
    ds = build(tmp_path, monkeypatch)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(1000)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    if message is None:
        np.testing.assert_array_equal(dataset_arrays(ds)[1], labels)
        assert np.isfinite(model.fit(ds, verbose=0).history["loss"][0])
        return
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        model.fit(ds, verbose=0)


@pytest.mark.parametrize("build", [cifar_dataset, CIFARBatches], ids=["tf.data", "numpy"])
@pytest.mark.parametrize("labels, num_classes, message", [
    (np.arange(4) + 10, 10, r"Label 10 is outside \[0, 10\) for num_classes=10\.$"),
    (np.arange(4) - 1, None, r"Label -1 is outside \[0, 10\) for num_classes=10\.$"),
    (np.arange(4) * 50, 100, r"Label 100 is outside \[0, 100\) for num_classes=100\.$"),
])
def test_cifar_pipelines_refuse_labels_out_of_range(build, labels, num_classes, message):
    with pytest.raises(ValueError, match=message):
        build(random_images(4), labels, training=False, batch_size=2, num_classes=num_classes)


def test_check_labels():
    check_labels(np.array([[0], [2]]), 3)
    check_labels(np.array([], np.int64), 3)
    with pytest.raises(ValueError, match=r"^Label 5 is outside \[0, 3\) for a model\. Hint\.$"):
        check_labels(np.array([0, 5, 7]), 3, owner="a model", hint="Hint.")


def test_assert_labels_in_a_graph():
    @tf.function
    def checked(labels):
        return assert_labels(labels, 3, ignore_class=-1)

    for valid in ([0, 2, -1], []):
        np.testing.assert_array_equal(checked(tf.constant(valid, tf.int64)), valid)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"Label 4 is outside \[0, 3\) for num_classes=3\."):
        checked(tf.constant([0, 4, -2], tf.int64))

    @tf.function(jit_compile=True)
    def under_xla(labels):
        return assert_labels(labels, 3) + 0

    # XLA has no op that raises: the labels pass unchecked.
    np.testing.assert_array_equal(under_xla(tf.constant([0, 4])), [0, 4])
