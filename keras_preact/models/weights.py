"""Weights into a freshly built model, with clear errors: from a file saved
by keras_preact, or layer by layer from another model."""

import os
import warnings

PRETRAINED_NAMES = (
    "a checkpoint name of keras_preact.pretrained.CHECKPOINTS (such as "
    "'pytorchcv/preresnet164bn_cifar100'), a short name ('cifar10', "
    "'cifar100', 'imagenet')"
)


def load_weights_file(model, weights):
    """Loads `weights` (a `.weights.h5` or `.keras` path) into `model`.

    Args:
        model: the built `keras.Model`.
        weights: path to a file saved from the same architecture.

    Raises:
        ValueError: if `weights` is not a path, does not exist, or does not
            fit the architecture.
    """
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            f"Invalid weights={weights!r}. Expected None, {PRETRAINED_NAMES}, "
            "or the path to a weights file (.weights.h5 or .keras) saved "
            "from the same architecture."
        )
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise ValueError(
            f"Invalid weights={path!r}: no such file. Expected None, "
            f"{PRETRAINED_NAMES}, or the path to a .weights.h5 or .keras file "
            "saved from the same architecture."
        )
    if not path.endswith((".weights.h5", ".keras")):
        raise ValueError(
            f"Invalid weights={path!r}. Expected a file ending in "
            "'.weights.h5' or '.keras'."
        )
    # Keras warns about the parts of a mismatched file it skips before it
    # raises; the ValueError below says it all, so those warnings are shown
    # only when the load succeeds.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except Exception as error:  # Keras raises several types for a mismatch.
            failure = error
        else:
            failure = None
    if failure is not None:
        raise ValueError(
            f"Could not load weights={path!r} into {model.name!r} "
            f"({len(model.weights)} weight tensors). The file must be saved "
            "from the same architecture (depth, layout, widths, classes, "
            f"include_top). Keras said: {failure}"
        ) from failure
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category,
                               warning.filename, warning.lineno)


def copy_weights(source, target, skip=()):
    """Sets every layer of `target` that has weights to the weights of the
    layer of the same name in `source`.

    Args:
        source: a `keras.Model`.
        target: a `keras.Model` whose layers with weights all have a
            namesake of the same shapes in `source`.
        skip: names of `source` layers that `target` may lack (a head).

    Raises:
        ValueError: a `target` layer with weights that `source` lacks, a
            `source` layer with weights, not in `skip`, that `target`
            lacks (both listed), or weights of other shapes.
    """
    sources = {layer.name: layer for layer in source.layers if layer.weights}
    targets = {layer.name: layer for layer in target.layers if layer.weights}
    missing = sorted(targets.keys() - sources.keys())
    unused = sorted(sources.keys() - targets.keys() - set(skip))
    if missing or unused:
        raise ValueError(
            f"Cannot copy the weights of {source.name!r} into "
            f"{target.name!r}: layers without a namesake in {source.name!r}: "
            f"{missing}; layers of {source.name!r} left unused: {unused}."
        )
    for name, layer in targets.items():
        layer.set_weights(sources[name].get_weights())
