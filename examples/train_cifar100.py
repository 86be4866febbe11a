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

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import training_cli  # noqa: E402
from keras_preact.paper_results import paper_figure  # noqa: E402
from keras_preact.training import PaperCIFARSchedule  # noqa: E402
from keras_preact.training import WarmupCosineDecay  # noqa: E402
from keras_preact.training import compile_for_paper  # noqa: E402
from keras_preact.training import train_and_evaluate  # noqa: E402
from keras_preact.training.schedules import PAPER_CIFAR_BATCH_SIZE  # noqa: E402
from keras_preact.training.schedules import PAPER_CIFAR_LEARNING_RATE  # noqa: E402
from keras_preact.training.schedules import PAPER_CIFAR_TOTAL_STEPS  # noqa: E402

NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
DISPLAY_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}


def build_parser():
    """The `argparse.ArgumentParser` of this script."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=training_cli.HelpFormatter)
    g = parser.add_argument_group("model and data")
    which = g.add_mutually_exclusive_group()
    which.add_argument("--depth", type=int, default=164,
                   help="CIFAR depth: 6n+2 (basic units, e.g. 20, 56, 110) or 9n+2 "
                        "(bottleneck, 164, 1001).")
    which.add_argument("--model", default=None,
                   help="A named model, e.g. PreActResNet164 (instead of --depth).")
    g.add_argument("--dataset", choices=sorted(NUM_CLASSES), default="cifar100",
                   help="The dataset, and the statistics the model normalizes with.")
    g.add_argument("--data-source", choices=("tfds", "archive", "npz"), default="tfds",
                   help="tfds (downloads), the official .tar.gz archive, or .npz files.")
    g.add_argument("--data-dir", default=None,
                   help="tfds data_dir, the archive (.tar.gz or folder), or the npz folder.")
    g.add_argument("--max-train-examples", type=training_cli.positive(int), default=None,
                   help="Use only the first N training images (quick runs).")
    g.add_argument("--max-eval-examples", type=training_cli.positive(int), default=None,
                   help="Use only the first N test images.")
    g.add_argument("--augment", choices=("paper", "randaugment", "none"), default="paper",
                   help="'paper': pad 4, random crop, flip; 'randaugment' adds "
                        "RandAugment (not the paper's).")
    g.add_argument("--mixup-alpha", type=float, default=0.0, help="Not the paper's.")
    g.add_argument("--cutmix-alpha", type=float, default=0.0, help="Not the paper's.")
    g.add_argument("--warmup", action="store_true",
                   help="The paper's lr-0.01 warm-up (400 iterations at batch 128).")
    return training_cli.add_arguments(parser, default_batch_size=PAPER_CIFAR_BATCH_SIZE,
                                      default_output_dir="runs/cifar")


def build_model(args):
    """The model of the arguments, in Keras' image data format (--data-format).

    It normalizes its 0-255 pixels itself, so checkpoints and exports carry
    the dataset's statistics.
    """
    import keras_preact

    classes = NUM_CLASSES[args.dataset]
    if args.model:
        return training_cli.named_model(args.model, classes=classes,
                                        input_normalization=args.dataset)
    return keras_preact.PreActResNet(args.depth, layout="cifar", classes=classes,
                                     input_normalization=args.dataset)


def make_schedule(args, batch_size, total_steps):
    base_lr = args.learning_rate or PAPER_CIFAR_LEARNING_RATE
    if args.schedule == "paper":
        return PaperCIFARSchedule.for_run(
            batch_size=batch_size, total_steps=total_steps, learning_rate=base_lr,
            scale_learning_rate=not args.no_lr_scaling, warmup=args.warmup)
    scale = 1.0 if args.no_lr_scaling else batch_size / PAPER_CIFAR_BATCH_SIZE
    return WarmupCosineDecay(base_lr * scale, total_steps=total_steps,
                             warmup_steps=min(total_steps - 1, max(1, total_steps // 40)))


def paper_reference(args):
    """The paper's error for this depth and dataset, as a line to print, or None."""
    figure = None if args.model else paper_figure(args.dataset, args.depth)
    if figure is None:
        return None
    return (f"The paper: error {figure.error:.2f}% ({figure.source}: PreActResNet-{args.depth} "
            f"on {DISPLAY_NAMES[args.dataset]}, median of 5 runs, the full recipe: 164 "
            "epochs at batch 128)")


def check_arguments(args):
    """The usage errors argparse cannot see: the model and the data folder."""
    from keras_preact.models.variants import CIFAR_VARIANTS

    training_cli.check_model(args, "cifar", CIFAR_VARIANTS)
    training_cli.check_data_dir(args, ("archive", "npz"))


def main(argv=None):
    parser = build_parser()
    args = training_cli.parse_arguments(parser, argv, check_arguments)
    setup = training_cli.prepare(args)
    from keras_preact.data import cifar_dataset
    from keras_preact.data import load_cifar

    classes = NUM_CLASSES[args.dataset]
    try:
        x_train, y_train = load_cifar(args.dataset, source=args.data_source,
                                      data_dir=args.data_dir, split="train")
        x_test, y_test = load_cifar(args.dataset, source=args.data_source,
                                    data_dir=args.data_dir, split="test")
    except ValueError as e:  # missing or foreign files
        parser.error(str(e))
    x_train, y_train = x_train[: args.max_train_examples], y_train[: args.max_train_examples]
    x_test, y_test = x_test[: args.max_eval_examples], y_test[: args.max_eval_examples]
    batch = setup.global_batch_size
    one_hot = args.mixup_alpha > 0 or args.cutmix_alpha > 0
    default_total = max(1, round(PAPER_CIFAR_TOTAL_STEPS * PAPER_CIFAR_BATCH_SIZE / batch))
    try:  # --steps-per-execution must divide every epoch
        steps_per_epoch, epochs, total_steps = training_cli.run_length(
            args, len(x_train), batch, default_total_steps=default_total)
    except ValueError as e:
        parser.error(str(e))
    schedule = make_schedule(args, batch, total_steps)
    with setup.distribution.scope():
        model = build_model(args)
        compile_for_paper(model, schedule, one_hot=one_hot,
                          **training_cli.compile_arguments(args))

    def train_data(start_step):
        # normalization=model: 0-255 pixels, padded with the model's mean
        # colour (what it maps to 0, as normalize-then-pad in the paper).
        return cifar_dataset(
            x_train, y_train, training=True, batch_size=batch, augment=args.augment,
            mixup_alpha=args.mixup_alpha, cutmix_alpha=args.cutmix_alpha,
            num_classes=classes, seed=args.seed, repeat=True, start_batch=start_step,
            normalization=model)

    val_ds = cifar_dataset(x_test, y_test, training=False, batch_size=batch,
                           num_classes=classes, normalization=model,
                           drop_remainder=setup.distribution.needs_static_batches or None)
    if one_hot:
        import tensorflow as tf

        val_ds = val_ds.map(lambda x, y: (x, tf.one_hot(y, classes)))
    label = args.model or f"PreActResNet-{args.depth}"
    run = training_cli.training_run(
        args, setup, steps_per_epoch=steps_per_epoch, epochs=epochs, total_steps=total_steps,
        run_config={"dataset": args.dataset, "model": label,
                    "train_examples": int(len(x_train)), "global_batch_size": batch,
                    "steps_per_epoch": steps_per_epoch, "total_steps": total_steps,
                    "schedule": schedule.get_config(), "policy": setup.policy},
        title=f"{label} on {DISPLAY_NAMES[args.dataset]}",
        export_name=f"{model.name}_{args.dataset}" if args.export else None,
        # Suggested only for runs longer than the quick look itself.
        quick_look=None if total_steps <= 10 else training_cli.quick_look_command(
            sys.argv[0] if argv is None else __file__,
            sys.argv[1:] if argv is None else argv,
            {"--epochs": "1", "--steps-per-epoch": training_cli.quick_look_steps(10, args),
             "--max-eval-examples": "500",
             "--output-dir": args.output_dir.rstrip("/") + "_quick_look"}))
    result = train_and_evaluate(model, train_data, run, validation_data=val_ds,
                                distribution=setup.distribution)
    reference = paper_reference(args)
    if args.verbose and reference:
        print(reference, flush=True)
    return result


if __name__ == "__main__":
    main()
