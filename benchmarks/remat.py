"""Rematerialization: peak memory and training throughput with and without `remat=True`.

`keras_preact.PreActResNet(depth, remat=True)` runs every residual unit under
`keras.remat`, so its activations are recomputed in the backward pass instead of
stored. For PreActResNet164 and PreActResNet1001 on CIFAR shapes, each (depth, remat)
pair runs in its own process via `benchmarks/train_throughput.py`'s worker (same timing:
median whole `train_on_batch` step after warm-up), so the peak memory is that config's
alone: GPU allocator peak, or on CPU the process peak RSS (includes the framework
runtime, so compare rows, not absolute values).

Example:
    KERAS_BACKEND=jax python benchmarks/remat.py --quick --output remat_jax.json
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import train_throughput  # noqa: E402

# jit_compile per backend when --jit=auto: XLA for JAX (remat without jit would be
# op-by-op), graph mode for TF and eager for torch (XLA/torch.compile of a 1001-layer
# graph takes many minutes on a small CPU).
AUTO_JIT = {"jax": True, "tensorflow": False, "torch": False}


def parse_args(argv=None):
    parser = _common.add_common_args(_common.new_parser(__doc__.split("\n")[0]))
    parser.add_argument("--depths", default="164,1001")
    parser.add_argument(
        "--batches",
        default=None,
        help="batch per depth, comma list aligned with --depths; default 128,128 "
        "(the paper's batch; quick: 16,4)",
    )
    parser.add_argument("--jit", default="auto", choices=("auto", "off", "on"))
    parser.add_argument("--precision", default="float32", choices=("float32", "mixed"))
    parser.add_argument("--mixed-policy", default="mixed_bfloat16")
    parser.add_argument("--warmup", type=int, default=None, help="default 2")
    parser.add_argument("--steps", type=int, default=None, help="default 5 (quick: 3)")
    args = parser.parse_args(argv)
    if args.batches is None:
        args.batches = "16,4" if args.quick else "128,128"
    if args.warmup is None:
        args.warmup = 2
    if args.steps is None:
        args.steps = 3 if args.quick else 5
    depths = [int(d) for d in args.depths.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    if len(batches) == 1:
        batches = batches * len(depths)
    if len(batches) != len(depths):
        parser.error(
            f"--batches={args.batches!r} must have one entry or one per depth ({args.depths!r})."
        )
    args.plan = list(zip(depths, batches))
    return args


def build_configs(args, backend):
    jit = AUTO_JIT.get(backend, False) if args.jit == "auto" else args.jit == "on"
    return [
        dict(
            suite="remat",
            framework="keras",
            backend=backend,
            model="keras_preact",
            layout="cifar",
            depth=depth,
            image_size=32,
            classes=10,
            batch=batch,
            precision=args.precision,
            mixed_policy=args.mixed_policy,
            jit=jit,
            remat=remat,
            warmup=args.warmup,
            steps=args.steps,
        )
        for depth, batch in args.plan
        for remat in (False, True)
    ]


def main(argv=None):
    # Workers run train_throughput.py: remat.py itself is never a worker.
    return _common.script_main(
        "remat", train_throughput.SCRIPT, parse_args, build_configs,
        train_throughput.run_config, argv,
    )


if __name__ == "__main__":
    main()
