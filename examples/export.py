"""Export a model for TensorFlow Serving (thin wrapper over `python -m keras_preact.export`).

    # a trained model saved with model.save("preact20.keras"), any backend
    # (add --preprocessing cifar100 if it was built without input_normalization):
    python examples/export.py --model preact20.keras --export-base models --model-name preact20

    # demo: an untrained PreActResNet-20 for CIFAR-100, to try the serving setup
    python examples/export.py --demo --export-base models --model-name preact20_demo

Then serve `models/` with TF Serving and query it with
`examples/serving_client.py` (see docs/serving.md).
"""

import os
import sys
import tempfile

from keras_preact.export.__main__ import main as export_main


def demo_model_file(directory):
    """Saves an untrained PreActResNet-20 (CIFAR-100) as `.keras`; returns its path.

    The model records its input statistics (`input_normalization`), so the
    export reads them from the file: no `--preprocessing` needed.
    """
    import keras_preact

    model = keras_preact.PreActResNet20(classes=100, input_normalization="cifar100")
    path = os.path.join(directory, "preact20_demo.keras")
    model.save(path)
    return path


if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--demo" in argv:
        argv.remove("--demo")
        with tempfile.TemporaryDirectory() as tmp:
            sys.exit(export_main(["--model", demo_model_file(tmp), *argv]))
    sys.exit(export_main(argv))
