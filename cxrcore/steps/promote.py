"""``cxr promote``: judge a challenger classifier against the registry's champion; promote only if it wins.

The step (docs/architecture.md#steps): plan (the challenger's prefix) -> skip when this run already decided
about it (an Argo retry), or finish a promotion a retry interrupted -> both models predict the same holdout
through :func:`cxrcore.inference.predict_pixels` -> :func:`cxrcore.retraining.decision.decide` -> record:
``champion.json`` first (only on promotion), the decision record last.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import numpy as np

from cxrcore.config import PromoteSettings
from cxrcore.data.dataset import resolve_version
from cxrcore.inference import load_model_uri, predict_pixels
from cxrcore.layout import champion_key, decisions_prefix
from cxrcore.logging import get_logger
from cxrcore.metrics import binary_metrics
from cxrcore.retraining.decision import Comparison, decide
from cxrcore.retraining.holdout import Holdout, promotion_holdout
from cxrcore.retraining.records import (
    Challenger,
    challenger_prefix,
    champion_entry,
    champion_record,
    decision_record,
    decision_summary,
    previous_decision,
    read_champion,
)
from cxrcore.storage import Store, StoreError, TransientStoreError, join_key

__all__ = ["run"]

log = get_logger(__name__)

_MODEL_FILE = "model.keras"
_METRICS_FILE = "metrics.json"
_THRESHOLD = 0.5


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _recover_promotion(store: Store, settings: PromoteSettings, champion: Mapping[str, Any]) -> dict[str, Any]:
    """An earlier attempt of this run promoted the challenger but stopped before recording the decision."""
    key, record = champion["decision"], champion["decision_record"]
    store.put_json(key, record)
    log.warning("promotion_recovered", challenger=champion["prefix"], decision=key)
    return decision_summary(record, status="unchanged", store=store, task=settings.task, decision_key=key)


def _challenger(store: Store, settings: PromoteSettings, prefix: str) -> Challenger:
    """The committed challenger output, checked against the dataset (and version) the settings ask for.

    Raises:
        ValueError: Not a committed classifier output with a model, or trained on another dataset or version.
    """
    try:
        marker = store.require_committed(prefix)
    except TransientStoreError:
        raise  # the store is down, the output may be fine: exit 75 and Argo retries
    except StoreError as exc:
        raise ValueError(f"The challenger is not a committed classifier output: {exc}") from exc
    if _MODEL_FILE not in marker.outputs:
        raise ValueError(f"{store.url(prefix)} holds no {_MODEL_FILE}. Received: challenger={settings.challenger!r}")
    trained = store.get_json(join_key(prefix, _METRICS_FILE)) if _METRICS_FILE in marker.outputs else {}
    dataset = trained.get("dataset", settings.dataset)
    if dataset != settings.dataset:
        raise ValueError(
            f"The challenger was trained on dataset {dataset!r}. Received: dataset={settings.dataset!r}"
        )
    version = trained.get("dataset_version") or resolve_version(store, dataset, settings.dataset_version)
    if settings.dataset_version not in ("", "latest") and settings.dataset_version != version:
        raise ValueError(
            f"The challenger was trained on {dataset}/{version}, not on the version asked for. "
            f"Received: dataset_version={settings.dataset_version!r}"
        )
    return Challenger(prefix, store.url(prefix), marker.outputs[_MODEL_FILE]["sha256"], trained, dataset, version)


def _probabilities(uri: str, holdout: Holdout, settings: PromoteSettings) -> np.ndarray:
    """P(PNEUMONIA) of every holdout image by the model at ``uri``."""
    model = load_model_uri(uri, s3=settings.s3.as_options(settings.io_workers))
    return predict_pixels(model, holdout.images, batch_size=settings.batch_size)


def _judge(
    store: Store, settings: PromoteSettings, challenger: Challenger, champion: Mapping[str, Any] | None
) -> tuple[Comparison, dict[str, Any], str]:
    """Both models predict the holdout and the rule decides; returns the comparison, the record and its key."""
    holdout = promotion_holdout(store, settings.task, challenger.dataset, challenger.dataset_version, champion)
    log.info("holdout", **holdout.info)
    challenger_probabilities = _probabilities(challenger.model_uri, holdout, settings)
    champion_probabilities = None
    if champion is not None:
        champion_probabilities = _probabilities(_champion_uri(store, champion), holdout, settings)
    comparison = decide(
        holdout.labels,
        (challenger_probabilities >= _THRESHOLD).astype(int),
        None if champion_probabilities is None else (champion_probabilities >= _THRESHOLD).astype(int),
        margin=settings.margin,
        alpha=settings.alpha,
    )
    decided = _utc_now()
    record = decision_record(
        task=settings.task,
        run_id=settings.run_id,
        decided=decided,
        comparison=comparison,
        margin=settings.margin,
        alpha=settings.alpha,
        holdout=holdout.info,
        challenger=challenger.entry(binary_metrics(holdout.labels, challenger_probabilities, threshold=_THRESHOLD)),
        champion=None
        if champion is None
        else champion_entry(champion, binary_metrics(holdout.labels, champion_probabilities, threshold=_THRESHOLD)),
    )
    # Microseconds keep the records of one second in decision order (the run id only breaks exact ties).
    decision_key = join_key(decisions_prefix(settings.task), f"{decided:%Y%m%dT%H%M%S.%fZ}-{settings.run_id}.json")
    return comparison, record, decision_key


def _champion_uri(store: Store, champion: Mapping[str, Any]) -> str:
    return store.url(champion["prefix"]) if champion.get("prefix") else champion["model_uri"]


def run(settings: PromoteSettings) -> dict[str, Any]:
    """Job entry of ``cxr promote``: compare, decide, record; promote only if the challenger wins.

    Both models predict the same images: the ``test`` rows (of real origin) of the challenger's dataset
    version, which keep their split from version to version; images the champion trained on (when it comes
    from another version) are left out. Retries are safe: a decision this run already recorded is returned as
    is.

    Args:
        settings: Store, task, challenger, margin and alpha.

    Returns:
        ``status`` (``created`` or ``unchanged``), ``decision`` (``promote``/``keep``), ``reason``,
        ``challenger_accuracy``, ``champion_accuracy``, ``delta``, ``p_value``, ``margin``, ``alpha``,
        ``holdout_images``, ``champion_uri`` and ``decision_uri``.

    Raises:
        ValueError: The challenger is not a committed classifier output, it was trained on another dataset
            version than the one asked for, the holdout is empty, or a model cannot be loaded.
    """
    store = settings.open_store()
    prefix = challenger_prefix(store, settings.challenger)
    previous = previous_decision(store, settings.task, settings.run_id, prefix)
    if previous is not None:
        log.info("decision_unchanged", decision=previous[1]["decision"], record=previous[0])
        return decision_summary(previous[1], status="unchanged", store=store, task=settings.task,
                                decision_key=previous[0])
    champion = read_champion(store, settings.task)
    if champion is not None and champion.get("prefix") == prefix and champion.get("decision_record"):
        return _recover_promotion(store, settings, champion)

    challenger = _challenger(store, settings, prefix)
    comparison, record, decision_key = _judge(store, settings, challenger, champion)
    if comparison.decision == "promote":
        # The champion first, the decision record last: a retry that finds the champion but no record
        # rewrites the record from the champion (see _recover_promotion).
        store.put_json(champion_key(settings.task), champion_record(record, challenger, decision_key=decision_key))
    store.put_json(decision_key, record)
    log.info(
        "promotion_decided",
        decision=comparison.decision,
        reason=comparison.reason,
        challenger=prefix,
        champion=None if champion is None else _champion_uri(store, champion),
        challenger_accuracy=comparison.challenger_accuracy,
        champion_accuracy=comparison.champion_accuracy,
        p_value=comparison.p_value,
        record=decision_key,
    )
    return decision_summary(record, status="created", store=store, task=settings.task, decision_key=decision_key)
