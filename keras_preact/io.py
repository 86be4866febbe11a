"""Atomic file writes: a reader or a crash never sees a half-written file.

Every file the library and its scripts write (metrics, checkpoints, backups,
figures, results) goes through here: the data goes to a temporary file in the
target's folder, then `os.replace` moves it over the target (atomic within one
filesystem, POSIX and Windows). The target keeps its old content or gets the
whole new one; the temporary file is removed on any error. Missing folders
are made; permissions are a plain `open()`'s (`0o666` minus the umask).
"""

import contextlib
import json
import os
import tempfile


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path next to `path`, moved over `path` on success.

    For files written by another library (`fig.savefig(tmp)`,
    `model.save(tmp)`). The temporary name ends with `path`'s basename, so
    extension checks (`.keras`, `.png`) pass. An exception in the body
    propagates and leaves `path` untouched.

    Example:
    >>> with atomic_path("run/last.keras") as tmp:
    ...     model.save(tmp)
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix="-" + os.path.basename(path))
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600.
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write(path, data):
    """Writes `data` (str: text, or bytes) to `path` atomically, fsynced; returns `path`.

    Raises:
        TypeError: `data` is neither str nor bytes.
    """
    if not isinstance(data, (str, bytes)):
        raise TypeError(f"Expected data to be str or bytes. Received: {type(data).__name__}")
    with atomic_path(path) as tmp:
        with open(tmp, "w" if isinstance(data, str) else "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return os.fspath(path)


def atomic_write_json(path, obj, **dumps_kwargs):
    """Writes `json.dumps(obj, **dumps_kwargs)` and a newline atomically; returns `path`."""
    return atomic_write(path, json.dumps(obj, **dumps_kwargs) + "\n")
