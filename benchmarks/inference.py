"""Inference latency (batch 1) and throughput (large batch): Keras model vs SavedModel.

For the current Keras backend (`KERAS_BACKEND`), for PreActResNet164 (CIFAR 32x32) and
PreActResNet50 (ImageNet 224x224), and with `--resnet50v2` for
`keras.applications.ResNet50V2(weights=None)` at the ImageNet shape:
- "keras": `model.predict_on_batch(x)` (compiled predict function; `--jit`), which
  returns NumPy, so every call syncs.
- "savedmodel": the model exported with `keras_preact.export.export_saved_model`
  (signature `serving_default`, statistics (0, 1): the model's own input; falls back to
  `model.export(path, format="tf_saved_model")` if that module is absent), reloaded with
  `tf.saved_model.load` and called with a `tf.constant`, `.numpy()` on the output.
  Needs TensorFlow; the exporter supports the TensorFlow and JAX backends (torch is
  recorded as unsupported).
Latency is the median over `--steps` calls after `--warmup` calls; throughput is
`batch / median`. Random normal inputs, weights random (weights=None).

Example:
    KERAS_BACKEND=tensorflow python benchmarks/inference.py --quick --output inf.json
"""

import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import _common  # noqa: E402

SCRIPT = os.path.abspath(__file__)


def _export(model, folder):
    """Returns a callable `f(np_images) -> np_probabilities` on the reloaded SavedModel."""
    import tensorflow as tf

    try:
        from keras_preact.export import export_saved_model
    except ImportError:
        export_saved_model = None
    if export_saved_model is not None:
        path = export_saved_model(
            model,
            folder,
            "bench",
            version=1,
            normalization=((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),  # inputs served as they come
            include_encoded_image_signature=False,
        )
        loaded = tf.saved_model.load(path)
        fn = loaded.signatures["serving_default"]
        return lambda x: fn(images=tf.constant(x))["probabilities"].numpy(), "export_saved_model"
    path = os.path.join(folder, "bench")
    model.export(path, format="tf_saved_model")
    loaded = tf.saved_model.load(path)
    return lambda x: np.asarray(loaded.serve(tf.constant(x))), "model.export"


def run_config(config):
    import keras

    from train_throughput import build_keras_model

    keras.utils.set_random_seed(0)
    s = config["image_size"]
    t0 = time.perf_counter()
    model = build_keras_model(dict(config, model=config.get("model", "keras_preact")))
    build_s = time.perf_counter() - t0
    model.compile(jit_compile=config["jit"])
    rng = np.random.default_rng(0)
    inputs = {
        b: rng.standard_normal((b, s, s, 3), dtype=np.float32)
        for b in (1, config["throughput_batch"])
    }
    base = dict(config, backend=keras.backend.backend(), build_s=round(build_s, 2))
    results = []
    runtimes = [("keras", lambda x: model.predict_on_batch(x), None)]
    folder = None
    if config["savedmodel"]:
        folder = tempfile.mkdtemp(prefix="kp_bench_sm_")
        try:
            t0 = time.perf_counter()
            fn, how = _export(model, folder)
            export_s = round(time.perf_counter() - t0, 2)
            runtimes.append(("savedmodel", fn, {"export_s": export_s, "exported_with": how}))
        except Exception as e:  # noqa: BLE001 - recorded in the report
            results.append(
                dict(
                    base,
                    runtime="savedmodel",
                    status="error",
                    error=f"{type(e).__name__}: {str(e)[:300]}",
                )
            )
    try:
        for runtime, fn, extra in runtimes:
            for b, x in inputs.items():
                timing = _common.time_calls(
                    lambda: fn(x), config["warmup"], config["steps"]
                )
                results.append(
                    dict(
                        base,
                        **(extra or {}),
                        runtime=runtime,
                        batch=b,
                        status="ok",
                        latency_ms=round(timing["median_step_s"] * 1000, 2),
                        images_per_s=round(b / timing["median_step_s"], 2),
                        first_call_s=timing["first_call_s"],
                        step_times_s=timing["step_times_s"],
                    )
                )
    finally:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
    return results


def build_configs(args, backend):
    shapes = {
        "cifar": dict(layout="cifar", depth=args.cifar_depth, image_size=32, classes=10),
        "imagenet": dict(
            layout="imagenet",
            depth=args.imagenet_depth,
            image_size=args.imagenet_size,
            classes=1000,
        ),
    }
    models = ["keras_preact"] + (["keras_resnet50v2"] if args.resnet50v2 else [])
    return [
        dict(
            suite="inference",
            backend=backend,
            model=model,
            **shapes[name],
            throughput_batch=args.batch,
            jit=args.jit == "on",
            savedmodel=args.savedmodel,
            warmup=args.warmup,
            steps=args.steps,
        )
        for name in args.models.split(",")
        for model in models
        if model == "keras_preact" or (name == "imagenet" and args.imagenet_depth == 50)
    ]


def parse_args(argv=None):
    parser = _common.add_common_args(_common.new_parser(__doc__.split("\n")[0]))
    parser.add_argument("--models", default="cifar,imagenet")
    parser.add_argument("--cifar-depth", type=int, default=164)
    parser.add_argument("--imagenet-depth", type=int, default=50)
    parser.add_argument("--imagenet-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=None, help="throughput batch; default 64 (quick: 16)")
    parser.add_argument("--jit", default="on", choices=("off", "on"))
    parser.add_argument("--no-savedmodel", dest="savedmodel", action="store_false")
    parser.add_argument("--resnet50v2", action="store_true",
                        help="also keras.applications.ResNet50V2 at the ImageNet shape")
    parser.add_argument("--warmup", type=int, default=None, help="default 3 (quick: 1)")
    parser.add_argument("--steps", type=int, default=None, help="default 20 (quick: 5)")
    args = parser.parse_args(argv)
    for key, full, quick in (("batch", 64, 16), ("warmup", 3, 1), ("steps", 20, 5)):
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    for name in args.models.split(","):
        if name not in ("cifar", "imagenet"):
            parser.error(f"Unknown model {name!r} in --models. Expected ['cifar', 'imagenet'].")
    return args


def main(argv=None):
    return _common.script_main("inference", SCRIPT, parse_args, build_configs, run_config, argv)


if __name__ == "__main__":
    main()
