"""The ledger of incoming batches: which complete uploads under ``incoming/`` a dataset has imported.

Producers upload X-rays under ``incoming/<batch>/`` (``NORMAL/`` and ``PNEUMONIA/`` folders, optionally below
``train/`` ``test/``) and write ``incoming/<batch>/_SUCCESS`` LAST; a batch without it is still being uploaded
and is invisible (docs/architecture.md#scheduled-retraining). ``registry/<dataset>/ledger.json`` lists every
batch imported into a version of the dataset; :mod:`cxrcore.data.ingest` appends to it after the version is
committed, so a batch is imported once. The ledger is a read-modify-write object: the workflow holds the
``cxr-retrain`` mutex so two runs never write it at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cxrcore.logging import get_logger
from cxrcore.storage import MARKER_NAME, Store, StoreError, normalize_key
from cxrcore.vocab import BATCH_NAME_PATTERN, INCOMING_PREFIX

__all__ = ["append_to_ledger", "read_ledger", "scan_incoming"]

log = get_logger(__name__)


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
        raise StoreError(f"{store.url(key)} is not a ledger (a JSON list of objects with a 'batch' name)")
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
        log.info("ledger_updated", ledger=store.url(key), batches=[e["batch"] for e in added])
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
        incoming=store.url(prefix),
        new=pending,
        already_imported=sorted(complete & imported),
        incomplete=sorted(seen - complete),
    )
    return pending
