"""Callbacks for long, resumable training runs.

- `AtomicBackupAndRestore`: `keras.callbacks.BackupAndRestore` whose backups
  are crash-safe (a `kill -9` while saving never leaves a half-written backup)
  and which also saves at every epoch end, so a finished epoch is never redone.
- `AtomicModelCheckpoint`: the whole model as `.keras` each epoch, atomically.
- `MetricsWriter`: per-epoch metrics (plus learning rate and optimizer
  iterations) to `metrics.csv` and `metrics.json`, both written atomically and
  keyed by epoch, so a resumed run continues them without duplicates.
- `TrainingCurvesPlot`: a PNG of loss / accuracy curves at the end of training
  (matplotlib's Agg renderer, no pyplot state touched).
- `make_callbacks`: the standard set used by the example scripts.
"""

import csv
import io
import json
import math
import os
import tempfile

import keras


def _atomic_write_text(path, text):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are for sharing.
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _to_float(value):
    try:
        value = float(keras.ops.convert_to_numpy(value))
    except Exception:
        return None
    return value if math.isfinite(value) else None


def current_learning_rate(optimizer):
    """The optimizer's current learning rate as a Python float."""
    return _to_float(optimizer.learning_rate)


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` with crash-safe backups and epoch-end saves.

    Each backup writes the weights (model + optimizer state, including the
    iteration counter) to a new file, then atomically replaces
    `training_metadata.json`, which names that file; the previous weights
    file is removed only afterwards. So the metadata always points at a
    complete backup. With an integer `save_freq` (in batches), a backup is
    also taken at every epoch end. After a crash mid-epoch, rerunning the
    same `fit()` restarts that epoch's data from its first batch, from the
    weights and optimizer state of the last backup (at most `save_freq`
    steps of work are lost; the iteration counter counts the steps actually
    taken, so the run ends a few steps past `epochs * steps_per_epoch`).

    Args:
        backup_dir: str. Folder for the backup.
        save_freq: "epoch" or int (batches). Defaults to "epoch".
        delete_checkpoint: bool. Remove the backup when training ends.
            Defaults to True.

    Example:

    >>> cb = AtomicBackupAndRestore("/tmp/backup", save_freq=100)
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
        super().__init__(
            backup_dir, save_freq=save_freq, delete_checkpoint=delete_checkpoint
        )
        self.restored = None

    def _read_metadata(self):
        if not os.path.exists(self._training_metadata_path):
            return None
        with open(self._training_metadata_path) as f:
            return json.load(f)

    def _load_model(self):
        metadata = self._read_metadata()
        if metadata is None or "weights" not in metadata:
            return
        if not self.model.built:
            raise ValueError(
                "AtomicBackupAndRestore needs a built model before fit(). "
                f"Model {self.model.name} is not built."
            )
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(self.backup_dir, metadata["weights"]))
        self.model._initial_epoch = metadata["epoch"]
        self._current_epoch = metadata["epoch"]
        self.restored = metadata
        iterations = (
            int(keras.ops.convert_to_numpy(optimizer.iterations))
            if optimizer is not None
            else None
        )
        print(
            f"Restored backup: resuming at epoch {metadata['epoch'] + 1} "
            f"(optimizer iterations={iterations})",
            flush=True,
        )

    def on_train_begin(self, logs=None):
        self._load_model()

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        previous = self._read_metadata()
        counter = (previous or {}).get("counter", 0) + 1
        name = f"backup-{counter}.weights.h5"
        self.model.save_weights(os.path.join(self.backup_dir, name), overwrite=True)
        metadata = {
            "epoch": self._current_epoch,
            "batch": self._last_batch_seen,
            "counter": counter,
            "weights": name,
        }
        _atomic_write_text(self._training_metadata_path, json.dumps(metadata))
        if previous and previous.get("weights") and previous["weights"] != name:
            old = os.path.join(self.backup_dir, previous["weights"])
            if os.path.exists(old):
                os.remove(old)

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        self._last_batch_seen = 0
        self._batches_seen_since_last_saving = 0
        self._save_model()


class AtomicModelCheckpoint(keras.callbacks.Callback):
    """Saves the whole model (`.keras`) at each epoch end, atomically.

    The model is written to a temporary file in the same folder, then moved
    over `filepath` with `os.replace`, so a crash never leaves a truncated
    checkpoint.

    Args:
        filepath: str. Path ending in ".keras".
    """

    def __init__(self, filepath):
        super().__init__()
        if not str(filepath).endswith(".keras"):
            raise ValueError(
                f"Expected filepath to end with '.keras'. Received: filepath={filepath!r}"
            )
        self.filepath = str(filepath)

    def on_epoch_end(self, epoch, logs=None):
        folder = os.path.dirname(os.path.abspath(self.filepath))
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, ".tmp-" + os.path.basename(self.filepath))
        self.model.save(tmp)
        os.replace(tmp, self.filepath)


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
        row = {"epoch": epoch}
        for key, value in (logs or {}).items():
            row[key] = _to_float(value)
        optimizer = self.model.optimizer
        if optimizer is not None:
            row["learning_rate"] = current_learning_rate(optimizer)
            row["iterations"] = int(keras.ops.convert_to_numpy(optimizer.iterations))
        self.rows = [r for r in self.rows if r["epoch"] < epoch] + [row]
        self._write()

    def _write(self):
        if self.json_path:
            payload = {"run": self.extra, "epochs": self.rows}
            _atomic_write_text(self.json_path, json.dumps(payload, indent=1))
        if self.csv_path:
            keys = []
            for row in self.rows:
                keys += [k for k in row if k not in keys]
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.rows)
            _atomic_write_text(self.csv_path, buf.getvalue())


def plot_training_curves(rows, path, title=None):
    """Saves a PNG of loss and accuracy curves.

    Args:
        rows: list of dict. Per-epoch rows as written by `MetricsWriter`.
        path: str. Output PNG path (written atomically).
        title: str or None. Figure title.

    Returns:
        `path`.
    """
    # A bare Figure renders with Agg and leaves pyplot's backend (e.g. a
    # notebook's inline one) alone.
    from matplotlib.figure import Figure

    epochs = [r["epoch"] + 1 for r in rows]
    groups = [("loss", ["loss", "val_loss"])]
    acc_keys = sorted({k for r in rows for k in r if "top" in k or "acc" in k})
    if acc_keys:
        groups.append(("accuracy", acc_keys))
    if any("learning_rate" in r for r in rows):
        groups.append(("learning rate", ["learning_rate"]))
    fig = Figure(figsize=(5 * len(groups), 4))
    axes = fig.subplots(1, len(groups), squeeze=False)
    for ax, (label, keys) in zip(axes[0], groups):
        for key in keys:
            points = [(e, r[key]) for e, r in zip(epochs, rows) if r.get(key) is not None]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o", markersize=3, label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        if label == "learning rate":
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, ".tmp-" + os.path.basename(path))
    fig.savefig(tmp, format="png", dpi=100)
    os.replace(tmp, path)
    return path


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
            plot_training_curves(self.metrics_writer.rows, self.path, self.title)


def _tensorboard_available():
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def make_callbacks(
    output_dir,
    *,
    backup_save_freq=None,
    keep_backup=True,
    checkpoint=True,
    tensorboard=True,
    plot=True,
    run_info=None,
):
    """The standard callbacks of the example scripts, all under `output_dir`.

    - `backup/` : `AtomicBackupAndRestore` (only if `backup_save_freq` is
      given: int batches or "epoch"). Kept after training by default, so
      rerunning a finished command trains no further epochs (it restores,
      re-evaluates and re-plots); delete the folder to start over.
    - `checkpoints/last.keras` : `AtomicModelCheckpoint` (whole model with
      optimizer state, every epoch).
    - `logs/` : `keras.callbacks.TensorBoard` (when the `tensorboard`
      package is installed).
    - `metrics.csv`, `metrics.json` : `MetricsWriter`.
    - `curves.png` : `TrainingCurvesPlot`.

    Args:
        output_dir: str. Folder for everything.
        backup_save_freq: None, "epoch" or int. Defaults to None (no backup).
        keep_backup: bool. Keep `backup/` when training ends. Defaults to True.
        checkpoint: bool. Defaults to True.
        tensorboard: bool. Defaults to True.
        plot: bool. Defaults to True.
        run_info: dict or None. Stored in metrics.json under "run".

    Returns:
        list of `keras.callbacks.Callback`.
    """
    os.makedirs(output_dir, exist_ok=True)
    callbacks = []
    if backup_save_freq is not None:
        callbacks.append(
            AtomicBackupAndRestore(
                os.path.join(output_dir, "backup"),
                save_freq=backup_save_freq,
                delete_checkpoint=not keep_backup,
            )
        )
    writer = MetricsWriter(
        csv_path=os.path.join(output_dir, "metrics.csv"),
        json_path=os.path.join(output_dir, "metrics.json"),
        extra=run_info,
    )
    callbacks.append(writer)
    if checkpoint:
        ckpt_dir = os.path.join(output_dir, "checkpoints")
        os.makedirs(ckpt_dir, exist_ok=True)
        callbacks.append(
            AtomicModelCheckpoint(os.path.join(ckpt_dir, "last.keras"))
        )
    if tensorboard and not _tensorboard_available():
        print("TensorBoard logs skipped: the `tensorboard` package is not installed.")
    elif tensorboard:
        callbacks.append(
            keras.callbacks.TensorBoard(
                log_dir=os.path.join(output_dir, "logs"), update_freq="epoch"
            )
        )
    if plot:
        callbacks.append(
            TrainingCurvesPlot(writer, os.path.join(output_dir, "curves.png"))
        )
    return callbacks
