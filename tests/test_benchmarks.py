"""benchmarks/: each script says what it answers and refuses bad arguments, runs end to
end at toy sizes on every backend, and compares keras_preact with a PyTorch network that
does the same work. (gpu_check.py and learning_parity.py have their own test files.)"""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_preact

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

BACKEND = keras.backend.backend()
SCRIPTS = sorted(p.stem for p in BENCH.glob("*.py")
                 if p.stem not in ("_common", "torch_reference"))


def _run(script, *args, timeout=900):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, str(BENCH / f"{script}.py"), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _report(path):
    report = json.loads(Path(path).read_text())
    assert report["machine"]["versions"]["keras"] == keras.__version__
    assert report["command"].startswith("python benchmarks/")
    return report


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_says_what_the_script_answers(script, capsys):
    module = importlib.import_module(script)
    with pytest.raises(SystemExit) as exit_info:
        module.build_parser().parse_args(["--help"])
    assert exit_info.value.code == 0
    assert module.__doc__.splitlines()[0] in capsys.readouterr().out


@pytest.mark.parametrize("script, argv, message", [
    ("train_throughput", ["--backends", "mxnet"], "invalid choice: 'mxnet'"),
    ("train_throughput", ["--steps", "0"], "expected an int >= 1; got '0'"),
    ("inference", ["--models", "mnist"], "invalid choice: 'mnist'"),
    ("build_time", ["--depths", "twenty"], "expected an int >= 1; got 'twenty'"),
    ("remat", ["--depths", "164", "1001", "--batches", "1", "2", "3"], "one per depth"),
    ("input_pipeline", ["--batches", "-1"], "expected an int >= 1; got '-1'"),
    ("multiworker_scaling", ["--global-batch", "3", "--workers", "2"], "multiple of"),
])
def test_bad_arguments_exit_with_a_clear_message(script, argv, message, capsys):
    module = importlib.import_module(script)
    with pytest.raises(SystemExit) as exit_info:
        module.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("depth, layout, classes, size, params, gmacs", [
    (20, "cifar", 10, 32, 272_282, 0.041),
    (50, "imagenet", 1000, 224, 25_549_352, 4.089),  # timm's resnetv2_50 count too
])
def test_torch_reference_is_keras_preacts_network(depth, layout, classes, size, params,
                                                  gmacs):
    pytest.importorskip("torch")
    import _common
    import torch_reference

    torch_model, implementation = torch_reference.build_model(depth, layout, classes,
                                                              impl="reference")
    model = keras_preact.PreActResNet(depth, layout=layout, classes=classes)
    assert implementation == "benchmarks/torch_reference.py"
    assert sum(p.numel() for p in torch_model.parameters()) == params
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == params
    assert _common.torch_gmacs_per_image(torch_model, size) == gmacs
    assert _common.keras_gmacs_per_image(model) == gmacs
    with pytest.raises(ValueError, match="Invalid CIFAR depth=21"):
        torch_reference.PreActResNet(21, layout="cifar")


def test_build_time_counts_the_papers_parameters():
    import build_time

    [row] = build_time.build_rows([20], "cifar", 10, repeats=2)
    assert (row["backend"], row["trainable_params"], row["residual_units"]) == (
        BACKEND, 272_282, 9)
    assert len(row["build_times_s"]) == 2 and row["build_s"] == min(row["build_times_s"])


@pytest.mark.slow
def test_train_throughput_runs_every_model(tmp_path):
    pytorch = [] if BACKEND == "torch" else ["--no-pytorch"]  # PyTorch once, in torch's run
    proc = _run("train_throughput", "--backends", BACKEND, "--quick", "--cifar-depth", "8",
                "--imagenet-size", "32", *pytorch, "--output", tmp_path / "r.json")
    rows = _report(tmp_path / "r.json")["rows"]
    assert [r.get("error") for r in rows] == [None] * len(rows)
    keras_rows = {(r["layout"], r["model"]): r for r in rows if r["runtime"] == BACKEND}
    assert set(keras_rows) == {("cifar", "preact"), ("imagenet", "preact"),
                               ("imagenet", "resnet50v2")}
    assert keras_rows["imagenet", "preact"]["trainable_params"] == 25_549_352
    assert keras_rows["imagenet", "resnet50v2"]["trainable_params"] == 25_568_360
    for row in rows:
        assert row["images_per_s"] == pytest.approx(row["batch"] / row["median_step_s"],
                                                     abs=0.01)
    assert "| PreActResNet-8, 32x32 | 2 |" in proc.stdout
    if BACKEND == "torch":
        assert {r["runtime"] for r in rows} == {"torch", "pytorch"}
        assert "x) |" in proc.stdout  # the ratio to PyTorch


@pytest.mark.slow
def test_remat_runs_both_ways(tmp_path):
    proc = _run("remat", "--backends", BACKEND, "--depths", "8", "--batches", "2",
                "--warmup", "1", "--steps", "1", "--output", tmp_path / "r.json")
    rows = _report(tmp_path / "r.json")["rows"]
    assert [(r["remat"], r["status"]) for r in rows] == [(False, "ok"), (True, "ok")]
    assert rows[0]["peak_memory_mib"] > 0
    assert f"| {BACKEND} | 8 | 2 |" in proc.stdout


@pytest.mark.slow
def test_inference_runs_keras_and_the_saved_model(tmp_path):
    _run("inference", "--backends", BACKEND, "--models", "cifar", "--cifar-depth", "8",
         "--quick", "--output", tmp_path / "r.json")
    rows = _report(tmp_path / "r.json")["rows"]
    runs = [(r["runtime"], r["batch"], r["status"]) for r in rows]
    if BACKEND == "torch":  # the export refuses the torch backend, with its reason
        assert runs == [("savedmodel", 2, "unsupported"), ("keras", 1, "ok"),
                        ("keras", 2, "ok")]
        assert "not supported on the 'torch' Keras backend" in rows[0]["error"]
    else:
        assert runs == [("keras", 1, "ok"), ("keras", 2, "ok"), ("savedmodel", 1, "ok"),
                        ("savedmodel", 2, "ok")]


def test_input_pipeline_times_every_pipeline(tmp_path, capsys):
    tf = pytest.importorskip("tensorflow")
    if BACKEND != "tensorflow":
        pytest.skip("tf.data only: runs once, with the TensorFlow backend")
    import input_pipeline

    rng = np.random.default_rng(0)
    (tmp_path / "cifar100").mkdir()
    np.savez(tmp_path / "cifar100" / "train_0.npz",
             x=rng.integers(0, 256, (64, 32, 32, 3), np.uint8), y=np.arange(64) % 100)
    (tmp_path / "imagenet_sample").mkdir()
    for i in range(2):
        image = tf.constant(rng.integers(0, 256, (40, 48, 3), np.uint8))
        tf.io.write_file(str(tmp_path / "imagenet_sample" / f"{i}.JPEG"),
                         tf.io.encode_jpeg(image))
    assert input_pipeline.main([
        "--data-dir", str(tmp_path), "--batches", "2", "--imagenet-batches", "1",
        "--warmup", "1", "--cifar-batch-size", "8", "--imagenet-batch-size", "2",
        "--output", str(tmp_path / "r.json")]) == 0
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert len(rows) == 6 and all(r["images_per_s"] > 0 for r in rows)
    assert "| ImageNet evaluation | 2 |" in capsys.readouterr().out
