"""Reproduce the paper's ablations: unit orderings (Table 2) or shortcuts (Table 1).

Trains every variant of one table at one depth on CIFAR-10/100 with ONE
shared recipe (the paper's: SGD momentum 0.9, coupled L2 weight decay 1e-4,
batch 128, lr 0.1 divided by 10 at 1/2 and 3/4 of the run, 64k iterations,
pad-crop-flip augmentation) and the same seed, then writes a Markdown table of
its own test errors next to the paper's figures and one figure with the
training loss (dashed) and test error (solid) against iterations for every
variant (like the paper's Fig. 1 / Fig. 6).

    python examples/reproduce.py --table 2 --depth 110 --dataset cifar10 \
        --data-source tfds --output-dir runs/table2_c10_110      # the paper's run
    python examples/reproduce.py --table 2 --depth 20 --dataset cifar100 \
        --data-source npz --data-dir ../shared/data/cifar100 \
        --schedule-scale 0.002 --output-dir runs/smoke           # a quick look

Output folder (`--output-dir`):
    recipe.json            the shared recipe; a rerun must use the same one
    results/<variant>.json one file per finished variant, written atomically
                           as soon as it finishes; a rerun skips it
    work/<variant>/        `fit_resumable` backup (`backup/`) and the
                           per-epoch metrics (`metrics.csv`, `metrics.json`,
                           `MetricsWriter`); a crashed run resumes inside
                           the interrupted epoch
    table.md, curves.png   the comparison (rewritten at the end of each run)

`--schedule-scale s` multiplies every iteration count of the schedule (the
length of the run, the lr drops, the warm-up); s < 1 is a quick look, NOT
a reproduction, and the table says so. Table 1's variants use the ORIGINAL
unit (as in the paper); Table 2's use the identity shortcut.
"""

import argparse
import dataclasses
import json
import math
import os
import shutil
import sys
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import training_cli  # noqa: E402
from keras_preact import paper_results  # noqa: E402
from keras_preact.io import atomic_write  # noqa: E402
from keras_preact.io import atomic_write_json  # noqa: E402
from keras_preact.layers import SHORTCUTS  # noqa: E402
from keras_preact.models.layouts import resolve_layout  # noqa: E402
from keras_preact.training import MetricsWriter  # noqa: E402
from keras_preact.training import PaperCIFARSchedule  # noqa: E402
from keras_preact.training import compile_for_paper  # noqa: E402
from keras_preact.training import fit_resumable  # noqa: E402
from keras_preact.training import read_backup  # noqa: E402
from keras_preact.training.resume import last_epoch_steps  # noqa: E402
from keras_preact.training.schedules import PAPER_CIFAR_BATCH_SIZE  # noqa: E402
from keras_preact.training.schedules import PAPER_CIFAR_LEARNING_RATE  # noqa: E402
from keras_preact.training.schedules import PAPER_CIFAR_TOTAL_STEPS  # noqa: E402
from keras_preact.validation import check_choice  # noqa: E402
from keras_preact.validation import check_int  # noqa: E402
from keras_preact.validation import check_real  # noqa: E402

# Paper order (Table 2 lists the original unit first, full pre-activation last).
TABLE2_VARIANTS = {
    name: {"unit_ordering": name, "shortcut": "identity"}
    for name in (
        "original",
        "bn_after_addition",
        "relu_before_addition",
        "relu_only_preact",
        "full_preact",
    )
}
TABLE1_VARIANTS = {
    name: {"unit_ordering": paper_results.TABLE1_UNIT_ORDERING, "shortcut": name}
    for name in SHORTCUTS  # in the paper's Table 1 order
}
TABLES = {"1": TABLE1_VARIANTS, "2": TABLE2_VARIANTS}
SOURCES = ("npz", "archive", "tfds")
DATASETS = ("cifar10", "cifar100")


@dataclasses.dataclass
class Recipe:
    """The shared recipe: every variant of a run is trained with it.

    `total_steps`, `steps_per_epoch` and `epochs` are derived (see
    `Recipe.derive`); evaluation on the test set happens after every epoch.
    """

    table: str = "2"
    depth: int = 110
    dataset: str = "cifar10"
    data_source: str = "tfds"
    data_dir: object = None
    batch_size: int = PAPER_CIFAR_BATCH_SIZE
    schedule_scale: float = 1.0
    seed: int = 0
    warmup: bool = False
    learning_rate: float = PAPER_CIFAR_LEARNING_RATE
    weight_decay: float = 1e-4
    momentum: float = 0.9
    train_examples: object = None
    eval_examples: object = None
    eval_batch_size: int = 500
    base_width: object = None
    steps_per_epoch: object = None
    total_steps: int = 0
    epochs: int = 0

    def validate(self):
        check_choice("table", self.table, sorted(TABLES))
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("data_source", self.data_source, SOURCES)
        check_real("schedule_scale", self.schedule_scale, low=1e-12)
        for name in ("batch_size", "eval_batch_size", "train_examples", "eval_examples",
                     "steps_per_epoch", "base_width"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), low=1)
        resolve_layout("cifar", self.depth, base_width=self.base_width)
        return self

    def derive(self, num_train):
        """Fills `total_steps`, `steps_per_epoch`, `epochs` for `num_train` images.

        The paper's 64k iterations at batch 128, expressed at `batch_size`,
        times `schedule_scale`, is `total_steps`: the run trains exactly
        that many iterations and the schedule spans them. An epoch is one
        pass over the training images (or `steps_per_epoch` steps, capped at
        the run length), evened out over the run; the last epoch stops at
        `total_steps` (`epochs * steps_per_epoch` exceeds it by less than
        `epochs`).
        """
        self.validate()
        total = max(
            1,
            round(PAPER_CIFAR_TOTAL_STEPS * PAPER_CIFAR_BATCH_SIZE / self.batch_size
                  * self.schedule_scale),
        )
        per_pass = self.steps_per_epoch or max(1, math.ceil(num_train / self.batch_size))
        epochs = max(1, math.ceil(total / min(per_pass, total)))
        self.total_steps = total
        self.epochs = epochs
        self.steps_per_epoch = math.ceil(total / epochs)
        return self

    def as_dict(self):
        return dataclasses.asdict(self)


# --- small helpers -----------------------------------------------------------


def _log(msg):
    print(f"[reproduce] {msg}", flush=True)


# --- data ------------------------------------------------------------------


def load_data(recipe):
    """(x_train, y_train, x_test, y_test) uint8/int arrays via keras_preact.data.

    Raises:
        ValueError: a `data_source` that reads files, without `data_dir`.
    """
    from keras_preact.data import load_cifar

    if recipe.data_source != "tfds" and recipe.data_dir is None:
        raise ValueError(f"--data-source {recipe.data_source} reads files: give --data-dir.")

    kwargs = {"source": recipe.data_source, "data_dir": recipe.data_dir}
    x_train, y_train = load_cifar(recipe.dataset, split="train", **kwargs)
    x_test, y_test = load_cifar(recipe.dataset, split="test", **kwargs)
    if recipe.train_examples:
        x_train, y_train = x_train[: recipe.train_examples], y_train[: recipe.train_examples]
    if recipe.eval_examples:
        x_test, y_test = x_test[: recipe.eval_examples], y_test[: recipe.eval_examples]
    return x_train, y_train, x_test, y_test


def _num_classes(dataset):
    return 100 if dataset == "cifar100" else 10


def make_datasets(recipe, data):
    """Training data (a function of the start step, see `fit_resumable`:
    shuffled, augmented, repeated) and the test tf.data pipeline."""
    from keras_preact.data import cifar_dataset

    x_train, y_train, x_test, y_test = data
    classes = _num_classes(recipe.dataset)

    def train(start_step):
        return cifar_dataset(
            x_train, y_train, training=True, batch_size=recipe.batch_size,
            num_classes=classes, seed=recipe.seed, repeat=True, start_batch=start_step,
        )

    test = cifar_dataset(
        x_test, y_test, training=False, batch_size=recipe.eval_batch_size,
        num_classes=classes,
    )
    return train, test


# --- one variant ---------------------------------------------------------------


def make_schedule(recipe):
    """The paper's schedule at this run length: drops at 1/2 and 3/4 of the
    run, warm-up (at lr / 10) over 400/64000 of it; rate not batch-scaled."""
    return PaperCIFARSchedule.for_run(
        batch_size=recipe.batch_size, total_steps=recipe.total_steps,
        warmup=recipe.warmup, scale_learning_rate=False, learning_rate=recipe.learning_rate,
    )


def build_model(recipe, spec):
    import keras_preact

    kwargs = dict(
        layout="cifar",
        classes=_num_classes(recipe.dataset),
        classifier_activation=None,
        unit_ordering=spec["unit_ordering"],
        shortcut=spec["shortcut"],
    )
    if recipe.base_width:
        kwargs["base_width"] = recipe.base_width
    return keras_preact.PreActResNet(recipe.depth, **kwargs)


def read_rows(path):
    """Per-epoch rows of a `MetricsWriter` JSON file ([] if absent)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)["epochs"]


def train_variant(recipe, name, spec, out_dir, data, extra_callbacks=()):
    """Trains one variant (resuming if a backup exists); returns its result dict.

    The library's training path: `compile_for_paper` (PaperSGD, coupled L2,
    top-1/top-5 metrics), `fit_resumable` (backups inside the epoch) and
    `MetricsWriter` (per-epoch rows, kept across resumes).
    """
    work = os.path.join(out_dir, "work", name)
    backup_dir = os.path.join(work, "backup")
    metrics_path = os.path.join(work, "metrics.json")
    keras.utils.set_random_seed(recipe.seed)
    model = build_model(recipe, spec)
    schedule = make_schedule(recipe)
    compile_for_paper(model, schedule, momentum=recipe.momentum,
                      weight_decay=recipe.weight_decay)
    train_data, test_ds = make_datasets(recipe, data)
    state = read_backup(backup_dir)
    writer = MetricsWriter(os.path.join(work, "metrics.csv"), metrics_path)
    start = time.time()
    fit_resumable(
        model, train_data, epochs=recipe.epochs, steps_per_epoch=recipe.steps_per_epoch,
        total_steps=recipe.total_steps,
        backup_dir=backup_dir, validation_data=test_ds, verbose=2, log=_log,
        callbacks=[writer, keras.callbacks.TerminateOnNaN(), *extra_callbacks],
    )
    wall = time.time() - start
    rows = read_rows(metrics_path)
    last = rows[-1] if rows else {}
    diverged = last.get("loss") is None or last.get("val_top1") is None
    figure = paper_results.paper_figure(
        recipe.dataset, recipe.depth, spec["unit_ordering"], spec["shortcut"]
    )
    return {
        "variant": name,
        "unit_ordering": spec["unit_ordering"],
        "shortcut": spec["shortcut"],
        "depth": recipe.depth,
        "dataset": recipe.dataset,
        "seed": recipe.seed,
        "backend": keras.backend.backend(),
        "trainable_params": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
        "iterations": last.get("iterations", 0),
        "epochs_done": len(rows),
        "resumed_from_epoch": state.epoch if state else 0,
        "final_test_error": None if diverged else 1.0 - last["val_top1"],
        "final_train_loss": last.get("loss"),
        "status": "diverged" if diverged else "ok",
        "wall_time_s_last_session": round(wall, 2),
        "curves": rows,
        "schedule": schedule.get_config(),
        "paper_error": None if figure is None else figure.error,
        "paper_status": None if figure is None else figure.status,
    }


# --- the run -----------------------------------------------------------------


def result_path(out_dir, name):
    return os.path.join(out_dir, "results", f"{name}.json")


def _check_recipe(out_dir, recipe):
    path = os.path.join(out_dir, "recipe.json")
    current = recipe.as_dict()
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        if saved != json.loads(json.dumps(current)):
            diff = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
            raise ValueError(
                f"{out_dir!r} holds results of a different recipe (differs in "
                f"{diff}). Use another --output-dir, or the same settings."
            )
    else:
        atomic_write_json(path, current, indent=2, sort_keys=True)


def select_variants(table, names=None):
    variants = TABLES[str(table)]
    if not names:
        return dict(variants)
    unknown = [n for n in names if n not in variants]
    if unknown:
        raise ValueError(
            f"Unknown variants {unknown} for table {table}. Expected some of {list(variants)}."
        )
    return {n: variants[n] for n in names}


def plan(recipe, out_dir, variants=None, data=None):
    """Checks everything a run needs before it trains or writes anything but
    `recipe.json`: the recipe, the variants, the data, an earlier recipe in
    `out_dir`.

    Returns:
        `(variants, data)`: {name: spec} of the selected variants, and the
        `(x_train, y_train, x_test, y_test)` arrays.

    Raises:
        ValueError: a bad recipe or variant name, missing data files, or an
            `out_dir` holding another recipe's results.
    """
    recipe.validate()
    selected = select_variants(recipe.table, variants)
    if data is None:
        data = load_data(recipe)
    if not recipe.total_steps:
        recipe.derive(len(data[0]))
    _check_recipe(out_dir, recipe)
    return selected, data


def run(recipe, out_dir, variants=None, data=None, extra_callbacks=()):
    """Trains each variant not finished yet; returns all finished results.

    Args:
        recipe: a `Recipe` (derived with `Recipe.derive` here).
        out_dir: str. The run's folder.
        variants: list of variant names or None (the whole table).
        data: optional `(x_train, y_train, x_test, y_test)` arrays; loaded
            from `recipe.data_source` when None.
        extra_callbacks: additional Keras callbacks for every fit.

    Returns:
        dict {variant: result dict}, in table order.
    """
    selected, data = plan(recipe, out_dir, variants, data)
    _log(
        f"table {recipe.table}, depth {recipe.depth}, {recipe.dataset}: "
        f"{recipe.total_steps} iterations: {recipe.epochs} epochs of "
        f"{recipe.steps_per_epoch} steps (the last of "
        f"{last_epoch_steps(recipe.epochs, recipe.steps_per_epoch, recipe.total_steps)}), "
        f"batch {recipe.batch_size}, "
        f"backend {keras.backend.backend()}"
    )
    results = {}
    for name, spec in selected.items():
        path = result_path(out_dir, name)
        if os.path.exists(path):
            _log(f"{name}: done already, skipped ({path})")
        else:
            _log(f"{name}: training ({spec})")
            result = train_variant(recipe, name, spec, out_dir, data, extra_callbacks)
            atomic_write_json(path, result, indent=2, sort_keys=True)
            # The result is safe on disk: the backup is no longer needed.
            shutil.rmtree(os.path.join(out_dir, "work", name, "backup"), ignore_errors=True)
            _log(f"{name}: test error {result['final_test_error']} ({result['status']})")
            keras.backend.clear_session()
        with open(path) as f:
            results[name] = json.load(f)
    write_report(out_dir, recipe, results)
    return results


def results_table(recipe, results):
    """Markdown table: our test error next to the paper's figure ('n/a' if none)."""
    lines = [
        f"Table {recipe.table} variants, ResNet-{recipe.depth}, {recipe.dataset}, "
        f"{recipe.total_steps} iterations at batch {recipe.batch_size} "
        f"(schedule scale {recipe.schedule_scale}), seed {recipe.seed}, one run each.",
        "",
    ]
    if recipe.schedule_scale < 1 or recipe.train_examples or recipe.eval_examples:
        lines += [
            "**Shortened run (schedule scale < 1 or subset of the data): NOT a "
            "reproduction; the paper's figures are after 64k iterations, median of 5 runs.**",
            "",
        ]
    lines += [
        "| variant | unit ordering | shortcut | test error % (ours) | paper % | final train loss | iterations |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        figure = paper_results.paper_figure(
            recipe.dataset, recipe.depth, r["unit_ordering"], r["shortcut"]
        )
        paper = "n/a" if figure is None else figure.display()
        ours = "diverged" if r["status"] != "ok" else f"{100 * r['final_test_error']:.2f}"
        loss = "nan" if r["final_train_loss"] is None else f"{r['final_train_loss']:.4f}"
        lines.append(
            f"| {name} | {r['unit_ordering']} | {r['shortcut']} | {ours} | {paper} | "
            f"{loss} | {r['iterations']} |"
        )
    return "\n".join(lines) + "\n"


def write_report(out_dir, recipe, results):
    """Writes table.md and curves.png for the finished results."""
    from keras_preact.diagnostics import plot_training_curves

    if not results:
        return
    table = results_table(recipe, results)
    atomic_write(os.path.join(out_dir, "table.md"), table)
    curves = {name: r["curves"] for name, r in results.items() if r["curves"]}
    if curves:
        plot_training_curves(
            curves,
            os.path.join(out_dir, "curves.png"),
            title=f"ResNet-{recipe.depth} {recipe.dataset}, table {recipe.table} variants",
        )
    print(table, flush=True)


def build_parser():
    """The `argparse.ArgumentParser` of this script."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=training_cli.HelpFormatter)
    p.add_argument("--table", choices=sorted(TABLES), default="2",
                   help="2: unit orderings (identity shortcut); 1: shortcuts (original unit).")
    p.add_argument("--variants", default=None,
                   help="Comma-separated subset of the table's variants.")
    p.add_argument("--depth", type=int, default=110,
                   help="CIFAR depth: 6n+2 (basic units) or 9n+2 (bottleneck).")
    p.add_argument("--dataset", choices=DATASETS, default="cifar10", help="The dataset.")
    p.add_argument("--data-source", choices=SOURCES, default="tfds",
                   help="tfds (downloads), the official .tar.gz archive, or .npz files.")
    p.add_argument("--data-dir", default=None,
                   help="tfds data_dir, the archive (.tar.gz or folder), or the npz folder.")
    p.add_argument("--output-dir", required=True,
                   help="The run's folder (results, table, curves, backups).")
    p.add_argument("--batch-size", type=int, default=PAPER_CIFAR_BATCH_SIZE,
                   help="Training batch (the learning rate is not scaled with it).")
    p.add_argument("--schedule-scale", type=float, default=1.0,
                   help="Multiplies every iteration count (1.0 = the paper's 64k).")
    p.add_argument("--seed", type=int, default=0,
                   help="Seed of the weights, the shuffling and the augmentation.")
    p.add_argument("--warmup", action="store_true",
                   help="lr 0.01 for the first 400/64000 of the run (the paper's ResNet-110 warm-up).")
    p.add_argument("--learning-rate", type=float, default=PAPER_CIFAR_LEARNING_RATE,
                   help="Initial learning rate.")
    p.add_argument("--weight-decay", type=float, default=1e-4,
                   help="Coupled L2 weight decay on every parameter.")
    p.add_argument("--train-examples", type=int, default=None,
                   help="Use only the first N training images (quick looks).")
    p.add_argument("--eval-examples", type=int, default=None,
                   help="Evaluate on the first N test images (quick looks).")
    p.add_argument("--eval-batch-size", type=int, default=500, help="Evaluation batch.")
    p.add_argument("--steps-per-epoch", type=int, default=None,
                   help="Iterations between evaluations (default: one pass over the data).")
    p.add_argument("--base-width", type=int, default=None,
                   help="Narrower nets for smoke tests (default: the paper's 16).")
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    recipe = Recipe(
        table=args.table, depth=args.depth, dataset=args.dataset,
        data_source=args.data_source, data_dir=args.data_dir, batch_size=args.batch_size,
        schedule_scale=args.schedule_scale, seed=args.seed, warmup=args.warmup,
        learning_rate=args.learning_rate, weight_decay=args.weight_decay,
        train_examples=args.train_examples, eval_examples=args.eval_examples,
        eval_batch_size=args.eval_batch_size, base_width=args.base_width,
        steps_per_epoch=args.steps_per_epoch,
    )
    variants = args.variants.split(",") if args.variants else None
    try:
        _, data = plan(recipe, args.output_dir, variants)
    except ValueError as e:
        parser.error(str(e))
    run(recipe, args.output_dir, variants=variants, data=data)


if __name__ == "__main__":
    main()
