"""keras_preact.models.variants: the paper's named networks, their parameter
counts (pinned to ../shared/reference/PAPER.md) and depth 1001."""

import inspect

import numpy as np
import pytest

import keras
import keras_preact
from keras_preact.models import variants
from keras_preact.models.layouts import resolve_layout

from _checks import assert_all_close
from _checks import numpy
from _checks import train_one_step
from _checks import trainable_count


# Trainable parameters, from ../shared/reference/PAPER.md.
PAPER_COUNTS = [
    ("PreActResNet20", 100, 278_132),
    ("PreActResNet56", 100, 861_428),
    ("PreActResNet110", 100, 1_736_372),
    ("PreActResNet164", 100, 1_726_388),
    ("PreActResNet1001", 100, 10_350_836),
    ("PreActResNet164", 10, 1_703_258),
    ("PreActResNet1001", 10, 10_327_706),
    ("PreActResNet18", 1000, 11_687_720),
    ("PreActResNet34", 1000, 21_795_880),
    ("PreActResNet50", 1000, 25_549_352),
    ("PreActResNet101", 1000, 44_541_480),
    ("PreActResNet152", 1000, 60_185_128),
    ("PreActResNet200", 1000, 64_666_152),
]


# (name, depth, layout, units per stage): the paper's Tables 3-5.
VARIANTS = [
    ("PreActResNet20", 20, "cifar", (3, 3, 3)),
    ("PreActResNet32", 32, "cifar", (5, 5, 5)),
    ("PreActResNet44", 44, "cifar", (7, 7, 7)),
    ("PreActResNet56", 56, "cifar", (9, 9, 9)),
    ("PreActResNet110", 110, "cifar", (18, 18, 18)),
    ("PreActResNet164", 164, "cifar", (18, 18, 18)),
    ("PreActResNet1001", 1001, "cifar", (111, 111, 111)),
    ("PreActResNet18", 18, "imagenet", (2, 2, 2, 2)),
    ("PreActResNet34", 34, "imagenet", (3, 4, 6, 3)),
    ("PreActResNet50", 50, "imagenet", (3, 4, 6, 3)),
    ("PreActResNet101", 101, "imagenet", (3, 4, 23, 3)),
    ("PreActResNet152", 152, "imagenet", (3, 8, 36, 3)),
    ("PreActResNet200", 200, "imagenet", (3, 24, 36, 3)),
]


KERAS_APPLICATIONS_ARGS = [
    "include_top", "weights", "input_tensor", "input_shape", "pooling",
    "classes", "classifier_activation", "name", "kwargs",
]


@pytest.mark.parametrize("variant, classes, expected", PAPER_COUNTS)
def test_parameter_counts_match_the_paper(variant, classes, expected):
    model = getattr(keras_preact, variant)(classes=classes)
    assert trainable_count(model) == expected


@pytest.mark.parametrize("name, depth, layout, stage_units", VARIANTS)
def test_named_variants_are_real_functions(name, depth, layout, stage_units):
    variant = getattr(keras_preact, name)
    assert inspect.isfunction(variant) and variant.__qualname__ == name
    assert inspect.getsource(variant).startswith(f"def {name}(")
    parameters = inspect.signature(variant).parameters
    assert list(parameters) == KERAS_APPLICATIONS_ARGS
    # classes=None: the layout's, or a checkpoint's with weights=.
    assert parameters["classes"].default is None
    assert parameters["weights"].default is None
    # Its own summary, then the one shared docstring of its layout.
    shared = variants.CIFAR_DOC if layout == "cifar" else variants.IMAGENET_DOC
    summary, _ = variant.__doc__.split("\n", 1)
    assert f"ResNet-{depth}:" in summary and variant.__doc__.endswith(shared)
    net = resolve_layout(layout, depth)
    assert tuple(stage.units for stage in net.stages) == stage_units


@pytest.mark.parametrize("name, depth", [("PreActResNet32", 32), ("PreActResNet44", 44)])
def test_variants_without_paper_counts_build(name, depth):
    model = getattr(keras_preact, name)(name="net")
    # 6n+2 basic: 2 convs of 3x3 per unit.
    assert len(keras_preact.residual_units(model)) == (depth - 2) // 2
    # classes=None: the CIFAR layout's 10.
    assert model.output_shape == (None, 10) and model.name == "net"


# === Depth 1001 ===


@pytest.mark.slow
def test_preact_resnet1001_builds_saves_loads_and_trains(tmp_path):
    model = keras_preact.PreActResNet1001(classes=10)
    assert len(keras_preact.residual_units(model)) == 333
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    # One eager step checks the whole graph's gradients: XLA compiling the
    # 1001-layer step on CPU needs over 20 GB (the JAX process was OOM-killed
    # on our 24 GB machine), and tracing it into a TensorFlow graph takes
    # longer than running it.
    loss = train_one_step(model, x, np.array([1, 2]), run_eagerly=True)
    assert np.isfinite(loss)
    path = tmp_path / "preact1001.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert [w.path for w in restored.weights] == [w.path for w in model.weights]
    assert_all_close(numpy(restored.weights), numpy(model.weights), dict(rtol=0, atol=0),
                     "PreActResNet1001 weights after .keras save and load")
    # Training-mode outputs (batch statistics): in inference mode the moving
    # statistics, still near their initial mean 0 and variance 1, normalize
    # nothing, and the sum of 333 units overflows to inf/NaN, which NumPy
    # compares equal to itself and which would prove nothing.
    expected = keras.ops.convert_to_numpy(model(x, training=True))
    restored_outputs = keras.ops.convert_to_numpy(restored(x, training=True))
    assert np.isfinite(expected).all()
    np.testing.assert_array_equal(restored_outputs, expected)
