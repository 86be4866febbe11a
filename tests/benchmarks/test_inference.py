"""benchmarks/inference.py: Keras and SavedModel inference at toy sizes on every
backend."""

import pytest

from _checks import benchmark_report
from _checks import check_bad_arguments_exit
from _checks import check_script_help
from _checks import load_benchmark
from _checks import run_benchmark
from conftest import BACKEND

import pytest

inference = load_benchmark("inference")


def test_help_says_what_the_script_answers(capsys):
    check_script_help(inference, capsys)


def test_bad_arguments_exit_with_a_clear_message(capsys):
    check_bad_arguments_exit(inference, ["--models", "mnist"], "invalid choice: 'mnist'", capsys)


@pytest.mark.slow
def test_inference_runs_keras_and_the_saved_model(tmp_path):
    run_benchmark("inference", "--backends", BACKEND, "--models", "cifar", "--cifar-depth", "8",
                  "--quick", "--output", tmp_path / "r.json")
    rows = benchmark_report(tmp_path / "r.json")["rows"]
    runs = [(r["runtime"], r["batch"], r["status"]) for r in rows]
    if BACKEND == "torch":  # the export refuses the torch backend, with its reason
        assert runs == [("savedmodel", 2, "unsupported"), ("keras", 1, "ok"),
                        ("keras", 2, "ok")]
        assert "not supported on the 'torch' Keras backend" in rows[0]["error"]
    else:
        assert runs == [("keras", 1, "ok"), ("keras", 2, "ok"), ("savedmodel", 1, "ok"),
                        ("savedmodel", 2, "ok")]
