"""Profiles (``argo/profiles.yaml``, ``cxr run --profile``): documents of ``{name: {parameters: ...}}`` whose every
parameter and every ``requires`` entry is a parameter of the Workflows beside the file."""

from __future__ import annotations

from typing import Any

from cxrcore.ops.lint.common import child, describe_value, mapping, names, sequence, suggestion
from cxrcore.ops.lint.context import LintContext
from cxrcore.ops.lint.files import Document, display
from cxrcore.ops.lint.models import ARGO_API_VERSION

__all__ = ["check_profiles", "is_profiles_document"]

#: Fields of a profile in ``argo/profiles.yaml`` (``cxr run --profile``).
_PROFILE_FIELDS = ("description", "parameters", "requires")


def is_profiles_document(body: dict[str, Any]) -> bool:
    """Whether ``body`` is a profiles file (``argo/profiles.yaml``): ``{name: {parameters: {...}, ...}}``."""
    return bool(body) and all(isinstance(value, dict) and "parameters" in value for value in body.values())


def _declared_parameters(context: LintContext, document: Document) -> tuple[set[str], int]:
    """The parameters of the Workflows in the profiles file's folder, and how many Workflows there are."""
    declared: set[str] = set()
    workflows = 0
    for other in context.documents:
        if (
            other.kind == "Workflow"
            and other.api_version == ARGO_API_VERSION
            and other.path.parent == document.path.parent
        ):
            workflows += 1
            spec = mapping(other.body.get("spec"))
            declared |= set(names(mapping(spec.get("arguments")).get("parameters")))
    return declared, workflows


def check_profiles(context: LintContext, document: Document) -> None:
    """``cxr run --profile`` parameter sets: every name a parameter of the Workflows beside the file."""
    declared, workflows = _declared_parameters(context, document)
    for profile_name, profile in document.body.items():
        profile_path = child(document.prefix, profile_name)
        for key in profile:
            if key not in _PROFILE_FIELDS:
                context.emit(
                    document,
                    child(profile_path, key),
                    f"unknown field '{key}' in profile (expected {', '.join(_PROFILE_FIELDS)})"
                    + suggestion(str(key), _PROFILE_FIELDS),
                )
        parameters = profile.get("parameters")
        if not isinstance(parameters, dict):
            context.emit(
                document, child(profile_path, "parameters"), f"expected a mapping, got {describe_value(parameters)}"
            )
            parameters = {}
        named = [(child(child(profile_path, "parameters"), name), name) for name in parameters]
        requires = profile.get("requires")
        if requires is not None and not isinstance(requires, list):
            context.emit(document, child(profile_path, "requires"), f"expected a list, got {describe_value(requires)}")
        named += [
            (f"{child(profile_path, 'requires')}[{index}]", name) for index, name in enumerate(sequence(requires))
        ]
        for path, name in named:
            if not isinstance(name, str):
                context.emit(document, path, f"expected a parameter name, got {describe_value(name)}")
            elif workflows and name not in declared:
                context.emit(
                    document,
                    path,
                    f"'{name}' is not a parameter of the Workflow(s) in "
                    f"{display(document.path.parent, context.root)}/" + suggestion(str(name), declared),
                )
        for name, value in parameters.items():
            if isinstance(value, (dict, list)) or value is None:
                context.emit(
                    document,
                    child(child(profile_path, "parameters"), name),
                    f"expected a string, got {describe_value(value) if value is not None else 'null'}",
                )
