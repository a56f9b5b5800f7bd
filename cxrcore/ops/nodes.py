"""What a local run produces: the result of each node and of the whole workflow, and the runner's error."""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["NodeResult", "RunResult", "WorkflowError"]


class WorkflowError(RuntimeError):
    """The manifest cannot be run as written (missing template, bad parameter, cycle, ...)."""


@dataclasses.dataclass
class NodeResult:
    """Outcome of one executed node (a task, a fan-out item or a step)."""

    name: str
    template: str
    status: str
    parameters: dict[str, str] = dataclasses.field(default_factory=dict)
    result: str | None = None
    artifacts: dict[str, str] = dataclasses.field(default_factory=dict)
    exit_code: int | None = None
    seconds: float = 0.0
    log_path: str | None = None
    message: str | None = None
    children: list[NodeResult] = dataclasses.field(default_factory=list)
    attempts: list[dict[str, Any]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class RunResult:
    """Outcome of a whole workflow run."""

    name: str
    status: str
    parameters: dict[str, str]
    nodes: dict[str, NodeResult]
    work_dir: str
    failures: list[dict[str, Any]]

    def find(self, task: str) -> NodeResult | None:
        """The node of a top-level task by name."""
        return self.nodes.get(task)
