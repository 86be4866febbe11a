"""A restricted unpickler for the official CIFAR python archives.

The CIFAR "python version" archives store each batch as a pickle of a dict
of numpy arrays and lists. Unpickling runs arbitrary code named by the
file, so `safe_loads` only resolves the handful of globals a numpy array
needs and refuses everything else (e.g. `os.system`) *before* calling it.
"""

import contextlib
import importlib
import io
import pickle

# (module, name) pairs that unpickling a dict of numpy arrays and plain
# containers needs. Python 2 pickles (the official files) reference
# `numpy.core.multiarray`; NumPy 2 writes `numpy._core.*`.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    # Python 3 pickles with protocol < 3 encode `bytes` as
    # _codecs.encode(str, "latin1").
    ("_codecs", "encode"),
}


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """Raised when a pickle references a global outside the allow-list."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source):
        super().__init__(file, encoding="bytes")
        self._source = source

    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"Refusing to unpickle {self._source}: it references "
                f"{module}.{name}, which is not needed for numpy arrays. "
                f"Allowed globals: {sorted('.'.join(g) for g in _ALLOWED_GLOBALS)}."
            )
        if module.startswith("numpy.core"):
            # Resolve the NumPy 1 names on NumPy 2 without the deprecation
            # shim (and on NumPy 1 the `_core` import fails, keep `core`).
            with contextlib.suppress(ImportError):
                numpy_2 = module.replace("numpy.core", "numpy._core")
                return getattr(importlib.import_module(numpy_2), name)
        return getattr(importlib.import_module(module), name)

    def persistent_load(self, pid):
        message = f"Refusing to unpickle {self._source}: persistent ids are not allowed."
        raise UnsafePickleError(message)


def safe_loads(data, source="<bytes>"):
    """Unpickles `data` allowing only numpy arrays and plain containers.

    Args:
        data: the pickle as `bytes`.
        source: a name for error messages (e.g. the archive member).

    Returns:
        The unpickled object; Python 2 `str` objects come back as `bytes`
        (`encoding="bytes"`), as in the official CIFAR loading snippet.

    Raises:
        UnsafePickleError: (a `ValueError`) the pickle references any other
            global, such as `os.system`; nothing it names is called.
        ValueError: the data is not a valid pickle (e.g. truncated).
    """
    try:
        return _RestrictedUnpickler(io.BytesIO(data), source).load()
    except UnsafePickleError:
        raise
    except Exception as e:  # truncated / foreign data: EOFError, UnpicklingError...
        raise ValueError(f"{source} is not a valid CIFAR pickle ({type(e).__name__}: {e}).") from e
