"""keras_preact.training.distribute: the distribution set-ups, the cluster
settings they read, and multi-worker training with real worker processes on
this machine.

TensorFlow (MultiWorkerMirroredStrategy) and JAX (jax.distributed +
keras.distribution.DataParallel), each worker one CPU device, started by
`python -m keras_preact.launch`. The suite of each backend runs its own
engine; the torch suite checks the refusal. Every subprocess has a hard
timeout, so a hang fails the test instead of blocking CI.

What is pinned: each worker reads a distinct part of every global batch;
after N steps both workers hold the same weights, equal to a
single-process run on the same global batches (so the gradient is the
global batch's, the coupled weight decay is applied once, not once per
worker, and metrics cover the global batch); only the chief writes
outputs; a worker lost to `kill -9` makes the survivor fail by itself
within the peer timeout; bad cluster settings give errors naming what was
received.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from keras_preact import launch
from keras_preact.training import distribute
from keras_preact.training import setup_distribution
from keras_preact.training.distribute import DistributionSetup

from _checks import REPO
from _checks import command_env
from _checks import run_command
from _checks import wait_for_mid_epoch_backup

BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
MULTI_PROCESS = BACKEND in launch.VALID_BACKENDS
# Peer timeout of the fault tests (seconds): small, so they stay short.
PEER_TIMEOUT = 16
# Hard limit of one two-worker run (seconds): a hang fails the test.
RUN_TIMEOUT = 300

needs_multi_process = pytest.mark.skipif(
    not MULTI_PROCESS, reason=f"no multi-process training on {BACKEND}")


# One worker of a tiny training run (or a single-process reference run):
# records which examples it reads per step, trains a depth-8 PreActResNet
# (width 4) with the paper's optimizer on fixed random CIFAR-sized images
# through the tf.data CIFAR pipeline (the paper's augmentation), and saves
# its weights, history and optimizer iterations.
WORKER = textwrap.dedent(
    """
    import argparse, json, os, sys, time
    import numpy as np

    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["multi", "single"])
    parser.add_argument("out")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps-per-epoch", type=int, default=3)
    parser.add_argument("--weight-decay", type=float, nargs="+", default=[0.05])
    parser.add_argument("--step-log", action="store_true")
    args = parser.parse_args()

    import keras
    import keras_preact
    from keras_preact.data import cifar_dataset
    from keras_preact.training import compile_for_paper, setup_distribution

    GLOBAL_BATCH = 8
    # Seed first, as examples/training_cli.py's prepare does (the data
    # pipeline's shuffle depends on it; JAX would otherwise draw a seed).
    keras.utils.set_random_seed(0)
    setup = setup_distribution("multiworker" if args.mode == "multi" else "none")
    print("pid", os.getpid(), "worker", setup.worker_index, flush=True)
    backend = keras.backend.backend()
    rng = np.random.default_rng(1)
    # Many batches per pass: an iterator Keras opens and drops (to build the
    # model) must not prefetch across the end of a pass, where the pipeline's
    # reshuffle would draw from the seeds the training iterator uses next.
    n = GLOBAL_BATCH * 32
    x = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, size=n)

    def pipeline(labels, num_classes=10):
        return cifar_dataset(x, labels, training=True, batch_size=GLOBAL_BATCH,
                             augment="paper", num_classes=num_classes, seed=3, repeat=True)

    def local_labels(dataset, steps):
        # The same distribution calls Keras' fit makes (TensorFlow trainer:
        # experimental_distribute_dataset; JAX tf.data adapter:
        # distribution.distribute_dataset).
        if setup.strategy is not None:
            it = iter(setup.strategy.experimental_distribute_dataset(dataset))
            def local(batch):
                parts = setup.strategy.experimental_local_results(batch[1])
                return np.concatenate([np.asarray(p) for p in parts])
        else:
            if setup.distribution is not None:
                dataset = setup.distribution.distribute_dataset(dataset)
            it = iter(dataset)
            local = lambda batch: np.asarray(batch[1])
        return [local(next(it)).tolist() for _ in range(steps)]

    result = {"worker": setup.worker_index, "num_workers": setup.num_workers,
              "num_replicas": setup.num_replicas, "is_chief": setup.is_chief,
              "shards": local_labels(pipeline(np.arange(n), num_classes=n), 5), "runs": {}}

    class StepLog(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            print("step", batch + 1, flush=True)
            time.sleep(0.2)

    for wd in args.weight_decay:
        keras.utils.set_random_seed(0)
        with setup.scope():
            model = keras_preact.PreActResNet(
                8, layout="cifar", classes=10, input_shape=(32, 32, 3), base_width=4)
            if backend == "tensorflow":
                # One set of batch statistics over the global batch, as JAX's
                # DataParallel computes them (TensorFlow's default is per replica).
                for layer in model._flatten_layers():
                    if isinstance(layer, keras.layers.BatchNormalization):
                        layer.synchronized = True
            compile_for_paper(model, 0.1, weight_decay=wd)
        print("initial weights checksum", sum(float(np.sum(np.abs(
            keras.ops.convert_to_numpy(w)))) for w in model.weights), flush=True)
        history = model.fit(pipeline(y), epochs=args.epochs,
                            steps_per_epoch=args.steps_per_epoch, verbose=0, shuffle=False,
                            callbacks=[StepLog()] if args.step_log else [])
        weights = [keras.ops.convert_to_numpy(w) for w in model.weights]
        np.savez(os.path.join(args.out, f"weights_{args.mode}_{wd}_{setup.worker_index}.npz"),
                 *weights)
        result["runs"][str(wd)] = {
            "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
            "iterations": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        }
    with open(os.path.join(args.out, f"result_{args.mode}_{setup.worker_index}.json"), "w") as f:
        json.dump(result, f)
    print("DONE", flush=True)
    """
)


def _write_worker(tmp_path):
    path = tmp_path / "worker.py"
    path.write_text(WORKER)
    return path


def _launch_command(workers, *command, grace=30):
    return [sys.executable, "-m", "keras_preact.launch", "--workers", str(workers),
            "--backend", BACKEND, "--grace-seconds", str(grace), "--", *command]


# --- One process, two replicas -----------------------------------------------


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


# Two replicas in one process: TensorFlow's 2 logical CPUs (JAX's 2 CPU
# devices come from XLA_FLAGS in the environment).
TWO_REPLICAS = textwrap.dedent(
    """
    import os
    BACKEND = os.environ["KERAS_BACKEND"]
    if BACKEND == "tensorflow":
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    """
)

DISTRIBUTED_STEP = TWO_REPLICAS + textwrap.dedent(
    """
    import os, sys
    import numpy as np
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
    # PaperSGD's update under two replicas: tests/training/test_optimizers.py.
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


# One process, two replicas: after training, the model evaluated under the
# strategy is the model saved. The runner trains a small convolutional
# network with keras_preact's and Keras' batch normalization (8x8 images)
# under the strategy and evaluates it; then the replicas' non-trainable
# variables are compared, and
# evaluations under the strategy with last batches of 8, 1 (one replica
# gets none) and 3 images and with sample weights are compared with the
# runner's checkpoint loaded and evaluated on one device.
SAVED_MODEL_EVALUATION = TWO_REPLICAS + textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    import tensorflow as tf
    import keras
    from keras_preact.layers import BatchNormalization
    from keras_preact.training import (TrainingRun, compile_for_paper, setup_distribution,
                                       train_and_evaluate)

    keras.utils.set_random_seed(0)
    setup = setup_distribution(sys.argv[1])
    assert setup.num_replicas == 2, setup
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 4, size=64)
    w = rng.uniform(0.1, 2.0, size=64).astype("float32")
    CASES = {"full last batch": (16, False), "1 image over 2 replicas": (17, False),
             "3 images over 2 replicas": (19, False), "sample weights": (17, True)}

    def evaluate(model, data):
        try:
            return model.evaluate(data, verbose=0, return_dict=True)
        except Exception as error:
            return f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"

    def case_data(n, weighted):
        data = (x[:n], y[:n], w[:n]) if weighted else (x[:n], y[:n])
        return tf.data.Dataset.from_tensor_slices(data).batch(8)

    with setup.scope():
        model = keras.Sequential([
            keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, use_bias=False),
            BatchNormalization(activation="relu"),
            keras.layers.Conv2D(4, 3, padding="same", use_bias=False),
            keras.layers.BatchNormalization(), keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(4, activation="softmax")])
        compile_for_paper(model, 0.1)
    train = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(64, seed=0).batch(8).repeat()
    result = train_and_evaluate(
        model, train, TrainingRun(sys.argv[2], epochs=1, steps_per_epoch=6, verbose=0,
                                  tensorboard=False),
        validation_data=case_data(16, False), distribution=setup)

    def replica_values(variable):
        if setup.strategy is not None:
            return [np.asarray(v) for v in
                    setup.strategy.experimental_local_results(variable.value)]
        return [np.asarray(shard.data) for shard in variable.value.addressable_shards]

    spread = max(float(np.max(np.abs(value - values[0])))
                 for values in map(replica_values, model.non_trainable_variables)
                 for value in values)
    under = {name: evaluate(model, case_data(*case)) for name, case in CASES.items()}
    if setup.distribution is not None:
        keras.distribution.set_distribution(None)
    saved = keras.saving.load_model(os.path.join(sys.argv[2], "checkpoints", "last.keras"))
    one = {name: evaluate(saved, case_data(*case)) for name, case in CASES.items()}
    print("RESULT", json.dumps({"spread": spread, "runner": result.metrics,
                                "runner saved": one["full last batch"],
                                "under strategy": under, "one device": one}))
    """
)

ENGINES = {"tensorflow": ("mirrored", {}),
           "jax": ("data_parallel", {"XLA_FLAGS": "--xla_force_host_platform_device_count=2",
                                     "JAX_PLATFORMS": "cpu"})}


@pytest.mark.slow
@pytest.mark.skipif(BACKEND not in ENGINES, reason=f"Keras has no data-parallel fit on {BACKEND}")
def test_evaluation_under_two_replicas_scores_the_saved_model(tmp_path):
    kind, env = ENGINES[BACKEND]
    code, output = run_command([sys.executable, "-c", SAVED_MODEL_EVALUATION, kind,
                                str(tmp_path)], **env)
    assert code == 0, output
    result = json.loads(output.split("RESULT ", 1)[1].splitlines()[0])
    pairs = {"the runner's final evaluation": (result["runner"], result["runner saved"]),
             **{name: (result["under strategy"][name], reference)
                for name, reference in result["one device"].items()}}
    differ = [f"{name}: {under} under the strategy, {saved} saved"
              for name, (under, saved) in pairs.items()
              if not isinstance(under, dict) or under != pytest.approx(saved, rel=1e-5)]
    if result["spread"]:
        differ.append(f"the replicas' non-trainable variables differ by {result['spread']}")
    assert not differ, "\n".join(differ)


# --- Validation of the cluster settings --------------------------------------


@pytest.mark.parametrize("tf_config, message", [
    (None, "TF_CONFIG unset or empty"),
    ("{cluster: 1}", "TF_CONFIG is not valid JSON"),
    ('{"cluster": {"worker": ["a:1"]}}', "needs a 'cluster' and a 'task'"),
    ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}',
     "'host:port'"),
    ('{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker", '
     '"index": 0}}', "parameter-server"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
     r"with i in \[0, 2\)"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "evaluator", "index": 0}}',
     "'evaluator'"),
])
def test_malformed_tf_config_is_named(tf_config, message, monkeypatch):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ValueError, match=message) as info:
        distribute.parse_tf_config()
    if tf_config:
        assert repr(tf_config)[1:-1][:20] in str(info.value)


def test_tf_config_with_a_chief_counts_it_as_worker_0():
    spec = distribute.parse_tf_config(json.dumps(
        {"cluster": {"chief": ["c:1"], "worker": ["w:2", "w:3"]},
         "task": {"type": "worker", "index": 1}}))
    assert (spec.num_workers, spec.index, spec.addresses) == (3, 2, ["c:1", "w:2", "w:3"])


@pytest.mark.parametrize("env, message", [
    ({"KERAS_DISTRIBUTION_PROCESS_ID": "1"},
     "needs KERAS_DISTRIBUTION_JOB_ADDRESSES, KERAS_DISTRIBUTION_NUM_PROCESSES"),
    ({"KERAS_DISTRIBUTION_JOB_ADDRESSES": "h:1", "KERAS_DISTRIBUTION_NUM_PROCESSES": "two",
      "KERAS_DISTRIBUTION_PROCESS_ID": "0"}, "KERAS_DISTRIBUTION_NUM_PROCESSES='two'"),
    ({"KERAS_DISTRIBUTION_JOB_ADDRESSES": "h:1", "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
      "KERAS_DISTRIBUTION_PROCESS_ID": "2"}, r"PROCESS_ID in \[0,"),
    ({"KERAS_DISTRIBUTION_JOB_ADDRESSES": "h:1,h:2,h:3",
      "KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": "0"},
     "lists 3 addresses but KERAS_DISTRIBUTION_NUM_PROCESSES=2"),
    ({"KERAS_DISTRIBUTION_JOB_ADDRESSES": "h", "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
      "KERAS_DISTRIBUTION_PROCESS_ID": "0"}, "'host:port'"),
])
def test_malformed_jax_cluster_variables_are_named(env, message):
    with pytest.raises(ValueError, match=message):
        distribute.jax_cluster_from_env(env)


def test_jax_cluster_variables():
    # None set: jax.distributed detects the cluster (Cloud TPU, SLURM, MPI).
    assert distribute.jax_cluster_from_env({}) is None
    spec = distribute.jax_cluster_from_env({
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1:1234,10.0.0.2:2345",
        "KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": "1"})
    assert (spec.num_workers, spec.index, spec.addresses[0]) == (2, 1, "10.0.0.1:1234")


@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_bad_timeouts_are_named(value, monkeypatch):
    monkeypatch.setenv(distribute.ENV_PEER_TIMEOUT, value)
    with pytest.raises(ValueError, match=f"KERAS_PREACT_PEER_TIMEOUT='{value}'"):
        distribute.peer_timeout_seconds()


@needs_multi_process
def test_port_in_use_is_named(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        address = f"127.0.0.1:{port}"
        monkeypatch.setenv("TF_CONFIG", json.dumps(
            {"cluster": {"worker": [address, "127.0.0.1:1"]},
             "task": {"type": "worker", "index": 0}}))
        for k, v in launch.worker_environments(2, "jax", [port, 1], {})[0].items():
            if k.startswith("KERAS_DISTRIBUTION"):
                monkeypatch.setenv(k, v)
        # Raised before the runtime is configured, so safe in this process.
        with pytest.raises(ValueError, match=f"Port {port} of .*{address}.* already in use"):
            distribute.setup_distribution("multiworker")


@pytest.mark.parametrize("global_batch", [7, 0, -4, 8.0])
def test_global_batch_not_divisible_by_replicas(global_batch):
    setup = DistributionSetup("multiworker", num_replicas=2, num_workers=2, worker_index=1)
    with pytest.raises(ValueError, match=f"multiple of the 2 replicas.*global_batch_size="
                                         f"{re.escape(repr(global_batch))}"):
        setup.per_replica_batch_size(global_batch)
    assert setup.per_replica_batch_size(8) == 4
    assert not setup.is_chief


def test_worker_output_dir_chief_and_others(tmp_path):
    out = tmp_path / "run"
    (out / "backup").mkdir(parents=True)
    (out / "backup" / "training_metadata.json").write_text("{}")
    chief = DistributionSetup("multiworker", 2, num_workers=2, worker_index=0)
    assert chief.worker_output_dir(str(out)) == str(out)
    other = DistributionSetup("multiworker", 2, num_workers=2, worker_index=1)
    path = other.worker_output_dir(str(out), cleanup_at_exit=False)
    assert Path(path) != out and "keras_preact_worker1_" in path
    # A relaunched worker restores the chief's backup.
    assert (Path(path) / "backup" / "training_metadata.json").read_text() == "{}"
    other.cleanup_worker_output_dir(path, str(out))
    assert not Path(path).exists() and out.exists()
    chief.cleanup_worker_output_dir(str(out), str(out))
    assert out.exists()


def test_folders_of_killed_workers_are_removed_by_the_next_one(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"keras_preact_worker1_pid{dead.pid}_abc"
    alive = tmp_path / f"keras_preact_worker1_pid{os.getpid()}_def"
    stale.mkdir()
    alive.mkdir()
    other = DistributionSetup("multiworker", 2, num_workers=2, worker_index=1)
    path = other.worker_output_dir(str(tmp_path / "run"), cleanup_at_exit=False)
    assert not stale.exists() and alive.exists() and Path(path).exists()


# --- Two real workers -----------------------------------------------------------


def _load_weights(path):
    with np.load(path) as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


@pytest.mark.slow
@needs_multi_process
def test_two_workers_shard_batches_and_match_one_process(tmp_path):
    worker = _write_worker(tmp_path)
    wd, doubled = 0.05, 0.1
    code, out = run_command(_launch_command(2, sys.executable, str(worker), "multi",
                                            str(tmp_path), "--weight-decay", str(wd)))
    assert code == 0, out
    code, ref_out = run_command([sys.executable, str(worker), "single", str(tmp_path),
                                 "--weight-decay", str(wd), str(doubled)])
    assert code == 0, ref_out
    results = [json.loads((tmp_path / f"result_multi_{i}.json").read_text()) for i in (0, 1)]
    single = json.loads((tmp_path / "result_single_0.json").read_text())
    assert [(r["worker"], r["num_workers"], r["num_replicas"], r["is_chief"])
            for r in results] == [(0, 2, 2, True), (1, 2, 2, False)]

    # Each worker reads a distinct half of every global batch of the
    # single-process pipeline (same examples, same order).
    for step, global_batch in enumerate(single["shards"]):
        parts = [r["shards"][step] for r in results]
        assert all(len(p) == 4 for p in parts)
        assert not set(parts[0]) & set(parts[1])
        assert sorted(parts[0] + parts[1]) == sorted(global_batch)

    # Same weights on both workers, equal to one process with the same
    # global batches: the gradient and the coupled L2 term are the global
    # batch's, the decay counted once (twice the decay moves the weights by
    # far more than the tolerance).
    w0 = _load_weights(tmp_path / f"weights_multi_{wd}_0.npz")
    w1 = _load_weights(tmp_path / f"weights_multi_{wd}_1.npz")
    ref = _load_weights(tmp_path / f"weights_single_{wd}_0.npz")
    ref_doubled = _load_weights(tmp_path / f"weights_single_{doubled}_0.npz")
    assert len(w0) == len(w1) == len(ref) > 10
    for a, b, r in zip(w0, w1, ref):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-5)
    gap = max(float(np.max(np.abs(a - r))) for a, r in zip(w0, ref))
    gap_doubled = max(float(np.max(np.abs(d - r))) for d, r in zip(ref_doubled, ref))
    assert gap_doubled > 20 * max(gap, 1e-6), (gap, gap_doubled)

    # Metrics over the global batch, the same on both workers.
    runs = [r["runs"][str(wd)] for r in results]
    assert runs[0]["iterations"] == runs[1]["iterations"] == 6
    assert single["runs"][str(wd)]["iterations"] == 6
    for name, values in single["runs"][str(wd)]["history"].items():
        for run in runs:
            np.testing.assert_allclose(run["history"][name], values, rtol=1e-4, atol=1e-5,
                                       err_msg=name)


# --- Faults ---------------------------------------------------------------------


@pytest.mark.slow
@needs_multi_process
@pytest.mark.parametrize("killed", [1, 0])
def test_kill_9_of_a_worker_fails_the_survivor_within_the_peer_timeout(killed, tmp_path):
    """The survivor ends by itself (the launcher's grace is longer than the bound)."""
    worker = _write_worker(tmp_path)
    log_path = tmp_path / "launch.log"
    command = _launch_command(2, sys.executable, str(worker), "multi", str(tmp_path),
                              "--epochs", "1", "--steps-per-epoch", "100000", "--step-log",
                              grace=RUN_TIMEOUT)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            command, env=command_env(KERAS_PREACT_PEER_TIMEOUT=str(PEER_TIMEOUT)), cwd=REPO,
            stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + RUN_TIMEOUT
            pid = None
            while time.monotonic() < deadline and proc.poll() is None:
                text = log_path.read_text()
                found = re.search(rf"^\[worker {killed}\] pid (\d+)", text, re.M)
                if found and re.search(rf"^\[worker {killed}\] step 3$", text, re.M):
                    pid = int(found.group(1))
                    break
                time.sleep(0.1)
            assert pid is not None, log_path.read_text()
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            code = proc.wait(timeout=PEER_TIMEOUT + 60)
            elapsed = time.monotonic() - killed_at
        finally:
            if proc.poll() is None:
                proc.kill()
    out = log_path.read_text()
    survivor = 1 - killed
    assert code == 128 + signal.SIGKILL, out
    assert f"worker {killed} (pid {pid}) failed: killed by signal 9 (SIGKILL)" in out
    assert "sending SIGTERM" not in out, out  # the survivor failed by itself ...
    assert re.search(rf"worker {survivor}: (exit status [1-9]|killed by signal 6)", out), out
    assert elapsed < PEER_TIMEOUT + 20, (elapsed, out)  # ... within the bound


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's cluster join")
def test_a_worker_whose_peers_never_come_fails_within_the_startup_timeout():
    """TensorFlow waits for missing workers without a deadline, holding the GIL."""
    port, missing = launch.free_ports(2)
    tf_config = json.dumps({"cluster": {"worker": [f"127.0.0.1:{missing}",
                                                   f"127.0.0.1:{port}"]},
                            "task": {"type": "worker", "index": 1}})
    code = ("from keras_preact.training import setup_distribution\n"
            "setup_distribution('multiworker')\nprint('joined')")
    start = time.monotonic()
    rc, out = run_command([sys.executable, "-c", code], timeout=180, TF_CONFIG=tf_config,
                          KERAS_PREACT_STARTUP_TIMEOUT="15")
    elapsed = time.monotonic() - start
    assert rc == 1 and "joined" not in out, out
    assert "worker 1 of 2 joining" in out and "giving up after KERAS_PREACT_STARTUP_TIMEOUT=15 s" in out
    assert "Timeout" in out or "did not come up" in out, out
    assert elapsed < 15 + 90, elapsed  # The timeout, plus importing TensorFlow.


# --- The CIFAR example under the launcher ---------------------------------------


@pytest.mark.slow
@needs_multi_process
def test_example_two_workers_chief_writes_and_relaunch_resumes(shared_data, tmp_path):
    """kill -9 of worker 1 mid-epoch, relaunch: both continue from the chief's backup."""
    out, scratch = tmp_path / "run", tmp_path / "tmp"
    scratch.mkdir()
    epochs, steps = 2, 10
    command = _launch_command(
        2, sys.executable, str(REPO / "examples" / "train_cifar100.py"),
        "--distribute", "multiworker", "--depth", "8", "--dataset", "cifar100",
        "--data-source", "npz", "--data-dir", str(shared_data / "cifar100"),
        "--batch-size", "8", "--max-train-examples", "256", "--max-eval-examples", "32",
        "--epochs", str(epochs), "--steps-per-epoch", str(steps), "--resume",
        "--backup-every", "1", "--no-tensorboard", "--verbose", "2",
        "--output-dir", str(out))
    env = command_env(TMPDIR=str(scratch), KERAS_PREACT_PEER_TIMEOUT=str(PEER_TIMEOUT))
    metadata_path = out / "backup" / "training_metadata.json"
    log_path = tmp_path / "first.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            killed_at = wait_for_mid_epoch_backup(proc, metadata_path, RUN_TIMEOUT)
            if killed_at:
                pid = int(re.search(r"^\[launch\] worker 1: pid (\d+)$",
                                    log_path.read_text(), re.M).group(1))
                os.kill(pid, signal.SIGKILL)
            code = proc.wait(timeout=PEER_TIMEOUT + 60)
        finally:
            if proc.poll() is None:
                proc.kill()
    first = log_path.read_text()
    assert killed_at is not None, first
    assert code == 128 + signal.SIGKILL, first
    assert "worker 1 (pid" in first and "killed by signal 9 (SIGKILL)" in first

    code, second = run_command(command, **{"TMPDIR": str(scratch)})
    assert code == 0, second
    # Both workers restore the chief's last backup: same epoch, step and
    # optimizer iterations (one more backup may have landed before the kill).
    lines = [re.search(rf"^\[worker {i}\] (resuming from .*)$", second, re.M) for i in (0, 1)]
    assert all(lines), second
    position = [m.group(1).split(": ", 1)[1] for m in lines]
    assert position[0] == position[1], position
    step = int(position[0].split(", step ")[1].split(" of ")[0])
    assert f"epoch 2 of {epochs}, step {step} of {steps}" in position[0]
    assert killed_at["step"] <= step < steps
    assert position[0].endswith(f"(optimizer iterations {steps + step})")
    for i in (0, 1):
        assert f"[worker {i}] Optimizer iterations: {epochs * steps}" in second

    # Only the chief writes the outputs; worker 1 wrote to a temporary
    # folder, removed when it exited (the killed one's stays behind).
    written = re.search(rf"^\[worker 1\] keras_preact: worker 1 of 2 writes to (\S+) ",
                        second, re.M)
    assert written and written.group(1).startswith(str(scratch)), second
    assert not Path(written.group(1)).exists()
    assert len(list(scratch.glob("keras_preact_worker1_*"))) <= 1
    assert not re.search(rf"^\[worker 1\] .*{re.escape(str(out))}/metrics", second, re.M)
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + epochs, rows
    summary = json.loads((out / "final_metrics.json").read_text())
    assert summary["iterations"] == epochs * steps


@pytest.mark.skipif(BACKEND != "jax", reason="JAX cluster detection")
def test_jax_multiworker_without_a_cluster_is_named():
    code, out = run_command([sys.executable, "-c", (
        "from keras_preact.training import setup_distribution\n"
        "setup_distribution('multiworker')\n")], timeout=120, KERAS_PREACT_STARTUP_TIMEOUT="5")
    assert code != 0
    assert "none of KERAS_DISTRIBUTION_JOB_ADDRESSES" in out, out
    assert "found no cluster to join" in out


# --- ImageNet file lists ----------------------------------------------------------


# Per-example checksums of the first global batches each worker reads from the
# ImageNet folder pipeline (training: file-list shuffle, Inception crops, flips).
IMAGENET_WORKER = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    mode, data_dir, out = sys.argv[1:4]
    import keras
    keras.utils.set_random_seed(0)
    from keras_preact.data.imagenet import imagenet_dataset
    from keras_preact.training import setup_distribution
    setup = setup_distribution("multiworker" if mode == "multi" else "none")
    ds = imagenet_dataset("folder", data_dir, "train", training=True, batch_size=8,
                          image_size=32, seed=0, repeat=True)
    if setup.strategy is not None:
        it = iter(setup.strategy.experimental_distribute_dataset(ds))
        local = lambda v: np.concatenate(
            [np.asarray(p) for p in setup.strategy.experimental_local_results(v)])
    else:
        if setup.distribution is not None:
            ds = setup.distribution.distribute_dataset(ds)
        it = iter(ds)
        local = np.asarray
    steps = []
    for _ in range(3):
        x, y = next(it)
        x = local(x)
        steps.append(np.round(x.reshape(len(x), -1).astype("float64").sum(1), 2).tolist())
    with open(os.path.join(out, f"imagenet_{mode}_{setup.worker_index}.json"), "w") as f:
        json.dump(steps, f)
    """
)


@pytest.mark.slow
@needs_multi_process
def test_two_workers_shard_the_imagenet_file_list(shared_data, tmp_path):
    images = sorted((shared_data / "imagenet_sample").glob("*.JPEG"))[:16]
    if len(images) < 16:
        pytest.skip("imagenet_sample has fewer than 16 images")
    for i, image in enumerate(images):
        folder = tmp_path / "imagenet" / "train" / f"class{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / image.name).symlink_to(image)
    script = tmp_path / "imagenet_worker.py"
    script.write_text(IMAGENET_WORKER)
    args = [str(tmp_path / "imagenet"), str(tmp_path)]
    code, out = run_command(_launch_command(2, sys.executable, str(script), "multi", *args))
    assert code == 0, out
    code, out = run_command([sys.executable, str(script), "single", *args])
    assert code == 0, out
    single = json.loads((tmp_path / "imagenet_single_0.json").read_text())
    workers = [json.loads((tmp_path / f"imagenet_multi_{i}.json").read_text()) for i in (0, 1)]
    for step, global_batch in enumerate(single):
        parts = [w[step] for w in workers]
        assert [len(p) for p in parts] == [4, 4]
        # Distinct examples (checksums of different crops of different files).
        assert not set(parts[0]) & set(parts[1])
        assert sorted(parts[0] + parts[1]) == pytest.approx(sorted(global_batch), abs=0.05)
