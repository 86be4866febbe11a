"""How long does a deep PreActResNet take to build, on each Keras backend?

Times keras_preact.PreActResNet(depth) for each depth: the functional graph and its
weights, no compile and no step. One process per backend, which first builds the
smallest depth once (so the backend's start-up is not charged to it), then reports
the fastest of --repeats builds per depth, with the trainable parameters and residual
units (the paper: 0.27M parameters for depth 20, 1.7M for 164, 10.2M for 1001).

Example:
    python benchmarks/build_time.py --depths 20 164 1001
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

SCRIPT = os.path.abspath(__file__)


def build_parser():
    parser = _common.new_parser(__doc__)
    _common.add_backends_argument(parser)
    parser.add_argument("--depths", nargs="+", type=_common.positive_int,
                        default=[20, 56, 110, 164, 1001])
    parser.add_argument("--layout", choices=("cifar", "imagenet"), default="cifar")
    parser.add_argument("--classes", type=_common.positive_int, default=10)
    parser.add_argument("--repeats", type=_common.positive_int, default=3,
                        help="builds per depth; the fastest is reported")
    parser.add_argument("--timeout", type=_common.positive_int, default=1800,
                        help="seconds per backend")
    parser.add_argument("--output", help="write the report as JSON to this path")
    return parser


def build_rows(depths, layout, classes, repeats):
    """Builds each depth `repeats` times on the current backend; one row per depth."""
    import keras
    import numpy as np

    import keras_preact

    def build(depth):
        keras.backend.clear_session()
        start = time.perf_counter()
        model = keras_preact.PreActResNet(depth, layout=layout, classes=classes)
        return model, time.perf_counter() - start

    build(min(depths))
    rows = []
    for depth in depths:
        times = []
        for _ in range(repeats):
            model, seconds = build(depth)
            times.append(seconds)
        rows.append(dict(
            backend=keras.backend.backend(), layout=layout, classes=classes, depth=depth,
            status="ok", build_s=round(min(times), 3),
            build_times_s=[round(t, 3) for t in times],
            trainable_params=int(sum(np.prod(w.shape) for w in model.trainable_weights)),
            residual_units=len(keras_preact.residual_units(model)),
            layers=len(model.layers),
        ))
    return rows


def run_config(config):
    return dict(config, status="ok", rows=build_rows(
        config["depths"], config["layout"], config["classes"], config["repeats"]))


def render(report):
    backends = report["settings"]["backends"]
    by_depth, errors = {}, []
    for row in report["rows"]:
        if row["status"] != "ok":
            errors.append(f"- {row['backend']}: {str(row.get('error'))[-300:]}")
            continue
        by_depth.setdefault(row["depth"], {})[row["backend"]] = row
    table = []
    for depth, rows in sorted(by_depth.items()):
        any_row = next(iter(rows.values()))
        table.append([str(depth), str(any_row["residual_units"]),
                      f"{any_row['trainable_params']:,}",
                      *(rows[b]["build_s"] if b in rows else None for b in backends)])
    out = [
        f"### Build time of PreActResNet ({report['settings']['layout']} layout), seconds",
        "",
        *_common.report_lines(report),
        "",
        _common.markdown_table(["depth", "residual units", "trainable parameters",
                                *backends], table),
    ]
    if errors:
        out += ["", "Failed:", *errors]
    return "\n".join(out) + "\n"


def main(argv=None):
    if argv is None and "--worker" in sys.argv:
        return _common.worker_main(run_config)
    args = build_parser().parse_args(argv)
    machine = _common.machine_info()
    rows = []
    for backend in args.backends:
        _common.progress(f"{backend}: depths {args.depths}")
        config = dict(backend=backend, depths=args.depths, layout=args.layout,
                      classes=args.classes, repeats=args.repeats)
        result = _common.run_worker(SCRIPT, config, args.timeout,
                                    env={"KERAS_BACKEND": backend})
        rows += result["rows"] if result["status"] == "ok" else [result]
    return _common.publish(__doc__, SCRIPT, argv, args, machine, render, rows=rows)


if __name__ == "__main__":
    sys.exit(main())
