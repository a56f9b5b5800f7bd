"""Job settings: command-line flags > ``CXR_*`` environment variables > defaults (pydantic-settings).

Every job and ``cxr`` sub-command has one ``Settings`` class derived from :class:`JobSettings`, all of them in
this module. Nested S3 options are set with ``--s3.endpoint-url`` or ``CXR_S3__ENDPOINT_URL``. Credentials are
never settings: boto3 reads them from the standard AWS variables, a shared credentials file
(``AWS_SHARED_CREDENTIALS_FILE``, e.g. a mounted Secret) or the pod's identity.

Identity (docs/architecture.md#identity): every field says whether it changes what the job produces, with
``json_schema_extra={"identity": MARK}``:

* ``True``: the field's value is part of the job's identity; :func:`identity` collects it (through
  ``resolved_<name>()`` when the class defines one, e.g. the paper's per-class epoch count behind ``None``).
* ``"resolved"``: it changes the result, but the job records what it resolves to instead of the setting itself
  (the version id and marker digest behind ``dataset_version=latest``, the sha256 of a model file, the content
  of a source).
* ``False``: it does not change the result (where it is stored, how it is logged, how fast it runs).

A job's marker inputs are :func:`identity` plus what the job resolves (upstream marker digests, format
versions); a committed output whose marker holds the same inputs hash is reused. A field without a mark makes
:func:`identity` raise, so a new setting cannot be forgotten (``tests/test_identity.py`` checks every class).
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, CliSuppress, SettingsConfigDict

from cxrcore.vocab import (
    BACKBONE_NAMES,
    CLASS_NAMES,
    CONDITIONS,
    DATASET_NAME_PATTERN,
    DATASET_VERSION_PATTERN,
    DEFAULT_DATASET_NAME,
    DICOM_DEFAULT_VIEWS,
    GAN_AUGMENT_POLICIES,
    INCOMING_PREFIX,
    MODEL_NAMES,
    OPTIMIZERS,
    PAPER_CLASSIFIER_EPOCHS,
    PAPER_GAN_EPOCHS,
    PAPER_GAN_IMAGE_SIZE,
    PAPER_GENERATED_IMAGES,
    PAPER_IMAGE_SIZE,
    PAPER_KEEP_FRACTION,
    PAPER_LATENT_DIM,
    PAPER_LEARNING_RATE,
    PAPER_TEST_FRACTION,
    PROTOCOLS,
    RUN_ID_PATTERN,
    SELECTION_STRATEGIES,
    SPLIT_STRATEGIES,
    TASK_NAME_PATTERN,
)

from cxrcore.settings_support import (  # re-exported: config is where every settings name is found
    IDENTITY_KEY,
    IDENTITY_MARKS,
    SettingsError,
    check_patient_salt,
    check_store_uri,
    format_validation_error,
    identity,
    identity_mark,
    parse_batches,
    parse_dicom_views,
    parse_settings,
    validate_batch_name,
)

__all__ = [
    "ALL_MODEL_NAMES",
    "ExternalTestSettings",
    "IDENTITY_KEY",
    "IDENTITY_MARKS",
    "GanTrainSettings",
    "IncomingSettings",
    "JobSettings",
    "MatrixSettings",
    "OutcomeSettings",
    "PrepareSettings",
    "PromoteSettings",
    "ReportSettings",
    "RunSettings",
    "SynthesizeSettings",
    "TrainClassifierSettings",
    "S3Settings",
    "SettingsError",
    "external_sources",
    "parse_dicom_views",
    "format_validation_error",
    "identity",
    "identity_mark",
    "parse_batches",
    "parse_settings",
    "validate_batch_name",
]

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


class GanTrainSettings(RunSettings):
    """``cxr-gan-train``: one DCGAN for one class (Table 1), checkpointed and resumable."""

    class_name: ClassName = Field(description="NORMAL or PNEUMONIA.", json_schema_extra={"identity": True})
    epochs: int | None = Field(
        default=None,
        ge=1,
        description=f"Default: the paper's {PAPER_GAN_EPOCHS['PNEUMONIA']} PNEUMONIA / {PAPER_GAN_EPOCHS['NORMAL']} "
        "NORMAL.",
        json_schema_extra={"identity": True},
    )
    image_size: int = Field(
        default=PAPER_GAN_IMAGE_SIZE,
        ge=16,
        le=256,
        description=f"GAN resolution (paper: {PAPER_GAN_IMAGE_SIZE}).",
        json_schema_extra={"identity": True},
    )
    latent_dim: int = Field(default=PAPER_LATENT_DIM, ge=1, json_schema_extra={"identity": True})
    width_multiplier: float = Field(
        default=1.0,
        gt=0.0,
        le=4.0,
        description="Filter scale (paper: 1.0).",
        json_schema_extra={"identity": True},
    )
    batch_size: int = Field(default=32, ge=1, json_schema_extra={"identity": True})
    learning_rate: float = Field(default=PAPER_LEARNING_RATE, gt=0.0, json_schema_extra={"identity": True})
    steps: int | None = Field(
        default=None,
        ge=1,
        description="Step budget: train ceil(steps / steps per epoch) epochs instead of `epochs` (CPU profiles).",
        json_schema_extra={"identity": True},
    )
    beta_1: float = Field(
        default=0.9,
        ge=0.0,
        lt=1.0,
        description="Adam beta_1 of both networks (paper / Keras-io: 0.9; DCGAN paper: 0.5).",
        json_schema_extra={"identity": True},
    )
    d_learning_rate: float | None = Field(
        default=None,
        gt=0.0,
        description="Discriminator learning rate (TTUR); default `learning_rate`.",
        json_schema_extra={"identity": True},
    )
    g_learning_rate: float | None = Field(
        default=None,
        gt=0.0,
        description="Generator learning rate (TTUR); default `learning_rate`.",
        json_schema_extra={"identity": True},
    )
    label_smoothing: float = Field(
        default=0.0,
        ge=0.0,
        lt=0.5,
        description="One-sided label smoothing of the real targets (paper: 0).",
        json_schema_extra={"identity": True},
    )
    diff_augment: str = Field(
        default="none",
        description="DiffAugment policies for the discriminator, comma-separated from "
        f"{','.join(GAN_AUGMENT_POLICIES)}, or 'none' (paper).",
        json_schema_extra={"identity": True},
    )
    instance_noise: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Std of Gaussian instance noise on discriminator inputs, annealed to 0 over training (paper: 0).",
        json_schema_extra={"identity": True},
    )
    quality_every: int = Field(
        default=500,
        ge=1,
        description="Steps between quality measurements (KID, two-sample test, sample statistics).",
        json_schema_extra={"identity": False},
    )
    checkpoint_every: int = Field(
        default=5,
        ge=1,
        description="Epochs between checkpoints in the store.",
        json_schema_extra={"identity": False},
    )
    max_steps_per_epoch: int | None = Field(
        default=None,
        ge=1,
        description="Cap steps (smoke tests).",
        json_schema_extra={"identity": True},
    )
    mixed_precision: bool = Field(
        default=False,
        description="mixed_float16 (GPU only).",
        json_schema_extra={"identity": True},
    )
    xla: bool = Field(
        default=False,
        description="jit_compile the train step (GPU).",
        json_schema_extra={"identity": True},
    )

    @field_validator("diff_augment")
    @classmethod
    def _check_diff_augment(cls, value: str) -> str:
        names = [] if value.strip().lower() in ("", "none") else [part.strip() for part in value.split(",")]
        unknown = [name for name in names if name not in GAN_AUGMENT_POLICIES]
        if unknown:
            raise ValueError(
                f"unknown DiffAugment policy {unknown[0]!r}; use 'none' or a comma-separated subset of "
                f"{','.join(GAN_AUGMENT_POLICIES)}. Received: diff_augment={value!r}"
            )
        return ",".join(name for name in GAN_AUGMENT_POLICIES if name in names) or "none"

    def resolved_epochs(self) -> int | None:
        """The epoch count: ``None`` under a step budget (epochs follow from it), else the flag or the paper's."""
        if self.steps is not None:
            return None
        return self.epochs if self.epochs is not None else PAPER_GAN_EPOCHS[self.class_name]

    def epochs_for(self, steps_per_epoch: int) -> int:
        """The epochs to train at ``steps_per_epoch``: enough to cover ``steps``, else :meth:`resolved_epochs`."""
        if self.steps is not None:
            return max(1, -(-self.steps // steps_per_epoch))
        return self.resolved_epochs()

    def augment_policies(self) -> tuple[str, ...]:
        """The DiffAugment policy names (empty for 'none')."""
        return () if self.diff_augment == "none" else tuple(self.diff_augment.split(","))


class SynthesizeSettings(RunSettings):
    """``cxr-synthesize``: generate, upsample, select and check synthetic images of one class."""

    class_name: ClassName = Field(description="NORMAL or PNEUMONIA.", json_schema_extra={"identity": True})
    num_images: int | None = Field(
        default=None,
        ge=1,
        description=f"Default: the paper's {PAPER_GENERATED_IMAGES['PNEUMONIA']} / {PAPER_GENERATED_IMAGES['NORMAL']}.",
        json_schema_extra={"identity": True},
    )
    output_size: int = Field(
        default=PAPER_IMAGE_SIZE,
        ge=16,
        le=1024,
        description=f"Upsampled size (paper: {PAPER_GAN_IMAGE_SIZE} -> {PAPER_IMAGE_SIZE}).",
        json_schema_extra={"identity": True},
    )
    selection: Literal[SELECTION_STRATEGIES] = Field(
        default=SELECTION_STRATEGIES[0], json_schema_extra={"identity": True}
    )
    keep_fraction: float = Field(
        default=PAPER_KEEP_FRACTION,
        gt=0.0,
        le=1.0,
        description=f"Share kept (paper: ~{PAPER_KEEP_FRACTION:.0%}).",
        json_schema_extra={"identity": True},
    )
    confidence_model: str | None = Field(
        default=None,
        description="Classifier model URI for selection=confidence (s3://... or path).",
        json_schema_extra={"identity": "resolved"},  # the model file's sha256
    )
    memorization_threshold: float = Field(
        default=0.95,
        gt=0.0,
        le=1.0,
        description="SSIM to the nearest real image above which a sample is flagged.",
        json_schema_extra={"identity": True},
    )
    drop_memorized: bool = Field(
        default=False,
        description="Drop flagged (memorized) images from the kept set instead of only reporting them.",
        json_schema_extra={"identity": True},
    )
    flagged_gan: Literal["refuse", "use"] = Field(
        default="refuse",
        description="What to do when cxr-gan-train flagged the GAN as failed (gan.json quality): refuse (exit 1) "
        "or use its images anyway (recorded in selection.json and shown in the report).",
        json_schema_extra={"identity": False},
    )
    batch_size: int = Field(default=64, ge=1, json_schema_extra={"identity": False})

    def resolved_num_images(self) -> int:
        """The number of images to generate: the flag, else the paper's per-class value."""
        return self.num_images if self.num_images is not None else PAPER_GENERATED_IMAGES[self.class_name]


class TrainClassifierSettings(RunSettings):
    """``cxr-train-classifier``: one model x one condition x one seed."""

    model: ModelName = Field(
        description=f"{MODEL_NAMES[0]} or a backbone: " + ", ".join(BACKBONE_NAMES) + ".",
        json_schema_extra={"identity": True},
    )
    condition: Literal[CONDITIONS] = Field(
        description="baseline: real only; augmented: + synthetic.",
        json_schema_extra={"identity": True},
    )
    epochs: int = Field(
        default=PAPER_CLASSIFIER_EPOCHS,
        ge=1,
        description=f"Paper: {PAPER_CLASSIFIER_EPOCHS}.",
        json_schema_extra={"identity": True},
    )
    batch_size: int = Field(default=32, ge=1, json_schema_extra={"identity": True})
    image_size: int = Field(
        default=PAPER_IMAGE_SIZE,
        ge=32,
        le=512,
        description=f"Paper: {PAPER_IMAGE_SIZE}.",
        json_schema_extra={"identity": True},
    )
    learning_rate: float = Field(default=PAPER_LEARNING_RATE, gt=0.0, json_schema_extra={"identity": True})
    optimizer: Literal[OPTIMIZERS] = Field(
        default="paper",
        description="paper: Adam, but RMSprop for InceptionV3 and SGD for ResNet50.",
        json_schema_extra={"identity": True},
    )
    weights: str = Field(
        default="imagenet",
        description="Backbone weights: imagenet (Keras cache), none, a path or an s3:// URI.",
        json_schema_extra={"identity": True},
    )
    augment: bool = Field(
        default=False,
        description="Mild geometric/intensity augmentation of every training image (real and synthetic).",
        json_schema_extra={"identity": True},
    )
    protocol: Literal[PROTOCOLS] = Field(
        default="clean",
        description="clean: synthetic images join the training split only; paper-merge: merged before splitting "
        "as the paper did (contaminated test set, labelled so in the report).",
        json_schema_extra={"identity": True},
    )
    checkpoint_every: int = Field(
        default=1,
        ge=1,
        description="Epochs between checkpoints.",
        json_schema_extra={"identity": False},
    )
    max_steps_per_epoch: int | None = Field(
        default=None,
        ge=1,
        description="Cap steps (smoke tests).",
        json_schema_extra={"identity": True},
    )
    mixed_precision: bool = Field(default=False, json_schema_extra={"identity": True})
    class_weight: Literal["none", "balanced"] = Field(
        default="none",
        description="none: unweighted loss, as the paper; balanced: weight each class by n / (2 * n_class).",
        json_schema_extra={"identity": True},
    )
    validation_fraction: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Share of the training patients held out as a validation split (grouped by patient, "
        "stratified; never synthetic, never a test patient) that picks the best epoch and the decision threshold; "
        "0: none, as the paper.",
        json_schema_extra={"identity": True},
    )
    early_stopping_patience: int = Field(
        default=0,
        ge=0,
        description="Stop after this many epochs without a lower validation loss (the best epoch is restored "
        "whenever there is a validation split); 0: train every epoch, as the paper.",
        json_schema_extra={"identity": True},
    )
    lr_schedule: Literal["constant", "cosine", "plateau"] = Field(
        default="constant",
        description="constant: as the paper; cosine: decay to 1% over the epochs; plateau: halve after 2 epochs "
        "without a lower validation loss (needs a validation split).",
        json_schema_extra={"identity": True},
    )
    target_sensitivity: float = Field(
        default=0.95,
        gt=0.0,
        le=1.0,
        description="With a validation split, metrics.json also reports the test metrics at the highest threshold "
        "whose validation sensitivity reaches this (metrics at 0.5 keep their names).",
        json_schema_extra={"identity": True},
    )
    # Not identity: the panel explains the model, it does not change it, its metrics or its predictions. An output
    # already committed is kept as it is (a re-run with another value changes nothing).
    explain_examples: int = Field(
        default=2,
        ge=0,
        le=8,
        description="Grad-CAM examples per outcome (true/false positive/negative, the most confident test images) "
        "committed as gradcam.png and gradcam.json and shown in the report; 0: none.",
        json_schema_extra={"identity": False},
    )

    @model_validator(mode="after")
    def _recipe_needs_validation(self) -> TrainClassifierSettings:
        needs = {
            "early_stopping_patience": self.early_stopping_patience > 0,
            "lr_schedule": self.lr_schedule == "plateau",
        }
        for name, needed in needs.items():
            if needed and self.validation_fraction == 0.0:
                raise ValueError(
                    f"{name} needs a validation split (validation_fraction > 0). "
                    f"Received: {name}={getattr(self, name)!r}, validation_fraction={self.validation_fraction}"
                )
        return self

    def resolved_weights(self) -> str:
        """The weights setting in effect: ``"none"`` for the custom CNN, which has no pretrained weights."""
        return "none" if self.model == MODEL_NAMES[0] else self.weights


class ReportSettings(RunSettings):
    """``cxr-report``: collect every classifier of a run into the comparison report."""

    # The report covers every seed of the run: the inherited setting changes nothing here.
    seed: int = Field(default=0, ge=0, json_schema_extra={"identity": False})
    title: str = Field(
        default="cxr-gan: DCGAN augmentation for chest X-ray classification",
        json_schema_extra={"identity": True},
    )
    export_dir: str | None = Field(
        default=None,
        description="Also copy the committed report to this local folder (the Argo output artifact).",
        json_schema_extra={"identity": False},
    )
    allow_degraded: bool = Field(
        default=False,
        description=(
            "Replace a committed report that covered outputs the new one would lose (deleted, being rewritten, "
            "now unusable); the new report then says which. Without it such a run exits 1 naming them."
        ),
        json_schema_extra={"identity": False},
    )


# ---------------------------------------------------------------------------------------------------- cxr commands
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


class PromoteSettings(RunSettings):
    """``cxr promote``: judge a challenger against the registry's champion on the fixed real holdout."""

    # The decision compares trained models: the inherited setting changes nothing here.
    seed: int = Field(default=0, ge=0, json_schema_extra={"identity": False})
    task: str = Field(
        default="pneumonia",
        pattern=TASK_NAME_PATTERN.pattern,
        description="Registry entry: registry/<task>/.",
        json_schema_extra={"identity": True},
    )
    challenger: str = Field(
        description="Classifier output to judge: runs/<run_id>/classifiers/<condition>/<model>/seed-<seed> "
        "(store-relative, or its full URI inside the store).",
        json_schema_extra={"identity": "resolved"},  # the committed model's sha256
    )
    margin: float = Field(
        default=0.005,
        ge=0.0,
        lt=1.0,
        description="Accuracy gain required to promote (0.005 = 0.5 points).",
        json_schema_extra={"identity": True},
    )
    alpha: float = Field(
        default=0.05,
        gt=0.0,
        lt=1.0,
        description="Significance level of McNemar's test.",
        json_schema_extra={"identity": True},
    )
    batch_size: int = Field(
        default=64,
        ge=1,
        description="Images per forward pass.",
        json_schema_extra={"identity": False},
    )


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


def _json_list(value: str, name: str) -> list[Any]:
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise ValueError(f"must be a JSON list. Received: {name}={value!r}") from exc
    if not isinstance(parsed, list):
        raise ValueError(f"must be a JSON list. Received: {name}={value!r}")
    return parsed


class MatrixSettings(JobSettings):
    """``cxr matrix``: the classifier fan-out of a workflow as JSON lists (Argo ``withParam`` input)."""

    models: str = Field(
        description='JSON list of model names, e.g. ["custom_cnn", "vgg16"].',
        json_schema_extra={"identity": True},
    )
    seeds: str = Field(
        default="[0]",
        description="JSON list of non-negative integer seeds.",
        json_schema_extra={"identity": True},
    )

    @field_validator("models")
    @classmethod
    def _models(cls, value: str) -> str:
        names = _json_list(value, "models")
        unknown = [name for name in names if name not in MODEL_NAMES]
        if not names or unknown:
            raise ValueError(f"must be a non-empty JSON list of {list(MODEL_NAMES)}. Received: models={value!r}")
        return value

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: str) -> str:
        seeds = _json_list(value, "seeds")
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
            raise ValueError(f"must be a non-empty JSON list of integers >= 0. Received: seeds={value!r}")
        return value


class OutcomeSettings(JobSettings):
    """``cxr outcome``: the workflow's exit handler records its status beside the run's outputs."""

    run_id: str = Field(pattern=RUN_ID_PATTERN.pattern, json_schema_extra={"identity": False})
    status: str = Field(
        description="{{workflow.status}}: Succeeded, Failed or Error.",
        json_schema_extra={"identity": True},
    )
    failures: str = Field(
        default="[]",
        description="{{workflow.failures}} (JSON list).",
        json_schema_extra={"identity": True},
    )
