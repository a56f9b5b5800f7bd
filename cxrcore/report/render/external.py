"""The "External test" section: shown only when ``cxr external-test`` committed outputs for the run."""

from __future__ import annotations

from cxrcore.report.collect import RunData
from cxrcore.report.render.blocks import Paragraph, Section
from cxrcore.report.tables.external import external_mcnemar, external_results, external_tables

__all__ = ["EXTERNAL_ANCHOR", "EXTERNAL_TITLE", "external_section"]

#: Anchor and title of the section (not in :data:`~cxrcore.report.render.blocks.SECTION_TITLES`: it is optional).
EXTERNAL_ANCHOR = "external"
EXTERNAL_TITLE = "External test"


def external_section(data: RunData) -> Section | None:
    """The section, or ``None`` when the run has no external-test output."""
    if not data.external_metrics:
        return None
    sources = {
        key.dataset: str(metrics.get("source") or "source not recorded")
        for key, metrics in data.external_metrics.items()
    }
    tables = external_tables(external_results(data.external_metrics), external_mcnemar(data.external_predictions),
                             sources)
    intro = Paragraph(
        "Every classifier of the run scored on every image of each external set (imported like the study's data, "
        "never used for training, threshold selection or early stopping). Accuracy with its 95% Wilson interval, "
        "AUC, sensitivity (PNEUMONIA recall), specificity (NORMAL recall) and the confusion counts are external; "
        "the columns marked internal repeat the same classifier's numbers on the run's own test split."
    )
    return Section(EXTERNAL_ANCHOR, EXTERNAL_TITLE, [intro, *tables])
