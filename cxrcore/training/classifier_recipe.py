"""The generalisation recipe of ``cxr-train-classifier``: schedule, early stopping, operating point (pure).

See docs/architecture.md#layers. Everything here reads the training history or the VALIDATION predictions only
(never the test split), and is a pure function of them, so a run resumed from a checkpoint (which restores the
history) makes the same decisions as the uninterrupted run:

* :func:`learning_rate_for_epoch`: ``constant`` (the paper), ``cosine`` (half-cosine decay over the epochs, to
  :data:`COSINE_FLOOR` of the base rate) or ``plateau`` (halved after :data:`PLATEAU_PATIENCE` epochs without a
  better validation score, replayed from the history);
* :func:`best_epoch` and :func:`should_stop`: the epoch with the best validation score and early stopping after
  ``patience`` epochs without improvement. The score is the ``selection_metric``: ``val_loss`` (lowest wins;
  ties: the earlier epoch) or ``val_auc`` (highest wins; ties: the lower validation loss, then the earlier
  epoch). AUC ranks the images the way the chosen threshold uses them and ignores calibration, which the
  validation loss mixes in; an undefined AUC (one class in validation) ranks last. Either way an epoch whose
  validation predictions collapse (``val_positive_share``: :data:`cxrcore.metrics.COLLAPSE_SHARE` or more of the
  images in one class at 0.5) ranks below every epoch whose predictions do not: a model that calls every image
  one class at 0.5 is not a usable model there, however well it ranks them (rows without the column, from older
  checkpoints, count as not collapsed);
* :func:`choose_threshold`: the highest decision threshold whose validation sensitivity reaches the target;
* :func:`operating_point`: accuracy, sensitivity and specificity of any probabilities at a threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from cxrcore.metrics import collapsed_share, confusion_counts, wilson_interval

__all__ = [
    "COSINE_FLOOR",
    "PLATEAU_FACTOR",
    "PLATEAU_PATIENCE",
    "SELECTION_METRICS",
    "VALIDATION_AUC",
    "VALIDATION_LOSS",
    "VALIDATION_POSITIVE_SHARE",
    "best_epoch",
    "choose_threshold",
    "learning_rate_for_epoch",
    "operating_point",
    "should_stop",
]

#: The history columns that model selection, early stopping and the plateau schedule can watch.
VALIDATION_LOSS = "val_loss"
VALIDATION_AUC = "val_auc"
SELECTION_METRICS = (VALIDATION_LOSS, VALIDATION_AUC)
#: The history column with the share of validation images predicted positive at 0.5 (a collapsed epoch ranks last).
VALIDATION_POSITIVE_SHARE = "val_positive_share"
#: ``cosine`` decays the rate from the base rate to this fraction of it at the last epoch.
COSINE_FLOOR = 0.01
#: ``plateau`` multiplies the rate by this factor ...
PLATEAU_FACTOR = 0.5
#: ... after this many epochs without a lower validation loss.
PLATEAU_PATIENCE = 2


def _scores(history: Sequence[dict[str, Any]], metric: str) -> list[tuple[float, float, float]]:
    """Per epoch, a key that is larger for a better epoch: ``(usable, -loss, 0)`` or ``(usable, auc, -loss)``,
    where ``usable`` is 0 for an epoch whose validation predictions collapsed at 0.5 and 1 otherwise."""
    if metric not in SELECTION_METRICS:
        raise ValueError(
            f"selection_metric must be one of {', '.join(SELECTION_METRICS)}. Received: selection_metric={metric!r}"
        )
    scores = []
    for row in history:
        if metric not in row or VALIDATION_LOSS not in row:
            raise ValueError(f"Every history row needs {metric!r} (a validation split). Received: row={dict(row)}")
        loss = float(row[VALIDATION_LOSS])
        share = row.get(VALIDATION_POSITIVE_SHARE)
        usable = 0.0 if share is not None and collapsed_share(float(share)) else 1.0
        if metric == VALIDATION_LOSS:
            scores.append((usable, -loss, 0.0))
        else:
            auc = float(row[VALIDATION_AUC])
            scores.append((usable, auc if math.isfinite(auc) else -math.inf, -loss))
    return scores


def learning_rate_for_epoch(
    schedule: str,
    base_rate: float,
    epoch: int,
    epochs: int,
    history: Sequence[dict[str, Any]],
    metric: str = VALIDATION_LOSS,
) -> float:
    """The learning rate of 0-based ``epoch`` of ``epochs``.

    Args:
        schedule: ``constant``, ``cosine`` or ``plateau``.
        base_rate: The settings' learning rate.
        epoch: The epoch about to run (0-based).
        epochs: The planned number of epochs.
        history: The rows of the epochs before ``epoch`` (``plateau`` reads their validation score).
        metric: The selection metric ``plateau`` watches.

    Raises:
        ValueError: Unknown schedule or metric, or ``plateau`` on a history without validation scores.
    """
    if schedule == "constant":
        return float(base_rate)
    if schedule == "cosine":
        progress = epoch / max(1, epochs - 1)
        return float(base_rate * (COSINE_FLOOR + (1.0 - COSINE_FLOOR) * 0.5 * (1.0 + math.cos(math.pi * progress))))
    if schedule != "plateau":
        raise ValueError(
            f"lr_schedule must be 'constant', 'cosine' or 'plateau'. Received: lr_schedule={schedule!r}"
        )
    rate = float(base_rate)
    best = (-math.inf, -math.inf, -math.inf)
    waited = 0
    for score in _scores(history[:epoch], metric):
        if score > best:
            best, waited = score, 0
            continue
        waited += 1
        if waited >= PLATEAU_PATIENCE:
            rate *= PLATEAU_FACTOR
            waited = 0
    return rate


def best_epoch(history: Sequence[dict[str, Any]], metric: str = VALIDATION_LOSS) -> int:
    """The 1-based epoch with the best validation score (the earliest of equal ones).

    Args:
        history: One row per epoch with ``val_loss`` (and ``val_auc`` for that metric).
        metric: ``val_loss`` (lowest wins) or ``val_auc`` (highest wins; ties: lower ``val_loss``). Epochs whose
            ``val_positive_share`` is collapsed rank below all others whatever their score.

    Raises:
        ValueError: Empty history, an unknown metric, or a row without the metric.
    """
    scores = _scores(history, metric)
    if not scores:
        raise ValueError("best_epoch needs at least one epoch. Received: history=[]")
    best = max(scores)
    return scores.index(best) + 1


def should_stop(history: Sequence[dict[str, Any]], patience: int, metric: str = VALIDATION_LOSS) -> bool:
    """Whether ``patience`` epochs have passed since the best one (``patience=0``: never)."""
    if patience <= 0 or not history:
        return False
    return len(history) - best_epoch(history, metric) >= patience


def choose_threshold(labels: np.ndarray, probabilities: np.ndarray, target_sensitivity: float) -> float | None:
    """The highest threshold ``t`` whose sensitivity (``probability >= t`` is PNEUMONIA) reaches the target.

    Args:
        labels: 0/1 VALIDATION labels (1 = PNEUMONIA).
        probabilities: The model's VALIDATION probabilities of PNEUMONIA.
        target_sensitivity: In (0, 1].

    Returns:
        The ``k``-th largest probability among the positives, ``k = ceil(target * positives)``; ``None`` when
        the labels hold no positive (no sensitivity to reach).

    Raises:
        ValueError: Mismatched shapes or a target outside (0, 1].
    """
    labels = np.asarray(labels).astype(int).ravel()
    probabilities = np.asarray(probabilities, dtype=np.float64).ravel()
    if labels.shape != probabilities.shape:
        raise ValueError(
            f"labels and probabilities must have the same length. Received: {labels.size} and {probabilities.size}"
        )
    if not 0.0 < target_sensitivity <= 1.0:
        raise ValueError(f"target_sensitivity must be in (0, 1]. Received: target_sensitivity={target_sensitivity}")
    positives = np.sort(probabilities[labels == 1])[::-1]
    if positives.size == 0:
        return None
    # Rounded first: 0.95 * 20 is 19.000000000000004 in floating point, which must need 19 positives, not 20.
    needed = max(1, math.ceil(round(target_sensitivity * positives.size, 9)))
    return float(positives[needed - 1])


def operating_point(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict[str, Any]:
    """``threshold``, ``n``, ``accuracy``, ``accuracy_ci95``, ``sensitivity``, ``specificity`` and
    ``confusion_matrix`` (rows true NORMAL/PNEUMONIA) of ``probability >= threshold`` as PNEUMONIA."""
    labels = np.asarray(labels).astype(int).ravel()
    predicted = (np.asarray(probabilities, dtype=np.float64).ravel() >= threshold).astype(int)
    (tn, fp), (fn, tp) = confusion_counts(labels, predicted)
    n = int(labels.size)
    low, high = wilson_interval(tp + tn, n) if n else (0.0, 0.0)
    return {
        "threshold": float(threshold),
        "n": n,
        "accuracy": (tp + tn) / n if n else 0.0,
        "accuracy_ci95": [low, high],
        "sensitivity": tp / (tp + fn) if tp + fn else 0.0,
        "specificity": tn / (tn + fp) if tn + fp else 0.0,
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }
