"""Input-pipeline throughput: CIFAR training pipeline and ImageNet JPEG
decode + random-sized crop, in images per second (total and per CPU core).

Usage:
    python benchmarks/input_pipeline.py [--data-dir ../shared/data]
        [--batches 100] [--output results.json]

Prints one JSON line. CIFAR uses the real CIFAR-100 training shards
(`cifar100/train_0.npz`); ImageNet uses the JPEGs in `imagenet_sample/`
repeated (listed as one class folder, so real decode costs, no disk cache
effects beyond the page cache).
"""

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _rate(ds, batches, warmup):
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    n = 0
    start = time.perf_counter()
    for _ in range(batches):
        x, _ = next(it)
        n += int(x.shape[0])
    return n / (time.perf_counter() - start)


def bench_cifar(data_dir, batches, warmup, batch_size):
    from keras_preact.data import cifar_dataset

    with np.load(data_dir / "cifar100" / "train_0.npz") as z:
        x, y = z["x"], z["y"]
    out = {}
    for name, kwargs in [
        ("cifar_train_paper_vectorized", dict(vectorized=True)),
        ("cifar_train_paper_per_image", dict(vectorized=False)),
        ("cifar_eval", dict(training=False)),
    ]:
        args = dict(training=True, batch_size=batch_size, seed=0, repeat=True)
        args.update(kwargs)
        out[name] = _rate(cifar_dataset(x, y, **args), batches, warmup)
    return out


def bench_imagenet(data_dir, batches, warmup, batch_size):
    from keras_preact.data import imagenet_dataset

    src = data_dir / "imagenet_sample"
    files = sorted(src.glob("*.JPEG"))
    if not files:
        raise SystemExit(f"no JPEGs in {src}")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        cls = Path(tmp) / "sample"
        cls.mkdir()
        for f in files:
            try:
                os.symlink(f, cls / f.name)
            except OSError:
                shutil.copy(f, cls)
        for name, kwargs in [
            ("imagenet_train_inception", dict(training=True, augment="inception")),
            ("imagenet_train_scale", dict(training=True, augment="scale")),
            ("imagenet_eval", dict(training=False)),
        ]:
            ds = imagenet_dataset(
                "folder", tmp, None, batch_size=batch_size, repeat=True, seed=0,
                shuffle_buffer=len(files), **kwargs,
            )
            out[name] = _rate(ds, batches, warmup)
    return out, len(files)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--batches", type=int, default=100, help="CIFAR batches timed")
    parser.add_argument("--imagenet-batches", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--cifar-batch-size", type=int, default=128)
    parser.add_argument("--imagenet-batch-size", type=int, default=32)
    parser.add_argument("--output", type=Path, default=None, help="also write JSON here")
    args = parser.parse_args(argv)

    import tensorflow as tf

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    result = {
        "benchmark": "input_pipeline",
        "cpu_model": _cpu_model(),
        "cpu_cores": cores,
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "tensorflow": tf.__version__,
        "cifar_batch_size": args.cifar_batch_size,
        "imagenet_batch_size": args.imagenet_batch_size,
        "images_per_s": {},
    }
    rates = bench_cifar(args.data_dir, args.batches, args.warmup, args.cifar_batch_size)
    in_rates, n_files = bench_imagenet(
        args.data_dir, args.imagenet_batches, args.warmup, args.imagenet_batch_size
    )
    rates.update(in_rates)
    result["imagenet_files"] = n_files
    result["images_per_s"] = {k: round(v, 1) for k, v in rates.items()}
    result["images_per_s_per_core"] = {k: round(v / cores, 1) for k, v in rates.items()}
    line = json.dumps(result)
    print(line)
    if args.output:
        from keras_preact.io import atomic_write

        atomic_write(args.output, line + "\n")


if __name__ == "__main__":
    main()
