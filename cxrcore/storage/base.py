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
3. Readers call :meth:`Store.require_committed` (or :meth:`Store.read_marker`) and refuse prefixes without
   a marker; :meth:`Store.get_bytes` with ``sha256=`` verifies content.
"""

from __future__ import annotations

import abc
import concurrent.futures as cf
import dataclasses
import datetime as dt
import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cxrcore.storage.keys import join_key, normalize_key, safe_join

__all__ = [
    "MARKER_NAME",
    "TMP_DIR",
    "Marker",
    "NotCommittedError",
    "ObjectInfo",
    "ObjectNotFoundError",
    "IntegrityError",
    "Store",
    "StoreError",
    "Transaction",
    "TransientStoreError",
    "hash_inputs",
    "sha256_bytes",
    "sha256_file",
]

MARKER_NAME = "_SUCCESS"
TMP_DIR = "_tmp"
_CHUNK = 1 << 20


class StoreError(RuntimeError):
    """Base class of storage failures."""


class TransientStoreError(StoreError):
    """A store failure that may go away on a re-run (connection lost, throttled, 5xx after retries).

    Jobs exit with code 75 (EX_TEMPFAIL) on it, and the Argo templates retry exactly that exit code.
    """


class ObjectNotFoundError(StoreError, FileNotFoundError):
    """The key does not exist in the store."""


class NotCommittedError(StoreError):
    """An output prefix has no ``_SUCCESS`` marker (never finished, or being rewritten)."""


class IntegrityError(StoreError):
    """Stored content does not match its recorded sha256."""


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    """One stored object: its key relative to the store root and its size in bytes."""

    key: str
    size: int


@dataclasses.dataclass(frozen=True)
class Marker:
    """Content of a ``_SUCCESS`` marker.

    Attributes:
        prefix: The committed prefix.
        inputs: What the output was made from (job settings, upstream marker digests, ...).
        inputs_hash: sha256 of the canonical JSON of ``inputs``; a job whose marker holds the same hash skips.
        outputs: ``{relative_key: {"sha256": ..., "size": ...}}`` of every committed object.
        created: ISO-8601 UTC timestamp.
        producer: Free-form producer name (job name and version).
    """

    prefix: str
    inputs: dict[str, Any]
    inputs_hash: str
    outputs: dict[str, dict[str, Any]]
    created: str
    producer: str

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, *, key: str) -> Marker:
        try:
            raw = json.loads(data)
            return cls(**{f.name: raw[f.name] for f in dataclasses.fields(cls)})
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"Marker {key} is not a valid _SUCCESS marker: {exc}") from exc

    @property
    def digest(self) -> str:
        """sha256 of the marker's outputs and inputs; downstream jobs put it in their own inputs."""
        return hashlib.sha256(
            json.dumps({"inputs_hash": self.inputs_hash, "outputs": self.outputs}, sort_keys=True).encode()
        ).hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a local file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_inputs(inputs: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``inputs`` (sorted keys, ``str`` for non-JSON values)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


class Store(abc.ABC):
    """A root (``file:///dir`` or ``s3://bucket/prefix``) holding objects under normalised keys.

    All public methods take keys relative to the root; they are normalised and refused when they could escape
    it (see :func:`cxrcore.storage.keys.normalize_key`).
    """

    #: Threads used by :meth:`upload_dir` / :meth:`download_dir`.
    max_workers: int = 8

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
        """Returns the ``_SUCCESS`` marker of ``prefix``, or ``None`` when the output is not committed."""
        key = join_key(normalize_key(prefix), MARKER_NAME)
        try:
            data = self._get_bytes(key)
        except ObjectNotFoundError:
            return None
        return Marker.from_json(data, key=self.url(key))

    def require_committed(self, prefix: str) -> Marker:
        """Returns the marker of ``prefix`` or raises :class:`NotCommittedError` naming the prefix."""
        marker = self.read_marker(prefix)
        if marker is None:
            raise NotCommittedError(
                f"{self.url(prefix)} has no {MARKER_NAME} marker: the job that writes it did "
                "not finish (or is rewriting it); refusing to read a partial output"
            )
        return marker

    def is_committed(self, prefix: str, inputs: Mapping[str, Any] | None = None) -> bool:
        """Whether ``prefix`` is committed (and, if ``inputs`` is given, from exactly those inputs)."""
        marker = self.read_marker(prefix)
        if marker is None:
            return False
        return inputs is None or marker.inputs_hash == hash_inputs(inputs)

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
            A :class:`Transaction`, to be used as a context manager.
        """
        return Transaction(
            self, normalize_key(prefix), dict(inputs), producer, tuple(normalize_key(p) for p in preserve)
        )

    def clean_staging(self, prefix: str) -> int:
        """Removes leftovers of interrupted transactions under ``prefix``; returns how many objects."""
        return self.delete_prefix(join_key(normalize_key(prefix), TMP_DIR))


class Transaction:
    """A staged write of one output prefix; publish happens on a clean ``__exit__``.

    Keys passed to the ``put_*`` methods are relative to the output prefix. ``_SUCCESS`` and ``_tmp`` are
    reserved.
    """

    def __init__(
        self, store: Store, prefix: str, inputs: dict[str, Any], producer: str, preserve: tuple[str, ...] = ()
    ) -> None:
        self.store = store
        self.preserve = preserve
        self.prefix = prefix
        self.inputs = inputs
        self.producer = producer
        self.txid = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
        self.staging = join_key(prefix, TMP_DIR, self.txid)
        self.outputs: dict[str, dict[str, Any]] = {}
        self.marker: Marker | None = None
        self._open = False

    def __enter__(self) -> Transaction:
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
            # The staging area is garbage on success and on failure alike; a cleanup error must not hide the
            # error that got us here (leftovers are removed by the next commit or clean_staging).
            try:
                self.store.delete_prefix(self.staging)
            except Exception:
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
        """Moves staged objects into place and writes the marker last. Called by ``__exit__``."""
        old_marker_key = join_key(self.prefix, MARKER_NAME)
        # 1. Hide the previous output (if any) before touching it.
        self.store._delete_many([old_marker_key])
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
        # 4. Marker last.
        marker = Marker(
            prefix=self.prefix,
            inputs=json.loads(json.dumps(self.inputs, default=str)),
            inputs_hash=hash_inputs(self.inputs),
            outputs=dict(sorted(self.outputs.items())),
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            producer=self.producer,
        )
        self.store._put_bytes(old_marker_key, marker.to_json(), sha256_bytes(marker.to_json()))
        self.marker = marker
        return marker
