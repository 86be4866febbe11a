"""Markdown rendering and keras_preact-vs-alternative comparisons for benchmark reports.

A report is `{"machine": {...}, "suites": {name: {"settings": ..., "results": [...]}}}`.
Ratios are `alternative images/s / keras_preact images/s` (> 1: the alternative is faster).
"""

PRECISION_LABEL = {"float32": "fp32", "mixed": "mixed"}


def _ok(results):
    return [r for r in results if r.get("status") == "ok"]


def _key(r):
    return (r["layout"], r["depth"], r["image_size"], r["batch"], r["precision"])


def _fmt(value):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int) and abs(value) >= 10000:
        return f"{value:,}"
    return str(value)


def _shape(r):
    return f"{r['layout']} {r['image_size']}x{r['image_size']}"


def _model_label(r):
    if r["model"] == "keras_preact":
        return f"keras_preact PreActResNet{r['depth']}" + (" remat" if r.get("remat") else "")
    if r["model"] == "keras_resnet50v2":
        return "keras.applications.ResNet50V2"
    if r["model"] == "pytorch_preact":
        impl = r.get("implementation", "")
        name = "timm resnetv2_50" if impl.startswith("timm") else f"PyTorch ref PreAct{r['depth']}"
        return name + (" channels_last" if r.get("channels_last") else "")
    return r["model"]


def _jit_label(r):
    if r.get("framework") == "torch":
        return "torch.compile" if r["jit"] else "eager"
    return "jit" if r["jit"] else "no jit"


def compare_train(results):
    """Ratios of each alternative to keras_preact with the same shape/batch/precision.

    Returns a list of dicts: the alternative, the matched keras_preact run (same backend
    and jit setting for Keras alternatives; the torch backend with the same jit setting
    for PyTorch), and the ratio; plus per (shape, precision) the best of each side.
    """
    ok = [r for r in _ok(results) if not r.get("remat")]
    preact = [r for r in ok if r["model"] == "keras_preact"]
    rows = []
    for alt in ok:
        if alt["model"] == "keras_preact":
            continue
        target_backend = "torch" if alt["model"] == "pytorch_preact" else alt["backend"]
        matches = [
            p
            for p in preact
            if _key(p)[:2] == _key(alt)[:2]
            and _key(p)[2:] == _key(alt)[2:]
            and p["backend"] == target_backend
            and p["jit"] == alt["jit"]
        ]
        if alt["model"] == "keras_resnet50v2":
            matches = [
                p
                for p in preact
                if p["layout"] == alt["layout"]
                and p["depth"] == 50
                and _key(p)[2:] == _key(alt)[2:]
                and p["backend"] == target_backend
                and p["jit"] == alt["jit"]
            ]
        if matches:
            p = matches[0]
            rows.append(
                {
                    "kind": "same_setting",
                    "alternative": _model_label(alt),
                    "alt_backend": alt["backend"],
                    "keras_preact_backend": p["backend"],
                    "shape": _shape(alt),
                    "batch": alt["batch"],
                    "precision": alt["precision"],
                    "jit": alt["jit"],
                    "alt_images_per_s": alt["images_per_s"],
                    "keras_preact_images_per_s": p["images_per_s"],
                    "ratio": round(alt["images_per_s"] / p["images_per_s"], 3),
                    "cpu_ratio": _cpu_ratio(alt, p),
                    "work_ratio": _work_ratio(alt, p),
                }
            )
    # Best vs best per (shape, batch, precision, alternative model).
    groups = {}
    for r in ok:
        depth = 50 if r["model"] == "keras_resnet50v2" else r["depth"]
        groups.setdefault(
            (r["layout"], depth, r["image_size"], r["batch"], r["precision"]), []
        ).append(r)
    for key, runs in groups.items():
        best_p = max(
            (r for r in runs if r["model"] == "keras_preact"),
            key=lambda r: r["images_per_s"],
            default=None,
        )
        if best_p is None:
            continue
        for model in ("keras_resnet50v2", "pytorch_preact"):
            alts = [r for r in runs if r["model"] == model]
            if model == "keras_resnet50v2":
                # Same backend only: compare per backend.
                for backend in sorted({a["backend"] for a in alts}):
                    a_best = max(
                        (a for a in alts if a["backend"] == backend),
                        key=lambda r: r["images_per_s"],
                    )
                    p_best = max(
                        (
                            r
                            for r in runs
                            if r["model"] == "keras_preact" and r["backend"] == backend
                        ),
                        key=lambda r: r["images_per_s"],
                        default=None,
                    )
                    if p_best:
                        rows.append(_best_row(a_best, p_best, "best_same_backend"))
            elif alts:
                a_best = max(alts, key=lambda r: r["images_per_s"])
                rows.append(_best_row(a_best, best_p, "best_any_backend"))
    return rows


def _cpu_ratio(alt, preact):
    """Ratio of images per process CPU-second (None when either lacks the figure)."""
    a, p = alt.get("cpu_s_per_step"), preact.get("cpu_s_per_step")
    if not a or not p:
        return None
    return round((alt["batch"] / a) / (preact["batch"] / p), 3)


def _work_ratio(alt, preact):
    """Ratio of multiply-accumulates per second: the throughput ratio corrected for
    how much work each model does per image (None when either lacks the figure)."""
    a, p = alt.get("gmacs_per_image"), preact.get("gmacs_per_image")
    if not a or not p:
        return None
    return round((alt["images_per_s"] * a) / (preact["images_per_s"] * p), 3)


def _best_row(alt, preact, kind):
    return {
        "kind": kind,
        "alternative": _model_label(alt),
        "alt_setting": f"{alt['backend']} {_jit_label(alt)}",
        "keras_preact_setting": f"{preact['backend']} {_jit_label(preact)}",
        "shape": _shape(alt),
        "batch": alt["batch"],
        "precision": alt["precision"],
        "alt_images_per_s": alt["images_per_s"],
        "keras_preact_images_per_s": preact["images_per_s"],
        "ratio": round(alt["images_per_s"] / preact["images_per_s"], 3),
        "cpu_ratio": _cpu_ratio(alt, preact),
        "work_ratio": _work_ratio(alt, preact),
    }


def _spread(r):
    """The primary figure of every round, when the run had more than one."""
    values = next(iter((r.get("round_values") or {}).values()), None)
    if not values or len(values) < 2:
        return None
    return " / ".join(_fmt(v) for v in values)


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(c) for c in row) + " |")
    return "\n".join(lines)


def _errors(results):
    bad = [r for r in results if r.get("status") != "ok"]
    if not bad:
        return ""
    lines = ["", "Failed configs:", ""]
    for r in bad:
        label = ", ".join(
            f"{k}={r[k]}"
            for k in ("backend", "model", "layout", "depth", "precision", "jit", "remat", "runtime")
            if k in r
        )
        err = str(r.get("error", "")).replace("\n", " ")[:300]
        lines.append(f"- {label}: `{err}`")
    return "\n".join(lines) + "\n"


def render_train(results):
    rows = []
    for r in _ok(results):
        rows.append(
            [
                r["backend"],
                _model_label(r),
                _shape(r),
                r["batch"],
                PRECISION_LABEL.get(r["precision"], r["precision"]),
                _jit_label(r),
                r["images_per_s"],
                round(r["median_step_s"] * 1000, 1),
                round(r["batch"] / r["cpu_s_per_step"], 2) if r.get("cpu_s_per_step") else None,
                r["first_call_s"],
                r["peak_memory_mb"],
                r.get("trainable_params"),
                r.get("gmacs_per_image"),
                _spread(r),
            ]
        )
    out = _table(
        [
            "backend",
            "model",
            "input",
            "batch",
            "precision",
            "compile",
            "images/s",
            "median step ms",
            "images per CPU-s",
            "first step s",
            "peak mem MiB",
            "trainable params",
            "GMACs/img",
            "rounds (images/s)",
        ],
        rows,
    )
    comparisons = compare_train(results)
    if comparisons:
        crow = []
        for c in comparisons:
            if c["kind"] == "same_setting":
                setting = f"{c['alt_backend']} vs {c['keras_preact_backend']}, " + (
                    "compiled" if c["jit"] else "not compiled"
                )
            else:
                setting = f"best: {c['alt_setting']} vs {c['keras_preact_setting']}"
            crow.append(
                [
                    c["alternative"],
                    c["shape"],
                    c["batch"],
                    PRECISION_LABEL.get(c["precision"], c["precision"]),
                    setting,
                    c["alt_images_per_s"],
                    c["keras_preact_images_per_s"],
                    f"{c['ratio']:.2f}",
                    f"{c['cpu_ratio']:.2f}" if c.get("cpu_ratio") else None,
                    f"{c['work_ratio']:.2f}" if c.get("work_ratio") else None,
                ]
            )
        out += (
            "\n\nRatio = alternative images/s / keras_preact images/s (> 1: alternative "
            "faster); 'ratio per CPU-s' uses images per process CPU-second instead of "
            "wall time; 'ratio per GMAC' uses multiply-accumulates per second, which "
            "corrects for models that do different work per image.\n\n"
        )
        out += _table(
            [
                "alternative",
                "input",
                "batch",
                "precision",
                "setting",
                "alt images/s",
                "keras_preact images/s",
                "ratio",
                "ratio per CPU-s",
                "ratio per GMAC",
            ],
            crow,
        )
    return out + "\n" + _errors(results)


def render_inference(results):
    rows = [
        [
            r["backend"],
            _model_label(dict(r, model=r.get("model", "keras_preact"))),
            _shape(r),
            r["runtime"],
            r["batch"],
            r["latency_ms"],
            r["images_per_s"],
            r.get("first_call_s"),
        ]
        for r in _ok(results)
    ]
    return (
        _table(
            [
                "backend",
                "model",
                "input",
                "runtime",
                "batch",
                "median latency ms",
                "images/s",
                "first call s",
            ],
            rows,
        )
        + "\n"
        + _errors(results)
    )


def render_build(results):
    rows = [
        [
            r["backend"],
            f"PreActResNet{r['depth']}",
            r["layout"],
            r["residual_units"],
            r["build_s"],
            r["trainable_params"],
        ]
        for r in _ok(results)
    ]
    return (
        _table(
            ["backend", "model", "layout", "residual units", "build s", "trainable params"],
            rows,
        )
        + "\n"
        + _errors(results)
    )


def render_remat(results):
    rows = [
        [
            r["backend"],
            f"PreActResNet{r['depth']}",
            r["batch"],
            "yes" if r.get("remat") else "no",
            _jit_label(r),
            r["images_per_s"],
            r["peak_memory_mb"],
            r["memory_kind"],
            r["first_call_s"],
        ]
        for r in _ok(results)
    ]
    return (
        _table(
            [
                "backend",
                "model",
                "batch",
                "remat",
                "compile",
                "images/s",
                "peak mem MiB",
                "memory measured as",
                "first step s",
            ],
            rows,
        )
        + "\n"
        + _errors(results)
    )


RENDERERS = {
    "train": ("Training throughput", render_train),
    "inference": ("Inference", render_inference),
    "build": ("Build time and parameters vs depth", render_build),
    "remat": ("Rematerialization (remat=True)", render_remat),
}


def render_machine(machine):
    v = machine.get("versions", {})
    versions = ", ".join(f"{k} {val}" for k, val in v.items())
    gpus = ", ".join(machine.get("gpus") or []) or "none"
    return (
        f"- Date: {machine.get('date_utc')}\n"
        f"- CPU: {machine.get('cpu')}, {machine.get('cpu_cores')} cores "
        f"({machine.get('cpu_cores_usable')} usable), {machine.get('memory_gb')} GB RAM\n"
        f"- GPU: {gpus}\n"
        f"- Load average at start: {machine.get('load_average_at_start')}\n"
        f"- Thread settings: {machine.get('thread_env') or 'framework defaults'}\n"
        f"- Versions: {versions}\n"
    )


def render_settings(settings):
    if "per_backend" in settings:
        settings = next(iter(settings["per_backend"].values()), {})
    keep = {
        k: v
        for k, v in settings.items()
        if k not in ("isolate", "timeout", "keras_backend")
    }
    return ", ".join(f"{k}={v}" for k, v in keep.items())


def render_markdown(report):
    parts = ["# keras_preact benchmarks", "", render_machine(report["machine"])]
    for suite, body in report["suites"].items():
        title, render = RENDERERS[suite]
        parts += [
            f"## {title}",
            "",
            f"Settings: {render_settings(body.get('settings', {}))}",
            "",
            render(body["results"]),
        ]
    return "\n".join(parts) + "\n"
