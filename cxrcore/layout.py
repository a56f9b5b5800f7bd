"""Where every output of a run lives in the store (docs/architecture.md#store-layout), in one place.

::

    datasets/<name>/<version>/                 manifest.csv rejects.csv duplicates.csv dataset.json shards/
    datasets/<name>/latest.json                {"version": ...}: the newest committed version
    runs/<run_id>/gan/<CLASS>/                 generator.keras discriminator.keras losses.csv samples.png
                                               samples/epoch-NNNN.png  checkpoints/epoch-NNNN/ (own markers)
    runs/<run_id>/synthetic/<CLASS>/           manifest.csv shards/ selection.json samples.png
    runs/<run_id>/classifiers/<condition>/<model>/seed-<seed>/
                                               model.keras history.csv metrics.json predictions.csv
                                               gradcam.png gradcam.json (optional) checkpoints/ (own markers)
    runs/<run_id>/external/<dataset>/<condition>/<model>/seed-<seed>/
                                               metrics.json predictions.csv (one classifier on an external set)
    runs/<run_id>/report/                      index.html report.md tables.csv metrics.json figures/*.png
    registry/<dataset>/ledger.json             every batch imported into a version of <dataset> (JSON list)
    registry/<task>/champion.json              the model in service; rewritten only on promotion
    registry/<task>/decisions/<UTC time>-<run_id>.json
                                               one record per decision, promote or keep (time:
                                               20260101T030512.123456Z, so keys sort in decision order)

Every ``datasets/`` and ``runs/`` prefix above is an output committed with a ``_SUCCESS`` marker (:meth:`cxrcore.storage.Store.commit`).
Seeds get their own level under the model (``<condition>/<model>/`` holds one folder per seed), so
"mean ± sd over seeds" never overwrites a result. The ``registry/`` records are single objects, each written
with one ``put`` (docs/architecture.md#scheduled-retraining).

Keys are built here (``*_prefix``, :func:`latest_key`) and read back here (:func:`parse_classifier_prefix`,
:func:`run_id_of`); no other module splits a key on ``/`` to learn what it names.
"""

from __future__ import annotations

import dataclasses
import re

from cxrcore.storage import join_key, normalize_key
from cxrcore.vocab import (
    CLASS_NAMES,
    CONDITIONS,
    DATASET_NAME_PATTERN,
    DATASET_VERSION_PATTERN,
    MODEL_DIRECTORY_PATTERN,
    RUN_ID_PATTERN,
    SEED_DIRECTORY_PATTERN,
    TASK_NAME_PATTERN,
)

__all__ = [
    "CHAMPION_FILE",
    "CLASS_NAMES",
    "CONDITIONS",
    "DECISIONS_DIR",
    "GRADCAM_INFO_FILE",
    "GRADCAM_PANEL_FILE",
    "LEDGER_FILE",
    "REGISTRY_ROOT",
    "ClassifierOutput",
    "ExternalOutput",
    "champion_key",
    "classifier_prefix",
    "classifiers_root",
    "dataset_prefix",
    "decisions_prefix",
    "external_prefix",
    "external_root",
    "gan_prefix",
    "latest_key",
    "ledger_key",
    "parse_classifier_prefix",
    "parse_external_prefix",
    "report_prefix",
    "run_id_of",
    "run_prefix",
    "synthetic_prefix",
    "validate_run_id",
]


def validate_run_id(run_id: str) -> str:
    """Returns ``run_id`` if it is a safe single key component (Argo's ``{{workflow.name}}`` is)."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id):
        raise ValueError(f"run_id must match {RUN_ID_PATTERN.pattern}. Received: run_id={run_id!r}")
    return run_id


def _check_class(class_name: str) -> str:
    if class_name not in CLASS_NAMES:
        raise ValueError(f"class_name must be one of {CLASS_NAMES}. Received: class_name={class_name!r}")
    return class_name


def run_prefix(run_id: str) -> str:
    """``runs/<run_id>``."""
    return join_key("runs", validate_run_id(run_id))


def gan_prefix(run_id: str, class_name: str) -> str:
    """``runs/<run_id>/gan/<CLASS>``: the DCGAN of one class."""
    return join_key(run_prefix(run_id), "gan", _check_class(class_name))


def synthetic_prefix(run_id: str, class_name: str) -> str:
    """``runs/<run_id>/synthetic/<CLASS>``: the kept synthetic images of one class."""
    return join_key(run_prefix(run_id), "synthetic", _check_class(class_name))


def classifiers_root(run_id: str) -> str:
    """``runs/<run_id>/classifiers``: every classifier output of a run lies below."""
    return join_key(run_prefix(run_id), "classifiers")


def classifier_prefix(run_id: str, condition: str, model: str, seed: int) -> str:
    """``runs/<run_id>/classifiers/<condition>/<model>/seed-<seed>``."""
    if condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {CONDITIONS}. Received: condition={condition!r}")
    if not MODEL_DIRECTORY_PATTERN.match(model):
        raise ValueError(f"model must match {MODEL_DIRECTORY_PATTERN.pattern}. Received: model={model!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer. Received: seed={seed!r}")
    return join_key(classifiers_root(run_id), condition, model, f"seed-{seed}")


def external_root(run_id: str) -> str:
    """``runs/<run_id>/external``: every external-test output of a run lies below."""
    return join_key(run_prefix(run_id), "external")


def external_prefix(run_id: str, dataset: str, condition: str, model: str, seed: int) -> str:
    """``runs/<run_id>/external/<dataset>/<condition>/<model>/seed-<seed>``: one classifier on an external set."""
    classifier = classifier_prefix(run_id, condition, model, seed)  # validates condition, model and seed
    return join_key(external_root(run_id), _check_dataset_name(dataset), *classifier.split("/")[3:])


def report_prefix(run_id: str) -> str:
    """``runs/<run_id>/report``."""
    return join_key(run_prefix(run_id), "report")


def _check_dataset_name(name: str) -> str:
    if not isinstance(name, str) or not DATASET_NAME_PATTERN.match(name):
        raise ValueError(f"Dataset name must match {DATASET_NAME_PATTERN.pattern}. Received: name={name!r}")
    return name


def dataset_prefix(name: str, version: str) -> str:
    """``datasets/<name>/<version>``: one immutable dataset version, validating both parts."""
    _check_dataset_name(name)
    if not isinstance(version, str) or not DATASET_VERSION_PATTERN.match(version):
        raise ValueError(
            f"Dataset version must match {DATASET_VERSION_PATTERN.pattern}. Received: version={version!r}"
        )
    return join_key("datasets", name, version)


def latest_key(name: str) -> str:
    """``datasets/<name>/latest.json``: the pointer to a dataset's newest version."""
    return join_key("datasets", _check_dataset_name(name), "latest.json")


# ------------------------------------------------------------------------------------------- classifier files
#: A classifier output's Grad-CAM panel of a few test images per outcome (absent when disabled or older).
GRADCAM_PANEL_FILE = "gradcam.png"
#: What the panel shows, cell by cell (:mod:`cxrcore.training.classifier_explain`).
GRADCAM_INFO_FILE = "gradcam.json"


# ------------------------------------------------------------------------------------------- registry records
#: The folder of the champion registry and the dataset ledgers.
REGISTRY_ROOT = "registry"
#: A dataset's ledger of imported batches.
LEDGER_FILE = "ledger.json"
#: A task's champion record.
CHAMPION_FILE = "champion.json"
#: A task's folder of decision records.
DECISIONS_DIR = "decisions"


def _check_name(value: str, what: str, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"{what} must match {pattern.pattern}. Received: {what}={value!r}")
    return value


def ledger_key(dataset: str) -> str:
    """``registry/<dataset>/ledger.json``: the batches imported into versions of ``dataset``."""
    return join_key(REGISTRY_ROOT, _check_name(dataset, "dataset", DATASET_NAME_PATTERN), LEDGER_FILE)


def champion_key(task: str) -> str:
    """``registry/<task>/champion.json``: the model in service for ``task``."""
    return join_key(REGISTRY_ROOT, _check_name(task, "task", TASK_NAME_PATTERN), CHAMPION_FILE)


def decisions_prefix(task: str) -> str:
    """``registry/<task>/decisions``: one JSON record per promotion decision."""
    return join_key(REGISTRY_ROOT, _check_name(task, "task", TASK_NAME_PATTERN), DECISIONS_DIR)


# ------------------------------------------------------------------------------------------- reading keys
@dataclasses.dataclass(frozen=True, order=True)
class ClassifierOutput:
    """What a classifier prefix names: ``runs/<run_id>/classifiers/<condition>/<model>/seed-<seed>``.

    Attributes:
        run_id: The run.
        condition: ``baseline`` or ``augmented``.
        model: The model directory (``custom_cnn``, ``vgg16``, ...).
        seed: The seed.
    """

    run_id: str
    condition: str
    model: str
    seed: int

    @property
    def prefix(self) -> str:
        """The output's prefix (:func:`classifier_prefix`)."""
        return classifier_prefix(self.run_id, self.condition, self.model, self.seed)

    def label(self) -> str:
        """``<condition>/<model>/seed-<seed>``, for messages and tables."""
        return f"{self.condition}/{self.model}/seed-{self.seed}"


def run_id_of(key: str) -> str:
    """The run a key belongs to: ``runs/<run_id>/...`` gives ``run_id``.

    Raises:
        ValueError: If the key does not lie under ``runs/<run_id>/``.
    """
    parts = normalize_key(key).split("/")
    if len(parts) < 2 or parts[0] != "runs" or not RUN_ID_PATTERN.match(parts[1]):
        raise ValueError(f"Expected a key under runs/<run_id>/. Received: key={key!r}")
    return parts[1]


def parse_classifier_prefix(key: str) -> ClassifierOutput:
    """Reads ``runs/<run_id>/classifiers/<condition>/<model>/seed-<seed>`` back into its parts.

    Args:
        key: A store key (a trailing slash and empty components are ignored).

    Returns:
        The :class:`ClassifierOutput`; its ``prefix`` is the normalised key.

    Raises:
        ValueError: If the key is not exactly a classifier prefix of a valid run, condition, model and seed
            (:class:`cxrcore.storage.UnsafeKeyError`, a ``ValueError``, for a key that could escape the root).
    """
    parts = normalize_key(key).split("/")
    seed = SEED_DIRECTORY_PATTERN.match(parts[5]) if len(parts) == 6 else None
    if (
        seed is None
        or parts[0] != "runs"
        or parts[2] != "classifiers"
        or not RUN_ID_PATTERN.match(parts[1])
        or parts[3] not in CONDITIONS
        or not MODEL_DIRECTORY_PATTERN.match(parts[4])
    ):
        raise ValueError(
            "Expected a classifier output runs/<run_id>/classifiers/<condition>/<model>/seed-<seed> with condition "
            f"in {CONDITIONS}. Received: key={key!r}"
        )
    return ClassifierOutput(parts[1], parts[3], parts[4], int(seed.group(1)))


@dataclasses.dataclass(frozen=True, order=True)
class ExternalOutput:
    """What an external-test prefix names: ``runs/<run_id>/external/<dataset>/<condition>/<model>/seed-<seed>``.

    Attributes:
        dataset: The external dataset's name.
        classifier: The classifier output of the run that was scored.
    """

    dataset: str
    classifier: ClassifierOutput

    @property
    def prefix(self) -> str:
        """The output's prefix (:func:`external_prefix`)."""
        output = self.classifier
        return external_prefix(output.run_id, self.dataset, output.condition, output.model, output.seed)


def parse_external_prefix(key: str) -> ExternalOutput:
    """Reads ``runs/<run_id>/external/<dataset>/<condition>/<model>/seed-<seed>`` back into its parts.

    Raises:
        ValueError: If the key is not exactly such a prefix of a valid run, dataset, condition, model and seed.
    """
    parts = normalize_key(key).split("/")
    if len(parts) != 7 or parts[0] != "runs" or parts[2] != "external" or not DATASET_NAME_PATTERN.match(parts[3]):
        raise ValueError(
            "Expected an external-test output runs/<run_id>/external/<dataset>/<condition>/<model>/seed-<seed>. "
            f"Received: key={key!r}"
        )
    classifier = parse_classifier_prefix(join_key(parts[0], parts[1], "classifiers", *parts[4:]))
    return ExternalOutput(parts[3], classifier)
