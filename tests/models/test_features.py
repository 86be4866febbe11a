"""keras_preact.models.features: the feature extractor's stage outputs."""

import pytest

import keras_preact

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
