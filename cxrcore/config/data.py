"""Settings of the data jobs: ``cxr-prepare`` (import), the retrain check of incoming batches, external test."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
)
from pydantic_settings import CliSuppress, SettingsConfigDict

from cxrcore.config.base import JobSettings, RunSettings, _json_list
from cxrcore.settings_support import (  # re-exported: config is where every settings name is found
    check_patient_salt,
    parse_batches,
    parse_dicom_views,
)
from cxrcore.vocab import (
    DATASET_NAME_PATTERN,
    DATASET_VERSION_PATTERN,
    DEFAULT_DATASET_NAME,
    DICOM_DEFAULT_VIEWS,
    INCOMING_PREFIX,
    PAPER_TEST_FRACTION,
    SPLIT_STRATEGIES,
)


class PrepareSettings(JobSettings):
    """``cxr-prepare`` / ``cxr data import``: import a source into an immutable dataset version."""

    # A validation error's text never quotes an input: the patient salt is a secret (format_validation_error
    # still names each bad value, the salt as its length only).
    model_config = SettingsConfigDict(**JobSettings.model_config, hide_input_in_errors=True)

    source: str = Field(
        description="Kaggle chest_xray/ folder, its zip, an s3:// prefix, or NORMAL/ PNEUMONIA/.",
        json_schema_extra={"identity": "resolved"},  # the imported content (the version id)
    )
    name: str = Field(
        default=DEFAULT_DATASET_NAME,
        pattern=DATASET_NAME_PATTERN.pattern,
        description="Dataset name.",
        json_schema_extra={"identity": True},
    )
    image_size: int = Field(
        default=224,
        ge=16,
        le=2048,
        description="Stored resolution (square, pixels).",
        json_schema_extra={"identity": True},
    )
    split: Literal[SPLIT_STRATEGIES] = Field(
        default="patient",
        description="patient: grouped by patient id (no leakage); paper: stratified random 80/20 as published; "
        "official: the source's train/test folders.",
        json_schema_extra={"identity": True},
    )
    test_fraction: float = Field(
        default=PAPER_TEST_FRACTION,
        gt=0.0,
        lt=1.0,
        json_schema_extra={"identity": True},
    )
    seed: int = Field(default=42, ge=0, json_schema_extra={"identity": True})
    shard_size: int = Field(
        default=1024,
        ge=1,
        le=100_000,
        description="Images per shard object.",
        json_schema_extra={"identity": True},
    )
    max_image_pixels: int = Field(
        default=50_000_000,
        ge=1_000_000,
        description="Decompression-bomb limit.",
        json_schema_extra={"identity": True},
    )
    max_file_mb: int = Field(default=64, ge=1, json_schema_extra={"identity": True})
    decode_workers: int = Field(
        default=0,
        ge=0,
        le=256,
        description="Decode threads (0: one per CPU).",
        json_schema_extra={"identity": False},
    )
    base_version: str = Field(
        default="",
        description="Build the new version on top of this one (a version id, or 'latest'): every row and image "
        "of the base keeps its split, new images are added. '' imports the source alone.",
        json_schema_extra={"identity": "resolved"},  # the base's version id
    )
    batches: str = Field(
        default="",
        description='JSON list of batch names, e.g. ["batch-1"]: import only <source>/<batch>/ (each needs its '
        "_SUCCESS object) and record the batches in registry/<name>/ledger.json after the commit.",
        json_schema_extra={"identity": "resolved"},  # the parsed list
    )
    dicom_views: str = Field(
        default=",".join(DICOM_DEFAULT_VIEWS),
        description="DICOM files: the ViewPosition values imported, comma-separated (UNKNOWN: empty or missing; "
        "*: every view); files of other views are rejected (view-filtered).",
        # Acts only through which images are imported, which the version id hashes.
        json_schema_extra={"identity": "resolved"},
    )
    # Not a flag in --help (a secret on a command line reaches `ps` and shell histories): the environment only.
    patient_salt: CliSuppress[SecretStr | None] = Field(
        default=None,
        description="Secret key (16+ characters) of the patient ids made from DICOM PatientID/StudyInstanceUID "
        "(HMAC-SHA256). Set it through the environment (CXR_PATIENT_SALT, from a Secret) and keep it for every "
        "import of a dataset; required when a DICOM file carries an identifier.",
        # Acts only through the hashed patient ids, which the version id hashes; never recorded itself.
        json_schema_extra={"identity": "resolved"},
    )

    @field_validator("patient_salt", mode="before")
    @classmethod
    def _patient_salt(cls, value: Any) -> Any:
        return check_patient_salt(value)  # "" (Argo, an unset optional Secret) is no salt

    @field_validator("dicom_views")
    @classmethod
    def _dicom_views(cls, value: str) -> str:
        views = parse_dicom_views(value)
        return "*" if views is None else ",".join(views)

    def allowed_views(self) -> tuple[str, ...] | None:
        """The DICOM views imported (``UNKNOWN`` for an empty ``ViewPosition``), ``None`` for every view."""
        return parse_dicom_views(self.dicom_views)

    def salt_bytes(self) -> bytes | None:
        """The patient salt as the key of :func:`cxrcore.data.dicom.patient_key`, ``None`` when unset."""
        return None if self.patient_salt is None else self.patient_salt.get_secret_value().encode("utf-8")

    @field_validator("base_version")
    @classmethod
    def _base_version(cls, value: str) -> str:
        if value not in ("", "latest") and not DATASET_VERSION_PATTERN.match(value):
            raise ValueError(f"must be '', 'latest' or a version id. Received: base_version={value!r}")
        return value

    @field_validator("batches")
    @classmethod
    def _batches(cls, value: str) -> str:
        parse_batches(value)
        return value


#: Every classifier of the study, in the paper's table order (custom CNN first): :data:`cxrcore.vocab.MODEL_NAMES`.


class IncomingSettings(JobSettings):
    """``cxr incoming``: is there anything new to retrain on? (Cheap: lists keys, reads the ledger.)"""

    dataset: str = Field(
        default=DEFAULT_DATASET_NAME,
        pattern=DATASET_NAME_PATTERN.pattern,
        description="Dataset whose ledger counts.",
        json_schema_extra={"identity": True},
    )
    incoming_prefix: str = Field(
        default=INCOMING_PREFIX,
        description="Store-relative prefix producers upload to.",
        json_schema_extra={"identity": True},
    )

    @field_validator("incoming_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        from cxrcore.storage.keys import normalize_key

        return normalize_key(value)


class ExternalTestSettings(RunSettings):
    """``cxr external-test``: score every committed classifier of a run on external sets (folders, zips, s3://)."""

    # The step scores trained models: the inherited setting changes nothing here.
    seed: int = Field(default=0, ge=0, json_schema_extra={"identity": False})
    source: str = Field(
        description="External set: a NORMAL/ PNEUMONIA/ folder, a Kaggle chest_xray/ folder or zip, an s3:// prefix "
        'or demo:// URI; a JSON list (["s3://a/", "/data/b.zip"]) for several.',
        json_schema_extra={"identity": "resolved"},  # each imported dataset version and its marker digest
    )
    image_size: int = Field(
        default=224,
        ge=16,
        le=2048,
        description="Stored resolution of the imported external images (use the run's prepare image-size).",
        json_schema_extra={"identity": True},
    )
    batch_size: int = Field(
        default=64,
        ge=1,
        description="Images per forward pass.",
        json_schema_extra={"identity": False},
    )

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        external_sources(value)
        return value


def external_sources(value: str) -> list[str]:
    """The external sources a ``source`` setting names: one location, or a JSON list of them.

    Raises:
        ValueError: An empty setting, an empty list, or a list entry that is not a non-empty string.
    """
    text = value.strip()
    sources = _json_list(text, "source") if text.startswith("[") else [text]
    if not sources or not all(isinstance(item, str) and item.strip() for item in sources):
        raise ValueError(f"must be a location or a non-empty JSON list of locations. Received: source={value!r}")
    return [item.strip() for item in sources]
