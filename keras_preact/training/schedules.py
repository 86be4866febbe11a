"""Learning-rate schedules of the pre-activation ResNet paper (and one modern one).

All schedules are `keras.optimizers.schedules.LearningRateSchedule` subclasses
written with `keras.ops` only, registered for serialization (they are saved
with a compiled model in a `.keras` file) and evaluated on the optimizer's
iteration counter, so they resume exactly with `fit_resumable`.

- `PaperCIFARSchedule`: He et al. 2016 on CIFAR: lr 0.1 (batch 128), divided
  by 10 at 32k and 48k iterations, training stops at 64k; optional warm-up at
  0.01 for the first 400 iterations. `PaperCIFARSchedule.for_run()` rescales
  every iteration count to another batch size / number of epochs.
- `ImageNetStepSchedule`: lr 0.1 per 256 images, divided by 10 at epochs
  30, 60 (and 90).
- `WarmupCosineDecay`: linear warm-up then cosine decay. NOT the paper's
  recipe; offered for modern, shorter runs.
"""

import inspect
import math

import keras
from keras import ops

from keras_preact.validation import check_int

_PACKAGE = "keras_preact"

# The paper's CIFAR recipe, in iterations at batch 128.
PAPER_CIFAR_BATCH_SIZE = 128
PAPER_CIFAR_LEARNING_RATE = 0.1
PAPER_CIFAR_BOUNDARIES = (32000, 48000)
PAPER_CIFAR_TOTAL_STEPS = 64000
PAPER_CIFAR_WARMUP_STEPS = 400
PAPER_CIFAR_WARMUP_LEARNING_RATE = 0.01
CIFAR_TRAIN_EXAMPLES = 50000

# The paper's ImageNet recipe.
PAPER_IMAGENET_BATCH_SIZE = 256
PAPER_IMAGENET_LEARNING_RATE = 0.1
PAPER_IMAGENET_BOUNDARY_EPOCHS = (30, 60, 90)


def _check_boundaries(boundaries):
    boundaries = [int(b) for b in boundaries]
    if any(b <= 0 for b in boundaries) or boundaries != sorted(set(boundaries)):
        raise ValueError(
            "Expected `boundaries` to be strictly increasing positive step "
            f"counts. Received: boundaries={boundaries!r}"
        )
    return tuple(boundaries)


class _Schedule(keras.optimizers.schedules.LearningRateSchedule):
    """`get_config`: the constructor's arguments, read back (tuples as lists)."""

    def get_config(self):
        names = [n for n in inspect.signature(type(self).__init__).parameters if n != "self"]
        return {n: list(v) if isinstance(v, tuple) else v
                for n, v in ((n, getattr(self, n)) for n in names)}


def _step_decay(step, initial_learning_rate, boundaries, decay_factor):
    """lr = initial * decay_factor ** (number of boundaries <= step)."""
    lr = ops.full_like(step, initial_learning_rate)
    for boundary in boundaries:
        lr = ops.where(ops.greater_equal(step, float(boundary)), lr * decay_factor, lr)
    return lr


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PaperCIFARSchedule(_Schedule):
    """Step schedule of the pre-activation ResNet paper on CIFAR.

    `lr = initial_learning_rate * decay_factor ** k` where `k` is the number
    of `boundaries` already reached (iteration counted from 0). During the
    first `warmup_steps` iterations the rate is `warmup_learning_rate`
    instead. The paper (batch 128): 0.1, divided by 10 at 32k and 48k,
    stop at 64k (~164 epochs); "0.01 to warm up for the first 400
    iterations", which the paper says is not necessary for the pre-activation
    unit, so warm-up is off by default here (`warmup_steps=0`).

    `total_steps` is informational (where the run should stop); the schedule
    keeps the last rate after it.

    Args:
        initial_learning_rate: float. Rate after warm-up. Defaults to 0.1.
        boundaries: sequence of int. Iterations at which the rate is
            multiplied by `decay_factor`. Defaults to (32000, 48000).
        decay_factor: float. Defaults to 0.1.
        warmup_steps: int. Iterations at `warmup_learning_rate` first.
            Defaults to 0 (the paper's 400 is "not necessary").
        warmup_learning_rate: float. Defaults to 0.01.
        total_steps: int or None. Length of the run. Defaults to 64000.

    Example:

    >>> s = PaperCIFARSchedule()
    >>> [round(float(s(i)), 6) for i in (0, 31999, 32000, 48000)]
    [0.1, 0.1, 0.01, 0.001]
    """

    def __init__(self, initial_learning_rate=PAPER_CIFAR_LEARNING_RATE,
                 boundaries=PAPER_CIFAR_BOUNDARIES, decay_factor=0.1, warmup_steps=0,
                 warmup_learning_rate=PAPER_CIFAR_WARMUP_LEARNING_RATE,
                 total_steps=PAPER_CIFAR_TOTAL_STEPS, name="PaperCIFARSchedule"):
        super().__init__()
        self.initial_learning_rate = float(initial_learning_rate)
        self.boundaries = _check_boundaries(boundaries)
        self.decay_factor = float(decay_factor)
        self.warmup_steps = check_int("warmup_steps", warmup_steps, low=0)
        self.warmup_learning_rate = float(warmup_learning_rate)
        self.total_steps = None if total_steps is None else check_int(
            "total_steps", total_steps, low=1)
        self.name = name

    @classmethod
    def for_run(cls, batch_size=PAPER_CIFAR_BATCH_SIZE, epochs=None, steps_per_epoch=None,
                total_steps=None, num_examples=CIFAR_TRAIN_EXAMPLES, scale_learning_rate=True,
                warmup=False, learning_rate=PAPER_CIFAR_LEARNING_RATE):
        """The paper's schedule rescaled to another batch size or run length.

        The length of the run is, by priority: `total_steps`; else
        `epochs * steps_per_epoch`; else `epochs * ceil(num_examples /
        batch_size)`; else the paper's 64k iterations x 128 images expressed
        at `batch_size` (`round(64000 * 128 / batch_size)`). The drops stay at
        the paper's fractions of the run (32k/64k = 1/2, 48k/64k = 3/4) and the
        warm-up at 400/64000 of it (at least 1 step when `warmup=True`).

        Args:
            batch_size: int. Global batch size. Defaults to 128.
            epochs: int or None. Number of epochs.
            steps_per_epoch: int or None. Iterations per epoch.
            total_steps: int or None. Length of the run in iterations.
            num_examples: int. Training-set size used when only `epochs`
                is given. Defaults to 50000 (CIFAR).
            scale_learning_rate: bool. Linear scaling rule: multiply the
                rates by `batch_size / 128`. Defaults to True.
            warmup: bool. Use the paper's warm-up (at `learning_rate / 10`).
                Defaults to False.
            learning_rate: float > 0. Rate at batch 128, before the
                scaling. Defaults to the paper's 0.1.

        Returns:
            A `PaperCIFARSchedule`.

        Example:

        >>> s = PaperCIFARSchedule.for_run(batch_size=256)
        >>> s.boundaries, s.total_steps, s.initial_learning_rate
        ((16000, 24000), 32000, 0.2)
        """
        check_int("batch_size", batch_size, low=1)
        if total_steps is None:
            if epochs is not None:
                check_int("epochs", epochs, low=1)
                if steps_per_epoch is None:
                    check_int("num_examples", num_examples, low=1)
                    steps_per_epoch = math.ceil(num_examples / batch_size)
                check_int("steps_per_epoch", steps_per_epoch, low=1)
                total_steps = epochs * steps_per_epoch
            else:
                paper_images = PAPER_CIFAR_TOTAL_STEPS * PAPER_CIFAR_BATCH_SIZE
                total_steps = max(1, round(paper_images / batch_size))
        check_int("total_steps", total_steps, low=1)
        fraction = total_steps / PAPER_CIFAR_TOTAL_STEPS
        boundaries = []
        for b in PAPER_CIFAR_BOUNDARIES:
            b = max(1, round(b * fraction))
            if boundaries and b <= boundaries[-1]:
                b = boundaries[-1] + 1
            boundaries.append(b)
        warmup_steps = max(1, round(PAPER_CIFAR_WARMUP_STEPS * fraction)) if warmup else 0
        scale = batch_size / PAPER_CIFAR_BATCH_SIZE if scale_learning_rate else 1.0
        warmup_ratio = PAPER_CIFAR_WARMUP_LEARNING_RATE / PAPER_CIFAR_LEARNING_RATE
        return cls(initial_learning_rate=learning_rate * scale, boundaries=tuple(boundaries),
                   warmup_steps=warmup_steps,
                   warmup_learning_rate=learning_rate * scale * warmup_ratio,
                   total_steps=total_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        lr = _step_decay(step, self.initial_learning_rate, self.boundaries, self.decay_factor)
        if self.warmup_steps:
            lr = ops.where(ops.less(step, float(self.warmup_steps)),
                           ops.full_like(step, self.warmup_learning_rate), lr)
        return lr


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ImageNetStepSchedule(_Schedule):
    """Step schedule of the paper on ImageNet, in iterations.

    `lr = base_learning_rate * batch_size / base_batch_size`, divided by
    `1 / decay_factor` (10) at each of `boundary_epochs` (30, 60, 90),
    converted to iterations with `steps_per_epoch`. The paper: batch 256,
    lr 0.1, drops at epochs 30 and 60, no warm-up. An optional linear
    warm-up over `warmup_epochs` (from 0 to the peak; not in the paper) helps
    at very large batch sizes.

    Args:
        steps_per_epoch: int. Iterations per epoch (e.g. ceil(1281167 / batch)).
        batch_size: int. Global batch size. Defaults to 256.
        base_learning_rate: float. Rate per `base_batch_size` images.
            Defaults to 0.1.
        base_batch_size: int. Defaults to 256.
        boundary_epochs: sequence of int. Defaults to (30, 60, 90).
        decay_factor: float. Defaults to 0.1.
        warmup_epochs: int. Defaults to 0 (the paper's recipe).

    Example:

    >>> s = ImageNetStepSchedule(steps_per_epoch=5005, batch_size=256)
    >>> [round(float(s(i)), 6) for i in (0, 150149, 150150, 300300)]
    [0.1, 0.1, 0.01, 0.001]
    """

    def __init__(self, steps_per_epoch, batch_size=PAPER_IMAGENET_BATCH_SIZE,
                 base_learning_rate=PAPER_IMAGENET_LEARNING_RATE,
                 base_batch_size=PAPER_IMAGENET_BATCH_SIZE,
                 boundary_epochs=PAPER_IMAGENET_BOUNDARY_EPOCHS, decay_factor=0.1,
                 warmup_epochs=0, name="ImageNetStepSchedule"):
        super().__init__()
        self.steps_per_epoch = check_int("steps_per_epoch", steps_per_epoch, low=1)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.base_learning_rate = float(base_learning_rate)
        self.base_batch_size = check_int("base_batch_size", base_batch_size, low=1)
        self.boundary_epochs = _check_boundaries(boundary_epochs)
        self.decay_factor = float(decay_factor)
        self.warmup_epochs = check_int("warmup_epochs", warmup_epochs, low=0)
        self.name = name

    @property
    def peak_learning_rate(self):
        return self.base_learning_rate * self.batch_size / self.base_batch_size

    @property
    def boundaries(self):
        """Iterations at which the rate drops."""
        return tuple(e * self.steps_per_epoch for e in self.boundary_epochs)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        lr = _step_decay(step, self.peak_learning_rate, self.boundaries, self.decay_factor)
        if self.warmup_epochs:
            warmup_steps = float(self.warmup_epochs * self.steps_per_epoch)
            ramp = self.peak_learning_rate * (step + 1.0) / warmup_steps
            lr = ops.where(ops.less(step, warmup_steps), ramp, lr)
        return lr


@keras.saving.register_keras_serializable(package=_PACKAGE)
class WarmupCosineDecay(_Schedule):
    """Linear warm-up then cosine decay. NOT the paper's recipe.

    A common modern alternative for short runs: the rate rises linearly from
    `peak_learning_rate / warmup_steps` to `peak_learning_rate` over
    `warmup_steps`, then follows a half cosine down to
    `alpha * peak_learning_rate` at `total_steps`, and stays there.

    Args:
        peak_learning_rate: float. Rate at the end of warm-up.
        total_steps: int. Length of the run in iterations.
        warmup_steps: int. Defaults to 0.
        alpha: float. Final rate as a fraction of the peak. Defaults to 0.

    Example:

    >>> s = WarmupCosineDecay(0.1, total_steps=100, warmup_steps=10)
    >>> [round(float(s(i)), 6) for i in (0, 9, 55, 100)]
    [0.01, 0.1, 0.05, 0.0]
    """

    def __init__(self, peak_learning_rate, total_steps, warmup_steps=0, alpha=0.0,
                 name="WarmupCosineDecay"):
        super().__init__()
        self.peak_learning_rate = float(peak_learning_rate)
        self.total_steps = check_int("total_steps", total_steps, low=1)
        self.warmup_steps = check_int("warmup_steps", warmup_steps, low=0, high=total_steps - 1)
        self.alpha = float(alpha)
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = self.peak_learning_rate
        decay_steps = float(self.total_steps - self.warmup_steps)
        progress = ops.clip((step - self.warmup_steps) / decay_steps, 0.0, 1.0)
        cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))
        lr = peak * ((1.0 - self.alpha) * cosine + self.alpha)
        if self.warmup_steps:
            ramp = peak * (step + 1.0) / float(self.warmup_steps)
            lr = ops.where(ops.less(step, float(self.warmup_steps)), ramp, lr)
        return lr

