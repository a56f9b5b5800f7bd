"""Job settings: command-line flags > ``CXR_*`` environment variables > defaults (pydantic-settings).

Every job has one ``Settings`` class derived from :class:`JobSettings`. Nested S3 options are set with
``--s3.endpoint-url`` or ``CXR_S3__ENDPOINT_URL``. Credentials are never settings: boto3 reads them from the
standard AWS variables, a shared credentials file (``AWS_SHARED_CREDENTIALS_FILE``, e.g. a mounted Secret) or
the pod's identity.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, CliSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError

__all__ = [
    "ALL_MODEL_NAMES",
    "GanTrainSettings",
    "JobSettings",
    "PrepareSettings",
    "ReportSettings",
    "RunSettings",
    "SynthesizeSettings",
    "TrainClassifierSettings",
    "S3Settings",
    "SettingsError",
    "format_validation_error",
    "parse_settings",
]

SettingsT = TypeVar("SettingsT", bound=BaseSettings)
_VERSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class SettingsError(ValueError):
    """Settings could not be parsed; the message names every bad field and value."""


class S3Settings(BaseModel):
    """How to reach S3 or MinIO. Credentials come from the AWS default chain, never from here."""

    endpoint_url: str | None = Field(
        default=None, description="S3 endpoint (MinIO: http://minio:9000). Default: AWS_ENDPOINT_URL or AWS."
    )
    region: str | None = Field(default=None, description="Region name; default from AWS_REGION/AWS_DEFAULT_REGION.")
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
        default="file://./cxr-store", description="Store root: s3://bucket/prefix or file:///dir (or a path)."
    )
    s3: S3Settings = Field(default_factory=S3Settings)
    io_workers: int = Field(default=8, ge=1, le=256, description="Threads for store uploads/downloads.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: JSON when stderr is not a terminal."
    )
    result_dir: str | None = Field(
        default=None,
        description="Also write the job's result as result.json plus one file per top-level scalar "
        "(Argo output parameters read them with valueFrom.path).",
    )

    @field_validator("store")
    @classmethod
    def _store_scheme(cls, value: str) -> str:
        if "://" in value and not value.startswith(("s3://", "file://")):
            raise ValueError(f"must be s3://bucket/prefix, file:///dir or a local path. Received: store={value!r}")
        return value

    def open_store(self):
        """Opens the configured store (``cxrcore.storage.Store``)."""
        from cxrcore.storage import open_store

        return open_store(self.store, s3=self.s3.as_options(self.io_workers), max_workers=self.io_workers)


class PrepareSettings(JobSettings):
    """``cxr-prepare`` / ``cxr data import``: import a source into an immutable dataset version."""

    source: str = Field(description="Kaggle chest_xray/ folder, its zip, an s3:// prefix, or NORMAL/ PNEUMONIA/.")
    name: str = Field(default="chest-xray", pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$", description="Dataset name.")
    image_size: int = Field(default=224, ge=16, le=2048, description="Stored resolution (square, pixels).")
    split: Literal["patient", "paper", "official"] = Field(
        default="patient",
        description="patient: grouped by patient id (no leakage); paper: stratified random 80/20 as published; "
        "official: the source's train/test folders.",
    )
    test_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    seed: int = Field(default=42, ge=0)
    shard_size: int = Field(default=1024, ge=1, le=100_000, description="Images per shard object.")
    max_image_pixels: int = Field(default=50_000_000, ge=1_000_000, description="Decompression-bomb limit.")
    max_file_mb: int = Field(default=64, ge=1)
    decode_workers: int = Field(default=0, ge=0, le=256, description="Decode threads (0: one per CPU).")
    base_version: str = Field(
        default="",
        description="Build the new version on top of this one (a version id, or 'latest'): every row and image "
        "of the base keeps its split, new images are added. '' imports the source alone.",
    )
    batches: str = Field(
        default="",
        description='JSON list of batch names, e.g. ["batch-1"]: import only <source>/<batch>/ (each needs its '
        "_SUCCESS object) and record the batches in registry/<name>/ledger.json after the commit.",
    )

    @field_validator("base_version")
    @classmethod
    def _base_version(cls, value: str) -> str:
        if value not in ("", "latest") and not _VERSION_ID.match(value):
            raise ValueError(f"must be '', 'latest' or a version id. Received: base_version={value!r}")
        return value

    @field_validator("batches")
    @classmethod
    def _batches(cls, value: str) -> str:
        from cxrcore.registry import parse_batches

        parse_batches(value)
        return value


def format_validation_error(error: ValidationError) -> str:
    """One line per bad field: ``name: problem. Received: name=value``."""
    lines = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]) or "settings"
        received = item.get("input")
        message = item["msg"]
        if item.get("type") == "missing":
            lines.append(f"{name}: field required (flag --{name.replace('_', '-')} or env CXR_{name.upper()})")
        else:
            lines.append(f"{name}: {message}. Received: {name}={received!r}")
    return "\n".join(lines)


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
        raise SettingsError(str(exc)) from None


#: Every classifier of the study, in the paper's table order (custom CNN first).
ALL_MODEL_NAMES: tuple[str, ...] = (
    "custom_cnn",
    "inceptionv3",
    "resnet50",
    "efficientnetb0",
    "vgg16",
    "densenet201",
    "xception",
)
ClassName = Literal["NORMAL", "PNEUMONIA"]
ModelName = Literal["custom_cnn", "inceptionv3", "resnet50", "efficientnetb0", "vgg16", "densenet201", "xception"]


def _zero_or_empty_is_unset(value: Any) -> Any:
    """Workflow parameters cannot be null: ``0`` or ``""`` stand for "unset" (use the paper's default)."""
    return None if value in (0, "0", "", "none", "None", "null") else value


class RunSettings(JobSettings):
    """Settings of the jobs that belong to one run (``runs/<run_id>/``) of one dataset version.

    Optional counts (``epochs``, ``num_images``, ``max_steps_per_epoch``) also accept ``0`` meaning "unset",
    because Argo parameters are strings and cannot be null.
    """

    @field_validator("epochs", "num_images", "max_steps_per_epoch", mode="before", check_fields=False)
    @classmethod
    def _optional_counts(cls, value: Any) -> Any:
        return _zero_or_empty_is_unset(value)

    run_id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", description="Run id; on Argo: {{workflow.name}}."
    )
    dataset: str = Field(default="chest-xray", pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$", description="Dataset name.")
    dataset_version: str = Field(default="latest", description="Dataset version id, or 'latest'.")
    seed: int = Field(default=0, ge=0)


class GanTrainSettings(RunSettings):
    """``cxr-gan-train``: one DCGAN for one class (Table 1), checkpointed and resumable."""

    class_name: ClassName = Field(description="NORMAL or PNEUMONIA.")
    epochs: int | None = Field(default=None, ge=1, description="Default: the paper's 150 PNEUMONIA / 100 NORMAL.")
    image_size: int = Field(default=64, ge=16, le=256, description="GAN resolution (paper: 64).")
    latent_dim: int = Field(default=100, ge=1)
    width_multiplier: float = Field(default=1.0, gt=0.0, le=4.0, description="Filter scale (paper: 1.0).")
    batch_size: int = Field(default=32, ge=1)
    learning_rate: float = Field(default=1e-4, gt=0.0)
    checkpoint_every: int = Field(default=5, ge=1, description="Epochs between checkpoints in the store.")
    max_steps_per_epoch: int | None = Field(default=None, ge=1, description="Cap steps (smoke tests).")
    mixed_precision: bool = Field(default=False, description="mixed_float16 (GPU only).")
    xla: bool = Field(default=False, description="jit_compile the train step (GPU).")

    def resolved_epochs(self) -> int:
        """The epoch count: the flag, else the paper's per-class value."""
        return self.epochs if self.epochs is not None else {"PNEUMONIA": 150, "NORMAL": 100}[self.class_name]


class SynthesizeSettings(RunSettings):
    """``cxr-synthesize``: generate, upsample, select and check synthetic images of one class."""

    class_name: ClassName = Field(description="NORMAL or PNEUMONIA.")
    num_images: int | None = Field(default=None, ge=1, description="Default: the paper's 1500 / 1000.")
    output_size: int = Field(default=128, ge=16, le=1024, description="Upsampled size (paper: 64 -> 128).")
    selection: Literal["last-fraction", "discriminator", "confidence", "diversity"] = "last-fraction"
    keep_fraction: float = Field(default=0.07, gt=0.0, le=1.0, description="Share kept (paper: ~7%).")
    confidence_model: str | None = Field(
        default=None, description="Classifier model URI for selection=confidence (s3://... or path)."
    )
    memorization_threshold: float = Field(
        default=0.95, gt=0.0, le=1.0, description="SSIM to the nearest real image above which a sample is flagged."
    )
    drop_memorized: bool = Field(
        default=False, description="Drop flagged (memorized) images from the kept set instead of only reporting them."
    )
    batch_size: int = Field(default=64, ge=1)

    def resolved_num_images(self) -> int:
        """The number of images to generate: the flag, else the paper's per-class value."""
        return self.num_images if self.num_images is not None else {"PNEUMONIA": 1500, "NORMAL": 1000}[self.class_name]


class TrainClassifierSettings(RunSettings):
    """``cxr-train-classifier``: one model x one condition x one seed."""

    model: ModelName = Field(description="custom_cnn or a backbone: " + ", ".join(ALL_MODEL_NAMES[1:]) + ".")
    condition: Literal["baseline", "augmented"] = Field(description="baseline: real only; augmented: + synthetic.")
    epochs: int = Field(default=20, ge=1, description="Paper: 20.")
    batch_size: int = Field(default=32, ge=1)
    image_size: int = Field(default=128, ge=32, le=512, description="Paper: 128.")
    learning_rate: float = Field(default=1e-4, gt=0.0)
    optimizer: Literal["paper", "adam", "rmsprop", "sgd"] = Field(
        default="paper", description="paper: Adam, but RMSprop for InceptionV3 and SGD for ResNet50."
    )
    weights: str = Field(
        default="imagenet", description="Backbone weights: imagenet (Keras cache), none, a path or an s3:// URI."
    )
    augment: bool = Field(
        default=False, description="Mild geometric/intensity augmentation of every training image (real and synthetic)."
    )
    protocol: Literal["clean", "paper-merge"] = Field(
        default="clean",
        description="clean: synthetic images join the training split only; paper-merge: merged before splitting "
        "as the paper did (contaminated test set, labelled so in the report).",
    )
    checkpoint_every: int = Field(default=1, ge=1, description="Epochs between checkpoints.")
    max_steps_per_epoch: int | None = Field(default=None, ge=1, description="Cap steps (smoke tests).")
    mixed_precision: bool = False
    class_weight: Literal["none", "balanced"] = Field(
        default="none",
        description="none: unweighted loss, as the paper; balanced: weight each class by n / (2 * n_class).",
    )


class ReportSettings(RunSettings):
    """``cxr-report``: collect every classifier of a run into the comparison report."""

    title: str = Field(default="cxr-gan: DCGAN augmentation for chest X-ray classification")
    export_dir: str | None = Field(
        default=None, description="Also copy the committed report to this local folder (the Argo output artifact)."
    )
