"""What the Argo controller does with a failed attempt and with a step's time bounds, in one place.

The local runner (:mod:`cxrcore.ops.runner`) decides retries and deadlines with these functions, and the linter
(:mod:`cxrcore.ops.lint.bounds`) checks our manifests against the same rules, so a manifest mistake shows up on this
machine before it shows up on a cluster. Each rule follows the controller's code (Argo Workflows 3.6 to 4.x,
``workflow/controller/operator.go``):

* ``processNodeRetries`` checks, in this order: the workflow deadline; ``backoff`` (wait ``duration *
  factor^(attempts-1)``; no retry once ``first attempt start + maxDuration`` has passed or the wait would pass
  it); ``retryPolicy`` (``Always``, ``OnFailure`` — the default without an expression —, ``OnError``,
  ``OnTransientError``; ``Always`` is the default when an ``expression`` is given); ``limit``; and last the
  ``expression``. A retry needs the policy **and** the expression.
* The expression sees strings only: ``lastRetry.exitCode`` (``"-1"`` when the main container never terminated:
  a deleted or evicted pod, a controller-side timeout), ``lastRetry.status`` (``Failed`` or ``Error``),
  ``lastRetry.duration`` (seconds, possibly fractional) and ``lastRetry.message``.
* A retry attempt carries ``ARGO_DEADLINE = first attempt start + maxDuration``: the executor kills it then.
* A template's ``timeout`` is counted from the node's start, including time Pending on a semaphore, and it
  replaces the template's ``activeDeadlineSeconds`` on the pod. ``activeDeadlineSeconds`` alone counts from the
  pod's start, so it does not count queueing (nor time unschedulable: the Workflow's own
  ``activeDeadlineSeconds`` bounds that).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

from cxrcore.ops.argo_expr import ExpressionError, evaluate, parse_duration

__all__ = [
    "DEADLINE_MESSAGE",
    "POLICIES",
    "STEP_DEADLINE_MESSAGE",
    "Attempt",
    "RetryDecision",
    "RetryStrategy",
    "StepBounds",
]

POLICIES = ("Always", "OnFailure", "OnError", "OnTransientError")
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"
STEP_DEADLINE_MESSAGE = "Step exceeded its deadline"
# Argo's default TRANSIENT_ERROR_PATTERN plus the messages of API-initiated evictions and node shutdowns.
_TRANSIENT = re.compile(
    r"(?i)(connection reset|connection refused|i/o timeout|no such host|try again|TLS handshake timeout"
    r"|etcdserver|the object has been modified|pod deleted|evict|low on resource|node shutdown|preempt)"
)


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One finished attempt of a step, as the controller sees it.

    Attributes:
        status: ``"Failed"`` (the main container failed) or ``"Error"`` (the pod or the executor did).
        exit_code: The main container's exit code, or ``None`` when it never terminated.
        message: The node's message.
        started: Monotonic start time (seconds).
        finished: Monotonic end time (seconds).
    """

    status: str
    exit_code: int | None
    message: str
    started: float
    finished: float

    def variables(self, retries: int) -> dict[str, Any]:
        """The expression's scope: ``retries`` and ``lastRetry.*``, all strings as in the controller."""
        return {
            "retries": str(retries),
            "lastRetry": {
                "exitCode": "-1" if self.exit_code is None else str(self.exit_code),
                "status": self.status,
                "duration": str(round(self.finished - self.started, 3)),
                "message": self.message,
            },
        }


@dataclasses.dataclass(frozen=True)
class RetryDecision:
    """Whether to run another attempt, after how many seconds, and why (the node's message when not)."""

    retry: bool
    wait_seconds: float = 0.0
    reason: str = ""
    execution_deadline: float | None = None


@dataclasses.dataclass(frozen=True)
class RetryStrategy:
    """A template's ``retryStrategy``, parsed and checked.

    Attributes:
        limit: Retries after the first attempt (``None``: unlimited, as in Argo).
        policy: One of :data:`POLICIES`, with Argo's defaults applied.
        expression: The ``expression`` or ``None``.
        backoff_seconds: ``backoff.duration`` (``None`` without backoff).
        backoff_factor: ``backoff.factor`` (an integer in Argo).
        max_duration_seconds: ``backoff.maxDuration`` or ``None``.
    """

    limit: int | None
    policy: str
    expression: str | None = None
    backoff_seconds: float | None = None
    backoff_factor: int = 1
    max_duration_seconds: float | None = None

    @classmethod
    def from_template(cls, template: Mapping[str, Any]) -> RetryStrategy | None:
        """The template's strategy, or ``None`` without ``retryStrategy``.

        Raises:
            ValueError: A field Argo would reject (unknown policy, non-integer factor, bad duration, negative limit).
        """
        raw = template.get("retryStrategy")
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            raise ValueError(f"retryStrategy must be a mapping. Received: retryStrategy={raw!r}")
        expression = raw.get("expression")
        policy = raw.get("retryPolicy") or ("Always" if expression else "OnFailure")
        if policy not in POLICIES:
            raise ValueError(f"retryPolicy must be one of {POLICIES}. Received: retryPolicy={policy!r}")
        limit = raw.get("limit")
        if limit is not None:
            try:
                limit = int(str(limit))
            except ValueError as exc:
                raise ValueError(f"retryStrategy.limit must be an integer. Received: limit={limit!r}") from exc
            if limit < 0:
                raise ValueError(f"retryStrategy.limit must be >= 0. Received: limit={limit}")
        backoff = raw.get("backoff") or {}
        try:
            duration = parse_duration(backoff["duration"]) if "duration" in backoff else None
            max_duration = parse_duration(backoff["maxDuration"]) if "maxDuration" in backoff else None
        except ExpressionError as exc:
            raise ValueError(f"retryStrategy.backoff: {exc}") from exc
        factor_text = str(backoff.get("factor", 1))
        if not re.fullmatch(r"\d+", factor_text):
            raise ValueError(f"retryStrategy.backoff.factor must be an integer. Received: factor={factor_text!r}")
        return cls(
            limit=limit,
            policy=str(policy),
            expression=str(expression) if expression else None,
            backoff_seconds=duration,
            backoff_factor=int(factor_text),
            max_duration_seconds=max_duration,
        )

    def allows(self, attempt: Attempt, retries: int) -> bool:
        """Whether the policy and the expression retry ``attempt`` (ignoring limit, backoff and deadlines).

        Raises:
            ExpressionError: The expression cannot be evaluated for this attempt (on a cluster the retry node
                then ends in ``Error``).
        """
        if not self._policy_allows(attempt):
            return False
        if self.expression is None:
            return True
        value = evaluate(self.expression, attempt.variables(retries))
        if not isinstance(value, bool):
            raise ExpressionError(f"retryStrategy.expression must give a boolean, got {value!r}")
        return value

    def _policy_allows(self, attempt: Attempt) -> bool:
        if self.policy == "Always":
            return attempt.status in ("Failed", "Error")
        if self.policy == "OnFailure":
            return attempt.status == "Failed"
        if self.policy == "OnError":
            return attempt.status == "Error"
        return attempt.status == "Error" or (attempt.status == "Failed" and bool(_TRANSIENT.search(attempt.message)))

    def backoff_wait(self, attempts: int) -> float:
        """Seconds to wait before attempt ``attempts + 1`` (``attempts`` >= 1 have run)."""
        if self.backoff_seconds is None or self.limit is None:
            return 0.0
        return self.backoff_seconds * self.backoff_factor ** (attempts - 1)

    def decide(
        self, attempts: list[Attempt], *, now: float, workflow_deadline: float | None = None
    ) -> RetryDecision:
        """The controller's decision after the last of ``attempts`` failed (``processNodeRetries``)."""
        if workflow_deadline is not None and now >= workflow_deadline:
            return RetryDecision(False, reason="retry exceeded workflow deadline")
        wait = self.backoff_wait(len(attempts))
        max_deadline = None
        if self.max_duration_seconds is not None:
            max_deadline = attempts[0].started + self.max_duration_seconds
            if now > max_deadline:
                return RetryDecision(False, reason="Max duration limit exceeded")
            if now + wait > max_deadline:
                return RetryDecision(False, reason="Backoff would exceed max duration limit")
        last = attempts[-1]
        if not self._policy_allows(last):
            return RetryDecision(False, reason=last.message)
        if self.limit is not None and len(attempts) > self.limit:
            return RetryDecision(False, reason="No more retries left")
        try:
            allowed = self.allows(last, len(attempts) - 1)
        except ExpressionError as exc:
            return RetryDecision(False, reason=f"Error: retryStrategy.expression: {exc}")
        if not allowed:
            return RetryDecision(False, reason="retryStrategy.expression evaluated to false")
        return RetryDecision(True, wait_seconds=wait, execution_deadline=max_deadline)

    def worst_case_seconds(self, attempt_bound: float) -> float:
        """How long all attempts may take when each runs to ``attempt_bound`` (``inf`` without a limit)."""
        if self.limit is None:
            return math.inf
        waits = sum(self.backoff_wait(n) for n in range(1, self.limit + 1))
        return attempt_bound * (self.limit + 1) + waits


@dataclasses.dataclass(frozen=True)
class StepBounds:
    """A template's time bounds.

    Attributes:
        timeout_seconds: ``timeout``: from the node's start (queueing included); replaces ADS on the pod.
        active_deadline_seconds: ``activeDeadlineSeconds``: from the pod's start.
    """

    timeout_seconds: float | None
    active_deadline_seconds: float | None

    @classmethod
    def from_template(cls, template: Mapping[str, Any]) -> StepBounds:
        """Reads ``timeout`` and ``activeDeadlineSeconds``.

        Raises:
            ValueError: A value Argo would reject.
        """
        try:
            timeout = parse_duration(template["timeout"]) if template.get("timeout") not in (None, "") else None
            ads_raw = template.get("activeDeadlineSeconds")
            ads = parse_duration(ads_raw) if ads_raw not in (None, "") else None
        except ExpressionError as exc:
            raise ValueError(str(exc)) from exc  # callers name the template
        return cls(timeout, ads)

    @property
    def attempt_bound(self) -> float | None:
        """The longest one attempt may run once its pod started (``timeout`` wins over ADS, as in Argo)."""
        return self.timeout_seconds if self.timeout_seconds is not None else self.active_deadline_seconds

    def pod_deadline(self, node_started: float, pod_started: float) -> float | None:
        """Monotonic time at which the pod is killed (``None``: never, by this template)."""
        if self.timeout_seconds is not None:
            return node_started + self.timeout_seconds
        if self.active_deadline_seconds is not None:
            return pod_started + self.active_deadline_seconds
        return None
