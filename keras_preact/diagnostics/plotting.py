"""Figures: signal propagation per unit, and training curves per run.

matplotlib (a bare `Figure`, no pyplot, no display needed) is imported inside the functions,
so `keras_preact.diagnostics` imports without it. Files are written
atomically (`keras_preact.io.atomic_path`).
"""

import numpy as np

from keras_preact.io import atomic_path


def _figure(figsize):
    """A bare matplotlib Figure (Agg canvas): no pyplot, no global backend switch."""
    try:
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            "Plotting needs matplotlib: pip install matplotlib "
            "(or keras_preact[examples])."
        ) from e
    return Figure(figsize=figsize)


def _as_signal(value):
    from keras_preact.diagnostics.signal import SignalPropagation

    if isinstance(value, SignalPropagation):
        return value
    if isinstance(value, dict):
        return SignalPropagation.from_dict(value)
    raise ValueError(
        "Expected SignalPropagation results (or their as_dict()). "
        f"Received: {type(value).__name__}"
    )


def plot_signal_propagation(results, path, title=None, dpi=120):
    """Plots forward and backward signal vs unit index, log scale, to a PNG.

    Args:
        results: dict mapping a label (str) to a `SignalPropagation` (or its
            `as_dict()`), e.g. `{"original, 110": s1, "full pre-act, 110": s2}`.
        path: str or path-like. Where to write the PNG.
        title: str or None. Figure title.
        dpi: int. Defaults to 120.

    Returns:
        str, the path written.

    Raises:
        ValueError: `results` is not a non-empty dict of `SignalPropagation`s.

    Example:

    >>> plot_signal_propagation({"pre-act": s}, "signal.png")  # doctest: +SKIP
    """
    if not isinstance(results, dict) or not results:
        raise ValueError(
            "Expected a non-empty dict {label: SignalPropagation}. "
            f"Received: {type(results).__name__} of length "
            f"{len(results) if hasattr(results, '__len__') else 'n/a'}"
        )
    fig = _figure((11, 4.2))
    ax_f, ax_b = fig.subplots(1, 2)
    for label, value in results.items():
        s = _as_signal(value)
        idx = np.arange(1, s.num_units + 1)
        ax_f.plot(idx, s.forward_std, label=str(label), lw=1.4)
        ax_b.plot(idx, s.backward_norm, label=str(label), lw=1.4)
    ax_f.set(yscale="log", xlabel="residual unit", ylabel="std of unit output",
             title="forward signal")
    ax_b.set(yscale="log", xlabel="residual unit",
             ylabel="||d loss / d unit input||", title="backward signal")
    for ax in (ax_f, ax_b):
        ax.grid(True, which="both", alpha=0.3)
    ax_b.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return str(path)


def _curve(rows, key, scale=1.0, offset=0.0):
    """(x, y) of `offset + scale * row[key]` over rows that have it (x: iterations, else epochs)."""
    points = [(r.get("iterations", r["epoch"] + 1), offset + scale * r[key])
              for r in rows if r.get(key) is not None]
    return tuple(np.asarray(v, dtype=float) for v in zip(*points)) if points else None


def plot_training_curves(runs, path, title=None, dpi=120):
    """Training loss (dashed) and test error (solid) vs iterations, per run.

    Like the paper's Fig. 1 / Fig. 6: one colour per run; left axis test
    error in % (`100 * (1 - val_top1)`), right axis training loss. Runs
    without validation show their loss only. The x axis is the optimizer
    iteration count (`"iterations"`), else the epoch (1-based).

    Args:
        runs: non-empty dict mapping a label to the run's per-epoch rows,
            as `keras_preact.training.MetricsWriter` writes them (list of
            dict with `"epoch"` (0-based), `"loss"`, optionally
            `"iterations"` and `"val_top1"`, a fraction in [0, 1]).
        path: str or path-like. Where to write the PNG (atomically).
        title: str or None.
        dpi: int. Defaults to 120.

    Returns:
        str, the path written.

    Raises:
        ValueError: `runs` is not a non-empty dict.
    """
    if not isinstance(runs, dict) or not runs:
        raise ValueError(
            f"Expected a non-empty dict {{label: per-epoch rows}}. Received: {runs!r:.200}"
        )
    from matplotlib import rcParams

    fig = _figure((7.5, 4.8))
    ax_err = fig.subplots()
    ax_loss = ax_err.twinx()
    colors = rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, rows) in enumerate(runs.items()):
        color = colors[i % len(colors)]
        error = _curve(rows, "val_top1", scale=-100.0, offset=100.0)
        loss = _curve(rows, "loss")
        if error is not None:
            ax_err.plot(*error, "-o", ms=3, color=color, lw=1.6, label=str(label))
        if loss is not None:
            ax_loss.plot(*loss, "--", color=color, lw=1.0,
                         label=None if error is not None else str(label))
    iterations = all("iterations" in r for rows in runs.values() for r in rows)
    ax_err.set(xlabel="iterations" if iterations else "epoch", ylabel="test error (%) — solid")
    ax_loss.set(ylabel="training loss — dashed")
    ax_err.grid(True, alpha=0.3)
    handles = [h for ax in (ax_err, ax_loss) for h in ax.get_legend_handles_labels()[0]]
    if handles:
        ax_err.legend(handles=handles, fontsize=8, loc="upper right")
    if title:
        ax_err.set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return str(path)
