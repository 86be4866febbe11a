"""Command line: export a saved `.keras` model as a TF Serving SavedModel.

    python -m keras_preact.export --model model.keras --export-base /models \\
        --model-name preact20 [--version N] [--features-only] \\
        [--normalization cifar10|cifar100|imagenet  (only for a model that records none)]

SavedModel export needs the TensorFlow or JAX backend. Started under another
backend (e.g. KERAS_BACKEND=torch, where the model was trained), the command
re-launches itself with KERAS_BACKEND=tensorflow: a `.keras` file holds
backend-independent weights, so a torch-trained model exports unchanged.
"""

import argparse
import importlib.util
import os
import subprocess
import sys

from keras_preact.normalization import STATISTICS


def build_parser():
    """The `argparse.ArgumentParser` of `python -m keras_preact.export`."""
    parser = argparse.ArgumentParser(
        prog="python -m keras_preact.export",
        description="Export a .keras classifier as a TensorFlow Serving SavedModel "
        "(<export-base>/<model-name>/<version>/).",
    )
    parser.add_argument("--model", required=True, help="path of a .keras file")
    parser.add_argument("--export-base", required=True, help="base folder for TF Serving")
    parser.add_argument("--model-name", required=True, help="served model name (folder)")
    parser.add_argument("--version", type=int, default=None, help="version (default: next free)")
    parser.add_argument("--normalization", choices=sorted(STATISTICS),
                        help="statistics, only for a model that records none (default: its own)")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("H", "W"))
    parser.add_argument("--eval-resize", type=int, default=None)
    parser.add_argument("--no-bytes-signature", action="store_true",
                        help="do not add the serving_bytes (encoded JPEG/PNG) signature")
    parser.add_argument("--serving-dtype", default="float32",
                        choices=["float32", "mixed_float16", "mixed_bfloat16", "keep"],
                        help="dtype policy of the served graph (default float32; keep = as trained)")
    parser.add_argument("--features-only", action="store_true",
                        help="export the headless model (output 'features')")
    return parser


def main(argv=None):
    """Runs the command line on `argv` (default `sys.argv[1:]`).

    Returns:
        int exit status: 0 (the version folder is printed), 2 for a missing
        file or TensorFlow, bad arguments or an existing version (the reason
        goes to stderr); under torch, the status of the TensorFlow re-run.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)

    import keras

    from keras_preact.export.saved_model import SUPPORTED_BACKENDS
    from keras_preact.install_hints import missing_tensorflow_message

    backend = keras.backend.backend()
    if importlib.util.find_spec("tensorflow") is None:
        print(f"keras_preact.export: {missing_tensorflow_message('SavedModel export')}",
              file=sys.stderr)
        return 2
    if backend not in SUPPORTED_BACKENDS:
        print(f"keras_preact.export: the {backend!r} backend cannot write a SavedModel; "
              "re-running with KERAS_BACKEND=tensorflow.", file=sys.stderr)
        env = dict(os.environ, KERAS_BACKEND="tensorflow")
        return subprocess.call([sys.executable, "-m", "keras_preact.export", *argv], env=env)

    import keras_preact  # noqa: F401  (registers the custom layers for loading)
    from keras_preact.export.saved_model import export_saved_model

    if not os.path.isfile(args.model):
        print(f"keras_preact.export: no such model file: {args.model!r}", file=sys.stderr)
        return 2
    model = keras.saving.load_model(args.model, compile=False)
    try:
        path = export_saved_model(
            model, args.export_base, args.model_name, version=args.version,
            normalization=args.normalization, top_k=args.top_k,
            include_encoded_image_signature=not args.no_bytes_signature,
            image_size=args.image_size, eval_resize=args.eval_resize,
            serving_dtype=None if args.serving_dtype == "keep" else args.serving_dtype,
            features_only=args.features_only,
        )
    except (ValueError, FileExistsError) as e:
        print(f"keras_preact.export: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
