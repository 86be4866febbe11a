"""examples/train_cifar100.py: its arguments, a tiny run with export, and a run
killed with `kill -9` that the same command resumes (its compile defaults
and opening lines: tests/examples/test_training_cli.py; under the launcher:
tests/training/test_distribute.py)."""

import json
import os
import signal
import subprocess
import sys

import keras
import pytest

from keras_preact.normalization import model_statistics
from keras_preact.training import PaperCIFARSchedule

from _checks import EXAMPLES
from _checks import REPO
from _checks import load_example
from _checks import read_csv
from _checks import wait_for_mid_epoch_backup
from conftest import BACKEND

training_cli = load_example("training_cli")


def tiny_cifar_args(shared_data, output_dir, *extra):
    return [
        "--depth", "8", "--dataset", "cifar100", "--data-source", "npz",
        "--data-dir", str(shared_data / "cifar100"), "--batch-size", "16",
        "--max-train-examples", "256", "--max-eval-examples", "64",
        "--output-dir", str(output_dir), "--verbose", "2", *extra,
    ]


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "2", "--steps", "10"], "argument --steps: not allowed with argument --epochs"),
    (["--batch-size", "0"], "argument --batch-size: must be > 0, got 0"),
    (["--backup-every-seconds", "nan"], "argument --backup-every-seconds: must be > 0, got nan"),
    (["--max-train-examples", "x"], "argument --max-train-examples: invalid int value: 'x'"),
    (["--mixed-precision", "fp8"], "argument --mixed-precision: invalid choice: 'fp8'"),
    (["--weight-decay-on", "bn"], "argument --weight-decay-on: invalid choice: 'bn'"),
])
def test_cifar_script_rejects_bad_arguments(capsys, argv, message):
    with pytest.raises(SystemExit):
        load_example("train_cifar100").build_parser().parse_args(argv)
    assert message in capsys.readouterr().err


def test_cifar_script_arguments():
    script = load_example("train_cifar100")
    parser = script.build_parser()
    args = parser.parse_args(["--steps", "100", "--jit-compile"])
    assert (args.steps, args.jit_compile, args.batch_size) == (100, "on", 128)
    assert training_cli.compile_arguments(args)["jit_compile"] is True
    assert parser.parse_args([]).weight_decay_on == "all"  # the authors' optim.sgd
    assert script.paper_reference(parser.parse_args([])).startswith(
        "The paper: error 24.33% (Table 3: PreActResNet-164 on CIFAR-100, median of 5 runs")
    assert script.paper_reference(parser.parse_args(["--depth", "8"])) is None


@pytest.mark.slow
def test_cifar_script_tiny_run_with_export(shared_data, tmp_path, capsys):
    script = load_example("train_cifar100")
    out = tmp_path / "run"
    # --steps 5: 2 epochs of 3 steps, the last stopped at 5.
    script.main(tiny_cifar_args(shared_data, out, "--steps", "5",
                                "--steps-per-epoch", "3", "--export"))
    printed = capsys.readouterr().out
    assert "Final evaluation: loss=" in printed
    assert "keras_preact: PreActResNet-8 on CIFAR-100" in printed
    assert f"backend    {BACKEND}, devices: " in printed
    assert "83,700 trainable parameters, 480 non-trainable" in printed
    assert "backups    none (the run is not resumable)" in printed
    assert "run        5 steps: 2 epochs of 3 steps (the last of 2), global batch 16" in printed
    for path in ("checkpoints/last.keras", "metrics.csv", "curves.png",
                 "final_metrics.json", "logs"):
        assert printed.count(str(out / path)) == 2, path  # At the start and the end.
    rows = read_csv(out / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert [r["iterations"] for r in rows] == ["3", "5"]
    assert {"loss", "top1", "top5", "val_loss", "val_top1", "val_top5",
            "learning_rate"} <= set(rows[0])
    # The schedule spans the 5 steps trained: PaperCIFARSchedule.for_run(16,
    # total_steps=5), 0.1 * 16/128, drops at 1/2 and 3/4 of the run.
    schedule = PaperCIFARSchedule.for_run(batch_size=16, total_steps=5)
    assert schedule.total_steps == 5
    for row in rows:
        assert float(row["learning_rate"]) == pytest.approx(
            float(schedule(int(row["iterations"]))))
    summary = json.loads((out / "final_metrics.json").read_text())
    assert summary["iterations"] == 5 and set(summary["final"]) >= {"top1", "top5"}
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    # The checkpoint normalizes its own 0-255 pixels with CIFAR-100's
    # statistics, so it exports without a dataset argument.
    checkpoint = keras.saving.load_model(out / "checkpoints" / "last.keras")
    assert model_statistics(checkpoint).isclose("cifar100", rtol=1e-6)
    exported = list((out / "export").glob("*/*/saved_model.pb"))
    assert len(exported) == 1, list((out / "export").rglob("*"))
    # The version folder it reports, and nothing else (torch exports through a .keras file).
    assert f"Exported SavedModel: {exported[0].parent}\n" in printed
    assert not list((out / "export").rglob("*.keras"))


def script_env():
    return dict(os.environ, PYTHONPATH=str(REPO), KERAS_BACKEND=BACKEND,
                TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")


@pytest.mark.slow
def test_cifar_script_resumes_after_kill_9(shared_data, tmp_path):
    """kill -9 mid-epoch, rerun the same command: it continues inside the
    epoch and ends with exactly the steps of an uninterrupted run."""
    out = tmp_path / "run"
    epochs, steps = 3, 12
    command = [sys.executable, str(EXAMPLES / "train_cifar100.py"),
               *tiny_cifar_args(shared_data, out, "--epochs", str(epochs),
                                "--steps-per-epoch", str(steps), "--resume",
                                "--backup-every", "2", "--no-tensorboard")]
    metadata_path = out / "backup" / "training_metadata.json"
    log_path = tmp_path / "first.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, env=script_env(), cwd=REPO, stdout=log,
                                stderr=subprocess.STDOUT)
        # Kill during the second epoch, after a mid-epoch backup.
        killed_at = wait_for_mid_epoch_backup(proc, metadata_path, 240)
        if killed_at:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    first = log_path.read_text()
    assert killed_at is not None, first
    assert proc.returncode == -signal.SIGKILL
    assert f"no backup in {out / 'backup'}: starting fresh" in first
    assert [r["epoch"] for r in read_csv(out / "metrics.csv")] == ["0"]

    result = subprocess.run(command, env=script_env(), cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    # One more backup may have landed between the read above and the kill.
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("resuming from"))
    assert f": epoch 2 of {epochs}, step " in line
    step = int(line.split(", step ")[1].split(" of ")[0])
    assert killed_at["step"] <= step < steps
    assert line.endswith(f"(optimizer iterations {steps + step})")
    rows = read_csv(out / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert [int(r["iterations"]) for r in rows] == [steps, 2 * steps, 3 * steps]
    assert f"Optimizer iterations: {epochs * steps}" in result.stdout
    assert "Final evaluation: loss=" in result.stdout
    # The backup is kept: rerunning the finished command trains nothing more.
    assert json.loads(metadata_path.read_text())["epoch"] == epochs
