"""The champion registry's records: the champion in service, one decision per promotion run, and the step result.

``registry/<task>/champion.json`` changes only on promotion; every decision, promote or keep, and its reason is
kept in ``registry/<task>/decisions/`` (docs/architecture.md#scheduled-retraining). Writes are single ``put``
calls (atomic on S3 and on ``file://``); the champion is a read-modify-write object, so the workflow holds the
``cxr-retrain`` mutex. The builders here are pure; the readers only read.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from cxrcore.layout import champion_key, decisions_prefix, parse_classifier_prefix, run_id_of
from cxrcore.retraining.decision import Comparison
from cxrcore.storage import Store, StoreError, normalize_key

__all__ = [
    "REGISTRY_FORMAT",
    "Challenger",
    "challenger_prefix",
    "champion_entry",
    "champion_record",
    "decision_record",
    "decision_summary",
    "iso_time",
    "previous_decision",
    "read_champion",
]

#: Version of the champion and decision records.
REGISTRY_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class Challenger:
    """A committed classifier output judged against the champion.

    Attributes:
        prefix: Its store-relative prefix ``runs/<run_id>/classifiers/<condition>/<model>/seed-<seed>``.
        model_uri: The prefix as a URI of the store.
        model_sha256: sha256 of its ``model.keras`` (from its marker).
        trained: Its ``metrics.json`` (``{}`` when it has none).
        dataset: The dataset it was trained on.
        dataset_version: The version it was trained on.
    """

    prefix: str
    model_uri: str
    model_sha256: str
    trained: dict[str, Any]
    dataset: str
    dataset_version: str

    def entry(self, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """The decision record's ``challenger`` entry, with its ``metrics`` on the holdout."""
        return {
            "prefix": self.prefix,
            "model_uri": self.model_uri,
            "model_sha256": self.model_sha256,
            "run_id": run_id_of(self.prefix),
            **{key: self.trained.get(key) for key in ("model", "condition", "seed", "dataset", "dataset_version")},
            "metrics": dict(metrics),
        }


def iso_time(moment: dt.datetime) -> str:
    """``moment`` as recorded: ``2026-01-01T03:05:12Z``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


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
        raise StoreError(f"{store.url(key)} is not a champion record (no prefix or model_uri)")
    return record


def challenger_prefix(store: Store, challenger: str) -> str:
    """The challenger's store-relative prefix, from a key or a URI inside the store.

    Raises:
        ValueError: The URI lies outside the store, or does not name a classifier output.
    """
    root = store.uri.rstrip("/") + "/"
    text = challenger.strip()
    if "://" in text:
        if not text.startswith(root):
            raise ValueError(
                f"challenger must lie inside the store {store.uri}. Received: challenger={challenger!r}"
            )
        text = text[len(root) :]
    try:
        parse_classifier_prefix(text)
    except ValueError as exc:
        raise ValueError(
            "challenger must name a classifier output runs/<run_id>/classifiers/<condition>/<model>/seed-<seed>. "
            f"Received: challenger={challenger!r}"
        ) from exc
    return normalize_key(text)


def previous_decision(store: Store, task: str, run_id: str, prefix: str) -> tuple[str, dict[str, Any]] | None:
    """The decision run ``run_id`` already recorded about ``prefix`` (an Argo retry), as ``(key, record)``."""
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


def decision_record(
    *,
    task: str,
    run_id: str,
    decided: dt.datetime,
    comparison: Comparison,
    margin: float,
    alpha: float,
    holdout: Mapping[str, Any],
    challenger: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The record of one decision (``registry/<task>/decisions/<time>-<run_id>.json``).

    Args:
        task: The registry task.
        run_id: The deciding run.
        decided: When (UTC).
        comparison: The :func:`cxrcore.retraining.decision.decide` result.
        margin: Accuracy gain required.
        alpha: McNemar's significance level.
        holdout: The holdout's ``info``.
        challenger: :meth:`Challenger.entry`.
        champion: :func:`champion_entry` of the champion, or ``None``.

    Returns:
        The JSON-ready record.
    """
    return {
        "format": REGISTRY_FORMAT,
        "task": task,
        "run_id": run_id,
        "decided_at": iso_time(decided),
        "decision": comparison.decision,
        "reason": comparison.reason,
        "margin": margin,
        "alpha": alpha,
        "delta": comparison.delta,
        "mcnemar": comparison.mcnemar,
        "holdout": dict(holdout),
        "challenger": dict(challenger),
        "champion": None if champion is None else dict(champion),
    }


def champion_entry(champion: Mapping[str, Any], metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The decision record's ``champion`` entry: the champion record's identity and its ``metrics`` on the holdout."""
    keys = ("prefix", "model_uri", "run_id", "dataset", "dataset_version", "promoted_at")
    return {**{key: champion.get(key) for key in keys}, "metrics": dict(metrics)}


def champion_record(record: Mapping[str, Any], challenger: Challenger, *, decision_key: str) -> dict[str, Any]:
    """The new ``champion.json`` when ``record`` promotes ``challenger``; it embeds the decision record.

    Args:
        record: The decision record (``decision`` is ``promote``).
        challenger: The promoted challenger.
        decision_key: Where the decision record is written.

    Returns:
        The JSON-ready champion record.
    """
    entry = record["challenger"]
    previous = record["champion"]
    previous_keys = ("prefix", "run_id", "dataset_version")
    return {
        "format": REGISTRY_FORMAT,
        "task": record["task"],
        "model_uri": challenger.model_uri,
        "prefix": challenger.prefix,
        "model_sha256": entry["model_sha256"],
        "run_id": entry["run_id"],
        **{key: entry[key] for key in ("model", "condition", "seed")},
        "dataset": challenger.dataset,
        "dataset_version": challenger.dataset_version,
        "holdout_images": record["holdout"]["images"],
        "holdout": record["holdout"],
        "metrics": entry["metrics"],
        "training_metrics": {key: challenger.trained.get(key) for key in ("accuracy", "auc", "f1_macro", "n")},
        "reason": record["reason"],
        "previous": None if previous is None else {key: previous[key] for key in previous_keys},
        "promoted_at": record["decided_at"],
        "decision": decision_key,
        "decision_record": record,
    }


def decision_summary(record: Mapping[str, Any], *, status: str, store: Store, task: str, decision_key: str) -> dict:
    """The promote step's result (also its Argo outputs ``decision`` and ``reason``) from a decision record."""
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
        "holdout_id": record["holdout"].get("holdout_id"),  # None in records from before the fixed holdout
        "champion_uri": store.url(champion_key(task)),
        "decision_uri": store.url(decision_key),
    }
