"""Signal propagation of the original vs the full pre-activation unit.

Measures, on one real CIFAR batch, the forward signal (std of each residual
unit's output) and the backward signal (norm of the loss gradient w.r.t. each
unit's input) of each (unit ordering, depth) at initialization and,
optionally, after `--train-steps` SGD steps on CIFAR (the paper's recipe),
and plots them against the unit index on a log scale.

    python examples/plot_signal_propagation.py --depths 110 1001 \
        --orderings original full_preact --batch-size 8 \
        --out docs/figures/signal_propagation.png

BatchNorm runs in training mode (batch statistics, the signal the optimizer
sees) unless `--inference-mode`; nothing in the model is updated by the
measurement.
"""

import argparse
import os
import sys
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_preact  # noqa: E402
from keras_preact.diagnostics import plot_signal_propagation  # noqa: E402
from keras_preact.diagnostics import signal_propagation  # noqa: E402
from keras_preact.io import atomic_write_json  # noqa: E402

DEFAULT_DATA = os.path.join(os.path.dirname(_REPO), "shared", "data", "cifar100")
LABELS = {"original": "original", "full_preact": "full pre-act"}


def load_batch(data_dir, batch_size, split="test"):
    """First `batch_size` real CIFAR-100 images (normalized) and labels."""
    from keras_preact.data import load_cifar
    from keras_preact.normalization import normalize

    x, y = load_cifar("cifar100", source="npz", data_dir=data_dir, split=split)
    x = keras.ops.convert_to_numpy(normalize(x[:batch_size], "cifar100", "channels_last"))
    return x, y[:batch_size].astype("int64")


def train_steps(model, data_dir, steps, batch_size, seed):
    """`steps` iterations of the paper's recipe (SGD 0.1, momentum 0.9, wd 1e-4)."""
    from keras_preact.data import cifar_dataset, load_cifar
    from keras_preact.training.optimizers import PaperSGD

    x, y = load_cifar("cifar100", source="npz", data_dir=data_dir, split="train")
    n = min(len(x), steps * batch_size)
    ds = cifar_dataset(x[:n], y[:n], training=True, batch_size=batch_size,
                       num_classes=100, seed=seed, repeat=True)
    model.compile(optimizer=PaperSGD(learning_rate=0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(ds, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=2)


def build_parser():
    """The `argparse.ArgumentParser` of this script."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--depths", type=int, nargs="+", default=[110])
    p.add_argument("--orderings", nargs="+", default=["original", "full_preact"])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--data-dir", default=DEFAULT_DATA,
                   help="CIFAR-100 npz folder (shared/data/cifar100).")
    p.add_argument("--train-steps", type=int, default=0,
                   help="Also measure after this many SGD steps on CIFAR-100.")
    p.add_argument("--train-batch-size", type=int, default=32)
    p.add_argument("--inference-mode", action="store_true",
                   help="BatchNorm with moving statistics instead of batch statistics.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(_REPO, "docs", "figures", "signal_propagation.png"))
    p.add_argument("--json", default=None, help="Also write the numbers to this JSON file.")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)

    x, y = load_batch(args.data_dir, args.batch_size)
    results, summary = {}, {}
    for depth in args.depths:
        for ordering in args.orderings:
            keras.utils.set_random_seed(args.seed)
            t0 = time.time()
            model = keras_preact.PreActResNet(
                depth, layout="cifar", classes=100, classifier_activation=None,
                input_shape=(32, 32, 3), unit_ordering=ordering,
            )
            built = time.time() - t0
            stages = [("init", 0)]
            if args.train_steps:
                stages.append((f"{args.train_steps} steps", args.train_steps))
            for tag, steps in stages:
                if steps:
                    train_steps(model, args.data_dir, steps, args.train_batch_size, args.seed)
                t1 = time.time()
                s = signal_propagation(model, x, y, training=not args.inference_mode)
                label = f"{LABELS.get(ordering, ordering)}, {depth}" + (
                    f", {tag}" if args.train_steps else "")
                results[label] = s
                summary[label] = {
                    "units": s.num_units,
                    "backward_first": s.backward_norm[0],
                    "backward_last": s.backward_norm[-1],
                    "backward_first_over_last": s.backward_norm[0] / s.backward_norm[-1],
                    "backward_max_over_min": s.backward_norm.max() / s.backward_norm.min(),
                    "forward_first": s.forward_std[0],
                    "forward_last": s.forward_std[-1],
                    "loss": s.loss,
                    "build_s": round(built, 1),
                    "measure_s": round(time.time() - t1, 1),
                    "signal": s.as_dict(),
                }
                print(f"{label}: {s.num_units} units, backward first/last "
                      f"{s.backward_norm[0]:.3g}/{s.backward_norm[-1]:.3g}, forward "
                      f"first/last {s.forward_std[0]:.3g}/{s.forward_std[-1]:.3g}, "
                      f"loss {s.loss:.3f} (build {built:.0f}s, measure {time.time() - t1:.0f}s)",
                      flush=True)
            del model
            keras.backend.clear_session()
    mode = "inference-mode BN" if args.inference_mode else "training-mode BN"
    title = (f"CIFAR-100 batch of {args.batch_size}, {mode}, "
             f"backend {keras.backend.backend()}")
    path = plot_signal_propagation(results, args.out, title=title)
    print(f"wrote {path}")
    if args.json:
        atomic_write_json(args.json, summary, indent=1, default=float)


if __name__ == "__main__":
    main()
