"""keras_preact.diagnostics.plotting: the signal-propagation and training-curve
figures are PNG files, and bad input writes none."""

import os

import pytest

from keras_preact.diagnostics import plot_signal_propagation
from keras_preact.diagnostics import plot_training_curves
from keras_preact.diagnostics import signal_propagation

from _checks import signal_batch
from _checks import signal_model


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_png(path, min_size):
    from PIL import Image

    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size[0] >= min_size[0] and im.size[1] >= min_size[1]


def test_figures_are_png(tmp_path):
    model = signal_model(8)
    x, y = signal_batch()
    s = signal_propagation(model, x, y)
    path = plot_signal_propagation({"a": s, "b": s.as_dict()}, tmp_path / "sig.png", title="t")
    _check_png(path, (800, 300))
    curves = {"v": [{"epoch": 0, "iterations": 1, "loss": 2.3, "val_top1": 0.1},
                    {"epoch": 1, "iterations": 2, "loss": 2.1, "val_top1": 0.2}]}
    _check_png(plot_training_curves(curves, tmp_path / "curves.png"), (600, 300))
    with pytest.raises(ValueError, match="non-empty dict"):
        plot_signal_propagation({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="SignalPropagation"):
        plot_signal_propagation({"a": [1, 2]}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_plot_training_curves_writes_png(tmp_path):
    rows = [{"epoch": e, "iterations": 10 * e, "loss": 2.0 - e * 0.1, "top1": 0.1 * e,
             "val_top1": 0.09 * e, "learning_rate": 0.1} for e in range(5)]
    no_validation = [{"epoch": e, "loss": 2.0 - e * 0.1} for e in range(3)]
    path = plot_training_curves({"a": rows, "b": no_validation},
                                str(tmp_path / "curves.png"), title="t")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["curves.png"]
    with pytest.raises(ValueError, match="non-empty dict"):
        plot_training_curves(rows, str(tmp_path / "x.png"))
    assert os.listdir(tmp_path) == ["curves.png"]
