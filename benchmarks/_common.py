"""What the benchmark scripts share: the machine, timing, memory, worker processes and
the report files.

Nothing here imports Keras or a framework at module level, so a worker process pays only
for the framework it runs, and the GPU check's driver imports none.
"""

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

# The checkout's root, so the scripts import this checkout's keras_preact.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

BACKENDS = ("tensorflow", "jax", "torch")
_RESULT_MARKER = "BENCH_RESULT "
_PACKAGES = ("keras", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "torch", "timm",
             "pytorchcv", "numpy")


# --------------------------------------------------------------------------- arguments


def new_parser(doc):
    """An `ArgumentParser` whose description is a script's docstring."""
    return argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def installed_backends():
    """The Keras backends whose framework is installed (found, not imported)."""
    return [name for name in BACKENDS if importlib.util.find_spec(name) is not None]


def add_backends_argument(parser):
    installed = installed_backends()
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=installed,
                        help=f"Keras backends to measure (default: the installed ones, "
                        f"here {' '.join(installed) or 'none'})")


def positive_int(text):
    """An `argparse` type: an int >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1; got {text!r}")
    return value


def command_line(script, argv=None):
    """The command that runs `script` with `argv` (default: this process's arguments),
    as typed from the checkout's root."""
    argv = sys.argv[1:] if argv is None else argv
    return shlex.join(["python", os.path.relpath(script, REPO_ROOT), *argv])


# --------------------------------------------------------------------------- machine


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_gb():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def gpu_details():
    """One dict per GPU from `nvidia-smi` (name, driver, memory, compute capability);
    `[]` without a GPU. Imports no framework."""
    if shutil.which("nvidia-smi") is None:
        return []
    fields = ("name", "driver_version", "memory.total", "compute_cap")
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [dict(zip(fields, (v.strip() for v in line.split(","))))
            for line in out.splitlines() if line.strip()]


def machine_info():
    """The machine, the library versions and the date (UTC), for a report."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    gpus = gpu_details()
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cpu_cores": len(os.sched_getaffinity(0)),
        "memory_gb": _memory_gb(),
        "gpus": gpus,
        "device": gpus[0]["name"] if gpus else f"CPU only ({_cpu_model()})",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "thread_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY",
                                                   "XLA_FLAGS") if k in os.environ},
        "versions": versions,
    }


def end_load(machine):
    """`machine` with the load average at the end of the run: a load above the
    core count while it ran means other work shared the cores."""
    return dict(machine, load_average_at_end=[round(x, 2) for x in os.getloadavg()])


def report_lines(report):
    """Markdown lines naming the machine, the date and the command(s) of a report."""
    machine = report["machine"]
    gpus = ", ".join(g["name"] if isinstance(g, dict) else g
                     for g in machine.get("gpus") or []) or "no GPU"
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    lines = [
        f"- Machine: {machine['cpu']}, {machine['cpu_cores']} cores, "
        f"{machine.get('memory_gb')} GB RAM, {gpus}",
        f"- Date: {machine['date_utc']}, load average at start "
        f"{machine.get('load_average', machine.get('load_average_at_start'))}"
        + (f", at end {machine['load_average_at_end']}"
           if machine.get("load_average_at_end") else ""),
        f"- Versions: {versions}",
    ]
    commands = report.get("command") or []
    commands = [commands] if isinstance(commands, str) else commands
    if commands:
        lines.append(f"- Command{'s' if len(commands) > 1 else ''}: "
                     + " and ".join(f"`{c}`" for c in commands))
    if report.get("measured_with"):
        lines.append(f"- Measured with {report['measured_with']}")
    return lines


# --------------------------------------------------------------------------- timing


def time_calls(fn, warmup, steps):
    """Calls `fn` `warmup` times (at least once), then times `steps` calls.

    `fn` must block until its work is done (return a host value). Returns the first
    call's seconds (tracing and compilation), the timed calls' seconds and their median.
    """
    first = None
    for i in range(max(warmup, 1)):
        start = time.perf_counter()
        fn()
        if i == 0:
            first = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {
        "first_call_s": round(first, 3),
        "step_times_s": [round(t, 5) for t in times],
        "median_step_s": statistics.median(times),
    }


def time_fit(model, x, y, warmup, steps):
    """Times `steps` training steps of `model.fit` after `warmup` steps (at least one).

    `fit` runs one epoch over the batch `(x, y)` repeated `warmup + steps` times, in
    order, as a user's training does (Keras' own loop, data adapter and callbacks). A
    callback reads each step's loss on the host (as PyTorch's `loss.item()`), so a step
    is done when its time is taken; a step's time is the time between two such reads.
    Returns the same fields as `time_calls`; the first step's time includes `fit`'s
    set-up, tracing and compilation.
    """
    import keras
    import numpy as np

    marks = []

    class _Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            float(logs["loss"])
            marks.append(time.perf_counter())

    count = max(warmup, 1) + steps
    start = time.perf_counter()
    model.fit(np.concatenate([x] * count), np.concatenate([y] * count),
              batch_size=len(x), epochs=1, shuffle=False, verbose=0, callbacks=[_Clock()])
    times = np.diff([start] + marks).tolist()
    timed = times[max(warmup, 1):]
    return {
        "first_call_s": round(times[0], 3),
        "step_times_s": [round(t, 5) for t in timed],
        "median_step_s": statistics.median(timed),
    }


# --------------------------------------------------------------------------- memory


def peak_rss_mb():
    """Peak resident set size of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def accelerator_memory(framework):
    """`(peak MiB, how it was measured)` on the framework's GPU; `(None, None)` on CPU."""
    if framework == "torch":
        import torch

        if torch.cuda.is_available():
            return (torch.cuda.max_memory_allocated() / 2**20,
                    "GPU peak (torch.cuda.max_memory_allocated)")
    elif framework == "jax":
        import jax

        device = jax.devices()[0]
        stats = (device.memory_stats() or {}) if device.platform != "cpu" else {}
        if "peak_bytes_in_use" in stats:
            return (stats["peak_bytes_in_use"] / 2**20,
                    "GPU peak (jax memory_stats peak_bytes_in_use)")
    elif framework == "tensorflow":
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            info = tf.config.experimental.get_memory_info("GPU:0")
            return info["peak"] / 2**20, "GPU peak (tf get_memory_info)"
    return None, None


def peak_memory(framework):
    """The peak memory of this process's work: the GPU peak, else the process peak
    RSS (which includes the framework's runtime: compare rows, not absolute values)."""
    peak, kind = accelerator_memory(framework)
    if peak is None:
        peak, kind = peak_rss_mb(), "process peak RSS (CPU)"
    return {"peak_memory_mib": round(peak, 1), "memory_kind": kind}


# --------------------------------------------------------------------------- work


def keras_gmacs_per_image(model):
    """Multiply-accumulates of one image through `model`'s convolutions and dense
    layers, in billions, from each layer's built shapes (nested layers included)."""
    import keras

    total = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            continue
        positions = 1
        if isinstance(layer, keras.layers.Conv2D):
            shape = layer.compute_output_shape(layer.get_build_config()["input_shape"])
            spatial = shape[1:-1] if layer.data_format == "channels_last" else shape[2:]
            positions = spatial[0] * spatial[1]
        kernel_size = 1
        for dim in layer.kernel.shape:
            kernel_size *= dim
        total += positions * kernel_size
    return round(total / 1e9, 3)


def torch_gmacs_per_image(model, image_size):
    """The same count for a PyTorch model, from forward hooks on one image."""
    import torch
    from torch import nn

    total = []

    def hook(module, inputs, output):
        positions = output.shape[2] * output.shape[3] if output.dim() == 4 else 1
        total.append(positions * module.weight.numel())

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            device = next(model.parameters()).device
            model(torch.zeros(1, 3, image_size, image_size, device=device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return round(sum(total) / 1e9, 3)


# --------------------------------------------------------------------------- workers


def worker_main(run_config):
    """Entry point of a worker process (`script.py --worker '<json config>'`): prints
    the result of `run_config(config)`, or the error it raised, on a marked line."""
    config = json.loads(sys.argv[sys.argv.index("--worker") + 1])
    try:
        result = run_config(config)
    except Exception as e:  # noqa: BLE001 - reported in the result
        traceback.print_exc()
        result = dict(config, status="error", error=f"{type(e).__name__}: {e}")
    sys.stdout.flush()
    print(_RESULT_MARKER + json.dumps(result), flush=True)


# glibc's malloc told to keep freed memory (never to map large blocks, never to hand
# the heap's top back). By default, whether a step's large tensors come back as fresh
# pages (a page fault per 4 KiB touched) depends on each process's allocation
# history, so two processes running the same kernels can differ by a third in step
# time (docs/benchmarks.md, "Training throughput").
STEADY_MALLOC = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**40)}


def run_worker(script, config, timeout_s=None, env=None, stream_stderr=False):
    """Runs `config` in a fresh process of `script` (its own memory peaks, its own
    `KERAS_BACKEND` through `env`). `stream_stderr=True` lets the worker's progress
    through. Returns the worker's result, or an error row on a crash or timeout."""
    full_env = dict(os.environ, **(env or {}))
    full_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    full_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")]))
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, script, "--worker", json.dumps(config)],
            stdout=subprocess.PIPE, stderr=None if stream_stderr else subprocess.PIPE,
            text=True, timeout=timeout_s, env=full_env,
        )
    except subprocess.TimeoutExpired:
        return dict(config, status="error", error=f"timeout after {timeout_s} s")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_RESULT_MARKER):
            result = json.loads(line[len(_RESULT_MARKER):])
            result["process_wall_s"] = round(time.perf_counter() - start, 1)
            return result
    tail = (proc.stdout + (proc.stderr or ""))[-2000:]
    return dict(config, status="error", error=f"worker exited {proc.returncode}: {tail}")


def progress(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- output


def atomic_write(path, data):
    """Writes `data` (str or bytes) to `path` through a temporary file renamed over it,
    so a reader never sees half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def publish(doc, script, argv, args, machine, render, ok=("ok",), settings=None,
            **results):
    """Assembles, writes and prints a script's report; returns its exit status.

    The report holds the question (the first line of the script's docstring `doc`),
    the command, `machine` (from `machine_info()` before the runs) with the load at
    the end, the settings (`args` less `--output`, or `settings`) and `results` (for
    example `rows=[...]`). It is written to `args.output` when given, and
    `render(report)` is printed. Returns 0 when every row has a status in `ok`, else 1.
    """
    if settings is None:
        settings = {k: v for k, v in vars(args).items() if k != "output"}
    report = {"question": doc.splitlines()[0], "command": command_line(script, argv),
              "machine": end_load(machine),
              "settings": {k: str(v) if isinstance(v, os.PathLike) else v
                           for k, v in settings.items()},
              **results}
    if args.output:
        write_report(args.output, report)
    print(render(report))
    rows = [row for value in results.values() for row in value]
    return 0 if all(row.get("status", "ok") in ok for row in rows) else 1


def write_report(path, report):
    """Writes a report as JSON, one line per row of its `rows` list (small, readable
    diffs)."""
    parts = []
    for key, value in report.items():
        if key == "rows":
            text = "[\n  " + ",\n  ".join(json.dumps(row) for row in value) + "\n ]"
        else:
            text = json.dumps(value)
        parts.append(f" {json.dumps(key)}: {text}")
    atomic_write(path, "{\n" + ",\n".join(parts) + "\n}\n")


def fmt(value):
    """A figure for a table: about three significant digits, thousands separated."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-" if value is None else str(value)
    if isinstance(value, int) or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"


def markdown_table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
