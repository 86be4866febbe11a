"""Model build time and trainable parameter count vs depth, for the current backend.

Times `keras_preact.PreActResNet(depth, layout=...)` (functional graph construction and
weight creation; no compile, no forward pass) after a warm-up build of the smallest
depth (so one-time backend import/initialization is not charged to the first depth).
Also counts trainable parameters (the paper: 0.27M for depth 20, 1.7M for 164, 10.2M
for 1001 on CIFAR-10) and residual units.

Example:
    KERAS_BACKEND=jax python benchmarks/build_time.py --depths 20,56,110,164,1001
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import _common  # noqa: E402

SCRIPT = os.path.abspath(__file__)


def run_config(config):
    import keras

    import keras_preact

    def build():
        keras.backend.clear_session()
        t0 = time.perf_counter()
        model = keras_preact.PreActResNet(
            config["depth"], layout=config["layout"], classes=config["classes"]
        )
        return model, time.perf_counter() - t0

    if config.get("warmup_depth"):
        keras.backend.clear_session()
        keras_preact.PreActResNet(
            config["warmup_depth"], layout=config["layout"], classes=config["classes"]
        )
    times = []
    for _ in range(config["repeats"]):
        model, seconds = build()
        times.append(seconds)
    return dict(
        config,
        status="ok",
        backend=keras.backend.backend(),
        build_s=round(min(times), 3),
        build_times_s=[round(t, 3) for t in times],
        trainable_params=int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        total_params=int(model.count_params()),
        residual_units=len(keras_preact.residual_units(model)),
        layers=len(model.layers),
    )


def parse_args(argv=None):
    parser = _common.add_common_args(_common.new_parser(__doc__.split("\n")[0]))
    parser.add_argument("--depths", default=None, help="default 20,56,110,164,1001 (quick: 20,56,110,164)")
    parser.add_argument("--layout", default="cifar", choices=("cifar", "imagenet"))
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=None, help="builds per depth, min reported; default 3 (quick: 1)")
    parser.set_defaults(isolate=False)
    parser.add_argument("--isolate", dest="isolate", action="store_true", help="one process per depth")
    args = parser.parse_args(argv)
    if args.depths is None:
        args.depths = "20,56,110,164" if args.quick else "20,56,110,164,1001"
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    try:
        args.depth_list = [int(d) for d in args.depths.split(",")]
    except ValueError:
        parser.error(f"Invalid --depths={args.depths!r}. Expected comma-separated ints.")
    return args


def build_configs(args, backend):
    return [
        dict(
            suite="build",
            backend=backend,
            layout=args.layout,
            classes=args.classes,
            depth=d,
            repeats=args.repeats,
            warmup_depth=min(args.depth_list) if i == 0 or args.isolate else None,
        )
        for i, d in enumerate(args.depth_list)
    ]


def main(argv=None):
    return _common.script_main("build", SCRIPT, parse_args, build_configs, run_config, argv)


if __name__ == "__main__":
    main()
