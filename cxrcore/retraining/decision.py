"""The promotion rule (pure): promote a challenger over the champion only when it is better, and not by chance.

Promote when there is no champion; otherwise only when the challenger's accuracy on the same holdout gains at
least ``margin`` and McNemar's exact test on the images the two models disagree about is significant
(``p < alpha``) in the challenger's favour (docs/architecture.md#scheduled-retraining).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from cxrcore.metrics import mcnemar

__all__ = ["Comparison", "decide"]

_FLOAT_TOLERANCE = 1e-12


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A promotion decision on one holdout.

    Attributes:
        decision: ``promote`` or ``keep``.
        reason: Why, in words (``no champion yet``, ``challenger +0.30 pp < margin 0.50 pp``, ...).
        challenger_accuracy: Accuracy of the challenger on the holdout.
        champion_accuracy: Accuracy of the champion on the same images (``None`` without a champion).
        delta: ``challenger_accuracy - champion_accuracy`` (``None`` without a champion).
        mcnemar: :func:`cxrcore.metrics.mcnemar` with A = champion, B = challenger: ``b`` images only the
            champion gets right, ``c`` only the challenger, ``p_value`` (``None`` without a champion).
    """

    decision: str
    reason: str
    challenger_accuracy: float
    champion_accuracy: float | None = None
    delta: float | None = None
    mcnemar: dict[str, Any] | None = None

    @property
    def p_value(self) -> float | None:
        """McNemar's two-sided exact p-value, or ``None`` without a champion."""
        return None if self.mcnemar is None else float(self.mcnemar["p_value"])


def _points(value: float) -> str:
    return f"{value * 100:.2f} pp"


def decide(
    labels: np.ndarray,
    challenger_predictions: np.ndarray,
    champion_predictions: np.ndarray | None,
    *,
    margin: float,
    alpha: float,
) -> Comparison:
    """The promotion rule (pure).

    Promote when there is no champion; otherwise only when both hold:

    * the challenger's accuracy is at least the champion's plus ``margin``;
    * McNemar's exact test on the images the two models disagree about is significant (``p < alpha``) and in
      the challenger's favour (it is right on more of them than the champion).

    Args:
        labels: 0/1 ground truth of the holdout.
        challenger_predictions: 0/1 predictions of the challenger, same images and order.
        champion_predictions: 0/1 predictions of the champion, or ``None`` when there is none.
        margin: Accuracy gain required (0.005 = 0.5 percentage points).
        alpha: Significance level of McNemar's test.

    Returns:
        The :class:`Comparison`, whose ``reason`` names every condition that failed.
    """
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"margin must be in [0, 1). Received: margin={margin}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1). Received: alpha={alpha}")
    labels = np.asarray(labels).astype(int).ravel()
    challenger = np.asarray(challenger_predictions).astype(int).ravel()
    if labels.size == 0 or labels.size != challenger.size:
        raise ValueError(
            f"decide needs the challenger's predictions of every holdout image. Received: "
            f"len(labels)={labels.size}, len(challenger_predictions)={challenger.size}"
        )
    challenger_accuracy = float((challenger == labels).mean())
    if champion_predictions is None:
        return Comparison("promote", "no champion yet", challenger_accuracy)
    champion = np.asarray(champion_predictions).astype(int).ravel()
    test = mcnemar(labels, champion, challenger)
    champion_accuracy = float((champion == labels).mean())
    delta = challenger_accuracy - champion_accuracy
    p_value = float(test["p_value"])
    failures = []
    if delta < margin - _FLOAT_TOLERANCE:
        failures.append(f"challenger {delta * 100:+.2f} pp < margin {_points(margin)}")
    if test["c"] <= test["b"]:
        failures.append(
            f"McNemar: challenger right on {test['c']} images the champion missed, wrong on {test['b']} it got "
            f"right (p={p_value:.3g})"
        )
    elif p_value >= alpha:
        failures.append(f"McNemar p={p_value:.3g} >= {alpha:g}")
    if failures:
        return Comparison("keep", "; ".join(failures), challenger_accuracy, champion_accuracy, delta, test)
    reason = (
        f"challenger {delta * 100:+.2f} pp >= margin {_points(margin)} and McNemar p={p_value:.3g} < {alpha:g} "
        f"({test['c']} images only the challenger gets right, {test['b']} only the champion)"
    )
    return Comparison("promote", reason, challenger_accuracy, champion_accuracy, delta, test)
