"""Sparse cross-entropy that refuses class ids outside the model's classes.

Backends differ on such a label: TensorFlow's and torch's CPU kernels raise,
their GPU kernels give NaN or a device-side assert, and JAX's one-hot turns
it into a row of zeros and a finite, wrong loss. The check here runs inside
the compiled training step on every backend, before the cross-entropy.
"""

import keras
import numpy as np

from keras_preact.data.labels import assert_labels
from keras_preact.data.labels import out_of_range_template


@keras.saving.register_keras_serializable(package="keras_preact")
class CheckedSparseCategoricalCrossentropy(keras.losses.SparseCategoricalCrossentropy):
    """`keras.losses.SparseCategoricalCrossentropy` that checks the labels.

    The same loss, gradient and configuration, with one addition: a label
    outside `[0, num_classes)` (the size of `y_pred`'s class axis; the
    `ignore_class` label is allowed) raises an error that names it, on every
    backend, also inside a compiled step. JAX: a host callback, reached only
    through a `lax.cond` branch taken when a label is out of range. TensorFlow:
    a graph assertion (none under XLA, `jit_compile=True`, where no op can
    raise and the cross-entropy is NaN instead). torch: a Python check, a
    graph break under `torch.compile`.

    Args:
        As `keras.losses.SparseCategoricalCrossentropy`.

    Raises (when called):
        ValueError: a label out of range (torch, and the numpy backend).
        jax.errors.JaxRuntimeError: the same, from JAX (its message holds the
            `ValueError`'s).
        tf.errors.InvalidArgumentError: the same, from TensorFlow.

    Example:

    >>> model.compile("sgd", CheckedSparseCategoricalCrossentropy(from_logits=True))
    >>> model.fit(x, np.array([0, 1, 2, 3]))  # a model with 3 classes, on torch
    Traceback (most recent call last):
    ...
    ValueError: Label 3 is outside [0, 3) for a model with 3 classes.
    """

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 axis=-1, name="sparse_categorical_crossentropy", dtype=None):
        super().__init__(from_logits=from_logits, ignore_class=ignore_class,
                         reduction=reduction, axis=axis, name=name, dtype=dtype)
        self.axis = axis

    def call(self, y_true, y_pred):
        y_true = check_class_ids(y_true, y_pred.shape[self.axis], self.ignore_class)
        return super().call(y_true, y_pred)


def check_class_ids(labels, num_classes, ignore_class=None):
    """`labels`, checked against `[0, num_classes)` on the current backend.

    Args:
        labels: tensor of class ids.
        num_classes: int, or None (no check).
        ignore_class: int or None. A label value that is always valid.

    Returns:
        `labels` (TensorFlow: with a control dependency on the check).

    Raises:
        As `CheckedSparseCategoricalCrossentropy`.
    """
    if num_classes is None:  # A class axis of unknown size: nothing to check against.
        return labels
    owner = f"a model with {num_classes} classes"
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return assert_labels(labels, num_classes, owner, ignore_class=ignore_class)
    template = out_of_range_template(num_classes, owner)

    def raise_first_bad(labels, valid):
        raise ValueError(template.format(np.asarray(labels)[~np.asarray(valid)][0]))

    ids = keras.ops.cast(labels, "int32")  # As the cross-entropy reads them.
    valid = keras.ops.logical_and(ids >= 0, ids < num_classes)
    if ignore_class is not None:
        valid = keras.ops.logical_or(valid, ids == ignore_class)
    if backend == "jax":
        import jax

        jax.lax.cond(keras.ops.all(valid), lambda *_: None,
                     lambda *args: jax.debug.callback(raise_first_bad, *args), ids, valid)
    elif not bool(keras.ops.all(valid)):  # torch.compile: a graph break.
        raise_first_bad(keras.ops.convert_to_numpy(ids), keras.ops.convert_to_numpy(valid))
    return labels
