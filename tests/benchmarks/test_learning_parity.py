"""benchmarks/learning_parity.py: the smoke run writes a complete report, bad arguments
fail clearly, and the pieces the PyTorch side writes again (learning rate, augmentation,
batch order) agree with the library's definitions."""

import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_preact.training.schedules import PaperCIFARSchedule

from _checks import BENCHMARKS
from _checks import check_script_help
from _checks import load_benchmark

learning_parity = load_benchmark("learning_parity")

BACKEND = keras.backend.backend()
HAS_PYTORCHCV = importlib.util.find_spec("pytorchcv") is not None
# The reference side does not depend on the Keras backend: run it once, with TensorFlow.
SMOKE_FRAMEWORKS = (["keras", "torch", "mirror"] if BACKEND == "tensorflow" and HAS_PYTORCHCV
                    else ["keras"])


def test_help_says_what_the_script_answers(capsys):
    check_script_help(learning_parity, capsys)


@pytest.fixture
def fake_cifar(tmp_path):
    """A tiny CIFAR-100-shaped npz folder: 512 training and 200 test images."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar100"
    folder.mkdir()
    for name, n in (("train_0.npz", 512), ("test.npz", 200)):
        np.savez(folder / name,
                 x=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                 y=(np.arange(n) % 100).astype(np.uint8))
    return folder


@pytest.mark.slow
def test_smoke_run_writes_report(fake_cifar, tmp_path):
    output = tmp_path / "parity.json"
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "learning_parity.py"), "--smoke",
         "--data-dir", str(fake_cifar), "--frameworks", *SMOKE_FRAMEWORKS,
         "--output", str(output)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(output.read_text())
    assert report["keras_backend"] == BACKEND
    settings = report["settings"]
    assert settings["total_steps"] == learning_parity.SMOKE["train_examples"] // 128
    assert [r["framework"] for r in report["rows"]] == SMOKE_FRAMEWORKS
    for run in report["rows"]:
        assert run["status"] == "ok", run
        assert run["iterations"] == settings["total_steps"]
        assert run["test_examples"] == learning_parity.SMOKE["test_examples"]
        assert run["trainable_params"] == 278132  # PreActResNet-20, 100 classes
        assert 0 <= run["top1"] <= run["top5"] <= 100 and np.isfinite(run["test_loss"])
    if "torch" in SMOKE_FRAMEWORKS:
        assert report["gap_top1_points"] == pytest.approx(
            report["summary"]["keras"]["top1"]["mean"]
            - report["summary"]["torch"]["top1"]["mean"])
    assert "| top-1 % |" in proc.stdout and "- Keras backend: " + BACKEND in proc.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], "--epochs must be a positive integer, got 0"),
        (["--batch-size", "-1"], "--batch-size must be a positive integer, got -1"),
        (["--frameworks", "tf"], "invalid choice: 'tf'"),
        (["--seeds", "0", "0"], "--seeds must differ"),
        (["--full", "--epochs", "3"], "do not give --epochs"),
        (["--smoke", "--full"], "not allowed with argument"),
        (["--frameworks", "timm"], "invalid choice: 'timm'"),
    ],
)
def test_bad_arguments_exit_with_a_clear_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        learning_parity.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--train-examples", "513"], "--train-examples 513 is more than the 512 train"),
        (["--test-examples", "201"], "--test-examples 201 is more than the 200 test"),
        (["--train-examples", "100"], "less than one batch"),
    ],
)
def test_prefix_larger_than_the_data_is_refused(fake_cifar, tmp_path, argv, message, capsys):
    output = tmp_path / "never.json"
    code = learning_parity.main(["--data-dir", str(fake_cifar), "--output", str(output), *argv])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not output.exists()


@pytest.mark.parametrize(
    "argv, total_steps, boundaries, warmup_steps",
    [
        (["--epochs", "15", "--train-examples", "12500"], 15 * 97, [728, 1091], 0),
        (["--epochs", "3", "--train-examples", "1000", "--batch-size", "64"], 45, [22, 34], 0),
        (["--full"], 64000, [32000, 48000], 400),
    ],
)
def test_torch_learning_rate_follows_the_keras_schedule(argv, total_steps, boundaries,
                                                        warmup_steps):
    args = learning_parity.parse_args(argv)
    plan = learning_parity.make_plan(args, args.train_examples or 50000)
    config = plan["schedule"]
    assert plan["total_steps"] == total_steps
    assert config["boundaries"] == boundaries
    assert config["warmup_steps"] == warmup_steps
    keras_schedule = PaperCIFARSchedule(**{k: v for k, v in config.items() if k != "class"})
    steps = sorted({0, 1, total_steps - 1, warmup_steps - 1, warmup_steps,
                    *(b + d for b in boundaries for d in (-1, 0, 1))} - {-1})
    torch_rates = [learning_parity.learning_rate_at(s, config) for s in steps]
    keras_rates = [float(keras.ops.convert_to_numpy(keras_schedule(s))) for s in steps]
    np.testing.assert_allclose(torch_rates, keras_rates, rtol=1e-6)
    assert learning_parity.learning_rate_at(boundaries[1], config) == pytest.approx(
        1e-3 * args.batch_size / 128
    )


def test_torch_augmentation_is_a_padded_crop_and_flip():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(256, 3, 32, 32)).astype(np.float32)
    out = learning_parity.augment_batch(images, np.random.default_rng(1))
    assert out.shape == images.shape and out.dtype == images.dtype
    padded = np.pad(images, ((0, 0), (0, 0), (4, 4), (4, 4)))
    seen = set()
    for i in range(len(images)):
        matches = [
            (dy, dx, flip)
            for dy in range(9) for dx in range(9) for flip in (False, True)
            if np.array_equal(
                out[i],
                padded[i, :, dy:dy + 32, dx:dx + 32][:, :, ::-1] if flip
                else padded[i, :, dy:dy + 32, dx:dx + 32],
            )
        ]
        assert len(matches) == 1, i
        seen.add(matches[0])
    # Offsets and flips vary from image to image.
    assert {m[2] for m in seen} == {False, True}
    assert len({m[:2] for m in seen}) > 40


def test_batches_cover_every_image_once_per_pass():
    batches = learning_parity.index_batches(10, 4, np.random.default_rng(0))
    drawn = np.concatenate([next(batches) for _ in range(5)])  # two passes
    assert sorted(drawn[:10]) == list(range(10))
    assert sorted(drawn[10:20]) == list(range(10))
    assert not np.array_equal(drawn[:10], drawn[10:20])  # reshuffled


def test_metrics_and_gap():
    probabilities = np.full((4, 100), 0.001)
    probabilities[0, 3] = probabilities[1, 7] = 0.9  # top-1 right for rows 0 and 1
    probabilities[2, 50] = 0.9
    probabilities[2, 9] = 0.05  # row 2: label 9 second, inside the top 5
    metrics = learning_parity.score_test_set(probabilities, [3, 7, 9, 11])
    assert metrics["top1"] == 50.0 and metrics["top5"] == 75.0
    assert metrics["test_loss"] == pytest.approx(
        -np.mean(np.log([0.9, 0.9, 0.05, 0.001])), abs=1e-4
    )
    args = learning_parity.parse_args(
        ["--epochs", "1", "--train-examples", "384", "--seeds", "0", "1"]
    )
    plan = learning_parity.make_plan(args, 384)
    rows = [
        {"framework": f, "seed": s, "status": "ok", "top1": t1, "top5": t1 + 20,
         "images_per_s": 100.0, "train_s": 10.0}
        for f, s, t1 in (("keras", 0, 40.0), ("keras", 1, 41.0),
                         ("torch", 0, 41.5), ("torch", 1, 42.5))
    ]
    report = learning_parity.make_report(args, plan, rows, [0, 0, 0], [1, 1, 1],
                                         {"machine": "m"}, BACKEND)
    assert report["summary"]["keras"]["top1"]["mean"] == 40.5
    assert report["summary"]["torch"]["top1"]["std"] == pytest.approx(0.707, abs=1e-3)
    assert report["gap_top1_points"] == -1.5


@pytest.mark.parametrize("framework", ["torch", "mirror"])
def test_both_torch_networks_have_the_papers_parameter_count(framework):
    pytest.importorskip("torch")
    if framework == "torch":
        pytest.importorskip("pytorchcv")
    model = learning_parity._torch_model(20, framework)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 278132
