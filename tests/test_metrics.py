"""Metrics against scikit-learn, against independent hand-written versions, and against the paper's own numbers.

``cxrcore.metrics`` delegates to scikit-learn and scipy; the ``_reference_*`` functions below are the project's
former hand-written implementations, kept here only as cross-checks on random and edge cases.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from cxrcore.metrics import binary_metrics, confusion_counts, mcnemar, roc_auc, roc_curve, wilson_interval


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


# ------------------------------------------------------------------------------------------ reference versions
def _reference_normal_quantile(p: float) -> float:
    """Inverse of the standard normal CDF (Acklam's rational approximation, |error| < 1.2e-9)."""
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
         -3.066479806614716e01, 2.506628277459239e00)
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
         -1.328068155288572e01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
         4.374664141464968e00, 2.938163982698783e00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    low = 0.02425
    if p < low:
        q = math.sqrt(-2 * math.log(p))
        return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
            (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1
        )
    if p > 1 - low:
        return -_reference_normal_quantile(1 - p)
    q = p - 0.5
    r = q * q
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (
        ((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1
    )


def _reference_wilson(successes: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    z = _reference_normal_quantile(0.5 + confidence / 2)
    share = successes / total
    denominator = 1 + z * z / total
    centre = (share + z * z / (2 * total)) / denominator
    half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _reference_roc_curve(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(-probabilities, kind="mergesort")
    scores, truth = probabilities[order], labels[order]
    distinct = np.r_[np.flatnonzero(np.diff(scores)), truth.size - 1]
    true_positives = np.cumsum(truth)[distinct]
    false_positives = (distinct + 1) - true_positives
    positives, negatives = truth.sum(), truth.size - truth.sum()
    tpr = np.r_[0.0, true_positives / positives] if positives else np.full(distinct.size + 1, np.nan)
    fpr = np.r_[0.0, false_positives / negatives] if negatives else np.full(distinct.size + 1, np.nan)
    return fpr, tpr, np.r_[np.inf, scores[distinct]]


def _reference_roc_auc(labels: np.ndarray, probabilities: np.ndarray) -> float | None:
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(probabilities, kind="mergesort")
    sorted_values = probabilities[order]
    ranks = np.empty(probabilities.size, dtype=np.float64)
    boundaries = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1, probabilities.size]
    for start, stop in zip(boundaries[:-1], boundaries[1:]):
        ranks[order[start:stop]] = (start + stop + 1) / 2.0
    return float((ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _reference_confusion(labels: np.ndarray, predictions: np.ndarray) -> list[list[int]]:
    return [
        [int(((labels == 0) & (predictions == 0)).sum()), int(((labels == 0) & (predictions == 1)).sum())],
        [int(((labels == 1) & (predictions == 0)).sum()), int(((labels == 1) & (predictions == 1)).sum())],
    ]


def _reference_mcnemar_p(only_a: int, only_b: int) -> float:
    discordant = only_a + only_b
    if discordant == 0:
        return 1.0
    tail = sum(math.comb(discordant, k) for k in range(min(only_a, only_b) + 1)) / 2.0**discordant
    return min(1.0, 2.0 * tail)


def _random_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    size = int(rng.integers(1, 400))
    labels = (rng.random(size) < rng.uniform(0.05, 0.95)).astype(int)
    probabilities = np.clip(labels * rng.uniform(0, 0.5) + rng.random(size) * 0.6, 0, 1)
    return labels, probabilities.round(int(rng.integers(1, 4)))  # coarse rounding: many ties


# ------------------------------------------------------------------------------------------ cross-checks
@pytest.mark.parametrize("seed", range(40))
def test_roc_and_auc_agree_with_the_reference_versions(seed):
    labels, probabilities = _random_case(seed)
    for ours, reference in zip(roc_curve(labels, probabilities), _reference_roc_curve(labels, probabilities)):
        np.testing.assert_array_equal(ours, reference)
    auc = roc_auc(labels, probabilities)
    assert auc == _reference_roc_auc(labels, probabilities)  # bit for bit: U / (positives * negatives)
    if auc is not None:
        assert auc == pytest.approx(roc_auc_score(labels, probabilities), abs=1e-12)


@pytest.mark.parametrize("seed", range(40))
def test_binary_metrics_agree_with_the_reference_versions(seed):
    labels, probabilities = _random_case(seed)
    threshold = float(np.random.default_rng(seed).uniform(0.2, 0.8))
    metrics = binary_metrics(labels, probabilities, threshold=threshold)
    predictions = (probabilities >= threshold).astype(int)
    assert metrics["confusion_matrix"] == _reference_confusion(labels, predictions)
    assert confusion_counts(labels, predictions) == _reference_confusion(labels, predictions)
    correct = int((predictions == labels).sum())
    assert metrics["accuracy_ci95"] == pytest.approx(_reference_wilson(correct, labels.size), abs=1e-9)
    assert all(type(value) is int for row in metrics["confusion_matrix"] for value in row)


@pytest.mark.parametrize("seed", range(40))
def test_mcnemar_agrees_with_the_reference_version(seed):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(0, 300))
    labels = rng.integers(0, 2, size)
    a = np.where(rng.random(size) < rng.uniform(0.5, 0.95), labels, 1 - labels)
    b = np.where(rng.random(size) < rng.uniform(0.5, 0.95), labels, 1 - labels)
    result = mcnemar(labels, a, b)
    only_a = int(((a == labels) & (b != labels)).sum())
    only_b = int(((a != labels) & (b == labels)).sum())
    assert (result["b"], result["c"], result["discordant"]) == (only_a, only_b, only_a + only_b)
    assert result["p_value"] == pytest.approx(_reference_mcnemar_p(only_a, only_b), rel=1e-12)
    assert type(result["p_value"]) is float


def test_mcnemar_small_tables_are_exact():
    for discordant in range(1, 40):
        for only_a in range(discordant + 1):
            labels = np.ones(discordant, dtype=int)
            a = np.r_[np.ones(only_a), np.zeros(discordant - only_a)]
            result = mcnemar(labels, a, 1 - a)
            assert result["p_value"] == pytest.approx(_reference_mcnemar_p(only_a, discordant - only_a), rel=1e-13)


def test_wilson_interval_agrees_with_the_reference_version():
    for total in (1, 2, 3, 7, 20, 59, 60, 100, 1172):
        for successes in sorted({0, 1, total // 3, total // 2, total - 1, total}):
            ours = wilson_interval(successes, total)
            assert ours == pytest.approx(_reference_wilson(successes, total), abs=1e-9)
            assert 0.0 <= ours[0] <= successes / total <= ours[1] <= 1.0
        assert wilson_interval(0, total)[0] == 0.0 and wilson_interval(total, total)[1] == 1.0
    assert wilson_interval(30, 60, confidence=0.99) == pytest.approx(_reference_wilson(30, 60, 0.99), abs=1e-9)


# ------------------------------------------------------------------------------------------ edge cases
@pytest.mark.parametrize("label", [0, 1])
def test_one_class_only(label):
    labels = np.full(6, label)
    probabilities = np.array([0.1, 0.4, 0.4, 0.6, 0.9, 0.9])
    assert roc_auc(labels, probabilities) is None
    for ours, reference in zip(roc_curve(labels, probabilities), _reference_roc_curve(labels, probabilities)):
        np.testing.assert_array_equal(ours, reference)  # the absent class's rate is NaN in both
    fpr, tpr, _ = roc_curve(labels, probabilities)
    assert np.isnan(fpr if label == 1 else tpr).all()
    metrics = binary_metrics(labels, probabilities)
    assert metrics["auc"] is None
    assert metrics["confusion_matrix"] == _reference_confusion(labels, (probabilities >= 0.5).astype(int))


def test_all_tied_probabilities():
    labels = np.array([0, 1, 1, 0, 1])
    probabilities = np.full(5, 0.5)
    fpr, tpr, thresholds = roc_curve(labels, probabilities)
    np.testing.assert_array_equal(fpr, [0.0, 1.0])
    np.testing.assert_array_equal(tpr, [0.0, 1.0])
    np.testing.assert_array_equal(thresholds, [np.inf, 0.5])
    assert roc_auc(labels, probabilities) == 0.5


def test_no_discordant_pairs():
    labels = np.array([0, 1, 1, 0])
    for predictions_b in ([0, 1, 1, 0], [1, 0, 0, 1]):  # both right everywhere, or both wrong everywhere
        predictions = np.array(predictions_b)
        assert mcnemar(labels, predictions, predictions) == {"b": 0, "c": 0, "discordant": 0, "p_value": 1.0}


def test_no_images():
    empty = np.array([], dtype=int)
    assert mcnemar(empty, empty, empty) == {"b": 0, "c": 0, "discordant": 0, "p_value": 1.0}
    assert confusion_counts(empty, empty) == [[0, 0], [0, 0]]
    with pytest.raises(ValueError, match="total must be positive. Received: total=0"):
        wilson_interval(0, 0)
    with pytest.raises(ValueError, match="len\\(labels\\)=0"):
        roc_auc(empty, np.array([]))
    with pytest.raises(ValueError, match="len\\(labels\\)=0"):
        roc_curve(empty, np.array([]))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((5, 4), "successes must be in \\[0, total\\]"),
        ((-1, 4), "successes must be in \\[0, total\\]"),
        ((1, -3), "total must be positive"),
        ((1, 4, 1.0), "confidence must be in \\[0, 1\\)"),
    ],
)
def test_wilson_interval_validation(arguments, message):
    with pytest.raises(ValueError, match=message):
        wilson_interval(*arguments)


def test_mcnemar_needs_the_same_images():
    with pytest.raises(ValueError, match="same images"):
        mcnemar(np.array([0, 1]), np.array([0, 1]), np.array([0]))
