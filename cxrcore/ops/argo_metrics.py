"""The study's Prometheus metrics, declared through Argo's own ``metrics`` field, and their local emission.

On a cluster the Argo controller evaluates each template's ``metrics.prometheus`` when the node completes and
exports them as ``argo_workflows_<name>`` on its metrics endpoint, so a Grafana board shows the study and the
nightly retraining without scraping logs:

* ``cxr_step_duration_seconds`` (histogram; every job template): duration of a step, all attempts included, by
  ``template`` and final ``status``.
* ``cxr_classifier_test_accuracy`` / ``cxr_classifier_test_auc`` (gauges; train-classifier): the test metrics of
  the last successful run of each ``model`` x ``condition`` x ``seed``.
* ``cxr_promotion_decisions_total`` (counter; promote): decisions by ``task`` and ``decision``.
* ``cxr_workflow_duration_seconds`` (gauge) and ``cxr_workflow_runs_total`` (counter) per ``workflow`` and
  ``status`` (argo/paper.yaml, argo/retrain.yaml).

The values are Argo variables: ``{{duration}}`` and ``{{status}}`` of the node, its ``{{inputs.parameters.*}}``
and ``{{outputs.parameters.*}}``, and ``{{workflow.duration}}``/``{{workflow.status}}`` at workflow level.
:func:`template_metrics` is what the template generator writes; :class:`MetricsRecorder` is what ``cxr run``
does with the same fields: it evaluates them after each node and at the end, and writes the samples in the
Prometheus text format to ``<work dir>/metrics.prom`` (one run; a cluster accumulates across runs).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cxrcore.ops import argo_expr
from cxrcore.ops.argo_expr import ExpressionError

__all__ = [
    "DURATION_BUCKETS",
    "METRIC_NAME",
    "MetricsRecorder",
    "template_metrics",
    "workflow_metrics",
]

#: Argo's rule for metric names and label keys (``validate.go``): Prometheus' legacy names, no colon.
METRIC_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Seconds: a CPU step of a few seconds to a 12-hour paper GAN.
DURATION_BUCKETS = (10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0)
_SUCCEEDED = "{{status}} == Succeeded"


def _labels(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in pairs]


def template_metrics(template: str) -> dict[str, Any]:
    """The ``metrics`` field of a job template (every template has the duration histogram)."""
    prometheus: list[dict[str, Any]] = [
        {
            "name": "cxr_step_duration_seconds",
            "help": "Duration of a cxr-gan step, all attempts included, by template and final status.",
            "labels": _labels(("template", template), ("status", "{{status}}")),
            "histogram": {"value": "{{duration}}", "buckets": list(DURATION_BUCKETS)},
        }
    ]
    if template == "train-classifier":
        for metric, output in (("accuracy", "accuracy"), ("auc", "auc")):
            prometheus.append(
                {
                    "name": f"cxr_classifier_test_{metric}",
                    "help": f"Test {metric} of the last successful training of each model, condition and seed.",
                    "labels": _labels(
                        ("model", "{{inputs.parameters.model}}"),
                        ("condition", "{{inputs.parameters.condition}}"),
                        ("seed", "{{inputs.parameters.seed}}"),
                    ),
                    "when": _SUCCEEDED,
                    "gauge": {"value": f"{{{{outputs.parameters.{output}}}}}", "realtime": False},
                }
            )
    if template == "promote":
        prometheus.append(
            {
                "name": "cxr_promotion_decisions_total",
                "help": "Champion/challenger decisions of the retraining, by task and decision.",
                "labels": _labels(("task", "{{inputs.parameters.task}}"),
                                  ("decision", "{{outputs.parameters.decision}}")),
                "when": _SUCCEEDED,
                "counter": {"value": "1"},
            }
        )
    return {"prometheus": prometheus}


def workflow_metrics(workflow: str) -> dict[str, Any]:
    """The ``spec.metrics`` of a Workflow (``paper``) or of a CronWorkflow's workflowSpec (``retrain``)."""
    labels = _labels(("workflow", workflow), ("status", "{{workflow.status}}"))
    return {
        "prometheus": [
            {
                "name": "cxr_workflow_duration_seconds",
                "help": "Duration of the last run of a cxr-gan workflow, by final status.",
                "labels": labels,
                "gauge": {"value": "{{workflow.duration}}", "realtime": False},
            },
            {
                "name": "cxr_workflow_runs_total",
                "help": "Finished runs of a cxr-gan workflow, by final status.",
                "labels": labels,
                "counter": {"value": "1"},
            },
        ]
    }


class MetricsRecorder:
    """Evaluates ``metrics.prometheus`` fields as the controller does and keeps the samples of one local run.

    Counters add, gauges keep the last value, histograms count observations into their buckets. A metric whose
    ``when`` is false is skipped; one that cannot be evaluated is recorded in :attr:`errors` (the controller
    sets the workflow's ``MetricsError`` condition and goes on).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._samples: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, Any]] = {}
        self.errors: list[str] = []

    def observe(self, metrics: Mapping[str, Any] | None, scope: Mapping[str, Any]) -> None:
        """Emits every metric of a template's (or workflow's) ``metrics`` field with the node's scope."""
        for metric in (metrics or {}).get("prometheus", []) or []:
            try:
                self._observe(metric, scope)
            except (ExpressionError, ValueError, KeyError, TypeError) as exc:
                with self._lock:
                    self.errors.append(f"metric {metric.get('name')!r}: {exc}")

    def _observe(self, metric: Mapping[str, Any], scope: Mapping[str, Any]) -> None:
        name = str(argo_expr.substitute(metric["name"], scope))
        when = metric.get("when")
        if when and not argo_expr.evaluate_when(str(argo_expr.substitute(when, scope))):
            return
        labels = tuple(
            (str(label["key"]), str(argo_expr.substitute(str(label["value"]), scope)))
            for label in metric.get("labels") or []
        )
        kind = next(k for k in ("counter", "gauge", "histogram") if metric.get(k))
        value = float(str(argo_expr.substitute(str(metric[kind]["value"]), scope)))  # "NaN" is a valid sample
        with self._lock:
            sample = self._samples.setdefault((name, labels), {"kind": kind, "help": metric.get("help", "")})
            if kind == "counter":
                sample["value"] = sample.get("value", 0.0) + value
            elif kind == "gauge":
                sample["value"] = value
            else:
                buckets = [float(b) for b in metric["histogram"].get("buckets", [])]
                counts = sample.setdefault("buckets", dict.fromkeys(buckets, 0))
                for bound in counts:
                    counts[bound] += int(value <= bound)
                sample["count"] = sample.get("count", 0) + 1
                sample["sum"] = sample.get("sum", 0.0) + value

    def samples(self) -> dict[str, list[tuple[dict[str, str], dict[str, Any]]]]:
        """``{metric name: [(labels, sample)]}``."""
        with self._lock:
            found: dict[str, list[tuple[dict[str, str], dict[str, Any]]]] = {}
            for (name, labels), sample in sorted(self._samples.items()):
                found.setdefault(name, []).append((dict(labels), dict(sample)))
            return found

    def text(self, prefix: str = "argo_workflows_") -> str:
        """The samples in the Prometheus text exposition format, named as the controller exports them."""
        lines: list[str] = []
        for name, series in self.samples().items():
            full = prefix + name
            kind = series[0][1]["kind"]
            lines += [f"# HELP {full} {series[0][1]['help']}", f"# TYPE {full} {kind}"]
            for labels, sample in series:
                if kind == "histogram":
                    for bound, count in sample["buckets"].items():
                        lines.append(f"{full}_bucket{_format({**labels, 'le': f'{bound:g}'})} {count}")
                    lines.append(f"{full}_bucket{_format({**labels, 'le': '+Inf'})} {sample['count']}")
                    lines.append(f"{full}_sum{_format(labels)} {sample['sum']:g}")
                    lines.append(f"{full}_count{_format(labels)} {sample['count']}")
                else:
                    lines.append(f"{full}{_format(labels)} {sample['value']:g}")
        return "\n".join(lines) + ("\n" if lines else "")

    def write(self, path: Path) -> None:
        """Writes :meth:`text` to ``path``."""
        path.write_text(self.text())


def _format(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    body = ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items())
    return "{" + body + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
