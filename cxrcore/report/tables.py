"""The report's tables: the paper's Tables 2-3 with added columns, baseline -> augmented deltas with McNemar
tests, ours vs the paper, and a tidy long frame of everything for ``tables.csv``.

Computations return plain frames (numbers, ``NaN`` where undefined); :class:`DisplayTable` holds the formatted
strings the renderer puts into Markdown and HTML.

Conventions:

- Precision, recall and F1 are macro averages (as the paper's tables); sensitivity is the PNEUMONIA recall and
  specificity the NORMAL recall.
- With several seeds a cell shows ``mean ± sd`` (sample standard deviation, ``ddof=1``); the 95% CI column
  then shows the mean of the per-seed Wilson bounds (the between-seed spread is the ``± sd``).
- McNemar's exact test compares the baseline and the augmented model *of the same seed* on the test images
  both scored (matched by ``image_id``). Several seeds: one test per seed plus a combined summary (mean
  accuracy change ± sd, seeds improved, seeds significant, range of p). Tests are not corrected for multiple
  comparisons across models.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from cxrcore.metrics import mcnemar
from cxrcore.report.collect import ClassifierKey, RunData
from cxrcore.report.paper import paper_confusion_matrix, paper_frame, paper_row
from cxrcore.vocab import CONDITIONS, MODEL_DISPLAY_NAMES, MODEL_NAMES

__all__ = [
    "DISPLAY_NAMES",
    "Analysis",
    "SIGNIFICANCE_LEVEL",
    "SUMMARY_METRICS",
    "DisplayTable",
    "analyze",
    "collapsed_table",
    "combined_deltas",
    "condition_table",
    "delta_table",
    "display_name",
    "model_order",
    "paired_deltas",
    "paper_comparison",
    "paper_comparison_table",
    "paper_confusion_table",
    "summarize",
    "tidy_tables",
]

#: Two-sided level at which a McNemar p-value is called significant in the summaries.
SIGNIFICANCE_LEVEL = 0.05

#: Names as the paper's tables print them (our model names otherwise): :data:`cxrcore.vocab.MODEL_DISPLAY_NAMES`.
DISPLAY_NAMES: dict[str, str] = dict(MODEL_DISPLAY_NAMES)

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


@dataclasses.dataclass
class DisplayTable:
    """A formatted table: every cell a string.

    Attributes:
        columns: Header cells.
        rows: Body rows, each as long as ``columns``.
        flagged: Row indices to emphasise (collapsed models), drawn as warning rows.
        caption: One line above the table.
        notes: Lines under the table.
    """

    columns: list[str]
    rows: list[list[str]]
    flagged: set[int] = dataclasses.field(default_factory=set)
    caption: str = ""
    notes: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        for index, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(
                    f"Every row needs one cell per column ({len(self.columns)}). Received: row {index} has "
                    f"{len(row)} cells"
                )


def display_name(model: str) -> str:
    """The model's display name (the paper's spelling for the study's models)."""
    return DISPLAY_NAMES.get(model, model)


def model_order(models: Sequence[str]) -> list[str]:
    """``models`` in the paper's table order, unknown models after them alphabetically."""
    rank = {name: index for index, name in enumerate(MODEL_NAMES)}
    return sorted(set(models), key=lambda name: (rank.get(name, len(rank)), name))


@dataclasses.dataclass
class Analysis:
    """The computed tables of one run (numbers, not strings).

    Attributes:
        summary: :func:`summarize` of the results.
        per_seed: :func:`paired_deltas`.
        combined: :func:`combined_deltas`.
        comparison: :func:`paper_comparison`.
    """

    summary: pd.DataFrame
    per_seed: pd.DataFrame
    combined: pd.DataFrame
    comparison: pd.DataFrame

    def tidy(self, results: pd.DataFrame) -> pd.DataFrame:
        """:func:`tidy_tables` of this analysis."""
        return tidy_tables(results, self.summary, self.per_seed, self.combined, self.comparison)


def analyze(data: RunData) -> Analysis:
    """Computes every table of the report from the collected run."""
    summary = summarize(data.results)
    per_seed = paired_deltas(data)
    return Analysis(summary, per_seed, combined_deltas(per_seed), paper_comparison(summary))


# ---------------------------------------------------------------------------------------------- numbers
def _finite(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


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
                    float(baseline["threshold"]) if _finite(baseline["threshold"]) else 0.5,
                    float(augmented["threshold"]) if _finite(augmented["threshold"]) else 0.5,
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


# ---------------------------------------------------------------------------------------------- formatting
def _fixed(digits: int) -> Callable[[float], str]:
    return lambda value: f"{value:.{digits}f}"


def _percent(digits: int) -> Callable[[float], str]:
    return lambda value: f"{100 * value:.{digits}f}"


def _mean_sd(row: pd.Series, metric: str, fmt: Callable[[float], str]) -> str:
    mean, sd = row.get(f"{metric}_mean", math.nan), row.get(f"{metric}_sd", math.nan)
    if not _finite(mean):
        return "–"
    if not _finite(sd):
        return fmt(mean)
    return f"{fmt(mean)} ± {fmt(sd)}"


def _p_value(value: float) -> str:
    if not _finite(value):
        return "–"
    if value < 0.001:
        return f"{value:.1e}"
    return f"{value:.3f}"


def _signed(value: float, fmt: Callable[[float], str]) -> str:
    if not _finite(value):
        return "–"
    text = fmt(value)
    return text if text.startswith("-") else f"+{text}"


#: The paper's columns, then ours: (summary metric, header, formatter).
_PAPER_COLUMNS: tuple[tuple[str, str, Callable[[float], str]], ...] = (
    ("precision_macro", "Precision", _fixed(2)),
    ("recall_macro", "Recall", _fixed(2)),
    ("f1_macro", "F1 Score", _fixed(2)),
    ("train_accuracy", "Train Accuracy (%)", _percent(2)),
    ("accuracy", "Test Accuracy (%)", _percent(2)),
    ("test_loss", "Loss", _fixed(4)),
    ("train_time_s", "Train Time (s)", _fixed(0)),
)
_ADDED_COLUMNS: tuple[tuple[str, str, Callable[[float], str]], ...] = (
    ("auc", "AUC", _fixed(3)),
    ("sensitivity", "Sensitivity", _fixed(3)),
    ("specificity", "Specificity", _fixed(3)),
)


def condition_table(summary: pd.DataFrame, condition: str) -> DisplayTable | None:
    """Table 2 (``baseline``) or Table 3 (``augmented``) in the paper's columns plus the added ones.

    Returns:
        The table, or ``None`` when the condition has no result.
    """
    frame = summary[summary["condition"] == condition] if not summary.empty else summary
    if frame.empty:
        return None
    columns = ["Model", *(header for _, header, _ in _PAPER_COLUMNS), *(header for _, header, _ in _ADDED_COLUMNS)]
    columns += ["Accuracy 95% CI (%)", "Collapsed", "n", "Seeds"]
    rows, flagged = [], set()
    several = bool((frame["n_seeds"] > 1).any())
    for index, (_, row) in enumerate(frame.iterrows()):
        cells = [display_name(row["model"])]
        cells += [_mean_sd(row, metric, fmt) for metric, _, fmt in (*_PAPER_COLUMNS, *_ADDED_COLUMNS)]
        low, high = row["accuracy_ci_low_mean"], row["accuracy_ci_high_mean"]
        cells.append(f"[{100 * low:.2f}, {100 * high:.2f}]" if _finite(low) and _finite(high) else "–")
        if row["collapsed_seeds"]:
            flagged.add(index)
            share = row["predicted_positive_share_mean"]
            cells.append(
                f"YES ({row['collapsed_seeds']}/{row['n_seeds']} seeds) → {row['collapsed_to']}"
                + (f", {100 * share:.1f}% predicted PNEUMONIA" if _finite(share) else "")
            )
        else:
            cells.append("no")
        cells.append(str(row["n_min"]) if row["n_min"] == row["n_max"] else f"{row['n_min']}–{row['n_max']}")
        cells.append(", ".join(str(seed) for seed in row["seeds"]))
        rows.append(cells)
    notes = [
        "Precision, recall and F1 are macro averages over NORMAL and PNEUMONIA, as in the paper; sensitivity is "
        "the PNEUMONIA recall, specificity the NORMAL recall; Loss is the test loss."
    ]
    if several:
        notes.append(
            "Cells show mean ± sample standard deviation over seeds; the 95% CI column is the mean of the per-seed "
            "Wilson intervals."
        )
    else:
        notes.append("One seed per model: the 95% CI is the Wilson interval of the test accuracy.")
    if flagged:
        notes.append("Rows marked as collapsed predict (nearly) one class for every image: their scores are not "
                     "evidence of learning.")
    caption = {
        "baseline": "Table 2 — comparison of CNN models without DCGAN (real training images only)",
        "augmented": "Table 3 — comparison of CNN models with DCGAN images added to the training split",
    }.get(condition, condition)
    return DisplayTable(columns=columns, rows=rows, flagged=flagged, caption=caption, notes=notes)


def delta_table(per_seed: pd.DataFrame, combined: pd.DataFrame) -> DisplayTable | None:
    """Baseline -> augmented per model (per seed and combined when several seeds), with McNemar p-values.

    Returns:
        The table, or ``None`` when no model ran under both conditions.
    """
    if per_seed.empty:
        return None
    columns = [
        "Model", "Seed", "n paired", "Baseline acc (%)", "Augmented acc (%)", "Δ acc (pp)", "Δ F1", "Δ AUC",
        "b (only baseline right)", "c (only augmented right)", "McNemar p", "Paper Δ acc (pp)", "Note",
    ]
    rows = []
    flagged: set[int] = set()
    for model in model_order(per_seed["model"]):
        group = per_seed[per_seed["model"] == model]
        published = _paper_delta(model)
        for _, row in group.iterrows():
            notes = [str(row["note"])] if row["note"] else []
            collapsed = [name for name in CONDITIONS if row[f"{name}_collapsed"]]
            if collapsed:
                notes.insert(0, f"COLLAPSED: {' and '.join(collapsed)}")
                flagged.add(len(rows))
            rows.append(
                [
                    display_name(model),
                    str(int(row["seed"])),
                    str(int(row["n_paired"])),
                    f"{100 * row['baseline_accuracy']:.2f}",
                    f"{100 * row['augmented_accuracy']:.2f}",
                    _signed(row["delta_accuracy"], _percent(2)),
                    _signed(row["delta_f1"], _fixed(3)),
                    _signed(row["delta_auc"], _fixed(3)),
                    _count(row["b"]),
                    _count(row["c"]),
                    _p_value(row["p_value"]),
                    published,
                    "; ".join(notes),
                ]
            )
        if len(group) > 1:
            summary = combined[combined["model"] == model].iloc[0]
            p_range = f"{_p_value(summary['p_value_min'])}–{_p_value(summary['p_value_max'])}"
            rows.append(
                [
                    display_name(model),
                    f"all {summary['n_seeds']} (mean ± sd)",
                    "",
                    "",
                    "",
                    _signed_mean_sd(summary, "delta_accuracy", _percent(2)),
                    _signed_mean_sd(summary, "delta_f1", _fixed(3)),
                    _signed_mean_sd(summary, "delta_auc", _fixed(3)),
                    _count(summary["b_total"]),
                    _count(summary["c_total"]),
                    p_range,
                    published,
                    f"improved in {summary['seeds_improved']}/{summary['n_seeds']} seeds, significant (p < "
                    f"{SIGNIFICANCE_LEVEL}) in {summary['seeds_significant']}/{summary['seeds_tested']}",
                ]
            )
    notes = [
        "Δ = augmented − baseline of the same model and seed, each on its own test set. McNemar: exact two-sided "
        "binomial test on the discordant pairs (b, c) over the test images both models scored (matched by "
        "image_id).",
        f"Combined rows: mean ± sd of the per-seed changes, summed b and c, and the range of the per-seed p-values "
        f"(seeds share the test images, so their tests are not independent and are not pooled). Significance at "
        f"{SIGNIFICANCE_LEVEL}, uncorrected for the number of models compared.",
        "Paper Δ: Table 3 minus Table 2 test accuracy; the paper's augmented test set contained synthetic images.",
    ]
    return DisplayTable(
        columns=columns, rows=rows, flagged=flagged, caption="Baseline → augmented, per model", notes=notes
    )


def _count(value: Any) -> str:
    return str(int(value)) if _finite(value) else "–"


def _signed_mean_sd(row: pd.Series, metric: str, fmt: Callable[[float], str]) -> str:
    mean, sd = row[f"{metric}_mean"], row[f"{metric}_sd"]
    if not _finite(mean):
        return "–"
    return _signed(mean, fmt) if not _finite(sd) else f"{_signed(mean, fmt)} ± {fmt(sd)}"


def _paper_delta(model: str) -> str:
    baseline, augmented = paper_row("baseline", model), paper_row("augmented", model)
    if baseline is None or augmented is None:
        return "–"
    return _signed((augmented.test_accuracy_percent - baseline.test_accuracy_percent) / 100, _percent(2))


def paper_comparison_table(comparison: pd.DataFrame) -> DisplayTable:
    """Formats :func:`paper_comparison`."""
    columns = [
        "Condition", "Model", "Paper P / R / F1", "Ours P / R / F1", "Paper test acc (%)", "Ours test acc (%)",
        "Ours 95% CI (%)", "Ours − paper (pp)", "Paper inside our CI", "Collapsed (paper / ours)",
    ]
    rows, flagged = [], set()
    for index, (_, row) in enumerate(comparison.iterrows()):
        paper_prf = (
            f"{row['paper_precision']:.2f} / {row['paper_recall']:.2f} / {row['paper_f1']:.2f}"
            if _finite(row["paper_precision"])
            else "not in paper"
        )
        paper_accuracy = f"{100 * row['paper_test_accuracy']:.2f}" if _finite(row["paper_test_accuracy"]) else "–"
        paper_collapsed = "yes" if row["paper_collapsed"] else "no"
        if not row["ran"]:
            rows.append([row["condition"], display_name(row["model"]), paper_prf, "not run", paper_accuracy,
                         "not run", "–", "–", "–", f"{paper_collapsed} / –"])
            continue
        ours_prf = f"{row['ours_precision']:.2f} / {row['ours_recall']:.2f} / {row['ours_f1']:.2f}"
        accuracy = _percent(2)(row["ours_accuracy_mean"])
        if _finite(row["ours_accuracy_sd"]):
            accuracy += f" ± {_percent(2)(row['ours_accuracy_sd'])}"
        interval = f"[{100 * row['ours_ci_low']:.2f}, {100 * row['ours_ci_high']:.2f}]"
        inside = "–" if not _finite(row["paper_test_accuracy"]) else ("yes" if row["paper_within_ci"] else "no")
        ours_collapsed = f"{int(row['ours_collapsed_seeds'])}/{int(row['n_seeds'])} seeds"
        if row["ours_collapsed_seeds"]:
            flagged.add(index)
        rows.append([
            row["condition"], display_name(row["model"]), paper_prf, ours_prf, paper_accuracy, accuracy, interval,
            _signed(row["difference_accuracy"], _percent(2)), inside, f"{paper_collapsed} / {ours_collapsed}",
        ])
    notes = [
        "Paper: Table 2 (baseline) and Table 3 (augmented) as published. The paper's augmented test set holds "
        "1,254 images against 1,172 real test images for the baseline (inferred from its collapsed rows), so its "
        "Table 3 scores synthetic images as test images; ours never does under the clean protocol.",
        "Different data, split and protocol make the comparison descriptive, not a replication test; see Methods.",
    ]
    return DisplayTable(columns=columns, rows=rows, flagged=flagged, caption="The paper's numbers beside ours",
                        notes=notes)


def paper_confusion_table() -> DisplayTable:
    """The paper's confusion counts (Section 4 text), completed from the inferred test sets."""
    rows = []
    for condition in CONDITIONS:
        for model in MODEL_NAMES:
            derived = paper_confusion_matrix(condition, model)
            if derived is None:
                rows.append([condition, display_name(model), "–", "–", "–", "–", "–", "no count quoted"])
                continue
            (tn, fp), (fn, tp) = derived["matrix"]
            quoted = ", ".join(f"{name.upper()} {value}" for name, value in derived["quoted"].items()
                               if value is not None)
            source = f"quoted {quoted}; derived {', '.join(derived['derived'])}"
            rows.append([condition, display_name(model), str(tn), str(fp), str(fn), str(tp),
                         f"{100 * derived['accuracy']:.2f}", source])
    return DisplayTable(
        columns=["Condition", "Model", "TN", "FP", "FN", "TP", "Implied test acc (%)", "Source"],
        rows=rows,
        caption="The paper's confusion matrices (counts quoted in its text, the rest derived)",
        notes=["Test sets inferred from the collapsed rows: 317 NORMAL + 855 PNEUMONIA (baseline), 339 + 915 "
               "(augmented). Every implied accuracy equals the published one to two decimals."],
    )


def collapsed_table(results: pd.DataFrame) -> DisplayTable | None:
    """Every collapsed classifier output (per seed), or ``None`` when none collapsed."""
    collapsed = results[results["collapsed"].astype(bool)] if not results.empty else results
    if collapsed.empty:
        return None
    rows = []
    for _, row in collapsed.iterrows():
        share_positive = row["predicted_positive_share"]
        share_one_class = max(share_positive, 1 - share_positive) if _finite(share_positive) else math.nan
        rows.append([
            row["condition"], display_name(row["model"]), str(int(row["seed"])), str(row["collapsed_to"] or "?"),
            f"{100 * share_one_class:.1f}" if _finite(share_one_class) else "–",
            f"{100 * row['accuracy']:.2f}", f"{row['auc']:.3f}" if _finite(row["auc"]) else "–", row["prefix"],
        ])
    return DisplayTable(
        columns=["Condition", "Model", "Seed", "Collapsed to", "Share predicted as that class (%)",
                 "Test acc (%)", "AUC", "Output"],
        rows=rows,
        flagged=set(range(len(rows))),
        caption="Collapsed models (predict one class for nearly every test image)",
    )


# ---------------------------------------------------------------------------------------------- tidy export
def tidy_tables(
    results: pd.DataFrame,
    summary: pd.DataFrame,
    per_seed: pd.DataFrame,
    combined: pd.DataFrame,
    comparison: pd.DataFrame,
) -> pd.DataFrame:
    """Every table of the report in one long frame for ``tables.csv``.

    Returns:
        Columns ``table, condition, model, seed, statistic, metric, value``: one row per number or label.
        ``table`` is one of ``per_seed`` (each classifier output), ``summary`` (``statistic`` mean or sd),
        ``delta_per_seed``, ``delta_combined``, ``paper`` (published Tables 2-3) and ``paper_vs_ours``.
        Accuracies are fractions, except the paper's ``*_percent`` columns.
    """
    parts = []
    if not results.empty:
        keep = [column for column in results.columns if column not in ("marker_digest",)]
        parts.append(_melt(results[keep], "per_seed", ("condition", "model", "seed")))
    if not summary.empty:
        for statistic in ("mean", "sd"):
            columns = [column for column in summary.columns if column.endswith(f"_{statistic}")]
            frame = summary[["condition", "model", *columns]].rename(
                columns={column: column[: -len(statistic) - 1] for column in columns}
            )
            parts.append(_melt(frame, "summary", ("condition", "model"), statistic=statistic))
        extra = summary[["condition", "model", "n_seeds", "collapsed_seeds", "collapsed_to", "protocols"]]
        parts.append(_melt(extra, "summary", ("condition", "model"), statistic="value"))
    if not per_seed.empty:
        parts.append(_melt(per_seed, "delta_per_seed", ("model", "seed")))
    if not combined.empty:
        frame = combined.assign(seeds=combined["seeds"].map(lambda seeds: " ".join(str(s) for s in seeds)))
        parts.append(_melt(frame, "delta_combined", ("model",)))
    parts.append(_melt(paper_frame(), "paper", ("condition", "model")))
    if not comparison.empty:
        parts.append(_melt(comparison, "paper_vs_ours", ("condition", "model")))
    tidy = pd.concat(parts, ignore_index=True).reindex(
        columns=["table", "condition", "model", "seed", "statistic", "metric", "value"]
    )
    tidy["seed"] = pd.to_numeric(tidy["seed"], errors="coerce").astype("Int64")
    return tidy


def _melt(frame: pd.DataFrame, table: str, ids: tuple[str, ...], statistic: str = "") -> pd.DataFrame:
    frame = frame.copy()
    for column in frame.columns:
        if column not in ids:
            frame[column] = frame[column].map(_cell).astype(object)
    long = frame.melt(id_vars=list(ids), var_name="metric", value_name="value")
    long.insert(0, "table", table)
    long["statistic"] = statistic
    return long.dropna(subset=["value"])


def _cell(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return " ".join(str(item) for item in value)
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (float, np.floating)) and math.isnan(value):
        return None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value

