"""Classification metrics as the paper reports them, plus what it should have reported.

Pure numpy (no TensorFlow, no scikit-learn), so the report image can use it. Label 1 is PNEUMONIA (positive).

- Paper columns: precision, recall, F1 — *macro* averages over the two classes (the paper's ResNet50 row,
  0.36/0.50/0.42 at 72.95% accuracy, is exactly macro averaging of a model that predicts PNEUMONIA always).
- Added: sensitivity, specificity, ROC AUC, confusion matrix, 95% Wilson interval of accuracy, a collapse flag
  (a model predicting one class for (nearly) every image), and McNemar's exact test between two models on
  the same test images.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "COLLAPSE_SHARE",
    "binary_metrics",
    "mcnemar",
    "roc_auc",
    "roc_curve",
    "wilson_interval",
]

#: A model whose predictions put at least this share of images in one class is flagged as collapsed.
COLLAPSE_SHARE = 0.98


def _check(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(int).ravel()
    probabilities = np.asarray(probabilities, dtype=np.float64).ravel()
    if labels.shape != probabilities.shape:
        raise ValueError(
            f"labels and probabilities must align. Received: len(labels)={labels.size}, "
            f"len(probabilities)={probabilities.size}"
        )
    if labels.size == 0:
        raise ValueError("Metrics need at least one example. Received: len(labels)=0")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0 or 1. Received: labels={sorted(set(labels.tolist()))[:5]}")
    if not np.isfinite(probabilities).all() or probabilities.min() < 0 or probabilities.max() > 1:
        raise ValueError("probabilities must be finite and in [0, 1]. Received: a value outside [0, 1] or NaN")
    return labels, probabilities


def wilson_interval(successes: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (good at small n and near 0/1, unlike the normal approximation)."""
    if total <= 0:
        raise ValueError(f"total must be positive. Received: total={total}")
    if not 0 <= successes <= total:
        raise ValueError(f"successes must be in [0, total]. Received: successes={successes}")
    z = _normal_quantile(0.5 + confidence / 2)
    share = successes / total
    denominator = 1 + z * z / total
    centre = (share + z * z / (2 * total)) / denominator
    half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _normal_quantile(p: float) -> float:
    """Inverse of the standard normal CDF (Acklam's rational approximation, |error| < 1.2e-9)."""
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1). Received: p={p}")
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
        return -_normal_quantile(1 - p)
    q = p - 0.5
    r = q * q
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (
        ((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1
    )


def roc_curve(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive rates, true-positive rates and thresholds, from the highest threshold down."""
    labels, probabilities = _check(labels, probabilities)
    order = np.argsort(-probabilities, kind="mergesort")
    scores, truth = probabilities[order], labels[order]
    distinct = np.r_[np.flatnonzero(np.diff(scores)), truth.size - 1]
    true_positives = np.cumsum(truth)[distinct]
    false_positives = (distinct + 1) - true_positives
    positives, negatives = truth.sum(), truth.size - truth.sum()
    tpr = np.r_[0.0, true_positives / positives] if positives else np.full(distinct.size + 1, np.nan)
    fpr = np.r_[0.0, false_positives / negatives] if negatives else np.full(distinct.size + 1, np.nan)
    return fpr, tpr, np.r_[np.inf, scores[distinct]]


def roc_auc(labels: np.ndarray, probabilities: np.ndarray) -> float | None:
    """Area under the ROC curve (ties count one half); ``None`` when only one class is present."""
    labels, probabilities = _check(labels, probabilities)
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = _average_ranks(probabilities)
    return float((ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(values.size, dtype=np.float64)
    boundaries = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1, values.size]
    for start, stop in zip(boundaries[:-1], boundaries[1:]):
        ranks[order[start:stop]] = (start + stop + 1) / 2.0
    return ranks


def binary_metrics(labels: np.ndarray, probabilities: np.ndarray, *, threshold: float = 0.5) -> dict[str, Any]:
    """Every metric of the report for one model on one test set.

    Args:
        labels: 0/1 ground truth (1 = PNEUMONIA).
        probabilities: Predicted probability of PNEUMONIA.
        threshold: Decision threshold.

    Returns:
        A JSON-ready dict: ``n``, ``accuracy``, ``accuracy_ci95``, ``precision_macro``, ``recall_macro``,
        ``f1_macro``, per-class precision/recall/F1, ``sensitivity``, ``specificity``, ``auc``,
        ``confusion_matrix`` (rows true NORMAL/PNEUMONIA, columns predicted), ``predicted_positive_share``,
        ``collapsed`` and ``collapsed_to``.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1). Received: threshold={threshold}")
    labels, probabilities = _check(labels, probabilities)
    predictions = (probabilities >= threshold).astype(int)
    tn = int(((labels == 0) & (predictions == 0)).sum())
    fp = int(((labels == 0) & (predictions == 1)).sum())
    fn = int(((labels == 1) & (predictions == 0)).sum())
    tp = int(((labels == 1) & (predictions == 1)).sum())
    n = labels.size

    def ratio(numerator: int, denominator: int) -> float:
        return numerator / denominator if denominator else 0.0

    per_class = {}
    for name, (true_pos, false_pos, false_neg) in {"NORMAL": (tn, fn, fp), "PNEUMONIA": (tp, fp, fn)}.items():
        precision = ratio(true_pos, true_pos + false_pos)
        recall = ratio(true_pos, true_pos + false_neg)
        f1 = ratio(2 * true_pos, 2 * true_pos + false_pos + false_neg)
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": true_pos + false_neg}
    correct = tp + tn
    low, high = wilson_interval(correct, n)
    positive_share = (tp + fp) / n
    collapsed = positive_share >= COLLAPSE_SHARE or positive_share <= 1 - COLLAPSE_SHARE
    return {
        "n": n,
        "threshold": threshold,
        "accuracy": correct / n,
        "accuracy_ci95": [low, high],
        "precision_macro": float(np.mean([c["precision"] for c in per_class.values()])),
        "recall_macro": float(np.mean([c["recall"] for c in per_class.values()])),
        "f1_macro": float(np.mean([c["f1"] for c in per_class.values()])),
        "per_class": per_class,
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "auc": roc_auc(labels, probabilities),
        "confusion_matrix": [[tn, fp], [fn, tp]],
        "predicted_positive_share": positive_share,
        "collapsed": bool(collapsed),
        "collapsed_to": ("PNEUMONIA" if positive_share >= 0.5 else "NORMAL") if collapsed else None,
    }


def mcnemar(labels: np.ndarray, predictions_a: np.ndarray, predictions_b: np.ndarray) -> dict[str, Any]:
    """McNemar's exact (binomial) test of two classifiers on the same images.

    Args:
        labels: 0/1 ground truth.
        predictions_a: 0/1 predictions of model A (e.g. baseline).
        predictions_b: 0/1 predictions of model B (e.g. augmented), same images in the same order.

    Returns:
        ``{"b": A right & B wrong, "c": A wrong & B right, "p_value": two-sided exact p}``.
    """
    labels = np.asarray(labels).astype(int).ravel()
    a = np.asarray(predictions_a).astype(int).ravel()
    b = np.asarray(predictions_b).astype(int).ravel()
    if not labels.size == a.size == b.size:
        raise ValueError(
            f"McNemar needs the same images for both models. Received: sizes {labels.size}, {a.size}, {b.size}"
        )
    a_right, b_right = a == labels, b == labels
    only_a = int((a_right & ~b_right).sum())
    only_b = int((~a_right & b_right).sum())
    discordant = only_a + only_b
    if discordant == 0:
        p_value = 1.0
    else:
        smaller = min(only_a, only_b)
        tail = sum(math.comb(discordant, k) for k in range(smaller + 1)) / 2.0**discordant
        p_value = min(1.0, 2.0 * tail)
    return {"b": only_a, "c": only_b, "discordant": discordant, "p_value": p_value}
