"""The fastest training settings per backend, precision and device, measured.

`fastest_settings()` gives the `jit_compile`, `data_format` and
`steps_per_execution` under which PreActResNet-164 (CIFAR shapes) trained
fastest: on a CPU, `benchmarks/fastest_settings.py` (every combination,
interleaved rounds); on a GPU, `benchmarks/gpu_check.py` on one H200, which
ran one setting per backend (no alternative measured there). The example
scripts use them for `--jit-compile`, `--data-format` and
`--steps-per-execution` when those are not given. Every entry names the file
it comes from; a setting nobody measured is Keras' own default and says so.
"""

import contextlib

import keras

from keras_preact.training.precision import accelerator_info
from keras_preact.validation import check_choice

CPU_RESULTS = "benchmarks/results/fastest_settings_cpu2_2026-12-01.json"
GPU_RESULTS = "benchmarks/results/gpu_check_h200_2026-11-30.json"
KERAS_DEFAULT = "Keras default, not measured"
BACKENDS = ("tensorflow", "jax", "torch")
PRECISIONS = ("float32", "mixed")
DEVICES = ("cpu", "gpu", "tpu")
_KERAS_DEFAULTS = ("auto", "channels_last", 1, KERAS_DEFAULT)
_GPU_ONLY_RUN = f"{GPU_RESULTS} (the one setting run; steps_per_execution: {KERAS_DEFAULT})"
_SPE_NOT_RUN = f"{CPU_RESULTS} (steps_per_execution: {KERAS_DEFAULT})"

# (backend, precision, device): (jit_compile, data_format, steps_per_execution, source).
# Absent keys get Keras' defaults: JAX mixed on CPUs (its sweep did not fit the
# session: one XLA compile of the PreActResNet-164 step took ~6 minutes at load 11),
# float32 and TensorFlow on GPUs, TPUs.
FASTEST = {
    ("tensorflow", "float32", "cpu"): (False, "channels_last", 1, CPU_RESULTS),
    ("tensorflow", "mixed", "cpu"): (False, "channels_last", 1, CPU_RESULTS),
    ("jax", "float32", "cpu"): (True, "channels_last", 1, _SPE_NOT_RUN),
    ("torch", "float32", "cpu"): (False, "channels_last", 1, CPU_RESULTS),
    ("torch", "mixed", "cpu"): (False, "channels_last", 1, CPU_RESULTS),
    ("jax", "mixed", "gpu"): (True, "channels_last", 1, _GPU_ONLY_RUN),
    ("torch", "mixed", "gpu"): (False, "channels_last", 1, _GPU_ONLY_RUN),
}


def fastest_settings(backend=None, precision="float32", device=None, **given):
    """The measured fastest compile settings, with explicit ones kept.

    Args:
        backend: "tensorflow", "jax", "torch" or None (the active backend).
        precision: "float32", "mixed", or a Keras policy name
            ("mixed_bfloat16", "mixed_float16" count as "mixed").
        device: "cpu", "gpu", "tpu" or None (the first accelerator the
            backend sees, `accelerator_info()`).
        **given: `jit_compile`, `data_format`, `steps_per_execution` the
            user chose; a value of None means "not given".

    Returns:
        dict with "jit_compile" (bool or "auto"), "data_format"
        ("channels_last" or "channels_first"), "steps_per_execution" (int)
        and "source" (the results file, or `KERAS_DEFAULT`).

    Raises:
        ValueError: an unknown backend, precision, device or setting name.

    Example:

    >>> fastest_settings("jax", "mixed_bfloat16", "cpu")["jit_compile"]
    True
    """
    backend = check_choice("backend", backend or keras.backend.backend(), BACKENDS)
    if precision.startswith("mixed"):
        precision = "mixed"
    check_choice("precision", precision, PRECISIONS)
    device = check_choice("device", device or accelerator_info()["kind"], DEVICES)
    values = FASTEST.get((backend, precision, device), _KERAS_DEFAULTS)
    names = ("jit_compile", "data_format", "steps_per_execution", "source")
    settings = dict(zip(names, values))
    for name, value in given.items():
        check_choice("setting", name, names[:3])
        if value is not None:
            settings[name] = value
            settings["source"] += f"; {name} given"
    return settings


@contextlib.contextmanager
def image_data_format(data_format):
    """Sets Keras' global image data format inside the `with` block only."""
    previous = keras.config.image_data_format()
    keras.config.set_image_data_format(data_format)
    try:
        yield
    finally:
        keras.config.set_image_data_format(previous)


def in_data_format(data, data_format):
    """`data` with its images in `data_format` (the pipelines give channels_last).

    Args:
        data: a `tf.data.Dataset` of `(images, labels, ...)` batches with
            images `(batch, height, width, channels)`, a callable
            `start_step -> such a dataset`, or None.
        data_format: "channels_last" (returned as is) or "channels_first"
            (images transposed to `(batch, channels, height, width)`).

    Returns:
        the same kind of object as `data`.
    """
    if data is None or data_format == "channels_last":
        return data
    if callable(data):
        return lambda *args, **kwargs: in_data_format(data(*args, **kwargs), data_format)
    import tensorflow as tf

    return data.map(lambda x, *rest: (tf.transpose(x, (0, 3, 1, 2)), *rest))
