"""keras_preact.training.compile: `compile_for_paper` and its metrics (PaperSGD
itself: tests/training/test_optimizers.py)."""

import keras
import numpy as np
import pytest

from keras_preact.training import accuracy_metrics
from keras_preact.training import compile_for_paper


def test_training_steps_lower_the_loss():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8, 8, 3)).astype("float32")
    y = (x.mean(axis=(1, 2)) @ rng.normal(size=(3, 10))).argmax(-1)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(8, 3, padding="same", use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    compile_for_paper(model, 0.1)
    first = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(first) == {"loss", "top1", "top5"}
    for _ in range(15):
        model.train_on_batch(x, y)
    last = model.evaluate(x, y, verbose=0, return_dict=True)
    assert last["loss"] < 0.9 * first["loss"]
    assert last["top5"] >= last["top1"]


def test_compile_for_paper_options():
    logits_model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(10)])
    compile_for_paper(logits_model, one_hot=True, label_smoothing=0.1)
    assert logits_model.loss.get_config()["from_logits"] is True
    assert logits_model.loss.get_config()["label_smoothing"] == pytest.approx(0.1)
    softmax_model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(10, activation="softmax")]
    )
    compile_for_paper(softmax_model)
    assert softmax_model.loss.get_config()["from_logits"] is False
    assert [m.name for m in accuracy_metrics(one_hot=True)] == ["top1", "top5"]
    with pytest.raises(ValueError, match="label_smoothing"):
        compile_for_paper(softmax_model, label_smoothing=0.1)
