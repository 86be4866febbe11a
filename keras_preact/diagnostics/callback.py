"""`SignalPropagationLogger`: signal propagation during `model.fit`."""

import os
import warnings

import keras
import numpy as np

from keras_preact.diagnostics.signal import SignalProbe


class SignalPropagationLogger(keras.callbacks.Callback):
    """Measures forward/backward signal per unit on a fixed batch during fit.

    Measures once before training (recorded as epoch 0) and after every
    `every_n_epochs`-th epoch (epoch numbers 1-based), keeps everything in
    `self.history` (list of `(epoch, SignalPropagation)`) and, when
    `log_dir` is given and TensorFlow is installed, writes TensorBoard
    summaries with `tf.summary`:

    - `signal/forward_std/epoch_{e}` and `signal/backward_norm/epoch_{e}`:
      one curve per measured epoch, the x axis (step) being the unit index
      (1-based);
    - `signal_summary/backward_first_over_last`,
      `signal_summary/forward_last_over_first` and `signal_summary/loss`
      vs epoch.

    Without TensorFlow it warns once and only keeps the history. On JAX the
    probe is `jax.jit`-compiled once and reused at every measurement.

    Args:
        batch: tuple `(x, y)`. The fixed batch to measure on.
        log_dir: str or None. TensorBoard log folder (a `signal` sub-folder
            is used). Defaults to None (history only).
        every_n_epochs: int >= 1. Defaults to 1.
        training: bool. BatchNorm mode for the measurement. Defaults to True.

    Example:

    >>> logger = SignalPropagationLogger((x[:8], y[:8]), log_dir="runs/sig")
    >>> model.fit(ds, epochs=3, callbacks=[logger])      # doctest: +SKIP
    >>> logger.history[-1][1].backward_norm               # doctest: +SKIP
    """

    def __init__(self, batch, log_dir=None, every_n_epochs=1, training=True):
        super().__init__()
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise ValueError(
                "Expected batch=(x, y). Received: "
                f"{type(batch).__name__} of length "
                f"{len(batch) if hasattr(batch, '__len__') else 'n/a'}"
            )
        if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(
                f"Expected every_n_epochs to be an int >= 1. Received: {every_n_epochs!r}"
            )
        self.x = np.asarray(batch[0])
        self.y = np.asarray(batch[1])
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.every_n_epochs = every_n_epochs
        self.training = training
        self.history = []
        self._probe = None
        self._writer = None
        self._tf = None
        self._metadata = None
        if self.log_dir is not None:
            try:
                import tensorflow as tf
            except ImportError:
                warnings.warn(
                    "SignalPropagationLogger: TensorFlow is not installed, so "
                    "no TensorBoard summaries are written (the history is "
                    "still kept in `.history`).",
                    stacklevel=2,
                )
            else:
                self._tf = tf

    def _measure(self, epoch):
        if self._probe is None or self._probe.model is not self.model:
            self._probe = SignalProbe(self.model, jit_compile=True)
        result = self._probe(self.x, self.y, training=self.training)
        self.history.append((epoch, result))
        if self._tf is not None:
            self._write(epoch, result)
        return result

    def _scalar(self, tag, value, step):
        # `tf.summary.write` with the scalars plugin's metadata is exactly what
        # `tf.summary.scalar` emits, but it is TensorFlow core and works
        # without the `tensorboard` package installed.
        tf = self._tf
        if self._metadata is None:
            from tensorflow.core.framework import summary_pb2

            self._metadata = summary_pb2.SummaryMetadata()
            self._metadata.plugin_data.plugin_name = "scalars"
        tf.summary.write(
            tag, tf.constant(float(value), dtype=tf.float32), step=int(step),
            metadata=self._metadata,
        )

    def _write(self, epoch, result):
        tf = self._tf
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "signal"))
        with self._writer.as_default():
            for i, (f, b) in enumerate(zip(result.forward_std, result.backward_norm), 1):
                self._scalar(f"signal/forward_std/epoch_{epoch:04d}", f, i)
                self._scalar(f"signal/backward_norm/epoch_{epoch:04d}", b, i)
            self._scalar(
                "signal_summary/backward_first_over_last",
                result.backward_norm[0] / result.backward_norm[-1], epoch)
            self._scalar(
                "signal_summary/forward_last_over_first",
                result.forward_std[-1] / result.forward_std[0], epoch)
            self._scalar("signal_summary/loss", result.loss, epoch)
        self._writer.flush()

    def on_train_begin(self, logs=None):
        if not self.history:
            self._measure(0)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs == 0:
            self._measure(epoch + 1)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
