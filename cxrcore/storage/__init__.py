"""Storage for cxr-gan jobs: one :class:`Store` interface over ``file://`` directories and ``s3://`` buckets.

Typical use::

    from cxrcore.storage import open_store

    store = open_store("s3://cxr-data/runs/r1", s3={"endpoint_url": "http://minio:9000", "addressing_style": "path"})
    manifest = store.require_committed("datasets/demo/v1")
    with store.commit("gan/NORMAL", inputs={"dataset": manifest.digest}) as tx:
        tx.put_file("generator.keras", "/tmp/generator.keras")
"""

from __future__ import annotations

import inspect
import os
import urllib.parse
from collections.abc import Mapping
from typing import Any

from cxrcore.storage.base import (
    MARKER_NAME,
    TMP_DIR,
    CommitBusyError,
    CommitConflictError,
    IntegrityError,
    Marker,
    NotCommittedError,
    ObjectInfo,
    ObjectNotFoundError,
    Store,
    StoreError,
    TransientStoreError,
    hash_inputs,
    sha256_bytes,
    sha256_file,
)
from cxrcore.storage.keys import UnsafeKeyError, join_key, normalize_key, safe_join
from cxrcore.storage.local import FileStore
from cxrcore.storage.s3 import S3Store, parse_s3_uri, redact_uri
from cxrcore.storage.transaction import Transaction

__all__ = [
    "MARKER_NAME",
    "TMP_DIR",
    "CommitBusyError",
    "CommitConflictError",
    "FileStore",
    "IntegrityError",
    "Marker",
    "NotCommittedError",
    "ObjectInfo",
    "ObjectNotFoundError",
    "S3Store",
    "S3_OPTION_NAMES",
    "Store",
    "StoreError",
    "Transaction",
    "TransientStoreError",
    "UnsafeKeyError",
    "hash_inputs",
    "join_key",
    "normalize_key",
    "open_store",
    "parse_s3_uri",
    "redact_uri",
    "safe_join",
    "sha256_bytes",
    "sha256_file",
]

#: Keyword options :class:`S3Store` accepts through ``open_store(..., s3=...)``.
S3_OPTION_NAMES = frozenset(
    name
    for name, parameter in inspect.signature(S3Store.__init__).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY
)


def open_store(uri: str | os.PathLike[str], *, s3: Mapping[str, Any] | None = None, max_workers: int = 8) -> Store:
    """Opens the store a URI names.

    Args:
        uri: ``s3://bucket[/prefix]``, ``file:///abs/dir`` or a plain local path.
        s3: Options of :class:`S3Store` (``endpoint_url``, ``region``, ``addressing_style``, ``verify_tls``,
            ``ca_bundle``, ``retry_mode``, ``max_attempts``, ``multipart_threshold_mb``, ``multipart_chunk_mb``,
            ``max_workers``); ignored for local stores, so one settings object can serve both. Credentials are
            not options: they come from boto3's default chain.
        max_workers: Threads of directory transfers (an ``s3["max_workers"]`` entry wins for S3 stores).

    Returns:
        A :class:`FileStore` or an :class:`S3Store`.

    Raises:
        ValueError: If the scheme is neither ``file`` nor ``s3``, the URI is malformed, or ``s3`` holds an
            unknown option.
    """
    if isinstance(uri, os.PathLike):
        return FileStore(uri, max_workers=max_workers)
    if not isinstance(uri, str) or not uri.strip():
        raise ValueError(f"A store URI must be a non-empty string. Received: uri={uri!r}")
    shown = redact_uri(uri)
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    if scheme == "s3":
        options = dict(s3 or {})
        unknown = sorted(set(options) - S3_OPTION_NAMES)
        if unknown:
            raise ValueError(
                f"Unknown S3 store options {unknown} (credentials are never options; boto3's default chain "
                f"provides them). Known: {sorted(S3_OPTION_NAMES)}. Received: uri={shown!r}"
            )
        options.setdefault("max_workers", max_workers)
        return S3Store(uri, **options)
    if scheme == "file" or scheme == "":
        return FileStore(uri, max_workers=max_workers)
    raise ValueError(
        f"Unsupported store URI scheme {scheme!r}: use s3:// or file:// (or a path). Received: uri={shown!r}"
    )
