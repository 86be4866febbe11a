"""benchmarks/gpu_check.py: the one-shot GPU check runs every part on a CPU at toy
sizes (one of them under torch.compile), compares each Keras part with its network in
PyTorch, keeps going past parts that time out or cannot run, and checks its
arguments."""

import importlib.util
import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from _checks import BENCHMARKS
from _checks import REPO
from _checks import check_script_help
from _checks import load_benchmark

gpu_check = load_benchmark("gpu_check")

BACKEND = keras.backend.backend()
# The check starts its own JAX and torch processes whatever KERAS_BACKEND is: run the
# subprocess tests once, in the JAX run of the suite.
only_in_jax_run = pytest.mark.skipif(
    BACKEND != "jax", reason="gpu_check starts its own backend processes; run once (jax)"
)
# timm imports torchvision, which CI's CPU-only torch does not have.
TIMM_MISSING = [name for name in ("timm", "torchvision")
                if importlib.util.find_spec(name) is None]
HAS_TIMM = not TIMM_MISSING
HAS_PYTORCHCV = importlib.util.find_spec("pytorchcv") is not None
SMOKE_COMPILE_SKIP = ("CPU smoke: torch.compile takes minutes per network on a CPU "
                      "(the compile parts run on a GPU)")
COMPILE_PARTS = [p.name for p in gpu_check.PARTS if p.name.endswith("_compile")]


def _cifar_folder(path, n_train=80, n_test=40):
    rng = np.random.default_rng(0)
    path.mkdir(parents=True, exist_ok=True)
    np.savez(path / "train_0.npz", x=rng.integers(0, 256, (n_train, 32, 32, 3), np.uint8),
             y=rng.integers(0, 100, n_train))
    np.savez(path / "test.npz", x=rng.integers(0, 256, (n_test, 32, 32, 3), np.uint8),
             y=rng.integers(0, 100, n_test))
    return path


def _run(*args, timeout=900):
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("KERAS_BACKEND", None)
    return subprocess.run([sys.executable, str(BENCHMARKS / "gpu_check.py"), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=REPO)


def _load(out):
    files = sorted(os.listdir(out))
    assert files == sorted(gpu_check.OUTPUT_FILES), files  # no temp or result leftovers
    report = json.loads((out / "gpu_check.json").read_text())
    markdown = (out / "gpu_check.md").read_text()
    assert report["schema"] == gpu_check.SCHEMA and report["status"] == "done"
    assert report["machine"]["versions"]["keras"] == keras.__version__
    assert markdown.startswith("# keras_preact GPU check")
    return report, markdown


def _finite(value):
    return isinstance(value, (int, float)) and math.isfinite(value)


def test_help_says_what_the_script_answers(capsys):
    check_script_help(gpu_check, capsys)


# ----------------------------------------------------------------------------
# The whole check at toy sizes.


@pytest.mark.slow
@only_in_jax_run
def test_cpu_smoke_runs_every_part(tmp_path):
    data = _cifar_folder(tmp_path / "data")
    out = tmp_path / "out"
    # A budget that a busy 2-core machine does not exhaust (torch.compile takes minutes).
    proc = _run("--cpu-smoke", "--output", out, "--data-dir", data, "--budget-s", 1500,
                timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report, markdown = _load(out)
    parts = report["parts"]
    assert list(parts) == [p.name for p in gpu_check.PARTS]
    for name, row in parts.items():
        assert row["status"] in ("ok", "skipped"), (name, row)
        if row["status"] == "skipped":
            assert row["reason"], name
            continue
        assert row["cap_s"] > 0 and row["process_wall_s"] > 0
        if name.startswith("real_"):
            continue
        for key in ("images_per_s", "ms_per_step", "first_call_s", "gmacs_per_image",
                    "trainable_params"):
            assert _finite(row[key]) and row[key] > 0, (name, key, row.get(key))
        # No GPU here: the GPU peak is null, the process peak RSS is recorded.
        assert row["peak_gpu_memory_mib"] is None and row["peak_rss_mib"] > 0
        assert row["runtime"]["platform"] == "cpu"
        assert row["dtype_policy" if row["framework"] == "keras" else "precision"] in (
            "mixed_bfloat16", "mixed")
        assert row["jit"] is (name.endswith("_compile") or row.get("backend") == "jax")
        if row["framework"] == "keras":
            assert "stage" not in row and len(row["warmup_step_s"]) == row["warmup"]
    # The compile parts say why they do not run (timm's says first that timm is missing).
    for name in COMPILE_PARTS:
        if name != "torch_timm_resnetv2_50_compile" or HAS_TIMM:
            assert parts[name] == dict(parts[name], status="skipped",
                                       reason=SMOKE_COMPILE_SKIP)
    # Parts that need timm or pytorchcv say so where it is missing.
    for name in ("torch_timm_resnetv2_50", "torch_timm_resnetv2_50_compile"):
        if not HAS_TIMM:
            assert parts[name] == dict(parts[name], status="skipped", reason=(
                f"timm does not import: {' and '.join(TIMM_MISSING)} not installed"))
    pytorchcv = parts["torch_pytorchcv_cifar164"]
    if HAS_PYTORCHCV:
        # The Keras CIFAR parts build pytorchcv's network: same parameters and work.
        assert pytorchcv["implementation"] == "pytorchcv preresnet11bn_cifar100"
        for key in ("trainable_params", "gmacs_per_image"):
            assert pytorchcv[key] == parts["keras_torch_cifar164"][key], key
    else:
        assert pytorchcv["status"] == "skipped"
        assert pytorchcv["reason"].startswith("pytorchcv does not import")
    for backend in ("jax", "torch"):
        assert parts[f"keras_{backend}_r1001_remat"]["remat"] is True
        assert parts[f"keras_{backend}_r1001"]["remat"] is False
        assert parts[f"keras_{backend}_r1001"]["jit"] is (backend == "jax")
    assert "remat=True / remat=False, depth 11, batch 4, torch backend" in markdown
    # The real run: a learning curve on the numpy input path.
    real = parts["real_cifar100_jax"]
    assert real["status"] == "ok" and real["epochs_done"] == 2
    assert real["test_file"] == "test.npz" and real["train_examples"] == 64
    assert real["pipeline_images_per_s_one_core"] > 0
    for point in real["curve"]:
        assert _finite(point["loss"]) and 0 <= point["val_top1"] <= 1
        assert point["learning_rate"] > 0
    # Keras / PyTorch ratios for every pair that ran on both sides.
    pairs = {(r["keras"], r["torch"]): r for r in report["ratios"]}
    expected = {(k, t) for k, t in gpu_check.RATIO_PAIRS
                if parts[k]["status"] == parts[t]["status"] == "ok"}
    assert set(pairs) == expected
    assert ("keras_torch_cifar164", "torch_ours_cifar164") in pairs
    if HAS_PYTORCHCV:
        assert pairs[("keras_torch_cifar164", "torch_pytorchcv_cifar164")]["same_network"]
    r = pairs[("keras_jax_cifar164", "torch_ours_cifar164")]
    assert r["same_network"] is False and "Same network \"no\"" in markdown
    ours = parts["torch_ours_cifar164"]["images_per_s"]
    assert r["keras_over_torch"] == pytest.approx(
        parts["keras_jax_cifar164"]["images_per_s"] / ours, rel=1e-2)
    for heading in ("## Training throughput", "## Keras / PyTorch",
                    "## Real CIFAR-100 run", "## Every part"):
        assert heading in markdown
    for name in parts:
        assert f"| {name} |" in markdown


@only_in_jax_run
def test_a_part_past_its_cap_is_killed_and_the_next_one_runs(tmp_path):
    out = tmp_path / "out"
    proc = _run("--cpu-smoke", "--output", out, "--data-dir", tmp_path / "none",
                "--parts", "keras_torch_cifar164,keras_torch_cifar164_compile,"
                "torch_ours_cifar164,real_cifar100_jax",
                "--cap", "keras_torch_cifar164=1",
                # Past the imports and the build, inside torch.compile's first step.
                "--cap", "keras_torch_cifar164_compile=20", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report, markdown = _load(out)
    parts = report["parts"]
    assert parts["keras_torch_cifar164"]["status"] == "timeout"
    assert "timeout after 1 s" in parts["keras_torch_cifar164"]["reason"]
    # A part stopped while compiling keeps how far it got.
    compiled = parts["keras_torch_cifar164_compile"]
    assert compiled["status"] == "timeout" and compiled["stage"] == "warm-up step 1"
    assert compiled["warmup_step_s"] == [] and compiled["build_s"] >= 0
    assert ("timeout (timeout after 20 s (process group killed)), in warm-up step 1"
            in markdown)
    assert parts["torch_ours_cifar164"]["status"] == "ok"
    assert parts["real_cifar100_jax"]["status"] == "skipped"
    assert "no CIFAR-100 data folder" in parts["real_cifar100_jax"]["reason"]
    assert "timeout" in markdown
    # Progress lines carry the time and the part.
    assert "] torch_ours_cifar164: ok," in proc.stdout


def test_out_of_budget_parts_are_skipped(tmp_path, capsys):
    args = gpu_check.parse_args(["--output", str(tmp_path), "--budget-s", "1",
                                 "--data-dir", str(_cifar_folder(tmp_path / "d"))])
    report = gpu_check.Runner(args).run()
    assert report["status"] == "done"
    missing = {"timm": not HAS_TIMM, "pytorchcv": not HAS_PYTORCHCV, "": False}
    for name, row in report["parts"].items():
        assert row["status"] == "skipped", name
        if not missing[gpu_check.PARTS_BY_NAME[name].needs]:
            assert row["reason"].startswith("out of time budget"), row
    assert json.loads((tmp_path / "gpu_check.json").read_text())["status"] == "done"
    assert "skipped: out of time budget" in (tmp_path / "gpu_check.md").read_text()
    assert "+    0s] GPU check on" in capsys.readouterr().out


# ----------------------------------------------------------------------------
# Pieces.


@pytest.mark.parametrize("missing, part, reason", [
    ({"pytorchcv"}, "torch_pytorchcv_cifar164_compile",
     "pytorchcv does not import: pytorchcv not installed (a pure-Python wheel: `pip "
     "download pytorchcv --no-deps -d .whl` carries it)"),
    ({"torchvision"}, "torch_timm_resnetv2_50",
     "timm does not import: torchvision not installed"),
    ({"timm", "torchvision"}, "torch_timm_resnetv2_50_compile",
     "timm does not import: timm and torchvision not installed"),
    ({"pytorchcv", "timm"}, "keras_torch_cifar164", None),
])
def test_parts_that_need_a_missing_package_say_which(missing, part, reason, monkeypatch,
                                                      tmp_path):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(gpu_check.importlib.util, "find_spec",
                        lambda name: None if name in missing else find_spec(name))
    runner = gpu_check.Runner(gpu_check.parse_args(["--output", str(tmp_path)]))
    assert runner.skip_reason(gpu_check.PARTS_BY_NAME[part]) == reason


def test_cpu_smoke_compiles_nothing(tmp_path):
    runner = gpu_check.Runner(gpu_check.parse_args(["--output", str(tmp_path),
                                                    "--cpu-smoke"]))
    skipped = {p.name for p in gpu_check.PARTS
               if runner.skip_reason(p) == SMOKE_COMPILE_SKIP}
    # (A missing timm is the reason its part gives first.)
    assert skipped == set(COMPILE_PARTS) - (
        set() if HAS_TIMM else {"torch_timm_resnetv2_50_compile"})
    assert {"keras_torch_cifar164_compile", "keras_torch_imagenet50_compile"} <= skipped
    # A real run compiles them.
    config = gpu_check.part_config(gpu_check.PARTS_BY_NAME["keras_torch_cifar164_compile"],
                                   gpu_check.parse_args(["--output", str(tmp_path)]))
    assert config["jit"] is True and config["backend"] == "torch"
    # Parts named with --parts run, compiled or not.
    named = gpu_check.Runner(gpu_check.parse_args(
        ["--output", str(tmp_path), "--cpu-smoke", "--parts", "keras_torch_cifar164_compile"]))
    assert named.skip_reason(gpu_check.PARTS_BY_NAME["keras_torch_cifar164_compile"]) is None


def test_ratios_keras_over_torch():
    parts = {
        "keras_jax_cifar164": dict(status="ok", images_per_s=300.0, gmacs_per_image=0.25),
        "keras_torch_cifar164": dict(status="ok", images_per_s=50.0, gmacs_per_image=0.25),
        "keras_torch_cifar164_compile": dict(status="ok", images_per_s=150.0),
        "torch_pytorchcv_cifar164": dict(status="ok", images_per_s=200.0),
        "torch_pytorchcv_cifar164_compile": dict(status="ok", images_per_s=250.0),
        "torch_ours_cifar164": dict(status="ok", images_per_s=200.0, gmacs_per_image=0.2),
        "torch_ours_cifar164_compile": dict(status="timeout", reason="timeout after 90 s"),
        "keras_jax_imagenet50": dict(status="ok", images_per_s=900.0),
        "keras_torch_imagenet50_compile": dict(status="ok", images_per_s=600.0),
        "torch_timm_resnetv2_50": dict(status="timeout", reason="timeout after 45 s"),
        "torch_timm_resnetv2_50_compile": dict(status="ok", images_per_s=800.0),
    }
    ratios = {(r["keras"], r["torch"]): r for r in gpu_check.compute_ratios(parts)}
    # Every Keras part against its network in PyTorch, eager and compiled; a PyTorch
    # part that did not finish gives no ratio.
    assert list(ratios) == [
        (keras_name, torch_name)
        for keras_name in ("keras_jax_cifar164", "keras_torch_cifar164",
                           "keras_torch_cifar164_compile")
        for torch_name in ("torch_pytorchcv_cifar164", "torch_pytorchcv_cifar164_compile",
                           "torch_ours_cifar164")
    ] + [("keras_jax_imagenet50", "torch_timm_resnetv2_50_compile"),
         ("keras_torch_imagenet50_compile", "torch_timm_resnetv2_50_compile")]
    r = ratios[("keras_jax_cifar164", "torch_ours_cifar164")]
    assert r["keras_over_torch"] == 1.5 and r["same_network"] is False
    assert r["keras_over_torch_per_gmac"] == 1.875  # 1.5 * 0.25 / 0.2
    r = ratios[("keras_torch_cifar164_compile", "torch_pytorchcv_cifar164_compile")]
    assert r["keras_over_torch"] == 0.6 and r["same_network"] is True
    assert "keras_over_torch_per_gmac" not in r
    assert ratios[("keras_torch_imagenet50_compile",
                   "torch_timm_resnetv2_50_compile")]["keras_over_torch"] == 0.75


def test_part_configs():
    args = gpu_check.parse_args(["--output", "/tmp/x", "--warmup", "1"])
    configs = {p.name: gpu_check.part_config(p, args) for p in gpu_check.PARTS}
    shapes = {name: (c["depth"], c["batch"], c["image_size"], c["jit"])
              for name, c in configs.items() if "depth" in c and name != "real_cifar100_jax"}
    assert shapes["keras_jax_cifar164"] == (164, 128, 32, True)
    assert shapes["keras_torch_cifar164"] == (164, 128, 32, False)
    assert shapes["keras_torch_cifar164_compile"] == (164, 128, 32, True)
    assert shapes["keras_torch_imagenet50"] == (50, 256, 224, False)
    assert shapes["keras_torch_imagenet50_compile"] == (50, 256, 224, True)
    assert shapes["torch_timm_resnetv2_50_compile"] == (50, 256, 224, True)
    assert shapes["torch_pytorchcv_cifar164"] == (164, 128, 32, False)
    assert shapes["torch_pytorchcv_cifar164_compile"] == (164, 128, 32, True)
    assert shapes["torch_ours_cifar164_compile"] == (164, 128, 32, True)
    assert {name: c["torch_impl"] for name, c in configs.items() if "torch_impl" in c} == {
        "torch_pytorchcv_cifar164": "pytorchcv", "torch_pytorchcv_cifar164_compile": "pytorchcv",
        "torch_timm_resnetv2_50": "timm", "torch_timm_resnetv2_50_compile": "timm",
        "torch_ours_cifar164": "reference", "torch_ours_cifar164_compile": "reference"}
    # The Keras CIFAR-164 parts build pytorchcv's network; the depth-1001 parts ours.
    assert {name for name, c in configs.items() if c.get("network_of")} == {
        "keras_jax_cifar164", "keras_torch_cifar164", "keras_torch_cifar164_compile"}
    assert configs["keras_jax_cifar164"]["network_of"] == "pytorchcv/preresnet164bn_cifar100"
    # torch.compile compiles Keras' step again in its second call: two warm-up steps.
    assert configs["keras_torch_cifar164_compile"]["warmup"] == 2
    assert configs["keras_torch_cifar164"]["warmup"] == 1
    assert configs["keras_jax_r1001_remat"]["remat"] and not configs["keras_jax_r1001"]["remat"]
    assert {c["policy"] for c in configs.values()} == {"mixed_bfloat16"}
    # Within the budget the parts come first, depth 1001 and real CIFAR last.
    names = [p.name for p in gpu_check.PARTS]
    assert names.index("keras_torch_cifar164_compile") < names.index("real_cifar100_jax")
    assert all(names.index(n) > names.index("real_cifar100_jax") for n in names if "r1001" in n)
    assert args.budget_s == 430


@pytest.mark.skipif(not HAS_PYTORCHCV, reason="pytorchcv is not installed")
def test_keras_cifar_parts_build_pytorchcvs_network():
    """The Keras CIFAR-164 parts build exactly pytorchcv's preresnet164bn_cifar100:
    with its weights they give its outputs (keras_preact's default layout would not:
    it strides on the first 1x1 conv and pre-activates the first shortcut)."""
    import torch

    from keras_preact.pretrained import convert

    torch_reference = load_benchmark("torch_reference")
    args = gpu_check.parse_args(["--output", "/tmp/x"])
    config = gpu_check.part_config(gpu_check.PARTS_BY_NAME["keras_torch_cifar164"], args)
    model = gpu_check._build_keras_model(config)
    torch.manual_seed(0)
    torch_model, implementation = torch_reference.build_model(164, "cifar", 100, "pytorchcv")
    assert implementation == "pytorchcv preresnet164bn_cifar100"
    torch_model.eval()
    model.set_weights(convert(torch_model.state_dict(), gpu_check.PYTORCHCV_NETWORK,
                              input_normalization=None).get_weights())
    # The pooled features (random weights saturate the softmax); the default layout's
    # differ by far more than float32 rounding.
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype("float32")
    with torch.no_grad():
        expected = torch.flatten(torch_model.features(torch.from_numpy(
            x.transpose(0, 3, 1, 2))), 1).numpy()
    features = keras.Model(model.input, model.get_layer("avg_pool").output)
    got = keras.ops.convert_to_numpy(features(x, training=False))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_prepare_data(tmp_path):
    src = _cifar_folder(tmp_path / "src", n_train=10, n_test=30)
    dst = tmp_path / "dst"
    args = ["--prepare-data", src, "--data-dir", dst, "--test-examples", "12"]
    assert gpu_check.main(list(map(str, args))) == 0
    with np.load(dst / "test_small.npz") as z:
        assert z["x"].shape == (12, 32, 32, 3) and z["y"].shape == (12,)
    assert (dst / "train_0.npz").read_bytes() == (src / "train_0.npz").read_bytes()
    assert gpu_check.main(["--prepare-data", str(tmp_path / "nothing"),
                           "--data-dir", str(dst)]) == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "--output DIR is required"),
        (["--output", "o", "--parts", "keras_jax_cifar164,gpu_magic"], "unknown part"),
        (["--output", "o", "--parts", "real_cifar100_jax,real_cifar100_jax"], "twice"),
        (["--output", "o", "--cap", "keras_jax_r1001"], "NAME=SECONDS"),
        (["--output", "o", "--cap", "nope=10"], "NAME=SECONDS"),
        (["--output", "o", "--cap", "keras_jax_r1001=0"], "int >= 1"),
        (["--output", "o", "--budget-s", "-5"], "int >= 1"),
        (["--output", "o", "--real-depth", "21"], "not a CIFAR depth"),
        (["--output", "o", "--steps", "many"], "int >= 1"),
    ],
)
def test_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        gpu_check.parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_output_must_be_a_folder(tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--output", str(path)])
    assert "is not a folder" in capsys.readouterr().err


def test_shell_wrapper_usage():
    proc = subprocess.run(["bash", str(BENCHMARKS / "gpu_check.sh")], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "usage:" in proc.stderr
    proc = subprocess.run(["bash", str(BENCHMARKS / "gpu_check.sh"), "--cpu-smoke"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "must be the output folder" in proc.stderr
