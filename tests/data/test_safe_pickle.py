"""keras_preact.data.safe_pickle: a pickle that would run code is refused
without running, alone and inside a CIFAR archive."""

import os
import pickle

import pytest

from keras_preact.data import UnsafePickleError
from keras_preact.data import load_cifar
from keras_preact.data.safe_pickle import safe_loads

from _checks import cifar100_archive


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": _Evil(marker), b"fine_labels": [0]}, protocol=2)
    # The payload really runs under a plain pickle.loads...
    pickle.loads(payload)
    assert marker.exists()
    marker.unlink()
    # ...and is refused, without running, by the restricted unpickler.
    with pytest.raises(UnsafePickleError, match=r"system"):
        safe_loads(payload, source="evil")
    assert not marker.exists()
    for builtin in (eval, exec, getattr):
        with pytest.raises(UnsafePickleError, match=builtin.__name__):
            safe_loads(pickle.dumps(_Reduce(builtin)), source="x")
    # Inside an archive: refused, naming the member; nothing is executed.
    path, _, _ = cifar100_archive(tmp_path, train_member=payload)
    with pytest.raises(UnsafePickleError, match="cifar-100-python/train"):
        load_cifar("cifar100", source="archive", data_dir=path, split="train")
    assert not marker.exists()
    assert isinstance(UnsafePickleError("x"), ValueError)


class _Reduce:
    def __init__(self, fn):
        self.fn = fn

    def __reduce__(self):
        return (self.fn, ("1",))
