"""Every ``{{...}}`` reference of an Argo manifest against what declares it.

``{{inputs.*}}`` against the template's inputs, ``{{workflow.parameters.*}}`` against ``spec.arguments``,
``{{tasks.*}}`` against the DAG tasks a task depends on, ``{{steps.*}}`` against earlier step groups,
``{{item}}`` against loops, in simple tags and inside ``{{= expression}}`` tags; and what a ``templateRef`` does
not carry over from the WorkflowTemplate's spec (arguments, security context, volumes).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from typing import Any

from cxrcore.ops.argo_expr import TAG
from cxrcore.ops.lint.common import child, mapping, names, sequence, strings, suggestion
from cxrcore.ops.lint.containers import SIMPLE_REFERENCE, is_pod_template, run_as_root, undeclared_volume
from cxrcore.ops.lint.context import ArgoManifest, LintContext, Target

__all__ = ["Scope", "TemplateGraph", "check_reference_context", "check_template_references", "references"]

_LOOP_KEYS = ("withItems", "withParam", "withSequence")
_NAME_OR_INDEX = r"(?:\s*\.\s*([A-Za-z_]\w*)|\s*\[\s*['\"]([^'\"]+)['\"]\s*\])"
_EXPRESSION_PARAMETER = re.compile(r"\b(inputs|workflow)\s*\.\s*(parameters|artifacts)" + _NAME_OR_INDEX)
_EXPRESSION_NODE = re.compile(
    r"(?<![\w.])(tasks|steps)"
    + _NAME_OR_INDEX
    + r"(?:\s*\.\s*outputs\s*\.\s*(parameters|artifacts)"
    + _NAME_OR_INDEX
    + ")?"
)
_EXPRESSION_ITEM = re.compile(r"(?<![\w.'\"])item(?![\w-])")


@dataclasses.dataclass
class Scope:
    """Where a string lies in a template: DAG/steps, the task or step around it, its step group."""

    kind: str | None
    call: dict[str, Any] | None = None
    group: int | None = None


@dataclasses.dataclass
class TemplateGraph:
    """What the references of one template are checked against: its DAG tasks and dependencies, its steps."""

    dag_edges: dict[str, list[str]]
    dag_tasks: dict[str, dict[str, Any]]
    step_groups: dict[str, int]
    step_calls: dict[str, dict[str, Any]]


def references(text: str) -> list[tuple[str, ...]]:
    """The variable references of ``text``: ``{{a.b.c}}`` tags and names inside ``{{= expression}}`` tags."""
    found_references: list[tuple[str, ...]] = []
    for match in TAG.finditer(text):
        body = match.group(1).strip()
        if body.startswith("="):
            expression = body[1:]
            for found in _EXPRESSION_PARAMETER.finditer(expression):
                found_references.append((found[1], found[2], found[3] or found[4]))
            for found in _EXPRESSION_NODE.finditer(expression):
                node = found[2] or found[3]
                if found[4]:
                    found_references.append((found[1], node, "outputs", found[4], found[5] or found[6]))
                else:
                    found_references.append((found[1], node))
            if _EXPRESSION_ITEM.search(expression):
                found_references.append(("item",))
        else:
            simple = SIMPLE_REFERENCE.fullmatch(body)
            if simple:
                found_references.append(tuple(simple.group(1).split(".")))
    return found_references


def _ancestors(edges: dict[str, list[str]]) -> dict[str, set[str]]:
    """Every task each task depends on, directly or transitively (cycles included)."""
    result: dict[str, set[str]] = {}
    for node in edges:
        found: set[str] = set()
        stack = list(edges.get(node, []))
        while stack:
            dependency = stack.pop()
            if dependency not in found:
                found.add(dependency)
                stack.extend(edges.get(dependency, []))
        result[node] = found
    return result


def _call_strings(calls: list[Any], path: str, kind: str, group: int | None = None) -> Iterator[tuple[str, str, Scope]]:
    for index, call in enumerate(calls):
        for call_key, call_value in mapping(call).items():
            if call_key == "inline":
                continue
            for string_path, text in strings(call_value, child(child(path, index), call_key)):
                yield string_path, text, Scope(kind, call, group)


def _template_strings(template: dict[str, Any], template_path: str) -> Iterator[tuple[str, str, Scope]]:
    """Every string of a template (inline templates excluded) with the scope it lies in."""
    kind = None
    if isinstance(template.get("dag"), dict):
        kind = "dag"
    elif isinstance(template.get("steps"), list):
        kind = "steps"
    for key, value in template.items():
        key_path = child(template_path, key)
        if key == "dag" and isinstance(value, dict):
            for dag_key, dag_value in value.items():
                dag_path = child(key_path, dag_key)
                if dag_key == "tasks" and isinstance(dag_value, list):
                    yield from _call_strings(dag_value, dag_path, "dag")
                else:
                    for path, text in strings(dag_value, dag_path):
                        yield path, text, Scope("dag")
        elif key == "steps" and isinstance(value, list):
            for group_index, group in enumerate(value):
                yield from _call_strings(sequence(group), f"{key_path}[{group_index}]", "steps", group_index)
        else:
            for path, text in strings(value, key_path):
                yield path, text, Scope(kind)


def check_template_references(
    context: LintContext,
    manifest: ArgoManifest,
    template_path: str,
    template: dict[str, Any],
    template_name: str,
    graph: TemplateGraph,
) -> None:
    """Reports every reference of a template to something its template, workflow, DAG or steps lack."""
    document = manifest.document
    inputs = mapping(template.get("inputs"))
    declared_inputs = {kind: set(names(inputs.get(kind))) for kind in ("parameters", "artifacts")}
    workflow_parameters = context.workflow_parameters(manifest)
    ancestors = _ancestors(graph.dag_edges) if graph.dag_edges else {}
    for path, text, scope in _template_strings(template, template_path):
        for reference in references(text):
            head = reference[0]
            tag = "{{" + ".".join(part for part in reference if part) + "}}"
            if head == "inputs" and len(reference) >= 3 and reference[1] in declared_inputs:
                if reference[2] not in declared_inputs[reference[1]]:
                    context.emit(
                        document,
                        path,
                        f"{tag} is not declared in inputs.{reference[1]} of template '{template_name}'"
                        + suggestion(reference[2], declared_inputs[reference[1]]),
                    )
            elif head == "workflow" and len(reference) >= 3 and reference[1] == "parameters":
                if reference[2] not in workflow_parameters:
                    context.emit(
                        document,
                        path,
                        f"{tag} is not declared in spec.arguments.parameters"
                        + suggestion(reference[2], workflow_parameters),
                    )
            elif head == "item":
                if scope.call is None or not any(scope.call.get(key) is not None for key in _LOOP_KEYS):
                    context.emit(
                        document,
                        path,
                        f"{tag} is used outside a task or step with withItems, withParam or withSequence",
                    )
            elif head == "tasks" and len(reference) >= 2:
                _check_node_reference(
                    context, manifest, path, reference, tag, scope, "dag", graph.dag_tasks,
                    lambda name, scope=scope: _is_dag_ancestor(name, scope, ancestors),
                )
            elif head == "steps" and len(reference) >= 2:
                _check_node_reference(
                    context, manifest, path, reference, tag, scope, "steps", graph.step_calls,
                    lambda name, scope=scope: scope.group is None or graph.step_groups.get(name, 0) < scope.group,
                )


def _is_dag_ancestor(name: str, scope: Scope, ancestors: dict[str, set[str]]) -> bool:
    if scope.call is None:
        return True
    own = scope.call.get("name")
    return isinstance(own, str) and name in ancestors.get(own, set())


def _check_node_reference(
    context: LintContext,
    manifest: ArgoManifest,
    path: str,
    reference: tuple[str, ...],
    tag: str,
    scope: Scope,
    kind: str,
    nodes: dict[str, dict[str, Any]],
    reachable: Callable[[str], bool],
) -> None:
    """Reports a ``{{tasks.*}}``/``{{steps.*}}`` reference to a node that does not exist, has not run yet, or
    declares no such output."""
    document = manifest.document
    noun = "task" if kind == "dag" else "step"
    if scope.kind != kind:
        context.emit(document, path, f"{tag} is used outside a {'DAG' if kind == 'dag' else 'steps'} template")
        return
    name = reference[1]
    node = nodes.get(name)
    if node is None:
        context.emit(
            document, path, f"{tag} refers to {noun} '{name}', which does not exist" + suggestion(name, nodes)
        )
        return
    if not reachable(name):
        if kind == "dag":
            problem = f"{tag}: task '{scope.call.get('name')}' does not depend on task '{name}' (add it to depends)"
        else:
            problem = f"{tag}: step '{name}' does not run in an earlier step group"
        context.emit(document, path, problem)
        return
    if len(reference) >= 5 and reference[2] == "outputs" and reference[3] in ("parameters", "artifacts"):
        target = context.resolve(manifest, node, "", report=False)
        if target is None:
            return
        declared = set(names(mapping(target.template.get("outputs")).get(reference[3])))
        if reference[4] not in declared:
            context.emit(
                document,
                path,
                f"{tag}: template '{target.label}' of {noun} '{name}' declares no output {reference[3][:-1]} "
                f"'{reference[4]}'" + suggestion(reference[4], declared),
            )


def check_reference_context(context: LintContext, caller: ArgoManifest, call_path: str, target: Target) -> None:
    """What a templateRef'd template needs from the calling workflow's spec, which replaces its own."""
    caller_parameters = context.workflow_parameters(caller)
    reference_path = child(call_path, "templateRef")
    for called in context.closure(target):
        if called.manifest is caller:
            continue
        issue_prefix = f"template '{called.manifest.name}/{called.name}'"
        for _path, text in strings(called.template, called.path):
            for reference in references(text):
                if len(reference) >= 3 and reference[:2] == ("workflow", "parameters"):
                    if reference[2] not in caller_parameters:
                        context.emit_caller_issue(
                            caller,
                            reference_path,
                            f"{issue_prefix} uses {{{{workflow.parameters.{reference[2]}}}}}, which this "
                            f"{caller.kind} does not declare in spec.arguments.parameters (templateRef does not "
                            "carry the WorkflowTemplate's spec.arguments)",
                        )
        if not is_pod_template(called.template):
            continue
        own = run_as_root(called.template, called.path, called.manifest.spec, called.manifest.spec_path)
        here = run_as_root(called.template, called.path, caller.spec, caller.spec_path)
        if own is None and here is not None:
            context.emit_caller_issue(
                caller,
                reference_path,
                f"{issue_prefix} may run as root in this {caller.kind}: its runAsNonRoot comes from the "
                "WorkflowTemplate's spec, which templateRef does not apply; set securityContext.runAsNonRoot on "
                "the template or in this workflow's spec.securityContext",
            )
        own_volume = undeclared_volume(called.template, called.path, called.manifest.spec)
        here_volume = undeclared_volume(called.template, called.path, caller.spec)
        if own_volume is None and here_volume is not None:
            context.emit_caller_issue(
                caller,
                reference_path,
                f"{issue_prefix}: {here_volume[1].replace('the template', 'its template')} of this "
                f"{caller.kind} (templateRef does not carry the WorkflowTemplate's spec.volumes)",
            )
