"""Writes the files tests/test_layers.py loads to show that models saved with
an earlier `ResidualUnit` load with the current one: same weight paths, same
weights file layout, same outputs, and the same weights from a seeded build.

The files here come from commit 82f1146 (the `ResidualUnit` that walked
`UNIT_ORDERING_STEPS`). To write them again from some commit, run from the
repository root of a checkout of it, with its code on `PYTHONPATH`:

    KERAS_BACKEND=tensorflow python /path/to/tests/data/saved_units/make_fixtures.py OUT_DIR

Running it on later code makes files of the later code, not of the old one.

Each case of `CASES` is built with a fixed seed, its weights moved away from
a fresh build's (so that two BNs or two kernels swapped show), trained two
SGD steps (the BN moving statistics move too), and saved as `{name}.keras`
and `{name}.weights.h5` in `models.zip` (deflated: HDF5 files are mostly
padding). Then each backend, in its own process, loads every `.keras` file
and records in `arrays.npz`, under `{name}/...`:

- `inputs` and `weight_paths` (the `model.weights` paths, in order);
- `{backend}/inference`: the outputs with `training=False`;
- `{backend}/training`: the outputs with `training=True`, for the cases that
  draw no random numbers (no drop path, no shortcut dropout);
- `{backend}/initial`: per weight, the sum, the sum of squares and the first
  value of a fresh build after `keras.utils.set_random_seed(SEED)`.
"""

import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

import keras
import keras_preact
from keras_preact.layers import UNIT_ORDERINGS
from keras_preact.layers import ResidualUnit

SEED = 2016
BACKENDS = ("tensorflow", "jax", "torch")

# Unit arguments, applied to both units of a two-unit model: the first keeps
# its input's shape (an identity shortcut where the variant has one), the
# second halves the resolution and doubles the width (a projection).
UNIT_CASES = {
    **{
        f"{ordering}_{block}": dict(unit_ordering=ordering, bottleneck=block == "bottleneck")
        for ordering in UNIT_ORDERINGS
        for block in ("basic", "bottleneck")
    },
    "constant_scaling": dict(shortcut="constant_scaling"),
    "exclusive_gating": dict(shortcut="exclusive_gating"),
    "shortcut_only_gating": dict(shortcut="shortcut_only_gating"),
    "conv1x1": dict(shortcut="conv1x1"),
    "conv1x1_original": dict(shortcut="conv1x1", unit_ordering="original"),
    "dropout": dict(shortcut="dropout"),
    "no_preactivation": dict(bottleneck=True, preactivate=False),
    "preactivated_shortcut": dict(preactivated_shortcut=True),
    "stride_on_1x1": dict(bottleneck=True, stride_on="1x1"),
    "drop_path": dict(drop_path_rate=0.3),
    "remat": dict(bottleneck=True, remat=True),
    "remat_drop_path": dict(drop_path_rate=0.3, remat=True),
}
# Whole networks through the builder (logits, no softmax).
MODEL_CASES = {
    "cifar": dict(depth=8, base_width=4, classes=5, input_shape=(8, 8, 3)),
    "imagenet": dict(
        layout="imagenet", stage_units=(1, 1, 1, 1), block_type="bottleneck",
        base_width=4, classes=5, input_shape=(32, 32, 3),
    ),
}
CASES = (*UNIT_CASES, *MODEL_CASES)


def input_shape(name):
    if name in MODEL_CASES:
        return MODEL_CASES[name]["input_shape"]
    return (8, 8, 8 if UNIT_CASES[name].get("bottleneck") else 4)


def draws_random_numbers(name):
    kwargs = UNIT_CASES.get(name, MODEL_CASES.get(name))
    return kwargs.get("drop_path_rate", 0) > 0 or kwargs.get("shortcut") == "dropout"


def build(name):
    """The case's uncompiled model, with fresh weights."""
    if name in MODEL_CASES:
        return keras_preact.PreActResNet(
            **MODEL_CASES[name], classifier_activation=None, name=name
        )
    kwargs = UNIT_CASES[name]
    filters = 2 if kwargs.get("bottleneck") else 4
    inputs = keras.Input(input_shape(name))
    x = ResidualUnit(filters, name="unit1", **kwargs)(inputs)
    x = ResidualUnit(2 * filters, strides=2, name="unit2", **kwargs)(x)
    return keras.Model(inputs, x, name=name)


def randomize(model, rng):
    """BN scales and variances in [0.5, 1.5], offsets, means and biases
    N(0, 0.2), kernels times U(0.5, 1.5) elementwise."""
    for weight in model.weights:
        shape = tuple(weight.shape)
        name = weight.path.rsplit("/", 1)[-1]
        if name in ("gamma", "moving_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        elif name in ("beta", "moving_mean", "bias"):
            value = rng.normal(0.0, 0.2, shape)
        else:
            value = keras.ops.convert_to_numpy(weight) * rng.uniform(0.5, 1.5, shape)
        weight.assign(value.astype("float32"))


def trained(name, rng):
    """The case's model after `randomize` and two SGD steps on random data,
    copied into a fresh uncompiled model (so no optimizer is saved)."""
    keras.utils.set_random_seed(SEED)
    model = build(name)
    randomize(model, rng)
    x = rng.normal(size=(8,) + input_shape(name)).astype("float32")
    y = rng.normal(size=(8,) + tuple(model.output_shape[1:])).astype("float32")
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    saved = build(name)
    saved.set_weights(model.get_weights())
    return saved


def fingerprint(weights):
    values = [keras.ops.convert_to_numpy(w).astype("float64").ravel() for w in weights]
    return np.array([(v.sum(), (v * v).sum(), v[0]) for v in values])


def record_outputs(models_dir, arrays):
    """Loads every case's `.keras` file on this backend and adds its outputs
    and a seeded fresh build's weights to `arrays`."""
    backend = keras.backend.backend()
    for name in CASES:
        model = keras.saving.load_model(os.path.join(models_dir, f"{name}.keras"))
        x = arrays[f"{name}/inputs"]
        outputs = model(x, training=False)
        arrays[f"{name}/{backend}/inference"] = keras.ops.convert_to_numpy(outputs)
        if not draws_random_numbers(name):
            outputs = model(x, training=True)
            arrays[f"{name}/{backend}/training"] = keras.ops.convert_to_numpy(outputs)
        keras.utils.set_random_seed(SEED)
        arrays[f"{name}/{backend}/initial"] = fingerprint(build(name).weights)


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(SEED)
    arrays = {}
    with tempfile.TemporaryDirectory() as models_dir:
        archive = zipfile.ZipFile(
            os.path.join(out_dir, "models.zip"), "w", zipfile.ZIP_DEFLATED, compresslevel=9
        )
        with archive:
            for name in CASES:
                model = trained(name, rng)
                for suffix in (".keras", ".weights.h5"):
                    path = os.path.join(models_dir, name + suffix)
                    (model.save if suffix == ".keras" else model.save_weights)(path)
                    archive.write(path, name + suffix)
                arrays[f"{name}/inputs"] = rng.normal(
                    size=(2,) + input_shape(name)
                ).astype("float32")
                arrays[f"{name}/weight_paths"] = np.array([w.path for w in model.weights])
        np.savez(os.path.join(models_dir, "inputs.npz"), **arrays)
        for backend in BACKENDS:
            subprocess.run(
                [sys.executable, __file__, "--outputs", models_dir],
                env={**os.environ, "KERAS_BACKEND": backend},
                check=True,
            )
            with np.load(os.path.join(models_dir, f"{backend}.npz")) as outputs:
                arrays.update(outputs)
    np.savez_compressed(os.path.join(out_dir, "arrays.npz"), **arrays)


def main_outputs(models_dir):
    """The per-backend half of `main`: run with `KERAS_BACKEND` set."""
    with np.load(os.path.join(models_dir, "inputs.npz")) as inputs:
        arrays = dict(inputs)
    record_outputs(models_dir, arrays)
    backend = keras.backend.backend()
    new = {key: value for key, value in arrays.items() if f"/{backend}/" in key}
    np.savez(os.path.join(models_dir, f"{backend}.npz"), **new)


if __name__ == "__main__":
    if sys.argv[1] == "--outputs":
        main_outputs(sys.argv[2])
    else:
        main(sys.argv[1])
