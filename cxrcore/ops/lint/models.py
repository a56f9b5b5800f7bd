"""A strict walk of an Argo document alongside the argo-workflows generated client models.

The generated models accept additional properties and the client's deserializer coerces, so neither rejects a
typo; :class:`ModelWalker` does: every key must be in the model's ``attribute_map``, every value must match
``openapi_types``, every required attribute must be present, and fields deprecated since Argo Workflows 3.6 are
reported.
"""

from __future__ import annotations

import datetime
import functools
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from cxrcore.ops.lint.common import child, describe_value, suggestion

__all__ = [
    "ARGO_API_VERSION",
    "ARGO_ROOT_MODELS",
    "ARTIFACT_REPOSITORY_MODEL",
    "ModelWalker",
    "argo_model",
]

ARGO_API_VERSION = "argoproj.io/v1alpha1"
#: The Argo kinds the lint reads, and their generated model (module.Class under ``argo_workflows.model``).
ARGO_ROOT_MODELS = {
    "Workflow": "io_argoproj_workflow_v1alpha1_workflow.IoArgoprojWorkflowV1alpha1Workflow",
    "WorkflowTemplate": "io_argoproj_workflow_v1alpha1_workflow_template.IoArgoprojWorkflowV1alpha1WorkflowTemplate",
    "ClusterWorkflowTemplate": (
        "io_argoproj_workflow_v1alpha1_cluster_workflow_template.IoArgoprojWorkflowV1alpha1ClusterWorkflowTemplate"
    ),
    "CronWorkflow": "io_argoproj_workflow_v1alpha1_cron_workflow.IoArgoprojWorkflowV1alpha1CronWorkflow",
}
#: The model of one entry of the artifact repository ConfigMap.
ARTIFACT_REPOSITORY_MODEL = (
    "io_argoproj_workflow_v1alpha1_artifact_repository.IoArgoprojWorkflowV1alpha1ArtifactRepository"
)
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


def argo_model(dotted: str) -> type:
    """The generated model class ``module.Class`` of ``argo_workflows.model``."""
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


class ModelWalker:
    """Walks a YAML value alongside an argo-workflows generated model, strictly.

    Args:
        emit: ``emit(path, message)`` records a finding.
    """

    def __init__(self, emit: Callable[[str, str], None]) -> None:
        self._emit = emit

    def walk(self, value: Any, model: type, path: str, *, relax_required: bool = False) -> None:
        """Walks ``value`` as an instance of ``model`` found at ``path``.

        Args:
            value: The YAML value.
            model: The generated model class it should be.
            path: Its field path, for findings.
            relax_required: Do not report missing required fields (``templateDefaults`` are partial).
        """
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
                self._walk(item, tuple(expected), child(path, index), lenient=lenient, relax_required=relax_required)
        elif isinstance(expected, dict):
            if not isinstance(value, dict):
                self._mismatch(path, expected, value)
                return
            inner = expected.get(str, ())
            for key, item in value.items():
                self._walk(item, inner, child(path, key), lenient=lenient, relax_required=relax_required)
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
            child_path = child(path, key)
            attribute = json_to_attribute.get(key) if isinstance(key, str) else None
            if attribute is None:
                self._emit(
                    child_path,
                    f"unknown field '{key}' in {_model_label(model)}{suggestion(str(key), json_to_attribute)}",
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
                self._emit(child(path, key), f"missing required field '{key}' of {_model_label(model)}")

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
        self._emit(path, f"expected {_describe_expected(expected)}, got {describe_value(value)}")
