"""Writing outputs in the dataset format: manifest rows, shard names and ``dataset.json``, in one place.

Both producers of the format use it (docs/architecture.md#store-layout): the import of real X-rays
(:mod:`cxrcore.data.ingest`, ``datasets/<name>/<version>/``) and synthesis (``runs/<run_id>/synthetic/<CLASS>/``).
What the reader expects (:func:`cxrcore.data.dataset.load_prefix`) is therefore written by one class:

* :class:`DatasetWriter` turns each image and its :class:`ImageRecord` into one manifest row of
  :data:`~cxrcore.data.dataset.MANIFEST_COLUMNS` (``image_id``, ``label``, ``pixel_sha256``, ``width``,
  ``height``, ``shard`` and ``shard_index`` are derived here, never by a producer) and packs the pixels into
  ``shards/shard-NNNNN.npy`` files of ``shard_size`` images in a local staging folder;
* :func:`dataset_info` builds the fields every ``dataset.json`` shares (counts, splits, shards, format);
* :meth:`DatasetWriter.commit` stages the shards, ``manifest.csv`` and ``dataset.json`` in a store transaction.

Typical use::

    writer = DatasetWriter(staging_dir, image_size=128, shard_size=1024)
    for pixels, record in images:
        writer.add(pixels, record)
    writer.flush()
    manifest = writer.manifest()
    info = dataset_info(manifest, name="demo", image_size=128, shards=writer.shard_names, synthetic=False,
                        synthetic_info=None, extra={"version": "v1"})
    with store.commit(prefix, inputs=inputs) as tx:
        writer.commit(tx, manifest, info)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrcore import __version__
from cxrcore.data.dataset import DATASET_FORMAT, MANIFEST_COLUMNS, encode_shard, manifest_to_csv
from cxrcore.data.splits import split_summary
from cxrcore.logging import progress
from cxrcore.storage import Transaction, join_key, sha256_bytes
from cxrcore.vocab import CLASS_NAMES

__all__ = [
    "SHARDS_DIR",
    "DatasetWriter",
    "ImageRecord",
    "dataset_info",
    "listed_shards",
    "shard_name",
    "shard_names",
]

#: The folder of an output that holds its shards.
SHARDS_DIR = "shards"


def shard_name(index: int) -> str:
    """The file name of shard ``index``: ``shard-00000.npy``, ``shard-00001.npy``, ..."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"A shard index must be a non-negative integer. Received: index={index!r}")
    return f"shard-{index:05d}.npy"


def shard_names(count: int) -> list[str]:
    """The names of an output's ``count`` shards, in order (the only names the format allows)."""
    return [shard_name(index) for index in range(count)]


def listed_shards(outputs: Mapping[str, Any]) -> list[str]:
    """The shard file names a marker's ``outputs`` list (``shards/<name>`` keys), sorted."""
    return sorted(key.split("/", 1)[1] for key in outputs if key.startswith(f"{SHARDS_DIR}/"))


@dataclasses.dataclass(frozen=True)
class ImageRecord:
    """Where one image came from: the manifest columns a producer knows and the writer cannot derive.

    Attributes:
        sha256: sha256 of the image's source bytes (the file imported, or the PNG of a generated image);
            its first 16 hex digits are the ``image_id``.
        class_name: ``NORMAL`` or ``PNEUMONIA``.
        patient_id: The patient (or ``synthetic-<run>-<CLASS>``).
        patient_id_parsed: Whether ``patient_id`` came from a known file-naming scheme.
        source: ``real``, ``demo`` or ``synthetic``.
        source_path: Where in the source the image was found.
        source_split: The split the source's folders gave it, or ``""``.
        orig_width: Width before resizing.
        orig_height: Height before resizing.
        orig_mode: Pillow mode of the original (``L``, ``RGB``, ``I;16``, ...).
        orig_format: Its format (``JPEG``, ``PNG``, ``DICOM``, ``GAN``, ...).
        split: ``train``/``test``/``val``, or ``None`` when the producer assigns splits after every row exists.
        modality: DICOM ``Modality`` (``CR``, ``DX``, ...), ``""`` for other images.
        view: DICOM ``ViewPosition`` (``PA``, ``AP``, ...), ``""`` for other images or when the file has none.
        photometric: DICOM ``PhotometricInterpretation`` (``MONOCHROME1``, ``MONOCHROME2``), ``""`` for others.
    """

    sha256: str
    class_name: str
    patient_id: str
    patient_id_parsed: bool
    source: str
    source_path: str
    source_split: str
    orig_width: int
    orig_height: int
    orig_mode: str
    orig_format: str
    split: str | None = None
    modality: str = ""
    view: str = ""
    photometric: str = ""


class DatasetWriter:
    """Collects the images of one output: manifest rows in memory, pixels in shard files under ``directory``.

    Args:
        directory: Local staging folder of the shard files (exists; the caller owns and removes it).
        image_size: Side of every stored image in pixels.
        shard_size: Images per shard (the last one may hold fewer).
        existing_shards: Shards the output already holds (an incremental import's base version), already placed
            in ``directory`` by the caller; new shards are numbered after them.

    Raises:
        ValueError: A size is not positive, or ``existing_shards`` are not ``shard_names(len(existing_shards))``.
    """

    def __init__(
        self, directory: Path, *, image_size: int, shard_size: int, existing_shards: Sequence[str] = ()
    ) -> None:
        for name, value in (("image_size", image_size), ("shard_size", shard_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        if list(existing_shards) != shard_names(len(existing_shards)):
            raise ValueError(
                f"Existing shards must be named {shard_name(0)}, {shard_name(1)}, ... in order. "
                f"Received: existing_shards={list(existing_shards)[:5]}"
            )
        self.directory = Path(directory)
        self.image_size = image_size
        self.shard_size = shard_size
        self.rows: list[dict[str, Any]] = []
        self.shard_names: list[str] = list(existing_shards)
        self._buffer: list[np.ndarray] = []

    def add(self, pixels: np.ndarray, record: ImageRecord) -> dict[str, Any]:
        """Adds one image; returns its manifest row (every column of ``MANIFEST_COLUMNS``, in that order).

        Args:
            pixels: uint8 ``(image_size, image_size)`` grayscale pixels.
            record: Its provenance.

        Raises:
            ValueError: The pixels are not uint8 of the writer's size, or the class is unknown.
        """
        if pixels.dtype != np.uint8 or pixels.shape != (self.image_size, self.image_size):
            raise ValueError(
                f"Pixels must be uint8 ({self.image_size}, {self.image_size}). "
                f"Received: shape={pixels.shape}, dtype={pixels.dtype}"
            )
        if record.class_name not in CLASS_NAMES:
            raise ValueError(f"class_name must be one of {CLASS_NAMES}. Received: class_name={record.class_name!r}")
        row = {
            "image_id": record.sha256[:16],
            "sha256": record.sha256,
            "pixel_sha256": sha256_bytes(np.ascontiguousarray(pixels).tobytes()),
            "class": record.class_name,
            "label": CLASS_NAMES.index(record.class_name),
            "patient_id": record.patient_id,
            "patient_id_parsed": record.patient_id_parsed,
            "source": record.source,
            "source_path": record.source_path,
            "source_split": record.source_split,
            "split": record.split,
            "orig_width": record.orig_width,
            "orig_height": record.orig_height,
            "orig_mode": record.orig_mode,
            "orig_format": record.orig_format,
            "width": self.image_size,
            "height": self.image_size,
            "shard": shard_name(len(self.shard_names)),
            "shard_index": len(self._buffer),
            "modality": record.modality,
            "view": record.view,
            "photometric": record.photometric,
        }
        self.rows.append(row)
        self._buffer.append(pixels)
        if len(self._buffer) >= self.shard_size:
            self.flush()
        return row

    def flush(self) -> list[str]:
        """Writes the images added since the last full shard as a shard file; returns every shard name."""
        if self._buffer:
            name = shard_name(len(self.shard_names))
            (self.directory / name).write_bytes(encode_shard(np.stack(self._buffer)))
            self.shard_names.append(name)
            self._buffer.clear()
        return list(self.shard_names)

    def shard_path(self, name: str) -> Path:
        """The staged file of shard ``name`` (where an existing shard is placed before :meth:`commit`)."""
        return self.directory / name

    def manifest(self) -> pd.DataFrame:
        """The rows added so far, one per image, columns in ``MANIFEST_COLUMNS`` order."""
        return pd.DataFrame(self.rows, columns=list(MANIFEST_COLUMNS))

    def commit(
        self,
        tx: Transaction,
        manifest: pd.DataFrame,
        info: Mapping[str, Any],
        *,
        logger: Any = None,
        upload_event: str = "dataset_upload",
    ) -> None:
        """Stages every shard, ``manifest.csv`` and ``dataset.json`` in an open store transaction.

        Args:
            tx: The transaction of the output prefix.
            manifest: The rows to publish (the writer's, possibly merged with a base version's and given their
                splits); every shard it names must be one of the writer's.
            info: The ``dataset.json`` content (see :func:`dataset_info`).
            logger: When given, shard uploads are logged as ``upload_event`` progress events.
            upload_event: Name of those progress events.

        Raises:
            ValueError: Images are still buffered (call :meth:`flush`), or the manifest names an unknown shard.
        """
        if self._buffer:
            raise ValueError(f"{len(self._buffer)} images are not in a shard yet; call flush() before commit()")
        unknown = sorted(set(manifest["shard"]) - set(self.shard_names))
        if unknown:
            raise ValueError(f"The manifest names shards the writer does not hold. Received: shards={unknown[:5]}")
        names = self.shard_names
        if logger is not None:
            names = progress(names, total=len(names), event=upload_event, logger=logger)
        for name in names:
            tx.put_file(join_key(SHARDS_DIR, name), self.shard_path(name))
        tx.put_bytes("manifest.csv", manifest_to_csv(manifest))
        tx.put_json("dataset.json", dict(info))


def dataset_info(
    manifest: pd.DataFrame,
    *,
    name: str,
    image_size: int,
    shards: Sequence[str],
    synthetic: bool,
    synthetic_info: Any,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``dataset.json`` of an output: the fields every output in the format has, plus ``extra``.

    Args:
        manifest: Every row of the output, with its ``split``.
        name: The output's name (``chest-xray``, ``synthetic-<run>-<CLASS>``).
        image_size: Side of the stored images.
        shards: Every shard name, in order.
        synthetic: Whether any image is synthetic (demo phantoms or generated).
        synthetic_info: What made them (the demo marker, the generator), or ``None``.
        extra: Producer-specific fields (``version``, ``source``, ``run_id``, ``class``, ...); they may not replace
            a shared field.

    Returns:
        A JSON-ready dict (written with sorted keys, so its order is irrelevant).

    Raises:
        ValueError: A producer field has the name of a shared one.
    """
    info = {
        "name": name,
        "format": DATASET_FORMAT,
        "synthetic": synthetic,
        "synthetic_info": synthetic_info,
        "image_size": image_size,
        "channels": 1,
        "images": int(len(manifest)),
        "counts": {class_name: int((manifest["class"] == class_name).sum()) for class_name in CLASS_NAMES},
        "splits": split_summary(manifest),
        "shards": list(shards),
        "cxrcore_version": __version__,
    }
    extra = dict(extra or {})
    clashing = sorted(set(extra) & set(info))
    if clashing:
        raise ValueError(f"dataset.json fields {clashing} are shared ones, set by name. Received: extra={clashing}")
    return {**info, **extra}
