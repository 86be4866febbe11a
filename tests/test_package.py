"""The package as a whole: what `import keras_preact` gives (also without
TensorFlow, on the other backends), and library source that speaks of the
code only (no benchmark results, machine paths, measurement dates or notes on
its own length; argparse only in `__main__`)."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import keras_preact
from conftest import BACKEND

LIBRARY = Path(__file__).resolve().parents[1] / "keras_preact"
SOURCES = sorted(LIBRARY.rglob("*.py"))
# What library text must not say, by kind.
FORBIDDEN = {
    # (A web address's ".../results/..." is a citation, not ours.)
    "a benchmarks/ path or result file": re.compile(r"benchmarks/|(?<![\w/.-])results/"),
    "a machine path": re.compile(r"(?<![\w.])/(work|home|root|Users|mnt)/"),
    "a date": re.compile(r"\b20\d\d-\d\d-\d\d\b"),
    "a note on its own length": re.compile(
        r"\b(long|over \d+ lines)\b[^\n]*\b(docstring|signature|lines of code)\b", re.I),
}


def test_public_names():
    for depth in (18, 20, 32, 34, 44, 50, 56, 101, 110, 152, 164, 200, 1001):
        assert callable(getattr(keras_preact, f"PreActResNet{depth}"))
    for name in ("PreActResNet", "feature_extractor", "residual_units", "batch_norm_layers", "layers",
                 "normalization", "training", "__version__"):
        assert hasattr(keras_preact, name), name


@pytest.mark.skipif(BACKEND == "tensorflow", reason="checks the non-TF backends")
def test_import_without_tensorflow():
    code = (
        "import sys; sys.modules['tensorflow'] = None\n"
        "import keras_preact\n"
        "m = keras_preact.PreActResNet(8, base_width=2, input_shape=(8, 8, 3))\n"
        "print(m.output_shape)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "KERAS_BACKEND": BACKEND},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(None, 10)" in result.stdout


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(LIBRARY)))
def test_source_speaks_of_the_code(path):
    text = path.read_text()
    found = {kind: match.group(0) for kind, pattern in FORBIDDEN.items()
             if (match := pattern.search(text))}
    assert found == {}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(LIBRARY)))
def test_argparse_only_in_main_modules(path):
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert path.name == "__main__.py" or "argparse" not in imported


@pytest.mark.parametrize("text, kind", [
    ("see `benchmarks/batch_norm_relu.py`", "a benchmarks/ path or result file"),
    ("data_dir='/work/shared/data/cifar100'", "a machine path"),
    ("measured 2026-11-30, load 3", "a date"),
    ("# Long only by its docstring (53 lines of code).", "a note on its own length"),
    ("# Over 80 lines only by its signature and docstring", "a note on its own length"),
])
def test_forbidden_patterns_catch_what_they_name(text, kind):
    assert FORBIDDEN[kind].search(text)
    assert not any(pattern.search("x = keras.ops.relu(x)  # 3x3 conv, data/cifar100")
                   for pattern in FORBIDDEN.values())
