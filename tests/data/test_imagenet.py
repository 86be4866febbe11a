"""keras_preact.data.imagenet: `imagenet_dataset` from class folders, TFRecord
shards and TensorFlow Datasets (decoding, crops, skipped files,
normalization=, data_format= and `model.fit`)."""

import os
import shutil

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from keras_preact import normalization as nz  # noqa: E402
from keras_preact.data import SkipCounter  # noqa: E402
from keras_preact.data import imagenet_dataset  # noqa: E402

from _checks import check_a_model_gets_its_own_layout  # noqa: E402
from _checks import check_batches_fit_a_keras_model  # noqa: E402
from _checks import check_every_iteration_is_the_same_stream  # noqa: E402
from _checks import check_channels_first_is_the_transpose  # noqa: E402
from _checks import check_pixels_for_a_self_normalizing_model  # noqa: E402
from _checks import dataset_arrays  # noqa: E402


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
    x, y = dataset_arrays(ds)
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
    x2, _ = dataset_arrays(ds)
    np.testing.assert_array_equal(x, x2)
    assert counter.skipped == 4  # counts accumulate over passes
    # counter=False: still skipped, not counted.
    ds = imagenet_dataset("folder", jpeg_tree, "train", training=False, batch_size=3,
                          counter=False)
    np.testing.assert_array_equal(dataset_arrays(ds)[0], x)
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
        (a, ay), (b, by) = dataset_arrays(ds), dataset_arrays(ds)
        assert a.shape == (4, 64, 64, 3)
        assert sorted(ay) == sorted(by) == [0, 0, 1, 1]
        assert not np.allclose(a, b)
        c, cy = dataset_arrays(imagenet_dataset("folder", jpeg_tree, "train", training=True,
                                                batch_size=2, image_size=64, augment=augment,
                                                seed=5))
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
    x, y = dataset_arrays(ds)
    assert x.shape == (4, 96, 96, 3)
    assert sorted(y) == [0, 324, 405, 880]
    assert ds.skip_counter.skipped == 1
    ds = imagenet_dataset("tfrecord", file_pattern=str(tmp_path / "validation-*"), training=True,
                          batch_size=2, image_size=32, augment="scale",
                          scale_range=(40, 64), seed=0)
    x, y = dataset_arrays(ds)
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
    x, y = dataset_arrays(ds)
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
        (dict(num_classes=0), "num_classes=0. Expected an int >= 1"),
    ],
)
def test_imagenet_bad_input(tmp_path, kwargs, match):
    args = dict(source="folder", data_dir=tmp_path, split="train", training=True, batch_size=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        imagenet_dataset(**args)


# ----------------------------------------------------------------------------
# normalization=, data_format= and model.fit: the contract every pipeline keeps.


def _imagenet_batches(tree, training=True, **kwargs):
    return dataset_arrays(imagenet_dataset("folder", tree, "train", training=training,
                                           batch_size=3, image_size=32, seed=5, **kwargs))


def test_training_gives_pixels_to_a_self_normalizing_model(small_image_tree):
    """normalization=model: 0-255 pixels that the model's own normalization
    turns into the batches normalized with the ImageNet statistics."""
    check_pixels_for_a_self_normalizing_model(
        lambda **kw: _imagenet_batches(small_image_tree, training=True, **kw), "imagenet")


@pytest.mark.parametrize("training", [True, False], ids=["training", "evaluation"])
def test_channels_first_batches_are_the_transpose(training, small_image_tree):
    check_channels_first_is_the_transpose(lambda **kw: imagenet_dataset(
        "folder", small_image_tree, "train", training=training, batch_size=2, image_size=16,
        seed=5, **kw))


@pytest.mark.parametrize("training", [True, False], ids=["training", "evaluation"])
def test_a_model_gets_batches_in_its_data_format(training, small_image_tree):
    check_a_model_gets_its_own_layout(lambda **kw: imagenet_dataset(
        "folder", small_image_tree, "train", training=training, batch_size=2, image_size=16,
        seed=5, **kw), size=16)


def test_every_iteration_of_a_seeded_pipeline_is_the_same_stream(small_image_tree):
    check_every_iteration_is_the_same_stream(imagenet_dataset(
        "folder", small_image_tree, "train", training=True, batch_size=2, image_size=16,
        repeat=True, seed=5), batches=6)


def test_batches_fit_a_keras_model(small_image_tree):
    check_batches_fit_a_keras_model(lambda model: imagenet_dataset(
        "folder", small_image_tree, "train", training=True, batch_size=2, image_size=32,
        repeat=True, seed=0))
