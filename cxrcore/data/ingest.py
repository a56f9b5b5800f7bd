"""Import X-rays into an immutable dataset version (``cxr data import``, ``cxr-prepare``).

Sources: the Kaggle ``chest_xray/`` folder (``train/ test/ val/`` with ``NORMAL/ PNEUMONIA/``), its zip, a plain
``NORMAL/ PNEUMONIA/`` folder, or an ``s3://`` prefix. Every file is read once, hashed (sha256 of its bytes),
decoded in any mode to 8-bit grayscale at the dataset's stored resolution, and written into a few large shards.
DICOM files (any name, :mod:`cxrcore.data.dicom`) mix with the others: views outside ``dicom_views`` are rejected,
their patient is a keyed hash of ``PatientID`` (``patient_salt``, required then), and no other tag is kept.
Byte-identical copies are dropped and reported; bad files (empty, truncated, not an image, decompression bomb,
outside a class folder, unsafe archive member) are listed with their reason and the import goes on.

The version id is a hash of the content and the import settings, so re-importing identical input finds its
version already committed and changes nothing.

Incremental imports (scheduled retraining, :mod:`cxrcore.registry`): ``base_version`` builds the new version on
top of an existing one — every row and image of the base, each keeping its split (so its test rows, the holdout
champion and challenger are compared on, never move), plus the source's new images, deduplicated by sha256
against the base. New rows are split by the configured strategy among themselves; a patient the base already
holds keeps its side (except with the ``official`` split, where the source's folders decide). ``batches``
restricts the import to ``<source>/<batch>/`` subtrees, each of which must hold the uploader's ``_SUCCESS``; the
batches are appended to ``registry/<name>/ledger.json`` once the version is committed, and a batch the ledger
already lists is never imported again.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import hashlib
import json
import os
import posixpath
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from cxrcore import __version__
from cxrcore.config import PrepareSettings, SettingsError, identity, parse_batches
from cxrcore.data.dataset import DATASET_FORMAT, DatasetError, manifest_from_csv, resolve_version
from cxrcore.data.demo import parse_demo_uri, write_demo_dataset
from cxrcore.data.dicom import view_problem
from cxrcore.data.images import DecodedImage, ImageRejected, decode_image
from cxrcore.data.sources import (
    PatientId,
    SourceFile,
    SourceRejection,
    classify_path,
    open_source,
    parse_patient_id,
)
from cxrcore.data.splits import assign_split, patients_on_both_sides
from cxrcore.data.writer import SHARDS_DIR, DatasetWriter, ImageRecord, dataset_info, listed_shards, shard_names
from cxrcore.layout import dataset_prefix, latest_key
from cxrcore.logging import get_logger, progress
from cxrcore.layout import ledger_key
from cxrcore.retraining.ledger import append_to_ledger, read_ledger
from cxrcore.storage import MARKER_NAME, Marker, Store, StoreError, TransientStoreError, join_key

__all__ = ["DEMO_MARKER", "DEMO_SCHEME", "ImportResult", "import_dataset", "job_inputs", "parse_demo_uri", "run"]

log = get_logger(__name__)

DEMO_MARKER = "DEMO_SYNTHETIC.json"
DEMO_SCHEME = "demo://"
_IGNORED_NAMES = {DEMO_MARKER.lower(), "readme.txt", "readme.md", "license", "license.txt", "dataset.json"}
#: Identity settings that are not part of the version id: the name is the level above the version in the store,
#: and the file limits act only through which images were imported (the id hashes every image).
_OUTSIDE_VERSION_ID = frozenset({"name", "max_image_pixels", "max_file_mb"})


@dataclasses.dataclass
class ImportResult:
    """What an import did; ``summary()`` is the JSON printed by ``cxr data import``."""

    name: str
    version: str
    uri: str
    status: str  # "created" or "unchanged"
    info: dict[str, Any]
    rejects: list[dict[str, str]]
    duplicates: list[dict[str, str]]
    batch_counts: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)

    def summary(self, *, max_listed: int = 200) -> dict[str, Any]:
        """A JSON-ready summary: counts per class and split, rejected files with reasons, duplicates."""
        return {
            "dataset": self.name,
            "version": self.version,
            "uri": self.uri,
            "status": self.status,
            **{key: self.info[key] for key in _SUMMARY_KEYS if key in self.info},
            "rejected": self.rejects[:max_listed],
            "rejected_listed": min(len(self.rejects), max_listed),
            "duplicates": self.duplicates[:max_listed],
            "duplicates_listed": min(len(self.duplicates), max_listed),
        }


_SUMMARY_KEYS = (
    "synthetic",
    "source",
    "image_size",
    "files_seen",
    "images",
    "duplicate_count",
    "rejected_count",
    "rejected_by_reason",
    "ignored",
    "counts",
    "splits",
    "split",
    "patients",
    "patients_on_both_sides",
    "base_version",
    "added_images",
    "batches",
    "batch_counts",
)


@dataclasses.dataclass
class _Decoded:
    file: SourceFile
    class_name: str | None
    source_split: str | None
    sha256: str | None = None
    image: DecodedImage | None = None
    reason: str | None = None
    detail: str | None = None


def _process(file: SourceFile, settings: PrepareSettings) -> _Decoded:
    class_name, source_split = classify_path(file.path)
    item = _Decoded(file=file, class_name=class_name, source_split=source_split)
    if class_name is None:
        item.reason, item.detail = "wrong-folder", "not under a NORMAL/ or PNEUMONIA/ folder"
        return item
    try:
        data = file.read()
    except ImageRejected as exc:  # a source may refuse while reading (zip member over its limit)
        item.reason, item.detail = exc.reason, exc.detail
        return item
    except OSError as exc:
        item.reason, item.detail = "unreadable", f"{type(exc).__name__}: {exc}"
        return item
    item.sha256 = hashlib.sha256(data).hexdigest()
    try:
        item.image = decode_image(
            data,
            size=settings.image_size,
            max_pixels=settings.max_image_pixels,
            max_bytes=settings.max_file_mb * 2**20,
            patient_salt=settings.salt_bytes(),
        )
    except ImageRejected as exc:
        item.reason, item.detail = exc.reason, exc.detail
        return item
    problem = view_problem(item.image.dicom, settings.allowed_views())
    if problem is not None:
        item.reason, item.detail, item.image = "view-filtered", f"{problem} (setting dicom_views)", None
    return item


def _decode_all(files: list[SourceFile], settings: PrepareSettings) -> Iterator[_Decoded]:
    workers = settings.decode_workers or max(1, os.cpu_count() or 1)
    pool = cf.ThreadPoolExecutor(max_workers=workers)
    try:
        # pool.map keeps the (sorted) path order, so the first copy of a duplicate is always the same file.
        yield from pool.map(lambda f: _process(f, settings), files, chunksize=1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # a failed import decodes no further


def _version_id(rows: list[dict[str, Any]], settings: PrepareSettings, base_version: str | None = None) -> str:
    """``v`` + 12 hex digits of the content: every identity setting (see :data:`_OUTSIDE_VERSION_ID`) and every
    image's sha256, class, patient and source split."""
    recorded = {key: value for key, value in identity(settings).items() if key not in _OUTSIDE_VERSION_ID}
    content: dict[str, Any] = {
        "format": DATASET_FORMAT,
        **recorded,
        "images": sorted((r["sha256"], r["class"], r["patient_id"], r["source_split"]) for r in rows),
    }
    if base_version is not None:
        # The base's splits come from its own history, not from these settings: the base names them.
        content["base_version"] = base_version
    return "v" + hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:12]


def _is_ignored(path: str) -> bool:
    return posixpath.basename(path).lower() in _IGNORED_NAMES


def import_dataset(store: Store, settings: PrepareSettings) -> ImportResult:
    """Imports ``settings.source`` into ``store`` as dataset ``settings.name``.

    Args:
        store: Destination store.
        settings: Import settings (source, size, split, limits).

    With ``settings.base_version`` the new version extends that version, and with ``settings.batches`` only
    those batches of the source are imported and then recorded in the dataset's ledger (see the module
    docstring).

    Returns:
        The :class:`ImportResult`; ``status`` is ``unchanged`` when identical input was imported before, when
        every requested batch is already in the ledger, or when the batches add no new image to the base.

    Raises:
        FileNotFoundError: The source does not exist.
        ValueError: The source is unreadable as a whole (e.g. not a zip) or holds no valid image, a requested
            batch has no ``_SUCCESS``, or the base version's image size differs from ``settings.image_size``.
        DatasetError: The base version is missing or not committed.
    """
    batches = parse_batches(settings.batches)
    if batches:
        ledger = {entry["batch"]: entry for entry in read_ledger(store, ledger_key(settings.name))}
        imported = [batch for batch in batches if batch in ledger]
        if imported:
            versions = [ledger[batch]["dataset_version"] for batch in imported]
            log.warning("batches_already_imported", batches=imported, versions=versions)
        batches = [batch for batch in batches if batch not in ledger]
        if not batches:
            return _ledgered_result(store, settings, ledger[imported[-1]]["dataset_version"])
    base = _load_base(store, settings)
    recovered = _recover_unledgered(store, settings, base, tuple(batches))
    if recovered is not None:
        return recovered
    with contextlib.ExitStack() as stack:
        source_uri = settings.source
        if source_uri.startswith(DEMO_SCHEME):
            demo_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cxr-demo-"))) / "demo"
            write_demo_dataset(demo_dir, **parse_demo_uri(source_uri))
            source_uri = str(demo_dir)
        source = stack.enter_context(
            open_source(
                source_uri,
                s3_options=settings.s3.as_options(settings.io_workers),
                max_file_bytes=settings.max_file_mb * 2**20,
            )
        )
        if settings.source.startswith(DEMO_SCHEME):
            source.description = settings.source
        result = _import_from(store, settings, source, base=base, batches=tuple(batches))
    if batches:
        imported_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        entries = [
            {
                "batch": batch,
                "dataset_version": result.version,
                "imported_at": imported_at,
                **result.batch_counts[batch],
                "base_version": None if base is None else base.version,
            }
            for batch in batches
        ]
        append_to_ledger(store, ledger_key(settings.name), entries)
    return result


def _recover_unledgered(
    store: Store, settings: PrepareSettings, base: _Base | None, batches: tuple[str, ...]
) -> ImportResult | None:
    """The version an earlier attempt committed from ``batches`` before it stopped short of the ledger, if any.

    An import commits the version, points ``latest`` at it, then appends the batches to the ledger. A crash in
    between leaves the batches out of the ledger while ``latest`` (this retry's base) already holds them: importing
    them again would find only duplicates and ledger them as the base's own (``images: 0``, ``base_version``
    itself). The version's ``dataset.json`` records its batches, their counts and its real base: the ledger is
    completed from it, and nothing is imported.
    """
    if base is None or not batches or not set(batches) <= set(base.info.get("batches") or ()):
        return None
    counts = base.info.get("batch_counts") or {}
    imported_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    entries = [
        {
            "batch": batch,
            "dataset_version": base.version,
            "imported_at": imported_at,
            **counts.get(batch, {}),
            "base_version": base.info.get("base_version"),
            "recovered": True,
        }
        for batch in batches
    ]
    append_to_ledger(store, ledger_key(settings.name), entries)
    log.warning("ledger_recovered", dataset=settings.name, version=base.version, batches=list(batches),
                base_version=base.info.get("base_version"))
    return ImportResult(
        settings.name, base.version, store.url(base.prefix), "unchanged", base.info, [], [],
        {batch: dict(counts.get(batch, {})) for batch in batches},
    )


@dataclasses.dataclass
class _Base:
    """The committed version an incremental import extends."""

    version: str
    prefix: str
    manifest: pd.DataFrame
    info: dict[str, Any]
    marker: Marker
    shards: list[str]


def _load_base(store: Store, settings: PrepareSettings) -> _Base | None:
    """The base version named by ``settings.base_version`` (``None`` when empty, or ``latest`` of a new dataset)."""
    if not settings.base_version:
        return None
    if settings.base_version == "latest" and not store.exists(latest_key(settings.name)):
        log.warning("import_without_base", dataset=settings.name, reason="the dataset has no version yet")
        return None
    version = resolve_version(store, settings.name, settings.base_version)
    prefix = dataset_prefix(settings.name, version)
    try:
        marker = store.require_committed(prefix)
    except TransientStoreError:
        raise  # the store is down, the output may be fine: exit 75 and Argo retries
    except StoreError as exc:
        raise DatasetError(f"Base version {settings.name}/{version} cannot be extended: {exc}") from exc

    def read(rel: str) -> bytes:
        if rel not in marker.outputs:
            raise DatasetError(f"{store.url(join_key(prefix, MARKER_NAME))} does not list {rel}")
        return store.get_bytes(join_key(prefix, rel), sha256=marker.outputs[rel]["sha256"])

    info = json.loads(read("dataset.json"))
    if int(info["image_size"]) != settings.image_size:
        raise ValueError(
            f"The base version {settings.name}/{version} stores {info['image_size']} px images; a version built on "
            f"it must use the same size. Received: image_size={settings.image_size}"
        )
    strategy = info.get("split", {}).get("strategy")
    if strategy != settings.split:
        log.warning("import_split_differs_from_base", base=strategy, new_rows=settings.split)
    shards = listed_shards(marker.outputs)
    if shards != shard_names(len(shards)):
        raise DatasetError(f"Base version {settings.name}/{version} has unexpected shard names: {shards[:5]}")
    manifest = manifest_from_csv(read("manifest.csv"), key=f"{prefix}/manifest.csv")
    return _Base(version, prefix, manifest, info, marker, shards)


def _ledgered_result(store: Store, settings: PrepareSettings, version: str) -> ImportResult:
    """Every requested batch is in the ledger already: the version that imported them, unchanged."""
    prefix = dataset_prefix(settings.name, version)
    info = store.get_json(join_key(prefix, "dataset.json"))
    return ImportResult(settings.name, version, store.url(prefix), "unchanged", info, [], [])


def _select_batches(
    files: list[SourceFile], rejections: list[SourceRejection], batches: tuple[str, ...], where: str
) -> tuple[list[SourceFile], list[SourceRejection], list[str]]:
    """Keeps the files and refusals of ``<batch>/`` subtrees; returns them and the batches' marker paths."""
    markers = [f"{batch}/{MARKER_NAME}" for batch in batches]
    present = {file.path for file in files}
    missing = [batch for batch, marker in zip(batches, markers) if marker not in present]
    if missing:
        raise ValueError(
            f"Batches {missing} of {where} are not complete: the uploader writes <batch>/{MARKER_NAME} after the "
            f"last image. Received: batches={list(batches)}"
        )
    roots = tuple(f"{batch}/" for batch in batches)
    kept = [file for file in files if file.path.startswith(roots) and file.path not in markers]
    return kept, [item for item in rejections if item.path.startswith(roots)], markers


def _merge_with_base(base: _Base, new: pd.DataFrame, strategy: str) -> pd.DataFrame:
    """Base rows unchanged, then the new rows; a new row of a patient the base holds takes that patient's side."""
    if strategy != "official":
        sides = base.manifest.groupby("patient_id")["split"]
        only_test = new["patient_id"].map(sides.agg(lambda split: bool((split == "test").all()))).eq(True)
        never_test = new["patient_id"].map(sides.agg(lambda split: bool((split != "test").all()))).eq(True)
        new.loc[only_test, "split"] = "test"
        new.loc[never_test, "split"] = "train"
    return pd.concat([base.manifest, new], ignore_index=True)


def _batch_counts(
    batches: tuple[str, ...],
    files: list[SourceFile],
    rows: list[dict[str, Any]],
    duplicates: list[dict[str, str]],
    rejects: list[dict[str, str]],
) -> dict[str, dict[str, int]]:
    def count(items, batch: str) -> int:
        return sum(1 for path in items if path.startswith(f"{batch}/"))

    return {
        batch: {
            "files": count((f.path for f in files), batch),
            "images": count((r["source_path"] for r in rows), batch),
            "duplicates": count((d["path"] for d in duplicates), batch),
            "rejected": count((r["path"] for r in rejects), batch),
        }
        for batch in batches
    }


@dataclasses.dataclass
class _Scan:
    """What a source holds before any image is decoded.

    Attributes:
        files: Every file listed (only the requested batches' files for a batch import).
        seen: Files listed plus entries the source refused (``files_seen``).
        candidates: The files to decode (ignored names left out).
        rejects: Refused entries so far, as ``{"path", "reason", "detail"}`` rows; decoding adds to them.
        ignored: Paths deliberately left out (batch markers, the demo marker, READMEs).
        synthetic_info: The demo marker's content when the source is demo phantoms, else ``None``.
    """

    files: list[SourceFile]
    seen: int
    candidates: list[SourceFile]
    rejects: list[dict[str, str]]
    ignored: list[str]
    synthetic_info: dict[str, Any] | None

    @property
    def origin(self) -> str:
        """The manifest's ``source`` of every new row: ``demo`` or ``real``."""
        return "demo" if self.synthetic_info else "real"


def _scan(source: Any, batches: tuple[str, ...]) -> _Scan:
    """Lists the source (only ``batches`` when given) and sorts its files into candidates, refusals and ignored."""
    files, rejections = source.scan()
    batch_markers: list[str] = []
    if batches:
        files, rejections, batch_markers = _select_batches(files, rejections, batches, source.description)
    log.info("import_scan", source=source.description, kind=source.kind, files=len(files), refused=len(rejections))
    synthetic_info = None
    demo_markers = [f for f in files if posixpath.basename(f.path) == DEMO_MARKER]
    if demo_markers:
        try:
            synthetic_info = json.loads(demo_markers[0].read())
        except ValueError:
            synthetic_info = {"synthetic": True, "note": f"{DEMO_MARKER} present but unreadable"}
    return _Scan(
        files=files,
        seen=len(files) + len(rejections),
        candidates=[f for f in files if not _is_ignored(f.path)],
        rejects=[{"path": r.path, "reason": r.reason, "detail": r.detail} for r in rejections],
        ignored=[*batch_markers, *(f.path for f in files if _is_ignored(f.path))],
        synthetic_info=synthetic_info,
    )


def _image_record(item: _Decoded, origin: str) -> ImageRecord:
    """The provenance of one decoded, new image: a DICOM file's patient is its hashed identifier."""
    facts = item.image.dicom
    if facts is not None and facts.patient_key:
        patient = PatientId(facts.patient_key, True)
    else:
        patient = parse_patient_id(posixpath.basename(item.file.path))
    return ImageRecord(
        sha256=item.sha256,
        class_name=item.class_name,
        patient_id=patient.id,
        patient_id_parsed=patient.parsed,
        source=origin,
        source_path=item.file.path,
        source_split=item.source_split or "",
        orig_width=item.image.orig_width,
        orig_height=item.image.orig_height,
        orig_mode=item.image.orig_mode,
        orig_format=item.image.format,
        modality="" if facts is None else facts.modality,
        view="" if facts is None else facts.view,
        photometric="" if facts is None else facts.photometric,
    )


def _require_salt(item: _Decoded) -> None:
    """Fails the import when a DICOM file names its patient but no salt keys the hash (exit 2: a setting)."""
    facts = item.image.dicom
    if facts is not None and facts.patient_key_from and not facts.patient_key:
        raise SettingsError(
            f"{item.file.path} is a DICOM file with a {facts.patient_key_from}: patient ids are stored only as a "
            "keyed hash, and no key is set. Set CXR_PATIENT_SALT (a secret of 16+ characters, the same for every "
            "import of this dataset). Received: patient_salt=<unset>"
        )


def _collect(scan: _Scan, settings: PrepareSettings, writer: DatasetWriter, base: _Base | None) -> list[dict[str, str]]:
    """Decodes every candidate into ``writer``, in path order; returns the duplicates it dropped.

    A file whose bytes equal an earlier file's (or a base image's) is a duplicate of that first copy; a file that
    cannot be decoded is added to ``scan.rejects``.
    """
    duplicates: list[dict[str, str]] = []
    first_by_hash: dict[str, dict[str, Any]] = {}
    if base is not None:
        # New files identical to a base image are duplicates of it.
        for row in base.manifest.loc[:, ["sha256", "source_path", "class"]].to_dict("records"):
            first_by_hash[row["sha256"]] = {**row, "source_path": f"{base.version}:{row['source_path']}"}
    decoded = _decode_all(scan.candidates, settings)
    for item in progress(decoded, total=len(scan.candidates), event="import_progress", logger=log):
        if item.reason is not None:
            scan.rejects.append({"path": item.file.path, "reason": item.reason, "detail": item.detail or ""})
            continue
        _require_salt(item)
        first = first_by_hash.get(item.sha256)
        if first is not None:
            duplicates.append(
                {
                    "path": item.file.path,
                    "sha256": item.sha256,
                    "duplicate_of": first["source_path"],
                    "class": item.class_name,
                    "label_conflict": str(first["class"] != item.class_name).lower(),
                }
            )
            continue
        first_by_hash[item.sha256] = writer.add(item.image.pixels, _image_record(item, scan.origin))
    writer.flush()
    return duplicates


def _split_and_version(
    writer: DatasetWriter, settings: PrepareSettings, base: _Base | None
) -> tuple[pd.DataFrame, str]:
    """The new version's manifest (new rows split, merged after the base's) and its version id."""
    manifest = writer.manifest()
    manifest["split"] = assign_split(manifest, settings.split, test_fraction=settings.test_fraction, seed=settings.seed)
    if base is None:
        return manifest, _version_id(writer.rows, settings)
    manifest = _merge_with_base(base, manifest, settings.split)
    return manifest, _version_id(manifest.to_dict("records"), settings, base.version)


def _version_info(
    manifest: pd.DataFrame,
    settings: PrepareSettings,
    *,
    version: str,
    source: Any,
    scan: _Scan,
    writer: DatasetWriter,
    duplicates: list[dict[str, str]],
    base: _Base | None,
    batches: tuple[str, ...],
    batch_counts: dict[str, dict[str, int]],
) -> dict[str, Any]:
    """``dataset.json`` of a new version (see :func:`cxrcore.data.writer.dataset_info`)."""
    synthetic = bool(scan.synthetic_info)
    synthetic_info = scan.synthetic_info
    extra: dict[str, Any] = {}
    if base is not None:
        synthetic = synthetic or bool(base.info.get("synthetic"))
        synthetic_info = synthetic_info or base.info.get("synthetic_info")
        extra = {"base_version": base.version, "added_images": len(writer.rows)}
    if batches:
        extra.update(batches=list(batches), batch_counts=batch_counts)
    return dataset_info(
        manifest,
        name=settings.name,
        image_size=settings.image_size,
        shards=writer.shard_names,
        synthetic=synthetic,
        synthetic_info=synthetic_info,
        extra={
            "version": version,
            "source": source.description,
            "source_kind": source.kind,
            "files_seen": scan.seen,
            "duplicate_count": len(duplicates),
            "rejected_count": len(scan.rejects),
            "rejected_by_reason": _count_reasons_dict(scan.rejects),
            "ignored": scan.ignored,
            "split": {"strategy": settings.split, "test_fraction": settings.test_fraction, "seed": settings.seed},
            "patients": int(manifest["patient_id"].nunique()),
            "patients_on_both_sides": patients_on_both_sides(manifest),
            "patient_ids_parsed": int(manifest["patient_id_parsed"].sum()),
            **extra,
        },
    )


def _stage_base_shards(store: Store, base: _Base, writer: DatasetWriter) -> None:
    """Downloads the base version's shards (verified) into the writer's folder: the new version holds them too."""
    for name in base.shards:
        key = join_key(SHARDS_DIR, name)
        store.get_file(join_key(base.prefix, key), writer.shard_path(name), sha256=base.marker.outputs[key]["sha256"])


def _import_from(
    store: Store, settings: PrepareSettings, source: Any, *, base: _Base | None = None, batches: tuple[str, ...] = ()
) -> ImportResult:
    """Scans, decodes and deduplicates ``source`` and commits the version it makes (unless it exists)."""
    scan = _scan(source, batches)
    with tempfile.TemporaryDirectory(prefix="cxr-import-") as tmp:
        writer = DatasetWriter(
            Path(tmp),
            image_size=settings.image_size,
            shard_size=settings.shard_size,
            existing_shards=() if base is None else base.shards,
        )
        duplicates = _collect(scan, settings, writer, base)
        rejects = scan.rejects
        counts_by_batch = _batch_counts(batches, scan.files, writer.rows, duplicates, rejects)
        if not writer.rows and base is not None:
            log.warning(
                "import_adds_nothing", base_version=base.version, rejected=len(rejects), duplicates=len(duplicates)
            )
            uri = store.url(base.prefix)
            return ImportResult(
                settings.name, base.version, uri, "unchanged", base.info, rejects, duplicates, counts_by_batch
            )
        if not writer.rows:
            raise ValueError(
                f"No valid image found in {source.description}: {len(rejects)} file(s) rejected "
                f"({_count_reasons(rejects)}); expected NORMAL/ and PNEUMONIA/ folders of images"
            )
        manifest, version = _split_and_version(writer, settings, base)
        prefix = dataset_prefix(settings.name, version)
        uri = store.url(prefix)
        info = _version_info(
            manifest, settings, version=version, source=source, scan=scan, writer=writer, duplicates=duplicates,
            base=base, batches=batches, batch_counts=counts_by_batch,
        )
        if store.is_committed(prefix):
            log.info("import_unchanged", dataset=settings.name, version=version, uri=uri)
            existing = store.get_json(join_key(prefix, "dataset.json"))
            if not store.exists(latest_key(settings.name)) or base is not None:
                _point_latest(store, settings.name, version)
            return ImportResult(
                settings.name, version, uri, "unchanged", existing, rejects, duplicates, counts_by_batch
            )
        inputs = job_inputs(settings, version, base_version=None if base is None else base.version, batches=batches)
        if base is not None:
            _stage_base_shards(store, base, writer)
        with store.commit(prefix, inputs=inputs, producer=f"cxr-prepare {__version__}") as tx:
            writer.commit(tx, manifest, info, logger=log, upload_event="import_upload")
            tx.put_bytes("rejects.csv", _csv(rejects, ("path", "reason", "detail")))
            tx.put_bytes(
                "duplicates.csv", _csv(duplicates, ("path", "sha256", "duplicate_of", "class", "label_conflict"))
            )
    _point_latest(store, settings.name, version)
    log.info("import_committed", dataset=settings.name, version=version, uri=uri, images=len(manifest))
    return ImportResult(settings.name, version, uri, "created", info, rejects, duplicates, counts_by_batch)


def _point_latest(store: Store, name: str, version: str) -> None:
    key = latest_key(name)
    pointer = {"version": version}
    if not store.exists(key) or store.get_json(key) != pointer:
        store.put_json(key, pointer)


def job_inputs(
    settings: PrepareSettings, content_version: str, *, base_version: str | None, batches: Sequence[str]
) -> dict[str, Any]:
    """The ``inputs`` of a dataset version's marker.

    Args:
        settings: The import settings; :func:`cxrcore.config.identity` of them is recorded.
        content_version: The version id (a hash of the imported content, see :func:`_version_id`).
        base_version: The version the new one builds on, or ``None``.
        batches: The imported batches (empty: the whole source).

    Returns:
        A JSON-ready dict; ``base_version`` and ``batches`` only when either is set.
    """
    inputs: dict[str, Any] = {"content_version": content_version, "settings": identity(settings)}
    if base_version is not None or batches:
        inputs["base_version"] = base_version
        inputs["batches"] = list(batches)
    return inputs


def _count_reasons_dict(rejects: list[dict[str, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for reject in rejects:
        counts[reject["reason"]] = counts.get(reject["reason"], 0) + 1
    return dict(sorted(counts.items()))


def _count_reasons(rejects: list[dict[str, str]]) -> str:
    return ", ".join(f"{reason}: {count}" for reason, count in _count_reasons_dict(rejects).items()) or "none"


def _csv(rows: list[dict[str, str]], columns: tuple[str, ...]) -> bytes:
    return pd.DataFrame(rows, columns=list(columns)).to_csv(index=False, lineterminator="\n").encode()


def run(settings: PrepareSettings) -> dict[str, Any]:
    """Job entry: imports the source into the configured store and returns the summary dict."""
    store = settings.open_store()
    result = import_dataset(store, settings)
    return result.summary()
