"""Export a keras_preact classifier as a TensorFlow Serving SavedModel."""

import json
import os
import re
import shutil
import uuid

import keras
import numpy as np

from keras_preact.install_hints import import_tensorflow
from keras_preact.models.outputs import outputs_logits

SUPPORTED_BACKENDS = ("tensorflow", "jax")
VALID_PREPROCESSING = ("cifar10", "cifar100", "imagenet", None)
VALID_SERVING_DTYPES = ("float32", "mixed_float16", "mixed_bfloat16", None)
DEFAULT_MAX_IMAGE_BYTES = 10 * 1024 * 1024

# Signature names (documented in docs/serving.md).
SIGNATURE_FLOAT = "serving_default"
SIGNATURE_UINT8 = "serving_uint8"
SIGNATURE_BYTES = "serving_bytes"
SIGNATURE_NORMALIZED = "serving_normalized"
SIGNATURES = (SIGNATURE_FLOAT, SIGNATURE_UINT8, SIGNATURE_BYTES, SIGNATURE_NORMALIZED)

_VERSION_RE = re.compile(r"^[0-9]+$")


class UnsupportedBackendError(RuntimeError):
    """Raised when SavedModel export is asked for on a backend that cannot do it."""


def _unsupported_backend_message(backend):
    return (
        f"SavedModel export is not supported on the {backend!r} Keras backend "
        f"(supported: {', '.join(SUPPORTED_BACKENDS)}). Keras' torch route "
        "(model.export(format='tf_saved_model')) fails on torch.export dynamic "
        "shapes. Way out: save the model with model.save('model.keras') and "
        "export it from a TensorFlow process:\n"
        "    KERAS_BACKEND=tensorflow python -m keras_preact.export "
        "--model model.keras --export-base DIR --model-name NAME\n"
        "(the CLI does this re-launch by itself when started under torch)."
    )


def existing_versions(model_dir):
    """Integer version directories already present in `<base>/<model_name>`.

    Args:
        model_dir: path of `<export_base>/<model_name>`.

    Returns:
        Sorted list of `int` (empty when the folder does not exist).
    """
    if not os.path.isdir(model_dir):
        return []
    return sorted(
        int(name)
        for name in os.listdir(model_dir)
        if _VERSION_RE.match(name) and os.path.isdir(os.path.join(model_dir, name))
    )


def next_version(model_dir):
    """Next TF Serving version number: one more than the largest existing one (1 if none)."""
    versions = existing_versions(model_dir)
    return versions[-1] + 1 if versions else 1


def _resolve_normalization(preprocessing, mean, std):
    if preprocessing not in VALID_PREPROCESSING:
        raise ValueError(
            f"Unknown preprocessing={preprocessing!r}. Expected one of "
            f"{VALID_PREPROCESSING}."
        )
    from keras_preact import preprocessing as pp

    table = {
        "cifar10": (pp.CIFAR10_MEAN, pp.CIFAR10_STD),
        "cifar100": (pp.CIFAR100_MEAN, pp.CIFAR100_STD),
        "imagenet": (pp.IMAGENET_MEAN, pp.IMAGENET_STD),
        None: ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    }
    default_mean, default_std = table[preprocessing]
    mean = default_mean if mean is None else mean
    std = default_std if std is None else std
    mean = pp._check_stats("mean", mean, 3)
    std = pp._check_stats("std", std, 3)
    if any(s <= 0 for s in std):
        raise ValueError(f"Expected all std values > 0. Received: std={std!r}")
    return mean, std


def _image_size(model, image_size):
    shape = tuple(model.inputs[0].shape) if getattr(model, "inputs", None) else None
    if shape is None or len(shape) != 4:
        raise ValueError(
            "Expected a model with one 4D NHWC image input. Received input "
            f"shape {shape}."
        )
    if shape[-1] != 3:
        raise ValueError(
            "Expected a channels_last model with 3 input channels (NHWC). "
            f"Received input shape {shape}."
        )
    if image_size is None:
        if shape[1] is None or shape[2] is None:
            raise ValueError(
                f"The model input has unknown spatial size {shape}; pass "
                "image_size=(height, width)."
            )
        return int(shape[1]), int(shape[2])
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    image_size = tuple(int(s) for s in image_size)
    if len(image_size) != 2 or min(image_size) < 1:
        raise ValueError(
            f"Expected image_size=(height, width) of positive ints. Received: {image_size!r}"
        )
    for got, want in zip(image_size, shape[1:3]):
        if want is not None and got != want:
            raise ValueError(
                f"image_size={image_size} does not match the model input shape {shape}."
            )
    return image_size


def _rewrite_policies(config, target):
    """Returns `config` with every float DTypePolicy set to `target`."""
    if isinstance(config, dict):
        if config.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and isinstance(
            config.get("config"), dict
        ):
            new = dict(config)
            new["config"] = dict(config["config"], name=target)
            return new
        return {k: _rewrite_policies(v, target) for k, v in config.items()}
    if isinstance(config, list):
        return [_rewrite_policies(v, target) for v in config]
    return config


def with_dtype_policy(model, dtype_policy):
    """Rebuilds `model` under `dtype_policy` (e.g. "float32") with the same weights.

    A model trained under `mixed_float16`/`mixed_bfloat16` keeps float32
    variables, so the rebuilt float32 model computes the same function at full
    precision. Returns `model` itself when every layer already uses the policy.

    Args:
        model: a functional `keras.Model` (its layers must be serializable).
        dtype_policy: a Keras float dtype policy name.

    Returns:
        A `keras.Model`.
    """
    names = {layer.dtype_policy.name for layer in model._flatten_layers()}
    if names <= {dtype_policy}:
        return model
    try:
        config = keras.saving.serialize_keras_object(model)
        rebuilt = keras.saving.deserialize_keras_object(_rewrite_policies(config, dtype_policy))
    except Exception as e:  # e.g. a layer that cannot be re-created from its config
        raise ValueError(
            f"Could not rebuild model {model.name!r} under the {dtype_policy!r} dtype "
            f"policy ({type(e).__name__}: {e}). Pass serving_dtype=None to export it "
            "with its own policies."
        ) from e
    rebuilt.set_weights(
        [
            np.asarray(w, dtype=v.dtype)
            for w, v in zip(model.get_weights(), rebuilt.weights)
        ]
    )
    return rebuilt


def _headless(model):
    """The global-pooled feature vector model for `features_only=True`."""
    names = [layer.name for layer in model.layers]
    for name in ("avg_pool", "max_pool"):
        if name in names:
            return keras.Model(model.inputs, model.get_layer(name).output, name=f"{model.name}_features")
    if len(model.outputs[0].shape) == 4:
        pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(model.outputs[0])
        return keras.Model(model.inputs, pooled, name=f"{model.name}_features")
    if len(model.outputs[0].shape) == 2 and "predictions" not in names:
        return model  # already include_top=False with pooling
    raise ValueError(
        "features_only=True needs a model with an 'avg_pool'/'max_pool' layer, a "
        "4D feature-map output, or a pooled 2D output without 'predictions'. "
        f"Received a model with output shape {model.outputs[0].shape}."
    )


def _check_name(model_name):
    if (
        not isinstance(model_name, str)
        or not model_name
        or model_name.startswith(".")
        or "/" in model_name
        or "\\" in model_name
        or _VERSION_RE.match(model_name)
    ):
        raise ValueError(
            f"Invalid model_name={model_name!r}. Expected a non-empty folder name "
            "without path separators, not starting with '.', not all digits."
        )


def export_saved_model(
    model,
    export_base,
    model_name="preact_resnet",
    *,
    version=None,
    mean=None,
    std=None,
    preprocessing="cifar100",
    top_k=5,
    include_encoded_image_signature=True,
    image_size=None,
    eval_resize=None,
    max_image_bytes=DEFAULT_MAX_IMAGE_BYTES,
    serving_dtype="float32",
    features_only=False,
    from_logits=None,
    verbose=False,
):
    """Exports a classifier as a TensorFlow Serving SavedModel.

    Writes `<export_base>/<model_name>/<version>/` (the layout TF Serving
    watches). The export goes to a hidden temporary folder inside
    `<export_base>/<model_name>/` (TF Serving ignores non-integer names) and is
    renamed to the version folder when complete, so a server never sees a
    half-written version. An existing version is never overwritten.

    Signatures (all accept any batch size; normalization is in the graph):
    - `serving_default`: `images` float32 `(None, H, W, 3)`, RGB on 0-255.
    - `serving_uint8`: `images` uint8 `(None, H, W, 3)`.
    - `serving_bytes`: `images` string `(None,)` of encoded JPEG/PNG (decoded to
      RGB, resized like the evaluation pipeline). Only with
      `include_encoded_image_signature=True`.
    - `serving_normalized`: `images` float32 already normalized (the model's
      own input contract); returns `probabilities` only.
    Outputs: `probabilities` float32 `(None, classes)`, `classes` int32
    `(None, k)` top-k indices, `scores` float32 `(None, k)` their
    probabilities; with `features_only=True` only `features` float32
    `(None, channels)`. Bad requests (undecodable, empty or oversized images,
    pixel tensors of the wrong shape) fail with `InvalidArgumentError`.

    Args:
        model: functional `keras.Model`, normalized float NHWC input,
            softmax or logits output (see `from_logits`), or any model with
            a global-pooling layer for `features_only=True`.
        export_base: base folder (TF Serving's `base_path` parent).
        model_name: model folder name (the name TF Serving serves it under).
        version: positive int, or `None` for one more than the largest existing.
        mean: per-channel mean (0-255 scale); defaults to the `preprocessing` one.
        std: per-channel std (0-255 scale); defaults to the `preprocessing` one.
        preprocessing: `"cifar10"`, `"cifar100"`, `"imagenet"` or `None`
            (no normalization unless `mean`/`std` are given). `"imagenet"` also
            makes `serving_bytes` resize the shorter side and center crop.
        top_k: number of `classes`/`scores` per image (capped at the number of
            classes).
        include_encoded_image_signature: add the `serving_bytes` signature.
        image_size: `(height, width)`; defaults to the model's input size.
        eval_resize: shorter-side size before the center crop in
            `serving_bytes`; `None` means round(size / 0.875) for `"imagenet"`
            and a plain resize to `image_size` otherwise. `0` forces a plain resize.
        max_image_bytes: largest encoded image accepted by `serving_bytes`.
        serving_dtype: dtype policy of the served computation: `"float32"`
            (default; a mixed-precision model is rebuilt in float32 with the same
            weights), `"mixed_float16"`, `"mixed_bfloat16"`, or `None` to keep
            the model's own policies. Inputs/outputs are float32 regardless.
        features_only: export the headless model (global-pooled features).
        from_logits: bool or `None`. Whether the model outputs logits; a
            logits model is served with the softmax applied, so
            `probabilities` always holds probabilities. `None` reads it from
            the graph (`keras_preact.models.outputs.classifier_output`) and
            raises `ValueError` when the graph does not tell.
        verbose: print Keras' endpoint summary.

    Returns:
        `str`, the version folder written.

    Raises:
        UnsupportedBackendError: on a backend other than TensorFlow or JAX.
        ModuleNotFoundError: TensorFlow is not installed (the message gives
            the install line).
        ValueError: for bad arguments.

    Example:

    ```python
    model = keras_preact.PreActResNet20(classes=100)
    path = export_saved_model(model, "/models", "preact20", preprocessing="cifar100")
    # /models/preact20/1
    ```
    """
    backend = keras.backend.backend()
    if backend not in SUPPORTED_BACKENDS:
        raise UnsupportedBackendError(_unsupported_backend_message(backend))
    import_tensorflow("SavedModel export")
    _check_name(model_name)
    if not isinstance(model, keras.Model):
        raise ValueError(f"Expected a keras.Model. Received: {type(model).__name__}")
    if serving_dtype not in VALID_SERVING_DTYPES:
        raise ValueError(
            f"Unknown serving_dtype={serving_dtype!r}. Expected one of {VALID_SERVING_DTYPES}."
        )
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1
    ):
        raise ValueError(f"Expected version to be a positive int or None. Received: {version!r}")
    if not isinstance(max_image_bytes, (int, np.integer)) or not 0 < max_image_bytes < 2**31:
        raise ValueError(
            f"Expected 0 < max_image_bytes < 2**31. Received: max_image_bytes={max_image_bytes!r}"
        )
    mean, std = _resolve_normalization(preprocessing, mean, std)
    image_size = _image_size(model, image_size)
    if eval_resize is None and preprocessing == "imagenet":
        from keras_preact.image_ops import default_eval_resize

        eval_resize = default_eval_resize(image_size)
    if eval_resize == 0:
        eval_resize = None
    if eval_resize is not None and eval_resize < max(image_size):
        raise ValueError(
            f"eval_resize={eval_resize} must be >= max(image_size)={max(image_size)} "
            "(it is the shorter side before the center crop)."
        )

    apply_softmax = not features_only and outputs_logits(model, from_logits)
    if serving_dtype is not None:
        model = with_dtype_policy(model, serving_dtype)
    if features_only:
        model = _headless(model)
        num_outputs = model.outputs[0].shape[-1]
    else:
        num_outputs = model.outputs[0].shape[-1]
        if not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise ValueError(f"Expected top_k to be a positive int. Received: top_k={top_k!r}")
        top_k = int(min(top_k, num_outputs))

    model_dir = os.path.join(os.fspath(export_base), model_name)
    if version is None:
        version = next_version(model_dir)
    version = int(version)
    final_dir = os.path.join(model_dir, str(version))
    if os.path.exists(final_dir):
        raise FileExistsError(
            f"Version {version} of {model_name!r} already exists at {final_dir!r}; "
            "exports never overwrite. Pass another version or version=None for "
            f"the next free one ({next_version(model_dir)})."
        )
    os.makedirs(model_dir, exist_ok=True)
    tmp_dir = os.path.join(model_dir, f".tmp-{version}-{uuid.uuid4().hex}")
    try:
        _write_archive(
            model,
            tmp_dir,
            mean=mean,
            std=std,
            image_size=image_size,
            top_k=top_k,
            features_only=features_only,
            apply_softmax=apply_softmax,
            include_bytes=include_encoded_image_signature,
            eval_resize=eval_resize,
            max_image_bytes=int(max_image_bytes),
            verbose=verbose,
        )
        info = {
            "model_name": model_name,
            "version": version,
            "keras_backend": backend,
            "image_size": list(image_size),
            "preprocessing": preprocessing,
            "mean": list(mean),
            "std": list(std),
            "eval_resize": eval_resize,
            "top_k": None if features_only else top_k,
            "features_only": bool(features_only),
            "num_outputs": int(num_outputs),
            "serving_dtype": serving_dtype,
            "signatures": _signature_names(include_encoded_image_signature),
        }
        extra = os.path.join(tmp_dir, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        with open(os.path.join(extra, "keras_preact_export.json"), "w") as f:
            json.dump(info, f, indent=2)
        if os.path.exists(final_dir):
            raise FileExistsError(
                f"Version {version} of {model_name!r} appeared at {final_dir!r} "
                "during the export; not overwriting it."
            )
        os.rename(tmp_dir, final_dir)
    finally:
        if os.path.exists(tmp_dir):
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return final_dir


def _signature_names(include_bytes):
    return [s for s in SIGNATURES if include_bytes or s != SIGNATURE_BYTES]


def _write_archive(
    model,
    path,
    *,
    mean,
    std,
    image_size,
    top_k,
    features_only,
    apply_softmax,
    include_bytes,
    eval_resize,
    max_image_bytes,
    verbose,
):
    import tensorflow as tf

    from keras_preact import image_ops

    height, width = image_size
    ops = keras.ops

    output_name = "features" if features_only else "probabilities"

    def normalized_fn(images):
        # Only the Keras model runs here (converted by jax2tf on JAX); top-k is
        # done with TF ops below: jax.lax.top_k serializes to a StableHLO
        # composite newer than TF 2.21's XlaCallModule can read.
        outputs = ops.cast(model(images, training=False), "float32")
        if apply_softmax:
            outputs = ops.softmax(outputs, axis=-1)
        return {output_name: outputs}

    archive = keras.export.ExportArchive()
    archive.track(model)
    kwargs = {}
    if keras.backend.backend() == "jax":
        # Batch is polymorphic ("batch"); spatial dims are fixed by image_size.
        kwargs["jax2tf_kwargs"] = {"polymorphic_shapes": [f"(batch, {height}, {width}, 3)"]}
    core = archive.add_endpoint(
        SIGNATURE_NORMALIZED,
        normalized_fn,
        input_signature=[tf.TensorSpec((None, height, width, 3), tf.float32, name="images")],
        **kwargs,
    )

    mean_t = tf.constant(mean, tf.float32)
    inv_std_t = tf.constant([1.0 / s for s in std], tf.float32)

    def with_top_k(outputs):
        if features_only:
            return outputs
        probabilities = outputs["probabilities"]
        scores, classes = tf.math.top_k(probabilities, k=top_k)
        return {"probabilities": probabilities, "classes": classes, "scores": scores}

    def from_pixels(images):
        images = tf.ensure_shape(images, (None, height, width, 3))
        return with_top_k(core((tf.cast(images, tf.float32) - mean_t) * inv_std_t))

    @tf.function(input_signature=[tf.TensorSpec((None, height, width, 3), tf.float32, name="images")])
    def serving_default(images):
        return from_pixels(images)

    @tf.function(input_signature=[tf.TensorSpec((None, height, width, 3), tf.uint8, name="images")])
    def serving_uint8(images):
        return from_pixels(images)

    endpoints = {SIGNATURE_FLOAT: serving_default, SIGNATURE_UINT8: serving_uint8}

    if include_bytes:

        @tf.function(input_signature=[tf.TensorSpec((None,), tf.string, name="images")])
        def serving_bytes(images):
            pixels = tf.map_fn(
                lambda b: image_ops.decode_and_resize(b, image_size, eval_resize, max_image_bytes),
                images,
                fn_output_signature=tf.TensorSpec((height, width, 3), tf.float32),
            )
            return from_pixels(pixels)

        endpoints[SIGNATURE_BYTES] = serving_bytes

    for name, fn in endpoints.items():
        fn.get_concrete_function()
        archive.add_endpoint(name, fn)
    archive.write_out(path, verbose=verbose)
