"""keras_preact.pretrained.loading: `weights=` and `build` download the
source's file, check its hash, read it safely, convert it once, cache it
and load it.

The published files are made here from the source models with random
weights (`tests/pretrained/sources.py`) in the sources' own formats (a
pytorchcv `.pth` in its release zip, in either of torch's formats; a timm
`model.safetensors`) and served by a local HTTP server; the registry entries
are swapped for ones with the server's URL and the files' hashes.
"""

import dataclasses
import hashlib
import http.server
import io
import os
import socket
import sys
import threading
import time
import types
import zipfile

import keras
import numpy as np
import pytest

import keras_preact
from keras_preact.pretrained import loading
from keras_preact.pretrained import registry

from _checks import assert_all_close
from _checks import numpy
from pretrained.sources import build_source
from pretrained.sources import installed
from pretrained.sources import source_logits
from pretrained.sources import state_dict

CIFAR10 = "pytorchcv/preresnet20_cifar10"
RESNETV2_18 = "timm/resnetv2_18.ra4_e3600_r224_in1k"
SIZE = {CIFAR10: 32, RESNETV2_18: 64}
# An error for a download that cannot happen comes within this many seconds.
PROMPT_S = 5


# === The published files and their server ===


@dataclasses.dataclass
class Published:
    """A source model and its file: `folder` (under the served root) and
    `name` of the file, its `file_hash` as the registry writes it."""

    model: object
    folder: str
    name: str
    file_hash: str


def _publish_pytorchcv(root, name, legacy):
    import torch

    model = build_source(name)
    checkpoint = registry.get_checkpoint(name)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer,
               _use_new_zipfile_serialization=not legacy)
    folder = "legacy" if legacy else "zipfile"
    os.makedirs(root / folder, exist_ok=True)
    archive = checkpoint.url.rsplit("/", 1)[-1]
    with zipfile.ZipFile(root / folder / archive, "w") as f:
        f.writestr(checkpoint.file_name, buffer.getvalue())
    sha1 = hashlib.sha1(buffer.getvalue()).hexdigest()
    return Published(model, folder, archive, f"sha1:{sha1}")


def _publish_timm(root, name):
    from safetensors.numpy import save_file

    model = build_source(name)
    os.makedirs(root / "timm", exist_ok=True)
    save_file(state_dict(model), root / "timm" / "model.safetensors")
    sha256 = hashlib.sha256((root / "timm" / "model.safetensors").read_bytes())
    return Published(model, "timm", "model.safetensors", f"sha256:{sha256.hexdigest()}")


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """`{(checkpoint, format): Published}`, the files in `.root`."""
    for name in (CIFAR10, RESNETV2_18):
        if not installed(name):
            pytest.skip(f"the source package of {name} is not installed")
    root = tmp_path_factory.mktemp("published")
    files = {
        (CIFAR10, "zipfile"): _publish_pytorchcv(root, CIFAR10, legacy=False),
        (CIFAR10, "legacy"): _publish_pytorchcv(root, CIFAR10, legacy=True),
        (RESNETV2_18, "safetensors"): _publish_timm(root, RESNETV2_18),
    }
    return types.SimpleNamespace(root=root, files=files)


class _Server:
    """`http.server` on a free local port, in a thread: serves `root`,
    counts the requests."""

    def __init__(self, root):
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.requests = []
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    def stop(self):
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def server(published):
    running = _Server(published.root)
    yield running
    running.stop()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty Keras cache folder (`KERAS_HOME`)."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return tmp_path / "keras_home"


@pytest.fixture
def serve(published, server, cache, monkeypatch):
    """`serve(name, format, **changes)`: the registry entry of checkpoint
    `name` with the server's URL of its file in that format and the file's
    hash, then `changes`; returns the `Published` file."""

    def swap(name, file_format, **changes):
        file = published.files[name, file_format]
        served = dict(url=f"{server.url}/{file.folder}/{file.name}", file_hash=file.file_hash)
        entry = dataclasses.replace(registry.CHECKPOINTS[name], **{**served, **changes})
        monkeypatch.setattr(registry, "CHECKPOINTS",
                            types.MappingProxyType({**registry.CHECKPOINTS, name: entry}))
        return file

    return swap


def _closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# === Checks ===


def _pixels(name, n=2, seed=0):
    size = SIZE[name]
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def _predict(model, images):
    if model.inputs[0].shape[1] == 3:  # channels_first
        images = images.transpose(0, 3, 1, 2)
    return keras.ops.convert_to_numpy(model(images, training=False))


def _source_logits(name, source, pixels):
    statistics = registry.get_checkpoint(name).statistics
    normalized = (pixels - np.float32(statistics.mean)) / np.float32(statistics.std)
    return source_logits(source, normalized)


def _assert_close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-4,
                               atol=1e-4 * np.abs(expected).max())


def _files(cache):
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file())


# === weights= and build ===

# (builder, weights=, the checkpoint it names, the file's format, arguments).
WEIGHTS = [
    ("PreActResNet20", "cifar10", CIFAR10, "zipfile", {}),
    ("PreActResNet", CIFAR10, CIFAR10, "legacy", {}),
    ("PreActResNet18", "imagenet", RESNETV2_18, "safetensors", {"input_shape": (64, 64, 3)}),
]


@pytest.mark.parametrize("builder,weights,name,file_format,kwargs", WEIGHTS,
                         ids=[f"{row[0]}-{row[1]}-{row[3]}" for row in WEIGHTS])
def test_weights_give_the_source_logits_then_come_from_the_cache(
    builder, weights, name, file_format, kwargs, serve, server, cache
):
    file = serve(name, file_format)
    build = getattr(keras_preact, builder)
    pixels = _pixels(name)
    model = build(weights=weights, classifier_activation=None, **kwargs)
    _assert_close(_predict(model, pixels), _source_logits(name, file.model, pixels))
    assert server.requests == [f"/{file.folder}/{file.name}"]
    folder = os.path.join("models", "keras_preact", *name.split("/"))
    assert _files(cache) == sorted([
        os.path.join(folder, file.name),
        os.path.join(folder, f"keras_preact-{keras_preact.__version__}.weights.h5"),
    ])
    server.stop()
    again = build(weights=weights, classifier_activation=None, **kwargs)
    np.testing.assert_array_equal(_predict(again, pixels), _predict(model, pixels))


def test_a_file_fetched_by_hand_is_found_in_the_cache(published, serve, cache):
    file = published.files[CIFAR10, "zipfile"]
    serve(CIFAR10, "zipfile", url=f"{_closed_port_url()}/v0.0.164/{file.name}")
    target = loading.source_path(CIFAR10)
    assert target.startswith(str(cache))
    with open(target, "wb") as f:
        f.write((published.root / file.folder / file.name).read_bytes())
    pixels = _pixels(CIFAR10)
    model = loading.build(CIFAR10, classifier_activation=None)
    _assert_close(_predict(model, pixels), _source_logits(CIFAR10, file.model, pixels))


def test_a_damaged_converted_file_is_made_again(serve, server, cache):
    file = serve(CIFAR10, "zipfile")
    model = loading.build(CIFAR10, classifier_activation=None)
    converted = loading.converted_weights(CIFAR10)
    assert oct(os.stat(converted).st_mode & 0o777) == oct(0o666 & ~_umask())
    with open(converted, "r+b") as f:
        f.truncate(300)
    server.stop()  # made again from the cached source file
    again = loading.build(CIFAR10, classifier_activation=None)
    pixels = _pixels(CIFAR10)
    np.testing.assert_array_equal(_predict(again, pixels), _predict(model, pixels))
    _assert_close(_predict(again, pixels), _source_logits(CIFAR10, file.model, pixels))


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_hash_mismatch_is_refused_and_nothing_is_cached(serve, cache):
    file = serve(CIFAR10, "zipfile", file_hash="sha1:" + "0" * 40)
    actual = file.file_hash.split(":")[1]
    with pytest.raises(ValueError) as info:
        keras_preact.PreActResNet20(weights="cifar10")
    message = str(info.value)
    for part in (loading.source_path(CIFAR10), "0" * 40, actual, "sha1"):
        assert part in message
    assert _files(cache) == []


def test_a_file_without_a_published_hash_is_loaded_with_its_hash_told(serve, cache):
    file = serve(RESNETV2_18, "safetensors", file_hash="")
    with pytest.warns(UserWarning, match="No hash of the file") as caught:
        model = loading.build(RESNETV2_18, classifier_activation=None,
                              input_shape=(64, 64, 3))
    pixels = _pixels(RESNETV2_18)
    _assert_close(_predict(model, pixels), _source_logits(RESNETV2_18, file.model, pixels))
    with open(loading.source_path(RESNETV2_18), "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() in str(caught[0].message)


def _silent_server():
    """A socket that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    return listener, f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.mark.parametrize("network", ["closed port", "silent server"])
def test_no_network_is_a_prompt_error_that_names_the_url(network, serve, cache, monkeypatch):
    listener = None
    if network == "closed port":
        base = _closed_port_url()
    else:
        listener, base = _silent_server()
        monkeypatch.setattr(loading, "DOWNLOAD_TIMEOUT", 0.5)
    url = f"{base}/v0.0.192/preresnet20_cifar10-0651-76cec68d.pth.zip"
    serve(CIFAR10, "zipfile", url=url)
    start = time.monotonic()
    try:
        with pytest.raises(ConnectionError) as info:
            keras_preact.PreActResNet20(weights="cifar10")
    finally:
        if listener is not None:
            listener.close()
    assert time.monotonic() - start < PROMPT_S
    message = str(info.value)
    for part in (url, loading.source_path(CIFAR10), "keras_preact.pretrained.convert"):
        assert part in message
    assert _files(cache) == []


# (arguments, what the ValueError names): refused before any download.
CONTRADICTIONS = [
    (dict(stride_on="1x1"), r"Invalid stride_on='1x1' for"),
    (dict(classes=10), "Invalid classes=10"),
    (dict(unit_ordering="original"), "Invalid unit_ordering='original'"),
    (dict(input_normalization="cifar10"), "Invalid input_normalization='cifar10'"),
]


@pytest.mark.parametrize("kwargs,match", CONTRADICTIONS, ids=[m for _, m in CONTRADICTIONS])
def test_contradictions_are_refused_before_downloading(kwargs, match, cache):
    with pytest.raises(ValueError, match=match):
        keras_preact.PreActResNet164(weights="cifar100", **kwargs)
    assert _files(cache) == []


def test_short_names_without_a_checkpoint_are_refused():
    with pytest.raises(ValueError, match=r"weights='imagenet'.*depth 20.*networks \(imagenet 18, "):
        keras_preact.PreActResNet(20, weights="imagenet")
    with pytest.raises(ValueError, match="Unknown pretrained checkpoint 'timm/resnetv2_77'"):
        keras_preact.PreActResNet50(weights="timm/resnetv2_77")


# Models that differ from the converted one: (arguments, the output the
# converted model gives for them, from its layer of that name).
VARIANTS = [
    (dict(include_top=False, pooling="avg"), "avg_pool"),
    (dict(data_format="channels_first", classifier_activation=None), "predictions"),
    (dict(drop_path_rate=0.1, classifier_activation=None), "predictions"),
]


@pytest.mark.parametrize("kwargs,output", VARIANTS, ids=[str(k) for k, _ in VARIANTS])
def test_a_model_unlike_the_converted_one_gets_its_weights(kwargs, output, serve):
    file = serve(CIFAR10, "zipfile")
    pixels = _pixels(CIFAR10)
    full = loading.build(CIFAR10, classifier_activation=None)
    expected = _predict(keras.Model(full.input, full.get_layer(output).output), pixels)
    model = loading.build(CIFAR10, **kwargs)
    _assert_close(_predict(model, pixels), expected)
    if output == "predictions":
        _assert_close(expected, _source_logits(CIFAR10, file.model, pixels))


def test_a_mixed_precision_model_gets_the_float32_weights(serve):
    serve(CIFAR10, "zipfile")
    full = loading.build(CIFAR10)
    keras.config.set_dtype_policy("mixed_float16")
    model = loading.build(CIFAR10)
    assert model.get_layer("stem_conv").compute_dtype == "float16"
    assert [w.path for w in model.weights] == [w.path for w in full.weights]
    assert_all_close(numpy(model.weights), numpy(full.weights), dict(rtol=0, atol=0),
                     "weights under mixed_float16")


def test_the_model_saves_and_reloads_as_keras(serve, tmp_path):
    serve(CIFAR10, "zipfile")
    model = keras_preact.PreActResNet20(weights="cifar10")
    path = tmp_path / "pretrained.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    pixels = _pixels(CIFAR10)
    np.testing.assert_array_equal(_predict(restored, pixels), _predict(model, pixels))


# === Reading files safely ===


class _Payload:
    """A pickled object whose unpickling writes the file `path`."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_load_state_dict_refuses_a_pickle_that_runs_code(tmp_path):
    import torch

    path, written = tmp_path / "evil.pth", tmp_path / "written"
    torch.save({"weight": torch.zeros(2), "payload": _Payload(written)}, path)
    with pytest.raises(ValueError, match="weights_only=True"):
        loading.load_state_dict(path)
    assert not written.exists()


def test_load_state_dict_refuses_other_files(tmp_path):
    path = tmp_path / "weights.npz"
    np.savez(path, weight=np.zeros(2))
    with pytest.raises(ValueError, match="Unknown checkpoint file 'weights.npz'"):
        loading.load_state_dict(path)


def test_a_pth_without_torch_names_the_install_line(published, monkeypatch):
    file = published.files[CIFAR10, "zipfile"]
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ModuleNotFoundError, match="pip install torch"):
        loading.load_state_dict(published.root / file.folder / file.name)
