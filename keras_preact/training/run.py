"""`train_and_evaluate`: trains a compiled model as a `TrainingRun` describes.

It prints what the run uses, trains (resumable through `fit_resumable` with
`resume=True`), evaluates, and writes under `output_dir`:

    checkpoints/last.keras     the whole model, at each epoch end
    metrics.csv, metrics.json  per-epoch metrics (`MetricsWriter`)
    curves.png                 the loss and error curves
    final_metrics.json         the final evaluation and optimizer iterations
    logs/                      TensorBoard logs (`tensorboard=True`)
    backup/                    the backups of a resumable run (`resume=True`)
    export/<export_name>/<v>/  a SavedModel version (`export_name` given)
"""

import dataclasses
import os
import tempfile
import time
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import keras

from keras_preact.io import atomic_write_json
from keras_preact.training.banner import describe_end
from keras_preact.training.banner import describe_start
from keras_preact.training.callbacks import RunTimeEstimate
from keras_preact.training.callbacks import make_callbacks
from keras_preact.training.callbacks import optimizer_iterations
from keras_preact.training.distribute import DistributionSetup
from keras_preact.training.resume import DEFAULT_BACKUP_SECONDS
from keras_preact.training.resume import fit_inputs
from keras_preact.training.resume import fit_resumable
from keras_preact.training.resume import fit_run
from keras_preact.training.resume import last_epoch_steps
from keras_preact.validation import check_choice
from keras_preact.validation import check_int
from keras_preact.validation import check_real


@dataclasses.dataclass(frozen=True)
class TrainingRun:
    """What a training run does, where it writes and how it is shown.

    Attributes:
        output_dir: str. Where the run writes (see `keras_preact.training.run`).
        epochs: int > 0. Epochs of the whole run.
        steps_per_epoch: int > 0. Training steps per epoch.
        total_steps: int > 0 or None. Steps of the whole run: the last epoch
            stops there. Defaults to None (`epochs * steps_per_epoch`).
        validation_steps: int > 0 or None. Batches of each validation and
            of the final evaluation; None: all. Defaults to None.
        resume: bool. Back up while training and continue from the last
            backup in `output_dir/backup` (`fit_resumable`). Defaults to False.
        backup_every_seconds: float > 0. Defaults to 300.
        backup_every_steps: int > 0 or None. Defaults to None (backups by
            time and at each epoch end only).
        tensorboard: bool. Defaults to True.
        export_name: str or None. The name of a SavedModel exported at the
            end to `output_dir/export`. Defaults to None (no export).
        verbose: 0, 1 or 2. `model.fit`'s verbosity; 0 also leaves out the
            opening and closing lines. Defaults to 1.
        run_config: JSON-serializable dict. What identifies the run besides
            its epochs (model, batch size, schedule, ...): kept with the
            backups, so a resume with other values is refused, and written
            to metrics.json and final_metrics.json. Defaults to `{}`.
        title: str or None. What is trained, e.g. "PreActResNet-164 on
            CIFAR-100". Defaults to the model's name.
        global_batch_size: int > 0 or None. Shown in the opening lines.
        jit_compile: True, False, "auto" or None. The `jit_compile` given
            to `compile`, shown beside what Keras resolved it to. Defaults
            to None (the resolved value only).
        quick_look: str or None. A command that runs a few steps of this
            run, shown when no GPU or TPU is found.

    Raises:
        ValueError: a value out of range.
    """

    output_dir: str
    epochs: int
    steps_per_epoch: int
    validation_steps: int | None = None
    resume: bool = False
    backup_every_seconds: float = DEFAULT_BACKUP_SECONDS
    backup_every_steps: int | None = None
    tensorboard: bool = True
    export_name: str | None = None
    verbose: int = 1
    run_config: dict = dataclasses.field(default_factory=dict, hash=False)
    title: str | None = None
    global_batch_size: int | None = None
    jit_compile: bool | str | None = None
    quick_look: str | None = None
    total_steps: int | None = None

    def __post_init__(self):
        for name in ("validation_steps", "backup_every_steps", "global_batch_size"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), low=1)
        last_epoch_steps(self.epochs, self.steps_per_epoch, self.total_steps)
        check_real("backup_every_seconds", self.backup_every_seconds, low=1e-3)
        check_choice("verbose", self.verbose, (0, 1, 2))
        check_choice("jit_compile", self.jit_compile, (None, True, False, "auto"))

    @property
    def steps(self):
        """Training steps of the whole run."""
        return self.total_steps or self.epochs * self.steps_per_epoch


@dataclasses.dataclass(frozen=True)
class TrainingResult:
    """What `train_and_evaluate` returns.

    Attributes:
        metrics: dict of str to float. The final evaluation ("loss",
            "top1", "top5", ...); empty without validation data.
        iterations: int. Optimizer iterations at the end of the run.
        history: `keras.callbacks.History` of the epochs this call trained.
        train_seconds: float. Training time of this call (earlier sessions
            of a resumed run not included).
        export_path: str or None. The SavedModel version folder, when exported.
    """

    metrics: dict
    iterations: int
    history: keras.callbacks.History
    train_seconds: float
    export_path: str | None = None


def train_and_evaluate(
    model: keras.Model,
    train_data: Any | Callable[[int], Any],
    run: TrainingRun,
    *,
    validation_data: Any = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    distribution: DistributionSetup | None = None,
) -> TrainingResult:
    """Trains a compiled model as `run` says, evaluates it and writes the results.

    Prints the opening lines (`describe_start`), trains with the callbacks
    of `make_callbacks` (through `fit_resumable` when `run.resume`),
    evaluates on `validation_data`, writes `final_metrics.json`, exports
    when `run.export_name` is set, and prints the closing lines.

    Args:
        model: compiled `keras.Model` (built and compiled in
            `distribution.scope()` when distributed).
        train_data: the training batches, repeated for the whole run (a
            `tf.data.Dataset`, `keras.utils.PyDataset` or generator), an `(x,
            y[, sample_weight])` tuple of arrays, or a function `start_step ->
            such data` starting at a training step (see `fit_resumable`).
        run: `TrainingRun`.
        validation_data: what `model.fit` takes as `validation_data`, or
            None. Defaults to None.
        callbacks: more `keras.callbacks.Callback`s. Defaults to none.
        distribution: `DistributionSetup` or None. Shown in the opening
            lines. Defaults to None.

    Returns:
        `TrainingResult`.

    Raises:
        ValueError: a model that is not compiled; a backup of another run
            (`fit_resumable`).

    Example:

    >>> model = compile_for_paper(keras_preact.PreActResNet20(classes=100), 0.1)
    >>> result = train_and_evaluate(
    ...     model, lambda step: cifar_dataset(x, y, training=True, batch_size=128,
    ...                                       repeat=True, start_batch=step),
    ...     TrainingRun("runs/c100", epochs=2, steps_per_epoch=391, resume=True),
    ...     validation_data=cifar_dataset(x_test, y_test, training=False, batch_size=128))
    >>> result.metrics["top1"]
    """
    if not getattr(model, "compiled", False):
        raise ValueError(f"Model {model.name!r} is not compiled: compile it first, e.g. "
                         "with keras_preact.training.compile_for_paper(model, ...).")
    if run.verbose:
        print(describe_start(model, run, distribution), flush=True)
    callbacks = [*make_callbacks(run.output_dir, tensorboard=run.tensorboard,
                                 run_info=run.run_config), *callbacks]
    if run.verbose:
        callbacks.append(RunTimeEstimate(run.steps))
    fit_kwargs = dict(epochs=run.epochs, steps_per_epoch=run.steps_per_epoch,
                      total_steps=run.total_steps,
                      validation_data=validation_data, validation_steps=run.validation_steps,
                      callbacks=callbacks, verbose=run.verbose)
    start = time.monotonic()
    if run.resume:
        history = fit_resumable(
            model, train_data, backup_dir=os.path.join(run.output_dir, "backup"),
            every_seconds=run.backup_every_seconds, every_steps=run.backup_every_steps,
            run_config=run.run_config, log=print if run.verbose else (lambda text: None),
            **fit_kwargs)
    else:
        history = fit_run(model, train_data, **fit_kwargs)
    train_seconds = round(time.monotonic() - start, 2)
    metrics = {}
    if validation_data is not None:
        x, y, weights = fit_inputs(validation_data)
        logs = model.evaluate(x, y, sample_weight=weights, steps=run.validation_steps,
                              return_dict=True, verbose=0)
        metrics = {name: float(value) for name, value in logs.items()}
    result = TrainingResult(metrics, optimizer_iterations(model), history, train_seconds)
    atomic_write_json(os.path.join(run.output_dir, "final_metrics.json"), {
        "final": metrics, "iterations": result.iterations, "epochs": run.epochs,
        "train_seconds_this_process": train_seconds, "run": run.run_config}, indent=1)
    if run.export_name:
        path = _export(model, os.path.join(run.output_dir, "export"), run.export_name)
        result = dataclasses.replace(result, export_path=path)
    if run.verbose:
        print(describe_end(run, result), flush=True)
    return result


def _export(model, export_base, model_name):
    """Exports a SavedModel through `keras_preact.export`; returns its version folder.

    On backends that cannot write a SavedModel themselves (torch), the model
    is saved to a temporary `.keras` file and exported from it by
    `python -m keras_preact.export`, which runs under TensorFlow.
    """
    from keras_preact.export import SUPPORTED_BACKENDS
    from keras_preact.export import export_saved_model
    from keras_preact.export import next_version

    if keras.backend.backend() in SUPPORTED_BACKENDS:
        path = export_saved_model(model, export_base, model_name)
    else:
        from keras_preact.export.__main__ import main as export_main

        version = next_version(os.path.join(export_base, model_name))
        with tempfile.TemporaryDirectory() as folder:
            keras_path = os.path.join(folder, f"{model_name}.keras")
            model.save(keras_path)
            code = export_main(["--model", keras_path, "--export-base", export_base,
                                "--model-name", model_name, "--version", str(version)])
        if code:
            raise RuntimeError(f"SavedModel export of model {model.name!r} failed (exit {code}).")
        path = os.path.join(export_base, model_name, str(version))
    print(f"Exported SavedModel: {path}", flush=True)
    return path
