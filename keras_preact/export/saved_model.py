"""Export any keras_preact classifier as a TensorFlow Serving SavedModel: the
served graph takes 0-255 RGB pixels (NHWC) and reads from the model how to
prepare them (recorded input statistics, data format) and what it outputs."""

import os
import re
import shutil
import uuid

import keras
import numpy as np

from keras_preact.install_hints import import_tensorflow
from keras_preact.io import atomic_write_json
from keras_preact.models.outputs import outputs_logits
from keras_preact.normalization import model_data_format
from keras_preact.normalization import normalize
from keras_preact.normalization import serving_statistics
from keras_preact.validation import check_choice
from keras_preact.validation import check_int

SUPPORTED_BACKENDS = ("tensorflow", "jax")
VALID_SERVING_DTYPES = ("float32", "mixed_float16", "mixed_bfloat16", None)
DEFAULT_MAX_IMAGE_BYTES = 10 * 1024 * 1024

# Signature names (documented in docs/serving.md).
SIGNATURE_FLOAT = "serving_default"
SIGNATURE_UINT8 = "serving_uint8"
SIGNATURE_BYTES = "serving_bytes"
SIGNATURES = (SIGNATURE_FLOAT, SIGNATURE_UINT8, SIGNATURE_BYTES)

_VERSION_RE = re.compile(r"^[0-9]+$")


class UnsupportedBackendError(RuntimeError):
    """Raised when SavedModel export is asked for on a backend that cannot do it."""


def existing_versions(model_dir):
    """Integer version directories already present in `<base>/<model_name>`.

    Args:
        model_dir: path of `<export_base>/<model_name>`.

    Returns:
        Sorted list of `int` (empty when the folder does not exist).
    """
    if not os.path.isdir(model_dir):
        return []
    names = [n for n in os.listdir(model_dir) if os.path.isdir(os.path.join(model_dir, n))]
    return sorted(int(n) for n in names if _VERSION_RE.match(n))


def next_version(model_dir):
    """Next TF Serving version number: one more than the largest existing one (1 if none)."""
    versions = existing_versions(model_dir)
    return versions[-1] + 1 if versions else 1


def _input_layout(model, image_size):
    """`((height, width), channels_first)` of the model's one image input."""
    shape = tuple(model.inputs[0].shape) if getattr(model, "inputs", None) else None
    data_format = model_data_format(model)
    channels_first = data_format == "channels_first"
    if shape is None or len(shape) != 4 or shape[1 if channels_first else 3] != 3:
        raise ValueError(
            "Expected a model with one 4D RGB image input (3 channels). Received "
            f"input shape {shape}, data format {data_format or 'unknown'}."
        )
    spatial = shape[2:] if channels_first else shape[1:3]
    if image_size is None:
        if None in spatial:
            raise ValueError(
                f"The model input has unknown spatial size {shape}; pass "
                "image_size=(height, width)."
            )
        image_size = spatial
    image_size = (image_size, image_size) if np.ndim(image_size) == 0 else tuple(image_size)
    if len(image_size) != 2:
        raise ValueError(f"Invalid image_size={image_size!r}. Expected (height, width).")
    image_size = tuple(check_int("image_size", s, low=1) for s in image_size)
    if any(want is not None and got != want for got, want in zip(image_size, spatial)):
        raise ValueError(f"image_size={image_size} does not match the model input shape {shape}.")
    return image_size, channels_first


def _rewrite_policies(config, target):
    """Returns `config` with every float DTypePolicy set to `target`."""
    if isinstance(config, dict):
        is_policy = config.get("class_name") in ("DTypePolicy", "FloatDTypePolicy")
        if is_policy and isinstance(config.get("config"), dict):
            return dict(config, config=dict(config["config"], name=target))
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

    Raises:
        ValueError: the model cannot be rebuilt from its config.
    """
    try:
        config = keras.saving.serialize_keras_object(model)
        rewritten = _rewrite_policies(config, dtype_policy)
        if rewritten == config:
            return model
        rebuilt = keras.saving.deserialize_keras_object(rewritten)
    except Exception as e:  # e.g. a layer that cannot be re-created from its config
        raise ValueError(
            f"Could not rebuild model {model.name!r} under the {dtype_policy!r} dtype "
            f"policy ({type(e).__name__}: {e}). Pass serving_dtype=None to export it "
            "with its own policies."
        ) from e
    rebuilt.set_weights([np.asarray(w, v.dtype) for w, v in zip(model.get_weights(), rebuilt.weights)])
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
    folder = isinstance(model_name, str) and re.fullmatch(r"[^./\\][^/\\]*", model_name)
    if not folder or _VERSION_RE.match(model_name):
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
    normalization=None,
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
    watches) through a hidden temporary folder renamed when complete, so a
    server never sees a half-written version; an existing one is never
    overwritten. Every signature takes RGB pixels on 0-255, channels last,
    any batch size (zero images give empty outputs), whatever the model's
    data format (a `channels_first` model gets its transpose in the graph),
    and normalizes as the model records
    (`keras_preact.normalization.serving_statistics`); see docs/serving.md:
    - `serving_default`: `images` float32 `(None, H, W, 3)`.
    - `serving_uint8`: `images` uint8 `(None, H, W, 3)`.
    - `serving_bytes`: `images` string `(None,)` of encoded JPEG/PNG/GIF/BMP,
      decoded and resized like the evaluation pipeline
      (`keras_preact.image_ops.decode_and_resize`).
    Outputs: `probabilities` float32 `(None, classes)` (a softmax head's
    output, or the softmax of the logits), `logits` float32 `(None, classes)`
    only for a logits head (`classifier_activation=None`), `classes` int32
    `(None, k)` top-k indices best first, `scores` float32 `(None, k)` their
    probabilities; with `features_only=True` only `features` float32
    `(None, channels)`. Bad requests (undecodable, empty or oversized images,
    pixel tensors of the wrong shape) fail with `InvalidArgumentError`.

    Args:
        model: functional `keras.Model` with one RGB image input, either data
            format, softmax or logits output (see `from_logits`), or any model
            with a global-pooling layer for `features_only=True`.
        export_base: base folder (TF Serving's `base_path` parent).
        model_name: model folder name (the name TF Serving serves it under).
        version: positive int, or `None` for one more than the largest existing.
        normalization: `None` to use the statistics the model records; for a
            model that records none, `"cifar10"`, `"cifar100"`, `"imagenet"`,
            a `(mean, std)` pair on 0-255 (`((0,) * 3, (1,) * 3)` serves raw
            pixels) or a `Statistics`. Refused when it contradicts the model.
        top_k: number of `classes`/`scores` per image (capped at the number of
            classes).
        include_encoded_image_signature: add the `serving_bytes` signature.
        image_size: `(height, width)`; defaults to the model's input size.
        eval_resize: shorter side before the centre crop in `serving_bytes`.
            `None`: `round(max(image_size) / 0.875)` for ImageNet statistics,
            else a plain resize to `image_size`; `0` forces the plain resize.
        max_image_bytes: largest encoded image accepted by `serving_bytes`.
        serving_dtype: dtype policy of the served computation: `"float32"`
            (default; a mixed-precision model is rebuilt in float32 with the
            same weights), `"mixed_float16"`, `"mixed_bfloat16"`, or `None` to
            keep the model's own. Inputs and outputs are float32 regardless.
        features_only: export the headless model (global-pooled features).
        from_logits: bool or `None` to read it from the graph
            (`keras_preact.models.outputs.classifier_output`).
        verbose: print Keras' endpoint summary.

    Returns:
        `str`, the version folder written.

    Raises:
        UnsupportedBackendError: on a backend other than TensorFlow or JAX.
        ModuleNotFoundError: TensorFlow is not installed (the message gives
            the install line).
        ValueError: bad arguments, a model input that is not one RGB image,
            statistics missing or contradicting the model, or a head whose
            activation cannot be read (pass `from_logits`).
        FileExistsError: the version exists already.

    Example:
    >>> model = keras_preact.PreActResNet20(classes=100, input_normalization="cifar100")
    >>> export_saved_model(model, "/models", "preact20")
    '/models/preact20/1'
    """
    backend = keras.backend.backend()
    if backend not in SUPPORTED_BACKENDS:
        raise UnsupportedBackendError(
            f"SavedModel export is not supported on the {backend!r} Keras backend "
            f"(supported: {', '.join(SUPPORTED_BACKENDS)}). Keras' torch route "
            "(model.export(format='tf_saved_model')) fails on torch.export dynamic "
            "shapes. Way out: save the model with model.save('model.keras') and "
            "export it from a TensorFlow process:\n"
            "    KERAS_BACKEND=tensorflow python -m keras_preact.export "
            "--model model.keras --export-base DIR --model-name NAME\n"
            "(the CLI does this re-launch by itself when started under torch)."
        )
    import_tensorflow("SavedModel export")
    from keras_preact import image_ops

    _check_name(model_name)
    if not isinstance(model, keras.Model):
        raise ValueError(f"Expected a keras.Model. Received: {type(model).__name__}")
    check_choice("serving_dtype", serving_dtype, VALID_SERVING_DTYPES)
    version = None if version is None else check_int("version", version, low=1)
    max_image_bytes = check_int("max_image_bytes", max_image_bytes, low=1, high=2**31 - 1)
    statistics, in_model = serving_statistics(model, normalization)
    image_size, channels_first = _input_layout(model, image_size)
    if eval_resize is None and statistics.isclose("imagenet"):
        eval_resize = image_ops.default_eval_resize(image_size)
    if eval_resize:  # the shorter side before the centre crop
        eval_resize = check_int("eval_resize", eval_resize, low=max(image_size))
    logits = not features_only and outputs_logits(model, from_logits)
    if serving_dtype is not None:
        model = with_dtype_policy(model, serving_dtype)
    if features_only:
        model = _headless(model)
    num_outputs = int(model.outputs[0].shape[-1])
    top_k = None if features_only else min(check_int("top_k", top_k, low=1), num_outputs)
    info = dict(
        model_name=model_name, keras_backend=backend, image_size=list(image_size),
        data_format="channels_first" if channels_first else "channels_last",
        mean=list(statistics.mean), std=list(statistics.std),
        normalized_by="model" if in_model else "export", eval_resize=eval_resize or None,
        top_k=top_k, features_only=bool(features_only), logits=bool(logits),
        num_outputs=num_outputs, serving_dtype=serving_dtype,
        signatures=[s for s in SIGNATURES if include_encoded_image_signature or s != SIGNATURE_BYTES],
    )
    serve = _serving_function(model, None if in_model else statistics, channels_first, logits, top_k)
    model_dir = os.path.join(os.fspath(export_base), model_name)
    return _write_version(model_dir, version, info, lambda path: _write_archive(
        model, path, serve, info, max_image_bytes, verbose))


def _write_version(model_dir, version, info, write):
    """Runs `write(tmp_dir)`, adds the info file, renames to the version folder."""
    version = next_version(model_dir) if version is None else version
    final_dir = os.path.join(model_dir, str(version))
    if os.path.exists(final_dir):
        raise FileExistsError(
            f"Version {version} of {info['model_name']!r} already exists at {final_dir!r}; "
            "exports never overwrite. Pass another version or version=None for "
            f"the next free one ({next_version(model_dir)})."
        )
    os.makedirs(model_dir, exist_ok=True)
    tmp_dir = os.path.join(model_dir, f".tmp-{version}-{uuid.uuid4().hex}")
    try:
        write(tmp_dir)
        info_path = os.path.join(tmp_dir, "assets.extra", "keras_preact_export.json")
        atomic_write_json(info_path, dict(info, version=version), indent=2)
        if os.path.exists(final_dir):
            raise FileExistsError(
                f"Version {version} of {info['model_name']!r} appeared at {final_dir!r} "
                "during the export; not overwriting it."
            )
        os.rename(tmp_dir, final_dir)
    finally:
        if os.path.exists(tmp_dir):
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return final_dir


def _serving_function(model, statistics, channels_first, logits, top_k):
    """Keras-ops function: float32 NHWC 0-255 pixels -> the served outputs.

    Traced by `keras.export.ExportArchive` (converted by jax2tf on JAX), so
    only `keras.ops` here. Top-k is an argsort: `jax.lax.top_k` serializes to
    a StableHLO composite newer than TF 2.21's XlaCallModule can read.
    """
    ops = keras.ops

    def serve(images):
        if statistics is not None:
            images = normalize(images, statistics, data_format="channels_last")
        if channels_first:
            images = ops.transpose(images, (0, 3, 1, 2))
        outputs = ops.cast(model(images, training=False), "float32")
        if top_k is None:
            return {"features": outputs}
        probabilities = ops.softmax(outputs, axis=-1) if logits else outputs
        classes = ops.cast(ops.argsort(-probabilities, axis=-1)[:, :top_k], "int32")
        served = {"logits": outputs} if logits else {}
        return dict(
            served,
            probabilities=probabilities,
            classes=classes,
            scores=ops.take_along_axis(probabilities, classes, axis=-1),
        )

    return serve


def _write_archive(model, path, serve, info, max_image_bytes, verbose):
    import tensorflow as tf

    from keras_preact import image_ops

    height, width = info["image_size"]
    shape = (None, height, width, 3)
    pixels = tf.TensorSpec(shape, tf.float32, name="images")
    # ExportArchive makes each endpoint a signature: this archive only turns
    # the model call into a tf.function (jax2tf on JAX, batch polymorphic)
    # for the signatures below to call; it is never written.
    converter = keras.export.ExportArchive()
    converter.track(model)
    kwargs = {}
    if keras.backend.backend() == "jax":
        kwargs = {"jax2tf_kwargs": {"polymorphic_shapes": [f"(batch, {height}, {width}, 3)"]}}
    model_fn = converter.add_endpoint("model", serve, input_signature=[pixels], **kwargs)
    outputs = model_fn.get_concrete_function().structured_outputs

    def answer(images):
        # The shape is checked before the model: a request of another rank
        # reaches TF's oneDNN convolution, whose failed check aborts the server.
        images = tf.cast(tf.ensure_shape(images, shape), tf.float32)
        # Zero images get empty outputs: neither TF's Conv2D nor jax2tf
        # (batch >= 1) runs the model on an empty batch.
        return tf.cond(
            tf.shape(images)[0] > 0,
            lambda: model_fn(images),
            lambda: {k: tf.zeros((0, *v.shape[1:]), v.dtype) for k, v in outputs.items()},
        )

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string, name="images")])
    def serving_bytes(images):
        def decode(encoded):
            return image_ops.decode_and_resize(encoded, (height, width), info["eval_resize"],
                                               max_image_bytes)

        image = tf.TensorSpec(shape[1:], tf.float32)
        return answer(tf.map_fn(decode, images, fn_output_signature=image))

    uint8 = tf.TensorSpec(shape, tf.uint8, name="images")
    functions = {SIGNATURE_FLOAT: tf.function(answer, input_signature=[pixels]),
                 SIGNATURE_UINT8: tf.function(answer, input_signature=[uint8]),
                 SIGNATURE_BYTES: serving_bytes}
    archive = keras.export.ExportArchive()
    for name in info["signatures"]:
        functions[name].get_concrete_function()  # ExportArchive takes traced tf.functions
        archive.add_endpoint(name, functions[name])
    archive.write_out(path, verbose=verbose)
