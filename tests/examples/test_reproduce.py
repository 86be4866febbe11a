"""examples/reproduce.py: the ablation runner (the paper's numbers it prints:
tests/test_paper_results.py)."""

import os

import keras
import numpy as np
import pytest

from _checks import check_bad_arguments_exit
from _checks import load_example

reproduce = load_example("reproduce")


@pytest.fixture
def cifar_subset(shared_data):
    """64 real CIFAR-100 training images and 32 test images (rows are shuffled,
    so a prefix is a fair sample)."""
    folder = shared_data / "cifar100"
    with np.load(folder / "train_0.npz") as train, np.load(folder / "test.npz") as test:
        return (train["x"][:64], train["y"][:64].astype("int64"),
                test["x"][:32], test["y"][:32].astype("int64"))


def tiny_recipe(table="2", epochs=2):
    """Depth 8, base width 4, batch 16, `epochs` epochs of 1 iteration."""
    return reproduce.Recipe(
        table=table, depth=8, dataset="cifar100", data_source="npz", batch_size=16,
        schedule_scale=1e-6, seed=3, base_width=4, eval_batch_size=32,
        total_steps=epochs, steps_per_epoch=1, epochs=epochs,
    )


class CrashAt(keras.callbacks.Callback):
    """Simulates a crash at the start of epoch `epoch` of variant `name`."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("simulated crash")


def _check_result(result, name):
    assert result["variant"] == name
    assert result["iterations"] == result["epochs_done"] == 2
    # MetricsWriter rows, one per epoch (none duplicated by a resume).
    assert [row["epoch"] for row in result["curves"]] == [0, 1]
    assert [row["iterations"] for row in result["curves"]] == [1, 2]
    if result["status"] == "ok":
        assert 0.0 <= result["final_test_error"] <= 1.0
        assert np.isfinite(result["final_train_loss"])


@pytest.mark.slow
def test_crashed_run_resumes_and_skips_finished(tmp_path, cifar_subset):
    recipe = tiny_recipe("1")
    names = ["identity", "conv1x1"]
    # First session: `identity` finishes, `conv1x1` crashes in its 2nd epoch.
    reproduce.run(recipe, tmp_path, variants=names[:1], data=cifar_subset)
    with pytest.raises(RuntimeError, match="simulated crash"):
        reproduce.run(tiny_recipe("1"), tmp_path, variants=names, data=cifar_subset,
                      extra_callbacks=[CrashAt(1)])
    done = tmp_path / "results" / "identity.json"
    assert done.is_file()
    assert not (tmp_path / "work" / "identity" / "backup").exists()  # removed once safe
    assert not (tmp_path / "results" / "conv1x1.json").exists()
    assert (tmp_path / "work" / "conv1x1" / "backup").is_dir()
    stamp, content = os.stat(done).st_mtime_ns, done.read_text()
    # Second session: `identity` is skipped, `conv1x1` resumes at epoch 1.
    results = reproduce.run(tiny_recipe("1"), tmp_path, variants=names, data=cifar_subset)
    assert os.stat(done).st_mtime_ns == stamp and done.read_text() == content
    assert results["identity"]["resumed_from_epoch"] == 0
    assert results["conv1x1"]["resumed_from_epoch"] == 1
    for name, result in results.items():
        _check_result(result, name)
        assert result["unit_ordering"] == "original"  # Table 1 uses the original unit
    table = (tmp_path / "table.md").read_text()
    assert "| identity | original | identity |" in table
    assert "| conv1x1 | original | conv1x1 |" in table
    assert "NOT a reproduction" in table
    assert "| n/a |" in table  # no paper figure for ResNet-8 on CIFAR-100
    with open(tmp_path / "curves.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_run_trains_exactly_its_iterations(tmp_path, cifar_subset, capsys):
    """3 iterations in epochs of 2 steps: the second epoch stops at 3, as the
    schedule and the report say."""
    recipe = tiny_recipe()
    recipe.total_steps, recipe.steps_per_epoch, recipe.epochs = 3, 2, 2
    result = reproduce.run(recipe, tmp_path, variants=["full_preact"],
                           data=cifar_subset)["full_preact"]
    assert result["iterations"] == 3
    assert [row["iterations"] for row in result["curves"]] == [2, 3]
    assert result["schedule"]["total_steps"] == 3
    assert "3 iterations: 2 epochs of 2 steps (the last of 1)" in capsys.readouterr().out
    assert "ResNet-8, cifar100, 3 iterations at batch 16" in (tmp_path / "table.md").read_text()


@pytest.mark.parametrize("argv, message", [
    (["--depth", "21"], "Invalid depth=21"),
    (["--variants", "identity"], "Unknown variants"),
    (["--data-source", "npz"], "--data-source npz reads files: give --data-dir."),
    (["--batch-size", "0"], "Invalid batch_size=0"),
])
def test_bad_arguments_are_usage_errors_and_write_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    check_bad_arguments_exit(reproduce, ["--output-dir", str(out), *argv], message, capsys)
    assert not out.exists()


@pytest.mark.parametrize("table", ["1", "2"])
def test_every_variant_of_each_table_builds_its_unit(table):
    """Each variant's model has the unit the table names (training itself:
    the test above and tests/models/test_preact_resnet.py, for every ordering
    and shortcut)."""
    recipe = tiny_recipe(table)
    for name, spec in reproduce.TABLES[table].items():
        config = reproduce.build_model(recipe, spec).get_layer("stage1_unit1").get_config()
        assert (config["unit_ordering"], config["shortcut"]) == (
            spec["unit_ordering"], spec["shortcut"]), name


def test_recipe_mismatch_and_bad_input(tmp_path):
    recipe = tiny_recipe().derive(64)
    reproduce._check_recipe(str(tmp_path), recipe)
    other = tiny_recipe()
    other.seed = 4
    with pytest.raises(ValueError, match="different recipe.*seed"):
        reproduce._check_recipe(str(tmp_path), other.derive(64))
    with pytest.raises(ValueError, match="Unknown variants"):
        reproduce.select_variants("2", ["identity"])
    with pytest.raises(ValueError, match=r"Invalid data_source='ftp'. Expected one of \['npz'"):
        reproduce.Recipe(data_source="ftp").validate()
    with pytest.raises(ValueError, match="schedule_scale"):
        reproduce.Recipe(schedule_scale=0).validate()


def test_flags_are_the_training_scripts_names():
    args = reproduce.build_parser().parse_args([
        "--table", "2", "--depth", "20", "--output-dir", "runs/t2", "--data-source", "npz",
        "--data-dir", "d", "--batch-size", "64", "--seed", "3"])
    assert (args.output_dir, args.data_source, args.data_dir, args.batch_size, args.seed) == (
        "runs/t2", "npz", "d", 64, 3)


def test_schedule_scaling():
    full = reproduce.Recipe().derive(50000)
    assert full.total_steps == 64000
    assert full.steps_per_epoch * full.epochs >= 64000
    assert full.steps_per_epoch * full.epochs - 64000 < full.epochs
    assert full.epochs == 164  # ~164 epochs, as in the paper
    quick = reproduce.Recipe(schedule_scale=0.01).derive(50000)
    assert quick.total_steps == 640 and quick.epochs == 2
    bigger_batch = reproduce.Recipe(batch_size=256).derive(50000)
    assert bigger_batch.total_steps == 32000


@pytest.mark.parametrize("recipe, boundaries, warmup_steps, rates", [
    # The paper: 0.1, /10 at 32k and 48k of 64k; warm-up 0.01 for 400 steps.
    (dict(warmup=True), (32000, 48000), 400, [0.01, 0.1, 0.01, 0.001]),
    # Batch 256: half the steps, the same rates (not batch-scaled).
    (dict(batch_size=256, learning_rate=0.2), (16000, 24000), 0, [0.2, 0.2, 0.02, 0.002]),
])
def test_schedule_is_the_library_one(recipe, boundaries, warmup_steps, rates):
    schedule = reproduce.make_schedule(reproduce.Recipe(**recipe).derive(50000))
    assert schedule.boundaries == boundaries and schedule.warmup_steps == warmup_steps
    steps = [0, 400, boundaries[0], boundaries[1]]
    got = [float(keras.ops.convert_to_numpy(schedule(s))) for s in steps]
    np.testing.assert_allclose(got, rates, rtol=1e-6)


def test_table_puts_paper_figures_next_to_ours():
    recipe = reproduce.Recipe(table="1", depth=110, dataset="cifar10").derive(50000)
    fake = {
        name: {"unit_ordering": spec["unit_ordering"], "shortcut": spec["shortcut"],
               "status": "ok", "final_test_error": 0.1, "final_train_loss": 0.5,
               "iterations": 64000}
        for name, spec in reproduce.TABLE1_VARIANTS.items()
    }
    fake["dropout"]["status"] = "diverged"
    text = reproduce.results_table(recipe, fake)
    assert "| identity | original | identity | 10.00 | 6.61 |" in text
    assert "| constant_scaling | original | constant_scaling | 10.00 | 12.35 |" in text
    assert "| dropout | original | dropout | diverged | fail |" in text
    assert "NOT a reproduction" not in text
