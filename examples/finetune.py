"""Fine-tune a pretrained Pre-activation ResNet on your own images.

The recipe of the Keras transfer-learning guide: the pretrained network
without its classifier (`include_top=False, pooling="avg"`) under a new
classifier for your classes; first the new head alone, the backbone frozen;
then the whole network at a much lower learning rate, its BatchNormalization
layers kept in inference mode (their pretrained moving statistics and scales)
unless --train-batch-norm is given. The model takes 0-255 pixels: it carries
the checkpoint's input statistics. It is evaluated and saved as
OUTPUT_DIR/finetuned.keras.

Examples:

    # A folder of class folders, DATA/train/<class>/*.jpg and DATA/validation/
    # (or val/); the ImageNet PreActResNet-50 (downloads its weights):
    python examples/finetune.py --data-source folder --data-dir DATA \\
        --output-dir runs/finetune

    # CIFAR-10 from the CIFAR-100 network of pytorchcv:
    python examples/finetune.py --weights pytorchcv/preresnet164bn_cifar100 \\
        --data-source tfds --dataset cifar10 --output-dir runs/c100_to_c10

    # A .weights.h5 converted from a checkpoint, on the shared CIFAR-100 copy:
    python examples/finetune.py --weights preresnet20.weights.h5 \\
        --converted-from pytorchcv/preresnet20_cifar10 --data-source npz \\
        --data-dir ../shared/data/cifar100 --epochs 1 --fine-tune-epochs 1 \\
        --steps-per-epoch 5 --max-eval-examples 256 --output-dir runs/check
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402

import training_cli  # noqa: E402
from keras_preact.models import batch_norm_layers  # noqa: E402
from keras_preact.models.variants import CIFAR_VARIANTS  # noqa: E402
from keras_preact.models.variants import IMAGENET_VARIANTS  # noqa: E402
from keras_preact.training import compile_for_paper  # noqa: E402
from keras_preact.training import set_precision  # noqa: E402
from keras_preact.training.precision import VALID_PRECISIONS  # noqa: E402

NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
# --model -> (layout, depth).
VARIANTS = {
    variant.__name__: ("cifar" if variant in CIFAR_VARIANTS else "imagenet",
                       int(variant.__name__[len("PreActResNet"):]))
    for variant in CIFAR_VARIANTS + IMAGENET_VARIANTS
}
DEFAULT_MODEL = "PreActResNet50"
# The short name --weights defaults to, per layout.
DEFAULT_WEIGHTS = {"imagenet": "imagenet", "cifar": "cifar100"}
# The Keras guide's rates: Adam at its default for the head, 1e-5 (a
# hundredth) for the whole network; SGD with momentum takes a tenth.
LEARNING_RATES = {"adam": 1e-3, "sgd": 0.01}
FINE_TUNE_FACTORS = {"adam": 0.01, "sgd": 0.1}


def build_parser():
    """The `argparse.ArgumentParser` of this script."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=training_cli.HelpFormatter)
    g = parser.add_argument_group("pretrained network")
    g.add_argument("--model", default=None, choices=sorted(VARIANTS), metavar="MODEL",
                   help="A named network, e.g. PreActResNet164 (default: the network of "
                        f"--weights or --converted-from, else {DEFAULT_MODEL}).")
    g.add_argument("--weights", default=None,
                   help="A checkpoint name (pytorchcv/preresnet164bn_cifar100, "
                        "timm/resnetv2_50.a1h_in1k), a short name (imagenet, cifar10, "
                        "cifar100), or a .weights.h5 file with --converted-from (default: "
                        "'imagenet' for an ImageNet network, 'cifar100' for a CIFAR one).")
    g.add_argument("--converted-from", default=None, metavar="CHECKPOINT",
                   help="The checkpoint a --weights file holds, converted: its network "
                        "and input statistics.")
    g = parser.add_argument_group("data")
    g.add_argument("--data-source", choices=("folder", "tfds", "archive", "npz"),
                   default="folder",
                   help="'folder': DATA_DIR/train/<class>/ and DATA_DIR/validation/ (or "
                        "val/) of images; the others read CIFAR (load_cifar).")
    g.add_argument("--data-dir", default=None,
                   help="The image folder, the CIFAR archive or npz folder, or the tfds "
                        "data_dir.")
    g.add_argument("--dataset", choices=sorted(NUM_CLASSES), default="cifar100",
                   help="Which CIFAR, for the tfds, archive and npz sources.")
    g.add_argument("--image-size", type=training_cli.positive(int), default=None,
                   help="Height and width the network sees (default: the checkpoint's, "
                        "224 ImageNet, 32 CIFAR); CIFAR images are resized in the model.")
    g.add_argument("--max-train-examples", type=training_cli.positive(int), default=None,
                   help="CIFAR: use only the first N training images.")
    g.add_argument("--max-eval-examples", type=training_cli.positive(int), default=None,
                   help="CIFAR: use only the first N test images.")
    g = parser.add_argument_group("training")
    g.add_argument("--epochs", type=training_cli.positive(int), default=20,
                   help="Epochs of the new head alone, the backbone frozen.")
    g.add_argument("--fine-tune-epochs", type=int, default=10,
                   help="Epochs of the whole network after that; 0 trains the head only.")
    g.add_argument("--steps-per-epoch", type=training_cli.positive(int), default=None,
                   help="Batches per epoch (default: one pass over the training images).")
    g.add_argument("--validation-steps", type=training_cli.positive(int), default=None,
                   help="Batches per evaluation (default: all).")
    g.add_argument("--batch-size", type=training_cli.positive(int), default=64,
                   help="Batch size.")
    g.add_argument("--optimizer", choices=sorted(LEARNING_RATES), default="adam",
                   help="Adam, or SGD with momentum 0.9.")
    g.add_argument("--learning-rate", type=training_cli.positive(float), default=None,
                   help="Rate of the head's training (default: 1e-3 Adam, 0.01 SGD).")
    g.add_argument("--fine-tune-learning-rate", type=training_cli.positive(float),
                   default=None,
                   help="Rate of the whole network's (default: the head's / 100 with "
                        "Adam, / 10 with SGD).")
    g.add_argument("--dropout", type=float, default=0.2,
                   help="Dropout rate before the new classifier.")
    g.add_argument("--train-batch-norm", action="store_true",
                   help="Fine-tune the BatchNormalization layers too (batch statistics, "
                        "moving averages updated, scales trained).")
    g = parser.add_argument_group("hardware and outputs")
    g.add_argument("--mixed-precision", choices=VALID_PRECISIONS, default="off",
                   help="'auto' = bfloat16 on TPU / GPUs with compute capability >= 8, "
                        "else float32.")
    g.add_argument("--output-dir", default="runs/finetune",
                   help="Where finetuned.keras is saved.")
    g.add_argument("--seed", type=int, default=0,
                   help="Seed of the new head, the shuffling and the augmentation.")
    g.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                   help="Keras fit verbosity (1 = progress bars).")
    return parser


def pretrained_checkpoint(args):
    """`(weights, checkpoint)`: the `weights=` of the backbone and the
    `keras_preact.pretrained.Checkpoint` whose network it is.

    Raises:
        ValueError: an unknown checkpoint, a short name without a checkpoint
            for the network, a file without --converted-from (or the other
            way round), or a --model that is not the checkpoint's network.
    """
    from keras_preact.pretrained.registry import builder_arguments
    from keras_preact.pretrained.registry import checkpoint_for_weights
    from keras_preact.pretrained.registry import get_checkpoint

    layout, depth = VARIANTS[args.model or DEFAULT_MODEL]
    weights = args.weights or DEFAULT_WEIGHTS[layout]
    if args.converted_from is not None:
        if checkpoint_for_weights(weights, layout, depth) is not None:
            raise ValueError(f"--converted-from goes with a --weights file; --weights "
                             f"{weights!r} is a checkpoint name.")
        checkpoint = get_checkpoint(args.converted_from)
    else:
        checkpoint = checkpoint_for_weights(weights, layout, depth)
        if checkpoint is None:
            raise ValueError(f"--weights {weights!r} is a file: give the checkpoint it was "
                             "converted from with --converted-from.")
    if args.model:  # the checkpoint refuses another network
        builder_arguments(checkpoint, depth=depth, layout=layout)
    return weights, checkpoint


def check_arguments(args):
    """The usage errors argparse cannot see."""
    pretrained_checkpoint(args)
    training_cli.check_data_dir(args, ("folder", "archive", "npz"))
    if args.fine_tune_epochs < 0:
        raise ValueError(f"--fine-tune-epochs must be >= 0, got {args.fine_tune_epochs}.")
    if not 0 <= args.dropout < 1:
        raise ValueError(f"--dropout must be in [0, 1), got {args.dropout}.")


def image_shape(size):
    """`(size, size, 3)` in Keras' image data format."""
    last = keras.config.image_data_format() == "channels_last"
    return (size, size, 3) if last else (3, size, size)


def build_backbone(weights, checkpoint, image_size):
    """The pretrained network without its classifier: `(batch, features)`.

    `weights` names the checkpoint or is a file converted from it; the
    network is the checkpoint's, with its input statistics (0-255 pixels in).
    """
    import keras_preact
    from keras_preact.pretrained.registry import builder_arguments

    arguments = builder_arguments(checkpoint, include_top=False, pooling="avg",
                                  input_shape=image_shape(image_size))
    return keras_preact.PreActResNet(**arguments, weights=weights)


def make_datasets(args, backbone, image_size):
    """`(training batches, validation batches, classes, image size of the data)`.

    The pipelines give 0-255 pixels in the backbone's data format
    (`normalization=backbone`), CIFAR padded with its mean colour.
    """
    from keras_preact.data import cifar_dataset
    from keras_preact.data import imagenet_dataset
    from keras_preact.data import load_cifar

    common = dict(batch_size=args.batch_size, seed=args.seed, normalization=backbone)
    if args.data_source == "folder":
        train = imagenet_dataset("folder", args.data_dir, "train", training=True,
                                 image_size=image_size, **common)
        names = train.class_names
        classes = len(names)
        validation = imagenet_dataset("folder", args.data_dir, "validation",
                                      training=False, image_size=image_size,
                                      num_classes=classes, **common)
        if validation.class_names != names:  # labels are positions in these lists
            raise ValueError(f"The validation class folders {validation.class_names} are "
                             f"not the training ones {names}.")
        size = image_size
    else:
        splits = [load_cifar(args.dataset, source=args.data_source, data_dir=args.data_dir,
                             split=split) for split in ("train", "test")]
        (x, y), (x_test, y_test) = splits
        x, y = x[: args.max_train_examples], y[: args.max_train_examples]
        x_test, y_test = x_test[: args.max_eval_examples], y_test[: args.max_eval_examples]
        classes = NUM_CLASSES[args.dataset]
        train = cifar_dataset(x, y, training=True, num_classes=classes, **common)
        validation = cifar_dataset(x_test, y_test, training=False, num_classes=classes,
                                   **common)
        size = x.shape[1]
    # Each epoch reads the dataset anew: a fresh shuffle and augmentation.
    if args.steps_per_epoch:
        train = train.take(args.steps_per_epoch)
    if args.validation_steps:
        validation = validation.take(args.validation_steps)
    return train, validation, classes, size


def build_classifier(backbone, classes, data_size, dropout=0.2):
    """The backbone under a new softmax classifier of `classes` classes.

    It takes the data's `data_size` images, resized in the model to the
    backbone's size where they differ.
    """
    inputs = keras.Input(shape=image_shape(data_size))
    x = inputs
    size = backbone.input_shape[2]  # the width, in either data format
    if size != data_size:
        x = keras.layers.Resizing(size, size, dtype="float32", name="resize")(x)
    x = backbone(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    # Probabilities in float32, whatever the global policy (as our head).
    outputs = keras.layers.Dense(classes, activation="softmax", dtype="float32",
                                 name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"{backbone.name}_finetuned")


def learning_rates(args):
    """`(rate of the head's training, rate of the whole network's)`."""
    rate = args.learning_rate or LEARNING_RATES[args.optimizer]
    return rate, args.fine_tune_learning_rate or rate * FINE_TUNE_FACTORS[args.optimizer]


def make_optimizer(name, learning_rate):
    """Adam, or SGD with momentum 0.9, at `learning_rate`."""
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9)
    return keras.optimizers.Adam(learning_rate)


def trainable_count(model):
    """How many parameters the next compile of `model` trains."""
    return sum(int(keras.ops.size(v)) for v in model.trainable_weights)


def train_head(model, backbone, train, validation, args):
    """Phase 1: the new head alone. Returns the `History`.

    A frozen backbone (`trainable = False`) also runs its BatchNormalization
    layers in inference mode in Keras 3: its weights and statistics stay.
    """
    backbone.trainable = False
    rate = learning_rates(args)[0]
    compile_for_paper(model, optimizer=make_optimizer(args.optimizer, rate))
    print(f"Phase 1: the new head, the backbone frozen ({trainable_count(model):,} "
          f"trainable parameters), {args.epochs} epochs, {args.optimizer} at {rate:g}",
          flush=True)
    return model.fit(train, epochs=args.epochs, validation_data=validation,
                     shuffle=False, verbose=args.verbose)  # the pipeline shuffles


def fine_tune(model, backbone, train, validation, args):
    """Phase 2: the whole network at the lower rate. Returns the `History`.

    The BatchNormalization layers stay frozen, in inference mode, unless
    `args.train_batch_norm`: a small dataset's batch statistics would replace
    the moving averages the pretrained weights were trained with. Calling
    the backbone with `training=False`, as the Keras guide does, does not
    keep them so in Keras 3.15: `fit` passes `training=True` down the graph
    over it. A BatchNormalization layer with `trainable = False` runs in
    inference mode whatever `training` says.
    """
    backbone.trainable = True
    if not args.train_batch_norm:
        for layer in batch_norm_layers(backbone):
            layer.trainable = False
    rate = learning_rates(args)[1]
    # Changes of `trainable` take effect at the next compile.
    compile_for_paper(model, optimizer=make_optimizer(args.optimizer, rate))
    frozen = "" if args.train_batch_norm else ", BatchNormalization frozen"
    print(f"Phase 2: the whole network{frozen} ({trainable_count(model):,} trainable "
          f"parameters), {args.fine_tune_epochs} epochs, {args.optimizer} at {rate:g}",
          flush=True)
    return model.fit(train, epochs=args.fine_tune_epochs, validation_data=validation,
                     shuffle=False, verbose=args.verbose)  # the pipeline shuffles


def main(argv=None):
    """Runs the script. Returns `(fine-tuned model, final metrics dict)`."""
    from keras_preact.io import atomic_path

    parser = build_parser()
    args = training_cli.parse_arguments(parser, argv, check_arguments)
    keras.utils.set_random_seed(args.seed)
    set_precision(args.mixed_precision)
    weights, checkpoint = pretrained_checkpoint(args)
    image_size = args.image_size or checkpoint.image_size
    try:  # a missing file, a file of another network, a bad data folder
        backbone = build_backbone(weights, checkpoint, image_size)
        train, validation, classes, data_size = make_datasets(args, backbone, image_size)
    except ValueError as e:
        parser.error(str(e))
    model = build_classifier(backbone, classes, data_size, args.dropout)
    print(f"{checkpoint.name} ({weights}) without its classifier, a new one for "
          f"{classes} classes, {image_size}x{image_size} images", flush=True)
    train_head(model, backbone, train, validation, args)
    if args.fine_tune_epochs:
        fine_tune(model, backbone, train, validation, args)
    metrics = model.evaluate(validation, return_dict=True, verbose=args.verbose)
    print("Final evaluation: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    path = os.path.join(args.output_dir, "finetuned.keras")
    with atomic_path(path) as tmp:
        model.save(tmp)
    print(f"Saved {path}", flush=True)
    return model, metrics


if __name__ == "__main__":
    main()
