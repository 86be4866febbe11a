"""Resumable training: crash-safe backups and a `fit` that continues exactly.

A run interrupted at any point (`kill -9`, a preempted VM, a closed Colab
tab) and restarted with the same command ends with the same epoch count,
optimizer iterations and learning-rate schedule as an uninterrupted run:

- `TrainingBackup` saves weights and optimizer state (iteration counter
  included) every `every_seconds` of wall-clock time, optionally every
  `every_steps` steps, and at every epoch end. A backup is complete or
  absent: the weights go to a new file, then `training_metadata.json`, which
  names that file and the position (epoch, step of the epoch), is replaced
  atomically.
- `fit_resumable` restores the last backup and continues *inside* the
  interrupted epoch (with a data factory, the data stream too), through
  `fit_run`, which also ends a run at its `total_steps`. A later plain
  `model.fit` trains the epochs it is asked for.

Keras' own `keras.callbacks.BackupAndRestore` restarts an interrupted epoch
from its first step (a resumed run takes more optimizer steps than planned).
"""

import contextlib
import dataclasses
import glob
import json
import os
import time

import keras

from keras_preact.io import atomic_write
from keras_preact.training.callbacks import optimizer_iterations
from keras_preact.validation import check_int
from keras_preact.validation import check_real

METADATA_FILE = "training_metadata.json"
DEFAULT_BACKUP_SECONDS = 300.0


@dataclasses.dataclass(frozen=True)
class BackupState:
    """Where a backup stands.

    Attributes:
        epoch: int >= 0. The epoch in progress (0-based), i.e. the number of
            completed epochs.
        step: int in [0, steps_per_epoch). Steps of that epoch already done.
        steps_per_epoch: int > 0. Steps per epoch of the run that saved it.
        iterations: int or None. Optimizer iterations at the backup.
        weights_path: str. The `.weights.h5` file (model and optimizer).
        run: dict or None. What defines the run (its epochs and the
            `run_config` given to `fit_resumable`); None for a backup
            written by `TrainingBackup` without `run`.
    """

    epoch: int
    step: int
    steps_per_epoch: int
    iterations: object
    weights_path: str
    run: object = None

    @property
    def global_step(self):
        """Training steps done in the run: `epoch * steps_per_epoch + step`."""
        return self.epoch * self.steps_per_epoch + self.step

    def describe(self, epochs=None):
        total = f" of {epochs}" if epochs else ""
        return (
            f"epoch {self.epoch + 1}{total}, step {self.step} of "
            f"{self.steps_per_epoch} (optimizer iterations {self.iterations})"
        )


def read_backup(backup_dir):
    """Reads the position of the backup in `backup_dir`.

    Args:
        backup_dir: str. Folder written by `TrainingBackup`.

    Returns:
        `BackupState`, or None when the folder holds no complete backup.

    Raises:
        ValueError: the metadata file exists but is not a backup's.
    """
    path = os.path.join(backup_dir, METADATA_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        try:
            meta = json.load(f)
        except ValueError as e:
            raise ValueError(f"{path} is not valid JSON ({e}); it was not written "
                             "by TrainingBackup.") from e
    if not isinstance(meta, dict) or not {"epoch", "step", "steps_per_epoch",
                                          "weights"} <= set(meta):
        raise ValueError(
            f"{path} holds {meta!r:.200}, not a backup position (epoch, step, "
            "steps_per_epoch, weights). Move the folder away to start fresh."
        )
    epoch, step, spe = meta["epoch"], meta["step"], meta["steps_per_epoch"]
    valid = (isinstance(epoch, int) and isinstance(step, int) and epoch >= 0
             and isinstance(spe, int) and 0 <= step < spe)
    if not valid:
        raise ValueError(
            f"{path} gives epoch={epoch!r}, step={step!r}, steps_per_epoch={spe!r}; "
            "expected ints with epoch >= 0 and 0 <= step < steps_per_epoch. "
            "Move the folder away to start fresh."
        )
    weights = os.path.join(backup_dir, str(meta["weights"]))
    if not os.path.exists(weights):
        raise ValueError(f"{path} names {weights}, which does not exist.")
    return BackupState(epoch=epoch, step=step, steps_per_epoch=spe,
                       iterations=meta.get("iterations"), weights_path=weights,
                       run=meta.get("run"))


class TrainingBackup(keras.callbacks.Callback):
    """Saves crash-safe backups of a training run; see `fit_resumable`.

    A backup holds the model's weights and the optimizer's state (its
    iteration counter included) and the run's position: epoch and step of
    the epoch. It is taken every `every_seconds` seconds, every
    `every_steps` steps (if given) and at each epoch end. The previous
    backup is deleted only after the new one is complete.

    Used on its own in `model.fit`, it refuses to start over an existing
    backup (that would silently replace saved work): continue the run with
    `fit_resumable`, or remove the folder.

    Args:
        backup_dir: str. Folder of the backup.
        every_seconds: float > 0 or None. Wall-clock seconds between
            backups. Defaults to 300.
        every_steps: int > 0 or None. Steps between backups. Defaults to
            None (by time and at epoch ends only).
        run: JSON-serializable dict or None. What defines the run, stored
            with each backup so a resume can check it is the same run.

    Raises:
        ValueError: bad intervals; at the start of `fit`, an existing backup
            that was not restored, or a `fit` without a known number of
            steps per epoch.

    Example:

    >>> backup = TrainingBackup("/tmp/run/backup", every_seconds=600)
    """

    def __init__(self, backup_dir, every_seconds=DEFAULT_BACKUP_SECONDS,
                 every_steps=None, run=None):
        super().__init__()
        self.backup_dir = str(backup_dir)
        self.every_seconds = None if every_seconds is None else check_real(
            "every_seconds", every_seconds, low=1e-3)
        self.every_steps = None if every_steps is None else check_int(
            "every_steps", every_steps, low=1)
        self.run = run
        self._start = None
        self._reset()

    def _reset(self):
        self._steps_per_epoch = None
        self._epoch = 0
        self._step = self._epoch_offset = 0
        self._first_step = 0
        self._steps_since_save = 0
        self._last_save = time.monotonic()

    def start_at(self, state, steps_per_epoch):
        """Declares where the next `fit` starts: a restored `BackupState`.

        `fit_resumable` calls this before each of its `fit` calls.

        Args:
            state: `BackupState` or None (a fresh run).
            steps_per_epoch: int. The run's full steps per epoch.
        """
        self._start = (state, int(steps_per_epoch))

    def on_train_begin(self, logs=None):
        self._reset()
        if self._start is None:
            existing = read_backup(self.backup_dir)
            if existing is not None:
                raise ValueError(
                    f"{self.backup_dir} holds a backup at {existing.describe()}; "
                    "this fit would start over it. Continue that run with "
                    "keras_preact.training.fit_resumable(...), or move the folder away."
                )
            steps = self.params.get("steps")
            if not steps:
                raise ValueError(
                    "TrainingBackup needs a known number of steps per epoch: pass "
                    f"steps_per_epoch to fit. Received steps={steps!r}."
                )
            self._steps_per_epoch = int(steps)
        else:
            state, self._steps_per_epoch = self._start
            self._first_step = state.step if state is not None else 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._step, self._first_step = self._first_step, 0
        self._epoch_offset = self._step

    def on_train_batch_end(self, batch, logs=None):
        # `batch` is the last step of the call: with steps_per_execution > 1,
        # Keras calls this once per execution of several steps.
        step = self._epoch_offset + batch + 1
        self._steps_since_save += step - self._step
        self._step = step
        due_steps = self.every_steps and self._steps_since_save >= self.every_steps
        due_time = (self.every_seconds is not None
                    and time.monotonic() - self._last_save >= self.every_seconds)
        if (due_steps or due_time) and batch + 1 < self.params["steps"]:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        self._epoch, self._step = epoch + 1, 0
        self.save()

    def on_train_end(self, logs=None):
        self._start = None

    def save(self):
        """Writes a backup of the current position now."""
        os.makedirs(self.backup_dir, exist_ok=True)
        meta_path = os.path.join(self.backup_dir, METADATA_FILE)
        counter = 0
        if os.path.exists(meta_path):
            with open(meta_path) as f:
                counter = json.load(f).get("counter", 0)
        name = f"backup-{counter + 1}.weights.h5"
        # A new file each time: a crash while writing it leaves the previous
        # backup, still named by the metadata, intact.
        self.model.save_weights(os.path.join(self.backup_dir, name), overwrite=True)
        meta = {
            "epoch": self._epoch, "step": self._step,
            "steps_per_epoch": self._steps_per_epoch,
            "iterations": optimizer_iterations(self.model),
            "counter": counter + 1, "weights": name, "time": time.time(),
            "run": self.run,
        }
        atomic_write(meta_path, json.dumps(meta))
        for stale in glob.glob(os.path.join(self.backup_dir, "backup-*.weights.h5")):
            if os.path.basename(stale) != name:
                os.remove(stale)
        self._steps_since_save = 0
        self._last_save = time.monotonic()


def restore_backup(model, backup_dir, steps_per_epoch=None):
    """Loads the last backup in `backup_dir` into a compiled model.

    Args:
        model: compiled, built `keras.Model` of the run that saved it.
        backup_dir: str.
        steps_per_epoch: int or None. When given, must equal the backup's.

    Returns:
        The restored `BackupState`, or None (no backup: nothing loaded).

    Raises:
        ValueError: the model is not built, or `steps_per_epoch` differs
            from the backup's.
    """
    state = read_backup(backup_dir)
    if state is None:
        return None
    if steps_per_epoch is not None and state.steps_per_epoch != steps_per_epoch:
        raise ValueError(
            f"The backup in {backup_dir} was made with steps_per_epoch="
            f"{state.steps_per_epoch}; this run has steps_per_epoch={steps_per_epoch}. "
            "Resume with the run's original settings, or use a new output folder."
        )
    if not model.built:
        raise ValueError(f"Model {model.name!r} must be built before a backup is restored.")
    # In the model's tf.distribute strategy scope (TensorFlow): Mirrored and
    # MultiWorkerMirrored strategies refuse optimizer variables built outside it.
    strategy = getattr(model, "distribute_strategy", None)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        try:
            model.load_weights(state.weights_path)
        except (OSError, ValueError) as e:
            raise ValueError(
                f"Could not load the backup {state.weights_path} into model "
                f"{model.name!r}: {e}. It is damaged or belongs to another model; "
                f"move {backup_dir} away to start fresh."
            ) from e
    return dataclasses.replace(state, iterations=optimizer_iterations(model))


def _check_same_run(state, run, backup_dir):
    """Refuses a backup of another run (None: nothing to check)."""
    if state is None or state.run is None:
        return
    differ = [f"{key}: backup {state.run.get(key)!r}, this run {value!r}"
              for key, value in run.items() if state.run.get(key) != value]
    if differ:
        raise ValueError(
            f"The backup in {backup_dir} is of another run ({'; '.join(differ)}). "
            "Rerun with the original settings, or use a new output folder."
        )


def fit_inputs(data):
    """`(x, y, sample_weight)` for `model.fit` and `evaluate`: an `(x, y[,
    sample_weight])` tuple of arrays unpacked, other data (a dataset, a
    `PyDataset`, a generator: a stream Keras cannot shuffle) as `x`."""
    if isinstance(data, tuple):
        return keras.utils.unpack_x_y_sample_weight(data)
    return data, None, None


def last_epoch_steps(epochs, steps_per_epoch, total_steps=None):
    """The steps of a run's last epoch: `total_steps` (None: `epochs *
    steps_per_epoch`) less those of the others; a ValueError unless in
    `[1, steps_per_epoch]`."""
    full = (check_int("epochs", epochs, low=1) - 1) * check_int(
        "steps_per_epoch", steps_per_epoch, low=1)
    if total_steps is None:
        return steps_per_epoch
    return check_int("total_steps", total_steps, low=full + 1, high=full + steps_per_epoch) - full


class _RunProgbar(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, counting the epochs of the run, not of one `fit`."""

    def __init__(self, epochs):
        super().__init__()
        self.run_epochs = epochs

    def set_params(self, params):
        super().set_params({**params, "epochs": self.run_epochs})


def check_whole_executions(steps_per_execution, epochs, steps_per_epoch, total_steps=None,
                           epoch=0, step=0):
    """Refuses a run whose epochs (full, last, or the rest of the interrupted
    one at `epoch`, `step`) are not whole executions of `steps_per_execution`
    steps: Keras runs an epoch's last execution whole, past the epoch's end.

    Raises:
        ValueError: naming the epoch, its steps and the values that divide all.
    """
    last = last_epoch_steps(epochs, steps_per_epoch, total_steps)
    fits = {"an epoch": steps_per_epoch, "the last epoch": last,
            "the interrupted epoch": (steps_per_epoch if epoch < epochs - 1 else last) - step}
    for what, steps in fits.items():
        if steps % steps_per_execution:
            divisors = [d for d in range(1, steps + 1)
                        if all(s % d == 0 for s in fits.values() if s > 0)]
            raise ValueError(
                f"{what.capitalize()} of this run has {steps} steps, not a multiple of "
                f"steps_per_execution={steps_per_execution}: Keras would train "
                f"{-(-steps // steps_per_execution) * steps_per_execution}. Use a "
                f"steps_per_execution that divides every epoch's steps: {divisors}.")


def fit_run(model, train_data, *, epochs, steps_per_epoch, total_steps=None, epoch=0, step=0,
            before_fit=None, **fit_kwargs):
    """Trains a run from its epoch `epoch`, step `step` to its end.

    Each stretch of epochs of one length is one `model.fit` call: the rest of
    an interrupted epoch, the full epochs, and a last epoch cut at
    `total_steps` (evaluated like the others).

    Args:
        model, train_data, epochs, steps_per_epoch, total_steps: as in
            `fit_resumable` (without a backup).
        epoch, step: ints. Where the run is: epochs done, and steps done of
            the next one. Defaults to 0, 0 (its start).
        before_fit: callable or None, called before each `model.fit`.
        **fit_kwargs: other `model.fit` arguments; not `initial_epoch`.

    Returns:
        `keras.callbacks.History` of the epochs trained.

    Raises:
        ValueError: a bad run length, or an epoch (full, last or interrupted)
            that is not whole executions of the model's `steps_per_execution`.
    """
    last = last_epoch_steps(epochs, steps_per_epoch, total_steps)
    full_end = epochs if last == steps_per_epoch else epochs - 1
    check_whole_executions(getattr(model, "steps_per_execution", 1) or 1, epochs,
                           steps_per_epoch, total_steps, epoch, step)
    callbacks = list(fit_kwargs.pop("callbacks", None) or [])
    if not any(isinstance(c, keras.callbacks.ProgbarLogger) for c in callbacks):
        callbacks.append(_RunProgbar(epochs))  # silent with verbose=0, as Keras' own
    runs = []  # (first epoch, end epoch, steps of its first epoch already done)
    if step and epoch < epochs:
        runs, epoch = [(epoch, epoch + 1, step)], epoch + 1
    runs += [(epoch, full_end, 0)] if epoch < full_end else []
    runs += [(full_end, epochs, 0)] if epoch <= full_end < epochs else []
    history = keras.callbacks.History()
    history.epoch, history.history = [], {}
    for first, end, done in runs:
        if before_fit is not None:
            before_fit()
        data = train_data(first * steps_per_epoch + done) if callable(train_data) else train_data
        x, y, sample_weight = fit_inputs(data)
        h = model.fit(x, y, sample_weight=sample_weight, initial_epoch=first, epochs=end,
                      steps_per_epoch=(last if first == epochs - 1 else steps_per_epoch) - done,
                      callbacks=callbacks, **{"shuffle": isinstance(data, tuple), **fit_kwargs})
        history.epoch += h.epoch
        for key, values in h.history.items():
            history.history.setdefault(key, []).extend(values)
    history.set_model(model)
    return history


def fit_resumable(model, train_data, *, epochs, steps_per_epoch, backup_dir, total_steps=None,
                  every_seconds=DEFAULT_BACKUP_SECONDS, every_steps=None,
                  callbacks=None, log=print, run_config=None, **fit_kwargs):
    """`model.fit` that backs up as it goes and resumes where it stopped.

    It restores the last backup in `backup_dir`, then trains the rest of the
    interrupted epoch and the remaining epochs (`fit_run`) with
    `TrainingBackup`: it ends with exactly the epochs, optimizer iterations
    and schedule of an uninterrupted run. A finished run trains nothing.

    Args:
        model: compiled `keras.Model`.
        train_data: what `model.fit` takes, repeated forever (a dataset,
            `PyDataset`, generator, or an `(x, y[, sample_weight])` tuple of
            arrays), or a callable `start_step -> data` positioned at that
            step of the run (as `cifar_dataset(..., start_batch=...)`): then
            a resumed run sees the very batches an uninterrupted one would.
        epochs, steps_per_epoch: ints > 0.
        backup_dir: str. Folder of the backup (kept after training).
        total_steps: int or None. Steps of the whole run: the last epoch
            stops there. Defaults to None (`epochs * steps_per_epoch`).
        every_seconds, every_steps: backup intervals (see `TrainingBackup`).
        callbacks: list of `keras.callbacks.Callback` or None.
        log: callable taking a str, for the resume messages (`print`).
        run_config: JSON-serializable dict or None. What else defines the
            run (batch size, model, schedule, ...): a backup made with other
            values, or with other `epochs` or `total_steps`, is refused
            instead of silently continued with another schedule.
        **fit_kwargs: other `model.fit` arguments (`validation_data`,
            `verbose`, ...); not `initial_epoch`.

    Returns:
        `keras.callbacks.History` of the epochs trained by this call.

    Raises:
        ValueError: a bad run length, an epoch that is not whole executions
            of the model's `steps_per_execution`, `initial_epoch` given, a
            backup of another run (other length or `run_config`), or a
            damaged backup.

    Example:

    >>> history = fit_resumable(model, lambda step: cifar_dataset(
    ...     x, y, training=True, batch_size=128, seed=0, repeat=True,
    ...     start_batch=step), epochs=164, steps_per_epoch=391, total_steps=64000,
    ...     backup_dir="runs/c100/backup")
    """
    last_epoch_steps(epochs, steps_per_epoch, total_steps)
    if "initial_epoch" in fit_kwargs:
        raise ValueError("fit_resumable chooses initial_epoch from the backup; "
                         f"received initial_epoch={fit_kwargs['initial_epoch']!r}.")
    length = {} if total_steps is None else {"total_steps": total_steps}
    run = json.loads(json.dumps({"epochs": epochs, **length, **(run_config or {})}))
    _check_same_run(read_backup(backup_dir), run, backup_dir)
    state = restore_backup(model, backup_dir, steps_per_epoch)
    if state is None:
        log(f"no backup in {backup_dir}: starting fresh")
        epoch, step = 0, 0
    elif state.epoch >= epochs:
        log(f"the backup in {backup_dir} is at the end of the run ({epochs} epochs, "
            f"optimizer iterations {state.iterations}): nothing to train. Move the "
            "folder away to train again.")
        epoch, step = state.epoch, state.step
    else:
        log(f"resuming from {state.weights_path}: {state.describe(epochs)}")
        epoch, step = state.epoch, state.step
        if step:
            steps = last_epoch_steps(epochs, steps_per_epoch, total_steps) \
                if epoch == epochs - 1 else steps_per_epoch
            log(f"epoch {epoch + 1} runs its remaining {steps - step} of {steps} steps; its "
                "logged training metrics cover those only")
    backup = TrainingBackup(backup_dir, every_seconds=every_seconds,
                            every_steps=every_steps, run=run)
    starts = [state]

    def before_fit():
        # The first fit starts at the restored position, the others at their epoch's start.
        backup.start_at(starts.pop() if starts else None, steps_per_epoch)

    return fit_run(model, train_data, epochs=epochs, steps_per_epoch=steps_per_epoch,
                   total_steps=total_steps, epoch=epoch, step=step, before_fit=before_fit,
                   callbacks=[backup, *(callbacks or [])], **fit_kwargs)
