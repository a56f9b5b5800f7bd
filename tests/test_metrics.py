"""Metrics against scikit-learn and the paper's own numbers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from cxrcore.metrics import binary_metrics, mcnemar, roc_auc, roc_curve, wilson_interval


@pytest.fixture(scope="module")
def sample():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 500)
    probabilities = np.clip(labels * 0.35 + rng.random(500) * 0.65, 0, 1).round(2)  # ties on purpose
    return labels, probabilities


def test_macro_scores_and_auc_match_sklearn(sample):
    labels, probabilities = sample
    metrics = binary_metrics(labels, probabilities)
    predictions = (probabilities >= 0.5).astype(int)
    assert metrics["precision_macro"] == pytest.approx(precision_score(labels, predictions, average="macro"))
    assert metrics["recall_macro"] == pytest.approx(recall_score(labels, predictions, average="macro"))
    assert metrics["f1_macro"] == pytest.approx(f1_score(labels, predictions, average="macro"))
    assert metrics["auc"] == pytest.approx(roc_auc_score(labels, probabilities))
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    assert tn + fp + fn + tp == 500
    assert metrics["sensitivity"] == pytest.approx(tp / (tp + fn))
    assert metrics["specificity"] == pytest.approx(tn / (tn + fp))
    assert not metrics["collapsed"]


def test_roc_curve_matches_sklearn(sample):
    labels, probabilities = sample
    fpr, tpr, _ = roc_curve(labels, probabilities)
    sk_fpr, sk_tpr, _ = sk_roc_curve(labels, probabilities, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)


def test_papers_resnet50_row_is_a_collapsed_model():
    # Table 2: ResNet50 0.36 / 0.50 / 0.42 at 72.95% test accuracy = always "PNEUMONIA" on a 73/27 test set.
    labels = np.r_[np.zeros(317), np.ones(855)]
    metrics = binary_metrics(labels, np.full(labels.size, 0.8))
    assert round(metrics["precision_macro"], 2) == 0.36
    assert round(metrics["recall_macro"], 2) == 0.50
    assert round(metrics["f1_macro"], 2) == 0.42
    assert round(100 * metrics["accuracy"], 2) == 72.95
    assert metrics["collapsed"] and metrics["collapsed_to"] == "PNEUMONIA"
    assert metrics["auc"] == 0.5


def test_wilson_interval_known_value():
    low, high = wilson_interval(81, 100)
    assert low == pytest.approx(0.7222, abs=1e-3) and high == pytest.approx(0.8749, abs=1e-3)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0


def test_mcnemar_exact():
    labels = np.ones(20, dtype=int)
    a = np.r_[np.ones(10), np.zeros(10)]  # A right on 10
    b = np.r_[np.ones(10), np.ones(8), np.zeros(2)]  # B right on 18: 8 discordant in B's favour
    result = mcnemar(labels, a, b)
    assert (result["b"], result["c"]) == (0, 8)
    assert result["p_value"] == pytest.approx(2 / 2**8)
    assert mcnemar(labels, a, a)["p_value"] == 1.0


def test_single_class_auc_is_none():
    assert roc_auc(np.ones(5), np.linspace(0, 1, 5)) is None


@pytest.mark.parametrize(
    ("labels", "probabilities", "message"),
    [
        ([0, 1], [0.5], "len\\(labels\\)=2"),
        ([], [], "len\\(labels\\)=0"),
        ([0, 2], [0.1, 0.2], "labels must be 0 or 1"),
        ([0, 1], [0.1, 1.2], "probabilities must be finite"),
    ],
)
def test_validation(labels, probabilities, message):
    with pytest.raises(ValueError, match=message):
        binary_metrics(np.array(labels), np.array(probabilities))
