"""The report's tables as strings: :class:`DisplayTable` cells for the paper's Tables 2-3 (plus our columns),
baseline -> augmented with McNemar p-values, ours vs the paper, the paper's confusion counts, collapsed models."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from cxrcore.report.paper import paper_confusion_matrix, paper_row
from cxrcore.report.tables.common import SIGNIFICANCE_LEVEL, display_name, model_order, present
from cxrcore.vocab import CONDITIONS, MODEL_NAMES

__all__ = [
    "DisplayTable",
    "collapsed_table",
    "condition_table",
    "delta_table",
    "paper_comparison_table",
    "paper_confusion_table",
]


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



def _fixed(digits: int) -> Callable[[float], str]:
    return lambda value: f"{value:.{digits}f}"


def _percent(digits: int) -> Callable[[float], str]:
    return lambda value: f"{100 * value:.{digits}f}"


def _mean_sd(row: pd.Series, metric: str, fmt: Callable[[float], str]) -> str:
    mean, sd = row.get(f"{metric}_mean", math.nan), row.get(f"{metric}_sd", math.nan)
    if not present(mean):
        return "–"
    if not present(sd):
        return fmt(mean)
    return f"{fmt(mean)} ± {fmt(sd)}"


def _p_value(value: float) -> str:
    if not present(value):
        return "–"
    if value < 0.001:
        return f"{value:.1e}"
    return f"{value:.3f}"


def _signed(value: float, fmt: Callable[[float], str]) -> str:
    if not present(value):
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
        cells.append(f"[{100 * low:.2f}, {100 * high:.2f}]" if present(low) and present(high) else "–")
        if row["collapsed_seeds"]:
            flagged.add(index)
            share = row["predicted_positive_share_mean"]
            cells.append(
                f"YES ({row['collapsed_seeds']}/{row['n_seeds']} seeds) → {row['collapsed_to']}"
                + (f", {100 * share:.1f}% predicted PNEUMONIA" if present(share) else "")
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
    return str(int(value)) if present(value) else "–"


def _signed_mean_sd(row: pd.Series, metric: str, fmt: Callable[[float], str]) -> str:
    mean, sd = row[f"{metric}_mean"], row[f"{metric}_sd"]
    if not present(mean):
        return "–"
    return _signed(mean, fmt) if not present(sd) else f"{_signed(mean, fmt)} ± {fmt(sd)}"


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
            if present(row["paper_precision"])
            else "not in paper"
        )
        paper_accuracy = f"{100 * row['paper_test_accuracy']:.2f}" if present(row["paper_test_accuracy"]) else "–"
        paper_collapsed = "yes" if row["paper_collapsed"] else "no"
        if not row["ran"]:
            rows.append([row["condition"], display_name(row["model"]), paper_prf, "not run", paper_accuracy,
                         "not run", "–", "–", "–", f"{paper_collapsed} / –"])
            continue
        ours_prf = f"{row['ours_precision']:.2f} / {row['ours_recall']:.2f} / {row['ours_f1']:.2f}"
        accuracy = _percent(2)(row["ours_accuracy_mean"])
        if present(row["ours_accuracy_sd"]):
            accuracy += f" ± {_percent(2)(row['ours_accuracy_sd'])}"
        interval = f"[{100 * row['ours_ci_low']:.2f}, {100 * row['ours_ci_high']:.2f}]"
        inside = "–" if not present(row["paper_test_accuracy"]) else ("yes" if row["paper_within_ci"] else "no")
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
        share_one_class = max(share_positive, 1 - share_positive) if present(share_positive) else math.nan
        rows.append([
            row["condition"], display_name(row["model"]), str(int(row["seed"])), str(row["collapsed_to"] or "?"),
            f"{100 * share_one_class:.1f}" if present(share_one_class) else "–",
            f"{100 * row['accuracy']:.2f}", f"{row['auc']:.3f}" if present(row["auc"]) else "–", row["prefix"],
        ])
    return DisplayTable(
        columns=["Condition", "Model", "Seed", "Collapsed to", "Share predicted as that class (%)",
                 "Test acc (%)", "AUC", "Output"],
        rows=rows,
        flagged=set(range(len(rows))),
        caption="Collapsed models (predict one class for nearly every test image)",
    )

