"""BN + ReLU forward and backward: Keras' layer vs keras_preact's fused one.

Times one training-mode forward and backward pass (`sum(y * cotangent)`
differentiated with respect to the input, gamma and beta; moving statistics
updated) of

- generic: `keras.layers.BatchNormalization` then `keras.ops.relu`;
- fused: `keras_preact.layers.BatchNormalization(activation="relu")` (torch:
  `torch.nn.functional.batch_norm`; TensorFlow: `fused_batch_norm`; JAX:
  the same `keras.ops` as generic, so the two should tie),

on a 128x32x32x64 tensor (channels_last; `--data-formats` adds
channels_first) by default. `--model-depth D` adds whole-network rows: one
`train_on_batch` step (SGD with momentum, `jit_compile="auto"`: graph mode
on TensorFlow on a CPU, jit on JAX, eager on torch) of a CIFAR
PreActResNet-D at `--model-batch` with every BN fused vs the same model with
the fused kernels switched off (Keras' path, i.e. the unit before the fused
layer), the two models alternating in one process. Each backend runs in its own process; within it
the two layers alternate for `--rounds` rounds of `--steps` timed steps
(after `--warmup` untimed ones), and the table gives the median over rounds
of each round's median step, and generic / fused. Execution: torch eager
(as Keras' torch trainer runs); TensorFlow `tf.function`, without XLA
(`graph`) and with (`xla`); JAX `jax.jit` (Keras' trainer on JAX always
jits). A shared machine makes single figures noisy: compare within a row.

Example:
    python benchmarks/batch_norm_relu.py --backends torch,tensorflow,jax \
        --rounds 5 --output bn_relu.json
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

MARKER = "BN_RELU_RESULT "
IMPLEMENTATIONS = ("generic", "fused")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--backends", default="torch,tensorflow,jax")
    parser.add_argument("--shape", default="128,32,32,64", help="N,H,W,C")
    parser.add_argument(
        "--data-formats", default="channels_last",
        help="comma list of channels_last, channels_first",
    )
    parser.add_argument(
        "--policies", default="float32",
        help="comma list of Keras dtype policies, e.g. float32,mixed_bfloat16",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--model-depth", type=int, default=0,
        help="also time train_on_batch of a CIFAR PreActResNet of this depth "
        "(0: no)",
    )
    parser.add_argument("--model-batch", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=1800, help="s per backend")
    parser.add_argument("--output", help="write the results as JSON here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.shape = tuple(int(s) for s in args.shape.split(","))
    if len(args.shape) != 4 or min(args.shape) < 1:
        parser.error(f"--shape={args.shape!r}: expected 4 positive ints N,H,W,C")
    for name in ("backends", "data_formats", "policies"):
        setattr(args, name, [s for s in getattr(args, name).split(",") if s])
    for backend in args.backends:
        if backend not in _common.BACKENDS:
            parser.error(f"--backends: {backend!r} is not one of {_common.BACKENDS}")
    for data_format in args.data_formats:
        if data_format not in ("channels_last", "channels_first"):
            parser.error(f"--data-formats: invalid {data_format!r}")
    return args


# --------------------------------------------------------------------------- worker


def _layer(implementation, axis):
    import keras

    from keras_preact.layers import BatchNormalization

    kwargs = dict(axis=axis, momentum=0.9, epsilon=1e-5)
    if implementation == "fused":
        return BatchNormalization(activation="relu", **kwargs)
    bn = keras.layers.BatchNormalization(**kwargs)
    return keras.Sequential([bn, keras.layers.ReLU()])


def _step_fn(layer, x, cotangent, mode):
    """A blocking function running one forward and backward pass."""
    import keras

    backend = keras.backend.backend()
    x = keras.ops.cast(x, layer.compute_dtype)
    if backend == "torch":
        import torch

        x = x.requires_grad_(True)
        cotangent = keras.ops.convert_to_tensor(cotangent)
        weights = [v.value for v in layer.trainable_variables]

        def step():
            y = layer(x, training=True)
            grads = torch.autograd.grad(torch.sum(y * cotangent), [x] + weights)
            return float(grads[0][0, 0, 0, 0])

        return step
    if backend == "tensorflow":
        import tensorflow as tf

        cotangent = tf.constant(cotangent)

        @tf.function(jit_compile=mode == "xla")
        def grads():
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
                loss = tf.reduce_sum(tf.cast(y, tf.float32) * cotangent)
            return tape.gradient(loss, [x] + layer.trainable_variables)

        return lambda: float(grads()[0][0, 0, 0, 0])
    import jax

    def loss_fn(trainable, x, non_trainable):
        y, non_trainable = layer.stateless_call(
            trainable, non_trainable, x, training=True
        )
        return jax.numpy.sum(y.astype("float32") * cotangent), non_trainable

    grads = jax.jit(jax.grad(loss_fn, argnums=(0, 1), has_aux=True))
    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]
    return lambda: float(grads(trainable, x, non_trainable)[0][1][0, 0, 0, 0])


def _keras_path_only():
    """Switches the fused kernels off: every keras_preact BN takes Keras' path."""
    from unittest import mock

    from keras_preact.layers import batch_normalization

    return mock.patch.object(batch_normalization, "_fused_kernel", lambda *a: None)


def _interleave(steps, args):
    """Median over rounds of each round's median step time (s), per name."""
    medians = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            times = []
            for _ in range(args.steps):
                start = time.perf_counter()
                step()
                times.append(time.perf_counter() - start)
            medians[name].append(statistics.median(times))
    return medians


def _row(backend, mode, policy, data_format, shape, medians):
    ms = {k: 1e3 * statistics.median(v) for k, v in medians.items()}
    return {
        "backend": backend,
        "mode": mode,
        "policy": policy,
        "data_format": data_format,
        "shape": list(shape),
        "generic_ms": round(ms["generic"], 2),
        "fused_ms": round(ms["fused"], 2),
        "speedup": round(ms["generic"] / ms["fused"], 2),
        "round_medians_ms": {
            k: [round(1e3 * t, 2) for t in v] for k, v in medians.items()
        },
    }


def _model_rows(args, policy):
    """train_on_batch of PreActResNet-D, fused vs Keras' path, alternating."""
    import contextlib

    import numpy as np

    import keras
    import keras_preact

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.model_batch, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=(args.model_batch,))
    steps = {}
    for implementation in IMPLEMENTATIONS:
        switch = (
            _keras_path_only() if implementation == "generic"
            else contextlib.nullcontext()
        )
        keras.utils.set_random_seed(0)
        model = keras_preact.PreActResNet(args.model_depth, classes=10)
        model.compile(
            optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(),
        )

        def step(model=model, switch=switch):
            with switch:
                return model.train_on_batch(x, y)

        for _ in range(max(args.warmup, 1)):
            step()
        steps[implementation] = step
    rows = [
        _row(
            keras.backend.backend(),
            f"PreActResNet-{args.model_depth} train_on_batch "
            f"(jit_compile={model.jit_compile})",
            policy, "channels_last", x.shape, _interleave(steps, args),
        )
    ]
    return rows


def worker(args):
    import numpy as np

    import keras

    backend = keras.backend.backend()
    modes = {"tensorflow": ("graph", "xla"), "jax": ("jit",), "torch": ("eager",)}
    n, h, w, c = args.shape
    rng = np.random.default_rng(0)
    rows = []
    for policy in args.policies:
        keras.config.set_dtype_policy(policy)
        for data_format in args.data_formats:
            shape = (n, h, w, c) if data_format == "channels_last" else (n, c, h, w)
            axis = -1 if data_format == "channels_last" else 1
            x = rng.normal(size=shape).astype("float32")
            cotangent = rng.normal(size=shape).astype("float32")
            for mode in modes[backend]:
                steps = {}
                for implementation in IMPLEMENTATIONS:
                    layer = _layer(implementation, axis)
                    layer.build(shape)
                    step = _step_fn(layer, x, cotangent, mode)
                    for _ in range(max(args.warmup, 1)):
                        step()
                    steps[implementation] = step
                medians = _interleave(steps, args)
                rows.append(_row(backend, mode, policy, data_format, shape, medians))
        if args.model_depth:
            rows += _model_rows(args, policy)
    print(MARKER + json.dumps(rows), flush=True)


# --------------------------------------------------------------------------- driver


def run_backend(backend, argv, timeout):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, os.path.abspath(__file__), *argv, "--worker", backend]
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return [], f"{backend}: timed out after {timeout:.0f} s"
    for line in done.stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):]), None
    return [], f"{backend}: failed (rc {done.returncode}): {done.stderr[-2000:]}"


def table(rows):
    lines = [
        "| backend | execution | policy | data format | generic (ms) "
        "| fused (ms) | generic / fused |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r['mode']} | {r['policy']} | {r['data_format']} "
            f"| {r['generic_ms']:.1f} | {r['fused_ms']:.1f} | {r['speedup']:.2f}x |"
        )
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    machine = _common.machine_info()
    rows, errors = [], []
    for backend in args.backends:
        backend_rows, error = run_backend(backend, argv, args.timeout)
        rows += backend_rows
        if error:
            errors.append(error)
    print(
        f"Forward+backward of BN+ReLU, training mode, shape {args.shape} (N,H,W,C); "
        f"median of {args.rounds} interleaved rounds x {args.steps} steps; "
        f"{machine['device']}, {machine['cpu_cores_usable']} cores, "
        f"load {machine['load_average_at_start']}, {machine['date_utc']}."
    )
    print(table(rows))
    for error in errors:
        print("ERROR", error, file=sys.stderr)
    if args.output:
        report = {"machine": machine, "settings": vars(args), "results": rows,
                  "errors": errors}
        _common.atomic_write(args.output, json.dumps(report, indent=2))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
