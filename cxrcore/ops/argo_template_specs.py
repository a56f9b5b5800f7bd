"""What ``argo/templates.yaml`` holds, one :class:`JobTemplate` per job template, for the generator in
:mod:`cxrcore.ops.argo_templates` (which adds the parameters, defaults and flags from each job's Settings class).
"""

from __future__ import annotations

import dataclasses

__all__ = ["TEMPLATES", "Artifact", "JobTemplate", "Parameter", "Resources", "TemplateError", "flag_of"]

#: The Settings field of a job's result folder (Argo output parameters are read from files there).
_RESULT_DIR = "result_dir"


class TemplateError(ValueError):
    """A description does not match its Settings class or breaks a rule of the file."""


def flag_of(field: str) -> str:
    """The command-line flag of a Settings field: ``--`` + the field name with ``_`` -> ``-``."""
    return "--" + field.replace("_", "-")


@dataclasses.dataclass(frozen=True)
class Parameter:
    """A Settings field passed as a workflow parameter: ``--flag={{inputs.parameters.name}}``.

    Attributes:
        field: The Settings field (``image_size``); its flag is ``--image-size``.
        name: The Argo parameter name; default: the flag without ``--``.
        required: No default in the template even though the Settings field has one (the caller must choose).
        comment: Comment lines written above the parameter.
    """

    field: str
    name: str | None = None
    required: bool = False
    comment: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        """The command-line flag of the field (``--image-size``)."""
        return flag_of(self.field)

    @property
    def argo_name(self) -> str:
        """The name of the template's input parameter."""
        return self.name or self.flag[2:]


@dataclasses.dataclass(frozen=True)
class Resources:
    """Requests and limits of a CPU template's container (GPU templates share one GPU size)."""

    cpu: str
    memory: str
    memory_limit: str


@dataclasses.dataclass(frozen=True)
class Artifact:
    """An output artifact: the folder a fixed argument (``field``) points the job at."""

    name: str
    field: str


@dataclasses.dataclass(frozen=True)
class JobTemplate:
    """One job template of ``argo/templates.yaml``.

    Attributes:
        name: The template name.
        image: The image repository under the ``registry`` parameter (``cxr-prepare``).
        command: The container command.
        settings: The name of the job's Settings class (resolved by :func:`settings_class`).
        parameters: The Settings fields that are workflow parameters, in order.
        subcommand: The first argument (``cxr matrix``), if any.
        internal: Settings fields that keep their Settings default (no parameter, no argument).
        fixed: ``(field, value)`` arguments that are always the same (``--result-dir=/tmp/outputs``).
        outputs: Output parameters, read from ``<result_dir>/<name>``.
        output_defaults: ``(output, value)`` used when the job wrote no such file (Argo's ``valueFrom.default``;
            without one, a missing file turns a successful step into an ``Error``).
        artifacts: Output artifacts.
        uses_store: Takes the store parameters and the S3/log environment (else ``store`` is internal).
        scratch: Mounts the scratch ``emptyDir`` on ``/tmp``. Every job needs it: the root filesystem is
            read-only, and Python (temporary files), matplotlib and Keras write under ``/tmp``.
        gpu: Runs on the GPU pool: one GPU, the GPU semaphore, bounded by ``active_deadline_seconds``.
        timeout: The time bound of a CPU template (counts time Pending).
        active_deadline_seconds: The time bound of a GPU template (counts from the pod's start).
        resources: The container size of a CPU template.
        comment: Comment lines written under the template's name.
        section: A section heading written above the template.
        secret_env: ``(variable, Secret)`` pairs: environment variables read from the key of the same name in
            an optional Secret, for this template only (the patient salt of the templates that import images).
    """

    name: str
    image: str
    command: tuple[str, ...]
    settings: str
    parameters: tuple[Parameter, ...]
    subcommand: str | None = None
    internal: tuple[str, ...] = ()
    fixed: tuple[tuple[str, str], ...] = ((_RESULT_DIR, "/tmp/outputs"),)
    outputs: tuple[str, ...] = ()
    output_defaults: tuple[tuple[str, str], ...] = ()
    artifacts: tuple[Artifact, ...] = ()
    uses_store: bool = True
    scratch: bool = True
    gpu: bool = False
    timeout: str | None = None
    active_deadline_seconds: int | None = None
    resources: Resources | None = None
    comment: tuple[str, ...] = ()
    section: str | None = None
    secret_env: tuple[tuple[str, str], ...] = ()


_RUN = (Parameter("run_id"), Parameter("dataset"), Parameter("dataset_version"))
_SMALL = Resources(cpu="100m", memory="256Mi", memory_limit="512Mi")
#: The key of the hashed DICOM patient ids (PrepareSettings.patient_salt), for the templates that import images.
_PATIENT_SALT = (("CXR_PATIENT_SALT", "cxr-patient-salt"),)

#: The job templates, in file order.
TEMPLATES: tuple[JobTemplate, ...] = (
    JobTemplate(
        name="prepare",
        image="cxr-prepare",
        command=("cxr-prepare",),
        settings="PrepareSettings",
        section="CPU pool",
        parameters=(
            Parameter("source"),
            Parameter("name", name="dataset"),
            Parameter("image_size"),
            Parameter("split"),
            Parameter("test_fraction"),
            Parameter("seed"),
            Parameter(
                "base_version",
                comment=(
                    'Incremental import (argo/retrain.yaml): extend this version ("latest" or an id; "" = none) with',
                    'only these batches of the source (JSON list; "" = the whole source), then ledger them.',
                ),
            ),
            Parameter("batches"),
            Parameter(
                "dicom_views",
                comment=("DICOM files: the ViewPosition values imported (comma-separated; UNKNOWN: none; *: all).",),
            ),
        ),
        # patient_salt: from the Secret cxr-patient-salt (secret_env), never a parameter.
        internal=("shard_size", "max_image_pixels", "max_file_mb", "decode_workers", "patient_salt"),
        secret_env=_PATIENT_SALT,
        outputs=("version", "status"),
        timeout="5h",
        resources=Resources(cpu="2", memory="4Gi", memory_limit="8Gi"),
    ),
    JobTemplate(
        name="matrix",
        comment=(
            "Expands the model and seed lists into the classifier fan-out: JSON lists of {model, seed, condition}.",
        ),
        image="cxr-prepare",
        command=("cxr",),
        subcommand="matrix",
        settings="MatrixSettings",
        parameters=(Parameter("models"), Parameter("seeds", required=True), Parameter("learning_rate")),
        uses_store=False,
        outputs=("baseline", "augmented"),
        timeout="10m",
        resources=Resources(cpu="100m", memory="128Mi", memory_limit="512Mi"),
    ),
    JobTemplate(
        name="report",
        image="cxr-report",
        command=("cxr-report",),
        settings="ReportSettings",
        parameters=_RUN,
        internal=("seed", "title"),
        fixed=(("export_dir", "/tmp/report"), (_RESULT_DIR, "/tmp/outputs")),
        outputs=("uri",),
        artifacts=(Artifact("report", "export_dir"),),
        timeout="1h",
        resources=Resources(cpu="1", memory="2Gi", memory_limit="4Gi"),
    ),
    JobTemplate(
        name="record-outcome",
        comment=("onExit handler: records the workflow's status and failures next to the run's outputs.",),
        image="cxr-prepare",
        command=("cxr",),
        subcommand="outcome",
        settings="OutcomeSettings",
        parameters=(Parameter("run_id"), Parameter("status"), Parameter("failures")),
        fixed=(),
        timeout="10m",
        resources=_SMALL,
    ),
    JobTemplate(
        name="gan-train",
        section="GPU pool",
        image="cxr-gan-train",
        command=("cxr-gan-train",),
        settings="GanTrainSettings",
        parameters=(
            *_RUN,
            Parameter("class_name"),
            Parameter("epochs"),
            Parameter("image_size"),
            Parameter("width_multiplier"),
            Parameter("discriminator_width_multiplier"),
            Parameter("batch_size"),
            Parameter("max_steps_per_epoch"),
            Parameter("steps"),
            Parameter("beta_1"),
            Parameter("d_learning_rate"),
            Parameter("g_learning_rate"),
            Parameter("label_smoothing"),
            Parameter("diff_augment"),
            Parameter("instance_noise"),
            Parameter("mode_seeking_weight"),
            Parameter("mode_seeking_detail_weight"),
            Parameter("detail_mean_weight"),
            Parameter("generator_ema"),
            Parameter("d_clipnorm"),
            Parameter("g_clipnorm"),
            Parameter("quality_every"),
            Parameter("publish"),
            Parameter(
                "inception",
                comment=("InceptionV3 KID/FID in every quality measurement: auto (when the image baked ImageNet "
                         "weights), imagenet (required), off, or a weights file path / s3:// URI.",),
            ),
            Parameter(
                "validation_fraction",
                comment=("The classifiers' validation-fraction: their validation patients are left out of the GAN.",),
            ),
            Parameter("seed"),
            Parameter("mixed_precision"),
            Parameter("xla"),
        ),
        internal=("latent_dim", "learning_rate", "checkpoint_every", "validation_seed"),
        gpu=True,
        active_deadline_seconds=43200,
    ),
    JobTemplate(
        name="synthesize",
        image="cxr-synthesize",
        command=("cxr-synthesize",),
        settings="SynthesizeSettings",
        parameters=(
            *_RUN,
            Parameter("class_name"),
            Parameter("num_images"),
            Parameter("output_size"),
            Parameter("selection"),
            Parameter("keep_fraction"),
            Parameter("flagged_gan"),
            Parameter(
                "inception",
                comment=("InceptionV3 KID/FID of the kept set: auto (when the image baked ImageNet weights), imagenet "
                         "(required), off, or a weights file path / s3:// URI.",),
            ),
            Parameter("seed"),
        ),
        internal=("confidence_model", "memorization_threshold", "drop_memorized", "batch_size"),
        gpu=True,
        active_deadline_seconds=14400,
    ),
    JobTemplate(
        name="train-classifier",
        image="cxr-train-classifier",
        command=("cxr-train-classifier",),
        settings="TrainClassifierSettings",
        parameters=(
            *_RUN,
            Parameter("model"),
            Parameter("condition"),
            Parameter("seed"),
            Parameter("epochs"),
            Parameter("image_size"),
            Parameter("batch_size"),
            Parameter("learning_rate"),
            Parameter("max_steps_per_epoch"),
            Parameter("weights"),
            Parameter("protocol"),
            Parameter("class_weight"),
            Parameter("augment"),
            Parameter(
                "validation_fraction",
                comment=(
                    "The recipe (0 / 0 / constant = the paper): a patient-disjoint validation split carved from the",
                    "training split picks the best epoch and the decision threshold for target-sensitivity.",
                ),
            ),
            Parameter("early_stopping_patience"),
            Parameter("selection_metric"),
            Parameter("lr_schedule"),
            Parameter("target_sensitivity"),
            Parameter("mixed_precision"),
            Parameter(
                "explain_examples",
                comment=("Grad-CAM panel of this many test images per outcome (gradcam.png, in the report); 0: none.",),
            ),
        ),
        internal=("optimizer", "checkpoint_every", "validation_seed"),
        # Test metrics of the trained (or already committed) model: the Prometheus gauges read them.
        outputs=("accuracy", "auc"),
        output_defaults=(("auc", "NaN"),),  # undefined when the test split holds one class
        gpu=True,
        active_deadline_seconds=21600,
    ),
    JobTemplate(
        name="check-incoming",
        section="scheduled retraining (argo/retrain.yaml)",
        comment=(
            "Lists incoming/<batch>/ uploads that are complete (_SUCCESS) and not in registry/<dataset>/ledger.json.",
            "Cheap on purpose: no TensorFlow, lists keys and reads one JSON object.",
        ),
        image="cxr-prepare",
        command=("cxr",),
        subcommand="incoming",
        settings="IncomingSettings",
        parameters=(Parameter("dataset"), Parameter("incoming_prefix")),
        outputs=("found", "batches"),
        timeout="10m",
        resources=_SMALL,
    ),
    JobTemplate(
        name="promote",
        comment=(
            "Champion vs challenger on the same fixed holdout (test split of the challenger's dataset version);",
            "rewrites registry/<task>/champion.json only on promotion, always records the decision.",
        ),
        image="cxr-train-classifier",
        command=("cxr",),
        subcommand="promote",
        settings="PromoteSettings",
        parameters=(
            *_RUN,
            Parameter("challenger"),
            Parameter("task"),
            Parameter("margin"),
            Parameter("alpha"),
        ),
        internal=("seed", "batch_size"),
        outputs=("decision", "reason"),
        gpu=True,
        active_deadline_seconds=3600,
    ),
    JobTemplate(
        name="external-test",
        section="external validation (argo/paper.yaml)",
        comment=(
            "Imports each external source like prepare and scores every committed classifier of the run on it (CPU):",
            "runs/<run_id>/external/<dataset>/<condition>/<model>/seed-<n>/ (metrics.json, predictions.csv).",
        ),
        image="cxr-train-classifier",
        command=("cxr",),
        subcommand="external-test",
        settings="ExternalTestSettings",
        parameters=(*_RUN, Parameter("source"), Parameter("image_size")),
        internal=("seed", "batch_size"),
        secret_env=_PATIENT_SALT,  # DICOM external sets: the import hashes patient ids with the same key
        # Inference only: the CPU pool (the TensorFlow image runs without a GPU), bounded like prepare.
        timeout="5h",
        resources=Resources(cpu="2", memory="4Gi", memory_limit="8Gi"),
    ),
)


# ------------------------------------------------------------------------------------------- Settings classes
