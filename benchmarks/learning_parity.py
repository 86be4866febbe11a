"""Does keras_preact learn like PyTorch? CIFAR-100 accuracy against an independent run.

Trains keras_preact's PreActResNet20(classes=100) through the library's own training
path (keras_preact.data.load_cifar + cifar_dataset: full shuffle, normalization,
4-pixel zero pad, random 32x32 crop, random horizontal flip; compile_for_paper with
its default optimizer; PaperCIFARSchedule.for_run: lr 0.1 at batch 128, x0.1 at 50%
and 75% of the steps) and, on the same images, the same schedule (same steps, same
drops) and the same augmentation written again in numpy:
- "torch": osmr's pytorchcv preresnet20_cifar100 (an independent implementation),
  torch.optim.SGD(momentum=0.9, dampening=0, weight_decay=1e-4), fp32,
  channels_last;
- "mirror": keras_preact's own network in PyTorch (benchmarks/torch_reference.py)
  with the same optimizer, which tells a network difference from a training-path one.
Each run is one process, one at a time, interleaved by seed. Reports top-1 and top-5
test accuracy (%) per seed and as mean / std / min / max over seeds, each run's
training time and images/s, and the gap: keras_preact's mean top-1 minus the
pytorchcv run's. The JSON report is rewritten after every run.

Examples:
    # CPU budget: one shard (12,500 images), 15 epochs, seeds 0 to 3
    KERAS_BACKEND=tensorflow python benchmarks/learning_parity.py --epochs 15 \
        --train-examples 12500 --seeds 0 1 2 3 --frameworks keras torch mirror
    # the paper's CIFAR recipe for PreActResNet-164 (GPU): batch 128, 64k iterations,
    # lr 0.1, x0.1 at 32k and 48k, 0.01 for the first 400 iterations
    python benchmarks/learning_parity.py --full --seeds 0 1
    # seconds: checks that the command runs
    python benchmarks/learning_parity.py --smoke
"""

import importlib.metadata
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import _common  # noqa: E402

SCRIPT = os.path.abspath(__file__)
DEFAULT_DATA_DIR = os.path.join(
    os.path.dirname(_common.REPO_ROOT), "shared", "data", "cifar100"
)
FRAMEWORKS = ("keras", "torch", "mirror")
NAMES = {"keras": "keras_preact", "torch": "pytorchcv (PyTorch)",
         "mirror": "keras_preact's network in PyTorch"}
NUM_CLASSES = 100
EVAL_BATCH_SIZE = 500
PAD = 4
DEFAULT_EPOCHS = 15
# --smoke: a few hundred images, one epoch, one seed.
SMOKE = {"train_examples": 384, "test_examples": 200, "epochs": 1, "seeds": [0]}
# --full: the paper's CIFAR run for PreActResNet-164 (Sec. 4 / Appendix of He et al.).
FULL = {"depth": 164, "total_steps": 64000, "log_every": 400, "warmup": True}
MODELS = {
    20: {"keras": "keras_preact.PreActResNet20", "torch": "preresnet20_cifar100"},
    164: {"keras": "keras_preact.PreActResNet164", "torch": "preresnet164bn_cifar100"},
}


# --------------------------------------------------------------------------- arguments


def build_parser():
    parser = _common.new_parser(__doc__)
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"passes over the training prefix (default {DEFAULT_EPOCHS})")
    parser.add_argument("--train-examples", type=int, default=None,
                        help="first N training images (default: all 50,000); "
                             "12500 = one shard")
    parser.add_argument("--test-examples", type=int, default=None,
                        help="first N test images (default: all 10,000)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="one run per framework and seed (default 0 1; --smoke: 0)")
    parser.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS,
                        default=["keras", "torch"],
                        help="keras: keras_preact; torch: pytorchcv; mirror: "
                             "keras_preact's network in PyTorch")
    parser.add_argument("--output", help="write the report as JSON to this path")
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR,
                        help="folder of train_*.npz / test.npz (keras_preact.data)")
    parser.add_argument("--jit-compile", choices=("auto", "on", "off"), default="auto",
                        help="compile_for_paper's jit_compile (auto: the library default)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true",
                      help=f"tiny run that checks the command: {SMOKE}")
    mode.add_argument("--full", action="store_true",
                      help="the paper's PreActResNet-164 schedule (64k iterations, GPU)")
    return parser


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    return args


def _check_args(parser, args):
    """Fills the mode defaults and rejects values no run can use (`parser.error`)."""
    if args.smoke:
        for key, value in SMOKE.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    if args.seeds is None:
        args.seeds = [0, 1]
    if args.full and args.epochs is not None:
        parser.error("--full fixes the run at 64k iterations; do not give --epochs")
    if not args.full and args.epochs is None:
        args.epochs = DEFAULT_EPOCHS
    for name in ("epochs", "train_examples", "test_examples", "batch_size"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if any(seed < 0 for seed in args.seeds):
        parser.error(f"--seeds must be integers >= 0, got {args.seeds}")
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds must differ, got {args.seeds}")
    args.frameworks = list(dict.fromkeys(args.frameworks))


# --------------------------------------------------------------------------- data


def load_data(args):
    """Loads CIFAR-100 with `keras_preact.data.load_cifar` and keeps the prefixes.

    Returns:
        `(x_train, y_train, x_test, y_test)` uint8 NHWC images and int64 labels.

    Raises:
        ValueError: a prefix asks for more images than the data holds, or is
            smaller than one batch.
    """
    from keras_preact.data import load_cifar

    x_train, y_train = load_cifar("cifar100", source="npz", data_dir=args.data_dir,
                                  split="train")
    x_test, y_test = load_cifar("cifar100", source="npz", data_dir=args.data_dir,
                                split="test")
    n_train = args.train_examples or len(x_train)
    n_test = args.test_examples or len(x_test)
    for flag, wanted, available, split in (
        ("--train-examples", n_train, len(x_train), "train"),
        ("--test-examples", n_test, len(x_test), "test"),
    ):
        if wanted > available:
            raise ValueError(
                f"{flag} {wanted} is more than the {available} {split} images in "
                f"{args.data_dir}."
            )
    if n_train < args.batch_size:
        raise ValueError(
            f"--train-examples {n_train} is less than one batch (--batch-size "
            f"{args.batch_size}); training would run no step."
        )
    return x_train[:n_train], y_train[:n_train], x_test[:n_test], y_test[:n_test]


def normalization_stats():
    from keras_preact.normalization import STATISTICS

    return list(STATISTICS["cifar100"].mean), list(STATISTICS["cifar100"].std)


# --------------------------------------------------------------------------- schedule


def make_plan(args, num_train):
    """The run both frameworks follow: steps, logging period and learning rates.

    The schedule is `PaperCIFARSchedule.for_run` (drops at 1/2 and 3/4 of the run;
    with `--full` the paper's 32k/48k of 64k and the 0.01 warm-up for 400 steps).
    Batches run over a stream of per-pass permutations, dropping no image, so
    `total_steps` need not be a whole number of passes.
    """
    from keras_preact.training.schedules import PaperCIFARSchedule

    steps_per_epoch = num_train // args.batch_size
    if args.full:
        depth, total_steps = FULL["depth"], FULL["total_steps"]
        log_every, warmup = FULL["log_every"], FULL["warmup"]
    else:
        depth, total_steps = 20, args.epochs * steps_per_epoch
        log_every, warmup = steps_per_epoch, False
    schedule = PaperCIFARSchedule.for_run(
        batch_size=args.batch_size, total_steps=total_steps, warmup=warmup
    )
    config = schedule.get_config()
    return {
        "depth": depth,
        "models": MODELS[depth],
        "batch_size": args.batch_size,
        "train_examples": num_train,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps,
        "epochs_equivalent": round(total_steps * args.batch_size / num_train, 2),
        "log_every": log_every,
        "schedule": {
            "class": "keras_preact.training.schedules.PaperCIFARSchedule",
            "initial_learning_rate": config["initial_learning_rate"],
            "boundaries": list(config["boundaries"]),
            "decay_factor": config["decay_factor"],
            "warmup_steps": config["warmup_steps"],
            "warmup_learning_rate": config["warmup_learning_rate"],
            "total_steps": config["total_steps"],
        },
    }


def learning_rate_at(step, schedule):
    """Plain-Python rate of `PaperCIFARSchedule` at iteration `step` (from 0)."""
    if step < schedule["warmup_steps"]:
        return schedule["warmup_learning_rate"]
    drops = sum(step >= b for b in schedule["boundaries"])
    return schedule["initial_learning_rate"] * schedule["decay_factor"] ** drops


# --------------------------------------------------------------------------- metrics


def score_test_set(probabilities, labels):
    """Top-1 / top-5 accuracy (%) and mean cross-entropy from class probabilities."""
    probabilities = np.asarray(probabilities, np.float64)
    labels = np.asarray(labels, np.int64)
    top5 = np.argsort(-probabilities, axis=1, kind="stable")[:, :5]
    picked = probabilities[np.arange(len(labels)), labels]
    return {
        "top1": round(100.0 * float(np.mean(top5[:, 0] == labels)), 3),
        "top5": round(100.0 * float(np.mean((top5 == labels[:, None]).any(axis=1))), 3),
        "test_loss": round(float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0)))), 4),
        "test_examples": int(len(labels)),
    }


def _progress(config, period, periods, loss, top1, seconds):
    print(
        f"[{config['framework']} seed {config['seed']}] {period}/{periods} "
        f"loss {loss:.4f} train top-1 {100 * top1:.2f}% ({seconds:.1f} s)",
        file=sys.stderr,
        flush=True,
    )


# --------------------------------------------------------------------------- keras run


def run_keras(config):
    """Trains and tests keras_preact through the library's own training path."""
    import keras

    import keras_preact
    from keras_preact.data import cifar_dataset
    from keras_preact.training import compile_for_paper
    from keras_preact.training.schedules import PaperCIFARSchedule

    plan = config["plan"]
    with np.load(config["data_path"]) as data:
        x_train, y_train = data["x_train"], data["y_train"]
        x_test, y_test = data["x_test"], data["y_test"]
    keras.utils.set_random_seed(config["seed"])
    model = getattr(keras_preact, f"PreActResNet{plan['depth']}")(classes=NUM_CLASSES)
    schedule_args = {k: v for k, v in plan["schedule"].items() if k != "class"}
    compile_for_paper(
        model,
        PaperCIFARSchedule(**schedule_args),
        jit_compile={"auto": "auto", "on": True, "off": False}[config["jit_compile"]],
    )
    train_ds = cifar_dataset(
        x_train, y_train, training=True, batch_size=plan["batch_size"],
        num_classes=NUM_CLASSES, seed=config["seed"], repeat=True,
    )
    periods = plan["total_steps"] // plan["log_every"]
    period_times = []

    class Progress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            period_times.append(round(time.perf_counter() - self.start, 2))
            _progress(config, epoch + 1, periods, logs["loss"], logs["top1"],
                      period_times[-1])

    start = time.perf_counter()
    history = model.fit(
        train_ds, epochs=periods, steps_per_epoch=plan["log_every"],
        callbacks=[Progress()], verbose=0,
    )
    train_s = time.perf_counter() - start
    iterations = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    start = time.perf_counter()
    test_ds = cifar_dataset(x_test, y_test, training=False, batch_size=EVAL_BATCH_SIZE,
                            num_classes=NUM_CLASSES)
    probabilities = model.predict(test_ds, verbose=0)
    eval_s = time.perf_counter() - start
    return dict(
        _run_row(config, plan, iterations, train_s, eval_s, period_times),
        **score_test_set(probabilities, y_test),
        implementation=f"{plan['models']['keras']}(classes={NUM_CLASSES}) on Keras "
                       f"{keras.__version__}, backend {keras.backend.backend()}",
        trainable_params=int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        optimizer=_plain(model.optimizer.get_config()),
        jit_compile=bool(getattr(model, "jit_compile", False)),
        history={"loss": _rounded(history.history["loss"]),
                 "train_top1": _rounded(history.history["top1"])},
        **_common.peak_memory(keras.backend.backend()),
    )


def _plain(config):
    """A JSON-safe copy of an optimizer config (schedules become their config)."""
    return json.loads(json.dumps(config, default=lambda v: getattr(v, "get_config",
                                                                   lambda: str(v))()))


# --------------------------------------------------------------------------- torch run


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown)"


def _torch_model(depth, framework="torch"):
    """The PyTorch network: osmr's pytorchcv (independent) for "torch", or for
    "mirror" `benchmarks/torch_reference.py`, keras_preact's architecture and
    initialization in PyTorch."""
    if framework == "mirror":
        import torch_reference

        return torch_reference.PreActResNet(depth, "cifar", NUM_CLASSES)
    from pytorchcv.models import preresnet_cifar

    return getattr(preresnet_cifar, MODELS[depth]["torch"])()


def augment_batch(images, rng, pad=PAD):
    """The paper's augmentation on a normalized NCHW batch, in numpy.

    Zero pad `pad` pixels per side (zero = the mean colour after normalization),
    crop a random window of the original size, flip left-right with probability 0.5;
    an independent draw per image.
    """
    n, _, height, width = images.shape
    padded = np.pad(images, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    rows = rng.integers(0, 2 * pad + 1, n)
    cols = rng.integers(0, 2 * pad + 1, n)
    flips = rng.random(n) < 0.5
    out = np.empty_like(images)
    for i in range(n):
        crop = padded[i, :, rows[i]:rows[i] + height, cols[i]:cols[i] + width]
        out[i] = crop[:, :, ::-1] if flips[i] else crop
    return out


def index_batches(num_examples, batch_size, rng):
    """Endless batches of indices over fresh permutations, one per pass."""
    stream = np.empty(0, np.int64)
    while True:
        while len(stream) < batch_size:
            stream = np.concatenate([stream, rng.permutation(num_examples)])
        yield stream[:batch_size]
        stream = stream[batch_size:]


def run_torch(config):
    """Trains and tests a PyTorch network (`_torch_model`) with torch.optim.SGD."""
    # Idle OpenMP threads sleep instead of spinning, which slows torch on a CPU shared
    # with other jobs. Read by libgomp when torch loads: set before the import.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch
    import torch.nn.functional as F

    plan = config["plan"]
    with np.load(config["data_path"]) as data:
        x_train, y_train = data["x_train"], data["y_train"]
        x_test, y_test = data["x_test"], data["y_test"]
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(config["seed"])
    rng = np.random.default_rng(config["seed"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    mean = np.asarray(config["mean"], np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(config["std"], np.float32).reshape(1, 3, 1, 1)

    def normalize(images):
        return (images.transpose(0, 3, 1, 2).astype(np.float32) - mean) / std

    x_train = normalize(x_train)
    labels = torch.as_tensor(y_train, dtype=torch.int64)
    # channels_last: the same arithmetic, faster convolutions on CPU (oneDNN) and GPU.
    model = _torch_model(plan["depth"], config["framework"]).to(
        device, memory_format=torch.channels_last
    )
    optimizer = torch.optim.SGD(
        model.parameters(), lr=plan["schedule"]["initial_learning_rate"],
        momentum=0.9, dampening=0, weight_decay=1e-4, nesterov=False,
    )
    batches = index_batches(len(x_train), plan["batch_size"], rng)
    history = {"loss": [], "train_top1": []}
    period_times = []
    periods = plan["total_steps"] // plan["log_every"]
    model.train()
    start = time.perf_counter()
    for period in range(periods):
        period_start = time.perf_counter()
        losses, correct = [], 0
        for step in range(period * plan["log_every"], (period + 1) * plan["log_every"]):
            idx = next(batches)
            x = torch.from_numpy(augment_batch(x_train[idx], rng)).to(
                device, memory_format=torch.channels_last
            )
            y = labels[torch.from_numpy(idx)].to(device)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate_at(step, plan["schedule"])
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            correct += int((logits.argmax(1) == y).sum())
        history["loss"].append(round(float(np.mean(losses)), 4))
        history["train_top1"].append(
            round(correct / (plan["log_every"] * plan["batch_size"]), 4)
        )
        period_times.append(round(time.perf_counter() - period_start, 2))
        _progress(config, period + 1, periods, history["loss"][-1],
                  history["train_top1"][-1], period_times[-1])
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    model.eval()
    x_test_t = torch.from_numpy(normalize(x_test))
    with torch.no_grad():
        probabilities = np.concatenate([
            F.softmax(model(x_test_t[i:i + EVAL_BATCH_SIZE].to(
                device, memory_format=torch.channels_last)), dim=1).cpu().numpy()
            for i in range(0, len(x_test_t), EVAL_BATCH_SIZE)
        ])
    eval_s = time.perf_counter() - start
    iterations = plan["total_steps"]
    return dict(
        _run_row(config, plan, iterations, train_s, eval_s, period_times),
        **score_test_set(probabilities, y_test),
        implementation=(
            f"pytorchcv {_version('pytorchcv')} {plan['models']['torch']}"
            if config["framework"] == "torch"
            else "benchmarks/torch_reference.py (keras_preact's network, mirrored)"
        ) + f", torch {torch.__version__} on {device}, channels_last",
        trainable_params=int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        optimizer={"name": "torch.optim.SGD", "momentum": 0.9, "dampening": 0,
                   "weight_decay": 1e-4, "nesterov": False},
        torch_threads=torch.get_num_threads(),
        omp_wait_policy=os.environ["OMP_WAIT_POLICY"],
        history=history,
        **_common.peak_memory("torch"),
    )


# --------------------------------------------------------------------------- one run


def _run_row(config, plan, iterations, train_s, eval_s, period_times):
    return {
        "framework": config["framework"],
        "seed": config["seed"],
        "status": "ok",
        "iterations": iterations,
        "train_s": round(train_s, 1),
        "eval_s": round(eval_s, 1),
        "images_per_s": round(iterations * plan["batch_size"] / train_s, 1),
        "period_times_s": period_times,
    }


def _rounded(values):
    return [round(float(v), 4) for v in values]


def run_config(config):
    """Worker entry: one training run of one framework and seed."""
    run = run_keras if config["framework"] == "keras" else run_torch
    row = run(config)
    if row["iterations"] != config["plan"]["total_steps"]:
        raise RuntimeError(
            f"{config['framework']} ran {row['iterations']} iterations, expected "
            f"{config['plan']['total_steps']}."
        )
    return row


# --------------------------------------------------------------------------- report


def summarize(rows, framework):
    """Mean, std (sample), min, max of top-1 / top-5 / images/s over a framework's seeds."""
    ok = [r for r in rows if r["framework"] == framework and r.get("status") == "ok"]
    if not ok:
        return None
    out = {"seeds": [r["seed"] for r in ok], "runs": len(ok)}
    for key in ("top1", "top5", "images_per_s", "train_s"):
        values = [r[key] for r in ok]
        out[key] = {
            "mean": round(statistics.fmean(values), 3),
            "std": round(statistics.stdev(values), 3) if len(values) > 1 else None,
            "min": min(values),
            "max": max(values),
            "values": values,
        }
    return out


def make_report(args, plan, rows, mean, std, machine, backend):
    summary = {f: summarize(rows, f) for f in args.frameworks}
    gap = None
    if summary.get("keras") and summary.get("torch"):
        gap = round(summary["keras"]["top1"]["mean"] - summary["torch"]["top1"]["mean"], 3)
    return {
        "question": __doc__.splitlines()[0],
        "command": _common.command_line(SCRIPT, args.argv),
        "machine": machine,
        "keras_backend": backend,
        "settings": {
            "mode": "smoke" if args.smoke else "full" if args.full else "budget",
            "frameworks": args.frameworks,
            "seeds": args.seeds,
            "epochs": args.epochs,
            "test_examples": args.test_examples,
            "jit_compile": args.jit_compile,
            "normalization": {"mean": mean, "std": std, "scale": "0-255"},
            "augmentation": f"normalize, zero pad {PAD}, random 32x32 crop, random "
                            "horizontal flip, reshuffled every pass",
            **plan,
        },
        "summary": summary,
        "gap_top1_points": gap,
        "rows": rows,
    }


def _cell(stats, key):
    if stats is None:
        return "-"
    s = stats[key]
    spread = f" ± {s['std']:.2f}" if s["std"] is not None else ""
    return f"{s['mean']:.2f}{spread} [{s['min']:.2f}, {s['max']:.2f}]"


def render(report):
    settings, summary = report["settings"], report["summary"]
    schedule = settings["schedule"]
    frameworks = settings["frameworks"]
    table = [[label, *(_cell(summary[f], key) for f in frameworks)]
             for key, label in (("top1", "top-1 %"), ("top5", "top-5 %"),
                                ("images_per_s", "training images/s"))]
    gap = report["gap_top1_points"]
    return "\n".join([
        "### Learning parity on CIFAR-100: test accuracy (mean ± std [min, max] over "
        "seeds)",
        "",
        *_common.report_lines(report),
        f"- Keras backend: {report['keras_backend']}",
        "",
        _common.markdown_table(["", *(NAMES[f] for f in frameworks)], table),
        "",
        f"{settings['models']['keras']} against pytorchcv {settings['models']['torch']}; "
        f"{settings['train_examples']} training images, batch {settings['batch_size']}, "
        f"{settings['total_steps']} steps (~{settings['epochs_equivalent']} epochs), "
        f"lr {schedule['initial_learning_rate']} x{schedule['decay_factor']} at steps "
        f"{schedule['boundaries']}; {settings['augmentation']}; seeds {settings['seeds']}."
        + ("" if gap is None else f" Gap, keras_preact's mean top-1 minus pytorchcv's: "
                                  f"{gap:+.2f} points."),
    ]) + "\n"


# --------------------------------------------------------------------------- main


def main(argv=None):
    if argv is None and "--worker" in sys.argv:
        _common.worker_main(run_config)
        return 0
    args = parse_args(argv)
    try:
        x_train, y_train, x_test, y_test = load_data(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    import keras

    mean, std = normalization_stats()
    plan = make_plan(args, len(x_train))
    machine = _common.machine_info()  # before the runs: the load average at start
    rows = []
    with tempfile.TemporaryDirectory(prefix="learning_parity_") as tmp:
        data_path = os.path.join(tmp, "data.npz")
        np.savez(data_path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
        configs = [
            {"framework": f, "seed": s, "plan": plan, "data_path": data_path,
             "mean": mean, "std": std, "jit_compile": args.jit_compile}
            for s in args.seeds for f in args.frameworks
        ]
        for i, config in enumerate(configs):
            _common.progress(f"[{i + 1}/{len(configs)}] {config['framework']} seed "
                             f"{config['seed']}: {plan['total_steps']} steps")
            row = _common.run_worker(SCRIPT, config, stream_stderr=True)
            for key in ("plan", "data_path", "mean", "std"):
                row.pop(key, None)
            rows.append(row)
            report = make_report(args, plan, rows, mean, std, machine,
                                 keras.backend.backend())
            if args.output:
                _common.write_report(args.output, report)
    print(render(report))
    return 0 if all(r.get("status") == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
