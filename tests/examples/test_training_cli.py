"""examples/training_cli.py: the arguments and set-up the training scripts share
(Keras' own compile defaults, the opening lines, --global-batch-size)."""

import keras
import pytest

from keras_preact.training import DistributionSetup
from keras_preact.training.banner import describe_start

from _checks import check_bad_arguments_exit
from _checks import load_example

training_cli = load_example("training_cli")


@pytest.mark.parametrize("name", ["train_cifar100", "train_imagenet"])
def test_compile_defaults_are_keras_own(name):
    args = load_example(name).build_parser().parse_args([])
    assert (args.jit_compile, args.steps_per_execution) == ("auto", 1)
    assert args.data_format == keras.config.image_data_format()
    assert training_cli.compile_arguments(args)["jit_compile"] == "auto"


# (script, arguments, what the opening lines say of the trainable parameters).
BANNERS = {
    # The README's main job: the paper's network, and its count.
    "main_job": ("train_cifar100", [
        "--depth", "164", "--dataset", "cifar100", "--data-source", "npz", "--data-dir",
        "../shared/data/cifar100", "--mixed-precision", "auto", "--output-dir",
        "runs/preact164_cifar100", "--resume"],
        "1,726,388 trainable parameters (the paper's count for PreActResNet164 at 100 "
        "classes), 24,224 non-trainable"),
    # Not a network of the paper: no claim.
    "imagenet_18_50_classes": ("train_imagenet", ["--depth", "18", "--num-classes", "50"],
                               "11,200,370 trainable parameters, 7,808 non-trainable"),
}


@pytest.mark.parametrize("case", sorted(BANNERS))
def test_banner_names_the_papers_count_only_for_the_papers_network(case):
    name, argv, counts = BANNERS[case]
    script = load_example(name)
    args = script.build_parser().parse_args(argv)
    setup = training_cli.Setup(DistributionSetup("none"), "float32", args.output_dir,
                               args.batch_size)
    quick = training_cli.quick_look_command(f"examples/{name}.py", argv, {
        "--epochs": "1", "--steps-per-epoch": "10", "--output-dir": "runs/quick_look"})
    run = training_cli.training_run(args, setup, steps_per_epoch=391, epochs=164,
                                    total_steps=64000, quick_look=quick)
    text = describe_start(script.build_model(args), run)
    assert counts in text
    assert "jit_compile=auto (Keras' default, resolved to " in text
    assert "steps_per_execution=1 (Keras' default)" in text
    assert "64,000 steps: 164 epochs of 391 steps (the last of 267), global batch " in text
    if args.resume:
        assert f"{args.output_dir}/backup (every 300 s and at each epoch end)" in text
    if "No GPU or TPU found" in text:
        assert text.endswith(f"A quick look (a few steps): {quick}")
        assert quick.endswith("--epochs 1 --steps-per-epoch 10 --output-dir runs/quick_look")


@pytest.mark.parametrize("global_batch, per_replica", [(64, 32), (7, None)])
def test_global_batch_size_flag(monkeypatch, global_batch, per_replica):
    """--global-batch-size is split over the replicas, or refused by name;
    the parsed arguments are left as they are."""
    monkeypatch.setattr(training_cli, "setup_distribution",
                        lambda kind, tpu=None: DistributionSetup(kind, num_replicas=2))
    monkeypatch.setattr(training_cli, "set_precision", lambda mode: "float32")
    args = load_example("train_cifar100").build_parser().parse_args(
        ["--global-batch-size", str(global_batch), "--distribute", "mirrored"])
    if per_replica is None:
        with pytest.raises(ValueError, match="multiple of the 2 replicas.*=7"):
            training_cli.prepare(args)
        return
    setup = training_cli.prepare(args)
    assert setup.global_batch_size == global_batch and setup.output_dir == args.output_dir
    assert (args.batch_size, args.global_batch_size) == (128, global_batch)


SCRIPTS = ["train_cifar100", "train_imagenet", "reproduce"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_option_has_a_help_that_shows_its_default_once(name):
    parser = load_example(name).build_parser()
    text = parser.format_help()
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"{name}: {action.option_strings} has no help"
            shown = parser._get_formatter()._format_action(action)
            assert shown.lower().count("default") <= 1, shown
    assert "default: None" not in text and "default: False" not in text


# (script, arguments, the usage error): values the library refuses, caught
# before anything is built, loaded or written.
USAGE_ERRORS = {
    "cifar-imagenet-model": ("train_cifar100", ["--model", "PreActResNet50"],
                             "Unknown --model='PreActResNet50' for the cifar layout"),
    "cifar-depth": ("train_cifar100", ["--depth", "21"], "Invalid depth=21"),
    "cifar-npz-without-folder": ("train_cifar100", ["--data-source", "npz"],
                                 "--data-source npz reads files: give --data-dir."),
    "cifar-missing-folder": ("train_cifar100", ["--data-source", "npz", "--data-dir",
                                                "/no/such/folder"], "/no/such/folder"),
    "cifar-model-and-depth": ("train_cifar100", ["--depth", "20", "--model", "PreActResNet56"],
                              "argument --model: not allowed with argument --depth"),
    "imagenet-cifar-model": ("train_imagenet", ["--model", "PreActResNet20"],
                             "Unknown --model='PreActResNet20' for the imagenet layout"),
    "imagenet-folder-without-folder": ("train_imagenet", ["--data-source", "folder"],
                                       "--data-source folder reads files: give --data-dir."),
    "imagenet-missing-folder": ("train_imagenet", ["--data-source", "folder", "--data-dir",
                                                   "/no/such/folder"], "/no/such/folder"),
    "imagenet-steps-per-execution": (
        "train_imagenet", ["--data-source", "synthetic", "--train-examples", "100",
                           "--batch-size", "10", "--steps-per-execution", "3"],
        "--steps-per-execution 3: Keras' torch backend takes 1 only. Use 1, or the "
        "tensorflow or jax backend." if keras.backend.backend() == "torch" else
        "An epoch of this run has 10 steps, not a multiple of steps_per_execution=3: Keras "
        "would train 12. Use a steps_per_execution that divides every epoch's steps: "
        "[1, 2, 5, 10]."),
    "imagenet-small-images": ("train_imagenet", ["--data-source", "synthetic", "--image-size",
                                                 "16"], "Invalid input_shape=(16, 16, 3)"),
}


@pytest.mark.parametrize("case", sorted(USAGE_ERRORS))
def test_refused_values_are_usage_errors(case, capsys, tmp_path):
    name, argv, message = USAGE_ERRORS[case]
    out = tmp_path / "run"
    check_bad_arguments_exit(load_example(name), [*argv, "--output-dir", str(out)], message,
                             capsys)
    assert not out.exists()


@pytest.mark.parametrize("per_execution, steps", [(1, "10"), (4, "12"), (5, "10")])
def test_the_quick_look_trains_whole_executions(per_execution, steps):
    parser = load_example("train_cifar100").build_parser()
    args = parser.parse_args(["--steps-per-execution", str(per_execution)])
    assert training_cli.quick_look_steps(10, args) == steps
