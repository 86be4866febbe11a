"""keras_preact.io: files are replaced whole or not at all."""

import os
from pathlib import Path

import pytest


@pytest.mark.parametrize("write, expected", [
    (lambda io, p: io.atomic_write(p, "text"), b"text"),
    (lambda io, p: io.atomic_write(p, b"\x00\xff"), b"\x00\xff"),
    (lambda io, p: io.atomic_write_json(p, {"a": 1}), b'{"a": 1}\n'),
])
def test_atomic_write_replaces_whole_file(tmp_path, write, expected):
    from keras_preact import io

    path = tmp_path / "sub" / "out.bin"
    write(io, str(path))
    assert path.read_bytes() == expected
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
    # A failing writer leaves the old file and no temporary behind.
    with pytest.raises(RuntimeError):
        with io.atomic_path(path) as tmp:
            Path(tmp).write_text("half")
            raise RuntimeError("crash")
    assert path.read_bytes() == expected
    assert os.listdir(path.parent) == ["out.bin"]
    with pytest.raises(TypeError, match="str or bytes"):
        io.atomic_write(path, 1)
