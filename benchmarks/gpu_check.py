"""One-shot GPU check: training speed and memory of keras_preact against PyTorch, eager
and compiled, then depth 1001 with and without remat and a short real CIFAR-100 run,
within one budget of about 7 minutes.

Made for a GPU machine without network, TensorFlow or Keras preinstalled (Keras and
pytorchcv travel as wheels: see `benchmarks/gpu_check.sh`, which installs them and
calls this script). Every part runs in its own subprocess (its own `KERAS_BACKEND`,
clean peak-memory counters, empty Inductor and Triton caches outside `--cpu-smoke`)
under its own time cap: a part that runs past its cap is killed with its process group
and recorded as "timeout" (a Keras part with the warm-up steps it finished), a part
that fails is recorded as "error", and the next part runs either way. The JSON and
Markdown reports are rewritten (temp file + `os.replace`) after every part, so a run
cut short keeps what it measured. Progress lines carry the time and go to stdout;
every worker's full output goes to the log.

Parts, in the order they run (default caps in seconds, `--cap NAME=SECONDS`); the
CIFAR nets are PreActResNet164 at 32x32, 100 classes, batch 128, the ImageNet nets
PreActResNet50 at 224x224, 1000 classes, batch 256:

    keras_jax_cifar164               (90)  the CIFAR net, JAX, jit_compile=True (XLA),
                                           built as pytorchcv's preresnet164bn_cifar100
                                           (`builder_arguments` of its checkpoint: stride
                                           on the 3x3 conv, raw first shortcut)
    keras_torch_cifar164             (60)  the same on the torch backend, eager
    torch_pytorchcv_cifar164         (45)  pytorchcv `preresnet164bn_cifar100`, eager
    keras_jax_imagenet50             (90)  the ImageNet net, JAX, XLA
    keras_torch_imagenet50           (60)  the ImageNet net, torch backend, eager
    torch_timm_resnetv2_50           (45)  timm `resnetv2_50` (the same network), eager
    torch_pytorchcv_cifar164_compile (90)  pytorchcv's net under torch.compile
    torch_timm_resnetv2_50_compile   (90)  timm resnetv2_50 under torch.compile
    keras_torch_imagenet50_compile  (180)  the ImageNet net, torch backend,
                                           jit_compile=True (Keras' torch.compile)
    keras_torch_cifar164_compile    (420)  the CIFAR net, torch backend, jit_compile=True
    torch_ours_cifar164              (45)  `benchmarks/torch_reference.py` ("ours,
                                           torch"): keras_preact's default CIFAR layout
                                           in PyTorch, eager
    torch_ours_cifar164_compile      (90)  the same under torch.compile
    real_cifar100_jax               (150)  PreActResNet20 trained on a 12,500-image
                                           CIFAR-100 shard with
                                           `keras_preact.data.CIFARBatches` (no
                                           TensorFlow), the paper's schedule shortened to
                                           `--real-epochs`, JAX
    keras_torch_r1001                (60)  PreActResNet1001, CIFAR, batch 128, torch
                                           backend, eager
    keras_torch_r1001_remat          (60)  the same with remat=True
    keras_jax_r1001                 (150)  PreActResNet1001, CIFAR, batch 128, JAX, XLA
    keras_jax_r1001_remat           (150)  the same with remat=True

All training runs in bfloat16 mixed precision (Keras `mixed_bfloat16`; PyTorch
`torch.autocast(dtype=torch.bfloat16)`, channels_last, SGD momentum 0.9, cuDNN
benchmark mode on for every torch process). Keras models are compiled with
`keras_preact.training.compile_for_paper` (SGD momentum 0.9, L2 1e-4, top-1/top-5).
Throughput: `batch / median step time` over `--steps` whole steps (`train_on_batch`:
forward, backward, update, host sync) after `--warmup` steps, on synthetic data placed
on the device once. The first step includes XLA's or torch.compile's compilation and
is reported apart ("first step s"), with every Keras warm-up step's time (torch.compile
compiles Keras' step again in its second call). Peak GPU memory: torch
`max_memory_allocated()` since `reset_peak_memory_stats()` just before the steps (so it
counts weights, gradients, optimizer state and activations); JAX
`memory_stats()["peak_bytes_in_use"]` of the process (run with
`XLA_PYTHON_CLIENT_PREALLOCATE=false`). GMACs per image: convolutions and classifier,
so Keras and PyTorch models can be compared for equal work. The report pairs every
Keras part with its network in PyTorch, eager and compiled (`RATIO_PAIRS`).

The parts share one wall-clock budget (`--budget-s`, default 430 s): a part gets its cap
or what is left of the budget, whichever is less, and is skipped when under 20 s are
left. `--parts` runs a subset (e.g. to rerun one part with a longer `--cap`). Parts that
need pytorchcv or timm report "skipped" with the reason where it does not import.

`--cpu-smoke` runs every part's code at toy sizes (depth 11 bottleneck instead of 164 /
1001, a one-unit-per-stage ImageNet net at 32x32, batches of 2-4, 1 warm-up + 2 steps,
2 epochs on 64 images) on a CPU in a few minutes. torch.compile takes minutes per
network on a CPU, so the compile parts report "skipped" there unless `--parts` names
them, as do parts that need
timm or pytorchcv where they are missing; peak GPU memory is null.

Outputs in `--output DIR`: `gpu_check.json`, `gpu_check.md`, `gpu_check.log`.

Examples:
    python benchmarks/gpu_check.py --cpu-smoke --output /tmp/gpucheck_smoke
    bash benchmarks/gpu_check.sh --data-dir .gpu_data "$OUT"       # on the GPU machine
    python benchmarks/gpu_check.py --prepare-data ../shared/data/cifar100 --data-dir .gpu_data
"""

import argparse
import dataclasses
import datetime
import glob
import importlib.util
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

SCRIPT = os.path.abspath(__file__)
SCHEMA = "keras_preact.gpu_check/1"
PROGRESS = "[gpu_check] "
MIXED_POLICY = "mixed_bfloat16"
OUTPUT_FILES = ("gpu_check.json", "gpu_check.md", "gpu_check.log")
DEFAULT_DATA_DIR = os.path.join(_common.REPO_ROOT, ".gpu_data")
TEST_FILES = ("test_small.npz", "test.npz")
MIN_PART_S = 20
KILL_GRACE_S = 5


@dataclasses.dataclass(frozen=True)
class Part:
    """One measurement: which worker runs it, on which Keras backend, for how long."""

    name: str
    kind: str  # "keras_train" | "torch_train" | "real_cifar"
    backend: str  # KERAS_BACKEND of its process
    cap_s: int
    description: str
    needs: str = ""  # a key of REQUIREMENTS: the part is skipped where it does not import


# What a part's `needs` must find importable, and how to get it onto the GPU machine.
REQUIREMENTS = {
    # timm imports torchvision (absent beside a CPU-only torch).
    "timm": (("timm", "torchvision"), ""),
    "pytorchcv": (("pytorchcv",), " (a pure-Python wheel: `pip download pytorchcv --no-deps "
                                  "-d .whl` carries it)"),
}
# The network of this checkpoint (no weights) is what the Keras CIFAR-164 parts build,
# so that they and pytorchcv's preresnet164bn_cifar100 do the same work.
PYTORCHCV_NETWORK = "pytorchcv/preresnet164bn_cifar100"
# Why a CPU smoke run skips the torch.compile parts unless `--parts` names them. Keras'
# compiled torch step itself is tested by tests/training/test_compile.py.
SMOKE_COMPILE_SKIP = ("CPU smoke: torch.compile takes minutes per network on a CPU "
                      "(the compile parts run on a GPU)")

# In this order: the Keras / PyTorch comparison, eager parts before compiled ones, then
# the rest, which a full budget cuts first.
PARTS = (
    Part("keras_jax_cifar164", "keras_train", "jax", 90,
         "keras_preact PreActResNet164 (pytorchcv's layout), CIFAR, JAX, jit"),
    Part("keras_torch_cifar164", "keras_train", "torch", 60,
         "keras_preact PreActResNet164 (pytorchcv's layout), CIFAR, torch backend, eager"),
    Part("torch_pytorchcv_cifar164", "torch_train", "torch", 45,
         "PyTorch pytorchcv preresnet164bn_cifar100, eager", needs="pytorchcv"),
    Part("keras_jax_imagenet50", "keras_train", "jax", 90,
         "keras_preact PreActResNet50, ImageNet, JAX, jit"),
    Part("keras_torch_imagenet50", "keras_train", "torch", 60,
         "keras_preact PreActResNet50, ImageNet, torch backend, eager"),
    Part("torch_timm_resnetv2_50", "torch_train", "torch", 45,
         "PyTorch timm resnetv2_50, eager", needs="timm"),
    Part("torch_pytorchcv_cifar164_compile", "torch_train", "torch", 90,
         "PyTorch pytorchcv preresnet164bn_cifar100, torch.compile", needs="pytorchcv"),
    Part("torch_timm_resnetv2_50_compile", "torch_train", "torch", 90,
         "PyTorch timm resnetv2_50, torch.compile", needs="timm"),
    Part("keras_torch_imagenet50_compile", "keras_train", "torch", 180,
         "keras_preact PreActResNet50, ImageNet, torch backend, jit_compile=True "
         "(torch.compile)"),
    Part("keras_torch_cifar164_compile", "keras_train", "torch", 420,
         "keras_preact PreActResNet164 (pytorchcv's layout), CIFAR, torch backend, "
         "jit_compile=True (torch.compile)"),
    Part("torch_ours_cifar164", "torch_train", "torch", 45,
         "PyTorch PreActResNet164, keras_preact's default layout (ours, torch: "
         "benchmarks/torch_reference.py), eager"),
    Part("torch_ours_cifar164_compile", "torch_train", "torch", 90,
         "PyTorch PreActResNet164, keras_preact's default layout (ours, torch), "
         "torch.compile"),
    Part("real_cifar100_jax", "real_cifar", "jax", 150,
         "real CIFAR-100 run on keras_preact.data.CIFARBatches, JAX, jit"),
    Part("keras_torch_r1001", "keras_train", "torch", 60,
         "keras_preact PreActResNet1001, CIFAR, torch backend, eager"),
    Part("keras_torch_r1001_remat", "keras_train", "torch", 60,
         "keras_preact PreActResNet1001 remat=True, CIFAR, torch backend, eager"),
    Part("keras_jax_r1001", "keras_train", "jax", 150,
         "keras_preact PreActResNet1001, CIFAR, JAX, jit"),
    Part("keras_jax_r1001_remat", "keras_train", "jax", 150,
         "keras_preact PreActResNet1001 remat=True, CIFAR, JAX, jit"),
)
PARTS_BY_NAME = {p.name: p for p in PARTS}

# Which Keras figure is compared with which PyTorch figure (same batch and precision):
# ratio = Keras images/s / PyTorch images/s (> 1: Keras is faster). Each Keras part
# against its network in PyTorch, eager and compiled. The torch_ours parts are
# keras_preact's default CIFAR layout (stride on the first 1x1 conv, the first unit's
# shortcut from its pre-activation), a slightly different network from the Keras CIFAR
# parts': their pairs are marked so (OTHER_NETWORK), for runs without pytorchcv.
_CIFAR_KERAS = ("keras_jax_cifar164", "keras_torch_cifar164", "keras_torch_cifar164_compile")
_IMAGENET_KERAS = ("keras_jax_imagenet50", "keras_torch_imagenet50",
                   "keras_torch_imagenet50_compile")
OTHER_NETWORK = ("torch_ours_cifar164", "torch_ours_cifar164_compile")
RATIO_PAIRS = tuple(
    (keras_name, torch_name)
    for keras_names, torch_names in (
        (_CIFAR_KERAS, ("torch_pytorchcv_cifar164", "torch_pytorchcv_cifar164_compile",
                        *OTHER_NETWORK)),
        (_IMAGENET_KERAS, ("torch_timm_resnetv2_50", "torch_timm_resnetv2_50_compile")),
    )
    for keras_name in keras_names
    for torch_name in torch_names
)


# remat=False / remat=True pairs (same depth, batch, backend).
REMAT_PAIRS = (
    ("keras_torch_r1001", "keras_torch_r1001_remat"),
    ("keras_jax_r1001", "keras_jax_r1001_remat"),
)


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _stamp():
    return _now().strftime("%H:%M:%S")


def _finite(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
        value
    )


# =========================================================================== configs


def _cifar_shape(depth, batch, smoke):
    if smoke:  # the smallest net with the 164/1001 (bottleneck) code path
        return dict(layout="cifar", depth=11, block_type="bottleneck", image_size=32,
                    classes=100, batch=4)
    return dict(layout="cifar", depth=depth, block_type="bottleneck", image_size=32,
                classes=100, batch=batch)


def _imagenet_shape(batch, smoke):
    if smoke:  # one bottleneck unit per stage, ImageNet stem and widths, 32x32
        return dict(layout="imagenet", depth=None, stage_units=[1, 1, 1, 1],
                    block_type="bottleneck", image_size=32, classes=10, batch=2)
    return dict(layout="imagenet", depth=50, image_size=224, classes=1000, batch=batch)


TORCH_LABELS = {"reference": "ours, torch", "pytorchcv": "pytorchcv",
                "timm": "timm resnetv2_50"}


def part_config(part, args):
    """The worker config of `part` for these arguments (a JSON-able dict)."""
    smoke = args.cpu_smoke
    warmup, steps = (1, 2) if smoke else (args.warmup, args.steps)
    common = dict(part=part.name, warmup=warmup, steps=steps, policy=MIXED_POLICY)
    name = part.name
    if part.kind == "real_cifar":
        return dict(
            common,
            data_dir=args.data_dir,
            depth=8 if smoke else args.real_depth,
            epochs=2 if smoke else args.real_epochs,
            batch=16 if smoke else 128,
            max_train=64 if smoke else args.real_train_examples,
            max_test=32 if smoke else args.real_test_examples,
            eval_batch=16 if smoke else 500,
            workers=args.real_workers,
            seed=0,
        )
    compiled = name.endswith("_compile")
    if name.startswith("torch_"):
        impl = part.needs or "reference"  # the PyTorch part's `needs` is its source
        if impl == "timm":
            # torch_reference.build_model builds timm only for depth 50.
            shape = dict(_imagenet_shape(args.imagenet_batch, smoke), depth=50,
                         stage_units=None)
        else:
            shape = _cifar_shape(164, args.cifar_batch, smoke)
        return dict(
            common,
            **shape,
            framework="torch",
            model="pytorch_preact",
            torch_impl=impl,
            implementation_label=TORCH_LABELS[impl],
            precision=MIXED_POLICY,
            jit=compiled,
            cudnn_benchmark=True,
        )
    network_of = None
    if "imagenet50" in name:
        shape = _imagenet_shape(args.imagenet_batch, smoke)
    elif "r1001" in name:
        shape = _cifar_shape(1001, args.r1001_batch, smoke)
        if not smoke:
            warmup, steps = 2, args.r1001_steps
    else:
        shape = _cifar_shape(164, args.cifar_batch, smoke)
        network_of = PYTORCHCV_NETWORK
    if compiled:
        # torch.compile compiles Keras' step again in its second call: time after it.
        warmup = max(warmup, 2)
    return dict(
        common,
        **shape,
        warmup=warmup,
        steps=steps,
        framework="keras",
        backend=part.backend,
        model="keras_preact",
        network_of=network_of,
        remat=name.endswith("_remat"),
        jit=part.backend == "jax" or compiled,
        cudnn_benchmark=part.backend == "torch",
    )


# =========================================================================== workers


class Worker:
    """What a worker process writes: its result file (rewritten as it goes)."""

    def __init__(self, result_path):
        self.result_path = result_path
        self.t0 = time.perf_counter()

    def elapsed(self):
        return time.perf_counter() - self.t0

    def say(self, message):
        print(f"{PROGRESS}{message}", flush=True)

    def save(self, result):
        _common.atomic_write(self.result_path, json.dumps(result, indent=1) + "\n")


def _runtime(backend):
    """Framework versions and the device this process computes on."""
    info = {"backend": backend}
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        info.update(jax=jax.__version__, device=str(device), platform=device.platform)
    elif backend == "torch":
        import torch

        info.update(
            torch=torch.__version__,
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version() if torch.cuda.is_available() else None,
            device=torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
            platform="gpu" if torch.cuda.is_available() else "cpu",
        )
    return info


def _gpu_peak(backend):
    """Peak accelerator memory in MiB and how it was measured; (None, None) on CPU."""
    peak, kind = _common.accelerator_memory(backend)
    return (round(peak, 1) if peak is not None else None), kind


def _build_keras_model(config):
    import keras_preact

    kwargs = {}
    if config.get("network_of"):
        from keras_preact.pretrained import get_checkpoint
        from keras_preact.pretrained.registry import builder_arguments

        # The checkpoint's architecture (no weights), at this config's depth, without
        # its input statistics: the PyTorch side takes inputs already normalized.
        kwargs = builder_arguments(get_checkpoint(config["network_of"]),
                                   input_normalization=None)
        kwargs.pop("depth")
    kwargs.update(
        layout=config["layout"],
        classes=config["classes"],
        input_shape=(config["image_size"], config["image_size"], 3),
        remat=config.get("remat", False),
    )
    if config.get("block_type"):
        kwargs["block_type"] = config["block_type"]
    if config.get("stage_units"):
        kwargs["stage_units"] = tuple(config["stage_units"])
    return keras_preact.PreActResNet(config["depth"], **kwargs)


def run_keras_train(config, worker):
    import keras
    import numpy as np

    import keras_preact

    backend = keras.backend.backend()
    if backend == "torch" and config.get("cudnn_benchmark"):
        import torch

        torch.backends.cudnn.benchmark = True
    keras.config.set_dtype_policy(config["policy"])
    keras.utils.set_random_seed(0)
    runtime = _runtime(backend)
    worker.say(f"{backend} on {runtime.get('device')}; building the model")
    t0 = time.perf_counter()
    model = _build_keras_model(config)
    build_s = time.perf_counter() - t0
    keras_preact.training.compile_for_paper(model, learning_rate=0.01,
                                            jit_compile=config["jit"])
    size, batch = config["image_size"], config["batch"]
    rng = np.random.default_rng(0)
    # Synthetic batch, placed on the backend's device once.
    x = keras.ops.convert_to_tensor(
        rng.standard_normal((batch, size, size, 3), dtype=np.float32)
    )
    y = keras.ops.convert_to_tensor(rng.integers(0, config["classes"], batch).astype("int32"))
    worker.say(f"built in {build_s:.1f} s ({len(model.layers)} layers); first step "
               f"(compiles with jit={config['jit']})")
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
    # The warm-up steps' times are saved as they end, so a part stopped at its cap
    # still tells how far its compilation got (torch.compile may compile again in the
    # second step).
    progress = dict(config, status="running", runtime=runtime, build_s=round(build_s, 2),
                    stage="warm-up step 1", warmup_step_s=[])
    worker.save(progress)

    def step():
        start = time.perf_counter()
        model.train_on_batch(x, y)
        done = progress["warmup_step_s"]
        if len(done) < config["warmup"]:
            done.append(round(time.perf_counter() - start, 3))
            progress["stage"] = (f"warm-up step {len(done) + 1}"
                                 if len(done) < config["warmup"] else "timed steps")
            worker.save(progress)

    timing = _common.time_calls(step, config["warmup"], config["steps"])
    peak, kind = _gpu_peak(backend)
    result = dict(
        progress,
        status="ok",
        dtype_policy=keras.config.dtype_policy().name,
        trainable_params=int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        gmacs_per_image=_common.keras_gmacs_per_image(model),
        images_per_s=round(batch / timing["median_step_s"], 2),
        ms_per_step=round(1000 * timing["median_step_s"], 2),
        peak_gpu_memory_mib=peak,
        memory_kind=kind,
        peak_rss_mib=round(_common.peak_rss_mb(), 1),
        **timing,
    )
    del result["stage"]
    worker.say(f"{result['images_per_s']} images/s, first step {timing['first_call_s']} s, "
               f"peak GPU memory {peak} MiB")
    return result


def run_torch_train(config, worker):
    import torch

    import train_throughput

    if config.get("cudnn_benchmark"):
        torch.backends.cudnn.benchmark = True
    runtime = _runtime("torch")
    worker.say(f"torch {torch.__version__} on {runtime['device']}; "
               f"{config['implementation_label']}, compile={config['jit']}")
    # train_throughput.run_torch: build, channels_last, SGD momentum 0.9, autocast,
    # reset_peak_memory_stats, timed steps, GMACs, memory report.
    row = train_throughput.run_torch(dict(config, classes=config["classes"]))
    peak, kind = _gpu_peak("torch")
    row.update(
        runtime=runtime,
        ms_per_step=round(1000 * row["median_step_s"], 2),
        peak_gpu_memory_mib=peak,
        memory_kind=kind,
        peak_rss_mib=round(_common.peak_rss_mb(), 1),
    )
    for key in ("peak_memory_mib", "memory_kind"):
        row.pop(key, None)
    worker.say(f"{row['images_per_s']} images/s, first step {row['first_call_s']} s, "
               f"peak GPU memory {peak} MiB")
    return row


def _test_file(data_dir):
    for name in TEST_FILES:
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            return path
    return None


def _load_real_data(config):
    import numpy as np

    from keras_preact.data import load_cifar

    x, y = load_cifar("cifar100", source="npz", data_dir=config["data_dir"], split="train")
    if config.get("max_train"):
        x, y = x[: config["max_train"]], y[: config["max_train"]]
    test_path = _test_file(config["data_dir"])
    with np.load(test_path, allow_pickle=False) as z:
        xt, yt = z["x"], z["y"]
    if config.get("max_test"):
        xt, yt = xt[: config["max_test"]], yt[: config["max_test"]]
    return (x, y), (xt, yt), os.path.basename(test_path)


def run_real_cifar(config, worker):
    import keras
    import numpy as np

    import keras_preact
    from keras_preact.data import CIFARBatches
    from keras_preact.training.schedules import PaperCIFARSchedule

    backend = keras.backend.backend()
    result = dict(config, status="running", runtime=_runtime(backend), curve=[])
    worker.say(f"loading CIFAR-100 from {config['data_dir']}")
    (x, y), (xt, yt), test_name = _load_real_data(config)
    keras.config.set_dtype_policy(config["policy"])
    keras.utils.set_random_seed(config["seed"])
    t0 = time.perf_counter()
    train = CIFARBatches(x, y, training=True, batch_size=config["batch"],
                         seed=config["seed"], num_classes=100, workers=config["workers"])
    test = CIFARBatches(xt, yt, training=False, batch_size=config["eval_batch"],
                        num_classes=100)
    setup_s = time.perf_counter() - t0
    # The input path alone, on this process's main thread (one core).
    n_batches = min(len(train), 40)
    t0 = time.perf_counter()
    for i in range(n_batches):
        train[i]
    pipeline_s = time.perf_counter() - t0
    result.update(
        train_examples=len(x),
        test_examples=len(xt),
        test_file=test_name,
        steps_per_epoch=len(train),
        pipeline_setup_s=round(setup_s, 2),
        pipeline_images_per_s_one_core=round(n_batches * config["batch"] / pipeline_s, 1),
    )
    worker.say(f"{len(x)} train / {len(xt)} test images ({test_name}); CIFARBatches: "
               f"{result['pipeline_images_per_s_one_core']} images/s on one core")
    worker.save(result)

    model = keras_preact.PreActResNet(config["depth"], classes=100)
    schedule = PaperCIFARSchedule.for_run(
        batch_size=config["batch"], epochs=config["epochs"], steps_per_epoch=len(train)
    )
    keras_preact.training.compile_for_paper(model, learning_rate=schedule, jit_compile=True)
    result.update(schedule=schedule.get_config(), dtype_policy=keras.config.dtype_policy().name,
                  trainable_params=int(sum(np.prod(w.shape) for w in model.trainable_weights)))
    soft_deadline = config.get("soft_deadline_s")

    class Curve(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            point = {"epoch": epoch + 1, "epoch_s": round(time.perf_counter() - self.t0, 2)}
            for key in ("loss", "top1", "top5", "val_loss", "val_top1", "val_top5"):
                if key in logs:
                    point[key] = round(float(logs[key]), 4)
            point["learning_rate"] = round(float(keras.ops.convert_to_numpy(
                self.model.optimizer.learning_rate)), 6)
            result["curve"].append(point)
            worker.save(result)
            worker.say(
                f"epoch {point['epoch']}/{config['epochs']}: loss {point.get('loss')}, "
                f"train top-1 {point.get('top1')}, test top-1 {point.get('val_top1')}, "
                f"lr {point['learning_rate']}, {point['epoch_s']} s"
            )
            if soft_deadline and worker.elapsed() > soft_deadline:
                result["stopped_early"] = (
                    f"stopped after epoch {epoch + 1} of {config['epochs']}: "
                    f"{worker.elapsed():.0f} s > soft deadline {soft_deadline} s"
                )
                worker.say(result["stopped_early"])
                self.model.stop_training = True

    model.fit(train, validation_data=test, epochs=config["epochs"], verbose=0,
              callbacks=[Curve()])
    curve = result["curve"]
    steady = [p["epoch_s"] for p in curve[1:]]
    if steady:
        result["train_images_per_s_after_epoch1"] = round(
            len(train) * config["batch"] / (sum(steady) / len(steady)), 1
        )
    result.update(
        status="ok",
        epochs_done=len(curve),
        final_test_top1=curve[-1].get("val_top1") if curve else None,
        peak_gpu_memory_mib=_gpu_peak(backend)[0],
    )
    return result


WORKERS = {"keras_train": run_keras_train, "torch_train": run_torch_train,
           "real_cifar": run_real_cifar}


def worker_main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True, choices=sorted(PARTS_BY_NAME))
    parser.add_argument("--config", required=True)
    parser.add_argument("--result", required=True)
    args = parser.parse_args(argv)
    config = json.loads(args.config)
    # No part needs TensorFlow, and the GPU machine has none: make `import tensorflow`
    # fail here too, so a CPU smoke run proves that (Keras then skips its optional TF
    # checks instead of spending seconds importing it).
    sys.modules["tensorflow"] = None
    worker = Worker(args.result)
    kind = PARTS_BY_NAME[args.worker].kind
    try:
        result = WORKERS[kind](config, worker)
    except Exception as e:  # noqa: BLE001 - recorded in the report, not swallowed
        traceback.print_exc()
        partial = {}
        if os.path.exists(args.result):
            with open(args.result) as f:
                partial = json.load(f)
        result = dict(partial or config, status="error", error=f"{type(e).__name__}: {e}")
    result["worker_wall_s"] = round(worker.elapsed(), 1)
    worker.save(result)
    return 0 if result.get("status") in ("ok", "skipped") else 1


# =========================================================================== runner


class Runner:
    """Runs the parts one after the other and keeps the report files current."""

    def __init__(self, args):
        self.args = args
        self.out = os.path.abspath(args.output)
        os.makedirs(self.out, exist_ok=True)
        self.log_path = os.path.join(self.out, "gpu_check.log")
        self.log = open(self.log_path, "a", buffering=1)
        self.t0 = time.monotonic()
        self.deadline = self.t0 + args.budget_s
        self.report = {
            "schema": SCHEMA,
            "status": "running",
            "started_utc": _now().strftime("%Y-%m-%d %H:%M:%S UTC"),
            "settings": _settings(args),
            "machine": _common.machine_info(),
            "parts": {
                name: {"status": "pending", "description": PARTS_BY_NAME[name].description}
                for name in args.parts
            },
            "ratios": [],
        }

    def say(self, message):
        line = f"[{_stamp()} +{time.monotonic() - self.t0:5.0f}s] {message}"
        print(line, flush=True)
        self.log.write(line + "\n")

    def write(self):
        self.report["elapsed_s"] = round(time.monotonic() - self.t0, 1)
        self.report["ratios"] = compute_ratios(self.report["parts"])
        _common.atomic_write(os.path.join(self.out, "gpu_check.json"),
                             json.dumps(self.report, indent=2) + "\n")
        _common.atomic_write(os.path.join(self.out, "gpu_check.md"),
                             render_markdown(self.report))

    def run(self):
        machine = self.report["machine"]
        self.say(f"GPU check on {machine['device']}; parts: {', '.join(self.args.parts)}; "
                 f"budget {self.args.budget_s} s; output {self.out}")
        self.write()
        for name in self.args.parts:
            part = PARTS_BY_NAME[name]
            row = self.run_part(part)
            row.setdefault("description", part.description)
            self.report["parts"][name] = row
            self.write()
            self.say(f"{name}: {_summary(row)}")
            if row.get("status") in ("error", "timeout"):
                lines = [ln for ln in row.get("output_tail", "").splitlines() if ln.strip()]
                for line in lines[-8:]:
                    self.say(f"{name}   | {line[:200]}")
        self.report["status"] = "done"
        self.report["finished_utc"] = _now().strftime("%Y-%m-%d %H:%M:%S UTC")
        self.write()
        self.say(f"done in {time.monotonic() - self.t0:.0f} s: "
                 f"{os.path.join(self.out, 'gpu_check.md')}")
        self.log.close()
        return self.report

    def skip_reason(self, part):
        if part.needs:
            modules, hint = REQUIREMENTS[part.needs]
            missing = [name for name in modules if importlib.util.find_spec(name) is None]
            if missing:
                return (f"{part.needs} does not import: {' and '.join(missing)} not "
                        f"installed{hint}")
        if (self.args.cpu_smoke and part.name.endswith("_compile")
                and not self.args.parts_named):
            return SMOKE_COMPILE_SKIP
        if part.kind == "real_cifar":
            data_dir = self.args.data_dir
            if not data_dir or not os.path.isdir(data_dir):
                return f"no CIFAR-100 data folder (--data-dir {data_dir!r} does not exist)"
            if not glob.glob(os.path.join(data_dir, "train*.npz")):
                return f"no train*.npz in {data_dir}"
            if _test_file(data_dir) is None:
                return f"no {' or '.join(TEST_FILES)} in {data_dir}"
        return None

    def run_part(self, part):
        reason = self.skip_reason(part)
        remaining = self.deadline - time.monotonic()
        cap = min(self.args.caps[part.name], int(remaining))
        if reason is None and cap < min(MIN_PART_S, self.args.caps[part.name]):
            reason = (f"out of time budget ({remaining:.0f} s left of --budget-s "
                      f"{self.args.budget_s})")
        if reason is not None:
            return {"status": "skipped", "reason": reason}
        config = part_config(part, self.args)
        if part.kind == "real_cifar":
            # Leave time for the last epoch and the write-up after the deadline check.
            config["soft_deadline_s"] = round(max(cap * 0.6, cap - 30), 1)
        self.say(f"{part.name}: start (cap {cap} s, KERAS_BACKEND={part.backend})")
        row = self.spawn(part, config, cap)
        row["cap_s"] = cap
        return row

    def spawn(self, part, config, cap):
        result_path = os.path.join(self.out, f".{part.name}.result.json")
        if os.path.exists(result_path):
            os.remove(result_path)
        env = dict(os.environ, KERAS_BACKEND=part.backend, PYTHONUNBUFFERED="1")
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        cache = None
        if self.args.cpu_smoke:
            # Toy sizes measure nothing: compile XLA's CPU code without LLVM
            # optimizations (about half the compile time here).
            env.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
        elif part.backend == "torch":
            # torch.compile from empty caches, as a user's first run: no part reuses
            # kernels that an earlier part compiled.
            cache = tempfile.mkdtemp(prefix=f"gpu_check_{part.name}_")
            env.update(TORCHINDUCTOR_CACHE_DIR=os.path.join(cache, "inductor"),
                       TRITON_CACHE_DIR=os.path.join(cache, "triton"))
        cmd = [sys.executable, SCRIPT, "--worker", part.name, "--config",
               json.dumps(config), "--result", result_path]
        t0 = time.monotonic()
        self.log.write(f"===== {part.name} {_stamp()} cap {cap} s: {config}\n")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", env=env,
                                start_new_session=True, cwd=_common.REPO_ROOT)
        tail = []
        reader = threading.Thread(target=self._pump, args=(proc, part.name, tail),
                                  daemon=True)
        reader.start()
        timed_out = False
        try:
            proc.wait(timeout=cap)
        except subprocess.TimeoutExpired:
            timed_out = True
            self.say(f"{part.name}: cap of {cap} s reached, stopping its processes")
            _kill_group(proc)
        else:
            _reap_group(proc)
        reader.join(timeout=10)
        wall = round(time.monotonic() - t0, 1)
        if cache:
            shutil.rmtree(cache, ignore_errors=True)
        row = {}
        if os.path.exists(result_path):
            try:
                with open(result_path) as f:
                    row = json.load(f)
            except (OSError, ValueError):
                row = {}
            os.remove(result_path)
        row["process_wall_s"] = wall
        if timed_out:
            row["status"] = "timeout"
            row["reason"] = f"timeout after {cap} s (process group killed)"
        elif row.get("status") not in ("ok", "skipped", "error"):
            row["status"] = "error"
            row["error"] = f"worker exited with code {proc.returncode} without a result"
        if row["status"] in ("error", "timeout"):
            row["output_tail"] = "".join(tail)[-2500:]
        return row

    def _pump(self, proc, name, tail):
        for line in proc.stdout:
            self.log.write(f"{name} | {line}")
            tail.append(line)
            del tail[:-60]
            if line.startswith(PROGRESS):
                self.say(f"{name}: {line[len(PROGRESS):].rstrip()}")


def _reap_group(proc):
    """After a normal exit: SIGKILL whatever the worker left in its process group
    (e.g. torch.compile's compile workers), so nothing outlives its part."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_group(proc):
    """SIGTERM to the part's process group (torch.compile starts helper processes),
    SIGKILL if it is still alive after a grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=KILL_GRACE_S)
            if sig == signal.SIGTERM:
                try:  # helpers that outlived the leader
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return
        except subprocess.TimeoutExpired:
            continue


def _settings(args):
    keep = ("cpu_smoke", "parts", "budget_s", "caps", "data_dir", "warmup", "steps",
            "cifar_batch", "imagenet_batch", "r1001_batch", "r1001_steps", "real_depth",
            "real_epochs", "real_train_examples", "real_test_examples", "real_workers")
    settings = {k: getattr(args, k) for k in keep}
    settings["mixed_policy"] = MIXED_POLICY
    settings["env"] = {k: os.environ.get(k) for k in
                       ("XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_FLAGS", "PYTHONPATH")}
    if args.cpu_smoke and not os.environ.get("XLA_FLAGS"):
        settings["env"]["XLA_FLAGS"] = "--xla_backend_optimization_level=0 (workers)"
    return settings


def _summary(row):
    status = row.get("status")
    if status == "skipped":
        return f"skipped: {row.get('reason')}"
    if status == "timeout":
        where = f", in {row['stage']}" if row.get("stage") else ""
        if row.get("warmup_step_s"):
            where += f" (warm-up steps done: {_seconds(row['warmup_step_s'])} s)"
        return f"timeout ({row.get('reason')}){where}"
    if status == "error":
        return f"error: {str(row.get('error'))[:300]}"
    if "images_per_s" in row:
        return (f"ok, {row['images_per_s']} images/s, peak GPU "
                f"{row.get('peak_gpu_memory_mib')} MiB, first step {row.get('first_call_s')} s")
    if "curve" in row:
        return f"ok, {row.get('epochs_done')} epochs, test top-1 {_pct(row.get('final_test_top1'))}"
    return str(status)


def compute_ratios(parts):
    """Keras images/s over PyTorch images/s for each pair that both measured."""
    ratios = []
    for keras_name, torch_name in RATIO_PAIRS:
        k, t = parts.get(keras_name, {}), parts.get(torch_name, {})
        if k.get("status") != "ok" or t.get("status") != "ok":
            continue
        kv, tv = k.get("images_per_s"), t.get("images_per_s")
        if not (_finite(kv) and _finite(tv)) or tv <= 0:
            continue
        ratio = {"keras": keras_name, "torch": torch_name, "keras_images_per_s": kv,
                 "torch_images_per_s": tv, "keras_over_torch": round(kv / tv, 3),
                 "same_network": torch_name not in OTHER_NETWORK}
        kg, tg = k.get("gmacs_per_image"), t.get("gmacs_per_image")
        if _finite(kg) and _finite(tg) and kg > 0 and tg > 0:
            ratio["keras_over_torch_per_gmac"] = round(kv * kg / (tv * tg), 3)
        ratios.append(ratio)
    return ratios


# =========================================================================== markdown


def _num(value, fmt):
    return fmt.format(value) if _finite(value) else "-"


def _seconds(values):
    return ", ".join(f"{v:g}" for v in values)


def _pct(value):
    return f"{100 * value:.1f}%" if _finite(value) else "-"


def _runtimes(parts):
    """One line per framework: version and device, from the first part that ran it."""
    seen = {}
    for row in parts.values():
        rt = row.get("runtime") or {}
        key = "torch" if "torch" in rt else ("jax" if "jax" in rt else None)
        if key and key not in seen:
            if key == "jax":
                seen[key] = f"jax {rt['jax']} on {rt.get('device')}"
            else:
                seen[key] = (f"torch {rt['torch']} (CUDA {rt.get('cuda')}, cuDNN "
                             f"{rt.get('cudnn')}) on {rt.get('device')}")
    return "; ".join(seen.values()) or "none recorded"


def render_markdown(report):
    parts = report["parts"]
    s = report["settings"]
    lines = [
        "# keras_preact GPU check",
        "",
        *_common.report_lines({"machine": report["machine"]}),
        "- GPU details: " + ("; ".join(
            ", ".join(f"{k} {v}" for k, v in g.items())
            for g in report["machine"].get("gpus") or []) or "none"),
        f"- Run: {report['started_utc']}, {report.get('elapsed_s')} s, "
        f"status {report['status']}; budget {s['budget_s']} s"
        + (" (CPU smoke: toy sizes)" if s["cpu_smoke"] else ""),
        f"- Frameworks in the parts: {_runtimes(parts)}",
        f"- Precision: {s['mixed_policy']} (Keras), torch.autocast bfloat16 (PyTorch)",
        "",
        "## Training throughput (synthetic data on the device)",
        "",
    ]
    rows = []
    for name, row in parts.items():
        if name.startswith("real_") or row.get("status") != "ok" or "images_per_s" not in row:
            continue
        model = (f"depth {row.get('depth')}" if row.get("depth")
                 else f"units {row.get('stage_units')}")
        if row.get("framework") == "torch":
            impl = (f"{row.get('implementation_label')} ("
                    + ("torch.compile)" if row.get("jit") else "eager)"))
        else:
            mode = ("eager" if not row.get("jit") else
                    "XLA" if row.get("backend") == "jax" else "torch.compile")
            impl = f"keras_preact, {row.get('backend')} ({mode})"
        rows.append([
            name,
            impl,
            f"{row.get('layout')} {row.get('image_size')}px, {model}"
            + (", remat" if row.get("remat") else "")
            + (f", network of {row['network_of']}" if row.get("network_of") else ""),
            row.get("batch"),
            row.get("images_per_s"),
            row.get("ms_per_step"),
            row.get("first_call_s"),
            _seconds(row["warmup_step_s"]) if row.get("warmup_step_s") else "-",
            row.get("peak_gpu_memory_mib"),
            row.get("gmacs_per_image"),
        ])
    lines.append(_common.markdown_table(["part", "implementation", "model", "batch", "images/s",
                         "ms/step", "first step s", "warm-up steps s", "peak GPU MiB",
                         "GMACs/img"], rows)
                 if rows else "No throughput part finished.")
    lines += ["", "The first step includes XLA's or torch.compile's compilation; a Keras "
              "part's warm-up steps show where a compiled step compiles again.",
              "", "## Keras / PyTorch", ""]
    ratios = report.get("ratios") or []
    lines.append(_common.markdown_table(
        ["Keras", "PyTorch", "same network", "Keras images/s", "PyTorch images/s",
         "Keras / PyTorch", "per GMAC"],
        [[r["keras"], r["torch"], "yes" if r["same_network"] else "no",
          r["keras_images_per_s"], r["torch_images_per_s"], r["keras_over_torch"],
          r.get("keras_over_torch_per_gmac")] for r in ratios],
    ) if ratios else "No pair measured on both sides.")
    if any(not r["same_network"] for r in ratios):
        lines += ["", "Same network \"no\": torch_ours is keras_preact's default CIFAR "
                  "layout (stride on the first 1x1 conv, the first unit's shortcut from its "
                  "pre-activation); the Keras CIFAR parts build pytorchcv's (stride on the "
                  "3x3 conv, the first shortcut from the raw input). Compare per GMAC."]
    for plain, remat in REMAT_PAIRS:
        a, b = parts.get(plain, {}), parts.get(remat, {})
        if a.get("status") == b.get("status") == "ok":
            memory = "-"
            if _finite(a.get("peak_gpu_memory_mib")) and _finite(b.get("peak_gpu_memory_mib")):
                memory = f"x{_common.fmt(b['peak_gpu_memory_mib'] / a['peak_gpu_memory_mib'])}"
            lines += ["", f"remat=True / remat=False, depth {a.get('depth')}, batch "
                      f"{a.get('batch')}, {a.get('backend')} backend: peak GPU memory "
                      f"{memory}, images/s x{_common.fmt(b['images_per_s'] / a['images_per_s'])}."]
    real = parts.get("real_cifar100_jax", {})
    lines += ["", "## Real CIFAR-100 run (keras_preact.data.CIFARBatches, no TensorFlow)", ""]
    if real.get("curve"):
        lines.append(
            f"PreActResNet{real.get('depth')}, {real.get('train_examples')} training / "
            f"{real.get('test_examples')} test images ({real.get('test_file')}), batch "
            f"{real.get('batch')}, {real.get('epochs')} epochs planned, paper schedule "
            f"{real.get('schedule', {}).get('boundaries')} (drops at steps), "
            f"status {real.get('status')}. Input pipeline alone: "
            f"{_common.fmt(real.get('pipeline_images_per_s_one_core'))} images/s on one core; "
            f"training after epoch 1: {_common.fmt(real.get('train_images_per_s_after_epoch1'))} "
            "images/s."
            + (f" {real['stopped_early']}." if real.get("stopped_early") else "")
        )
        lines += ["", _common.markdown_table(
            ["epoch", "train loss", "train top-1", "test top-1", "test top-5", "lr", "s"],
            [[p["epoch"], _num(p.get("loss"), "{:.3f}"), _pct(p.get("top1")),
              _pct(p.get("val_top1")), _pct(p.get("val_top5")),
              _num(p.get("learning_rate"), "{:g}"), _num(p.get("epoch_s"), "{:.1f}")]
             for p in real["curve"]],
        )]
    else:
        lines.append(_summary(real) if real else "Not run.")
    lines += ["", "## Every part", ""]
    lines.append(_common.markdown_table(["part", "status", "cap s", "wall s", "what"], [
        [name, _summary(row), row.get("cap_s"), row.get("process_wall_s"),
         row.get("description")] for name, row in parts.items()
    ]))
    return "\n".join(lines) + "\n"


# =========================================================================== data


def prepare_data(source, data_dir, test_examples):
    """Writes `data_dir/train_0.npz` (a copy of the source's) and `test_small.npz`
    (the first `test_examples` test images), small enough to travel to the GPU
    machine (about 35 + 2.8 MB per 1,000 test images)."""
    import numpy as np

    src_train = os.path.join(source, "train_0.npz")
    src_test = os.path.join(source, "test.npz")
    for path in (src_train, src_test):
        if not os.path.isfile(path):
            raise ValueError(f"--prepare-data: {path} does not exist.")
    os.makedirs(data_dir, exist_ok=True)
    dst_train = os.path.join(data_dir, "train_0.npz")
    if os.path.exists(dst_train):
        os.remove(dst_train)  # a copy of a read-only source is read-only
    shutil.copyfile(src_train, dst_train)
    with np.load(src_test, allow_pickle=False) as z:
        x, y = z["x"][:test_examples], z["y"][:test_examples]
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=x, y=y)
    _common.atomic_write(os.path.join(data_dir, "test_small.npz"), buffer.getvalue())
    sizes = {f: os.path.getsize(os.path.join(data_dir, f))
             for f in ("train_0.npz", "test_small.npz")}
    print(f"wrote {data_dir}: " + ", ".join(f"{f} {s / 2**20:.1f} MiB" for f, s in sizes.items()))
    return sizes


# =========================================================================== main


def _parse_cap(text):
    name, sep, value = text.partition("=")
    if not sep or name not in PARTS_BY_NAME:
        raise argparse.ArgumentTypeError(
            f"expected NAME=SECONDS with NAME one of {sorted(PARTS_BY_NAME)}; got {text!r}")
    try:
        seconds = int(value)
    except ValueError:
        seconds = -1
    if seconds < 1:
        raise argparse.ArgumentTypeError(f"seconds must be an int >= 1; got {text!r}")
    return name, seconds


def build_parser():
    parser = _common.new_parser(__doc__)
    parser.add_argument("--output", help="folder for gpu_check.json/.md/.log (required)")
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="toy sizes: run every part's code on a CPU in about a minute")
    parser.add_argument("--parts", default=None,
                        help="comma list of parts to run, in this order (default: all; "
                        "a CPU smoke run then skips the torch.compile parts)")
    parser.add_argument("--budget-s", type=_common.positive_int, default=430,
                        help="wall-clock seconds for all parts together")
    parser.add_argument("--cap", action="append", type=_parse_cap, default=[],
                        metavar="NAME=SECONDS", help="time cap of one part (repeatable)")
    parser.add_argument("--data-dir", default=None,
                        help="CIFAR-100 folder with train_0.npz (train*.npz) and "
                        f"test_small.npz or test.npz (default {DEFAULT_DATA_DIR})")
    parser.add_argument("--warmup", type=_common.positive_int, default=3)
    parser.add_argument("--steps", type=_common.positive_int, default=20)
    parser.add_argument("--cifar-batch", type=_common.positive_int, default=128)
    parser.add_argument("--imagenet-batch", type=_common.positive_int, default=256)
    parser.add_argument("--r1001-batch", type=_common.positive_int, default=128)
    parser.add_argument("--r1001-steps", type=_common.positive_int, default=5)
    parser.add_argument("--real-depth", type=_common.positive_int, default=20,
                        help="CIFAR depth of the real run (6n+2 or 9n+2)")
    parser.add_argument("--real-epochs", type=_common.positive_int, default=15)
    parser.add_argument("--real-train-examples", type=_common.positive_int, default=12500)
    parser.add_argument("--real-test-examples", type=_common.positive_int, default=None,
                        help="default: all images of the test file")
    parser.add_argument("--real-workers", type=_common.positive_int, default=1,
                        help="PyDataset workers (threads) feeding the real run")
    parser.add_argument("--prepare-data", metavar="SOURCE",
                        help="instead of a check: write --data-dir/train_0.npz and "
                        "test_small.npz from SOURCE (e.g. ../shared/data/cifar100)")
    parser.add_argument("--test-examples", type=_common.positive_int, default=5000,
                        help="test images in test_small.npz (--prepare-data)")
    return parser


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)

    args.parts_named = args.parts is not None
    if args.parts is None:
        args.parts = ",".join(PARTS_BY_NAME)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS_BY_NAME]
    if unknown or not parts:
        parser.error(f"unknown part(s) {unknown} in --parts={args.parts!r}. "
                     f"Expected a comma list of {list(PARTS_BY_NAME)}.")
    if len(set(parts)) != len(parts):
        parser.error(f"--parts lists a part twice: {args.parts!r}")
    args.parts = parts
    args.caps = {p.name: p.cap_s for p in PARTS}
    args.caps.update(dict(args.cap))
    depth = args.real_depth
    if depth < 8 or ((depth - 2) % 6 and (depth - 2) % 9):
        parser.error(f"--real-depth={depth} is not a CIFAR depth (6n+2 or 9n+2, e.g. 20, 56).")
    if args.data_dir is None:
        args.data_dir = DEFAULT_DATA_DIR
    args.data_dir = os.path.abspath(args.data_dir)
    if args.prepare_data is None and not args.output:
        parser.error("--output DIR is required (where gpu_check.json/.md/.log go).")
    if args.output and os.path.exists(args.output) and not os.path.isdir(args.output):
        parser.error(f"--output={args.output!r} exists and is not a folder.")
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if "--worker" in argv:
        return worker_main(argv)
    args = parse_args(argv)
    if args.prepare_data:
        try:
            prepare_data(args.prepare_data, args.data_dir, args.test_examples)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    Runner(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
