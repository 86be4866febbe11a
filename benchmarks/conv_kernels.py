"""Where does a CPU training step go? Each backend's convolution kernels, alone.

Times, for every convolution of a PreActResNet (the shapes of one training step at the
given batch, taken from benchmarks/torch_reference.py with forward hooks), its forward
and backward pass (gradients of input and kernel) through each framework's own kernel,
outside any model: JAX's `lax.conv_general_dilated` under `jax.jit` (XLA's CPU
convolution, NHWC/HWIO as Keras calls it), TensorFlow's `tf.nn.conv2d` in a
`tf.function` (NHWC; oneDNN on a CPU) and torch's `conv2d` (channels_last; oneDNN).
Prints, per framework, the summed convolution time of one step and the share of each
kind of convolution, so a backend's whole training step (benchmarks/train_throughput.py)
can be read against the part its convolution kernels alone take.

Method: one process per framework; each distinct convolution (input shape, kernel,
stride) is run --warmup times, then timed --repeats times, and its median is counted
as often as the network has it. Random float32 data.

Example:
    python benchmarks/conv_kernels.py --output benchmarks/results/conv_kernels.json
"""

import collections
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

SCRIPT = os.path.abspath(__file__)
FRAMEWORKS = {"jax": "JAX (XLA)", "tensorflow": "TensorFlow", "torch": "torch"}


def build_parser():
    positive = _common.positive_int
    parser = _common.new_parser(__doc__)
    parser.add_argument("--frameworks", nargs="+", choices=tuple(FRAMEWORKS),
                        default=_common.installed_backends())
    parser.add_argument("--depth", type=positive, default=164)
    parser.add_argument("--layout", choices=("cifar", "imagenet"), default="cifar")
    parser.add_argument("--image-size", type=positive, default=None,
                        help="default: 32 (cifar), 224 (imagenet)")
    parser.add_argument("--batch", type=positive, default=16)
    parser.add_argument("--warmup", type=positive, default=2)
    parser.add_argument("--repeats", type=positive, default=5)
    parser.add_argument("--timeout", type=positive, default=1200,
                        help="seconds per framework")
    parser.add_argument("--output", help="write the report as JSON to this path")
    return parser


def network_convolutions(depth, layout, image_size, batch):
    """[(NHWC input shape, kernel size, in channels, out channels, stride), count]
    of the network's convolutions, in order of first appearance."""
    import torch

    import torch_reference

    model, _ = torch_reference.build_model(depth, layout, 10, "reference")
    seen = collections.OrderedDict()

    def hook(module, inputs, output):
        n, c, h, w = inputs[0].shape
        key = ((n, h, w, c), module.kernel_size[0], c, module.out_channels,
               module.stride[0])
        seen[key] = seen.get(key, 0) + 1

    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(batch, 3, image_size, image_size))
    return [[[list(key[0]), *key[1:]], count] for key, count in seen.items()]


def padding_of(kernel):
    return (kernel - 1) // 2


def timer(framework):
    """A function `(x, w, stride, padding) -> () -> None` that runs one forward and
    backward pass of the convolution and waits for it."""
    if framework == "jax":
        import jax
        from jax import lax

        def make(x, w, stride, pad):
            def loss(x, w):
                y = lax.conv_general_dilated(x, w, (stride, stride), [(pad, pad)] * 2,
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
                return (y * y).sum() * 0.5

            step = jax.jit(jax.grad(loss, argnums=(0, 1)))
            return lambda: jax.block_until_ready(step(x, w))

        return make
    if framework == "tensorflow":
        import tensorflow as tf

        def make(x, w, stride, pad):
            x, w = tf.constant(x), tf.Variable(w)
            paddings = [[0, 0], [pad, pad], [pad, pad], [0, 0]]

            @tf.function
            def step(x):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = tf.nn.conv2d(tf.pad(x, paddings) if pad else x, w, stride, "VALID")
                    loss = tf.reduce_sum(y * y) * 0.5
                return tape.gradient(loss, [x, w])

            return lambda: [g.numpy() for g in step(x)]

        return make
    import torch

    def make(x, w, stride, pad):
        x = torch.from_numpy(x).permute(0, 3, 1, 2).requires_grad_()
        w = torch.from_numpy(w).permute(3, 2, 0, 1).contiguous(
            memory_format=torch.channels_last).requires_grad_()

        def step():
            y = torch.nn.functional.conv2d(x, w, None, stride, pad)
            y.backward(y.detach())

        return step

    return make


def run_config(config):
    import numpy as np

    make = timer(config["framework"])
    rng = np.random.default_rng(0)
    rows = []
    for (shape, kernel, cin, cout, stride), count in config["convolutions"]:
        x = rng.standard_normal(shape, dtype=np.float32)
        w = rng.standard_normal((kernel, kernel, cin, cout), dtype=np.float32) * 0.1
        step = make(x, w, stride, padding_of(kernel))
        for _ in range(config["warmup"]):
            step()
        times = []
        for _ in range(config["repeats"]):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        rows.append(dict(shape=shape, kernel=kernel, out_channels=cout, stride=stride,
                         count=count, median_s=statistics.median(times)))
    total = sum(r["median_s"] * r["count"] for r in rows)
    return dict(config, status="ok", rows=rows, total_s=total)


def kind(row):
    return f"{row['kernel']}x{row['kernel']}" + (f"/{row['stride']}" if row["stride"] > 1 else "")


def render(report):
    settings, results = report["settings"], report["results"]
    ok = [r for r in results if r["status"] == "ok"]
    kinds = list(dict.fromkeys(kind(row) for r in ok for row in r["rows"]))
    table = []
    for result in results:
        if result["status"] != "ok":
            table.append([FRAMEWORKS[result["framework"]], "error"] + [""] * len(kinds))
            continue
        shares = collections.Counter()
        for row in result["rows"]:
            shares[kind(row)] += row["median_s"] * row["count"]
        table.append([FRAMEWORKS[result["framework"]],
                      f"{result['total_s'] * 1000:.0f}",
                      *(f"{shares[k] * 1000:.0f}" for k in kinds)])
    count = sum(c for _, c in ok[0]["convolutions"]) if ok else 0
    out = [
        f"### Convolutions of one PreActResNet-{settings['depth']} training step "
        f"({settings['layout']}, batch {settings['batch']}), forward and backward, ms",
        "",
        *_common.report_lines(report),
        "",
        _common.markdown_table(["framework", "all", *kinds], table),
        "",
        f"{count} convolutions per step; each kind's column sums its convolutions; "
        f"float32, median of {settings['repeats']} runs after {settings['warmup']}.",
    ]
    return "\n".join(out) + "\n"


def main(argv=None):
    if argv is None and "--worker" in sys.argv:
        return _common.worker_main(run_config)
    args = build_parser().parse_args(argv)
    machine = _common.machine_info()
    size = args.image_size or (32 if args.layout == "cifar" else 224)
    convolutions = network_convolutions(args.depth, args.layout, size, args.batch)
    results = []
    for framework in args.frameworks:
        _common.progress(f"{framework}: {len(convolutions)} distinct convolutions")
        config = dict(framework=framework, convolutions=convolutions,
                      warmup=args.warmup, repeats=args.repeats)
        results.append(_common.run_worker(SCRIPT, config, args.timeout))
    settings = {k: v for k, v in vars(args).items() if k != "output"}
    settings["image_size"] = size
    return _common.publish(__doc__, SCRIPT, argv, args, machine, render,
                           settings=settings, results=results)


if __name__ == "__main__":
    sys.exit(main())
