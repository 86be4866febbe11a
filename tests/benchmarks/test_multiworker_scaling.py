"""benchmarks/multiworker_scaling.py: says what it answers and refuses bad
arguments (its runs start worker processes: not run by the tests)."""

from _checks import check_bad_arguments_exit
from _checks import check_script_help
from _checks import load_benchmark

multiworker_scaling = load_benchmark("multiworker_scaling")


def test_help_says_what_the_script_answers(capsys):
    check_script_help(multiworker_scaling, capsys)


def test_bad_arguments_exit_with_a_clear_message(capsys):
    check_bad_arguments_exit(multiworker_scaling, ["--global-batch", "3", "--workers", "2"],
                             "multiple of", capsys)
