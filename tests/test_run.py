"""keras_preact.training.run: `TrainingRun`, `train_and_evaluate` and the
opening and closing lines (resume itself: tests/test_resume.py; the
example scripts that use them: tests/test_examples.py)."""

import csv
import json

import keras
import numpy as np
import pytest

import keras_preact
from keras_preact.paper_results import PaperFigure
from keras_preact.training import DistributionSetup
from keras_preact.training import TrainingResult
from keras_preact.training import TrainingRun
from keras_preact.training import compile_for_paper
from keras_preact.training import train_and_evaluate
from keras_preact.training.run import describe_start


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


# (train_data, resume): a positioning function or a plain stream.
DATA = {
    "function": (lambda: batches_from, False),
    "function_resumable": (lambda: batches_from, True),
    "stream": (lambda: batches_from(0), False),
}


@pytest.mark.parametrize("case", sorted(DATA))
def test_train_and_evaluate_writes_the_run(tmp_path, capsys, case):
    make_data, resume = DATA[case]
    run = TrainingRun(str(tmp_path), epochs=2, steps_per_epoch=3, resume=resume,
                      tensorboard=False, verbose=2, run_config={"batch": 2},
                      title="a tiny run", paper_figure=PaperFigure(24.33, "Table 3"))
    result = train_and_evaluate(tiny_model(), make_data(), run, validation_data=(X, Y))
    assert isinstance(result, TrainingResult)
    assert result.iterations == 6 and result.history.epoch == [0, 1]
    assert set(result.metrics) == {"loss", "top1", "top5"}
    assert result.export_path is None
    summary = json.loads((tmp_path / "final_metrics.json").read_text())
    assert summary["final"] == result.metrics
    assert (summary["iterations"], summary["epochs"], summary["run"]) == (6, 2, {"batch": 2})
    with open(tmp_path / "metrics.csv", newline="") as f:
        assert [row["iterations"] for row in csv.DictReader(f)] == ["3", "6"]
    assert (tmp_path / "checkpoints" / "last.keras").is_file()
    assert (tmp_path / "backup").is_dir() == resume
    assert not (tmp_path / "logs").exists()
    printed = capsys.readouterr().out
    assert printed.startswith("keras_preact: a tiny run\n")
    assert ("backups    none" in printed) != resume
    assert "Optimizer iterations: 6\nFinal evaluation: loss=" in printed
    assert "The paper: error 24.33% (Table 3)" in printed
    if resume:  # The finished run, started again, trains nothing more.
        again = train_and_evaluate(tiny_model(), make_data(), run, validation_data=(X, Y))
        assert again.iterations == 6 and again.history.epoch == []


def test_silent_run_prints_nothing(tmp_path, capsys):
    run = TrainingRun(str(tmp_path), epochs=1, steps_per_epoch=2, resume=True,
                      tensorboard=False, verbose=0)
    result = train_and_evaluate(tiny_model(), batches_from, run)
    assert result.metrics == {} and result.iterations == 2
    assert capsys.readouterr().out == ""


# The claim the opening lines make about a model's count, or None.
PAPER_COUNTS = {
    "preact164_100": (lambda: keras_preact.PreActResNet164(classes=100),
                      "1,726,388 trainable parameters (the paper's count for "
                      "PreActResNet164 at 100 classes)"),
    "preact164_10": (lambda: keras_preact.PreActResNet(164, classes=10),
                     "1,703,258 trainable parameters (the paper's count for "
                     "PreActResNet164 at 10 classes)"),
    # Not the paper's networks: other classes, other width.
    "preact18_50": (lambda: keras_preact.PreActResNet(18, layout="imagenet", classes=50,
                                                      input_shape=(64, 64, 3)), None),
    "preact20_width8": (lambda: keras_preact.PreActResNet(20, classes=100, base_width=8),
                        None),
}


@pytest.mark.parametrize("case", sorted(PAPER_COUNTS))
def test_opening_lines_call_a_count_the_papers_only_where_it_is(case):
    build, claim = PAPER_COUNTS[case]
    text = describe_start(build(), TrainingRun("out", epochs=1, steps_per_epoch=1))
    if claim is None:
        assert "the paper" not in text
    else:
        assert claim in text


@pytest.mark.parametrize("run_kwargs, compile_kwargs, words", [
    (dict(jit_compile="auto", global_batch_size=128), {},
     ["jit_compile=auto (Keras' default, resolved to ", "steps_per_execution=1 (Keras' default)",
      "image data format channels_last (keras.config)", "global batch 128 (64 x 2 replicas)",
      "dtype policy float32, distribute mirrored"]),
    (dict(jit_compile=False), dict(jit_compile=False, steps_per_execution=4),
     ["compile    jit_compile=False, steps_per_execution=4, image data"]),
])
def test_opening_lines_say_what_the_run_uses(run_kwargs, compile_kwargs, words):
    run = TrainingRun("out", epochs=3, steps_per_epoch=5, resume=True, backup_every_steps=2,
                      **run_kwargs)
    distribution = DistributionSetup("mirrored", num_replicas=2)
    text = describe_start(tiny_model(**compile_kwargs), run, distribution)
    for word in words + ["run        3 epochs x 5 steps = 15 steps",
                         "backups    out/backup (every 300 s, every 2 steps and at each "
                         "epoch end)"]:
        assert word in text


@pytest.mark.parametrize("kwargs, message", [
    (dict(epochs=0), r"Invalid epochs=0. Expected an int >= 1."),
    (dict(steps_per_epoch=1.5), r"Invalid steps_per_epoch=1.5. Expected an int >= 1."),
    (dict(validation_steps=0), r"Invalid validation_steps=0. Expected an int >= 1."),
    (dict(backup_every_seconds=0), r"Invalid backup_every_seconds=0. Expected a number"),
    (dict(verbose=3), r"Invalid verbose=3. Expected one of \[0, 1, 2\]."),
    (dict(jit_compile="xla"), r"Invalid jit_compile='xla'. Expected one of"),
])
def test_training_run_refuses_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainingRun(**dict(dict(output_dir="out", epochs=1, steps_per_epoch=1), **kwargs))


def test_an_uncompiled_model_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)], name="raw")
    with pytest.raises(ValueError, match="Model 'raw' is not compiled"):
        train_and_evaluate(model, batches_from, TrainingRun(str(tmp_path), 1, 1))
