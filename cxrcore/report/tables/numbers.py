"""The report's numbers (plain frames, ``NaN`` where undefined): summaries over seeds, baseline -> augmented
changes with McNemar's exact test per seed, and ours beside the paper's published tables."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from cxrcore.metrics import mcnemar
from cxrcore.report.collect import ClassifierKey, RunData
from cxrcore.report.paper import paper_row
from cxrcore.report.tables.common import SIGNIFICANCE_LEVEL, model_order, present
from cxrcore.vocab import CONDITIONS, MODEL_NAMES

__all__ = ["SUMMARY_METRICS", "combined_deltas", "paired_deltas", "paper_comparison", "summarize"]

#: Numeric columns of :attr:`RunData.results` that :func:`summarize` averages over seeds.
SUMMARY_METRICS: tuple[str, ...] = (
    "accuracy",
    "accuracy_ci_low",
    "accuracy_ci_high",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "sensitivity",
    "specificity",
    "auc",
    "train_accuracy",
    "test_loss",
    "train_time_s",
    "predicted_positive_share",
    "tn",
    "fp",
    "fn",
    "tp",
    "n",
)



def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample standard deviation over seeds, per condition and model.

    Args:
        results: :attr:`RunData.results`.

    Returns:
        One row per (condition, model) with ``seeds`` (sorted list), ``n_seeds``, ``<metric>_mean`` and
        ``<metric>_sd`` for every :data:`SUMMARY_METRICS` entry (``sd`` is ``NaN`` for one seed),
        ``collapsed_seeds``, ``collapsed_to`` (sorted, comma separated), ``test_contaminated`` (any seed),
        ``protocols``, ``n_min`` and ``n_max``.
    """
    rows = []
    for (condition, model), group in results.groupby(["condition", "model"], sort=False):
        row: dict[str, Any] = {
            "condition": condition,
            "model": model,
            "seeds": sorted(int(seed) for seed in group["seed"]),
            "n_seeds": len(group),
        }
        for metric in SUMMARY_METRICS:
            values = pd.to_numeric(group[metric], errors="coerce").astype(float)
            finite = values.dropna()
            row[f"{metric}_mean"] = float(finite.mean()) if len(finite) else math.nan
            row[f"{metric}_sd"] = float(finite.std(ddof=1)) if len(finite) > 1 else math.nan
        collapsed = group[group["collapsed"].astype(bool)]
        row["collapsed_seeds"] = len(collapsed)
        row["collapsed_to"] = ", ".join(sorted({str(value) for value in collapsed["collapsed_to"] if value}))
        row["test_contaminated"] = bool(group["test_contaminated"].astype(bool).any())
        row["protocols"] = ", ".join(sorted(set(group["protocol"].astype(str))))
        row["n_min"] = int(group["n"].min())
        row["n_max"] = int(group["n"].max())
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["_condition"] = frame["condition"].map({name: index for index, name in enumerate(CONDITIONS)})
    frame["_model"] = frame["model"].map({name: index for index, name in enumerate(model_order(frame["model"]))})
    return frame.sort_values(["_condition", "_model"]).drop(columns=["_condition", "_model"]).reset_index(drop=True)


def paired_deltas(data: RunData) -> pd.DataFrame:
    """Baseline -> augmented per model and seed, with McNemar's exact test on the shared test images.

    Args:
        data: The collected run.

    Returns:
        One row per (model, seed) run under both conditions: ``model, seed, n_paired, n_baseline,
        n_augmented, baseline_accuracy, augmented_accuracy, delta_accuracy, delta_f1, delta_auc,
        delta_sensitivity, delta_specificity, paired_baseline_accuracy, paired_augmented_accuracy, b, c,
        discordant, p_value, note``. ``b`` counts images only the baseline got right, ``c`` images only the
        augmented model got right. Accuracies and deltas are fractions computed on each model's full test set;
        the McNemar counts on the images both scored.
    """
    results = data.results
    rows = []
    if results.empty:
        return pd.DataFrame(rows)
    indexed = results.set_index(["condition", "model", "seed"])
    for model in model_order(results["model"]):
        for seed in sorted(int(seed) for seed in results.loc[results["model"] == model, "seed"].unique()):
            if ("baseline", model, seed) not in indexed.index or ("augmented", model, seed) not in indexed.index:
                continue
            baseline = indexed.loc[("baseline", model, seed)]
            augmented = indexed.loc[("augmented", model, seed)]
            row: dict[str, Any] = {
                "model": model,
                "seed": seed,
                "n_baseline": int(baseline["n"]),
                "n_augmented": int(augmented["n"]),
                "baseline_accuracy": float(baseline["accuracy"]),
                "augmented_accuracy": float(augmented["accuracy"]),
                "baseline_collapsed": bool(baseline["collapsed"]),
                "augmented_collapsed": bool(augmented["collapsed"]),
            }
            for metric, name in (
                ("accuracy", "delta_accuracy"),
                ("f1_macro", "delta_f1"),
                ("auc", "delta_auc"),
                ("sensitivity", "delta_sensitivity"),
                ("specificity", "delta_specificity"),
            ):
                row[name] = float(augmented[metric]) - float(baseline[metric])
            row.update(
                _mcnemar_on_shared(
                    data.predictions[ClassifierKey("baseline", model, seed)],
                    data.predictions[ClassifierKey("augmented", model, seed)],
                    float(baseline["threshold"]) if present(baseline["threshold"]) else 0.5,
                    float(augmented["threshold"]) if present(augmented["threshold"]) else 0.5,
                )
            )
            rows.append(row)
    return pd.DataFrame(rows)


def _mcnemar_on_shared(
    baseline: pd.DataFrame, augmented: pd.DataFrame, baseline_threshold: float, augmented_threshold: float
) -> dict[str, Any]:
    merged = baseline.merge(augmented, on="image_id", suffixes=("_baseline", "_augmented"), validate="one_to_one")
    notes = []
    if len(merged) != len(baseline) or len(merged) != len(augmented):
        notes.append(
            f"test sets differ: {len(baseline)} baseline and {len(augmented)} augmented images, "
            f"{len(merged)} shared"
        )
    disagree = merged["label_baseline"] != merged["label_augmented"]
    if disagree.any():
        notes.append(f"{int(disagree.sum())} shared images carry different labels and are left out")
        merged = merged[~disagree]
    empty = {
        "n_paired": len(merged),
        "paired_baseline_accuracy": math.nan,
        "paired_augmented_accuracy": math.nan,
        "b": math.nan,
        "c": math.nan,
        "discordant": math.nan,
        "p_value": math.nan,
    }
    if merged.empty:
        notes.append("no shared test image: McNemar not computed")
        return {**empty, "note": "; ".join(notes)}
    labels = merged["label_baseline"].to_numpy()
    predictions_baseline = (merged["probability_baseline"].to_numpy() >= baseline_threshold).astype(int)
    predictions_augmented = (merged["probability_augmented"].to_numpy() >= augmented_threshold).astype(int)
    test = mcnemar(labels, predictions_baseline, predictions_augmented)
    return {
        "n_paired": len(merged),
        "paired_baseline_accuracy": float((predictions_baseline == labels).mean()),
        "paired_augmented_accuracy": float((predictions_augmented == labels).mean()),
        "b": test["b"],
        "c": test["c"],
        "discordant": test["discordant"],
        "p_value": test["p_value"],
        "note": "; ".join(notes),
    }


def combined_deltas(per_seed: pd.DataFrame) -> pd.DataFrame:
    """One summary row per model over its paired seeds.

    Args:
        per_seed: :func:`paired_deltas`.

    Returns:
        ``model, n_seeds, seeds, delta_accuracy_mean, delta_accuracy_sd, delta_f1_mean, delta_f1_sd,
        delta_auc_mean, delta_auc_sd, seeds_improved, seeds_significant, p_value_min, p_value_max, b_total,
        c_total``. Seeds share the test images, so the per-seed tests are not independent and are not pooled
        into one p-value.
    """
    rows = []
    if per_seed.empty:
        return pd.DataFrame(rows)
    for model, group in per_seed.groupby("model", sort=False):
        row: dict[str, Any] = {"model": model, "n_seeds": len(group), "seeds": sorted(int(s) for s in group["seed"])}
        for metric in ("delta_accuracy", "delta_f1", "delta_auc", "delta_sensitivity", "delta_specificity"):
            values = pd.to_numeric(group[metric], errors="coerce").astype(float).dropna()
            row[f"{metric}_mean"] = float(values.mean()) if len(values) else math.nan
            row[f"{metric}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        p_values = pd.to_numeric(group["p_value"], errors="coerce").astype(float).dropna()
        row["seeds_improved"] = int((group["delta_accuracy"] > 0).sum())
        row["seeds_worse"] = int((group["delta_accuracy"] < 0).sum())
        row["seeds_significant"] = int((p_values < SIGNIFICANCE_LEVEL).sum())
        row["seeds_tested"] = len(p_values)
        row["p_value_min"] = float(p_values.min()) if len(p_values) else math.nan
        row["p_value_max"] = float(p_values.max()) if len(p_values) else math.nan
        row["b_total"] = float(pd.to_numeric(group["b"], errors="coerce").sum())
        row["c_total"] = float(pd.to_numeric(group["c"], errors="coerce").sum())
        rows.append(row)
    return pd.DataFrame(rows)


def paper_comparison(summary: pd.DataFrame) -> pd.DataFrame:
    """Ours vs the published tables, one row per paper (condition, model) and any extra model we ran.

    Args:
        summary: :func:`summarize`.

    Returns:
        ``condition, model, ran, paper_precision, paper_recall, paper_f1, paper_test_accuracy,
        paper_collapsed, ours_precision, ours_recall, ours_f1, ours_accuracy_mean, ours_accuracy_sd,
        ours_ci_low, ours_ci_high, difference_accuracy, paper_within_ci, ours_collapsed_seeds, n_seeds``
        (accuracies as fractions).
    """
    indexed = {(row["condition"], row["model"]): row for _, row in summary.iterrows()} if not summary.empty else {}
    rows = []
    models = model_order([*MODEL_NAMES, *(model for _, model in indexed)])
    for condition in CONDITIONS:
        for model in models:
            published = paper_row(condition, model)
            ours = indexed.get((condition, model))
            if published is None and ours is None:
                continue
            row: dict[str, Any] = {"condition": condition, "model": model, "ran": ours is not None}
            row["paper_precision"] = published.precision if published else math.nan
            row["paper_recall"] = published.recall if published else math.nan
            row["paper_f1"] = published.f1 if published else math.nan
            row["paper_test_accuracy"] = published.test_accuracy_percent / 100 if published else math.nan
            row["paper_collapsed"] = bool(published and published.recall == 0.50 and published.precision <= 0.40)
            if ours is not None:
                row["ours_precision"] = ours["precision_macro_mean"]
                row["ours_recall"] = ours["recall_macro_mean"]
                row["ours_f1"] = ours["f1_macro_mean"]
                row["ours_accuracy_mean"] = ours["accuracy_mean"]
                row["ours_accuracy_sd"] = ours["accuracy_sd"]
                row["ours_ci_low"] = ours["accuracy_ci_low_mean"]
                row["ours_ci_high"] = ours["accuracy_ci_high_mean"]
                row["ours_collapsed_seeds"] = int(ours["collapsed_seeds"])
                row["n_seeds"] = int(ours["n_seeds"])
                if published:
                    row["difference_accuracy"] = ours["accuracy_mean"] - row["paper_test_accuracy"]
                    row["paper_within_ci"] = bool(
                        ours["accuracy_ci_low_mean"] <= row["paper_test_accuracy"] <= ours["accuracy_ci_high_mean"]
                    )
            rows.append(row)
    columns = [
        "condition", "model", "ran", "paper_precision", "paper_recall", "paper_f1", "paper_test_accuracy",
        "paper_collapsed", "ours_precision", "ours_recall", "ours_f1", "ours_accuracy_mean", "ours_accuracy_sd",
        "ours_ci_low", "ours_ci_high", "difference_accuracy", "paper_within_ci", "ours_collapsed_seeds", "n_seeds",
    ]
    return pd.DataFrame(rows).reindex(columns=columns)

