"""CIFAR batches from in-memory numpy arrays, without TensorFlow.

`CIFARBatches` feeds `model.fit` on every backend on machines that have no
TensorFlow (e.g. a GPU machine with only JAX or PyTorch), with the batches
of `keras_preact.data.cifar_dataset` (`augment="paper"` or `"none"`).

Source: He et al., "Identity Mappings in Deep Residual Networks" (ECCV 2016),
Sec. 4, which follows the CIFAR recipe of "Deep Residual Learning" (He et
al., CVPR 2016, Sec. 4.2: "4 pixels are padded on each side, and a 32x32
crop is randomly sampled from the padded image or its horizontal flip"),
as in the authors' fb.resnet.torch (`datasets/cifar10.lua`: `ColorNormalize`,
then `RandomCrop(32, 4)` with zero padding, then `HorizontalFlip(0.5)`; so
the padding is zeros *after* normalization, i.e. the mean colour).
"""

import math
import threading

import keras
import numpy as np

from keras_preact.data.labels import check_labels
from keras_preact.normalization import cifar_statistics
from keras_preact.normalization import normalize
from keras_preact.normalization import pipeline_data_format
from keras_preact.normalization import pipeline_statistics
from keras_preact.validation import check_choice
from keras_preact.validation import check_int

VALID_AUGMENTS = ("paper", "none")
VALID_PAD_MODES = ("constant", "reflect")

# Images normalized per call of `normalize` at construction
# (bounds the temporary memory on the backend's device: 4096 CIFAR images
# are 50 MB in float32).
_NORMALIZE_CHUNK = 4096
# Stream tags of the per-(seed, epoch) random generators.
_SHUFFLE_STREAM = 0
_AUGMENT_STREAM = 1


def check_arrays(images, labels, num_classes=None):
    """Validates CIFAR-style arrays; shared by `CIFARBatches` and `cifar_dataset`.

    Args:
        images: array `(N, H, W, 3)`, channels last, integer or float pixels
            on the 0-255 scale.
        labels: integer array `(N,)` or `(N, 1)`.
        num_classes: int >= 1 or None (100 if any label >= 10, else 10).

    Returns:
        `(images, labels, num_classes)`: the images as an array, the labels
        int64 `(N,)`, the number of classes as an int.

    Raises:
        ValueError: images not `(N, H, W, 3)` real numbers in [0, 255], no
            image, labels not integer class ids in `[0, num_classes)` or not
            one per image, or a bad `num_classes`.
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            "Expected images of shape (N, H, W, 3), channels last. "
            f"Received shape {images.shape}."
        )
    if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
        raise ValueError(
            f"Expected uint8 (or real) images on the 0-255 scale. Received dtype {images.dtype}."
        )
    if len(images) == 0:
        raise ValueError("Expected at least one image. Received an empty array.")
    low, high = images.min(), images.max()
    if not (low >= 0 and high <= 255):  # also catches NaN
        raise ValueError(f"Expected pixel values in [0, 255]. Received values in [{low}, {high}].")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"Expected integer class ids of shape (N,). Received {labels.dtype} labels "
            f"of shape {labels.shape}."
        )
    if len(images) != len(labels):
        raise ValueError(f"images and labels differ in length: {len(images)} vs {len(labels)}.")
    if num_classes is None:
        num_classes = 100 if labels.max() >= 10 else 10
    num_classes = check_int("num_classes", num_classes, low=1)
    check_labels(labels, num_classes)
    return images, labels.astype(np.int64), num_classes


def check_padding(pad, pad_mode, height, width):
    """`pad` as an int, or a `ValueError` for a pad < 0, an unknown `pad_mode`,
    or a `"reflect"` pad >= min(H, W)."""
    pad = check_int("pad", pad, low=0)
    check_choice("pad_mode", pad_mode, VALID_PAD_MODES)
    if pad_mode == "reflect" and pad >= min(height, width):
        raise ValueError(
            f"pad_mode='reflect' needs pad < min(H, W) = {min(height, width)}. Received: pad={pad}"
        )
    return pad


def pad_crop_flip(images, offsets_y, offsets_x, flips, pad=4, pad_mode="constant", pad_value=0.0):
    """Pads, crops and flips a batch of images, each with its own draw.

    Image `i` is padded by `pad` pixels on every side, the `H x W` window
    whose top-left corner is `(offsets_y[i], offsets_x[i])` in the padded
    image is taken, and it is mirrored left-right when `flips[i]` is true.
    One fancy-indexing gather does all three (no Python loop over images).

    Args:
        images: numpy array `(B, H, W, C)` (channels last), any dtype; for
            the paper, normalized float32 images, so zero padding is the
            mean colour.
        offsets_y: int array `(B,)`, each in `[0, 2 * pad]`.
        offsets_x: int array `(B,)`, each in `[0, 2 * pad]`.
        flips: bool array `(B,)`.
        pad: int >= 0. Pixels padded on each side. Defaults to 4.
        pad_mode: `"constant"` (the paper) or `"reflect"` (needs
            `pad < min(H, W)`). Defaults to `"constant"`.
        pad_value: the `"constant"` padding: a number or one per channel
            (e.g. the mean colour of 0-255 pixels). Defaults to 0.

    Returns:
        A numpy array with the shape and dtype of `images`.

    Raises:
        ValueError: for arrays of the wrong rank or length, offsets outside
            `[0, 2 * pad]`, or a bad `pad` or `pad_mode`.

    Example:

    >>> x = np.arange(2 * 4 * 4 * 1, dtype="float32").reshape(2, 4, 4, 1)
    >>> y = pad_crop_flip(x, np.array([1, 1]), np.array([1, 1]),
    ...                   np.array([False, True]), pad=1)
    >>> bool((y[0] == x[0]).all()), bool((y[1] == x[1, :, ::-1]).all())
    (True, True)
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"Expected images of shape (B, H, W, C). Received shape {images.shape}.")
    batch, height, width = images.shape[:3]
    pad = check_padding(pad, pad_mode, height, width)
    draws = {"offsets_y": offsets_y, "offsets_x": offsets_x, "flips": flips}
    for name, value in draws.items():
        draws[name] = value = np.asarray(value)
        if value.shape != (batch,):
            raise ValueError(
                f"Expected {name} of shape ({batch},), one per image. Received shape {value.shape}."
            )
        if name != "flips" and batch and (value.min() < 0 or value.max() > 2 * pad):
            raise ValueError(
                f"Expected {name} in [0, {2 * pad}] (2 * pad). Received values in "
                f"[{value.min()}, {value.max()}]."
            )
    if pad:
        padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode=pad_mode)
        if pad_mode == "constant" and np.any(pad_value):
            padded[:, :pad], padded[:, -pad:] = pad_value, pad_value
            padded[:, :, :pad], padded[:, :, -pad:] = pad_value, pad_value
        images = padded
    rows = draws["offsets_y"][:, None] + np.arange(height)  # (B, H)
    # A flipped crop reads its window's columns right to left.
    cols = np.where(
        draws["flips"].astype(bool)[:, None],
        draws["offsets_x"][:, None] + (width - 1 - np.arange(width)),
        draws["offsets_x"][:, None] + np.arange(width),
    )  # (B, W)
    return images[np.arange(batch)[:, None, None], rows[:, :, None], cols[:, None, :]]


class CIFARBatches(keras.utils.PyDataset):
    """CIFAR `(images, labels)` batches from numpy arrays, for `model.fit`.

    Needs no TensorFlow. Training (`training=True`): the examples are
    reshuffled every epoch, and with `augment="paper"` every image gets the
    paper's augmentation: zero padding of `pad` pixels on every side, a
    random `H x W` crop (offsets uniform in `[0, 2 * pad]`) and a horizontal
    flip with probability 0.5; the last partial batch is dropped. Evaluation
    (`training=False`): the original order, no augmentation, the last partial
    batch kept, the same batches on every pass.

    The images are normalized once, at construction, with
    `keras_preact.normalization.normalize` (`(x - mean) / std` per channel,
    on the current Keras backend), and kept as float32: 4 bytes per value,
    614 MB for the 50,000 CIFAR training images (12,288 bytes per image).
    The padding is the mean colour (`normalization.pipeline_statistics`,
    also for `normalization=model`), as in fb.resnet.torch and
    `keras_preact.data.cifar_dataset`, whose batches these equal value for
    value when `augment="none"` or `training=False` (the draws differ).

    Every random draw is a function of `(seed, epoch, batch index)` only, so
    a batch does not depend on the order batches are requested in (Keras'
    `fit(shuffle=True)` reorders them; `workers > 1` fetches them in
    threads), two datasets with the same seed give the same batches, and
    `on_epoch_end()` (called by `fit` after every epoch) moves to new draws.
    Augmentation is vectorized numpy (one gather per batch, no loop over
    images).

    Args:
        images: array `(N, H, W, 3)`, uint8 (or any real dtype on the 0-255
            scale), channels last, RGB; CIFAR is `(N, 32, 32, 3)` uint8 as
            returned by `keras_preact.data.load_cifar`.
        labels: int array `(N,)` (or `(N, 1)`), class ids in
            `[0, num_classes)`.
        training: bool. Shuffled, augmented batches when True.
        batch_size: int >= 1. Images per batch.
        augment: `"paper"` (pad, crop, flip) or `"none"`. Used only when
            `training=True`. Defaults to `"paper"`.
        num_classes: int or None. Number of classes; None: 100 if any
            label >= 10, else 10. Picks the `"auto"` statistics.
        seed: int >= 0 or None. Seed of the shuffling and augmentation;
            None draws one from numpy's global generator (seeded by
            `keras.utils.set_random_seed`). Defaults to None.
        normalization: as `keras_preact.normalization.pipeline_statistics`;
            `"auto"`: `"cifar100"` if `num_classes` is 100, else `"cifar10"`.
            Defaults to `"auto"`.
        pad: int >= 0. Pixels padded per side before the crop. Defaults to 4.
        pad_mode: `"constant"` (zeros, the paper) or `"reflect"`.
            Defaults to `"constant"`.
        drop_remainder: bool or None. Drop the last partial batch; None:
            `training`. Defaults to None.
        data_format: `"channels_last"`, `"channels_first"` or None: the
            model's with `normalization=model`, else Keras'
            `image_data_format()`. The layout of the image batches.
        **kwargs: `workers`, `use_multiprocessing`, `max_queue_size` of
            `keras.utils.PyDataset` (how `fit` fetches batches).

    Returns (per batch, from `dataset[i]`):
        `(images, labels)`: images float32 `(B, H, W, 3)` (or `(B, 3, H, W)`
        for `"channels_first"`), normalized (about zero mean and unit
        variance per channel; padding is exactly 0) or, see `normalization`,
        0-255 pixels; labels int32 `(B,)`.

    Raises:
        ValueError: bad arrays (as `check_arrays`), a bad `batch_size`,
            `augment`, `pad`, `pad_mode`, `seed`, `data_format` or
            `normalization`, or no batch at all (fewer than `batch_size`
            images with `drop_remainder=True`).

    Example:

    >>> from keras_preact.data import load_cifar, CIFARBatches
    >>> x, y = load_cifar("cifar100", source="npz", data_dir="data/cifar100")
    >>> train = CIFARBatches(x, y, training=True, batch_size=128, seed=0)
    >>> xt, yt = load_cifar("cifar100", source="npz", data_dir="data/cifar100",
    ...                     split="test")
    >>> test = CIFARBatches(xt, yt, training=False, batch_size=500)
    >>> model.fit(train, validation_data=test, epochs=164)
    """

    def __init__(
        self,
        images,
        labels,
        *,
        training,
        batch_size,
        augment="paper",
        num_classes=None,
        seed=None,
        normalization="auto",
        pad=4,
        pad_mode="constant",
        drop_remainder=None,
        data_format=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_choice("augment", augment, VALID_AUGMENTS)
        data_format = pipeline_data_format(normalization, data_format)
        batch_size = check_int("batch_size", batch_size, low=1)
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        seed = check_int("seed", seed, low=0)
        images, labels, num_classes = check_arrays(images, labels, num_classes)
        pad = check_padding(pad, pad_mode, *images.shape[1:3])
        statistics, pad_value = pipeline_statistics(normalization, cifar_statistics(num_classes))
        drop_remainder = bool(training) if drop_remainder is None else drop_remainder
        num_batches = (math.floor if drop_remainder else math.ceil)(len(images) / batch_size)
        if num_batches == 0:
            raise ValueError(
                f"No batch to yield: {len(images)} images, batch_size={batch_size} and "
                "drop_remainder=True. Use a smaller batch_size or drop_remainder=False."
            )

        self.training = bool(training)
        self.batch_size = batch_size
        self.augment = augment if self.training else "none"
        self.num_classes = num_classes
        self.seed = seed
        self.statistics = statistics  # A Statistics, or None for pixels.
        self.pad_value = pad_value
        self.pad = pad
        self.pad_mode = pad_mode
        self.drop_remainder = bool(drop_remainder)
        self.data_format = data_format
        self.epoch = 0
        self._num_batches = num_batches
        self._labels = labels.astype(np.int32)
        self._images = self._float32_images(images)
        self._order_lock = threading.Lock()
        self._order_cache = (None, None)

    def _float32_images(self, images):
        """Float32 copy `(N, H, W, 3)`, normalized (in chunks) or pixels."""
        if self.statistics is None:
            return images.astype(np.float32)
        out = np.empty(images.shape, np.float32)
        for start in range(0, len(images), _NORMALIZE_CHUNK):
            chunk = images[start : start + _NORMALIZE_CHUNK]
            out[start : start + len(chunk)] = keras.ops.convert_to_numpy(
                normalize(chunk, self.statistics, "channels_last")
            )
        return out

    # === Draws ===

    def _generator(self, epoch, *stream):
        return np.random.default_rng([self.seed, epoch, *stream])

    def order(self, epoch=None):
        """The example indices of an epoch, in batch order.

        Args:
            epoch: int or None (the current `self.epoch`).

        Returns:
            int64 array `(N,)`: a permutation of `range(N)` when training
            (a new one every epoch), else `range(N)`.
        """
        epoch = self.epoch if epoch is None else epoch
        n = len(self._labels)
        if not self.training:
            return np.arange(n)
        with self._order_lock:
            cached_epoch, order = self._order_cache
            if cached_epoch != epoch:
                order = self._generator(epoch, _SHUFFLE_STREAM).permutation(n)
                self._order_cache = (epoch, order)
        return order

    def augmentation_draws(self, index, epoch=None):
        """The crop offsets and flips of batch `index` in `epoch`.

        Returns:
            dict of `offsets_y`, `offsets_x` (int arrays `(B,)` in
            `[0, 2 * pad]`) and `flips` (bool array `(B,)`), or None when
            the batches are not augmented.
        """
        if self.augment == "none":
            return None
        epoch = self.epoch if epoch is None else epoch
        size = len(self._batch_indices(index, epoch))
        rng = self._generator(epoch, _AUGMENT_STREAM, index)
        return {
            "offsets_y": rng.integers(0, 2 * self.pad + 1, size),
            "offsets_x": rng.integers(0, 2 * self.pad + 1, size),
            "flips": rng.random(size) < 0.5,
        }

    def _batch_indices(self, index, epoch):
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise ValueError(f"Expected an int batch index. Received: {index!r}")
        if not 0 <= index < self._num_batches:
            raise IndexError(f"Batch index {index} out of range for {self._num_batches} batches.")
        start = int(index) * self.batch_size
        return self.order(epoch)[start : start + self.batch_size]

    # === PyDataset ===

    def __len__(self):
        return self._num_batches

    def __getitem__(self, index):
        epoch = self.epoch
        indices = self._batch_indices(index, epoch)
        images = self._images[indices]
        draws = self.augmentation_draws(index, epoch)
        if draws is not None:
            images = pad_crop_flip(
                images, pad=self.pad, pad_mode=self.pad_mode, pad_value=self.pad_value, **draws
            )
        if self.data_format == "channels_first":
            images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
        return images, self._labels[indices]

    def on_epoch_end(self):
        """Moves to the next epoch's shuffle and augmentation draws."""
        self.epoch += 1
