"""Training throughput and peak memory: keras_preact vs ResNet50V2 vs PyTorch.

Runs on the current Keras backend (`KERAS_BACKEND`); `benchmarks/run_all.py` runs it once
per backend and merges. Every config runs in its own process, so peak memory (GPU:
the backend's allocator peak; CPU: process peak RSS from `resource.getrusage`) belongs
to that config alone.

What is timed: one whole `model.train_on_batch(x, y)` call per step (forward, backward,
SGD-momentum update; it returns the loss as a NumPy value, which syncs the host each
step). PyTorch: `zero_grad` + forward + loss + backward + `step` + `loss.item()`. The first
`--warmup` steps (tracing / XLA / torch.compile) are excluded; the figure is
`batch / median(step time)` over `--steps` steps. Data is synthetic (random normal
images, random labels), created once on the host.

Configs: PreActResNet164 on CIFAR shapes (32x32x3, 10 classes) and PreActResNet50 on
ImageNet shapes (224x224x3, 1000 classes), float32 and mixed precision
(`--mixed-policy`, default mixed_bfloat16), jit_compile off/on; alternatives on the
ImageNet shape: `keras.applications.ResNet50V2(weights=None)` on the same backend; and,
with `--torch-reference`, a PyTorch pre-activation ResNet of the same architecture
(timm `resnetv2_50` when it imports, else `benchmarks/torch_reference.py`) with AMP
(bf16 on CPU) and channels_last, eager and `torch.compile`.

Example:
    KERAS_BACKEND=jax python benchmarks/train_throughput.py --quick \
        --output train_jax.json --markdown train_jax.md
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import _common  # noqa: E402

SCRIPT = os.path.abspath(__file__)
VALID_MODELS = ("cifar", "imagenet")
VALID_ALTERNATIVES = ("resnet50v2", "torch")


# --------------------------------------------------------------------------- workers


def _image_shape(config):
    s = config["image_size"]
    return (3, s, s) if config.get("data_format") == "channels_first" else (s, s, 3)


def synthetic_data(config, batches=1):
    """Random normal images (in the config's data format) and labels, `batches` batches."""
    rng = np.random.default_rng(0)
    n = config["batch"] * batches
    x = rng.standard_normal((n, *_image_shape(config)), dtype=np.float32)
    y = rng.integers(0, config["classes"], size=(n,)).astype("int32")
    return x, y


def build_keras_model(config):
    """keras_preact's `PreActResNet` or `keras.applications.ResNet50V2(weights=None)`
    (`config["model"]`), in `config["data_format"]` (default channels_last)."""
    import keras

    if config["model"] == "keras_resnet50v2":
        # keras.applications reads the global data format.
        keras.config.set_image_data_format(config.get("data_format", "channels_last"))
        return keras.applications.ResNet50V2(
            weights=None, input_shape=_image_shape(config), classes=config["classes"]
        )
    import keras_preact

    return keras_preact.PreActResNet(
        config["depth"],
        layout=config["layout"],
        input_shape=_image_shape(config),
        classes=config["classes"],
        remat=config.get("remat", False),
        data_format=config.get("data_format", "channels_last"),
    )


def compiled_keras_model(config):
    """The config's model built under its precision policy and compiled with SGD
    momentum, `jit_compile=config["jit"]` and `config.get("steps_per_execution", 1)`.

    Returns:
        `(model, policy_name, build_seconds)`; the global policy is float32 again.
    """
    import time

    import keras

    policy = _common.keras_precision_policy(config["precision"], config["mixed_policy"])
    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(0)
    try:
        t0 = time.perf_counter()
        model = build_keras_model(config)
        build_s = time.perf_counter() - t0
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
            loss="sparse_categorical_crossentropy",
            jit_compile=config["jit"],
            steps_per_execution=config.get("steps_per_execution", 1),
        )
    finally:
        keras.config.set_dtype_policy("float32")
    return model, policy, build_s


def fit_images_per_s(model, x, y, batch):
    """Images/s of one `model.fit` epoch over `x`, timed from the end of its first
    execution (`steps_per_execution` steps; compilation on the first call) to the end
    of its last, so set-up and compilation are left out. `len(x)` must hold at least
    two executions. Keras calls `on_train_batch_end` once per execution, with the
    logs as host values (a sync)."""
    import time

    import keras

    stamps = []

    class _Stamp(keras.callbacks.Callback):
        def on_train_batch_end(self, step, logs=None):
            stamps.append((step, time.perf_counter()))

    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0,
              callbacks=[_Stamp()])
    (first_step, t0), (last_step, t1) = stamps[0], stamps[-1]
    return batch * (last_step - first_step) / (t1 - t0)


def run_keras(config):
    import keras

    rss_before = _common.current_rss_mb()
    model, policy, build_s = compiled_keras_model(config)
    x, y = synthetic_data(config)
    b = config["batch"]
    timing = _common.time_calls(
        lambda: model.train_on_batch(x, y), config["warmup"], config["steps"]
    )
    params = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    return dict(
        config,
        status="ok",
        backend=keras.backend.backend(),
        dtype_policy=policy,
        build_s=round(build_s, 2),
        trainable_params=params,
        gmacs_per_image=_common.keras_gmacs_per_image(model),
        images_per_s=round(b / timing["median_step_s"], 2),
        **timing,
        **_common.memory_report(keras.backend.backend(), rss_before),
    )


def run_torch(config):
    import time

    import torch
    import torch.nn.functional as F

    import torch_reference

    rss_before = _common.current_rss_mb()
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.perf_counter()
    model, impl = torch_reference.build_model(
        config["depth"], config["layout"], config["classes"], config["torch_impl"]
    )
    build_s = time.perf_counter() - t0
    memory_format = (
        torch.channels_last if config["channels_last"] else torch.contiguous_format
    )
    model = model.to(device).to(memory_format=memory_format).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    s, b = config["image_size"], config["batch"]
    x = torch.randn(b, 3, s, s, device=device).contiguous(memory_format=memory_format)
    y = torch.randint(0, config["classes"], (b,), device=device)
    forward = torch.compile(model) if config["jit"] else model
    amp = config["precision"] == "mixed"
    amp_dtype = getattr(torch, config["torch_amp_dtype"])

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
            loss = F.cross_entropy(forward(x), y)
        loss.backward()
        opt.step()
        return loss.item()  # host sync

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    timing = _common.time_calls(step, config["warmup"], config["steps"])
    params = int(sum(p.numel() for p in model.parameters() if p.requires_grad))
    gmacs = _common.torch_gmacs_per_image(model, s)
    return dict(
        config,
        status="ok",
        implementation=impl,
        torch_device=str(device),
        torch_threads=torch.get_num_threads(),
        build_s=round(build_s, 2),
        trainable_params=params,
        gmacs_per_image=gmacs,
        images_per_s=round(b / timing["median_step_s"], 2),
        **timing,
        **_common.memory_report("torch", rss_before),
    )


def run_config(config):
    if config["framework"] == "torch":
        return run_torch(config)
    return run_keras(config)


# --------------------------------------------------------------------------- configs


def build_configs(args, backend):
    precisions = args.precisions.split(",")
    jits = {"off": [False], "on": [True], "both": [False, True]}[args.jit]
    common = dict(
        suite="train",
        warmup=args.warmup,
        steps=args.steps,
        mixed_policy=args.mixed_policy,
    )
    shapes = {
        "cifar": dict(
            layout="cifar",
            depth=args.cifar_depth,
            image_size=32,
            classes=10,
            batch=args.cifar_batch,
        ),
        "imagenet": dict(
            layout="imagenet",
            depth=args.imagenet_depth,
            image_size=args.imagenet_size,
            classes=1000,
            batch=args.imagenet_batch,
        ),
    }
    alternatives = [a for a in args.alternatives.split(",") if a]
    configs = []
    for name in args.models.split(","):
        shape = shapes[name]
        for precision in precisions:
            for jit in jits:
                base = dict(common, **shape, precision=precision, jit=jit)
                if not args.skip_keras:
                    configs.append(
                        dict(base, framework="keras", backend=backend, model="keras_preact")
                    )
                if (
                    not args.skip_keras
                    and "resnet50v2" in alternatives
                    and name == "imagenet"
                    and shape["depth"] == 50
                ):
                    configs.append(
                        dict(
                            base,
                            framework="keras",
                            backend=backend,
                            model="keras_resnet50v2",
                        )
                    )
                if args.torch_reference:
                    configs.append(
                        dict(
                            base,
                            framework="torch",
                            backend="pytorch",
                            model="pytorch_preact",
                            torch_impl=args.torch_impl,
                            channels_last=args.channels_last,
                            torch_amp_dtype=args.torch_amp_dtype,
                        )
                    )
    return configs


def parse_args(argv=None):
    parser = _common.add_common_args(_common.new_parser(__doc__.split("\n")[0]))
    parser.add_argument("--models", default="cifar,imagenet", help="cifar,imagenet")
    parser.add_argument("--cifar-depth", type=int, default=164)
    parser.add_argument("--cifar-batch", type=int, default=None, help="default 128 (quick: 16)")
    parser.add_argument("--imagenet-depth", type=int, default=50)
    parser.add_argument("--imagenet-size", type=int, default=224)
    parser.add_argument("--imagenet-batch", type=int, default=None, help="default 64 (quick: 4)")
    parser.add_argument("--precisions", default="float32,mixed", help="float32,mixed")
    parser.add_argument(
        "--mixed-policy",
        default="mixed_bfloat16",
        choices=("mixed_bfloat16", "mixed_float16"),
        help="Keras policy used for precision=mixed",
    )
    parser.add_argument("--jit", default="both", choices=("off", "on", "both"))
    parser.add_argument("--warmup", type=int, default=None, help="default 3 (quick: 2)")
    parser.add_argument("--steps", type=int, default=None, help="default 10 (quick: 5)")
    parser.add_argument(
        "--alternatives",
        default="resnet50v2",
        help="comma list: resnet50v2 (Keras, same backend); '' for none",
    )
    parser.add_argument(
        "--torch-reference",
        action="store_true",
        help="also run the PyTorch reference (independent of KERAS_BACKEND)",
    )
    parser.add_argument(
        "--skip-keras",
        action="store_true",
        help="run only the PyTorch reference (with --torch-reference)",
    )
    parser.add_argument("--torch-impl", default="auto", choices=("auto", "timm", "reference"))
    parser.add_argument(
        "--no-channels-last", dest="channels_last", action="store_false"
    )
    parser.add_argument(
        "--torch-amp-dtype",
        default="bfloat16",
        choices=("bfloat16", "float16"),
        help="torch.autocast dtype for precision=mixed",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = dict(
        cifar_batch=16 if quick else 128,
        imagenet_batch=4 if quick else 64,
        warmup=2 if quick else 3,
        steps=5 if quick else 10,
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for name in args.models.split(","):
        if name not in VALID_MODELS:
            parser.error(f"Unknown model {name!r} in --models. Expected {list(VALID_MODELS)}.")
    for alt in filter(None, args.alternatives.split(",")):
        if alt not in ("resnet50v2",):
            parser.error(f"Unknown alternative {alt!r}. Expected ['resnet50v2'].")
    for p in args.precisions.split(","):
        if p not in ("float32", "mixed"):
            parser.error(f"Unknown precision {p!r}. Expected ['float32', 'mixed'].")
    return args


def main(argv=None):
    return _common.script_main("train", SCRIPT, parse_args, build_configs, run_config, argv)


if __name__ == "__main__":
    main()
