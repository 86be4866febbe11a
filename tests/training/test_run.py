"""keras_preact.training.run: `TrainingRun` and `train_and_evaluate` (resume
itself: tests/training/test_resume.py; the opening lines:
tests/training/test_banner.py; the example scripts that use them:
tests/examples/)."""

import csv
import json

import keras
import numpy as np
import pytest

from keras_preact.training import TrainingResult
from keras_preact.training import TrainingRun
from keras_preact.training import compile_for_paper
from keras_preact.training import train_and_evaluate


def tiny_model(**compile_kwargs):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(6, activation="softmax")],
                             name="tiny")
    return compile_for_paper(model, 0.1, **compile_kwargs)


X = np.arange(24, dtype="float32").reshape(8, 3) / 24
Y = np.arange(8) % 6


def batches_from(start_step):
    """Batches of 2 from step `start_step` on, forever."""
    step = start_step
    while True:
        i = step % 4
        yield X[2 * i: 2 * i + 2], Y[2 * i: 2 * i + 2]
        step += 1


# (train_data, resume): a positioning function, a plain stream, or arrays
# (3 batches of Keras' default 32).
DATA = {
    "function": (lambda: batches_from, False),
    "function_resumable": (lambda: batches_from, True),
    "stream": (lambda: batches_from(0), False),
    "arrays": (lambda: (np.tile(X, (12, 1)), np.tile(Y, 12)), False),
    "arrays_resumable": (lambda: (np.tile(X, (12, 1)), np.tile(Y, 12)), True),
}


@pytest.mark.parametrize("total_steps", [None, 5], ids=["whole-epochs", "5-steps"])
@pytest.mark.parametrize("case", sorted(DATA))
def test_train_and_evaluate_writes_the_run(tmp_path, capsys, case, total_steps):
    """2 epochs of 3 steps; with total_steps=5, the second stops at 5."""
    make_data, resume = DATA[case]
    steps = total_steps or 6
    run = TrainingRun(str(tmp_path), epochs=2, steps_per_epoch=3, resume=resume,
                      tensorboard=False, verbose=2, run_config={"batch": 2},
                      title="a tiny run", total_steps=total_steps)
    result = train_and_evaluate(tiny_model(), make_data(), run, validation_data=(X, Y))
    assert isinstance(result, TrainingResult)
    assert result.iterations == steps and result.history.epoch == [0, 1]
    assert set(result.metrics) == {"loss", "top1", "top5"}
    assert result.export_path is None
    summary = json.loads((tmp_path / "final_metrics.json").read_text())
    assert summary["final"] == result.metrics
    assert (summary["iterations"], summary["epochs"], summary["run"]) == (
        steps, 2, {"batch": 2})
    with open(tmp_path / "metrics.csv", newline="") as f:
        assert [row["iterations"] for row in csv.DictReader(f)] == ["3", str(steps)]
    assert (tmp_path / "checkpoints" / "last.keras").is_file()
    assert (tmp_path / "backup").is_dir() == resume
    assert not (tmp_path / "logs").exists()
    printed = capsys.readouterr().out
    assert printed.startswith("keras_preact: a tiny run\n")
    assert ("backups    none" in printed) != resume
    assert f"run        {steps} steps: 2 epochs of 3 steps" + (
        " (the last of 2)," if total_steps else ",") in printed
    assert f"Optimizer iterations: {steps}\nFinal evaluation: loss=" in printed
    if resume:  # The finished run, started again, trains nothing more.
        again = train_and_evaluate(tiny_model(), make_data(), run, validation_data=(X, Y))
        assert again.iterations == steps and again.history.epoch == []


def test_silent_run_prints_nothing(tmp_path, capsys):
    run = TrainingRun(str(tmp_path), epochs=1, steps_per_epoch=2, resume=True,
                      tensorboard=False, verbose=0)
    result = train_and_evaluate(tiny_model(), batches_from, run)
    assert result.metrics == {} and result.iterations == 2
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("kwargs, message", [
    (dict(epochs=0), r"Invalid epochs=0. Expected an int >= 1."),
    (dict(steps_per_epoch=1.5), r"Invalid steps_per_epoch=1.5. Expected an int >= 1."),
    (dict(validation_steps=0), r"Invalid validation_steps=0. Expected an int >= 1."),
    (dict(backup_every_seconds=0), r"Invalid backup_every_seconds=0. Expected a number"),
    (dict(verbose=3), r"Invalid verbose=3. Expected one of \[0, 1, 2\]."),
    (dict(jit_compile="xla"), r"Invalid jit_compile='xla'. Expected one of"),
    (dict(epochs=2, steps_per_epoch=3, total_steps=7),
     r"Invalid total_steps=7. Expected an int in \[4, 6\]."),
    (dict(total_steps=0), r"Invalid total_steps=0. Expected an int in \[1, 1\]."),
])
def test_training_run_refuses_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainingRun(**dict(dict(output_dir="out", epochs=1, steps_per_epoch=1), **kwargs))


def test_an_uncompiled_model_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)], name="raw")
    with pytest.raises(ValueError, match="Model 'raw' is not compiled"):
        train_and_evaluate(model, batches_from, TrainingRun(str(tmp_path), 1, 1))
