"""Launches N worker processes of one training command on this machine.

    python -m keras_preact.launch --workers 2 [--backend tensorflow|jax] \\
        [--grace-seconds 30] -- <training command...>

For example, two TensorFlow workers of the CIFAR example:

    python -m keras_preact.launch --workers 2 --backend tensorflow -- \\
        python examples/train_cifar100.py --distribute multiworker --depth 20 \\
        --data-source npz --data-dir ../shared/data/cifar100 --epochs 1 \\
        --steps-per-epoch 20 --output-dir /tmp/run

What it does, per worker `i` in `0..N-1` (worker 0 is the chief):

- picks free TCP ports on 127.0.0.1 (bound once to port 0, then released);
- TensorFlow: sets `TF_CONFIG` = `{"cluster": {"worker": ["127.0.0.1:P0",
  ...]}, "task": {"type": "worker", "index": i}}`, as
  `tf.distribute.MultiWorkerMirroredStrategy` reads it;
- JAX: sets `KERAS_DISTRIBUTION_JOB_ADDRESSES` (the coordinator,
  `127.0.0.1:P0`), `KERAS_DISTRIBUTION_NUM_PROCESSES` = N and
  `KERAS_DISTRIBUTION_PROCESS_ID` = i, the variables
  `keras.distribution.initialize` and
  `keras_preact.training.setup_distribution("multiworker")` read;
- sets `KERAS_BACKEND` and `PYTHONUNBUFFERED=1`, starts the command in its
  own process group and prints each of its output lines prefixed with
  `[worker i] `.

If a worker exits with a non-zero status, the launcher prints which worker
and its status, lets the others end by themselves for `--grace-seconds`
(their collectives fail once a peer is gone, see
`keras_preact.training.distribute`), then sends SIGTERM, and SIGKILL 5 s
later; it exits with the first failing worker's status (128 + signal number
for a worker killed by a signal). Ctrl-C / SIGTERM of the launcher is
forwarded to every worker. With every worker successful it exits 0.

The torch backend is refused: Keras has no multi-process `fit` on torch.

For several hosts, run one worker per host with the variables above set by
your scheduler instead (see docs/distributed.md).
"""

from keras_preact.launch.launcher import DEFAULT_GRACE_SECONDS
from keras_preact.launch.launcher import TORCH_MESSAGE
from keras_preact.launch.launcher import VALID_BACKENDS
from keras_preact.launch.launcher import describe_status
from keras_preact.launch.launcher import free_ports
from keras_preact.launch.launcher import launch
from keras_preact.launch.launcher import worker_environments
