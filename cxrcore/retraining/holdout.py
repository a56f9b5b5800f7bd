"""The holdout champion and challenger are compared on: the real ``test`` rows of the challenger's version.

The ``test`` rows keep their split from version to version (the holdout never moves), so both models predict
the same images; images the champion trained on (when it comes from another dataset version) are left out
(docs/architecture.md#scheduled-retraining).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from cxrcore.data.dataset import dataset_prefix, load_dataset, manifest_from_csv
from cxrcore.logging import get_logger
from cxrcore.storage import Store, join_key

__all__ = ["HOLDOUT_SOURCES", "Holdout", "select_holdout"]

log = get_logger(__name__)

#: Manifest ``source`` values of the holdout: imported images (demo phantoms stand in for real X-rays in demos).
#: GAN images never enter a dataset version; any other source is left out of the comparison.
HOLDOUT_SOURCES: tuple[str, ...] = ("real", "demo")


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
