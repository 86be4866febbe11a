"""keras_preact.export.__main__: `python -m keras_preact.export` exports a
`.keras` file from any backend (under torch it runs again under TensorFlow),
takes the statistics from the file or `--normalization`, and refuses with exit
status 2 and the reason."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from _checks import REPO
from _checks import cifar_test_images
from _checks import export_model
from _checks import needs_export_backend
from _checks import predict_pixels
from _checks import run_checker
from conftest import BACKEND

ATOL = 1e-5  # float32 probabilities: exported graph vs the Keras model


@needs_export_backend
@pytest.mark.parametrize("recorded, flags, message", [
    (None, [], r"(?s)records no input statistics.*CLI: --normalization cifar10\|cifar100"),
    ("cifar100", ["--normalization", "imagenet"],
     r"(?s)normalization='imagenet' gives mean=\(123\.67.*leave out --normalization"),
])
def test_cli_normalization_flag(tmp_path, capsys, recorded, flags, message):
    """`--normalization` reaches the export; its refusals exit 2 with the reason."""
    from keras_preact.export.__main__ import build_parser
    from keras_preact.export.__main__ import main

    model_file = tmp_path / "model.keras"
    export_model(classes=10, input_normalization=recorded).save(model_file)
    argv = ["--model", str(model_file), "--export-base", str(tmp_path), "--model-name", "m", *flags]
    assert build_parser().parse_args(argv).normalization == (flags[1] if flags else None)
    assert main(argv) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "m").exists()
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--normalization", "cifar"])


@pytest.mark.slow
def test_cli_exports_a_keras_file_from_any_backend(tmp_path):
    """Under torch the CLI re-launches itself under TensorFlow; the
    statistics come from the .keras file, no --normalization needed."""
    model = export_model(classes=10, input_normalization="cifar100")
    model_file = tmp_path / "model.keras"
    model.save(model_file)
    pixels = cifar_test_images(3)
    ref = predict_pixels(model, pixels)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND=BACKEND)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "keras_preact.export", "--model", str(model_file),
           "--export-base", str(tmp_path / "models"), "--model-name", "cli",
           "--version", "3", "--no-bytes-signature"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    path = str(tmp_path / "models" / "cli" / "3")
    assert proc.stdout.strip().splitlines()[-1] == path
    if BACKEND == "torch":
        assert "re-running with KERAS_BACKEND=tensorflow" in proc.stderr
    out, _, _ = run_checker(tmp_path, path, {"u8": pixels}, {}, [["serving_uint8", "u8", [0, 3]]])
    np.testing.assert_allclose(out["v1/serving_uint8/u8/3/probabilities"], ref, atol=ATOL, rtol=0)
    assert out["v1/serving_uint8/u8/0/probabilities"].shape == (0, 10)  # zero images: empty
    # Same version again: refused with a clear message and exit status 2
    # (statistics that contradict the file go the same way: test_bad_arguments in
    # tests/export/test_saved_model.py).
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2 and "already exists" in proc.stderr, proc.stderr[-2000:]
