"""The holdout champion and challenger are compared on: a fixed, versioned set of real ``test`` images.

Every import adds about a fifth of each new batch to the ``test`` split, so "the test rows of the challenger's
version" grows at every decision. The promotion holdout is therefore chosen once per task, the first time
``cxr promote`` decides (:func:`promotion_holdout`): the real ``test`` rows of that challenger's version, stored
as ``registry/<task>/holdouts/<id>.json`` (their sha256, immutable) with the pointer
``registry/<task>/holdout.json``. Every later decision predicts exactly those images (``test`` rows keep their
split from version to version, so every later version holds them) and records the holdout's id and digest.
Images the champion trained on (when it comes from another dataset version) are left out and counted
(docs/architecture.md#scheduled-retraining). Registries from before the fixed holdout (no pointer) get one at
their next decision; their earlier records stay as they are.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cxrcore.data.dataset import dataset_prefix, load_dataset, manifest_from_csv
from cxrcore.layout import champion_key
from cxrcore.logging import get_logger
from cxrcore.storage import Store, StoreError, join_key

__all__ = [
    "HOLDOUT_FORMAT",
    "HOLDOUT_SOURCES",
    "Holdout",
    "holdout_key",
    "holdout_pointer_key",
    "promotion_holdout",
    "select_holdout",
]

log = get_logger(__name__)

#: Manifest ``source`` values of the holdout: imported images (demo phantoms stand in for real X-rays in demos).
#: GAN images never enter a dataset version; any other source is left out of the comparison.
HOLDOUT_SOURCES: tuple[str, ...] = ("real", "demo")
#: Layout of ``registry/<task>/holdouts/<id>.json``.
HOLDOUT_FORMAT = 1


@dataclasses.dataclass
class Holdout:
    """The images both models predict.

    Attributes:
        images: uint8 ``(n, size, size)`` pixels, in ``image_id`` order.
        labels: int ``(n,)`` 0/1 labels.
        info: JSON-ready description: dataset, version, split, sources, counts, exclusions, digest.
    """

    images: np.ndarray
    labels: np.ndarray
    info: dict[str, Any]


def _trained_on(store: Store, dataset: str, version: str) -> set[str] | None:
    """The sha256 of every image outside the test split of ``dataset/version``; ``None`` when it is missing."""
    key = join_key(dataset_prefix(dataset, version), "manifest.csv")
    if not store.exists(key):
        return None
    seen = manifest_from_csv(store.get_bytes(key), key=key)
    return set(seen.loc[seen["split"] != "test", "sha256"])


def select_holdout(store: Store, dataset: str, version: str, champion: Mapping[str, Any] | None) -> Holdout:
    """The ``test`` rows of real origin of ``dataset/version``, minus images the champion trained on.

    Args:
        store: The store.
        dataset: Dataset name.
        version: The challenger's dataset version.
        champion: The champion record, or ``None``.

    Returns:
        The :class:`Holdout`.

    Raises:
        ValueError: No holdout image is left.
    """
    data = load_dataset(store, dataset, version)
    manifest = data.manifest
    mask = ((manifest["split"] == "test") & manifest["source"].isin(HOLDOUT_SOURCES)).to_numpy()
    return _holdout(store, data, dataset, version, mask, champion)


def _holdout(store: Store, data: Any, dataset: str, version: str, mask: np.ndarray, champion: Mapping[str, Any] | None
             ) -> Holdout:
    """The rows of ``data`` that ``mask`` keeps, less images the champion trained on, as a :class:`Holdout`."""
    manifest = data.manifest
    excluded = 0
    champion_version = (champion or {}).get("dataset_version")
    if champion_version and champion_version != version and (champion or {}).get("dataset") == dataset:
        # A champion trained on another version (not an ancestor of this one) may have seen some of these images.
        trained = _trained_on(store, dataset, champion_version)
        if trained is None:
            log.warning("champion_dataset_missing", dataset=dataset, version=champion_version)
        else:
            leaked = manifest["sha256"].isin(trained).to_numpy() & mask
            excluded = int(leaked.sum())
            mask = mask & ~leaked
    rows = manifest[mask].sort_values("image_id", kind="mergesort")
    if rows.empty:
        raise ValueError(
            f"Dataset {dataset}/{version} has no holdout image (test split, source in {list(HOLDOUT_SOURCES)}). "
            f"Received: dataset_version={version!r}"
        )
    info = {
        "dataset": dataset,
        "dataset_version": version,
        "split": "test",
        "sources": list(HOLDOUT_SOURCES),
        "images": len(rows),
        "by_class": {str(name): int(count) for name, count in rows["class"].value_counts().sort_index().items()},
        "excluded_champion_training": excluded,
        "digest": hashlib.sha256("\n".join(sorted(rows["sha256"])).encode()).hexdigest(),
    }
    return Holdout(data.images[rows.index.to_numpy()], rows["label"].to_numpy().astype(int), info)


def holdout_pointer_key(task: str) -> str:
    """``registry/<task>/holdout.json``: which fixed holdout the task's decisions use."""
    return join_key(champion_key(task).rsplit("/", 1)[0], "holdout.json")


def holdout_key(task: str, holdout_id: str) -> str:
    """``registry/<task>/holdouts/<id>.json``: one fixed holdout (the sha256 of its images), never rewritten."""
    return join_key(champion_key(task).rsplit("/", 1)[0], "holdouts", f"{holdout_id}.json")


def promotion_holdout(
    store: Store, task: str, dataset: str, version: str, champion: Mapping[str, Any] | None
) -> Holdout:
    """The task's fixed promotion holdout, read from ``dataset/version``; chosen and stored on first use.

    Args:
        store: The store.
        task: The registry task.
        dataset: Dataset name (the challenger's).
        version: The challenger's dataset version.
        champion: The champion record, or ``None``.

    Returns:
        The :class:`Holdout`; its ``info`` adds ``holdout_id``, ``holdout_key`` and ``chosen_from_version``.

    Raises:
        ValueError: The fixed holdout belongs to another dataset, ``dataset/version`` lacks some of its images,
            or no holdout image is left.
        StoreError: The stored holdout is malformed.
    """
    fixed = _read_fixed(store, task)
    if fixed is None:
        fixed = _choose(store, task, dataset, version)
    if fixed["dataset"] != dataset:
        raise ValueError(
            f"The promotion holdout of task {task!r} ({store.url(fixed['key'])}) holds images of dataset "
            f"{fixed['dataset']!r}; a challenger of another dataset cannot be compared on it. Received: dataset="
            f"{dataset!r}"
        )
    data = load_dataset(store, dataset, version)
    wanted = set(fixed["sha256"])
    mask = data.manifest["sha256"].isin(wanted).to_numpy() & ~data.manifest["sha256"].duplicated().to_numpy()
    missing = len(wanted) - int(mask.sum())
    if missing:
        raise ValueError(
            f"Dataset {dataset}/{version} lacks {missing} of the {len(wanted)} images of the promotion holdout "
            f"{store.url(fixed['key'])} (chosen from {dataset}/{fixed['dataset_version']}); a version that is "
            f"not built on that one cannot be compared on it. Received: dataset_version={version!r}"
        )
    holdout = _holdout(store, data, dataset, version, mask, champion)
    holdout.info.update(
        holdout_id=fixed["id"],
        holdout_key=fixed["key"],
        holdout_digest=fixed["digest"],
        chosen_from_version=fixed["dataset_version"],
    )
    if holdout.info["excluded_champion_training"]:
        log.warning("holdout_images_excluded", holdout=fixed["id"], excluded=holdout.info["excluded_champion_training"])
    return holdout


def _read_fixed(store: Store, task: str) -> dict[str, Any] | None:
    """The fixed holdout the pointer names (with its ``key``), or ``None`` when the task has none yet."""
    pointer_key = holdout_pointer_key(task)
    if not store.exists(pointer_key):
        return None
    pointer = store.get_json(pointer_key)
    key = pointer.get("key") if isinstance(pointer, dict) else None
    if not isinstance(key, str):
        raise StoreError(f"{store.url(pointer_key)} does not name a holdout (no 'key')")
    content = store.get_json(key)
    required = ("id", "dataset", "dataset_version", "sha256", "digest")
    if not isinstance(content, dict) or any(name not in content for name in required):
        raise StoreError(f"{store.url(key)} is not a promotion holdout (needs {list(required)})")
    digest = hashlib.sha256("\n".join(sorted(content["sha256"])).encode()).hexdigest()
    if digest != content["digest"]:
        raise StoreError(f"{store.url(key)} does not match its recorded digest: the holdout was altered")
    return {**content, "key": key}


def _choose(store: Store, task: str, dataset: str, version: str) -> dict[str, Any]:
    """Chooses the task's holdout once: the real ``test`` rows of ``dataset/version``; stores it, then the pointer."""
    key = join_key(dataset_prefix(dataset, version), "manifest.csv")
    manifest = manifest_from_csv(store.get_bytes(key), key=key)
    rows = manifest[(manifest["split"] == "test") & manifest["source"].isin(HOLDOUT_SOURCES)]
    hashes = sorted(set(rows["sha256"]))
    if not hashes:
        raise ValueError(
            f"Dataset {dataset}/{version} has no holdout image (test split, source in {list(HOLDOUT_SOURCES)}). "
            f"Received: dataset_version={version!r}"
        )
    digest = hashlib.sha256("\n".join(hashes).encode()).hexdigest()
    holdout_id = digest[:16]
    content = {
        "format": HOLDOUT_FORMAT,
        "task": task,
        "id": holdout_id,
        "dataset": dataset,
        "dataset_version": version,
        "chosen_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sources": list(HOLDOUT_SOURCES),
        "images": len(hashes),
        "by_class": _by_class(rows.drop_duplicates("sha256")),
        "digest": digest,
        "sha256": hashes,
    }
    content_key = holdout_key(task, holdout_id)
    store.put_json(content_key, content)
    store.put_json(holdout_pointer_key(task), {"id": holdout_id, "key": content_key, "digest": digest})
    log.info("holdout_chosen", task=task, holdout=holdout_id, dataset=dataset, version=version, images=len(hashes))
    return {**content, "key": content_key}


def _by_class(rows: pd.DataFrame) -> dict[str, int]:
    return {str(name): int(count) for name, count in rows["class"].value_counts().sort_index().items()}
