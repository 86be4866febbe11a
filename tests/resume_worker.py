"""A small training run for tests/training/test_resume.py, killable at exact points.

    python tests/resume_worker.py OUT [--kill-at-step K] [--kill-in-backup N]

trains a depth-8 pre-activation ResNet on fixed random 8x8 images with the
paper's optimizer and a step schedule through `fit_resumable` (backups every
3 steps and at each epoch end), and writes OUT/final.npz (weights,
iterations, epochs trained by this process). `--kill-at-step K` sends
SIGKILL to itself after global step K; `--kill-in-backup N` does so in the
middle of the N-th backup, after its weights file is written and before its
metadata is.
"""

import argparse
import os
import signal
import sys

import numpy as np

import keras
import keras_preact
from keras_preact.training import compile_for_paper
from keras_preact.training import fit_resumable
from keras_preact.training import resume

EPOCHS, STEPS_PER_EPOCH, BATCH = 3, 4, 4
NUM_BATCHES = 7  # != STEPS_PER_EPOCH: the stream does not restart with epochs.


def data_at(start_step):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(NUM_BATCHES, BATCH, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 10, size=(NUM_BATCHES, BATCH))

    def batches():
        step = start_step
        while True:
            yield x[step % NUM_BATCHES], y[step % NUM_BATCHES]
            step += 1

    return batches()


class KillAtStep(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def kill_in_backup(n):
    write = resume.atomic_write
    calls = []

    def write_then_maybe_die(path, text):
        calls.append(path)
        if len(calls) == n:
            os.kill(os.getpid(), signal.SIGKILL)
        write(path, text)

    resume.atomic_write = write_then_maybe_die


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--kill-at-step", type=int)
    parser.add_argument("--kill-in-backup", type=int)
    return parser


def main(argv):
    args = build_parser().parse_args(argv)
    if args.kill_in_backup:
        kill_in_backup(args.kill_in_backup)
    keras.utils.set_random_seed(0)
    model = keras_preact.PreActResNet(8, layout="cifar", classes=10, input_shape=(8, 8, 3))
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([5, 9], [0.1, 0.01, 0.001])
    compile_for_paper(model, schedule)
    callbacks = [KillAtStep(args.kill_at_step)] if args.kill_at_step else []
    history = fit_resumable(
        model, data_at, epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH,
        backup_dir=os.path.join(args.out, "backup"), every_steps=3,
        every_seconds=None, callbacks=callbacks, verbose=0,
    )
    np.savez(
        os.path.join(args.out, "final.npz"),
        *[keras.ops.convert_to_numpy(w) for w in model.weights],
        iterations=int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        epochs_trained=np.array(history.epoch, dtype="int64"),
    )


if __name__ == "__main__":
    main(sys.argv[1:])
