"""How fast does a PreActResNet train on each Keras backend, against native PyTorch?

Trains PreActResNet-164 (CIFAR layout, 32x32, 10 classes; at the paper's batch of 128
and at 16, where per-step overheads weigh most) and PreActResNet-50 (ImageNet layout,
224x224, 1,000 classes) on every installed Keras backend, the same
networks in native PyTorch (benchmarks/torch_reference.py: the same units, strides
and parameter counts), and keras.applications.ResNet50V2(weights=None) on each
backend (a ResNet-50 v2 that strides at the end of its stages: as many parameters,
15% fewer multiply-adds). Prints a Markdown table of images/s, each keras_preact
figure with its ratio to PyTorch on the same network, under the machine, the date
and the command.

Method: every configuration runs in its own process. A step is one step of Keras'
own training loop, `model.fit` (forward, backward, the paper's update: SGD with
momentum 0.9 and coupled weight decay 1e-4, `keras_preact.training.PaperSGD`; the loss
read on the host by a callback); PyTorch: zero_grad, forward, loss, backward,
`torch.optim.SGD(momentum=0.9, weight_decay=1e-4)` step, loss.item(), eager,
channels_last. images/s = batch / median step time over --steps
steps after --warmup steps (tracing, compilation). Keras compiles with --jit-compile
(default "auto", Keras' own choice: XLA on JAX, a graph without XLA for TensorFlow on
a CPU, eager on torch). --torch-compile adds two columns: the torch backend with
`jit_compile=True` (Keras' torch.compile) and PyTorch under `torch.compile`, each
compiling from an empty cache, its compile time (first step less a step) noted
below the table. Synthetic
images and labels, made once on the host. --rounds runs the whole list that many
times, interleaved, and keeps each configuration's median round (the slower middle
one for an even count), so a slow spell on
a shared machine hits every configuration alike.

Example:
    python benchmarks/train_throughput.py --output benchmarks/results/train_throughput.json
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

SCRIPT = os.path.abspath(__file__)
JIT_COMPILE = {"auto": "auto", "on": True, "off": False}
RUNTIME_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "torch backend",
                 "torch_compile": "torch backend, torch.compile", "pytorch": "PyTorch",
                 "pytorch_compile": "PyTorch, torch.compile"}
#: The PyTorch runtime each runtime is compared with.
REFERENCE = {"torch_compile": "pytorch_compile"}


def build_parser():
    positive = _common.positive_int
    parser = _common.new_parser(__doc__)
    _common.add_backends_argument(parser)
    parser.add_argument("--models", nargs="+", choices=("cifar", "imagenet"),
                        default=["cifar", "imagenet"])
    parser.add_argument("--cifar-depth", type=positive, default=164)
    parser.add_argument("--cifar-batch", type=positive, nargs="+", default=[128, 16],
                        help="one row per batch (default: the paper's 128, and 16)")
    parser.add_argument("--imagenet-depth", type=positive, default=50)
    parser.add_argument("--imagenet-size", type=positive, default=224)
    parser.add_argument("--imagenet-batch", type=positive, default=16)
    parser.add_argument("--precision", choices=("float32", "mixed_bfloat16"),
                        default="float32",
                        help="Keras dtype policy; PyTorch autocasts to bfloat16 for mixed")
    parser.add_argument("--jit-compile", choices=tuple(JIT_COMPILE), default="auto")
    parser.add_argument("--torch-compile", action="store_true",
                        help="also the torch backend with jit_compile=True and PyTorch "
                        "under torch.compile (minutes of compilation per network on a CPU)")
    parser.add_argument("--no-pytorch", dest="pytorch", action="store_false",
                        help="leave out the PyTorch reference")
    parser.add_argument("--no-resnet50v2", dest="resnet50v2", action="store_false",
                        help="leave out keras.applications.ResNet50V2")
    parser.add_argument("--default-malloc", dest="steady_malloc", action="store_false",
                        help="run the workers with glibc's default malloc settings, which "
                        "return freed memory to the system (default: every worker keeps "
                        "it, so no step pays page faults for memory it freed)")
    parser.add_argument("--warmup", type=positive, default=2)
    parser.add_argument("--steps", type=positive, default=5)
    parser.add_argument("--rounds", type=positive, default=2)
    parser.add_argument("--quick", action="store_true",
                        help="check that the command runs: batch 2, one warm-up and one "
                        "timed step, one round (measures nothing)")
    parser.add_argument("--timeout", type=positive, default=1200,
                        help="seconds per configuration")
    parser.add_argument("--output", help="write the report as JSON to this path")
    return parser


def parse_args(argv=None):
    args = build_parser().parse_args(argv)
    if args.quick:
        args.cifar_batch, args.imagenet_batch = [2], 2
        args.warmup = args.steps = args.rounds = 1
    return args


# --------------------------------------------------------------------------- workers


def synthetic_batch(config):
    """Random normal images (channels last) and random labels, one batch."""
    import numpy as np

    rng = np.random.default_rng(0)
    size, batch = config["image_size"], config["batch"]
    x = rng.standard_normal((batch, size, size, 3), dtype=np.float32)
    y = rng.integers(0, config["classes"], size=(batch,)).astype("int32")
    return x, y


def build_keras_model(config):
    """`keras_preact.PreActResNet` or, for `model="resnet50v2"`,
    `keras.applications.ResNet50V2(weights=None)`, under the current dtype policy."""
    import keras

    shape = (config["image_size"], config["image_size"], 3)
    if config["model"] == "resnet50v2":
        return keras.applications.ResNet50V2(weights=None, input_shape=shape,
                                             classes=config["classes"])
    import keras_preact

    return keras_preact.PreActResNet(config["depth"], layout=config["layout"],
                                     input_shape=shape, classes=config["classes"],
                                     remat=config.get("remat", False))


def run_keras(config):
    import keras
    import numpy as np

    keras.config.set_dtype_policy(config["precision"])
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    model = build_keras_model(config)
    build_s = time.perf_counter() - start
    from keras_preact.training import PaperSGD

    model.compile(optimizer=PaperSGD(learning_rate=0.01, momentum=0.9, l2_weight_decay=1e-4),
                  loss="sparse_categorical_crossentropy",
                  jit_compile=config["jit_compile"])
    x, y = synthetic_batch(config)
    timing = _common.time_fit(model, x, y, config["warmup"], config["steps"])
    threads = {}
    if keras.backend.backend() == "torch":
        import torch

        threads = dict(torch_threads=torch.get_num_threads())
    return dict(
        config,
        status="ok",
        **threads,
        jit_compiled=bool(model.jit_compile),
        build_s=round(build_s, 2),
        trainable_params=int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        gmacs_per_image=_common.keras_gmacs_per_image(model),
        images_per_s=round(config["batch"] / timing["median_step_s"], 2),
        **timing,
        **_common.peak_memory(keras.backend.backend()),
    )


def run_torch(config):
    """The PyTorch reference (`torch_reference.build_model`, `config["torch_impl"]`,
    default "auto"): channels_last, eager or `torch.compile` (`config["jit"]`),
    autocast for a mixed `config["precision"]`, on CUDA when there is one."""
    import torch
    import torch.nn.functional as F

    import torch_reference

    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    start = time.perf_counter()
    model, implementation = torch_reference.build_model(
        config["depth"], config["layout"], config["classes"],
        config.get("torch_impl", "auto"))
    build_s = time.perf_counter() - start
    model = model.to(device).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9,
                                weight_decay=1e-4)
    size, batch = config["image_size"], config["batch"]
    x = torch.randn(batch, 3, size, size, device=device).contiguous(
        memory_format=torch.channels_last)
    y = torch.randint(0, config["classes"], (batch,), device=device)
    forward = torch.compile(model) if config.get("jit") else model
    amp = config["precision"] != "float32"
    amp_dtype = torch.float16 if config["precision"] == "mixed_float16" else torch.bfloat16

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
            loss = F.cross_entropy(forward(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    timing = _common.time_calls(step, config["warmup"], config["steps"])
    return dict(
        config,
        status="ok",
        implementation=implementation,
        torch_threads=torch.get_num_threads(),
        build_s=round(build_s, 2),
        trainable_params=int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        gmacs_per_image=_common.torch_gmacs_per_image(model, size),
        images_per_s=round(batch / timing["median_step_s"], 2),
        **timing,
        **_common.peak_memory("torch"),
    )


def run_config(config):
    if config.get("jit") or config["jit_compile"] is True:
        # Compile from an empty cache: the compile time a user's first run pays.
        import tempfile

        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")
    if config["runtime"].startswith("pytorch"):
        return run_torch(config)
    return run_keras(config)


# --------------------------------------------------------------------------- driver


def build_configs(args):
    common = dict(precision=args.precision, jit_compile=JIT_COMPILE[args.jit_compile],
                  warmup=args.warmup, steps=args.steps)
    shapes = [
        dict(layout="cifar", depth=args.cifar_depth, image_size=32, classes=10, batch=batch)
        for batch in args.cifar_batch if "cifar" in args.models
    ]
    if "imagenet" in args.models:
        shapes.append(dict(layout="imagenet", depth=args.imagenet_depth,
                           image_size=args.imagenet_size, classes=1000,
                           batch=args.imagenet_batch))
    configs = []
    for shape in shapes:
        shape = dict(common, **shape)
        for backend in args.backends:
            configs.append(dict(shape, model="preact", runtime=backend))
            if shape["layout"] == "imagenet" and args.resnet50v2 and args.imagenet_depth == 50:
                configs.append(dict(shape, model="resnet50v2", runtime=backend))
        if args.torch_compile and "torch" in args.backends:
            configs.append(dict(shape, model="preact", runtime="torch_compile",
                                jit_compile=True))
        if args.pytorch:
            configs.append(dict(shape, model="preact", runtime="pytorch"))
            if args.torch_compile:
                configs.append(dict(shape, model="preact", runtime="pytorch_compile",
                                    jit=True))
    return configs


def measure(configs, rounds, timeout_s, steady_malloc=True):
    """Runs every config `rounds` times, interleaved, each in its own process; returns
    one row per config: its median round by images/s (the slower middle one for an
    even count: the slower of two) and every round's images/s."""
    results = []
    for r in range(rounds):
        for i, config in enumerate(configs):
            _common.progress(f"round {r + 1}/{rounds}, {i + 1}/{len(configs)}: "
                             f"{config['runtime']} {label(config)}")
            backend = "torch" if config["runtime"] == "torch_compile" else config["runtime"]
            env = {"KERAS_BACKEND": backend} if backend in _common.BACKENDS else {}
            if steady_malloc:
                env.update(_common.STEADY_MALLOC)
            row = _common.run_worker(SCRIPT, config, timeout_s, env=env)
            _common.progress(f"  {row.get('images_per_s', row.get('error'))}")
            results.append(row)
    merged = []
    for i in range(len(configs)):
        same = results[i::len(configs)]
        ok = sorted((r for r in same if r["status"] == "ok"),
                    key=lambda r: r["images_per_s"])
        if not ok:
            merged.append(same[-1])
            continue
        merged.append(dict(ok[(len(ok) - 1) // 2],
                           round_images_per_s=[r["images_per_s"] for r in ok]))
    return merged


def label(row):
    size = f"{row['image_size']}x{row['image_size']}"
    if row["model"] == "resnet50v2":
        return f"keras.applications ResNet50V2, {size}"
    return f"PreActResNet-{row['depth']}, {size}"


def runtimes_of(settings):
    """The table's columns, in order: the Keras runtimes, then PyTorch's."""
    compile_torch = settings.get("torch_compile", False)
    keras_side = list(settings["backends"])
    if compile_torch and "torch" in keras_side:
        keras_side.append("torch_compile")
    torch_side = (["pytorch"] + (["pytorch_compile"] if compile_torch else [])
                  if settings["pytorch"] else [])
    return keras_side + torch_side


def render(report):
    """The report as Markdown: a title, the machine, date and command, the table."""
    settings, rows = report["settings"], report["rows"]
    runtimes = runtimes_of(settings)
    table, errors, firsts, lines = [], [], [], {}
    for row in rows:
        lines.setdefault((row["layout"], row["model"], row["batch"]), {})[row["runtime"]] = row
    for by_runtime in lines.values():
        any_row = next(iter(by_runtime.values()))
        ok = [r for r in by_runtime.values() if r["status"] == "ok"]
        cells, first = [], []
        for runtime in runtimes:
            row = by_runtime.get(runtime)
            reference = by_runtime.get(REFERENCE.get(runtime, "pytorch"), {})
            if row is None:
                cells.append("")
            elif row["status"] != "ok":
                cells.append("error")
                errors.append(f"- {RUNTIME_NAMES[runtime]}, {label(row)}: "
                              f"{str(row.get('error'))[-300:]}")
            elif not runtime.startswith("pytorch") and reference.get("status") == "ok":
                ratio = row["images_per_s"] / reference["images_per_s"]
                cells.append(f"{_common.fmt(row['images_per_s'])} ({ratio:.2f}x)")
            else:
                cells.append(_common.fmt(row["images_per_s"]))
            if row is not None and row["status"] == "ok":
                first.append(f"{RUNTIME_NAMES[runtime]} {row['first_call_s']:.1f}")
        gmacs = ok[0]["gmacs_per_image"] if ok else None
        table.append([label(any_row), str(any_row["batch"]), gmacs, *cells])
        firsts.append(f"- {label(any_row)}, batch {any_row['batch']}: " + ", ".join(first))
    compiled = {r["runtime"]: r["jit_compiled"] for r in rows if "jit_compiled" in r}
    out = [
        "### Training throughput, images/s (ratio to PyTorch on the same network)",
        "",
        *_common.report_lines(report),
        "",
        _common.markdown_table(["model", "batch", "GMACs/image",
                                *(RUNTIME_NAMES[r] for r in runtimes)], table),
        "",
        f"{settings['precision']}; Keras `jit_compile={JIT_COMPILE[settings['jit_compile']]!r}`"
        + (" (compiled: " + ", ".join(f"{RUNTIME_NAMES[k]} {'yes' if v else 'no'}"
                                      for k, v in compiled.items()) + ")" if compiled else "")
        + "; a Keras step is a step of `model.fit`; PyTorch eager, channels_last"
        + ("; each torch.compile column is compared with PyTorch under torch.compile"
           if settings.get("torch_compile") else "")
        + "".join(sorted({f"; torch on {r['torch_threads']} CPU threads"
                          for r in rows if r.get("torch_threads")
                          and not report["machine"].get("gpus")}))
        + ("; glibc malloc keeps freed memory" if settings.get("steady_malloc") else "")
        + f"; {settings['steps']} timed steps after {settings['warmup']} warm-up; the "
        f"median of {settings['rounds']} interleaved rounds (the slower middle one for an "
        "even count); synthetic data.",
        "",
        "First step, s (set-up, tracing and compilation, and the step itself):",
        *firsts,
    ]
    if errors:
        out += ["", "Failed:", *errors]
    return "\n".join(out) + "\n"


def main(argv=None):
    if argv is None and "--worker" in sys.argv:
        return _common.worker_main(run_config)
    args = parse_args(argv)
    machine = _common.machine_info()
    rows = measure(build_configs(args), args.rounds, args.timeout, args.steady_malloc)
    return _common.publish(__doc__, SCRIPT, argv, args, machine, render, rows=rows)


if __name__ == "__main__":
    sys.exit(main())
