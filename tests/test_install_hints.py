"""keras_preact.install_hints: where TensorFlow is missing, every entry point
that needs it says how to install it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

REPO = Path(__file__).resolve().parents[1]


# Entry points that need TensorFlow, each run where it is missing.
NO_TENSORFLOW_SCRIPT = """
import json, sys
sys.modules["tensorflow"] = None  # `import tensorflow` -> ModuleNotFoundError
import keras
import keras_preact
from keras_preact import data, export
from keras_preact.export.__main__ import main as export_main

def message(call):
    try:
        call()
    except ModuleNotFoundError as e:
        return [e.name, str(e)]
    return None

model = keras_preact.PreActResNet(8, classes=10)
messages = {name: message(lambda: getattr(data, name)) for name in sys.argv[1:]}
if keras.backend.backend() in export.SUPPORTED_BACKENDS:  # else UnsupportedBackendError
    messages["export_saved_model"] = message(
        lambda: export.export_saved_model(model, sys.argv[0] + ".export", "m"))
print(json.dumps(messages))
sys.exit(export_main(["--model", "m.keras", "--export-base", ".", "--model-name", "m"]))
"""
TF_DATA_NAMES = ["cifar_dataset", "imagenet_dataset", "synthetic_dataset", "SkipCounter"]


def test_missing_tensorflow_error_gives_the_install_line(tmp_path):
    if keras.backend.backend() == "tensorflow":
        pytest.skip("Keras' TensorFlow backend cannot run without TensorFlow; "
                    "checked on the JAX and torch passes")
    script = tmp_path / "no_tensorflow.py"
    script.write_text(NO_TENSORFLOW_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), *TF_DATA_NAMES], cwd=tmp_path, text=True,
        capture_output=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.returncode == 2, result.stderr[-3000:]
    messages = json.loads(result.stdout.strip().splitlines()[-1])
    messages["keras_preact.export main"] = ["tensorflow", result.stderr]
    expected = {*TF_DATA_NAMES, "keras_preact.export main"}
    if keras.backend.backend() == "jax":
        expected.add("export_saved_model")
    assert set(messages) == expected
    for entry, raised in messages.items():
        assert raised is not None, f"{entry} ran without TensorFlow"
        name, text = raised
        assert name == "tensorflow", (entry, name)
        assert "needs TensorFlow, which is not installed" in text, (entry, text)
        for line in ("pip install tensorflow-cpu", 'pip install "tensorflow[and-cuda]"'):
            assert line in text, (entry, text)
