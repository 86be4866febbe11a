"""Is the input pipeline fast enough to feed training?

Times the tf.data pipelines of keras_preact.data on their own, no model: the CIFAR
training pipeline (the paper's pad-4, crop and flip, vectorized per batch and per
image) and its evaluation pipeline on the real CIFAR-100 training shard
(cifar100/train_0.npz), and the ImageNet training (Inception-style random-sized crop,
or scale augmentation) and evaluation pipelines decoding the JPEGs of
imagenet_sample/ (listed as one class folder and repeated: real decoding). Prints
images/s and images/s per CPU core, to compare with what training consumes
(train_throughput.py).

Example:
    python benchmarks/input_pipeline.py --data-dir ../shared/data
"""

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import _common  # noqa: E402

SCRIPT = os.path.abspath(__file__)


def build_parser():
    positive = _common.positive_int
    parser = _common.new_parser(__doc__)
    parser.add_argument("--data-dir", type=Path,
                        default=Path(_common.REPO_ROOT).parent / "shared" / "data",
                        help="folder with cifar100/train_0.npz and imagenet_sample/*.JPEG")
    parser.add_argument("--batches", type=positive, default=100,
                        help="CIFAR batches timed")
    parser.add_argument("--imagenet-batches", type=positive, default=20)
    parser.add_argument("--warmup", type=positive, default=5, help="batches not timed")
    parser.add_argument("--cifar-batch-size", type=positive, default=128)
    parser.add_argument("--imagenet-batch-size", type=positive, default=32)
    parser.add_argument("--output", help="write the report as JSON to this path")
    return parser


def _rate(dataset, batches, warmup):
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    images = 0
    start = time.perf_counter()
    for _ in range(batches):
        x, _ = next(iterator)
        images += int(x.shape[0])
    return images / (time.perf_counter() - start)


def cifar_rows(data_dir, batches, warmup, batch_size):
    import numpy as np

    from keras_preact.data import cifar_dataset

    with np.load(data_dir / "cifar100" / "train_0.npz") as data:
        x, y = data["x"], data["y"]
    rows = []
    for name, kwargs in (("CIFAR training, vectorized per batch", dict(vectorized=True)),
                         ("CIFAR training, per image", dict(vectorized=False)),
                         ("CIFAR evaluation", dict(training=False))):
        dataset = cifar_dataset(x, y, **dict(dict(training=True, batch_size=batch_size,
                                                  seed=0, repeat=True), **kwargs))
        rows.append({"pipeline": name, "batch": batch_size,
                     "images_per_s": round(_rate(dataset, batches, warmup), 1)})
    return rows


def imagenet_rows(data_dir, batches, warmup, batch_size):
    from keras_preact.data import imagenet_dataset

    files = sorted((data_dir / "imagenet_sample").glob("*.JPEG"))
    if not files:
        raise ValueError(f"No JPEG in {data_dir / 'imagenet_sample'}.")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "sample"
        folder.mkdir()
        for f in files:
            shutil.copy(f, folder)
        for name, kwargs in (
            ("ImageNet training, random-sized crop", dict(training=True, augment="inception")),
            ("ImageNet training, scale augmentation", dict(training=True, augment="scale")),
            ("ImageNet evaluation", dict(training=False)),
        ):
            dataset = imagenet_dataset("folder", tmp, None, batch_size=batch_size,
                                       repeat=True, seed=0, shuffle_buffer=len(files),
                                       **kwargs)
            rows.append({"pipeline": name, "batch": batch_size, "jpeg_files": len(files),
                         "images_per_s": round(_rate(dataset, batches, warmup), 1)})
    return rows


def render(report):
    cores = report["machine"]["cpu_cores"]
    table = [[r["pipeline"], str(r["batch"]), r["images_per_s"], r["images_per_s"] / cores]
             for r in report["rows"]]
    return "\n".join([
        "### Input pipelines (tf.data, no model), images/s",
        "",
        *_common.report_lines(report),
        "",
        _common.markdown_table(["pipeline", "batch", "images/s", "images/s per core"],
                               table),
    ]) + "\n"


def main(argv=None):
    args = build_parser().parse_args(argv)
    machine = _common.machine_info()
    rows = cifar_rows(args.data_dir, args.batches, args.warmup, args.cifar_batch_size)
    rows += imagenet_rows(args.data_dir, args.imagenet_batches, args.warmup,
                          args.imagenet_batch_size)
    _common.publish(__doc__, SCRIPT, argv, args, machine, render, rows=rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
