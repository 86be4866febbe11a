"""Writes the `.keras` files that tests/test_batch_norm_relu.py
loads to show that files saved before the fused batch normalization load
after it, with the same outputs.

Run at commit b63bf0a (the last commit whose units and head used
`keras.layers.BatchNormalization` + `ops.relu`), from the repository root:

    git worktree add /tmp/pre_fusion b63bf0a
    cd /tmp/pre_fusion && KERAS_BACKEND=tensorflow \
        python /path/to/tests/data/pre_fusion/make_fixtures.py OUT_DIR

Running it on later code makes files of the later code, not of the old one.
Each model gets random weights (moving statistics included, variances in
[0.5, 1.5]) and its inference logits on a fixed random input are stored in
`{name}.npz` with the input. A `.keras` file holds the `.weights.h5` file
the same model would save (`model.weights.h5` in the zip), so the tests take
that one from it.
"""

import os
import sys

import numpy as np

import keras
import keras_preact

# Tiny versions of every place the library puts a batch normalization: the
# pre-activations and the head (full pre-activation), the ImageNet stem
# (two BNs in the model's layer list), post-activation units with their
# projection BN, and the BN after the addition.
MODELS = {
    "cifar_bottleneck": dict(
        depth=11, block_type="bottleneck", base_width=4, classes=5,
        input_shape=(16, 16, 3),
    ),
    "imagenet": dict(
        layout="imagenet", stage_units=(1, 1, 1, 1), block_type="bottleneck",
        base_width=4, classes=5, input_shape=(32, 32, 3),
    ),
    "cifar_original": dict(
        depth=8, base_width=4, classes=5, input_shape=(16, 16, 3),
        unit_ordering="original",
    ),
    "cifar_bn_after_addition": dict(
        depth=8, base_width=4, classes=5, input_shape=(16, 16, 3),
        unit_ordering="bn_after_addition",
    ),
}


def randomize(model, rng):
    """Moves every weight away from a fresh build's, keeping activations
    of order one: BN scales and variances in [0.5, 1.5], offsets and means
    N(0, 0.2), kernels and biases times U(0.5, 1.5) elementwise."""
    for weight in model.weights:
        shape = tuple(weight.shape)
        name = weight.path.rsplit("/", 1)[-1]
        if name in ("gamma", "moving_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        elif name in ("beta", "moving_mean", "bias"):
            value = rng.normal(0.0, 0.2, shape)
        else:
            value = weight.numpy() * rng.uniform(0.5, 1.5, shape)
        weight.assign(value.astype("float32"))


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(2016)
    for name, kwargs in MODELS.items():
        keras.utils.set_random_seed(1337)
        model = keras_preact.PreActResNet(**kwargs, classifier_activation=None)
        randomize(model, rng)
        x = rng.normal(size=(2,) + kwargs["input_shape"]).astype("float32")
        y = model.predict(x, verbose=0)
        model.save(os.path.join(out_dir, f"{name}.keras"))
        np.savez(os.path.join(out_dir, f"{name}.npz"), inputs=x, outputs=y)


if __name__ == "__main__":
    main(sys.argv[1])
