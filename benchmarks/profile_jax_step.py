"""Where the JAX CPU training step of PreActResNet-164 spends its time.

1. The whole step (`model.stateless_call` + `jax.value_and_grad` + SGD, one `jax.jit`),
   forward only and forward + backward, each timed (median of `--steps` after compiling),
   with XLA's cost analysis (FLOPs, bytes) and a census of the optimized HLO
   (convolutions, fusions, transposes, copies, custom calls).
2. The convolutions alone: forward + backward (input and kernel gradients) of each of the
   network's nine bottleneck conv shapes, timed under `jax.jit` (XLA:CPU) and in PyTorch
   (oneDNN, same threads), times the number of units per stage, so the conv share of the
   step and the kernel gap between the two are measured directly.

Prints one JSON document (and writes it with `--output`).

Example:
    KERAS_BACKEND=jax python benchmarks/profile_jax_step.py --output profile.json
"""

import argparse
import json
import os
import re
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import _common  # noqa: E402


def _median_time(fn, steps):
    fn()  # compile / warm up (oneDNN primitive creation for torch)
    fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def profile_step(depth, batch, steps):
    import jax
    import keras

    import keras_preact

    model = keras_preact.PreActResNet(depth, layout="cifar", classes=10)
    rng = np.random.default_rng(0)
    x = jax.numpy.asarray(rng.standard_normal((batch, 32, 32, 3), dtype=np.float32))
    y = jax.numpy.asarray(rng.integers(0, 10, batch))
    trainable = [v.value for v in model.trainable_variables]
    frozen = [v.value for v in model.non_trainable_variables]

    def loss_fn(trainable, frozen):
        logits, frozen = model.stateless_call(trainable, frozen, x, training=True)
        loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, logits))
        return loss, frozen

    def forward(trainable, frozen):
        return loss_fn(trainable, frozen)[0]

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def train_step(trainable, frozen):
        (loss, frozen), grads = grad_fn(trainable, frozen)
        return loss, [w - 0.01 * g for w, g in zip(trainable, grads)], frozen

    out = {"depth": depth, "batch": batch}
    for name, fn in (("forward", forward), ("forward_backward", grad_fn),
                     ("train_step", train_step)):
        compiled = jax.jit(fn).lower(trainable, frozen).compile()
        seconds = _median_time(
            lambda: jax.block_until_ready(compiled(trainable, frozen)), steps)
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        hlo = compiled.as_text()
        out[name] = {
            "ms": round(seconds * 1000, 1),
            "images_per_s": round(batch / seconds, 1),
            "gflops": round(cost.get("flops", 0) / 1e9, 2),
            "gbytes_accessed": round(cost.get("bytes accessed", 0) / 1e9, 2),
            "hlo_ops": {op: len(re.findall(rf"\b{op}\(", hlo)) for op in (
                "convolution", "fusion", "transpose", "copy", "custom-call", "reduce")},
            "custom_call_targets": sorted(set(re.findall(r'custom_call_target="([^"]+)"',
                                                          hlo))),
        }
    return out


def conv_shapes(depth, batch):
    """(count, batch, size, in_channels, out_channels, kernel) of the bottleneck convs."""
    units = (depth - 2) // 9
    shapes = []
    for size, width in ((32, 16), (16, 32), (8, 64)):
        shapes += [(units, batch, size, 4 * width, width, 1),
                   (units, batch, size, width, width, 3),
                   (units, batch, size, width, 4 * width, 1)]
    return shapes


def profile_convs(depth, batch, steps):
    import jax
    import torch

    rows = []
    for count, b, size, cin, cout, k in conv_shapes(depth, batch):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((b, size, size, cin), dtype=np.float32)
        w = rng.standard_normal((k, k, cin, cout), dtype=np.float32)

        def jax_loss(x, w):
            y = jax.lax.conv_general_dilated(
                x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
            return (y * y).sum()

        jgrad = jax.jit(jax.grad(jax_loss, argnums=(0, 1)))
        jx, jw = jax.numpy.asarray(x), jax.numpy.asarray(w)
        jax_s = _median_time(lambda: jax.block_until_ready(jgrad(jx, jw)), steps)
        tx = torch.tensor(x).permute(0, 3, 1, 2).contiguous(
            memory_format=torch.channels_last).requires_grad_()
        tw = torch.tensor(w).permute(3, 2, 0, 1).contiguous().requires_grad_()

        def torch_step():
            tx.grad = tw.grad = None
            y = torch.nn.functional.conv2d(tx, tw, padding=k // 2)
            (y * y).sum().backward()

        torch_s = _median_time(torch_step, steps)
        rows.append({"count": count, "batch": b, "size": size, "in": cin, "out": cout,
                     "kernel": k, "jax_ms": round(jax_s * 1000, 2),
                     "torch_ms": round(torch_s * 1000, 2)})
    totals = {
        "jax_convs_ms_per_step": round(sum(r["count"] * r["jax_ms"] for r in rows), 1),
        "torch_convs_ms_per_step": round(sum(r["count"] * r["torch_ms"] for r in rows), 1),
        "torch_threads": torch.get_num_threads(),
    }
    return {"shapes": rows, **totals}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depth", type=int, default=164)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--output")
    args = parser.parse_args(argv)
    _common.passive_openmp_on_shared_machine()
    report = {"machine": _common.machine_info(),
              "step": profile_step(args.depth, args.batch, args.steps),
              "convs": profile_convs(args.depth, args.batch, args.steps)}
    report["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    text = json.dumps(report, indent=1)
    print(text)
    if args.output:
        _common.atomic_write(args.output, text + "\n")
    return report


if __name__ == "__main__":
    main()
