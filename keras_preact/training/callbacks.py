"""Callbacks for long, resumable training runs.

- Backups and resume live in `keras_preact.training.resume`
  (`TrainingBackup`, `fit_resumable`).
- `AtomicModelCheckpoint`: the whole model as `.keras` each epoch, atomically.
- `MetricsWriter`: per-epoch metrics (plus learning rate and optimizer
  iterations) to `metrics.csv` and `metrics.json`, both written atomically and
  keyed by epoch, so a resumed run continues them without duplicates.
- `TrainingCurvesPlot`: a PNG of the loss and test-error curves at the end of
  training (`keras_preact.diagnostics.plot_training_curves`).
- `RunTimeEstimate`: after a few steps, prints the measured time per step
  and what the whole run will take on this machine.
- `make_callbacks`: the standard set used by the example scripts.
"""

import csv
import importlib.util
import io
import json
import math
import os
import time

import keras

from keras_preact.diagnostics.plotting import plot_training_curves
from keras_preact.io import atomic_path
from keras_preact.io import atomic_write
from keras_preact.validation import check_int


def _to_float(value):
    try:
        value = float(keras.ops.convert_to_numpy(value))
    except Exception:
        return None
    return value if math.isfinite(value) else None


def optimizer_iterations(model):
    """`model`'s optimizer step counter as an int (None without an optimizer)."""
    optimizer = model.optimizer
    return None if optimizer is None else int(keras.ops.convert_to_numpy(optimizer.iterations))


class AtomicModelCheckpoint(keras.callbacks.Callback):
    """Saves the whole model (`.keras`) at each epoch end, atomically.

    Written with `keras_preact.io.atomic_path`: a crash never leaves a
    truncated checkpoint.

    Args:
        filepath: str. Path ending in ".keras".

    Raises:
        ValueError: `filepath` does not end in ".keras".
    """

    def __init__(self, filepath):
        super().__init__()
        if not str(filepath).endswith(".keras"):
            raise ValueError(f"Expected filepath to end with '.keras'. "
                             f"Received: filepath={filepath!r}")
        self.filepath = str(filepath)

    def on_epoch_end(self, epoch, logs=None):
        with atomic_path(self.filepath) as tmp:
            self.model.save(tmp)


class MetricsWriter(keras.callbacks.Callback):
    """Writes per-epoch logs to CSV and JSON, atomically, keyed by epoch.

    Each row holds `epoch` (0-based), every log value (loss, metrics, val_*),
    `learning_rate` (at the end of the epoch) and `iterations` (optimizer
    steps so far). When a file already exists (a resumed run), rows of
    epochs before the first epoch of this `fit()` are kept and later ones
    replaced.

    Args:
        csv_path: str or None. Defaults to None (no CSV).
        json_path: str or None. Defaults to None (no JSON).
        extra: dict or None. Stored under "run" in the JSON (the run's
            settings).
    """

    def __init__(self, csv_path=None, json_path=None, extra=None):
        super().__init__()
        if csv_path is None and json_path is None:
            raise ValueError("MetricsWriter needs csv_path or json_path; received neither.")
        self.csv_path = csv_path
        self.json_path = json_path
        self.extra = dict(extra or {})
        self.rows = []

    def _load(self):
        if self.json_path and os.path.exists(self.json_path):
            with open(self.json_path) as f:
                return json.load(f).get("epochs", [])
        if self.csv_path and os.path.exists(self.csv_path):
            with open(self.csv_path, newline="") as f:
                return [
                    {k: (int(v) if k in ("epoch", "iterations") else _to_float(v))
                     for k, v in row.items() if v != ""}
                    for row in csv.DictReader(f)
                ]
        return []

    def on_train_begin(self, logs=None):
        self.rows = self._load()

    def on_epoch_begin(self, epoch, logs=None):
        # Drop rows of epochs that will be (re)done, e.g. after a resume.
        self.rows = [r for r in self.rows if r["epoch"] < epoch]

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch, **{k: _to_float(v) for k, v in (logs or {}).items()}}
        optimizer = self.model.optimizer
        if optimizer is not None:
            row["learning_rate"] = _to_float(optimizer.learning_rate)
            row["iterations"] = optimizer_iterations(self.model)
        self.rows = [r for r in self.rows if r["epoch"] < epoch] + [row]
        self._write()

    def _write(self):
        if self.json_path:
            payload = {"run": self.extra, "epochs": self.rows}
            atomic_write(self.json_path, json.dumps(payload, indent=1))
        if self.csv_path:
            keys = []
            for row in self.rows:
                keys += [k for k in row if k not in keys]
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.rows)
            atomic_write(self.csv_path, buf.getvalue())


class TrainingCurvesPlot(keras.callbacks.Callback):
    """Draws the curves of a `MetricsWriter` to a PNG when training ends.

    Args:
        metrics_writer: `MetricsWriter`. Source of the rows (all epochs,
            including those of earlier, resumed runs).
        path: str. Output PNG path.
        title: str or None.
    """

    def __init__(self, metrics_writer, path, title=None):
        super().__init__()
        self.metrics_writer = metrics_writer
        self.path = path
        self.title = title

    def on_train_end(self, logs=None):
        if self.metrics_writer.rows:
            plot_training_curves({"this run": self.metrics_writer.rows}, self.path, self.title)


class RunTimeEstimate(keras.callbacks.Callback):
    """Prints the measured time per step and how long the run will take.

    Once per `fit`: the first `skip_steps` steps (compilation, warm-up) are
    not timed, the next `measure_steps` are. The steps left are
    `total_steps` minus the optimizer's iteration counter, i.e. this assumes
    the counter counts the run's steps (a model trained only by this run).

    Args:
        total_steps: int > 0. Training steps of the whole run.
        skip_steps: int >= 0. Defaults to 2.
        measure_steps: int > 0. Defaults to 3.
        log: callable taking a str. Defaults to printing it on a line of
            its own (not after a progress bar).

    Raises:
        ValueError: a count out of range.
    """

    def __init__(self, total_steps, skip_steps=2, measure_steps=3, log=None):
        super().__init__()
        self.total_steps = check_int("total_steps", total_steps, low=1)
        self.skip_steps = check_int("skip_steps", skip_steps, low=0)
        self.measure_steps = check_int("measure_steps", measure_steps, low=1)
        self.log = log or _print_below_progress_bar

    def on_train_begin(self, logs=None):
        self._first = optimizer_iterations(self.model)
        self._t0 = time.perf_counter() if self.skip_steps == 0 else None
        self._timed_from = 0

    def on_train_batch_end(self, batch, logs=None):
        if self._first is None:
            return
        # Steps by the optimizer's counter: one call may be several steps
        # (steps_per_execution > 1).
        done = optimizer_iterations(self.model) - self._first
        if self._t0 is None and done >= self.skip_steps:
            self._t0, self._timed_from = time.perf_counter(), done
        elif self._t0 is not None and done - self._timed_from >= self.measure_steps:
            per_step = (time.perf_counter() - self._t0) / (done - self._timed_from)
            self._first = None
            left = max(0, self.total_steps - optimizer_iterations(self.model))
            self.log(
                f"measured {per_step:.3g} s/step: the full run ({self.total_steps:,} "
                f"steps) takes about {format_duration(self.total_steps * per_step)} "
                f"on this machine; {left:,} steps "
                f"({format_duration(left * per_step)}) remain"
            )


def _print_below_progress_bar(message):
    print("\n" + message, flush=True)


def format_duration(seconds):
    """'45 s', '12 min', '3.4 h' or '2.1 days'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def make_callbacks(output_dir, *, checkpoint=True, tensorboard=True, plot=True, run_info=None):
    """The standard callbacks of the example scripts, all under `output_dir`.

    - `checkpoints/last.keras` : `AtomicModelCheckpoint` (whole model with
      optimizer state, every epoch).
    - `logs/` : `keras.callbacks.TensorBoard` (when the `tensorboard`
      package is installed).
    - `metrics.csv`, `metrics.json` : `MetricsWriter`.
    - `curves.png` : `TrainingCurvesPlot`.

    Backups are taken by `keras_preact.training.fit_resumable` itself.

    Args:
        output_dir: str. Folder for everything.
        checkpoint: bool. Defaults to True.
        tensorboard: bool. Defaults to True.
        plot: bool. Defaults to True.
        run_info: dict or None. Stored in metrics.json under "run".

    Returns:
        list of `keras.callbacks.Callback`.
    """
    os.makedirs(output_dir, exist_ok=True)
    writer = MetricsWriter(os.path.join(output_dir, "metrics.csv"),
                           os.path.join(output_dir, "metrics.json"), extra=run_info)
    callbacks = [writer]
    if checkpoint:  # atomic_path makes the folder.
        callbacks.append(AtomicModelCheckpoint(os.path.join(output_dir, "checkpoints",
                                                            "last.keras")))
    if tensorboard and importlib.util.find_spec("tensorboard") is None:
        print("TensorBoard logs skipped: the `tensorboard` package is not installed.")
    elif tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(
            log_dir=os.path.join(output_dir, "logs"), update_freq="epoch"))
    if plot:
        callbacks.append(TrainingCurvesPlot(writer, os.path.join(output_dir, "curves.png")))
    return callbacks
