"""keras_preact.layers.padding: `ConstantPadding2D` pads as `np.pad` does, and
before a valid 3x3/2 max pooling it is Torch's `MaxPool2d(3, 2, padding=1)`
on any input, where zero padding is that pooling only on inputs >= 0."""

import json
import math

import numpy as np
import pytest

import keras

from keras_preact.layers import ConstantPadding2D

NEG_INF = -math.inf


def channels_first(x):
    return np.transpose(x, (0, 3, 1, 2))


def run(layers, x, data_format):
    """`layers` applied in turn to NHWC `x`, given to them in `data_format`;
    the result as a float32 NHWC array."""
    if data_format == "channels_first":
        x = channels_first(x)
    for layer in layers:
        x = layer(x)
    x = keras.ops.convert_to_numpy(keras.ops.cast(x, "float32"))
    return np.transpose(x, (0, 2, 3, 1)) if data_format == "channels_first" else x


# === What it computes ===

# (id, padding, value, data_format, input shape NHWC)
PADS = [
    ("neg_inf_last", 1, NEG_INF, "channels_last", (2, 5, 6, 3)),
    ("neg_inf_first", 1, NEG_INF, "channels_first", (2, 5, 6, 3)),
    ("two_last", 2, 1.5, "channels_last", (1, 3, 4, 2)),
    ("two_first", 2, -7.0, "channels_first", (1, 3, 4, 2)),
    ("none_last", 0, 3.0, "channels_last", (1, 2, 2, 1)),
]


@pytest.mark.parametrize(
    "padding, value, data_format, shape", [p[1:] for p in PADS], ids=[p[0] for p in PADS]
)
def test_equals_numpy_pad(padding, value, data_format, shape):
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    layer = ConstantPadding2D(padding, value, data_format=data_format)
    got = run([layer], x, data_format)
    p = (padding, padding)
    np.testing.assert_array_equal(
        got, np.pad(x, [(0, 0), p, p, (0, 0)], constant_values=value)
    )
    # Shapes, declared and symbolic, in the layer's own format.
    last = data_format == "channels_last"
    n, h, w, c = shape
    hp, wp = h + 2 * padding, w + 2 * padding
    assert layer.compute_output_shape(shape if last else (n, c, h, w)) == (
        (n, hp, wp, c) if last else (n, c, hp, wp))
    symbolic = layer(keras.KerasTensor((None, None, w, c) if last else (None, c, None, w)))
    assert symbolic.shape == ((None, None, wp, c) if last else (None, c, None, wp))


# Sizes odd and even, square and not: the last window of a stride-2 pooling
# ends on the padding or on the image.
@pytest.mark.parametrize("size", [(7, 7), (8, 6)], ids=["7x7", "8x6"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_before_max_pooling_it_is_torch_max_pool(data_format, size):
    torch = pytest.importorskip("torch")
    # Mostly negative values: a border window that is all negative takes a
    # zero pad as its maximum.
    x = np.random.default_rng(1).normal(-1.0, 1.0, (2, *size, 3)).astype("float32")

    def torch_pool(values):
        nchw = torch.from_numpy(channels_first(values).copy())
        return torch.nn.MaxPool2d(3, 2, padding=1)(nchw).numpy().transpose(0, 2, 3, 1)

    def keras_pool(pad, values):
        return run([pad, keras.layers.MaxPooling2D(3, 2, data_format=data_format)],
                   values, data_format)

    constant = ConstantPadding2D(1, NEG_INF, data_format=data_format)
    zero = keras.layers.ZeroPadding2D(1, data_format=data_format)
    # A maximum picks one of its inputs: equal to the bit.
    np.testing.assert_array_equal(keras_pool(constant, x), torch_pool(x))
    assert not np.allclose(keras_pool(zero, x), torch_pool(x))
    # Zero padding is the same pooling on inputs >= 0 (after a ReLU).
    activated = np.maximum(x, 0.0)
    np.testing.assert_array_equal(keras_pool(zero, activated), torch_pool(activated))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_half_precision_keeps_infinity_out_of_the_pooled_output(policy):
    torch = pytest.importorskip("torch")
    keras.config.set_dtype_policy(policy)
    dtype = policy.split("_")[1]
    x = np.random.default_rng(2).normal(-1.0, 1.0, (2, 7, 7, 3)).astype("float32")
    pad = ConstantPadding2D(1, NEG_INF)
    pool = keras.layers.MaxPooling2D(3, 2)
    padded = pad(x)
    assert keras.backend.standardize_dtype(padded.dtype) == dtype
    border = keras.ops.convert_to_numpy(keras.ops.cast(padded, "float32"))[:, 0]
    assert np.all(border == NEG_INF)  # -inf exists in the half types.
    pooled = pool(padded)
    assert keras.backend.standardize_dtype(pooled.dtype) == dtype
    got = keras.ops.convert_to_numpy(keras.ops.cast(pooled, "float32"))
    assert np.all(np.isfinite(got))
    # Torch's pooling of the same half-precision values, compared in float32.
    rounded = torch.from_numpy(channels_first(x).copy()).to(getattr(torch, dtype)).float()
    expected = torch.nn.MaxPool2d(3, 2, padding=1)(rounded).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(got, expected)


# === Config and bad input ===


def test_config_round_trip_keeps_the_value():
    layer = ConstantPadding2D(2, NEG_INF, data_format="channels_first", name="pad")
    config = layer.get_config()
    assert {k: config[k] for k in ("padding", "value", "data_format", "name")} == {
        "padding": 2, "value": NEG_INF, "data_format": "channels_first", "name": "pad",
    }
    # Through JSON, as a `.keras` file stores it (-inf is written `-Infinity`).
    text = json.dumps(keras.saving.serialize_keras_object(layer))
    restored = keras.saving.deserialize_keras_object(json.loads(text))
    assert type(restored) is ConstantPadding2D
    assert restored.get_config() == config
    x = np.ones((1, 2, 3, 3), "float32")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(restored(x)), keras.ops.convert_to_numpy(layer(x))
    )


def test_data_format_defaults_to_keras_image_data_format():
    keras.config.set_image_data_format("channels_first")
    assert ConstantPadding2D(1).data_format == "channels_first"
    assert ConstantPadding2D(1).value == 0.0


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ((-1,), {}, r"Invalid padding=-1\. Expected an int >= 0"),
        ((1.5,), {}, r"Invalid padding=1.5\. Expected an int"),
        (((1, 1),), {}, r"Invalid padding=\(1, 1\)\. Expected an int"),
        ((1, "-inf"), {}, r"Invalid value='-inf'\. Expected a number"),
        ((1, None), {}, r"Invalid value=None\. Expected a number"),
        ((1, math.nan), {}, r"Invalid value=nan\. Expected a number"),
        ((1,), {"data_format": "NHWC"}, r"Invalid data_format='NHWC'"),
    ],
)
def test_bad_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ConstantPadding2D(*args, **kwargs)
