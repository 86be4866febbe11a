"""keras_preact.models.weights: the builder's `weights=` argument loads a file;
`copy_weights` copies weights layer by layer by name."""

import warnings

import keras
import numpy as np
import pytest

from keras_preact.models.weights import copy_weights

from _checks import images
from _checks import numpy
from _checks import tiny


def test_weights_argument_loads_a_file(tmp_path):
    model = tiny()
    path = tmp_path / "tiny.weights.h5"
    model.save_weights(path)
    loaded = tiny(weights=str(path))
    x = images(model)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="tiny.weights.h5"):
            tiny("cifar_bottleneck", weights=str(path))
    # The ValueError alone, without Keras' "Skipping nested container" warnings.
    assert [str(w.message) for w in caught if issubclass(w.category, UserWarning)] == []


@pytest.mark.parametrize("weights", ["resnet50", "imagenet21k"])
def test_an_unknown_name_lists_the_pretrained_choices(weights):
    with pytest.raises(ValueError, match="keras_preact.pretrained.CHECKPOINTS") as info:
        tiny(weights=weights)
    assert "'cifar100'" in str(info.value) and repr(weights) in str(info.value)


def test_copy_weights_fills_every_layer_of_a_headless_model():
    model = tiny()
    keras.utils.set_random_seed(7)
    headless = tiny(include_top=False, pooling="avg")
    copy_weights(model, headless, skip=("predictions",))
    features = keras.Model(model.input, model.get_layer("avg_pool").output)
    x = images(model)
    np.testing.assert_array_equal(numpy([headless(x)]), numpy([features(x)]))


def test_copy_weights_refuses_unmatched_layers():
    model, headless = tiny(), tiny(include_top=False)
    with pytest.raises(ValueError, match=r"left unused: \['predictions'\]"):
        copy_weights(model, headless)
    with pytest.raises(ValueError, match=r"without a namesake in 'preact_resnet8': \['predictions'\]"):
        copy_weights(headless, model)
    with pytest.raises(ValueError, match="stem_conv"):
        copy_weights(tiny(base_width=8), model)
