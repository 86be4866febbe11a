"""What does remat=True save: peak memory and speed of a deep PreActResNet with and without it?

keras_preact.PreActResNet(depth, remat=True) runs every residual unit under
keras.remat: its activations are recomputed in the backward pass instead of kept.
For each Keras backend and depth, trains the CIFAR-layout network (32x32, 10 classes)
with remat off and on, each in its own process, the way train_throughput.py does
(median train_on_batch step after warm-up; Keras' jit_compile="auto" unless
--jit-compile says otherwise), and prints the peak memory and images/s of both. On a
GPU the peak is the allocator's; on a CPU it is the process peak RSS, which includes
the framework's runtime: compare the two columns, not absolute values.

Example:
    python benchmarks/remat.py --backends torch --depths 1001 --batches 4
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import train_throughput  # noqa: E402

SCRIPT = os.path.abspath(__file__)


def build_parser():
    positive = _common.positive_int
    parser = _common.new_parser(__doc__)
    _common.add_backends_argument(parser)
    parser.add_argument("--depths", nargs="+", type=positive, default=[164, 1001])
    parser.add_argument("--batches", nargs="+", type=positive, default=[16, 4],
                        help="one batch size, or one per depth")
    parser.add_argument("--precision", choices=("float32", "mixed_bfloat16"),
                        default="float32")
    parser.add_argument("--jit-compile", choices=tuple(train_throughput.JIT_COMPILE),
                        default="auto")
    parser.add_argument("--warmup", type=positive, default=2)
    parser.add_argument("--steps", type=positive, default=3)
    parser.add_argument("--timeout", type=positive, default=1800,
                        help="seconds per configuration")
    parser.add_argument("--output", help="write the report as JSON to this path")
    return parser


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if len(args.batches) == 1:
        args.batches = args.batches * len(args.depths)
    if len(args.batches) != len(args.depths):
        parser.error(f"--batches {args.batches} must give one batch size or one per "
                     f"depth of --depths {args.depths}.")
    return args


def build_configs(args):
    return [
        dict(model="preact", runtime=backend, layout="cifar", depth=depth, image_size=32,
             classes=10, batch=batch, precision=args.precision, remat=remat,
             jit_compile=train_throughput.JIT_COMPILE[args.jit_compile],
             warmup=args.warmup, steps=args.steps)
        for backend in args.backends
        for depth, batch in zip(args.depths, args.batches)
        for remat in (False, True)
    ]


def render(report):
    pairs = {}
    for row in report["rows"]:
        pairs.setdefault((row["runtime"], row["depth"], row["batch"]), {})[
            row["remat"]] = row
    table, errors = [], []
    for (backend, depth, batch), pair in pairs.items():
        cells = []
        for key in ("images_per_s", "peak_memory_mib"):
            off, on = (pair.get(remat, {}).get(key) for remat in (False, True))
            ratio = f" ({on / off:.2f}x)" if off and on else ""
            cells.append(f"{_common.fmt(off)} / {_common.fmt(on)}{ratio}")
        ok = [r for r in pair.values() if r["status"] == "ok"]
        errors += [f"- {backend}, depth {depth}, remat={r['remat']}: "
                   f"{str(r.get('error'))[-300:]}" for r in pair.values()
                   if r["status"] != "ok"]
        table.append([backend, str(depth), str(batch),
                      "yes" if ok and ok[0]["jit_compiled"] else "no", *cells,
                      ok[0]["memory_kind"] if ok else "-"])
    out = [
        "### remat=True: speed and peak memory (without / with remat)",
        "",
        *_common.report_lines(report),
        "",
        _common.markdown_table(["backend", "depth", "batch", "XLA", "images/s",
                                "peak memory MiB", "memory measured as"], table),
    ]
    if errors:
        out += ["", "Failed:", *errors]
    return "\n".join(out) + "\n"


def main(argv=None):
    args = parse_args(argv)
    machine = _common.machine_info()
    rows = train_throughput.measure(build_configs(args), 1, args.timeout)
    return _common.publish(__doc__, SCRIPT, argv, args, machine, render, rows=rows)


if __name__ == "__main__":
    sys.exit(main())
