"""How fast does a PreActResNet predict, in Keras and as an exported SavedModel?

For each Keras backend, for PreActResNet-164 (32x32) and PreActResNet-50 (224x224),
both built with input_normalization (so they take 0-255 pixels, as served): latency
at batch 1 and images/s at --batch of model.predict_on_batch (compiled with
--jit-compile, default Keras' "auto"), and of the SavedModel that
keras_preact.export.export_saved_model writes from the same model (signature
serving_default, reloaded with tf.saved_model.load; needs TensorFlow; the export
runs on the TensorFlow and JAX backends, and the torch backend's row records its
refusal). Median over --steps calls after --warmup calls; random weights and pixels;
each backend and model in its own process.

Example:
    python benchmarks/inference.py --backends tensorflow jax --models cifar
"""

import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

SCRIPT = os.path.abspath(__file__)
JIT_COMPILE = {"auto": "auto", "on": True, "off": False}


def build_parser():
    positive = _common.positive_int
    parser = _common.new_parser(__doc__)
    _common.add_backends_argument(parser)
    parser.add_argument("--models", nargs="+", choices=("cifar", "imagenet"),
                        default=["cifar", "imagenet"])
    parser.add_argument("--cifar-depth", type=positive, default=164)
    parser.add_argument("--imagenet-depth", type=positive, default=50)
    parser.add_argument("--imagenet-size", type=positive, default=224)
    parser.add_argument("--batch", type=positive, default=64,
                        help="the batch of the throughput figure")
    parser.add_argument("--jit-compile", choices=tuple(JIT_COMPILE), default="auto")
    parser.add_argument("--no-savedmodel", dest="savedmodel", action="store_false")
    parser.add_argument("--warmup", type=positive, default=3)
    parser.add_argument("--steps", type=positive, default=20)
    parser.add_argument("--quick", action="store_true",
                        help="check that the command runs: batch 2, one warm-up and one "
                        "timed call (measures nothing)")
    parser.add_argument("--timeout", type=positive, default=1800,
                        help="seconds per backend and model")
    parser.add_argument("--output", help="write the report as JSON to this path")
    return parser


def parse_args(argv=None):
    args = build_parser().parse_args(argv)
    if args.quick:
        args.batch, args.warmup, args.steps = 2, 1, 1
    return args


def _saved_model_predict(model, folder):
    """Exports `model` and returns `predict(pixels) -> probabilities` on the reload."""
    import tensorflow as tf

    from keras_preact.export import export_saved_model

    path = export_saved_model(model, folder, "bench", version=1,
                              include_encoded_image_signature=False)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    return lambda x: serve(images=tf.constant(x))["probabilities"].numpy()


def run_config(config):
    """One model on the current backend: a row per runtime and batch."""
    import keras
    import numpy as np

    import keras_preact
    from keras_preact.export import UnsupportedBackendError

    keras.utils.set_random_seed(0)
    size = config["image_size"]
    model = keras_preact.PreActResNet(
        config["depth"], layout=config["layout"], classes=config["classes"],
        input_shape=(size, size, 3), input_normalization=config["statistics"])
    model.compile(jit_compile=config["jit_compile"])
    rng = np.random.default_rng(0)
    inputs = {b: rng.uniform(0, 255, (b, size, size, 3)).astype("float32")
              for b in (1, config["batch"])}
    runtimes = {"keras": model.predict_on_batch}
    rows = []
    folder = tempfile.mkdtemp(prefix="inference_bench_")
    try:
        if config["savedmodel"]:
            start = time.perf_counter()
            try:
                runtimes["savedmodel"] = _saved_model_predict(model, folder)
            except UnsupportedBackendError as e:
                rows.append(dict(runtime="savedmodel", status="unsupported",
                                 error=str(e).splitlines()[0]))
            export_s = round(time.perf_counter() - start, 2)
        for runtime, predict in runtimes.items():
            for batch, x in inputs.items():
                timing = _common.time_calls(lambda: predict(x), config["warmup"],
                                            config["steps"])
                rows.append(dict(
                    runtime=runtime, batch=batch, status="ok",
                    latency_ms=round(timing["median_step_s"] * 1000, 2),
                    images_per_s=round(batch / timing["median_step_s"], 2),
                    first_call_s=timing["first_call_s"],
                    **({"export_s": export_s} if runtime == "savedmodel" else {})))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return dict(config, status="ok", jit_compiled=bool(model.jit_compile),
                rows=[dict(config, jit_compiled=bool(model.jit_compile), **row)
                      for row in rows])


def build_configs(args):
    shapes = {
        "cifar": dict(layout="cifar", depth=args.cifar_depth, image_size=32, classes=10,
                      statistics="cifar10"),
        "imagenet": dict(layout="imagenet", depth=args.imagenet_depth,
                         image_size=args.imagenet_size, classes=1000,
                         statistics="imagenet"),
    }
    return [dict(shapes[name], backend=backend, batch=args.batch,
                 jit_compile=JIT_COMPILE[args.jit_compile], savedmodel=args.savedmodel,
                 warmup=args.warmup, steps=args.steps)
            for backend in args.backends for name in args.models]


def render(report):
    batch = report["settings"]["batch"]
    lines, errors = {}, []
    for row in report["rows"]:
        model = f"PreActResNet-{row['depth']}, {row['image_size']}x{row['image_size']}"
        cells = lines.setdefault((model, row["backend"]), {})
        if row["status"] != "ok":
            errors.append(f"- {row['backend']}, {model}, {row.get('runtime', '')}: "
                          f"{row['status']}, {str(row.get('error'))[-300:]}")
            continue
        cells["xla"] = "yes" if row["jit_compiled"] else "no"
        key = "latency_ms" if row["batch"] == 1 else "images_per_s"
        cells[row["runtime"], key] = row[key]
    table = [[model, backend, cells.get("xla", "-"),
              *(cells.get((runtime, key)) for runtime in ("keras", "savedmodel")
                for key in ("latency_ms", "images_per_s"))]
             for (model, backend), cells in lines.items()]
    out = [
        "### Inference: Keras predict_on_batch and the exported SavedModel",
        "",
        *_common.report_lines(report),
        "",
        _common.markdown_table(["model", "backend", "XLA", "Keras, batch 1 ms",
                                f"Keras, batch {batch} images/s", "SavedModel, batch 1 ms",
                                f"SavedModel, batch {batch} images/s"], table),
    ]
    if errors:
        out += ["", "Not measured:", *errors]
    return "\n".join(out) + "\n"


def main(argv=None):
    if argv is None and "--worker" in sys.argv:
        return _common.worker_main(run_config)
    args = parse_args(argv)
    machine = _common.machine_info()
    rows = []
    for config in build_configs(args):
        _common.progress(f"{config['backend']}: PreActResNet-{config['depth']}")
        result = _common.run_worker(SCRIPT, config, args.timeout,
                                    env={"KERAS_BACKEND": config["backend"]})
        rows += result["rows"] if result["status"] == "ok" else [result]
    return _common.publish(__doc__, SCRIPT, argv, args, machine, render,
                           ok=("ok", "unsupported"), rows=rows)


if __name__ == "__main__":
    sys.exit(main())
