"""The state of one lint run: the documents read, their index by kind and name, and the findings.

:class:`LintContext` also resolves what one manifest names in another (a task's ``templateRef``, a Secret's key,
a ServiceAccount), because every check needs the same index for that.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cxrcore.ops.lint.common import Finding, child, mapping, names, sequence, suggestion
from cxrcore.ops.lint.files import Document, display, load_yaml_documents
from cxrcore.ops.lint.metrics import MetricFamilies
from cxrcore.ops.lint.models import ARGO_API_VERSION, ARGO_ROOT_MODELS

__all__ = ["ArgoManifest", "LintContext", "Target"]


@dataclasses.dataclass
class ArgoManifest:
    """A Workflow, (Cluster)WorkflowTemplate or CronWorkflow with its workflow spec and templates by name.

    Attributes:
        document: The document it was read from.
        kind: Its ``kind``.
        name: Its ``metadata.name``.
        spec: The workflow spec (a CronWorkflow's ``spec.workflowSpec``).
        spec_path: The field path of ``spec``.
        templates: ``{name: (path, template)}`` of ``spec.templates`` (the first of duplicate names).
    """

    document: Document
    kind: str
    name: str | None
    spec: dict[str, Any]
    spec_path: str
    templates: dict[str, tuple[str, dict[str, Any]]]

    @property
    def label(self) -> str:
        """``Kind 'name'`` for messages."""
        return f"{self.kind} '{self.name}'" if self.name else self.kind

    @classmethod
    def from_document(cls, document: Document) -> ArgoManifest:
        """Reads the workflow spec and templates of an Argo document."""
        body = document.body
        kind = body.get("kind")
        spec = body.get("spec")
        spec_path = child(document.prefix, "spec")
        if kind == "CronWorkflow":
            spec = mapping(spec).get("workflowSpec")
            spec_path = child(spec_path, "workflowSpec")
        if not isinstance(spec, dict):
            spec = {}
        templates: dict[str, tuple[str, dict[str, Any]]] = {}
        for index, template in enumerate(sequence(spec.get("templates"))):
            if isinstance(template, dict) and isinstance(template.get("name"), str):
                templates.setdefault(template["name"], (f"{child(spec_path, 'templates')}[{index}]", template))
        return cls(document, kind, document.name, spec, spec_path, templates)


@dataclasses.dataclass
class Target:
    """A template a task or step calls.

    Attributes:
        manifest: The manifest that defines it.
        name: Its name (``<inline>`` for an inline template).
        template: The template.
        path: Its field path in ``manifest``.
        via_reference: Whether the call reached it through ``templateRef``.
    """

    manifest: ArgoManifest
    name: str
    template: dict[str, Any]
    path: str
    via_reference: bool

    @property
    def label(self) -> str:
        """``workflow-template/template`` when called through ``templateRef``, else the template's name."""
        if self.via_reference and self.manifest.name:
            return f"{self.manifest.name}/{self.name}"
        return self.name


def calls(template: dict[str, Any], template_path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(path, task or step)`` of every DAG task and step of ``template``."""
    dag = mapping(template.get("dag"))
    for index, task in enumerate(sequence(dag.get("tasks"))):
        if isinstance(task, dict):
            yield f"{child(template_path, 'dag')}.tasks[{index}]", task
    for group_index, group in enumerate(sequence(template.get("steps"))):
        for step_index, step in enumerate(sequence(group)):
            if isinstance(step, dict):
                yield f"{child(template_path, 'steps')}[{group_index}][{step_index}]", step


class LintContext:
    """One lint run over a set of files.

    Args:
        root: The repository root: file names in findings are relative to it.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.findings: list[Finding] = []
        self._seen: set[Finding] = set()
        self.documents: list[Document] = []
        self.argo: list[ArgoManifest] = []
        self.workflow_templates: dict[str, ArgoManifest] = {}
        self.cluster_workflow_templates: dict[str, ArgoManifest] = {}
        self.index: dict[str, dict[str, Document]] = {}
        self._reported_caller_issues: set[tuple[int, str, str]] = set()
        self.metric_families = MetricFamilies()

    # -------------------------------------------------------------------------------------------- reporting

    def add(self, file: str, path: str, message: str) -> None:
        """Records a finding (once)."""
        finding = Finding(file, path or "-", message)
        if finding not in self._seen:
            self._seen.add(finding)
            self.findings.append(finding)

    def emit(self, document: Document, path: str, message: str) -> None:
        """Records a finding in ``document`` when it is linted (not only read to resolve references)."""
        if document.linted:
            self.add(document.file, path, message)

    def emit_caller_issue(self, caller: ArgoManifest, path: str, message: str) -> None:
        """Records a finding about what a ``templateRef`` needs from ``caller`` once per caller and message."""
        key = (id(caller), caller.document.file, message)
        if key in self._reported_caller_issues:
            return
        self._reported_caller_issues.add(key)
        self.emit(caller.document, path, message)

    # ---------------------------------------------------------------------------------------------- loading

    def load(self, path: Path, *, linted: bool) -> None:
        """Reads the YAML documents of ``path`` (a parse error is a finding when ``linted``)."""
        shown = display(path, self.root)
        documents, where, problem = load_yaml_documents(path)
        if problem is not None:
            if linted:
                self.add(shown, where or "-", problem)
            return
        many = len(documents) > 1
        for index, body in enumerate(documents):
            self.documents.append(Document(shown, path, f"doc[{index}]" if many else "", body, linted))

    def build_index(self) -> None:
        """Indexes every read document by kind and name, and the Argo manifests (templateRef targets)."""
        for document in self.documents:
            kind, name = document.kind, document.name
            if isinstance(kind, str) and name is not None:
                self.index.setdefault(kind, {}).setdefault(name, document)
            if document.api_version != ARGO_API_VERSION or kind not in ARGO_ROOT_MODELS:
                continue
            manifest = ArgoManifest.from_document(document)
            if kind == "WorkflowTemplate" and name is not None:
                self.workflow_templates.setdefault(name, manifest)
            elif kind == "ClusterWorkflowTemplate" and name is not None:
                self.cluster_workflow_templates.setdefault(name, manifest)
            if document.linted:
                self.argo.append(manifest)

    # ----------------------------------------------------------------------------------- object references

    def check_object_reference(
        self, document: Document, path: str, kind: str, name: Any, key: Any = None, *, optional: bool = False
    ) -> None:
        """Reports a reference to an object (and a key of its data) that none of the read manifests defines.

        Nothing is reported when no object of ``kind`` was read at all, for optional references and for names
        computed at run time (``{{...}}``, ``$(...)``).
        """
        known = self.index.get(kind)
        if known is None or optional or not isinstance(name, str) or "{{" in name or "$(" in name:
            return
        target = known.get(name)
        if target is None:
            self.emit(
                document, path, f"{kind} '{name}' is not defined in the linted manifests" + suggestion(name, known)
            )
            return
        if isinstance(key, str) and kind in ("Secret", "ConfigMap"):
            keys = set(mapping(target.body.get("data"))) | set(mapping(target.body.get("stringData")))
            keys |= set(mapping(target.body.get("binaryData")))
            if key not in keys:
                self.emit(document, path, f"{kind} '{name}' has no key '{key}'" + suggestion(key, keys))

    # --------------------------------------------------------------------------------------- Argo resolution

    def resolve(self, manifest: ArgoManifest, call: dict[str, Any], call_path: str, *, report: bool) -> Target | None:
        """The template a task or step calls (reported when missing and ``report``)."""
        template_name = call.get("template")
        reference = call.get("templateRef")
        inline = call.get("inline")
        if isinstance(template_name, str):
            return self._resolve_local(manifest, template_name, call_path, report=report)
        if isinstance(reference, dict):
            return self._resolve_reference(manifest, reference, call_path, report=report)
        if isinstance(inline, dict):
            return Target(manifest, "<inline>", inline, child(call_path, "inline"), via_reference=False)
        return None

    def _resolve_local(
        self, manifest: ArgoManifest, template_name: str, call_path: str, *, report: bool
    ) -> Target | None:
        if "{{" in template_name:
            return None
        found = manifest.templates.get(template_name)
        if found is None:
            if report:
                self.emit(
                    manifest.document,
                    child(call_path, "template"),
                    f"template '{template_name}' is not defined in this {manifest.kind}'s spec.templates"
                    + suggestion(template_name, manifest.templates),
                )
            return None
        return Target(manifest, template_name, found[1], found[0], via_reference=False)

    def _resolve_reference(
        self, manifest: ArgoManifest, reference: dict[str, Any], call_path: str, *, report: bool
    ) -> Target | None:
        reference_name, reference_template = reference.get("name"), reference.get("template")
        if not isinstance(reference_name, str) or not isinstance(reference_template, str):
            return None
        if "{{" in reference_name or "{{" in reference_template:
            return None
        cluster = reference.get("clusterScope") is True
        registry = self.cluster_workflow_templates if cluster else self.workflow_templates
        kind = "ClusterWorkflowTemplate" if cluster else "WorkflowTemplate"
        target_manifest = registry.get(reference_name)
        if target_manifest is None:
            if report:
                self.emit(
                    manifest.document,
                    f"{child(call_path, 'templateRef')}.name",
                    f"{kind} '{reference_name}' is not among the linted manifests"
                    + suggestion(reference_name, registry),
                )
            return None
        found = target_manifest.templates.get(reference_template)
        if found is None:
            if report:
                self.emit(
                    manifest.document,
                    f"{child(call_path, 'templateRef')}.template",
                    f"template '{reference_template}' is not defined in {kind} '{reference_name}'"
                    + suggestion(reference_template, target_manifest.templates),
                )
            return None
        return Target(target_manifest, reference_template, found[1], found[0], via_reference=True)

    def workflow_parameters(self, manifest: ArgoManifest) -> set[str]:
        """The workflow parameters ``manifest`` declares, with those of its ``workflowTemplateRef``."""
        declared = set(names(mapping(manifest.spec.get("arguments")).get("parameters")))
        reference = mapping(manifest.spec.get("workflowTemplateRef"))
        if isinstance(reference.get("name"), str):
            registry = (
                self.cluster_workflow_templates if reference.get("clusterScope") is True else self.workflow_templates
            )
            referenced = registry.get(reference["name"])
            if referenced is not None:
                declared |= set(names(mapping(referenced.spec.get("arguments")).get("parameters")))
        return declared

    def closure(self, target: Target) -> list[Target]:
        """``target`` and every template it calls, transitively."""
        seen: set[tuple[int, str]] = set()
        stack, result = [target], []
        while stack:
            current = stack.pop()
            key = (id(current.manifest), current.path)
            if key in seen:
                continue
            seen.add(key)
            result.append(current)
            for call_path, call in calls(current.template, current.path):
                called = self.resolve(current.manifest, call, call_path, report=False)
                if called is not None:
                    stack.append(called)
        return result
