"""Who owns what under an output prefix while it is being written: claims, publish leases and garbage.

Every key lives under the prefix's reserved ``_tmp/`` folder, so readers, listings of committed outputs and
the published objects never see them:

* ``<prefix>/_tmp/<txid>/...``: the staged objects of transaction ``txid``.
* ``<prefix>/_tmp/_claims/<txid>.json``: the transaction's *claim*; while it is live, ``_tmp/<txid>/`` is
  owned and no garbage collection touches it. Written when the transaction opens, before anything is staged.
* ``<prefix>/_tmp/_publish/<txid>.json``: the transaction's *publish lease*, held while it replaces the
  output and writes ``_SUCCESS``.

Claims and leases are JSON (:class:`Lease`): the transaction id, the hash of its inputs, a heartbeat (POSIX
seconds on the writer's clock) and a time to live. A daemon thread (:class:`Heartbeat`) rewrites them every
``Store.heartbeat_interval_s``; one whose heartbeat is older than its time to live belongs to a dead writer.

Publishing is mutually exclusive per prefix through *write, then list* (:class:`PublishLease`): a writer puts
its lease, then lists the leases; it holds the publish only when no other live lease is listed. Both stores
are strongly consistent (a rename on a filesystem; S3's read-after-write and list-after-write consistency), so
of two writers the one that lists last sees the other: at most one writer wins. Writers that see each other
both withdraw and retry after a jittered pause; a writer that still sees a live lease after its pause has lost
to it: it waits for that writer and adopts its output when the inputs are identical, and raises
:class:`~cxrcore.storage.base.CommitConflictError` (exit 1) when they differ. This needs no conditional
request, so it holds on S3 servers that ignore ``If-None-Match``; the marker itself is then written with
``If-None-Match: *`` (``O_EXCL`` on files) as a second guard (docs/architecture.md#commit-protocol).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import socket
import threading
import time
from typing import TYPE_CHECKING

from cxrcore.storage.model import (
    TMP_DIR,
    CommitBusyError,
    CommitConflictError,
    ObjectInfo,
    ObjectNotFoundError,
    StoreError,
)
from cxrcore.storage.keys import join_key

if TYPE_CHECKING:
    from cxrcore.storage.base import Store

__all__ = [
    "CLAIMS_DIR",
    "PUBLISH_DIR",
    "Heartbeat",
    "Lease",
    "PublishLease",
    "collect_garbage",
    "lease_key",
    "read_leases",
]

CLAIMS_DIR = "_claims"
PUBLISH_DIR = "_publish"
_LEASE_SUFFIX = ".json"
_MAX_BACKOFF_S = 2.0
_WAIT_POLL_S = 1.0
_LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class Lease:
    """A claim or publish lease of one transaction.

    Attributes:
        txid: The transaction id.
        inputs_hash: Hash of the transaction's inputs (an identical writer's output can be adopted).
        heartbeat: POSIX seconds of the last heartbeat, on the writer's clock.
        ttl_s: Seconds the lease stays live without a heartbeat.
        owner: ``host:pid`` of the writer, for messages.
    """

    txid: str
    inputs_hash: str
    heartbeat: float
    ttl_s: float
    owner: str = dataclasses.field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")

    def live(self, now: float) -> bool:
        """Whether the owner is alive as of ``now`` (its heartbeat is younger than its time to live)."""
        return now - self.heartbeat < self.ttl_s

    def to_json(self) -> bytes:
        """The lease as JSON bytes."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Lease | None:
        """Parses a lease; ``None`` for anything that is not one (a torn or foreign object)."""
        try:
            raw = json.loads(data)
            return cls(
                txid=str(raw["txid"]),
                inputs_hash=str(raw["inputs_hash"]),
                heartbeat=float(raw["heartbeat"]),
                ttl_s=float(raw["ttl_s"]),
                owner=str(raw.get("owner", "")),
            )
        except (ValueError, KeyError, TypeError):
            return None


def lease_key(prefix: str, kind: str, txid: str) -> str:
    """The key of ``txid``'s lease of ``kind`` (:data:`CLAIMS_DIR` or :data:`PUBLISH_DIR`) under ``prefix``."""
    return join_key(prefix, TMP_DIR, kind, txid + _LEASE_SUFFIX)


def read_leases(store: Store, prefix: str, kind: str) -> list[tuple[str, Lease | None, ObjectInfo]]:
    """Lists and reads the leases of ``kind`` under ``prefix``.

    Returns:
        ``(txid, lease or None when unreadable, object info)`` per lease object; leases deleted between the
        listing and the read are left out.
    """
    found = []
    for info in store._iter(join_key(prefix, TMP_DIR, kind)):
        name = info.key.rsplit("/", 1)[-1]
        if not name.endswith(_LEASE_SUFFIX):
            continue
        try:
            lease = Lease.from_json(store._get_bytes(info.key))
        except ObjectNotFoundError:
            continue
        found.append((name[: -len(_LEASE_SUFFIX)], lease, info))
    return found


def _is_live(lease: Lease | None, info: ObjectInfo, ttl_s: float, now: float) -> bool:
    """A parsed lease is live by its heartbeat; an unreadable one by the age of its object."""
    if lease is not None:
        return lease.live(now)
    return info.modified is not None and now - info.modified < ttl_s


class Heartbeat:
    """Keeps a transaction's leases live: rewrites each one every ``interval_s`` from a daemon thread.

    Args:
        store: The store holding the leases.
        interval_s: Seconds between heartbeats.
    """

    def __init__(self, store: Store, interval_s: float) -> None:
        self.store = store
        self.interval_s = interval_s
        self.last_error: StoreError | None = None
        self._leases: dict[str, Lease] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, key: str, lease: Lease) -> None:
        """Writes ``lease`` at ``key`` now (errors propagate) and keeps it live from then on."""
        lease.heartbeat = time.time()
        self.store.put_bytes(key, lease.to_json())
        with self._lock:
            self._leases[key] = lease
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"cxr-heartbeat-{lease.txid}", daemon=True)
            self._thread.start()

    def discard(self, key: str) -> None:
        """Stops refreshing ``key`` (the caller deletes the object)."""
        with self._lock:
            self._leases.pop(key, None)

    def stop(self) -> None:
        """Stops the thread; waits for a heartbeat in flight."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=max(30.0, self.interval_s))

    def _run(self) -> None:
        while not self._stopped.wait(self.interval_s):
            with self._lock:
                leases = list(self._leases.items())
            for key, lease in leases:
                lease.heartbeat = time.time()
                try:
                    with self._lock:
                        if key not in self._leases:
                            continue
                        self.store.put_bytes(key, lease.to_json())
                except StoreError as exc:  # the next beat tries again; the lease expires if none gets through
                    self.last_error = exc
                    _LOG.warning("store lease heartbeat failed for %s: %s", key, exc)


class PublishLease:
    """Mutual exclusion of the publish step of one prefix (see the module docstring).

    Args:
        store: The store.
        prefix: The output prefix.
        txid: The publishing transaction.
        inputs_hash: Its inputs' hash.
        heartbeat: The transaction's heartbeat, which keeps the lease live while held.
    """

    def __init__(self, store: Store, prefix: str, txid: str, inputs_hash: str, heartbeat: Heartbeat) -> None:
        self.store = store
        self.prefix = prefix
        self.txid = txid
        self.inputs_hash = inputs_hash
        self.heartbeat = heartbeat
        self.key = lease_key(prefix, PUBLISH_DIR, txid)

    def acquire(self) -> None:
        """Returns once this transaction alone holds the publish of the prefix.

        Raises:
            CommitConflictError: A writer with different inputs holds it.
            CommitBusyError: Identical writers held it for longer than ``store.publish_wait_s``.
        """
        deadline = time.monotonic() + self.store.publish_wait_s
        attempt = 0
        while True:
            self.heartbeat.add(self.key, Lease(self.txid, self.inputs_hash, 0.0, self.store.lease_ttl_s))
            if not self._live_rivals():
                return
            self._withdraw()
            pause = self.store.contention_backoff_s * 2 ** min(attempt, 10)
            time.sleep(random.uniform(0.5, 1.5) * min(pause, _MAX_BACKOFF_S))
            attempt += 1
            rivals = self._live_rivals()
            different = [lease for lease in rivals if lease.inputs_hash != self.inputs_hash]
            if different:
                raise CommitConflictError(
                    f"{self.store.url(self.prefix)} is being published by transaction {different[0].txid} "
                    f"({different[0].owner}) from different inputs; two jobs with different settings write "
                    "the same output, so this one stops instead of overwriting it"
                )
            if rivals:
                self._wait_until_gone(deadline)
            if time.monotonic() > deadline:
                raise CommitBusyError(
                    f"{self.store.url(self.prefix)} stayed contended for {self.store.publish_wait_s:.0f} s; "
                    "retry later: an identical writer's output will then be reused"
                )

    def held(self) -> bool:
        """Whether this transaction's lease object still exists (garbage collection removes expired ones)."""
        return self.store._head(self.key) is not None

    def release(self) -> None:
        """Gives the publish up (idempotent)."""
        self._withdraw()

    def _withdraw(self) -> None:
        self.heartbeat.discard(self.key)
        self.store._delete_many([self.key])

    def _live_rivals(self) -> list[Lease]:
        now = time.time()
        rivals = []
        for txid, lease, info in read_leases(self.store, self.prefix, PUBLISH_DIR):
            if txid != self.txid and _is_live(lease, info, self.store.lease_ttl_s, now):
                rivals.append(lease or Lease(txid, "", info.modified or now, self.store.lease_ttl_s, "unknown"))
        return rivals

    def _wait_until_gone(self, deadline: float) -> None:
        """Polls until no rival publishes (it finished or died), or until ``deadline``."""
        while time.monotonic() < deadline:
            time.sleep(min(_WAIT_POLL_S, max(0.0, deadline - time.monotonic()), 0.05 + random.random() * 0.2))
            if not self._live_rivals():
                return


def collect_garbage(store: Store, prefix: str, *, older_than: float) -> int:
    """Removes the staging, claims and leases of dead transactions under ``prefix``; returns how many objects.

    Staging is listed before claims: a transaction writes its claim before it stages anything, so staging seen
    here always has its claim in the later listing while the transaction lives.

    Args:
        store: The store.
        prefix: Normalised output prefix.
        older_than: Minimum age in seconds of what is removed (by heartbeat, else by modification time).
    """
    now = time.time()
    tmp = join_key(prefix, TMP_DIR)
    staged: dict[str, list[ObjectInfo]] = {}
    for info in store._iter(tmp):
        head = info.key[len(tmp) + 1 :].split("/", 1)[0]
        if head not in (CLAIMS_DIR, PUBLISH_DIR):
            staged.setdefault(head, []).append(info)
    claims = {txid: (lease, info) for txid, lease, info in read_leases(store, prefix, CLAIMS_DIR)}
    live = {txid for txid, (lease, info) in claims.items() if _is_live(lease, info, store.lease_ttl_s, now)}
    doomed: list[str] = []
    for txid in sorted(set(staged) | set(claims)):
        if txid in live:
            continue
        objects = staged.get(txid, [])
        lease, claim_info = claims.get(txid, (None, None))
        if lease is not None:
            newest = lease.heartbeat
        else:
            times = [obj.modified or 0.0 for obj in objects] + ([claim_info.modified or 0.0] if claim_info else [])
            newest = max(times, default=0.0)
        if now - newest < older_than:
            continue
        doomed.extend(obj.key for obj in objects)
        if claim_info is not None:
            doomed.append(claim_info.key)
    for txid, lease, info in read_leases(store, prefix, PUBLISH_DIR):
        if not _is_live(lease, info, store.lease_ttl_s, now) and txid not in live:
            doomed.append(info.key)
    for start in range(0, len(doomed), 1000):
        store._delete_many(doomed[start : start + 1000])
    extra = store._collect_backend_garbage(prefix, live, max(older_than, store.lease_ttl_s))
    return len(doomed) + extra
