"""keras_preact.layers.convolution: `Conv2D` is `keras.layers.Conv2D` to a
user (numbers, gradients, variables, config, files), and on torch it reads a
channels-last input where it lies, without a copy.

Each configuration builds `keras_preact.layers.Conv2D` and
`keras.layers.Conv2D` with the same weights, runs one forward and backward
pass with the backend's own autodiff (`_checks.gradient_step`) and compares
the outputs and the gradients with respect to the input, kernel and bias.
Off torch and on torch's fallback (Keras' own `call`) both layers run the
same operations: the numbers are equal, bit for bit. So are they on torch's
fast path without a bias: the same convolution of the same memory. With a
bias, torch's convolution adds it inside the kernel where Keras adds it
after, and sums its gradient in another order: one rounding apart, in the
compute dtype.
"""

import json
import zipfile

import numpy as np
import pytest

import keras
from keras_preact.layers import Conv2D
from keras_preact.layers import convolution

from _checks import gradient_step
from conftest import BACKEND

torch_only = pytest.mark.skipif(
    BACKEND != "torch", reason="the torch backend's own convolution path"
)


def case(name, shape, path="fast", policy="float32", **layer_args):
    """A configuration: input `shape` in the layer's data format, the layer's
    arguments (6 filters of 3x3 with a bias unless given), its dtype policy
    and the path torch takes: `"fast"`, or Keras' `call` where "same" pads
    one side more than the other."""
    layer_args = {"filters": 6, "kernel_size": 3, **layer_args}
    return pytest.param(shape, layer_args, policy, path, id=name)


FIRST = dict(data_format="channels_first")
CASES = [
    # Stride 1: "same" pads k // 2 on every side, even or odd input.
    case("k3_same_even", (2, 8, 8, 4), padding="same"),
    case("k3_same_odd", (2, 7, 7, 4), padding="same"),
    case("k3_same_no_bias", (2, 8, 8, 4), padding="same", use_bias=False),
    case("k3_valid", (2, 7, 8, 4), padding="valid"),
    case("k1_same", (2, 8, 8, 4), kernel_size=1, padding="same"),
    case("k1_valid_stride2", (2, 7, 7, 4), kernel_size=1, strides=2),
    case("k7_same_odd", (2, 7, 7, 4), kernel_size=7, padding="same"),
    case("k7_valid", (2, 8, 9, 4), kernel_size=7, padding="valid"),
    # Stride 2: "same" pads a 3x3 or 7x7 kernel as much on each side on odd
    # inputs, one pixel more at the bottom/right on even ones (torch then
    # takes Keras' call); a 1x1 kernel needs no padding.
    case("k3_stride2_same_odd", (2, 7, 7, 4), strides=2, padding="same"),
    case("k3_stride2_same_even", (2, 8, 8, 4), "keras", strides=2, padding="same"),
    case(
        "k3_stride2_same_even_no_bias", (2, 8, 8, 4), "keras",
        strides=2, padding="same", use_bias=False,
    ),
    case("k3_stride2_same_odd_by_even", (2, 7, 8, 4), "keras", strides=2, padding="same"),
    case("k3_stride2_valid_even", (2, 8, 8, 4), strides=2, padding="valid"),
    case("k7_stride2_same_odd", (2, 9, 9, 4), kernel_size=7, strides=2, padding="same"),
    case("k7_stride2_same_even", (2, 8, 8, 4), "keras", kernel_size=7, strides=2, padding="same"),
    case("k1_stride2_same_even", (2, 8, 8, 4), kernel_size=1, strides=2, padding="same"),
    case("rectangular_kernel", (2, 7, 8, 4), kernel_size=(1, 3), strides=(2, 1), padding="same"),
    # Dilation, groups, activation.
    case("dilation2_same_even", (2, 8, 8, 4), padding="same", dilation_rate=2),
    case("dilation2_valid", (2, 9, 9, 4), padding="valid", dilation_rate=2),
    case("groups2", (2, 8, 8, 4), padding="same", groups=2),
    case("groups2_stride2_even", (2, 8, 8, 4), "keras", strides=2, padding="same", groups=2),
    case("relu", (2, 8, 8, 4), padding="same", activation="relu"),
    case("relu_stride2_even", (2, 8, 8, 4), "keras", strides=2, padding="same", activation="relu"),
    # One input channel: a channels-last tensor that is also contiguous
    # channels-first.
    case("one_channel", (2, 8, 8, 1), padding="same"),
    # Edges: a batch of one; a 1x1 image.
    case("batch_1", (1, 8, 8, 4), padding="same"),
    case("batch_1_stride2_even", (1, 8, 8, 4), "keras", strides=2, padding="same"),
    case("spatial_1x1_same", (2, 1, 1, 4), padding="same"),
    case("spatial_1x1_k1_valid", (2, 1, 1, 4), kernel_size=1),
    case("spatial_1x1_stride2_same", (2, 1, 1, 4), strides=2, padding="same"),
    # channels_first.
    case("first_k3_same_odd", (2, 4, 7, 7), padding="same", **FIRST),
    case("first_k3_stride2_same_odd", (2, 4, 7, 7), strides=2, padding="same", **FIRST),
    case("first_k3_stride2_same_even", (2, 4, 8, 8), "keras", strides=2, padding="same", **FIRST),
    case("first_k7_valid_no_bias", (2, 4, 8, 8), kernel_size=7, use_bias=False, **FIRST),
    case("first_groups2_dilation2", (2, 4, 8, 8), padding="same", groups=2, dilation_rate=2,
         **FIRST),
    case("first_spatial_1x1", (2, 4, 1, 1), padding="same", **FIRST),
    # mixed_bfloat16: bfloat16 outputs and gradients, float32 variables.
    case("bf16_k3_same", (2, 8, 8, 4), policy="mixed_bfloat16", padding="same"),
    case(
        "bf16_k3_same_no_bias", (2, 8, 8, 4), policy="mixed_bfloat16",
        padding="same", use_bias=False,
    ),
    case(
        "bf16_k3_stride2_same_even", (2, 8, 8, 4), "keras", policy="mixed_bfloat16",
        strides=2, padding="same",
    ),
    case("bf16_k1_stride2", (2, 8, 8, 4), policy="mixed_bfloat16", kernel_size=1, strides=2),
    case(
        "bf16_first_k3_same_odd", (2, 4, 7, 7), policy="mixed_bfloat16",
        padding="same", **FIRST,
    ),
]

# Machine epsilon of the compute dtype. Where the two layers round apart, the
# arrays differ by at most two epsilons of the largest value: of the array,
# or, for the bias gradient (a sum of the cotangent), of the largest sum of
# its absolute values.
EPSILON = {"float32": 2.0**-23, "mixed_bfloat16": 2.0**-7}


def build_pair(shape, layer_args, policy, seed=0):
    """Ours and Keras' layer, built on `shape` with the same random weights."""
    keras.config.set_dtype_policy(policy)
    ours = Conv2D(**layer_args)
    reference = keras.layers.Conv2D(**layer_args)
    rng = np.random.default_rng(seed)
    for layer in (ours, reference):
        layer.build(shape)
    values = [rng.normal(0.0, 0.5, tuple(w.shape)).astype("float32") for w in reference.weights]
    for layer in (ours, reference):
        layer.set_weights(values)
    return ours, reference


def in_a_model(layer, shape):
    """`layer` alone in a built model, which calls it as a network does: JAX
    differentiates the model's `stateless_call`, and the layer's `__call__`
    opens Keras' autocast scope (a lone layer's `stateless_call` runs its
    `call` outside it: Keras' convolution of a bfloat16 input then computes
    in float32)."""
    model = keras.Sequential([layer])
    model.build(shape)
    return model


def spatial_shape(shape, layer_args):
    return shape[2:] if layer_args.get("data_format") == "channels_first" else shape[1:3]


def assert_same(actual, expected, exact, policy, what, scale=None):
    """Equal, or (not `exact`) two epsilons of `scale` apart at most;
    `scale` defaults to the largest value of `expected`."""
    if exact:
        np.testing.assert_array_equal(actual, expected, err_msg=what)
    else:
        scale = np.abs(expected).max() if scale is None else scale
        atol = 2.0 * EPSILON[policy] * scale
        np.testing.assert_allclose(actual, expected, rtol=0, atol=atol, err_msg=what)


@pytest.mark.parametrize("shape, layer_args, policy, path", CASES)
def test_same_as_keras_conv2d(shape, layer_args, policy, path):
    ours, reference = build_pair(shape, layer_args, policy)
    if BACKEND == "torch":  # The path the configuration is listed under.
        padding = convolution._torch_padding(ours, spatial_shape(shape, layer_args))
        assert (padding is None) == (path == "keras")
    rng = np.random.default_rng(1)
    x = rng.normal(size=shape).astype("float32")
    cotangent = rng.normal(size=reference.compute_output_shape(shape)).astype("float32")
    (out, dx, dw), (ref_out, ref_dx, ref_dw) = (
        gradient_step(in_a_model(layer, shape), x, cotangent, training=False)
        for layer in (ours, reference)
    )
    # `gradient_step` checked that the outputs are in the compute dtype.
    exact = BACKEND != "torch" or path == "keras" or not ours.use_bias
    assert out.shape == ref_out.shape == tuple(ours.compute_output_shape(shape))
    assert_same(out, ref_out, exact, policy, "outputs")
    assert_same(dx, ref_dx, exact, policy, "input gradient")
    assert len(dw) == len(ref_dw) == (2 if ours.use_bias else 1)
    assert_same(dw[0], ref_dw[0], exact, policy, "kernel gradient")
    if ours.use_bias:
        channel_axis = 1 if layer_args.get("data_format") == "channels_first" else -1
        sums = np.abs(np.moveaxis(cotangent, channel_axis, 0)).reshape(len(ref_dw[1]), -1)
        assert_same(dw[1], ref_dw[1], exact, policy, "bias gradient", sums.sum(1).max())
    assert np.abs(out).max() > 0 and np.abs(dw[0]).max() > 0


@torch_only
@pytest.mark.parametrize("shape, layer_args, policy, path", CASES)
def test_torch_output_is_contiguous(shape, layer_args, policy, path):
    """The output is contiguous in the layer's data format (NHWC for
    channels-last), on both paths: the next layer gets no strided tensor."""
    ours, _ = build_pair(shape, layer_args, policy)
    x = keras.ops.convert_to_tensor(np.ones(shape), dtype=ours.compute_dtype)
    assert ours(x).is_contiguous()


# Inputs laid out otherwise than NHWC-contiguous, as other layers give them.
STRIDED_INPUTS = [
    # Keras' torch pooling returns NHWC views of channels-first memory.
    ("pooled", lambda x: keras.layers.MaxPooling2D(3, 2, padding="same")(x)),
    ("pooled_one_channel", lambda x: keras.layers.MaxPooling2D(2)(x[..., :1])),
    ("sliced", lambda x: x[:, :, ::2]),
]


@torch_only
@pytest.mark.parametrize("use_bias", [False, True], ids=["no_bias", "bias"])
@pytest.mark.parametrize(
    "make_input", [m[1] for m in STRIDED_INPUTS], ids=[m[0] for m in STRIDED_INPUTS]
)
def test_torch_strided_input_gives_contiguous_output(make_input, use_bias):
    """Whatever the input's memory, the output is contiguous NHWC with
    Keras' numbers: torch's convolution takes the kernel's channels-last
    format for its output."""
    import torch

    x = make_input(torch.tensor(np.random.default_rng(5).normal(size=(2, 8, 8, 4)),
                                dtype=torch.float32))
    layer_args = dict(filters=6, kernel_size=3, padding="same", use_bias=use_bias)
    ours, reference = build_pair(tuple(x.shape), layer_args, "float32")
    outputs, expected = (keras.ops.convert_to_numpy(layer(x)) for layer in (ours, reference))
    assert ours(x).is_contiguous()
    assert_same(outputs, expected, not use_bias, "float32", "outputs")


# === torch: no copy of the input ===


def copy_counter(numel):
    """A `torch.utils._python_dispatch.TorchDispatchMode` that counts, in
    its `count`, the copies (`aten.copy_`, `aten.clone`, `aten._to_copy`)
    torch makes of tensors of `numel` elements while it is entered."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class CopyCounter(TorchDispatchMode):
        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            outputs = func(*args, **(kwargs or {}))
            copies = ("aten.copy_", "aten.clone", "aten._to_copy")
            if str(func).startswith(copies) and outputs.numel() == numel:
                self.count += 1
            return outputs

    return CopyCounter()


def input_copies(layer, shape):
    """`(forward, backward)`: how many input-sized copies one forward and
    backward pass of `layer` makes, on an input already in its compute dtype
    (as the layer before it gives it: `__call__` then casts nothing)."""
    import torch

    rng = np.random.default_rng(2)
    x = torch.tensor(rng.normal(size=shape), dtype=getattr(torch, layer.compute_dtype))
    x.requires_grad_(True)
    with copy_counter(x.numel()) as forward:
        outputs = layer(x)
    # Filters differ from input channels: no output-sized tensor is input-sized.
    assert outputs.numel() != x.numel()
    cotangent = torch.tensor(rng.normal(size=tuple(outputs.shape)), dtype=outputs.dtype)
    with copy_counter(x.numel()) as backward:
        torch.autograd.grad(
            torch.sum(outputs * cotangent), [x] + [v.value for v in layer.trainable_variables]
        )
    return forward.count, backward.count


COPY_CASES = [
    case("k3_same", (2, 8, 8, 3), filters=5, padding="same"),
    case("k3_same_no_bias", (2, 8, 8, 3), filters=5, padding="same", use_bias=False),
    case("k3_stride2_same_odd", (2, 7, 7, 3), filters=5, strides=2, padding="same"),
    case("k1_stride2", (2, 8, 8, 3), filters=5, kernel_size=1, strides=2),
    case("k7_valid", (2, 8, 8, 3), filters=5, kernel_size=7),
    case("relu", (2, 8, 8, 3), filters=5, padding="same", activation="relu"),
    case("batch_1", (1, 8, 8, 3), filters=5, padding="same"),
    case("bf16", (2, 8, 8, 3), policy="mixed_bfloat16", filters=5, padding="same"),
]


@torch_only
@pytest.mark.parametrize("shape, layer_args, policy, path", COPY_CASES)
def test_torch_fast_path_copies_no_input(shape, layer_args, policy, path):
    ours, reference = build_pair(shape, layer_args, policy)
    # The check sees Keras' copies: it can fail.
    keras_forward, _ = input_copies(reference, shape)
    assert keras_forward > 0
    assert input_copies(ours, shape) == (0, 0)


# === Variables, config and files: Keras' layer ===


def test_variables_and_config_are_keras_ones():
    args = dict(filters=6, kernel_size=3, strides=2, padding="same", groups=2,
                activation="relu", name="conv")
    ours, reference = Conv2D(**args), keras.layers.Conv2D(**args)
    for layer in (ours, reference):
        layer.build((None, 8, 8, 4))
    describe = lambda layer: [  # noqa: E731
        (v.path, tuple(v.shape), v.dtype, v.trainable) for v in layer.weights
    ]
    assert describe(ours) == describe(reference) == [
        ("conv/kernel", (3, 3, 2, 6), "float32", True), ("conv/bias", (6,), "float32", True),
    ]
    assert ours.get_config() == reference.get_config()
    assert isinstance(ours, keras.layers.Conv2D)
    assert keras.saving.get_registered_name(Conv2D) == "keras_preact>Conv2D"
    assert Conv2D.from_config(reference.get_config()).get_config() == reference.get_config()


FILE_INPUT = (8, 8, 4)


def conv_model(conv_class):
    """Three convolutions: on torch's fast path, on its fallback (a strided
    "same" one on an even input) and a strided "valid" one without a bias."""
    inputs = keras.Input(FILE_INPUT)
    x = conv_class(6, 3, padding="same", name="conv1")(inputs)
    x = conv_class(6, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = conv_class(4, 3, strides=2, use_bias=False, name="conv3")(x)
    return keras.Model(inputs, x)


def file_inputs():
    return np.random.default_rng(3).normal(size=(2,) + FILE_INPUT).astype("float32")


def random_weights(model, seed=4):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.5, w.shape).astype("float32") for w in model.weights])


@pytest.mark.parametrize(
    "saved_with, loaded_into",
    [(keras.layers.Conv2D, Conv2D), (Conv2D, keras.layers.Conv2D)],
    ids=["keras_to_ours", "ours_to_keras"],
)
def test_weights_files_load_across(saved_with, loaded_into, tmp_path):
    saved = conv_model(saved_with)
    random_weights(saved)
    path = str(tmp_path / "convs.weights.h5")
    saved.save_weights(path)
    loaded = conv_model(loaded_into)
    loaded.load_weights(path)
    assert [v.path for v in loaded.weights] == [v.path for v in saved.weights]
    for a, b in zip(loaded.get_weights(), saved.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = file_inputs()
    expected = keras.ops.convert_to_numpy(saved(x))
    # On torch the biased convolutions add their bias in another order.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x)), expected,
        rtol=0, atol=4.0 * EPSILON["float32"] * np.abs(expected).max(),
    )


def test_keras_file_round_trip(tmp_path):
    model = conv_model(Conv2D)
    random_weights(model)
    path = str(tmp_path / "convs.keras")
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        layers = json.loads(archive.read("config.json"))["config"]["layers"]
    saved = [layer for layer in layers if layer["class_name"] == "Conv2D"]
    assert [layer["registered_name"] for layer in saved] == ["keras_preact>Conv2D"] * 3
    restored = keras.saving.load_model(path)
    keras_model = conv_model(keras.layers.Conv2D)
    for name in ("conv1", "conv2", "conv3"):
        layer = restored.get_layer(name)
        assert type(layer) is Conv2D
        assert layer.get_config() == model.get_layer(name).get_config()
        assert set(layer.get_config()) == set(keras_model.get_layer(name).get_config())
    x = file_inputs()
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(restored(x)), keras.ops.convert_to_numpy(model(x))
    )


# === Bad input: Keras' errors ===


# Each: the shapes the layer is called on in turn; the last one is refused.
@pytest.mark.parametrize(
    "shapes, layer_args",
    [
        ([(2, 1, 1, 4)], dict(padding="valid")),  # A 3x3 kernel over a 1x1 image.
        ([(8, 8, 4)], dict(padding="same")),  # No batch axis.
        ([(2, 8, 8, 4), (2, 8, 8, 3)], dict(padding="same")),  # Other channels.
        ([(2, 8, 8, 3)], dict(padding="same", groups=2)),  # 3 channels, 2 groups.
    ],
    ids=["kernel_over_1x1", "rank_3", "channels", "groups"],
)
def test_bad_input_raises_keras_error(shapes, layer_args):
    messages = []
    for conv_class in (Conv2D, keras.layers.Conv2D):
        layer = conv_class(6, 3, name="conv", **layer_args)
        for shape in shapes[:-1]:
            layer(np.ones(shape, "float32"))
        with pytest.raises(ValueError) as error:
            layer(np.ones(shapes[-1], "float32"))
        messages.append(str(error.value))
    assert messages[0] == messages[1]
