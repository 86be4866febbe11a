"""tf.data input pipeline for CIFAR held in memory as numpy arrays."""

import numpy as np
import tensorflow as tf

from keras_preact import preprocessing
from keras_preact.data import augment as aug

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
            kwargs = {
                "value_range": kwargs["value_range"],
                "num_ops": kwargs["augmentations_per_image"],
                "factor": kwargs["magnitude"],
                "seed": kwargs.get("seed"),
            }
        elif name == "CutMix":
            # keras.layers.CutMix draws alpha from U(factor); pin it.
            alpha = kwargs.pop("alpha")
            kwargs["factor"] = (alpha, alpha)
        return getattr(keras.layers, name)(**kwargs)


def _default_stats(num_classes):
    if num_classes == 100:
        return preprocessing.CIFAR100_MEAN, preprocessing.CIFAR100_STD
    return preprocessing.CIFAR10_MEAN, preprocessing.CIFAR10_STD


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
    mean=None,
    std=None,
    pad=4,
    pad_mode="constant",
    randaugment_layers=2,
    randaugment_magnitude=0.5,
    shuffle_buffer=None,
    drop_remainder=None,
    repeat=False,
    vectorized=True,
    start_batch=0,
):
    """Builds the CIFAR `tf.data.Dataset` for training or evaluation.

    Training: shuffle, batch, (optional RandAugment), per-channel
    normalization, the paper's augmentation (pad `pad` pixels, random 32x32
    crop, random horizontal flip), optional MixUp/CutMix, prefetch.
    Evaluation (`training=False`): batch, normalize, prefetch; no shuffle,
    no augmentation, same order and values on every pass.

    Images stay as one uint8 tensor; the pipeline shuffles *indices* (a full
    uniform shuffle by default, cheap) and gathers whole batches, and the
    augmentation runs vectorized per batch (measured faster than per image
    on CPU, see `benchmarks/input_pipeline.py`; `vectorized=False` maps per
    image instead).

    Zero padding is applied after normalization, i.e. pads with the mean
    colour, as in the authors' fb.resnet.torch code (normalize, then
    `RandomCrop(32, 4)` with zero padding).

    Args:
        images: uint8 (or float, 0-255 scale) array `(N, 32, 32, 3)`.
        labels: int array `(N,)`.
        training: `True` for the shuffled, augmented training pipeline.
        batch_size: batch size.
        augment: `"paper"` (pad/crop/flip), `"randaugment"` (keras-cv
            RandAugment on 0-255 pixels, then pad/crop/flip) or `"none"`.
            Ignored when `training=False`.
        mixup_alpha: > 0 enables MixUp (keras-cv) with Beta(alpha, alpha).
        cutmix_alpha: > 0 enables CutMix (keras-cv). With both on, each batch
            uses one of them, chosen with probability 0.5.
        num_classes: number of classes; defaults to 100 if any label >= 10,
            else 10. Needed for one-hot labels.
        seed: int for a reproducible pipeline (shuffle order and
            augmentation still change from pass to pass), or `None`.
        mean, std: per-channel statistics (0-255 scale); default
            `CIFAR100_MEAN/STD` when `num_classes == 100`, else `CIFAR10_*`.
        pad: pixels padded per side before the random crop.
        pad_mode: `"constant"` (zeros, the paper) or `"reflect"`.
        randaugment_layers, randaugment_magnitude: RandAugment settings
            (`augmentations_per_image`, `magnitude` in [0, 1]).
        shuffle_buffer: shuffle buffer size (over indices); default `N`
            (full shuffle).
        drop_remainder: drop the last partial batch; default `training`.
        repeat: repeat forever (training only makes sense with
            `steps_per_epoch`).
        vectorized: augment whole batches (default) or map per image.
        start_batch: int >= 0 (training only). Start the stream at this
            batch, as if that many batches had been read: the shuffle order
            and the crop/flip draws continue exactly (with a `seed`; MixUp,
            CutMix and RandAugment draws do not). Skipping costs no image
            work. `keras_preact.training.fit_resumable` uses it to resume
            inside an epoch.

    Returns:
        A `tf.data.Dataset` of `(images, labels)`: images float32
        `(B, 32, 32, 3)` normalized; labels int64 `(B,)`, or float32 one-hot
        `(B, num_classes)` when MixUp or CutMix is on (use
        `CategoricalCrossentropy` then).

    Example:

    >>> from keras_preact.data import load_cifar, cifar_dataset
    >>> x, y = load_cifar("cifar100", source="npz", data_dir="shared/data/cifar100")
    >>> train = cifar_dataset(x, y, training=True, batch_size=128, seed=0)
    >>> model.fit(train, epochs=164)
    """
    if augment not in VALID_AUGMENTS:
        raise ValueError(f"Unknown augment={augment!r}. Expected one of {VALID_AUGMENTS}.")
    if pad_mode not in aug.VALID_PAD_MODES:
        raise ValueError(
            f"Unknown pad_mode={pad_mode!r}. Expected one of {aug.VALID_PAD_MODES}."
        )
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"Expected batch_size to be a positive int. Received: {batch_size!r}")
    if not isinstance(start_batch, (int, np.integer)) or start_batch < 0:
        raise ValueError(f"Expected start_batch to be an int >= 0. Received: {start_batch!r}")
    if start_batch and not training:
        raise ValueError(
            f"start_batch={start_batch} applies to the training stream only "
            "(training=True); evaluation always reads the whole set."
        )
    for arg, value in (("mixup_alpha", mixup_alpha), ("cutmix_alpha", cutmix_alpha)):
        if value < 0:
            raise ValueError(f"Expected {arg} >= 0. Received: {arg}={value!r}")
    images = np.asarray(images)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"Expected images of shape (N, H, W, 3). Received shape {images.shape}."
        )
    if len(images) != len(labels):
        raise ValueError(
            f"images and labels differ in length: {len(images)} vs {len(labels)}."
        )
    if num_classes is None:
        num_classes = 100 if len(labels) and labels.max() >= 10 else 10
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"Labels range over [{labels.min()}, {labels.max()}], outside "
            f"[0, {num_classes - 1}] for num_classes={num_classes}."
        )
    default_mean, default_std = _default_stats(num_classes)
    mean = preprocessing._check_stats("mean", default_mean if mean is None else mean, 3)
    std = preprocessing._check_stats("std", default_std if std is None else std, 3)
    if drop_remainder is None:
        drop_remainder = bool(training)
    mix = training and (mixup_alpha > 0 or cutmix_alpha > 0)

    n = len(images)
    images_t = tf.constant(images)
    labels_t = tf.constant(labels)
    # Shuffle indices, not images: a full shuffle costs 8 bytes per image.
    ds = tf.data.Dataset.range(n)
    if training:
        ds = ds.shuffle(shuffle_buffer or n, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    # Batches are consecutive runs of batch_size indices, so skipping indices
    # (and the matching augmentation seeds below) skips whole batches.
    ds = ds.skip(start_batch * batch_size)

    def normalize(x):
        return aug.tf_normalize(x, mean, std)

    if not training:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        ds = ds.map(
            lambda idx: (normalize(tf.gather(images_t, idx)), tf.gather(labels_t, idx)),
            num_parallel_calls=AUTOTUNE,
            deterministic=True,
        )
        return ds.prefetch(AUTOTUNE)

    randaugment = None
    if augment == "randaugment":
        randaugment = _keras_cv_or_keras_layer(
            "RandAugment",
            value_range=(0, 255),
            augmentations_per_image=randaugment_layers,
            magnitude=randaugment_magnitude,
            seed=seed,
        )
    crop_flip = augment in ("paper", "randaugment")
    # One (2,) stateless seed per element; differs on every pass.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    seeds = seeds.skip(start_batch if vectorized else start_batch * batch_size)

    if vectorized:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        ds = tf.data.Dataset.zip((ds, seeds))

        def transform(idx, s):
            x = tf.cast(tf.gather(images_t, idx), tf.float32)
            if randaugment is not None:
                x = randaugment(x)
            x = normalize(x)
            if crop_flip:
                x = aug.random_pad_crop_flip_batch(x, s, pad=pad, pad_mode=pad_mode)
            return x, tf.gather(labels_t, idx)

        ds = ds.map(transform, num_parallel_calls=AUTOTUNE, deterministic=seed is not None)
    else:
        ds = tf.data.Dataset.zip((ds, seeds))

        def transform_one(idx, s):
            x = normalize(tf.gather(images_t, idx))
            if crop_flip:
                x = aug.random_pad_crop_flip_image(x, s, pad=pad, pad_mode=pad_mode)
            return x, tf.gather(labels_t, idx)

        ds = ds.map(transform_one, num_parallel_calls=AUTOTUNE, deterministic=seed is not None)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        if randaugment is not None:
            # RandAugment expects 0-255 pixels: undo, augment, redo.
            mean_t = tf.constant(mean, tf.float32)
            std_t = tf.constant(std, tf.float32)
            ds = ds.map(
                lambda x, y: (normalize(randaugment(x * std_t + mean_t)), y),
                num_parallel_calls=AUTOTUNE,
            )

    if mix:
        ds = ds.map(
            _make_mixer(mixup_alpha, cutmix_alpha, num_classes, seed),
            num_parallel_calls=AUTOTUNE,
            deterministic=seed is not None,
        )
    return ds.prefetch(AUTOTUNE)


def _make_mixer(mixup_alpha, cutmix_alpha, num_classes, seed):
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
            return tf.cond(
                tf.random.uniform([]) < 0.5,
                lambda: apply(mixup, x, y),
                lambda: apply(cutmix, x, y),
            )
        return apply(mixup or cutmix, x, y)

    return mixer
