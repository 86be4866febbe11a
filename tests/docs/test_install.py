"""The install never replaces a framework the machine already has.

Colab and GPU machines ship their own TensorFlow (the full `tensorflow`
distribution, with GPU support), JAX (with its CUDA plugin) and torch (a CUDA
build). An extra that required `tensorflow-cpu` installed a second
distribution writing the same `tensorflow/` package on top of theirs.

Each machine of docs/install.md is imitated in a
throw-away virtualenv by fake `*.dist-info` records (name and version only,
on PYTHONPATH) that make pip take its frameworks for installed; `pip install
--dry-run --report` of the documented install of `keras_preact[<extras>]`
must then plan no TensorFlow distribution, no second JAX and no torch beyond
what the extras name (marked slow). The pip work is the same on every
backend, so it runs once, on the TensorFlow pass; it needs PyPI (or the
configured index) and skips when that is unreachable. (Where TensorFlow is
missing, the code that needs it says how to install it:
tests/test_install_hints.py.)"""

import json
import os
import re
import shutil
import subprocess
import venv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import pytest

from _checks import REPO

PIP_TIMEOUT_S = 600
PROJECT_FILES = ("setup.cfg", "pyproject.toml", "README.md")

# Distributions that install the `tensorflow` package (or used to).
TENSORFLOW_DISTRIBUTIONS = {
    "tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel",
    "tensorflow-macos", "tf-nightly", "tf-nightly-cpu", "tf-nightly-gpu",
}
JAX_DISTRIBUTIONS = {"jax", "jaxlib"}

# Frameworks already installed on each machine: distribution -> version.
MACHINES = {
    "colab": {
        "tensorflow": "2.21.0", "jax": "0.10.2", "jaxlib": "0.10.2",
        "jax-cuda12-plugin": "0.10.2", "torch": "2.13.0",
    },
    "cuda_jax": {
        "jax": "0.10.2", "jaxlib": "0.10.2", "jax-cuda12-plugin": "0.10.2",
        "tensorflow": "2.21.0",
    },
    "cuda_torch": {"torch": "2.13.0", "tensorflow": "2.21.0"},
    "cuda_tensorflow": {"tensorflow": "2.21.0"},
    "cpu": {},
}

# The extras of README's main job (a CPU machine with no framework yet).
MAIN_JOB_EXTRAS = "examples,tensorflow-cpu"
# (machine, extras) of every install README.md and docs/install.md document.
INSTALLS = [
    ("colab", "examples"),
    ("cuda_jax", "examples,jax"),
    ("cuda_torch", "examples,torch"),
    ("cuda_tensorflow", "examples"),
    ("cuda_tensorflow", "data"),
    ("cuda_tensorflow", "tests"),
    # The main job on a CPU machine: the CPU TensorFlow (backend and tf.data).
    ("cpu", MAIN_JOB_EXTRAS),
    ("cpu", "examples,jax,tensorflow-cpu"),
]

README_SETUP = "## Set-up on a fresh machine"
INSTALL_DOC = REPO / "docs" / "install.md"


def canonical(name):
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def readme_setup():
    """README's set-up section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert README_SETUP in text, f"README.md has no section {README_SETUP!r}"
    return text.split(README_SETUP, 1)[1].split("\n## ", 1)[0]


def documented_extras():
    """Every extra named as `.[a,b]` in README's set-up section and docs/install.md."""
    found = set()
    for text in (readme_setup(), INSTALL_DOC.read_text(encoding="utf-8")):
        for group in re.findall(r"\.\[([A-Za-z0-9_,-]+)\]", text):
            found.update(group.split(","))
    return found


def test_every_documented_extra_is_checked():
    tested = {extra for _, extras in INSTALLS for extra in extras.split(",")}
    documented = documented_extras()
    assert documented, "README's set-up section and docs/install.md name no extra"
    assert documented <= tested, (
        f"README documents extras {sorted(documented - tested)} that "
        f"test_install.py does not dry-run"
    )


def test_readme_main_job_installs_a_cpu_tensorflow_not_torch():
    command = readme_setup().split("```bash\n", 1)[1].split("```", 1)[0]
    install, _, job = command.partition("KERAS_BACKEND=")
    assert job.startswith("tensorflow python examples/train_cifar100.py"), command
    assert "torch" not in install, f"the main job's install names torch: {install}"
    main_job = re.findall(r"\.\[([A-Za-z0-9_,-]+)\]", install)
    assert main_job == [MAIN_JOB_EXTRAS], install


def fake_installed(site_packages, name, version):
    """A dist-info record pip reads as an installed distribution."""
    dist_info = Path(site_packages) / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    )
    (dist_info / "INSTALLER").write_text("pip\n")
    (dist_info / "RECORD").write_text(
        "".join(f"{dist_info.name}/{f},,\n" for f in ("METADATA", "INSTALLER", "RECORD"))
    )


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("pip's plan does not depend on the Keras backend: checked "
                    "once, on the KERAS_BACKEND=tensorflow pass")
    root = tmp_path_factory.mktemp("install")
    venv.EnvBuilder(with_pip=True, clear=True).create(root / "venv")
    python = str(root / "venv" / "bin" / "python")
    probe = run_pip(python, {}, ["install", "--dry-run", "--no-deps", "--quiet",
                                 "--ignore-installed", "packaging"], timeout=120)
    if probe.returncode != 0:
        pytest.skip(f"package index unreachable: {probe.stderr.strip()[-500:]}")
    return python


def run_pip(python, env_extra, args, timeout=PIP_TIMEOUT_S):
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONPATH", None)
    env.update(env_extra)
    try:
        return subprocess.run([python, "-m", "pip", *args], env=env, text=True,
                              capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(
            e.cmd, 1, "", f"pip {' '.join(args)} took more than {timeout} s")


def dry_run(python, installed, extras, workdir):
    """`pip install --dry-run -e REPO[extras]` with `installed` faked.

    Returns:
        `(pip's stderr or None on success, the report's "install" list)`.
    """
    # A copy of what the metadata is built from: building it writes
    # keras_preact.egg-info, which must not race in (or touch) the checkout.
    project = workdir / "project"
    project.mkdir()
    for name in PROJECT_FILES:
        shutil.copy(REPO / name, project / name)
    shutil.copytree(REPO / "keras_preact", project / "keras_preact",
                    ignore=shutil.ignore_patterns("__pycache__"))
    site = workdir / "site-packages"
    for name, version in installed.items():
        fake_installed(site, name, version)
    report = workdir / "report.json"
    result = run_pip(python, {"PYTHONPATH": str(site)}, [
        "install", "--dry-run", "--quiet", "--report", str(report),
        "-e", f"{project}[{extras}]",
    ])
    if result.returncode != 0:
        return result.stderr[-3000:], []
    return None, json.loads(report.read_text())["install"]


@pytest.fixture(scope="module")
def plans(venv_python, tmp_path_factory):
    """The dry runs of INSTALLS, three at a time (they mostly wait on the index)."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {
            (machine, extras): pool.submit(
                dry_run, venv_python, MACHINES[machine], extras,
                tmp_path_factory.mktemp(f"{machine}-{extras.replace(',', '-')}"))
            for machine, extras in INSTALLS
        }
        return {key: future.result() for key, future in futures.items()}


@pytest.mark.slow
@pytest.mark.parametrize(("machine", "extras"), INSTALLS, ids=[f"{m}-{e}" for m, e in INSTALLS])
def test_install_plans_no_second_framework(plans, machine, extras):
    error, report = plans[machine, extras]
    assert error is None, error
    ours = [p for p in report if canonical(p["metadata"]["name"]) == "keras-preact"]
    assert len(ours) == 1, "the dry run did not plan keras_preact itself"
    asked = set(extras.split(","))
    missing = asked - set(ours[0]["metadata"].get("provides_extra", []))
    assert not missing, f"setup.cfg has no extra {sorted(missing)}"
    plan = {canonical(p["metadata"]["name"]): p["metadata"]["version"] for p in report}
    installed = MACHINES[machine]

    replaced = sorted(set(plan) & {canonical(n) for n in installed})
    assert not replaced, f"`.[{extras}]` on {machine} reinstalls {replaced}"

    tensorflows = sorted(set(plan) & TENSORFLOW_DISTRIBUTIONS)
    if "tensorflow-cpu" in asked:
        assert tensorflows == ["tensorflow-cpu"], tensorflows
    else:
        assert not tensorflows, (
            f"`.[{extras}]` on {machine} installs {tensorflows} "
            f"(installed: {sorted(installed)})"
        )
    if "torch" not in asked:
        assert "torch" not in plan, f"`.[{extras}]` installs torch unasked"
    if "jax" not in asked:
        assert not set(plan) & JAX_DISTRIBUTIONS, f"`.[{extras}]` installs JAX unasked"
    elif "jax" not in installed:
        assert {"jax", "jaxlib"} <= set(plan), sorted(plan)
