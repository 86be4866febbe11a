"""keras_preact.pretrained.convert: the published checkpoints, converted exactly.

Each family's source model is built in its own package with random weights
and random batch-norm statistics, negative gammas included
(`tests/pretrained/sources.py`), converted, and compared with the source on
the same images.
"""

import re

import keras
import numpy as np
import pytest

from keras_preact.export import export_saved_model
from keras_preact.pretrained import convert
from keras_preact.pretrained import get_checkpoint

from _checks import cifar_test_images
from _checks import needs_export_backend
from _checks import run_checker
from pretrained.sources import SOURCES
from pretrained.sources import build_source
from pretrained.sources import installed
from pretrained.sources import source_logits
from pretrained.sources import state_dict

CIFAR10 = "pytorchcv/preresnet20_cifar10"
CIFAR100 = "pytorchcv/preresnet20_cifar100"
RESNETV2_18 = "timm/resnetv2_18.ra4_e3600_r224_in1k"
RESNETV2_50 = "timm/resnetv2_50.a1h_in1k"
LOGITS = dict(input_normalization=None, classifier_activation=None)

# One row per layout a source publishes, and one channels_first model (its
# kernels keep the channels_last layout).
FAMILIES = [
    (CIFAR10, {}),  # basic; the first unit's identity shortcut is raw
    ("pytorchcv/preresnet56_cifar100", {}),  # 100 classes
    ("pytorchcv/preresnet164bn_cifar100", {}),  # bottleneck, stride on the 3x3
    ("pytorchcv/preresnet18", {}),  # activated stem, first unit pre-activates again
    ("pytorchcv/preresnet50", {}),  # stride on the 1x1
    ("pytorchcv/preresnet50b", {}),  # stride on the 3x3
    (RESNETV2_18, {}),  # bare stem, -inf pool padding, raw pooled shortcut
    (RESNETV2_50, {}),  # the 1x1-conv head
    (CIFAR10, {"data_format": "channels_first"}),
]


def _source(name, seed=0):
    if not installed(name):
        pytest.skip(f"the source package of {name} is not installed")
    return build_source(name, seed)


def _images(name, n=2, seed=0):
    """Normalized NHWC images at the size the tests use for `name`."""
    size = SOURCES[name].image_size
    return np.random.default_rng(seed).normal(size=(n, size, size, 3)).astype("float32")


def _convert(weights, name, **kwargs):
    """`convert` at the size the tests use for `name`."""
    size = SOURCES[name].image_size
    first = kwargs.get("data_format") == "channels_first"
    shape = (3, size, size) if first else (size, size, 3)
    return convert(weights, name, input_shape=shape, **kwargs)


def _predict(model, images):
    """`model` on NHWC `images`, transposed for a channels_first model."""
    if model.inputs[0].shape[1] == 3:
        images = images.transpose(0, 3, 1, 2)
    return keras.ops.convert_to_numpy(model(images, training=False))


def _assert_equal_to_source(actual, expected):
    scale = np.abs(expected).max()
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("name,kwargs", FAMILIES,
                         ids=[n + "".join(f"-{v}" for v in k.values()) for n, k in FAMILIES])
def test_logits_equal_the_source(name, kwargs):
    source = _source(name)
    images = _images(name)
    model = _convert(state_dict(source), name, **LOGITS, **kwargs)
    _assert_equal_to_source(_predict(model, images), source_logits(source, images))


@pytest.mark.parametrize("name", [CIFAR10, RESNETV2_50])
def test_default_conversion_takes_pixels(name):
    """The model carries the checkpoint's statistics: 0-255 pixels in,
    the source's probabilities on the normalized pixels out."""
    source = _source(name)
    statistics = get_checkpoint(name).statistics
    size = SOURCES[name].image_size
    pixels = np.random.default_rng(1).uniform(0, 255, (2, size, size, 3)).astype("float32")
    normalized = (pixels - np.float32(statistics.mean)) / np.float32(statistics.std)
    model = _convert(state_dict(source), name)
    probabilities = _predict(model, pixels)
    logits = source_logits(source, normalized)
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-4, atol=1e-6)


def _source_features(source, images):
    """The source's globally pooled features (before the classifier)."""
    import torch

    x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        if hasattr(source, "forward_features"):  # timm
            features = source.forward_head(source.forward_features(x), pre_logits=True)
        else:  # pytorchcv: `features` ends in the global pooling
            features = source.features(x).flatten(1)
    return features.numpy()


@pytest.mark.parametrize("name", [CIFAR10, RESNETV2_18])
def test_backbone_features_equal_the_source(name):
    source = _source(name)
    images = _images(name)
    model = _convert(state_dict(source), name, input_normalization=None,
                     include_top=False, pooling="avg")
    _assert_equal_to_source(_predict(model, images), _source_features(source, images))


def test_torch_tensors_are_accepted():
    """A torch state dict as it is, parameters that require gradients too."""
    source = _source(CIFAR10)
    images = _images(CIFAR10)
    model = _convert(source.state_dict(keep_vars=True), CIFAR10, **LOGITS)
    _assert_equal_to_source(_predict(model, images), source_logits(source, images))


def test_bfloat16_torch_tensors_are_accepted():
    import torch

    source = _source(CIFAR10)
    weights = {k: v.to(torch.bfloat16) if v.is_floating_point() else v
               for k, v in source.state_dict().items()}
    model = _convert(weights, CIFAR10, **LOGITS)
    rounded = {k: v.float().numpy() for k, v in weights.items()}
    for layer, key in (("stem_conv", "features.init_block.weight"),):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(model.get_layer(layer).kernel),
            rounded[key].transpose(2, 3, 1, 0))


def test_state_dict_without_batch_norm_counters_is_accepted():
    """Only the counters are optional: files saved without them convert."""
    source = _source(CIFAR10)
    images = _images(CIFAR10)
    weights = {k: v for k, v in state_dict(source).items()
               if not k.endswith("num_batches_tracked")}
    model = _convert(weights, CIFAR10, **LOGITS)
    _assert_equal_to_source(_predict(model, images), source_logits(source, images))


def _weights(name):
    return state_dict(_source(name))


def _without(weights, key):
    return {k: v for k, v in weights.items() if k != key}


# (what, the checkpoint converted to, its state dict, builder arguments, the
# first mismatch the message names).
REFUSALS = [
    ("deeper", CIFAR10, lambda: _weights("pytorchcv/preresnet56_cifar10"), {},
     "unexpected tensor 'features.stage1.unit4.body.conv1.bn.weight'"),
    ("shallower", "pytorchcv/preresnet56_cifar10", lambda: _weights(CIFAR10), {},
     "missing tensor 'features.stage1.unit4.body.conv1.bn.weight' of shape (16,)"),
    ("missing", CIFAR10,
     lambda: _without(_weights(CIFAR10), "features.stage2.unit1.identity_conv.weight"), {},
     "missing tensor 'features.stage2.unit1.identity_conv.weight' of shape (32, 16, 1, 1)"),
    ("extra", CIFAR10, lambda: {**_weights(CIFAR10), "output.scale": np.ones(10)}, {},
     "unexpected tensor 'output.scale'"),
    ("stray counter", CIFAR10,
     lambda: {**_weights(CIFAR10), "output.num_batches_tracked": np.zeros((), "int64")}, {},
     "unexpected tensor 'output.num_batches_tracked'"),
    ("shape", CIFAR10,
     lambda: {**_weights(CIFAR10), "features.stage1.unit2.body.conv2.conv.weight":
              np.zeros((16, 16, 1, 1), "float32")}, {},
     "tensor 'features.stage1.unit2.body.conv2.conv.weight' has shape (16, 16, 1, 1), "
     "expected (16, 16, 3, 3)"),
    ("classes", CIFAR10, lambda: _weights(CIFAR100), {},
     "tensor 'output.weight' has shape (100, 64), expected (10, 64)"),
    ("classes, checked without the top", CIFAR10, lambda: _weights(CIFAR100),
     {"include_top": False}, "tensor 'output.weight' has shape (100, 64), expected (10, 64)"),
    ("source", "pytorchcv/preresnet18", lambda: _weights(RESNETV2_18), {},
     "missing tensor 'features.init_block.conv.weight' of shape (64, 3, 7, 7)"),
]


@pytest.mark.parametrize("what,name,weights,kwargs,first", REFUSALS,
                         ids=[row[0] for row in REFUSALS])
def test_another_network_is_refused_naming_the_first_mismatch(
    what, name, weights, kwargs, first
):
    with pytest.raises(ValueError, match=re.escape(f"network of {name!r}")) as info:
        _convert(weights(), name, **kwargs)
    assert first in str(info.value)


@pytest.mark.parametrize("kwargs,match", [
    ({"depth": 56}, "Invalid depth=56"),
    ({"first_unit_shortcut": "preactivated"}, "Invalid first_unit_shortcut"),
    ({"classes": 100}, "Invalid classes=100"),
    ({"weights": "cifar10"}, "convert takes the weights from state_dict"),
])
def test_contradicting_builder_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        convert(_weights(CIFAR10), CIFAR10, **kwargs)


@needs_export_backend
def test_served_top5_is_the_source_top5(tmp_path):
    """Converted, exported for TF Serving, called through its SignatureDef
    in a fresh TensorFlow process: the source's top-5 on real CIFAR-100 test
    images (random ones without the shared data)."""
    source = _source(CIFAR100)
    pixels = cifar_test_images(8)
    statistics = get_checkpoint(CIFAR100).statistics
    normalized = (pixels.astype("float32") - np.float32(statistics.mean)) / np.float32(
        statistics.std)
    expected = np.argsort(-source_logits(source, normalized), axis=1)[:, :5]
    model = convert(state_dict(source), CIFAR100)
    path = export_saved_model(model, tmp_path / "export", "converted")
    out, _, _ = run_checker(tmp_path, path, {"u8": pixels}, {},
                            [["serving_uint8", "u8", [len(pixels)]]])
    np.testing.assert_array_equal(out[f"v1/serving_uint8/u8/{len(pixels)}/classes"], expected)
