"""keras_preact.models.weights: the builder's `weights=` argument loads a file."""

import warnings

import numpy as np
import pytest

from _checks import images
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
