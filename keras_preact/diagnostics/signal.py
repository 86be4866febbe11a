"""Forward and backward signal propagation through the residual units.

The paper's argument (He et al. 2016, Sec. 3) is that with identity
shortcuts and nothing after the addition, `x_L = x_l + sum F(...)`, so the
signal reaches every unit directly in both directions. This module measures
it, unit by unit, for one batch:

- forward signal: the standard deviation of each residual unit's OUTPUT;
- backward signal: the L2 norm of the gradient of the (batch-mean) loss with
  respect to each residual unit's INPUT.

The gradients are taken with each backend's own machinery
(`tf.GradientTape`, `jax.value_and_grad`, `torch.autograd.grad`). The model
is re-run unit by unit (stem -> unit 1 -> ... -> unit L -> head, every piece a
sub-graph of the functional model, sharing its weights), and a zero tensor
`delta_l` is added to the input of every unit; the gradient with respect to
`delta_l` (at 0) is the gradient with respect to that unit's input, on every
backend, without having to differentiate with respect to intermediate tensors.

BatchNorm mode: `training=True` by default, because the paper's argument is
about the signal the optimizer sees while training (batch statistics). At
initialization in inference mode every BN is close to the identity (moving
mean 0, moving variance 1), which measures something else; pass
`training=False` for it. The run is side-effect free either way: it happens
inside a `keras.StatelessScope`, so BN moving statistics (and dropout seed
state) are NOT updated.
"""

import dataclasses

import keras
import numpy as np
from keras import ops

from keras_preact import keras_compat
from keras_preact.models.features import residual_units
from keras_preact.models.outputs import outputs_logits


@dataclasses.dataclass(frozen=True)
class SignalPropagation:
    """Per-unit signal measured on one batch.

    Attributes:
        unit_names: tuple of str. The residual units, in order.
        forward_std: numpy float64 array, shape `(num_units,)`. Standard
            deviation of each unit's output (over batch, space, channels).
        backward_norm: numpy float64 array, shape `(num_units,)`. L2 norm
            of d(loss)/d(unit input), over the whole batch tensor, where the
            loss is the batch MEAN of the cross-entropy (as in training).
        loss: float. The loss value on the batch.
        training: bool. BatchNorm/dropout mode used.
        backend: str. Keras backend that computed it.
    """

    unit_names: tuple
    forward_std: np.ndarray
    backward_norm: np.ndarray
    loss: float
    training: bool
    backend: str

    @property
    def num_units(self):
        return len(self.unit_names)

    def as_dict(self):
        """JSON-serializable dict (lists instead of arrays)."""
        return {
            "unit_names": list(self.unit_names),
            "forward_std": [float(v) for v in self.forward_std],
            "backward_norm": [float(v) for v in self.backward_norm],
            "loss": float(self.loss),
            "training": bool(self.training),
            "backend": self.backend,
        }

    @classmethod
    def from_dict(cls, data):
        """Inverse of `as_dict`."""
        return cls(
            unit_names=tuple(data["unit_names"]),
            forward_std=np.asarray(data["forward_std"], dtype=np.float64),
            backward_norm=np.asarray(data["backward_norm"], dtype=np.float64),
            loss=float(data["loss"]),
            training=bool(data["training"]),
            backend=str(data["backend"]),
        )


# The model's `ResidualUnit` layers in forward order, found by their class
# (not their names); a `ValueError` for a model without any.
find_residual_units = residual_units


def _single(tensors, what):
    if isinstance(tensors, (list, tuple)):
        if len(tensors) != 1:
            raise ValueError(
                f"Expected a single {what} tensor. Received {len(tensors)}."
            )
        return tensors[0]
    return tensors


class SignalProbe:
    """Measures the forward/backward signal of a model on batches.

    Builds the stem / unit / head sub-graphs of `model` once; call the probe
    on as many batches (and at as many points in training) as needed. The
    sub-graphs share the model's weights, so the probe follows training.

    Args:
        model: a functional `keras.Model` with one input and one output
            whose residual units are single layers applied in sequence
            (such as `keras_preact.PreActResNet`).
        units: list of layers or None. The units to measure. Defaults to
            `find_residual_units(model)`.
        from_logits: bool or None. Whether the model outputs logits.
            Defaults to None: read from the graph
            (`keras_preact.models.outputs.classifier_output`).
        jit_compile: bool. JAX only: compile the forward+backward pass
            once per probe (`jax.jit`, the model's variables passed in as
            arguments) instead of differentiating op by op. Worth it when
            the same probe is called many times (the callback does);
            TensorFlow and PyTorch always run eagerly. Defaults to False.

    Example:

    >>> probe = SignalProbe(model)
    >>> result = probe(x, y)                      # doctest: +SKIP
    >>> result.backward_norm.shape == (len(probe.units),)  # doctest: +SKIP
    True
    """

    def __init__(self, model, units=None, from_logits=None, jit_compile=False):
        if not isinstance(model, keras.Model):
            raise ValueError(
                f"Expected a keras.Model. Received: model={type(model).__name__}"
            )
        units = list(residual_units(model) if units is None else units)
        if not units:
            raise ValueError("Expected at least one unit. Received: units=[]")
        self.model = model
        self.units = units
        self.unit_names = tuple(u.name for u in units)
        model_input = _single(model.inputs, "model input")
        model_output = _single(model.outputs, "model output")
        for unit in units:
            if keras_compat.call_count(unit) != 1:
                raise ValueError(
                    f"Unit {unit.name!r} is called {keras_compat.call_count(unit)} "
                    "times in the graph; expected exactly once."
                )
        first_in = _single(units[0].input, f"{units[0].name} input")
        self._stem = None if first_in is model_input else keras.Model(
            model_input, first_in, name="signal_probe_stem"
        )
        self._gaps = []
        for prev, nxt in zip(units[:-1], units[1:]):
            out = _single(prev.output, f"{prev.name} output")
            nxt_in = _single(nxt.input, f"{nxt.name} input")
            self._gaps.append(
                None if nxt_in is out else keras.Model(out, nxt_in, name=f"gap_{nxt.name}")
            )
        last_out = _single(units[-1].output, f"{units[-1].name} output")
        self._head = keras.Model(last_out, model_output, name="signal_probe_head")
        self._input_shapes = [
            tuple(_single(u.input, "unit input").shape[1:]) for u in units
        ]
        self.from_logits = outputs_logits(model, from_logits)
        self.jit_compile = bool(jit_compile)
        self._jax_fns = {}

    # --- the graph, unit by unit (backend-agnostic, keras.ops) ---
    def _loss(self, y, outputs):
        outputs = ops.cast(outputs, "float32")
        if len(y.shape) == len(outputs.shape):
            per_example = keras.losses.categorical_crossentropy(
                ops.cast(y, "float32"), outputs, from_logits=self.from_logits
            )
        else:
            per_example = keras.losses.sparse_categorical_crossentropy(
                y, outputs, from_logits=self.from_logits
            )
        return ops.mean(per_example)

    def _forward(self, x, y, deltas, training):
        h = x if self._stem is None else self._stem(x, training=training)
        stds = []
        for k, unit in enumerate(self.units):
            h = h + ops.cast(deltas[k], h.dtype)
            h = unit(h, training=training)
            stds.append(ops.std(ops.cast(h, "float32")))
            if k < len(self._gaps) and self._gaps[k] is not None:
                h = self._gaps[k](h, training=training)
        return self._loss(y, self._head(h, training=training)), stds

    # --- one gradient function per backend ---
    def _run_tensorflow(self, x, y, training):
        import tensorflow as tf

        n = x.shape[0]
        deltas = [tf.zeros((n,) + s, dtype="float32") for s in self._input_shapes]
        with keras.StatelessScope(), tf.GradientTape() as tape:
            tape.watch(deltas)
            loss, stds = self._forward(x, y, deltas, training)
        grads = tape.gradient(loss, deltas)
        return loss, stds, grads

    def _run_jax(self, x, y, training):
        import jax
        import jax.numpy as jnp

        n = x.shape[0]
        deltas = [jnp.zeros((n,) + s, dtype="float32") for s in self._input_shapes]
        if not self.jit_compile:

            def eager_loss(ds):
                with keras.StatelessScope():
                    return self._forward(x, y, ds, training)

            (loss, stds), grads = jax.value_and_grad(eager_loss, has_aux=True)(deltas)
            return loss, stds, grads
        # One jitted program per probe and BN mode (jax re-traces on new
        # shapes by itself); the model's variables are arguments mapped in
        # through the StatelessScope, so the compiled program follows
        # training instead of baking in the weights.
        if training not in self._jax_fns:
            variables = list(self.model.variables)

            def loss_fn(ds, values, x_, y_):
                with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                    return self._forward(x_, y_, ds, training)

            grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
            self._jax_fns[training] = (variables, jax.jit(grad_fn))
        variables, fn = self._jax_fns[training]
        values = [v.value for v in variables]
        (loss, stds), grads = fn(deltas, values, x, y)
        return loss, stds, grads

    def _run_torch(self, x, y, training):
        import torch

        n = x.shape[0]
        deltas = [
            torch.zeros((n,) + s, dtype=torch.float32, device=x.device, requires_grad=True)
            for s in self._input_shapes
        ]
        with keras.StatelessScope():
            loss, stds = self._forward(x, y, deltas, training)
        grads = torch.autograd.grad(loss, deltas)
        return loss.detach(), [s.detach() for s in stds], grads

    def __call__(self, x, y, training=True):
        """Measures the signal on the batch `(x, y)`.

        Args:
            x: array-like, a batch of model inputs (e.g. normalized images).
            y: array-like. Integer labels `(batch,)` or one-hot
                `(batch, classes)`.
            training: bool. BatchNorm/dropout mode. Defaults to True (batch
                statistics, as during training); no state is updated.

        Returns:
            A `SignalPropagation`.
        """
        if not isinstance(training, bool):
            raise ValueError(f"Expected training to be a bool. Received: training={training!r}")
        x = ops.convert_to_tensor(np.asarray(x), dtype="float32")
        y = ops.convert_to_tensor(np.asarray(y))
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"x and y have different batch sizes: {x.shape[0]} vs {y.shape[0]}."
            )
        backend = keras.backend.backend()
        runners = {
            "tensorflow": self._run_tensorflow,
            "jax": self._run_jax,
            "torch": self._run_torch,
        }
        if backend not in runners:
            raise ValueError(
                f"Unsupported Keras backend {backend!r}. Expected one of {sorted(runners)}."
            )
        loss, stds, grads = runners[backend](x, y, training)
        forward = np.array([float(ops.convert_to_numpy(s)) for s in stds], dtype=np.float64)
        backward = np.array(
            [np.linalg.norm(np.asarray(ops.convert_to_numpy(g), dtype=np.float64)) for g in grads],
            dtype=np.float64,
        )
        return SignalPropagation(
            unit_names=self.unit_names,
            forward_std=forward,
            backward_norm=backward,
            loss=float(ops.convert_to_numpy(loss)),
            training=training,
            backend=backend,
        )


def signal_propagation(
    model, x, y, training=True, units=None, from_logits=None, jit_compile=False
):
    """Forward (output std) and backward (input-gradient norm) signal per unit.

    Args:
        model: a functional `keras.Model` (e.g. `keras_preact.PreActResNet`)
            with residual units applied in sequence.
        x: array-like. A batch of inputs.
        y: array-like. Integer labels, or one-hot labels.
        training: bool. BatchNorm/dropout mode. Defaults to True (batch
            statistics, the training-time signal); no state is updated.
        units: list of layers or None. Defaults to the residual units
            (`find_residual_units`).
        from_logits: bool or None. Defaults to None: read from the graph,
            as `SignalProbe` does.
        jit_compile: bool. JAX only: see `SignalProbe`. Defaults to False.

    Returns:
        A `SignalPropagation` with one finite value per unit in
        `forward_std` and `backward_norm`.

    Example:

    >>> model = keras_preact.PreActResNet(20, classes=10,
    ...                                   classifier_activation=None)
    >>> s = signal_propagation(model, x, y)         # doctest: +SKIP
    >>> s.backward_norm[0] / s.backward_norm[-1]    # doctest: +SKIP
    """
    probe = SignalProbe(model, units=units, from_logits=from_logits, jit_compile=jit_compile)
    return probe(x, y, training=training)
