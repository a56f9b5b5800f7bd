"""Scheduled retraining (``argo/retrain.yaml``): incoming batches, their ledger, and the champion registry.

Store layout (docs/architecture.md#store-layout)::

    incoming/<batch>/...                   X-rays a producer uploads: NORMAL/ and PNEUMONIA/ folders, optionally
                                           below train/ test/ (the ``official`` split reads them)
    incoming/<batch>/_SUCCESS              written by the producer LAST, content ignored: a batch without it is
                                           still being uploaded and is invisible to retraining
    registry/<dataset>/ledger.json         every batch imported into a version of <dataset> (JSON list)
    registry/<task>/champion.json          the model in service; rewritten only on promotion
    registry/<task>/decisions/<UTC time>-<run_id>.json   one record per decision, promote or keep
                                           (time: 20260101T030512.123456Z, so keys sort in decision order)

The three steps of a retraining run:

* ``cxr incoming`` (:func:`run_incoming`, no TensorFlow): the complete batches not yet in the ledger.
* ``cxr-prepare --base-version latest --batches '["b1"]'`` (:mod:`cxrcore.data.ingest`): a new dataset version
  holding every row of the base version (with its split: the holdout never moves) plus the batches' images;
  the ledger is appended after the version is committed, so a batch is imported once.
* ``cxr promote`` (:func:`run_promote`, TensorFlow): champion and challenger predict the same holdout (the
  ``test`` rows of the challenger's dataset version); the challenger is promoted when there is no champion, or
  when it is better by at least ``margin`` accuracy and McNemar's exact test (p < ``alpha``) says the
  difference is not chance.

Writes are single ``put`` calls (atomic on S3 and on ``file://``). The ledger and the champion are
read-modify-write objects: the workflow holds the ``cxr-retrain`` mutex so two runs never write them at once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# The settings and the batch-name parsing live in cxrcore.config; they are re-exported here.
from cxrcore.config import IncomingSettings, PromoteSettings, parse_batches, validate_batch_name
from cxrcore.logging import get_logger
from cxrcore.storage import MARKER_NAME, Store, StoreError, join_key, normalize_key
from cxrcore.vocab import BATCH_NAME_PATTERN, DATASET_NAME_PATTERN, INCOMING_PREFIX, TASK_NAME_PATTERN

__all__ = [
    "CHAMPION_FILE",
    "DECISIONS_DIR",
    "HOLDOUT_SOURCES",
    "INCOMING_PREFIX",
    "LEDGER_FILE",
    "REGISTRY_FORMAT",
    "REGISTRY_ROOT",
    "Comparison",
    "IncomingSettings",
    "PromoteSettings",
    "append_to_ledger",
    "champion_key",
    "decide",
    "decisions_prefix",
    "ledger_key",
    "parse_batches",
    "read_champion",
    "read_ledger",
    "run_incoming",
    "run_promote",
    "scan_incoming",
    "validate_batch_name",
]

log = get_logger(__name__)

REGISTRY_ROOT = "registry"
LEDGER_FILE = "ledger.json"
CHAMPION_FILE = "champion.json"
DECISIONS_DIR = "decisions"
#: Version of the champion and decision records.
REGISTRY_FORMAT = 1
#: Manifest ``source`` values of the holdout: imported images (demo phantoms stand in for real X-rays in demos).
#: GAN images never enter a dataset version; any other source is left out of the comparison.
HOLDOUT_SOURCES: tuple[str, ...] = ("real", "demo")
_MODEL_FILE = "model.keras"
_METRICS_FILE = "metrics.json"
_THRESHOLD = 0.5
_FLOAT_TOLERANCE = 1e-12


# ---------------------------------------------------------------------------------------------------- keys
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


# ---------------------------------------------------------------------------------------------------- ledger
def read_ledger(store: Store, key: str) -> list[dict[str, Any]]:
    """The ledger at ``key``: a list of ``{batch, dataset_version, imported_at, files, ...}``; ``[]`` if absent.

    Raises:
        StoreError: The object is not a JSON list of entries with a ``batch`` name.
    """
    if not store.exists(key):
        return []
    ledger = store.get_json(key)
    if not isinstance(ledger, list) or not all(
        isinstance(entry, dict) and isinstance(entry.get("batch"), str) for entry in ledger
    ):
        raise StoreError(f"{store.uri}/{key} is not a ledger (a JSON list of objects with a 'batch' name)")
    return ledger


def append_to_ledger(store: Store, key: str, entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Appends the entries of batches not yet in the ledger, in one ``put``; returns the ledger.

    Call it only after the dataset version the entries name is committed. Entries of batches already in the
    ledger are dropped (their first import stands), so calling it again after a retry changes nothing.
    """
    ledger = read_ledger(store, key)
    known = {entry["batch"] for entry in ledger}
    added = [dict(entry) for entry in entries if entry["batch"] not in known]
    if added:
        ledger = [*ledger, *added]
        store.put_json(key, ledger)
        log.info("ledger_updated", ledger=f"{store.uri.rstrip('/')}/{key}", batches=[e["batch"] for e in added])
    return ledger


def scan_incoming(store: Store, *, incoming_prefix: str = INCOMING_PREFIX, ledger_key: str) -> list[str]:
    """The complete batches under ``incoming_prefix`` that the ledger does not list, sorted by name.

    A batch is a sub-prefix ``<incoming_prefix>/<batch>/`` holding a ``_SUCCESS`` object (the producer writes
    it after every image). Batches without one are being uploaded and are skipped; batch names that are not a
    valid key component (see :func:`validate_batch_name`) are skipped with a warning.

    Args:
        store: The store.
        incoming_prefix: Where producers upload batches (store-relative).
        ledger_key: Key of the dataset's ledger (see :func:`ledger_key`).

    Returns:
        Batch names, sorted.
    """
    prefix = normalize_key(incoming_prefix)
    complete: set[str] = set()
    seen: set[str] = set()
    for obj in store.list(prefix):
        batch, separator, rest = obj.key[len(prefix) + 1 :].partition("/")
        if not separator:
            continue  # an object directly under incoming/ belongs to no batch
        seen.add(batch)
        if rest == MARKER_NAME:
            complete.add(batch)
    invalid = sorted(batch for batch in complete if not BATCH_NAME_PATTERN.match(batch))
    if invalid:
        log.warning("incoming_invalid_batch_names", batches=invalid, pattern=BATCH_NAME_PATTERN.pattern)
    imported = {entry["batch"] for entry in read_ledger(store, ledger_key)}
    pending = sorted(batch for batch in complete if BATCH_NAME_PATTERN.match(batch) and batch not in imported)
    log.info(
        "incoming_scanned",
        incoming=f"{store.uri.rstrip('/')}/{prefix}",
        new=pending,
        already_imported=sorted(complete & imported),
        incomplete=sorted(seen - complete),
    )
    return pending


def run_incoming(settings: IncomingSettings) -> dict[str, Any]:
    """Job entry of ``cxr incoming``.

    Returns:
        ``found`` (bool, written ``true``/``false`` for Argo), ``batches`` (a JSON list, as a string, for the
        import's ``--batches``), ``count``, and the ``incoming`` and ``ledger`` URIs.
    """
    store = settings.open_store()
    key = ledger_key(settings.dataset)
    batches = scan_incoming(store, incoming_prefix=settings.incoming_prefix, ledger_key=key)
    root = store.uri.rstrip("/")
    return {
        "found": bool(batches),
        "batches": json.dumps(batches, separators=(",", ":")),
        "count": len(batches),
        "incoming": f"{root}/{settings.incoming_prefix}",
        "ledger": f"{root}/{key}",
    }


# ---------------------------------------------------------------------------------------------------- decision
@dataclasses.dataclass(frozen=True)
class Comparison:
    """A promotion decision on one holdout.

    Attributes:
        decision: ``promote`` or ``keep``.
        reason: Why, in words (``no champion yet``, ``challenger +0.30 pp < margin 0.50 pp``, ...).
        challenger_accuracy: Accuracy of the challenger on the holdout.
        champion_accuracy: Accuracy of the champion on the same images (``None`` without a champion).
        delta: ``challenger_accuracy - champion_accuracy`` (``None`` without a champion).
        mcnemar: :func:`cxrcore.metrics.mcnemar` with A = champion, B = challenger: ``b`` images only the
            champion gets right, ``c`` only the challenger, ``p_value`` (``None`` without a champion).
    """

    decision: str
    reason: str
    challenger_accuracy: float
    champion_accuracy: float | None = None
    delta: float | None = None
    mcnemar: dict[str, Any] | None = None

    @property
    def p_value(self) -> float | None:
        """McNemar's two-sided exact p-value, or ``None`` without a champion."""
        return None if self.mcnemar is None else float(self.mcnemar["p_value"])


def _points(value: float) -> str:
    return f"{value * 100:.2f} pp"


def decide(
    labels: np.ndarray,
    challenger_predictions: np.ndarray,
    champion_predictions: np.ndarray | None,
    *,
    margin: float,
    alpha: float,
) -> Comparison:
    """The promotion rule (pure).

    Promote when there is no champion; otherwise only when both hold:

    * the challenger's accuracy is at least the champion's plus ``margin``;
    * McNemar's exact test on the images the two models disagree about is significant (``p < alpha``) and in
      the challenger's favour (it is right on more of them than the champion).

    Args:
        labels: 0/1 ground truth of the holdout.
        challenger_predictions: 0/1 predictions of the challenger, same images and order.
        champion_predictions: 0/1 predictions of the champion, or ``None`` when there is none.
        margin: Accuracy gain required (0.005 = 0.5 percentage points).
        alpha: Significance level of McNemar's test.

    Returns:
        The :class:`Comparison`, whose ``reason`` names every condition that failed.
    """
    from cxrcore.metrics import mcnemar

    if not 0.0 <= margin < 1.0:
        raise ValueError(f"margin must be in [0, 1). Received: margin={margin}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1). Received: alpha={alpha}")
    labels = np.asarray(labels).astype(int).ravel()
    challenger = np.asarray(challenger_predictions).astype(int).ravel()
    if labels.size == 0 or labels.size != challenger.size:
        raise ValueError(
            f"decide needs the challenger's predictions of every holdout image. Received: "
            f"len(labels)={labels.size}, len(challenger_predictions)={challenger.size}"
        )
    challenger_accuracy = float((challenger == labels).mean())
    if champion_predictions is None:
        return Comparison("promote", "no champion yet", challenger_accuracy)
    champion = np.asarray(champion_predictions).astype(int).ravel()
    test = mcnemar(labels, champion, challenger)
    champion_accuracy = float((champion == labels).mean())
    delta = challenger_accuracy - champion_accuracy
    p_value = float(test["p_value"])
    failures = []
    if delta < margin - _FLOAT_TOLERANCE:
        failures.append(f"challenger {delta * 100:+.2f} pp < margin {_points(margin)}")
    if test["c"] <= test["b"]:
        failures.append(
            f"McNemar: challenger right on {test['c']} images the champion missed, wrong on {test['b']} it got "
            f"right (p={p_value:.3g})"
        )
    elif p_value >= alpha:
        failures.append(f"McNemar p={p_value:.3g} >= {alpha:g}")
    if failures:
        return Comparison("keep", "; ".join(failures), challenger_accuracy, champion_accuracy, delta, test)
    reason = (
        f"challenger {delta * 100:+.2f} pp >= margin {_points(margin)} and McNemar p={p_value:.3g} < {alpha:g} "
        f"({test['c']} images only the challenger gets right, {test['b']} only the champion)"
    )
    return Comparison("promote", reason, challenger_accuracy, champion_accuracy, delta, test)


# ---------------------------------------------------------------------------------------------------- promote
def read_champion(store: Store, task: str) -> dict[str, Any] | None:
    """The champion record of ``task``, or ``None`` when nothing was promoted yet.

    Raises:
        StoreError: The record exists but names no model.
    """
    key = champion_key(task)
    if not store.exists(key):
        return None
    record = store.get_json(key)
    if not isinstance(record, dict) or not (record.get("prefix") or record.get("model_uri")):
        raise StoreError(f"{store.uri}/{key} is not a champion record (no prefix or model_uri)")
    return record


def _challenger_prefix(store: Store, challenger: str) -> str:
    """The challenger's store-relative prefix, from a key or a URI inside the store."""
    root = store.uri.rstrip("/") + "/"
    text = challenger.strip()
    if "://" in text:
        if not text.startswith(root):
            raise ValueError(
                f"challenger must lie inside the store {store.uri}. Received: challenger={challenger!r}"
            )
        text = text[len(root) :]
    prefix = normalize_key(text.rstrip("/"))
    parts = prefix.split("/")
    if len(parts) != 6 or parts[0] != "runs" or parts[2] != "classifiers" or not parts[5].startswith("seed-"):
        raise ValueError(
            "challenger must name a classifier output runs/<run_id>/classifiers/<condition>/<model>/seed-<seed>. "
            f"Received: challenger={challenger!r}"
        )
    return prefix


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _previous_decision(store: Store, task: str, run_id: str, prefix: str) -> tuple[str, dict[str, Any]] | None:
    """The decision this run already recorded about ``prefix`` (an Argo retry), if any."""
    suffix = f"-{run_id}.json"
    for obj in reversed(store.list(decisions_prefix(task))):
        if obj.key.endswith(suffix):
            record = store.get_json(obj.key)
            if (
                isinstance(record, dict)
                and record.get("run_id") == run_id
                and record.get("challenger", {}).get("prefix") == prefix
            ):
                return obj.key, record
    return None


def _result(record: Mapping[str, Any], *, status: str, store: Store, task: str, decision_key: str) -> dict[str, Any]:
    root = store.uri.rstrip("/")
    champion = record.get("champion") or {}
    return {
        "status": status,
        "decision": record["decision"],
        "reason": record["reason"],
        "challenger_accuracy": record["challenger"]["metrics"]["accuracy"],
        "champion_accuracy": (champion.get("metrics") or {}).get("accuracy"),
        "delta": record.get("delta"),
        "p_value": (record.get("mcnemar") or {}).get("p_value"),
        "margin": record["margin"],
        "alpha": record["alpha"],
        "holdout_images": record["holdout"]["images"],
        "champion_uri": f"{root}/{champion_key(task)}",
        "decision_uri": f"{root}/{decision_key}",
    }


@dataclasses.dataclass
class _Holdout:
    images: np.ndarray
    labels: np.ndarray
    info: dict[str, Any]


def _holdout(store: Store, dataset: str, version: str, champion: Mapping[str, Any] | None) -> _Holdout:
    """The ``test`` rows of real origin of ``dataset/version``, minus images the champion trained on."""
    from cxrcore.data.dataset import dataset_prefix, load_dataset, manifest_from_csv

    data = load_dataset(store, dataset, version)
    manifest = data.manifest
    mask = ((manifest["split"] == "test") & manifest["source"].isin(HOLDOUT_SOURCES)).to_numpy()
    excluded = 0
    champion_version = (champion or {}).get("dataset_version")
    if champion_version and champion_version != version and (champion or {}).get("dataset") == dataset:
        # A champion trained on another version (not an ancestor of this one) may have seen some of these images.
        key = join_key(dataset_prefix(dataset, champion_version), "manifest.csv")
        if store.exists(key):
            seen = manifest_from_csv(store.get_bytes(key), key=key)
            trained = set(seen.loc[seen["split"] != "test", "sha256"])
            leaked = manifest["sha256"].isin(trained).to_numpy() & mask
            excluded = int(leaked.sum())
            mask = mask & ~leaked
        else:
            log.warning("champion_dataset_missing", dataset=dataset, version=champion_version)
    rows = manifest[mask].sort_values("image_id", kind="mergesort")
    if rows.empty:
        raise ValueError(
            f"Dataset {dataset}/{version} has no holdout image (test split, source in {list(HOLDOUT_SOURCES)}). "
            f"Received: dataset_version={version!r}"
        )
    digest = hashlib.sha256("\n".join(sorted(rows["sha256"])).encode()).hexdigest()
    info = {
        "dataset": dataset,
        "dataset_version": version,
        "split": "test",
        "sources": list(HOLDOUT_SOURCES),
        "images": int(len(rows)),
        "by_class": {str(name): int(count) for name, count in rows["class"].value_counts().sort_index().items()},
        "excluded_champion_training": excluded,
        "digest": digest,
    }
    return _Holdout(data.images[rows.index.to_numpy()], rows["label"].to_numpy().astype(int), info)


def _load(uri: str, settings: PromoteSettings):
    from cxrcore.evaluate import load_model_uri

    return load_model_uri(uri, s3=settings.s3.as_options(settings.io_workers))


def _recover_promotion(store: Store, settings: PromoteSettings, champion: Mapping[str, Any]) -> dict[str, Any]:
    """An earlier attempt of this run promoted the challenger but stopped before recording the decision."""
    key, record = champion["decision"], champion["decision_record"]
    store.put_json(key, record)
    log.warning("promotion_recovered", challenger=champion["prefix"], decision=key)
    return _result(record, status="unchanged", store=store, task=settings.task, decision_key=key)


def run_promote(settings: PromoteSettings) -> dict[str, Any]:
    """Job entry of ``cxr promote``: compare, decide, record; promote only if the challenger wins.

    Both models predict the same images: the ``test`` rows (of real origin) of the challenger's dataset
    version, which keep their split from version to version; images the champion trained on (when it comes
    from another version) are left out. Retries are safe: a decision this run already recorded is returned as
    is.

    Returns:
        ``status`` (``created`` or ``unchanged``), ``decision`` (``promote``/``keep``), ``reason``,
        ``challenger_accuracy``, ``champion_accuracy``, ``delta``, ``p_value``, ``margin``, ``alpha``,
        ``holdout_images``, ``champion_uri`` and ``decision_uri``.

    Raises:
        ValueError: The challenger is not a committed classifier output, it was trained on another dataset
            version than the one asked for, the holdout is empty, or a model cannot be loaded.
    """
    from cxrcore.evaluate import predict_pixels  # TensorFlow: only the promote image needs it

    store = settings.open_store()
    root = store.uri.rstrip("/")
    prefix = _challenger_prefix(store, settings.challenger)
    previous = _previous_decision(store, settings.task, settings.run_id, prefix)
    if previous is not None:
        log.info("decision_unchanged", decision=previous[1]["decision"], record=previous[0])
        return _result(previous[1], status="unchanged", store=store, task=settings.task, decision_key=previous[0])
    champion = read_champion(store, settings.task)
    if champion is not None and champion.get("prefix") == prefix and champion.get("decision_record"):
        return _recover_promotion(store, settings, champion)

    try:
        marker = store.require_committed(prefix)
    except StoreError as exc:
        raise ValueError(f"The challenger is not a committed classifier output: {exc}") from exc
    if _MODEL_FILE not in marker.outputs:
        raise ValueError(f"{root}/{prefix} holds no {_MODEL_FILE}. Received: challenger={settings.challenger!r}")
    trained = store.get_json(join_key(prefix, _METRICS_FILE)) if _METRICS_FILE in marker.outputs else {}
    dataset = trained.get("dataset", settings.dataset)
    if dataset != settings.dataset:
        raise ValueError(
            f"The challenger was trained on dataset {dataset!r}. Received: dataset={settings.dataset!r}"
        )
    from cxrcore.data.dataset import resolve_version

    version = trained.get("dataset_version") or resolve_version(store, dataset, settings.dataset_version)
    if settings.dataset_version not in ("", "latest") and settings.dataset_version != version:
        raise ValueError(
            f"The challenger was trained on {dataset}/{version}, not on the version asked for. "
            f"Received: dataset_version={settings.dataset_version!r}"
        )
    holdout = _holdout(store, dataset, version, champion)
    log.info("holdout", **holdout.info)

    from cxrcore.metrics import binary_metrics

    challenger_model = _load(f"{root}/{prefix}", settings)
    challenger_probabilities = predict_pixels(challenger_model, holdout.images, batch_size=settings.batch_size)
    champion_probabilities = None
    champion_uri = None
    if champion is not None:
        champion_uri = f"{root}/{champion['prefix']}" if champion.get("prefix") else champion["model_uri"]
        champion_model = _load(champion_uri, settings)
        champion_probabilities = predict_pixels(champion_model, holdout.images, batch_size=settings.batch_size)
    comparison = decide(
        holdout.labels,
        (challenger_probabilities >= _THRESHOLD).astype(int),
        None if champion_probabilities is None else (champion_probabilities >= _THRESHOLD).astype(int),
        margin=settings.margin,
        alpha=settings.alpha,
    )

    decided = _utc_now()
    # Microseconds keep the records of one second in decision order (the run id only breaks exact ties).
    decision_key = join_key(decisions_prefix(settings.task), f"{decided:%Y%m%dT%H%M%S.%fZ}-{settings.run_id}.json")
    record = {
        "format": REGISTRY_FORMAT,
        "task": settings.task,
        "run_id": settings.run_id,
        "decided_at": _iso(decided),
        "decision": comparison.decision,
        "reason": comparison.reason,
        "margin": settings.margin,
        "alpha": settings.alpha,
        "delta": comparison.delta,
        "mcnemar": comparison.mcnemar,
        "holdout": holdout.info,
        "challenger": {
            "prefix": prefix,
            "model_uri": f"{root}/{prefix}",
            "model_sha256": marker.outputs[_MODEL_FILE]["sha256"],
            "run_id": prefix.split("/")[1],
            **{key: trained.get(key) for key in ("model", "condition", "seed", "dataset", "dataset_version")},
            "metrics": binary_metrics(holdout.labels, challenger_probabilities, threshold=_THRESHOLD),
        },
        "champion": None
        if champion is None
        else {
            **{key: champion.get(key) for key in ("prefix", "model_uri", "run_id", "dataset", "dataset_version",
                                                  "promoted_at")},
            "metrics": binary_metrics(holdout.labels, champion_probabilities, threshold=_THRESHOLD),
        },
    }
    if comparison.decision == "promote":
        new_champion = {
            "format": REGISTRY_FORMAT,
            "task": settings.task,
            "model_uri": f"{root}/{prefix}",
            "prefix": prefix,
            "model_sha256": record["challenger"]["model_sha256"],
            "run_id": record["challenger"]["run_id"],
            **{key: record["challenger"][key] for key in ("model", "condition", "seed")},
            "dataset": dataset,
            "dataset_version": version,
            "holdout_images": holdout.info["images"],
            "holdout": holdout.info,
            "metrics": record["challenger"]["metrics"],
            "training_metrics": {key: trained.get(key) for key in ("accuracy", "auc", "f1_macro", "n")},
            "reason": comparison.reason,
            "previous": None
            if champion is None
            else {key: record["champion"][key] for key in ("prefix", "run_id", "dataset_version")},
            "promoted_at": _iso(decided),
            "decision": decision_key,
            "decision_record": record,
        }
        # The champion first, the decision record last: a retry that finds the champion but no record
        # rewrites the record from the champion (see _recover_promotion).
        store.put_json(champion_key(settings.task), new_champion)
    store.put_json(decision_key, record)
    log.info(
        "promotion_decided",
        decision=comparison.decision,
        reason=comparison.reason,
        challenger=prefix,
        champion=champion_uri,
        challenger_accuracy=comparison.challenger_accuracy,
        champion_accuracy=comparison.champion_accuracy,
        p_value=comparison.p_value,
        record=decision_key,
    )
    return _result(record, status="created", store=store, task=settings.task, decision_key=decision_key)
