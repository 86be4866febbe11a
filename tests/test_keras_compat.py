"""keras_preact/keras_compat.py: every private Keras API it names still
exists, does what it is used for, and is used nowhere else in the library."""

import ast
import importlib
from pathlib import Path

import keras
import pytest

from keras_preact import keras_compat
from keras_preact.training import PaperSGD

LIBRARY = Path(__file__).resolve().parents[1] / "keras_preact"
# Private attributes of TensorFlow (not Keras) objects: the collective
# all-reduce's peer health check in training/distribute.py.
TENSORFLOW_PRIVATE = {"_enable_check_health", "_check_health_interval",
                      "_check_health_timeout", "_check_health_initial_timeout"}
# torch's multi-tensor kernels (torch.optim's "foreach" path, also Keras' own
# torch optimizers'): PaperSGD's update on torch.
# torch's test for hooks around a module (`Module._call_impl`'s fast path):
# a residual unit calls its layers' `call` unless a hook needs `__call__`.
TORCH_PRIVATE = {"_foreach_mul", "_foreach_mul_", "_foreach_add", "_foreach_add_",
                 "_foreach_sub_", "_forward_hooks", "_forward_pre_hooks",
                 "_backward_hooks", "_backward_pre_hooks", "_global_forward_hooks",
                 "_global_forward_pre_hooks", "_global_backward_hooks",
                 "_global_backward_pre_hooks"}


def tiny_graph():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, name="hidden")
    outputs = keras.layers.Dense(2, name="out")(hidden(inputs))
    return keras.Model(inputs, outputs), hidden


@pytest.mark.parametrize("module, attribute", keras_compat.PRIVATE_APIS)
def test_private_apis_still_exist(module, attribute):
    # A backend's own API is checked in that backend's run of the suite.
    if ".backend." in module and f".backend.{keras.backend.backend()}." not in module:
        pytest.skip(f"{module} is checked in the {module.split('.')[3]} run")
    target = importlib.import_module(module)
    for name in attribute.split("."):
        target = getattr(target, name)
    assert callable(target)


def test_private_attributes_walk_a_graph():
    assert keras_compat.PRIVATE_ATTRIBUTES == ("KerasTensor._keras_history",
                                               "Layer._inbound_nodes")
    model, hidden = tiny_graph()
    out = model.get_layer("out")
    assert keras_compat.producer(model.outputs[0]) is out
    assert keras_compat.call_count(out) == 1
    [hidden_output] = keras_compat.call_inputs(out)
    assert keras_compat.producer(hidden_output) is hidden
    hidden(keras.Input((4,)))  # a second call: no single input any more
    assert keras_compat.call_count(hidden) == 2
    assert keras_compat.call_inputs(hidden) == []


def test_variable_index_finds_each_slot():
    model, _ = tiny_graph()
    optimizer = PaperSGD()
    optimizer.build(model.trainable_variables)
    indices = [keras_compat.variable_index(optimizer, v) for v in model.trainable_variables]
    assert indices == list(range(len(model.trainable_variables)))


def own_private_names(tree):
    """Private attributes the file's own classes set (`self._name = ...`)."""
    return {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name) and node.value.id == "self"}


def private_uses(path):
    """`keras.src` imports and private attributes read off other objects."""
    found = []
    tree = ast.parse(path.read_text())
    own = own_private_names(tree) | TENSORFLOW_PRIVATE | TORCH_PRIVATE
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names]
            found += [name for name in names if name.startswith("keras.src")]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") \
                and not node.attr.startswith("__") and node.attr not in own:
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls", "os")):
                found.append(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value in ("_keras_history", "_inbound_nodes"):
            found.append(node.value)
    return found


def test_no_private_keras_api_outside_keras_compat():
    uses = {str(path.relative_to(LIBRARY)): private_uses(path)
            for path in sorted(LIBRARY.rglob("*.py")) if path.name != "keras_compat.py"}
    assert {path: names for path, names in uses.items() if names} == {}
