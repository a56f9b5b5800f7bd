"""Kubernetes manifests: the strict JSON schemas of the newest Kubernetes that kubernetes-validate ships (unknown
fields are errors), container hygiene of workloads (non-root, read-only root filesystem, seccomp profile),
references between the linted objects (ServiceAccounts, Roles, Secrets and ConfigMaps with their keys,
PriorityClasses, PVCs), the artifact repository ConfigMap against the Argo model, and ``kustomization.yaml``
(listed files exist, no deprecated fields).
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import yaml

from cxrcore.ops.lint.argo import ARTIFACT_REPOSITORY_ANNOTATION
from cxrcore.ops.lint.common import child, describe_value, join_path, mapping, sequence, suggestion
from cxrcore.ops.lint.containers import (
    check_container_references,
    check_env,
    first_setting,
    image_problem,
    read_only_root_problem,
    seccomp_problem,
)
from cxrcore.ops.lint.context import LintContext
from cxrcore.ops.lint.files import Document, StrictLoader, display
from cxrcore.ops.lint.models import ARTIFACT_REPOSITORY_MODEL, ModelWalker, argo_model

__all__ = ["check_kubernetes", "check_kustomization"]

#: Kubernetes workload kinds and where their pod spec lives.
_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_KUSTOMIZATION_FIELDS = frozenset(
    {
        "apiVersion", "kind", "metadata", "resources", "components", "namespace", "namePrefix", "nameSuffix",
        "labels", "commonLabels", "commonAnnotations", "patches", "patchesStrategicMerge", "patchesJson6902",
        "images", "replicas", "replacements", "configMapGenerator", "secretGenerator", "generatorOptions",
        "generators", "transformers", "validators", "crds", "openapi", "helmCharts", "helmGlobals",
        "buildMetadata", "sortOptions", "vars", "bases", "configurations",
    }
)
_KUSTOMIZATION_DEPRECATED = {
    "commonLabels": "deprecated in kustomize 5: use 'labels' (pairs, includeSelectors)",
    "patchesStrategicMerge": "deprecated in kustomize 5: use 'patches'",
    "patchesJson6902": "deprecated in kustomize 5: use 'patches'",
    "bases": "deprecated in kustomize 5: use 'resources'",
    "vars": "deprecated in kustomize 5: use 'replacements'",
}


class _KubernetesSchemas:
    """Strict JSON-schema validators of kubernetes-validate's newest Kubernetes version, cached per kind."""

    def __init__(self) -> None:
        from kubernetes_validate import utils

        self._utils = utils
        self.version = utils.latest_version()
        self._directory = f"kubernetes-json-schema/v{self.version}-local-strict"
        self._definitions: Any = None
        self._validators: dict[tuple[str, str], Any] = {}

    def validator(self, api_version: str, kind: str) -> Any:
        """The validator of ``kind`` in ``api_version``, or ``None`` when no schema exists."""
        import jsonschema
        from referencing import Registry, Resource

        key = (api_version, kind)
        if key in self._validators:
            return self._validators[key]
        group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
        filename = f"{self._directory}/{kind.lower()}-{group_version}.json"
        try:
            schema = self._utils.schema_contents(filename, self.version)
        except (FileNotFoundError, self._utils.InvalidSchemaError):
            self._validators[key] = None
            return None
        expected_api_versions = mapping(mapping(schema.get("properties")).get("apiVersion")).get("enum")
        if expected_api_versions and api_version not in expected_api_versions:
            self._validators[key] = None
            return None
        if self._definitions is None:
            self._definitions = self._utils.schema_contents(f"{self._directory}/_definitions.json", self.version)
        registry = Resource.from_contents(self._definitions) @ (Resource.from_contents(schema) @ Registry())
        validator = jsonschema.validators.Draft202012Validator(schema, registry=registry)
        self._validators[key] = validator
        return validator


@functools.lru_cache(maxsize=1)
def _kubernetes_schemas() -> _KubernetesSchemas:
    """The process-wide schema cache (loading the definitions takes a noticeable fraction of a second)."""
    return _KubernetesSchemas()


def check_kubernetes(context: LintContext, document: Document) -> None:
    """Validates a Kubernetes object against its strict schema, then its references and container hygiene."""
    schemas = _kubernetes_schemas()
    body, prefix = document.body, document.prefix
    validator = schemas.validator(body["apiVersion"], body["kind"])
    if validator is None:
        context.emit(
            document,
            child(prefix, "kind"),
            f"no Kubernetes {schemas.version} schema for kind {body['kind']} of apiVersion "
            f"{body['apiVersion']} (unknown kind or apiVersion)",
        )
        return
    errors = sorted(validator.iter_errors(body), key=lambda error: [str(part) for part in error.absolute_path])
    for error in errors:
        _emit_schema_error(context, document, error)
    _check_semantics(context, document)


def _emit_schema_error(context: LintContext, document: Document, error: Any) -> None:
    path = join_path(document.prefix, error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(mapping(error.schema.get("properties")))
        for extra in sorted(set(error.instance) - allowed, key=str):
            extra_path = child(path if path != "-" else "", extra)
            context.emit(document, extra_path, f"unknown field '{extra}'{suggestion(str(extra), allowed)}")
    elif error.validator == "required" and isinstance(error.instance, dict):
        for field in error.validator_value:
            if field not in error.instance:
                context.emit(document, child(path if path != "-" else "", field), "missing required field")
    elif error.validator == "type":
        expected = error.validator_value
        expected_types = [expected] if isinstance(expected, str) else list(expected)
        expected_types = [name for name in expected_types if name != "null"]
        got = describe_value(error.instance)
        context.emit(document, path, f"expected {' or '.join(expected_types)}, got {got}")
    else:
        context.emit(document, path, error.message)


def _check_semantics(context: LintContext, document: Document) -> None:
    body, prefix, kind = document.body, document.prefix, document.kind
    if kind in _POD_SPEC_PATHS:
        pod_spec: Any = body
        for part in _POD_SPEC_PATHS[kind]:
            pod_spec = mapping(pod_spec).get(part)
        if isinstance(pod_spec, dict):
            _check_pod_spec(context, document, join_path(prefix, _POD_SPEC_PATHS[kind]), pod_spec)
    if kind in ("RoleBinding", "ClusterRoleBinding"):
        role_reference = mapping(body.get("roleRef"))
        if role_reference.get("kind") in ("Role", "ClusterRole"):
            context.check_object_reference(
                document, f"{child(prefix, 'roleRef')}.name", role_reference["kind"], role_reference.get("name")
            )
        for index, subject in enumerate(sequence(body.get("subjects"))):
            if mapping(subject).get("kind") == "ServiceAccount":
                context.check_object_reference(
                    document, f"{child(prefix, 'subjects')}[{index}].name", "ServiceAccount", subject.get("name")
                )
    if kind == "ConfigMap":
        _check_artifact_repositories(context, document)


def _check_pod_volumes(context: LintContext, document: Document, pod_path: str, pod_spec: dict[str, Any]) -> None:
    for index, volume in enumerate(sequence(pod_spec.get("volumes"))):
        claim = mapping(mapping(volume).get("persistentVolumeClaim"))
        if claim:
            context.check_object_reference(
                document,
                f"{child(pod_path, 'volumes')}[{index}].persistentVolumeClaim.claimName",
                "PersistentVolumeClaim",
                claim.get("claimName"),
            )
        secret = mapping(mapping(volume).get("secret"))
        if secret:
            context.check_object_reference(
                document,
                f"{child(pod_path, 'volumes')}[{index}].secret.secretName",
                "Secret",
                secret.get("secretName"),
                optional=secret.get("optional") is True,
            )


def _check_pod_spec(context: LintContext, document: Document, pod_path: str, pod_spec: dict[str, Any]) -> None:
    context.check_object_reference(
        document, child(pod_path, "serviceAccountName"), "ServiceAccount", pod_spec.get("serviceAccountName")
    )
    context.check_object_reference(
        document, child(pod_path, "priorityClassName"), "PriorityClass", pod_spec.get("priorityClassName")
    )
    _check_pod_volumes(context, document, pod_path, pod_spec)
    pod_context = mapping(pod_spec.get("securityContext"))
    for key in ("initContainers", "containers"):
        for index, container in enumerate(sequence(pod_spec.get(key))):
            if not isinstance(container, dict):
                continue
            container_path = f"{child(pod_path, key)}[{index}]"
            problem = image_problem(container.get("image"))
            if problem is not None:
                context.emit(document, child(container_path, "image"), problem)
            check_env(context, document, container_path, container)
            check_container_references(context, document, container_path, container)
            levels = [
                (child(container_path, "securityContext"), mapping(container.get("securityContext"))),
                (child(pod_path, "securityContext"), pod_context),
            ]
            user = first_setting(levels, "runAsUser")
            non_root = first_setting(levels, "runAsNonRoot")
            name = container.get("name")
            if user is not None and user[1] == 0:
                context.emit(document, child(user[0], "runAsUser"), f"container '{name}' runs as root (runAsUser: 0)")
            elif non_root is None:
                context.emit(
                    document,
                    f"{child(pod_path, 'securityContext')}.runAsNonRoot",
                    f"container '{name}' may run as root: set securityContext.runAsNonRoot: true",
                )
            elif non_root[1] is not True:
                context.emit(
                    document,
                    child(non_root[0], "runAsNonRoot"),
                    f"container '{name}' may run as root (runAsNonRoot is not true)",
                )
            for problem in (
                read_only_root_problem(levels[:1], name, container_path),
                seccomp_problem(levels, name, child(pod_path, "securityContext"), "in the pod's securityContext"),
            ):
                if problem is not None:
                    context.emit(document, problem[0], problem[1])


def _check_artifact_repositories(context: LintContext, document: Document) -> None:
    """The artifact repository ConfigMap: its default key exists, every entry is a valid Argo repository."""
    body, prefix = document.body, document.prefix
    annotations = mapping(mapping(body.get("metadata")).get("annotations"))
    default_key = annotations.get(ARTIFACT_REPOSITORY_ANNOTATION)
    if document.name != "artifact-repositories" and default_key is None:
        return
    data = mapping(body.get("data"))
    data_path = child(prefix, "data")
    if isinstance(default_key, str) and default_key not in data:
        context.emit(
            document,
            f"{child(child(prefix, 'metadata'), 'annotations')}[{json.dumps(ARTIFACT_REPOSITORY_ANNOTATION)}]",
            f"default artifact repository '{default_key}' is not a key of data" + suggestion(default_key, data),
        )
    model = argo_model(ARTIFACT_REPOSITORY_MODEL)
    for key, text in data.items():
        key_path = child(data_path, key)
        if not isinstance(text, str):
            continue
        try:
            repository = yaml.load(text, Loader=StrictLoader)
        except yaml.YAMLError as error:
            context.emit(document, key_path, f"invalid YAML: {getattr(error, 'problem', None) or error}")
            continue
        ModelWalker(lambda path, message: context.emit(document, path, message)).walk(repository, model, key_path)
        for store, settings in mapping(repository).items():
            settings = mapping(settings)
            for field in ("accessKeySecret", "secretKeySecret", "sessionTokenSecret", "caSecret"):
                selector = mapping(settings.get(field))
                if selector:
                    context.check_object_reference(
                        document,
                        child(child(key_path, store), field),
                        "Secret",
                        selector.get("name"),
                        selector.get("key"),
                        optional=selector.get("optional") is True,
                    )


def _kustomization_entries(document: Document) -> list[tuple[str, Any]]:
    """``(path, file)`` of every local file a kustomization lists."""
    body, prefix = document.body, document.prefix
    listed: list[tuple[str, Any]] = []
    for key in ("resources", "components", "bases", "patchesStrategicMerge", "crds"):
        listed += [(f"{child(prefix, key)}[{index}]", entry) for index, entry in enumerate(sequence(body.get(key)))]
    for key in ("patches", "patchesJson6902"):
        listed += [
            (f"{child(prefix, key)}[{index}].path", mapping(entry).get("path"))
            for index, entry in enumerate(sequence(body.get(key)))
        ]
    for key in ("configMapGenerator", "secretGenerator"):
        for index, generator in enumerate(sequence(body.get(key))):
            for field in ("files", "envs"):
                for position, entry in enumerate(sequence(mapping(generator).get(field))):
                    if isinstance(entry, str):
                        listed.append((f"{child(prefix, key)}[{index}].{field}[{position}]", entry.split("=", 1)[-1]))
    return listed


def check_kustomization(context: LintContext, document: Document) -> None:
    """Unknown and deprecated fields of a ``kustomization.yaml``, and listed files that do not exist."""
    body, prefix = document.body, document.prefix
    base = document.path.parent
    for key in body:
        if key not in _KUSTOMIZATION_FIELDS:
            context.emit(
                document,
                child(prefix, key),
                f"unknown field '{key}' in Kustomization" + suggestion(str(key), _KUSTOMIZATION_FIELDS),
            )
        elif key in _KUSTOMIZATION_DEPRECATED:
            context.emit(document, child(prefix, key), _KUSTOMIZATION_DEPRECATED[key])
    for path, entry in _kustomization_entries(document):
        if not isinstance(entry, str) or "://" in entry or entry.startswith(("github.com/", "git@")):
            continue
        if "\n" in entry:
            continue  # an inline patch
        if not (base / entry).exists():
            context.emit(document, path, f"'{entry}' does not exist (relative to {display(base, context.root)})")
