"""Figures: signal propagation per unit, and training curves per variant.

matplotlib (a bare `Figure`, no pyplot, no display needed) is imported inside the functions,
so `keras_preact.diagnostics` imports without it. Files are written
atomically (temporary file in the same folder, then `os.replace`).
"""

import os
import tempfile

import numpy as np


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


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _save_atomically(fig, path, dpi):
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=folder)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=dpi)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


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
    return _save_atomically(fig, path, dpi)


def plot_training_curves(curves, path, title=None, dpi=120):
    """Training loss (dashed) and test error (solid) vs iterations, per variant.

    Like the paper's Fig. 1 / Fig. 6: one colour per variant; left axis test
    error (%), right axis training loss.

    Args:
        curves: dict mapping a label to a dict with lists `"iterations"`,
            `"train_loss"` and `"test_error"` (fraction in [0, 1]).
        path: str or path-like. Where to write the PNG.
        title: str or None.
        dpi: int. Defaults to 120.

    Returns:
        str, the path written.
    """
    if not isinstance(curves, dict) or not curves:
        raise ValueError(
            f"Expected a non-empty dict of curves. Received: {curves!r}"
        )
    from matplotlib import rcParams

    fig = _figure((7.5, 4.8))
    ax_err = fig.subplots()
    ax_loss = ax_err.twinx()
    colors = rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, c) in enumerate(curves.items()):
        color = colors[i % len(colors)]
        it = np.asarray(c["iterations"], dtype=float)
        ax_err.plot(it, 100.0 * np.asarray(c["test_error"], dtype=float),
                    "-o", ms=3, color=color, lw=1.6, label=f"{label}")
        ax_loss.plot(it, np.asarray(c["train_loss"], dtype=float),
                     "--", color=color, lw=1.0)
    ax_err.set(xlabel="iterations", ylabel="test error (%) — solid")
    ax_loss.set(ylabel="training loss — dashed")
    ax_err.grid(True, alpha=0.3)
    ax_err.legend(fontsize=8, loc="upper right")
    if title:
        ax_err.set_title(title)
    fig.tight_layout()
    return _save_atomically(fig, path, dpi)
