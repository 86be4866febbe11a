"""`compile_for_paper`: loss, optimizer and top-1 / top-5 metrics in one call."""

import keras

from keras_preact.models.outputs import outputs_logits
from keras_preact.training.losses import CheckedSparseCategoricalCrossentropy
from keras_preact.training.optimizers import PaperSGD


def _num_outputs(model):
    try:
        return int(model.outputs[0].shape[-1])
    except (AttributeError, IndexError, TypeError, ValueError):
        return None


def accuracy_metrics(one_hot=False, top_k=5):
    """Top-1 and top-k accuracy metrics named "top1" and f"top{k}".

    Args:
        one_hot: bool. Labels are one-hot / soft (mixup, cutmix) instead of
            int class ids. Defaults to False.
        top_k: int. k of the second metric; 0 or None for top-1 only.
            Defaults to 5.

    Returns:
        list of `keras.metrics.Metric`.
    """
    if one_hot:
        top1, topk = keras.metrics.CategoricalAccuracy, keras.metrics.TopKCategoricalAccuracy
    else:
        top1, topk = (keras.metrics.SparseCategoricalAccuracy,
                      keras.metrics.SparseTopKCategoricalAccuracy)
    return [top1(name="top1")] + ([topk(k=top_k, name=f"top{top_k}")] if top_k else [])


def compile_for_paper(model, learning_rate=0.1, *, optimizer=None, momentum=0.9,
                      nesterov=False, weight_decay=1e-4, weight_decay_on="all",
                      one_hot=False, label_smoothing=0.0, from_logits=None, top_k=5,
                      jit_compile="auto", steps_per_execution=1):
    """Compiles `model` with the paper's training setup.

    SGD, momentum 0.9, coupled L2 weight decay 1e-4 on every trainable
    variable, as the authors' Torch code (`PaperSGD`: Torch7 `optim.sgd`),
    cross-entropy, top-1 and top-5 accuracy ("top1", "top5" in the logs).
    Class-id labels outside the model's classes raise an error
    (`CheckedSparseCategoricalCrossentropy`) instead of training on a wrong
    loss.
    Under a "mixed_float16" policy, Keras wraps the optimizer in a
    `LossScaleOptimizer`.

    Args:
        model: `keras.Model`.
        learning_rate: float or `LearningRateSchedule` (e.g.
            `PaperCIFARSchedule.for_run(...)`). Defaults to 0.1.
        optimizer: `keras.optimizers.Optimizer` or None. Overrides the
            `PaperSGD` built from the arguments below.
        momentum: float. Defaults to 0.9.
        nesterov: bool. Nesterov momentum: True reproduces the authors'
            Torch release exactly (`train.lua` sets it for every depth);
            the paper states plain momentum. Defaults to False.
        weight_decay: float >= 0. Coupled L2 coefficient
            (`PaperSGD(l2_weight_decay=...)`). Defaults to 1e-4.
        weight_decay_on: "all" (every trainable variable: kernels,
            BatchNorm gamma/beta, biases; the authors' code) or "kernels"
            (conv/dense kernels only, not the authors'). Defaults to "all".
        one_hot: bool. One-hot / soft labels (mixup, cutmix):
            `CategoricalCrossentropy` instead of the sparse one.
            Defaults to False.
        label_smoothing: float. Only with `one_hot=True`. Defaults to 0.
        from_logits: bool or None. None: read from the model's graph
            (`keras_preact.models.outputs.classifier_output`: probabilities
            after a softmax, logits after a linear classifier, through
            nested models and `Sequential` wrappers). Defaults to None.
        top_k: int. Defaults to 5. Left out when the model has fewer
            than `top_k` outputs.
        jit_compile: bool or "auto". Defaults to "auto".
        steps_per_execution: int. Defaults to 1.

    Returns:
        `model`, compiled.

    Raises:
        ValueError: `label_smoothing` without `one_hot=True`, or
            `from_logits=None` for a model whose output the graph does not
            tell (a sigmoid, a custom layer, a subclassed model).

    Example:

    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(10, activation="softmax")])
    >>> model = compile_for_paper(model)
    """
    if label_smoothing and not one_hot:
        raise ValueError(
            "label_smoothing needs one_hot=True (sparse labels cannot be smoothed). "
            f"Received: label_smoothing={label_smoothing!r}, one_hot={one_hot!r}"
        )
    from_logits = outputs_logits(model, from_logits)
    classes = _num_outputs(model)
    if top_k and classes is not None and top_k > classes:
        # Top-k over fewer than k classes is always 1 (and fails on torch).
        top_k = None
    if optimizer is None:
        optimizer = PaperSGD(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov,
                             l2_weight_decay=weight_decay, l2_decay_on=weight_decay_on)
    if one_hot:
        loss = keras.losses.CategoricalCrossentropy(from_logits=from_logits,
                                                    label_smoothing=label_smoothing)
    else:
        loss = CheckedSparseCategoricalCrossentropy(from_logits=from_logits)
    model.compile(optimizer=optimizer, loss=loss,
                  metrics=accuracy_metrics(one_hot=one_hot, top_k=top_k),
                  jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    return model
