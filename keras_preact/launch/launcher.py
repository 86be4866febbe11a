"""Starts the workers of one training command on this machine; see `keras_preact.launch`."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from keras_preact.training.distribute import ENV_JOB_ADDRESSES
from keras_preact.training.distribute import ENV_NUM_PROCESSES
from keras_preact.training.distribute import ENV_PROCESS_ID
from keras_preact.validation import check_choice
from keras_preact.validation import check_int
from keras_preact.validation import check_real

VALID_BACKENDS = ("tensorflow", "jax")
#: Seconds the other workers get to end by themselves after one failed.
DEFAULT_GRACE_SECONDS = 30.0
#: Seconds between SIGTERM and SIGKILL when stopping workers.
KILL_AFTER_SECONDS = 5.0
HOST = "127.0.0.1"

TORCH_MESSAGE = (
    "keras_preact.launch: the torch backend has no multi-process training: "
    "Keras' model.fit on torch runs on one device per process and Keras does "
    "not wrap torch.distributed. Use --backend tensorflow "
    "(MultiWorkerMirroredStrategy) or --backend jax (keras.distribution), or "
    "train on torch in a single process (--distribute none)."
)


def free_ports(count, host=HOST):
    """`count` distinct TCP ports that were free on `host` a moment ago.

    Each port is found by binding to port 0; the sockets are closed before
    returning, so another program could take a port in between (the worker
    then fails with a "port in use" error naming it).
    """
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def worker_environments(num_workers, backend, ports, base_env=None):
    """The environment of each worker (list of dicts), see the module doc.

    Args:
        num_workers: int >= 1.
        backend: "tensorflow" or "jax".
        ports: list of `num_workers` ints (TensorFlow: one per worker; JAX:
            the first is the coordinator's).
        base_env: dict or None. Defaults to `os.environ`.

    Returns:
        A list of `num_workers` dicts.

    Raises:
        ValueError: for a backend other than "tensorflow" / "jax" (torch
            gets the reason), or a wrong number of ports.
    """
    if backend == "torch":
        raise ValueError(TORCH_MESSAGE)
    check_choice("backend", backend, VALID_BACKENDS)
    if len(ports) != num_workers:
        raise ValueError(f"Expected {num_workers} ports. Received: ports={ports!r}")
    base = dict(os.environ if base_env is None else base_env)
    for name in ("TF_CONFIG", ENV_JOB_ADDRESSES, ENV_NUM_PROCESSES, ENV_PROCESS_ID):
        base.pop(name, None)
    base["KERAS_BACKEND"] = backend
    base["PYTHONUNBUFFERED"] = "1"
    addresses = [f"{HOST}:{p}" for p in ports]
    envs = []
    for index in range(num_workers):
        env = dict(base)
        if backend == "tensorflow":
            env["TF_CONFIG"] = json.dumps({"cluster": {"worker": addresses},
                                           "task": {"type": "worker", "index": index}})
        else:
            env[ENV_JOB_ADDRESSES] = addresses[0]
            env[ENV_NUM_PROCESSES] = str(num_workers)
            env[ENV_PROCESS_ID] = str(index)
        envs.append(env)
    return envs


def describe_status(code):
    """'exit status 3' or 'killed by signal 9 (SIGKILL)' for a Popen returncode."""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown"
        return f"killed by signal {-code} ({name})"
    return f"exit status {code}"


def _stream(rank, pipe, out, lock):
    prefix = f"[worker {rank}] ".encode()
    for line in iter(pipe.readline, b""):
        with lock:
            out.write(prefix + line if line.endswith(b"\n") else prefix + line + b"\n")
            out.flush()
    pipe.close()


def _signal_group(proc, sig):
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop(procs, grace_seconds, log):
    """Waits `grace_seconds` for `procs` to end, then SIGTERM, then SIGKILL."""
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and any(p.poll() is None for p in procs):
        time.sleep(0.1)
    for sig, wait in ((signal.SIGTERM, KILL_AFTER_SECONDS), (signal.SIGKILL, 5.0)):
        alive = [p for p in procs if p.poll() is None]
        if not alive:
            return
        log(f"sending {sig.name} to worker(s) still running: pids "
            f"{[p.pid for p in alive]}")
        for p in alive:
            _signal_group(p, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(p.poll() is None for p in alive):
            time.sleep(0.1)


def launch(command, num_workers, backend, grace_seconds=DEFAULT_GRACE_SECONDS,
           out=None):
    """Runs `command` as `num_workers` workers; returns the launcher's exit code.

    Args:
        command: list of str, the worker command line.
        num_workers: int >= 1.
        backend: "tensorflow" or "jax".
        grace_seconds: float >= 0. After a worker fails, seconds the others
            get to end by themselves before SIGTERM.
        out: binary stream for the prefixed worker output. Defaults to
            `sys.stdout.buffer`.

    Returns:
        0 when every worker exited 0; else the first failing worker's status
        (128 + signal number for a signal).

    Raises:
        ValueError: for an empty command, `num_workers < 1`, a negative
            grace period or an unsupported backend.
    """
    if not command:
        raise ValueError("Expected a worker command after '--'. Received: nothing.")
    check_int("workers", num_workers, low=1)
    check_real("grace_seconds", grace_seconds, low=0.0)
    out = out or sys.stdout.buffer
    lock = threading.Lock()

    def log(message):
        with lock:
            out.write(f"[launch] {message}\n".encode())
            out.flush()

    envs = worker_environments(num_workers, backend, free_ports(num_workers))
    log(f"{num_workers} {backend} worker(s) on {HOST}: {' '.join(command)}")
    procs, threads = [], []
    for rank, env in enumerate(envs):
        try:
            proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as error:  # No such program, not executable, ...
            log(f"FAILED: cannot start {command[0]!r}: {error.strerror}")
            _stop(procs, 0, log)
            return 127  # The shell's status for a command not found.
        procs.append(proc)
        log(f"worker {rank}: pid {proc.pid}")
        threads.append(threading.Thread(target=_stream, args=(rank, proc.stdout, out, lock),
                                        daemon=True))
        threads[-1].start()
    failed, interrupted = _watch(procs, grace_seconds, log)
    for thread in threads:
        thread.join(timeout=5.0)
    return _exit_code([p.returncode for p in procs], failed, interrupted, log)


def _watch(procs, grace_seconds, log):
    """Waits for the workers; on a failure or SIGINT/SIGTERM, stops the others.

    Returns:
        (rank of the first failed worker or None, list of signals received).
    """
    interrupted = []
    old_handlers = {s: signal.signal(s, lambda signum, frame: interrupted.append(signum))
                    for s in (signal.SIGINT, signal.SIGTERM)}
    failed = None
    try:
        while failed is None and any(p.poll() is None for p in procs):
            if interrupted:
                log(f"received {signal.Signals(interrupted[0]).name}; stopping all workers")
                _stop(procs, 0.0, log)
                break
            failed = next((r for r, p in enumerate(procs) if p.poll() not in (None, 0)), None)
            time.sleep(0.1 if failed is None else 0)
        if failed is not None:
            log(f"worker {failed} (pid {procs[failed].pid}) failed: "
                f"{describe_status(procs[failed].returncode)}; giving the other worker(s) "
                f"{grace_seconds:g} s to end before terminating them")
            _stop([p for r, p in enumerate(procs) if r != failed], grace_seconds, log)
    finally:
        for s, h in old_handlers.items():
            signal.signal(s, h)
    return failed, interrupted


def _exit_code(codes, failed, interrupted, log):
    """The launcher's exit status from the workers' (see `launch`)."""
    if failed is None:
        failed = next((r for r, c in enumerate(codes) if c != 0), None)
    if failed is None and not interrupted:
        log("all workers exited 0")
        return 0
    if failed is None:
        return 128 + interrupted[0]
    code = codes[failed]
    summary = ", ".join(f"worker {r}: {describe_status(c)}" for r, c in enumerate(codes))
    log(f"FAILED: worker {failed} {describe_status(code)} ({summary})")
    return 128 - code if code < 0 else code
