"""Diagnostics for the paper's comparisons: signal propagation per unit.

- `signal_propagation(model, x, y)` / `SignalProbe`: forward signal (std of
  each residual unit's output) and backward signal (norm of the loss
  gradient w.r.t. each unit's input), with each backend's own autodiff.
- `SignalPropagationLogger`: the same during `fit`, to TensorBoard.
- `plot_signal_propagation`, `plot_training_curves`: PNG figures.
"""

from keras_preact.diagnostics.callback import SignalPropagationLogger
from keras_preact.diagnostics.plotting import plot_signal_propagation
from keras_preact.diagnostics.plotting import plot_training_curves
from keras_preact.diagnostics.signal import SignalProbe
from keras_preact.diagnostics.signal import SignalPropagation
from keras_preact.diagnostics.signal import find_residual_units
from keras_preact.diagnostics.signal import signal_propagation

__all__ = [
    "SignalProbe",
    "SignalPropagation",
    "SignalPropagationLogger",
    "find_residual_units",
    "plot_signal_propagation",
    "plot_training_curves",
    "signal_propagation",
]
