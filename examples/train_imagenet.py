"""Train a Pre-activation ResNet (18..200) on ImageNet with the paper's recipe.

The paper (He et al. 2016): SGD momentum 0.9, coupled L2 weight decay 1e-4 on
every parameter (as the authors' Torch code), batch 256, lr 0.1 (scaled
linearly: 0.1 x batch / 256) divided by 10 at epochs 30 and 60 (and 90 for
longer runs), no warm-up; random-sized or scale augmentation, single 224
center crop for evaluation.

Examples:

    # PreActResNet-50 on 8 GPUs (TensorFlow), TFRecords from imagenet_to_gcs.py:
    KERAS_BACKEND=tensorflow python examples/train_imagenet.py --depth 50 \\
        --data-source tfrecord --data-dir /data/imagenet --label-offset -1 \\
        --batch-size 32 --distribute mirrored --mixed-precision auto \\
        --output-dir runs/preact50 --resume

    # Same on JAX (all local devices):
    KERAS_BACKEND=jax python examples/train_imagenet.py --depth 50 \\
        --data-source tfds --distribute data_parallel --batch-size 32

    # Throughput ceiling without an input pipeline:
    python examples/train_imagenet.py --depth 50 --data-source synthetic \\
        --epochs 1 --steps-per-epoch 100
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import training_cli  # noqa: E402
from keras_preact.training import ImageNetStepSchedule  # noqa: E402
from keras_preact.training import WarmupCosineDecay  # noqa: E402
from keras_preact.training import compile_for_paper  # noqa: E402
from keras_preact.training import train_and_evaluate  # noqa: E402
from keras_preact.training.schedules import PAPER_IMAGENET_BATCH_SIZE  # noqa: E402
from keras_preact.training.schedules import PAPER_IMAGENET_LEARNING_RATE  # noqa: E402

IMAGENET_TRAIN_EXAMPLES = 1_281_167
IMAGENET_DEPTHS = (18, 34, 50, 101, 152, 200)
DEFAULT_EPOCHS = 90  # The paper's 90 epochs (lr /10 at 30 and 60).


def epoch_list(text):
    """An argparse `type`: "30,60,90" -> (30, 60, 90)."""
    try:
        return tuple(int(e) for e in text.split(",") if e)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated ints, got {text!r}")


def build_parser():
    """The `argparse.ArgumentParser` of this script."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=training_cli.HelpFormatter)
    g = parser.add_argument_group("model and data")
    which = g.add_mutually_exclusive_group()
    which.add_argument("--depth", type=int, default=50, choices=IMAGENET_DEPTHS,
                   help="The paper's ImageNet depths (Table 5).")
    which.add_argument("--model", default=None,
                   help="A named model instead of --depth, e.g. PreActResNet200.")
    g.add_argument("--num-classes", type=training_cli.positive(int), default=1000,
                   help="Classes of the classifier.")
    g.add_argument("--data-source", choices=("tfds", "tfrecord", "folder", "synthetic"),
                   default="tfds", help="tfds imagenet2012, TFRecord shards, a folder of "
                                        "class folders, or synthetic images (no input).")
    g.add_argument("--data-dir", default=None,
                   help="The tfds data_dir, the TFRecord folder or the image folder.")
    g.add_argument("--train-split", default="train", help="Training split.")
    g.add_argument("--eval-split", default="validation",
                   help="Evaluation split; 'none' to skip validation.")
    g.add_argument("--label-offset", type=int, default=0,
                   help="-1 for TFRecords with labels 1..1000 (imagenet_to_gcs.py).")
    g.add_argument("--image-size", type=training_cli.positive(int), default=224,
                   help="Height and width of the model input.")
    g.add_argument("--augment", choices=("inception", "scale", "none"), default="inception",
                   help="'inception': random-sized crop (fb.resnet.torch); 'scale': the "
                        "paper's shorter side in [256, 480] + 224 crop.")
    g.add_argument("--train-examples", type=training_cli.positive(int),
                   default=IMAGENET_TRAIN_EXAMPLES, help="Training-set size, for steps per epoch.")
    g.add_argument("--boundary-epochs", type=epoch_list, default="30,60,90",
                   help="Epochs at which the rate is divided by 10.")
    g.add_argument("--warmup-epochs", type=int, default=0,
                   help="Linear warm-up epochs (not in the paper; large batches).")
    return training_cli.add_arguments(parser, default_batch_size=PAPER_IMAGENET_BATCH_SIZE,
                                      default_output_dir="runs/imagenet")


def build_model(args):
    """The model of the arguments, in Keras' image data format (--data-format).

    It normalizes its 0-255 pixels itself (exports carry the statistics).
    """
    import keras

    import keras_preact

    size = (args.image_size, args.image_size)
    shape = (*size, 3) if keras.config.image_data_format() == "channels_last" else (3, *size)
    kwargs = dict(classes=args.num_classes, input_shape=shape, input_normalization="imagenet")
    if args.model:
        return training_cli.named_model(args.model, **kwargs)
    return keras_preact.PreActResNet(args.depth, layout="imagenet", **kwargs)


def make_datasets(args, batch, static_batches=False, model=None):
    """(training data, validation data or None); the training data is a
    function `start_step -> dataset` except for synthetic data."""
    from keras_preact.data import imagenet_dataset
    from keras_preact.data import synthetic_dataset

    if args.data_source == "synthetic":
        train = synthetic_dataset(batch, args.image_size, args.num_classes, seed=args.seed)
        val = None
        if args.eval_split != "none":
            val = synthetic_dataset(batch, args.image_size, args.num_classes,
                                    num_batches=args.validation_steps or 1, seed=args.seed + 1)
        return train, val
    # A model that normalizes itself gets pixels (normalization=model).
    common = dict(image_size=args.image_size, label_offset=args.label_offset,
                  num_classes=args.num_classes,
                  normalization="imagenet" if model is None else model)

    def train(start_step):
        # Replaying the stream up to start_step would read that many batches
        # of files, so a resumed run draws a fresh order from a seed derived
        # from the step instead (no example is skipped or favoured).
        return imagenet_dataset(args.data_source, args.data_dir, args.train_split,
                                training=True, batch_size=batch, augment=args.augment,
                                repeat=True, seed=args.seed + start_step, **common)

    val = None
    if args.eval_split != "none":
        # Multi-process JAX needs whole global batches (the last partial one
        # is left out of the evaluation there).
        val = imagenet_dataset(args.data_source, args.data_dir, args.eval_split,
                               training=False, batch_size=batch, seed=args.seed,
                               drop_remainder=static_batches or None, **common)
    return train, val


def make_schedule(args, batch_size, steps_per_epoch, total_steps):
    base_lr = args.learning_rate or PAPER_IMAGENET_LEARNING_RATE
    if args.schedule == "paper":
        return ImageNetStepSchedule(
            steps_per_epoch=steps_per_epoch,
            batch_size=PAPER_IMAGENET_BATCH_SIZE if args.no_lr_scaling else batch_size,
            base_learning_rate=base_lr, boundary_epochs=args.boundary_epochs,
            warmup_epochs=args.warmup_epochs)
    scale = 1.0 if args.no_lr_scaling else batch_size / PAPER_IMAGENET_BATCH_SIZE
    return WarmupCosineDecay(base_lr * scale, total_steps=total_steps,
                             warmup_steps=min(total_steps - 1,
                                              args.warmup_epochs * steps_per_epoch))


def check_arguments(args):
    """The usage errors argparse cannot see: the model and the data folder."""
    from keras_preact.models.variants import IMAGENET_VARIANTS

    training_cli.check_model(args, "imagenet", IMAGENET_VARIANTS)
    training_cli.check_data_dir(args, ("tfrecord", "folder"))


def main(argv=None):
    parser = build_parser()
    args = training_cli.parse_arguments(parser, argv, check_arguments)
    setup = training_cli.prepare(args)
    batch = setup.global_batch_size
    try:  # --steps-per-execution must divide every epoch
        steps_per_epoch, epochs, total_steps = training_cli.run_length(
            args, args.train_examples, batch, default_epochs=DEFAULT_EPOCHS)
    except ValueError as e:
        parser.error(str(e))
    schedule = make_schedule(args, batch, steps_per_epoch, total_steps)
    try:  # a model or data folder the library refuses is a usage error
        with setup.distribution.scope():
            model = build_model(args)
            compile_for_paper(model, schedule, **training_cli.compile_arguments(args))
        train_data, val_data = make_datasets(
            args, batch, setup.distribution.needs_static_batches, model)
        if callable(train_data):  # read the training folder or files now, once
            first, make_train = train_data(0), train_data
            train_data = lambda step: first if step == 0 else make_train(step)  # noqa: E731
    except ValueError as e:
        parser.error(str(e))
    label = args.model or f"PreActResNet-{args.depth}"
    run = training_cli.training_run(
        args, setup, steps_per_epoch=steps_per_epoch, epochs=epochs, total_steps=total_steps,
        run_config={"model": label, "num_classes": args.num_classes,
                    "data_source": args.data_source, "global_batch_size": batch,
                    "steps_per_epoch": steps_per_epoch, "total_steps": total_steps,
                    "schedule": schedule.get_config(), "policy": setup.policy},
        title=f"{label} on ImageNet ({args.data_source})",
        export_name=f"{model.name}_imagenet" if args.export else None,
        # Suggested only for runs longer than the quick look itself.
        quick_look=None if total_steps <= 5 else training_cli.quick_look_command(
            sys.argv[0] if argv is None else __file__,
            sys.argv[1:] if argv is None else argv,
            {"--epochs": "1", "--steps-per-epoch": training_cli.quick_look_steps(5, args), "--validation-steps": "2",
             "--output-dir": args.output_dir.rstrip("/") + "_quick_look"}))
    return train_and_evaluate(model, train_data, run, validation_data=val_data,
                              distribution=setup.distribution)


if __name__ == "__main__":
    main()
