"""benchmarks/train_throughput.py: training throughput of every model at toy
sizes, against PyTorch on the torch pass."""

import pytest

from _checks import benchmark_report
from _checks import check_bad_arguments_exit
from _checks import check_script_help
from _checks import load_benchmark
from _checks import run_benchmark
from conftest import BACKEND

train_throughput = load_benchmark("train_throughput")


def test_help_says_what_the_script_answers(capsys):
    check_script_help(train_throughput, capsys)


@pytest.mark.parametrize("argv, message", [
    (["--backends", "mxnet"], "invalid choice: 'mxnet'"),
    (["--steps", "0"], "expected an int >= 1; got '0'"),
])
def test_bad_arguments_exit_with_a_clear_message(argv, message, capsys):
    check_bad_arguments_exit(train_throughput, argv, message, capsys)


@pytest.mark.slow
def test_train_throughput_runs_every_model(tmp_path):
    pytorch = [] if BACKEND == "torch" else ["--no-pytorch"]  # PyTorch once, in torch's run
    proc = run_benchmark("train_throughput", "--backends", BACKEND, "--quick", "--cifar-depth",
                         "8", "--imagenet-size", "32", *pytorch, "--output", tmp_path / "r.json")
    rows = benchmark_report(tmp_path / "r.json")["rows"]
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
    for row in rows:  # --quick: one warm-up step, then one timed step of fit
        assert len(row["step_times_s"]) == 1
    if BACKEND == "torch":
        assert {r["runtime"] for r in rows} == {"torch", "pytorch"}
        assert "x) |" in proc.stdout  # the ratio to PyTorch


def test_configs_cover_each_cifar_batch_and_the_compiled_runtimes():
    args = train_throughput.parse_args(["--backends", "tensorflow", "torch",
                                        "--models", "cifar", "--torch-compile"])
    configs = train_throughput.build_configs(args)
    assert [(c["batch"], c["runtime"]) for c in configs] == [
        (batch, runtime) for batch in (128, 16)
        for runtime in ("tensorflow", "torch", "torch_compile", "pytorch", "pytorch_compile")
    ]
    compiled = {c["runtime"]: c for c in configs if c["batch"] == 16}
    assert compiled["torch_compile"]["jit_compile"] is True
    assert compiled["torch"]["jit_compile"] == "auto"
    assert compiled["pytorch_compile"]["jit"] is True and not compiled["pytorch"].get("jit")
    without = train_throughput.build_configs(
        train_throughput.parse_args(["--backends", "jax", "--models", "cifar",
                                     "--torch-compile", "--cifar-batch", "16"]))
    # No torch backend among the Keras backends: only PyTorch's compiled column.
    assert [c["runtime"] for c in without] == ["jax", "pytorch", "pytorch_compile"]


def _row(runtime, images_per_s, batch=16, **extra):
    return dict(runtime=runtime, layout="cifar", model="preact", depth=164, image_size=32,
                batch=batch, status="ok", images_per_s=images_per_s, gmacs_per_image=0.245,
                first_call_s=2.0, **extra)


def test_table_compares_eager_with_eager_and_compiled_with_compiled():
    args = train_throughput.parse_args(["--backends", "torch", "--models", "cifar",
                                        "--cifar-batch", "16", "--torch-compile"])
    settings = {k: v for k, v in vars(args).items() if k != "output"}
    machine = dict(cpu="a CPU", cpu_cores=2, date_utc="today", versions={})
    report = {"question": "q", "command": "c", "machine": machine, "settings": settings,
              "rows": [
        _row("torch", 40.0, jit_compiled=False),
        _row("torch_compile", 30.0, jit_compiled=True),
        _row("pytorch", 50.0),
        _row("pytorch_compile", 60.0),
              ]}
    text = train_throughput.render(report)
    assert ("| PreActResNet-164, 32x32 | 16 | 0.245 | 40.0 (0.80x) | 30.0 (0.50x) | 50.0 | 60.0 |"
            in text)
    assert "- PreActResNet-164, 32x32, batch 16: torch backend 2.0," in text
