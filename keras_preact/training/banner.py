"""The opening and closing lines of a training run (`train_and_evaluate` prints them)."""

import math
import os
from typing import TYPE_CHECKING

import keras

from keras_preact.paper_results import paper_network
from keras_preact.training.distribute import DistributionSetup
from keras_preact.training.precision import list_devices
from keras_preact.training.resume import last_epoch_steps

if TYPE_CHECKING:
    from keras_preact.training.run import TrainingResult
    from keras_preact.training.run import TrainingRun


def _output_paths(run):
    """(kind, path) of what the run writes, backups apart."""
    out = run.output_dir
    paths = [("checkpoint", os.path.join(out, "checkpoints", "last.keras")),
             ("metrics", f"{os.path.join(out, 'metrics.csv')}, "
                         f"{os.path.join(out, 'metrics.json')}"),
             ("plot", os.path.join(out, "curves.png")),
             ("summary", os.path.join(out, "final_metrics.json"))]
    if run.tensorboard:
        paths.append(("logs", os.path.join(out, "logs")))
    return paths


def describe_start(model: keras.Model, run: "TrainingRun",
                   distribution: DistributionSetup | None = None) -> str:
    """The run's opening lines: what trains where, with what, and where results go.

    The trainable parameter count is called the paper's only where it
    equals the count of one of the paper's networks
    (`keras_preact.paper_results.PARAMETER_COUNTS`).
    """
    trainable = sum(math.prod(v.shape) for v in model.trainable_weights)
    frozen = sum(math.prod(v.shape) for v in model.non_trainable_weights)
    network = paper_network(trainable)
    paper = "" if network is None else (
        f" (the paper's count for {network[0]} at {network[1]} classes)")
    replicas, distribute = (1, "none") if distribution is None else (
        distribution.num_replicas, distribution.kind)
    batch = "" if run.global_batch_size is None else (
        f", global batch {run.global_batch_size} ({run.global_batch_size // replicas} x "
        f"{replicas} replicas)")
    last = last_epoch_steps(run.epochs, run.steps_per_epoch, run.total_steps)
    epochs = f"1 epoch of {last} steps" if run.epochs == 1 else (
        f"{run.epochs} epochs of {run.steps_per_epoch} steps"
        + (f" (the last of {last})" if last != run.steps_per_epoch else ""))
    jit = f"jit_compile={model.jit_compile}"
    if run.jit_compile == "auto":
        jit = f"jit_compile=auto (Keras' default, resolved to {model.jit_compile})"
    elif run.jit_compile is not None and run.jit_compile != model.jit_compile:
        jit = f"jit_compile={run.jit_compile} (Keras uses {model.jit_compile})"
    spe = model.steps_per_execution
    spe_default = " (Keras' default)" if spe == 1 else ""
    devices = list_devices()
    lines = [
        f"keras_preact: {run.title or model.name}",
        f"  backend    {keras.backend.backend()}, devices: {', '.join(devices)}",
        f"  model      {model.name}: {trainable:,} trainable parameters{paper}, "
        f"{frozen:,} non-trainable",
        f"  run        {run.steps:,} steps: {epochs}{batch}, dtype policy "
        f"{model.dtype_policy.name}, distribute {distribute}",
        f"  compile    {jit}, steps_per_execution={spe}{spe_default}, image data format "
        f"{keras.config.image_data_format()} (keras.config)",
    ]
    if run.resume:
        every = f"every {run.backup_every_seconds:g} s"
        if run.backup_every_steps:
            every += f", every {run.backup_every_steps} steps"
        lines.append(f"  backups    {os.path.join(run.output_dir, 'backup')} ({every} and "
                     "at each epoch end)")
    else:
        lines.append("  backups    none (the run is not resumable)")
    lines += [f"  {kind:<10} {path}" for kind, path in _output_paths(run)]
    if all(d.startswith("cpu") for d in devices):
        lines.append(f"  No GPU or TPU found: training runs on the CPU ({os.cpu_count()} "
                     "cores). The time per step is measured after the first steps, with "
                     "the estimate for this run.")
        if run.quick_look:
            lines.append(f"  A quick look (a few steps): {run.quick_look}")
    return "\n".join(lines)


def describe_end(run: "TrainingRun", result: "TrainingResult") -> str:
    """The run's closing lines: optimizer iterations, final metrics and paths."""
    lines = [f"Optimizer iterations: {result.iterations}"]
    if result.metrics:
        scores = [f"loss={result.metrics['loss']:.4f}"] + [
            f"{name}={100 * value:.2f}% (error {100 * (1 - value):.2f}%)"
            for name, value in result.metrics.items() if name in ("top1", "top5")]
        lines.append(f"Final evaluation: {' '.join(scores)}")
    paths = _output_paths(run)
    if run.resume:
        paths.append(("backups", os.path.join(run.output_dir, "backup")))
    if result.export_path:
        paths.append(("export", result.export_path))
    lines += [f"  {kind:<10} {path}" for kind, path in paths]
    return "\n".join(lines)
