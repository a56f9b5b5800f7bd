"""``cxr-report``: collect every classifier of a run into the comparison report and commit it.

Output (``runs/<run_id>/report/``, one committed prefix)::

    index.html      self-contained report (figures embedded), the Argo artifact
    report.md       the same sections in Markdown, figures linked from figures/
    tables.csv      every table in one tidy long frame (table, condition, model, seed, statistic, metric, value)
    metrics.json    everything machine-readable: per-seed metrics, summaries, McNemar tests, paper numbers, ...
    figures/*.png   confusion matrices, ROC curves, accuracy comparison, training curves, GAN losses and samples,
                    each classifier's Grad-CAM panel (gradcam_<condition>_<model>_seed-<n>.png, where committed)

The report's inputs are the marker digests of every committed classifier, GAN and synthetic-set output of the
run and of the evaluated dataset version, plus the incomplete and unusable prefixes; a report committed from the
same inputs is left alone (status ``unchanged``: nothing is rendered or written), so Argo retries and re-runs are
cheap. It needs no TensorFlow and loads no image.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cxrcore import __version__
from cxrcore.config import ReportSettings
from cxrcore.layout import classifiers_root, report_prefix
from cxrcore.logging import get_logger
from cxrcore.metrics import COLLAPSE_SHARE
from cxrcore.report.collect import Inventory, RunData, describe_run_root, discover, load
from cxrcore.report.figures import all_figures, gradcam_figure
from cxrcore.report.paper import (
    PAPER_CITATION,
    PAPER_NOTES,
    PAPER_SETTINGS,
    PAPER_TABLES,
    PAPER_TEST_SETS,
    paper_confusion_matrix,
    paper_frame,
)
from cxrcore.report.render import build_document, render_html, render_markdown
from cxrcore.report.tables import Analysis, analyze
from cxrcore.storage import Store, join_key

__all__ = [
    "REPORT_FORMAT",
    "DegradedReportError",
    "NoClassifierOutputError",
    "build_report",
    "json_safe",
    "run",
]

#: Version of the report's layout; part of its inputs, so a new layout rebuilds old reports.
#: 2: the "Explanations (Grad-CAM)" section and metrics.json ``explanations``.
REPORT_FORMAT = 2

log = get_logger(__name__)


class NoClassifierOutputError(ValueError):
    """The run has no committed classifier output to report on."""


class DegradedReportError(ValueError):
    """The new report would replace a committed one that covered outputs the new one lacks (exit 1)."""


def run(settings: ReportSettings) -> dict[str, Any]:
    """Builds and commits the report of ``settings.run_id`` (the ``cxr-report`` entry point's work).

    Args:
        settings: Report settings (store, run id, dataset, title).

    Returns:
        ``status`` (``created`` or ``unchanged``), ``uri`` of the report prefix, ``index_html``, counts of
        classifier outputs, incomplete outputs and collapsed models, and the figure names.

    Raises:
        NoClassifierOutputError: When the run has no committed classifier output.
    """
    store = settings.open_store()
    summary = build_report(
        store,
        settings.run_id,
        dataset=settings.dataset,
        dataset_version=settings.dataset_version,
        title=settings.title,
        allow_degraded=settings.allow_degraded,
    )
    if settings.export_dir:
        exported = store.download_dir(report_prefix(settings.run_id), settings.export_dir)
        summary["exported"] = len(exported)
        log.info("report_exported", export_dir=settings.export_dir, files=len(exported))
    return summary


def build_report(
    store: Store,
    run_id: str,
    *,
    dataset: str = "chest-xray",
    dataset_version: str = "latest",
    title: str = "cxr-gan report",
    allow_degraded: bool = False,
) -> dict[str, Any]:
    """Collects, renders and commits the report of one run; see the module docstring.

    Args:
        store: The store holding ``runs/<run_id>/``.
        run_id: The run.
        dataset: Dataset name, used when the classifiers do not record theirs.
        dataset_version: Dataset version (or ``latest``), likewise.
        title: Report title.
        allow_degraded: Replace a committed report even when it covered outputs this one lacks (the new report
            lists them); without it that raises :class:`DegradedReportError`.

    Returns:
        The summary :func:`run` returns.

    Raises:
        NoClassifierOutputError: When the run has no committed classifier output.
        DegradedReportError: When the committed report covers outputs this one would lose.
        TransientStoreError: When the store fails transiently (nothing is written; exit 75).
    """
    prefix = report_prefix(run_id)
    uri = store.url(prefix)
    index_html = store.url(join_key(prefix, "index.html"))
    inventory = discover(store, run_id)
    _require_committed_classifiers(store, run_id, inventory)
    data = load(store, inventory, dataset=dataset, dataset_version=dataset_version)
    inputs = _report_inputs(data, inventory, title)
    _require_usable_classifiers(store, run_id, data)
    if store.is_committed(prefix, inputs):
        log.info("report_unchanged", run_id=run_id, uri=uri)
        return {"status": "unchanged", "uri": uri, "index_html": index_html}
    lost = _lost_outputs(store, prefix, inputs, allow_degraded=allow_degraded)
    if lost:
        data.warnings.insert(
            0,
            f"This report replaced a committed report that also covered {len(lost)} output(s) missing or unusable "
            f"now (allow_degraded): {', '.join(lost)}",
        )
        log.warning("report_degraded", run_id=run_id, uri=uri, lost=lost)
    files = _render(data, title=title, store_uri=store.uri, inputs=inputs)
    with store.commit(prefix, inputs=inputs, producer=f"cxr-report {__version__}") as transaction:
        for name, png in sorted(files.figures.items()):
            transaction.put_bytes(f"figures/{name}", png)
        transaction.put_bytes("tables.csv", files.tables_csv)
        transaction.put_json("metrics.json", files.metrics)
        transaction.put_bytes("report.md", files.markdown.encode())
        transaction.put_bytes("index.html", files.page.encode())
    collapsed = [
        f"{row['condition']}/{row['model']}/seed-{row['seed']}"
        for _, row in data.results[data.results["collapsed"].astype(bool)].iterrows()
    ]
    log.info(
        "report_committed",
        run_id=run_id,
        uri=uri,
        classifiers=len(data.results),
        incomplete=len(data.incomplete),
        collapsed=len(collapsed),
    )
    return {
        "status": "created",
        "uri": uri,
        "index_html": index_html,
        "classifiers": len(data.results),
        "conditions": data.conditions(),
        "incomplete": [f"{item.kind}:{item.prefix}" for item in data.incomplete],
        "collapsed": collapsed,
        "warnings": len(data.warnings),
        "figures": sorted(files.figures),
        "replaced_outputs_lost": lost,
    }


def _lost_outputs(store: Store, prefix: str, inputs: Mapping[str, Any], *, allow_degraded: bool) -> list[str]:
    """The outputs the committed report at ``prefix`` used that a report from ``inputs`` would not.

    Raises:
        DegradedReportError: When some would be lost and ``allow_degraded`` is false.
    """
    previous = store.read_marker(prefix)
    if previous is None:
        return []
    lost = sorted(_usable_outputs(previous.inputs) - _usable_outputs(inputs))
    if lost and not allow_degraded:
        raise DegradedReportError(
            f"Refusing to replace the committed report {store.url(prefix)} (made {previous.created}): it covers "
            f"{len(lost)} output(s) this run's report would lose (deleted, being rewritten or now unusable): "
            f"{', '.join(lost)}. Re-run once they are committed again, or set allow_degraded=true "
            "(--allow-degraded true) to replace it anyway; the new report then lists them."
        )
    return lost


def _usable_outputs(inputs: Mapping[str, Any]) -> set[str]:
    """The committed, usable output prefixes a report's recorded inputs name."""
    committed = inputs.get("committed")
    if not isinstance(committed, Mapping):
        return set()
    unusable = {str(entry).split(":", 1)[-1] for entry in inputs.get("unusable") or ()}
    return {str(prefix) for prefix in committed if str(prefix) not in unusable}


def _require_committed_classifiers(store: Store, run_id: str, inventory: Inventory) -> None:
    if inventory.classifiers:
        return
    pending = [item.prefix for item in inventory.incomplete if item.kind == "classifier"]
    detail = f"; {len(pending)} uncommitted: {', '.join(pending[:10])}" if pending else ""
    raise NoClassifierOutputError(
        f"No committed classifier output under {store.url(classifiers_root(run_id))}/ "
        f"(run prefix {describe_run_root(store, run_id)}){detail}: run train-classifier for this run first. "
        f"Received: run_id={run_id!r}"
    )


def _require_usable_classifiers(store: Store, run_id: str, data: RunData) -> None:
    if not data.results.empty:
        return
    reasons = "; ".join(f"{item.prefix}: {item.reason}" for item in data.incomplete if item.kind == "classifier")
    raise NoClassifierOutputError(
        f"No usable classifier output under {describe_run_root(store, run_id)} ({reasons}). "
        f"Received: run_id={run_id!r}"
    )


def _report_inputs(data: RunData, inventory: Inventory, title: str) -> dict[str, Any]:
    """What the report is made from: its layout and code version, the title, every input's marker digest."""
    return {
        "report_format": REPORT_FORMAT,
        "cxrcore_version": __version__,
        "title": title,
        **data.inputs,
        "dataset": {"name": data.dataset.name, "version": data.dataset.version, "digest": data.dataset.digest},
        "unusable": sorted(
            f"{item.kind}:{item.prefix}" for item in data.incomplete if item not in inventory.incomplete
        ),
    }


@dataclasses.dataclass(frozen=True)
class _ReportFiles:
    """The report's files before they are committed."""

    figures: dict[str, bytes]
    tables_csv: bytes
    metrics: dict[str, Any]
    markdown: str
    page: str


def _render(data: RunData, *, title: str, store_uri: str, inputs: Mapping[str, Any]) -> _ReportFiles:
    """Every file of the report, computed from the collected run (pure: nothing is read or written)."""
    analysis = analyze(data)
    figures = all_figures(data, analysis.summary)
    document = build_document(data, analysis, figures, title=title, store_uri=store_uri)
    return _ReportFiles(
        figures=figures,
        tables_csv=analysis.tidy(data.results).to_csv(index=False, lineterminator="\n").encode(),
        metrics=_metrics_json(data, analysis, figures, title=title, inputs=inputs),
        markdown=render_markdown(document),
        page=render_html(document, figures),
    )


def _metrics_json(
    data: RunData, analysis: Analysis, figures: Mapping[str, bytes], *, title: str, inputs: Mapping[str, Any]
) -> dict[str, Any]:
    info = data.dataset.info or {}
    results = data.results.drop(columns=["marker_digest"])
    return json_safe(
        {
            "format": REPORT_FORMAT,
            "producer": f"cxr-report {__version__}",
            "run_id": data.run_id,
            "title": title,
            "dataset": {
                "name": data.dataset.name,
                "version": data.dataset.version,
                "digest": data.dataset.digest,
                "problem": data.dataset.problem,
                "synthetic": bool(info.get("synthetic", False)),
                **{key: info.get(key) for key in ("images", "counts", "splits", "split", "patients",
                                                   "patients_on_both_sides", "source")},
            },
            "protocols": sorted(set(data.results["protocol"])),
            "contaminated": bool(data.results["test_contaminated"].astype(bool).any()),
            "collapse_share": COLLAPSE_SHARE,
            "conditions": data.conditions(),
            "classifiers": _records(results),
            "summary": _records(analysis.summary),
            "deltas": {"per_seed": _records(analysis.per_seed), "combined": _records(analysis.combined)},
            "paper": {
                "citation": PAPER_CITATION,
                "tables": _records(paper_frame()),
                "confusion_matrices": {
                    condition: {row.model: paper_confusion_matrix(condition, row.model) for row in table}
                    for condition, table in PAPER_TABLES.items()
                },
                "test_sets_inferred": PAPER_TEST_SETS,
                "settings": PAPER_SETTINGS,
                "notes": list(PAPER_NOTES),
            },
            "paper_comparison": _records(analysis.comparison),
            "collapsed": _records(data.results[data.results["collapsed"].astype(bool)][
                ["condition", "model", "seed", "collapsed_to", "predicted_positive_share", "accuracy", "prefix"]
            ]),
            "gan": {
                name: {"prefix": gan.prefix, "info": gan.info, "summary": gan.summary()}
                for name, gan in sorted(data.gans.items())
            },
            "synthetic": {
                name: {"prefix": synthetic.prefix, "selection": synthetic.selection, "summary": synthetic.summary()}
                for name, synthetic in sorted(data.synthetic.items())
            },
            "explanations": _explanations(data),
            "incomplete": [
                {"kind": item.kind, "prefix": item.prefix, "reason": item.reason} for item in data.incomplete
            ],
            "warnings": list(data.warnings),
            "figures": sorted(f"figures/{name}" for name in figures),
            "inputs": dict(inputs),
        }
    )


def _explanations(data: RunData) -> list[dict[str, Any]]:
    """Every committed Grad-CAM panel: its output, its figure, and each cell from its ``gradcam.json``."""
    return [
        {
            "condition": key.condition,
            "model": key.model,
            "seed": key.seed,
            "prefix": explanation.prefix,
            "figure": f"figures/{gradcam_figure(key)}",
            **{name: explanation.info.get(name) for name in ("layer", "threshold", "per_outcome")},
            "cells": explanation.cells(),
        }
        for key, explanation in sorted(data.explanations.items())
    ]


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [] if frame.empty else frame.to_dict(orient="records")


def json_safe(value: Any) -> Any:
    """``value`` made strict-JSON ready: NaN/inf -> ``None``, numpy scalars -> Python, tuples/sets -> lists."""
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [json_safe(item) for item in value]
    if isinstance(value, np.ndarray):
        return [json_safe(item) for item in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if value is None or isinstance(value, str):
        return value
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)
