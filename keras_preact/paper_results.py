"""The paper's numbers as data (He et al. 2016, arXiv 1603.05027).

Trainable parameter counts of its networks, and test errors in percent.
CIFAR results are the median of 5 runs (as the paper reports them).
Sources: the paper's Table 1 (shortcut variants, CIFAR-10 ResNet-110 with
the ORIGINAL unit), Table 2 (unit orderings, CIFAR-10 ResNet-110 /
ResNet-164, identity shortcut) and Table 3 / the main CIFAR results
(ResNet-164 / 1001, CIFAR-10 / CIFAR-100), as restated in the team's
reference notes.

`None` with `status="fail"` marks a run the paper reports as not converging
(the dropout shortcut).

Example:

>>> paper_error("cifar10", 110, unit_ordering="full_preact")
6.37
>>> paper_error("cifar100", 1001)
22.71
>>> paper_error("cifar100", 20) is None
True
"""

import dataclasses

from keras_preact.validation import check_choice

DATASETS = ("cifar10", "cifar100")


@dataclasses.dataclass(frozen=True)
class PaperFigure:
    """One number from the paper.

    Attributes:
        error: float or None. Test error in percent (None when the run failed).
        source: str. Where in the paper it comes from.
        status: str. "ok" or "fail" (did not converge).
        note: str. Caveats (e.g. other batch size).
    """

    error: object
    source: str
    status: str = "ok"
    note: str = ""

    def display(self):
        """Short text for a table cell: '6.37', 'fail', ..."""
        if self.status == "fail":
            return "fail"
        return f"{self.error:.2f}"


# Table 2: unit orderings (identity shortcut), CIFAR-10, {depth: error}.
TABLE2_CIFAR10 = {
    "original": {110: 6.61, 164: 5.93},
    "bn_after_addition": {110: 8.17, 164: 6.50},
    "relu_before_addition": {110: 7.84, 164: 6.14},
    "relu_only_preact": {110: 6.71, 164: 5.91},
    "full_preact": {110: 6.37, 164: 5.46},
}

# Table 1: shortcut variants on CIFAR-10 ResNet-110 with the ORIGINAL unit.
# None = fails to converge. (The paper's Table 1 has several rows per
# variant, e.g. different gate-bias inits; these are the figures in the
# team's reference notes: constant scaling 0.5, dropout 0.5.)
TABLE1_CIFAR10_RESNET110 = {
    "identity": 6.61,
    "constant_scaling": 12.35,
    "exclusive_gating": 8.70,
    "shortcut_only_gating": 6.91,
    "conv1x1": 12.22,
    "dropout": None,
}
TABLE1_DEPTH = 110
TABLE1_UNIT_ORDERING = "original"

# Main CIFAR results (Table 3 of the paper): {(ordering, depth): {dataset: error}}.
MAIN_CIFAR = {
    ("original", 164): {"cifar10": 5.93, "cifar100": 25.16},
    ("full_preact", 164): {"cifar10": 5.46, "cifar100": 24.33},
    ("original", 1001): {"cifar10": 7.61, "cifar100": 27.82},
    ("full_preact", 1001): {"cifar10": 4.92, "cifar100": 22.71},
}
# ResNet-1001 pre-act on CIFAR-10 at batch 64 (the Torch release).
FULL_PREACT_1001_CIFAR10_BATCH64 = 4.62

# Trainable parameters (BN moving statistics not included) of the paper's
# networks, by (keras_preact model, classes): ImageNet networks in the
# fb.resnet.torch layout the authors trained.
PARAMETER_COUNTS = {
    ("PreActResNet20", 100): 278_132,
    ("PreActResNet56", 100): 861_428,
    ("PreActResNet110", 100): 1_736_372,
    ("PreActResNet164", 100): 1_726_388,
    ("PreActResNet1001", 100): 10_350_836,
    ("PreActResNet164", 10): 1_703_258,
    ("PreActResNet1001", 10): 10_327_706,
    ("PreActResNet18", 1000): 11_687_720,
    ("PreActResNet34", 1000): 21_795_880,
    ("PreActResNet50", 1000): 25_549_352,
    ("PreActResNet101", 1000): 44_541_480,
    ("PreActResNet152", 1000): 60_185_128,
    ("PreActResNet200", 1000): 64_666_152,
}

# ImageNet single-crop (top-1, top-5) error, for completeness.
IMAGENET = {
    ("full_preact", 152, 224): (21.1, 5.5),
    ("full_preact", 200, 320): (20.7, 5.3),
}


def paper_figure(dataset, depth, unit_ordering="full_preact", shortcut="identity"):
    """The paper's test error for a CIFAR configuration, or None if not reported.

    Args:
        dataset: str. "cifar10" or "cifar100".
        depth: int. Network depth (110, 164, 1001 have figures).
        unit_ordering: str. One of the paper's unit orderings.
        shortcut: str. One of the paper's shortcut variants.

    Returns:
        A `PaperFigure` (error in %), or None when the paper has no number for it.

    Raises:
        ValueError: `dataset` is not "cifar10" or "cifar100".
    """
    check_choice("dataset", dataset, DATASETS)
    if shortcut == "identity":
        if dataset == "cifar10" and depth in TABLE2_CIFAR10.get(unit_ordering, {}):
            return PaperFigure(TABLE2_CIFAR10[unit_ordering][depth], f"Table 2 (ResNet-{depth})")
        main = MAIN_CIFAR.get((unit_ordering, depth), {})
        if dataset in main:
            note = ""
            if (unit_ordering, depth, dataset) == ("full_preact", 1001, "cifar10"):
                note = f"{FULL_PREACT_1001_CIFAR10_BATCH64} at batch 64"
            return PaperFigure(main[dataset], "Table 3", note=note)
        return None
    if (
        dataset == "cifar10"
        and depth == TABLE1_DEPTH
        and unit_ordering == TABLE1_UNIT_ORDERING
        and shortcut in TABLE1_CIFAR10_RESNET110
    ):
        error = TABLE1_CIFAR10_RESNET110[shortcut]
        if error is None:
            return PaperFigure(None, "Table 1 (ResNet-110)", status="fail",
                               note="fails to converge")
        return PaperFigure(error, "Table 1 (ResNet-110)")
    return None


def paper_network(trainable_parameters):
    """The paper's network with this trainable parameter count, or None.

    Args:
        trainable_parameters: int. A model's trainable parameter count.

    Returns:
        `(model name, classes)`, a key of `PARAMETER_COUNTS`, or None when
        no network of the paper has that count.

    Example:

    >>> paper_network(1_726_388)
    ('PreActResNet164', 100)
    >>> paper_network(11_200_370) is None
    True
    """
    return next((key for key, count in PARAMETER_COUNTS.items()
                 if count == trainable_parameters), None)


def paper_error(dataset, depth, unit_ordering="full_preact", shortcut="identity"):
    """The paper's test error in percent (float), or None (absent or failed)."""
    figure = paper_figure(dataset, depth, unit_ordering, shortcut)
    return None if figure is None else figure.error
