"""keras_preact.models.features: the feature extractor's stage outputs."""

import keras
import pytest

import keras_preact
from keras_preact.models import batch_norm_layers

from _checks import images
from _checks import tiny


@pytest.mark.parametrize(
    "config, shapes",
    [
        ("imagenet", [(2, 16, 16, 16), (2, 8, 8, 32), (2, 4, 4, 64), (2, 2, 2, 128)]),
        ("cifar_basic", [(2, 16, 16, 4), (2, 8, 8, 8), (2, 4, 4, 16)]),
    ],
)
def test_feature_extractor(config, shapes):
    model = tiny(config, include_top=False)
    out = keras_preact.feature_extractor(model).predict(images(model), verbose=0)
    assert sorted(out) == [f"stage{s}" for s in range(1, len(shapes) + 1)]
    assert [out[f"stage{s}"].shape for s in range(1, len(shapes) + 1)] == shapes


@pytest.mark.parametrize("config, kwargs, count", [
    # 3 basic units: 2 BNs each, and the final one.
    ("cifar_basic", {}, 2 * 3 + 1),
    # 3 bottleneck units: 3 each, and the final one.
    ("cifar_bottleneck", {}, 3 * 3 + 1),
    # The stem's, 4 bottleneck units (the first without its pre-activation
    # unless asked), the final one.
    ("imagenet", {}, 1 + 3 * 4 - 1 + 1),
    ("imagenet", {"first_unit_preactivation": True}, 1 + 3 * 4 + 1),
    # The stem's, 2 per unit, one after each of the 2 projections.
    ("cifar_basic", {"unit_ordering": "original"}, 1 + 2 * 3 + 2),
    ("cifar_basic", {"unit_ordering": "bn_after_addition"}, 1 + 2 * 3 + 2),
])
def test_batch_norm_layers(config, kwargs, count):
    model = tiny(config, **kwargs)
    found = batch_norm_layers(model)
    assert len(found) == count
    # Every BN of the model (Keras' own recursive walk), each once, and in
    # a model around it too.
    every = [layer for layer in model._flatten_layers()
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert sorted(map(id, found)) == sorted(map(id, every))
    wrapped = keras.Sequential([model, keras.layers.Dense(3)])
    assert [id(layer) for layer in batch_norm_layers(wrapped)] == list(map(id, found))
