"""Settings every job shares: the S3 options, :class:`JobSettings`, :class:`RunSettings` (see cxrcore.config)."""

from __future__ import annotations

import json
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from cxrcore.settings_support import (  # re-exported: config is where every settings name is found
    check_store_uri,
)
from cxrcore.vocab import (
    CLASS_NAMES,
    DATASET_NAME_PATTERN,
    DATASET_VERSION_PATTERN,
    DEFAULT_DATASET_NAME,
    MODEL_NAMES,
    RUN_ID_PATTERN,
)

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def _allows_none(field: FieldInfo) -> bool:
    """Whether ``None`` is a valid value of ``field`` (an optional count)."""
    return field.default is None or "None" in str(field.annotation)


class S3Settings(BaseModel):
    """How to reach S3 or MinIO. Credentials come from the AWS default chain, never from here."""

    endpoint_url: str | None = Field(
        default=None,
        description="S3 endpoint (MinIO: http://minio:9000). Default: AWS_ENDPOINT_URL or AWS.",
    )
    region: str | None = Field(
        default=None,
        description="Region name; default from AWS_REGION/AWS_DEFAULT_REGION.",
    )
    addressing_style: Literal["auto", "path", "virtual"] = Field(
        default="auto", description="'path' for MinIO and most on-prem S3."
    )
    verify_tls: bool = Field(default=True, description="Verify TLS certificates.")
    ca_bundle: str | None = Field(default=None, description="PEM bundle for a private CA.")
    retry_mode: Literal["standard", "adaptive", "legacy"] = Field(default="standard")
    max_attempts: int = Field(default=8, ge=1, le=50)
    multipart_threshold_mb: int = Field(default=64, ge=5)
    multipart_chunk_mb: int = Field(default=16, ge=5)

    @field_validator("endpoint_url", "region", "ca_bundle", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # Argo passes every parameter as a string: "" means "not set" (boto3 defaults apply).
        return None if value == "" else value

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://. Received: endpoint_url={value!r}")
        if value is not None and "@" in value.split("//", 1)[1].split("/", 1)[0]:
            raise ValueError("must not embed credentials; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
        return value

    def as_options(self, max_workers: int) -> dict[str, Any]:
        """Keyword arguments for :class:`cxrcore.storage.S3Store`."""
        return {**self.model_dump(), "max_workers": max_workers}


class JobSettings(BaseSettings):
    """Settings every job shares: where the store is, how to log, how many I/O threads."""

    model_config = SettingsConfigDict(
        env_prefix="CXR_",
        env_nested_delimiter="__",
        extra="forbid",
        cli_kebab_case=True,
        cli_implicit_flags=False,  # bools take a value (`--augment true`): Argo passes every flag that way
        cli_avoid_json=True,
        nested_model_default_partial_update=True,
    )

    store: str = Field(
        default="./cxr-store",
        description="Store root: s3://bucket/prefix or file:///dir (or a path).",
        json_schema_extra={"identity": False},
    )
    s3: S3Settings = Field(default_factory=S3Settings, json_schema_extra={"identity": False})
    io_workers: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Threads for store uploads/downloads.",
        json_schema_extra={"identity": False},
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", json_schema_extra={"identity": False}
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="auto: JSON when stderr is not a terminal.",
        json_schema_extra={"identity": False},
    )
    result_dir: str | None = Field(
        default=None,
        description="Also write the job's result as result.json plus one file per top-level scalar "
        "(Argo output parameters read them with valueFrom.path).",
        json_schema_extra={"identity": False},
    )

    @field_validator("store")
    @classmethod
    def _store_scheme(cls, value: str) -> str:
        return check_store_uri(value)

    def open_store(self):
        """Opens the configured store (``cxrcore.storage.Store``)."""
        from cxrcore.storage import open_store

        return open_store(
            self.store,
            s3=self.s3.as_options(self.io_workers),
            max_workers=self.io_workers,
        )


ALL_MODEL_NAMES: tuple[str, ...] = MODEL_NAMES
ClassName = Literal[CLASS_NAMES]
ModelName = Literal[MODEL_NAMES]


def _zero_or_empty_is_unset(value: Any) -> Any:
    """Workflow parameters cannot be null: ``0`` or ``""`` stand for "unset" (use the paper's default)."""
    return None if value in (0, "0", "", "none", "None", "null") else value


class RunSettings(JobSettings):
    """Settings of the jobs that belong to one run (``runs/<run_id>/``) of one dataset version.

    Optional counts (``epochs``, ``num_images``, ``max_steps_per_epoch``, ``steps``) also accept ``0`` meaning "unset",
    because Argo parameters are strings and cannot be null.
    """

    @field_validator(
        "epochs",
        "num_images",
        "max_steps_per_epoch",
        "steps",
        "d_learning_rate",
        "g_learning_rate",
        "discriminator_width_multiplier",
        mode="before",
        check_fields=False,
    )
    @classmethod
    def _optional_counts(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and not _allows_none(field):
            return value  # a required count: 0 is an error, said with the value given ("Received: epochs=0")
        return _zero_or_empty_is_unset(value)

    @field_validator("dataset_version")
    @classmethod
    def _dataset_version(cls, value: str) -> str:
        if value not in ("", "latest") and not DATASET_VERSION_PATTERN.match(value):
            raise ValueError(
                f"must be 'latest' or a version id matching {DATASET_VERSION_PATTERN.pattern}. "
                f"Received: dataset_version={value!r}"
            )
        return value

    run_id: str = Field(
        pattern=RUN_ID_PATTERN.pattern,
        description="Run id; on Argo: {{workflow.name}}.",
        json_schema_extra={"identity": False},  # where the outputs go
    )
    dataset: str = Field(
        default=DEFAULT_DATASET_NAME,
        pattern=DATASET_NAME_PATTERN.pattern,
        description="Dataset name.",
        json_schema_extra={"identity": "resolved"},  # with the resolved version and its marker digest
    )
    dataset_version: str = Field(
        default="latest",
        description="Dataset version id, or 'latest'.",
        json_schema_extra={"identity": "resolved"},  # the version id behind 'latest' and its marker digest
    )
    seed: int = Field(default=0, ge=0, json_schema_extra={"identity": True})


def _json_list(value: str, name: str) -> list[Any]:
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise ValueError(f"must be a JSON list. Received: {name}={value!r}") from exc
    if not isinstance(parsed, list):
        raise ValueError(f"must be a JSON list. Received: {name}={value!r}")
    return parsed
