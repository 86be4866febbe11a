"""Loading a weights file into a freshly built model, with clear errors."""

import os
import warnings


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
            f"Invalid weights={weights!r}. Expected None or the path to a "
            "weights file (.weights.h5 or .keras) saved from the same "
            "architecture. No pretrained weights are downloaded."
        )
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise ValueError(
            f"Invalid weights={path!r}: no such file. Expected None or the "
            "path to a .weights.h5 or .keras file saved from the same "
            "architecture (no pretrained weights are downloaded)."
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
