"""Local execution of an Argo Workflow manifest (``cxr run argo/paper.yaml``).

The runner reads the real manifest and the WorkflowTemplates it references, resolves parameters (workflow
defaults < profile < ``-p NAME=VALUE``), expands ``withItems``/``withParam``, walks the DAG (or steps) in
dependency order and runs each container's own command and args. Expressions (``depends``, ``when``, a retry
``expression``) are read by :mod:`cxrcore.ops.argo_expr`, the code the linter uses too. Output parameters are
read from the files the templates declare (``valueFrom.path``), so the very same template text works on a cluster
and here. Container paths under ``/tmp`` map to a per-step scratch folder.

Like the Argo controller (see :mod:`cxrcore.ops.retry`), it retries a failed step as its template's
``retryStrategy`` says (policy, ``expression`` over ``lastRetry.*``, ``limit``, ``backoff`` with
``maxDuration``), kills a step at its ``activeDeadlineSeconds`` (or ``timeout``, which replaces it and also counts
the wait for a free slot), stops everything at the Workflow's ``activeDeadlineSeconds``, and still runs the exit
handler. Each step runs in its own process group, so a deadline or :meth:`LocalRunner.terminate` ends all of it.

Executors: ``subprocess`` (this environment's console scripts), ``image-env`` (a clean virtualenv per image,
holding exactly what its Dockerfile installs: :mod:`cxrcore.ops.images`) and ``docker``.

What is deliberately not emulated: pod scheduling fields (nodeSelector, podSpecPatch, tolerations, resources,
semaphores, priority), secrets (the local environment's AWS variables and ``CXR_PATIENT_SALT`` are used instead
of ``secretKeyRef``), and ``{{=expr}}`` templates (none of our manifests use them).
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import dataclasses
import json
import os
import contextlib
import secrets
import signal
import string
import threading
import time
from collections.abc import Iterator
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from cxrcore.logging import get_logger
from cxrcore.ops import argo_expr, liveness
from cxrcore.ops.argo_expr import ExpressionError
from cxrcore.ops.argo_metrics import MetricsRecorder
from cxrcore.ops.executor import EXECUTORS, StepExecutor, substitute
from cxrcore.ops.nodes import NodeResult, RunResult, WorkflowError
from cxrcore.ops.retry import STEP_DEADLINE_MESSAGE

__all__ = [
    "ARGO_KINDS",
    "EXECUTORS",
    "LocalRunner",
    "NodeResult",
    "RunResult",
    "WorkflowError",
    "evaluate_depends",
    "load_profiles",
    "load_workflow",
    "resolve_arguments",
    "substitute",
]

log = get_logger(__name__)

ARGO_KINDS = {"Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow"}
_STATUSES = ("Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned")

# ---------------------------------------------------------------------------------------------- loading
def _load_yaml_documents(path: Path, *, manifests_only: bool = True) -> list[dict[str, Any]]:
    try:
        documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    except yaml.YAMLError as exc:
        raise WorkflowError(f"{path}: not valid YAML: {exc}") from exc
    manifests = [doc for doc in documents if isinstance(doc, dict) and "kind" in doc]
    if manifests_only and len(manifests) != len(documents):
        raise WorkflowError(f"{path}: every document needs a kind")
    return manifests


def load_workflow(
    path: str | os.PathLike[str], template_paths: Sequence[str | os.PathLike[str]] = ()
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Reads a Workflow (or CronWorkflow) and every WorkflowTemplate it can reference.

    WorkflowTemplates are looked up in the workflow's own folder (every ``*.yaml``) and in ``template_paths``.

    Returns:
        ``(workflow, templates)``: the workflow as a Workflow-shaped dict (a CronWorkflow's ``workflowSpec`` is
        wrapped), and ``{workflow_template_name: manifest}``.

    Raises:
        WorkflowError: No Workflow/CronWorkflow in the file, or unreadable YAML.
    """
    path = Path(path)
    if not path.is_file():
        raise WorkflowError(f"Workflow manifest not found. Received: path={path}")
    candidates = sorted(path.parent.glob("*.yaml")) + [Path(p) for p in template_paths]
    templates: dict[str, dict[str, Any]] = {}
    for candidate in candidates:
        # Sibling files that are not manifests (argo/profiles.yaml) are skipped.
        for doc in _load_yaml_documents(candidate, manifests_only=False):
            if doc["kind"] in ("WorkflowTemplate", "ClusterWorkflowTemplate"):
                templates[doc["metadata"]["name"]] = doc
    workflows = [doc for doc in _load_yaml_documents(path) if doc["kind"] in ("Workflow", "CronWorkflow")]
    if not workflows:
        raise WorkflowError(f"{path}: holds no Workflow or CronWorkflow")
    workflow = workflows[0]
    if workflow["kind"] == "CronWorkflow":
        workflow = {
            "apiVersion": workflow["apiVersion"],
            "kind": "Workflow",
            "metadata": {"generateName": workflow["metadata"]["name"] + "-"},
            "spec": copy.deepcopy(workflow["spec"]["workflowSpec"]),
        }
    return workflow, templates


def load_profiles(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Reads ``argo/profiles.yaml``: ``{name: {"description", "parameters", "requires"}}``."""
    path = Path(path)
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise WorkflowError(f"{path}: profiles must be a mapping of name -> {{parameters: ...}}")
    return data


def resolve_arguments(
    workflow: Mapping[str, Any],
    *,
    profile: Mapping[str, Any] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Workflow parameters: manifest defaults < profile < overrides; unknown names are refused.

    Raises:
        WorkflowError: An override or profile names a parameter the workflow does not declare, or a required
            parameter (no value, or listed in the profile's ``requires``) is missing.
    """
    declared = {p["name"]: p.get("value") for p in workflow["spec"].get("arguments", {}).get("parameters", [])}
    values: dict[str, str | None] = {k: (None if v is None else str(v)) for k, v in declared.items()}
    layers = [("profile", (profile or {}).get("parameters", {})), ("-p", overrides or {})]
    for origin, layer in layers:
        for name, value in layer.items():
            if name not in declared:
                raise WorkflowError(
                    f"{origin} sets parameter {name!r}, which the workflow does not declare "
                    f"(declared: {', '.join(sorted(declared))})"
                )
            values[name] = str(value)
    for name in (profile or {}).get("requires", []):
        if not (overrides or {}).get(name):
            raise WorkflowError(f"this profile needs -p {name}=... (e.g. a Kaggle chest_xray folder or s3:// prefix)")
    missing = sorted(name for name, value in values.items() if value is None)
    if missing:
        raise WorkflowError(f"workflow parameters without a value: {', '.join(missing)} (set them with -p NAME=VALUE)")
    return {k: v for k, v in values.items() if v is not None}


# ---------------------------------------------------------------------------------------------- templating
def evaluate_depends(expression: str, statuses: Mapping[str, NodeResult]) -> bool | None:
    """Evaluates an Argo ``depends`` expression against finished nodes (:func:`argo_expr.parse_depends`).

    Returns ``None`` while a referenced task has not finished, else whether the task may run.

    Raises:
        WorkflowError: Syntax errors.
    """
    try:
        return argo_expr.parse_depends(expression).evaluate(statuses)
    except ExpressionError as exc:
        raise WorkflowError(str(exc)) from exc


def _evaluate_when(expression: str) -> bool:
    """Evaluates a substituted ``when`` as the controller does (govaluate; bare words are strings)."""
    try:
        return argo_expr.evaluate_when(expression)
    except ExpressionError as exc:
        raise WorkflowError(f"cannot evaluate when {expression!r}: {exc}") from exc


# ---------------------------------------------------------------------------------------------- execution
@dataclasses.dataclass
class _Scope:
    """Templates visible from a template: its own manifest's, plus WorkflowTemplates by name."""

    templates: dict[str, dict[str, Any]]
    owner: str


class LocalRunner:
    """Runs one workflow on this machine.

    Args:
        workflow: Workflow-shaped manifest (see :func:`load_workflow`).
        workflow_templates: ``{name: WorkflowTemplate manifest}``.
        parameters: Resolved workflow parameters (see :func:`resolve_arguments`).
        work_dir: Where step logs, scratch folders and artifacts go.
        executor: ``subprocess`` (console scripts of this environment), ``image-env`` (each step in a clean
            virtualenv holding exactly what the Dockerfile of its template's image installs, see
            :mod:`cxrcore.ops.images`) or ``docker``.
        parallelism: Containers running at once (like pod capacity: a template's ``timeout`` counts the wait).
        name: Workflow name (``{{workflow.name}}``, the run id); default ``generateName`` + 5 random chars.
        env: Extra environment for every step.
        project_root: The repository whose ``docker/`` folder defines the images (``image-env``).
        termination_grace_seconds: Between SIGTERM and SIGKILL when a deadline kills a step.
    """

    def __init__(
        self,
        workflow: Mapping[str, Any],
        workflow_templates: Mapping[str, Mapping[str, Any]],
        parameters: Mapping[str, str],
        *,
        work_dir: str | os.PathLike[str],
        executor: str = "subprocess",
        parallelism: int = 2,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        project_root: str | os.PathLike[str] | None = None,
        termination_grace_seconds: float = 10.0,
    ) -> None:
        if parallelism < 1:
            raise ValueError(f"parallelism must be >= 1. Received: parallelism={parallelism}")
        self.workflow = workflow
        self.spec = workflow["spec"]
        self.workflow_templates = workflow_templates
        self.parameters = dict(parameters)
        self.executor = executor
        self.parallelism = min(parallelism, int(self.spec.get("parallelism") or parallelism))
        metadata = workflow.get("metadata", {})
        alphabet = string.ascii_lowercase + string.digits
        self.name = name or metadata.get("name") or (
            metadata.get("generateName", "cxr-") + "".join(secrets.choice(alphabet) for _ in range(5))
        )
        self.work_dir = Path(work_dir).resolve() / self.name
        self._steps = StepExecutor(
            executor,
            self.work_dir,
            parallelism=self.parallelism,
            store=self.parameters.get("store", ""),
            env=env,
            project_root=Path(project_root) if project_root else Path(__file__).resolve().parents[2],
            termination_grace_seconds=termination_grace_seconds,
        )
        self.failures = self._steps.failures
        self.terminated = False
        self._steps_lock = threading.Lock()
        self.metrics = MetricsRecorder()

    # -------------------------------------------------------------- public
    def run(self) -> RunResult:
        """Runs the entrypoint, then the ``onExit`` handler; returns the :class:`RunResult`.

        From the main thread, SIGTERM and SIGINT are forwarded: every running step's process group is
        terminated, nothing new starts, no step is retried and the exit handler is skipped (like
        ``argo terminate``); the result is ``Failed``.

        Raises:
            WorkflowError: The manifest cannot run, or a step of an earlier attempt at this run (same name and
                work folder) is still alive: resuming now would race it.
        """
        self.work_dir.mkdir(parents=True, exist_ok=True)
        alive = liveness.alive_steps(self.work_dir)
        if alive:
            listed = ", ".join(f"{name} (pid {pid})" for name, pid in alive)
            raise WorkflowError(
                f"run {self.name!r} still has live steps from an earlier runner: {listed}; they are still writing "
                "to the store. Wait for them to finish or stop them (kill -TERM -<pid>), then resume."
            )
        with _forward_termination(self):
            return self._run()

    def _run(self) -> RunResult:
        scope = _Scope({t["name"]: t for t in self.spec.get("templates", [])}, "workflow")
        context = self._workflow_context()
        entry = self.spec.get("entrypoint")
        if not entry:
            raise WorkflowError("workflow has no entrypoint")
        log.info("workflow_start", workflow=self.name, entrypoint=entry, work_dir=str(self.work_dir))
        started = time.monotonic()
        deadline = self.spec.get("activeDeadlineSeconds")
        try:
            self._steps.deadline = None if deadline in (None, "") else started + argo_expr.parse_duration(deadline)
        except ExpressionError as exc:
            raise WorkflowError(f"spec.activeDeadlineSeconds: {exc}") from exc
        self._steps.slots.enter()  # this thread: see cxrcore.ops.slots (grants wait while a runner thread works)
        try:
            root = self._run_template(entry, scope, {}, context, entry)
            self._steps.deadline = None  # the exit handler is exempt from the workflow's deadline, as in Argo
            status = "Succeeded" if root.status in ("Succeeded", "Skipped") and not self.terminated else "Failed"
            nodes = {child.name: child for child in root.children} or {root.name: root}
            on_exit = self.spec.get("onExit")
            if on_exit and not self.terminated:
                exit_context = {**context, "workflow.status": status, "workflow.failures": json.dumps(self.failures)}
                handler = self._run_template(on_exit, scope, {}, exit_context, "onExit")
                nodes["onExit"] = handler
        finally:
            self._steps.slots.leave()
        seconds = time.monotonic() - started
        scope = {**context, "workflow.status": status, "workflow.duration": f"{seconds:f}"}
        self.metrics.observe(self.spec.get("metrics"), scope)
        self._write_metrics()
        log.info("workflow_done", workflow=self.name, status=status, seconds=round(seconds, 1))
        return RunResult(self.name, status, self.parameters, nodes, str(self.work_dir), self.failures)

    # -------------------------------------------------------------- templates
    def _workflow_context(self) -> dict[str, Any]:
        context: dict[str, Any] = {f"workflow.parameters.{k}": v for k, v in self.parameters.items()}
        context.update({"workflow.name": self.name, "workflow.namespace": "local", "workflow.uid": self.name})
        return context

    def _lookup(self, reference: Mapping[str, Any], scope: _Scope) -> tuple[dict[str, Any], _Scope]:
        if "templateRef" in reference:
            ref = reference["templateRef"]
            manifest = self.workflow_templates.get(ref["name"])
            if manifest is None:
                raise WorkflowError(f"templateRef to unknown WorkflowTemplate {ref['name']!r}")
            templates = {t["name"]: t for t in manifest["spec"].get("templates", [])}
            if ref["template"] not in templates:
                raise WorkflowError(f"WorkflowTemplate {ref['name']!r} has no template {ref['template']!r}")
            return templates[ref["template"]], _Scope(templates, ref["name"])
        name = reference.get("template")
        if name not in scope.templates:
            raise WorkflowError(f"unknown template {name!r} in {scope.owner}")
        return scope.templates[name], scope

    def _run_template(
        self, name: str, scope: _Scope, arguments: Mapping[str, str], context: Mapping[str, Any], node: str
    ) -> NodeResult:
        template, inner = self._lookup({"template": name}, scope)
        return self._execute(template, inner, arguments, context, node, ())

    def _inputs(self, template: Mapping[str, Any], arguments: Mapping[str, str]) -> dict[str, str]:
        values: dict[str, str] = {}
        for parameter in template.get("inputs", {}).get("parameters", []):
            pname = parameter["name"]
            if pname in arguments:
                values[pname] = arguments[pname]
            elif "value" in parameter:
                values[pname] = str(parameter["value"])
            elif "default" in parameter:
                values[pname] = str(parameter["default"])
            else:
                raise WorkflowError(f"template {template['name']!r} needs input parameter {pname!r}")
        unknown = sorted(set(arguments) - set(values))
        if unknown:
            raise WorkflowError(f"template {template['name']!r} has no input parameter(s) {unknown}")
        return values

    def _execute(
        self,
        template: Mapping[str, Any],
        scope: _Scope,
        arguments: Mapping[str, str],
        context: Mapping[str, Any],
        node: str,
        priority: tuple[int, ...],
    ) -> NodeResult:
        """Runs one template; ``priority`` is its position in the manifest (slot order, :mod:`cxrcore.ops.slots`)."""
        inputs = self._inputs(template, arguments)
        local = {k: v for k, v in context.items() if not k.startswith(("inputs.", "tasks.", "steps.", "item"))}
        local.update({f"inputs.parameters.{k}": v for k, v in inputs.items()})
        if "dag" in template:
            return self._run_dag(template, scope, local, node, priority)
        if "steps" in template:
            return self._run_steps(template, scope, local, node, priority)
        if "container" in template:
            started = time.monotonic()
            result = self._steps.run(template, local, node, priority)
            self._emit_metrics(template, local, result, time.monotonic() - started)
            return result
        raise WorkflowError(f"template {template['name']!r}: only container, dag and steps templates are supported")

    # -------------------------------------------------------------- dag / steps
    def _expand(self, task: Mapping[str, Any], context: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """Returns ``[(node suffix, item context)]``: one entry, or one per withItems/withParam item."""
        if "withItems" in task:
            items = substitute(task["withItems"], context)
        elif "withParam" in task:
            raw = substitute(task["withParam"], context)
            try:
                items = json.loads(raw)
            except ValueError as exc:
                raise WorkflowError(f"task {task['name']!r}: withParam is not a JSON list: {raw[:200]!r}") from exc
            if not isinstance(items, list):
                raise WorkflowError(f"task {task['name']!r}: withParam must be a JSON list. Received: {raw[:200]!r}")
        else:
            return [("", {})]
        expanded = []
        for index, item in enumerate(items):
            item_context: dict[str, Any] = {"item": item}
            if isinstance(item, dict):
                item_context.update({f"item.{key}": value for key, value in item.items()})
            label = item if not isinstance(item, dict) else ",".join(str(v) for v in item.values())
            expanded.append((f"({index}:{label})", item_context))
        return expanded

    def _run_task(
        self, task: Mapping[str, Any], scope: _Scope, context: Mapping[str, Any], node: str, priority: tuple[int, ...]
    ) -> NodeResult:
        template, inner = self._lookup(task, scope)
        expansions = self._expand(task, context)
        children: list[NodeResult] = []

        def one(entry: tuple[str, dict[str, Any]], item_priority: tuple[int, ...]) -> NodeResult:
            suffix, item_context = entry
            full = {**context, **item_context}
            when = task.get("when")
            if when and not _evaluate_when(substitute(when, full)):
                return NodeResult(f"{node}{suffix}", template["name"], "Skipped", message=f"when {when!r} is false")
            arguments = {
                p["name"]: str(substitute(p.get("value", ""), full))
                for p in task.get("arguments", {}).get("parameters", [])
            }
            return self._execute(template, inner, arguments, full, f"{node}{suffix}", item_priority)

        if expansions == [("", {})]:
            return one(expansions[0], priority)
        children = self._steps.slots.map(one, [(entry, (*priority, index)) for index, entry in enumerate(expansions)])
        aggregate = NodeResult(node, template["name"], _aggregate_status(children), children=children)
        names = {name for child in children for name in child.parameters}
        aggregate.parameters = {
            name: json.dumps([child.parameters.get(name) for child in children]) for name in sorted(names)
        }
        return aggregate

    def _task_outputs(self, prefix: str, name: str, result: NodeResult) -> dict[str, Any]:
        outputs: dict[str, Any] = {f"{prefix}.{name}.status": result.status}
        for key, value in result.parameters.items():
            outputs[f"{prefix}.{name}.outputs.parameters.{key}"] = value
        if result.result is not None:
            outputs[f"{prefix}.{name}.outputs.result"] = result.result
        return outputs

    def _run_dag(
        self, template: Mapping[str, Any], scope: _Scope, context: dict[str, Any], node: str, priority: tuple[int, ...]
    ) -> NodeResult:
        dag = template["dag"]
        slots = self._steps.slots
        tasks = {task["name"]: task for task in dag["tasks"]}
        fail_fast = dag.get("failFast", True)
        done: dict[str, NodeResult] = {}
        running: dict[cf.Future, str] = {}
        outputs: dict[str, Any] = {}

        def depends_of(task: Mapping[str, Any]) -> str | None:
            if "depends" in task:
                return str(task["depends"])
            if task.get("dependencies"):
                return " && ".join(f"{d}.Succeeded" for d in task["dependencies"])
            return None

        for task in tasks.values():
            expression = depends_of(task)
            try:
                references = argo_expr.parse_depends(expression).tasks if expression else ()
            except ExpressionError as exc:
                raise WorkflowError(f"task {task['name']!r}: {exc}") from exc
            for reference in references:
                if reference not in tasks:
                    raise WorkflowError(f"task {task['name']!r} depends on unknown task {reference!r}")
        with cf.ThreadPoolExecutor(max_workers=max(1, len(tasks))) as pool:
            while len(done) < len(tasks):
                progressed = False
                failed = any(r.status in ("Failed", "Errored") for r in done.values())
                for index, (name, task) in enumerate(tasks.items()):
                    if name in done or name in running.values():
                        continue
                    expression = depends_of(task)
                    ready = True if expression is None else evaluate_depends(expression, done)
                    if ready is None:
                        continue
                    progressed = True
                    if ready and self._past_deadline():
                        done[name] = NodeResult(name, _template_name(task), "Failed", message=STEP_DEADLINE_MESSAGE)
                        continue
                    if not ready or (failed and fail_fast):
                        reason = "dependencies not satisfied" if not ready else "failFast after a failure"
                        done[name] = NodeResult(name, _template_name(task), "Omitted", message=reason)
                        continue
                    task_context = {**context, **outputs}
                    future = slots.submit(pool, self._run_task, task, scope, task_context, name, (*priority, index))
                    running[future] = name
                if running:
                    for future in slots.wait_first(running):
                        name = running.pop(future)
                        try:
                            result = future.result()
                        except WorkflowError:
                            raise
                        except Exception as exc:  # an executor bug must not hang the DAG
                            result = NodeResult(name, _template_name(tasks[name]), "Errored", message=str(exc))
                        done[name] = result
                        outputs.update(self._task_outputs("tasks", name, result))
                elif not progressed:
                    stuck = sorted(set(tasks) - set(done))
                    raise WorkflowError(f"DAG {template['name']!r} cannot progress (cycle?) at tasks {stuck}")
        children = [done[name] for name in tasks]
        return NodeResult(node, template["name"], _aggregate_status(children, omitted_ok=True), children=children)

    def _run_steps(
        self, template: Mapping[str, Any], scope: _Scope, context: dict[str, Any], node: str, priority: tuple[int, ...]
    ) -> NodeResult:
        outputs: dict[str, Any] = {}
        children: list[NodeResult] = []
        for group_index, group in enumerate(template["steps"]):
            if self._past_deadline():
                children.append(NodeResult(node, template["name"], "Failed", message=STEP_DEADLINE_MESSAGE))
                break
            group_context = {**context, **outputs}
            results = self._steps.slots.map(
                self._run_task,
                [(step, scope, group_context, step["name"], (*priority, group_index, step_index))
                 for step_index, step in enumerate(group)],
            )
            for step, result in zip(group, results):
                outputs.update(self._task_outputs("steps", step["name"], result))
                children.append(result)
            if any(r.status in ("Failed", "Errored") for r in results):
                break
        return NodeResult(node, template["name"], _aggregate_status(children), children=children)

    def _emit_metrics(
        self, template: Mapping[str, Any], context: Mapping[str, Any], result: NodeResult, seconds: float
    ) -> None:
        """A template's ``metrics`` with the node's scope, as the controller computes them at completion."""
        if not template.get("metrics"):
            return
        scope: dict[str, Any] = {
            **context,
            "status": _ARGO_PHASES.get(result.status, result.status),
            "duration": f"{seconds:f}",
        }
        if result.exit_code is not None:
            scope["exitCode"] = str(result.exit_code)
        if result.attempts:
            scope["retries"] = str(len(result.attempts) - 1)
        scope.update({f"outputs.parameters.{name}": value for name, value in result.parameters.items()})
        for parameter in template.get("outputs", {}).get("parameters", []):
            scope.setdefault(f"outputs.parameters.{parameter['name']}", "")  # not collected: empty, as in Argo
        self.metrics.observe(template["metrics"], scope)

    def _write_metrics(self) -> None:
        for error in self.metrics.errors:
            log.warning("metrics_error", error=error)  # the controller's MetricsError condition
        if self.metrics.samples():
            self.metrics.write(self.work_dir / "metrics.prom")

    def _past_deadline(self) -> bool:
        return self._steps.deadline is not None and time.monotonic() >= self._steps.deadline

    def terminate(self) -> None:
        """Stops the run: no new step starts or retries, running steps' process groups get SIGTERM (then SIGKILL
        after the grace period)."""
        self.terminated = True
        self._steps.deadline = time.monotonic()  # nothing new starts and nothing is retried
        with self._steps_lock:
            self.failures.append({"displayName": self.name, "templateName": "", "phase": "Failed",
                                  "message": "terminated by a signal to the runner"})
        self._steps.terminate()


@contextlib.contextmanager
def _forward_termination(runner: LocalRunner) -> Iterator[None]:
    """While the runner works, SIGTERM/SIGINT terminate its steps instead of orphaning them (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        log.warning("runner_terminating", workflow=runner.name, signal=signal.Signals(signum).name)
        runner.terminate()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


_ARGO_PHASES = {"Errored": "Error"}


def _template_name(task: Mapping[str, Any]) -> str:
    """The template a task runs (``template`` or ``templateRef.template``)."""
    return str((task.get("templateRef") or {}).get("template") or task.get("template", ""))


def _aggregate_status(children: list[NodeResult], *, omitted_ok: bool = False) -> str:
    if not children:
        return "Succeeded"
    if any(child.status in ("Failed", "Errored") for child in children):
        return "Failed"
    if omitted_ok and any(child.status == "Omitted" for child in children):
        # An omitted task whose dependencies failed is already covered above; omitted by `depends` logic is fine.
        return "Succeeded"
    if all(child.status == "Skipped" for child in children):
        return "Skipped"
    return "Succeeded"
