"""Shared helpers for the benchmark scripts: machine labels, timing, memory, I/O.

Nothing here imports Keras, TensorFlow, JAX or torch at module level, so a worker
process only pays for the frameworks it actually benchmarks.
"""

import argparse
import datetime
import importlib.metadata
import itertools
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
import traceback

# The checkout's root, so `import keras_preact` works without `pip install -e .`
# (an installed keras_preact still takes precedence).
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.append(REPO_ROOT)

RESULT_MARKER = "BENCH_RESULT "
BACKENDS = ("tensorflow", "jax", "torch")
PACKAGES = ("keras", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "torch", "timm")


# --------------------------------------------------------------------------- machine


def _cpu_model():
    try:
        out = subprocess.run(
            ["lscpu"], capture_output=True, text=True, timeout=10
        ).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _gpu_names():
    """GPU names from nvidia-smi (no framework import); empty list if none."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


GPU_QUERY_FIELDS = ("name", "driver_version", "memory.total", "compute_cap")


def gpu_details():
    """One dict per GPU from `nvidia-smi --query-gpu` (name, driver version, total
    memory, compute capability), without importing a framework; `[]` without a GPU
    or nvidia-smi. Fields this nvidia-smi does not know are left out."""
    if shutil.which("nvidia-smi") is None:
        return []
    gpus = None
    for fields in (GPU_QUERY_FIELDS, GPU_QUERY_FIELDS[:3]):
        try:
            proc = subprocess.run(
                ["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            )
        except (OSError, subprocess.SubprocessError):
            return []
        if proc.returncode == 0:
            gpus = [
                dict(zip(fields, (v.strip() for v in line.split(","))))
                for line in proc.stdout.splitlines()
                if line.strip()
            ]
            break
    return gpus or []


def _versions():
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def _mem_total_gb():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def machine_info():
    """Returns a dict labelling the machine, library versions and date (UTC)."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    gpus = _gpu_names()
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"
        ),
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": affinity,
        "memory_gb": _mem_total_gb(),
        "gpus": gpus,
        "device": gpus[0] if gpus else f"CPU only ({_cpu_model()})",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "thread_env": {
            k: os.environ[k]
            for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "XLA_FLAGS",
                      "TF_NUM_INTRAOP_THREADS")
            if k in os.environ
        },
        "platform": platform.platform(),
        "versions": _versions(),
    }


def passive_openmp_on_shared_machine():
    """Sets `OMP_WAIT_POLICY=PASSIVE` (unless set) for this process and its workers.

    PyTorch's OpenMP threads spin while they wait. On this project's 2-core VM shared
    with other jobs (load average 9) that made the PyTorch PreActResNet-164 step 40x
    slower: 0.5 against 22 images/s at batch 16, 2 threads, measured back to back
    (2026-12-01). Passive waiting keeps the thread count and treats every torch process
    alike (the torch Keras backend and native PyTorch); TensorFlow and JAX use their
    own thread pools. Recorded in `machine_info()["thread_env"]`.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# --------------------------------------------------------------------------- memory


def peak_rss_mb():
    """Peak resident set size of this process so far, in MiB (Linux ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def accelerator_memory(framework):
    """Peak accelerator memory for `framework` ("tensorflow"|"jax"|"torch").

    Returns:
        `(peak_mib, label)`, or `(None, None)` when the framework runs on CPU.
    """
    if framework == "torch":
        import torch

        if torch.cuda.is_available():
            return (
                torch.cuda.max_memory_allocated() / 2**20,
                "GPU peak (torch.cuda.max_memory_allocated)",
            )
    elif framework == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform != "cpu":
            stats = device.memory_stats() or {}
            if "peak_bytes_in_use" in stats:
                return (
                    stats["peak_bytes_in_use"] / 2**20,
                    "GPU peak (jax memory_stats peak_bytes_in_use)",
                )
    elif framework == "tensorflow":
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            info = tf.config.experimental.get_memory_info("GPU:0")
            return info["peak"] / 2**20, "GPU peak (tf get_memory_info)"
    return None, None


def memory_report(framework, rss_before_mb):
    """Dict with the peak memory figure for this process and how it was measured."""
    peak, label = accelerator_memory(framework)
    if peak is not None:
        return {
            "peak_memory_mb": round(peak, 1),
            "memory_kind": label,
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
    peak = peak_rss_mb()
    return {
        "peak_memory_mb": round(peak, 1),
        "memory_kind": "process peak RSS (CPU)",
        "peak_rss_mb": round(peak, 1),
        "rss_before_mb": round(rss_before_mb, 1) if rss_before_mb else None,
    }


# --------------------------------------------------------------------------- timing


def time_calls(fn, warmup, steps):
    """Calls `fn` `warmup` times untimed, then `steps` times timed.

    `fn` must block until its work is done (return a host value). Returns a dict with
    the first call's time (includes tracing/compilation), the per-step times and median.
    """
    first = None
    for i in range(max(warmup, 1)):
        t0 = time.perf_counter()
        fn()
        if i == 0:
            first = time.perf_counter() - t0
    times = []
    cpu0 = _cpu_seconds()
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    cpu_per_step = (_cpu_seconds() - cpu0) / max(steps, 1)
    return {
        "first_call_s": round(first, 3),
        "step_times_s": [round(t, 5) for t in times],
        "median_step_s": statistics.median(times),
        # Process CPU time (all threads, user+sys) per timed step: less sensitive
        # than wall time to other load on a shared machine.
        "cpu_s_per_step": round(cpu_per_step, 4),
    }


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def keras_precision_policy(precision, mixed_policy):
    """Keras dtype-policy name for a benchmark precision ("float32"|"mixed")."""
    if precision == "float32":
        return "float32"
    if precision == "mixed":
        return mixed_policy
    raise ValueError(
        f"Unknown precision={precision!r}. Expected one of ['float32', 'mixed']."
    )


def keras_gmacs_per_image(model):
    """Multiply-accumulates of one image through `model`'s convs and dense layers,
    in billions, from each layer's built input shape (nested layers included).

    Two models with the same parameter count can differ in work: ResNet50V2 strides
    at the end of each stage, the paper's net at the start, so ours does ~17% more.
    """
    import keras

    total = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            continue
        output_shape = layer.compute_output_shape(layer.get_build_config()["input_shape"])
        positions = 1
        if isinstance(layer, keras.layers.Conv2D):
            spatial = output_shape[1:-1] if layer.data_format == "channels_last" else (
                output_shape[2:]
            )
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

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
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
    """Entry point of a worker process: `script.py --worker '<json config>'`."""
    config = json.loads(sys.argv[sys.argv.index("--worker") + 1])
    try:
        result = run_config(config)
    except Exception as e:  # noqa: BLE001 - reported, not swallowed
        result = dict(config, status="error", error=f"{type(e).__name__}: {e}")
        traceback.print_exc()
    sys.stdout.flush()
    print(RESULT_MARKER + json.dumps(result), flush=True)


def run_isolated(script, config, timeout_s, env=None, stream_stderr=False):
    """Runs one config in a fresh process (clean peak-memory counters).

    `stream_stderr=True` lets the worker's stderr (its progress lines) through to
    this process's stderr instead of capturing it, for runs that last hours.

    Returns the worker's result dict, or an error dict on crash / timeout.
    """
    cmd = [sys.executable, script, "--worker", json.dumps(config)]
    full_env = dict(os.environ, **(env or {}))
    full_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd,
            stdout=subprocess.PIPE,
            stderr=None if stream_stderr else subprocess.PIPE,
            text=True,
            timeout=timeout_s,
            env=full_env,
        )
    except subprocess.TimeoutExpired:
        return dict(config, status="error", error=f"timeout after {timeout_s}s")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            result = json.loads(line[len(RESULT_MARKER):])
            wall = round(time.perf_counter() - t0, 1)
            for r in result if isinstance(result, list) else [result]:
                r["process_wall_s"] = wall
            return result
    tail = (proc.stdout + (proc.stderr or ""))[-2000:]
    return dict(config, status="error", error=f"worker rc={proc.returncode}: {tail}")


def run_configs(
    script, configs, run_config, isolate, timeout_s, log=True, on_result=None, rounds=1,
    env_for=None,
):
    """Runs every config (isolated or in-process); returns the list of result rows.

    With `rounds > 1` the whole list runs that many times, round-robin (A, B, A, B),
    so a slow spell on a shared machine hits every config alike; the rows of one
    config are then merged by `merge_rounds`. `on_result(results_so_far)` is called
    after each config, so callers can rewrite their output files and an interrupted
    run keeps what it measured. `env_for(config)` gives an isolated config's extra
    environment variables (e.g. its `KERAS_BACKEND`).
    """
    per_round = []
    total = len(configs) * rounds
    for round_index in range(rounds):
        results = []
        per_round.append(results)
        for i, config in enumerate(configs):
            label = " ".join(f"{k}={v}" for k, v in config.items() if k != "suite")
            if log:
                n = round_index * len(configs) + i + 1
                print(f"[{n}/{total}] {label}", file=sys.stderr, flush=True)
            if isolate:
                env = env_for(config) if env_for else None
                result = run_isolated(script, config, timeout_s, env=env)
            else:
                try:
                    result = run_config(config)
                except Exception as e:  # noqa: BLE001
                    result = dict(config, status="error", error=f"{type(e).__name__}: {e}")
            rows = result if isinstance(result, list) else [result]
            if log:
                for row in rows:
                    _log_row(row)
            results.extend(rows)
            if on_result is not None:
                on_result(merge_rounds(per_round))
    return merge_rounds(per_round)


def _log_row(row):
    summary = row.get("error") or {
        k: row[k]
        for k in ("runtime", "batch", "images_per_s", "latency_ms", "peak_memory_mb", "build_s")
        if k in row
    }
    print(f"    -> {row.get('status')}: {summary}", file=sys.stderr, flush=True)


# The figure each suite reports first; merged rows keep the round with its median.
PRIMARY_METRICS = ("images_per_s", "latency_ms", "build_s")


def merge_rounds(per_round):
    """Merges the rows of repeated rounds into one row per measurement.

    Rows are matched by position within their round (every round runs the same
    configs in the same order). The merged row is the round whose primary figure
    (images/s, else latency, else build time) is the median, plus `rounds` (how
    many succeeded) and `round_values` (that figure in every successful round), so
    the spread stays visible. A measurement that failed in every round keeps its
    last error.
    """
    if len(per_round) == 1:
        return list(per_round[0])
    merged = []
    # zip_longest: while a later round is under way, the configs it has not reached
    # yet keep their earlier rounds (so an interrupted run loses nothing).
    for rows in itertools.zip_longest(*per_round):
        rows = [r for r in rows if r is not None]
        ok = [r for r in rows if r.get("status") == "ok"]
        if not ok:
            merged.append(rows[-1])
            continue
        metric = next((m for m in PRIMARY_METRICS if m in ok[0]), None)
        if metric is None:
            merged.append(ok[-1])
            continue
        ordered = sorted(ok, key=lambda r: r[metric])
        row = dict(ordered[(len(ordered) - 1) // 2])
        row["rounds"] = len(ok)
        row["round_values"] = {metric: [r[metric] for r in ok]}
        merged.append(row)
    return merged


# --------------------------------------------------------------------------- output


def _load_io():
    """`keras_preact/io.py` loaded by path: importing the package would import Keras
    (and its default backend), which the drivers and the GPU machine must not."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_keras_preact_io", os.path.join(REPO_ROOT, "keras_preact", "io.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_io = _load_io()
atomic_path = _io.atomic_path
atomic_write = _io.atomic_write


def write_outputs(report, output=None, markdown=None):
    from markdown_report import compare_train

    if "train" in report["suites"]:
        train = report["suites"]["train"]
        train["comparisons"] = compare_train(train["results"])
    if output:
        atomic_write(output, json.dumps(report, indent=2, sort_keys=False) + "\n")
    if markdown:
        from markdown_report import render_markdown

        atomic_write(markdown, render_markdown(report))


def check_backends(parser, backends):
    """The comma-separated `--backends` as a list; `parser.error` names an unknown one."""
    names = backends.split(",")
    for b in names:
        if b not in BACKENDS:
            parser.error(f"Unknown backend {b!r}. Expected one of {list(BACKENDS)}.")
    return names


def add_common_args(parser):
    parser.add_argument("--output", help="write results as JSON to this path")
    parser.add_argument("--markdown", help="write results as a Markdown table to this path")
    parser.add_argument(
        "--quick", action="store_true", help="few steps and small batches (CI/CPU)"
    )
    parser.add_argument(
        "--no-isolate",
        dest="isolate",
        action="store_false",
        help="run every config in this process (peak memory is then cumulative)",
    )
    parser.add_argument(
        "--timeout", type=int, default=900, help="seconds per isolated config"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the whole config list this many times, interleaved, and keep each "
        "config's median round (for noisy shared machines)",
    )
    return parser


def new_parser(description):
    return argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )


def current_backend():
    return os.environ.get("KERAS_BACKEND") or _keras_config_backend()


def _keras_config_backend():
    path = os.path.join(
        os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "keras.json"
    )
    try:
        with open(path) as f:
            return json.load(f).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def run_suite(suite, script, args, configs, run_config, backend, extra_settings=None):
    """Runs `configs`, rewriting `args.output`/`args.markdown` after every config."""
    extra = dict(extra_settings or {}, keras_backend=backend)

    def save(results):
        write_outputs(make_report(suite, args, results, extra), args.output, args.markdown)

    results = run_configs(
        script,
        configs,
        run_config,
        args.isolate,
        args.timeout,
        on_result=save,
        rounds=getattr(args, "rounds", 1),
    )
    report = make_report(suite, args, results, extra)
    write_outputs(report, args.output, args.markdown)
    return report


def make_report(suite, args, results, extra_settings=None):
    settings = {
        k: v
        for k, v in vars(args).items()
        if k not in ("output", "markdown", "plan", "depth_list")
    }
    settings.update(extra_settings or {})
    return {
        "machine": machine_info(),
        "suites": {suite: {"settings": settings, "results": results}},
    }


def script_main(suite, script, parse_args, build_configs, run_config, argv=None):
    """`main` of a suite script: a worker when the command line has `--worker`,
    else parses `argv`, runs the suite's configs and writes the report."""
    if argv is None and "--worker" in sys.argv:
        worker_main(run_config)
        return None
    args = parse_args(argv)
    backend = current_backend()
    return run_suite(suite, script, args, build_configs(args, backend), run_config, backend)
