"""tf.data input pipeline for CIFAR held in memory as numpy arrays."""

import tensorflow as tf

from keras_preact import image_ops
from keras_preact.data import augment as aug
from keras_preact.data.array_pipeline import check_arrays
from keras_preact.data.array_pipeline import check_padding
from keras_preact.normalization import cifar_statistics
from keras_preact.normalization import pipeline_data_format
from keras_preact.normalization import pipeline_statistics
from keras_preact.validation import check_choice
from keras_preact.validation import check_int
from keras_preact.validation import check_real

AUTOTUNE = tf.data.AUTOTUNE
VALID_AUGMENTS = ("paper", "randaugment", "none")


def _keras_cv_or_keras_layer(name, **kwargs):
    """Builds a keras-cv 0.9 augmentation layer, else the keras.layers one.

    Both run inside tf.data on every Keras backend (they compute with TF
    while tracing a tf.data function).
    """
    try:
        import keras_cv

        return getattr(keras_cv.layers, name)(**kwargs)
    except ImportError:
        import keras

        if name == "RandAugment":
            kwargs = dict(value_range=kwargs["value_range"], factor=kwargs["magnitude"],
                          num_ops=kwargs["augmentations_per_image"], seed=kwargs.get("seed"))
        elif name == "CutMix":
            # keras.layers.CutMix draws alpha from U(factor); pin it.
            alpha = kwargs.pop("alpha")
            kwargs["factor"] = (alpha, alpha)
        return getattr(keras.layers, name)(**kwargs)


def cifar_dataset(
    images,
    labels,
    *,
    training,
    batch_size,
    augment="paper",
    mixup_alpha=0.0,
    cutmix_alpha=0.0,
    num_classes=None,
    seed=None,
    normalization="auto",
    pad=4,
    pad_mode="constant",
    randaugment_layers=2,
    randaugment_magnitude=0.5,
    shuffle_buffer=None,
    drop_remainder=None,
    repeat=False,
    vectorized=True,
    start_batch=0,
    data_format=None,
):
    """Builds the CIFAR `tf.data.Dataset` for training or evaluation.

    Reader: shuffled *indices* (a full uniform shuffle by default, cheap;
    the images stay one uint8 tensor), whole batches gathered. Training
    augmentation: (optional RandAugment), per-channel normalization, the
    paper's pad `pad` pixels, random 32x32 crop, random horizontal flip
    (He et al. 2016, Sec. 4.2), vectorized per batch (one op per batch,
    not per image), optional MixUp/CutMix.
    Evaluation (`training=False`): batch, normalize; no shuffle, no
    augmentation, the same values on every pass.

    The padding is the mean colour (`normalization.pipeline_statistics`,
    also for `normalization=model`), as in fb.resnet.torch (normalize, then
    `RandomCrop(32, 4)`).

    Args:
        images: uint8 (or float, 0-255 scale) array `(N, H, W, 3)`, RGB;
            CIFAR is `(N, 32, 32, 3)` from `load_cifar`.
        labels: int array `(N,)` (or `(N, 1)`).
        training: `True` for the shuffled, augmented training pipeline.
        batch_size: int >= 1.
        augment: `"paper"` (pad/crop/flip), `"randaugment"` (keras-cv
            RandAugment on 0-255 pixels, then pad/crop/flip) or `"none"`.
            Ignored when `training=False`.
        mixup_alpha: >= 0; > 0 enables MixUp (keras-cv) with Beta(alpha, alpha).
        cutmix_alpha: >= 0; > 0 enables CutMix (keras-cv). With both on, each
            batch uses one of them, chosen with probability 0.5.
        num_classes: number of classes; defaults to 100 if any label >= 10,
            else 10. Needed for one-hot labels; picks the `"auto"` statistics.
        seed: int for a reproducible pipeline (shuffle order and
            augmentation change from pass to pass; with `repeat`, every
            iteration is the same stream, MixUp and CutMix aside), or `None`.
        normalization: as `keras_preact.normalization.pipeline_statistics`;
            `"auto"`: `"cifar100"` if `num_classes` is 100, else `"cifar10"`.
        pad: pixels padded per side before the random crop.
        pad_mode: `"constant"` (the paper) or `"reflect"`.
        randaugment_layers, randaugment_magnitude: RandAugment settings
            (`augmentations_per_image`, `magnitude` in [0, 1]).
        shuffle_buffer: shuffle buffer size (over indices); default `N`
            (full shuffle).
        drop_remainder: drop the last partial batch; default `training`.
        repeat: repeat forever (training only makes sense with
            `steps_per_epoch`).
        vectorized: augment whole batches (default) or map per image
            (RandAugment, crop and flip one image at a time).
        start_batch: int >= 0 (training only). Start the stream at this
            batch, as if that many batches had been read: the shuffle order
            and the crop/flip draws continue exactly (with a `seed`; MixUp,
            CutMix and RandAugment draws do not). Skipping costs no image
            work. `keras_preact.training.fit_resumable` uses it to resume
            inside an epoch.
        data_format: `"channels_last"`, `"channels_first"` or None: the
            model's with `normalization=model`, else Keras'
            `image_data_format()`.

    Returns:
        A `tf.data.Dataset` of `(images, labels)`: images float32
        `(B, H, W, 3)` (or `(B, 3, H, W)` for `"channels_first"`), normalized (about zero mean, unit variance) or, see
        `normalization`, 0-255 pixels; labels int64 `(B,)`, or float32
        one-hot `(B, num_classes)` when MixUp or CutMix is on (use
        `CategoricalCrossentropy` then).

    Raises:
        ValueError: bad arrays (as `array_pipeline.check_arrays`), a bad
            `augment`, `pad`, `pad_mode`, `normalization` or `data_format`,
            `batch_size < 1`, negative `mixup_alpha`, `cutmix_alpha` or
            `start_batch`, or `start_batch` with `training=False`.

    Example:

    >>> from keras_preact.data import load_cifar, cifar_dataset
    >>> x, y = load_cifar("cifar100", source="npz", data_dir="data/cifar100")
    >>> train = cifar_dataset(x, y, training=True, batch_size=128, seed=0)
    >>> model.fit(train, epochs=164)
    """
    check_choice("augment", augment, VALID_AUGMENTS)
    batch_size = check_int("batch_size", batch_size, low=1)
    start_batch = check_int("start_batch", start_batch, low=0)
    if start_batch and not training:
        raise ValueError(
            f"start_batch={start_batch} applies to the training stream only "
            "(training=True); evaluation always reads the whole set."
        )
    mixup_alpha = check_real("mixup_alpha", mixup_alpha, low=0.0)
    cutmix_alpha = check_real("cutmix_alpha", cutmix_alpha, low=0.0)
    data_format = pipeline_data_format(normalization, data_format)
    images, labels, num_classes = check_arrays(images, labels, num_classes)
    pad = check_padding(pad, pad_mode, *images.shape[1:3])
    statistics, pad_value = pipeline_statistics(normalization, cifar_statistics(num_classes))

    def to_output(pixels):  # 0-255 pixels -> the output scale
        if statistics is None:
            return tf.cast(pixels, tf.float32)
        return image_ops.normalize(pixels, statistics)

    drop_remainder = bool(training) if drop_remainder is None else drop_remainder
    images_t, labels_t = tf.constant(images), tf.constant(labels)
    # Reader: shuffled indices, not images (a full shuffle costs 8 bytes per
    # image). Batches are consecutive runs of batch_size indices, so skipping
    # indices (and the matching augmentation seeds) skips whole batches.
    def indices():
        ds = tf.data.Dataset.range(len(images))
        if training:
            ds = ds.shuffle(shuffle_buffer or len(images), seed=seed)
        return ds.repeat() if repeat else ds

    ds = aug.one_stream(indices, same := repeat and seed is not None)
    ds = ds.skip(start_batch * batch_size)
    if not training:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        ds = ds.map(
            lambda idx: (to_output(tf.gather(images_t, idx)), tf.gather(labels_t, idx)),
            num_parallel_calls=AUTOTUNE, deterministic=True,
        )
        return aug.in_data_format(ds, data_format).prefetch(AUTOTUNE)
    randaugment = None
    if augment == "randaugment":
        randaugment = _keras_cv_or_keras_layer(
            "RandAugment", value_range=(0, 255), augmentations_per_image=randaugment_layers,
            magnitude=randaugment_magnitude, seed=seed,
        )
    crop_flip = dict(pad=pad, pad_mode=pad_mode, pad_value=pad_value) if augment != "none" else None
    # One (2,) stateless seed per element; differs on every pass.
    seeds = aug.one_stream(lambda: tf.data.Dataset.random(seed, True).batch(2), same)
    seeds = seeds.skip(start_batch if vectorized else start_batch * batch_size)
    deterministic = seed is not None
    ds = _augment(ds, images_t, labels_t, seeds, batch_size, drop_remainder, to_output,
                  randaugment, crop_flip, vectorized, deterministic)
    if mixup_alpha > 0 or cutmix_alpha > 0:
        mixer = _make_mixer(mixup_alpha, cutmix_alpha, num_classes, seed)
        ds = ds.map(mixer, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    return aug.in_data_format(ds, data_format).prefetch(AUTOTUNE)


def _augment(ds, images_t, labels_t, seeds, batch_size, drop_remainder, to_output, randaugment,
             crop_flip, vectorized, deterministic):
    """Indices -> augmented batches: per batch in one vectorized step, or per image."""
    if vectorized:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)

    def transform(idx, s):
        x = tf.cast(tf.gather(images_t, idx), tf.float32)
        if randaugment is not None:
            x = randaugment(x)  # On 0-255 pixels.
        x = to_output(x)
        if crop_flip and vectorized:
            x = aug.random_pad_crop_flip_batch(x, s, **crop_flip)
        elif crop_flip:
            x = aug.random_pad_crop_flip_batch(x[None], s, **crop_flip)[0]
        return x, tf.gather(labels_t, idx)

    ds = tf.data.Dataset.zip((ds, seeds))
    ds = ds.map(transform, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    return ds if vectorized else ds.batch(batch_size, drop_remainder=drop_remainder)


def _make_mixer(mixup_alpha, cutmix_alpha, num_classes, seed):
    """`(x, y) -> (x, one-hot y)` batches mixed by MixUp or CutMix (keras-cv)."""
    mixup = cutmix = None
    if mixup_alpha > 0:
        mixup = _keras_cv_or_keras_layer("MixUp", alpha=mixup_alpha, seed=seed)
    if cutmix_alpha > 0:
        cutmix = _keras_cv_or_keras_layer("CutMix", alpha=cutmix_alpha, seed=seed)

    def apply(layer, x, y):
        out = layer({"images": x, "labels": y})
        return tf.cast(out["images"], tf.float32), tf.cast(out["labels"], tf.float32)

    def mixer(x, y):
        y = tf.one_hot(y, num_classes, dtype=tf.float32)
        if mixup is not None and cutmix is not None:
            use_mixup = tf.random.uniform([]) < 0.5
            return tf.cond(use_mixup, lambda: apply(mixup, x, y), lambda: apply(cutmix, x, y))
        return apply(mixup or cutmix, x, y)

    return mixer
