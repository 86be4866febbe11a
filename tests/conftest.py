"""Shared test set-up: one backend per run, chosen by KERAS_BACKEND."""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# JAX's persistent compilation cache, shared by the test workers and inherited
# by the processes the tests start: resumed, relaunched and multi-worker runs
# compile the same steps again. Every compilation is cached, not only those
# over JAX's default 1 s (most here take less). The JAX pass of the suite took
# 751 s without it and 575 s with a cold cache (2-core CPU, 2026-12-01). No
# size cap: a capped cache takes a file lock and lists the whole folder on
# every write, which made that pass 710 s. A full run adds about 30 MB.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    os.path.join(tempfile.gettempdir(), f"keras_preact-tests-jax-cache-{os.getuid()}"),
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import keras  # noqa: E402
import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BACKEND = keras.backend.backend()


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {BACKEND}"


@pytest.fixture(autouse=True)
def fresh_keras_state():
    """Each test starts from a clean graph, float32 policy and fixed seed."""
    keras.backend.clear_session(free_memory=False)
    keras.config.set_dtype_policy("float32")
    keras.config.set_image_data_format("channels_last")
    keras.utils.set_random_seed(1337)
    yield
    keras.config.set_dtype_policy("float32")
    keras.config.set_image_data_format("channels_last")


if BACKEND == "torch":
    import torch

    # Exact float32 numerics for comparisons (as Keras' own conftest does).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


@pytest.fixture
def shared_data():
    """Path of ../shared/data, or a skip when this checkout has none."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"no shared data at {SHARED_DATA}")
    return SHARED_DATA
