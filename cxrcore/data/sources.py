"""Enumerating the files of an import source — folder, zip archive or S3 prefix — without extracting anything.

:func:`open_source` turns a user-supplied location into a :class:`Source`; :meth:`Source.scan` lists its files
as :class:`SourceFile` objects (a relative POSIX path, a size and a ``read()`` callable) and the entries it
refuses as :class:`SourceRejection` objects, both sorted by path. Nothing is written to disk: zip members are
decompressed into memory one at a time when ``read()`` is called, with the size limit enforced on the bytes
actually produced (a zip header can lie).

Refusals (``SourceRejection.reason``); the path rules are the same for all three kinds of source:

* ``unsafe-path``: absolute paths, ``..``, drive letters, backslashes, control characters, non-UTF-8 names;
  S3 keys that are not already in canonical form (``a//b``, ``./a``).
* ``symlink``: symlink members of a zip; symlinks in a folder that dangle or resolve outside the root.
* ``hidden-file``: any component starting with ``.`` (``.DS_Store``, ``._x.jpeg``, ``.git/...``),
  ``__MACOSX/``, ``Thumbs.db``, ``desktop.ini``.
* ``nested-archive``: ``.zip``, ``.tar``, ``.gz``, ``.tgz``, ``.bz2``, ``.xz``, ``.7z``, ``.rar``, ... entries.
* ``zip-bomb``: zip members declaring more than ``max_file_bytes``, a compression ratio above ``max_ratio``
  (for members above 1 MiB), or pushing the declared total past ``max_total_bytes`` (in path order); also
  raised by ``read()`` when a member inflates past the per-file limit, whatever its header says.
* ``too-large-file`` / ``too-large-total``: folder files and S3 objects above ``max_file_bytes``, or beyond
  ``max_total_bytes`` in total (in path order).
* ``special-file``: FIFOs, sockets and devices (a read would block or never end).
* ``encrypted``: password-protected zip members.
* ``unsupported-compression``: zip members using a method Python cannot inflate (e.g. Deflate64).
* ``duplicate-path``: a zip member with the same (normalised) path as an earlier one (the first is kept).

Directory entries are skipped, not rejected. Symlinked directories inside a folder are not descended (their
files are reached through their real location); ones leading outside the root are rejected as ``symlink``.

Reading can still fail for a file that passed the scan; ``read()`` then raises :class:`SourceFileRejected`
(a subclass of :class:`cxrcore.data.images.ImageRejected`) with a ``reason`` from the list above, or
``corrupt`` for a zip member whose data does not match its header (size or CRC). Transport failures (an
``OSError`` of a vanished file, a :class:`cxrcore.storage.StoreError`) are not policy decisions and propagate
unchanged.

Helpers for the Kaggle ``chest_xray`` layout, :func:`classify_path` (class and original split from the
folders) and :func:`parse_patient_id` (patient from the file name), live in :mod:`cxrcore.data.kaggle` and are
re-exported here (docs/architecture.md#data-flow).
"""

from __future__ import annotations

import abc
import copy
import dataclasses
import errno
import functools
import lzma
import os
import re
import stat
import threading
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cxrcore.data.images import ImageRejected
from cxrcore.data.kaggle import SPLIT_NAMES, PatientId, classify_path, parse_patient_id
from cxrcore.logging import redact_text
from cxrcore.storage.keys import UnsafeKeyError, normalize_key, safe_join
from cxrcore.vocab import CLASS_NAMES

__all__ = [
    "ARCHIVE_SUFFIXES",
    "CLASS_NAMES",
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_MAX_RATIO",
    "DEFAULT_MAX_TOTAL_BYTES",
    "SPLIT_NAMES",
    "FolderSource",
    "PatientId",
    "S3Source",
    "Source",
    "SourceFile",
    "SourceFileRejected",
    "SourceRejection",
    "ZipSource",
    "classify_path",
    "open_source",
    "parse_patient_id",
]

DEFAULT_MAX_FILE_BYTES = 64 * 2**20
DEFAULT_MAX_TOTAL_BYTES = 16 * 2**30
DEFAULT_MAX_RATIO = 200

#: File-name endings treated as archives (never opened: nested archives are refused).
ARCHIVE_SUFFIXES: tuple[str, ...] = (
    ".zip",
    ".tar",
    ".tgz",
    ".tar.gz",
    ".gz",
    ".bz2",
    ".tbz",
    ".tbz2",
    ".xz",
    ".txz",
    ".zst",
    ".lz4",
    ".7z",
    ".rar",
    ".jar",
    ".cab",
)

_HIDDEN_NAMES = frozenset({"__macosx", "thumbs.db", "desktop.ini"})
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_SUPPORTED_COMPRESSION = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})
# The compression-ratio rule only applies above this declared size: tiny, highly compressible files (a blank
# mask, a text file) are harmless whatever their ratio; bombs need volume.
_RATIO_MIN_BYTES = 2**20
_READ_CHUNK = 2**20
# Any length larger than a real member can be: lets a zip member be inflated until its data really ends,
# instead of stopping where the (possibly lying) header says it does.
_UNBOUNDED_SIZE = 2**62


# --------------------------------------------------------------------------------------------------- records
@dataclasses.dataclass(frozen=True)
class SourceFile:
    """One file of a source.

    Attributes:
        path: POSIX path relative to the source root, e.g. ``"chest_xray/train/NORMAL/IM-0115-0001.jpeg"``.
        size: Size in bytes as listed (declared uncompressed size for zip members).
        read: Returns the file's bytes, at most the source's ``max_file_bytes``; raises
            :class:`SourceFileRejected` when the content breaks the source's limits. Picklable for folder and
            zip sources (and for S3 sources, which reconnect lazily in the receiving process).
    """

    path: str
    size: int
    read: Callable[[], bytes] = dataclasses.field(compare=False, repr=False)


@dataclasses.dataclass
class SourceRejection:
    """An entry refused at enumeration time.

    Attributes:
        path: The entry's path as found (raw archive name or key for ``unsafe-path``), relative to the root.
        reason: Short machine code (see the module docstring).
        detail: Human-readable explanation.
    """

    path: str
    reason: str
    detail: str


class SourceFileRejected(ImageRejected):
    """Raised by :attr:`SourceFile.read` when a file's actual content breaks a limit the scan could not see.

    A subclass of :class:`cxrcore.data.images.ImageRejected`, so callers can handle refusals while reading and
    while decoding in one place.

    Attributes:
        path: The file's path relative to the source root.
        reason: Short machine code: ``zip-bomb``, ``too-large-file``, ``symlink``, ``special-file`` or
            ``corrupt``.
        detail: Human-readable explanation.
    """

    def __init__(self, path: str, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.args = (f"{path}: {reason}: {detail}",)
        self.path = path

    def __reduce__(self):
        return (type(self), (self.path, self.reason, self.detail))


# --------------------------------------------------------------------------------------------------- policy
def _validate_limits(max_file_bytes: Any, max_total_bytes: Any, max_ratio: Any) -> None:
    for name, value in (("max_file_bytes", max_file_bytes), ("max_total_bytes", max_total_bytes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
    if isinstance(max_ratio, bool) or not isinstance(max_ratio, (int, float)) or not max_ratio > 0:
        raise ValueError(f"max_ratio must be a positive number. Received: max_ratio={max_ratio!r}")


def _path_problem(path: str) -> tuple[str, str] | None:
    """Returns ``(reason, detail)`` when a clean relative path is a hidden file or a nested archive."""
    parts = path.split("/")
    for part in parts:
        if part.startswith("."):
            return "hidden-file", f"component {part!r} is a hidden (dot) file or folder"
        if part.lower() in _HIDDEN_NAMES:
            return "hidden-file", f"component {part!r} is operating-system metadata"
    lower = parts[-1].lower()
    for suffix in ARCHIVE_SUFFIXES:
        if lower.endswith(suffix):
            return "nested-archive", f"archives inside a source are not opened ({suffix}); extract it separately"
    return None


def _clean_path(raw: str) -> str:
    """Normalises an untrusted relative path or raises :class:`UnsafeKeyError`."""
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnsafeKeyError(f"path is not valid UTF-8. Received: path={raw!r}") from exc
    return normalize_key(raw)


def _read_capped(handle, limit: int) -> bytes | None:
    """Reads at most ``limit + 1`` bytes from a binary file object; ``None`` when more than ``limit`` exist."""
    chunks = []
    total = 0
    while True:
        chunk = handle.read(min(_READ_CHUNK, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            return None
    return b"".join(chunks)


# --------------------------------------------------------------------------------------------------- sources
class Source(abc.ABC):
    """An import source.

    Attributes:
        kind: ``"folder"``, ``"zip"`` or ``"s3"``.
        description: Where the data came from, for manifests: a ``file://`` or ``s3://`` URI without
            credentials or query strings.
        max_file_bytes: Largest accepted file (uncompressed), in bytes.
        max_total_bytes: Largest accepted sum of file sizes, in bytes.
        max_ratio: Largest accepted zip compression ratio (uncompressed / compressed).
    """

    kind: str = ""
    #: Reasons given to files above ``max_file_bytes`` / beyond ``max_total_bytes``.
    _file_limit_reason = "too-large-file"
    _total_limit_reason = "too-large-total"

    def __init__(
        self, description: str, *, max_file_bytes: int, max_total_bytes: int, max_ratio: float
    ) -> None:
        _validate_limits(max_file_bytes, max_total_bytes, max_ratio)
        self.description = description
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes
        self.max_ratio = max_ratio

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r})"

    def __enter__(self) -> Source:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def close(self) -> None:
        """Releases open handles (a later ``read()`` reopens them)."""

    @abc.abstractmethod
    def _entries(self) -> tuple[list[SourceFile], list[SourceRejection]]:
        """Enumerates candidate files (size limits not yet applied) and rejections, in any order."""

    def scan(self) -> tuple[list[SourceFile], list[SourceRejection]]:
        """Lists the source's acceptable files and the entries it refuses.

        The size limits are applied last, in path order, so the same tree gives the same answer whatever
        its kind of source.

        Returns:
            ``(files, rejections)``, each sorted by path. Files are not read; call :attr:`SourceFile.read`.
        """
        candidates, rejections = self._entries()
        candidates.sort(key=lambda item: item.path)
        files: list[SourceFile] = []
        total = 0
        for file in candidates:
            if file.size > self.max_file_bytes:
                rejections.append(
                    SourceRejection(
                        file.path,
                        self._file_limit_reason,
                        f"{file.size} bytes exceed the per-file limit of {self.max_file_bytes}",
                    )
                )
            elif total + file.size > self.max_total_bytes:
                rejections.append(
                    SourceRejection(
                        file.path,
                        self._total_limit_reason,
                        f"the source's total would reach {total + file.size} bytes, above the limit of "
                        f"{self.max_total_bytes}",
                    )
                )
            else:
                total += file.size
                files.append(file)
        rejections.sort(key=lambda item: (item.path, item.reason))
        return files, rejections


def _read_local_file(root: str, rel: str, limit: int) -> bytes:
    """Reads a folder source's file (picklable target of :attr:`SourceFile.read`)."""
    try:
        path = safe_join(root, rel)
    except UnsafeKeyError as exc:
        raise SourceFileRejected(rel, "symlink", f"the path now leads outside the source root: {exc}") from exc
    # O_NONBLOCK: opening a FIFO that replaced the file must not hang the job.
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise SourceFileRejected(rel, "special-file", "not a regular file")
        data = _read_capped(handle, limit)
    if data is None:
        raise SourceFileRejected(rel, "too-large-file", f"the file grew beyond the per-file limit of {limit} bytes")
    return data


class FolderSource(Source):
    """A local directory tree (for example the Kaggle ``chest_xray`` folder or a plain ``NORMAL/ PNEUMONIA/``)."""

    kind = "folder"

    def __init__(self, root: str | os.PathLike[str], **limits: Any) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise NotADirectoryError(f"A folder source needs a directory. Received: src={os.fspath(root)!r}")
        super().__init__(self.root.as_uri(), **limits)

    def _inside(self, target: str) -> bool:
        root = str(self.root)
        return target == root or target.startswith(root.rstrip("/") + "/")

    def _entries(self) -> tuple[list[SourceFile], list[SourceRejection]]:
        files: list[SourceFile] = []
        rejections: list[SourceRejection] = []
        root = str(self.root)
        walk_errors: list[OSError] = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=walk_errors.append):
            dirnames.sort()
            for name in list(dirnames):
                full = os.path.join(dirpath, name)
                if os.path.islink(full):
                    dirnames.remove(name)  # never descended; files inside the root are reached directly
                    target = os.path.realpath(full)
                    if not self._inside(target):
                        rel = full[len(root.rstrip("/")) + 1 :]
                        rejections.append(
                            SourceRejection(rel, "symlink", "symlinked folder leads outside the source root")
                        )
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                raw = full[len(root.rstrip("/")) + 1 :]
                try:
                    rel = _clean_path(raw)
                except UnsafeKeyError as exc:
                    rejections.append(SourceRejection(raw, "unsafe-path", str(exc)))
                    continue
                try:
                    link_stat = os.lstat(full)
                except FileNotFoundError:
                    continue  # vanished while walking
                if stat.S_ISLNK(link_stat.st_mode):
                    target = os.path.realpath(full)
                    if not self._inside(target):
                        rejections.append(SourceRejection(rel, "symlink", "symlink leads outside the source root"))
                        continue
                    try:
                        file_stat = os.stat(target)
                    except OSError:
                        rejections.append(SourceRejection(rel, "symlink", "dangling symlink"))
                        continue
                else:
                    file_stat = link_stat
                if not stat.S_ISREG(file_stat.st_mode):
                    rejections.append(SourceRejection(rel, "special-file", "not a regular file (FIFO, socket, device)"))
                    continue
                problem = _path_problem(rel)
                if problem is not None:
                    rejections.append(SourceRejection(rel, *problem))
                    continue
                reader = functools.partial(_read_local_file, root, rel, self.max_file_bytes)
                files.append(SourceFile(rel, int(file_stat.st_size), reader))
        if walk_errors:
            first = walk_errors[0]
            raise OSError(
                first.errno or errno.EIO,
                f"Could not list {len(walk_errors)} folder(s) of the source {self.description}: {first}",
            )
        return files, rejections


class ZipSource(Source):
    """A zip archive read in place: members are inflated into memory one at a time, never extracted.

    The archive is opened lazily and kept open per process (``zipfile`` serialises concurrent member reads of
    one handle, so ``read()`` is safe from several threads); a forked worker opens its own handle.
    """

    kind = "zip"
    _file_limit_reason = "zip-bomb"
    _total_limit_reason = "zip-bomb"

    def __init__(self, path: str | os.PathLike[str], **limits: Any) -> None:
        self.path = Path(path).resolve()
        super().__init__(self.path.as_uri(), **limits)
        self._lock = threading.Lock()
        self._handle: zipfile.ZipFile | None = None
        self._handle_pid: int | None = None
        try:
            with zipfile.ZipFile(self.path) as archive:
                archive.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError) as exc:
            raise ValueError(
                f"{self.path} is not a valid zip archive ({type(exc).__name__}: {exc}). "
                f"Received: src={os.fspath(path)!r}"
            ) from exc

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handle"] = None
        state["_handle_pid"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _archive(self) -> zipfile.ZipFile:
        with self._lock:
            if self._handle is None or self._handle_pid != os.getpid():
                self._handle = zipfile.ZipFile(self.path)
                self._handle_pid = os.getpid()
            return self._handle

    def close(self) -> None:
        with self._lock:
            if self._handle is not None and self._handle_pid == os.getpid():
                self._handle.close()
            self._handle = None
            self._handle_pid = None

    def _entries(self) -> tuple[list[SourceFile], list[SourceRejection]]:
        files: list[SourceFile] = []
        rejections: list[SourceRejection] = []
        seen: set[str] = set()
        for info in self._archive().infolist():
            raw = info.filename
            mode = info.external_attr >> 16
            if info.is_dir() or stat.S_ISDIR(mode):
                continue
            try:
                rel = _clean_path(raw)
            except UnsafeKeyError as exc:
                rejections.append(SourceRejection(raw, "unsafe-path", str(exc)))
                continue
            rejection = self._member_problem(info, rel, mode, seen)
            if rejection is not None:
                rejections.append(rejection)
                continue
            seen.add(rel)
            files.append(SourceFile(rel, int(info.file_size), functools.partial(self._read_member, info, rel)))
        return files, rejections

    def _member_problem(
        self, info: zipfile.ZipInfo, rel: str, mode: int, seen: set[str]
    ) -> SourceRejection | None:
        if stat.S_ISLNK(mode):
            return SourceRejection(rel, "symlink", "symlink member (never followed)")
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # 0: no Unix file type recorded (Windows, writestr)
            return SourceRejection(rel, "special-file", f"member of file type {stat.filemode(mode)[0]!r}")
        problem = _path_problem(rel)
        if problem is not None:
            return SourceRejection(rel, *problem)
        if info.flag_bits & 0x1:
            return SourceRejection(rel, "encrypted", "password-protected member")
        if info.compress_type not in _SUPPORTED_COMPRESSION:
            return SourceRejection(
                rel, "unsupported-compression", f"compression method {info.compress_type} cannot be inflated"
            )
        if rel in seen:
            return SourceRejection(rel, "duplicate-path", "an earlier member has the same path")
        declared = int(info.file_size)
        compressed = int(info.compress_size)
        if declared > self.max_file_bytes:
            return SourceRejection(
                rel, "zip-bomb", f"declares {declared} bytes, above the per-file limit of {self.max_file_bytes}"
            )
        if declared > _RATIO_MIN_BYTES and declared > self.max_ratio * max(compressed, 1):
            return SourceRejection(
                rel,
                "zip-bomb",
                f"compression ratio {declared / max(compressed, 1):.0f}:1 ({compressed} -> {declared} bytes) "
                f"exceeds {self.max_ratio}:1",
            )
        return None

    def _read_member(self, info: zipfile.ZipInfo, rel: str) -> bytes:
        # Inflate until the data really ends (not where the header says it does), reading at most limit + 1
        # bytes; the CRC is still verified by zipfile when the stream ends.
        probe = copy.copy(info)
        probe.file_size = _UNBOUNDED_SIZE
        limit = self.max_file_bytes
        try:
            with self._archive().open(probe) as member:
                data = _read_capped(member, limit)
        except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, NotImplementedError, ValueError) as exc:
            raise SourceFileRejected(
                rel, "corrupt", f"member could not be inflated: {type(exc).__name__}: {exc}"
            ) from exc
        if data is None:
            raise SourceFileRejected(
                rel,
                "zip-bomb",
                f"member inflates past the per-file limit of {limit} bytes (its header declares {info.file_size})",
            )
        if len(data) != info.file_size:
            raise SourceFileRejected(
                rel, "corrupt", f"member inflates to {len(data)} bytes but its header declares {info.file_size}"
            )
        return data


class S3Source(Source):
    """Objects under an ``s3://bucket/prefix``, read through :func:`cxrcore.storage.open_store`.

    Paths are the object keys relative to the prefix. A pickled copy reconnects lazily (boto3 clients are not
    picklable), using the same ``s3_options``; credentials always come from boto3's default chain.
    """

    kind = "s3"

    def __init__(self, uri: str, *, s3_options: Mapping[str, Any] | None = None, **limits: Any) -> None:
        from cxrcore.storage import open_store

        self._s3_options = dict(s3_options or {})
        self._store = open_store(uri, s3=self._s3_options)
        self._uri = self._store.uri
        super().__init__(self._store.uri, **limits)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_store"] = None
        return state

    def _get_store(self):
        if self._store is None:
            from cxrcore.storage import open_store

            self._store = open_store(self._uri, s3=self._s3_options)
        return self._store

    def _entries(self) -> tuple[list[SourceFile], list[SourceRejection]]:
        files: list[SourceFile] = []
        rejections: list[SourceRejection] = []
        for obj in self._get_store().list(""):
            raw = obj.key
            try:
                key = _clean_path(raw)
                if key != raw:
                    raise UnsafeKeyError(
                        f"key is not in canonical form (would be read as {key!r}). Received: key={raw!r}"
                    )
            except UnsafeKeyError as exc:
                rejections.append(SourceRejection(raw, "unsafe-path", str(exc)))
                continue
            problem = _path_problem(key)
            if problem is not None:
                rejections.append(SourceRejection(key, *problem))
                continue
            files.append(SourceFile(key, int(obj.size), functools.partial(self._read_object, key)))
        return files, rejections

    def _read_object(self, key: str) -> bytes:
        # The listing's size was checked by the scan; this catches an object replaced by a bigger one since.
        data = self._get_store().get_bytes(key)
        if len(data) > self.max_file_bytes:
            raise SourceFileRejected(
                key, "too-large-file", f"{len(data)} bytes exceed the per-file limit of {self.max_file_bytes}"
            )
        return data


# --------------------------------------------------------------------------------------------------- dispatch
#: ``scheme:`` at the start of a source (two letters or more: not a drive letter).
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


def _shown(src: Any) -> Any:
    """``src`` as error messages show it: credentials redacted (also in a URL a path collapsed to ``https:/``)."""
    return redact_text(src) if isinstance(src, str) else src


def _local_path(src: str) -> Path:
    if src.lower().startswith("file:"):
        from cxrcore.storage.local import parse_file_uri

        return parse_file_uri(src)
    if "\x00" in src:
        raise ValueError(f"A source path must not contain NUL. Received: src={_shown(src)!r}")
    return Path(src).expanduser()


def _has_zip_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) in _ZIP_MAGICS
    except OSError:
        return False


def open_source(
    src: str | os.PathLike[str],
    *,
    s3_options: Mapping[str, Any] | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_ratio: float = DEFAULT_MAX_RATIO,
) -> Source:
    """Opens an import source.

    Dispatch: ``s3://bucket/prefix`` -> :class:`S3Source`; an existing directory -> :class:`FolderSource`; a
    file named ``*.zip`` (any case) or starting with a zip signature -> :class:`ZipSource`. ``file://`` URIs are
    accepted for local paths.

    Args:
        src: ``s3://bucket/prefix``, a directory, a zip file, or a ``file://`` URI of either.
        s3_options: Options of :class:`cxrcore.storage.S3Store` (``endpoint_url``, ``addressing_style``, ...);
            ignored for local sources. Never credentials.
        max_file_bytes: Largest accepted file (uncompressed) in bytes.
        max_total_bytes: Largest accepted sum of file sizes in bytes.
        max_ratio: Largest accepted zip compression ratio.

    Returns:
        The :class:`Source`; nothing has been listed yet (call :meth:`Source.scan`).

    Raises:
        FileNotFoundError: If a local path does not exist.
        ValueError: If a limit is invalid, the path is neither a directory nor a zip archive, the zip is not
            valid, or the S3 URI is malformed (for example it embeds credentials or a query string).
    """
    _validate_limits(max_file_bytes, max_total_bytes, max_ratio)
    limits = {"max_file_bytes": max_file_bytes, "max_total_bytes": max_total_bytes, "max_ratio": max_ratio}
    if isinstance(src, os.PathLike):
        src = os.fspath(src)
    if not isinstance(src, str) or not src.strip():
        raise ValueError(f"src must be a non-empty path or URI. Received: src={_shown(src)!r}")
    if src.lower().startswith("s3:"):
        return S3Source(src, s3_options=s3_options, **limits)
    scheme = _URL_SCHEME.match(src)
    if scheme and scheme.group(1).lower() != "file":
        raise ValueError(
            f"A source must be a directory, a zip archive, a file:// URI or an s3:// prefix; "
            f"{scheme.group(1)!r} URLs are not read. Received: src={_shown(src)!r}"
        )
    path = _local_path(src)
    if path.is_dir():
        return FolderSource(path, **limits)
    if path.is_file():
        if path.name.lower().endswith(".zip") or _has_zip_magic(path):
            return ZipSource(path, **limits)
        raise ValueError(
            f"A source must be a directory, a zip archive or an s3:// prefix; {path} is a file that is not a zip "
            f"archive. Received: src={_shown(src)!r}"
        )
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, f"Source not found. Received: src={_shown(src)!r}", _shown(str(path)))
    raise ValueError(f"A source must be a directory, a zip archive or an s3:// prefix. Received: src={_shown(src)!r}")
