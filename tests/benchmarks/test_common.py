"""benchmarks/_common.py: the report every script writes and prints."""

import argparse
import json
import os
from pathlib import Path

import pytest
from _checks import load_benchmark

_common = load_benchmark("_common")

DOC = "How fast is it?\n\nLonger text.\n"


@pytest.mark.parametrize(
    "statuses, ok, exit_status",
    [
        (["ok", "ok"], ("ok",), 0),
        (["ok", "error"], ("ok",), 1),
        (["ok", "unsupported"], ("ok", "unsupported"), 0),
        ([], ("ok",), 0),
    ],
    ids=["all_ok", "one_failed", "unsupported_allowed", "no_rows"],
)
def test_publish_writes_prints_and_returns_the_exit_status(
        tmp_path, capsys, statuses, ok, exit_status):
    output = tmp_path / "report.json"
    args = argparse.Namespace(data_dir=Path("/data"), batch=16, output=str(output))
    machine = _common.machine_info()
    rows = [{"status": s, "value": i} for i, s in enumerate(statuses)]

    status = _common.publish(DOC, _common.REPO_ROOT + "/benchmarks/x.py", ["--batch", "16"],
                             args, machine, lambda report: f"table of {len(report['rows'])}",
                             ok=ok, rows=rows)

    assert status == exit_status
    assert capsys.readouterr().out == f"table of {len(rows)}\n"
    report = json.loads(output.read_text())
    assert report["question"] == "How fast is it?"
    assert report["command"] == "python benchmarks/x.py --batch 16"
    assert report["settings"] == {"data_dir": str(Path("/data")), "batch": 16}
    assert report["rows"] == rows
    assert report["machine"]["load_average"] == machine["load_average"]
    assert len(report["machine"]["load_average_at_end"]) == 3
    assert "at end" in "\n".join(_common.report_lines(dict(report, command=[])))


def test_publish_without_output_writes_nothing(tmp_path, capsys):
    args = argparse.Namespace(output=None)
    before = set(os.listdir(tmp_path))
    assert _common.publish(DOC, __file__, [], args, {}, lambda report: "x",
                           settings={"depth": 164}, results=[{"status": "ok"}]) == 0
    assert capsys.readouterr().out == "x\n"
    assert set(os.listdir(tmp_path)) == before
