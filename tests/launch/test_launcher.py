"""keras_preact.launch.launcher: each worker's environment, free ports, and a
launch that stops the other workers when one fails (the command line:
tests/launch/test_main.py)."""

import io
import json
import re
import socket
import sys
import time

import pytest

from keras_preact import launch

from _checks import run_command


def test_worker_environments_tensorflow_and_jax():
    envs = launch.worker_environments(2, "tensorflow", [1111, 2222], base_env={"A": "1"})
    configs = [json.loads(e["TF_CONFIG"]) for e in envs]
    assert configs == [
        {"cluster": {"worker": ["127.0.0.1:1111", "127.0.0.1:2222"]},
         "task": {"type": "worker", "index": i}} for i in range(2)]
    assert all(e["KERAS_BACKEND"] == "tensorflow" and e["A"] == "1" for e in envs)
    envs = launch.worker_environments(3, "jax", [3333, 4, 5], base_env={"TF_CONFIG": "x"})
    assert [e["KERAS_DISTRIBUTION_PROCESS_ID"] for e in envs] == ["0", "1", "2"]
    assert {e["KERAS_DISTRIBUTION_JOB_ADDRESSES"] for e in envs} == {"127.0.0.1:3333"}
    assert {e["KERAS_DISTRIBUTION_NUM_PROCESSES"] for e in envs} == {"3"}
    assert not any("TF_CONFIG" in e for e in envs)
    with pytest.raises(ValueError, match="torch backend has no multi-process"):
        launch.worker_environments(2, "torch", [1, 2])
    with pytest.raises(ValueError, match="backend='mxnet'"):
        launch.worker_environments(2, "mxnet", [1, 2])


def test_free_ports_are_distinct_and_bindable():
    ports = launch.free_ports(3)
    assert len(set(ports)) == 3
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


# Worker 1 exits 3 once worker 0 has started; worker 0 would sleep for 10 min.
FAILING_WORKER = (
    "import os, sys, time\n"
    "rank = int(os.environ['KERAS_DISTRIBUTION_PROCESS_ID'])\n"
    "print('hello from', rank, flush=True)\n"
    "sys.exit(3) if rank == 1 else time.sleep(600)\n"
)


def test_launcher_stops_the_others_when_one_fails():
    start = time.monotonic()
    code, out = run_command([sys.executable, "-m", "keras_preact.launch", "--workers", "2",
                             "--backend", "jax", "--grace-seconds", "1", "--",
                             sys.executable, "-c", FAILING_WORKER], timeout=60)
    elapsed = time.monotonic() - start
    assert code == 3, out
    assert "[worker 0] hello from 0" in out and "[worker 1] hello from 1" in out
    assert "worker 1 (pid" in out and "failed: exit status 3" in out
    assert "sending SIGTERM" in out
    assert re.search(r"FAILED: worker 1 exit status 3 \(worker 0: killed by signal 15 "
                     r"\(SIGTERM\), worker 1: exit status 3\)", out), out
    assert elapsed < 30, out


def test_launcher_names_a_command_that_cannot_start():
    out = io.BytesIO()
    code = launch.launch(["/nonexistent/train"], 2, "tensorflow", out=out)
    assert code == 127
    assert "FAILED: cannot start '/nonexistent/train': No such file or directory" in (
        out.getvalue().decode())
