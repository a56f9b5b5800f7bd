"""Every table of the report in one tidy long frame, for ``tables.csv``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from cxrcore.report.paper import paper_frame

__all__ = ["tidy_tables"]


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

