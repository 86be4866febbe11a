"""Where does a training step go? Each runtime's kernels in one step, by kind.

Profiles a few training steps of PreActResNet (the step `train_throughput.py` times:
`PaperSGD`, sparse cross-entropy, synthetic float32 data) and sums the time of each
kind of kernel per step:
- JAX: the XLA executable's thunks from `jax.profiler` (an HLO op's name without its
  number: `ynn_fusion`, XLA CPU's YNNPACK kernels, convolutions among them;
  `transpose_copy_fusion`, layout changes; `broadcast_add_fusion` and the like, batch
  norm's reductions and element-wise work);
- torch (the Keras backend) and pytorch (`benchmarks/torch_reference.py`, PyTorch
  eager, channels_last, `torch.optim.SGD`): `torch.profiler`'s self CPU time per aten op.
JAX's thunks run on several threads at once, so its column can sum to more than the
step's time: compare its kinds, not its total. torch's profiler counts each aten op
once, on the thread that calls it.

Example:
    python benchmarks/step_profile.py --output benchmarks/results/step_profile.json
"""

import collections
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

SCRIPT = os.path.abspath(__file__)
RUNTIMES = {"jax": "JAX (XLA)", "torch": "torch backend", "pytorch": "PyTorch"}


def build_parser():
    positive = _common.positive_int
    parser = _common.new_parser(__doc__)
    parser.add_argument("--runtimes", nargs="+", choices=tuple(RUNTIMES),
                        default=["jax", "torch", "pytorch"])
    parser.add_argument("--depth", type=positive, default=164, help="CIFAR layout depth")
    parser.add_argument("--batch", type=positive, default=16)
    parser.add_argument("--warmup", type=positive, default=3)
    parser.add_argument("--steps", type=positive, default=3, help="profiled steps")
    parser.add_argument("--top", type=positive, default=8,
                        help="kinds of kernel listed per runtime")
    parser.add_argument("--timeout", type=positive, default=1200,
                        help="seconds per runtime")
    parser.add_argument("--output", help="write the report as JSON to this path")
    return parser


# --------------------------------------------------------------------------- workers


def keras_step(config):
    import keras
    import numpy as np

    import keras_preact
    from keras_preact.training import PaperSGD

    keras.utils.set_random_seed(0)
    model = keras_preact.PreActResNet(config["depth"], layout="cifar", classes=10,
                                      input_shape=(32, 32, 3))
    model.compile(optimizer=PaperSGD(learning_rate=0.01, momentum=0.9, l2_weight_decay=1e-4),
                  loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(config["batch"], 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=(config["batch"],))
    return lambda: model.train_on_batch(x, y)


def pytorch_step(config):
    import torch
    import torch.nn.functional as F

    import torch_reference

    torch.manual_seed(0)
    model, _ = torch_reference.build_model(config["depth"], "cifar", 10)
    model = model.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(config["batch"], 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (config["batch"],))

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def jax_kinds(step, steps):
    """Microseconds per kind of XLA thunk over `steps` calls of `step`."""
    import gzip
    import json

    import jax

    with tempfile.TemporaryDirectory(prefix="step_profile_") as logdir:
        with jax.profiler.trace(logdir):
            for _ in range(steps):
                step()
        traces = [os.path.join(root, name) for root, _, names in os.walk(logdir)
                  for name in names if name.endswith(".trace.json.gz")]
        if not traces:
            raise RuntimeError(f"jax.profiler wrote no .trace.json.gz under {logdir}")
        with gzip.open(traces[0]) as f:
            events = json.load(f)["traceEvents"]
    kinds, calls = collections.Counter(), collections.Counter()
    for event in events:
        hlo_op = (event.get("args") or {}).get("hlo_op")
        if event.get("ph") == "X" and hlo_op and event["name"] == hlo_op:
            kind = re.sub(r"\.\d+$", "", hlo_op)
            kinds[kind] += event["dur"]
            calls[kind] += 1
    return kinds, calls


def torch_kinds(step, steps):
    """Microseconds of self CPU time per aten op over `steps` calls of `step`."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    kinds, calls = collections.Counter(), collections.Counter()
    for event in prof.key_averages():
        if event.key.startswith("aten::"):
            kinds[event.key] += event.self_cpu_time_total
            calls[event.key] += event.count
    return kinds, calls


def run_config(config):
    runtime, steps = config["runtime"], config["steps"]
    step = pytorch_step(config) if runtime == "pytorch" else keras_step(config)
    for _ in range(config["warmup"]):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    step_s = (time.perf_counter() - start) / steps
    kinds, calls = (jax_kinds if runtime == "jax" else torch_kinds)(step, steps)
    return dict(
        config,
        status="ok",
        step_ms=round(step_s * 1000, 1),
        kinds=[{"kind": kind, "ms_per_step": round(us / steps / 1000, 2),
                "calls_per_step": round(calls[kind] / steps, 1)}
               for kind, us in kinds.most_common()],
    )


# --------------------------------------------------------------------------- driver


def render(report):
    settings = report["settings"]
    out = [f"### Kernels of one PreActResNet-{settings['depth']} training step (cifar, "
           f"batch {settings['batch']}), ms per step", "", *_common.report_lines(report)]
    for row in report["rows"]:
        name = RUNTIMES[row["runtime"]]
        if row["status"] != "ok":
            out += ["", f"{name}: {row['status']}: {str(row.get('error'))[-300:]}"]
            continue
        kinds = row["kinds"]
        listed = kinds[:settings["top"]]
        rest = sum(k["ms_per_step"] for k in kinds[settings["top"]:])
        table = [[k["kind"], k["ms_per_step"], k["calls_per_step"]] for k in listed]
        table.append([f"{len(kinds) - len(listed)} other kinds", round(rest, 2), ""])
        out += ["", f"{name}: a step takes {row['step_ms']} ms", "",
                _common.markdown_table(["kernel", "ms", "calls"], table)]
    out += ["", f"float32, synthetic data; {settings['steps']} profiled steps after "
            f"{settings['warmup']} unprofiled ones, each runtime in its own process."]
    return "\n".join(out) + "\n"


def main(argv=None):
    if argv is None and "--worker" in sys.argv:
        return _common.worker_main(run_config)
    args = build_parser().parse_args(argv)
    machine = _common.machine_info()
    rows = []
    for runtime in args.runtimes:
        _common.progress(f"{runtime}: PreActResNet-{args.depth}, batch {args.batch}")
        config = dict(runtime=runtime, depth=args.depth, batch=args.batch,
                      warmup=args.warmup, steps=args.steps)
        env = {"KERAS_BACKEND": "torch" if runtime == "pytorch" else runtime,
               **_common.STEADY_MALLOC}
        rows.append(_common.run_worker(SCRIPT, config, args.timeout, env=env))
    return _common.publish(__doc__, SCRIPT, argv, args, machine, render, rows=rows)


if __name__ == "__main__":
    sys.exit(main())
