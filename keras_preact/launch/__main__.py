"""Command line of the launcher: `python -m keras_preact.launch --workers N -- COMMAND`."""

import argparse
import json
import os
import sys

from keras_preact.launch.launcher import DEFAULT_GRACE_SECONDS
from keras_preact.launch.launcher import TORCH_MESSAGE
from keras_preact.launch.launcher import VALID_BACKENDS
from keras_preact.launch.launcher import launch


def build_parser():
    """The `argparse.ArgumentParser` of `python -m keras_preact.launch`."""
    parser = argparse.ArgumentParser(
        prog="python -m keras_preact.launch",
        description="Run a training command as N worker processes on 127.0.0.1 "
                    "(TensorFlow MultiWorkerMirroredStrategy or multi-process JAX).",
        epilog="Example: python -m keras_preact.launch --workers 2 -- python "
               "examples/train_cifar100.py --distribute multiworker ...",
    )
    parser.add_argument("--workers", type=int, default=2, help="Number of workers.")
    parser.add_argument("--backend", default=None,
                        help="tensorflow or jax (default: $KERAS_BACKEND, else "
                             "~/.keras/keras.json, else tensorflow).")
    parser.add_argument("--grace-seconds", type=float, default=DEFAULT_GRACE_SECONDS,
                        help="After a worker fails, seconds the others get to end "
                             "before SIGTERM.")
    parser.add_argument("command", nargs="*", help="The worker command, after '--'.")
    return parser


def _default_backend():
    backend = os.environ.get("KERAS_BACKEND")
    if backend:
        return backend
    config = os.path.join(os.path.expanduser(os.environ.get("KERAS_HOME", "~/.keras")),
                          "keras.json")
    try:
        with open(config) as f:
            return json.load(f).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    backend = args.backend or _default_backend()
    if backend == "torch":
        print(TORCH_MESSAGE, file=sys.stderr)
        return 2
    if backend not in VALID_BACKENDS:
        parser.error(f"--backend must be one of {VALID_BACKENDS}, got {backend!r}")
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    if args.grace_seconds < 0:
        parser.error(f"--grace-seconds must be >= 0, got {args.grace_seconds}")
    if not args.command:
        parser.error("give the worker command after '--'")
    return launch(args.command, args.workers, backend, grace_seconds=args.grace_seconds)


if __name__ == "__main__":
    sys.exit(main())
