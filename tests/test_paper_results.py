"""keras_preact.paper_results: the paper's figures and parameter counts as data."""

import pytest

from keras_preact import paper_results


def test_paper_results_pinned():
    assert paper_results.paper_error("cifar10", 110, "full_preact") == 6.37
    assert paper_results.paper_error("cifar10", 164, "bn_after_addition") == 6.50
    assert paper_results.paper_error("cifar10", 110, "original", "exclusive_gating") == 8.70
    assert paper_results.paper_error("cifar10", 110, "original", "conv1x1") == 12.22
    assert paper_results.paper_figure("cifar10", 110, "original", "dropout").status == "fail"
    assert paper_results.paper_error("cifar100", 164, "original") == 25.16
    assert paper_results.paper_error("cifar100", 1001, "full_preact") == 22.71
    assert "4.62" in paper_results.paper_figure("cifar10", 1001).note
    # Table 1 is the original unit at depth 110 only.
    assert paper_results.paper_figure("cifar10", 110, "full_preact", "conv1x1") is None
    assert paper_results.paper_figure("cifar10", 164, "original", "conv1x1") is None
    assert paper_results.paper_error("cifar100", 110, "full_preact") is None
    with pytest.raises(ValueError, match="Invalid dataset='imagenet'"):
        paper_results.paper_error("imagenet", 152)


def test_paper_parameter_counts():
    counts = paper_results.PARAMETER_COUNTS
    assert counts[("PreActResNet164", 100)] == 1_726_388
    assert counts[("PreActResNet18", 1000)] == 11_687_720
    assert len(set(counts.values())) == len(counts)  # a count names one network
    assert paper_results.paper_network(1_703_258) == ("PreActResNet164", 10)
    assert paper_results.paper_network(11_200_370) is None  # PreActResNet18, 50 classes
