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

import sys

from keras_preact.training import runner
from keras_preact.training.schedules import PAPER_IMAGENET_BATCH_SIZE
from keras_preact.training.schedules import PAPER_IMAGENET_LEARNING_RATE
from keras_preact.training.schedules import ImageNetStepSchedule
from keras_preact.training.schedules import WarmupCosineDecay

IMAGENET_TRAIN_EXAMPLES = 1_281_167
IMAGENET_EVAL_EXAMPLES = 50_000
IMAGENET_DEPTHS = (18, 34, 50, 101, 152, 200)


def parse_args(argv=None):
    parser = runner.make_parser(__doc__.split("\n\n")[0])
    g = parser.add_argument_group("model and data")
    g.add_argument("--depth", type=int, default=50, choices=IMAGENET_DEPTHS)
    g.add_argument("--model", default=None,
                   help="A named model instead of --depth, e.g. PreActResNet200.")
    g.add_argument("--num-classes", type=int, default=1000)
    g.add_argument("--data-source", choices=("tfds", "tfrecord", "folder", "synthetic"),
                   default="tfds")
    g.add_argument("--data-dir", default=None)
    g.add_argument("--train-split", default="train")
    g.add_argument("--eval-split", default="validation",
                   help="Evaluation split; 'none' to skip validation.")
    g.add_argument("--label-offset", type=int, default=0,
                   help="-1 for TFRecords with labels 1..1000 (imagenet_to_gcs.py).")
    g.add_argument("--image-size", type=int, default=224)
    g.add_argument("--augment", choices=("inception", "scale", "none"), default="inception",
                   help="'inception': random-sized crop (fb.resnet.torch); 'scale': the "
                        "paper's shorter side in [256, 480] + 224 crop.")
    g.add_argument("--train-examples", type=int, default=IMAGENET_TRAIN_EXAMPLES,
                   help="Training-set size, for steps per epoch.")
    g.add_argument("--boundary-epochs", default="30,60,90",
                   help="Epochs at which the rate is divided by 10.")
    g.add_argument("--warmup-epochs", type=int, default=0,
                   help="Linear warm-up epochs (not in the paper; large batches).")
    runner.add_common_arguments(
        parser, default_batch_size=PAPER_IMAGENET_BATCH_SIZE,
        default_output_dir="runs/imagenet",
    )
    args = parser.parse_args(argv)
    runner.check_common_arguments(parser, args)
    try:
        args.boundary_epochs = tuple(int(e) for e in args.boundary_epochs.split(",") if e)
    except ValueError:
        parser.error(f"--boundary-epochs must be comma-separated ints, got "
                     f"{args.boundary_epochs!r}")
    if args.epochs is None and args.steps is None:
        args.epochs = 90
    return args


def build_model_fn(args):
    import keras

    import keras_preact

    def build():
        # In the runner's data format (--data-format).
        size = (args.image_size, args.image_size)
        channels_last = keras.config.image_data_format() == "channels_last"
        shape = (*size, 3) if channels_last else (3, *size)
        if args.model:
            if not hasattr(keras_preact, args.model):
                raise ValueError(
                    f"Unknown --model={args.model!r}. Expected a keras_preact "
                    "model name such as 'PreActResNet50'."
                )
            return getattr(keras_preact, args.model)(
                classes=args.num_classes, input_shape=shape, input_normalization="imagenet",
            )
        # The model normalizes its 0-255 pixels itself (exports carry it).
        return keras_preact.PreActResNet(
            args.depth, layout="imagenet", classes=args.num_classes, input_shape=shape,
            input_normalization="imagenet",
        )

    return build


def make_datasets(args, batch, static_batches=False, model=None):
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


def main(argv=None):
    args = parse_args(argv)
    prep = runner.prepare(args)
    batch = prep["global_batch_size"]

    def make_data(model):
        return make_datasets(args, batch, prep["setup"].needs_static_batches, model)
    steps_per_epoch, epochs, total_steps = runner.run_length(
        args, args.train_examples, batch, default_total_steps=None
    )
    base_lr = args.learning_rate or PAPER_IMAGENET_LEARNING_RATE
    if args.schedule == "paper":
        schedule = ImageNetStepSchedule(
            steps_per_epoch=steps_per_epoch,
            batch_size=PAPER_IMAGENET_BATCH_SIZE if args.no_lr_scaling else batch,
            base_learning_rate=base_lr,
            boundary_epochs=args.boundary_epochs,
            warmup_epochs=args.warmup_epochs,
        )
    else:
        scale = 1.0 if args.no_lr_scaling else batch / PAPER_IMAGENET_BATCH_SIZE
        schedule = WarmupCosineDecay(
            base_lr * scale, total_steps=total_steps,
            warmup_steps=min(total_steps - 1, args.warmup_epochs * steps_per_epoch),
        )
    run_info = {
        "script": "train_imagenet.py", "argv": sys.argv[1:] if argv is None else list(argv),
        "model": args.model or f"PreActResNet(depth={args.depth}, layout='imagenet')",
        "data_source": args.data_source, "global_batch_size": batch,
        "replicas": prep["setup"].num_replicas, "steps_per_epoch": steps_per_epoch,
        "epochs": epochs, "total_steps": total_steps,
        "schedule": schedule.get_config(), "policy": prep["policy"],
    }
    runner.fit_and_evaluate(
        args, prep=prep, build_model=build_model_fn(args), learning_rate=schedule,
        make_data=make_data, steps_per_epoch=steps_per_epoch,
        epochs=epochs, run_info=run_info, model_name="preact_resnet_imagenet",
        title=f"{args.model or f'PreActResNet-{args.depth}'} on ImageNet "
              f"({args.data_source})",
        # Suggested only for runs longer than the quick look itself.
        quick_look=None if total_steps <= 5 else runner.quick_look_command(
            sys.argv[0] if argv is None else __file__,
            sys.argv[1:] if argv is None else argv,
            {"--epochs": "1", "--steps-per-epoch": "5", "--validation-steps": "2",
             "--output-dir": args.output_dir.rstrip("/") + "_quick_look"},
        ),
    )


if __name__ == "__main__":
    main()
