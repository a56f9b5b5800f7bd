"""The report's tables: the paper's Tables 2-3 with added columns, baseline -> augmented deltas with McNemar
tests, ours vs the paper, and a tidy long frame of everything for ``tables.csv``.

Computations (:mod:`~cxrcore.report.tables.numbers`, gathered by :func:`analyze`) return plain frames (numbers,
``NaN`` where undefined); :class:`DisplayTable` (:mod:`~cxrcore.report.tables.display`) holds the formatted
strings the renderer puts into Markdown and HTML; :mod:`~cxrcore.report.tables.tidy` writes ``tables.csv``.

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

from cxrcore.report.tables.analysis import Analysis, analyze
from cxrcore.report.tables.common import DISPLAY_NAMES, SIGNIFICANCE_LEVEL, display_name, model_order
from cxrcore.report.tables.display import (
    DisplayTable,
    collapsed_table,
    condition_table,
    delta_table,
    paper_comparison_table,
    paper_confusion_table,
)
from cxrcore.report.tables.numbers import (
    SUMMARY_METRICS,
    combined_deltas,
    paired_deltas,
    paper_comparison,
    summarize,
)
from cxrcore.report.tables.tidy import tidy_tables

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
