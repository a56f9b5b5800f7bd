"""Every computed table of one run together: :func:`analyze` and its :class:`Analysis`."""

from __future__ import annotations

import dataclasses

import pandas as pd

from cxrcore.report.collect import RunData
from cxrcore.report.tables.numbers import combined_deltas, paired_deltas, paper_comparison, summarize
from cxrcore.report.tables.tidy import tidy_tables

__all__ = ["Analysis", "analyze"]


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
