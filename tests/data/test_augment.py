"""keras_preact.data.augment: the paper's CIFAR pad-crop-flip on a batch, and
the layout change of a dataset, against numpy references."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from keras_preact.data.augment import in_data_format  # noqa: E402
from keras_preact.data.augment import random_pad_crop_flip_batch  # noqa: E402

from _checks import random_images  # noqa: E402


def windows(image, pad, pad_mode, pad_value):
    """{(dy, dx, flipped): crop} of every crop of `image` padded by `pad`."""
    size = image.shape[0]
    if pad_mode == "reflect":
        padded = np.pad(image, [(pad, pad), (pad, pad), (0, 0)], mode="reflect")
    else:
        padded = np.pad(image - pad_value, [(pad, pad), (pad, pad), (0, 0)]) + pad_value
    crops = {}
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[dy:dy + size, dx:dx + size]
            crops[dy, dx, False], crops[dy, dx, True] = crop, crop[:, ::-1]
    return crops


@pytest.mark.parametrize("pad_mode, pad_value", [
    ("constant", 0.0),
    ("constant", (125.3, 123.0, 113.9)),  # 0-255 pixels: the mean colour
    ("reflect", 0.0),
])
def test_every_image_is_one_crop_of_its_padded_self(pad_mode, pad_value):
    images = random_images(64, size=8).astype("float32")
    out = random_pad_crop_flip_batch(tf.constant(images), tf.constant([1, 2]), pad=4,
                                     pad_mode=pad_mode, pad_value=pad_value).numpy()
    assert out.shape == images.shape and out.dtype == np.float32
    found = []
    for image, result in zip(images, out):
        crops = windows(image, 4, pad_mode, np.asarray(pad_value, np.float32))
        found.append(next(k for k, crop in crops.items() if np.array_equal(crop, result)))
    offsets = {(dy, dx) for dy, dx, _ in found}
    flips = sum(flipped for _, _, flipped in found)
    assert len(offsets) > 20 and 16 < flips < 48  # independent per image, p(flip) = 0.5


def test_same_seed_same_batch_and_no_pad_no_flip_is_identity():
    images = tf.constant(random_images(16, size=8).astype("float32"))

    def augment(seed, **kwargs):
        return random_pad_crop_flip_batch(images, tf.constant(seed), **kwargs).numpy()

    np.testing.assert_array_equal(augment([3, 4]), augment([3, 4]))
    assert not np.array_equal(augment([3, 4]), augment([3, 5]))
    np.testing.assert_array_equal(augment([3, 4], pad=0, flip=False), images.numpy())


def test_in_data_format():
    x, y = random_images(2, size=4).astype("float32"), np.arange(2)
    ds = tf.data.Dataset.from_tensors((x, y))
    assert in_data_format(ds, "channels_last") is ds
    first, labels = next(iter(in_data_format(ds, "channels_first")))
    np.testing.assert_array_equal(first.numpy(), x.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(labels.numpy(), y)
