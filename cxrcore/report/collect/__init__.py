"""Collect every committed output of one run into tidy pandas frames.

Two phases, so an up-to-date report costs only a listing and a few marker reads (docs/architecture.md,
"Commit protocol"):

1. :func:`discover` (:mod:`~cxrcore.report.collect.discovery`) lists ``runs/<run_id>/`` and reads ``_SUCCESS``
   markers only. It returns an :class:`Inventory`: the committed classifier, GAN and synthetic-set prefixes with
   their marker digests (the report's inputs) and every prefix that holds objects but no marker ("incomplete":
   still running, failed, or being rewritten).
2. :func:`load` (:mod:`~cxrcore.report.collect.loading`) reads the committed files (each verified against the
   sha256 its marker records, :mod:`~cxrcore.report.collect.files`) into a :class:`RunData`: one row per
   classifier output in :attr:`RunData.results`, and the predictions, training histories, GAN losses and
   synthetic-set selection reports beside it. A committed output whose files are missing or malformed is moved
   to the incomplete list with the reason, never silently dropped.

The records themselves are in :mod:`~cxrcore.report.collect.records`. Images are never loaded: the sample grids
and Grad-CAM panels are the PNGs the GAN, synthesize and classifier jobs stored.
"""

from __future__ import annotations

from cxrcore.report.collect.discovery import describe_run_root, discover
from cxrcore.report.collect.files import REQUIRED_METRIC_KEYS
from cxrcore.report.collect.loading import collect_run, load
from cxrcore.report.collect.records import (
    RESULT_COLUMNS,
    ClassifierKey,
    DatasetSummary,
    Explanation,
    ExternalKey,
    GanOutput,
    Incomplete,
    Inventory,
    RunData,
    SyntheticOutput,
)

__all__ = [
    "REQUIRED_METRIC_KEYS",
    "RESULT_COLUMNS",
    "ClassifierKey",
    "DatasetSummary",
    "Explanation",
    "ExternalKey",
    "GanOutput",
    "Incomplete",
    "Inventory",
    "RunData",
    "SyntheticOutput",
    "collect_run",
    "describe_run_root",
    "discover",
    "load",
]
