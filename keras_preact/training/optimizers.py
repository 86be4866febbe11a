"""`PaperSGD`: the authors' SGD update (Torch7 `optim.sgd`) as a Keras optimizer.

What the authors' code does (the sources, checked):

- KaimingHe/resnet-1k-layers `resnet-pre-act.lua` (the authors' CIFAR
  release, used for ResNet-1001) is built on fb.resnet.torch and trained with
  its `train.lua`.
- facebook/fb.resnet.torch `train.lua` (lines 20-29, 64):
  `optimState = {learningRate = opt.LR, learningRateDecay = 0.0,
  momentum = opt.momentum, nesterov = true, dampening = 0.0,
  weightDecay = opt.weightDecay}`,
  `self.params, self.gradParams = model:getParameters()` (ONE flat vector of
  ALL parameters: conv kernels, BatchNorm gamma and beta, the Linear weight
  and bias) and `optim.sgd(feval, self.params, self.optimState)`.
- Torch7 `optim.sgd` with dampening 0: `dfdx = dfdx + wd * x`;
  `buf = dfdx` on the first step, else `buf = mom * buf + dfdx`;
  Nesterov: `dfdx = dfdx + mom * buf`, else `dfdx = buf`; `x = x - clr * dfdx`.
  This is `torch.optim.SGD(params, lr, momentum, dampening=0,
  weight_decay=wd, nesterov=...)`: the decay is a coupled L2 term on every
  parameter, and the learning rate of the current step multiplies the buffer.
- The paper (He et al. 2016, Sec. 4) states momentum 0.9 and weight decay
  1e-4, without Nesterov; its runs were in Caffe, whose SGD solver folds the
  rate into the momentum history (Keras' form below). The authors' Torch
  release (the code above) sets `nesterov = true` for every depth.
  `PaperSGD` takes the Torch update; `nesterov=False` (the default) is the
  plain momentum the paper states, `nesterov=True` is the Torch release
  exactly.

Keras' own `SGD` differs in two ways: its `weight_decay=` is decoupled
(`w -= lr * wd * w`, AdamW style) and its velocity holds `-lr * g`
(`v = m * v - lr * g; w = w + v`), so after a learning-rate drop it keeps
moving with the old rate for a few steps where Torch does not.
"""

import re

import keras
from keras import ops

from keras_preact import keras_compat
from keras_preact.validation import check_choice
from keras_preact.validation import check_real

_PACKAGE = "keras_preact"

#: Valid values of `PaperSGD(l2_decay_on=...)`.
DECAY_SCOPES = ("all", "kernels")


def _compile_patterns(l2_exclude):
    if l2_exclude is None:
        return []
    patterns = [l2_exclude] if isinstance(l2_exclude, str) else l2_exclude
    patterns = list(patterns) if hasattr(patterns, "__iter__") else None
    if patterns is None or not all(isinstance(p, str) for p in patterns):
        raise ValueError(
            "Expected l2_exclude to be None, a regular expression (str) or a "
            f"sequence of them. Received: l2_exclude={l2_exclude!r}"
        )
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as error:
            raise ValueError(f"Invalid regular expression in l2_exclude: {pattern!r} "
                             f"({error})") from None
    return compiled


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PaperSGD(keras.optimizers.SGD):
    """SGD + momentum with coupled L2 weight decay, exactly Torch7 `optim.sgd`.

    The update of the authors' code (fb.resnet.torch `train.lua` calling
    Torch7 `optim.sgd` with dampening 0; identical to `torch.optim.SGD(...,
    momentum=m, dampening=0, weight_decay=wd, nesterov=...)`), for a variable
    `w` with gradient `g`, current learning rate `lr` and momentum buffer `b`
    (zeros at the start, so the first step gives `b = g'`):

    ```
    g' = g + wd * w          # coupled L2, if w decays (else g' = g)
    b  = m * b + g'
    w  = w - lr * b          # nesterov=False
    w  = w - lr * (g' + m * b)   # nesterov=True
    ```

    With `momentum=0`: `w = w - lr * g'`. `lr` is the rate of the current step
    and multiplies the whole buffer, so a rate drop takes effect at once
    (Keras' `SGD` folds the rate into its velocity instead). A schedule is
    evaluated by Keras at the optimizer's step counter; with
    `gradient_accumulation_steps` that counter counts micro-batches.

    Which variables decay: `l2_decay_on="all"` (default, the authors' code,
    which decays its whole flat parameter vector): every trainable variable,
    i.e. conv and dense kernels, BatchNorm gamma and beta, and biases.
    `l2_decay_on="kernels"`: only variables with `ndim >= 2` (conv and dense
    kernels), a common modern choice that is NOT the authors'. Either way a
    variable whose `path` matches a regular expression in `l2_exclude` does
    not decay. `decayed_variables(model, optimizer)` lists the decayed ones.

    The term is added inside `update_step`, i.e. after loss-scale unscaling
    (mixed float16, `LossScaleOptimizer`), after the cross-replica gradient
    sum (tf.distribute; keras.distribution on JAX computes the global
    gradient), and after gradient accumulation (on the averaged gradient, at
    the real update): decay is applied once per update, not once per replica
    or micro-batch. The buffer is the optimizer's "momentum" variable, saved
    with the model and by `BackupAndRestore`.

    Sources: facebook/fb.resnet.torch `train.lua` lines 20-29 and 64;
    KaimingHe/resnet-1k-layers `resnet-pre-act.lua` (built on
    fb.resnet.torch); Torch7 `optim/sgd.lua`; He et al. 2016 (momentum 0.9,
    weight decay 1e-4).

    Args:
        learning_rate: float > 0 or `LearningRateSchedule`. Defaults to 0.1.
        momentum: float in [0, 1]. Defaults to 0.9.
        nesterov: bool. Defaults to False (the plain momentum the paper
            states); True reproduces the authors' Torch release
            (fb.resnet.torch `train.lua`, used for ResNet-164 and -1001).
            Needs `momentum > 0`.
        l2_weight_decay: float >= 0. Coupled L2 coefficient `wd`.
            Defaults to 1e-4.
        l2_decay_on: "all" (every trainable variable, the authors' code) or
            "kernels" (variables with ndim >= 2 only). Defaults to "all".
        l2_exclude: None, a str or a sequence of str. Regular expressions
            searched in `variable.path`; matching variables never decay.
            Defaults to None.
        name: str. Defaults to "PaperSGD".
        **kwargs: passed to `keras.optimizers.SGD` (e.g. `clipnorm`,
            `gradient_accumulation_steps`, `loss_scale_factor`). Not
            `weight_decay` (Keras' decoupled decay, a different update).

    Raises:
        ValueError: for a momentum outside [0, 1], a negative or non-numeric
            `l2_weight_decay`, `nesterov` without momentum or not a bool, an
            `l2_decay_on` other than "all" / "kernels", an invalid
            `l2_exclude` pattern, or a `weight_decay` / `l2_min_ndim` argument.

    Example:

    >>> opt = PaperSGD(learning_rate=0.1)
    >>> (opt.momentum, opt.l2_weight_decay, opt.l2_decay_on)
    (0.9, 0.0001, 'all')
    """

    def __init__(self, learning_rate=0.1, momentum=0.9, nesterov=False, l2_weight_decay=1e-4,
                 l2_decay_on="all", l2_exclude=None, name="PaperSGD", **kwargs):
        if "l2_min_ndim" in kwargs:
            raise ValueError(
                "PaperSGD no longer takes l2_min_ndim: use l2_decay_on='kernels' "
                "(ndim >= 2) or 'all' (the authors' code). "
                f"Received: l2_min_ndim={kwargs['l2_min_ndim']!r}"
            )
        if kwargs.get("weight_decay") is not None:
            raise ValueError(
                "PaperSGD applies coupled L2 decay through l2_weight_decay; Keras' "
                "decoupled weight_decay is a different update and is not supported. "
                f"Received: weight_decay={kwargs['weight_decay']!r}"
            )
        kwargs.pop("weight_decay", None)
        momentum = check_real("momentum", momentum, 0.0, 1.0)
        l2_weight_decay = check_real("l2_weight_decay", l2_weight_decay, 0.0)
        if not isinstance(nesterov, bool):
            raise ValueError(f"Expected nesterov to be a bool. Received: nesterov={nesterov!r}")
        if nesterov and momentum == 0.0:
            raise ValueError("Nesterov momentum needs momentum > 0. "
                             f"Received: momentum={momentum!r}, nesterov=True")
        check_choice("l2_decay_on", l2_decay_on, DECAY_SCOPES)
        patterns = _compile_patterns(l2_exclude)
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov,
                         name=name, **kwargs)
        self.l2_weight_decay = l2_weight_decay
        self.l2_decay_on = l2_decay_on
        self.l2_exclude = [p.pattern for p in patterns]
        self._l2_patterns = patterns
        self._l2_mask = []

    def uses_l2(self, variable):
        """Whether `variable` (a Keras variable) receives the coupled L2 term.

        Args:
            variable: a `keras.Variable` (anything with `shape` and `path`).

        Returns:
            bool.
        """
        if self.l2_weight_decay == 0.0:
            return False
        if self.l2_decay_on == "kernels" and len(variable.shape) < 2:
            return False
        path = getattr(variable, "path", None) or getattr(variable, "name", "")
        return not any(p.search(path) for p in self._l2_patterns)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        # Indexed like the optimizer's own slots (`keras_compat.variable_index`),
        # so `update_step` finds it on any backend, tf.distribute included.
        self._l2_mask = [self.uses_l2(v) for v in variables]

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        """`update_step` of every variable; on torch in multi-tensor calls.

        torch runs the update eagerly at every step, so a Python call and
        about eight small kernels per variable add up over a deep network's
        hundreds of variables. `torch._foreach_*` calls do the same
        arithmetic, in the same order, for all of them at once, as Keras'
        own torch `SGD` does. A subclass that overrides `update_step` keeps
        it called per variable.
        """
        if (keras.backend.backend() == "torch"
                and type(self).update_step is PaperSGD.update_step):
            return self._torch_update_step(grads, trainable_variables, learning_rate)
        return keras_compat.backend_update_step(
            super(), grads, trainable_variables, learning_rate
        )

    def _torch_update_step(self, grads, trainable_variables, learning_rate):
        import torch

        with torch.no_grad():
            values = [variable.value for variable in trainable_variables]
            grads = [ops.cast(g, v.dtype) for g, v in zip(grads, values)]
            indices = [keras_compat.variable_index(self, v) for v in trainable_variables]
            decayed = [i for i, index in enumerate(indices) if self._l2_mask[index]]
            if decayed:
                terms = torch._foreach_mul([values[i] for i in decayed], self.l2_weight_decay)
                for i, term in zip(decayed, terms):
                    grads[i] = grads[i] + term
            rate = ops.cast(learning_rate, values[0].dtype)
            if self.momentum == 0.0:
                torch._foreach_sub_(values, torch._foreach_mul(grads, rate))
                return
            buffers = [self.momentums[index].value for index in indices]
            torch._foreach_mul_(buffers, self.momentum)
            torch._foreach_add_(buffers, grads)
            step = buffers
            if self.nesterov:
                step = torch._foreach_add(grads, torch._foreach_mul(buffers, self.momentum))
            torch._foreach_sub_(values, torch._foreach_mul(step, rate))

    def update_step(self, gradient, variable, learning_rate):
        """One Torch7 `optim.sgd` step of `variable` (see the class docstring)."""
        index = keras_compat.variable_index(self, variable)
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self._l2_mask[index]:
            decay = ops.cast(self.l2_weight_decay, variable.dtype)
            gradient = ops.add(gradient, ops.multiply(decay, variable))
        if self.momentum == 0.0:
            self.assign_sub(variable, ops.multiply(learning_rate, gradient))
            return
        momentum = ops.cast(self.momentum, variable.dtype)
        buffer = self.momentums[index]
        new_buffer = ops.add(ops.multiply(momentum, buffer), gradient)
        self.assign(buffer, new_buffer)
        step = (ops.add(gradient, ops.multiply(momentum, new_buffer)) if self.nesterov
                else new_buffer)
        self.assign_sub(variable, ops.multiply(learning_rate, step))

    def get_config(self):
        config = super().get_config()
        config.pop("weight_decay", None)
        return {**config, "l2_weight_decay": self.l2_weight_decay,
                "l2_decay_on": self.l2_decay_on, "l2_exclude": list(self.l2_exclude) or None}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if "l2_min_ndim" in config:
            # Files saved before l2_decay_on existed decayed ndim >= l2_min_ndim.
            min_ndim = config.pop("l2_min_ndim")
            config.setdefault("l2_decay_on", "kernels" if min_ndim >= 2 else "all")
        return super().from_config(config, custom_objects=custom_objects)


def decayed_variables(model, optimizer):
    """Paths of `model`'s trainable variables that `optimizer` decays.

    Args:
        model: a `keras.Model`.
        optimizer: a `PaperSGD` (or a `LossScaleOptimizer` wrapping one).

    Returns:
        list of str, in `model.trainable_variables` order.

    Raises:
        ValueError: if `optimizer` is not a `PaperSGD`.
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if not isinstance(inner, PaperSGD):
        raise ValueError(f"Expected a PaperSGD optimizer. Received: optimizer={optimizer!r}")
    return [v.path for v in model.trainable_variables if inner.uses_l2(v)]
