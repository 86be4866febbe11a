"""Shared command-line plumbing of the example training scripts.

`examples/train_cifar100.py` and `examples/train_imagenet.py` differ only in
their data, model and schedule; the rest (arguments, precision, distribution,
run length, callbacks, resume, final evaluation, export) lives here.
"""

import argparse
import math
import os
import shlex
import time

import keras

from keras_preact.io import atomic_path
from keras_preact.io import atomic_write_json
from keras_preact.training.callbacks import RunTimeEstimate
from keras_preact.training.callbacks import make_callbacks
from keras_preact.training.callbacks import optimizer_iterations
from keras_preact.training.compile import compile_for_paper
from keras_preact.training.defaults import fastest_settings
from keras_preact.training.defaults import image_data_format
from keras_preact.training.defaults import in_data_format
from keras_preact.training.distribute import VALID_DISTRIBUTE
from keras_preact.training.distribute import setup_distribution
from keras_preact.training.precision import VALID_PRECISIONS
from keras_preact.training.precision import list_devices
from keras_preact.training.precision import set_precision
from keras_preact.training.resume import fit_resumable


def add_common_arguments(parser, *, default_batch_size, default_output_dir):
    """Adds the arguments both example scripts share to `parser`."""
    g = parser.add_argument_group("run length")
    g.add_argument("--batch-size", type=int, default=default_batch_size,
                   help="Per-replica batch size; the global batch is this x replicas "
                        f"(default {default_batch_size}).")
    g.add_argument("--global-batch-size", type=int, default=None,
                   help="The batch over all replicas and workers, instead of "
                        "--batch-size; must be a multiple of the replicas.")
    g.add_argument("--epochs", type=int, default=None, help="Number of epochs.")
    g.add_argument("--steps", type=int, default=None,
                   help="Total training iterations (alternative to --epochs; rounded "
                        "up to whole epochs).")
    g.add_argument("--steps-per-epoch", type=int, default=None,
                   help="Iterations per epoch (default: one pass over the training set). "
                        "Small values give quick runs.")
    g.add_argument("--validation-steps", type=int, default=None,
                   help="Batches per validation / final evaluation (default: all).")
    g = parser.add_argument_group("optimization")
    g.add_argument("--learning-rate", type=float, default=None,
                   help="Base learning rate at the reference batch size (default: 0.1).")
    g.add_argument("--no-lr-scaling", action="store_true",
                   help="Do not scale the learning rate linearly with the global batch.")
    g.add_argument("--weight-decay", type=float, default=1e-4,
                   help="Coupled L2 weight decay on every trainable variable, as "
                        "the authors' Torch code (default 1e-4).")
    g.add_argument("--weight-decay-on", choices=("all", "kernels"), default="all",
                   help="Variables that decay: 'all' (the authors' optim.sgd over the "
                        "whole parameter vector) or 'kernels' (conv/dense kernels only).")
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--nesterov", action="store_true",
                   help="Nesterov momentum, as the authors' Torch release (train.lua) uses.")
    g.add_argument("--schedule", choices=("paper", "cosine"), default="paper",
                   help="'paper': the paper's step schedule; 'cosine': warm-up + cosine "
                        "(not the paper's).")
    g = parser.add_argument_group("hardware")
    g.add_argument("--mixed-precision", choices=VALID_PRECISIONS, default="off",
                   help="'auto' = bfloat16 on TPU / GPUs with compute capability >= 8, "
                        "else float32.")
    g.add_argument("--jit-compile", nargs="?", const="on", default=None,
                   choices=("auto", "on", "off"),
                   help="XLA / jit compilation of the train step (default: the measured "
                        "fastest for the backend, precision and device, "
                        "keras_preact.training.defaults).")
    g.add_argument("--data-format", choices=("channels_last", "channels_first"),
                   default=None, help="Layout of the activations (default: the measured "
                                      "fastest; the input pipelines stay channels_last).")
    g.add_argument("--steps-per-execution", type=int, default=None,
                   help="Training steps per compiled call (default: the measured fastest).")
    g.add_argument("--distribute", choices=VALID_DISTRIBUTE, default="none",
                   help="mirrored|multiworker|tpu on TensorFlow, data_parallel|tpu|"
                        "multiworker on JAX, none on torch.")
    g.add_argument("--tpu", default=None, help="TPU name/address (TensorFlow, --distribute tpu).")
    g = parser.add_argument_group("outputs")
    g.add_argument("--output-dir", default=default_output_dir,
                   help="Checkpoints, TensorBoard logs, metrics.csv/json, curves.png.")
    g.add_argument("--resume", action="store_true",
                   help="Back up every --backup-every-seconds, every --backup-every "
                        "steps (if given) and at each epoch end; rerunning the same "
                        "command continues from the last backup, inside the "
                        "interrupted epoch.")
    g.add_argument("--backup-every-seconds", type=float, default=300.0,
                   help="Wall-clock seconds between backups with --resume.")
    g.add_argument("--backup-every", type=int, default=None,
                   help="Steps between backups with --resume (default: by time only).")
    g.add_argument("--export", action="store_true",
                   help="Export a SavedModel to OUTPUT_DIR/export at the end.")
    g.add_argument("--no-tensorboard", action="store_true")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                   help="Keras fit verbosity (1 = progress bars).")
    return parser


def check_common_arguments(parser, args):
    """Validates the shared arguments; `parser.error` on bad values."""
    for name in ("batch_size", "global_batch_size", "epochs", "steps", "steps_per_epoch",
                 "validation_steps", "backup_every", "backup_every_seconds",
                 "steps_per_execution"):
        value = getattr(args, name)
        if value is not None and not value > 0:  # Also refuses NaN.
            parser.error(f"--{name.replace('_', '-')} must be > 0, got {value}")
    if args.epochs is not None and args.steps is not None:
        parser.error("give --epochs or --steps, not both")


def prepare(args):
    """Seed, precision policy and distribution, in that order.

    Returns:
        dict with "setup" (`DistributionSetup`), "policy" (str),
        "global_batch_size" (int) and "settings" (`fastest_settings`).
    """
    keras.utils.set_random_seed(args.seed)
    policy = set_precision(args.mixed_precision)
    # Before fastest_settings' device query: TF collectives need a fresh runtime.
    setup = setup_distribution(args.distribute, tpu=getattr(args, "tpu", None))
    settings = fastest_settings(
        precision=policy, data_format=args.data_format,
        steps_per_execution=args.steps_per_execution,
        jit_compile={"auto": "auto", "on": True, "off": False}.get(args.jit_compile))
    # Multi-worker: only the chief writes to --output-dir; the others write
    # to a temporary folder removed at exit (keras_preact.training.distribute).
    args.output_dir = setup.worker_output_dir(args.output_dir)
    if args.global_batch_size is not None:
        args.batch_size = setup.per_replica_batch_size(args.global_batch_size)
    return {"setup": setup, "policy": policy, "settings": settings,
            "global_batch_size": args.batch_size * setup.num_replicas}


def run_length(args, num_examples, global_batch_size, default_total_steps):
    """(steps_per_epoch, epochs, total_steps) from the arguments.

    `default_total_steps` is used when neither --epochs nor --steps is given.
    """
    steps_per_epoch = args.steps_per_epoch or math.ceil(num_examples / global_batch_size)
    if args.epochs is not None:
        epochs = args.epochs
    else:
        total = args.steps if args.steps is not None else default_total_steps
        epochs = max(1, math.ceil(total / steps_per_epoch))
    return steps_per_epoch, epochs, steps_per_epoch * epochs


def fit_and_evaluate(args, *, prep, build_model, learning_rate, make_data, steps_per_epoch,
                     epochs, one_hot=False, run_info=None, model_name="model", title=None,
                     paper_error=None, quick_look=None):
    """Builds, compiles, trains (resumable), evaluates and optionally exports.

    Prints what it does first (backend, devices, parameter counts, run
    length, output paths; without an accelerator, the command of a quick
    look) and at the end (final metrics beside the paper's, output paths).

    Args:
        args: parsed arguments (see `add_common_arguments`).
        prep: result of `prepare(args)`.
        build_model: callable returning an uncompiled `keras.Model`; called
            inside the distribution scope.
        learning_rate: float or `LearningRateSchedule`.
        make_data: callable `model -> (train_data, val_ds)`, called once the
            model is built, so the pipelines can read the model's input
            normalization (`normalization=model`). `train_data`: repeated
            global batches, or a callable `start_step -> data` positioned at
            a step (see `fit_resumable`); `val_ds`: finite validation data or
            None.
        steps_per_epoch: int.
        epochs: int.
        one_hot: bool. Labels are one-hot (mixup / cutmix).
        run_info: dict. Stored in metrics.json.
        model_name: str. Name used for the SavedModel export, which takes
            its preprocessing from the model (`input_normalization`).
        title: str or None. What is trained, e.g. "PreActResNet-164 on
            CIFAR-100".
        paper_error: (float, str) or None. The paper's top-1 error in
            percent and where it comes from, printed beside the result.
        quick_look: str or None. Command of a run that completes in minutes
            on a CPU (see `quick_look_command`), printed when no accelerator
            is found.

    Returns:
        dict: the final evaluation metrics (empty when `val_ds` is None).
    """
    settings = prep["settings"]
    os.makedirs(args.output_dir, exist_ok=True)
    with prep["setup"].scope(), image_data_format(settings["data_format"]):
        model = build_model()
        compile_for_paper(model, learning_rate, momentum=args.momentum, nesterov=args.nesterov,
                          weight_decay=args.weight_decay, weight_decay_on=args.weight_decay_on,
                          one_hot=one_hot, jit_compile=settings["jit_compile"],
                          steps_per_execution=settings["steps_per_execution"])
    train_data, val_ds = (in_data_format(data, settings["data_format"])
                          for data in make_data(model))
    paths = output_paths(args)
    print(describe_start(model, args, prep, steps_per_epoch, epochs, paths,
                         title=title, quick_look=quick_look), flush=True)
    callbacks = make_callbacks(args.output_dir, tensorboard=not args.no_tensorboard,
                               run_info=run_info)
    callbacks.append(RunTimeEstimate(steps_per_epoch * epochs))
    start = time.time()
    _train(model, args, train_data, val_ds, steps_per_epoch, epochs, callbacks,
           run_config=_run_identity(run_info))
    train_seconds = time.time() - start
    final = {}
    if val_ds is not None:
        final = model.evaluate(val_ds, steps=args.validation_steps, return_dict=True, verbose=0)
        final = {k: float(v) for k, v in final.items()}
    iterations = optimizer_iterations(model)
    summary = {"final": final, "iterations": iterations, "epochs": epochs,
               "train_seconds_this_process": round(train_seconds, 2), "run": run_info or {}}
    atomic_write_json(paths["summary"], summary, indent=1)
    if args.export:
        paths["export"] = export_model(model, os.path.join(args.output_dir, "export"),
                                       model_name)
    print(describe_end(final, iterations, paths, paper_error), flush=True)
    return final


def _run_identity(run_info):
    """What a resumed run must share with its backup (not argv or verbosity)."""
    ignored = ("script", "argv", "eval_examples", "replicas")
    return {k: v for k, v in (run_info or {}).items() if k not in ignored}


def _train(model, args, train_data, val_ds, steps_per_epoch, epochs, callbacks,
           run_config=None):
    fit_kwargs = dict(epochs=epochs, steps_per_epoch=steps_per_epoch, validation_data=val_ds,
                      validation_steps=args.validation_steps, callbacks=callbacks,
                      verbose=args.verbose)
    if args.resume:
        return fit_resumable(model, train_data, backup_dir=os.path.join(args.output_dir, "backup"),
                             every_seconds=args.backup_every_seconds,
                             every_steps=args.backup_every, run_config=run_config, **fit_kwargs)
    data = train_data(0) if callable(train_data) else train_data
    # The pipelines shuffle; Keras would warn that it cannot.
    return model.fit(data, shuffle=False, **fit_kwargs)


def output_paths(args):
    """Where a run writes, by kind (the files `make_callbacks` writes)."""
    out = args.output_dir
    paths = {
        "checkpoint": os.path.join(out, "checkpoints", "last.keras"),
        "metrics": os.path.join(out, "metrics.csv") + ", " + os.path.join(out, "metrics.json"),
        "plot": os.path.join(out, "curves.png"),
        "summary": os.path.join(out, "final_metrics.json"),
    }
    if args.resume:
        paths["backups"] = os.path.join(out, "backup")
    if not args.no_tensorboard:
        paths["logs"] = os.path.join(out, "logs")
    return paths


def _parameter_counts(model):
    trainable = sum(math.prod(v.shape) for v in model.trainable_weights)
    non_trainable = sum(math.prod(v.shape) for v in model.non_trainable_weights)
    return int(trainable), int(non_trainable)


def quick_look_command(script, argv, overrides):
    """`KERAS_BACKEND=<active> python script argv...` with `overrides`
    ({flag: value}) applied.

    Flags in `overrides` and `--steps` (exclusive with `--epochs`) are
    removed from `argv` with their values, then appended.

    Example:

    >>> quick_look_command("train.py", ["--steps", "9", "--epochs=3"], {"--epochs": "1"})
    'KERAS_BACKEND=jax python train.py --epochs 1'
    """
    drop = set(overrides) | {"--steps"}
    kept, skip = [], False
    for token in argv:
        if skip:
            skip = False
            continue
        flag = token.split("=", 1)[0]
        if flag in drop:
            skip = "=" not in token
            continue
        kept.append(token)
    for flag, value in overrides.items():
        kept += [flag, value]
    command = [shlex.quote(t) for t in [script, *kept]]
    return " ".join([f"KERAS_BACKEND={keras.backend.backend()}", "python", *command])


def describe_start(model, args, prep, steps_per_epoch, epochs, paths,
                   title=None, quick_look=None):
    """The run's opening lines: what trains where, and where results go."""
    setup = prep["setup"]
    devices = list_devices()
    trainable, frozen = _parameter_counts(model)
    lines = [
        f"keras_preact: {title or model.name}",
        f"  backend    {keras.backend.backend()}, devices: {', '.join(devices)}",
        f"  model      {model.name}: {trainable:,} trainable parameters (the "
        f"count the paper reports), {frozen:,} non-trainable (BN moving statistics)",
        f"  run        {epochs} epochs x {steps_per_epoch} steps = "
        f"{epochs * steps_per_epoch:,} steps, global batch "
        f"{prep['global_batch_size']} ({args.batch_size} x {setup.num_replicas} "
        f"replicas), policy {prep['policy']}, distribute {setup.kind}",
    ]
    if "settings" in prep:
        s = prep["settings"]
        lines.append(f"  compile    jit_compile={s['jit_compile']}, {s['data_format']}, "
                     f"steps_per_execution={s['steps_per_execution']} ({s['source']})")
    if args.resume:
        every = f"every {args.backup_every_seconds:g} s"
        if args.backup_every:
            every += f", every {args.backup_every} steps"
        lines.append(f"  backups    {paths['backups']} ({every} and at each epoch end)")
    else:
        lines.append("  backups    none (add --resume to make the run resumable)")
    for kind in ("checkpoint", "logs", "metrics", "plot", "summary"):
        if kind in paths:
            lines.append(f"  {kind:<10} {paths[kind]}")
    if all(d.startswith("cpu") for d in devices):
        lines.append(f"  No GPU or TPU found: training runs on the CPU ({os.cpu_count()} cores), "
                     "where the paper's full recipe takes days. The time per step is "
                     "measured after the first steps, with the estimate for this run.")
        if quick_look:
            lines.append(f"  A quick look that completes in minutes: {quick_look}")
    return "\n".join(lines)


def describe_end(final, iterations, paths, paper_error=None):
    """The run's closing lines: final metrics beside the paper's, and paths."""
    lines = [f"Optimizer iterations: {iterations}"]
    if final:
        top1 = final.get("top1", float("nan"))
        top5 = final.get("top5", float("nan"))
        lines.append(f"Final evaluation: loss={final.get('loss', float('nan')):.4f} "
                     f"top1={100 * top1:.2f}% (error {100 * (1 - top1):.2f}%) "
                     f"top5={100 * top5:.2f}% (error {100 * (1 - top5):.2f}%)")
        if paper_error is not None:
            error, source = paper_error
            lines.append(f"The paper: error {error:.2f}% ({source})")
    lines += [f"  {kind:<10} {path}" for kind, path in paths.items() if path]
    return "\n".join(lines)


def export_model(model, export_base, model_name):
    """SavedModel export through `keras_preact.export` (when available).

    The preprocessing is read from the model (`input_normalization`).

    On backends that cannot write a SavedModel themselves (torch), the model
    is saved as `<export_base>/<model_name>.keras` and exported by
    `python -m keras_preact.export` in a TensorFlow-backend process.
    """
    try:
        from keras_preact.export import export_saved_model
        from keras_preact.export.saved_model import SUPPORTED_BACKENDS
    except ImportError as e:
        print(f"--export skipped: keras_preact.export is not available ({e}).")
        return None
    if keras.backend.backend() in SUPPORTED_BACKENDS:
        path = export_saved_model(model, export_base, model_name)
    else:
        from keras_preact.export.__main__ import main as export_main

        keras_path = os.path.join(export_base, f"{model_name}.keras")
        with atomic_path(keras_path) as tmp:
            model.save(tmp)
        code = export_main(["--model", keras_path, "--export-base", export_base,
                            "--model-name", model_name])
        if code:
            raise RuntimeError(f"SavedModel export of {keras_path} failed (exit {code}).")
        path = os.path.join(export_base, model_name)
    print(f"Exported SavedModel: {path}", flush=True)
    return path


def make_parser(description):
    return argparse.ArgumentParser(description=description,
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
