"""`remat=True` changes memory and nothing else: a remat step equals a plain one.

Each configuration builds the same unit twice, with `remat=False` and
`remat=True`, from the same seed (`keras.utils.set_random_seed`: same
initial weights and the same random seed states), and checks that one
gradient step and a short `fit` give the same numbers: outputs, input and
weight gradients, BN moving statistics and seed states after the step, and
every weight after `fit`. The backward pass of a remat unit recomputes its
forward pass, so a random mask drawn again, or a state update applied inside
the recomputation, shows up here as a gradient or state that differs.
"""

import numpy as np
import pytest

import keras
import keras_preact
from keras_preact.layers import UNIT_ORDERINGS
from keras_preact.layers import ResidualUnit

from _checks import assert_all_close
from _checks import gradient_step
from _checks import numpy

SEED = 2016
INPUT_SHAPE = (4, 8, 8, 8)  # Batch 4: a drop-path mask of 4 examples.
CLASSES = 3


def freeze_batch_norms(unit):
    for layer in unit._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def freeze_all(unit):
    unit.trainable = False


# (id, unit arguments, dtype policy, training, set-up applied to the unit)
CASES = [
    ("drop_path", dict(filters=8, drop_path_rate=0.5), "float32", True, None),
    ("dropout_shortcut", dict(filters=8, shortcut="dropout"), "float32", True, None),
    ("exclusive_gating", dict(filters=8, shortcut="exclusive_gating"), "float32", True, None),
    (
        "shortcut_only_gating",
        dict(filters=8, shortcut="shortcut_only_gating"),
        "float32", True, None,
    ),
    *[
        (ordering, dict(filters=8, unit_ordering=ordering), "float32", True, None)
        for ordering in UNIT_ORDERINGS
    ],
    (
        "bottleneck_projection",
        dict(filters=2, bottleneck=True, strides=2, drop_path_rate=0.5),
        "float32", True, None,
    ),
    (
        "mixed_bfloat16",
        dict(filters=8, drop_path_rate=0.5, shortcut="exclusive_gating"),
        "mixed_bfloat16", True, None,
    ),
    ("trainable_false", dict(filters=8, drop_path_rate=0.5), "float32", True, freeze_all),
    (
        "bn_trainable_false",
        dict(filters=8, unit_ordering="bn_after_addition"),
        "float32", True, freeze_batch_norms,
    ),
    (
        "inference",
        dict(filters=8, drop_path_rate=0.5, shortcut="dropout"),
        "float32", False, None,
    ),
]

# Float32 paths run the same operations; bfloat16 allows a rounding step.
TOLERANCE = {"float32": dict(rtol=1e-5, atol=1e-5), "mixed_bfloat16": dict(rtol=1e-2, atol=1e-2)}


def fit_model(model, x, y, from_logits=True):
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
    )
    # 2 steps of 4 examples, in order; `fit` jit-compiles where it would.
    history = model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    return history.history["loss"], numpy(model.variables)


def build_unit(config, remat, policy, setup, input_shape):
    keras.utils.set_random_seed(SEED)
    keras.config.set_dtype_policy(policy)
    unit = ResidualUnit(**config, remat=remat, name="unit")
    unit.build(input_shape)
    if setup is not None:
        setup(unit)
    return unit


class TinyClassifier(keras.Model):
    """unit -> global average pooling -> dense logits.

    With `unit_training=False` the unit runs in inference mode inside `fit`
    (a frozen block that still passes gradients on); a functional model
    would not allow it, as it passes `fit`'s `training=True` to every layer.
    """

    def __init__(self, unit, unit_training=None):
        super().__init__()
        self.unit = unit
        self.unit_training = unit_training
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.head = keras.layers.Dense(CLASSES, dtype="float32")

    def build(self, input_shape):
        features = self.unit.compute_output_shape(input_shape)[-1]
        self.head.build((None, features))

    def call(self, inputs, training=None):
        if self.unit_training is not None:
            training = self.unit_training
        return self.head(self.pool(self.unit(inputs, training=training)))


def build_model(config, remat, policy, setup, training):
    unit = build_unit(config, remat, policy, setup, (None,) + INPUT_SHAPE[1:])
    model = TinyClassifier(unit, unit_training=None if training else False)
    model.build((None,) + INPUT_SHAPE[1:])
    return model


@pytest.mark.parametrize(
    "config, policy, training, setup",
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_remat_step_equals_plain_step(config, policy, training, setup):
    rng = np.random.default_rng(0)
    x = rng.normal(size=INPUT_SHAPE).astype("float32")
    tolerance = TOLERANCE[policy]

    results = {}
    for remat in (False, True):
        unit = build_unit(config, remat, policy, setup, INPUT_SHAPE)
        output_shape = unit.compute_output_shape(INPUT_SHAPE)
        cotangent = np.random.default_rng(1).normal(size=output_shape).astype("float32")
        step = gradient_step(unit, x, cotangent, training)
        results[remat] = step + (numpy(unit.non_trainable_variables),)
    plain, remat = results[False], results[True]
    np.testing.assert_allclose(remat[0], plain[0], err_msg="outputs", **tolerance)
    np.testing.assert_allclose(remat[1], plain[1], err_msg="input gradient", **tolerance)
    assert_all_close(remat[2], plain[2], tolerance, "weight gradients")
    # BN moving statistics and seed states, updated once by the step.
    assert_all_close(remat[3], plain[3], tolerance, "non-trainable variables")

    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    x = rng.normal(size=(8,) + INPUT_SHAPE[1:]).astype("float32")
    fitted = {
        remat: fit_model(build_model(config, remat, policy, setup, training), x, labels)
        for remat in (False, True)
    }
    np.testing.assert_allclose(fitted[True][0], fitted[False][0], err_msg="loss", **tolerance)
    assert_all_close(fitted[True][1], fitted[False][1], tolerance, "weights after fit")


def test_remat_model_trains_like_plain_model():
    """Whole network: same predictions, losses and weights after 2 `fit` steps.

    Bottleneck units, post-activation stem and BN after the addition, and
    stochastic depth in every unit (rates 0.17, 0.33, 0.5).
    """
    kwargs = dict(
        depth=11, block_type="bottleneck", unit_ordering="bn_after_addition",
        drop_path_rate=0.5, base_width=4, classes=5, input_shape=(8, 8, 3),
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 8, 8, 3)).astype("float32")
    y = np.array([0, 1, 2, 3, 4, 0, 1, 2])
    results = {}
    for remat in (False, True):
        keras.utils.set_random_seed(SEED)
        model = keras_preact.PreActResNet(**kwargs, remat=remat)
        predictions = keras.ops.convert_to_numpy(model.predict(x, verbose=0))
        results[remat] = (predictions,) + tuple(fit_model(model, x, y, False))
    plain, remat = results[False], results[True]
    tolerance = TOLERANCE["float32"]
    np.testing.assert_allclose(remat[0], plain[0], err_msg="predictions", **tolerance)
    np.testing.assert_allclose(remat[1], plain[1], err_msg="loss", **tolerance)
    assert_all_close(remat[2], plain[2], tolerance, "weights after fit")
