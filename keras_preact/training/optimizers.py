"""SGD with the paper's coupled L2 weight decay on kernels only.

He et al. (and the Torch code they build on) train with SGD, momentum 0.9 and
weight decay 1e-4 applied as a coupled L2 penalty: `grad += wd * w` before the
momentum update, so the decay goes through momentum. Keras' own
`weight_decay=` argument is *decoupled* (`w -= lr * wd * w`, AdamW style),
which is a different update, hence `PaperSGD`.

Which variables decay: a trainable variable gets the L2 term when it has at
least `l2_min_ndim` (2) dimensions, i.e. conv and dense kernels (4-D / 2-D);
BatchNorm gamma/beta and biases (1-D) do not. Variables whose `path` matches
one of the regular expressions in `l2_exclude` never decay.

The term is added inside `update_step`, i.e. after gradient unscaling (mixed
precision / `LossScaleOptimizer`), after the all-reduce across replicas
(tf.distribute) and after gradient accumulation, and before momentum, on all
three backends.
"""

import re

import keras
from keras import ops

_PACKAGE = "keras_preact"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PaperSGD(keras.optimizers.SGD):
    """SGD + momentum with coupled L2 weight decay on kernels only.

    Update for a decayed variable `w` with gradient `g` (Keras' SGD form):
    `g' = g + l2_weight_decay * w; v = momentum * v - lr * g'; w = w + v`
    (Nesterov: `w = w + momentum * v - lr * g'`). Non-decayed variables
    (fewer than `l2_min_ndim` dims, or `path` matching `l2_exclude`) use
    `g' = g`.

    Note: Keras' SGD folds the learning rate into the velocity, Torch's
    multiplies the buffer by the current rate; they coincide while the rate is
    constant and differ only in the few steps after a rate drop.

    Args:
        learning_rate: float or `LearningRateSchedule`. Defaults to 0.1.
        momentum: float. Defaults to 0.9.
        nesterov: bool. Defaults to False (the paper; the authors' Torch
            release for ResNet-1001 used True).
        l2_weight_decay: float >= 0. Coupled L2 coefficient. Defaults to 1e-4.
        l2_min_ndim: int. Variables with at least this many dimensions decay.
            Defaults to 2 (conv and dense kernels).
        l2_exclude: sequence of str or None. Regular expressions searched in
            `variable.path`; matching variables never decay.
        **kwargs: passed to `keras.optimizers.SGD` (e.g. `clipnorm`,
            `gradient_accumulation_steps`, `name`).

    Example:

    >>> opt = PaperSGD(learning_rate=0.1)
    >>> opt.l2_weight_decay
    0.0001
    """

    def __init__(
        self,
        learning_rate=0.1,
        momentum=0.9,
        nesterov=False,
        l2_weight_decay=1e-4,
        l2_min_ndim=2,
        l2_exclude=None,
        name="PaperSGD",
        **kwargs,
    ):
        if not isinstance(l2_weight_decay, (int, float)) or l2_weight_decay < 0:
            raise ValueError(
                "Expected l2_weight_decay to be a float >= 0. "
                f"Received: l2_weight_decay={l2_weight_decay!r}"
            )
        if not isinstance(l2_min_ndim, int) or l2_min_ndim < 0:
            raise ValueError(
                "Expected l2_min_ndim to be an int >= 0. "
                f"Received: l2_min_ndim={l2_min_ndim!r}"
            )
        if isinstance(l2_exclude, str):
            l2_exclude = [l2_exclude]
        super().__init__(
            learning_rate=learning_rate,
            momentum=float(momentum),
            nesterov=nesterov,
            name=name,
            **kwargs,
        )
        self.l2_weight_decay = float(l2_weight_decay)
        self.l2_min_ndim = l2_min_ndim
        self.l2_exclude = list(l2_exclude) if l2_exclude else []
        self._l2_patterns = [re.compile(p) for p in self.l2_exclude]
        self._l2_mask = []

    def uses_l2(self, variable):
        """Whether `variable` (a Keras variable) receives the L2 term."""
        if self.l2_weight_decay == 0.0:
            return False
        if len(variable.shape) < self.l2_min_ndim:
            return False
        path = getattr(variable, "path", None) or getattr(variable, "name", "")
        return not any(p.search(path) for p in self._l2_patterns)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        # Indexed like the optimizer's own slots (`_get_variable_index`), so
        # `update_step` can look the decision up on any backend, including
        # the per-device tf.Variables that tf.distribute hands over.
        self._l2_mask = [self.uses_l2(v) for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        if self._l2_mask and self._l2_mask[self._get_variable_index(variable)]:
            gradient = ops.add(
                gradient,
                ops.multiply(
                    ops.cast(variable, gradient.dtype),
                    ops.cast(self.l2_weight_decay, gradient.dtype),
                ),
            )
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "l2_weight_decay": self.l2_weight_decay,
                "l2_min_ndim": self.l2_min_ndim,
                "l2_exclude": list(self.l2_exclude) or None,
            }
        )
        return config


def decayed_variables(model, optimizer):
    """Paths of `model`'s trainable variables that `optimizer` decays.

    Args:
        model: a `keras.Model`.
        optimizer: a `PaperSGD`.

    Returns:
        list of str, in `model.trainable_variables` order.
    """
    return [v.path for v in model.trainable_variables if optimizer.uses_l2(v)]
