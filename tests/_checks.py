"""Checks and helpers shared by several test files (one home, imported, never
copied), in sections named for the tests that use them."""

import csv
import importlib
import importlib.util
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

import keras
import keras_preact
from keras_preact import normalization as nz
from keras_preact.normalization import STATISTICS

from conftest import BACKEND
from conftest import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
BENCHMARKS = REPO / "benchmarks"


# === Commands run in a fresh process, the example and benchmark scripts ===


def command_env(**extra):
    """The environment of a command the tests start: this checkout first on
    `PYTHONPATH`, this run's backend, unbuffered output; `extra` on top."""
    env = dict(os.environ, PYTHONPATH=str(REPO), KERAS_BACKEND=BACKEND,
               TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def run_command(command, timeout=300, **env):
    """Runs `command` from the repository root in `command_env(**env)`.

    Returns:
        `(exit status, stdout + stderr)`.
    """
    result = subprocess.run(command, env=command_env(**env), cwd=REPO, capture_output=True,
                            text=True, timeout=timeout)
    return result.returncode, result.stdout + result.stderr


def load_example(name):
    """examples/`name`.py loaded by path: a new module each call, not put in
    `sys.modules`, and examples/ is not put on `sys.path` (its export.py would
    shadow the tests/export package)."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_benchmark(name):
    """benchmarks/`name`.py imported with its folder on `sys.path`, as the
    scripts import `_common` and one another."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module(name)


def run_benchmark(script, *args, timeout=900):
    """Runs benchmarks/`script`.py with `args`; it must exit 0."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, str(BENCHMARKS / f"{script}.py"), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def benchmark_report(path):
    """A benchmark's JSON report, which names this Keras and its command."""
    report = json.loads(Path(path).read_text())
    assert report["machine"]["versions"]["keras"] == keras.__version__
    assert report["command"].startswith("python benchmarks/")
    return report


def check_script_help(module, capsys):
    """A script's `--help` exits 0 and opens with the first line of its
    docstring: the question it answers."""
    with pytest.raises(SystemExit) as exit_info:
        module.build_parser().parse_args(["--help"])
    assert exit_info.value.code == 0
    assert module.__doc__.splitlines()[0] in capsys.readouterr().out


def check_bad_arguments_exit(module, argv, message, capsys):
    """A script's `main(argv)` exits 2 with `message` on stderr."""
    with pytest.raises(SystemExit) as exit_info:
        module.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def wait_for_mid_epoch_backup(proc, metadata_path, timeout):
    """The backup position (a dict) once `proc`'s run has backed up inside
    its second epoch, or None when it ends or `timeout` s pass first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            metadata = json.loads(metadata_path.read_text())
        except (OSError, ValueError):
            metadata = None
        if metadata and metadata["epoch"] == 1 and metadata["step"] > 0:
            return metadata
        time.sleep(0.05)
    return None


def read_csv(path):
    """The rows of a CSV file with a header, as dicts."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# === Numbers and gradients ===


def numpy(values):
    """float32 NumPy copies of tensors or variables."""
    return [keras.ops.convert_to_numpy(keras.ops.cast(v, "float32")) for v in values]


def assert_all_close(actual, expected, tolerance, what):
    """Two lists of arrays, equal in length and close element by element."""
    assert len(actual) == len(expected), what
    for index, (a, b) in enumerate(zip(actual, expected)):
        np.testing.assert_allclose(a, b, err_msg=f"{what} [{index}]", **tolerance)


def gradient_step(layer, x, cotangent, training):
    """One forward and backward pass of `sum(layer(x) * cotangent)`.

    `x` is cast to the layer's compute dtype, as the layer before it in a
    model would give it (`stateless_call` does not cast its inputs as
    `__call__` does). The layer's state updates (BN moving statistics, seed
    states) are applied, as a training step would. Each backend
    differentiates with its own machinery; on JAX under `jax.jit`, as `fit`
    runs it, so a tracer leaking out of a recomputed function fails here.

    Returns:
        `(outputs, input_gradient, weight_gradients)` as float32 NumPy
        arrays; weight gradients follow `layer.trainable_variables`.
    """
    x = keras.ops.cast(x, layer.compute_dtype)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = layer(x, training=training)
            loss = tf.reduce_sum(tf.cast(outputs, "float32") * cotangent)
        gradients = tape.gradient(loss, [x] + layer.trainable_variables)
    elif BACKEND == "torch":
        import torch

        x = x.detach().requires_grad_(True)
        outputs = layer(x, training=training)
        loss = torch.sum(outputs.float() * keras.ops.convert_to_tensor(cotangent))
        gradients = torch.autograd.grad(
            loss, [x] + [v.value for v in layer.trainable_variables]
        )
        outputs = outputs.detach()
    else:
        import jax

        def loss_fn(trainable, x, non_trainable):
            outputs, non_trainable = layer.stateless_call(
                trainable, non_trainable, x, training=training
            )
            loss = jax.numpy.sum(outputs.astype("float32") * cotangent)
            return loss, (outputs, non_trainable)

        step = jax.jit(jax.value_and_grad(loss_fn, argnums=(1, 0), has_aux=True))
        (_, (outputs, non_trainable)), (input_gradient, weight_gradients) = step(
            [v.value for v in layer.trainable_variables],
            x,
            [v.value for v in layer.non_trainable_variables],
        )
        for variable, value in zip(layer.non_trainable_variables, non_trainable):
            variable.assign(value)
        gradients = [input_gradient] + list(weight_gradients)
    assert keras.backend.standardize_dtype(outputs.dtype) == layer.compute_dtype
    outputs, *gradients = numpy([outputs] + list(gradients))
    return outputs, gradients[0], gradients[1:]


# === Tiny PreActResNets and one training step (tests/models/) ===

TINY = {
    "cifar_basic": dict(depth=8, base_width=4, classes=5, input_shape=(16, 16, 3)),
    "cifar_bottleneck": dict(
        depth=11, block_type="bottleneck", base_width=4, classes=5,
        input_shape=(16, 16, 3), shortcut="exclusive_gating",
    ),
    "imagenet": dict(
        layout="imagenet", stage_units=(1, 1, 1, 1), block_type="bottleneck",
        base_width=4, classes=5, input_shape=(64, 64, 3),
    ),
}


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def tiny(name="cifar_basic", **overrides):
    return keras_preact.PreActResNet(**{**TINY[name], **overrides})


def images(model, batch=2, seed=0):
    shape = (batch,) + tuple(model.input_shape[1:])
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def train_one_step(model, x, y, **compile_args):
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        **compile_args,
    )
    return model.train_on_batch(x, y)


def skip_unless_multi_step(steps_per_execution):
    """Skips on backends where Keras refuses `steps_per_execution` > 1."""
    if steps_per_execution > 1 and BACKEND == "torch":
        pytest.skip("Keras' torch backend takes steps_per_execution=1 only")


# === Data: images, tf.data batches and CIFAR archives (tests/data/) ===


def random_images(n, seed=0, size=32):
    """`n` random uint8 RGB images of `size` x `size` pixels."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def dataset_arrays(ds):
    """The images and labels of a tf.data dataset or a `keras.utils.PyDataset`,
    each batch concatenated."""
    xs, ys = [], []
    batches = (ds[i] for i in range(len(ds))) if isinstance(ds, keras.utils.PyDataset) else ds
    for x, y in batches:
        xs.append(np.asarray(x))
        ys.append(np.asarray(y))
    return np.concatenate(xs), np.concatenate(ys)


def batch_pickle(images, labels, label_key, protocol=2):
    """One batch file of the official CIFAR python archives, pickled."""
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    d = {
        b"batch_label": b"testing batch 1 of 1",
        label_key: [int(v) for v in labels],
        b"data": rows,
        b"filenames": [b"img_%d.png" % i for i in range(len(images))],
    }
    if label_key == b"fine_labels":
        d[b"coarse_labels"] = [int(v) // 5 for v in labels]
    return pickle.dumps(d, protocol=protocol)


def write_tar(path, members):
    """A .tar.gz file at `path` holding `members` (name -> bytes)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def make_imagenet_folder(shared_data, root):
    """Two class folders of real ImageNet JPEGs (symlinks), train and validation."""
    images = sorted((shared_data / "imagenet_sample").glob("*.JPEG"))
    if len(images) < 8:
        pytest.skip("imagenet_sample has fewer than 8 images")
    for split, chosen in (("train", images[:6]), ("validation", images[6:8])):
        for i, image in enumerate(chosen):
            folder = root / split / f"class{i % 2}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / image.name).symlink_to(image)
    return root


def cifar100_archive(tmp_path, n_train=12, n_test=8, train_member=None):
    """An official CIFAR-100 archive in `tmp_path`: `(path, (x_train, y_train),
    (x_test, y_test))`; `train_member` replaces the pickled training batch."""
    x_train, x_test = random_images(n_train, 1), random_images(n_test, 2)
    y_train, y_test = np.arange(n_train) * 7 % 100, np.arange(n_test) * 13 % 100
    members = {
        "cifar-100-python/train": train_member
        or batch_pickle(x_train, y_train, b"fine_labels"),
        "cifar-100-python/test": batch_pickle(x_test, y_test, b"fine_labels", protocol=4),
        "cifar-100-python/meta": pickle.dumps({b"fine_label_names": [b"apple"]}, protocol=2),
    }
    path = tmp_path / "cifar-100-python.tar.gz"
    write_tar(path, members)
    return path, (x_train, y_train), (x_test, y_test)


# === The tf.data pipelines' shared contract (tests/data/) ===


def check_pixels_for_a_self_normalizing_model(batches, statistics):
    """normalization=model: 0-255 pixels (padding the model's mean colour) that
    the model's own normalization turns into the normalized batches.

    Args:
        batches: `batches(**kwargs)` -> `(images, labels)` arrays of a pipeline.
        statistics: what the model was built with.

    Returns:
        The batches normalized with `statistics` by the pipeline.
    """
    # What PreActResNet(..., input_normalization=statistics) starts with.
    model = keras.Sequential([keras.Input((32, 32, 3)), nz.input_normalization_layer(statistics)])
    (pixels, labels), (normalized, labels_n) = (
        batches(normalization=model), batches(normalization=statistics))
    np.testing.assert_array_equal(labels, labels_n)
    assert pixels.dtype == np.float32 and pixels.min() >= 0 and pixels.max() <= 255
    assert pixels.max() > 100  # not normalized
    layer = model.get_layer(nz.INPUT_NORMALIZATION_LAYER)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(pixels)), normalized, atol=1e-4)
    return normalized


def check_channels_first_is_the_transpose(build, mixup=False):
    """`build(data_format=...)`: channels_first batches are the transpose of
    channels_last ones, None (the default) is Keras' image data format, and a
    bad value is refused. With `mixup`, shapes only: MixUp's draws differ from
    pipeline to pipeline."""
    last, last_labels = dataset_arrays(build(data_format="channels_last"))
    first, first_labels = dataset_arrays(build(data_format="channels_first"))
    keras.config.set_image_data_format("channels_first")
    default = dataset_arrays(build())[0]  # None (the default): Keras' image data format.
    if mixup:
        assert first.shape == default.shape == last.transpose(0, 3, 1, 2).shape
        assert first_labels.shape == last_labels.shape
    else:
        np.testing.assert_array_equal(first, last.transpose(0, 3, 1, 2))
        np.testing.assert_array_equal(first_labels, last_labels)
        np.testing.assert_array_equal(default, first)
    with pytest.raises(ValueError, match="Invalid data_format='NCHW'"):
        build(data_format="NCHW")


def channels_first_model(size=32):
    """A channels_first conv net on `size` x `size` RGB pixels that normalizes
    its own input (CIFAR-10 statistics)."""
    return keras.Sequential([
        keras.Input((3, size, size)),
        nz.input_normalization_layer("cifar10", data_format="channels_first"),
        keras.layers.Conv2D(2, 3, data_format="channels_first"),
    ])


def check_a_model_gets_its_own_layout(build, size=32):
    """`build(**kwargs)`: given a model as `normalization=` and no
    `data_format`, a pipeline gives batches in the model's data format, not
    in Keras' image data format (channels_last here)."""
    keras.config.set_image_data_format("channels_last")
    fed = dataset_arrays(build(normalization=channels_first_model(size)))[0]
    assert fed.shape[1] == 3 and fed.shape[-1] == size
    expected = dataset_arrays(build(normalization=channels_first_model(size),
                                    data_format="channels_first"))[0]
    np.testing.assert_array_equal(fed, expected)


def check_every_iteration_is_the_same_stream(dataset, batches):
    """A seeded training `dataset`, iterated twice, gives the same first
    `batches` batches (Keras' JAX and torch trainers iterate a dataset once to
    build the model, then again to train)."""
    def first():
        return [tuple(np.asarray(t) for t in batch) for _, batch in zip(range(batches), dataset)]

    for (x1, y1), (x2, y2) in zip(first(), first(), strict=True):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)


def check_batches_fit_a_keras_model(make_dataset, normalizing=False, one_hot=False):
    """`make_dataset(model)`'s batches feed `model.fit` on the suite's backend:
    a small conv net, normalizing its own input (CIFAR-10 statistics) where
    `normalizing`, with a loss for one-hot labels where `one_hot`."""
    layers = [keras.layers.Conv2D(4, 3, strides=2), keras.layers.GlobalAveragePooling2D(),
              keras.layers.Dense(10)]
    if normalizing:
        layers.insert(0, nz.input_normalization_layer("cifar10"))
    model = keras.Sequential([keras.Input((32, 32, 3)), *layers])
    ds = make_dataset(model)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if one_hot:
        loss = keras.losses.CategoricalCrossentropy(from_logits=True)
    model.compile("sgd", loss)
    hist = model.fit(ds, steps_per_epoch=2, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(hist.history["loss"][0])


# === Tiny networks for the signal diagnostics (tests/diagnostics/) ===


def signal_model(depth=20, ordering="full_preact", shortcut="identity", **kwargs):
    """A PreActResNet of `depth` on 16x16 images, base width 4, 10 classes, logits."""
    kwargs.setdefault("classifier_activation", None)
    return keras_preact.PreActResNet(
        depth, classes=10, input_shape=(16, 16, 3), base_width=4,
        unit_ordering=ordering, shortcut=shortcut, **kwargs,
    )


def signal_batch(n=4, seed=0):
    """`n` random 16x16 images and labels of 10 classes."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 16, 16, 3)).astype("float32"), rng.integers(0, 10, size=n)


# === SavedModel exports, loaded as TF Serving loads them (tests/export/) ===

# SavedModel export runs on these backends.
CAN_EXPORT = BACKEND in ("tensorflow", "jax")

needs_export_backend = pytest.mark.skipif(
    not CAN_EXPORT, reason=f"SavedModel export needs tensorflow/jax, not {BACKEND}"
)
# The smallest CIFAR model (32x32 inputs).
EXPORT_CIFAR = dict(depth=8, base_width=4)


def export_model(classes=100, seed=0, policy=None, weights_from=None, **kwargs):
    """A tiny PreActResNet with random, non-trivial weights and BN statistics.

    `kwargs` go to `PreActResNet` (default: CIFAR layout, 32x32, no input
    normalization); `weights_from` copies another model's weights instead.
    """
    keras.utils.set_random_seed(seed)
    channels_first = kwargs.get("data_format") == "channels_first"
    layout = {} if "layout" in kwargs else EXPORT_CIFAR
    kwargs = {**layout, "input_shape": (3, 32, 32) if channels_first else (32, 32, 3), **kwargs}
    old = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy or old)
    try:
        model = keras_preact.PreActResNet(classes=classes, name="tiny", **kwargs)
    finally:
        keras.config.set_dtype_policy(old)
    if weights_from is not None:
        model.set_weights(weights_from.get_weights())
        return model
    rng = np.random.default_rng(seed)
    weights = []
    for var in model.weights:
        w = np.asarray(keras.ops.convert_to_numpy(var))
        if "moving_variance" in var.path:
            w = rng.uniform(0.5, 2.0, w.shape)
        elif "moving_mean" in var.path or "beta" in var.path or "bias" in var.path:
            w = rng.normal(0.0, 0.2, w.shape)
        elif "gamma" in var.path:
            w = rng.uniform(0.5, 1.5, w.shape)
        weights.append(w.astype(var.dtype))
    model.set_weights(weights)
    return model


def predict_pixels(model, pixels, statistics=None):
    """`model.predict` on NHWC 0-255 pixels, normalized first with `statistics`
    (for a model that records none) and transposed for a channels_first model."""
    x = np.asarray(pixels, "float32")
    if statistics is not None:
        mean, std = STATISTICS[statistics].mean, STATISTICS[statistics].std
        x = (x - np.float32(mean)) * (1.0 / np.float32(std))
    if model.inputs[0].shape[1] == 3:
        x = np.transpose(x, (0, 3, 1, 2))
    return np.asarray(model.predict(x.astype("float32"), verbose=0), "float32")


def cifar_test_images(n=7):
    """The first `n` CIFAR-100 test images, or random ones without the shared data."""
    cifar_npz = SHARED_DATA / "cifar100" / "test.npz"
    if cifar_npz.exists():
        return np.load(cifar_npz)["x"][:n]
    return np.random.default_rng(1).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def png_bytes(image):
    """`image` (uint8 pixels) encoded as PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def tensorflow_env():
    """The environment of a TensorFlow process reading an export."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


# Runs in a fresh process: only TensorFlow, as a server would.
CHECKER = r"""
import json, sys, traceback
import numpy as np
import tensorflow as tf

path, spec_file, out_file = sys.argv[1:4]
spec = json.load(open(spec_file))
arrays = dict(np.load(spec["arrays"]))
encoded = {k: [open(p, "rb").read() for p in v] for k, v in spec["files"].items()}
out, errors, info = {}, {}, {}

def feed_value(kind):
    return encoded[kind] if kind in encoded else arrays[kind]

# 1. TF1 Session through SignatureDef tensor names (TF Serving's path).
with tf.compat.v1.Session(graph=tf.Graph()) as sess:
    meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
    for name, sig in meta.signature_def.items():
        if name.startswith("__"):  # __saved_model_init_op
            continue
        info[name] = {
            "method": sig.method_name,
            "inputs": {k: [v.name, tf.dtypes.as_dtype(v.dtype).name,
                           [d.size for d in v.tensor_shape.dim]] for k, v in sig.inputs.items()},
            "outputs": {k: [v.name, tf.dtypes.as_dtype(v.dtype).name,
                            [d.size for d in v.tensor_shape.dim]] for k, v in sig.outputs.items()},
        }
    for name, kind, sizes in spec["v1_calls"]:
        sig = meta.signature_def[name]
        fetch = {k: v.name for k, v in sig.outputs.items()}
        for n in sizes:
            value = feed_value(kind)[:n]
            res = sess.run(fetch, {sig.inputs["images"].name: value})
            for k, v in res.items():
                out[f"v1/{name}/{kind}/{n}/{k}"] = v
    for label, name, kind in spec["v1_errors"]:
        sig = meta.signature_def[name]
        fetch = {k: v.name for k, v in sig.outputs.items()}
        try:
            sess.run(fetch, {sig.inputs["images"].name: feed_value(kind)})
            errors[label] = "NO ERROR"
        except Exception as e:
            errors[label] = f"{type(e).__name__}: {e}"[:2000]

# 2. TF2 tf.saved_model.load (signatures).
loaded = tf.saved_model.load(path)
for name, kind, sizes in spec["v2_calls"]:
    fn = loaded.signatures[name]
    dtype = fn.structured_input_signature[1]["images"].dtype  # for an empty list of bytes
    for n in sizes:
        res = fn(images=tf.constant(feed_value(kind)[:n], dtype))
        for k, v in res.items():
            out[f"v2/{name}/{kind}/{n}/{k}"] = v.numpy()
for label, name, kind, dtype in spec["v2_errors"]:
    try:
        loaded.signatures[name](images=tf.constant(feed_value(kind), dtype=dtype))
        errors[label] = "NO ERROR"
    except Exception as e:
        errors[label] = f"{type(e).__name__}: {e}"[:2000]

np.savez(out_file, **out)
json.dump({"errors": errors, "signatures": info}, open(out_file + ".json", "w"))
"""


def run_checker(tmp, path, arrays, files, v1_calls, v2_calls=(), v1_errors=(), v2_errors=()):
    """Runs `CHECKER` on the SavedModel at `path` in a fresh process.

    Args:
        tmp: a folder for the checker's files.
        path: the SavedModel's folder.
        arrays: name -> array to feed; files: name -> list of image files to
            feed as encoded bytes.
        v1_calls, v2_calls: `[signature, input name, batch sizes]` to call
            through a TF1 Session (TF Serving's path) and `tf.saved_model.load`.
        v1_errors, v2_errors: `[label, signature, input name(, dtype)]` calls
            expected to fail.

    Returns:
        `(outputs, errors, signatures)`: outputs by
        `"{v1|v2}/{signature}/{input}/{n}/{output}"`, error messages by label,
        and each SignatureDef's method, inputs and outputs.
    """
    tmp = Path(tmp)
    np.savez(tmp / "arrays.npz", **arrays)
    spec = {
        "arrays": str(tmp / "arrays.npz"),
        "files": files,
        "v1_calls": v1_calls,
        "v2_calls": v2_calls,
        "v1_errors": v1_errors,
        "v2_errors": v2_errors,
    }
    (tmp / "spec.json").write_text(json.dumps(spec))
    out_file = str(tmp / "out.npz")
    proc = subprocess.run(
        [sys.executable, "-c", CHECKER, str(path), str(tmp / "spec.json"), out_file],
        capture_output=True,
        text=True,
        env=tensorflow_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    meta = json.loads(Path(out_file + ".json").read_text())
    return dict(np.load(out_file)), meta["errors"], meta["signatures"]


# === The Markdown documents (tests/docs/) ===

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def fenced_blocks(path):
    """The fenced code blocks of a Markdown file, in order.

    Returns:
        list of `(language, first_line, heading, code)`: the fence's language
        (lower case, "" if none), the 1-based line of the block's first code
        line, the nearest heading above it and the block's text.

    Raises:
        ValueError: a fence left open at the end of the file.
    """
    blocks, heading, fence, start, lines = [], "", None, 0, []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if fence is None:
            if stripped.startswith("```"):
                fence, start, lines = stripped[3:].strip().lower(), number + 1, []
            elif line.startswith("#"):
                heading = line
        elif stripped == "```":
            blocks.append((fence, start, heading, "\n".join(lines) + "\n"))
            fence = None
        else:
            lines.append(line)
    if fence is not None:
        raise ValueError(f"{path}: a ```{fence} block is never closed.")
    return blocks
