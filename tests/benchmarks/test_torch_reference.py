"""benchmarks/torch_reference.py: the PyTorch network the benchmarks compare
with is keras_preact's, parameter for parameter and MAC for MAC."""

import numpy as np
import pytest

import keras_preact

from _checks import load_benchmark


@pytest.mark.parametrize("depth, layout, classes, size, params, gmacs", [
    (20, "cifar", 10, 32, 272_282, 0.041),
    (50, "imagenet", 1000, 224, 25_549_352, 4.089),  # timm's resnetv2_50 count too
])
def test_torch_reference_is_keras_preacts_network(depth, layout, classes, size, params,
                                                  gmacs):
    pytest.importorskip("torch")
    _common = load_benchmark("_common")
    torch_reference = load_benchmark("torch_reference")

    torch_model, implementation = torch_reference.build_model(depth, layout, classes,
                                                              impl="reference")
    model = keras_preact.PreActResNet(depth, layout=layout, classes=classes)
    assert implementation == "benchmarks/torch_reference.py"
    assert sum(p.numel() for p in torch_model.parameters()) == params
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == params
    assert _common.torch_gmacs_per_image(torch_model, size) == gmacs
    assert _common.keras_gmacs_per_image(model) == gmacs
    with pytest.raises(ValueError, match="Invalid CIFAR depth=21"):
        torch_reference.PreActResNet(21, layout="cifar")
