"""Every private Keras API keras_preact uses, in one place (Keras 3.15).

Used only where Keras has no public mechanism that does the job;
`tests/test_keras_compat.py` fails when a Keras upgrade moves one of
`PRIVATE_APIS` or `PRIVATE_ATTRIBUTES`.

- `variable_index`: `Optimizer._get_variable_index`, a variable's slot index
  in `update_step`, as Keras' own optimizers find it (tf.distribute hands
  over per-device `tf.Variable`s that neither identity nor `path` matches).
- `backend_update_step`: `Optimizer._backend_update_step`, the hook where
  an optimizer updates all its variables at once (Keras' torch optimizers
  put multi-tensor kernels there, TensorFlow's the tf.distribute merge
  call); `PaperSGD` overrides it on torch and calls it elsewhere.
- `fix_tf_multiworker_fit`: keras-team/keras#20585, see its docstring.
- `producer` and `call_inputs`: walking a functional graph backwards (the
  layer that made a tensor, the inputs a layer was called on), which
  `keras.Model` does with `_keras_history` and `_inbound_nodes`; Keras has
  no public graph walk. `call_count`: how often a layer is called in graphs.
- `fix_tf_empty_replica_conv` and `fix_jax_uneven_batches`: a last batch
  that does not split evenly over the replicas, see their docstrings.
- `jax_initialize_rng`: one global seed on every JAX process when none was
  set, as `keras.distribution.initialize` does (which cannot be used: it
  starts `jax.distributed` without timeouts).
"""

import types

#: (module, attribute path) of every private Keras API used here.
PRIVATE_APIS = (
    ("keras.optimizers", "Optimizer._get_variable_index"),
    ("keras.optimizers", "Optimizer._backend_update_step"),
    ("keras.src.backend.tensorflow.trainer", "TensorFlowTrainer._maybe_symbolic_build"),
    ("keras.src.backend.tensorflow.trainer", "TensorFlowTrainer._symbolic_build"),
    ("keras.src.backend.tensorflow.trainer", "reduce_per_replica"),
    ("keras.src.backend.tensorflow.trainer", "_collective_all_reduce_multi_worker"),
    ("keras.src.backend.jax.distribution_lib", "initialize_rng"),
    ("keras.src.backend.jax.distribution_lib", "distribute_data_input"),
    ("keras.src.backend.tensorflow.nn", "conv"),
)
#: Private attributes of Keras objects: symbolic tensors and layers.
PRIVATE_ATTRIBUTES = ("KerasTensor._keras_history", "Layer._inbound_nodes")


def producer(tensor):
    """The layer (or operation) whose call produced the symbolic `tensor`."""
    return tensor._keras_history.operation


def call_count(layer):
    """How many times `layer` was called on symbolic tensors."""
    return len(getattr(layer, "_inbound_nodes", None) or [])


def call_inputs(layer):
    """The input tensors of `layer`'s one call, or `[]` unless called once."""
    nodes = getattr(layer, "_inbound_nodes", None) or []
    return list(nodes[0].input_tensors) if len(nodes) == 1 else []


def variable_index(optimizer, variable):
    """Index of `variable` in `optimizer`'s slot lists (e.g. `momentums`)."""
    return optimizer._get_variable_index(variable)


def backend_update_step(optimizer, grads, variables, learning_rate):
    """`optimizer._backend_update_step(...)`: pass `super()` to reach the
    parent class's update of all variables."""
    return optimizer._backend_update_step(grads, variables, learning_rate)


def jax_initialize_rng():
    """One global seed on every JAX process (after `jax.distributed` started)."""
    from keras.src.backend.jax import distribution_lib

    distribution_lib.initialize_rng()


def fix_tf_multiworker_fit():
    """Lets Keras 3's TensorFlow `fit`/`evaluate` run under several workers.

    Two bugs of Keras (3.15; keras-team/keras issue #20585: Keras 3 `fit`
    fails under MultiWorkerMirroredStrategy), each fixed by replacing one
    function of `keras.src.backend.tensorflow.trainer`, once, only when a
    multi-worker strategy is created (`setup_distribution`):

    1. `fit` and `evaluate` build the model from a first batch averaged with
       `strategy.reduce("MEAN", batch, axis=None)`, which cannot reduce a
       nested (x, y) batch across workers (`ValueError: Attempt to convert a
       value (PerReplica...)`). Only the batch's shapes and dtypes are used,
       so they are read from the dataset's `element_spec` instead: no batch
       drawn, no collective, and no iterator opened and dropped (which
       would advance a reshuffling pipeline by one pass, so the first epoch
       would not see the order a single-process run sees).
    2. The per-step logs (loss, metrics: one scalar per replica) are averaged
       over replicas with `strategy.reduce("MEAN", v, axis=0)`, which fails
       on a scalar (`Invalid reduction dimension 0 for input with 0
       dimensions`). The cross-replica mean is `axis=None`, the same as
       Keras' single-worker `tf.reduce_mean(local_results, axis=0)`.
    """
    import tensorflow as tf
    from keras import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    cls = tf_trainer.TensorFlowTrainer
    if getattr(cls._maybe_symbolic_build, "_keras_preact_fix", False):
        return
    original = cls._maybe_symbolic_build

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if strategy is None or iterator is None or strategy.extended._num_workers <= 1:
            return original(self, iterator=iterator, data_batch=data_batch)
        spec = iterator.data_adapter.get_tf_dataset().element_spec
        data_batch = tree.map_structure(
            lambda s: types.SimpleNamespace(shape=tuple(s.shape.as_list()),
                                            dtype=s.dtype.name),
            spec,
        )
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    _maybe_symbolic_build._keras_preact_fix = True
    cls._maybe_symbolic_build = _maybe_symbolic_build

    original_reduce = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction == "auto" and not isinstance(strategy, tf.distribute.TPUStrategy):
            reduction = "mean"
        if reduction == "mean" and tf_trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None), values
            )
        return original_reduce(values, strategy, reduction)

    tf_trainer.reduce_per_replica = reduce_per_replica


def fix_tf_empty_replica_conv():
    """Lets a replica that is given no examples run a convolution (TensorFlow).

    `tf.distribute` gives some replicas an empty part of a batch smaller
    than the replica count (Keras counts each replica's examples, so the
    metrics stay exact), but TensorFlow's oneDNN (CPU) convolution answers
    an empty batch with its input's shape, and the next layer fails. Keras'
    TensorFlow `conv` is replaced once (`setup_distribution`): under several
    replicas and a batch size unknown when traced, an empty batch gets the
    empty output of one example's convolution.
    """
    import tensorflow as tf
    from keras.src.backend.tensorflow import nn as tf_nn

    if getattr(tf_nn.conv, "_keras_preact_fix", False):
        return
    original = tf_nn.conv

    def conv(inputs, kernel, *args, **kwargs):
        inputs = tf.convert_to_tensor(inputs)
        if inputs.shape[0] is not None or tf.distribute.get_strategy().num_replicas_in_sync < 2:
            return original(inputs, kernel, *args, **kwargs)

        def on_one_example():
            one = tf.zeros(tf.concat([[1], tf.shape(inputs)[1:]], 0), inputs.dtype)
            return original(one, kernel, *args, **kwargs)[:0]

        return tf.cond(tf.shape(inputs)[0] > 0,
                       lambda: original(inputs, kernel, *args, **kwargs), on_one_example)

    conv._keras_preact_fix = True
    tf_nn.conv = conv


def fix_jax_uneven_batches():
    """Lets a single-process JAX `DataParallel` take a batch the devices cannot split.

    Keras shards every batch over the devices: a last batch of 3 on 2
    devices raises jax's `IndivisibleError` (keras-team/keras#21167). Keras'
    `distribute_data_input` is replaced once (`setup_distribution`, one
    process): such a batch is laid out replicated, every device computes it
    whole and Keras counts it once, as one device would. (Each process of a
    multi-process run holds only its part of a batch.)
    """
    import jax
    from keras.src.backend.jax import distribution_lib as jax_lib

    if getattr(jax_lib.distribute_data_input, "_keras_preact_fix", False):
        return
    original = jax_lib.distribute_data_input

    def distribute_data_input(per_process_batch, layout, batch_dim_name):
        sharding = getattr(layout, "backend_layout", layout)
        try:
            if sharding is not None:
                sharding.shard_shape(per_process_batch.shape)
        except ValueError:
            if jax.process_count() == 1:
                layout = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
        return original(per_process_batch, layout, batch_dim_name)

    distribute_data_input._keras_preact_fix = True
    jax_lib.distribute_data_input = distribute_data_input
