"""The external-test tables (``cxr external-test``): every classifier on each external set, its internal numbers
beside, and McNemar's test of baseline vs augmented (same model and seed) on the same external images.

Pure: frames and dicts in, frames and :class:`~cxrcore.report.tables.display.DisplayTable` out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from cxrcore.metrics import mcnemar
from cxrcore.report.collect.records import ExternalKey
from cxrcore.report.tables.common import SIGNIFICANCE_LEVEL, display_name, model_order
from cxrcore.report.tables.display import DisplayTable
from cxrcore.vocab import CONDITIONS

__all__ = ["EXTERNAL_COLUMNS", "external_mcnemar", "external_results", "external_tables"]

#: Columns of :func:`external_results`.
EXTERNAL_COLUMNS: tuple[str, ...] = (
    "dataset", "condition", "model", "seed", "n", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "auc",
    "sensitivity", "specificity", "tn", "fp", "fn", "tp", "internal_accuracy", "internal_auc",
)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def external_results(metrics: Mapping[ExternalKey, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per external-test output (columns :data:`EXTERNAL_COLUMNS`), in dataset, condition, model order."""
    rows = []
    for key, values in metrics.items():
        (tn, fp), (fn, tp) = values["confusion_matrix"]
        internal = values.get("internal") or {}
        low, high = values["accuracy_ci95"]
        rows.append({
            "dataset": key.dataset, "condition": key.classifier.condition, "model": key.classifier.model,
            "seed": key.classifier.seed, "n": int(values["n"]), "accuracy": _number(values["accuracy"]),
            "accuracy_ci_low": _number(low), "accuracy_ci_high": _number(high), "auc": _number(values.get("auc")),
            "sensitivity": _number(values["sensitivity"]), "specificity": _number(values["specificity"]),
            "tn": tn, "fp": fp, "fn": fn, "tp": tp,
            "internal_accuracy": _number(internal.get("accuracy")), "internal_auc": _number(internal.get("auc")),
        })
    frame = pd.DataFrame(rows, columns=list(EXTERNAL_COLUMNS))
    if frame.empty:
        return frame
    order = {name: index for index, name in enumerate(model_order(frame["model"].tolist()))}
    frame["_condition"] = frame["condition"].map({name: index for index, name in enumerate(CONDITIONS)})
    frame["_order"] = frame["model"].map(order)
    frame = frame.sort_values(["dataset", "_condition", "_order", "seed"]).drop(columns=["_condition", "_order"])
    return frame.reset_index(drop=True)


def external_mcnemar(predictions: Mapping[ExternalKey, pd.DataFrame], threshold: float = 0.5) -> pd.DataFrame:
    """McNemar's exact test of baseline vs augmented of the same model and seed on each external set.

    Images are matched by ``image_id``; a pair with no common image is left out.

    Returns:
        Columns ``dataset, model, seed, n, baseline_accuracy, augmented_accuracy, delta, b, c, p_value``.
    """
    columns = ["dataset", "model", "seed", "n", "baseline_accuracy", "augmented_accuracy", "delta", "b", "c",
               "p_value"]
    rows = []
    for key, baseline in predictions.items():
        if key.classifier.condition != "baseline":
            continue
        partner = next((frame for other, frame in predictions.items() if other.dataset == key.dataset
                        and other.classifier.condition == "augmented" and other.classifier.model == key.classifier.model
                        and other.classifier.seed == key.classifier.seed), None)
        if partner is None:
            continue
        both = baseline.merge(partner, on="image_id", suffixes=("_a", "_b"))
        if both.empty:
            continue
        labels = both["label_a"].to_numpy()
        first = (both["probability_a"].to_numpy() >= threshold).astype(int)
        second = (both["probability_b"].to_numpy() >= threshold).astype(int)
        test = mcnemar(labels, first, second)
        accuracy_a, accuracy_b = float((first == labels).mean()), float((second == labels).mean())
        rows.append([key.dataset, key.classifier.model, key.classifier.seed, len(both), accuracy_a, accuracy_b,
                     accuracy_b - accuracy_a, test["b"], test["c"], test["p_value"]])
    return pd.DataFrame(rows, columns=columns).sort_values(["dataset", "model", "seed"]).reset_index(drop=True)


def _percent(value: float) -> str:
    return "–" if math.isnan(value) else f"{100 * value:.2f}"


def _fraction(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.3f}"


def external_tables(results: pd.DataFrame, tests: pd.DataFrame, sources: Mapping[str, str]) -> list[DisplayTable]:
    """One metrics table per external set, then its McNemar table (when a baseline/augmented pair exists).

    Args:
        results: :func:`external_results`.
        tests: :func:`external_mcnemar`.
        sources: External dataset name -> the source it was imported from (as recorded).
    """
    tables = []
    for dataset, rows in results.groupby("dataset", sort=True):
        body = [
            [row.condition, display_name(row.model), str(row.seed), str(row.n), _percent(row.accuracy),
             f"{_percent(row.accuracy_ci_low)}–{_percent(row.accuracy_ci_high)}", _fraction(row.auc),
             _fraction(row.sensitivity), _fraction(row.specificity), f"{row.tn} / {row.fp} / {row.fn} / {row.tp}",
             _percent(row.internal_accuracy), _fraction(row.internal_auc)]
            for row in rows.itertuples()
        ]
        tables.append(DisplayTable(
            columns=["Condition", "Model", "Seed", "Images", "Accuracy %", "95% CI", "AUC", "Sensitivity",
                     "Specificity", "TN / FP / FN / TP", "Internal accuracy %", "Internal AUC"],
            rows=body,
            caption=f"External test {dataset} ({sources.get(dataset, 'source not recorded')}), threshold 0.5",
            notes=["Internal: the same classifier on the run's own test split, for comparison."],
        ))
        pairs = tests[tests["dataset"] == dataset]
        if len(pairs):
            tables.append(DisplayTable(
                columns=["Model", "Seed", "Images", "Baseline %", "Augmented %", "Δ points", "b", "c", "p (McNemar)"],
                rows=[[display_name(row.model), str(row.seed), str(row.n), _percent(row.baseline_accuracy),
                       _percent(row.augmented_accuracy), f"{100 * row.delta:+.2f}", str(row.b), str(row.c),
                       f"{row.p_value:.3g}" + (" *" if row.p_value < SIGNIFICANCE_LEVEL else "")]
                      for row in pairs.itertuples()],
                caption=f"Baseline vs augmented on the same external images ({dataset})",
                notes=[f"b: baseline right and augmented wrong; c: the reverse; * p < {SIGNIFICANCE_LEVEL}."],
            ))
    return tables
