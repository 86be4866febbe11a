"""README.md's code works as written, on the current backend.

Every ```python block runs on its own in a fresh `python` process (cwd = the
repository root, `KERAS_BACKEND` of this run), as a reader copying it would
run it. The test only shrinks sizes, through `SUBSTITUTIONS`: each entry must
match its block exactly once, every block needs an entry and every entry a
block, so README and test cannot drift apart silently. The set-up section
opens the README with exactly two commands: the install and main job, and the
test command CI runs. README.md stays under `MAX_README_LINES`, and neither
it nor docs/*.md tells the project's history (`HISTORY`). (The shell commands
of README.md and docs/*.md are checked by tests/docs/test_commands.py.)
"""

import os
import re
import subprocess
import sys

import keras
import pytest

from _checks import DOCUMENTS
from _checks import REPO
from _checks import fenced_blocks

README = REPO / "README.md"
CIFAR100 = REPO.parent / "shared" / "data" / "cifar100"
BACKEND = keras.backend.backend()
TIMEOUT_S = 600

# Put in the cache before the README's pretrained block: the converted
# checkpoints it names, random weights.
PRETRAINED_CACHE = """
import os
import keras
from keras_preact.pretrained import get_checkpoint, loading
from keras_preact.pretrained.registry import builder_arguments
os.environ["KERAS_HOME"] = "{tmp}/keras_home"
cached = {}
for name in ("pytorchcv/preresnet20_cifar100", "timm/resnetv2_18.ra4_e3600_r224_in1k"):
    keras.utils.set_random_seed(len(name))
    cached[name] = keras_preact.PreActResNet(**builder_arguments(get_checkpoint(name)))
    cached[name].save_weights(loading._converted_path(name))
"""
# (old, new) pairs applied to a block by this test only; "{tmp}" in `new` is
# the test's temporary folder. Keys are block ids (see `block_id`).
SUBSTITUTIONS = {
    "quick-start": [
        # PreActResNet164 takes 54 s (torch) to 100 s (TensorFlow, XLA
        # compile) for 2 steps here; depth 20 keeps the case short.
        ("keras_preact.PreActResNet164(classes=100,", "keras_preact.PreActResNet20(classes=100,"),
        ("training=True, batch_size=128,", "training=True, batch_size=8,"),
        ("cifar_dataset(x_test, y_test, training=False, batch_size=128,",
         "cifar_dataset(x_test[:16], y_test[:16], training=False, batch_size=8,"),
        ("epochs, steps_per_epoch = 160, 400", "epochs, steps_per_epoch = 1, 2"),
    ],
    # No network: the converted checkpoints (random weights) are put in a
    # fresh cache first; smaller networks of the same sources.
    "pretrained-weights": [
        ("import keras_preact\n", "import keras_preact\n" + PRETRAINED_CACHE),
        ('PreActResNet164(weights="cifar100")', 'PreActResNet20(weights="cifar100")'),
        ("PreActResNet50(include_top=False,", "PreActResNet18(include_top=False,"),
    ],
    # Depth 1001 at width 4 builds in 15-18 s per backend on an idle machine
    # (width 1 is no faster: building the graph dominates).
    "models": [],
    "export-and-serving": [
        # Exporting PreActResNet164 took 133 s on JAX here; depth 20 is enough.
        ("keras_preact.PreActResNet164(classes=100,", "keras_preact.PreActResNet20(classes=100,"),
        ('export_saved_model(model, "models",', 'export_saved_model(model, "{tmp}/models",'),
    ],
}
# Code run after a block (same process): what the README says around it.
CHECKS = {
    "pretrained-weights": """
import numpy as np
assert model.output_shape == (None, 100) and backbone.output_shape == (None, 512)
for built, name in ((model, "pytorchcv/preresnet20_cifar100"),
                    (backbone, "timm/resnetv2_18.ra4_e3600_r224_in1k")):
    for layer in ("stem_conv", "post_bn"):
        for ours, theirs in zip(built.get_layer(layer).weights, cached[name].get_layer(layer).weights):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours),
                                          keras.ops.convert_to_numpy(theirs))
assert model.get_layer("input_normalization") is not None
""",
    "quick-start": """
import keras
from keras_preact.training import PaperSGD
from keras_preact.normalization import model_statistics
x = keras.ops.convert_to_numpy(next(iter(test_ds))[0])
assert 60 < x.mean() < 200 and x.max() > 200, ("the model takes pixels", x.mean(), x.max())
x = keras.ops.convert_to_numpy(model.get_layer("input_normalization")(x))
assert abs(x.mean()) < 0.5 and 0.5 < x.std() < 2, ("inputs not normalized", x.mean(), x.std())
assert model_statistics(model) is not None
cfg = model.optimizer.get_config()
assert isinstance(model.optimizer, PaperSGD), type(model.optimizer)
assert (cfg["momentum"], cfg["l2_weight_decay"], cfg["l2_decay_on"]) == (0.9, 1e-4, "all"), cfg
assert cfg["learning_rate"]["class_name"] == "PaperCIFARSchedule", cfg["learning_rate"]
schedule = cfg["learning_rate"]["config"]
assert (list(schedule["boundaries"]), schedule["total_steps"]) == ([32000, 48000], 64000), schedule
assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == epochs * steps_per_epoch
""",
}
NEEDS_DATA = {"quick-start"}
SLOW = {"quick-start", "models", "export-and-serving"}
EXPORT_BACKENDS = ("tensorflow", "jax")  # README: "Export runs on TensorFlow and JAX"
EXPORTS = {"export-and-serving"}


def block_id(heading):
    """`"## Export and serving"` -> `"export-and-serving"`."""
    return re.sub(r"[^a-z0-9_]+", "-", heading.lstrip("#").strip().lower()).strip("-")


def python_blocks(path):
    """The ```python blocks of a Markdown file, in order.

    Args:
        path: path of the Markdown file.

    Returns:
        list of `(id, code)`: `id` is `block_id` of the nearest heading above
        the block (`"-2"`, `"-3"`, ... appended for further blocks under the
        same heading); `code` is the block's text.

    Raises:
        ValueError: a code fence left open at the end of the file.
    """
    seen, out = {}, []
    for language, _, heading, code in fenced_blocks(path):
        if language != "python":
            continue
        name = block_id(heading)
        seen[name] = seen.get(name, 0) + 1
        out.append((name if seen[name] == 1 else f"{name}-{seen[name]}", code))
    return out


def substitute(code, pairs, tmp):
    """Applies `(old, new)` pairs; each `old` must occur exactly once."""
    for old, new in pairs:
        count = code.count(old)
        if count != 1:
            raise AssertionError(
                f"substitution {old!r} matches {count} times in the README block "
                "(expected exactly 1): update SUBSTITUTIONS with the README."
            )
        code = code.replace(old, new.replace("{tmp}", str(tmp)))
    return code


def run_block(code, cwd=REPO, timeout=TIMEOUT_S):
    """Runs `code` in a fresh python process on this run's backend."""
    env = dict(os.environ, KERAS_BACKEND=BACKEND)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=timeout,
    )


def _params():
    params = []
    for name, code in python_blocks(README):
        marks = [pytest.mark.slow] if name in SLOW else []
        params.append(pytest.param(name, code, id=name, marks=marks))
    return params


def test_substitution_table_matches_readme_blocks():
    names = [name for name, _ in python_blocks(README)]
    assert names, "README.md has no ```python block"
    assert sorted(names) == sorted(SUBSTITUTIONS), (
        f"README python blocks {names} and SUBSTITUTIONS {sorted(SUBSTITUTIONS)} differ"
    )


@pytest.mark.parametrize("name, code", _params())
def test_readme_python_block_runs(name, code, tmp_path):
    if name in NEEDS_DATA and not CIFAR100.is_dir():
        pytest.skip(f"no CIFAR-100 at {CIFAR100} (the README block reads it)")
    if name in EXPORTS and BACKEND not in EXPORT_BACKENDS:
        pytest.skip(
            f"SavedModel export does not run on {BACKEND}; README documents the "
            "route: save a .keras file and run `python -m keras_preact.export` "
            "(tested in tests/export/test_main.py)"
        )
    if name not in SUBSTITUTIONS:
        pytest.fail(f"README block {name!r} has no entry in SUBSTITUTIONS")
    code = substitute(code, SUBSTITUTIONS[name], tmp_path) + CHECKS.get(name, "")
    result = run_block(code)
    assert result.returncode == 0, (
        f"README block {name!r} failed on {BACKEND} (exit {result.returncode}).\n"
        f"--- code run ---\n{code}--- output (tail) ---\n"
        f"{(result.stdout + result.stderr)[-4000:]}"
    )
    if name in EXPORTS:
        assert (tmp_path / "models" / "preact164" / "1" / "saved_model.pb").is_file()


def test_python_blocks_extracts_fenced_python_only(tmp_path):
    md = tmp_path / "x.md"
    md.write_text(
        "# Top\n```python\na = 1\n```\n```bash\necho no\n```\n"
        "## Two words\n```python\nb = 2\n```\n```python\n# not a heading\nc = 3\n```\n"
    )
    assert python_blocks(md) == [
        ("top", "a = 1\n"), ("two-words", "b = 2\n"),
        ("two-words-2", "# not a heading\nc = 3\n"),
    ]
    md.write_text("# Top\n```python\na = 1\n")
    with pytest.raises(ValueError, match="never closed"):
        python_blocks(md)


def test_substitute_requires_exactly_one_match(tmp_path):
    assert substitute("epochs=164\n", [("epochs=164", "epochs=1")], tmp_path) == "epochs=1\n"
    for code in ("x = 1\n", "epochs=164; epochs=164\n"):
        with pytest.raises(AssertionError, match="expected exactly 1"):
            substitute(code, [("epochs=164", "epochs=1")], tmp_path)


SETUP = "## Set-up on a fresh machine"


def test_readme_opens_with_the_two_setup_commands():
    """The first two shell blocks: the install and main job, then what CI runs."""
    shell = [(heading, code) for language, _, heading, code in fenced_blocks(README)
             if language == "bash"]
    assert [heading for heading, _ in shell[:2]] == [SETUP, SETUP], shell[:2]
    assert [heading for heading, _ in shell].count(SETUP) == 2, "more set-up commands"
    main_job, tests = (code.strip() for _, code in shell[:2])
    assert "\n" not in main_job, "the install and main job is one line to copy"
    assert main_job.startswith(
        'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".['), main_job
    assert " && KERAS_BACKEND=tensorflow python examples/train_cifar100.py " in main_job, main_job
    assert tests == "CI=true bash .ci/run", tests
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "\nbash tests/run_all_backends.sh" in ci, ".ci/run does not run the suite"
    run_all = (REPO / "tests" / "run_all_backends.sh").read_text(encoding="utf-8")
    assert "for backend in tensorflow jax torch" in run_all
    assert "KERAS_BACKEND=$backend python -m pytest tests" in run_all


MAX_README_LINES = 260
# What users' documents leave to git: the project's issues, its engineers and
# sessions, figures superseded or predated, commits.
HISTORY = re.compile(
    r"\bissue[ -]?#?\d+|\bengineers?\b|(?-i:\bsessions?\b)|supersed|predat"
    r"|\bcommit [0-9a-f]{7,40}\b",
    re.IGNORECASE,
)


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines (at most {MAX_README_LINES})"


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_document_tells_no_history(path):
    found = [
        (number, match.group(0))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for match in HISTORY.finditer(line)
    ]
    assert not found, f"{path.relative_to(REPO)} (line, words): {found}"
