"""``s3://bucket/prefix`` stores on AWS S3 or any S3-compatible server (MinIO, Ceph RGW), through boto3.

Credentials come only from boto3's default chain — environment variables, the shared credentials file (a
mounted Kubernetes secret via ``AWS_SHARED_CREDENTIALS_FILE``), web identity (IRSA) or instance metadata —
and are never passed as parameters, stored on the object, or written into error messages.

The endpoint is ``endpoint_url`` when given, else whatever boto3 resolves, which honours the standard
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` environment variables.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import boto3
import boto3.exceptions
import boto3.s3.transfer
import botocore.config
import botocore.exceptions

from cxrcore.storage.base import (
    ObjectInfo,
    ObjectNotFoundError,
    Store,
    StoreError,
    TransientStoreError,
)
from cxrcore.storage.keys import UnsafeKeyError, join_key, normalize_key
from cxrcore.storage.s3_errors import (
    BODY_READ_ERRORS,
    TRANSLATED_ERRORS,
    ErrorKind,
    classify,
)

__all__ = ["S3Store", "parse_s3_uri", "redact_uri"]

T = TypeVar("T")

_MIB = 1024 * 1024
#: S3 refuses multipart parts below 5 MiB (except the last) and above 5 GiB.
_MIN_PART_MB = 5
_MAX_PART_MB = 5 * 1024
_DELETE_BATCH = 1000
_ADDRESSING_STYLES = ("auto", "path", "virtual")
_RETRY_MODES = ("standard", "adaptive", "legacy")
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
#: Error codes of S3 servers that do not support conditional writes (``If-None-Match: *``).
_NO_CONDITIONAL_CODES = frozenset({"NotImplemented", "501"})
#: Cap of the pause between attempts of a whole-object read, as botocore's standard retry mode.
_MAX_BACKOFF_S = 20.0


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Splits ``s3://bucket/prefix`` into its bucket and normalised prefix.

    Args:
        uri: The URI, e.g. ``"s3://cxr-data/runs/r1"``; the prefix may be empty (``"s3://cxr-data"``).

    Returns:
        ``(bucket, prefix)``, the prefix without leading or trailing slashes (``""`` for the bucket root).

    Raises:
        ValueError: If the scheme is not ``s3``, the bucket name breaks the S3 naming rules, or the URI
            carries a query, fragment, port or user info.
        UnsafeKeyError: If the prefix holds ``..``, backslashes or control characters.
    """
    if not isinstance(uri, str):
        raise ValueError(f"S3 URI must be a string. Received: uri={type(uri).__name__}")
    parsed = urllib.parse.urlsplit(uri)
    shown = redact_uri(uri)
    if parsed.scheme.lower() != "s3":
        raise ValueError(f"S3 URI must start with 's3://'. Received: uri={shown!r}")
    if parsed.query or parsed.fragment or "?" in uri or "#" in uri:
        raise ValueError(f"S3 URI must not carry a query or fragment. Received: uri={shown!r}")
    bucket = parsed.netloc
    if "@" in bucket or ":" in bucket:
        raise ValueError(
            f"S3 URI must not carry user info or a port (credentials are never part of a URI). Received: uri={shown!r}"
        )
    if not _BUCKET_NAME.match(bucket) or ".." in bucket or _looks_like_ip(bucket):
        raise ValueError(
            "S3 bucket names are 3-63 characters of lowercase letters, digits, dots and hyphens, starting and "
            f"ending with a letter or digit, and not an IP address. Received: bucket={bucket!r}"
        )
    try:
        prefix = normalize_key(parsed.path.lstrip("/"), allow_empty=True)
    except UnsafeKeyError as exc:
        raise UnsafeKeyError(f"S3 URI prefix is unsafe: {exc}. Received: uri={shown!r}") from exc
    return bucket, prefix


def _looks_like_ip(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


def redact_uri(uri: str) -> str:
    """Returns ``uri`` with any user info (``user:secret@``) replaced by ``***@``, for use in messages.

    Args:
        uri: Any URI or URL, e.g. ``"http://key:secret@minio:9000"``.

    Returns:
        The URI without credentials, e.g. ``"http://***@minio:9000"``; other strings unchanged.
    """
    try:
        parsed = urllib.parse.urlsplit(uri)
    except ValueError:
        return "<unparseable uri>"
    if "@" not in parsed.netloc:
        return uri
    return urllib.parse.urlunsplit(parsed._replace(netloc="***@" + parsed.netloc.rsplit("@", 1)[1]))


class S3Store(Store):
    """A store rooted at ``s3://bucket/prefix``.

    Objects are written with their sha256 as user metadata (``x-amz-meta-sha256``); files above
    ``multipart_threshold_mb`` go up and down in parallel multipart transfers, and copies stay server side.
    Failures are sorted by one table (:mod:`cxrcore.storage.s3_errors`) into :class:`TransientStoreError`
    (exit 75) and :class:`StoreError`; whole-object reads also retry a response body that breaks mid-stream.

    Attributes:
        bucket: The bucket name.
        prefix: The root prefix inside the bucket (``""`` for the bucket root).
        client: The boto3 S3 client (thread-safe; shared by every transfer of this store).
        endpoint_url: The endpoint the client talks to.
        transfer_config: The :class:`boto3.s3.transfer.TransferConfig` used by file transfers and copies.
        max_attempts: Attempts per request (botocore) and per whole-object read (here).
    """

    #: Base in seconds of the jittered exponential pause between attempts of a whole-object read.
    retry_base_delay_s: float = 1.0

    def __init__(
        self,
        uri: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        addressing_style: str = "auto",
        verify_tls: bool = True,
        ca_bundle: str | None = None,
        retry_mode: str = "standard",
        max_attempts: int = 5,
        multipart_threshold_mb: int = 64,
        multipart_chunk_mb: int = 16,
        max_workers: int = 8,
    ) -> None:
        """Creates the store and its client; no request is sent until the first operation.

        Args:
            uri: ``s3://bucket`` or ``s3://bucket/prefix``.
            endpoint_url: ``http(s)://host[:port]`` of an S3-compatible server, e.g. MinIO. ``None`` lets
                boto3 resolve it (AWS, or ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``).
            region: Region name; ``None`` uses boto3's default (``AWS_REGION`` / ``AWS_DEFAULT_REGION``).
            addressing_style: ``"path"`` (MinIO and most on-premise servers), ``"virtual"`` or ``"auto"``.
            verify_tls: Verify the server's TLS certificate. Only turn off for throwaway test servers.
            ca_bundle: Path of a PEM bundle of trusted CAs (private PKI); implies ``verify_tls``.
            retry_mode: botocore retry mode: ``"standard"``, ``"adaptive"`` or ``"legacy"``.
            max_attempts: Total attempts per request, the first one included.
            multipart_threshold_mb: Files of at least this many MiB use multipart transfers (>= 5).
            multipart_chunk_mb: Part size in MiB of multipart transfers (5 to 5120).
            max_workers: Threads of directory transfers, and of parts inside one multipart transfer.

        Raises:
            ValueError: If an argument is out of range; the message names it and its value (with any
                credentials in ``endpoint_url`` redacted).
        """
        bucket, prefix = parse_s3_uri(uri)
        super().__init__(f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}", max_workers=max_workers)
        _validate_options(
            endpoint_url=endpoint_url,
            region=region,
            addressing_style=addressing_style,
            verify_tls=verify_tls,
            ca_bundle=ca_bundle,
            retry_mode=retry_mode,
            max_attempts=max_attempts,
            multipart_threshold_mb=multipart_threshold_mb,
            multipart_chunk_mb=multipart_chunk_mb,
        )
        self.bucket = bucket
        self.prefix = prefix
        self._root = f"{prefix}/" if prefix else ""
        self._bucket_verified = False
        self._conditional_writes = True
        self.max_attempts = max_attempts
        config = botocore.config.Config(
            region_name=region,
            retries={"mode": retry_mode, "total_max_attempts": max_attempts},
            s3={"addressing_style": addressing_style},
            max_pool_connections=max(10, 2 * max_workers),
            connect_timeout=10,
            read_timeout=60,
            user_agent_extra="cxr-gan",
        )
        verify: bool | str = os.fspath(ca_bundle) if ca_bundle is not None else verify_tls
        # A session per store: boto3's default session is not safe to share across threads while clients
        # are being created, and a private one keeps this store's settings away from other code.
        session = boto3.session.Session()
        self.client = session.client("s3", endpoint_url=endpoint_url, verify=verify, config=config)
        self.endpoint_url = self.client.meta.endpoint_url
        self.transfer_config = boto3.s3.transfer.TransferConfig(
            multipart_threshold=multipart_threshold_mb * _MIB,
            multipart_chunksize=multipart_chunk_mb * _MIB,
            max_concurrency=max_workers,
            num_download_attempts=max_attempts,
            use_threads=True,
            preferred_transfer_client="classic",
        )

    def __repr__(self) -> str:
        return f"S3Store({self.uri!r}, endpoint_url={redact_uri(self.endpoint_url)!r})"

    # ------------------------------------------------------------------ helpers
    def _full(self, key: str) -> str:
        return f"{self._root}{key}"

    def _where(self, key: str | None) -> str:
        return self.url(key or "")

    @contextlib.contextmanager
    def _translate(
        self, operation: str, key: str | None, *, not_found_is_missing: bool = True
    ) -> Iterator[None]:
        """Turns boto3/botocore failures inside the block into :class:`StoreError` subclasses."""
        try:
            yield
        except StoreError:
            raise
        except TRANSLATED_ERRORS as exc:
            raise self._store_error(exc, operation, key, not_found_is_missing=not_found_is_missing) from exc

    def _store_error(
        self, exc: BaseException, operation: str, key: str | None, *, not_found_is_missing: bool
    ) -> StoreError:
        """The :class:`StoreError` (or :class:`TransientStoreError`) of ``exc``, by :func:`classify`'s verdict."""
        where = self._where(key)
        failure = classify(exc)
        detail = f"{failure.code or failure.status}: {failure.message}"
        if failure.kind == ErrorKind.NO_BUCKET:
            return self._no_bucket_error()
        if failure.kind == ErrorKind.NOT_FOUND and not_found_is_missing:
            # A HEAD answers a bare 404 for a missing bucket too; tell the two apart once.
            self._check_bucket()
            return ObjectNotFoundError(f"No object at {where}")
        if failure.kind == ErrorKind.DENIED:
            return StoreError(
                f"S3 {operation} of {where} was denied ({failure.code}): check the bucket policy and the "
                "credentials of boto3's default chain (environment, AWS_SHARED_CREDENTIALS_FILE, IRSA)"
            )
        if failure.kind == ErrorKind.CREDENTIALS:
            return StoreError(
                f"S3 {operation} of {where} was refused ({detail}); the credentials found by "
                "boto3's default chain do not match this endpoint"
            )
        if failure.kind == ErrorKind.NO_CREDENTIALS:
            return StoreError(
                f"S3 {operation} of {where} found no credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "mount a credentials file and point AWS_SHARED_CREDENTIALS_FILE at it, or use IRSA"
            )
        if failure.kind == ErrorKind.UNREACHABLE:
            return TransientStoreError(
                f"S3 {operation} of {where} could not reach the endpoint {redact_uri(self.endpoint_url)}: "
                f"{failure.message.split(':', 1)[0]}"
            )
        if failure.transient:
            return TransientStoreError(f"S3 {operation} of {where} failed after retries ({detail})")
        if failure.code:
            return StoreError(f"S3 {operation} of {where} failed ({detail})")
        return StoreError(f"S3 {operation} of {where} failed ({failure.message})")

    def _read_with_retries(self, operation: str, key: str, read: Callable[[], T]) -> T:
        """Runs a whole-object read, again when its response body breaks (botocore retries only requests).

        Attempts and pauses follow the requests' policy: ``max_attempts`` in all, jittered exponential pauses
        of at most 20 s. Then the failure is a :class:`TransientStoreError` (exit 75).
        """
        for attempt in range(1, self.max_attempts + 1):
            try:
                with self._translate(operation, key):
                    return read()
            except TransientStoreError as exc:
                if attempt == self.max_attempts or not isinstance(exc.__cause__, BODY_READ_ERRORS):
                    raise
            pause = min(_MAX_BACKOFF_S, self.retry_base_delay_s * 2 ** (attempt - 1))
            time.sleep(random.random() * pause)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _no_bucket_error(self) -> StoreError:
        return StoreError(
            f"S3 bucket {self.bucket} does not exist or is not accessible at {redact_uri(self.endpoint_url)} "
            f"(store {self.uri})"
        )

    def _check_bucket(self) -> None:
        """Raises a clear :class:`StoreError` when the bucket is missing or forbidden; checked once."""
        if self._bucket_verified:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except TRANSLATED_ERRORS as exc:
            if classify(exc).kind in (ErrorKind.NOT_FOUND, ErrorKind.NO_BUCKET, ErrorKind.DENIED):
                raise self._no_bucket_error() from exc
            raise self._store_error(exc, "HeadBucket", None, not_found_is_missing=False) from exc
        self._bucket_verified = True

    # ------------------------------------------------------------------ primitives
    def _put_bytes(self, key: str, data: bytes, sha256: str) -> None:
        with self._translate("PutObject", key, not_found_is_missing=False):
            self.client.put_object(
                Bucket=self.bucket, Key=self._full(key), Body=data, Metadata={"sha256": sha256}
            )

    def _put_file(self, key: str, path: Path, sha256: str) -> None:
        with self._translate("upload", key, not_found_is_missing=False):
            self.client.upload_file(
                Filename=os.fspath(path),
                Bucket=self.bucket,
                Key=self._full(key),
                ExtraArgs={"Metadata": {"sha256": sha256}},
                Config=self.transfer_config,
            )

    def _create_exclusive(self, key: str, data: bytes, sha256: str) -> bool:
        """``PutObject`` with ``If-None-Match: *``; a server that does not implement it gets a plain put."""
        if not self._conditional_writes:
            self._put_bytes(key, data, sha256)
            return True
        try:
            with self._translate("PutObject", key, not_found_is_missing=False):
                self.client.put_object(
                    Bucket=self.bucket, Key=self._full(key), Body=data, Metadata={"sha256": sha256}, IfNoneMatch="*"
                )
        except StoreError as exc:
            failure = classify(exc.__cause__) if exc.__cause__ is not None else None
            if failure is not None and failure.kind == ErrorKind.PRECONDITION:
                return False
            if failure is not None and failure.code in _NO_CONDITIONAL_CODES:
                self._conditional_writes = False  # the publish lease alone guards this server's markers
                return self._create_exclusive(key, data, sha256)
            raise
        return True

    def _get_bytes(self, key: str) -> bytes:
        def read() -> bytes:
            response = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
            with contextlib.closing(response["Body"]) as body:
                return body.read()

        return self._read_with_retries("GetObject", key, read)

    def _get_file(self, key: str, path: Path) -> None:
        def download() -> None:
            self.client.download_file(
                Bucket=self.bucket, Key=self._full(key), Filename=os.fspath(path), Config=self.transfer_config
            )

        self._read_with_retries("download", key, download)

    def _head(self, key: str) -> ObjectInfo | None:
        try:
            with self._translate("HeadObject", key):
                response = self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        except ObjectNotFoundError:
            return None
        modified = response.get("LastModified")
        return ObjectInfo(key, int(response["ContentLength"]), modified.timestamp() if modified else None)

    def _iter(self, prefix: str) -> Iterator[ObjectInfo]:
        """Lists objects under ``prefix`` in key order; keys are relative to the store root, as stored.

        A key written by another tool may be unsafe (``..``, a leading slash); it is yielded unchanged so that
        consumers such as :meth:`Store.download_dir` refuse it loudly instead of skipping data silently.
        Zero-byte "folder" placeholders (keys ending in ``/``) are not objects and are skipped.
        """
        list_prefix = self._full(f"{prefix}/") if prefix else self._root
        paginator = self.client.get_paginator("list_objects_v2")
        with self._translate("ListObjectsV2", prefix or None, not_found_is_missing=False):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=list_prefix):
                for entry in page.get("Contents", []):
                    full_key = entry["Key"]
                    if full_key.endswith("/"):
                        continue
                    modified = entry.get("LastModified")
                    yield ObjectInfo(
                        full_key[len(self._root) :], int(entry["Size"]), modified.timestamp() if modified else None
                    )

    def _delete_many(self, keys: list[str]) -> None:
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _DELETE_BATCH):
            batch = unique[start : start + _DELETE_BATCH]
            with self._translate("DeleteObjects", batch[0], not_found_is_missing=False):
                response = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": self._full(key)} for key in batch], "Quiet": True},
                )
            errors = response.get("Errors", [])
            if errors:
                details = ", ".join(
                    f"{error.get('Key')} ({error.get('Code')}: {error.get('Message')})" for error in errors[:5]
                )
                more = f" and {len(errors) - 5} more" if len(errors) > 5 else ""
                raise StoreError(f"S3 DeleteObjects in {self.uri} failed for {len(errors)} keys: {details}{more}")

    def _copy(self, src: str, dst: str) -> None:
        with self._translate("HeadObject", src):
            head = self.client.head_object(Bucket=self.bucket, Key=self._full(src))
        # Multipart copies do not carry user metadata over by themselves; pass the sha256 on explicitly.
        with self._translate("copy", dst, not_found_is_missing=False):
            self.client.copy(
                CopySource={"Bucket": self.bucket, "Key": self._full(src)},
                Bucket=self.bucket,
                Key=self._full(dst),
                ExtraArgs={"Metadata": dict(head.get("Metadata", {})), "MetadataDirective": "REPLACE"},
                Config=self.transfer_config,
            )

    def _collect_backend_garbage(self, prefix: str, live_txids: set[str], older_than: float) -> int:
        """Aborts unfinished multipart uploads into ``<prefix>/_tmp/<txid>/`` of dead transactions.

        An upload counts when its transaction is not live and it was started more than ``older_than`` seconds
        ago (server time); S3 keeps the parts of an abandoned upload, and bills them, until it is aborted.
        """
        tmp = self._full(join_key(prefix, "_tmp")) + "/"
        aborted = 0
        paginator = self.client.get_paginator("list_multipart_uploads")
        with self._translate("ListMultipartUploads", prefix, not_found_is_missing=False):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=tmp):
                for upload in page.get("Uploads", []):
                    txid = upload["Key"][len(tmp) :].split("/", 1)[0]
                    started = upload.get("Initiated")
                    if txid in live_txids or started is None or time.time() - started.timestamp() < older_than:
                        continue
                    with contextlib.suppress(botocore.exceptions.ClientError):
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        aborted += 1
        return aborted


def _validate_options(
    *,
    endpoint_url: str | None,
    region: str | None,
    addressing_style: str,
    verify_tls: bool,
    ca_bundle: str | None,
    retry_mode: str,
    max_attempts: int,
    multipart_threshold_mb: int,
    multipart_chunk_mb: int,
) -> None:
    """Raises ``ValueError`` naming the first out-of-range S3 option and its value."""
    if endpoint_url is not None:
        parsed = urllib.parse.urlsplit(endpoint_url) if isinstance(endpoint_url, str) else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
            shown = redact_uri(endpoint_url) if isinstance(endpoint_url, str) else repr(endpoint_url)
            raise ValueError(f"endpoint_url must be an http(s)://host[:port] URL. Received: endpoint_url={shown}")
        if "@" in parsed.netloc:
            raise ValueError(
                "endpoint_url must not embed credentials; they come from boto3's default chain. "
                f"Received: endpoint_url={redact_uri(endpoint_url)}"
            )
    if region is not None and (not isinstance(region, str) or not region.strip()):
        raise ValueError(f"region must be a non-empty string or None. Received: region={region!r}")
    if addressing_style not in _ADDRESSING_STYLES:
        raise ValueError(
            f"addressing_style must be one of {_ADDRESSING_STYLES}. Received: addressing_style={addressing_style!r}"
        )
    if not isinstance(verify_tls, bool):
        raise ValueError(f"verify_tls must be a bool. Received: verify_tls={verify_tls!r}")
    if ca_bundle is not None:
        if not verify_tls:
            raise ValueError(
                f"ca_bundle needs verify_tls=True. Received: ca_bundle={ca_bundle!r}, verify_tls={verify_tls!r}"
            )
        if not isinstance(ca_bundle, (str, os.PathLike)) or not Path(ca_bundle).is_file():
            raise ValueError(
                f"ca_bundle must be the path of an existing PEM file. Received: ca_bundle={ca_bundle!r}"
            )
    if retry_mode not in _RETRY_MODES:
        raise ValueError(f"retry_mode must be one of {_RETRY_MODES}. Received: retry_mode={retry_mode!r}")
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValueError(f"max_attempts must be an integer >= 1. Received: max_attempts={max_attempts!r}")
    if (
        isinstance(multipart_threshold_mb, bool)
        or not isinstance(multipart_threshold_mb, int)
        or multipart_threshold_mb < _MIN_PART_MB
    ):
        raise ValueError(
            f"multipart_threshold_mb must be an integer >= {_MIN_PART_MB}. "
            f"Received: multipart_threshold_mb={multipart_threshold_mb!r}"
        )
    if (
        isinstance(multipart_chunk_mb, bool)
        or not isinstance(multipart_chunk_mb, int)
        or not _MIN_PART_MB <= multipart_chunk_mb <= _MAX_PART_MB
    ):
        raise ValueError(
            f"multipart_chunk_mb must be an integer from {_MIN_PART_MB} to {_MAX_PART_MB} (S3 part size limits). "
            f"Received: multipart_chunk_mb={multipart_chunk_mb!r}"
        )
