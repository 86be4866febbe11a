"""The speed targets of issue 14, side by side in one run, each as a ratio.

(a) PreActResNet-164 CIFAR training (batch `--cifar-batch`, float32) on every Keras
    backend with its fastest settings (`keras_preact.training.defaults`), against the
    native PyTorch pre-activation ResNet-164 (`torch_reference.py`, eager,
    channels_last) with the same threads. Target: keras_preact / PyTorch >= 0.8.
(b) PreActResNet-50 against `keras.applications.ResNet50V2` training on every backend
    (224 px, batch `--imagenet-batch`, the same settings for both), per GMAC (4.089
    against 3.482 GMACs per image). Target: >= 1.0.
(c) Inference of PreActResNet-50 and ResNet50V2: batch 1 latency and batch
    `--inference-batch` throughput, the Keras model (`predict_on_batch`) and the
    exported SavedModel (`keras_preact.export.export_saved_model`; TensorFlow and JAX
    backends) side by side.

Every config runs in its own process with its backend (`train_throughput.py` and
`inference.py` workers). Training configs run in `--rounds` interleaved rounds (a, b,
c, ..., a, b, c, ...), so every side sees the same load on a shared machine, and keep
the median round; inference runs once. The load average is recorded at start and end.

Example:
    python benchmarks/targets.py --output benchmarks/results/targets.json \\
        --markdown benchmarks/results/targets.md
    python benchmarks/targets.py --quick --backends jax    # smoke: tiny sizes
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import markdown_report  # noqa: E402

SCRIPT = os.path.abspath(__file__)


def run_config(config):
    """Worker: resolves the fastest settings in the backend's process, then runs
    the train or inference worker."""
    if config.get("fastest"):
        from keras_preact.training.defaults import fastest_settings

        chosen = fastest_settings(precision=config["precision"])
        config = dict(config, jit=chosen["jit_compile"], data_format=chosen["data_format"],
                      settings_source=chosen["source"])
    if config["suite"] == "inference":
        import inference

        return inference.run_config(config)
    import train_throughput

    return train_throughput.run_config(config)


def build_configs(args):
    common = dict(suite="train", warmup=args.warmup, steps=args.steps, precision="float32",
                  mixed_policy="mixed_bfloat16")
    cifar = dict(common, layout="cifar", depth=args.cifar_depth, image_size=32, classes=10,
                 batch=args.cifar_batch)
    imagenet = dict(common, layout="imagenet", depth=50, image_size=args.imagenet_size,
                    classes=1000, batch=args.imagenet_batch)
    train = [dict(cifar, framework="torch", backend="pytorch", model="pytorch_preact",
                  jit=False, torch_impl="reference", channels_last=True,
                  torch_amp_dtype="bfloat16")]
    inference = []
    for backend in args.backends.split(","):
        keras_side = dict(framework="keras", backend=backend, fastest=True)
        train.append(dict(cifar, **keras_side, model="keras_preact"))
        for model in ("keras_preact", "keras_resnet50v2"):
            train.append(dict(imagenet, **keras_side, model=model))
            inference.append(dict(
                keras_side, suite="inference", model=model, layout="imagenet", depth=50,
                image_size=args.imagenet_size, classes=1000, precision="float32",
                throughput_batch=args.inference_batch, savedmodel=backend != "torch",
                warmup=1, steps=args.inference_steps))
    return train, inference


def _find(rows, **match):
    return next((r for r in rows if r.get("status") == "ok"
                 and all(r.get(k) == v for k, v in match.items())), None)


def _ratio(a, b, digits=2):
    return round(a / b, digits) if a and b else None


def summarize(train, inference, backends):
    """The target table: one row per (target, backend[, runtime, batch])."""
    rows = []
    for backend in backends:
        ours = _find(train, model="keras_preact", layout="cifar", backend=backend)
        # The PyTorch run of the same driver run (merged reports: same "run" tag).
        ref = _find(train, model="pytorch_preact", run=(ours or {}).get("run"))
        depth = (ours or {}).get("depth", 164)  # 20 in --quick: say so, not 164
        rows.append(dict(
            target=f"(a) PreActResNet-{depth} training / PyTorch PreActResNet-{depth}",
            goal=">= 0.8",
            backend=backend, setting=_setting(ours), ours=ours and ours["images_per_s"],
            reference=ref and ref["images_per_s"],
            ratio=_ratio(ours and ours["images_per_s"], ref and ref["images_per_s"]),
            cpu_ratio=_ratio(_per_cpu_s(ours), _per_cpu_s(ref))))
        ours = _find(train, model="keras_preact", layout="imagenet", backend=backend)
        alt = _find(train, model="keras_resnet50v2", backend=backend)
        rows.append(dict(
            target="(b) PreActResNet-50 / ResNet50V2 training, per GMAC", goal=">= 1.0",
            backend=backend, setting=_setting(ours), ours=ours and ours["images_per_s"],
            reference=alt and alt["images_per_s"],
            ratio=_ratio(ours and ours["images_per_s"] * ours["gmacs_per_image"],
                         alt and alt["images_per_s"] * alt["gmacs_per_image"]),
            cpu_ratio=_ratio(_per_cpu_s(ours, gmacs=True), _per_cpu_s(alt, gmacs=True))))
        for runtime in ("keras", "savedmodel"):
            for batch in sorted({r["batch"] for r in inference if r.get("status") == "ok"}):
                match = dict(backend=backend, runtime=runtime, batch=batch)
                ours = _find(inference, model="keras_preact", **match)
                alt = _find(inference, model="keras_resnet50v2", **match)
                if not ours and not alt:
                    continue
                metric = "latency_ms" if batch == 1 else "images_per_s"
                # > 1: ours faster (lower latency, more images/s).
                faster, slower = (alt, ours) if metric == "latency_ms" else (ours, alt)
                rows.append(dict(
                    target=f"(c) inference, {runtime}, batch {batch} "
                    + ("latency ms" if batch == 1 else "images/s")
                    + ": PreActResNet-50 vs ResNet50V2", goal="side by side",
                    backend=backend, setting=_setting(ours),
                    ours=ours and ours[metric], reference=alt and alt[metric],
                    ratio=_ratio(faster and faster[metric], slower and slower[metric])))
    return rows


def _per_cpu_s(row, gmacs=False):
    """Images (or GMACs) per process CPU-second: less sensitive to other load."""
    if not row or not row.get("cpu_s_per_step"):
        return None
    return row["batch"] / row["cpu_s_per_step"] * (row["gmacs_per_image"] if gmacs else 1)


def _setting(row):
    if not row:
        return "failed"
    jit = {True: "jit", False: "no jit", "auto": "jit auto"}.get(row.get("jit"), row.get("jit"))
    return f"{jit}, {row.get('data_format', 'channels_last')}"


def render(report):
    s = report["settings"]
    lines = [
        "# Speed targets (benchmarks/targets.py)", "",
        markdown_report.render_machine(report["machine"]).rstrip(),
        f"- Load average at end: {report.get('load_average_at_end')}",
        f"- Training: {s['rounds']} interleaved rounds of {s['warmup']} warm-up + "
        f"{s['steps']} timed `train_on_batch` steps, median round; "
        f"PreActResNet-{s.get('cifar_depth', 164)} at "
        f"batch {s['cifar_batch']} (32 px), PreActResNet-50 and ResNet50V2 at batch "
        f"{s['imagenet_batch']} ({s['imagenet_size']} px); float32; Keras settings from "
        "`keras_preact.training.defaults.fastest_settings`.", "",
    ]
    for run in report.get("runs", []):
        lines.append(f"- Run {run['file']}: {run['date']}, {run['backends']}, "
                     f"{'+'.join(run['suites'])}, load average {run['load_at_start']} at "
                     f"start, {run['load_at_end']} at end")
    lines += [
        "", "## Targets", "",
        "Ratio: keras_preact / reference, > 1 when keras_preact is faster (latency: "
        "reference ms / keras_preact ms; (b) per GMAC: images/s x GMACs per image). "
        "'ratio per CPU-s' uses images (GMACs) per process CPU-second instead of wall "
        "time, less sensitive to other jobs on the machine.", "",
        "| target | goal | backend | setting | keras_preact | reference | ratio "
        "| ratio per CPU-s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["targets"]:
        lines.append("| " + " | ".join(markdown_report._fmt(r.get(k)) for k in (
            "target", "goal", "backend", "setting", "ours", "reference", "ratio",
            "cpu_ratio")) + " |")
    body = markdown_report.render_markdown({"machine": report["machine"],
                                            "suites": report["suites"]})
    return "\n".join(lines) + "\n" + body[body.index("\n## "):]


def parse_args(argv=None):
    parser = _common.add_common_args(_common.new_parser(__doc__.split("\n")[0]))
    parser.add_argument("--backends", default=",".join(_common.BACKENDS))
    parser.add_argument("--cifar-depth", type=int, default=164)
    parser.add_argument("--cifar-batch", type=int, default=16)
    parser.add_argument("--imagenet-size", type=int, default=224)
    parser.add_argument("--imagenet-batch", type=int, default=4)
    parser.add_argument("--inference-batch", type=int, default=64)
    parser.add_argument("--inference-steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--suites", default="train,inference",
                        help="train (targets a, b) and/or inference (c)")
    parser.add_argument("--render", metavar="JSON", nargs="+",
                        help="recompute the targets of finished reports, merged (no "
                             "measuring)")
    parser.set_defaults(rounds=2)
    args = parser.parse_args(argv)
    if args.quick:
        args.cifar_depth, args.cifar_batch, args.imagenet_size = 20, 2, 32
        args.imagenet_batch, args.inference_batch = 2, 2
        args.inference_steps, args.warmup, args.steps = 2, 1, 2
    _common.check_backends(parser, args.backends)
    return args


def main(argv=None):
    if argv is None and "--worker" in sys.argv:
        return _common.worker_main(run_config)
    args = parse_args(argv)
    if args.render:
        return rerender(args)
    _common.passive_openmp_on_shared_machine()
    backends = args.backends.split(",")
    train_configs, inference_configs = build_configs(args)
    settings = {k: v for k, v in vars(args).items() if k not in ("output", "markdown")}
    report = {"machine": _common.machine_info(), "settings": settings, "suites": {}}

    def save(suite, results):
        report["suites"][suite] = {"settings": settings, "results": results}
        train = report["suites"].get("train", {}).get("results", [])
        if train:
            report["suites"]["train"]["comparisons"] = markdown_report.compare_train(train)
        inference = report["suites"].get("inference", {}).get("results", [])
        report["targets"] = summarize(train, inference, backends)
        report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        if args.output:
            _common.atomic_write(args.output, json.dumps(report, indent=1) + "\n")
        if args.markdown:
            _common.atomic_write(args.markdown, render(report))

    for suite, configs, rounds in (("train", train_configs, args.rounds),
                                   ("inference", inference_configs, 1)):
        if suite not in args.suites.split(","):
            continue
        results = _common.run_configs(
            SCRIPT, configs, run_config, args.isolate, args.timeout, rounds=rounds,
            on_result=lambda rows, suite=suite: save(suite, rows), env_for=_backend_env)
        save(suite, results)
    return report


def rerender(args):
    """Recomputes the target table of finished reports (`--render JSON...`) and writes
    `--output` (default: the first file) and `--markdown`; nothing is measured again.
    Several files are merged: their rows concatenated, each tagged with its file's
    index as "run" and that run's date and load, so (a) pairs each backend with the
    PyTorch reference measured in the same run."""
    reports = []
    for i, path in enumerate(args.render):
        with open(path) as f:
            reports.append(json.load(f))
        for suite in reports[-1]["suites"].values():
            for row in suite["results"]:
                row["run"] = i
    report = reports[0]
    report["runs"] = [dict(file=os.path.basename(path), date=r["machine"]["date_utc"],
                           load_at_start=r["machine"]["load_average_at_start"],
                           load_at_end=r.get("load_average_at_end"),
                           suites=sorted(r["suites"]), backends=r["settings"]["backends"])
                      for path, r in zip(args.render, reports)]
    for other in reports[1:]:
        for name, suite in other["suites"].items():
            report["suites"].setdefault(name, {"settings": suite["settings"], "results": []})
            report["suites"][name]["results"] += suite["results"]
    suites = report["suites"]
    if "train" in suites:
        suites["train"]["comparisons"] = markdown_report.compare_train(
            suites["train"]["results"])
    backends = []
    for r in reports:
        backends += [b for b in r["settings"]["backends"].split(",") if b not in backends]
    report["targets"] = summarize(suites.get("train", {}).get("results", []),
                                  suites.get("inference", {}).get("results", []), backends)
    _common.atomic_write(args.output or args.render[0], json.dumps(report, indent=1) + "\n")
    if args.markdown:
        _common.atomic_write(args.markdown, render(report))
    return report


def _backend_env(config):
    backend = config["backend"]
    return {"KERAS_BACKEND": backend if backend in _common.BACKENDS else "torch"}


if __name__ == "__main__":
    main()
