"""How does training scale from one worker process to several (multi-worker)?

For each backend (TensorFlow: MultiWorkerMirroredStrategy; JAX: jax.distributed +
keras.distribution.DataParallel), trains the same model on the same global batch:

- 1 worker: one process, `setup_distribution("none")`;
- N workers: `python -m keras_preact.launch --workers N` on 127.0.0.1, each worker
  one CPU device and `setup_distribution("multiworker")`, so each computes
  `global_batch / N` images per step and the gradients are all-reduced.

What is timed: `model.fit` on synthetic CIFAR-shaped data (random normal 32x32x3
images, random labels, a repeated in-memory tf.data pipeline), the paper's optimizer
(`compile_for_paper`); the wall time from the end of step `--warmup` to the end of step
`--warmup + --steps` on the chief; images/s = global batch x steps / that time.

On one machine the N workers share its cores, so this measures the multi-worker
overhead, not the speed-up of N hosts.

Example:
    python benchmarks/multiworker_scaling.py --backends tensorflow jax --rounds 3
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

SCRIPT = os.path.abspath(__file__)
MARKER = "MULTIWORKER_RESULT "


def worker(args):
    """One training process; the chief prints MARKER + a JSON result."""
    import numpy as np

    import keras

    keras.utils.set_random_seed(0)
    from keras_preact.training import compile_for_paper
    from keras_preact.training import setup_distribution

    setup = setup_distribution(args.distribute)
    import tensorflow as tf

    import keras_preact

    with setup.scope():
        model = keras_preact.PreActResNet(args.depth, layout="cifar", classes=100,
                                          input_shape=(32, 32, 3))
        compile_for_paper(model, 0.1)
    rng = np.random.default_rng(0)
    n = args.global_batch * 8
    x = rng.normal(size=(n, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 100, size=n)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(
        args.global_batch, drop_remainder=True).repeat()
    ends = []

    class StepTimes(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            ends.append(time.perf_counter())

    total = args.warmup + args.steps
    model.fit(data, epochs=1, steps_per_epoch=total, verbose=0, shuffle=False,
              callbacks=[StepTimes()])
    seconds = ends[total - 1] - ends[args.warmup - 1]
    if setup.is_chief:
        print(MARKER + json.dumps({
            "workers": setup.num_workers, "replicas": setup.num_replicas,
            "img_per_s": args.global_batch * args.steps / seconds,
            "s_per_step": seconds / args.steps,
        }), flush=True)


def run_case(backend, workers, args):
    """Runs one case in fresh processes; returns the chief's result dict."""
    body = [sys.executable, SCRIPT, "--worker", "--depth", str(args.depth),
            "--global-batch", str(args.global_batch), "--warmup", str(args.warmup),
            "--steps", str(args.steps)]
    if workers == 1:
        command = body + ["--distribute", "none"]
    else:
        command = [sys.executable, "-m", "keras_preact.launch", "--workers", str(workers),
                   "--backend", backend, "--grace-seconds", "10", "--",
                   *body, "--distribute", "multiworker"]
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=_common.REPO_ROOT)
    proc = subprocess.run(command, env=env, cwd=_common.REPO_ROOT, capture_output=True,
                          text=True, timeout=args.timeout)
    for line in proc.stdout.splitlines():
        if MARKER in line:
            return json.loads(line.split(MARKER, 1)[1])
    raise RuntimeError(f"{backend} x{workers} failed (exit {proc.returncode}):\n"
                       + (proc.stdout + proc.stderr)[-3000:])


def markdown(report):
    s = report["settings"]
    table = []
    for backend, rows in report["results"].items():
        base = rows.get("1", {}).get("median")
        for workers, row in rows.items():
            table.append([backend, workers, row["median"],
                          ", ".join(f"{v:.1f}" for v in row["img_per_s"]),
                          f"{row['median'] / base:.2f}x" if base else "-"])
    return "\n".join([
        "### Multi-worker training on one machine, images/s",
        "",
        *_common.report_lines(report),
        "",
        _common.markdown_table(["backend", "workers", "images/s (median)", "rounds",
                                "vs 1 worker"], table),
        "",
        f"PreActResNet-{s['depth']} (CIFAR layout, 100 classes), global batch "
        f"{s['global_batch']}, {s['steps']} timed steps after {s['warmup']} warm-up "
        f"steps, median of {s['rounds']} rounds; the workers share the machine's cores.",
    ]) + "\n"


def build_parser():
    parser = _common.new_parser(__doc__)
    positive = _common.positive_int
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"],
                        choices=("tensorflow", "jax"))
    parser.add_argument("--workers", type=positive, nargs="+", default=[1, 2])
    parser.add_argument("--depth", type=positive, default=20)
    parser.add_argument("--global-batch", type=positive, default=64)
    parser.add_argument("--warmup", type=positive, default=5)
    parser.add_argument("--steps", type=positive, default=20)
    parser.add_argument("--rounds", type=positive, default=2)
    parser.add_argument("--timeout", type=positive, default=900, help="seconds per case")
    parser.add_argument("--output", help="write the report as JSON to this path")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--distribute", default="none", help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    for w in args.workers:
        if args.global_batch % w:
            parser.error(f"--global-batch {args.global_batch} must be a multiple of "
                         f"every --workers value (got {w})")
    machine = _common.machine_info()
    results = {}
    for backend in args.backends:
        results[backend] = {}
        for workers in args.workers:
            values = []
            for r in range(args.rounds):
                row = run_case(backend, workers, args)
                values.append(row["img_per_s"])
                _common.progress(f"{backend} workers={workers} round {r}: "
                                 f"{row['img_per_s']:.1f} img/s")
            results[backend][str(workers)] = {"img_per_s": values,
                                              "median": statistics.median(values)}
    report = {
        "suite": "multiworker_scaling",
        "command": _common.command_line(SCRIPT, argv),
        "machine": machine,
        "settings": {k: getattr(args, k) for k in
                     ("depth", "global_batch", "warmup", "steps", "rounds", "workers")},
        "results": results,
    }
    if args.output:
        _common.atomic_write(args.output, json.dumps(report, indent=1) + "\n")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
