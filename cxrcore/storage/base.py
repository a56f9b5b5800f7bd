"""The one storage interface of cxr-gan, for ``file://`` and ``s3://`` alike, and its commit protocol.

Backends implement a handful of primitives (``_put_bytes``, ``_put_file``, ``_get_bytes``, ``_get_file``,
``_head``, ``_iter``, ``_delete_many``, ``_copy``) on normalised keys; everything else — key safety, hashing,
directory sync with a thread pool, and the publish-with-``_SUCCESS`` protocol — lives here once.

Commit protocol (see docs/architecture.md#commit-protocol):

1. ``with store.commit(prefix, inputs=...) as tx:`` stages every object under
   ``<prefix>/_tmp/<txid>/...``; nothing under ``<prefix>`` changes while the job works.
2. On success the old marker (if any) is removed first, staged objects are moved into place, and the
   ``_SUCCESS`` marker — holding the sha256 and size of every output and the hash of the inputs — is written
   last. An interruption at any point leaves either the previous committed output or no visible output.
3. Readers call :meth:`Store.require_committed` (or :meth:`Store.is_committed`), which refuse prefixes without a
   marker *and* prefixes whose marker lists objects that are missing or have another size (a cheap listing-based
   check); :meth:`Store.get_bytes` with ``sha256=`` verifies content in full.

Concurrent writers of one prefix are serialised by publish leases, and staging of killed writers is collected
by every commit (:mod:`cxrcore.storage.leases`; the transaction itself lives in
:mod:`cxrcore.storage.transaction`).
"""

from __future__ import annotations

import abc
import concurrent.futures as cf
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cxrcore.storage.keys import join_key, normalize_key, safe_join

__all__ = [
    "CommitBusyError",
    "CommitConflictError",
    "MARKER_NAME",
    "TMP_DIR",
    "Marker",
    "NotCommittedError",
    "ObjectInfo",
    "ObjectNotFoundError",
    "IntegrityError",
    "Store",
    "StoreError",
    "TransientStoreError",
    "hash_inputs",
    "sha256_bytes",
    "sha256_file",
]

from cxrcore.storage.model import (  # re-exported: the names this module has always offered
    MARKER_NAME,
    TMP_DIR,
    CommitBusyError,
    CommitConflictError,
    IntegrityError,
    Marker,
    NotCommittedError,
    ObjectInfo,
    ObjectNotFoundError,
    StoreError,
    TransientStoreError,
    hash_inputs,
    sha256_bytes,
    sha256_file,
)

if TYPE_CHECKING:
    from cxrcore.storage.transaction import Transaction


class Store(abc.ABC):
    """A root (``file:///dir`` or ``s3://bucket/prefix``) holding objects under normalised keys.

    All public methods take keys relative to the root; they are normalised and refused when they could escape
    it (see :func:`cxrcore.storage.keys.normalize_key`).
    """

    #: Threads used by :meth:`upload_dir` / :meth:`download_dir`.
    max_workers: int = 8
    #: Seconds a transaction's claim or publish lease stays live without a heartbeat (clock skew between
    #: writers must stay well below it).
    lease_ttl_s: float = 300.0
    #: Seconds between heartbeats of a live transaction (a daemon thread rewrites its claim and lease).
    heartbeat_interval_s: float = 60.0
    #: Staging older than this, with no live owner, is collected by every commit of its prefix.
    staging_max_age_s: float = 3600.0
    #: Seconds a writer waits for an identical writer's publish before giving up with :class:`CommitBusyError`.
    publish_wait_s: float = 600.0
    #: First pause in seconds between publish attempts of contending writers (doubles, jittered, up to 2 s).
    contention_backoff_s: float = 0.05

    def __init__(self, uri: str, *, max_workers: int = 8) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1. Received: max_workers={max_workers}")
        self.uri = uri
        self.max_workers = max_workers

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

    def url(self, key: str = "") -> str:
        """The URI of ``key`` in this store, for results, logs and messages (docs/architecture.md#store-layout).

        Args:
            key: A key relative to the root (normalised); ``""`` names the root itself.

        Returns:
            ``<uri>/<key>``, e.g. ``s3://bucket/prefix/runs/r1/report`` or ``file:///data/store/runs/r1``; the
            root's URI when ``key`` is empty.

        Raises:
            UnsafeKeyError: If ``key`` could escape the root.
        """
        key = normalize_key(key, allow_empty=True)
        return f"{self.uri.removesuffix('/')}/{key}" if key else self.uri

    # ------------------------------------------------------------------ primitives (backends implement)
    @abc.abstractmethod
    def _put_bytes(self, key: str, data: bytes, sha256: str) -> None:
        """Writes ``data`` atomically at ``key`` (readers see the old object or the new one, never a part)."""

    @abc.abstractmethod
    def _put_file(self, key: str, path: Path, sha256: str) -> None:
        """Uploads a local file atomically (multipart for large files on S3)."""

    @abc.abstractmethod
    def _get_bytes(self, key: str) -> bytes:
        """Returns the object's bytes; raises :class:`ObjectNotFoundError`."""

    @abc.abstractmethod
    def _get_file(self, key: str, path: Path) -> None:
        """Downloads to ``path`` (parent exists); raises :class:`ObjectNotFoundError`."""

    @abc.abstractmethod
    def _head(self, key: str) -> ObjectInfo | None:
        """Returns the object's info, or ``None`` when absent."""

    @abc.abstractmethod
    def _iter(self, prefix: str) -> Iterator[ObjectInfo]:
        """Yields every object whose key starts with ``prefix + '/'`` (or all, for ``""``), in key order."""

    @abc.abstractmethod
    def _delete_many(self, keys: list[str]) -> None:
        """Deletes the keys; absent keys are not an error."""

    @abc.abstractmethod
    def _copy(self, src: str, dst: str) -> None:
        """Copies an object inside the store (server side on S3)."""

    @abc.abstractmethod
    def _create_exclusive(self, key: str, data: bytes, sha256: str) -> bool:
        """Writes ``data`` at ``key`` only if no object is there (atomically); returns whether it did."""

    def _collect_backend_garbage(self, prefix: str, live_txids: set[str], older_than: float) -> int:
        """Removes backend-specific leftovers under ``prefix`` (temp files, unfinished uploads); returns how many.

        Args:
            prefix: The output prefix being collected.
            live_txids: Transactions under ``<prefix>/_tmp/`` whose owner is live; their leftovers stay.
            older_than: Minimum age in seconds of what may be removed (never less than the lease time to live,
                so nothing in flight is touched).
        """
        return 0

    def local_path(self, key: str) -> Path | None:
        """Returns a local filesystem path for ``key`` when the backend has one (``file://``), else ``None``.

        Lets readers memory-map large shards instead of copying them.
        """
        return None

    # ------------------------------------------------------------------ public object API
    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        """Stores ``data`` at ``key`` and returns its info."""
        key = normalize_key(key)
        self._put_bytes(key, data, sha256_bytes(data))
        return ObjectInfo(key, len(data))

    def put_json(self, key: str, obj: Any) -> ObjectInfo:
        """Stores ``obj`` as indented UTF-8 JSON."""
        return self.put_bytes(key, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def put_file(self, key: str, path: str | os.PathLike[str]) -> ObjectInfo:
        """Uploads a local file to ``key``."""
        key = normalize_key(key)
        path = Path(path)
        self._put_file(key, path, sha256_file(path))
        return ObjectInfo(key, path.stat().st_size)

    def get_bytes(self, key: str, *, sha256: str | None = None) -> bytes:
        """Reads ``key``; when ``sha256`` is given, verifies the content and raises :class:`IntegrityError`."""
        key = normalize_key(key)
        data = self._get_bytes(key)
        if sha256 is not None and sha256_bytes(data) != sha256:
            raise IntegrityError(f"Object {self.url(key)} does not match its recorded sha256 {sha256}")
        return data

    def get_json(self, key: str) -> Any:
        """Reads and parses a JSON object."""
        data = self.get_bytes(key)
        try:
            return json.loads(data)
        except ValueError as exc:
            raise StoreError(f"Object {self.url(key)} is not valid JSON: {exc}") from exc

    def get_file(self, key: str, path: str | os.PathLike[str], *, sha256: str | None = None) -> Path:
        """Downloads ``key`` to ``path`` atomically (temp file + rename), verifying ``sha256`` if given."""
        key = normalize_key(key)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            self._get_file(key, tmp)
            if sha256 is not None and sha256_file(tmp) != sha256:
                raise IntegrityError(f"Object {self.url(key)} does not match its recorded sha256 {sha256}")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def exists(self, key: str) -> bool:
        """Whether an object exists at ``key``."""
        return self._head(normalize_key(key)) is not None

    def info(self, key: str) -> ObjectInfo:
        """Returns the object's info; raises :class:`ObjectNotFoundError`."""
        key = normalize_key(key)
        found = self._head(key)
        if found is None:
            raise ObjectNotFoundError(f"No object at {self.url(key)}")
        return found

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Every object under ``prefix`` (recursive), sorted by key."""
        return list(self._iter(normalize_key(prefix, allow_empty=True)))

    def list_prefixes(self, prefix: str = "") -> list[str]:
        """The immediate child "directories" of ``prefix`` (full keys, no trailing slash), sorted."""
        prefix = normalize_key(prefix, allow_empty=True)
        start = len(prefix) + 1 if prefix else 0
        children = set()
        for obj in self._iter(prefix):
            rest = obj.key[start:]
            if "/" in rest:
                children.add(join_key(prefix, rest.split("/", 1)[0]))
        return sorted(children)

    def delete(self, key: str) -> None:
        """Deletes one object (absent is fine)."""
        self._delete_many([normalize_key(key)])

    def delete_prefix(self, prefix: str) -> int:
        """Deletes every object under ``prefix``; returns how many. Refuses the store root."""
        prefix = normalize_key(prefix)
        keys = [obj.key for obj in self._iter(prefix)]
        for start in range(0, len(keys), 1000):
            self._delete_many(keys[start : start + 1000])
        return len(keys)

    def copy(self, src: str, dst: str) -> None:
        """Copies an object inside the store."""
        self._copy(normalize_key(src), normalize_key(dst))

    # ------------------------------------------------------------------ directories
    def upload_dir(self, local_dir: str | os.PathLike[str], prefix: str) -> list[ObjectInfo]:
        """Uploads every regular file under ``local_dir`` to ``prefix`` with a thread pool.

        Symlinks are not followed (a link could point outside the directory). Returns the uploaded objects.
        """
        root = Path(local_dir)
        if not root.is_dir():
            raise NotADirectoryError(f"upload_dir needs a directory. Received: local_dir={root}")
        prefix = normalize_key(prefix, allow_empty=True)
        jobs = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if path.is_symlink() or not path.is_file():
                    continue
                rel = path.relative_to(root).as_posix()
                jobs.append((join_key(prefix, rel), path))
        return list(self._pool_map(lambda job: self.put_file(*job), jobs))

    def download_dir(self, prefix: str, local_dir: str | os.PathLike[str]) -> list[Path]:
        """Downloads every object under ``prefix`` into ``local_dir`` (keys can never land outside it)."""
        prefix = normalize_key(prefix, allow_empty=True)
        root = Path(local_dir)
        root.mkdir(parents=True, exist_ok=True)
        start = len(prefix) + 1 if prefix else 0
        jobs = [(obj.key, safe_join(root, obj.key[start:])) for obj in self._iter(prefix)]
        return list(self._pool_map(lambda job: self.get_file(*job), jobs))

    def _pool_map(self, fn, items: list) -> Iterator:
        if len(items) <= 1 or self.max_workers == 1:
            yield from map(fn, items)
            return
        with cf.ThreadPoolExecutor(max_workers=self.max_workers) as pool:
            yield from pool.map(fn, items)

    # ------------------------------------------------------------------ commit protocol
    def read_marker(self, prefix: str) -> Marker | None:
        """Returns the ``_SUCCESS`` marker of ``prefix`` as stored (unverified), or ``None`` when absent."""
        key = join_key(normalize_key(prefix), MARKER_NAME)
        try:
            data = self._get_bytes(key)
        except ObjectNotFoundError:
            return None
        return Marker.from_json(data, key=self.url(key))

    def marker_problems(self, prefix: str, marker: Marker) -> list[str]:
        """What is wrong with the objects ``marker`` lists: missing ones and ones of another size.

        One listing of ``prefix`` (a request per 1000 objects on S3), no content reads; full sha256 verification
        happens when an object is read with ``sha256=``.

        Returns:
            One line per problem (empty when every listed object exists with its recorded size).
        """
        prefix = normalize_key(prefix)
        start = len(prefix) + 1
        sizes = {obj.key[start:]: obj.size for obj in self._iter(prefix)}
        problems = []
        for relative, recorded in sorted(marker.outputs.items()):
            size = sizes.get(relative)
            if size is None:
                problems.append(f"{relative} is missing")
            elif size != recorded.get("size"):
                problems.append(f"{relative} has {size} bytes, the marker records {recorded.get('size')}")
        return problems

    def require_committed(self, prefix: str) -> Marker:
        """Returns the verified marker of ``prefix``.

        Raises:
            NotCommittedError: Naming the prefix, when it has no marker or its marker does not match the objects
                (missing, or another size).
        """
        marker = self.read_marker(prefix)
        if marker is None:
            raise NotCommittedError(
                f"{self.url(prefix)} has no {MARKER_NAME} marker: the job that writes it did "
                "not finish (or is rewriting it); refusing to read a partial output"
            )
        problems = self.marker_problems(prefix, marker)
        if problems:
            shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            raise NotCommittedError(
                f"{self.url(prefix)} has a {MARKER_NAME} marker that does not match its objects ({shown}); "
                "re-run the job that writes it"
            )
        return marker

    def is_committed(self, prefix: str, inputs: Mapping[str, Any] | None = None) -> bool:
        """Whether ``prefix`` is committed and its marker matches its objects (and, if ``inputs`` is given, was
        made from exactly those inputs)."""
        marker = self.read_marker(prefix)
        if marker is None:
            return False
        if inputs is not None and marker.inputs_hash != hash_inputs(inputs):
            return False
        return not self.marker_problems(prefix, marker)

    def commit(
        self,
        prefix: str,
        *,
        inputs: Mapping[str, Any],
        producer: str = "cxrcore",
        preserve: tuple[str, ...] = (),
    ) -> Transaction:
        """Opens a staged write of the output ``prefix``; see the module docstring.

        Args:
            prefix: Output prefix, e.g. ``"runs/r1/gan/NORMAL"``.
            inputs: What the output is made from; recorded in the marker and hashed for skip checks.
            producer: Name written into the marker.
            preserve: Sub-prefixes (relative to ``prefix``, e.g. ``"checkpoints"``) that publishing leaves
                alone: they hold state with its own lifecycle, such as training checkpoints.

        Returns:
            A :class:`~cxrcore.storage.transaction.Transaction`, to be used as a context manager.
        """
        from cxrcore.storage.transaction import Transaction

        return Transaction(
            self, normalize_key(prefix), dict(inputs), producer, tuple(normalize_key(p) for p in preserve)
        )

    def collect_garbage(self, prefix: str, *, older_than: float | None = None) -> int:
        """Removes staging of dead writers under ``prefix``; returns how many objects (and temp files) went.

        A transaction's staging goes when its owner is not live (its claim is absent or its heartbeat is older
        than :attr:`lease_ttl_s`) and nothing of it is newer than ``older_than``; expired publish leases and,
        per backend, abandoned temp files or multipart uploads of dead transactions go too. Every commit runs
        it for its own prefix with :attr:`staging_max_age_s`.

        Args:
            prefix: The output prefix.
            older_than: Minimum age in seconds; ``None`` means :attr:`staging_max_age_s`.
        """
        from cxrcore.storage.leases import collect_garbage

        age = self.staging_max_age_s if older_than is None else float(older_than)
        return collect_garbage(self, normalize_key(prefix), older_than=age)

    def clean_staging(self, prefix: str) -> int:
        """Removes leftovers of interrupted transactions under ``prefix`` whatever their age; returns how many.

        Staging of live transactions (a concurrent writer of the same prefix) is left alone.
        """
        return self.collect_garbage(prefix, older_than=0.0)
