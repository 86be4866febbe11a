"""keras_preact.training.schedules: the paper's learning-rate schedules, their
values at chosen steps, serialization and bad input."""

import json

import keras
import numpy as np
import pytest
from keras import ops

from keras_preact.training import ImageNetStepSchedule
from keras_preact.training import PaperCIFARSchedule
from keras_preact.training import WarmupCosineDecay


def lr_at(schedule, steps):
    return [float(ops.convert_to_numpy(schedule(s))) for s in steps]


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
