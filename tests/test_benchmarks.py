"""Smoke tests for benchmarks/: the scripts run end to end at the smallest settings and
write valid JSON and Markdown; the comparison arithmetic and the PyTorch reference's
architecture are pinned."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

import keras_preact

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import _common  # noqa: E402
import markdown_report  # noqa: E402

BACKEND = keras.backend.backend()


def _run(script, *args, timeout=600):
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _load(tmp_path):
    report = json.loads((tmp_path / "r.json").read_text())
    markdown = (tmp_path / "r.md").read_text()
    assert report["machine"]["cpu_cores"] >= 1
    assert report["machine"]["versions"]["keras"] == keras.__version__
    assert markdown.startswith("# keras_preact benchmarks")
    assert "- CPU: " in markdown and "- Date: " in markdown
    return report, markdown


def _train_row(model, backend, images_per_s, jit=False, precision="float32", **kw):
    row = dict(
        status="ok",
        model=model,
        backend=backend,
        framework="torch" if backend == "pytorch" else "keras",
        layout="imagenet",
        depth=50,
        image_size=224,
        batch=4,
        precision=precision,
        jit=jit,
        images_per_s=images_per_s,
        median_step_s=4 / images_per_s,
        first_call_s=1.0,
        peak_memory_mb=100.0,
        cpu_s_per_step=1.0,
    )
    row.update(kw)
    return row


def test_compare_train_ratios_and_markdown():
    results = [
        _train_row("keras_preact", "torch", 10.0),
        _train_row("keras_preact", "torch", 12.0, jit=True),
        _train_row("keras_preact", "jax", 20.0, jit=True),
        _train_row("keras_resnet50v2", "torch", 8.0),
        _train_row("pytorch_preact", "pytorch", 15.0, implementation="ref"),
        dict(status="error", model="keras_resnet50v2", backend="jax", error="boom"),
    ]
    rows = markdown_report.compare_train(results)
    same = {(r["alternative"], r["kind"]): r for r in rows}
    # Same backend and jit setting: 8 / 10 and 15 / 10 (pytorch vs the torch backend).
    assert same[("keras.applications.ResNet50V2", "same_setting")]["ratio"] == 0.8
    assert same[("PyTorch ref PreAct50", "same_setting")]["ratio"] == 1.5
    # Best vs best: ResNet50V2 within its backend (8 / 12), PyTorch vs any (15 / 20).
    assert same[("keras.applications.ResNet50V2", "best_same_backend")]["ratio"] == 0.667
    assert same[("PyTorch ref PreAct50", "best_any_backend")]["ratio"] == 0.75
    # Without MAC counts there is no work-normalized ratio.
    assert same[("PyTorch ref PreAct50", "same_setting")]["work_ratio"] is None
    report = {
        "machine": _common.machine_info(),
        "suites": {"train": {"settings": {"quick": True}, "results": results}},
    }
    text = markdown_report.render_markdown(report)
    assert "| jax | keras_preact PreActResNet50 | imagenet 224x224 | 4 | fp32 | jit | 20.0 |" in text
    assert "Failed configs:" in text and "`boom`" in text


def test_work_ratio_corrects_for_macs_per_image():
    results = [
        _train_row("keras_preact", "jax", 10.0, gmacs_per_image=4.0),
        _train_row("keras_resnet50v2", "jax", 12.0, gmacs_per_image=3.0),
    ]
    [same, best] = markdown_report.compare_train(results)
    assert same["ratio"] == 1.2
    # 12 img/s x 3 GMAC = 36 GMAC/s against 10 x 4 = 40 GMAC/s.
    assert same["work_ratio"] == best["work_ratio"] == 0.9
    text = markdown_report.render_train(results)
    assert "| 1.20 | 1.00 | 0.90 |" in text


def test_merge_rounds_keeps_the_median_round():
    def row(value, status="ok"):
        return dict(status=status, model="m", images_per_s=value, error=None)

    rounds = [
        [row(5.0), row(1.0, "error"), row(7.0)],
        [row(3.0), row(2.0, "error"), row(7.5, "error")],
        [row(4.0), row(3.0, "error"), row(6.0)],
    ]
    merged = _common.merge_rounds(rounds)
    assert merged[0]["images_per_s"] == 4.0
    assert merged[0]["rounds"] == 3
    assert merged[0]["round_values"] == {"images_per_s": [5.0, 3.0, 4.0]}
    # Failed in every round: the last error stands for it.
    assert merged[1]["status"] == "error" and merged[1]["images_per_s"] == 3.0
    # Two good rounds of three: the lower median, and only good rounds count.
    assert merged[2]["images_per_s"] == 6.0 and merged[2]["rounds"] == 2
    assert _common.merge_rounds(rounds[:1]) == rounds[0]
    assert markdown_report._spread(merged[0]) == "5.00 / 3.00 / 4.00"


def test_mac_counts_agree_with_the_pytorch_reference():
    pytest.importorskip("torch")
    import torch_reference

    model = keras_preact.PreActResNet50()
    torch_model, _ = torch_reference.build_model(50, "imagenet", 1000, impl="reference")
    # 4.09 GMACs is the usual figure for ResNet-50 with the stride on the 3x3 conv.
    assert _common.keras_gmacs_per_image(model) == 4.089
    assert _common.torch_gmacs_per_image(torch_model, 224) == 4.089
    # ResNet50V2 strides at the END of each stage: same weights, less work.
    resnet50v2 = keras.applications.ResNet50V2(weights=None)
    assert _common.keras_gmacs_per_image(resnet50v2) == 3.482
    cifar = keras_preact.PreActResNet164()
    torch_cifar, _ = torch_reference.build_model(164, "cifar", 10, impl="reference")
    assert _common.keras_gmacs_per_image(cifar) == pytest.approx(
        _common.torch_gmacs_per_image(torch_cifar, 32), abs=0.001
    )


@pytest.mark.parametrize(
    "depth, layout, classes, expected",
    [(20, "cifar", 10, 272_282), (50, "imagenet", 1000, 25_549_352)],
)
def test_torch_reference_matches_keras_preact(depth, layout, classes, expected):
    pytest.importorskip("torch")
    import torch_reference

    torch_model, impl = torch_reference.build_model(depth, layout, classes, impl="reference")
    assert impl == "benchmarks/torch_reference.py"
    torch_params = sum(p.numel() for p in torch_model.parameters())
    model = keras_preact.PreActResNet(depth, layout=layout, classes=classes)
    keras_params = sum(int(keras.ops.size(w)) for w in model.trainable_weights)
    # 25,549,352 is also timm's resnetv2_50.
    assert torch_params == keras_params == expected


def test_torch_reference_bad_input():
    pytest.importorskip("torch")
    import torch_reference

    with pytest.raises(ValueError, match="Unknown layout='mnist'"):
        torch_reference.PreActResNet(20, layout="mnist")
    with pytest.raises(ValueError, match="Invalid CIFAR depth=21"):
        torch_reference.PreActResNet(21, layout="cifar")
    with pytest.raises(ValueError, match="Unknown impl='x'"):
        torch_reference.build_model(20, "cifar", 10, impl="x")


def test_build_time_writes_json_and_markdown(tmp_path):
    import build_time

    build_time.main(
        ["--depths", "20,29", "--repeats", "1", "--output", str(tmp_path / "r.json"),
         "--markdown", str(tmp_path / "r.md"), "--layout", "cifar", "--rounds", "2"]
    )
    report, markdown = _load(tmp_path)
    rows = report["suites"]["build"]["results"]
    assert [r["status"] for r in rows] == ["ok", "error"]
    assert rows[0]["rounds"] == 2 and len(rows[0]["round_values"]["build_s"]) == 2
    assert "Invalid depth=29" in rows[1]["error"]
    assert rows[0]["trainable_params"] == 272_282
    assert rows[0]["residual_units"] == 9
    assert f"| {BACKEND} | PreActResNet20 | cifar | 9 |" in markdown


def test_bad_cli_arguments_exit_with_message(capsys):
    import train_throughput

    with pytest.raises(SystemExit):
        train_throughput.parse_args(["--models", "mnist"])
    assert "Unknown model 'mnist'" in capsys.readouterr().err


@pytest.mark.slow
def test_train_throughput_end_to_end(tmp_path):
    args = ["--models", "cifar,imagenet", "--cifar-depth", "20", "--cifar-batch", "2",
            "--imagenet-size", "32", "--imagenet-batch", "2", "--precisions", "float32",
            "--jit", "off", "--warmup", "1", "--steps", "2", "--torch-reference",
            "--torch-impl", "reference"]
    _run("train_throughput.py", *args, "--output", str(tmp_path / "r.json"),
         "--markdown", str(tmp_path / "r.md"))
    report, markdown = _load(tmp_path)
    rows = report["suites"]["train"]["results"]
    assert [r.get("error") for r in rows] == [None] * 5
    models = sorted((r["model"], r["depth"]) for r in rows)
    assert models == [("keras_preact", 20), ("keras_preact", 50), ("keras_resnet50v2", 50),
                      ("pytorch_preact", 20), ("pytorch_preact", 50)]
    for r in rows:
        # images_per_s is rounded to 2 decimals in the report.
        assert r["images_per_s"] == pytest.approx(r["batch"] / r["median_step_s"], abs=0.006)
        assert len(r["step_times_s"]) == 2 and r["peak_memory_mb"] > 0
    kp50 = next(r for r in rows if r["model"] == "keras_preact" and r["depth"] == 50)
    assert kp50["trainable_params"] == 25_549_352
    ratios = report["suites"]["train"]["comparisons"]
    assert {c["kind"] for c in ratios} == {"same_setting", "best_same_backend", "best_any_backend"}
    assert "Ratio = alternative images/s / keras_preact images/s" in markdown


@pytest.mark.slow
def test_inference_end_to_end(tmp_path):
    import inference

    inference.main(["--no-isolate", "--models", "cifar", "--cifar-depth", "20", "--batch", "2",
                    "--warmup", "1", "--steps", "2", "--jit", "off",
                    "--output", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md")])
    report, markdown = _load(tmp_path)
    rows = report["suites"]["inference"]["results"]
    keras_rows = [r for r in rows if r["runtime"] == "keras"]
    assert [(r["status"], r["batch"]) for r in keras_rows] == [("ok", 1), ("ok", 2)]
    saved = [r for r in rows if r["runtime"] == "savedmodel"]
    if BACKEND == "torch":  # keras_preact.export supports tensorflow and jax only
        assert len(saved) == 1 and "UnsupportedBackendError" in saved[0]["error"]
    else:
        assert [(r["status"], r["batch"]) for r in saved] == [("ok", 1), ("ok", 2)]
    assert "| savedmodel |" in markdown or BACKEND == "torch"


@pytest.mark.slow
def test_run_all_merges_backend_runs(tmp_path):
    _run("run_all.py", "--backends", BACKEND, "--suites", "build,remat",
         "--build-args", "--depths 20 --repeats 1",
         "--remat-args", "--depths 20 --batches 2 --jit off --warmup 1 --steps 1",
         "--workdir", str(tmp_path / "runs"),
         "--output", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md"))
    report, markdown = _load(tmp_path)
    assert set(report["suites"]) == {"build", "remat"}
    assert list(report["suites"]["build"]["settings"]["per_backend"]) == [BACKEND]
    remat = {r["remat"]: r for r in report["suites"]["remat"]["results"]}
    assert remat[False]["status"] == "ok"
    assert remat[False]["trainable_params"] == 272_282
    assert remat[True]["status"] == "ok", remat[True].get("error")
    assert remat[True]["trainable_params"] == 272_282
    assert "## Rematerialization (remat=True)" in markdown


# --------------------------------------------------------------------------- defaults

SETTINGS = ("jit_compile", "data_format", "steps_per_execution")


def test_fastest_settings_table_is_the_measurement():
    """Every backend and precision has a CPU entry equal to what the results file it
    names chose (or Keras' defaults, labelled, where it chose nothing), and a GPU entry
    from the GPU check or labelled as Keras' default."""
    from keras_preact.training import defaults

    report = json.loads((BENCH.parent / defaults.CPU_RESULTS).read_text())
    for backend in defaults.BACKENDS:
        chosen = report["backends"][backend]["chosen"]
        for precision in defaults.PRECISIONS:
            cpu = defaults.fastest_settings(backend, precision, "cpu")
            if precision not in chosen:  # not measured: labelled, Keras' defaults
                assert cpu == dict(jit_compile="auto", data_format="channels_last",
                                   steps_per_execution=1, source=defaults.KERAS_DEFAULT)
                continue
            assert cpu["source"].startswith(defaults.CPU_RESULTS)
            assert {k: cpu[k] for k in SETTINGS} == {k: chosen[precision][k] for k in SETTINGS}
            gpu = defaults.fastest_settings(backend, precision, "gpu")
            assert gpu["source"].startswith((defaults.GPU_RESULTS, defaults.KERAS_DEFAULT))
            assert gpu["data_format"] in ("channels_last", "channels_first")
    assert (BENCH.parent / defaults.GPU_RESULTS).exists()
    # Policy names count as "mixed"; an unmeasured device gets Keras' defaults.
    assert defaults.fastest_settings("jax", "mixed_bfloat16", "cpu") == (
        defaults.fastest_settings("jax", "mixed", "cpu"))
    assert defaults.fastest_settings("jax", "float32", "tpu")["source"] == defaults.KERAS_DEFAULT


@pytest.mark.parametrize("kwargs, match", [
    (dict(backend="mxnet"), "Invalid backend='mxnet'"),
    (dict(precision="float64"), "Invalid precision='float64'"),
    (dict(device="npu"), "Invalid device='npu'"),
    (dict(jit=True), "Invalid setting='jit'"),
])
def test_fastest_settings_bad_input(kwargs, match):
    from keras_preact.training import defaults

    with pytest.raises(ValueError, match=match):
        defaults.fastest_settings(**dict(dict(backend="jax", device="cpu"), **kwargs))


@pytest.mark.parametrize("argv, given", [
    ([], {}),
    (["--jit-compile", "off", "--data-format", "channels_first", "--steps-per-execution", "3"],
     dict(jit_compile=False, data_format="channels_first", steps_per_execution=3)),
    (["--jit-compile"], dict(jit_compile=True)),
    (["--jit-compile", "auto"], dict(jit_compile="auto")),
])
def test_runner_uses_fastest_settings_unless_given(monkeypatch, argv, given):
    from keras_preact.training import DistributionSetup
    from keras_preact.training import defaults
    from keras_preact.training import runner

    monkeypatch.setattr(runner, "setup_distribution",
                        lambda kind, tpu=None: DistributionSetup(kind))
    parser = runner.make_parser("test")
    runner.add_common_arguments(parser, default_batch_size=8, default_output_dir="unused")
    args = parser.parse_args(argv)
    runner.check_common_arguments(parser, args)
    prep = runner.prepare(args)
    table = defaults.fastest_settings(precision=prep["policy"])
    assert {k: prep["settings"][k] for k in SETTINGS} == dict(
        {k: table[k] for k in SETTINGS}, **given)
    assert prep["settings"]["source"].startswith(table["source"])
    assert keras.config.image_data_format() == "channels_last"  # set per model build only


def test_in_data_format_transposes_pipeline_batches():
    tf = pytest.importorskip("tensorflow")
    from keras_preact.training import defaults

    images = tf.reshape(tf.range(2 * 4 * 5 * 3), (2, 4, 5, 3))
    data = tf.data.Dataset.from_tensors((images, tf.constant([1, 2])))
    assert defaults.in_data_format(data, "channels_last") is data
    x, y = next(iter(defaults.in_data_format(lambda step: data, "channels_first")(0)))
    assert x.shape == (2, 3, 4, 5) and list(y.numpy()) == [1, 2]
    assert x.numpy()[1, 2, 3, 4] == images.numpy()[1, 3, 4, 2]
    with defaults.image_data_format("channels_first"):
        assert keras_preact.PreActResNet20().input_shape == (None, 3, 32, 32)
    assert keras.config.image_data_format() == "channels_last"


def _setting_row(precision, jit, data_format, spe, *rounds):
    return dict(status="ok", precision=precision, jit=jit, data_format=data_format,
                steps_per_execution=spe, round_values=list(rounds),
                images_per_s=sorted(rounds)[len(rounds) // 2])


def test_fastest_settings_choice_needs_a_consistent_gain():
    """A setting replaces Keras' default only when faster in every interleaved round
    and by min_gain in the median."""
    import fastest_settings

    stage1 = [_setting_row("float32", False, "channels_last", 1, 10.0, 10.0, 10.0),  # default
              _setting_row("float32", True, "channels_last", 1, 10.4, 10.4, 10.4),   # +4%
              _setting_row("float32", False, "channels_first", 1, 20.0, 9.0, 20.0),  # once slower
              _setting_row("mixed", False, "channels_last", 1, 10.0, 10.0, 10.0),
              _setting_row("mixed", True, "channels_first", 1, 12.0, 11.0, 13.0),    # +20%
              dict(status="error", precision="mixed", jit=False, data_format="channels_first",
                   steps_per_execution=1, error="boom")]
    stage2 = [_setting_row("mixed", True, "channels_first", 1, 11.0, 11.0, 11.0),
              _setting_row("mixed", True, "channels_first", 8, 13.0, 12.0, 12.5)]   # +14%
    result = dict(backend="tensorflow", precisions=["float32", "mixed"], stage1=stage1,
                  stage2=stage2)
    chosen = fastest_settings.choose(result, min_gain=0.05)
    assert chosen["float32"] == dict(jit_compile=False, data_format="channels_last",
                                     steps_per_execution=1, images_per_s=10.0,
                                     spe_measured=False)
    assert chosen["mixed"] == dict(jit_compile=True, data_format="channels_first",
                                   steps_per_execution=8, images_per_s=12.5, spe_measured=True)
    # 14% faster is not enough for min_gain 0.2: one step per execution.
    assert fastest_settings.choose(result, min_gain=0.2)["mixed"]["steps_per_execution"] == 1


def test_targets_ratios():
    import targets

    def row(model, backend, images_per_s, **kw):
        return dict(status="ok", model=model, backend=backend, images_per_s=images_per_s,
                    batch=kw.pop("batch", 4), cpu_s_per_step=kw.pop("cpu", None), **kw)

    train = [row("pytorch_preact", "pytorch", 40.0, batch=16, cpu=0.8),
             row("keras_preact", "jax", 30.0, batch=16, cpu=0.4, layout="cifar", jit=True),
             row("keras_preact", "jax", 4.0, layout="imagenet", gmacs_per_image=4.089),
             row("keras_resnet50v2", "jax", 5.0, gmacs_per_image=3.482)]
    inference = [row("keras_preact", "jax", 20.0, runtime="keras", batch=1, latency_ms=50.0),
                 row("keras_resnet50v2", "jax", 25.0, runtime="keras", batch=1,
                     latency_ms=40.0),
                 row("keras_preact", "jax", 30.0, runtime="keras", batch=64, latency_ms=2000.0)]
    rows = targets.summarize(train, inference, ["jax"])
    a, b, latency, throughput = rows
    assert (a["ratio"], a["cpu_ratio"]) == (0.75, 2.0)  # 30 / 40; 40 / 20 images per CPU-s
    assert b["ratio"] == round(4.0 * 4.089 / (5.0 * 3.482), 2) == 0.94
    assert latency["ratio"] == 0.8  # 40 ms / 50 ms: ours slower
    assert throughput["reference"] is None and throughput["ratio"] is None


@pytest.mark.slow
def test_fastest_settings_and_targets_smoke(tmp_path):
    """Both issue-14 drivers run end to end at toy sizes on this backend."""
    _run("fastest_settings.py", "--quick", "--depth", "20", "--backends", BACKEND,
         "--precisions", "float32", "--output", str(tmp_path / "f.json"),
         "--markdown", str(tmp_path / "f.md"))
    report = json.loads((tmp_path / "f.json").read_text())
    chosen = report["backends"][BACKEND]["chosen"]["float32"]
    assert chosen["data_format"] in ("channels_last", "channels_first")
    assert "OMP_WAIT_POLICY" in report["machine"]["thread_env"]
    assert "## Chosen" in (tmp_path / "f.md").read_text()
    _run("targets.py", "--quick", "--rounds", "1", "--backends", BACKEND, "--suites", "train",
         "--output", str(tmp_path / "t.json"), "--markdown", str(tmp_path / "t.md"))
    targets = json.loads((tmp_path / "t.json").read_text())["targets"]
    assert [t["target"][:3] for t in targets] == ["(a)", "(b)"]
    assert all(t["ratio"] and t["ratio"] > 0 for t in targets)
