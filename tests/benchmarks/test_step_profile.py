"""benchmarks/step_profile.py: each runtime's kernels in a training step, at toy sizes."""

import pytest

from _checks import benchmark_report
from _checks import check_bad_arguments_exit
from _checks import check_script_help
from _checks import load_benchmark
from _checks import run_benchmark
from conftest import BACKEND

step_profile = load_benchmark("step_profile")
# The runtimes this backend's test run profiles: its own, and PyTorch beside torch.
RUNTIMES = {"jax": ["jax"], "torch": ["torch", "pytorch"]}.get(BACKEND, [])


def test_help_says_what_the_script_answers(capsys):
    check_script_help(step_profile, capsys)


@pytest.mark.parametrize("argv, message", [
    (["--runtimes", "tensorflow"], "invalid choice: 'tensorflow'"),
    (["--steps", "0"], "expected an int >= 1; got '0'"),
])
def test_bad_arguments_exit_with_a_clear_message(argv, message, capsys):
    check_bad_arguments_exit(step_profile, argv, message, capsys)


def test_render_lists_the_top_kinds_and_sums_the_rest():
    report = {
        "command": "python benchmarks/step_profile.py",
        "machine": {"cpu": "CPU", "cpu_cores": 2, "memory_gb": 8, "gpus": [],
                    "date_utc": "today", "load_average": [0, 0, 0], "versions": {}},
        "settings": {"depth": 20, "batch": 2, "steps": 1, "warmup": 1, "top": 2},
        "rows": [
            {"runtime": "torch", "status": "ok", "step_ms": 9.5, "kinds": [
                {"kind": "aten::a", "ms_per_step": 4.0, "calls_per_step": 2},
                {"kind": "aten::b", "ms_per_step": 2.0, "calls_per_step": 1},
                {"kind": "aten::c", "ms_per_step": 1.5, "calls_per_step": 3},
                {"kind": "aten::d", "ms_per_step": 0.5, "calls_per_step": 1},
            ]},
            {"runtime": "jax", "status": "error", "error": "Traceback: boom"},
        ],
    }
    text = step_profile.render(report)
    assert "torch backend: a step takes 9.5 ms" in text
    assert "| aten::a | 4 | 2 |" in text and "| aten::b | 2 | 1 |" in text
    assert "| 2 other kinds | 2 |  |" in text
    assert "JAX (XLA): error: Traceback: boom" in text


@pytest.mark.slow
@pytest.mark.skipif(not RUNTIMES, reason="profiles JAX and torch only")
def test_step_profile_runs_for_this_backend(tmp_path):
    proc = run_benchmark("step_profile", "--runtimes", *RUNTIMES, "--depth", "20",
                         "--batch", "2", "--warmup", "1", "--steps", "1",
                         "--output", tmp_path / "r.json")
    rows = benchmark_report(tmp_path / "r.json")["rows"]
    assert [row["runtime"] for row in rows] == RUNTIMES
    for row in rows:
        assert row["status"] == "ok", row.get("error")
        kinds = {k["kind"]: k for k in row["kinds"]}
        assert row["step_ms"] > 0 and all(k["ms_per_step"] >= 0 for k in row["kinds"])
        if row["runtime"] in ("torch", "pytorch"):
            # PreActResNet-20: 19 convolutions and 2 projections, each once per step.
            assert kinds["aten::convolution_backward"]["calls_per_step"] == 21
        else:
            assert sum(k["calls_per_step"] for k in row["kinds"]) > 21
    assert "a step takes" in proc.stdout
