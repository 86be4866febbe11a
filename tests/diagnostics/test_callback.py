"""keras_preact.diagnostics.callback: `SignalPropagationLogger` records the
signal during training and writes it for TensorBoard."""

import glob
import os

import keras
import numpy as np
import pytest

from keras_preact.diagnostics import SignalPropagationLogger

from _checks import signal_batch
from _checks import signal_model


def test_logger_history_and_tensorboard(tmp_path):
    model = signal_model(8)
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = signal_batch(16)
    logger = SignalPropagationLogger((x[:4], y[:4]), log_dir=tmp_path, every_n_epochs=1)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[logger])
    assert [e for e, _ in logger.history] == [0, 1, 2]
    first, last = logger.history[0][1], logger.history[-1][1]
    assert first.num_units == last.num_units == 3
    # The probe follows training (weights are synced on every backend).
    assert not np.allclose(first.backward_norm, last.backward_norm, rtol=1e-3)
    events = glob.glob(os.path.join(tmp_path, "signal", "events.out.tfevents.*"))
    assert len(events) == 1
    tags = _read_scalar_tags(events[0])
    assert tags["signal/backward_norm/epoch_0000"] == [1, 2, 3]  # step = unit index
    assert tags["signal/forward_std/epoch_0002"] == [1, 2, 3]
    assert tags["signal_summary/backward_first_over_last"] == [0, 1, 2]  # step = epoch
    with pytest.raises(ValueError, match="every_n_epochs"):
        SignalPropagationLogger((x, y), every_n_epochs=0)
    with pytest.raises(ValueError, match="batch"):
        SignalPropagationLogger(x)


def _read_scalar_tags(path):
    """{tag: [steps]} of the scalar summaries in a TensorBoard event file."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    tags = {}
    for record in tf.data.TFRecordDataset(path):
        event = event_pb2.Event.FromString(record.numpy())
        for value in event.summary.value:
            assert value.metadata.plugin_data.plugin_name in ("scalars", "")
            tags.setdefault(value.tag, []).append(event.step)
    return tags
