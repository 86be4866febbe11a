"""keras_preact.layers.factories: initialization as in the authors' Torch code,
every kernel drawn on its own.

resnet-pre-act.lua (KaimingHe/resnet-1k-layers) and fb.resnet.torch: conv
weights `N(0, sqrt(2 / (k * k * out_channels)))`, BN gamma 1 and beta 0, the
classifier's weight left at Torch's `nn.Linear` default
`U(-1/sqrt(fan_in), 1/sqrt(fan_in))` and its bias zeroed.
"""

import itertools

import keras
import numpy as np
import pytest

import keras_preact
from keras_preact.layers import ResidualUnit
from keras_preact.layers.factories import fresh_initializer


def _numpy(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable))


def _kernels(layer):
    return {
        v.path: _numpy(v) for v in layer.weights if v.path.endswith("kernel")
    }


MODELS = {
    "cifar_basic_20": lambda: keras_preact.PreActResNet20(classes=100),
    "cifar_bottleneck_11": lambda: keras_preact.PreActResNet(
        11, block_type="bottleneck", classes=10
    ),
    "imagenet_basic": lambda: keras_preact.PreActResNet(
        layout="imagenet",
        block_type="basic",
        stage_units=(1, 1, 1, 1),
        base_width=16,
        classes=10,
        input_shape=(64, 64, 3),
    ),
    "gating_shortcuts": lambda: keras_preact.PreActResNet(
        14, shortcut="exclusive_gating", classes=10
    ),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_no_two_kernels_are_equal(name):
    kernels = _kernels(MODELS[name]())
    for (path_a, a), (path_b, b) in itertools.combinations(kernels.items(), 2):
        if a.shape == b.shape:
            assert not np.array_equal(a, b), f"{path_a} == {path_b}"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_conv_kernels_follow_he_normal_over_fan_out(name):
    model = MODELS[name]()
    checked = 0
    for layer in model._flatten_layers():
        if not isinstance(layer, keras.layers.Conv2D) or layer.name == "gate":
            continue
        kernel = _numpy(layer.kernel)
        if kernel.size < 2000:  # too few draws for a 10% bound on the std
            continue
        kh, kw, _, out_channels = kernel.shape
        expected = np.sqrt(2.0 / (kh * kw * out_channels))
        assert abs(kernel.mean()) < 0.1 * expected, layer.path
        np.testing.assert_allclose(kernel.std(), expected, rtol=0.1, err_msg=layer.path)
        checked += 1
    assert checked >= 3


def test_batch_norm_and_classifier_follow_the_torch_code():
    model = keras_preact.PreActResNet20(classes=100)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            np.testing.assert_array_equal(_numpy(layer.gamma), 1.0)
            np.testing.assert_array_equal(_numpy(layer.beta), 0.0)
    dense = model.get_layer("predictions")
    kernel = _numpy(dense.kernel)
    limit = 1.0 / np.sqrt(kernel.shape[0])
    assert np.abs(kernel).max() <= limit
    # Uniform on [-limit, limit]: std limit / sqrt(3).
    np.testing.assert_allclose(kernel.std(), limit / np.sqrt(3), rtol=0.05)
    np.testing.assert_array_equal(_numpy(dense.bias), 0.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(filters=8),
        dict(filters=4, bottleneck=True, strides=2),
        dict(filters=8, shortcut="shortcut_only_gating"),
        dict(filters=8, unit_ordering="original"),
        dict(
            filters=8,
            kernel_initializer=keras.initializers.HeNormal(seed=7),
        ),
        dict(
            filters=8,
            kernel_initializer=keras.initializers.HeNormal(
                seed=keras.random.SeedGenerator(3)
            ),
        ),
    ],
    ids=[
        "basic",
        "bottleneck_projection",
        "gating",
        "original",
        "seeded",
        "seed_generator",
    ],
)
def test_a_standalone_unit_has_independent_kernels(kwargs):
    unit = ResidualUnit(**kwargs)
    unit.build((None, 8, 8, 8))
    kernels = list(_kernels(unit).values())
    assert len(kernels) >= 2
    for a, b in itertools.combinations(kernels, 2):
        if a.shape == b.shape:
            assert not np.array_equal(a, b)


def _weights(seed):
    keras.utils.set_random_seed(seed)
    return [_numpy(v) for v in keras_preact.PreActResNet20(classes=10).weights]


def test_set_random_seed_makes_the_model_reproducible():
    first, again, other = _weights(3), _weights(3), _weights(4)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert any(
        not np.array_equal(a, b) for a, b in zip(first, other) if a.std() > 0
    )


def test_seeded_initializer_is_salted_per_layer_and_stable():
    seeded = keras.initializers.HeNormal(seed=11)
    a = fresh_initializer(seeded, "stage1_unit1/conv1")((3, 3, 4, 4))
    b = fresh_initializer(seeded, "stage1_unit2/conv1")((3, 3, 4, 4))
    a_again = fresh_initializer(seeded, "stage1_unit1/conv1")((3, 3, 4, 4))
    assert not np.array_equal(_numpy(a), _numpy(b))
    np.testing.assert_array_equal(_numpy(a), _numpy(a_again))


def test_unit_config_keeps_the_initializer_it_was_given():
    unit = ResidualUnit(8, kernel_initializer=keras.initializers.HeNormal(seed=5))
    config = unit.get_config()["kernel_initializer"]
    assert config["class_name"] == "HeNormal"
    assert config["config"]["seed"] == 5
