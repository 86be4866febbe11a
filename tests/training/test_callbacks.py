"""keras_preact.training.callbacks: the metrics files of a resumed run and the
run-time estimate."""

import json

import keras
import numpy as np
import pytest

from keras_preact.training import MetricsWriter
from keras_preact.training import compile_for_paper

from _checks import skip_unless_multi_step


def tiny_compiled_model(steps_per_execution=1):
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(6, activation="softmax", name="fc")]
    )
    compile_for_paper(model, 0.1, steps_per_execution=steps_per_execution)
    return model


def test_metrics_writer_resume_replaces_redone_epochs(tmp_path):
    csv_path, json_path = tmp_path / "m.csv", tmp_path / "m.json"
    writer = MetricsWriter(str(csv_path), str(json_path), extra={"name": "t"})
    model = tiny_compiled_model()
    writer.set_model(model)
    writer.on_train_begin()
    for epoch in range(3):
        writer.on_epoch_begin(epoch)
        writer.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1), "top1": 0.5})
    # A resumed run restarting at epoch 2: epoch 2 is replaced, not duplicated.
    writer = MetricsWriter(str(csv_path), str(json_path))
    writer.set_model(model)
    writer.on_train_begin()
    writer.on_epoch_begin(2)
    writer.on_epoch_end(2, {"loss": 0.25, "top1": 0.75})
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "epoch,loss,top1,learning_rate,iterations"
    assert [line.split(",")[:3] for line in lines[1:]] == [
        ["0", "1.0", "0.5"], ["1", "0.5", "0.5"], ["2", "0.25", "0.75"]]
    payload = json.loads(json_path.read_text())
    assert [r["epoch"] for r in payload["epochs"]] == [0, 1, 2]
    assert payload["epochs"][0]["learning_rate"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="csv_path or json_path"):
        MetricsWriter()


@pytest.mark.parametrize(
    "skip, total, per_execution, expected",
    [
        # 2 s per timed step; measured after step 4 (skip 1 + 3), 6 remain.
        (1, 10, 1, "measured 2 s/step: the full run (10 steps) takes about 20 s on "
                   "this machine; 6 steps (12 s) remain"),
        (0, 200_000, 1, "measured 2 s/step: the full run (200,000 steps) takes about "
                        "4.6 days on this machine; 199,997 steps (4.6 days) remain"),
        # 2 s per call of 2 steps: timed from step 2 to step 6.
        (1, 10, 2, "measured 1 s/step: the full run (10 steps) takes about 10 s on "
                   "this machine; 4 steps (4 s) remain"),
    ],
)
def test_run_time_estimate(monkeypatch, skip, total, per_execution, expected):
    from keras_preact.training import RunTimeEstimate
    from keras_preact.training import callbacks as callbacks_module

    skip_unless_multi_step(per_execution)

    clock = [0.0]
    monkeypatch.setattr(callbacks_module.time, "perf_counter", lambda: clock[0])

    class Tick(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            clock[0] += 2.0

    messages = []
    model = tiny_compiled_model(per_execution)
    model.fit(np.zeros((8, 3), "float32"), np.zeros(8, "int64"), batch_size=1,
              epochs=1, steps_per_epoch=6, verbose=0,
              callbacks=[Tick(), RunTimeEstimate(total, skip_steps=skip, measure_steps=3,
                                                 log=messages.append)])
    assert messages == [expected]
    with pytest.raises(ValueError, match="Invalid total_steps=0. Expected an int >= 1"):
        RunTimeEstimate(0)
