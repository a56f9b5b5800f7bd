"""What the store is made of: its reserved names, its errors, an object, a ``_SUCCESS`` marker and hashing.

Shared by :mod:`cxrcore.storage.base` (the Store), :mod:`cxrcore.storage.transaction` (commits) and
:mod:`cxrcore.storage.leases` (one writer per prefix) without an import cycle between them
(docs/architecture.md#commit-protocol).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MARKER_NAME",
    "TMP_DIR",
    "CommitBusyError",
    "CommitConflictError",
    "IntegrityError",
    "Marker",
    "NotCommittedError",
    "ObjectInfo",
    "ObjectNotFoundError",
    "StoreError",
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


class CommitConflictError(StoreError):
    """Another writer, working from different inputs, holds the publish of the same prefix.

    Two jobs with different settings are writing one output; a retry would only overwrite the other's result,
    so jobs exit 1 on it (the message names the prefix and the other transaction).
    """


class CommitBusyError(TransientStoreError):
    """An identical writer held the publish of a prefix for longer than :attr:`Store.publish_wait_s`.

    Transient (exit 75): once that writer finishes, a retry finds its output committed and does nothing.
    """


class ObjectNotFoundError(StoreError, FileNotFoundError):
    """The key does not exist in the store."""


class NotCommittedError(StoreError):
    """An output prefix has no ``_SUCCESS`` marker (never finished, or being rewritten)."""


class IntegrityError(StoreError):
    """Stored content does not match its recorded sha256."""


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    """One stored object.

    Attributes:
        key: The key relative to the store root.
        size: Size in bytes.
        modified: Last modification as POSIX seconds when the backend reports it (listings do), else ``None``;
            not part of equality.
    """

    key: str
    size: int
    modified: float | None = dataclasses.field(default=None, compare=False)


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
