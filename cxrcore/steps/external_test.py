"""``cxr external-test``: score every committed classifier of a run on external image sets.

The step (docs/architecture.md#steps): plan (import each external source with the same path as ``cxr-prepare``,
:func:`cxrcore.data.ingest.import_dataset`, into a dataset ``external-<sha256 of the source, 12 hex>``; list the
run's committed classifiers) -> skip every output committed with the same inputs -> score all images of the
external version through :func:`cxrcore.inference.predict_pixels` -> commit
``runs/<run_id>/external/<dataset>/<condition>/<model>/seed-<n>/`` with ``metrics.json`` and ``predictions.csv``.

Every image of the external version is scored, whatever split the import assigned it: none of them was seen in
training. The import accepts what ``cxr-prepare`` accepts (any image mode and bit depth; unreadable files are
rejected by name in the version's ``rejects.csv``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import numpy as np
import pandas as pd

from cxrcore import __version__
from cxrcore.config import ExternalTestSettings, PrepareSettings, external_sources, identity
from cxrcore.data.dataset import Dataset, load_dataset
from cxrcore.data.ingest import import_dataset
from cxrcore.inference import load_model_uri, predict_pixels
from cxrcore.layout import ClassifierOutput, classifiers_root, external_prefix, parse_classifier_prefix
from cxrcore.logging import get_logger
from cxrcore.metrics import binary_metrics
from cxrcore.storage import MARKER_NAME, Marker, Store, join_key, redact_uri
from cxrcore.vocab import CLASS_NAMES

__all__ = ["EXTERNAL_FORMAT", "ExternalTestError", "external_dataset_name", "external_metrics", "job_inputs", "run"]

#: Version of what an external-test output holds; bump it when the same inputs would give other outputs.
EXTERNAL_FORMAT = 1
_MODEL_FILE = "model.keras"
_METRICS_FILE = "metrics.json"
_THRESHOLD = 0.5


class ExternalTestError(ValueError):
    """The external test cannot run: no committed classifier in the run, or an external set without images."""


def external_dataset_name(source: str) -> str:
    """``external-<first 12 hex of sha256(source)>``: the dataset an external source is imported as."""
    return f"external-{hashlib.sha256(source.encode()).hexdigest()[:12]}"


def job_inputs(
    settings: ExternalTestSettings, *, dataset: dict[str, str], classifier: dict[str, str]
) -> dict[str, Any]:
    """The ``inputs`` of one external-test output's marker.

    Args:
        settings: The job settings; :func:`cxrcore.config.identity` of them is recorded.
        dataset: ``{"name", "version", "digest"}`` of the imported external version.
        classifier: ``{"prefix", "digest"}`` of the committed classifier output.

    Returns:
        A JSON-ready dict.
    """
    return {"format": EXTERNAL_FORMAT, "dataset": dataset, "classifier": classifier, "settings": identity(settings)}


def external_metrics(
    labels: np.ndarray, probabilities: np.ndarray, internal: dict[str, Any], chosen_threshold: float | None
) -> dict[str, Any]:
    """``metrics.json`` of one classifier on one external set (pure).

    Args:
        labels: 0/1 ground truth (1 = PNEUMONIA).
        probabilities: P(PNEUMONIA) per image, same order.
        internal: The classifier's own ``metrics.json`` (its internal test split).
        chosen_threshold: The threshold the classifier's recipe chose on its validation split, or ``None``.

    Returns:
        :func:`cxrcore.metrics.binary_metrics` at 0.5, ``at_chosen_threshold`` (``None`` without one) and
        ``internal`` (the classifier's internal ``n``, ``accuracy``, ``accuracy_ci95`` and ``auc``).
    """
    metrics = binary_metrics(labels, probabilities, threshold=_THRESHOLD)
    metrics["at_chosen_threshold"] = (
        binary_metrics(labels, probabilities, threshold=chosen_threshold)
        if chosen_threshold is not None and 0.0 < chosen_threshold < 1.0
        else None
    )
    metrics["internal"] = {key: internal.get(key) for key in ("n", "accuracy", "accuracy_ci95", "auc")}
    return metrics


# ---------------------------------------------------------------------------------------------------- plan
@dataclasses.dataclass(frozen=True)
class _Classifier:
    """One committed classifier output of the run."""

    output: ClassifierOutput
    marker: Marker

    @property
    def record(self) -> dict[str, str]:
        return {"prefix": self.output.prefix, "digest": self.marker.digest}


def _committed_classifiers(store: Store, run_id: str) -> list[_Classifier]:
    """Every committed classifier output of the run that holds a model, in (condition, model, seed) order."""
    root = classifiers_root(run_id)
    found = []
    for obj in store.list(root):
        prefix, _, name = obj.key.rpartition("/")
        if name != MARKER_NAME:
            continue
        try:
            output = parse_classifier_prefix(prefix)
        except ValueError:
            continue  # a checkpoint's own marker, or a foreign key: not a classifier output
        marker = store.require_committed(prefix)
        if _MODEL_FILE in marker.outputs:
            found.append(_Classifier(output, marker))
    if not found:
        raise ExternalTestError(
            f"Run {run_id} has no committed classifier under {store.url(root)}: train the classifiers first"
        )
    return sorted(found, key=lambda item: item.output)


def _import(store: Store, settings: ExternalTestSettings, source: str) -> Dataset:
    """Imports one external source like ``cxr-prepare`` (unchanged when imported before) and loads it."""
    prepare = PrepareSettings(
        store=settings.store,
        s3=settings.s3,
        io_workers=settings.io_workers,
        source=source,
        name=external_dataset_name(source),
        image_size=settings.image_size,
        split="paper",  # any layout imports; every image is scored whatever its split
    )
    result = import_dataset(store, prepare)
    dataset = load_dataset(store, result.name, result.version)
    if len(dataset.manifest) == 0:
        raise ExternalTestError(f"The external set {redact_uri(source)} holds no valid image")
    return dataset


# ---------------------------------------------------------------------------------------------------- compute
def _predictions_csv(dataset: Dataset, labels: np.ndarray, probabilities: np.ndarray) -> bytes:
    frame = pd.DataFrame(
        {"image_id": dataset.manifest["image_id"].astype(str), "label": labels, "probability": probabilities}
    )
    return frame.to_csv(index=False, float_format="%.17g", lineterminator="\n").encode()


def _score_one(
    store: Store,
    settings: ExternalTestSettings,
    classifier: _Classifier,
    dataset: Dataset,
    dataset_record: dict[str, str],
) -> dict[str, Any]:
    """Scores the external images with one classifier and commits its output (or finds it committed)."""
    output = classifier.output
    prefix = external_prefix(settings.run_id, dataset.name, output.condition, output.model, output.seed)
    inputs = job_inputs(settings, dataset=dataset_record, classifier=classifier.record)
    summary = {"dataset": dataset.name, "classifier": output.label(), "uri": store.url(prefix)}
    if store.is_committed(prefix, inputs):
        metrics = store.get_json(join_key(prefix, _METRICS_FILE))
        return {**summary, "status": "unchanged", "accuracy": metrics["accuracy"], "auc": metrics["auc"]}
    internal = {}
    if _METRICS_FILE in classifier.marker.outputs:
        internal = store.get_json(join_key(output.prefix, _METRICS_FILE))
    chosen = (internal.get("at_chosen_threshold") or {}).get("threshold")
    model = load_model_uri(store.url(output.prefix), s3=settings.s3.as_options(settings.io_workers))
    probabilities = predict_pixels(model, dataset.images, batch_size=settings.batch_size)
    labels = (dataset.manifest["class"] == CLASS_NAMES[1]).to_numpy().astype(int)
    metrics = external_metrics(labels, probabilities, internal, chosen)
    metrics.update(
        {"dataset": dataset_record, "source": dataset.info.get("source"), "classifier": classifier.record,
         "condition": output.condition, "model": output.model, "seed": output.seed}
    )
    with store.commit(prefix, inputs=inputs, producer=f"cxr-external-test {__version__}") as transaction:
        transaction.put_bytes("predictions.csv", _predictions_csv(dataset, labels, probabilities))
        transaction.put_json(_METRICS_FILE, metrics)
    return {**summary, "status": "created", "accuracy": metrics["accuracy"], "auc": metrics["auc"]}


# ---------------------------------------------------------------------------------------------------- step
def run(settings: ExternalTestSettings) -> dict[str, Any]:
    """Job entry of ``cxr external-test``: every committed classifier of the run on every external set.

    Idempotent: each output's marker inputs are the external version's marker digest, the classifier output's
    marker digest, the settings that change the result and :data:`EXTERNAL_FORMAT`; a committed output with the
    same inputs is left alone, and an external source imported before is not imported again.

    Args:
        settings: The job settings.

    Returns:
        ``{"datasets": [{"name", "version", "source", "images"}], "outputs": [{"dataset", "classifier", "uri",
        "status", "accuracy", "auc"}], "count"}``.

    Raises:
        ExternalTestError: The run has no committed classifier, or an external set has no valid image.
        FileNotFoundError: An external source does not exist.
    """
    log = get_logger("cxrcore.external_test", run_id=settings.run_id)
    store = settings.open_store()
    classifiers = _committed_classifiers(store, settings.run_id)
    datasets, outputs = [], []
    for source in external_sources(settings.source):
        dataset = _import(store, settings, source)
        record = {"name": dataset.name, "version": dataset.version, "digest": dataset.marker.digest}
        datasets.append({"name": dataset.name, "version": dataset.version, "source": redact_uri(source),
                         "images": len(dataset.manifest)})
        log.info("external_set", source=redact_uri(source), dataset=dataset.name, version=dataset.version,
                 images=len(dataset.manifest), classifiers=len(classifiers))
        for classifier in classifiers:
            outputs.append(_score_one(store, settings, classifier, dataset, record))
            log.info("external_scored", **outputs[-1])
    return {"datasets": datasets, "outputs": outputs, "count": len(outputs)}
