"""The semantics Argo checks only at submission or at run time, for one Workflow, WorkflowTemplate,
ClusterWorkflowTemplate or CronWorkflow.

Template types, DAG dependencies (``depends`` read by :func:`cxrcore.ops.argo_expr.parse_depends`, as the local
runner reads it) and cycles, ``template``/``templateRef`` targets across files, arguments against the callee's
inputs, entrypoint, exit handler and hooks, cron schedules, the objects a workflow names (ServiceAccounts,
PriorityClasses, semaphore ConfigMaps, the artifact repository), and the retry, time-bound and scheduling rules
of :mod:`cxrcore.ops.lint.bounds`.
"""

from __future__ import annotations

import re
from typing import Any

from cxrcore.ops.argo_expr import ExpressionError, parse_depends
from cxrcore.ops.lint import bounds, metrics
from cxrcore.ops.lint.common import child, mapping, sequence, strings, suggestion
from cxrcore.ops.lint.containers import (
    check_container_references,
    check_env,
    check_image,
    check_pod_template,
    is_pod_template,
    pod_containers,
)
from cxrcore.ops.lint.context import ArgoManifest, LintContext, Target, calls
from cxrcore.ops.lint.files import Document
from cxrcore.ops.lint.references import (
    TemplateGraph,
    check_reference_context,
    check_template_references,
    references,
)

__all__ = ["ARTIFACT_REPOSITORY_ANNOTATION", "check_manifest"]

ARTIFACT_REPOSITORY_ANNOTATION = "workflows.argoproj.io/default-artifact-repository"
_TEMPLATE_TYPES = (
    "container", "script", "dag", "steps", "resource", "suspend", "data", "http", "containerSet", "plugin"
)
_ARTIFACT_SOURCES = ("s3", "http", "git", "raw", "artifactory", "hdfs", "oss", "gcs", "azure", "from", "fromExpression")
_CRON_DESCRIPTORS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_CRON_FIELD = re.compile(r"[0-9A-Za-z*?,/-]+")
_CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")


def check_manifest(context: LintContext, manifest: ArgoManifest) -> None:
    """Runs every semantic check on one linted Argo manifest."""
    if manifest.kind == "CronWorkflow":
        _check_cron(context, manifest)
    _check_bounds(context, manifest)
    _check_metrics(context, manifest)
    _check_templates(context, manifest)
    _check_entry_points(context, manifest)
    _check_spec_parameters(context, manifest)
    _check_template_defaults(context, manifest)
    _check_cluster_references(context, manifest)


def _check_templates(context: LintContext, manifest: ArgoManifest) -> None:
    document, spec_path = manifest.document, manifest.spec_path
    seen: set[str] = set()
    for index, template in enumerate(sequence(manifest.spec.get("templates"))):
        template_path = f"{child(spec_path, 'templates')}[{index}]"
        if not isinstance(template, dict):
            continue
        name = template.get("name")
        if not isinstance(name, str) or not name:
            context.emit(document, child(template_path, "name"), "missing required field")
        elif name in seen:
            context.emit(document, child(template_path, "name"), f"duplicate template name '{name}'")
        else:
            seen.add(name)
        _check_template(context, manifest, template_path, template, name if isinstance(name, str) else "?")


def _check_entry_points(context: LintContext, manifest: ArgoManifest) -> None:
    """``workflowTemplateRef``, ``entrypoint``, ``onExit`` and ``hooks`` of the spec name existing templates."""
    document, spec, spec_path = manifest.document, manifest.spec, manifest.spec_path
    workflow_reference = mapping(spec.get("workflowTemplateRef"))
    referenced_templates: dict[str, Any] = {}
    if workflow_reference:
        cluster = workflow_reference.get("clusterScope") is True
        registry = context.cluster_workflow_templates if cluster else context.workflow_templates
        reference_name = workflow_reference.get("name")
        if isinstance(reference_name, str) and reference_name not in registry:
            context.emit(
                document,
                f"{child(spec_path, 'workflowTemplateRef')}.name",
                f"{'ClusterWorkflowTemplate' if cluster else 'WorkflowTemplate'} '{reference_name}' is not among "
                "the linted manifests" + suggestion(reference_name, registry),
            )
        elif isinstance(reference_name, str):
            referenced_templates = registry[reference_name].templates
    entrypoint = spec.get("entrypoint")
    if isinstance(entrypoint, str):
        known = entrypoint in manifest.templates or entrypoint in referenced_templates
        if not known and "{{" not in entrypoint:
            context.emit(
                document,
                child(spec_path, "entrypoint"),
                f"template '{entrypoint}' is not defined in spec.templates"
                + suggestion(entrypoint, manifest.templates),
            )
    elif manifest.kind in ("Workflow", "CronWorkflow") and not workflow_reference:
        context.emit(document, child(spec_path, "entrypoint"), "missing required field")
    on_exit = spec.get("onExit")
    if isinstance(on_exit, str) and on_exit not in manifest.templates and on_exit not in referenced_templates:
        context.emit(document, child(spec_path, "onExit"), f"template '{on_exit}' is not defined in spec.templates")
    for hook_name, hook in mapping(spec.get("hooks")).items():
        if isinstance(hook, dict):
            context.resolve(manifest, hook, child(child(spec_path, "hooks"), hook_name), report=True)


def _check_spec_parameters(context: LintContext, manifest: ArgoManifest) -> None:
    """Duplicate workflow parameters, and ``{{workflow.parameters.*}}`` outside the templates that none declares."""
    document, spec, spec_path = manifest.document, manifest.spec, manifest.spec_path
    parameter_names: set[str] = set()
    for index, parameter in enumerate(sequence(mapping(spec.get("arguments")).get("parameters"))):
        name = mapping(parameter).get("name")
        if not isinstance(name, str):
            continue
        if name in parameter_names:
            context.emit(
                document, f"{child(spec_path, 'arguments')}.parameters[{index}].name", f"duplicate parameter '{name}'"
            )
        parameter_names.add(name)
    workflow_parameters = context.workflow_parameters(manifest)
    for key, value in spec.items():
        if key == "templates":
            continue
        for path, text in strings(value, child(spec_path, key)):
            for reference in references(text):
                if reference[:2] == ("workflow", "parameters") and len(reference) >= 3:
                    if reference[2] not in workflow_parameters:
                        context.emit(
                            document,
                            path,
                            f"{{{{workflow.parameters.{reference[2]}}}}} is not declared in "
                            "spec.arguments.parameters" + suggestion(reference[2], workflow_parameters),
                        )


def _check_template_defaults(context: LintContext, manifest: ArgoManifest) -> None:
    defaults = mapping(manifest.spec.get("templateDefaults"))
    for role in ("container", "script"):
        if isinstance(defaults.get(role), dict):
            container_path = f"{child(manifest.spec_path, 'templateDefaults')}.{role}"
            check_env(context, manifest.document, container_path, defaults[role])
            if defaults[role].get("image") is not None:
                check_image(context, manifest, defaults[role]["image"], child(container_path, "image"), {})


def _check_bounds(context: LintContext, manifest: ArgoManifest) -> None:
    """Retries, time bounds and scheduling as the controller applies them (:mod:`cxrcore.ops.lint.bounds`)."""

    def resolve(call: Any) -> dict[str, Any] | None:
        target = context.resolve(manifest, dict(call), "", report=False)
        return None if target is None else target.template

    bounds.check_manifest(
        str(manifest.kind),
        manifest.spec,
        manifest.spec_path,
        manifest.templates,
        lambda path, message: context.emit(manifest.document, path, message),
        resolve,
    )


def _check_metrics(context: LintContext, manifest: ArgoManifest) -> None:
    """Prometheus metrics of the workflow spec and of each template (:mod:`cxrcore.ops.lint.metrics`)."""

    def emit(path: str, message: str) -> None:
        context.emit(manifest.document, path, message)

    spec = manifest.spec
    metrics.check_metrics(spec.get("metrics"), f"{manifest.spec_path}.metrics", None, context.metric_families, emit)
    for template_path, template in manifest.templates.values():
        path = f"{template_path}.metrics"
        metrics.check_metrics(template.get("metrics"), path, template, context.metric_families, emit)


def _cron_problem(expression: str) -> str | None:
    """Why a cron schedule is not one Argo accepts, or ``None``."""
    text = expression.strip()
    if text.startswith(("CRON_TZ=", "TZ=")):
        text = text.split(None, 1)[1] if " " in text else ""
    if text.startswith("@"):
        if text in _CRON_DESCRIPTORS or text.startswith("@every "):
            return None
        return f"unknown cron descriptor {text!r}"
    fields = text.split()
    if len(fields) != 5:
        return (
            f"cron expression {expression!r} has {len(fields)} fields: expected 5 "
            "(minute hour day-of-month month day-of-week)"
        )
    for field in fields:
        if not _CRON_FIELD.fullmatch(field):
            return f"cron expression {expression!r}: invalid field {field!r}"
    return None


def _check_cron(context: LintContext, manifest: ArgoManifest) -> None:
    document = manifest.document
    spec = mapping(document.body.get("spec"))
    spec_path = child(document.prefix, "spec")
    schedules = spec.get("schedules")
    if schedules is None and spec.get("schedule") is None:
        context.emit(document, child(spec_path, "schedules"), "missing required field (a list of cron expressions)")
    for index, schedule in enumerate(sequence(schedules)):
        if isinstance(schedule, str):
            problem = _cron_problem(schedule)
            if problem:
                context.emit(document, f"{child(spec_path, 'schedules')}[{index}]", problem)
    if isinstance(spec.get("schedule"), str):
        problem = _cron_problem(spec["schedule"])
        if problem:
            context.emit(document, child(spec_path, "schedule"), problem)
    policy = spec.get("concurrencyPolicy")
    if isinstance(policy, str) and policy not in _CONCURRENCY_POLICIES:
        context.emit(
            document,
            child(spec_path, "concurrencyPolicy"),
            f"must be one of {', '.join(_CONCURRENCY_POLICIES)}. Received: {policy!r}",
        )


def _check_template(
    context: LintContext, manifest: ArgoManifest, template_path: str, template: dict[str, Any], template_name: str
) -> None:
    types = [kind for kind in _TEMPLATE_TYPES if template.get(kind) is not None]
    if len(types) != 1:
        context.emit(
            manifest.document,
            template_path,
            f"template '{template_name}' must define exactly one of {', '.join(_TEMPLATE_TYPES)} "
            f"(found {', '.join(types) if types else 'none'})",
        )
    graph = TemplateGraph({}, {}, {}, {})
    if isinstance(template.get("dag"), dict):
        graph.dag_edges, graph.dag_tasks = _check_dag(context, manifest, template_path, template)
    if isinstance(template.get("steps"), list):
        graph.step_groups, graph.step_calls = _check_steps(context, manifest, template_path, template)
    check_template_references(context, manifest, template_path, template, template_name, graph)
    for call_path, call in calls(template, template_path):
        if isinstance(call.get("inline"), dict):
            _check_template(context, manifest, child(call_path, "inline"), call["inline"], "<inline>")
    if is_pod_template(template):
        check_pod_template(context, manifest, template_path, template)


def _find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A dependency cycle (``[a, b, a]``) of the graph ``task -> its dependencies``, or ``None``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dependency in edges.get(node, []):
            if state.get(dependency) == 1:
                return [*stack[stack.index(dependency) :], dependency]
            if dependency not in state:
                cycle = visit(dependency)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in edges:
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def _depends_tasks(context: LintContext, document: Document, task_path: str, name: str, depends: Any) -> list[str]:
    """The task names of a ``depends`` expression, read as the runner reads it (a parse error is a finding)."""
    if not isinstance(depends, str) or not depends:
        return []
    try:
        return list(parse_depends(depends).tasks)
    except ExpressionError as error:
        context.emit(document, child(task_path, "depends"), f"task '{name}': {error}")
        return []


def _check_dag(
    context: LintContext, manifest: ArgoManifest, template_path: str, template: dict[str, Any]
) -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
    """Task names, dependencies and cycles of a DAG template, and every task's call.

    Returns:
        ``({task: its dependencies}, {task name: task})``.
    """
    document = manifest.document
    tasks_path = f"{child(template_path, 'dag')}.tasks"
    tasks = sequence(template["dag"].get("tasks"))
    by_name: dict[str, dict[str, Any]] = {}
    for index, task in enumerate(tasks):
        name = mapping(task).get("name")
        if isinstance(name, str):
            if name in by_name:
                context.emit(document, f"{tasks_path}[{index}].name", f"duplicate task name '{name}'")
            by_name.setdefault(name, task)
    edges: dict[str, list[str]] = {}
    for index, task in enumerate(tasks):
        if not isinstance(task, dict):
            continue
        task_path = f"{tasks_path}[{index}]"
        name = task.get("name") if isinstance(task.get("name"), str) else f"#{index}"
        listed = [
            (f"{child(task_path, 'dependencies')}[{position}]", dependency)
            for position, dependency in enumerate(sequence(task.get("dependencies")))
            if isinstance(dependency, str)  # the schema walk reports the type
        ]
        depends = task.get("depends")
        listed += [
            (child(task_path, "depends"), dependency)
            for dependency in _depends_tasks(context, document, task_path, name, depends)
        ]
        dependencies: list[str] = []
        for path, dependency in listed:
            if dependency in by_name:
                dependencies.append(dependency)
            else:
                context.emit(
                    document,
                    path,
                    f"task '{name}' depends on '{dependency}', which is not a task of this DAG"
                    + suggestion(dependency, by_name),
                )
        if task.get("dependencies") is not None and depends is not None:
            context.emit(document, task_path, f"task '{name}' uses both 'dependencies' and 'depends': use one")
        edges[name] = dependencies
        _check_call(context, manifest, task_path, task, name)
    cycle = _find_cycle(edges)
    if cycle:
        context.emit(document, tasks_path, f"dependency cycle: {' -> '.join(cycle)}")
    return edges, by_name


def _check_steps(
    context: LintContext, manifest: ArgoManifest, template_path: str, template: dict[str, Any]
) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    """Step names and every step's call of a steps template.

    Returns:
        ``({step name: its group index}, {step name: step})``.
    """
    groups: dict[str, int] = {}
    step_calls: dict[str, dict[str, Any]] = {}
    for group_index, group in enumerate(template["steps"]):
        for step_index, step in enumerate(sequence(group)):
            if not isinstance(step, dict):
                continue
            step_path = f"{child(template_path, 'steps')}[{group_index}][{step_index}]"
            name = step.get("name") if isinstance(step.get("name"), str) else f"#{group_index}.{step_index}"
            if name in groups:
                context.emit(manifest.document, child(step_path, "name"), f"duplicate step name '{name}'")
            groups.setdefault(name, group_index)
            step_calls.setdefault(name, step)
            _check_call(context, manifest, step_path, step, name)
    return groups, step_calls


def _check_call(
    context: LintContext, manifest: ArgoManifest, call_path: str, call: dict[str, Any], call_name: str
) -> None:
    """One task or step: what it calls, its exit handler and hooks, its arguments."""
    document = manifest.document
    given = [key for key in ("template", "templateRef", "inline") if call.get(key) is not None]
    if len(given) != 1:
        context.emit(
            document,
            call_path,
            f"'{call_name}' must name exactly one of template, templateRef, inline "
            f"(found {', '.join(given) if given else 'none'})",
        )
    on_exit = call.get("onExit")
    if isinstance(on_exit, str) and "{{" not in on_exit and on_exit not in manifest.templates:
        context.emit(
            document,
            child(call_path, "onExit"),
            f"template '{on_exit}' is not defined in spec.templates" + suggestion(on_exit, manifest.templates),
        )
    for hook_name, hook in mapping(call.get("hooks")).items():
        if isinstance(hook, dict):
            context.resolve(manifest, hook, child(child(call_path, "hooks"), hook_name), report=True)
    target = context.resolve(manifest, call, call_path, report=True)
    if target is None:
        return
    _check_arguments(context, document, call_path, call, target)
    if target.via_reference and target.manifest is not manifest:
        check_reference_context(context, manifest, call_path, target)


def _check_arguments(
    context: LintContext, document: Document, call_path: str, call: dict[str, Any], target: Target
) -> None:
    """Arguments a call passes that the callee does not declare, and required inputs it does not pass."""
    arguments = mapping(call.get("arguments"))
    inputs = mapping(target.template.get("inputs"))
    arguments_path = child(call_path, "arguments")
    for kind in ("parameters", "artifacts"):
        declared = {
            entry["name"]: entry
            for entry in sequence(inputs.get(kind))
            if isinstance(entry, dict) and isinstance(entry.get("name"), str)
        }
        passed: set[str] = set()
        for index, entry in enumerate(sequence(arguments.get(kind))):
            name = mapping(entry).get("name")
            if not isinstance(name, str):
                continue
            passed.add(name)
            if name not in declared:
                listed = ", ".join(declared) if declared else "none"
                context.emit(
                    document,
                    f"{child(arguments_path, kind)}[{index}].name",
                    f"{kind[:-1]} '{name}' is not an input of template '{target.label}' (inputs: {listed})"
                    + suggestion(name, declared),
                )
        for name, entry in declared.items():
            if name in passed:
                continue
            if kind == "parameters":
                provided = any(entry.get(key) is not None for key in ("value", "default", "valueFrom"))
            else:
                provided = entry.get("optional") is True or any(entry.get(key) is not None for key in _ARTIFACT_SOURCES)
            if not provided:
                context.emit(
                    document,
                    child(arguments_path, kind),
                    f"required input {kind[:-1]} '{name}' of template '{target.label}' is not passed",
                )


def _check_synchronization(context: LintContext, document: Document, path: str, synchronization: Any) -> None:
    synchronization = mapping(synchronization)
    semaphores = list(enumerate(sequence(synchronization.get("semaphores"))))
    entries = [(f"{child(path, 'semaphores')}[{index}]", entry) for index, entry in semaphores]
    if isinstance(synchronization.get("semaphore"), dict):
        entries.append((child(path, "semaphore"), synchronization["semaphore"]))
    for entry_path, entry in entries:
        selector = mapping(mapping(entry).get("configMapKeyRef"))
        if selector:
            context.check_object_reference(
                document, child(entry_path, "configMapKeyRef"), "ConfigMap", selector.get("name"), selector.get("key")
            )


def _check_cluster_references(context: LintContext, manifest: ArgoManifest) -> None:
    """The ServiceAccounts, PriorityClasses, ConfigMaps and Secrets a workflow names exist among the manifests."""
    document, spec, spec_path = manifest.document, manifest.spec, manifest.spec_path
    context.check_object_reference(
        document, child(spec_path, "serviceAccountName"), "ServiceAccount", spec.get("serviceAccountName")
    )
    context.check_object_reference(
        document,
        f"{child(spec_path, 'executor')}.serviceAccountName",
        "ServiceAccount",
        mapping(spec.get("executor")).get("serviceAccountName"),
    )
    context.check_object_reference(
        document, child(spec_path, "podPriorityClassName"), "PriorityClass", spec.get("podPriorityClassName")
    )
    _check_synchronization(context, document, child(spec_path, "synchronization"), spec.get("synchronization"))
    repository = mapping(spec.get("artifactRepositoryRef"))
    if repository:
        config_map = repository.get("configMap", "artifact-repositories")
        key = repository.get("key")
        if key is None:
            target = mapping(context.index.get("ConfigMap")).get(config_map)
            annotations = mapping(mapping(target.body.get("metadata")).get("annotations")) if target else {}
            key = annotations.get(ARTIFACT_REPOSITORY_ANNOTATION)
        context.check_object_reference(
            document, child(spec_path, "artifactRepositoryRef"), "ConfigMap", config_map, key
        )
    _check_template_cluster_references(context, manifest)


def _check_template_cluster_references(context: LintContext, manifest: ArgoManifest) -> None:
    document, spec, spec_path = manifest.document, manifest.spec, manifest.spec_path
    all_templates: list[tuple[str, dict[str, Any]]] = [
        (f"{child(spec_path, 'templates')}[{index}]", template)
        for index, template in enumerate(sequence(spec.get("templates")))
        if isinstance(template, dict)
    ]
    if isinstance(spec.get("templateDefaults"), dict):
        all_templates.append((child(spec_path, "templateDefaults"), spec["templateDefaults"]))
    while all_templates:
        template_path, template = all_templates.pop(0)
        for call_path, call in calls(template, template_path):
            if isinstance(call.get("inline"), dict):
                all_templates.append((child(call_path, "inline"), call["inline"]))
        context.check_object_reference(
            document, child(template_path, "serviceAccountName"), "ServiceAccount", template.get("serviceAccountName")
        )
        context.check_object_reference(
            document, child(template_path, "priorityClassName"), "PriorityClass", template.get("priorityClassName")
        )
        _check_synchronization(
            context, document, child(template_path, "synchronization"), template.get("synchronization")
        )
        for container_path, _name, container, _role in pod_containers(template, template_path):
            check_container_references(context, document, container_path, container)
