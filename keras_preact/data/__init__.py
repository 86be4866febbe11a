"""Input pipelines for CIFAR and ImageNet.

`CIFARBatches` (numpy, a `keras.utils.PyDataset`) and `load_cifar` need no
TensorFlow. The tf.data pipelines (`cifar_dataset`, `imagenet_dataset`,
`synthetic_dataset`, `SkipCounter`) build with TensorFlow whatever
`KERAS_BACKEND` is; TensorFlow is imported when one of them is first used,
so this package imports on machines without it (and then the first use
raises a `ModuleNotFoundError` that gives the install line). All of them feed
`model.fit` on the TensorFlow, JAX and PyTorch backends.
"""

import importlib

from keras_preact.data.array_pipeline import CIFARBatches
from keras_preact.data.cifar import load_cifar
from keras_preact.data.safe_pickle import UnsafePickleError
from keras_preact.install_hints import import_tensorflow

# Names whose modules import TensorFlow: loaded on first access (PEP 562).
_TF_NAMES = {
    "SkipCounter": "keras_preact.data.imagenet",
    "cifar_dataset": "keras_preact.data.cifar_pipeline",
    "imagenet_dataset": "keras_preact.data.imagenet",
    "synthetic_dataset": "keras_preact.data.synthetic",
}


def __getattr__(name):
    if name in _TF_NAMES:
        import_tensorflow(f"keras_preact.data.{name}")
        value = getattr(importlib.import_module(_TF_NAMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_TF_NAMES))


__all__ = [
    "CIFARBatches",
    "SkipCounter",
    "UnsafePickleError",
    "cifar_dataset",
    "imagenet_dataset",
    "load_cifar",
    "synthetic_dataset",
]
