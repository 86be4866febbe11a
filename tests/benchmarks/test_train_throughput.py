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
    if BACKEND == "torch":
        assert {r["runtime"] for r in rows} == {"torch", "pytorch"}
        assert "x) |" in proc.stdout  # the ratio to PyTorch
