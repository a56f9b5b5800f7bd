"""Lint rules for what the Argo controller does with retries, time bounds and scheduling.

Each rule is a mistake that passes Argo's own schema and validation, yet makes a step do something other than
its manifest says on a real cluster. They read the manifest with the same code the local runner executes it with
(:mod:`cxrcore.ops.retry`), so the linter, the runner and the controller agree:

* ``backoff.maxDuration`` shorter than the attempts it allows (the controller stops retrying at first start +
  maxDuration and kills a running retry then, through ``ARGO_DEADLINE``);
* a ``retryStrategy`` that does not retry what a cluster does to healthy steps (pod deleted or preempted:
  ``Error``; SIGKILL/SIGTERM: ``Failed`` with 137/143; eviction or node shutdown: ``Failed``, exit code ``-1``,
  the kubelet's message; our transient store failures: 75) or that retries bad input (1) and bad settings (2);
* ``timeout`` beside ``activeDeadlineSeconds`` (``timeout`` replaces it on the pod);
* ``timeout`` on a template that holds a semaphore or mutex (it counts the time queued for it);
* pods with no time bound, Workflows and CronWorkflows without ``activeDeadlineSeconds``, an exit handler
  without ``timeout`` (it is exempt from the workflow's deadline), and fixed ``nodeSelector`` labels (the pod
  stays Pending forever on a cluster without them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from cxrcore.ops.argo_expr import ExpressionError
from cxrcore.ops.retry import DEADLINE_MESSAGE, Attempt, RetryStrategy, StepBounds

__all__ = ["RETRY_SCENARIOS", "Scenario", "check_manifest"]

Emit = Callable[[str, str], None]
Resolve = Callable[[Mapping[str, Any]], "Mapping[str, Any] | None"]


@dataclasses.dataclass(frozen=True)
class Scenario:
    """How a pod can end, and whether a step should run again after it."""

    label: str
    status: str
    exit_code: int | None
    message: str
    retry: bool


RETRY_SCENARIOS = (
    Scenario("a deleted or preempted pod (Error, exit code -1)", "Error", None, "pod deleted", True),
    Scenario("a transient store failure (exit 75)", "Failed", 75, "main: Error (exit code 75)", True),
    Scenario("a SIGKILL (exit 137)", "Failed", 137, "main: Error (exit code 137)", True),
    Scenario("a SIGTERM on preemption or drain (exit 143)", "Failed", 143, "main: Error (exit code 143)", True),
    Scenario(
        "a node-pressure eviction (Failed, exit code -1)",
        "Failed",
        None,
        "The node was low on resource: memory. Threshold quantity: 100Mi, available: 52Mi.",
        True,
    ),
    Scenario(
        "a node shutdown (Failed, exit code -1)",
        "Failed",
        None,
        "Pod was terminated in response to imminent node shutdown.",
        True,
    ),
    Scenario("bad input (exit 1)", "Failed", 1, "main: Error (exit code 1)", False),
    Scenario("bad settings (exit 2)", "Failed", 2, "main: Error (exit code 2)", False),
    Scenario("a step past its own deadline", "Failed", 143, DEADLINE_MESSAGE, False),
)
#: Template kinds that run a pod of their own (data, http and plugin templates run in the agent or controller).
_POD_KINDS = ("container", "script", "containerSet", "resource")


def _pod_template(template: Mapping[str, Any]) -> bool:
    return any(isinstance(template.get(kind), Mapping) for kind in _POD_KINDS)


def _holds_lock(template: Mapping[str, Any]) -> bool:
    synchronization = template.get("synchronization")
    if not isinstance(synchronization, Mapping):
        return False
    return any(synchronization.get(key) for key in ("semaphore", "semaphores", "mutex", "mutexes"))


def _seconds(value: float) -> str:
    return f"{value:g}s" if value < 120 else f"{value / 60:g}m"


def check_manifest(
    kind: str,
    spec: Mapping[str, Any],
    spec_path: str,
    templates: Mapping[str, tuple[str, Mapping[str, Any]]],
    emit: Emit,
    resolve: Resolve,
) -> None:
    """Runs every rule on one Argo manifest.

    Args:
        kind: ``Workflow``, ``CronWorkflow``, ``WorkflowTemplate`` or ``ClusterWorkflowTemplate``.
        spec: The workflow spec (a CronWorkflow's ``workflowSpec``).
        spec_path: Its path in the file, for messages.
        templates: ``{name: (path, template)}`` of the spec's templates.
        emit: ``emit(path, message)`` records a finding.
        resolve: Returns the template a task or step calls (``template`` or ``templateRef``), or ``None``.
    """
    if kind in ("Workflow", "CronWorkflow"):
        _check_workflow_deadline(kind, spec, spec_path, emit)
        _check_exit_handler(spec, spec_path, templates, emit, resolve)
    for name, (path, template) in templates.items():
        if _pod_template(template):
            _check_template(name, path, template, emit)


def _check_workflow_deadline(kind: str, spec: Mapping[str, Any], spec_path: str, emit: Emit) -> None:
    if spec.get("activeDeadlineSeconds") in (None, ""):
        consequence = (
            "; with concurrencyPolicy Forbid every later run is then skipped" if kind == "CronWorkflow" else ""
        )
        emit(
            f"{spec_path}.activeDeadlineSeconds",
            f"{kind} has no activeDeadlineSeconds: a pod that no node can take (missing label, no GPU) stays "
            f"Pending and the run never ends{consequence}",
        )


def _check_exit_handler(
    spec: Mapping[str, Any],
    spec_path: str,
    templates: Mapping[str, tuple[str, Mapping[str, Any]]],
    emit: Emit,
    resolve: Resolve,
) -> None:
    handler = spec.get("onExit")
    if not isinstance(handler, str) or handler not in templates:
        return
    for name, path, template in _pod_templates_under(templates[handler][1], templates[handler][0], resolve):
        try:
            timeout = StepBounds.from_template(template).timeout_seconds
        except ValueError:
            continue  # an unreadable bound is reported by the template's own check
        if timeout is None:
            emit(
                f"{path}.timeout",
                f"template '{name}' runs in the exit handler '{handler}', which the workflow's "
                "activeDeadlineSeconds does not bound: give it a timeout (it also counts time Pending) or an "
                "unschedulable pod keeps the workflow running forever",
            )


def _pod_templates_under(
    template: Mapping[str, Any], path: str, resolve: Resolve, depth: int = 0
) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    if _pod_template(template):
        yield str(template.get("name")), path, template
        return
    if depth > 8:
        return
    calls = [task for task in (template.get("dag") or {}).get("tasks", []) or [] if isinstance(task, Mapping)]
    calls += [step for group in template.get("steps") or [] for step in group or [] if isinstance(step, Mapping)]
    for call in calls:
        target = resolve(call)
        if target is not None:
            reference = call.get("templateRef") or {}
            label = f"{reference.get('name')}/{reference.get('template')}" if reference else call.get("template")
            yield from _pod_templates_under(target, str(label), resolve, depth + 1)


def _check_template(name: str, path: str, template: Mapping[str, Any], emit: Emit) -> None:
    try:
        bounds = StepBounds.from_template(template)
        strategy = RetryStrategy.from_template(template)
    except ValueError as exc:
        emit(path, f"template '{name}': {exc}")
        return
    if bounds.timeout_seconds is not None and bounds.active_deadline_seconds is not None:
        emit(
            f"{path}.activeDeadlineSeconds",
            f"template '{name}': timeout replaces activeDeadlineSeconds on the pod (the controller sets the pod's "
            f"deadline from timeout), so activeDeadlineSeconds {bounds.active_deadline_seconds:g} is never applied; "
            "keep one",
        )
    if bounds.timeout_seconds is not None and _holds_lock(template):
        emit(
            f"{path}.timeout",
            f"template '{name}': timeout counts the time queued on its synchronization semaphore/mutex, so a step "
            "waiting for a slot fails 'timeout' without ever getting a pod; bound it with activeDeadlineSeconds "
            "(counted from the pod's start) and the Workflow's activeDeadlineSeconds",
        )
    if bounds.attempt_bound is None:
        emit(
            path,
            f"template '{name}': no time bound (activeDeadlineSeconds or timeout): a hung step holds its node, and "
            "its GPU, until someone notices",
        )
    selector = template.get("nodeSelector")
    if isinstance(selector, Mapping) and selector and not any("{{" in str(v) for v in selector.values()):
        labels = ", ".join(f"{k}={v}" for k, v in selector.items())
        emit(
            f"{path}.nodeSelector",
            f"template '{name}': fixed nodeSelector {labels}: on a cluster whose nodes lack the label the pod stays "
            "Pending forever; take it from a parameter (podSpecPatch with a node-selector parameter, {} = any "
            "node) or document the `kubectl label node` command beside the workflow",
        )
    if strategy is None:
        emit(
            f"{path}.retryStrategy",
            f"template '{name}': no retryStrategy: a preempted, evicted or deleted pod fails the workflow",
        )
        return
    _check_retry(name, path, strategy, bounds, emit)


def _check_retry(name: str, path: str, strategy: RetryStrategy, bounds: StepBounds, emit: Emit) -> None:
    retry_path = f"{path}.retryStrategy"
    if strategy.limit == 0:
        emit(f"{retry_path}.limit", f"template '{name}': retryStrategy.limit 0 never retries")
    for scenario in RETRY_SCENARIOS:
        attempt = Attempt(scenario.status, scenario.exit_code, scenario.message, 0.0, 1.0)
        try:
            retried = strategy.allows(attempt, 0)
        except ExpressionError as exc:
            emit(
                f"{retry_path}.expression",
                f"template '{name}': the expression fails on {scenario.label} (the retry node ends in Error): {exc}",
            )
            continue
        if retried and not scenario.retry:
            emit(
                f"{retry_path}.expression",
                f"template '{name}': retryStrategy retries {scenario.label}, which would only fail again",
            )
        elif scenario.retry and not retried:
            field = "expression" if strategy.expression else "retryPolicy"
            emit(
                f"{retry_path}.{field}",
                f"template '{name}': retryStrategy does not retry {scenario.label} (retryPolicy {strategy.policy}"
                + (f", expression {strategy.expression!r}" if strategy.expression else "")
                + ")",
            )
    bound = bounds.attempt_bound
    if strategy.max_duration_seconds is None or bound is None:
        return
    needed = strategy.worst_case_seconds(bound) if strategy.limit is not None else bound
    if strategy.max_duration_seconds < needed:
        emit(
            f"{retry_path}.backoff.maxDuration",
            f"template '{name}': backoff.maxDuration {_seconds(strategy.max_duration_seconds)} is shorter than the "
            f"step it retries ({_seconds(needed)}: {'' if strategy.limit is None else f'{strategy.limit + 1} x '}"
            f"{_seconds(bound)} plus backoff): the controller schedules no retry after first start + maxDuration "
            "and kills a running retry then (ARGO_DEADLINE); drop maxDuration or make it cover every attempt",
        )
