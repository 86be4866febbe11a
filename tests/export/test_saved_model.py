"""keras_preact.export.saved_model: TensorFlow Serving SavedModels.

TF Serving's binary is not installable here, so the tests exercise what it
relies on, in a FRESH process: `tf.compat.v1.saved_model.loader.load` in a
Session fed/fetched through the SignatureDef tensor names (the C++ server's
path), `tf.saved_model.load`, and `saved_model_cli show --all`. Export runs on
the backends that support it (TensorFlow, JAX); torch checks the clear error
(the route through a `.keras` file and the command line:
tests/export/test_main.py).
"""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from fake_serving import grpc_server
from fake_serving import rest_server
from keras_preact import export as kpe
from keras_preact.normalization import STATISTICS

from _checks import CAN_EXPORT
from _checks import cifar_test_images
from _checks import export_model
from _checks import load_example
from _checks import needs_export_backend
from _checks import png_bytes
from _checks import predict_pixels
from _checks import run_checker
from _checks import tensorflow_env
from conftest import SHARED_DATA

IMAGENET_DIR = SHARED_DATA / "imagenet_sample"
# RGB, RGB and a greyscale (mode "L") JPEG from the ImageNet sample.
JPEGS = ("n01440764_tench.JPEG", "n01860187_black_swan.JPEG", "n02692877_airship.JPEG")

BACKEND = keras.backend.backend()
ATOL = 1e-5  # float32 probabilities: exported graph vs the Keras model
CLASSES = 100
MAX_IMAGE_BYTES = 16384  # CIFAR PNGs are ~3 KB; the oversized test sends ~50 KB
# The smallest ImageNet-layout model (32x32 inputs: 1x1 at the end).
IMAGENET = dict(layout="imagenet", stage_units=(1, 1, 1, 1), block_type="basic", base_width=8)


def _softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _outputs(out, prefix):
    """The outputs stored under `prefix` (e.g. "v1/serving_default/f32/0"), by name."""
    return {k[len(prefix) + 1:]: v for k, v in out.items() if k.startswith(prefix + "/")}


def _dtypes_and_shapes(outputs):
    return {k: (v.dtype, v.shape) for k, v in outputs.items()}


# ----------------------------------------------------------------------------
# Shared export (CIFAR layout, 100 classes, CIFAR-100 statistics recorded in
# the model: no normalization argument) and one fresh-process check of it.


@pytest.fixture(scope="module")
def cifar_export(tmp_path_factory):
    if not CAN_EXPORT:
        pytest.skip(f"SavedModel export needs tensorflow/jax, not {BACKEND}")
    base = tmp_path_factory.mktemp("export_base")
    model = export_model(input_normalization="cifar100")
    path = kpe.export_saved_model(model, base, "tiny", max_image_bytes=MAX_IMAGE_BYTES)
    return model, base, path


@pytest.fixture(scope="module")
def cifar_checked(cifar_export, tmp_path_factory):
    model, base, path = cifar_export
    tmp = tmp_path_factory.mktemp("checker")
    pixels = cifar_test_images(7)
    pngs = []
    for i, image in enumerate(pixels):
        pngs.append(str(tmp / f"cifar{i}.png"))
        Path(pngs[-1]).write_bytes(png_bytes(image))
    big = np.random.default_rng(2).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    (tmp / "big.png").write_bytes(png_bytes(big))
    assert (tmp / "big.png").stat().st_size > MAX_IMAGE_BYTES
    arrays = {
        "u8": pixels,
        "f32": pixels.astype("float32"),
        "rank3": pixels[0].astype("float32"),
        "wrong_size": np.zeros((2, 30, 30, 3), "float32"),
        "garbage": np.array([b"definitely not an image"]),
        "empty": np.array([b""]),
        "two_channels": np.zeros((1, 32, 32, 2), "float32"),
        "empty_wrong_size": np.zeros((0, 30, 30, 3), "float32"),
    }
    files = {"png": pngs, "big": [str(tmp / "big.png")]}
    calls = [
        ["serving_default", "f32", [0, 1, 7]],
        ["serving_uint8", "u8", [0, 1, 7]],
        ["serving_bytes", "png", [0, 1, 7]],
    ]
    v1_errors = [
        ["v1_garbage", "serving_bytes", "garbage"],
        ["v1_empty", "serving_bytes", "empty"],
        ["v1_oversized", "serving_bytes", "big"],
        ["v1_wrong_rank", "serving_default", "rank3"],
        ["v1_wrong_size", "serving_default", "wrong_size"],
    ]
    v2_errors = [
        ["v2_wrong_dtype", "serving_uint8", "f32", "float32"],
        ["v2_wrong_rank", "serving_uint8", "rank3", "uint8"],
        ["v2_two_channels", "serving_uint8", "two_channels", "uint8"],
        ["v2_default_wrong_rank", "serving_default", "rank3", "float32"],
        ["v2_default_two_channels", "serving_default", "two_channels", "float32"],
        ["v2_empty_wrong_size", "serving_default", "empty_wrong_size", "float32"],
        ["v2_garbage", "serving_bytes", "garbage", "string"],
    ]
    out, errors, sigs = run_checker(tmp, path, arrays, files, calls, calls, v1_errors, v2_errors)
    return {"model": model, "pixels": pixels, "out": out, "errors": errors, "sigs": sigs,
            "ref": predict_pixels(model, pixels), "path": path, "base": base}


@needs_export_backend
def test_layout_version_and_no_temp_dirs(cifar_export):
    _, base, path = cifar_export
    assert path == os.path.join(str(base), "tiny", "1")
    assert sorted(os.listdir(os.path.join(base, "tiny"))) == ["1"]  # no leftover temp dir
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
    info = json.loads(Path(path, "assets.extra", "keras_preact_export.json").read_text())
    assert info["image_size"] == [32, 32] and info["top_k"] == 5
    assert info["mean"] == pytest.approx(STATISTICS["cifar100"].mean)
    assert info["normalized_by"] == "model" and info["data_format"] == "channels_last"


@needs_export_backend
def test_signature_defs_names_dtypes_shapes(cifar_checked):
    sigs = cifar_checked["sigs"]
    assert set(sigs) == {"serving_default", "serving_uint8", "serving_bytes"}
    expected_in = {"serving_default": ["float32", [-1, 32, 32, 3]],
                   "serving_uint8": ["uint8", [-1, 32, 32, 3]],
                   "serving_bytes": ["string", [-1]]}
    for name, (dtype, shape) in expected_in.items():
        assert sigs[name]["method"] == "tensorflow/serving/predict"
        assert list(sigs[name]["inputs"]) == ["images"]
        assert sigs[name]["inputs"]["images"][1:] == [dtype, shape]
        outs = {k: v[1:] for k, v in sigs[name]["outputs"].items()}
        assert outs == {"probabilities": ["float32", [-1, CLASSES]],
                        "classes": ["int32", [-1, 5]],
                        "scores": ["float32", [-1, 5]]}


@needs_export_backend
@pytest.mark.parametrize("api", ["v1", "v2"])
@pytest.mark.parametrize("signature,kind", [("serving_default", "f32"), ("serving_uint8", "u8"),
                                            ("serving_bytes", "png")])
def test_predictions_match_keras_batch_1_and_7(cifar_checked, api, signature, kind):
    ref, out = cifar_checked["ref"], cifar_checked["out"]
    for n in (1, 7):
        probs = out[f"{api}/{signature}/{kind}/{n}/probabilities"]
        assert probs.dtype == np.float32 and probs.shape == (n, CLASSES)
        np.testing.assert_allclose(probs, ref[:n], atol=ATOL, rtol=0)
        classes = out[f"{api}/{signature}/{kind}/{n}/classes"]
        assert classes.dtype == np.int32 and classes.shape == (n, 5)
        np.testing.assert_array_equal(classes, np.argsort(-ref[:n], axis=1)[:, :5])
        scores = out[f"{api}/{signature}/{kind}/{n}/scores"]
        np.testing.assert_allclose(scores, np.take_along_axis(ref[:n], classes, 1), atol=ATOL)
        assert np.all(np.diff(scores, axis=1) <= 0)


@needs_export_backend
@pytest.mark.parametrize("api", ["v1", "v2"])
@pytest.mark.parametrize("signature,kind", [("serving_default", "f32"), ("serving_uint8", "u8"),
                                            ("serving_bytes", "png")])
def test_zero_images_give_empty_outputs(cifar_checked, api, signature, kind):
    """TF Serving passes a request of zero images on; the old export failed in
    the model (TensorFlow's Conv2D, jax2tf's batch of at least 1)."""
    empty = _outputs(cifar_checked["out"], f"{api}/{signature}/{kind}/0")
    assert _dtypes_and_shapes(empty) == {"probabilities": (np.float32, (0, CLASSES)),
                                         "classes": (np.int32, (0, 5)),
                                         "scores": (np.float32, (0, 5))}


@needs_export_backend
def test_bad_requests_raise_clear_errors(cifar_checked):
    errors = cifar_checked["errors"]
    assert errors["v1_garbage"].startswith("InvalidArgumentError")
    assert "Unknown image file format" in errors["v1_garbage"]
    assert errors["v1_empty"].startswith("InvalidArgumentError")
    assert "empty" in errors["v1_empty"]
    assert errors["v1_oversized"].startswith("InvalidArgumentError")
    assert f"max_image_bytes={MAX_IMAGE_BYTES}" in errors["v1_oversized"]
    # The Session client checks the SignatureDef shape before running.
    assert "Cannot feed value of shape (32, 32, 3)" in errors["v1_wrong_rank"]
    assert "Cannot feed value of shape (2, 30, 30, 3)" in errors["v1_wrong_size"]
    assert errors["v2_wrong_dtype"].startswith("InvalidArgumentError")
    assert "expected to be a uint8 tensor but is a float tensor" in errors["v2_wrong_dtype"]
    # A tf.saved_model.load caller (like the C++ server) is not checked
    # before running: an in-graph check gives InvalidArgument, before the
    # model (TF's oneDNN convolution would abort the process) and before
    # the answer to zero images.
    for label in ("v2_wrong_rank", "v2_two_channels", "v2_default_wrong_rank",
                  "v2_default_two_channels", "v2_empty_wrong_size"):
        assert errors[label].startswith("InvalidArgumentError"), errors[label]
        assert "is not compatible with expected shape [?,32,32,3]" in errors[label]
    assert "Unknown image file format" in errors["v2_garbage"]


@needs_export_backend
@pytest.mark.slow
def test_saved_model_cli_show_all(cifar_export):
    _, _, path = cifar_export
    cli = Path(sys.executable).with_name("saved_model_cli")
    if not cli.exists():
        pytest.skip("saved_model_cli not installed next to the interpreter")
    text = subprocess.run([str(cli), "show", "--all", "--dir", path], capture_output=True,
                          text=True, env=tensorflow_env(), timeout=300, check=True).stdout
    for name in ("serving_default", "serving_uint8", "serving_bytes"):
        assert f"signature_def['{name}']:" in text
    block = text.split("signature_def['serving_bytes']:")[1].split("signature_def[")[0]
    assert "inputs['images'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" in block
    assert "outputs['classes'] tensor_info:\n        dtype: DT_INT32\n        shape: (-1, 5)" in block
    assert (f"outputs['probabilities'] tensor_info:\n        dtype: DT_FLOAT\n"
            f"        shape: (-1, {CLASSES})") in block
    block = text.split("signature_def['serving_uint8']:")[1].split("signature_def[")[0]
    assert "dtype: DT_UINT8\n        shape: (-1, 32, 32, 3)" in block


# ----------------------------------------------------------------------------
# Every model the builder makes: one table, one fresh process, one set of
# checks. Each row: PreActResNet kwargs, export kwargs, and the reference:
# `model.predict` of the model itself, or (serving_dtype="float32" for a
# mixed-precision model) of its float32 twin with the same weights.


SERVED = {
    "cifar-channels_first-logits": (
        dict(data_format="channels_first", classifier_activation=None,
             input_normalization="cifar10"), {}),
    "imagenet-softmax": (dict(IMAGENET, input_normalization="imagenet"), {}),
    "imagenet-channels_first-logits": (
        dict(IMAGENET, data_format="channels_first", classifier_activation=None,
             input_normalization="imagenet"), {}),
    # No statistics in the model: the export normalizes.
    "cifar-no-statistics": (dict(), {"normalization": "cifar100"}),
    # Served as trained (half precision) and rebuilt in float32 (default).
    "cifar-mixed_float16-kept": (
        dict(policy="mixed_float16", input_normalization="cifar100"), {"serving_dtype": None}),
    "imagenet-mixed_bfloat16-logits": (
        dict(IMAGENET, policy="mixed_bfloat16", classifier_activation=None,
             input_normalization="imagenet"), {}),
}


# Probabilities: float32 1e-5; half precision kept: served graph vs predict.
SERVED_ATOL = {"cifar-mixed_float16-kept": 2e-3}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    if not CAN_EXPORT:
        pytest.skip(f"SavedModel export needs tensorflow/jax, not {BACKEND}")
    tmp = tmp_path_factory.mktemp("served")
    pixels = cifar_test_images(5)
    results = {}
    for name, (build, export) in SERVED.items():
        model = export_model(classes=10, **build)
        twin = None
        if "policy" in build:  # the float32 twin carries the weights
            twin = export_model(classes=10, **{k: v for k, v in build.items() if k != "policy"})
            model = export_model(classes=10, weights_from=twin, **build)
        path = kpe.export_saved_model(model, tmp, name.replace("_", "-"), top_k=3,
                                      include_encoded_image_signature=False, **export)
        reference = twin if twin is not None and export.get("serving_dtype", "float32") else model
        results[name] = {"path": path, "model": model,
                         "ref": predict_pixels(reference, pixels, export.get("normalization"))}
    script = "\n".join(
        ["import json, sys, numpy as np, tensorflow as tf",
         "paths, x = json.loads(sys.argv[1]), np.load(sys.argv[2])",
         "out = {}",
         "for name, path in paths.items():",
         "    loaded = tf.saved_model.load(path)",
         "    for sig, dtype in (('serving_default', tf.float32), ('serving_uint8', tf.uint8)):",
         "        for n in (0, len(x)):",
         "            res = loaded.signatures[sig](images=tf.constant(x[:n], dtype))",
         "            out.update({f'{name}/{sig}/{n}/{k}': v.numpy() for k, v in res.items()})",
         "np.savez(sys.argv[3], **out)"])
    np.save(tmp / "x.npy", pixels)
    paths = {name: r["path"] for name, r in results.items()}
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(paths), str(tmp / "x.npy"),
                           str(tmp / "out.npz")], capture_output=True, text=True,
                          env=tensorflow_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = dict(np.load(tmp / "out.npz"))
    for name, result in results.items():
        result["out"] = {k.split("/", 1)[1]: v for k, v in out.items() if k.startswith(name + "/")}
    return results


@needs_export_backend
@pytest.mark.slow
@pytest.mark.parametrize("name", list(SERVED))
def test_every_model_is_served_like_predict(served, name):
    """Fails on the old export: channels_first refused, logits served as
    `probabilities`, the model's statistics ignored for CIFAR-100's."""
    build, export = SERVED[name]
    result, atol = served[name], SERVED_ATOL.get(name, ATOL)
    logits = build.get("classifier_activation", "softmax") is None
    ref = result["ref"]
    probabilities = _softmax(ref) if logits else ref
    names = {"probabilities", "classes", "scores"} | ({"logits"} if logits else set())
    for signature in ("serving_default", "serving_uint8"):
        out = _outputs(result["out"], f"{signature}/5")
        assert set(out) == names, (signature, sorted(out))
        empty = _outputs(result["out"], f"{signature}/0")  # zero images: each output, empty
        assert _dtypes_and_shapes(empty) == {k: (v.dtype, (0, *v.shape[1:])) for k, v in out.items()}
        assert out["probabilities"].dtype == np.float32 and out["probabilities"].shape == (5, 10)
        np.testing.assert_allclose(out["probabilities"], probabilities, atol=atol, rtol=0)
        np.testing.assert_allclose(out["probabilities"].sum(-1), 1.0, atol=1e-5)
        if logits:
            np.testing.assert_allclose(out["logits"], ref, atol=max(atol, 1e-4), rtol=1e-5)
        # Top 3 of the served probabilities, best first.
        np.testing.assert_array_equal(out["classes"], np.argsort(-out["probabilities"], 1)[:, :3])
        np.testing.assert_array_equal(
            out["scores"], np.take_along_axis(out["probabilities"], out["classes"], 1))
    if "policy" in build:  # the mixed model itself is left as it was
        assert result["model"].get_layer("stem_conv").compute_dtype != "float32"


# ----------------------------------------------------------------------------
# Statistics read from the model (keras_preact.normalization.serving_statistics,
# tested in tests/test_normalization.py); refusals; versioning and atomicity.


@needs_export_backend
@pytest.mark.parametrize(
    "build,kwargs,match",
    [
        # CIFAR statistics for an ImageNet model: both are named.
        (dict(IMAGENET, input_normalization="imagenet"), {"normalization": "cifar100"},
         r"(?s)normalization='cifar100' gives mean=\(129\.304.*normalizes its inputs with "
         r"mean=\(123\.67"),
        (dict(), {}, r"(?s)records no input statistics.*input_normalization=.*normalization="),
        (dict(), {"normalization": "cifar"}, "Unknown statistics='cifar'"),
        (dict(), {"normalization": ((1.0, 2.0), (1.0, 1.0))}, "one value per channel"),
        (dict(), {"normalization": ((0, 0, 0), (1.0, 0.0, 1.0))}, "std values > 0"),
        (dict(input_shape=(32, 32, 1)), {"normalization": "cifar100"}, "RGB image input"),
        (dict(input_normalization="cifar100"), {"serving_dtype": "float64"},
         "Invalid serving_dtype='float64'"),
        (dict(input_normalization="cifar100"), {"model_name": "a/b"}, "Invalid model_name='a/b'"),
        (dict(input_normalization="cifar100"), {"model_name": "123"}, "Invalid model_name='123'"),
        (dict(input_normalization="cifar100"), {"version": 0}, "Invalid version=0"),
        (dict(input_normalization="cifar100"), {"top_k": 0}, "Invalid top_k=0"),
        (dict(input_normalization="cifar100"), {"image_size": (64, 64)},
         "does not match the model input shape"),
        (dict(input_normalization="cifar100"), {"eval_resize": 16}, "Invalid eval_resize=16. Expected an int >= 32"),
        (dict(input_normalization="cifar100"), {"max_image_bytes": 0}, "Invalid max_image_bytes=0"),
    ],
)
def test_bad_arguments(tmp_path, build, kwargs, match):
    model = export_model(classes=10, **build)
    kwargs = {"model_name": "m", **kwargs}
    with pytest.raises(ValueError, match=match):
        kpe.export_saved_model(model, tmp_path, **kwargs)
    assert not (tmp_path / "m").exists() or os.listdir(tmp_path / "m") == []


@needs_export_backend
def test_unreadable_head_names_the_way_out(tmp_path):
    logits_model = export_model(classes=10, classifier_activation=None,
                                input_normalization="cifar100")
    unreadable = keras.Sequential([logits_model, keras.layers.ReLU()])
    with pytest.raises(ValueError, match="from_logits"):
        kpe.export_saved_model(unreadable, tmp_path, "relu")


@needs_export_backend
def test_existing_version_is_never_overwritten(cifar_export):
    model, base, path = cifar_export
    before = Path(path, "saved_model.pb").read_bytes()
    with pytest.raises(FileExistsError, match="already exists.*never overwrite"):
        kpe.export_saved_model(model, base, "tiny", version=1)
    assert Path(path, "saved_model.pb").read_bytes() == before
    assert kpe.next_version(os.path.join(base, "tiny")) == 2


def test_next_version_ignores_non_integer_dirs(tmp_path):
    for name in ("1", "7", "3", ".tmp-8-abc", "notes", "12x"):
        (tmp_path / name).mkdir()
    (tmp_path / "9").write_text("a file, not a version")
    assert kpe.existing_versions(tmp_path) == [1, 3, 7]
    assert kpe.next_version(tmp_path) == 8
    assert kpe.next_version(tmp_path / "missing") == 1


@needs_export_backend
def test_failed_export_leaves_nothing_behind(tmp_path, monkeypatch):
    from keras_preact.export import saved_model as sm

    def failing_write(model, path, *args):
        os.makedirs(os.path.join(path, "variables"))
        Path(path, "saved_model.pb").write_bytes(b"half written")
        raise RuntimeError("disk full")

    monkeypatch.setattr(sm, "_write_archive", failing_write)
    with pytest.raises(RuntimeError, match="disk full"):
        kpe.export_saved_model(export_model(classes=10, input_normalization="cifar10"), tmp_path,
                               "m")
    assert os.listdir(tmp_path / "m") == []


# ----------------------------------------------------------------------------
# ImageNet-style bytes pipeline on real JPEGs, features.


def _center_crop_reference(encoded, size, eval_resize):
    """Whole decode, crop window by plain arithmetic, bilinear resize."""
    import tensorflow as tf

    image = tf.io.decode_image(encoded, channels=3, expand_animations=False).numpy()
    h, w = image.shape[:2]
    crop = min(max(int(round(min(h, w) * size / eval_resize)), 1), h, w)
    y, x = (h - crop + 1) // 2, (w - crop + 1) // 2
    window = image[y:y + crop, x:x + crop].astype("float32")
    return tf.image.resize(window, (size, size), method="bilinear").numpy()


@needs_export_backend
@pytest.mark.slow
def test_imagenet_bytes_jpeg_resize_crop_matches_pixels(tmp_path):
    if not IMAGENET_DIR.exists():
        pytest.skip(f"real JPEGs not found at {IMAGENET_DIR}")
    model = export_model(classes=10, **IMAGENET, input_normalization="imagenet")
    path = kpe.export_saved_model(model, tmp_path, "inet", top_k=3)
    info = json.loads(Path(path, "assets.extra", "keras_preact_export.json").read_text())
    assert info["eval_resize"] == 37  # round(32 / 0.875): ImageNet statistics -> centre crop
    png = tmp_path / "wide.png"  # non-JPEG branch: full decode, then slice
    png.write_bytes(png_bytes(np.random.default_rng(3).integers(0, 256, (40, 70, 3),
                                                                dtype=np.uint8)))
    files = [str(IMAGENET_DIR / f) for f in JPEGS] + [str(png)]
    # The fused decode_and_crop_jpeg must equal decoding whole and cropping.
    ref_pixels = np.stack([_center_crop_reference(Path(f).read_bytes(), 32, 37) for f in files])
    calls = [["serving_bytes", "jpeg", [4]], ["serving_default", "ref", [4]]]
    out, _, sigs = run_checker(tmp_path, path, {"ref": ref_pixels}, {"jpeg": files}, calls)
    assert sigs["serving_bytes"]["outputs"]["classes"][1:] == ["int32", [-1, 3]]
    np.testing.assert_array_equal(out["v1/serving_bytes/jpeg/4/classes"],
                                  out["v1/serving_default/ref/4/classes"])
    np.testing.assert_allclose(out["v1/serving_bytes/jpeg/4/probabilities"],
                               predict_pixels(model, ref_pixels), atol=ATOL, rtol=0)


@needs_export_backend
@pytest.mark.slow
def test_features_only_exports_pooled_features(tmp_path):
    model = export_model(classes=10, input_normalization="cifar100")
    path = kpe.export_saved_model(model, tmp_path, "feat", features_only=True,
                                  include_encoded_image_signature=False)
    pixels = cifar_test_images(3)
    ref = predict_pixels(keras.Model(model.inputs, model.get_layer("avg_pool").output), pixels)
    out, _, sigs = run_checker(tmp_path, path, {"u8": pixels}, {},
                               [["serving_uint8", "u8", [0, 3]]])
    assert "serving_bytes" not in sigs
    assert {k: v[1:] for k, v in sigs["serving_uint8"]["outputs"].items()} == {
        "features": ["float32", [-1, ref.shape[1]]]}
    np.testing.assert_allclose(out["v1/serving_uint8/u8/3/features"], ref, atol=ATOL, rtol=0)
    assert _dtypes_and_shapes(_outputs(out, "v1/serving_uint8/u8/0")) == {
        "features": (np.float32, (0, ref.shape[1]))}


# ----------------------------------------------------------------------------
# Torch: a clear error.


@pytest.mark.skipif(BACKEND != "torch", reason="checks the torch backend's error")
def test_torch_backend_gives_clear_error(tmp_path):
    with pytest.raises(kpe.UnsupportedBackendError) as info:
        kpe.export_saved_model(export_model(classes=10), tmp_path, "m")
    message = str(info.value)
    assert "'torch'" in message and "tensorflow, jax" in message
    assert "KERAS_BACKEND=tensorflow python -m keras_preact.export" in message
    assert not (tmp_path / "m").exists()


# ----------------------------------------------------------------------------
# examples/serving_client.py end to end: fake REST and gRPC servers (tests/
# fake_serving.py) that run the exported SavedModel's signatures. The wire
# formats alone are checked on every backend in
# tests/examples/test_serving_client.py.


def _rest_predict_with(loaded, model_name):
    """`predict` for `fake_serving.rest_server`: TF Serving's "instances" format."""
    import tensorflow as tf

    def predict(path, request):
        if path != f"/v1/models/{model_name}:predict":
            return 404, {"error": f"Servable not found for request: {path}"}
        fn = loaded.signatures[request.get("signature_name", "serving_default")]
        spec = fn.structured_input_signature[1]["images"]
        values = [base64.b64decode(v["b64"]) if isinstance(v, dict) else v
                  for v in request["instances"]]
        try:
            outputs = fn(images=tf.constant(values, dtype=spec.dtype))
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
            return 400, {"error": getattr(e, "message", str(e))}
        outputs = {k: v.numpy().tolist() for k, v in outputs.items()}
        return 200, {"predictions": [{k: outputs[k][i] for k in outputs}
                                     for i in range(len(values))]}

    return predict


@needs_export_backend
def test_serving_client_rest_request_format(cifar_checked, tmp_path, capsys):
    import tensorflow as tf

    client = load_example("serving_client")
    predict = _rest_predict_with(tf.saved_model.load(cifar_checked["path"]), "tiny")
    with rest_server(predict) as port:
        pixels, ref = cifar_checked["pixels"][:3], cifar_checked["ref"][:3]
        preds = client.predict_rest([png_bytes(p) for p in pixels], "tiny", "127.0.0.1", port)
        assert [sorted(p) for p in preds] == [["classes", "probabilities", "scores"]] * 3
        np.testing.assert_array_equal([p["classes"] for p in preds], np.argsort(-ref, 1)[:, :5])
        np.testing.assert_allclose([p["probabilities"] for p in preds], ref, atol=ATOL)
        preds = client.predict_rest(pixels, "tiny", "127.0.0.1", port,
                                    signature_name="serving_default")
        np.testing.assert_allclose([p["probabilities"] for p in preds], ref, atol=ATOL)
        with pytest.raises(RuntimeError, match="(?s)HTTP 400.*Unknown image file format"):
            client.predict_rest([b"garbage"], "tiny", "127.0.0.1", port)
        # The command line prints "file: name (score), ..." with --labels names.
        image_file = tmp_path / "img.png"
        image_file.write_bytes(png_bytes(pixels[0]))
        labels = tmp_path / "labels.txt"
        labels.write_text("\n".join(f"class{i}" for i in range(CLASSES)))
        assert client.main([str(image_file), "--model-name", "tiny", "--host", "127.0.0.1",
                            "--port", str(port), "--labels", str(labels)]) == 0
    printed = capsys.readouterr().out.strip()
    top = np.argsort(-ref[0])[:5]
    assert printed.startswith(f"{image_file}: class{top[0]} ({ref[0, top[0]]:.3f}), class{top[1]}")
    assert printed.count("class") == 5


@needs_export_backend
def test_serving_client_grpc_request_format(cifar_checked):
    pytest.importorskip("grpc", reason="grpcio is not installed (tests extra)")
    pytest.importorskip(
        "tensorflow_serving.apis.prediction_service_pb2_grpc",
        reason="tensorflow-serving-api is not installed (CI installs it: pip install "
        '--no-deps "tensorflow-serving-api==<TensorFlow major.minor>.*")')
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    loaded = tf.saved_model.load(cifar_checked["path"])
    seen = []

    def predict(request, context):
        seen.append((request.model_spec.name, request.model_spec.signature_name))
        images = tf.make_ndarray(request.inputs["images"])
        outputs = loaded.signatures[request.model_spec.signature_name](images=tf.constant(images))
        response = predict_pb2.PredictResponse()
        for k, v in outputs.items():
            response.outputs[k].CopyFrom(tf.make_tensor_proto(v.numpy()))
        return response

    client = load_example("serving_client")
    pixels, ref = cifar_checked["pixels"][:3], cifar_checked["ref"][:3]
    with grpc_server(predict) as port:
        out = client.predict_grpc([png_bytes(p) for p in pixels], "tiny", "127.0.0.1", port)
        assert seen == [("tiny", "serving_bytes")]
        assert out["classes"].dtype == np.int32
        np.testing.assert_array_equal(out["classes"], np.argsort(-ref, 1)[:, :5])
        np.testing.assert_allclose(out["probabilities"], ref, atol=ATOL)
        out = client.predict_grpc(pixels, "tiny", "127.0.0.1", port, signature_name="serving_uint8")
        np.testing.assert_allclose(out["probabilities"], ref, atol=ATOL)
