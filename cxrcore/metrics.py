"""Classification metrics as the paper reports them, plus what it should have reported.

The ROC curve and the confusion matrix come from scikit-learn; ROC AUC (as the Mann-Whitney U statistic),
McNemar's exact test and the Wilson interval from scipy. Neither needs TensorFlow, so the report image uses this
module too (docs/architecture.md, "Layers").
Label 1 is PNEUMONIA (positive).

- Paper columns: precision, recall, F1 — *macro* averages over the two classes (the paper's ResNet50 row,
  0.36/0.50/0.42 at 72.95% accuracy, is exactly macro averaging of a model that predicts PNEUMONIA always).
- Added: sensitivity, specificity, ROC AUC, confusion matrix, 95% Wilson interval of accuracy, a collapse flag
  (a model predicting one class for (nearly) every image), and McNemar's exact test between two models on
  the same test images.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.stats import binomtest, mannwhitneyu
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix
from sklearn.metrics import roc_curve as sklearn_roc_curve

__all__ = [
    "COLLAPSE_SHARE",
    "binary_metrics",
    "collapsed_share",
    "confusion_counts",
    "mcnemar",
    "roc_auc",
    "roc_curve",
    "wilson_interval",
]

#: A model whose predictions put at least this share of images in one class is flagged as collapsed.
COLLAPSE_SHARE = 0.98


def collapsed_share(positive_share: float) -> bool:
    """Whether predictions with this share called positive put (nearly) every image in one class.

    Args:
        positive_share: The share of images predicted positive, in [0, 1].

    Returns:
        True when it is at least :data:`COLLAPSE_SHARE` or at most ``1 - COLLAPSE_SHARE``.
    """
    return positive_share >= COLLAPSE_SHARE or positive_share <= 1 - COLLAPSE_SHARE


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
    """Wilson score interval of a proportion (good at small n and near 0/1, unlike the normal approximation).

    Args:
        successes: Number of successes, in ``[0, total]``.
        total: Number of trials, positive.
        confidence: Two-sided confidence level, in ``[0, 1)``.

    Returns:
        ``(low, high)``, clipped to ``[0, 1]``.

    Raises:
        ValueError: If ``total``, ``successes`` or ``confidence`` is out of range.
    """
    if total <= 0:
        raise ValueError(f"total must be positive. Received: total={total}")
    if not 0 <= successes <= total:
        raise ValueError(f"successes must be in [0, total]. Received: successes={successes}")
    if not 0 <= confidence < 1:
        raise ValueError(f"confidence must be in [0, 1). Received: confidence={confidence}")
    interval = binomtest(int(successes), int(total)).proportion_ci(confidence_level=confidence, method="wilson")
    return max(0.0, float(interval.low)), min(1.0, float(interval.high))


def roc_curve(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive rates, true-positive rates and thresholds, from the highest threshold (``inf``) down.

    One point per distinct probability (no point is dropped); a rate whose class is absent is ``NaN``.
    """
    labels, probabilities = _check(labels, probabilities)
    with warnings.catch_warnings():
        # One class only: scikit-learn warns and returns NaN rates for the absent class, which is the answer.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        fpr, tpr, thresholds = sklearn_roc_curve(labels, probabilities, pos_label=1, drop_intermediate=False)
    return fpr, tpr, thresholds


def roc_auc(labels: np.ndarray, probabilities: np.ndarray) -> float | None:
    """Area under the ROC curve (ties count one half); ``None`` when only one class is present.

    Computed as the Mann-Whitney U statistic of the positives' scores over ``positives x negatives`` (scipy), the
    same area as scikit-learn's ``roc_auc_score`` but exact up to one rounding: the trapezoid sum accumulates
    rounding that can move a printed digit (0.4875 shown as 0.488 instead of 0.487).
    """
    labels, probabilities = _check(labels, probabilities)
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return None
    statistic = mannwhitneyu(probabilities[labels == 1], probabilities[labels == 0], method="asymptotic").statistic
    return float(statistic / (positives * negatives))


def confusion_counts(labels: np.ndarray, predictions: np.ndarray) -> list[list[int]]:
    """The 2x2 confusion matrix ``[[tn, fp], [fn, tp]]`` (rows true NORMAL/PNEUMONIA, columns predicted).

    Args:
        labels: 0/1 ground truth.
        predictions: 0/1 predictions, same images in the same order.

    Returns:
        The counts as Python ints (all zero for no image).
    """
    labels = np.asarray(labels).astype(int).ravel()
    predictions = np.asarray(predictions).astype(int).ravel()
    if labels.size == 0 and predictions.size == 0:
        return [[0, 0], [0, 0]]
    matrix = sklearn_confusion_matrix(labels, predictions, labels=[0, 1])
    return [[int(count) for count in row] for row in matrix]


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
    (tn, fp), (fn, tp) = confusion_counts(labels, (probabilities >= threshold).astype(int))
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
    collapsed = collapsed_share(positive_share)
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
        ``{"b": A right & B wrong, "c": A wrong & B right, "discordant": b + c, "p_value": two-sided exact p}``
        (the binomial test of ``b`` in ``b + c`` trials at 1/2; 1.0 when no pair is discordant).
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
        p_value = min(1.0, float(binomtest(only_a, discordant, 0.5, alternative="two-sided").pvalue))
    return {"b": only_a, "c": only_b, "discordant": discordant, "p_value": p_value}
