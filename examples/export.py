"""Export a model for TensorFlow Serving (thin wrapper over `python -m keras_preact.export`).

    # a trained model saved with model.save("preact20.keras"), any backend
    # (add --normalization cifar100 if it was built without input_normalization):
    python examples/export.py --model preact20.keras --export-base models --model-name preact20

    # demo: save an untrained PreActResNet-20 for CIFAR-100 as --model, then
    # export it, to try the serving setup
    python examples/export.py --demo --model preact20_demo.keras --export-base models \\
        --model-name preact20_demo

Then serve `models/` with TF Serving and query it with
`examples/serving_client.py` (see docs/serving.md).
"""

import os
import sys

from keras_preact.export.__main__ import build_parser as build_export_parser
from keras_preact.export.__main__ import main as export_main


def build_parser():
    """The parser of `python -m keras_preact.export`, plus `--demo`."""
    parser = build_export_parser()
    parser.prog = "python examples/export.py"
    parser.add_argument("--demo", action="store_true",
                        help="first save an untrained PreActResNet-20 (CIFAR-100) as --model")
    return parser


def save_demo_model(path):
    """Saves an untrained PreActResNet-20 (CIFAR-100) as `.keras` at `path`.

    The model records its input statistics (`input_normalization`), so the
    export reads them from the file: no `--normalization` needed.

    Raises:
        FileExistsError: `path` exists already (it is never overwritten).
    """
    if os.path.exists(path):
        raise FileExistsError(f"--demo writes --model, and {path!r} exists already.")
    import keras_preact

    keras_preact.PreActResNet20(classes=100, input_normalization="cifar100").save(path)


def main(argv=None):
    """Runs the command line on `argv` (default `sys.argv[1:]`); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.demo:
        argv.remove("--demo")
        try:
            save_demo_model(args.model)
        except FileExistsError as e:
            print(f"examples/export.py: {e}", file=sys.stderr)
            return 2
    return export_main(argv)


if __name__ == "__main__":
    sys.exit(main())
