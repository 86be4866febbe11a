"""The arguments `train_cifar100.py` and `train_imagenet.py` share, and what they set up.

Each script adds its model and data arguments to a parser, then the shared
ones with `add_arguments`; `prepare(args)` sets the seed, precision policy,
distribution and image data format, and `training_run(...)` turns the
arguments into the library's `keras_preact.training.TrainingRun`.
"""

import argparse
import dataclasses
import math
import shlex

import keras

from keras_preact.training import DistributionSetup
from keras_preact.training import TrainingRun
from keras_preact.training import check_whole_executions
from keras_preact.training import set_precision
from keras_preact.training import setup_distribution
from keras_preact.training.distribute import VALID_DISTRIBUTE
from keras_preact.training.precision import VALID_PRECISIONS

JIT_COMPILE = {"auto": "auto", "on": True, "off": False}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default once: appended unless the help names it."""

    def _get_help_string(self, action):
        named = "default" in (action.help or "").lower()
        if named or action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def parse_arguments(parser, argv, check):
    """`parser.parse_args(argv)`, then `check(args)`: a ValueError it raises
    (a model, depth or data path the library refuses) is a usage error."""
    args = parser.parse_args(argv)
    try:
        check(args)
    except ValueError as e:
        parser.error(str(e))
    return args


def check_model(args, layout, variants):
    """Refuses a --model that is not one of `variants` (the script's layout)
    and a --depth that `layout` cannot have; --model wins over --depth."""
    from keras_preact.models.layouts import resolve_layout

    names = [variant.__name__ for variant in variants]
    if args.model is not None and args.model not in names:
        raise ValueError(f"Unknown --model={args.model!r} for the {layout} layout. "
                         f"Expected one of {names}.")
    if args.model is None:
        resolve_layout(layout, args.depth)


def check_data_dir(args, sources):
    """Refuses a --data-source of `sources` (which read files) without --data-dir."""
    if args.data_source in sources and args.data_dir is None:
        raise ValueError(f"--data-source {args.data_source} reads files: give --data-dir.")


def positive(kind):
    """An argparse `type`: `kind(text)`, refused unless > 0 (NaN too)."""

    def parse(text):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names it in "invalid int value"
    return parse


def add_arguments(parser, *, default_batch_size, default_output_dir):
    """Adds the arguments both training scripts share to `parser`."""
    g = parser.add_argument_group("run length")
    g.add_argument("--batch-size", type=positive(int), default=default_batch_size,
                   help="Per-replica batch size; the global batch is this x replicas.")
    g.add_argument("--global-batch-size", type=positive(int), default=None,
                   help="The batch over all replicas and workers, instead of "
                        "--batch-size; must be a multiple of the replicas.")
    length = g.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=positive(int), default=None, help="Number of epochs.")
    length.add_argument("--steps", type=positive(int), default=None,
                        help="Total training iterations, exactly: the last epoch stops there.")
    g.add_argument("--steps-per-epoch", type=positive(int), default=None,
                   help="Iterations per epoch (default: one pass over the training set). "
                        "Small values give quick runs.")
    g.add_argument("--validation-steps", type=positive(int), default=None,
                   help="Batches per validation / final evaluation (default: all).")
    g = parser.add_argument_group("optimization")
    g.add_argument("--learning-rate", type=float, default=None,
                   help="Base learning rate at the reference batch size (default: the "
                        "paper's 0.1).")
    g.add_argument("--no-lr-scaling", action="store_true",
                   help="Do not scale the learning rate linearly with the global batch.")
    g.add_argument("--weight-decay", type=float, default=1e-4,
                   help="Coupled L2 weight decay on every trainable variable, as "
                        "the authors' Torch code.")
    g.add_argument("--weight-decay-on", choices=("all", "kernels"), default="all",
                   help="Variables that decay: 'all' (the authors' optim.sgd over the "
                        "whole parameter vector) or 'kernels' (conv/dense kernels only).")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum.")
    g.add_argument("--nesterov", action="store_true",
                   help="Nesterov momentum, as the authors' Torch release (train.lua) uses.")
    g.add_argument("--schedule", choices=("paper", "cosine"), default="paper",
                   help="'paper': the paper's step schedule; 'cosine': warm-up + cosine "
                        "(not the paper's).")
    g = parser.add_argument_group("hardware")
    g.add_argument("--mixed-precision", choices=VALID_PRECISIONS, default="off",
                   help="'auto' = bfloat16 on TPU / GPUs with compute capability >= 8, "
                        "else float32.")
    g.add_argument("--jit-compile", nargs="?", const="on", default="auto",
                   choices=tuple(JIT_COMPILE),
                   help="XLA / jit compilation of the train step; 'auto' is Keras' "
                        "default, the bare flag means 'on'.")
    g.add_argument("--data-format", choices=("channels_last", "channels_first"),
                   default=keras.config.image_data_format(),
                   help="Image layout of the model and its input pipelines (default: "
                        "keras.config.image_data_format(), here %(default)s).")
    g.add_argument("--steps-per-execution", type=positive(int), default=1,
                   help="Training steps per compiled call (Keras' default: 1).")
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
    g.add_argument("--backup-every-seconds", type=positive(float), default=300.0,
                   help="Wall-clock seconds between backups with --resume.")
    g.add_argument("--backup-every", type=positive(int), default=None,
                   help="Steps between backups with --resume (default: by time only).")
    g.add_argument("--export", action="store_true",
                   help="Export a SavedModel to OUTPUT_DIR/export at the end.")
    g.add_argument("--no-tensorboard", action="store_true",
                   help="Write no TensorBoard logs.")
    g.add_argument("--seed", type=int, default=0,
                   help="Seed of the weights, the shuffling and the augmentation.")
    g.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                   help="Keras fit verbosity (1 = progress bars).")
    return parser


@dataclasses.dataclass(frozen=True)
class Setup:
    """What `prepare` set up for a run.

    Attributes:
        distribution: `DistributionSetup`.
        policy: str. The Keras dtype policy set.
        output_dir: str. Where this process writes: --output-dir on the
            chief, a temporary folder on the other workers.
        global_batch_size: int. The batch over every replica.
    """

    distribution: DistributionSetup
    policy: str
    output_dir: str
    global_batch_size: int


def prepare(args):
    """Seed, precision policy, distribution and image data format, in that order.

    Returns:
        `Setup`.

    Raises:
        ValueError: --global-batch-size is not a multiple of the replicas.
    """
    keras.utils.set_random_seed(args.seed)
    policy = set_precision(args.mixed_precision)
    distribution = setup_distribution(args.distribute, tpu=args.tpu)
    # The models and the input pipelines take Keras' image data format.
    keras.config.set_image_data_format(args.data_format)
    per_replica = args.batch_size
    if args.global_batch_size is not None:
        per_replica = distribution.per_replica_batch_size(args.global_batch_size)
    return Setup(distribution, policy, distribution.worker_output_dir(args.output_dir),
                 per_replica * distribution.num_replicas)


def run_length(args, num_examples, global_batch_size, *, default_total_steps=None,
               default_epochs=None):
    """(steps_per_epoch, epochs, total_steps) from --steps-per-epoch, --epochs, --steps.

    Without --epochs and --steps: `default_epochs`, else `default_total_steps`.
    A run of steps trains exactly that many: its last epoch stops there.

    Raises:
        ValueError: epochs that are not whole executions of --steps-per-execution,
            or --steps-per-execution > 1 on the torch backend (Keras refuses it).
    """
    if args.steps_per_execution > 1 and keras.backend.backend() == "torch":
        raise ValueError(f"--steps-per-execution {args.steps_per_execution}: Keras' torch "
                         "backend takes 1 only. Use 1, or the tensorflow or jax backend.")
    steps_per_epoch = args.steps_per_epoch or math.ceil(num_examples / global_batch_size)
    epochs = args.epochs or (None if args.steps else default_epochs)
    total = steps_per_epoch * epochs if epochs else args.steps or default_total_steps
    epochs = epochs or max(1, math.ceil(total / steps_per_epoch))
    check_whole_executions(args.steps_per_execution, epochs, steps_per_epoch, total)
    return steps_per_epoch, epochs, total


def training_run(args, setup, *, steps_per_epoch, epochs, total_steps, **fields):
    """The `TrainingRun` of the arguments; `fields` gives its other fields."""
    return TrainingRun(
        output_dir=setup.output_dir, epochs=epochs, steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        validation_steps=args.validation_steps, resume=args.resume,
        backup_every_seconds=args.backup_every_seconds, backup_every_steps=args.backup_every,
        tensorboard=not args.no_tensorboard, verbose=args.verbose,
        global_batch_size=setup.global_batch_size,
        jit_compile=JIT_COMPILE[args.jit_compile], **fields)


def compile_arguments(args):
    """The `compile_for_paper` keyword arguments the shared flags give."""
    return dict(momentum=args.momentum, nesterov=args.nesterov,
                weight_decay=args.weight_decay, weight_decay_on=args.weight_decay_on,
                jit_compile=JIT_COMPILE[args.jit_compile],
                steps_per_execution=args.steps_per_execution)


def named_model(name, **kwargs):
    """`keras_preact.<name>(**kwargs)`, e.g. for --model PreActResNet164
    (checked by `check_model`)."""
    import keras_preact

    return getattr(keras_preact, name)(**kwargs)


def quick_look_steps(steps, args):
    """`steps` rounded up to whole executions of --steps-per-execution, as a flag value."""
    return str(-(-steps // args.steps_per_execution) * args.steps_per_execution)


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
