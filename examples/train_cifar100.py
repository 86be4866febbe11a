"""Train a Pre-activation ResNet on CIFAR-10/100 with the paper's recipe.

The paper (He et al. 2016): SGD momentum 0.9, coupled L2 weight decay 1e-4 on
every parameter (as the authors' Torch code), batch 128, lr 0.1 divided by 10
at 32k and 48k iterations, stop at 64k (~164 epochs); pad-4 / random crop /
flip augmentation.

Examples:

    # The paper's ResNet-164 on CIFAR-100 (about 164 epochs):
    python examples/train_cifar100.py --depth 164 --dataset cifar100 \\
        --data-source tfds --output-dir runs/preact164_c100 --resume

    # Quick check on the shared npz copy (a few steps of a tiny net):
    python examples/train_cifar100.py --depth 8 --data-source npz \\
        --data-dir ../shared/data/cifar100 --epochs 2 --steps-per-epoch 5 \\
        --max-train-examples 512 --max-eval-examples 256 --output-dir /tmp/run

Rerunning the same command with --resume after an interruption continues
from the last backup (epoch counter and optimizer state intact).
"""

import sys

from keras_preact.training import runner
from keras_preact.training.schedules import PAPER_CIFAR_BATCH_SIZE
from keras_preact.training.schedules import PAPER_CIFAR_LEARNING_RATE
from keras_preact.training.schedules import PAPER_CIFAR_TOTAL_STEPS
from keras_preact.training.schedules import PaperCIFARSchedule
from keras_preact.training.schedules import WarmupCosineDecay

NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
DISPLAY_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}


def parse_args(argv=None):
    parser = runner.make_parser(__doc__.split("\n\n")[0])
    g = parser.add_argument_group("model and data")
    g.add_argument("--depth", type=int, default=164,
                   help="CIFAR depth: 6n+2 (basic units, e.g. 20, 56, 110) or 9n+2 "
                        "(bottleneck, 164, 1001).")
    g.add_argument("--model", default=None,
                   help="A named model instead of --depth, e.g. PreActResNet164.")
    g.add_argument("--dataset", choices=sorted(NUM_CLASSES), default="cifar100")
    g.add_argument("--data-source", choices=("tfds", "archive", "npz"), default="tfds")
    g.add_argument("--data-dir", default=None,
                   help="tfds data_dir, the archive (.tar.gz or folder), or the npz folder.")
    g.add_argument("--max-train-examples", type=int, default=None,
                   help="Use only the first N training images (quick runs).")
    g.add_argument("--max-eval-examples", type=int, default=None,
                   help="Use only the first N test images.")
    g.add_argument("--augment", choices=("paper", "randaugment", "none"), default="paper")
    g.add_argument("--mixup-alpha", type=float, default=0.0, help="Not the paper's.")
    g.add_argument("--cutmix-alpha", type=float, default=0.0, help="Not the paper's.")
    g.add_argument("--warmup", action="store_true",
                   help="The paper's lr-0.01 warm-up (400 iterations at batch 128).")
    runner.add_common_arguments(
        parser, default_batch_size=PAPER_CIFAR_BATCH_SIZE,
        default_output_dir="runs/cifar",
    )
    args = parser.parse_args(argv)
    runner.check_common_arguments(parser, args)
    for name in ("max_train_examples", "max_eval_examples"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0, got {value}")
    return args


def build_model_fn(args, num_classes):
    import keras_preact

    def build():
        if args.model:
            if not hasattr(keras_preact, args.model):
                raise ValueError(
                    f"Unknown --model={args.model!r}. Expected a keras_preact "
                    "model name such as 'PreActResNet164'."
                )
            return getattr(keras_preact, args.model)(
                classes=num_classes, input_normalization=args.dataset
            )
        # No input_shape: 32x32x3 in the runner's data format (--data-format).
        # The model normalizes its 0-255 pixels itself: exports and
        # checkpoints carry the dataset's statistics.
        return keras_preact.PreActResNet(
            args.depth, layout="cifar", classes=num_classes,
            input_normalization=args.dataset,
        )

    return build


def main(argv=None):
    args = parse_args(argv)
    prep = runner.prepare(args)
    from keras_preact.data import cifar_dataset
    from keras_preact.data import load_cifar

    num_classes = NUM_CLASSES[args.dataset]
    x_train, y_train = load_cifar(args.dataset, source=args.data_source,
                                  data_dir=args.data_dir, split="train")
    x_test, y_test = load_cifar(args.dataset, source=args.data_source,
                                data_dir=args.data_dir, split="test")
    if args.max_train_examples:
        x_train, y_train = x_train[: args.max_train_examples], y_train[: args.max_train_examples]
    if args.max_eval_examples:
        x_test, y_test = x_test[: args.max_eval_examples], y_test[: args.max_eval_examples]
    batch = prep["global_batch_size"]
    one_hot = args.mixup_alpha > 0 or args.cutmix_alpha > 0

    def make_data(model):
        # normalization=model: 0-255 pixels, padded with the model's mean
        # colour (what it maps to 0, as normalize-then-pad in the paper).
        def train_data(start_step):
            return cifar_dataset(
                x_train, y_train, training=True, batch_size=batch, augment=args.augment,
                mixup_alpha=args.mixup_alpha, cutmix_alpha=args.cutmix_alpha,
                num_classes=num_classes, seed=args.seed, repeat=True,
                start_batch=start_step, normalization=model,
            )

        val_ds = cifar_dataset(x_test, y_test, training=False, batch_size=batch,
                               num_classes=num_classes, normalization=model,
                               drop_remainder=prep["setup"].needs_static_batches or None)
        if one_hot:
            import tensorflow as tf

            val_ds = val_ds.map(lambda x, y: (x, tf.one_hot(y, num_classes)))
        return train_data, val_ds

    default_total = max(1, round(PAPER_CIFAR_TOTAL_STEPS * PAPER_CIFAR_BATCH_SIZE / batch))
    steps_per_epoch, epochs, total_steps = runner.run_length(
        args, len(x_train), batch, default_total
    )
    scale = 1.0 if args.no_lr_scaling else batch / PAPER_CIFAR_BATCH_SIZE
    base_lr = args.learning_rate or PAPER_CIFAR_LEARNING_RATE
    if args.schedule == "paper":
        schedule = PaperCIFARSchedule.for_run(
            batch_size=batch, total_steps=total_steps, learning_rate=base_lr,
            scale_learning_rate=not args.no_lr_scaling, warmup=args.warmup,
        )
    else:
        schedule = WarmupCosineDecay(
            base_lr * scale, total_steps=total_steps,
            warmup_steps=min(total_steps - 1, max(1, total_steps // 40)),
        )
    run_info = {
        "script": "train_cifar100.py", "argv": sys.argv[1:] if argv is None else list(argv),
        "dataset": args.dataset, "model": args.model or f"PreActResNet(depth={args.depth})",
        "train_examples": int(len(x_train)), "eval_examples": int(len(x_test)),
        "global_batch_size": batch, "replicas": prep["setup"].num_replicas,
        "steps_per_epoch": steps_per_epoch, "epochs": epochs, "total_steps": total_steps,
        "schedule": schedule.get_config(), "policy": prep["policy"],
    }
    model_label = args.model or f"PreActResNet-{args.depth}"
    runner.fit_and_evaluate(
        args, prep=prep, build_model=build_model_fn(args, num_classes),
        learning_rate=schedule, make_data=make_data,
        steps_per_epoch=steps_per_epoch, epochs=epochs, one_hot=one_hot,
        run_info=run_info, model_name=f"preact_resnet_{args.dataset}",
        title=f"{model_label} on {DISPLAY_NAMES[args.dataset]}",
        paper_error=paper_reference(args),
        # Suggested only for runs longer than the quick look itself.
        quick_look=None if total_steps <= 10 else runner.quick_look_command(
            sys.argv[0] if argv is None else __file__,
            sys.argv[1:] if argv is None else argv,
            {"--epochs": "1", "--steps-per-epoch": "10", "--max-eval-examples": "500",
             "--output-dir": args.output_dir.rstrip("/") + "_quick_look"},
        ),
    )


def paper_reference(args):
    """(error %, source) of the paper for this depth and dataset, or None."""
    from keras_preact.paper_results import paper_error

    if args.model:
        return None
    error = paper_error(args.dataset, args.depth)
    if error is None:
        return None
    return error, (f"PreActResNet-{args.depth} on {DISPLAY_NAMES[args.dataset]}, median of 5 "
                   "runs, the full recipe: 164 epochs at batch 128")


if __name__ == "__main__":
    main()
