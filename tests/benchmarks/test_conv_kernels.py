"""benchmarks/conv_kernels.py: each framework's convolution kernels, at toy sizes."""

import pytest

from _checks import benchmark_report
from _checks import check_bad_arguments_exit
from _checks import check_script_help
from _checks import load_benchmark
from _checks import run_benchmark
from conftest import BACKEND

conv_kernels = load_benchmark("conv_kernels")


def test_help_says_what_the_script_answers(capsys):
    check_script_help(conv_kernels, capsys)


@pytest.mark.parametrize("argv, message", [
    (["--frameworks", "mxnet"], "invalid choice: 'mxnet'"),
    (["--repeats", "0"], "expected an int >= 1; got '0'"),
])
def test_bad_arguments_exit_with_a_clear_message(argv, message, capsys):
    check_bad_arguments_exit(conv_kernels, argv, message, capsys)


@pytest.mark.parametrize("depth, layout, size, convolutions", [
    # Stem, 3 stages of one bottleneck unit (3 convs each, a projection each).
    (11, "cifar", 32, 1 + 3 * 4),
    # Stem, two basic units per stage (2 convs each), 3 projections.
    (18, "imagenet", 64, 1 + 4 * 2 * 2 + 3),
])
def test_network_convolutions_are_the_networks(depth, layout, size, convolutions):
    found = conv_kernels.network_convolutions(depth, layout, size, batch=2)
    assert sum(count for _, count in found) == convolutions
    (shape, kernel, cin, cout, stride), _ = found[0]
    assert shape == [2, size, size, 3] and cin == 3
    assert (kernel, stride) == ((3, 1) if layout == "cifar" else (7, 2))


@pytest.mark.slow
def test_conv_kernels_runs_for_this_backend(tmp_path):
    proc = run_benchmark("conv_kernels", "--frameworks", BACKEND, "--depth", "11",
                         "--batch", "2", "--warmup", "1", "--repeats", "1",
                         "--output", tmp_path / "r.json")
    (result,) = benchmark_report(tmp_path / "r.json")["results"]
    assert result["status"] == "ok", result.get("error")
    assert result["total_s"] == pytest.approx(
        sum(r["median_s"] * r["count"] for r in result["rows"]))
    assert "| framework | all | 3x3 | 1x1 | 1x1/2 |" in proc.stdout
