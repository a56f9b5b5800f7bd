"""Container hygiene, for Argo pod templates and Kubernetes workloads alike.

Pinned images (an image expression is checked with its parameters' literal defaults), credentials only from
Secrets, non-root containers (through every level a security context can come from in Argo), a read-only root
filesystem and a seccomp profile (RuntimeDefault or Localhost) for every container, declared volumes, and the
Secrets and ConfigMaps a container's environment names.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from cxrcore.ops.argo_expr import TAG
from cxrcore.ops.lint.common import child, mapping, names, sequence
from cxrcore.ops.lint.context import ArgoManifest, LintContext, calls
from cxrcore.ops.lint.files import Document

__all__ = [
    "SIMPLE_REFERENCE",
    "check_container_references",
    "check_env",
    "check_image",
    "check_pod_template",
    "first_setting",
    "hardening_problems",
    "image_problem",
    "is_pod_template",
    "pod_containers",
    "read_only_root_problem",
    "run_as_root",
    "seccomp_problem",
    "undeclared_volume",
]

_POD_TEMPLATE_TYPES = ("container", "script", "containerSet")
_CREDENTIAL_NAME = re.compile(
    r"secret|password|passwd|token|access_?key|api_?key|private_?key|credential|salt", re.IGNORECASE
)
#: Seccomp profile types that confine a container (``Unconfined`` does not).
_CONFINED_SECCOMP = ("RuntimeDefault", "Localhost")
_REFERENCE_NAME = re.compile(r"_(FILE|PATH|DIR)$", re.IGNORECASE)
#: The body of a simple ``{{a.b.c}}`` tag.
SIMPLE_REFERENCE = re.compile(r"\s*([A-Za-z_][\w-]*(?:\.[\w-]+)*)\s*")

ContainerEntry = tuple[str, "str | None", dict[str, Any], str]


def is_pod_template(template: dict[str, Any]) -> bool:
    """Whether an Argo template runs a pod of its own containers (container, script or containerSet)."""
    return any(isinstance(template.get(kind), dict) for kind in _POD_TEMPLATE_TYPES)


def image_problem(image: Any) -> str | None:
    """Why ``image`` is not pinned, or ``None`` (expressions and digests are accepted)."""
    if image is None or (isinstance(image, str) and not image.strip()):
        return "container has no image"
    if not isinstance(image, str) or "{{" in image or "@" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last or not last.rsplit(":", 1)[1]:
        return f"image '{image}' has no tag: pin an explicit version tag (or a digest)"
    if last.rsplit(":", 1)[1].lower() == "latest":
        return f"image '{image}' uses the mutable ':latest' tag: pin an explicit version"
    return None


def _substitute_defaults(text: str, template: dict[str, Any], spec: dict[str, Any]) -> str | None:
    """``text`` with every ``{{inputs.parameters.X}}``/``{{workflow.parameters.X}}`` replaced by its literal
    value or default, or ``None`` when a tag has no literal default (or is any other variable)."""
    inputs = {
        entry["name"]: entry
        for entry in sequence(mapping(template.get("inputs")).get("parameters"))
        if isinstance(entry, dict) and isinstance(entry.get("name"), str)
    }
    arguments = {
        entry["name"]: entry
        for entry in sequence(mapping(spec.get("arguments")).get("parameters"))
        if isinstance(entry, dict) and isinstance(entry.get("name"), str)
    }
    unresolved = False

    def replace(match: re.Match[str]) -> str:
        nonlocal unresolved
        simple = SIMPLE_REFERENCE.fullmatch(match.group(1))
        parts = simple.group(1).split(".") if simple else []
        entry: dict[str, Any] | None = None
        if len(parts) == 3 and parts[1] == "parameters":
            entry = {"inputs": inputs, "workflow": arguments}.get(parts[0], {}).get(parts[2])
        value = None
        if entry is not None:
            value = entry.get("value") if entry.get("value") is not None else entry.get("default")
        if not isinstance(value, (str, int, float)) or isinstance(value, bool) or "{{" in str(value):
            unresolved = True
            return match.group(0)
        return str(value)

    substituted = TAG.sub(replace, text)
    return None if unresolved else substituted


def _parse_pod_spec_patch(patch: Any) -> dict[str, Any]:
    if isinstance(patch, dict):
        return patch
    if not isinstance(patch, str):
        return {}
    try:
        parsed = yaml.safe_load(patch)
    except yaml.YAMLError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _patch_container_context(patch: dict[str, Any], container_name: str | None) -> Any:
    for container in sequence(patch.get("containers")):
        if isinstance(container, dict) and container.get("name") == container_name:
            return container.get("securityContext")
    return None


def first_setting(levels: list[tuple[str, Any]], field: str) -> tuple[str, Any] | None:
    """``(path, value)`` of the first security context in ``levels`` (most specific first) that sets ``field``."""
    for path, context in levels:
        if isinstance(context, dict) and context.get(field) is not None:
            return path, context[field]
    return None


def pod_containers(template: dict[str, Any], path: str) -> list[ContainerEntry]:
    """``(path, name, container, role)`` of every container of a pod template (role: container/script/other)."""
    containers: list[ContainerEntry] = []
    for role in ("container", "script"):
        if isinstance(template.get(role), dict):
            containers.append((child(path, role), "main", template[role], role))
    container_set = mapping(template.get("containerSet"))
    for index, container in enumerate(sequence(container_set.get("containers"))):
        if isinstance(container, dict):
            containers.append(
                (f"{child(path, 'containerSet')}.containers[{index}]", container.get("name"), container, "other")
            )
    for key in ("initContainers", "sidecars"):
        for index, container in enumerate(sequence(template.get(key))):
            if isinstance(container, dict):
                containers.append((child(child(path, key), index), container.get("name"), container, "other"))
    return containers


def _pod_levels(
    template: dict[str, Any], template_path: str, spec: dict[str, Any], spec_path: str
) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, Any]]]:
    """The podSpecPatches that apply to a template and the pod-level security contexts, most specific first."""
    defaults = mapping(spec.get("templateDefaults"))
    patches = [
        (child(template_path, "podSpecPatch"), _parse_pod_spec_patch(template.get("podSpecPatch"))),
        (f"{spec_path}.templateDefaults.podSpecPatch", _parse_pod_spec_patch(defaults.get("podSpecPatch"))),
        (child(spec_path, "podSpecPatch"), _parse_pod_spec_patch(spec.get("podSpecPatch"))),
    ]
    pod_levels = [(path, patch.get("securityContext")) for path, patch in patches] + [
        (child(template_path, "securityContext"), template.get("securityContext")),
        (f"{spec_path}.templateDefaults.securityContext", defaults.get("securityContext")),
        (child(spec_path, "securityContext"), spec.get("securityContext")),
    ]
    return patches, pod_levels


def _container_levels(
    template: dict[str, Any], template_path: str, spec: dict[str, Any], spec_path: str
) -> list[tuple[str, str | None, list[tuple[str, Any]], list[tuple[str, Any]]]]:
    """``(container path, name, container-level contexts, pod-level contexts)`` of every container of a pod
    template under workflow ``spec``, each list most specific first."""
    defaults = mapping(spec.get("templateDefaults"))
    patches, pod_levels = _pod_levels(template, template_path, spec, spec_path)
    entries = []
    for container_path, name, container, role in pod_containers(template, template_path):
        levels = [(child(container_path, "securityContext"), container.get("securityContext"))]
        if role in ("container", "script"):
            levels.append(
                (
                    f"{spec_path}.templateDefaults.{role}.securityContext",
                    mapping(defaults.get(role)).get("securityContext"),
                )
            )
        levels += [(path, _patch_container_context(patch, name)) for path, patch in patches]
        entries.append((container_path, name, levels, pod_levels))
    return entries


def run_as_root(
    template: dict[str, Any], template_path: str, spec: dict[str, Any], spec_path: str
) -> tuple[str, str] | None:
    """``(path, problem)`` when a container of the pod template may run as root under workflow ``spec``."""
    for _container_path, name, container_levels, pod_levels in _container_levels(
        template, template_path, spec, spec_path
    ):
        levels = container_levels + pod_levels
        user = first_setting(levels, "runAsUser")
        if user is not None and user[1] == 0:
            return child(user[0], "runAsUser"), f"container '{name}' runs as root (runAsUser: 0)"
        non_root = first_setting(levels, "runAsNonRoot")
        if non_root is None:
            return (
                f"{child(template_path, 'securityContext')}.runAsNonRoot",
                f"container '{name}' may run as root: set securityContext.runAsNonRoot: true on the template, "
                "in templateDefaults, podSpecPatch or spec.securityContext",
            )
        if non_root[1] is not True:
            return child(non_root[0], "runAsNonRoot"), f"container '{name}' may run as root (runAsNonRoot is not true)"
    return None


def seccomp_problem(
    levels: list[tuple[str, Any]], name: Any, pod_context_path: str, where: str
) -> tuple[str, str] | None:
    """``(path, problem)`` when the first ``seccompProfile`` of ``levels`` (container first, then pod) is missing
    or does not confine the container; ``pod_context_path`` is the pod's securityContext, named when missing."""
    profile = first_setting(levels, "seccompProfile")
    if profile is None:
        message = (
            f"container '{name}' runs without a seccomp profile: set securityContext.seccompProfile: "
            f"{{type: RuntimeDefault}} {where}"
        )
        return f"{pod_context_path}.seccompProfile", message
    kind = mapping(profile[1]).get("type")
    if kind not in _CONFINED_SECCOMP:
        return (
            f"{child(profile[0], 'seccompProfile')}.type",
            f"container '{name}' has seccomp profile {kind!r}: use RuntimeDefault (or Localhost)",
        )
    return None


def read_only_root_problem(levels: list[tuple[str, Any]], name: Any, container_path: str) -> tuple[str, str] | None:
    """``(path, problem)`` when the container-level contexts ``levels`` do not set ``readOnlyRootFilesystem: true``."""
    setting = first_setting(levels, "readOnlyRootFilesystem")
    if setting is None or setting[1] is not True:
        where = setting[0] if setting is not None else child(container_path, "securityContext")
        message = (
            f"container '{name}' has a writable root filesystem: set securityContext.readOnlyRootFilesystem: true "
            "and write only to mounted volumes (an emptyDir on /tmp)"
        )
        return child(where, "readOnlyRootFilesystem"), message
    return None


def hardening_problems(
    template: dict[str, Any], template_path: str, spec: dict[str, Any], spec_path: str
) -> list[tuple[str, str]]:
    """``(path, problem)`` for every container of the pod template without ``readOnlyRootFilesystem: true`` or
    without a confining seccomp profile (its own or the pod's) under workflow ``spec``."""
    problems: list[tuple[str, str]] = []
    for container_path, name, container_levels, pod_levels in _container_levels(
        template, template_path, spec, spec_path
    ):
        read_only = read_only_root_problem(container_levels, name, container_path)
        if read_only is not None:
            problems.append(read_only)
        seccomp = seccomp_problem(
            container_levels + pod_levels,
            name,
            child(spec_path, "securityContext"),
            "in spec.securityContext (or on the template or container)",
        )
        if seccomp is not None:
            problems.append(seccomp)
    return problems


def undeclared_volume(template: dict[str, Any], template_path: str, spec: dict[str, Any]) -> tuple[str, str] | None:
    """``(path, problem)`` for the first volume mount of the pod template no volume of ``spec`` provides."""
    declared = set(names(template.get("volumes")))
    declared |= set(names(spec.get("volumes")))
    declared |= set(names(mapping(spec.get("templateDefaults")).get("volumes")))
    for claim in sequence(spec.get("volumeClaimTemplates")):
        name = mapping(mapping(claim).get("metadata")).get("name")
        if isinstance(name, str):
            declared.add(name)
    mounts: list[tuple[str, Any]] = []
    for container_path, _name, container, _role in pod_containers(template, template_path):
        mounts += [
            (f"{child(container_path, 'volumeMounts')}[{index}].name", mapping(mount).get("name"))
            for index, mount in enumerate(sequence(container.get("volumeMounts")))
        ]
    container_set = mapping(template.get("containerSet"))
    mounts += [
        (f"{child(template_path, 'containerSet')}.volumeMounts[{index}].name", mapping(mount).get("name"))
        for index, mount in enumerate(sequence(container_set.get("volumeMounts")))
    ]
    for path, name in mounts:
        if isinstance(name, str) and name not in declared:
            return (
                path,
                f"volume '{name}' is not declared in the template's volumes or spec.volumes/volumeClaimTemplates",
            )
    return None


def check_pod_template(
    context: LintContext, manifest: ArgoManifest, template_path: str, template: dict[str, Any]
) -> None:
    """Images, credentials, non-root and volumes of an Argo pod template."""
    document, spec = manifest.document, manifest.spec
    defaults = mapping(spec.get("templateDefaults"))
    for container_path, _name, container, role in pod_containers(template, template_path):
        image = container.get("image")
        defaulted = role in ("container", "script") and mapping(defaults.get(role)).get("image") is not None
        if image is not None or not defaulted:  # a templateDefaults image is checked there
            check_image(context, manifest, image, child(container_path, "image"), template)
        check_env(context, document, container_path, container)
    root = run_as_root(template, template_path, spec, manifest.spec_path)
    if root is not None:
        context.emit(document, root[0], root[1])
    own = hardening_problems(template, template_path, spec, manifest.spec_path)
    for path, problem in own:
        context.emit(document, path, problem)
    if not any("seccomp" in problem for _path, problem in own):
        _check_callers_seccomp(context, manifest, template_path, template)
    volume = undeclared_volume(template, template_path, spec)
    if volume is not None:
        context.emit(document, volume[0], volume[1])


def _check_callers_seccomp(
    context: LintContext, manifest: ArgoManifest, template_path: str, template: dict[str, Any]
) -> None:
    """A WorkflowTemplate's pod template called through ``templateRef`` runs under the caller's spec (pod-level
    securityContext included): reports a caller under which the pod would run without a seccomp profile."""
    if manifest.kind not in ("WorkflowTemplate", "ClusterWorkflowTemplate") or not manifest.name:
        return
    template_names = [name for name, (path, _template) in manifest.templates.items() if path == template_path]
    if not template_names:
        return
    cluster = manifest.kind == "ClusterWorkflowTemplate"
    for caller in context.argo:
        if caller is manifest:
            continue
        for caller_template_path, caller_template in caller.templates.values():
            for call_path, call in calls(caller_template, caller_template_path):
                reference = mapping(call.get("templateRef"))
                if (
                    reference.get("name") != manifest.name
                    or reference.get("template") != template_names[0]
                    or bool(reference.get("clusterScope")) != cluster
                ):
                    continue
                if any(
                    "seccomp" in problem
                    for _path, problem in hardening_problems(template, template_path, caller.spec, caller.spec_path)
                ):
                    context.emit_caller_issue(
                        caller,
                        child(call_path, "templateRef"),
                        f"{manifest.label}'s pod templates run without a seccomp profile in this {caller.kind}: "
                        "templateRef does not apply the WorkflowTemplate's spec.securityContext; set "
                        "securityContext.seccompProfile: {type: RuntimeDefault} in this workflow's spec",
                    )


def check_image(
    context: LintContext, manifest: ArgoManifest, image: Any, image_path: str, template: dict[str, Any]
) -> None:
    """Reports an unpinned image; an expression is checked with its parameters' literal defaults."""
    document = manifest.document
    problem = image_problem(image)
    if problem is not None:
        context.emit(document, image_path, problem)
        return
    if not isinstance(image, str) or "{{" not in image:
        return
    resolved = _substitute_defaults(image, template, manifest.spec)
    if resolved is None:
        return
    problem = image_problem(resolved)
    if problem is not None:
        context.emit(document, image_path, f"with its parameters' defaults: {problem}")


def check_env(context: LintContext, document: Document, container_path: str, container: dict[str, Any]) -> None:
    """Reports credential-like environment variables that do not come from a Secret."""
    for index, variable in enumerate(sequence(container.get("env"))):
        if not isinstance(variable, dict) or not isinstance(variable.get("name"), str):
            continue
        name = variable["name"]
        if not _CREDENTIAL_NAME.search(name) or _REFERENCE_NAME.search(name):
            continue
        variable_path = f"{child(container_path, 'env')}[{index}]"
        if variable.get("value") not in (None, ""):
            context.emit(
                document,
                child(variable_path, "value"),
                f"literal value for credential-like variable {name}: use valueFrom.secretKeyRef",
            )
        elif isinstance(variable.get("valueFrom"), dict) and variable["valueFrom"].get("secretKeyRef") is None:
            context.emit(
                document,
                child(variable_path, "valueFrom"),
                f"credential-like variable {name} must come from valueFrom.secretKeyRef",
            )


def check_container_references(
    context: LintContext, document: Document, container_path: str, container: dict[str, Any]
) -> None:
    """Reports Secrets, ConfigMaps and keys a container's ``env``/``envFrom`` name that no manifest defines."""
    for index, variable in enumerate(sequence(container.get("env"))):
        value_from = mapping(mapping(variable).get("valueFrom"))
        variable_path = f"{child(container_path, 'env')}[{index}].valueFrom"
        for field, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
            selector = mapping(value_from.get(field))
            if selector:
                context.check_object_reference(
                    document,
                    child(variable_path, field),
                    kind,
                    selector.get("name"),
                    selector.get("key"),
                    optional=selector.get("optional") is True,
                )
    for index, source in enumerate(sequence(container.get("envFrom"))):
        for field, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
            selector = mapping(mapping(source).get(field))
            if selector:
                context.check_object_reference(
                    document,
                    f"{child(container_path, 'envFrom')}[{index}].{field}",
                    kind,
                    selector.get("name"),
                    optional=selector.get("optional") is True,
                )
