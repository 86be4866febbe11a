"""keras_preact.launch.__main__: `python -m keras_preact.launch` refuses what it
cannot launch, with exit status 2, and passes the worker command on whole."""

import sys

from _checks import run_command


def test_launcher_refuses_torch():
    code, out = run_command([sys.executable, "-m", "keras_preact.launch", "--workers", "2",
                             "--backend", "torch", "--", "true"], timeout=60)
    assert code == 2
    assert "torch backend has no multi-process training" in out
    assert "--backend tensorflow" in out and "--backend jax" in out


def test_launcher_rejects_bad_arguments():
    for argv, message in ((["--backend", "jax", "--workers", "0", "--", "true"],
                           "--workers must be >= 1"),
                          (["--backend", "jax", "--workers", "2"],
                           "give the worker command after '--'"),
                          (["--backend", "mxnet", "--", "true"], "--backend must be one of")):
        code, out = run_command([sys.executable, "-m", "keras_preact.launch", *argv], timeout=60)
        assert code == 2 and message in out, out


def test_launcher_parser_keeps_the_worker_command_whole():
    from keras_preact.launch.__main__ import build_parser

    command = ["python", "examples/train_cifar100.py", "--distribute", "multiworker",
               "--workers", "3"]
    args = build_parser().parse_args(["--workers", "2", "--backend", "jax", "--", *command])
    assert (args.workers, args.backend, args.command) == (2, "jax", command)
