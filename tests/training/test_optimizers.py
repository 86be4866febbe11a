"""Tests of keras_preact.training.optimizers: `PaperSGD` is Torch7 `optim.sgd`.

The reference is `torch.optim.SGD(momentum=0.9, dampening=0,
weight_decay=1e-4, nesterov=...)`, the update of the authors' code
(fb.resnet.torch `train.lua` -> `optim.sgd` over all parameters). One shared
check: a tiny conv + BN + dense model trains a few steps in Keras across a
learning-rate drop while the optimizer records the gradient each
`update_step` receives; torch replays those gradients from the same initial
values, and the weights must agree to float32 precision.
"""

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import torch
from keras import ops

from keras_preact.training import PaperSGD
from keras_preact.training import compile_for_paper
from keras_preact.training import decayed_variables

REPO = Path(__file__).resolve().parents[2]
BACKEND = keras.backend.backend()

MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
# The rate of each update: a drop by 10 after three updates.
LEARNING_RATES = [0.5, 0.5, 0.5, 0.05, 0.05, 0.05]


def rate_drop_schedule(micro_steps=1):
    """Keras schedule whose value at update k is LEARNING_RATES[k].

    Keras evaluates a schedule at the optimizer's micro-step counter: with
    gradient accumulation over `micro_steps`, update k runs at micro-step
    `micro_steps * (k + 1) - 1`.
    """
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        boundaries=[3 * micro_steps - 1], values=[0.5, 0.05]
    )


class RecordingPaperSGD(PaperSGD):
    """`PaperSGD` that also stores, per variable, the gradient its last
    `update_step` received (after unscaling, all-reduce and accumulation).
    It overrides `update_step`, so it is called per variable on every
    backend (torch included)."""

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.seen_gradients = self.add_optimizer_variables(variables, "seen_gradient")

    def update_step(self, gradient, variable, learning_rate):
        self.assign(
            self.seen_gradients[self._get_variable_index(variable)],
            ops.cast(gradient, variable.dtype),
        )
        super().update_step(gradient, variable, learning_rate)


def tiny_model(synchronized=False):
    """Conv (4-D kernel + bias), BatchNorm (gamma, beta), Dense: 103 weights."""
    kwargs = {"synchronized": True} if synchronized else {}
    return keras.Sequential(
        [
            keras.Input((5, 5, 2)),
            keras.layers.Conv2D(4, 3, name="conv", bias_initializer="random_normal"),
            keras.layers.BatchNormalization(
                name="bn",
                gamma_initializer=keras.initializers.RandomUniform(0.5, 1.5),
                beta_initializer="random_normal",
                **kwargs,
            ),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, name="fc", bias_initializer="random_normal"),
        ],
        name="tiny",
    )


def tiny_data(batch=8):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, 5, 5, 2)).astype("float32")
    y = rng.normal(size=(batch, 3)).astype("float32")
    return x, y


def train_tiny(
    nesterov=False,
    momentum=MOMENTUM,
    l2_decay_on="all",
    l2_exclude=None,
    accumulation=None,
    synchronized=False,
    initial=None,
    optimizer_class=None,
):
    """Trains `tiny_model` len(LEARNING_RATES) updates with `train_on_batch`.

    Returns:
        dict: "paths", "initial", "final" (lists of float64 arrays in
        `trainable_variables` order), "gradients" (one list per update),
        "iterations" (the inner optimizer's update count),
        "decayed" (`decayed_variables`), "wrapped" (LossScaleOptimizer?).
    """
    model = tiny_model(synchronized)
    if initial is not None:
        for variable, value in zip(model.trainable_variables, initial):
            variable.assign(value)
    micro_steps = accumulation or 1
    optimizer = (optimizer_class or RecordingPaperSGD)(
        rate_drop_schedule(micro_steps),
        momentum=momentum,
        nesterov=nesterov,
        l2_weight_decay=WEIGHT_DECAY,
        l2_decay_on=l2_decay_on,
        l2_exclude=l2_exclude,
        gradient_accumulation_steps=accumulation,
    )
    model.compile(optimizer, loss="mse")
    x, y = tiny_data()

    def values():
        return [ops.convert_to_numpy(v).astype("float64") for v in model.trainable_variables]

    result = {"paths": [v.path for v in model.trainable_variables], "initial": values()}
    gradients = []
    for _ in LEARNING_RATES:
        for micro in range(micro_steps):
            # Different data per micro-batch, so accumulation averages.
            model.train_on_batch(x * (1.0 + micro), y)
        if isinstance(optimizer, RecordingPaperSGD):
            gradients.append([ops.convert_to_numpy(g).astype("float64")
                              for g in optimizer.seen_gradients])
    result.update(
        final=values(),
        gradients=gradients,
        iterations=int(ops.convert_to_numpy(optimizer.iterations)),
        decayed=decayed_variables(model, model.optimizer),
        wrapped=isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer),
    )
    return result


def torch_reference(run, decays, nesterov=False, momentum=MOMENTUM):
    """`torch.optim.SGD` from run["initial"] fed run["gradients"].

    `decays`: one bool per variable; the others go in a param group with
    weight_decay=0 (torch's way of decaying a subset).
    """
    params = [torch.tensor(w, dtype=torch.float64) for w in run["initial"]]
    groups = [
        {"params": [p for p, d in zip(params, decays) if d], "weight_decay": WEIGHT_DECAY},
        {"params": [p for p, d in zip(params, decays) if not d], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.SGD(
        [g for g in groups if g["params"]],
        lr=LEARNING_RATES[0],
        momentum=momentum,
        dampening=0.0,
        nesterov=nesterov,
    )
    for lr, gradients in zip(LEARNING_RATES, run["gradients"]):
        for group in optimizer.param_groups:
            group["lr"] = lr
        for p, g in zip(params, gradients):
            p.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
    return [p.numpy() for p in params]


def assert_weights_close(got, want, paths, rtol=1e-5, atol=1e-6):
    for g, w, path in zip(got, want, paths):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=path)


def check_against_torch(run, decays, nesterov=False, momentum=MOMENTUM):
    assert run["iterations"] == len(LEARNING_RATES)
    # The run moved the weights: the comparison below is not vacuous. (Not
    # every variable: the conv bias before BatchNorm gets a zero gradient and
    # moves only when it decays.)
    assert any(not np.allclose(a, b) for a, b in zip(run["initial"], run["final"]))
    want = torch_reference(run, decays, nesterov=nesterov, momentum=momentum)
    assert_weights_close(run["final"], want, run["paths"])


def is_kernel(path):
    return path.endswith("kernel")


# One row per configuration: keyword arguments of train_tiny, the dtype
# policy, and which variables torch decays (from the variable's path).
CASES = {
    "plain": ({}, "float32", lambda p: True),
    "nesterov": ({"nesterov": True}, "float32", lambda p: True),
    "no_momentum": ({"momentum": 0.0}, "float32", lambda p: True),
    "kernels_only": ({"l2_decay_on": "kernels"}, "float32", is_kernel),
    "kernels_only_nesterov": (
        {"l2_decay_on": "kernels", "nesterov": True}, "float32", is_kernel),
    "exclude_fc": ({"l2_exclude": [r"/fc/"]}, "float32", lambda p: "/fc/" not in p),
    "gradient_accumulation": ({"accumulation": 2}, "float32", lambda p: True),
    "mixed_bfloat16": ({}, "mixed_bfloat16", lambda p: True),
    "mixed_float16": ({"nesterov": True}, "mixed_float16", lambda p: True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_paper_sgd_matches_torch_sgd_across_a_rate_drop(case):
    kwargs, policy, torch_decays = CASES[case]
    keras.config.set_dtype_policy(policy)
    run = train_tiny(**kwargs)
    assert run["wrapped"] == (policy == "mixed_float16")
    decays = [torch_decays(p) for p in run["paths"]]
    assert run["decayed"] == [p for p, d in zip(run["paths"], decays) if d]
    check_against_torch(
        run, decays, nesterov=kwargs.get("nesterov", False),
        momentum=kwargs.get("momentum", MOMENTUM),
    )


@pytest.mark.parametrize("case", ["plain", "nesterov", "no_momentum", "kernels_only",
                                  "gradient_accumulation", "mixed_float16"])
def test_update_of_all_variables_at_once_equals_update_per_variable(case):
    """`PaperSGD` updates every variable in torch multi-tensor calls on torch;
    `RecordingPaperSGD` overrides `update_step`, so it is called one variable
    at a time (and checked against torch above). The same weights."""
    kwargs, policy, _ = CASES[case]
    keras.config.set_dtype_policy(policy)
    at_once = train_tiny(**kwargs, optimizer_class=PaperSGD)
    runs = [at_once, train_tiny(**kwargs, initial=at_once["initial"])]
    assert any(not np.allclose(a, b) for a, b in zip(runs[0]["initial"], runs[0]["final"]))
    for at_once, alone, path in zip(runs[0]["final"], runs[1]["final"], runs[0]["paths"]):
        np.testing.assert_allclose(at_once, alone, rtol=1e-7, atol=0, err_msg=path)


def test_rate_drop_scales_the_whole_buffer():
    """Torch: w -= lr_now * buf. Keras' SGD kept 0.9 * (-1.0 * g) in its
    velocity and moved by 0.9 * g after the drop; Torch moves by 0.1 * 0.9 * g."""
    variable = keras.Variable(np.zeros(2, "float32"), name="w")
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([0], [1.0, 0.1])
    optimizer = PaperSGD(schedule, momentum=0.9, l2_weight_decay=0.0)
    optimizer.apply([ops.convert_to_tensor([1.0, -2.0])], [variable])
    np.testing.assert_allclose(ops.convert_to_numpy(variable), [-1.0, 2.0], rtol=1e-6)
    optimizer.apply([ops.zeros(2)], [variable])
    # buf = 0.9 * g; w = -g - 0.1 * 0.9 * g = -1.09 * g.
    np.testing.assert_allclose(ops.convert_to_numpy(variable), [-1.09, 2.18], rtol=1e-6)


@pytest.mark.parametrize("policy", ["float32", "mixed_float16"])
@pytest.mark.parametrize("scope", ["all", "kernels"])
def test_zero_loss_fit_step_decays_the_chosen_variables(policy, scope):
    """With a zero loss only the decay moves the weights: after one step every
    decayed variable is w * (1 - lr * wd); BatchNorm gamma/beta and biases
    included by default, as in the authors' flat-parameter `optim.sgd`."""
    keras.config.set_dtype_policy(policy)
    model = tiny_model()
    lr, wd = 0.5, 0.1
    model.compile(
        PaperSGD(lr, l2_weight_decay=wd, l2_decay_on=scope),
        loss=lambda y_true, y_pred: 0.0 * ops.mean(y_pred),
    )
    before = {v.path: ops.convert_to_numpy(v).copy() for v in model.trainable_variables}
    x, y = tiny_data()
    model.train_on_batch(x, y)
    decayed = decayed_variables(model, model.optimizer)
    names = [p.split("/", 1)[1] for p in decayed]
    if scope == "all":
        assert names == ["conv/kernel", "conv/bias", "bn/gamma", "bn/beta",
                         "fc/kernel", "fc/bias"]
    else:
        assert names == ["conv/kernel", "fc/kernel"]
    for v in model.trainable_variables:
        factor = (1 - lr * wd) if v.path in decayed else 1.0
        np.testing.assert_allclose(ops.convert_to_numpy(v), before[v.path] * factor,
                                   rtol=1e-6, err_msg=v.path)


def test_compile_for_paper_passes_the_decay_scope():
    model = compile_for_paper(tiny_model(), 0.1, nesterov=True, weight_decay=5e-4)
    assert isinstance(model.optimizer, PaperSGD)
    assert (model.optimizer.l2_decay_on, model.optimizer.l2_weight_decay,
            model.optimizer.nesterov) == ("all", 5e-4, True)
    model = compile_for_paper(tiny_model(), weight_decay_on="kernels")
    assert model.optimizer.l2_decay_on == "kernels"
    with pytest.raises(ValueError, match="l2_decay_on"):
        compile_for_paper(tiny_model(), weight_decay_on="bn")


def test_paper_sgd_serializes_with_model(tmp_path):
    from keras_preact.training import PaperCIFARSchedule

    model = tiny_model()
    schedule = PaperCIFARSchedule.for_run(batch_size=64, warmup=True)
    model.compile(PaperSGD(schedule, nesterov=True, l2_weight_decay=5e-4,
                           l2_decay_on="kernels", l2_exclude=["fc"]), loss="mse")
    x, y = tiny_data(2)
    model.train_on_batch(x, y)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    opt = loaded.optimizer
    assert isinstance(opt, PaperSGD)
    assert (opt.l2_weight_decay, opt.nesterov, opt.l2_decay_on, opt.l2_exclude) == (
        5e-4, True, "kernels", ["fc"])
    restored_schedule = keras.saving.deserialize_keras_object(
        opt.get_config()["learning_rate"])
    assert isinstance(restored_schedule, PaperCIFARSchedule)
    assert restored_schedule.get_config() == schedule.get_config()
    assert int(ops.convert_to_numpy(opt.iterations)) == 1
    # The restored optimizer keeps its momentum buffers and decays the same variables.
    for a, b in zip(model.optimizer.momentums, opt.momentums):
        np.testing.assert_array_equal(ops.convert_to_numpy(a), ops.convert_to_numpy(b))
    assert [p.split("/")[-2:] for p in decayed_variables(loaded, opt)] == [
        ["conv", "kernel"]]


@pytest.mark.parametrize("min_ndim, scope", [(2, "kernels"), (0, "all")])
def test_configs_saved_with_l2_min_ndim_still_load(min_ndim, scope):
    config = PaperSGD().get_config()
    config.pop("l2_decay_on")
    config["l2_min_ndim"] = min_ndim
    assert PaperSGD.from_config(config).l2_decay_on == scope


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"l2_weight_decay": -1.0}, "l2_weight_decay"),
        ({"l2_weight_decay": "1e-4"}, "l2_weight_decay"),
        ({"momentum": 1.5}, "momentum"),
        ({"momentum": None}, "momentum"),
        ({"momentum": 0.0, "nesterov": True}, "Nesterov"),
        ({"nesterov": "yes"}, "nesterov"),
        ({"l2_decay_on": "bn"}, "l2_decay_on"),
        ({"l2_exclude": 3}, "l2_exclude"),
        ({"l2_exclude": ["fc("]}, "l2_exclude"),
        ({"l2_min_ndim": 2}, "l2_decay_on='kernels'"),
        ({"weight_decay": 1e-4}, "decoupled"),
    ],
)
def test_paper_sgd_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PaperSGD(**kwargs)


def test_decayed_variables_needs_paper_sgd():
    with pytest.raises(ValueError, match="PaperSGD"):
        decayed_variables(tiny_model(), keras.optimizers.SGD())


# --- Two replicas: the update runs once, after the gradient reduction -------

TWO_REPLICA_RUN = textwrap.dedent(
    """
    import os, pickle, sys
    if os.environ["KERAS_BACKEND"] == "tensorflow":
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    sys.path.insert(0, "tests")
    from training import test_optimizers as T
    from keras_preact.training import setup_distribution
    setup = setup_distribution(sys.argv[1])
    assert setup.num_replicas == 2, setup
    synchronized = os.environ["KERAS_BACKEND"] == "tensorflow"
    with setup.scope():
        replicated = T.train_tiny(synchronized=synchronized)
    if setup.distribution is not None:
        keras.distribution.set_distribution(None)
    single = T.train_tiny(initial=replicated["initial"])
    with open(sys.argv[2], "wb") as f:
        pickle.dump({"replicated": replicated, "single": single}, f)
    """
)


def run_two_replicas(kind, tmp_path, extra_env=None):
    env = dict(os.environ, KERAS_BACKEND=BACKEND, PYTHONPATH=str(REPO),
               TF_CPP_MIN_LOG_LEVEL="3", **(extra_env or {}))
    out = tmp_path / "runs.pkl"
    result = subprocess.run(
        [sys.executable, "-c", TWO_REPLICA_RUN, kind, str(out)], env=env, cwd=REPO,
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with open(out, "rb") as f:
        return pickle.load(f)


@pytest.mark.slow
def test_two_replicas_equal_one_replica_and_torch(tmp_path):
    if BACKEND == "torch":
        pytest.skip("Keras has no multi-replica fit() on the torch backend")
    if BACKEND == "tensorflow":
        runs = run_two_replicas("mirrored", tmp_path)
    else:
        runs = run_two_replicas(
            "data_parallel", tmp_path,
            {"XLA_FLAGS": "--xla_force_host_platform_device_count=2",
             "JAX_PLATFORMS": "cpu"},
        )
    replicated, single = runs["replicated"], runs["single"]
    # Same global batch, same start: the same gradients and weights as on one
    # device, so decay and momentum ran once per update, not once per replica.
    assert_weights_close(replicated["initial"], single["initial"], single["paths"], 0, 0)
    for step, (a, b) in enumerate(zip(replicated["gradients"], single["gradients"])):
        assert_weights_close(a, b, [f"step {step}: {p}" for p in single["paths"]])
    assert_weights_close(replicated["final"], single["final"], single["paths"])
    check_against_torch(replicated, [True] * len(replicated["paths"]))
