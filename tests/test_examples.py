"""Tests of the training examples: examples/train_cifar100.py,
examples/train_imagenet.py and examples/colab_cifar100.ipynb."""

import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import pytest

from keras_preact.normalization import model_statistics
from keras_preact.training import DistributionSetup
from keras_preact.training.banner import describe_start

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
BACKEND = keras.backend.backend()
sys.path.insert(0, str(EXAMPLES))
import training_cli  # noqa: E402


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def tiny_cifar_args(shared_data, output_dir, *extra):
    return [
        "--depth", "8", "--dataset", "cifar100", "--data-source", "npz",
        "--data-dir", str(shared_data / "cifar100"), "--batch-size", "16",
        "--max-train-examples", "256", "--max-eval-examples", "64",
        "--output-dir", str(output_dir), "--verbose", "2", *extra,
    ]


@pytest.mark.parametrize("name", ["train_cifar100", "train_imagenet"])
def test_compile_defaults_are_keras_own(name):
    args = load_script(name).build_parser().parse_args([])
    assert (args.jit_compile, args.steps_per_execution) == ("auto", 1)
    assert args.data_format == keras.config.image_data_format()
    assert training_cli.compile_arguments(args)["jit_compile"] == "auto"


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "2", "--steps", "10"], "argument --steps: not allowed with argument --epochs"),
    (["--batch-size", "0"], "argument --batch-size: must be > 0, got 0"),
    (["--backup-every-seconds", "nan"], "argument --backup-every-seconds: must be > 0, got nan"),
    (["--max-train-examples", "x"], "argument --max-train-examples: invalid int value: 'x'"),
    (["--mixed-precision", "fp8"], "argument --mixed-precision: invalid choice: 'fp8'"),
    (["--weight-decay-on", "bn"], "argument --weight-decay-on: invalid choice: 'bn'"),
])
def test_cifar_script_rejects_bad_arguments(capsys, argv, message):
    with pytest.raises(SystemExit):
        load_script("train_cifar100").build_parser().parse_args(argv)
    assert message in capsys.readouterr().err


def test_cifar_script_arguments():
    script = load_script("train_cifar100")
    parser = script.build_parser()
    args = parser.parse_args(["--steps", "100", "--jit-compile"])
    assert (args.steps, args.jit_compile, args.batch_size) == (100, "on", 128)
    assert training_cli.compile_arguments(args)["jit_compile"] is True
    assert parser.parse_args([]).weight_decay_on == "all"  # the authors' optim.sgd
    assert script.paper_reference(parser.parse_args([])).startswith(
        "The paper: error 24.33% (Table 3: PreActResNet-164 on CIFAR-100, median of 5 runs")
    assert script.paper_reference(parser.parse_args(["--depth", "8"])) is None


def test_imagenet_script_arguments(capsys):
    parser = load_script("train_imagenet").build_parser()
    args = parser.parse_args(["--depth", "200", "--boundary-epochs", "30,60"])
    assert (args.boundary_epochs, args.batch_size) == ((30, 60), 256)
    assert parser.parse_args([]).boundary_epochs == (30, 60, 90)
    # The paper's 90 epochs unless --epochs or --steps says otherwise.
    assert training_cli.run_length(args, 1000, 100, default_epochs=90) == (10, 90, 900)
    steps = parser.parse_args(["--steps", "25"])
    assert training_cli.run_length(steps, 1000, 100, default_epochs=90) == (10, 3, 30)
    with pytest.raises(SystemExit):
        parser.parse_args(["--depth", "42"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--boundary-epochs", "30,x"])
    assert "--boundary-epochs: must be comma-separated ints, got '30,x'" in (
        capsys.readouterr().err)


@pytest.mark.slow
def test_cifar_script_tiny_run_with_export(shared_data, tmp_path, capsys):
    script = load_script("train_cifar100")
    out = tmp_path / "run"
    script.main(tiny_cifar_args(shared_data, out, "--epochs", "2",
                                "--steps-per-epoch", "3", "--export"))
    printed = capsys.readouterr().out
    assert "Final evaluation: loss=" in printed
    assert "keras_preact: PreActResNet-8 on CIFAR-100" in printed
    assert f"backend    {BACKEND}, devices: " in printed
    assert "83,700 trainable parameters, 480 non-trainable" in printed
    assert "backups    none (the run is not resumable)" in printed
    for path in ("checkpoints/last.keras", "metrics.csv", "curves.png",
                 "final_metrics.json", "logs"):
        assert printed.count(str(out / path)) == 2, path  # At the start and the end.
    rows = read_csv(out / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert [r["iterations"] for r in rows] == ["3", "6"]
    assert {"loss", "top1", "top5", "val_loss", "val_top1", "val_top5",
            "learning_rate"} <= set(rows[0])
    # PaperCIFARSchedule.for_run(16, total_steps=6): 0.1 * 16/128, drops at 3 and 4.
    assert float(rows[0]["learning_rate"]) == pytest.approx(0.00125)
    assert float(rows[1]["learning_rate"]) == pytest.approx(0.000125)
    summary = json.loads((out / "final_metrics.json").read_text())
    assert summary["iterations"] == 6 and set(summary["final"]) >= {"top1", "top5"}
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    # The checkpoint normalizes its own 0-255 pixels with CIFAR-100's
    # statistics, so it exports without a dataset argument.
    checkpoint = keras.saving.load_model(out / "checkpoints" / "last.keras")
    assert model_statistics(checkpoint).isclose("cifar100", rtol=1e-6)
    exported = list((out / "export").glob("*/*/saved_model.pb"))
    assert len(exported) == 1, list((out / "export").rglob("*"))


def script_env():
    return dict(os.environ, PYTHONPATH=str(REPO), KERAS_BACKEND=BACKEND,
                TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")


@pytest.mark.slow
def test_cifar_script_resumes_after_kill_9(shared_data, tmp_path):
    """kill -9 mid-epoch, rerun the same command: it continues inside the
    epoch and ends with exactly the steps of an uninterrupted run."""
    out = tmp_path / "run"
    epochs, steps = 3, 12
    command = [sys.executable, str(EXAMPLES / "train_cifar100.py"),
               *tiny_cifar_args(shared_data, out, "--epochs", str(epochs),
                                "--steps-per-epoch", str(steps), "--resume",
                                "--backup-every", "2", "--no-tensorboard")]
    metadata_path = out / "backup" / "training_metadata.json"
    log_path = tmp_path / "first.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, env=script_env(), cwd=REPO, stdout=log,
                                stderr=subprocess.STDOUT)
        killed_at = None
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            try:
                metadata = json.loads(metadata_path.read_text())
            except (OSError, ValueError):
                metadata = None
            # Kill during the second epoch, after a mid-epoch backup.
            if metadata and metadata["epoch"] == 1 and metadata["step"] > 0:
                os.kill(proc.pid, signal.SIGKILL)
                killed_at = metadata
                break
            time.sleep(0.05)
        proc.wait(timeout=60)
    first = log_path.read_text()
    assert killed_at is not None, first
    assert proc.returncode == -signal.SIGKILL
    assert f"no backup in {out / 'backup'}: starting fresh" in first
    assert [r["epoch"] for r in read_csv(out / "metrics.csv")] == ["0"]

    result = subprocess.run(command, env=script_env(), cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    # One more backup may have landed between the read above and the kill.
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("resuming from"))
    assert f": epoch 2 of {epochs}, step " in line
    step = int(line.split(", step ")[1].split(" of ")[0])
    assert killed_at["step"] <= step < steps
    assert line.endswith(f"(optimizer iterations {steps + step})")
    rows = read_csv(out / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert [int(r["iterations"]) for r in rows] == [steps, 2 * steps, 3 * steps]
    assert f"Optimizer iterations: {epochs * steps}" in result.stdout
    assert "Final evaluation: loss=" in result.stdout
    # The backup is kept: rerunning the finished command trains nothing more.
    assert json.loads(metadata_path.read_text())["epoch"] == epochs


def make_imagenet_folder(shared_data, root):
    """Two class folders of real ImageNet JPEGs (symlinks), train and validation."""
    images = sorted((shared_data / "imagenet_sample").glob("*.JPEG"))
    if len(images) < 8:
        pytest.skip("imagenet_sample has fewer than 8 images")
    for split, chosen in (("train", images[:6]), ("validation", images[6:8])):
        for i, image in enumerate(chosen):
            folder = root / split / f"class{i % 2}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / image.name).symlink_to(image)
    return root


@pytest.mark.slow
def test_imagenet_script_tiny_run_on_folder(shared_data, tmp_path, capsys):
    data = make_imagenet_folder(shared_data, tmp_path / "imagenet")
    script = load_script("train_imagenet")
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


@pytest.mark.slow
def test_colab_notebook_executes_with_tiny_settings(shared_data, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(EXAMPLES / "colab_cifar100.ipynb", as_version=4)
    cells = [c for c in notebook.cells if "pip install" not in c.source]
    settings = nbformat.v4.new_code_cell(
        "import os\n"
        f"os.environ['KERAS_BACKEND'] = {BACKEND!r}\n"
        f"EPOCHS, STEPS, DEPTH, BATCH_SIZE = 1, 2, 8, 16\n"
        f"DATA_SOURCE, DATA_DIR = 'npz', {str(shared_data / 'cifar100')!r}\n"
        f"MAX_TRAIN_EXAMPLES, MAX_EVAL_EXAMPLES = 128, 64\n"
        f"OUTPUT_DIR = {str(tmp_path / 'colab_run')!r}\n"
    )
    # Injected after the cell tagged "parameters" (papermill style), before
    # keras is imported.
    index = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    cells.insert(index + 1, settings)
    notebook.cells = cells
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3",
        resources={"metadata": {"path": str(REPO)}},
    )
    env_pythonpath = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(REPO) + (os.pathsep + env_pythonpath if env_pythonpath else "")
    try:
        client.execute()
    finally:
        if env_pythonpath is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = env_pythonpath
    outputs = "".join(
        o.get("text", "") for c in notebook.cells if c.cell_type == "code"
        for o in c.get("outputs", [])
    )
    assert "Test top-1 accuracy" in outputs
    assert (tmp_path / "colab_run" / "metrics.csv").exists()


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
    script = load_script(name)
    args = script.build_parser().parse_args(argv)
    setup = training_cli.Setup(DistributionSetup("none"), "float32", args.output_dir,
                               args.batch_size)
    quick = training_cli.quick_look_command(f"examples/{name}.py", argv, {
        "--epochs": "1", "--steps-per-epoch": "10", "--output-dir": "runs/quick_look"})
    run = training_cli.training_run(args, setup, steps_per_epoch=391, epochs=164,
                                    quick_look=quick)
    text = describe_start(script.build_model(args), run)
    assert counts in text
    assert "jit_compile=auto (Keras' default, resolved to " in text
    assert "steps_per_execution=1 (Keras' default)" in text
    assert "164 epochs x 391 steps = 64,124 steps, global batch " in text
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
    args = load_script("train_cifar100").build_parser().parse_args(
        ["--global-batch-size", str(global_batch), "--distribute", "mirrored"])
    if per_replica is None:
        with pytest.raises(ValueError, match="multiple of the 2 replicas.*=7"):
            training_cli.prepare(args)
        return
    setup = training_cli.prepare(args)
    assert setup.global_batch_size == global_batch and setup.output_dir == args.output_dir
    assert (args.batch_size, args.global_batch_size) == (128, global_batch)
