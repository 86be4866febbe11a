"""benchmarks/build_time.py: how long building each network takes, and its
parameter count."""

from _checks import check_bad_arguments_exit
from _checks import check_script_help
from _checks import load_benchmark
from conftest import BACKEND

build_time = load_benchmark("build_time")


def test_help_says_what_the_script_answers(capsys):
    check_script_help(build_time, capsys)


def test_bad_arguments_exit_with_a_clear_message(capsys):
    check_bad_arguments_exit(build_time, ["--depths", "twenty"],
                             "expected an int >= 1; got 'twenty'", capsys)


def test_build_time_counts_the_papers_parameters():
    [row] = build_time.build_rows([20], "cifar", 10, repeats=2)
    assert (row["backend"], row["trainable_params"], row["residual_units"]) == (
        BACKEND, 272_282, 9)
    assert len(row["build_times_s"]) == 2 and row["build_s"] == min(row["build_times_s"])
