"""keras_preact.training.banner: the opening lines of a training run say what
it uses, and call a parameter count the paper's only where it is."""

import keras
import pytest

import keras_preact
from keras_preact.training import DistributionSetup
from keras_preact.training import TrainingRun
from keras_preact.training import compile_for_paper
from keras_preact.training.banner import describe_start


def tiny_model(**compile_kwargs):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(6, activation="softmax")])
    return compile_for_paper(model, 0.1, **compile_kwargs)


# The claim the opening lines make about a model's count, or None.
PAPER_COUNTS = {
    "preact164_100": (lambda: keras_preact.PreActResNet164(classes=100),
                      "1,726,388 trainable parameters (the paper's count for "
                      "PreActResNet164 at 100 classes)"),
    "preact164_10": (lambda: keras_preact.PreActResNet(164, classes=10),
                     "1,703,258 trainable parameters (the paper's count for "
                     "PreActResNet164 at 10 classes)"),
    # Not the paper's networks: other classes, other width.
    "preact18_50": (lambda: keras_preact.PreActResNet(18, layout="imagenet", classes=50,
                                                      input_shape=(64, 64, 3)), None),
    "preact20_width8": (lambda: keras_preact.PreActResNet(20, classes=100, base_width=8),
                        None),
}


@pytest.mark.parametrize("case", sorted(PAPER_COUNTS))
def test_opening_lines_call_a_count_the_papers_only_where_it_is(case):
    build, claim = PAPER_COUNTS[case]
    text = describe_start(build(), TrainingRun("out", epochs=1, steps_per_epoch=1))
    if claim is None:
        assert "the paper" not in text
    else:
        assert claim in text


@pytest.mark.parametrize("run_kwargs, compile_kwargs, words", [
    (dict(jit_compile="auto", global_batch_size=128), {},
     ["jit_compile=auto (Keras' default, resolved to ", "steps_per_execution=1 (Keras' default)",
      "image data format channels_last (keras.config)", "global batch 128 (64 x 2 replicas)",
      "dtype policy float32, distribute mirrored"]),
    (dict(jit_compile=False), dict(jit_compile=False, steps_per_execution=4),
     ["compile    jit_compile=False, steps_per_execution=4, image data"]),
])
def test_opening_lines_say_what_the_run_uses(run_kwargs, compile_kwargs, words):
    run = TrainingRun("out", epochs=3, steps_per_epoch=5, resume=True, backup_every_steps=2,
                      **run_kwargs)
    distribution = DistributionSetup("mirrored", num_replicas=2)
    text = describe_start(tiny_model(**compile_kwargs), run, distribution)
    for word in words + ["run        15 steps: 3 epochs of 5 steps,",
                         "backups    out/backup (every 300 s, every 2 steps and at each "
                         "epoch end)"]:
        assert word in text


@pytest.mark.parametrize("length, words", [
    (dict(epochs=3, steps_per_epoch=5), "run        15 steps: 3 epochs of 5 steps,"),
    (dict(epochs=3, steps_per_epoch=5, total_steps=12),
     "run        12 steps: 3 epochs of 5 steps (the last of 2),"),
    (dict(epochs=1, steps_per_epoch=30, total_steps=5), "run        5 steps: 1 epoch of 5 steps,"),
])
def test_opening_lines_give_the_run_length(length, words):
    assert words in describe_start(tiny_model(), TrainingRun("out", **length))
