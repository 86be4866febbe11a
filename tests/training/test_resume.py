"""Resumable training (keras_preact.training.resume) on the current backend.

The reference for every interrupted run is the same run without
interruption: same final weights, optimizer iterations, schedule position
and epoch count. Interruptions are real `kill -9`s of a training subprocess
(tests/resume_worker.py) at chosen points, and in-process exceptions.
"""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import keras
from keras import ops
from keras_preact.training import TrainingBackup
from keras_preact.training import compile_for_paper
from keras_preact.training import fit_resumable
from keras_preact.training import read_backup
from keras_preact.training import resume

from _checks import REPO
from _checks import random_images
from _checks import skip_unless_multi_step

WORKER = REPO / "tests" / "resume_worker.py"
sys.path.insert(0, str(REPO / "tests"))
import resume_worker  # noqa: E402

TOTAL_STEPS = resume_worker.EPOCHS * resume_worker.STEPS_PER_EPOCH


def run_worker(out, *flags):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, str(WORKER), str(out), *flags], env=env,
                          capture_output=True, text=True, timeout=240)


def load_final(out):
    with np.load(out / "final.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    result = run_worker(out)
    assert result.returncode == 0, result.stderr
    assert "no backup in" in result.stdout
    return load_final(out)


# (flags of the killed run, epochs the rerun still trains, what it prints).
KILLS = {
    # Step 2: before the first backup (every 3 steps): nothing to resume.
    "before_first_backup": (["--kill-at-step", "2"], [0, 1, 2], "no backup in"),
    # Global step 7 = epoch 2, step 3 (4 steps each), just backed up.
    "mid_epoch": (["--kill-at-step", "7"], [1, 2], "epoch 2 of 3, step 3 of 4"),
    # Backups at steps 3 and 4 (the epoch-1 end): dies in the second, after
    # its weights file and before its metadata, so step 3 is restored.
    "during_backup_write": (["--kill-in-backup", "2"], [0, 1, 2],
                            "epoch 1 of 3, step 3 of 4"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(KILLS))
def test_kill_9_then_rerun_equals_uninterrupted_run(case, uninterrupted, tmp_path):
    flags, epochs_left, message = KILLS[case]
    killed = run_worker(tmp_path, *flags)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    rerun = run_worker(tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert message in rerun.stdout, rerun.stdout
    final = load_final(tmp_path)
    assert int(final["iterations"]) == TOTAL_STEPS
    assert final["epochs_trained"].tolist() == epochs_left
    for key in uninterrupted:
        if key.startswith("arr_"):
            np.testing.assert_allclose(final[key], uninterrupted[key], rtol=1e-5,
                                       atol=1e-6, err_msg=key)
    backups = os.listdir(tmp_path / "backup")
    assert sorted(backups)[-1] == "training_metadata.json" and len(backups) == 2


def tiny_model(images=False, steps_per_execution=1):
    """A dense layer on 3 features, or (`images`) a conv net on 8x8 RGB images."""
    keras.utils.set_random_seed(0)
    layers = [keras.Input((3,)), keras.layers.Dense(4, name="fc")]
    if images:
        layers = [keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3),
                  keras.layers.BatchNormalization(), keras.layers.GlobalAveragePooling2D(),
                  keras.layers.Dense(4, name="fc")]
    model = keras.Sequential(layers)
    compile_for_paper(model, 0.1, steps_per_execution=steps_per_execution)
    return model


def cifar_data_at(start_step):
    """A seeded, augmented tf.data pipeline positioned at `start_step`."""
    from keras_preact.data import cifar_dataset

    return cifar_dataset(random_images(12, size=8), np.arange(12) % 4, training=True,
                         batch_size=2, seed=0, repeat=True, start_batch=start_step, pad=2)


def data_at(start_step):
    x = np.arange(24, dtype="float32").reshape(8, 3) / 24
    y = np.arange(8) % 4

    def batches():
        step = start_step
        while True:
            i = step % 4
            yield x[2 * i: 2 * i + 2], y[2 * i: 2 * i + 2]
            step += 1

    return batches()


class CrashAt(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(ops.convert_to_numpy(self.model.optimizer.iterations)) >= self.step:
            raise RuntimeError("simulated crash")


# Crash after global step k; the last backup is at step k, except after an
# epoch's last step, whose backup is the epoch-end one (after validation).
# Runs of 3 epochs of 3 steps, or of 8 steps (the last epoch has 2).
# A generator, or a tf.data pipeline (which Keras' JAX and torch trainers
# iterate once to build the model, then again to train).
# Runs of 3 epochs of n steps (the last cut at total_steps). With
# steps_per_execution=2, Keras calls on_train_batch_end once per execution
# of 2 steps, and backups follow the executions.
@pytest.mark.parametrize("crash_step, backup_step, total_steps, data, per_execution, n", [
    (2, 2, None, "generator", 1, 3), (3, 2, None, "generator", 1, 3),
    (5, 5, None, "generator", 1, 3),
    (4, 4, 8, "generator", 1, 3), (7, 7, 8, "generator", 1, 3),  # the short last epoch
    (8, 7, 8, "generator", 1, 3),
    (4, 4, None, "tf.data", 1, 3), (7, 7, 8, "tf.data", 1, 3),
    (2, 2, None, "generator", 2, 4), (6, 6, None, "generator", 2, 4),
    (9, 8, 10, "generator", 2, 4), (6, 6, None, "tf.data", 2, 4),
])
def test_resumed_fit_continues_inside_the_epoch(tmp_path, crash_step, backup_step,
                                                total_steps, data, per_execution, n):
    skip_unless_multi_step(per_execution)
    backup = str(tmp_path / "backup")
    images = data == "tf.data"
    stream_at = cifar_data_at if images else data_at
    kwargs = dict(epochs=3, steps_per_epoch=n, total_steps=total_steps, backup_dir=backup,
                  every_steps=1, every_seconds=None, verbose=0)
    run_steps = total_steps or 3 * n
    reference = tiny_model(images, per_execution)
    fit_resumable(reference, stream_at, **dict(kwargs, backup_dir=str(tmp_path / "ref")))
    assert int(ops.convert_to_numpy(reference.optimizer.iterations)) == run_steps

    model = tiny_model(images, per_execution)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit_resumable(model, stream_at, callbacks=[CrashAt(crash_step)], **kwargs)
    state = read_backup(backup)
    assert state.global_step == backup_step == state.iterations
    assert (state.epoch, state.step) == divmod(backup_step, n)

    messages = []
    resumed = tiny_model(images, per_execution)
    history = fit_resumable(resumed, stream_at, log=messages.append, **kwargs)
    assert messages[0].startswith(f"resuming from {state.weights_path}")
    if state.step:
        epoch_steps = n if state.epoch < 2 else run_steps - 2 * n
        assert messages[1].startswith(f"epoch {state.epoch + 1} runs its remaining "
                                      f"{epoch_steps - state.step} of {epoch_steps} steps")
    assert history.epoch == list(range(backup_step // n, 3))
    assert int(ops.convert_to_numpy(resumed.optimizer.iterations)) == run_steps
    for got, want in zip(resumed.weights, reference.weights, strict=True):
        np.testing.assert_allclose(ops.convert_to_numpy(got), ops.convert_to_numpy(want),
                                   rtol=1e-6, atol=1e-7, err_msg=got.path)
    # Nothing stays on the model: a later plain fit trains what it is asked.
    x = np.zeros((4, 8, 8, 3) if images else (4, 3), "float32")
    y = np.zeros(4, "int64")
    later = resumed.fit(x, y, batch_size=2, epochs=2, verbose=0)
    assert later.epoch == [0, 1]
    assert int(ops.convert_to_numpy(resumed.optimizer.iterations)) == run_steps + 4


# Keras runs an execution whole, past the end of an epoch: a 3-step epoch
# with steps_per_execution=2 would train 4 steps.
@pytest.mark.parametrize("steps_per_epoch, total_steps, position, error", [
    (3, None, (0, 0), "An epoch of this run has 3 steps, not a multiple of "
                      "steps_per_execution=2: Keras would train 4. Use a "
                      r"steps_per_execution that divides every epoch's steps: \[1, 3\]"),
    (4, 11, (0, 0), r"The last epoch of this run has 3 steps.*: \[1\]"),
    (4, None, (1, 1), "The interrupted epoch of this run has 3 steps"),
])
def test_epochs_must_be_whole_executions(steps_per_epoch, total_steps, position, error):
    skip_unless_multi_step(2)
    model = tiny_model(steps_per_execution=2)
    with pytest.raises(ValueError, match=error):
        resume.fit_run(model, data_at, epochs=3, steps_per_epoch=steps_per_epoch,
                       total_steps=total_steps, epoch=position[0], step=position[1])
    assert int(ops.convert_to_numpy(model.optimizer.iterations)) == 0


@pytest.mark.parametrize("epochs, steps_per_epoch, total_steps, fits", [
    (3, 3, None, [(0, 3, 3)]),
    (3, 3, 9, [(0, 3, 3)]),
    (3, 3, 7, [(0, 2, 3), (2, 3, 1)]),
    (1, 5, 2, [(0, 1, 2)]),
])
def test_a_run_of_steps_ends_with_a_shorter_epoch(epochs, steps_per_epoch, total_steps, fits):
    """fit_run: the model.fit calls (first epoch, end epoch, steps per epoch)
    and the data each starts at."""
    model, calls, starts = tiny_model(), [], []
    fit = model.fit

    def recording_fit(*args, **kwargs):
        calls.append((kwargs["initial_epoch"], kwargs["epochs"], kwargs["steps_per_epoch"]))
        return fit(*args, **kwargs)

    model.fit = recording_fit
    history = resume.fit_run(model, lambda step: starts.append(step) or data_at(step),
                             epochs=epochs, steps_per_epoch=steps_per_epoch,
                             total_steps=total_steps, verbose=0)
    assert calls == fits
    assert starts == [first * steps_per_epoch for first, _, _ in fits]
    assert history.epoch == list(range(epochs))
    assert int(ops.convert_to_numpy(model.optimizer.iterations)) == (
        total_steps or epochs * steps_per_epoch)


def test_progress_lines_count_the_runs_epochs(capsys):
    """Two model.fit calls (2 epochs of 3 steps, a last one of 1), one count."""
    resume.fit_run(tiny_model(), data_at, epochs=3, steps_per_epoch=3, total_steps=7, verbose=2)
    printed = capsys.readouterr().out
    assert [line[:9] for line in printed.splitlines() if line.startswith("Epoch ")] == [
        "Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]


def test_finished_run_trains_nothing_more(tmp_path):
    backup = str(tmp_path / "backup")
    kwargs = dict(epochs=2, steps_per_epoch=2, backup_dir=backup, verbose=0)
    fit_resumable(tiny_model(), data_at, **kwargs)
    messages = []
    again = tiny_model()
    history = fit_resumable(again, data_at, log=messages.append, **kwargs)
    assert history.epoch == []
    assert messages == [f"the backup in {backup} is at the end of the run (2 epochs, "
                        "optimizer iterations 4): nothing to train. Move the folder "
                        "away to train again."]
    assert int(ops.convert_to_numpy(again.optimizer.iterations)) == 4


def test_backup_by_wall_clock(tmp_path, monkeypatch):
    now = [0.0]
    monkeypatch.setattr(resume.time, "monotonic", lambda: now[0])

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            now[0] += 40.0  # Each step "takes" 40 s; backups every 100 s.

    saved, save = [], TrainingBackup.save

    def record(self):
        saved.append(self._step)
        save(self)

    monkeypatch.setattr(TrainingBackup, "save", record)
    fit_resumable(tiny_model(), data_at, epochs=1, steps_per_epoch=9,
                  backup_dir=str(tmp_path / "b"), every_seconds=100, callbacks=[Clock()],
                  verbose=0)
    # Due at steps 4 (t=120 s) and 7 (t=240 s), then the epoch end.
    assert saved == [4, 7, 0]


def test_plain_fit_refuses_to_overwrite_a_backup(tmp_path):
    backup = str(tmp_path / "backup")
    with pytest.raises(RuntimeError):
        fit_resumable(tiny_model(), data_at, epochs=2, steps_per_epoch=2,
                      backup_dir=backup, every_steps=1, callbacks=[CrashAt(3)], verbose=0)
    x, y = np.zeros((4, 3), "float32"), np.zeros(4, "int64")
    with pytest.raises(ValueError, match="holds a backup at epoch 2, step 1 of 2"):
        tiny_model().fit(x, y, batch_size=2, epochs=1, verbose=0,
                         callbacks=[TrainingBackup(backup)])
    assert read_backup(backup).global_step == 3


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(epochs=0), r"Invalid epochs=0. Expected an int >= 1"),
        (dict(steps_per_epoch=1.5), r"Invalid steps_per_epoch=1.5. Expected an int >= 1"),
        (dict(initial_epoch=1), "chooses initial_epoch"),
        (dict(every_seconds=0), r"Invalid every_seconds=0. Expected a number >= 0.001"),
        (dict(every_seconds=float("nan")), r"Invalid every_seconds=nan"),
        (dict(every_steps=-2), r"Invalid every_steps=-2. Expected an int >= 1"),
        (dict(total_steps=3), r"Invalid total_steps=3. Expected an int in \[1, 2\]"),
        (dict(epochs=2, total_steps=2), r"Invalid total_steps=2. Expected an int in \[3, 4\]"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, error):
    args = dict(epochs=1, steps_per_epoch=2, backup_dir=str(tmp_path / "b"), verbose=0)
    with pytest.raises(ValueError, match=error):
        fit_resumable(tiny_model(), data_at, **dict(args, **kwargs))


def test_other_steps_per_epoch_is_refused(tmp_path):
    backup = str(tmp_path / "b")
    fit_resumable(tiny_model(), data_at, epochs=1, steps_per_epoch=2, backup_dir=backup,
                  verbose=0)
    with pytest.raises(ValueError, match="steps_per_epoch=2; this run has steps_per_epoch=3"):
        fit_resumable(tiny_model(), data_at, epochs=1, steps_per_epoch=3,
                      backup_dir=backup, verbose=0)


@pytest.mark.parametrize(
    "changed, error",
    [
        (dict(epochs=4), "epochs: backup 2, this run 4"),
        (dict(total_steps=3), "total_steps: backup None, this run 3"),
        (dict(run_config={"global_batch_size": 64}),
         "global_batch_size: backup 32, this run 64"),
    ],
)
def test_a_backup_of_another_run_is_refused(tmp_path, changed, error):
    """Other epochs or batch size would silently change the schedule mid-run."""
    args = dict(epochs=2, steps_per_epoch=2, backup_dir=str(tmp_path / "b"), verbose=0,
                run_config={"global_batch_size": 32})
    with pytest.raises(RuntimeError):
        fit_resumable(tiny_model(), data_at, every_steps=1, callbacks=[CrashAt(3)], **args)
    with pytest.raises(ValueError, match=error):
        fit_resumable(tiny_model(), data_at, **dict(args, **changed))


@pytest.mark.parametrize(
    "metadata, error",
    [
        ("null", "holds None, not a backup position"),
        # A position by "batch" (no "step", no "steps_per_epoch") is not one.
        ('{"epoch": 1, "batch": 0, "counter": 3, "weights": "w.weights.h5"}',
         "not a backup position"),
        ('{"epoch": 0, "step": 5, "steps_per_epoch": 2, "weights": "w.weights.h5"}',
         "expected ints with epoch >= 0 and 0 <= step < steps_per_epoch"),
        ('{"epoch": "1", "step": 0, "steps_per_epoch": 2, "weights": "w.weights.h5"}',
         "expected ints"),
        ('{"epoch": 0, "step": 1, "steps_per_epoch": 2, "weights": "gone.weights.h5"}',
         "gone.weights.h5, which does not exist"),
        ('{"epoch": 0, "step": 1, "steps_per_epoch": 2, "weights": "w.weights.h5"',
         "is not valid JSON"),
        ('{"epoch": 0, "step": 1, "steps_per_epoch": 2, "weights": "truncated.weights.h5"}',
         "Could not load the backup .*truncated.weights.h5.* move .* away"),
    ],
)
def test_damaged_backups_give_clear_errors(tmp_path, metadata, error):
    backup = tmp_path / "b"
    backup.mkdir()
    model = tiny_model()
    model.save_weights(str(backup / "w.weights.h5"))
    (backup / "truncated.weights.h5").write_bytes((backup / "w.weights.h5").read_bytes()[:500])
    (backup / "training_metadata.json").write_text(metadata)
    with pytest.raises(ValueError, match=error):
        fit_resumable(tiny_model(), data_at, epochs=1, steps_per_epoch=2,
                      backup_dir=str(backup), verbose=0)
