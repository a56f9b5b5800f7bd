"""The stored dataset format: an immutable version = manifest + a few large shards + ``_SUCCESS``.

Layout under the store root (docs/architecture.md#store-layout)::

    datasets/<name>/<version>/manifest.csv   one row per image (columns: MANIFEST_COLUMNS)
                              rejects.csv    files refused at import, with their reason
                              duplicates.csv byte-identical copies that were dropped
                              dataset.json   counts, split strategy and seed, source, image size
                              shards/shard-00000.npy ...  uint8 arrays (n, size, size), grayscale
                              _SUCCESS       marker with the sha256 of every object above
    datasets/<name>/latest.json              {"version": ...}: the newest committed version

Shards are plain ``.npy`` arrays (``numpy.load(allow_pickle=False)``): lossless, decoded once at import, readable
without TensorFlow, memory-mappable from ``file://`` stores. Row ``i`` of the manifest with ``shard=s`` and
``shard_index=j`` is ``shards/s[j]``.

This module reads the format; :mod:`cxrcore.data.writer` writes it (manifest rows, shard names, ``dataset.json``)
for the import and for synthesis alike, and the keys come from :mod:`cxrcore.layout`.
"""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any

import numpy as np
import pandas as pd

from cxrcore.layout import dataset_prefix, latest_key
from cxrcore.storage import MARKER_NAME, Marker, Store, StoreError, TransientStoreError, join_key, sha256_bytes
from cxrcore.vocab import CLASS_NAMES

__all__ = [
    "CLASS_NAMES",
    "DATASET_FORMAT",
    "MANIFEST_COLUMNS",
    "OPTIONAL_MANIFEST_COLUMNS",
    "Dataset",
    "DatasetError",
    "dataset_prefix",
    "decode_shard",
    "encode_shard",
    "latest_key",
    "load_dataset",
    "load_prefix",
    "manifest_from_csv",
    "manifest_to_csv",
    "resolve_version",
]

DATASET_FORMAT = 1
MANIFEST_COLUMNS: tuple[str, ...] = (
    "image_id",
    "sha256",
    "pixel_sha256",
    "class",
    "label",
    "patient_id",
    "patient_id_parsed",
    "source",
    "source_path",
    "source_split",
    "split",
    "orig_width",
    "orig_height",
    "orig_mode",
    "orig_format",
    "width",
    "height",
    "shard",
    "shard_index",
    "modality",
    "view",
    "photometric",
)
#: Columns added after the format's first release (DICOM facts; ``""`` for other images): a manifest written
#: without them reads, and writes, with them empty.
OPTIONAL_MANIFEST_COLUMNS: tuple[str, ...] = ("modality", "view", "photometric")


class DatasetError(ValueError):
    """A dataset version is missing, uncommitted, or inconsistent with its manifest."""


def encode_shard(pixels: np.ndarray) -> bytes:
    """Serialises a ``(n, h, w)`` uint8 array as ``.npy`` bytes."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3:
        raise ValueError(f"Shard must be a uint8 array (n, h, w). Received: shape={pixels.shape}, dtype={pixels.dtype}")
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(pixels), allow_pickle=False)
    return buffer.getvalue()


def decode_shard(data: bytes, *, key: str) -> np.ndarray:
    """Parses ``.npy`` shard bytes; refuses pickles and anything but a uint8 (n, h, w) array."""
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise DatasetError(f"Shard {key} is not a valid .npy array: {exc}") from exc
    if array.dtype != np.uint8 or array.ndim != 3:
        raise DatasetError(f"Shard {key} must hold uint8 (n, h, w). Received: shape={array.shape}, dtype={array.dtype}")
    return array


def _with_optional_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every :data:`OPTIONAL_MANIFEST_COLUMNS` it lacks added, empty."""
    absent = [column for column in OPTIONAL_MANIFEST_COLUMNS if column not in frame.columns]
    return frame.assign(**{column: "" for column in absent}) if absent else frame


def manifest_to_csv(frame: pd.DataFrame) -> bytes:
    """Manifest rows as CSV bytes, columns in :data:`MANIFEST_COLUMNS` order (optional ones empty when absent)."""
    frame = _with_optional_columns(frame)
    missing = [column for column in MANIFEST_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"Manifest lacks columns {missing}")
    return frame.loc[:, list(MANIFEST_COLUMNS)].to_csv(index=False, lineterminator="\n").encode()


def manifest_from_csv(data: bytes, *, key: str) -> pd.DataFrame:
    """Parses manifest CSV bytes (string columns stay strings: patient ids like ``IM-0115`` are not numbers)."""
    try:
        frame = pd.read_csv(
            io.BytesIO(data),
            dtype={
                "image_id": str,
                "sha256": str,
                "pixel_sha256": str,
                "class": str,
                "patient_id": str,
                "source": str,
                "source_path": str,
                "source_split": str,
                "split": str,
                "orig_mode": str,
                "orig_format": str,
                "shard": str,
                "modality": str,
                "view": str,
                "photometric": str,
            },
            keep_default_na=False,
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise DatasetError(f"Manifest {key} is not valid CSV: {exc}") from exc
    frame = _with_optional_columns(frame)
    missing = [column for column in MANIFEST_COLUMNS if column not in frame.columns]
    if missing:
        raise DatasetError(f"Manifest {key} lacks columns {missing}")
    return frame


@dataclasses.dataclass
class Dataset:
    """One loaded dataset version.

    Attributes:
        name: Dataset name.
        version: Version id.
        manifest: One row per image, in the order of ``images``.
        images: uint8 array ``(n, size, size)``, grayscale, aligned with ``manifest``.
        info: Content of ``dataset.json``.
        marker: The version's ``_SUCCESS`` marker.
    """

    name: str
    version: str
    manifest: pd.DataFrame
    images: np.ndarray
    info: dict[str, Any]
    marker: Marker

    def subset(self, split: str) -> tuple[np.ndarray, pd.DataFrame]:
        """Images and manifest rows of one split (``train``, ``test`` or ``val``)."""
        mask = (self.manifest["split"] == split).to_numpy()
        return self.images[mask], self.manifest[mask].reset_index(drop=True)


def resolve_version(store: Store, name: str, version: str | None = None) -> str:
    """Returns ``version``, or the newest committed one when it is ``None`` or ``"latest"``."""
    if version not in (None, "", "latest"):
        dataset_prefix(name, version)
        return version
    key = latest_key(name)
    if not store.exists(key):
        raise DatasetError(f"Dataset {name!r} has no versions in {store.uri} (no {key}); import it first")
    pointer = store.get_json(key)
    found = pointer.get("version") if isinstance(pointer, dict) else None
    if not isinstance(found, str):
        raise DatasetError(f"{store.url(key)} does not name a version")
    dataset_prefix(name, found)
    return found


def load_prefix(
    store: Store, prefix: str, *, verify: bool = True, verify_pixels: bool = False
) -> tuple[pd.DataFrame, np.ndarray, dict, Marker]:
    """Loads any committed output in the dataset format (a dataset version, a run's synthetic images).

    Args:
        store: The store.
        prefix: Committed prefix holding ``manifest.csv``, ``dataset.json`` and ``shards/``.
        verify: Check every object against the sha256 in the marker (covers every pixel of every shard).
        verify_pixels: Also check each image against its own ``pixel_sha256`` (an audit: it proves the
            manifest row and the shard slot agree, at ~0.2 ms per image).

    Returns:
        ``(manifest, images, info, marker)`` with ``images`` uint8 ``(n, size, size)`` aligned with ``manifest``.

    Raises:
        DatasetError: Uncommitted or inconsistent output.
    """
    try:
        marker = store.require_committed(prefix)
    except TransientStoreError:
        raise  # the store is down, the output may be fine: exit 75 and Argo retries
    except StoreError as exc:
        raise DatasetError(str(exc)) from exc

    def read(rel: str) -> bytes:
        expected = marker.outputs.get(rel)
        if expected is None:
            raise DatasetError(f"{store.url(join_key(prefix, MARKER_NAME))} does not list {rel}")
        return store.get_bytes(join_key(prefix, rel), sha256=expected["sha256"] if verify else None)

    manifest = manifest_from_csv(read("manifest.csv"), key=f"{prefix}/manifest.csv")
    info = json.loads(read("dataset.json"))
    size = int(info["image_size"])
    images = np.zeros((len(manifest), size, size), dtype=np.uint8)
    for shard in sorted(set(manifest["shard"])):
        rows = np.flatnonzero((manifest["shard"] == shard).to_numpy())
        array = decode_shard(read(join_key("shards", shard)), key=f"{prefix}/shards/{shard}")
        indices = manifest["shard_index"].to_numpy()[rows]
        if array.shape[1:] != (size, size) or indices.max(initial=-1) >= len(array):
            raise DatasetError(f"Shard {shard} of {prefix} does not match its manifest")
        images[rows] = array[indices]
    if verify_pixels:
        for row, digest in enumerate(manifest["pixel_sha256"]):
            if sha256_bytes(images[row].tobytes()) != digest:
                raise DatasetError(f"Image {manifest['image_id'][row]} of {prefix} does not match its pixel hash")
    return manifest, images, info, marker


def load_dataset(
    store: Store, name: str, version: str | None = None, *, verify: bool = True, verify_pixels: bool = False
) -> Dataset:
    """Loads a committed dataset version into memory.

    Args:
        store: The store holding ``datasets/``.
        name: Dataset name.
        version: Version id, or ``None``/``"latest"`` for the newest.
        verify: Check every object against the sha256 in the marker.
        verify_pixels: Also check every image against its manifest ``pixel_sha256``.

    Returns:
        The :class:`Dataset`.

    Raises:
        DatasetError: Missing, uncommitted or inconsistent version.
    """
    version = resolve_version(store, name, version)
    manifest, images, info, marker = load_prefix(
        store, dataset_prefix(name, version), verify=verify, verify_pixels=verify_pixels
    )
    return Dataset(name=name, version=version, manifest=manifest, images=images, info=info, marker=marker)
