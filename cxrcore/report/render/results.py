"""The report's result sections: Tables 2-3, baseline -> augmented, paper vs ours, collapsed models, figure
sections, and the outputs the report could not use."""

from __future__ import annotations

from collections.abc import Mapping

from cxrcore.metrics import COLLAPSE_SHARE
from cxrcore.report.collect import RunData
from cxrcore.report.paper import PAPER_NOTES
from cxrcore.report.render.blocks import Block, Bullets, FigureRef, Paragraph
from cxrcore.report.tables import (
    Analysis,
    DisplayTable,
    collapsed_table,
    condition_table,
    delta_table,
    display_name,
    paper_comparison_table,
    paper_confusion_table,
)

__all__ = [
    "collapsed_section",
    "condition_section",
    "delta_section",
    "figure_section",
    "incomplete_section",
    "paper_section",
]


def condition_section(analysis: Analysis, condition: str) -> list[Block]:
    """Table 2 (``baseline``) or Table 3 (``augmented``), or a "Not run" paragraph."""
    table = condition_table(analysis.summary, condition)
    if table is None:
        return [Paragraph(f"Not run: no committed classifier output under classifiers/{condition}/ for this run.")]
    return [table]


def delta_section(data: RunData, analysis: Analysis) -> list[Block]:
    """Baseline -> augmented per model and seed with McNemar tests, the unpaired models and the significant
    changes."""
    table = delta_table(analysis.per_seed, analysis.combined)
    conditions = data.conditions()
    if table is None:
        if "augmented" not in conditions:
            return [Paragraph("Not run: the augmented condition has no committed classifier output, so there is "
                              "nothing to compare the baseline with.")]
        return [Paragraph("No model and seed ran under both conditions, so no paired comparison is possible.")]
    blocks: list[Block] = [table]
    paired = set(analysis.per_seed["model"])
    unpaired = [model for model in dict.fromkeys(data.results["model"]) if model not in paired]
    if unpaired:
        blocks.append(
            Paragraph(
                "Not compared (missing one condition or no common seed): "
                + ", ".join(display_name(model) for model in unpaired)
                + "."
            )
        )
    significant = analysis.per_seed[analysis.per_seed["p_value"] < 0.05]
    if significant.empty:
        blocks.append(Paragraph("No baseline → augmented change is significant at p < 0.05 (McNemar, per seed)."))
    else:
        blocks.append(
            Bullets(
                [
                    f"{display_name(row['model'])} seed {int(row['seed'])}: "
                    f"{'better' if row['delta_accuracy'] > 0 else 'worse'} after augmentation "
                    f"({100 * row['delta_accuracy']:+.2f} pp, p = {row['p_value']:.3g})"
                    for _, row in significant.iterrows()
                ]
            )
        )
    return blocks


def paper_section(analysis: Analysis, figures: Mapping[str, bytes]) -> list[Block]:
    """Ours beside the paper's tables, the accuracy figure, notes on the paper's numbers, its confusion counts."""
    blocks: list[Block] = [paper_comparison_table(analysis.comparison)]
    if "accuracy_comparison.png" in figures:
        blocks.append(FigureRef("accuracy_comparison.png",
                                "Test accuracy per model: ours with 95% CI whiskers, the paper's hatched."))
    blocks.append(Paragraph("About the paper's numbers:"))
    blocks.append(Bullets(list(PAPER_NOTES)))
    blocks.append(paper_confusion_table())
    return blocks


def collapsed_section(data: RunData) -> list[Block]:
    """Every collapsed classifier output with a warning, or a paragraph saying none collapsed."""
    table = collapsed_table(data.results)
    if table is None:
        return [Paragraph(f"No model collapsed: none predicts one class for {100 * COLLAPSE_SHARE:.0f}% or more of "
                          "its test images.")]
    labels = [f"{row[0]}/{row[1]}/seed-{row[2]} → {row[3]} ({row[4]}%)" for row in table.rows]
    return [
        Paragraph(
            f"WARNING: {len(table.rows)} classifier output(s) collapsed to one class (at least "
            f"{100 * COLLAPSE_SHARE:.0f}% of test images predicted as one class): {'; '.join(labels)}. Their "
            "accuracy equals the share of that class in the test set; the paper's ResNet50 and EfficientNetB0 "
            "rows are the same failure.",
            warning=True,
        ),
        table,
    ]



def figure_section(figures: Mapping[str, bytes], wanted: list[tuple[str, str]], note: str) -> list[Block]:
    """A note and the ``wanted`` ``(name, caption)`` figures that exist, or a paragraph saying there are none."""
    present = [FigureRef(name, caption) for name, caption in wanted if name in figures]
    if not present:
        return [Paragraph("No figure: no committed output provides the data.")]
    return [Paragraph(note), *present]


def incomplete_section(data: RunData) -> list[Block]:
    """The outputs this report skipped (with reasons) and the consistency warnings, or that there are none."""
    blocks: list[Block] = []
    if data.incomplete:
        blocks.append(
            DisplayTable(
                columns=["Kind", "Prefix", "Reason"],
                rows=[[item.kind, item.prefix, item.reason] for item in data.incomplete],
                caption="Outputs skipped by this report",
                notes=["Uncommitted outputs (no _SUCCESS marker) are never read: their jobs are running, failed, "
                       "or are being rewritten. Re-run the report after they finish."],
            )
        )
    else:
        blocks.append(Paragraph(f"None: every output found under runs/{data.run_id}/ is committed and usable."))
    if data.warnings:
        blocks.append(Paragraph("Consistency warnings:", warning=True))
        blocks.append(Bullets(list(data.warnings), warning=True))
    else:
        blocks.append(Paragraph("Consistency checks passed: every metrics.json agrees with its predictions.csv, and "
                                "every classifier used the same dataset version."))
    return blocks

