"""Pretrained weights on first use: download, check, read safely, convert, cache.

`build(name, **builder_kwargs)` returns the `keras_preact.PreActResNet` of a
published checkpoint with its trained weights. The first call downloads the
source's file (`keras.utils.get_file`) into the checkpoint's folder of the
cache, `$KERAS_HOME/models/keras_preact/<source>/<checkpoint>/` (`KERAS_HOME`
defaults to `~/.keras`), checks its hash, reads it without running code from
it (`safetensors`, or torch's `weights_only` loader), converts it
(`keras_preact.pretrained.convert`) and saves the converted model's weights
beside it; later calls only load those.
"""

import contextlib
import hashlib
import io
import os
import socket
import tempfile
import warnings
import zipfile

import keras

from keras_preact.models.preact_resnet import PreActResNet
from keras_preact.models.weights import copy_weights
from keras_preact.pretrained.convert import convert
from keras_preact.pretrained.registry import builder_arguments
from keras_preact.pretrained.registry import get_checkpoint

# Seconds a download waits for the server (to connect, then for each read)
# before it gives up: urllib, which `keras.utils.get_file` uses, has no
# timeout of its own, so it waits minutes on a network that drops packets
# and for ever on a server that accepts and never answers.
DOWNLOAD_TIMEOUT = 10


def build(name, **builder_kwargs):
    """The network of a published checkpoint with its trained weights.

    The model is `keras_preact.PreActResNet(**builder_arguments(checkpoint,
    **builder_kwargs))`: the checkpoint's network, classes and input
    statistics (it takes 0-255 pixels), with `builder_kwargs` on top. Its
    weights come, layer by layer by name, from the converted checkpoint, so
    a headless model (`include_top=False`), another input shape, data
    format, dtype policy or `drop_path_rate` gets them as well; every layer
    with weights gets its own.

    The converted weights are made on the first call (see
    `converted_weights`), which downloads the source's file: without
    network, copy that file by hand to the path the error names.

    Args:
        name: str. A checkpoint name of `keras_preact.pretrained.CHECKPOINTS`,
            such as `"pytorchcv/preresnet164bn_cifar100"`.
        **builder_kwargs: `keras_preact.PreActResNet` arguments (not
            `weights`), such as `include_top=False`, `pooling="avg"`,
            `classifier_activation=None` or `input_normalization=None` (the
            model then takes inputs already normalized with the
            checkpoint's statistics).

    Returns:
        A functional `keras.Model`.

    Raises:
        ValueError: an unknown name, an argument that contradicts the
            checkpoint (`keras_preact.pretrained.registry.builder_arguments`),
            or a downloaded file whose hash is not the published one.
        ConnectionError: the download failed; the message names the URL,
            the cache path a file fetched by hand goes to, and `convert`.
        ModuleNotFoundError: a pytorchcv checkpoint is read without PyTorch
            installed (the message gives the install line).

    Example:

    ```python
    model = keras_preact.pretrained.build(
        "pytorchcv/preresnet164bn_cifar100", classifier_activation=None
    )
    logits = model.predict(pixels)  # (batch, 32, 32, 3) RGB on 0-255
    ```
    """
    checkpoint = get_checkpoint(name)
    arguments = builder_arguments(checkpoint, **builder_kwargs)
    path = converted_weights(name)
    model = PreActResNet(**arguments)
    with _float32_policy():
        converted = PreActResNet(**builder_arguments(checkpoint))
    try:
        converted.load_weights(path)
    except Exception:  # h5py and Keras raise several types for a bad file.
        # A damaged cached file: made again from the cached source file.
        os.remove(path)
        converted.load_weights(converted_weights(name))
    copy_weights(converted, model,
                 skip=() if arguments.get("include_top", True) else ("predictions",))
    return model


def converted_weights(name):
    """The `.weights.h5` of the converted checkpoint, made on first use.

    The file holds the weights of `keras_preact.pretrained.convert(
    state_dict, name)`: the checkpoint's whole network, float32. The first
    call downloads the source's file (`source_path`), checks its hash,
    reads it (`load_state_dict`), converts it and writes the file
    atomically (a temporary file renamed); later calls return it at once.

    Args:
        name: str. A checkpoint name of `keras_preact.pretrained.CHECKPOINTS`.

    Returns:
        str, the path of the `.weights.h5` file.

    Raises:
        As `build`.
    """
    checkpoint = get_checkpoint(name)
    path = _converted_path(name)
    if os.path.isfile(path):
        return path
    folder = os.path.dirname(path)
    with _float32_policy():
        model = convert(_verified_state_dict(checkpoint), name)
    handle, temporary = tempfile.mkstemp(suffix=".weights.h5", dir=folder)
    os.close(handle)
    try:
        model.save_weights(temporary)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp's file is private
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def _converted_path(name):
    import keras_preact  # the package's version names the file

    return os.path.join(
        cache_folder(name), f"keras_preact-{keras_preact.__version__}.weights.h5"
    )


def cache_folder(name):
    """The cache folder of checkpoint `name`, created if missing:
    `$KERAS_HOME/models/keras_preact/<source>/<checkpoint>` (`KERAS_HOME`
    defaults to `~/.keras`, as for `keras.utils.get_file`)."""
    home = os.path.expanduser(os.environ.get("KERAS_HOME", "~/.keras"))
    folder = os.path.join(home, "models", "keras_preact", *name.split("/"))
    os.makedirs(folder, exist_ok=True)
    return folder


def source_path(name):
    """Where the source's published file of checkpoint `name` is cached:
    the file of its `url`, unchanged (a pytorchcv `.pth.zip`, a timm
    `model.safetensors`), in `cache_folder(name)`. A file fetched by hand
    goes there; the next `build` checks its hash and converts it."""
    url = get_checkpoint(name).url
    return os.path.join(cache_folder(name), url.rsplit("/", 1)[-1])


def load_state_dict(path):
    """The arrays of a checkpoint file, read without running code from it.

    Args:
        path: a `.safetensors` file (read with `safetensors.numpy`), a
            PyTorch `.pth` / `.pt` state dict (read with
            `torch.load(..., weights_only=True)`, either of torch's
            formats), or a `.zip` holding one such `.pth` (pytorchcv's
            releases).

    Returns:
        A dict from the parameter names to NumPy arrays, for
        `keras_preact.pretrained.convert`.

    Raises:
        ValueError: another kind of file, or one that does not hold a
            state dict.
        ModuleNotFoundError: a `.pth` without PyTorch installed.

    Example:

    ```python
    state_dict = load_state_dict("preresnet20_cifar10-0651-76cec68d.pth")
    model = keras_preact.pretrained.convert(
        state_dict, "pytorchcv/preresnet20_cifar10"
    )
    ```
    """
    file_name, data = _read(os.fspath(path))
    return _parse(file_name, data)


def _verified_state_dict(checkpoint):
    """The state dict of the checkpoint's cached file, downloaded if
    missing, after its hash check. A file that fails the check or cannot
    be read is removed, so the next call downloads it again."""
    path = _download(checkpoint)
    try:
        file_name, data = _read(path, checkpoint.file_name)
        _check_hash(checkpoint, path, data)
        return _parse(file_name, data)
    except ValueError as error:
        os.remove(path)
        raise ValueError(
            f"{str(error).rstrip('.')}. Removed {path}: the next call "
            "downloads it again."
        ) from error


def _download(checkpoint):
    """`source_path` of the checkpoint, downloaded when missing."""
    path = source_path(checkpoint.name)
    if os.path.isfile(path):
        return path
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT):
            return keras.utils.get_file(
                os.path.basename(path), checkpoint.url,
                cache_subdir=os.path.dirname(path),
            )
    except Exception as error:  # get_file re-raises urllib's errors as Exception.
        reason = error.__context__ or error
        raise ConnectionError(
            f"Could not download the file of weights={checkpoint.name!r} "
            f"from {checkpoint.url} ({reason}). Without network, fetch that "
            f"file on another machine and copy it to {path} (the cache of "
            "$KERAS_HOME, default ~/.keras): the next call "
            f"{'checks its hash and ' if checkpoint.file_hash else ''}"
            "converts it. Or read a copy of the file anywhere with "
            "keras_preact.pretrained.load_state_dict(path) and convert it: "
            f"keras_preact.pretrained.convert(state_dict, {checkpoint.name!r})."
        ) from error


@contextlib.contextmanager
def _socket_timeout(seconds):
    # The process-wide default: urllib opens its sockets without a timeout.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


@contextlib.contextmanager
def _float32_policy():
    # The converted weights stay float32 whatever the global policy: the
    # model they go to casts them to its own variables' dtype.
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(policy)


def _read(path, member=None):
    """`(file name, bytes)` of `path`, or of its `.pth` member for a zip
    (`member`, or the zip's only `.pth` file)."""
    if not path.endswith(".zip"):
        with open(path, "rb") as f:
            return os.path.basename(path), f.read()
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise ValueError(f"{path} is not a readable zip file: {error}.") from error
    with archive:
        names = [n for n in archive.namelist() if n.endswith((".pth", ".pt"))]
        if member is None and len(names) == 1:
            member = names[0]
        if member not in names:
            raise ValueError(
                f"The archive {path} holds {archive.namelist()}; expected "
                f"{member or 'one .pth file'}."
            )
        return member, archive.read(member)


def _check_hash(checkpoint, path, data):
    if not checkpoint.file_hash:
        warnings.warn(
            f"No hash of the file of {checkpoint.name!r} is published, so "
            f"{path} is not checked against one; its SHA-256 is "
            f"{hashlib.sha256(data).hexdigest()} (compare it with the source's "
            "page). It is read as data (safetensors) and converted with every "
            "name and shape checked.",
            stacklevel=2,
        )
        return
    algorithm, expected = checkpoint.file_hash.split(":", 1)
    actual = hashlib.new(algorithm, data).hexdigest()
    if actual != expected:
        inside = f" ({checkpoint.file_name} inside it)" if path.endswith(
            ".zip") else ""
        raise ValueError(
            f"The file {path}{inside}, the weights of {checkpoint.name!r} "
            f"from {checkpoint.url}, has {algorithm} {actual}; expected "
            f"{expected}."
        )


def _parse(file_name, data):
    if file_name.endswith(".safetensors"):
        from safetensors import SafetensorError
        from safetensors.numpy import load

        try:
            return load(data)
        except SafetensorError as error:
            raise ValueError(
                f"{file_name} is not a readable safetensors file: {error}"
            ) from error
    if not file_name.endswith((".pth", ".pt")):
        raise ValueError(
            f"Unknown checkpoint file {file_name!r}. Expected a .safetensors, "
            ".pth, .pt or a .zip of a .pth file."
        )
    torch = _import_torch(file_name)
    try:
        state_dict = torch.load(
            io.BytesIO(data), map_location="cpu", weights_only=True
        )
    except Exception as error:  # torch raises several types for a bad file.
        raise ValueError(
            f"{file_name} is not a PyTorch state dict that loads with "
            f"weights_only=True: {error}"
        ) from error
    if not isinstance(state_dict, dict) or not all(
        isinstance(v, torch.Tensor) for v in state_dict.values()
    ):
        raise ValueError(
            f"{file_name} does not hold a state dict (a mapping of names to "
            f"tensors): it holds a {type(state_dict).__name__}."
        )
    return {key: value.numpy() for key, value in state_dict.items()}


def _import_torch(file_name):
    try:
        import torch
    except ModuleNotFoundError as error:
        if error.name != "torch":
            raise
        raise ModuleNotFoundError(
            f"Reading {file_name}, a PyTorch checkpoint, needs PyTorch, which "
            "is not installed. Its CPU build is enough: `pip install torch "
            "--index-url https://download.pytorch.org/whl/cpu` (a plain `pip "
            "install torch` is the CUDA build on Linux). The timm checkpoints "
            "(.safetensors) need no PyTorch.",
            name="torch",
        ) from None
    return torch
