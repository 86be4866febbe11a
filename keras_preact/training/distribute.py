"""Multi-device training setup for each Keras backend.

| kind           | TensorFlow                          | JAX                              | torch |
|----------------|-------------------------------------|----------------------------------|-------|
| "none"         | default strategy                    | single device                    | yes   |
| "mirrored"     | tf.distribute.MirroredStrategy      | -> use "data_parallel"           | no    |
| "multiworker"  | MultiWorkerMirroredStrategy (TF_CONFIG) | keras.distribution.initialize() + DataParallel | no |
| "tpu"          | TPUStrategy (TPUClusterResolver)    | DataParallel over TPU devices    | no    |
| "data_parallel"| -> use "mirrored"                   | keras.distribution.DataParallel  | no    |

Build AND compile the model inside `setup.scope()`. The batch size given to
the input pipeline is the GLOBAL batch (per-replica batch x replicas).
"""

import contextlib

import keras

VALID_DISTRIBUTE = ("none", "mirrored", "multiworker", "tpu", "data_parallel")


class DistributionSetup:
    """What `setup_distribution` returns.

    Attributes:
        kind: str. The requested kind.
        num_replicas: int. Number of model replicas (devices) in sync.
        strategy: `tf.distribute.Strategy` or None (TensorFlow only).
        distribution: `keras.distribution.Distribution` or None (JAX only).
    """

    def __init__(self, kind, num_replicas=1, strategy=None, distribution=None):
        self.kind = kind
        self.num_replicas = num_replicas
        self.strategy = strategy
        self.distribution = distribution

    def scope(self):
        """Context manager to build and compile the model in."""
        if self.strategy is not None:
            return self.strategy.scope()
        return contextlib.nullcontext()

    def __repr__(self):
        return (
            f"DistributionSetup(kind={self.kind!r}, num_replicas={self.num_replicas})"
        )


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
        A `DistributionSetup`.

    Example:

    >>> setup = setup_distribution("none")
    >>> setup.num_replicas
    1
    """
    if kind not in VALID_DISTRIBUTE:
        raise ValueError(
            f"Unknown distribute={kind!r}. Expected one of {VALID_DISTRIBUTE}."
        )
    if kind == "none":
        return DistributionSetup(kind)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if kind == "mirrored":
            strategy = tf.distribute.MirroredStrategy()
        elif kind == "multiworker":
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        elif kind == "tpu":
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            strategy = tf.distribute.TPUStrategy(resolver)
        else:
            raise _unsupported(
                kind, backend, 'On TensorFlow use distribute="mirrored".'
            )
        return DistributionSetup(
            kind, num_replicas=strategy.num_replicas_in_sync, strategy=strategy
        )
    if backend == "jax":
        if kind == "mirrored":
            raise _unsupported(kind, backend, 'On JAX use distribute="data_parallel".')
        if kind == "multiworker":
            keras.distribution.initialize()
        device_type = "tpu" if kind == "tpu" else None
        devices = keras.distribution.list_devices(device_type)
        distribution = keras.distribution.DataParallel(devices=devices)
        keras.distribution.set_distribution(distribution)
        return DistributionSetup(
            kind, num_replicas=len(devices), distribution=distribution
        )
    raise _unsupported(
        kind,
        backend,
        "Keras has no multi-device fit() for torch; run with "
        'distribute="none", or use KERAS_BACKEND=jax (data_parallel) or '
        "tensorflow (mirrored/multiworker/tpu).",
    )


def scale_batch_size(per_replica_batch_size, setup):
    """Global batch size = per-replica batch size x number of replicas."""
    return per_replica_batch_size * setup.num_replicas
