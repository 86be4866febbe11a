"""tf.data input pipelines for CIFAR and ImageNet (needs TensorFlow).

The pipelines build with TensorFlow whatever `KERAS_BACKEND` is; their
batches feed `model.fit` on the TensorFlow, JAX and PyTorch backends.
"""

from keras_preact.data.cifar import load_cifar
from keras_preact.data.cifar_pipeline import cifar_dataset
from keras_preact.data.imagenet import SkipCounter
from keras_preact.data.imagenet import imagenet_dataset
from keras_preact.data.safe_pickle import UnsafePickleError
from keras_preact.data.synthetic import synthetic_dataset

__all__ = [
    "SkipCounter",
    "UnsafePickleError",
    "cifar_dataset",
    "imagenet_dataset",
    "load_cifar",
    "synthetic_dataset",
]
