"""How settings are parsed, validated and fingerprinted; the Settings classes themselves are in
:mod:`cxrcore.config`, which re-exports everything here.

* :func:`parse_settings`: flags > ``CXR_*`` environment > defaults, and :class:`SettingsError` with one line per
  bad field (:func:`format_validation_error`, credentials redacted);
* :func:`identity` / :func:`identity_mark`: the fields that decide whether a committed output can be reused
  (docs/architecture.md#identity);
* :func:`check_store_uri`, :func:`validate_batch_name`, :func:`parse_batches`, :func:`parse_dicom_views`,
  :func:`check_patient_salt`: validators of Settings fields.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, CliSettingsSource
from pydantic_settings import SettingsError as PydanticSettingsError

from cxrcore.vocab import BATCH_NAME_PATTERN, DICOM_OTHER, DICOM_UNKNOWN_VIEW, DICOM_VIEWS, MIN_PATIENT_SALT_LENGTH

__all__ = [
    "IDENTITY_KEY",
    "IDENTITY_MARKS",
    "SettingsError",
    "check_patient_salt",
    "check_store_uri",
    "format_validation_error",
    "identity",
    "identity_mark",
    "parse_batches",
    "parse_dicom_views",
    "parse_settings",
    "validate_batch_name",
]

SettingsT = TypeVar("SettingsT", bound=BaseSettings)

#: Key of a field's ``json_schema_extra`` that holds its identity mark.
IDENTITY_KEY = "identity"
#: The identity marks (see the module docstring): part of the identity, resolved by the job, or neither.
IDENTITY_MARKS: tuple[bool | str, ...] = (True, "resolved", False)


class SettingsError(ValueError):
    """Settings could not be parsed; the message names every bad field and value."""


#: Field names whose values are never shown in a settings error.
_SECRET_FIELD = re.compile(
    r"(secret|password|passwd|token|credential|api[_-]?key|access[_-]?key|salt)", re.IGNORECASE
)
#: ``scheme:`` at the start of a store setting (two letters or more, so no drive letter).
_URI_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


def check_store_uri(value: str) -> str:
    """``value`` if it is a usable store location (``s3://bucket/prefix``, ``file:///abs/dir`` or a path).

    Raises:
        ValueError: Another scheme, a malformed URI (``s3:/x``, ``file://relative``), an unsafe prefix
            (``s3://bucket/../..``) or user info; the message shows the value with credentials redacted.
    """
    from cxrcore.storage.local import parse_file_uri
    from cxrcore.storage.s3 import parse_s3_uri, redact_uri

    shown = redact_uri(value)
    usage = "must be s3://bucket/prefix, file:///absolute/dir or a local path"
    if not value.strip() or "\x00" in value:
        raise ValueError(f"{usage}. Received: store={shown!r}")
    match = _URI_SCHEME.match(value)
    scheme = match.group(1).lower() if match else ""
    if scheme not in ("", "s3", "file"):
        raise ValueError(f"{usage}; the scheme {scheme!r} is not supported. Received: store={shown!r}")
    try:
        if scheme == "s3":
            parse_s3_uri(value)
        elif scheme == "file":
            parse_file_uri(value)
    except ValueError as exc:
        raise ValueError(f"{usage}: {exc}") from None
    return value


def validate_batch_name(name: str) -> str:
    """Returns ``name`` if it is a valid batch name (one key component: letters, digits, ``.``, ``_``, ``-``).

    Raises:
        ValueError: ``name`` does not match :data:`cxrcore.vocab.BATCH_NAME_PATTERN`.
    """
    if not isinstance(name, str) or not BATCH_NAME_PATTERN.match(name):
        raise ValueError(f"A batch name must match {BATCH_NAME_PATTERN.pattern}. Received: batch={name!r}")
    return name


def parse_batches(text: str) -> list[str]:
    """Parses the ``batches`` setting: ``""`` (no batch filter) or a JSON list of distinct batch names.

    Raises:
        ValueError: Not a JSON list, an empty list, a duplicate or an invalid name.
    """
    if not isinstance(text, str):
        raise ValueError(f"batches must be a string holding a JSON list. Received: batches={text!r}")
    if not text.strip():
        return []
    try:
        batches = json.loads(text)
    except ValueError as exc:
        raise ValueError(f'batches must be a JSON list such as ["batch-1"]. Received: batches={text!r}') from exc
    if not isinstance(batches, list) or not batches:
        raise ValueError(f'batches must be a non-empty JSON list such as ["batch-1"]. Received: batches={text!r}')
    for batch in batches:
        validate_batch_name(batch)
    if len(set(batches)) != len(batches):
        raise ValueError(f"batches must not repeat a name. Received: batches={text!r}")
    return list(batches)


def parse_dicom_views(text: str) -> tuple[str, ...] | None:
    """The views a ``dicom_views`` setting names: ``("PA", "AP")`` for ``"pa, AP"``; ``None`` for ``"*"``.

    Entries: :data:`cxrcore.vocab.DICOM_VIEWS`, ``UNKNOWN`` (no ``ViewPosition``) and ``OTHER`` (any other value).

    Raises:
        ValueError: An empty list or an unknown entry.
    """
    if text.strip() == "*":
        return None
    views = tuple(dict.fromkeys(" ".join(part.split()).upper() for part in text.split(",")))
    known = (*DICOM_VIEWS, DICOM_UNKNOWN_VIEW, DICOM_OTHER)
    if not views or not all(view in known for view in views):
        raise ValueError(
            f"must be '*' or a comma-separated list of DICOM ViewPosition values ({', '.join(known)}). "
            f"Received: dicom_views={text!r}"
        )
    return views


def check_patient_salt(value: Any) -> Any:
    """``None`` for an unset salt (``None``, ``""``), else ``value`` when it holds 16+ characters.

    Raises:
        ValueError: A shorter salt (named by its length only: the value is a secret).
    """
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if text in (None, ""):
        return None
    if isinstance(text, str) and len(text) < MIN_PATIENT_SALT_LENGTH:
        raise ValueError(
            f"must hold at least {MIN_PATIENT_SALT_LENGTH} characters (a short key can be guessed). "
            f"Received: patient_salt=<{len(text)} characters>"
        )
    return text


def identity_mark(settings_cls: type[BaseModel], name: str) -> bool | str:
    """The identity mark of field ``name`` of ``settings_cls``: ``True``, ``"resolved"`` or ``False``.

    Raises:
        ValueError: The field has no mark, or an unknown one (every field must say whether it changes the
            result; see the module docstring).
    """
    field: FieldInfo = settings_cls.model_fields[name]
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    mark = extra.get(IDENTITY_KEY)
    # ``is`` for the booleans: 1 == True, but 1 is no mark.
    if not (mark is True or mark is False or (isinstance(mark, str) and mark in IDENTITY_MARKS)):
        raise ValueError(
            f"{settings_cls.__name__}.{name} must be marked json_schema_extra={{'identity': True | 'resolved' | "
            f"False}} (does it change what the job produces?). Received: identity={mark!r}"
        )
    return mark


def identity(settings: BaseModel) -> dict[str, Any]:
    """The settings that decide whether a committed output can be reused: every field marked ``identity=True``.

    A field's value is ``settings.resolved_<name>()`` when the class defines that method (the paper's default
    behind an unset count, or ``"none"`` for weights a model does not use), else the field itself. Jobs add
    what they resolve themselves (upstream digests, dataset versions, format versions) next to it.

    Args:
        settings: A :class:`JobSettings` instance.

    Returns:
        ``{field name: value}`` in field order.

    Raises:
        ValueError: A field of the class has no identity mark.
    """
    values: dict[str, Any] = {}
    for name in type(settings).model_fields:
        if identity_mark(type(settings), name) is True:
            resolve = getattr(settings, f"resolved_{name}", None)
            values[name] = resolve() if callable(resolve) else getattr(settings, name)
    return values


def format_validation_error(error: ValidationError) -> str:
    """One line per bad field: ``name: problem. Received: name=value``, credentials redacted.

    A value whose field name looks secret is replaced by ``***`` whole; in every other value and message, URL
    user info (``user:pass@``, also after a collapsed ``:/``), key ids and the secrets of the environment are.
    """
    from cxrcore.logging import redact_text

    lines = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]) or "settings"
        message = str(item["msg"]).removeprefix("Value error, ")
        if item.get("type") == "missing":
            lines.append(f"{name}: field required (flag --{name.replace('_', '-')} or env CXR_{name.upper()})")
        elif "Received:" in message:  # the validator already named the value
            lines.append(f"{name}: {message}")
        else:
            received = "'***'" if _SECRET_FIELD.search(name) else repr(item.get("input"))
            lines.append(f"{name}: {message}. Received: {name}={received}")
    return redact_text("\n".join(lines))


def parse_settings(settings_cls: type[SettingsT], argv: Sequence[str] | None = None, **overrides: Any) -> SettingsT:
    """Builds ``settings_cls`` from flags (``argv``, default ``sys.argv[1:]``), env and defaults.

    Args:
        settings_cls: A :class:`JobSettings` subclass.
        argv: Command-line arguments, without the program name.
        **overrides: Values that win over everything (used by ``cxr`` sub-commands and tests).

    Returns:
        The validated settings.

    Raises:
        SettingsError: With one line per bad field.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cli = CliSettingsSource(settings_cls, cli_parse_args=args, cli_exit_on_error=False)
        return settings_cls(_cli_settings_source=cli, **overrides)
    except ValidationError as exc:
        raise SettingsError(format_validation_error(exc)) from None
    except PydanticSettingsError as exc:  # unknown flag, bad flag syntax
        from cxrcore.logging import redact_text

        raise SettingsError(redact_text(str(exc))) from None
