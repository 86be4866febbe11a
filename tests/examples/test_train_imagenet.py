"""examples/train_imagenet.py: its arguments, and a tiny run on a folder of real
JPEGs."""

import keras
import pytest

from keras_preact.normalization import model_statistics

from _checks import load_example
from _checks import make_imagenet_folder
from _checks import read_csv

training_cli = load_example("training_cli")


def test_imagenet_script_arguments(capsys):
    parser = load_example("train_imagenet").build_parser()
    args = parser.parse_args(["--depth", "200", "--boundary-epochs", "30,60"])
    assert (args.boundary_epochs, args.batch_size) == ((30, 60), 256)
    assert parser.parse_args([]).boundary_epochs == (30, 60, 90)
    # The paper's 90 epochs unless --epochs or --steps says otherwise.
    assert training_cli.run_length(args, 1000, 100, default_epochs=90) == (10, 90, 900)
    # --steps 25 trains 25 steps: 3 epochs, the last of 5.
    steps = parser.parse_args(["--steps", "25"])
    assert training_cli.run_length(steps, 1000, 100, default_epochs=90) == (10, 3, 25)
    with pytest.raises(SystemExit):
        parser.parse_args(["--depth", "42"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--boundary-epochs", "30,x"])
    assert "--boundary-epochs: must be comma-separated ints, got '30,x'" in (
        capsys.readouterr().err)


@pytest.mark.slow
def test_imagenet_script_tiny_run_on_folder(shared_data, tmp_path, capsys):
    data = make_imagenet_folder(shared_data, tmp_path / "imagenet")
    script = load_example("train_imagenet")
    out = tmp_path / "run"
    script.main([
        "--depth", "18", "--num-classes", "2", "--data-source", "folder",
        "--data-dir", str(data), "--image-size", "64", "--batch-size", "2",
        "--epochs", "2", "--steps-per-epoch", "2", "--train-examples", "6",
        "--output-dir", str(out), "--verbose", "2", "--no-tensorboard",
    ])
    assert "Final evaluation: loss=" in capsys.readouterr().out
    rows = read_csv(out / "metrics.csv")
    assert [r["iterations"] for r in rows] == ["2", "4"]
    # ImageNetStepSchedule: 0.1 * 2 / 256 before epoch 30.
    assert float(rows[1]["learning_rate"]) == pytest.approx(0.1 * 2 / 256)
    assert "top5" not in rows[0]  # only 2 classes: top-5 is left out
    checkpoint = keras.saving.load_model(out / "checkpoints" / "last.keras")
    assert model_statistics(checkpoint).isclose("imagenet", rtol=1e-6)
