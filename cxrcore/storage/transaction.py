"""The staged write of one output prefix: ``with store.commit(prefix, inputs=...) as tx:``.

See docs/architecture.md#commit-protocol and :mod:`cxrcore.storage.base`. A transaction claims its staging
area when it opens (``<prefix>/_tmp/_claims/<txid>.json``, kept live by a heartbeat thread), stages objects
under ``<prefix>/_tmp/<txid>/``, and on a clean exit takes the prefix's publish lease
(:class:`cxrcore.storage.leases.PublishLease`). Holding it, it either *adopts* the committed output — when that
output was made from identical inputs and its marker matches its objects, e.g. a concurrent import of the same
images finished first — or replaces the output and writes ``_SUCCESS`` last, created only if absent. Then it
collects stale staging of dead writers under the prefix.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cxrcore.storage.model import (
    MARKER_NAME,
    TMP_DIR,
    CommitBusyError,
    CommitConflictError,
    Marker,
    ObjectInfo,
    ObjectNotFoundError,
    StoreError,
    TransientStoreError,
    hash_inputs,
    sha256_bytes,
    sha256_file,
)
from cxrcore.storage.keys import join_key, normalize_key
from cxrcore.storage.leases import (
    CLAIMS_DIR,
    Heartbeat,
    Lease,
    PublishLease,
    collect_garbage,
    lease_key,
)

if TYPE_CHECKING:
    from cxrcore.storage.base import Store

__all__ = ["Transaction"]

_LOG = logging.getLogger(__name__)


class Transaction:
    """A staged write of one output prefix; publish happens on a clean ``__exit__``.

    Keys passed to the ``put_*`` methods are relative to the output prefix. ``_SUCCESS`` and ``_tmp`` are
    reserved.

    Attributes:
        marker: The committed marker after a successful exit (this transaction's, or the adopted one).
        adopted: Whether the publish adopted an identical writer's committed output instead of replacing it.
    """

    def __init__(
        self, store: Store, prefix: str, inputs: dict[str, Any], producer: str, preserve: tuple[str, ...] = ()
    ) -> None:
        self.store = store
        self.preserve = preserve
        self.prefix = prefix
        self.inputs = inputs
        self.inputs_hash = hash_inputs(inputs)
        self.producer = producer
        self.txid = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
        self.staging = join_key(prefix, TMP_DIR, self.txid)
        self.claim_key = lease_key(prefix, CLAIMS_DIR, self.txid)
        self.outputs: dict[str, dict[str, Any]] = {}
        self.marker: Marker | None = None
        self.adopted = False
        self._open = False
        self._heartbeat: Heartbeat | None = None

    def __enter__(self) -> Transaction:
        heartbeat = Heartbeat(self.store, self.store.heartbeat_interval_s)
        try:
            heartbeat.add(self.claim_key, Lease(self.txid, self.inputs_hash, 0.0, self.store.lease_ttl_s))
        except BaseException:
            heartbeat.stop()
            raise
        self._heartbeat = heartbeat
        self._open = True
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        failed = exc_type is not None
        try:
            if not failed:
                self.publish()
        except BaseException:
            failed = True
            raise
        finally:
            self._open = False
            self._close(failed)

    def _close(self, failed: bool) -> None:
        """Stops the heartbeat and removes staging and claim; a cleanup error never hides the original error."""
        if self._heartbeat is not None:
            self._heartbeat.stop()
        try:
            self.store.delete_prefix(self.staging)
            self.store._delete_many([self.claim_key])
        except Exception:
            # Leftovers are collected by the next commit of the prefix once this claim has expired.
            if not failed:
                raise

    def _rel(self, key: str) -> str:
        if not self._open:
            raise StoreError(f"Transaction on {self.prefix} is not open; use it as a context manager")
        rel = normalize_key(key)
        head = rel.split("/", 1)[0]
        if rel == MARKER_NAME or head == TMP_DIR:
            raise ValueError(f"Key is reserved by the commit protocol. Received: key={key!r}")
        return rel

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        """Stages ``data`` as ``<prefix>/<key>``."""
        rel = self._rel(key)
        self.store.put_bytes(join_key(self.staging, rel), data)
        self.outputs[rel] = {"sha256": sha256_bytes(data), "size": len(data)}
        return ObjectInfo(join_key(self.prefix, rel), len(data))

    def put_json(self, key: str, obj: Any) -> ObjectInfo:
        """Stages ``obj`` as JSON."""
        return self.put_bytes(key, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def put_file(self, key: str, path: str | os.PathLike[str]) -> ObjectInfo:
        """Stages a local file."""
        rel = self._rel(key)
        path = Path(path)
        digest = sha256_file(path)
        self.store._put_file(join_key(self.staging, rel), path, digest)
        size = path.stat().st_size
        self.outputs[rel] = {"sha256": digest, "size": size}
        return ObjectInfo(join_key(self.prefix, rel), size)

    def put_dir(self, local_dir: str | os.PathLike[str], key: str = "") -> list[ObjectInfo]:
        """Stages every regular file under ``local_dir`` below ``key``."""
        root = Path(local_dir)
        files = [p for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()]
        return list(
            self.store._pool_map(lambda p: self.put_file(join_key(key, p.relative_to(root).as_posix()), p), files)
        )

    def publish(self) -> Marker:
        """Takes the publish lease, then adopts an identical committed output or replaces it; marker last.

        Called by ``__exit__``.

        Raises:
            CommitConflictError: A writer with different inputs is publishing the prefix.
            CommitBusyError: An identical writer held the publish for too long, or this one lost its lease.
        """
        assert self._heartbeat is not None, "publish() runs inside the with block"
        lease = PublishLease(self.store, self.prefix, self.txid, self.inputs_hash, self._heartbeat)
        lease.acquire()
        try:
            existing = self._committed_identical()
            if existing is not None:
                self.marker, self.adopted = existing, True
            else:
                self.marker = self._replace_output(lease)
        finally:
            lease.release()
        self._collect_garbage()
        return self.marker

    def _committed_identical(self) -> Marker | None:
        """The committed marker when it was made from this transaction's inputs and matches its objects."""
        try:
            existing = self.store.read_marker(self.prefix)
        except TransientStoreError:
            raise
        except StoreError:
            return None  # an unreadable marker is replaced
        if existing is None or existing.inputs_hash != self.inputs_hash:
            return None
        return None if self.store.marker_problems(self.prefix, existing) else existing

    def _replace_output(self, lease: PublishLease) -> Marker:
        """Hides the old output, moves staged objects into place and writes the marker last."""
        marker_key = join_key(self.prefix, MARKER_NAME)
        # 1. Hide the previous output (if any) before touching it.
        self.store._delete_many([marker_key])
        # 2. Remove stale objects of the previous output that this one does not rewrite.
        kept = tuple(join_key(self.prefix, sub) + "/" for sub in (TMP_DIR, *self.preserve))
        stale = [
            obj.key
            for obj in self.store._iter(self.prefix)
            if not obj.key.startswith(kept) and obj.key[len(self.prefix) + 1 :] not in self.outputs
        ]
        for start in range(0, len(stale), 1000):
            self.store._delete_many(stale[start : start + 1000])
        # 3. Move staged objects into place.
        moves = [(join_key(self.staging, rel), join_key(self.prefix, rel)) for rel in sorted(self.outputs)]
        list(self.store._pool_map(lambda m: self.store._copy(*m), moves))
        # 4. Marker last, only while the lease is still ours, and only if no other marker appeared.
        marker = Marker(
            prefix=self.prefix,
            inputs=json.loads(json.dumps(self.inputs, default=str)),
            inputs_hash=self.inputs_hash,
            outputs=dict(sorted(self.outputs.items())),
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            producer=self.producer,
        )
        if not lease.held():
            raise CommitBusyError(
                f"{self.store.url(self.prefix)}: transaction {self.txid} lost its publish lease (no heartbeat got "
                f"through for {self.store.lease_ttl_s:.0f} s); its marker is not written, a retry publishes again"
            )
        data = marker.to_json()
        if not self.store._create_exclusive(marker_key, data, sha256_bytes(data)):
            self._check_marker_is_ours(marker_key, data)
        return marker

    def _check_marker_is_ours(self, marker_key: str, data: bytes) -> None:
        """After a refused exclusive create: fine if the marker there is ours (a retried request), else raise."""
        try:
            present = self.store._get_bytes(marker_key)
        except ObjectNotFoundError:
            present = None
        if present != data:
            # Objects are ours, the marker is not: hide it so that nobody trusts the mix; a re-run repairs it.
            self.store._delete_many([marker_key])
            raise CommitConflictError(
                f"{self.store.url(self.prefix)}: another writer wrote {MARKER_NAME} while transaction {self.txid} "
                "held the publish lease (a writer without leases?); the output is left uncommitted"
            )

    def _collect_garbage(self) -> None:
        """Collects stale staging of dead writers under the prefix; failures are logged, never raised."""
        try:
            collect_garbage(self.store, self.prefix, older_than=self.store.staging_max_age_s)
        except StoreError as exc:
            _LOG.warning("staging garbage collection of %s failed: %s", self.store.url(self.prefix), exc)
