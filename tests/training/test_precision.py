"""keras_preact.training.precision: the dtype policy each accelerator gets."""

import pytest

from keras_preact.training import resolve_precision


def test_resolve_precision():
    ampere = {"kind": "gpu", "compute_capability": (8, 0)}
    volta = {"kind": "gpu", "compute_capability": (7, 0)}
    assert resolve_precision("auto", ampere) == "mixed_bfloat16"
    assert resolve_precision("auto", volta) == "float32"
    assert resolve_precision("auto", {"kind": "tpu", "compute_capability": None}) == (
        "mixed_bfloat16"
    )
    assert resolve_precision("auto", {"kind": "cpu", "compute_capability": None}) == "float32"
    assert resolve_precision("float16") == "mixed_float16"
    assert resolve_precision("off") == "float32"
    # This machine has no accelerator.
    assert resolve_precision("auto") == "float32"
    with pytest.raises(ValueError, match="mode='fp8'"):
        resolve_precision("fp8")
