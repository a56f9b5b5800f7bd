"""Lint rules for Prometheus metrics declared with Argo's ``metrics`` field.

Argo's ``validate.go`` refuses a metric without ``help``, with a name or label key outside ``[A-Za-z0-9_]``, or
without a value; the controller then evaluates the rest at run time and only reports what fails as a
``MetricsError`` condition that nobody reads. These rules catch that part before a cluster does:

* a realtime gauge whose value is not exactly ``{{duration}}`` (or ``{{workflow.duration}}`` at workflow level);
* a value, label or ``when`` that names a variable the metric's scope does not have: an output parameter the
  template does not declare, an input it does not take, ``{{workflow.status}}`` inside a template;
* one metric name used with different kinds, help texts or label keys (they are one series family in Prometheus).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from cxrcore.ops.argo_expr import TAG
from cxrcore.ops.argo_metrics import METRIC_NAME

__all__ = ["MetricFamilies", "check_metrics"]

Emit = Callable[[str, str], None]
_KINDS = ("counter", "gauge", "histogram")
_NODE_VARIABLES = re.compile(r"^(status|duration|exitCode|retries|outputs\.result|resourcesDuration\.[\w-]+)$")
_WORKFLOW_LEVEL = re.compile(r"^workflow\.(status|duration|name|namespace|uid|parameters\.[\w-]+|labels\.[\w.-]+)$")
_WORKFLOW_IN_TEMPLATE = re.compile(r"^workflow\.(name|namespace|uid|parameters\.[\w-]+|labels\.[\w.-]+)$")


class MetricFamilies:
    """Kind, help and label keys of every metric name seen in one lint run (one series family each)."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, str, tuple[str, ...], str]] = {}

    def check(self, name: str, kind: str, help_text: str, keys: tuple[str, ...], where: str) -> str | None:
        """The problem with using ``name`` this way here, given its first use, or ``None``."""
        first = self._seen.setdefault(name, (kind, help_text, keys, where))
        if first[:3] == (kind, help_text, keys):
            return None
        return (
            f"metric '{name}' is declared differently at {first[3]} (kind {first[0]}, help {first[1]!r}, labels "
            f"{list(first[2])}): one name is one Prometheus series family, keep kind, help and labels the same"
        )


def _declared(template: Mapping[str, Any], section: str) -> set[str]:
    parameters = (template.get(section) or {}).get("parameters") or []
    return {p.get("name") for p in parameters if isinstance(p, Mapping)}


def _strings(metric: Mapping[str, Any]) -> Iterator[str]:
    yield str(metric.get("when", "") or "")
    for label in metric.get("labels") or []:
        if isinstance(label, Mapping):
            yield str(label.get("value", ""))
    for kind in _KINDS:
        if isinstance(metric.get(kind), Mapping):
            yield str(metric[kind].get("value", ""))


def _unknown_variable(variable: str, template: Mapping[str, Any] | None) -> str | None:
    if template is None:
        return None if _WORKFLOW_LEVEL.match(variable) else "is not available to workflow-level metrics"
    if _NODE_VARIABLES.match(variable) or _WORKFLOW_IN_TEMPLATE.match(variable):
        return None
    for section in ("inputs", "outputs"):
        prefix = f"{section}.parameters."
        if variable.startswith(prefix):
            if variable[len(prefix):] in _declared(template, section):
                return None
            return f"names a parameter the template does not declare in {section}.parameters"
    return "is not in a template metric's scope (status, duration, exitCode, retries, inputs/outputs parameters)"


def check_metrics(
    metrics: Any, path: str, template: Mapping[str, Any] | None, families: MetricFamilies, emit: Emit
) -> None:
    """Checks one ``metrics`` field (a template's, or the workflow spec's when ``template`` is ``None``)."""
    if not isinstance(metrics, Mapping):
        return
    owner = f"template '{template.get('name')}'" if template is not None else "the workflow"
    for index, metric in enumerate(metrics.get("prometheus") or []):
        if isinstance(metric, Mapping):
            _check_metric(metric, f"{path}.prometheus[{index}]", template, owner, families, emit)


def _check_metric(
    metric: Mapping[str, Any],
    path: str,
    template: Mapping[str, Any] | None,
    owner: str,
    families: MetricFamilies,
    emit: Emit,
) -> None:
    name = str(metric.get("name", ""))
    if "{{" not in name and not METRIC_NAME.match(name):
        emit(f"{path}.name", f"{owner}: metric name {name!r} may only hold letters, digits and '_' (Argo refuses it)")
    if not metric.get("help"):
        emit(f"{path}.help", f"{owner}: metric {name!r} needs a help text (Argo refuses it)")
    keys = tuple(str(label.get("key", "")) for label in metric.get("labels") or [] if isinstance(label, Mapping))
    for key in keys:
        if not METRIC_NAME.match(key):
            emit(f"{path}.labels", f"{owner}: metric {name!r}: label key {key!r} may only hold letters, digits and '_'")
    kinds = [kind for kind in _KINDS if isinstance(metric.get(kind), Mapping)]
    valued = len(kinds) == 1 and bool(str(metric[kinds[0]].get("value", "")).strip())
    if not valued:
        emit(path, f"{owner}: metric {name!r} needs exactly one of counter, gauge, histogram, with a value")
        return
    kind = kinds[0]
    gauge = metric.get("gauge") or {}
    if gauge.get("realtime") and str(gauge.get("value", "")).strip() not in ("{{duration}}", "{{workflow.duration}}"):
        emit(f"{path}.gauge.value", f"{owner}: realtime gauge {name!r} can only take {{{{duration}}}}")
    for text in _strings(metric):
        for match in TAG.finditer(text):
            variable = match.group(1).strip()
            problem = _unknown_variable(variable, template)
            if problem:
                emit(path, f"{owner}: metric {name!r}: {{{{{variable}}}}} {problem}")
    problem = families.check(name, kind, str(metric.get("help", "")), keys, f"{owner} ({path})")
    if problem:
        emit(path, f"{owner}: {problem}")
