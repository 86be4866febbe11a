"""benchmarks/remat.py: runs with and without `remat` at toy sizes."""

import pytest

from _checks import benchmark_report
from _checks import check_bad_arguments_exit
from _checks import check_script_help
from _checks import load_benchmark
from _checks import run_benchmark
from conftest import BACKEND

remat = load_benchmark("remat")


def test_help_says_what_the_script_answers(capsys):
    check_script_help(remat, capsys)


def test_bad_arguments_exit_with_a_clear_message(capsys):
    check_bad_arguments_exit(remat, ["--depths", "164", "1001", "--batches", "1", "2", "3"],
                             "one per depth", capsys)


@pytest.mark.slow
def test_remat_runs_both_ways(tmp_path):
    proc = run_benchmark("remat", "--backends", BACKEND, "--depths", "8", "--batches", "2",
                         "--warmup", "1", "--steps", "1", "--output", tmp_path / "r.json")
    rows = benchmark_report(tmp_path / "r.json")["rows"]
    assert [(r["remat"], r["status"]) for r in rows] == [(False, "ok"), (True, "ok")]
    assert rows[0]["peak_memory_mib"] > 0
    assert f"| {BACKEND} | 8 | 2 |" in proc.stdout
