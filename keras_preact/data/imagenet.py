"""tf.data input pipeline for ImageNet (ILSVRC-2012) JPEGs.

Sources: TensorFlow Datasets `imagenet2012` (prepared from a manual
download), TFRecord shards in the common `image/encoded` /
`image/class/label` format (TF Model Garden, `imagenet_to_gcs.py`), or a
folder of class sub-folders of image files.

Images that fail to decode, and files without an image extension in a
class folder, are skipped and recorded in a `SkipCounter`, never raised.
"""

import os

import numpy as np
import tensorflow as tf

from keras_preact import image_ops
from keras_preact.data.augment import in_data_format
from keras_preact.data.augment import one_stream
from keras_preact.data.labels import MODEL_GARDEN_HINT
from keras_preact.data.labels import assert_labels
from keras_preact.normalization import pipeline_data_format
from keras_preact.normalization import pipeline_statistics
from keras_preact.validation import check_choice
from keras_preact.validation import check_int

AUTOTUNE = tf.data.AUTOTUNE
VALID_SOURCES = ("tfds", "tfrecord", "folder")
VALID_AUGMENTS = ("inception", "scale", "none")
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".gif")
IMAGENET_CLASSES = 1000  # ILSVRC-2012: the class count of tfds and TFRecord sources.


class SkipCounter:
    """Counts images that a pipeline could not decode and skipped.

    The counts live in `tf.Variable`s updated from inside the tf.data
    pipeline. `seen` counts elements entering the decode step and `kept`
    those that came out; `skipped = seen - kept` is exact after a full pass
    (while iterating it can include a few images still in flight). With
    `repeat=True`, counts grow with every epoch.

    Attributes:
        seen: number of images handed to the decoder so far.
        kept: number decoded successfully.
        skipped: `seen - kept`, the corrupt / undecodable images.
        ignored_files: paths (folder source) left out when listing because
            they have no image extension (e.g. a stray `.txt`).

    Example:

    >>> counter = SkipCounter()
    >>> ds = imagenet_dataset("folder", "/data/imagenet", "train",
    ...                       training=False, batch_size=64, counter=counter)
    >>> for images, labels in ds: ...
    >>> print(counter.skipped, len(counter.ignored_files))
    """

    def __init__(self):
        self._seen = tf.Variable(0, dtype=tf.int64, trainable=False, name="seen")
        self._kept = tf.Variable(0, dtype=tf.int64, trainable=False, name="kept")
        self.ignored_files = []

    @property
    def seen(self):
        return int(self._seen.numpy())

    @property
    def kept(self):
        return int(self._kept.numpy())

    @property
    def skipped(self):
        return self.seen - self.kept

    def reset(self):
        """Sets the counts back to zero (keeps `ignored_files`)."""
        self._seen.assign(0)
        self._kept.assign(0)

    def __repr__(self):
        return (f"SkipCounter(seen={self.seen}, kept={self.kept}, skipped={self.skipped}, "
                f"ignored_files={len(self.ignored_files)})")


# ----------------------------------------------------------------------------
# Augment: random crop windows (one image, inside the tf.data graph), decoded
# fused by `image_ops.decode`.


def _inception_window(shape, seed, area_range, aspect_ratio_range, image_size):
    """Random-sized crop (Szegedy et al. 2015), as in the TF Model Garden.

    Falls back to the evaluation centre crop when no valid box is found in
    10 attempts (the sampler then returns the whole image).
    """
    bbox = tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, shape=[1, 1, 4])
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, bounding_boxes=bbox, seed=seed, min_object_covered=0.1,
        aspect_ratio_range=[float(a) for a in aspect_ratio_range],
        area_range=[float(a) for a in area_range], max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    window = tf.stack([begin[0], begin[1], size[0], size[1]])
    # The sampler returns the whole image when it found no box.
    failed = tf.logical_and(tf.equal(size[0], shape[0]), tf.equal(size[1], shape[1]))
    return tf.cond(failed, lambda: image_ops.center_crop_window(shape, image_size), lambda: window)


def _scale_window(shape, seed, scale_range, image_size):
    """The paper's scale augmentation as a crop window.

    Shorter side resized to `s ~ U{scale_range}`, then a random
    `image_size` crop: in original pixels, a square of
    `image_size * short / s` at a random offset.
    """
    seeds = tf.random.experimental.stateless_split(seed, 3)
    h, w = shape[0], shape[1]
    s = tf.random.stateless_uniform([], seeds[0], scale_range[0], scale_range[1] + 1, tf.int32)
    short = tf.minimum(h, w)
    crop = tf.cast(short, tf.float32) * image_size / tf.cast(s, tf.float32)
    crop = tf.clip_by_value(tf.cast(tf.round(crop), tf.int32), 1, short)
    oy = tf.random.stateless_uniform([], seeds[1], 0, h - crop + 1, dtype=tf.int32)
    ox = tf.random.stateless_uniform([], seeds[2], 0, w - crop + 1, dtype=tf.int32)
    return tf.stack([oy, ox, crop, crop])


def _window_fn(training, augment, image_size, eval_resize, scale_range, area_range,
               aspect_ratio_range):
    """`window(shape, seed)`: the crop window of one image for this pipeline."""
    if training and augment == "inception":
        return lambda shape, seed: _inception_window(
            shape, seed, area_range, aspect_ratio_range, image_size
        )
    if training and augment == "scale":
        return lambda shape, seed: _scale_window(shape, seed, scale_range, image_size)
    return lambda shape, seed: image_ops.center_crop_window(shape, image_size, eval_resize)


# ----------------------------------------------------------------------------
# Readers: each returns a dataset of (encoded image bytes or path, label).


def _list_folder(directory):
    classes = sorted(
        d for d in os.listdir(directory)
        if os.path.isdir(os.path.join(directory, d)) and not d.startswith(".")
    )
    if not classes:
        raise ValueError(f"No class sub-folders in {directory!r}.")
    paths, labels, ignored = [], [], []
    for index, cls in enumerate(classes):
        folder = os.path.join(directory, cls)
        for root, dirs, files in os.walk(folder, followlinks=True):
            dirs.sort()
            for name in sorted(n for n in files if not n.startswith(".")):
                path = os.path.join(root, name)
                if name.lower().endswith(IMAGE_EXTENSIONS):
                    paths.append(path)
                    labels.append(index)
                else:
                    ignored.append(path)
    if not paths:
        raise ValueError(f"No image files ({IMAGE_EXTENSIONS}) under {directory!r}.")
    return classes, np.array(paths), np.array(labels, np.int64), ignored


def _folder_directory(data_dir, split):
    if split is None:
        return data_dir
    tried = [os.path.join(data_dir, split)]
    if split == "validation":
        tried.append(os.path.join(data_dir, "val"))
    for d in tried:
        if os.path.isdir(d):
            return d
    raise ValueError(
        f"No folder for split={split!r}: tried {tried}. Use split=None to read "
        "class sub-folders directly under data_dir."
    )


def _parse_tfrecord(serialized):
    features = tf.io.parse_single_example(serialized, {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    })
    return features["image/encoded"], features["image/class/label"]


def _tfrecord_records(pattern, training, seed, input_context, cycle_length, deterministic):
    """TFRecord shards matching `pattern` as (encoded bytes, label) records."""
    if not tf.io.gfile.glob(pattern):
        raise ValueError(f"No TFRecord files match {pattern!r}.")
    # List shard files, in a new order every training epoch.
    ds = tf.data.Dataset.list_files(pattern, shuffle=training, seed=seed)
    # Shard by file across input pipelines (multi-worker): each worker reads
    # disjoint files instead of reading and discarding records.
    ds = _shard(ds, input_context)
    # Interleave records from several shards in parallel: hides file read
    # latency and mixes shards (a first level of shuffling).
    ds = ds.interleave(
        lambda f: tf.data.TFRecordDataset(f, buffer_size=8 * 1024 * 1024),
        cycle_length=cycle_length, block_length=1, num_parallel_calls=AUTOTUNE,
        deterministic=deterministic,
    )
    return ds.map(_parse_tfrecord, num_parallel_calls=AUTOTUNE, deterministic=deterministic)


def _folder_records(data_dir, split, input_context, counter):
    """`(records of (path, label), class names, number of images)`."""
    class_names, paths, labels, ignored = _list_folder(_folder_directory(data_dir, split))
    if counter:
        counter.ignored_files.extend(ignored)
    ds = _shard(tf.data.Dataset.from_tensor_slices((paths, labels)), input_context)
    return ds, class_names, len(paths)


def _shard(ds, input_context):
    if input_context is not None and input_context.num_input_pipelines > 1:
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    return ds


def imagenet_dataset(
    source="tfrecord",
    data_dir=None,
    split="train",
    *,
    training,
    batch_size,
    image_size=224,
    eval_resize=None,
    augment="inception",
    scale_range=(256, 480),
    area_range=(0.08, 1.0),
    aspect_ratio_range=(3 / 4, 4 / 3),
    flip=True,
    normalization="imagenet",
    label_offset=0,
    num_classes=None,
    file_pattern=None,
    manual_dir=None,
    shuffle_buffer=None,
    seed=None,
    repeat=False,
    drop_remainder=None,
    counter=None,
    input_context=None,
    cycle_length=16,
    num_parallel_calls=AUTOTUNE,
    data_format=None,
):
    """Builds an ImageNet `tf.data.Dataset` for training or evaluation.

    Training crops: `augment="inception"` samples a random-sized crop
    (area `area_range` of the image, aspect ratio `aspect_ratio_range`)
    and resizes it to `image_size` (fb.resnet.torch / Model Garden);
    `augment="scale"` is the paper's scale augmentation (shorter side
    random in `scale_range`, random `image_size` crop); `"none"` uses the
    evaluation crop. Both are computed as a crop window and decoded with the
    fused `tf.image.decode_and_crop_jpeg`. Then a random horizontal flip.
    Evaluation: shorter side resized to `eval_resize`, center crop
    `image_size` (done as the equivalent fused center-crop + resize).
    Decoding as `image_ops.decode` (3 channels), then normalized per
    `normalization`.

    Undecodable images are skipped, never raised, and counted in `counter`.

    Args:
        source: `"tfds"`, `"tfrecord"` or `"folder"`.
        data_dir: `"tfds"`: tfds data folder (`None` for the default);
            `"tfrecord"`: folder of shards named `{split}-*` (e.g.
            `train-00000-of-01024`), or use `file_pattern`;
            `"folder"`: root holding `{split}/<class>/<image>` (for
            `split="validation"` also `val/`), or the class folders
            themselves with `split=None`. Class index = position of the
            folder name in sorted order (`dataset.class_names`).
        split: `"train"` or `"validation"` (any tfds split string for
            `"tfds"`; `None` for a bare class-folder root).
        training: `True` for the shuffled, augmented pipeline.
        batch_size: batch size (per replica if `input_context` is given).
        image_size: int >= 1, output height and width in pixels.
        eval_resize: int >= `image_size`, shorter side before the evaluation
            center crop; `None` (default): `image_ops.default_eval_resize`,
            the `CENTER_CROP_FRACTION` crop (256 for 224).
        augment: `"inception"`, `"scale"` or `"none"`.
        scale_range: `(min, max)` shorter side for `augment="scale"`.
        area_range, aspect_ratio_range: `augment="inception"` ranges.
        flip: random horizontal flips in training.
        normalization: as `keras_preact.normalization.pipeline_statistics`;
            defaults to `"imagenet"`.
        label_offset: added to every label. TF Model Garden /
            `imagenet_to_gcs.py` TFRecords store labels 1..1000 (0 is
            "background"): pass `label_offset=-1` to get 0..999. tfds and
            folder labels are already 0-based.
        num_classes: int >= 1 or None. Labels (after `label_offset`) must
            lie in `[0, num_classes)`; iterating the dataset raises at the
            first batch with one outside. None: the number of class folders
            (`"folder"`), else 1000.
        file_pattern: `"tfrecord"` only: a glob overriding
            `data_dir/{split}-*`.
        manual_dir: `"tfds"` only: folder holding the manually downloaded
            `ILSVRC2012_img_train.tar` / `ILSVRC2012_img_val.tar`; when given,
            the dataset is prepared (once) if it is not yet.
        shuffle_buffer: elements in the shuffle buffer (before decoding).
            Default: 10,000 encoded images for `"tfrecord"` / `"tfds"` (as
            the Model Garden); all paths for `"folder"` (paths are small and
            listings are sorted by class, so a partial buffer would not mix
            classes).
        seed: int for reproducible shuffling and augmentation, or `None`.
        repeat: repeat forever (before batching, as in the Model Garden).
        drop_remainder: default `training`.
        counter: a `SkipCounter` to update; a new one is made if `None`.
            `False` turns counting off (failures are still skipped): the
            counter's `tf.Variable`s are state captured by the pipeline,
            which some setups (e.g. tf.data service) cannot serialize.
        input_context: a `tf.distribute.InputContext` to shard files (or
            examples) across input pipelines.
        cycle_length: TFRecord files read in parallel.
        num_parallel_calls: parallelism of the decode map.
        data_format: `"channels_last"`, `"channels_first"` or None: the
            model's with `normalization=model`, else Keras'
            `image_data_format()`.

    Returns:
        A `tf.data.Dataset` of `(images, labels)`: float32
        `(B, image_size, image_size, 3)` images (or `(B, 3, image_size,
        image_size)` for `"channels_first"`), normalized or (see
        `normalization`) 0-255 pixels, and int64 `(B,)` labels. Iterating
        it raises `tf.errors.InvalidArgumentError` naming the first label
        outside `[0, num_classes)` (for `"tfrecord"` with `label_offset=0`,
        the message suggests `label_offset=-1`). It has
        attributes `skip_counter` (the `SkipCounter`) and, for `"folder"`,
        `class_names`.

    Raises:
        ValueError: an unknown `source`, `augment`, `normalization` or
            `data_format`; a bad
            `batch_size`, `image_size`, `eval_resize < image_size`,
            `scale_range`, `area_range`, `num_classes` or `counter`; no
            `data_dir` where needed; no folder or images for `split`; no
            TFRecord file matching.

    Example:

    >>> counter = SkipCounter()
    >>> train = imagenet_dataset("tfrecord", "/data/imagenet-tfrecords", "train",
    ...                          training=True, batch_size=256, label_offset=-1,
    ...                          counter=counter, repeat=True)
    >>> model.fit(train, steps_per_epoch=5005, epochs=90)
    >>> counter.skipped  # images that failed to decode so far
    """
    image_size = _check_arguments(
        source, data_dir, file_pattern, augment, batch_size, image_size, eval_resize,
        scale_range, area_range, counter,
    )
    if num_classes is not None:
        check_int("num_classes", num_classes, low=1)
    statistics, _ = pipeline_statistics(normalization, "imagenet")
    data_format = pipeline_data_format(normalization, data_format)
    drop_remainder = bool(training) if drop_remainder is None else drop_remainder
    counter = SkipCounter() if counter is None else counter
    deterministic = not training or seed is not None
    # 1. Read (encoded bytes or path, label) records.
    class_names = listed = None
    pattern = file_pattern or os.path.join(os.fspath(data_dir or ""), f"{split}-*")
    if source == "folder":
        listed, class_names, count = _folder_records(os.fspath(data_dir), split, input_context,
                                                     counter)
        shuffle_buffer = shuffle_buffer or count  # all paths: small, listed by class
        num_classes = num_classes or len(class_names)
    elif source == "tfds":
        listed = _tfds_records(split, data_dir, manual_dir, training, seed, input_context)

    def stream():
        ds = listed if listed is not None else _tfrecord_records(
            pattern, training, seed, input_context, cycle_length, deterministic)
        # 2. Shuffle the small records (bytes or paths), not decoded images,
        # so the buffer stays cheap (a new order every epoch). 3. Repeat
        # before batching, so batches span epoch boundaries and are full.
        if training:
            ds = ds.shuffle(shuffle_buffer or 10_000, seed=seed)
        return ds.repeat() if repeat else ds

    ds = one_stream(stream, same := repeat and seed is not None)
    # 4. Decode the crop window, resize, flip, normalize; skip failures.
    window = _window_fn(training, augment, image_size, eval_resize, scale_range, area_range,
                        aspect_ratio_range)
    ds = _decode_step(
        ds, window, image_size, training and flip, statistics,
        label_offset, source == "folder", seed, same, counter, num_parallel_calls, deterministic,
    )
    # 5. Batch; training drops the last partial batch (static shapes). Check
    # each batch's labels here: in the decode step, ignore_errors would skip them.
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    hint = MODEL_GARDEN_HINT if source == "tfrecord" and label_offset == 0 else ""
    ds = ds.map(lambda x, y: (x, assert_labels(y, num_classes or IMAGENET_CLASSES, hint=hint)))
    ds = in_data_format(ds, data_format)
    # 6. Prefetch so decoding overlaps the training step.
    ds = ds.prefetch(AUTOTUNE)
    ds.skip_counter = counter or None
    if class_names is not None:
        ds.class_names = class_names
    return ds


def _check_arguments(source, data_dir, file_pattern, augment, batch_size, image_size,
                     eval_resize, scale_range, area_range, counter):
    """Raises the `ValueError`s of `imagenet_dataset`; returns `image_size` as an int."""
    check_choice("source", source, VALID_SOURCES)
    check_choice("augment", augment, VALID_AUGMENTS)
    check_int("batch_size", batch_size, low=1)
    image_size = check_int("image_size", image_size, low=1)
    if eval_resize is not None:
        check_int("eval_resize", eval_resize, low=image_size)
    if augment == "scale" and not image_size <= scale_range[0] <= scale_range[1]:
        raise ValueError(
            f"Invalid scale_range={scale_range!r}. Expected image_size={image_size} <= "
            "scale_range[0] <= scale_range[1]."
        )
    if not 0 < area_range[0] <= area_range[1] <= 1:
        raise ValueError(f"Invalid area_range={area_range!r}. Expected 0 < low <= high <= 1.")
    if source != "tfds" and data_dir is None and not (source == "tfrecord" and file_pattern):
        raise ValueError(f"source={source!r} needs data_dir. Received: data_dir=None.")
    if counter not in (None, False) and not isinstance(counter, SkipCounter):
        raise ValueError(f"Invalid counter={counter!r}. Expected a SkipCounter, None or False.")
    return image_size


def _decode_step(ds, window, image_size, flip, statistics, label_offset, is_path, seed, same,
                 counter, num_parallel_calls, deterministic):
    """(bytes or path, label) records -> (image, label), failures skipped.

    Every element gets its own stateless seed, new on every pass unless `same`.
    Images that fail to decode (corrupt, truncated, not an image) are
    dropped instead of stopping training; `counter` records how many.
    """
    seeds = one_stream(lambda: tf.data.Dataset.random(seed, True).batch(2), same)
    ds = tf.data.Dataset.zip((ds, seeds))
    if counter:
        ds = _counted(ds, counter._seen)

    def decode(record, s):
        data, label = record
        image_bytes = tf.io.read_file(data) if is_path else data
        crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(s, 2))
        image = image_ops.decode(image_bytes, lambda shape: window(shape, crop_seed))
        image = image_ops.resize(image, image_size)
        if flip:
            image = tf.image.stateless_random_flip_left_right(image, flip_seed)
        if statistics is not None:
            image = image_ops.normalize(image, statistics)
        image.set_shape([image_size, image_size, 3])
        return image, tf.cast(label, tf.int64) + label_offset

    ds = ds.map(decode, num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    ds = ds.ignore_errors()
    return _counted(ds, counter._kept) if counter else ds


def _counted(ds, variable):
    """`ds` with `variable` incremented for every element that passes."""

    def count(*element):
        with tf.control_dependencies([variable.assign_add(1)]):
            return tf.nest.map_structure(tf.identity, element)

    return ds.map(count)


def _tfds_records(split, data_dir, manual_dir, training, seed, input_context):
    """`imagenet2012` from tfds as (encoded JPEG bytes, label) records."""
    import tensorflow_datasets as tfds

    builder = tfds.builder("imagenet2012", data_dir=data_dir)
    if manual_dir is not None:
        # Prepared once: tfds extracts the manually downloaded tars into
        # TFRecords under data_dir; later calls find them and skip this.
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir))
        )
    read_config = tfds.ReadConfig(shuffle_seed=seed, input_context=input_context)
    # Keep the JPEG bytes: the pipeline decodes only the crop window.
    ds = builder.as_dataset(split=split, shuffle_files=training, read_config=read_config,
                            decoders={"image": tfds.decode.SkipDecoding()})
    return ds.map(lambda ex: (ex["image"], ex["label"]), num_parallel_calls=AUTOTUNE)
