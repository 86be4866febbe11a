"""examples/colab_cifar100.ipynb runs with tiny settings."""

import os

import pytest

from _checks import EXAMPLES
from _checks import REPO
from conftest import BACKEND


@pytest.mark.slow
def test_colab_notebook_executes_with_tiny_settings(shared_data, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(EXAMPLES / "colab_cifar100.ipynb", as_version=4)
    cells = [c for c in notebook.cells if "pip install" not in c.source]
    settings = nbformat.v4.new_code_cell(
        "import os\n"
        f"os.environ['KERAS_BACKEND'] = {BACKEND!r}\n"
        f"EPOCHS, STEPS, DEPTH, BATCH_SIZE = 1, 2, 8, 16\n"
        f"DATA_SOURCE, DATA_DIR = 'npz', {str(shared_data / 'cifar100')!r}\n"
        f"MAX_TRAIN_EXAMPLES, MAX_EVAL_EXAMPLES = 128, 64\n"
        f"OUTPUT_DIR = {str(tmp_path / 'colab_run')!r}\n"
    )
    # Injected after the cell tagged "parameters" (papermill style), before
    # keras is imported.
    index = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    cells.insert(index + 1, settings)
    notebook.cells = cells
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3",
        resources={"metadata": {"path": str(REPO)}},
    )
    env_pythonpath = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(REPO) + (os.pathsep + env_pythonpath if env_pythonpath else "")
    try:
        client.execute()
    finally:
        if env_pythonpath is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = env_pythonpath
    outputs = "".join(
        o.get("text", "") for c in notebook.cells if c.cell_type == "code"
        for o in c.get("outputs", [])
    )
    assert "Test top-1 accuracy" in outputs
    assert (tmp_path / "colab_run" / "metrics.csv").exists()
