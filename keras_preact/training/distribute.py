"""Multi-device training setup for each Keras backend.

| kind           | TensorFlow                          | JAX                              | torch |
|----------------|-------------------------------------|----------------------------------|-------|
| "none"         | default strategy                    | single device                    | yes   |
| "mirrored"     | tf.distribute.MirroredStrategy      | -> use "data_parallel"           | no    |
| "multiworker"  | MultiWorkerMirroredStrategy (TF_CONFIG)| jax.distributed + DataParallel   | no    |
| "tpu"          | TPUStrategy (TPUClusterResolver)    | DataParallel over TPU devices    | no    |
| "data_parallel"| -> use "mirrored"                   | keras.distribution.DataParallel  | no    |

Build AND compile the model inside `setup.scope()`. The batch size given to
the input pipeline is the GLOBAL batch (per-replica batch x replicas).

Multi-worker ("multiworker"): one process per worker, started by
`python -m keras_preact.launch` on one machine or by a scheduler on several
(docs/distributed.md). Each worker reads its place in the cluster from the
environment:

- TensorFlow: `TF_CONFIG` (`{"cluster": {"worker": ["host:port", ...]},
  "task": {"type": "worker", "index": i}}`; a `"chief"` job counts as
  worker 0), read by `tf.distribute.MultiWorkerMirroredStrategy`.
- JAX: `KERAS_DISTRIBUTION_JOB_ADDRESSES` (the coordinator's "host:port",
  or every worker's, comma-separated, the first being the coordinator),
  `KERAS_DISTRIBUTION_NUM_PROCESSES` and `KERAS_DISTRIBUTION_PROCESS_ID`,
  as `keras.distribution.initialize` reads them; `jax.distributed` is
  started with these values and the timeouts below, with gloo collectives
  for CPU devices. With none of the three set, `jax.distributed` detects
  the cluster itself (Cloud TPU pod slices, SLURM, Open MPI).
  `DataParallel` then spans every device of every process.

The setup must come first in the program: TensorFlow's collective ops and
`jax.distributed` must be configured before the runtime runs anything.

Timeouts (seconds, from the environment, so a scheduler can set them):

- `KERAS_PREACT_PEER_TIMEOUT` (default 60): a worker that is lost (killed,
  crashed, its host down) makes the others fail within about this time
  instead of waiting forever. TensorFlow: MultiWorkerMirroredStrategy's peer
  health check runs every `T/4` s with a `T/4` s deadline per ping (3 pings
  before it aborts the collectives); JAX: the coordination service's
  heartbeat timeout (`jax.distributed.initialize(heartbeat_timeout_seconds=T)`).
- `KERAS_PREACT_STARTUP_TIMEOUT` (default 300): every worker must have
  joined within this time after the first one started.

On every worker the setup checks that all workers agree on the number of
workers (an all-gather of each one's view); a disagreement is a
`ValueError` naming what each worker received.
"""

import atexit
import contextlib
import dataclasses
import faulthandler
import glob
import json
import os
import shutil
import socket
import sys
import tempfile
import threading

import keras

from keras_preact import keras_compat
from keras_preact.validation import check_choice

ENV_PEER_TIMEOUT = "KERAS_PREACT_PEER_TIMEOUT"
ENV_STARTUP_TIMEOUT = "KERAS_PREACT_STARTUP_TIMEOUT"
DEFAULT_PEER_TIMEOUT_SECONDS = 60
DEFAULT_STARTUP_TIMEOUT_SECONDS = 300
ENV_JOB_ADDRESSES = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
ENV_NUM_PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"
ENV_PROCESS_ID = "KERAS_DISTRIBUTION_PROCESS_ID"
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "0.0.0.0", "::1", "[::1]")

VALID_DISTRIBUTE = ("none", "mirrored", "multiworker", "tpu", "data_parallel")


@dataclasses.dataclass(frozen=True)
class ClusterSpec:
    """One worker's view of a multi-worker cluster (from the environment).

    Attributes:
        num_workers: int >= 1. Number of worker processes.
        index: int in [0, num_workers). This worker's index (0 = chief).
        addresses: list of "host:port" str. TensorFlow: every worker's;
            JAX: the coordinator's first (possibly the only one).
        source: str. Where it was read ("TF_CONFIG" or the JAX variables).
    """

    num_workers: int
    index: int
    addresses: list
    source: str


@dataclasses.dataclass(repr=False)
class DistributionSetup:
    """What `setup_distribution` returns.

    Attributes:
        kind: str. The requested kind.
        num_replicas: int. Number of model replicas (devices) in sync, over
            all workers.
        strategy: `tf.distribute.Strategy` or None (TensorFlow only).
        distribution: `keras.distribution.Distribution` or None (JAX only).
        num_workers: int. Worker processes (1 unless "multiworker").
        worker_index: int. This process' index (0 = the chief).
    """

    kind: str
    num_replicas: int = 1
    strategy: object = None
    distribution: object = None
    num_workers: int = 1
    worker_index: int = 0

    def scope(self):
        """Context manager to build and compile the model in.

        TensorFlow: the strategy's scope, in which every non-trainable
        floating-point variable (layer state such as batch normalization's
        moving statistics) is created with `aggregation=MEAN`: each
        replica's update is averaged over the replicas and written to all,
        so they keep one value, the one saved (with Keras' `NONE`, each
        replica averages its own batches). The forward pass is unchanged.
        """
        if self.strategy is None:
            return contextlib.nullcontext()
        return _strategy_scope(self.strategy)

    @property
    def needs_static_batches(self):
        """True when every batch must have the full global batch size.

        Multi-process JAX: Keras splits each tf.data batch between the
        processes with `rebatch`, which needs a batch size known in the
        dataset's `element_spec`; build finite (evaluation) pipelines with
        `drop_remainder=True` then (the last `N mod global_batch` examples
        are not evaluated). In one process, a last batch of any size is
        evaluated on either engine (`setup_distribution`).
        """
        return self.distribution is not None and self.num_workers > 1

    @property
    def is_chief(self):
        """True on the worker that writes outputs (index 0; always when single)."""
        return self.worker_index == 0

    def per_replica_batch_size(self, global_batch_size):
        """The batch each replica computes on for a GLOBAL batch.

        Raises:
            ValueError: `global_batch_size` is not a positive multiple of
                `num_replicas`.
        """
        if (isinstance(global_batch_size, bool) or not isinstance(global_batch_size, int)
                or global_batch_size <= 0 or global_batch_size % self.num_replicas):
            raise ValueError(
                f"The global batch size must be a positive multiple of the "
                f"{self.num_replicas} replicas ({self.num_workers} worker(s)) so "
                f"every replica gets the same batch. Received: "
                f"global_batch_size={global_batch_size!r}"
            )
        return global_batch_size // self.num_replicas

    def worker_output_dir(self, output_dir, cleanup_at_exit=True):
        """Where this worker writes: `output_dir` on the chief, else a temp dir.

        As the TensorFlow multi-worker Keras guide prescribes, every worker
        runs the same callbacks, but only the chief writes to the real
        output folder; the others write to a fresh temporary folder
        (`keras_preact_worker<i>_pid<pid>_*` under the system temp dir), to
        be removed with `cleanup_worker_output_dir`; folders left by workers
        that died (`kill -9`) are removed when the next worker starts. A backup already in
        `output_dir/backup` (a relaunch) is copied there, so every worker
        restores the chief's backup (several hosts: `output_dir` must be on
        a filesystem every worker can read).

        Args:
            output_dir: str. The run's output folder.
            cleanup_at_exit: bool. Remove the temporary folder when the
                process exits (`atexit`). Defaults to True.

        Returns:
            str. The folder this worker writes to.
        """
        if self.is_chief:
            return output_dir
        _remove_folders_of_dead_workers()
        path = tempfile.mkdtemp(
            prefix=f"keras_preact_worker{self.worker_index}_pid{os.getpid()}_")
        backup = os.path.join(output_dir, "backup")
        if os.path.isdir(backup):
            shutil.copytree(backup, os.path.join(path, "backup"), dirs_exist_ok=True)
        if cleanup_at_exit:
            atexit.register(self.cleanup_worker_output_dir, path, output_dir)
        print(f"keras_preact: worker {self.worker_index} of {self.num_workers} writes to "
              f"{path} (removed at exit); the chief (worker 0) writes to {output_dir}",
              flush=True)
        return path

    def cleanup_worker_output_dir(self, path, output_dir):
        """Removes a non-chief worker's temporary folder (no-op on the chief)."""
        if not self.is_chief and os.path.abspath(path) != os.path.abspath(output_dir):
            shutil.rmtree(path, ignore_errors=True)

    def __repr__(self):
        workers = (f", num_workers={self.num_workers}, worker_index={self.worker_index}"
                   if self.num_workers > 1 else "")
        return f"DistributionSetup(kind={self.kind!r}, num_replicas={self.num_replicas}{workers})"


@contextlib.contextmanager
def _strategy_scope(strategy):
    import tensorflow as tf

    with strategy.scope(), tf.variable_creator_scope(_replica_mean_state):
        yield


def _replica_mean_state(next_creator, **kwargs):
    """A `tf.variable_creator_scope` creator: replica-averaged layer state."""
    import tensorflow as tf

    dtype = kwargs.get("dtype")
    if (not kwargs.get("trainable", True) and dtype is not None
            and tf.as_dtype(dtype).is_floating
            and kwargs.get("aggregation") in (None, tf.VariableAggregation.NONE)
            and kwargs.get("synchronization") != tf.VariableSynchronization.ON_READ):
        kwargs["aggregation"] = tf.VariableAggregation.MEAN
    return next_creator(**kwargs)


def _remove_folders_of_dead_workers():
    """Removes temp folders of non-chief workers whose process is gone."""
    pattern = os.path.join(tempfile.gettempdir(), "keras_preact_worker*_pid*_*")
    for folder in glob.glob(pattern):
        try:
            pid = int(os.path.basename(folder).split("_pid")[1].split("_")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (ValueError, IndexError, PermissionError):
            continue  # Not ours to judge: another user's, or another name.


def _timeout_from_env(name, default):
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    if not value.strip().isdigit() or int(value) <= 0:
        raise ValueError(f"Expected {name} to be a whole number of seconds > 0. "
                         f"Received: {name}={value!r}")
    return int(value)


def peer_timeout_seconds():
    """Seconds within which a lost worker makes the others fail (see module doc)."""
    return _timeout_from_env(ENV_PEER_TIMEOUT, DEFAULT_PEER_TIMEOUT_SECONDS)


def startup_timeout_seconds():
    """Seconds every worker has to join the cluster (see module doc)."""
    return _timeout_from_env(ENV_STARTUP_TIMEOUT, DEFAULT_STARTUP_TIMEOUT_SECONDS)


def _split_address(address, what):
    host, sep, port = str(address).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"Expected {what} to be 'host:port' with a port in 1..65535. "
                         f"Received: {address!r}")
    return host, int(port)


def _check_port_free(address, what):
    """Raises a ValueError when a local `address` has its port taken."""
    host, port = _split_address(address, what)
    if host not in _LOCAL_HOSTS and host != socket.gethostname():
        return
    probe = socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET)
    try:
        probe.bind((host.strip("[]") if host != "localhost" else "127.0.0.1", port))
    except OSError as error:
        raise ValueError(
            f"Port {port} of {what}={address!r} is already in use on this machine "
            f"({error.strerror}); another program or a previous run still holds it. "
            "Pick a free port (python -m keras_preact.launch picks free ports)."
        ) from None
    finally:
        probe.close()


def parse_tf_config(value=None):
    """Parses and checks a `TF_CONFIG` for MultiWorkerMirroredStrategy.

    Args:
        value: str or None. The JSON text; defaults to `$TF_CONFIG`.

    Returns:
        `ClusterSpec`; with a `"chief"` job, the chief is worker 0 and the
        `"worker"` tasks follow.

    Raises:
        ValueError: `TF_CONFIG` unset, not JSON, without a `cluster` that
            lists "host:port" workers, or with a `task` whose type is not in
            the cluster or whose index is out of range. The message quotes
            what was received.
    """
    if value is None:
        value = os.environ.get("TF_CONFIG")
    example = ('e.g. {"cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]}, '
               '"task": {"type": "worker", "index": 0}}')
    if not value:
        raise ValueError("distribute='multiworker' on TensorFlow needs TF_CONFIG in the "
                         f"environment, {example}. Received: TF_CONFIG unset or empty. "
                         "python -m keras_preact.launch sets it.")
    try:
        config = json.loads(value)
    except ValueError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}), {example}. "
                         f"Received: TF_CONFIG={value!r}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ValueError(f"TF_CONFIG needs a 'cluster' and a 'task' object, {example}. "
                         f"Received: TF_CONFIG={value!r}")
    jobs = {}
    for job in ("chief", "worker"):
        addresses = cluster.get(job, [])
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            raise ValueError(f"TF_CONFIG cluster.{job} must be a list of 'host:port' "
                             f"strings. Received: TF_CONFIG={value!r}")
        for a in addresses:
            try:
                _split_address(a, f"an address in TF_CONFIG cluster.{job}")
            except ValueError as error:
                raise ValueError(f"{error} in TF_CONFIG={value!r}") from None
        jobs[job] = addresses
    extra = sorted(set(cluster) - {"chief", "worker"})
    if extra or len(jobs["chief"]) > 1 or not jobs["chief"] + jobs["worker"]:
        raise ValueError(
            "TF_CONFIG cluster must have 'worker' tasks (and at most one 'chief') "
            f"for MultiWorkerMirroredStrategy; other jobs ({extra}) are for "
            f"parameter-server training. Received: TF_CONFIG={value!r}")
    task_type, index = task.get("type"), task.get("index")
    if (task_type not in ("chief", "worker") or isinstance(index, bool)
            or not isinstance(index, int) or not 0 <= index < len(jobs[task_type])):
        raise ValueError(
            f"TF_CONFIG task must be {{'type': 'chief'|'worker', 'index': i}} with i "
            f"in [0, {len(jobs.get(task_type, []) or [])}) for its job in the "
            f"cluster. Received: task={task!r} in TF_CONFIG={value!r}")
    addresses = jobs["chief"] + jobs["worker"]
    offset = len(jobs["chief"]) if task_type == "worker" else 0
    return ClusterSpec(len(addresses), offset + index, addresses, "TF_CONFIG")


def jax_cluster_from_env(env=None):
    """Reads and checks the JAX multi-process variables (see module doc).

    Args:
        env: mapping or None. Defaults to `os.environ`.

    Returns:
        `ClusterSpec` (addresses: the coordinator first), or None when none
        of the three variables is set (then `jax.distributed` detects the
        cluster itself: Cloud TPU pods, SLURM, Open MPI).

    Raises:
        ValueError: some but not all variables are set, one is malformed, the
            process id is not in [0, num_processes), or the address list and
            the process count disagree. The message names the variable and
            its value.
    """
    env = os.environ if env is None else env
    received = {k: env.get(k) for k in (ENV_JOB_ADDRESSES, ENV_NUM_PROCESSES, ENV_PROCESS_ID)}
    missing = [k for k, v in received.items() if not v]
    if len(missing) == len(received):
        return None
    if missing:
        raise ValueError(
            f"distribute='multiworker' on JAX needs {', '.join(missing)} in the "
            f"environment (python -m keras_preact.launch sets them). Received: {received}")
    addresses = [a.strip() for a in received[ENV_JOB_ADDRESSES].split(",")]
    for a in addresses:
        _split_address(a, f"an address in {ENV_JOB_ADDRESSES}")
    numbers = {}
    for name in (ENV_NUM_PROCESSES, ENV_PROCESS_ID):
        try:
            numbers[name] = int(received[name])
        except ValueError:
            raise ValueError(f"Expected {name} to be an integer. Received: "
                             f"{name}={received[name]!r}") from None
    count, index = numbers[ENV_NUM_PROCESSES], numbers[ENV_PROCESS_ID]
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"Expected {ENV_NUM_PROCESSES} >= 1 and {ENV_PROCESS_ID} in "
                         f"[0, {ENV_NUM_PROCESSES}). Received: {received}")
    if len(addresses) > 1 and len(addresses) != count:
        raise ValueError(f"{ENV_JOB_ADDRESSES} lists {len(addresses)} addresses but "
                         f"{ENV_NUM_PROCESSES}={count}. Received: {received}")
    return ClusterSpec(count, index, addresses, "KERAS_DISTRIBUTION_* variables")


def _tf_multiworker_strategy(tf):
    """MultiWorkerMirroredStrategy from a checked TF_CONFIG, with timeouts."""
    from tensorflow.python.distribute import collective_all_reduce_strategy as cars

    cluster = parse_tf_config()
    _check_port_free(cluster.addresses[cluster.index],
                     f"TF_CONFIG worker {cluster.index}")
    peer = peer_timeout_seconds()
    # TensorFlow's peer health check (private class attributes, the knobs
    # TensorFlow's own multi-worker tests set): ping every peer each
    # `peer/4` s with a `peer/4` s deadline, 3 tries, then abort collectives.
    extended = cars.CollectiveAllReduceExtended
    extended._enable_check_health = True
    extended._check_health_interval = max(1, peer // 4)
    extended._check_health_timeout = max(1, peer // 4)
    extended._check_health_initial_timeout = startup_timeout_seconds()
    keras_compat.fix_tf_multiworker_fit()
    return tf.distribute.MultiWorkerMirroredStrategy()


def _jax_multiworker_initialize():
    """Starts jax.distributed from the checked environment; returns the ClusterSpec."""
    import jax

    cluster = jax_cluster_from_env()
    # gloo: the CPU client's cross-process collectives (used when the
    # devices are CPUs; GPUs/TPUs use NCCL/ICI).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if cluster is None:
        try:
            jax.distributed.initialize(
                initialization_timeout=startup_timeout_seconds(),
                heartbeat_timeout_seconds=peer_timeout_seconds(),
            )
        except (RuntimeError, ValueError) as error:
            raise ValueError(
                "distribute='multiworker' on JAX: none of "
                f"{ENV_JOB_ADDRESSES}, {ENV_NUM_PROCESSES}, {ENV_PROCESS_ID} is set "
                "and jax.distributed found no cluster to join (it detects Cloud TPU "
                f"pods, SLURM and Open MPI jobs): {error}. Set the three variables "
                "(python -m keras_preact.launch does)."
            ) from error
        cluster = ClusterSpec(jax.process_count(), jax.process_index(), [],
                              "jax.distributed cluster detection")
    else:
        if cluster.index == 0:
            _check_port_free(cluster.addresses[0], ENV_JOB_ADDRESSES)
        _jax_initialize_with(jax, cluster)
    # Same seed on every process when none was set (keras.distribution.initialize).
    keras_compat.jax_initialize_rng()
    return cluster


def _jax_initialize_with(jax, cluster):
    try:
        jax.distributed.initialize(
            coordinator_address=cluster.addresses[0],
            num_processes=cluster.num_workers,
            process_id=cluster.index,
            initialization_timeout=startup_timeout_seconds(),
            heartbeat_timeout_seconds=peer_timeout_seconds(),
        )
    except RuntimeError as error:
        raise RuntimeError(
            f"jax.distributed.initialize failed for process {cluster.index} of "
            f"{cluster.num_workers} (coordinator {cluster.addresses[0]}): {error}. "
            f"Check that every worker got the same {ENV_NUM_PROCESSES} and "
            f"{ENV_JOB_ADDRESSES} and a distinct {ENV_PROCESS_ID}, and that all "
            f"started within {ENV_STARTUP_TIMEOUT}={startup_timeout_seconds()} s."
        ) from error


@contextlib.contextmanager
def _startup_watchdog(cluster):
    """Ends the process when the cluster is not up within the startup timeout.

    TensorFlow waits for missing workers inside its C++ runtime with no
    deadline of its own and without returning to Python, so neither an
    exception nor SIGTERM gets through: a daemon timer prints why and exits.
    When the runtime holds the GIL (TensorFlow 2.21 joining a cluster does),
    that timer cannot run either; `faulthandler`'s C watchdog then prints
    "Timeout" and the stacks and exits with status 1.
    """
    timeout = startup_timeout_seconds()
    print(f"keras_preact: worker {cluster.index} of {cluster.num_workers} joining "
          f"{cluster.addresses}; giving up after {ENV_STARTUP_TIMEOUT}={timeout} s",
          file=sys.stderr, flush=True)

    def give_up():
        sys.stderr.write(
            f"keras_preact: worker {cluster.index} of {cluster.num_workers}: the "
            f"cluster {cluster.addresses} (from {cluster.source}) did not come up "
            f"within {ENV_STARTUP_TIMEOUT}={timeout} s: a worker was not started, "
            "an address is wrong, or a port is blocked. Exiting.\n")
        sys.stderr.flush()
        os._exit(1)

    timer = threading.Timer(timeout, give_up)
    timer.daemon = True
    timer.start()
    faulthandler.dump_traceback_later(timeout, exit=True)
    try:
        yield
    finally:
        timer.cancel()
        faulthandler.cancel_dump_traceback_later()


def _check_cluster_agrees(setup, cluster):
    """All-gathers each worker's (num_workers, index); ValueError on disagreement."""
    import numpy as np

    mine = np.array([cluster.num_workers, cluster.index], dtype="int32")
    if setup.strategy is not None:
        import tensorflow as tf

        def gather():
            ctx = tf.distribute.get_replica_context()
            return ctx.all_gather(tf.constant(mine)[None], axis=0)

        try:
            result = setup.strategy.run(gather)
            views = setup.strategy.experimental_local_results(result)[0].numpy()
        except tf.errors.OpError as error:
            raise ValueError(
                "The workers could not agree on the cluster: this worker (index "
                f"{cluster.index}) read {cluster.num_workers} workers "
                f"{cluster.addresses} from TF_CONFIG; every worker must get the "
                "same cluster and a distinct task index. TensorFlow said: "
                f"{error.message.splitlines()[0]}"
            ) from error
    else:
        from jax.experimental import multihost_utils

        views = np.asarray(multihost_utils.process_allgather(mine))
    views = views.reshape(-1, 2)
    counts = sorted({int(v[0]) for v in views})
    indexes = sorted(int(v[1]) for v in views)
    if counts != [cluster.num_workers] or indexes != list(range(len(views))):
        raise ValueError(
            "The workers disagree on the cluster: each worker's (number of workers, "
            f"own index) is {[tuple(int(x) for x in v) for v in views]} (read from "
            f"{cluster.source}); every worker must get the same worker count and a "
            "distinct index.")


def _unsupported(kind, backend, hint):
    return ValueError(
        f"distribute={kind!r} is not available on the {backend} backend. {hint} "
        f"Expected one of {VALID_DISTRIBUTE} as supported per backend "
        "(see keras_preact.training.distribute)."
    )


def setup_distribution(kind="none", tpu=None):
    """Creates the distribution strategy for the active backend.

    Args:
        kind: str. One of "none", "mirrored", "multiworker", "tpu",
            "data_parallel". Defaults to "none".
        tpu: str or None. TPU name/address for `TPUClusterResolver`
            (TensorFlow). Defaults to None (the local / Colab TPU).

    Returns:
        A `DistributionSetup` (for "multiworker": `num_workers`,
        `worker_index`, `is_chief` set from the cluster).

    Raises:
        ValueError: an unknown `kind` or one the backend lacks (torch has
            only "none"); for "multiworker" (see the module doc): a malformed
            `TF_CONFIG` or JAX variables, this worker's port (TensorFlow) or
            the coordinator's (JAX process 0) already in use, workers that
            disagree on the number of workers, or (JAX) no variables and no
            cluster that `jax.distributed` detects. Each message quotes what
            was received.
        RuntimeError: `jax.distributed.initialize` failed (e.g. not every
            worker joined within `KERAS_PREACT_STARTUP_TIMEOUT`).

    Example:

    >>> setup = setup_distribution("none")
    >>> setup.num_replicas
    1
    """
    check_choice("distribute", kind, VALID_DISTRIBUTE)
    if kind == "none":
        return DistributionSetup(kind)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _tensorflow_setup(kind, tpu)
    if backend == "jax":
        return _jax_setup(kind)
    raise _unsupported(kind, backend, "Keras has no multi-device fit() for torch; run with "
                       'distribute="none", or use KERAS_BACKEND=jax (data_parallel) or '
                       "tensorflow (mirrored/multiworker/tpu).")


def _tensorflow_setup(kind, tpu):
    import tensorflow as tf

    keras_compat.fix_tf_empty_replica_conv()
    if kind == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    elif kind == "multiworker":
        cluster = parse_tf_config()
        with _startup_watchdog(cluster):
            strategy = _tf_multiworker_strategy(tf)
            setup = DistributionSetup(kind, strategy.num_replicas_in_sync, strategy=strategy,
                                      num_workers=cluster.num_workers,
                                      worker_index=cluster.index)
            _check_cluster_agrees(setup, cluster)
        return setup
    elif kind == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        strategy = tf.distribute.TPUStrategy(resolver)
    else:
        raise _unsupported(kind, "tensorflow", 'On TensorFlow use distribute="mirrored".')
    return DistributionSetup(kind, strategy.num_replicas_in_sync, strategy=strategy)


def _jax_setup(kind):
    if kind == "mirrored":
        raise _unsupported(kind, "jax", 'On JAX use distribute="data_parallel".')
    cluster = _jax_multiworker_initialize() if kind == "multiworker" else None
    devices = keras.distribution.list_devices("tpu" if kind == "tpu" else None)
    distribution = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(distribution)
    if cluster is None:
        keras_compat.fix_jax_uneven_batches()
        return DistributionSetup(kind, len(devices), distribution=distribution)
    setup = DistributionSetup(kind, len(devices), distribution=distribution,
                              num_workers=cluster.num_workers, worker_index=cluster.index)
    _check_cluster_agrees(setup, cluster)
    return setup
