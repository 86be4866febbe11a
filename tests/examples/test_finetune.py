"""examples/finetune.py: its arguments, the two phases on real CIFAR-100
images (what each one trains, what it leaves), and a whole run on a folder of
real JPEGs whose saved model reloads. The pretrained weights are a
`.weights.h5` of a checkpoint's network with random weights and BN
statistics: no network."""

import keras
import numpy as np
import pytest

import keras_preact
from keras_preact.normalization import model_statistics
from keras_preact.pretrained import get_checkpoint
from keras_preact.pretrained.registry import builder_arguments

from _checks import load_example
from _checks import make_imagenet_folder

CHECKPOINT = "pytorchcv/preresnet20_cifar10"
BN_STATISTICS = ("moving_mean", "moving_variance")
BN_SCALES = ("gamma", "beta")

script = load_example("finetune")
training_cli = load_example("training_cli")


def pretrained_file(path):
    """Saves CHECKPOINT's network without its classifier, random weights and
    BN statistics (negative scales too), to `path`; returns its variables."""
    backbone = keras_preact.PreActResNet(**builder_arguments(
        get_checkpoint(CHECKPOINT), include_top=False, pooling="avg"))
    rng = np.random.default_rng(7)
    for variable in backbone.weights:
        name, shape = variable.path.rsplit("/", 1)[-1], variable.shape
        values = {
            "kernel": lambda: np.asarray(variable) * rng.uniform(0.5, 1.5),
            "gamma": lambda: rng.uniform(0.5, 1.5, shape) * rng.choice([-1, 1], shape),
            "beta": lambda: rng.normal(0, 0.1, shape),
            "moving_mean": lambda: rng.normal(0, 0.5, shape),
            "moving_variance": lambda: rng.uniform(0.5, 2.0, shape),
        }.get(name)
        if values is not None:
            variable.assign(values().astype("float32"))
    backbone.save_weights(path)
    return variables(backbone)


def variables(model):
    """`{path: numpy copy}` of every variable of `model`."""
    return {v.path: np.array(keras.ops.convert_to_numpy(v)) for v in model.weights}


def kind(path):
    return path.rsplit("/", 1)[-1]


def parse(argv):
    """The script's arguments, its usage checks applied."""
    return training_cli.parse_arguments(script.build_parser(), argv, script.check_arguments)


def test_finetune_defaults():
    args = parse(["--data-dir", "images"])
    weights, checkpoint = script.pretrained_checkpoint(args)
    assert (weights, checkpoint.name) == ("imagenet", "timm/resnetv2_50.a1h_in1k")
    assert checkpoint.image_size == 224
    assert script.learning_rates(args) == (1e-3, pytest.approx(1e-5))  # the Keras guide's
    sgd = parse(["--optimizer", "sgd", "--learning-rate", "0.05", "--data-dir", "images"])
    assert script.learning_rates(sgd) == (0.05, pytest.approx(0.005))
    weights, checkpoint = script.pretrained_checkpoint(
        parse(["--model", "PreActResNet164", "--data-dir", "images"]))
    assert (weights, checkpoint.name) == ("cifar100", "pytorchcv/preresnet164bn_cifar100")
    # A checkpoint name gives its network: no --model needed.
    args = parse(["--weights", "pytorchcv/preresnet1001_cifar10", "--data-dir", "images"])
    assert script.pretrained_checkpoint(args)[1].architecture["depth"] == 1001


@pytest.mark.parametrize("argv, message", [
    (["--weights", "w.weights.h5"],
     "--weights 'w.weights.h5' is a file: give the checkpoint it was converted from "
     "with --converted-from."),
    (["--weights", "cifar10", "--model", "PreActResNet20", "--converted-from", CHECKPOINT],
     "--converted-from goes with a --weights file; --weights 'cifar10' is a checkpoint name."),
    (["--weights", "w.weights.h5", "--converted-from", CHECKPOINT, "--model",
      "PreActResNet50"],
     f"Invalid depth=50, layout='imagenet' for weights='{CHECKPOINT}'"),
    (["--weights", "cifar10", "--model", "PreActResNet32"],
     "Invalid weights='cifar10' for the cifar layout at depth 32"),
    (["--weights", "timm/resnetv2_26"], "Unknown pretrained checkpoint 'timm/resnetv2_26'"),
    (["--fine-tune-epochs", "-1", "--data-dir", "images"],
     "--fine-tune-epochs must be >= 0, got -1."),
    (["--dropout", "1", "--data-dir", "images"], "--dropout must be in [0, 1), got 1.0."),
    (["--data-source", "npz"], "--data-source npz reads files: give --data-dir."),
    (["--model", "PreActResNet7"], "argument --model: invalid choice: 'PreActResNet7'"),
])
def test_finetune_refuses_bad_arguments(capsys, argv, message):
    with pytest.raises(SystemExit):
        parse(argv)
    assert message in capsys.readouterr().err


def test_finetune_backbone_from_a_checkpoint_name_has_its_weights(tmp_path, monkeypatch):
    # The converted checkpoint already in the cache (`$KERAS_HOME`): no network.
    from keras_preact.pretrained import loading

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    full = keras_preact.PreActResNet(**builder_arguments(get_checkpoint(CHECKPOINT)))
    for variable in full.weights:
        variable.assign(np.random.default_rng(len(variable.path)).normal(
            size=variable.shape).astype("float32"))
    full.save_weights(loading._converted_path(CHECKPOINT))
    args = parse(["--weights", CHECKPOINT, "--data-source", "npz", "--data-dir", str(tmp_path)])
    backbone = script.build_backbone(*script.pretrained_checkpoint(args), 32)
    expected = {v.path: v for v in full.weights if not v.path.startswith("predictions")}
    assert variables(backbone).keys() == expected.keys()
    for path, value in variables(backbone).items():
        np.testing.assert_array_equal(value, keras.ops.convert_to_numpy(expected[path]))
    assert backbone.output_shape == (None, 64)


def test_finetune_refuses_missing_weights_and_foreign_folders(shared_data, tmp_path, capsys):
    data = make_imagenet_folder(shared_data, tmp_path / "images")
    common = ["--converted-from", CHECKPOINT, "--data-dir", str(data)]
    with pytest.raises(SystemExit):
        script.main(["--weights", str(tmp_path / "none.weights.h5"), *common])
    assert f"Invalid weights='{tmp_path / 'none.weights.h5'}': no such file" in (
        capsys.readouterr().err)
    pretrained_file(tmp_path / "w.weights.h5")
    (data / "validation" / "class1").rename(data / "validation" / "other")
    with pytest.raises(SystemExit):
        script.main(["--weights", str(tmp_path / "w.weights.h5"), *common])
    assert ("The validation class folders ['class0', 'other'] are not the training ones "
            "['class0', 'class1']") in capsys.readouterr().err


@pytest.mark.slow
def test_finetune_phases_train_the_head_then_the_network_with_bn_frozen(
        shared_data, tmp_path, capsys):
    pretrained = pretrained_file(tmp_path / "pretrained.weights.h5")
    args = parse([
        "--weights", str(tmp_path / "pretrained.weights.h5"), "--converted-from", CHECKPOINT,
        "--data-source", "npz", "--data-dir", str(shared_data / "cifar100"),
        "--max-train-examples", "64", "--batch-size", "16", "--steps-per-epoch", "2",
        "--epochs", "1", "--fine-tune-epochs", "1", "--verbose", "0",
    ])
    backbone = script.build_backbone(*script.pretrained_checkpoint(args), 32)
    assert variables(backbone).keys() == pretrained.keys()
    train, _, classes, size = script.make_datasets(args, backbone, 32)
    model = script.build_classifier(backbone, classes, size)
    head = variables(model.get_layer("predictions"))

    script.train_head(model, backbone, train, None, args)
    after_head = variables(backbone)
    for path, value in pretrained.items():  # loaded, and left as it was
        np.testing.assert_array_equal(after_head[path], value, err_msg=path)
    for path, value in variables(model.get_layer("predictions")).items():
        assert not np.array_equal(value, head[path]), path

    script.fine_tune(model, backbone, train, None, args)
    after = variables(backbone)
    kernels = [p for p in pretrained if kind(p) == "kernel"]
    statistics = [p for p in pretrained if kind(p) in BN_STATISTICS]
    scales = [p for p in pretrained if kind(p) in BN_SCALES]
    assert (len(kernels), len(statistics), len(scales)) == (21, 2 * 19, 2 * 19)
    for path in kernels:
        assert not np.array_equal(after[path], pretrained[path]), path
    for path in statistics + scales:  # BN in inference mode, its scales frozen
        np.testing.assert_array_equal(after[path], pretrained[path], err_msg=path)
    printed = capsys.readouterr().out
    assert "the backbone frozen (6,500 trainable parameters)" in printed
    assert "BatchNormalization frozen (276,756 trainable parameters)" in printed


@pytest.mark.slow
def test_finetune_run_on_image_folder_saves_a_model_that_reloads(
        shared_data, tmp_path, capsys):
    data = make_imagenet_folder(shared_data, tmp_path / "images")
    pretrained = pretrained_file(tmp_path / "pretrained.weights.h5")
    out = tmp_path / "run"
    model, metrics = script.main([
        "--weights", str(tmp_path / "pretrained.weights.h5"), "--converted-from", CHECKPOINT,
        "--data-source", "folder", "--data-dir", str(data), "--image-size", "32",
        "--batch-size", "2", "--steps-per-epoch", "2", "--epochs", "1",
        "--fine-tune-epochs", "1", "--train-batch-norm", "--output-dir", str(out),
        "--verbose", "0",
    ])
    printed = capsys.readouterr().out
    assert f"{CHECKPOINT} ({tmp_path / 'pretrained.weights.h5'}) without its classifier, " \
           "a new one for 2 classes, 32x32 images" in printed
    assert "Phase 2: the whole network (271,762 trainable parameters)" in printed
    assert "Final evaluation: loss=" in printed and set(metrics) == {"loss", "top1"}
    after = variables(model.get_layer("preact_resnet20"))
    for path in pretrained:  # --train-batch-norm: BN statistics follow the batches
        if kind(path) in BN_STATISTICS + ("kernel",):
            assert not np.array_equal(after[path], pretrained[path]), path

    reloaded = keras.saving.load_model(out / "finetuned.keras")
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(reloaded.predict(images, verbose=0),
                               model.predict(images, verbose=0), rtol=1e-6, atol=1e-7)
    # The model takes 0-255 pixels: it carries the checkpoint's statistics.
    assert model_statistics(reloaded).isclose(get_checkpoint(CHECKPOINT).statistics)
