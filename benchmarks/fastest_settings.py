"""The fastest training settings per Keras backend and precision, by measurement.

For each backend (one process each) and precision (float32; mixed = `--mixed-policy`,
mixed_bfloat16 by default), PreActResNet-164 at CIFAR shapes trains on synthetic data
with every combination of:
- `jit_compile` on / off (XLA on TensorFlow; JAX with jit only, op-by-op JAX being ~20x
  slower in the smoke run; the torch backend runs eager only:
  `torch.compile` of a Keras ResNet training step took over 8 minutes to compile on this
  CPU, docs/benchmarks.md),
- data format channels_last / channels_first,
then, for the winner of each precision, `steps_per_execution` 1 against `--spe`
(TensorFlow and JAX; Keras' torch backend refuses steps_per_execution > 1). The winner
is the fastest of the settings that beat Keras' defaults (`jit_compile="auto"`,
channels_last, steps_per_execution 1) in every round (paired: round i of every setting
saw the same load) and by `--min-gain` (5%) in the median; without one, the defaults
stay. The figure of a setting is the median of its rounds.

All models of one backend live in one process and are timed in interleaved rounds
(A, B, C, A, B, C, ...), so a slow spell on a shared machine hits them alike; the figure
is the median round. One round of one model is one `model.fit` epoch over `--steps`
batches, timed from the end of its first execution to the end of its last
(`train_throughput.fit_images_per_s`), so compilation and set-up are left out.

The JSON and Markdown give every figure, the winners and the machine.
`keras_preact/training/defaults.py` holds the chosen table with this file's name.

Example:
    python benchmarks/fastest_settings.py --output benchmarks/results/x.json \\
        --markdown benchmarks/results/x.md
    python benchmarks/fastest_settings.py --quick --depth 20 --backends jax   # smoke
"""

import itertools
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

SCRIPT = os.path.abspath(__file__)
FORMATS = ("channels_last", "channels_first")


def _candidates(backend, precisions):
    jits = (False,) if backend == "torch" else (True, False)
    return [
        dict(precision=p, jit=j, data_format=f, steps_per_execution=1)
        for p, j, f in itertools.product(precisions, jits, FORMATS)
        # JAX without jit dispatches op by op: 2.7 against 62 images/s for
        # PreActResNet-20 at batch 2 (smoke run, 2026-12-01, load 3-9); left out.
        if not (backend == "jax" and not j)
    ]


def _label(c):
    return f"{c['precision']} jit={c['jit']} {c['data_format']} spe={c['steps_per_execution']}"


def _measure(config, candidates, steps, models):
    """Builds every candidate (or takes it from `models`, keyed by `_label`, where
    it is added), then times them in interleaved rounds of `steps` batches.

    Returns one row per candidate (status "ok" with `images_per_s`, the median round,
    and `round_values`; or status "error")."""
    import train_throughput

    rows, live = [], []
    for cand in candidates:
        full = dict(config, **cand, model="keras_preact", layout="cifar", image_size=32,
                    classes=10)
        row = dict(cand, status="ok", round_values=[])
        try:
            if _label(cand) not in models:
                models[_label(cand)] = train_throughput.compiled_keras_model(full)[0]
            model = models[_label(cand)]
            x, y = train_throughput.synthetic_data(full, steps)
            # Warm-up: compilation (and, eager, every op's first call).
            n = 2 * full["batch"] * cand["steps_per_execution"]
            train_throughput.fit_images_per_s(model, x[:n], y[:n], full["batch"])
            live.append((row, model, x, y))
        except Exception as e:  # noqa: BLE001 - recorded: an unsupported setting
            row.update(status="error", error=f"{type(e).__name__}: {str(e)[:300]}")
        rows.append(row)
        print(f"  built {_label(cand)}: {row['status']}", file=sys.stderr, flush=True)
    for r in range(config["rounds"]):
        for row, model, x, y in live:
            try:
                rate = train_throughput.fit_images_per_s(model, x, y, config["batch"])
                row["round_values"].append(round(rate, 2))
            except Exception as e:  # noqa: BLE001
                row.update(status="error", error=f"{type(e).__name__}: {str(e)[:300]}")
            print(f"  round {r + 1} {_label(row)}: {row['round_values']}",
                  file=sys.stderr, flush=True)
    for row in rows:
        if row["status"] == "ok":
            row["images_per_s"] = round(statistics.median(row["round_values"]), 2)
    return rows


# Keras' own choice when `jit_compile="auto"`: XLA on JAX, not on a CPU-only TensorFlow,
# eager on torch (keras.src.trainers.trainer._resolve_auto_jit_compile).
KERAS_AUTO_JIT_ON_CPU = {"tensorflow": False, "jax": True, "torch": False}


def _beats(row, baseline, min_gain):
    """`row` is faster than `baseline` in every round (rounds are interleaved, so
    round i of both saw the same load) and by `min_gain` in the median."""
    pairs = list(zip(row["round_values"], baseline["round_values"]))
    return (bool(pairs) and all(a > b for a, b in pairs)
            and row["images_per_s"] >= baseline["images_per_s"] * (1 + min_gain))


def _best(rows, precision, backend, min_gain):
    """The fastest ok row of `precision` among those that beat Keras' defaults (auto
    jit, channels_last, steps_per_execution 1) per `_beats`; else the defaults' row,
    so noise on a shared machine does not change a default."""
    ok = [r for r in rows if r["precision"] == precision and r["status"] == "ok"]
    default = next((r for r in ok if r["jit"] == KERAS_AUTO_JIT_ON_CPU[backend]
                    and r["data_format"] == "channels_last"
                    and r["steps_per_execution"] == 1), None)
    if default is None:
        return max(ok, key=lambda r: r["images_per_s"], default=None)
    better = [r for r in ok if _beats(r, default, min_gain)]
    return max(better, key=lambda r: r["images_per_s"], default=default)


def run_backend(config):
    """Worker: both stages for the backend of this process."""
    import keras

    backend = keras.backend.backend()
    models = {}
    stage1 = _measure(config, _candidates(backend, config["precisions"]), config["steps"],
                      models)
    stage2 = []
    if backend != "torch" and config["spe"] > 1:
        spe_candidates = []
        for precision in config["precisions"]:
            best = _best(stage1, precision, backend, config["min_gain"])
            if best is not None:
                base = {k: best[k] for k in ("precision", "jit", "data_format")}
                spe_candidates += [dict(base, steps_per_execution=n) for n in (1, config["spe"])]
        # Two executions of the larger value at least; the same batches for every spe.
        stage2 = _measure(config, spe_candidates, max(config["steps"], 2 * config["spe"]),
                          models)
    result = dict(config, status="ok", backend=backend, stage1=stage1, stage2=stage2)
    return dict(result, chosen=choose(result, config["min_gain"]))


def choose(result, min_gain):
    """Per precision: the stage-1 winner (`_best`), with steps_per_execution > 1 only
    when stage 2 measured it on that same setting more than `min_gain` faster than 1."""
    chosen = {}
    for precision in result["precisions"]:
        winner = _best(result["stage1"], precision, result["backend"], min_gain)
        if winner is None:
            continue
        same = {r["steps_per_execution"]: r for r in result["stage2"] if r["status"] == "ok"
                and all(r[k] == winner[k] for k in ("precision", "jit", "data_format"))}
        if 1 in same:
            better = [r for r in same.values() if _beats(r, same[1], min_gain)]
            winner = max(better, key=lambda r: r["images_per_s"], default=same[1])
        chosen[precision] = {
            "jit_compile": winner["jit"],
            "data_format": winner["data_format"],
            "steps_per_execution": winner["steps_per_execution"],
            "images_per_s": winner["images_per_s"],
            "spe_measured": bool(same),
        }
    return chosen


# --------------------------------------------------------------------------- report


def _table(rows):
    lines = ["| precision | jit_compile | data format | steps/execution | images/s | rounds |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        value = r.get("images_per_s", r.get("error", "")[:120])
        rounds = " / ".join(f"{v:.1f}" for v in r.get("round_values", []))
        lines.append(f"| {r['precision']} | {r['jit']} | {r['data_format']} | "
                     f"{r['steps_per_execution']} | {value} | {rounds} |")
    return lines


def render_markdown(report):
    m, s = report["machine"], report["settings"]
    lines = [
        "# Fastest training settings (benchmarks/fastest_settings.py)", "",
        f"- Date: {m['date_utc']}",
        f"- CPU: {m['cpu']}, {m['cpu_cores_usable']} cores usable; GPU: "
        f"{', '.join(m['gpus']) or 'none'}",
        f"- Load average at start: {m['load_average_at_start']}; at end: "
        f"{report['load_average_at_end']}; threads: "
        f"{m['thread_env'] or 'framework defaults'}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        f"- PreActResNet-{s['depth']}, CIFAR 32x32, 10 classes, batch {s['batch']}, "
        f"{s['steps']} steps per round ({s['rounds']} interleaved rounds, median kept), "
        f"mixed = {s['mixed_policy']}; images/s from the end of a fit's first execution "
        "to the end of its last. Chosen: the fastest of the settings faster than Keras' "
        "defaults (auto jit: off on a CPU-only TensorFlow, on for JAX, eager torch; "
        "channels_last; steps_per_execution 1) in every round and by "
        f"{s['min_gain']:.0%} in the median; else the defaults.", "",
        "## Chosen", "",
        "| backend | precision | jit_compile | data format | steps/execution | images/s |",
        "|---|---|---|---|---|---|",
    ]
    for backend, res in report["backends"].items():
        for precision, c in res.get("chosen", {}).items():
            lines.append(f"| {backend} | {precision} | {c['jit_compile']} | {c['data_format']}"
                         f" | {c['steps_per_execution']} | {c['images_per_s']} |")
    for backend, res in report["backends"].items():
        lines += ["", f"## {backend}", ""]
        if "run" in res:
            run = res["run"]
            start, end = run["load_average_at_start"], run["load_average_at_end"]
            lines += [f"Run separately: {run['date_utc']}, load average {start} at start, "
                      f"{end} at end, threads {run['thread_env'] or 'framework defaults'}.",
                      ""]
        if res.get("status") != "ok":
            lines.append(f"Failed: `{res.get('error', '')[:500]}`")
            continue
        lines += ["jit_compile x data format, steps_per_execution 1:", ""]
        lines += _table(res["stage1"])
        if res["stage2"]:
            lines += ["", "steps_per_execution on the winner (its own interleaved rounds):", ""]
            lines += _table(res["stage2"])
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = _common.new_parser(__doc__.split("\n")[0])
    parser.add_argument("--output", help="JSON report path")
    parser.add_argument("--markdown", help="Markdown report path")
    parser.add_argument("--backends", default=",".join(_common.BACKENDS))
    parser.add_argument("--precisions", default="float32,mixed")
    parser.add_argument("--mixed-policy", default="mixed_bfloat16",
                        choices=("mixed_bfloat16", "mixed_float16"))
    parser.add_argument("--depth", type=int, default=None, help="default 164 (quick: 20)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6, help="batches per round and model")
    parser.add_argument("--spe", type=int, default=8,
                        help="steps_per_execution compared with 1 on the winner")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--min-gain", type=float, default=0.05,
                        help="a setting replaces Keras' default only when this much faster")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: depth 20 unless --depth is given, batch 2, "
                             "2 steps, spe 2, one round (add --backends jax for one backend)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per backend")
    parser.add_argument("--rechoose", metavar="JSON", nargs="+",
                        help="choose again from finished reports' rows (no measuring); "
                             "later files' backends replace the first's")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.steps, args.spe, args.rounds = 2, 2, 2, 1
    if args.depth is None:
        args.depth = 20 if args.quick else 164
    _common.check_backends(parser, args.backends)
    for p in args.precisions.split(","):
        if p not in ("float32", "mixed"):
            parser.error(f"Unknown precision {p!r}. Expected ['float32', 'mixed'].")
    if args.steps < 2 or args.spe < 1:
        parser.error(f"--steps must be >= 2 and --spe >= 1; got {args.steps}, {args.spe}")
    return args


def main(argv=None):
    if argv is None and "--worker" in sys.argv:
        return _common.worker_main(run_backend)
    args = parse_args(argv)
    _common.passive_openmp_on_shared_machine()
    if args.rechoose:
        return rechoose(args)
    settings = {k: v for k, v in vars(args).items()
                if k not in ("output", "markdown", "rechoose")}
    config = dict(settings, precisions=args.precisions.split(","))
    report = {"machine": _common.machine_info(), "settings": settings, "backends": {}}

    def save():
        report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        if args.output:
            _common.atomic_write(args.output, json.dumps(report, indent=1) + "\n")
        if args.markdown:
            _common.atomic_write(args.markdown, render_markdown(report))

    for backend in args.backends.split(","):
        print(f"[{backend}]", file=sys.stderr, flush=True)
        config["backend"] = backend
        report["backends"][backend] = _common.run_isolated(
            SCRIPT, config, args.timeout, env={"KERAS_BACKEND": backend}, stream_stderr=True
        )
        save()
    save()
    return report


def rechoose(args):
    """Applies `choose` with `--min-gain` to the rows of finished reports (JSON): the
    first file, with the backends of later files replacing its own (each keeps its
    run's date and load as "run"); writes `--output` (default: the first file) and
    `--markdown`. Nothing is measured again."""
    reports = []
    for path in args.rechoose:
        with open(path) as f:
            reports.append(json.load(f))
    report = reports[0]
    for other in reports[1:]:
        for backend, result in other["backends"].items():
            result["run"] = {k: other["machine"][k] for k in ("date_utc",
                             "load_average_at_start", "thread_env")}
            result["run"]["load_average_at_end"] = other.get("load_average_at_end")
            report["backends"][backend] = result
    report["settings"]["min_gain"] = args.min_gain
    for result in report["backends"].values():
        if result.get("status") == "ok":
            for row in result["stage1"] + result["stage2"]:
                if row["status"] == "ok":
                    row["images_per_s"] = round(statistics.median(row["round_values"]), 2)
            result["chosen"] = choose(result, args.min_gain)
    _common.atomic_write(args.output or args.rechoose[0], json.dumps(report, indent=1) + "\n")
    if args.markdown:
        _common.atomic_write(args.markdown, render_markdown(report))
    return report


if __name__ == "__main__":
    main()
