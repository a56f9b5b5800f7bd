"""One lint run: collect the files, read every YAML document, dispatch each to the checks of its kind."""

from __future__ import annotations

from pathlib import Path

from cxrcore.ops.lint import argo, docker, kubernetes, profiles
from cxrcore.ops.lint.common import Finding, child, describe_value
from cxrcore.ops.lint.context import LintContext
from cxrcore.ops.lint.files import RESOLUTION_DIRECTORIES, Document, collect_lint_files, display, is_dockerfile, is_yaml
from cxrcore.ops.lint.models import ARGO_API_VERSION, ARGO_ROOT_MODELS, ModelWalker, argo_model

__all__ = ["lint_paths"]


def lint_paths(paths: list[Path] | None = None, *, root: Path) -> list[Finding]:
    """Lints Argo manifests, Kubernetes manifests and Dockerfiles offline.

    Args:
        paths: Files or folders to lint; ``None``: ``argo/``, ``k8s/`` and ``docker/`` under ``root``.
        root: The repository root: file names in findings are relative to it, and the YAML under its ``argo/``
            and ``k8s/`` is always read to resolve references (templateRef, Secrets, ConfigMaps, ...).

    Returns:
        The findings, grouped by file in file order.
    """
    root = Path(root).resolve()
    files, findings = collect_lint_files(paths, root=root)
    context = LintContext(root)
    for finding in findings:
        context.add(finding.file, finding.path, finding.message)
    yaml_files = [path for path in files if is_yaml(path)]
    dockerfiles = [path for path in files if is_dockerfile(path)]
    for path in yaml_files:
        context.load(path, linted=True)
    linted = set(yaml_files)
    for name in RESOLUTION_DIRECTORIES:
        directory = root / name
        if directory.is_dir():
            for candidate in sorted(directory.rglob("*")):
                if candidate.is_file() and is_yaml(candidate) and candidate.resolve() not in linted:
                    context.load(candidate.resolve(), linted=False)
    context.build_index()
    for document in context.documents:
        if document.linted:
            _check_document(context, document)
    for manifest in context.argo:
        if manifest.document.linted:
            argo.check_manifest(context, manifest)
    docker.check_dockerfiles(context, dockerfiles)
    order = {display(path, root): position for position, path in enumerate(files)}
    return sorted(context.findings, key=lambda finding: order.get(finding.file, -1))


def _check_document(context: LintContext, document: Document) -> None:
    """The checks of one document, by what it is: profiles, kustomization, Argo kind or Kubernetes object."""
    body, prefix = document.body, document.prefix
    if not isinstance(body, dict):
        context.emit(document, prefix or "-", f"document is {describe_value(body)}, not a mapping")
        return
    api_version, kind = body.get("apiVersion"), body.get("kind")
    if api_version is None and kind is None and profiles.is_profiles_document(body):
        profiles.check_profiles(context, document)
        return
    for field, value in (("apiVersion", api_version), ("kind", kind)):
        if not isinstance(value, str) or not value:
            context.emit(document, child(prefix, field), "missing required field")
    if not isinstance(api_version, str) or not isinstance(kind, str) or not api_version or not kind:
        return
    if api_version.startswith("kustomize.config.k8s.io/"):
        kubernetes.check_kustomization(context, document)
        return
    _check_metadata_name(context, document)
    if api_version == ARGO_API_VERSION and kind in ARGO_ROOT_MODELS:
        walker = ModelWalker(lambda path, message: context.emit(document, path, message))
        walker.walk(body, argo_model(ARGO_ROOT_MODELS[kind]), prefix)
        return
    if api_version.startswith("argoproj.io/"):
        context.emit(
            document,
            child(prefix, "kind"),
            f"unsupported Argo kind {kind} ({api_version}): expected one of {', '.join(ARGO_ROOT_MODELS)}",
        )
        return
    kubernetes.check_kubernetes(context, document)


def _check_metadata_name(context: LintContext, document: Document) -> None:
    metadata = document.body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        return  # the schema check reports the type
    metadata = metadata or {}
    if isinstance(metadata.get("name"), str) and metadata["name"]:
        return
    if document.kind == "Workflow" and isinstance(metadata.get("generateName"), str):
        return
    context.emit(document, f"{child(document.prefix, 'metadata')}.name", "missing required field")
