"""Runs the benchmark suites once per Keras backend (each in a subprocess) and merges.

Every suite script benchmarks the backend named by `KERAS_BACKEND`; this driver sets it
per run, collects each run's JSON, and writes one merged JSON + Markdown report (rewritten
after every finished run, so an interrupted run keeps what it measured). The PyTorch
reference runs once, with the torch backend's training suite (or the first backend's).

Example:
    python benchmarks/run_all.py --quick --output results.json --markdown results.md
    python benchmarks/run_all.py --backends jax,torch --suites train \
        --train-args "--precisions mixed --jit on" --output gpu.json --markdown gpu.md
"""

import json
import os
import shlex
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SUITES = {
    "train": "train_throughput.py",
    "inference": "inference.py",
    "build": "build_time.py",
    "remat": "remat.py",
}


def merge(reports):
    """Merges per-backend reports: results concatenated, settings kept per backend."""
    merged = {"machine": None, "suites": {}}
    for backend, report in reports:
        merged["machine"] = merged["machine"] or report["machine"]
        for suite, body in report["suites"].items():
            target = merged["suites"].setdefault(
                suite, {"settings": {"per_backend": {}}, "results": []}
            )
            target["settings"]["per_backend"][backend] = body["settings"]
            target["results"].extend(body["results"])
    return merged


def parse_args(argv=None):
    parser = _common.new_parser(__doc__.split("\n")[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--suites", default="train,inference,build,remat")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="passed to every suite: interleaved repeats, median kept",
    )
    parser.add_argument("--output", default="benchmark_results.json")
    parser.add_argument("--markdown", default="benchmark_results.md")
    parser.add_argument("--workdir", help="per-run JSON files; default: a temp folder")
    parser.add_argument("--no-torch-reference", dest="torch_reference", action="store_false")
    for suite in SUITES:
        parser.add_argument(
            f"--{suite}-args", default="", help=f"extra arguments for {SUITES[suite]}"
        )
    parser.add_argument(
        "--backend-args",
        action="append",
        default=[],
        metavar="BACKEND:SUITE:ARGS",
        help="arguments for one suite on one backend, after --SUITE-args (so they win), "
        "e.g. 'torch:train:--jit off'; repeatable",
    )
    args = parser.parse_args(argv)
    args.per_backend_args = {}
    for item in args.backend_args:
        backend, _, rest = item.partition(":")
        suite, _, extra = rest.partition(":")
        if backend not in _common.BACKENDS or suite not in SUITES:
            parser.error(
                f"Invalid --backend-args={item!r}. Expected BACKEND:SUITE:ARGS with BACKEND "
                f"in {list(_common.BACKENDS)} and SUITE in {list(SUITES)}."
            )
        args.per_backend_args.setdefault((backend, suite), []).extend(shlex.split(extra))
    _common.check_backends(parser, args.backends)
    for s in args.suites.split(","):
        if s not in SUITES:
            parser.error(f"Unknown suite {s!r}. Expected one of {list(SUITES)}.")
    return args


def main(argv=None):
    args = parse_args(argv)
    backends = args.backends.split(",")
    suites = args.suites.split(",")
    workdir = args.workdir or tempfile.mkdtemp(prefix="kp_bench_")
    os.makedirs(workdir, exist_ok=True)
    torch_ref_backend = "torch" if "torch" in backends else backends[0]
    reports, failures = [], []
    for suite in suites:
        for backend in backends:
            out = os.path.join(workdir, f"{suite}_{backend}.json")
            cmd = [sys.executable, os.path.join(HERE, SUITES[suite]), "--output", out]
            if args.quick:
                cmd.append("--quick")
            if args.rounds > 1:
                cmd += ["--rounds", str(args.rounds)]
            if suite == "train" and args.torch_reference and backend == torch_ref_backend:
                cmd.append("--torch-reference")
            cmd += shlex.split(getattr(args, f"{suite}_args"))
            cmd += args.per_backend_args.get((backend, suite), [])
            env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
            print(f"== {suite} on {backend}: {shlex.join(cmd)}", file=sys.stderr, flush=True)
            proc = subprocess.run(cmd, env=env)
            if proc.returncode != 0 or not os.path.exists(out):
                failures.append(f"{suite}/{backend}: rc={proc.returncode}")
                continue
            with open(out) as f:
                reports.append((backend, json.load(f)))
            merged = merge(reports)
            merged["failures"] = failures
            _common.write_outputs(merged, args.output, args.markdown)
    if not reports:
        print("No suite produced results.", file=sys.stderr)
        return 1
    print(f"Wrote {args.output} and {args.markdown}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
