"""Mixed-precision policy selection.

`resolve_precision("auto")` picks `mixed_bfloat16` where the accelerator
computes bfloat16 natively (NVIDIA GPUs with compute capability >= 8.0,
i.e. Ampere and newer; TPUs) and `float32` otherwise (CPU, older GPUs; pass
"float16" explicitly for Volta/Turing tensor cores). Detection is done with
the active backend's own device API.
"""

import keras

from keras_preact.validation import check_choice

VALID_PRECISIONS = ("off", "float32", "float16", "bfloat16", "auto")
_POLICIES = {"off": "float32", "float32": "float32", "float16": "mixed_float16",
             "bfloat16": "mixed_bfloat16"}


def accelerator_info():
    """Describes the first accelerator the active Keras backend sees.

    Returns:
        dict with `"kind"` ("gpu", "tpu" or "cpu") and
        `"compute_capability"` (tuple of two ints for NVIDIA GPUs, else None).

    Example:

    >>> accelerator_info()["kind"] in ("cpu", "gpu", "tpu")
    True
    """
    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            if tf.config.list_logical_devices("TPU"):
                return {"kind": "tpu", "compute_capability": None}
            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                cc = details.get("compute_capability")
                return {"kind": "gpu", "compute_capability": tuple(cc) if cc else None}
        elif backend == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform == "tpu":
                return {"kind": "tpu", "compute_capability": None}
            if device.platform == "gpu":
                cc = getattr(device, "compute_capability", None)
                if isinstance(cc, str):
                    cc = tuple(int(p) for p in cc.split(".")[:2])
                return {"kind": "gpu", "compute_capability": cc}
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                cc = tuple(torch.cuda.get_device_capability(0))
                return {"kind": "gpu", "compute_capability": cc}
    except Exception:  # Device query failures mean: treat as CPU.
        pass
    return {"kind": "cpu", "compute_capability": None}


def list_devices():
    """Names of the devices the active Keras backend can train on.

    Returns:
        list of str, accelerators first, e.g. `["gpu:0", "gpu:1"]`,
        `["cuda:0 (NVIDIA H200)"]` on torch, or `["cpu:0"]`.

    Example:

    >>> list_devices()
    ['cpu:0']
    """
    if keras.backend.backend() == "torch":
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        names = [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(count)]
        return names or ["cpu:0"]
    return list(keras.distribution.list_devices())


def resolve_precision(mode="auto", info=None):
    """Maps a precision mode to a Keras dtype policy name.

    Args:
        mode: str. One of "off" / "float32" (no mixed precision), "float16",
            "bfloat16", "auto" (bfloat16 on TPU or GPU with compute capability
            >= 8, float32 otherwise). Defaults to "auto".
        info: dict or None. Result of `accelerator_info()`; queried when None.

    Returns:
        "float32", "mixed_float16" or "mixed_bfloat16".

    Raises:
        ValueError: an unknown `mode`.

    Example:

    >>> resolve_precision("auto", info={"kind": "gpu", "compute_capability": (8, 0)})
    'mixed_bfloat16'
    """
    if check_choice("mode", mode, VALID_PRECISIONS) != "auto":
        return _POLICIES[mode]
    info = accelerator_info() if info is None else info
    if info["kind"] == "tpu":
        return "mixed_bfloat16"
    cc = info.get("compute_capability")
    if info["kind"] == "gpu" and cc is not None and tuple(cc) >= (8, 0):
        return "mixed_bfloat16"
    return "float32"


def set_precision(mode="auto"):
    """Sets the global Keras dtype policy from a precision mode.

    Call it before building the model. Under "mixed_float16", `model.compile`
    wraps the optimizer in `keras.optimizers.LossScaleOptimizer`.

    Args:
        mode: str. See `resolve_precision`.

    Returns:
        The policy name that was set.
    """
    policy = resolve_precision(mode)
    keras.config.set_dtype_policy(policy)
    return policy
