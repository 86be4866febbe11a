"""Tests of keras_preact.training: schedules, precision, distribution, callbacks
and compile_for_paper (PaperSGD: tests/test_optimizers.py)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

from keras_preact.training import ImageNetStepSchedule
from keras_preact.training import MetricsWriter
from keras_preact.training import PaperCIFARSchedule
from keras_preact.diagnostics import plot_training_curves
from keras_preact.training import WarmupCosineDecay
from keras_preact.training import accuracy_metrics
from keras_preact.training import compile_for_paper
from keras_preact.training import resolve_precision
from keras_preact.training import setup_distribution

REPO = Path(__file__).resolve().parents[1]
BACKEND = keras.backend.backend()


def lr_at(schedule, steps):
    return [float(ops.convert_to_numpy(schedule(s))) for s in steps]


# --- Schedules -------------------------------------------------------------


@pytest.mark.parametrize("make, boundaries, total_steps, steps, want", [
    # The paper: 0.1, /10 at 32k and 48k, stop at 64k.
    (lambda: PaperCIFARSchedule(), (32000, 48000), 64000,
     [0, 399, 400, 31999, 32000, 47999, 48000, 63999, 64000],
     [0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 0.001]),
    (lambda: PaperCIFARSchedule(warmup_steps=400), (32000, 48000), 64000,
     [0, 399, 400, 32000], [0.01, 0.01, 0.1, 0.01]),
    # for_run: linear scaling at batch 256, half the steps.
    (lambda: PaperCIFARSchedule.for_run(batch_size=256), (16000, 24000), 32000,
     [0, 15999, 16000, 24000], [0.2, 0.2, 0.02, 0.002]),
    (lambda: PaperCIFARSchedule.for_run(batch_size=64, scale_learning_rate=False, warmup=True),
     (64000, 96000), 128000, [0, 799, 800, 64000], [0.01, 0.01, 0.1, 0.01]),
    # Another base rate: the warm-up stays at a tenth of it.
    (lambda: PaperCIFARSchedule.for_run(batch_size=64, learning_rate=0.2, warmup=True),
     (64000, 96000), 128000, [0, 800, 64000], [0.01, 0.1, 0.01]),
    # The paper's batch, 164 epochs x 391 steps: drops at 1/2 and 3/4.
    (lambda: PaperCIFARSchedule.for_run(batch_size=128, epochs=164, steps_per_epoch=391),
     (32062, 48093), 64124, [0, 32062], [0.1, 0.01]),
    # Only epochs: steps per epoch from the 50k CIFAR training images.
    (lambda: PaperCIFARSchedule.for_run(batch_size=1000, epochs=10), (250, 375), 500,
     [0, 250], [0.78125, 0.078125]),
    # Tiny runs keep strictly increasing boundaries.
    (lambda: PaperCIFARSchedule.for_run(total_steps=2), (1, 2), 2, [0, 1, 2], [0.1, 0.01, 0.001]),
    (lambda: ImageNetStepSchedule(steps_per_epoch=5005, batch_size=256),
     (150150, 300300, 450450), None, [0, 150149, 150150, 300299, 300300, 450450],
     [0.1, 0.1, 0.01, 0.01, 0.001, 0.0001]),
    (lambda: ImageNetStepSchedule(steps_per_epoch=1252, batch_size=1024, warmup_epochs=5),
     (37560, 75120, 112680), None, [0, 6259, 6260, 37560], [0.4 / 6260, 0.4, 0.4, 0.04]),
    (lambda: WarmupCosineDecay(0.1, total_steps=100, warmup_steps=10, alpha=0.0), None, 100,
     [0, 9, 10, 55, 100, 200], [0.01, 0.1, 0.1, 0.05, 0.0, 0.0]),
])
def test_schedule_values(make, boundaries, total_steps, steps, want):
    s = make()
    if boundaries is not None:
        assert s.boundaries == boundaries
    assert getattr(s, "total_steps", None) == total_steps
    np.testing.assert_allclose(lr_at(s, steps), want, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(
    "schedule",
    [
        PaperCIFARSchedule.for_run(batch_size=64, warmup=True),
        ImageNetStepSchedule(steps_per_epoch=100, batch_size=512, warmup_epochs=1),
        WarmupCosineDecay(0.2, total_steps=1000, warmup_steps=50, alpha=0.01),
    ],
)
def test_schedule_serialization_round_trip(schedule):
    config = keras.saving.serialize_keras_object(schedule)
    assert config["registered_name"].startswith("keras_preact>")
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(config)))
    assert type(restored) is type(schedule)
    steps = [0, 49, 50, 100, 999, 64000]
    np.testing.assert_allclose(lr_at(restored, steps), lr_at(schedule, steps))


@pytest.mark.parametrize("make, match", [
    (lambda: PaperCIFARSchedule(boundaries=(48000, 32000)), "boundaries"),
    (lambda: PaperCIFARSchedule(warmup_steps=-1), r"Invalid warmup_steps=-1. Expected an int >= 0"),
    (lambda: PaperCIFARSchedule.for_run(batch_size=0), r"Invalid batch_size=0"),
    (lambda: PaperCIFARSchedule.for_run(epochs=2.5), r"Invalid epochs=2.5"),
    (lambda: ImageNetStepSchedule(steps_per_epoch=0), r"Invalid steps_per_epoch=0"),
    (lambda: WarmupCosineDecay(0.1, total_steps=10, warmup_steps=10),
     r"Invalid warmup_steps=10. Expected an int in \[0, 9\]"),
])
def test_schedule_bad_input(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# --- compile_for_paper (PaperSGD itself: tests/test_optimizers.py) ----------


def test_training_steps_lower_the_loss():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8, 8, 3)).astype("float32")
    y = (x.mean(axis=(1, 2)) @ rng.normal(size=(3, 10))).argmax(-1)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(8, 3, padding="same", use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    compile_for_paper(model, 0.1)
    first = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(first) == {"loss", "top1", "top5"}
    for _ in range(15):
        model.train_on_batch(x, y)
    last = model.evaluate(x, y, verbose=0, return_dict=True)
    assert last["loss"] < 0.9 * first["loss"]
    assert last["top5"] >= last["top1"]


def test_compile_for_paper_options():
    logits_model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(10)])
    compile_for_paper(logits_model, one_hot=True, label_smoothing=0.1)
    assert logits_model.loss.get_config()["from_logits"] is True
    assert logits_model.loss.get_config()["label_smoothing"] == pytest.approx(0.1)
    softmax_model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(10, activation="softmax")]
    )
    compile_for_paper(softmax_model)
    assert softmax_model.loss.get_config()["from_logits"] is False
    assert [m.name for m in accuracy_metrics(one_hot=True)] == ["top1", "top5"]
    with pytest.raises(ValueError, match="label_smoothing"):
        compile_for_paper(softmax_model, label_smoothing=0.1)


# --- Precision and distribution ---------------------------------------------


def test_resolve_precision():
    ampere = {"kind": "gpu", "compute_capability": (8, 0)}
    volta = {"kind": "gpu", "compute_capability": (7, 0)}
    assert resolve_precision("auto", ampere) == "mixed_bfloat16"
    assert resolve_precision("auto", volta) == "float32"
    assert resolve_precision("auto", {"kind": "tpu", "compute_capability": None}) == (
        "mixed_bfloat16"
    )
    assert resolve_precision("auto", {"kind": "cpu", "compute_capability": None}) == "float32"
    assert resolve_precision("float16") == "mixed_float16"
    assert resolve_precision("off") == "float32"
    # This machine has no accelerator.
    assert resolve_precision("auto") == "float32"
    with pytest.raises(ValueError, match="mode='fp8'"):
        resolve_precision("fp8")


def test_setup_distribution_none_and_errors():
    assert setup_distribution("none").num_replicas == 1
    with pytest.raises(ValueError, match="distribute='horovod'"):
        setup_distribution("horovod")
    if BACKEND == "torch":
        with pytest.raises(ValueError, match="torch"):
            setup_distribution("mirrored")
    if BACKEND == "jax":
        with pytest.raises(ValueError, match="data_parallel"):
            setup_distribution("mirrored")


DISTRIBUTED_STEP = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    BACKEND = os.environ["KERAS_BACKEND"]
    if BACKEND == "tensorflow":
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from keras_preact.training import compile_for_paper, setup_distribution
    setup = setup_distribution(sys.argv[1])
    assert setup.num_replicas == 2, setup
    with setup.scope():
        model = keras.Sequential([keras.Input((4, 4, 3)),
            keras.layers.Conv2D(4, 3, use_bias=False), keras.layers.BatchNormalization(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(5, activation="softmax")])
        compile_for_paper(model, 0.1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4, 4, 3)).astype("float32")
    y = rng.integers(0, 5, size=16)
    kernel = model.layers[-1].kernel
    before = keras.ops.convert_to_numpy(kernel).copy()
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 2
    assert not np.allclose(before, keras.ops.convert_to_numpy(kernel))
    # PaperSGD's update under two replicas: tests/test_optimizers.py.
    print("OK", setup.kind, setup.num_replicas, history.history["loss"][0])
    """
)


def run_distributed_step(backend, kind, extra_env=None):
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=str(REPO),
               TF_CPP_MIN_LOG_LEVEL="3", **(extra_env or {}))
    result = subprocess.run(
        [sys.executable, "-c", DISTRIBUTED_STEP, kind], env=env, cwd=REPO,
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"OK {kind} 2" in result.stdout


@pytest.mark.slow
def test_mirrored_strategy_two_logical_cpus():
    if BACKEND != "tensorflow":
        pytest.skip("tf.distribute runs once, in the TensorFlow-backend suite")
    run_distributed_step("tensorflow", "mirrored")


@pytest.mark.slow
def test_jax_data_parallel_two_host_devices():
    if BACKEND != "jax":
        pytest.skip("keras.distribution.DataParallel runs once, in the JAX-backend suite")
    run_distributed_step(
        "jax", "data_parallel",
        {"XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"},
    )


# --- Callbacks --------------------------------------------------------------


def tiny_compiled_model():
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(6, activation="softmax", name="fc")]
    )
    compile_for_paper(model, 0.1)
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


@pytest.mark.parametrize(
    "skip, total, expected",
    [
        # 2 s per timed step; measured after step 4 (skip 1 + 3), 6 remain.
        (1, 10, "measured 2 s/step: the full run (10 steps) takes about 20 s on "
                "this machine; 6 steps (12 s) remain"),
        (0, 200_000, "measured 2 s/step: the full run (200,000 steps) takes about "
                     "4.6 days on this machine; 199,997 steps (4.6 days) remain"),
    ],
)
def test_run_time_estimate(monkeypatch, skip, total, expected):
    from keras_preact.training import RunTimeEstimate
    from keras_preact.training import callbacks as callbacks_module

    clock = [0.0]
    monkeypatch.setattr(callbacks_module.time, "perf_counter", lambda: clock[0])

    class Tick(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            clock[0] += 2.0

    messages = []
    model = tiny_compiled_model()
    model.fit(np.zeros((8, 3), "float32"), np.zeros(8, "int64"), batch_size=1,
              epochs=1, steps_per_epoch=5, verbose=0,
              callbacks=[Tick(), RunTimeEstimate(total, skip_steps=skip, measure_steps=3,
                                                 log=messages.append)])
    assert messages == [expected]
    with pytest.raises(ValueError, match="Invalid total_steps=0. Expected an int >= 1"):
        RunTimeEstimate(0)


# --- keras_preact.io and keras_preact.validation ----------------------------


@pytest.mark.parametrize("write, expected", [
    (lambda io, p: io.atomic_write(p, "text"), b"text"),
    (lambda io, p: io.atomic_write(p, b"\x00\xff"), b"\x00\xff"),
    (lambda io, p: io.atomic_write_json(p, {"a": 1}), b'{"a": 1}\n'),
])
def test_atomic_write_replaces_whole_file(tmp_path, write, expected):
    from keras_preact import io

    path = tmp_path / "sub" / "out.bin"
    write(io, str(path))
    assert path.read_bytes() == expected
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
    # A failing writer leaves the old file and no temporary behind.
    with pytest.raises(RuntimeError):
        with io.atomic_path(path) as tmp:
            Path(tmp).write_text("half")
            raise RuntimeError("crash")
    assert path.read_bytes() == expected
    assert os.listdir(path.parent) == ["out.bin"]
    with pytest.raises(TypeError, match="str or bytes"):
        io.atomic_write(path, 1)


@pytest.mark.parametrize("check, args, message", [
    ("check_choice", ("pooling", "sum", ("avg", "max")),
     "Invalid pooling='sum'. Expected one of ['avg', 'max']."),
    ("check_int", ("epochs", 0, 1), "Invalid epochs=0. Expected an int >= 1."),
    ("check_int", ("epochs", 2.0, 1), "Invalid epochs=2.0. Expected an int >= 1."),
    ("check_int", ("depth", True), "Invalid depth=True. Expected an int."),
    ("check_real", ("momentum", 1.5, 0.0, 1.0),
     "Invalid momentum=1.5. Expected a number in [0.0, 1.0]."),
    ("check_real", ("lr", float("nan"), 0.0), "Invalid lr=nan. Expected a number >= 0.0."),
    ("check_real", ("lr", "0.1", 0.0), "Invalid lr='0.1'. Expected a number >= 0.0."),
])
def test_validators_refuse_bad_values(check, args, message):
    from keras_preact import validation

    with pytest.raises(ValueError) as info:
        getattr(validation, check)(*args)
    assert str(info.value) == message


def test_validators_return_converted_values():
    from keras_preact.validation import check_choice, check_int, check_real

    assert check_choice("p", "avg", ("avg",)) == "avg"
    assert type(check_int("n", np.int64(3), 1, 3)) is int
    assert type(check_real("x", np.float32(0.5), 0.0, 1.0)) is float
    assert check_real("x", 1, 0.0, 1.0) == 1.0
