"""``file:///abs/dir`` stores: a local directory (a laptop, a CI runner, or a shared volume in a pod).

Writes are atomic: content goes to a hidden ``.<name>.<random>.part`` file in the destination directory, is
fsynced, and replaces the destination with :func:`os.replace`, so readers see the old object or the new one,
never a part. Every key is mapped to a path through :func:`cxrcore.storage.keys.safe_join` and refused when
it passes through a symbolic link, and listings never follow links, so neither a hostile key nor a planted
link reaches outside the root. Objects are the regular files of the tree; links are not objects.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from cxrcore.storage.base import ObjectInfo, ObjectNotFoundError, Store, StoreError
from cxrcore.storage.keys import UnsafeKeyError, normalize_key, safe_join

__all__ = ["FileStore", "is_temp_name", "parse_file_uri"]

_PART_SUFFIX = ".part"
_COPY_CHUNK = 1 << 20
#: How often a write retries when a concurrent delete prunes the empty directory it was about to use.
_WRITE_ATTEMPTS = 3


def is_temp_name(name: str) -> bool:
    """Whether a file name is an in-flight temp file (``.<name>.<random>.part``), hidden from listings.

    Both this module and :meth:`Store.get_file` name their temp files this way; an object whose own name
    merely ends in ``.part`` (``"shard-3.part"``) is still listed.
    """
    return name.startswith(".") and name.endswith(_PART_SUFFIX) and len(name) > len(_PART_SUFFIX) + 1


def parse_file_uri(uri: str | os.PathLike[str]) -> Path:
    """Returns the absolute directory of ``file:///abs/dir`` (or ``file://localhost/abs/dir``) or a plain path.

    Args:
        uri: A ``file://`` URI (percent-encoding allowed) or a plain filesystem path, relative paths being
            resolved against the current directory.

    Returns:
        The absolute, symlink-resolved directory path.

    Raises:
        ValueError: If the URI names another host, is relative, or is empty.
    """
    text = os.fspath(uri)
    if not isinstance(text, str) or not text:
        raise ValueError(f"A file store needs a directory. Received: uri={uri!r}")
    if text.startswith("file:"):
        parsed = urllib.parse.urlsplit(text)
        if parsed.netloc not in ("", "localhost"):
            shown = f"file://{parsed.hostname or ''}{parsed.path}"  # never echo user info
            raise ValueError(f"file:// URIs must name a local absolute path (file:///dir). Received: uri={shown!r}")
        if parsed.query or parsed.fragment:
            raise ValueError(f"file:// URIs must not carry a query or fragment. Received: uri={text!r}")
        path_text = urllib.parse.unquote(parsed.path)
        if not path_text.startswith("/"):
            raise ValueError(f"file:// URIs must hold an absolute path (file:///dir). Received: uri={text!r}")
    else:
        path_text = text
    if "\x00" in path_text:
        raise ValueError(f"A store directory must not contain NUL. Received: uri={text!r}")
    return Path(path_text).expanduser().resolve()


class FileStore(Store):
    """A store rooted at a local directory, created if missing.

    Attributes:
        root: The absolute, symlink-resolved root directory.
    """

    def __init__(self, uri: str | os.PathLike[str], *, max_workers: int = 8) -> None:
        """Opens (and creates) the directory store.

        Args:
            uri: ``file:///abs/dir`` or a plain path.
            max_workers: Threads used by directory transfers.

        Raises:
            ValueError: If ``uri`` is not a local path or ``max_workers < 1``.
            StoreError: If the root exists but is not a directory, or cannot be created.
        """
        root = parse_file_uri(uri)
        super().__init__(root.as_uri(), max_workers=max_workers)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create the store directory {root}: {exc}") from exc
        if not root.is_dir():
            raise StoreError(f"The store root {root} exists but is not a directory")
        self.root = root

    # ------------------------------------------------------------------ helpers
    def _path(self, key: str, *, directory: bool = False) -> Path:
        """Maps a key onto its path, refusing keys that lead outside the root or through any symlink.

        Args:
            key: Normalised key; ``""`` (the root) only with ``directory=True``.
            directory: The key names a directory (a listing prefix), so its last component is checked too.

        Raises:
            UnsafeKeyError: If the path escapes the root or passes through a symbolic link.
        """
        if not key and not directory:
            raise StoreError(f"The store root {self.uri} is not an object")
        path = safe_join(self.root, key)
        parts = path.relative_to(self.root).parts
        current = self.root
        for part in parts if directory else parts[:-1]:
            current = current / part
            if current.is_symlink():
                raise UnsafeKeyError(
                    f"File store keys never pass through symbolic links ({current} is one). Received: key={key!r}"
                )
        return path

    def _object_stat(self, key: str) -> os.stat_result | None:
        """``lstat`` of the object at ``key``, or ``None`` when absent (directories and links are not objects)."""
        path = self._path(key)
        try:
            st = path.lstat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(st.st_mode) or is_temp_name(path.name):
            return None
        return st

    def _missing(self, key: str) -> ObjectNotFoundError:
        return ObjectNotFoundError(f"No object at {self.url(key)}")

    def _write_atomic(self, key: str, fill: Callable[[BinaryIO], object], *, exclusive: bool = False) -> bool:
        """Writes ``key`` through a hidden temp file in its directory, fsynced, then ``os.replace``-d in.

        Args:
            key: Destination key.
            fill: Callable taking the open binary temp file and writing the content.
            exclusive: Only create: the temp file is hard-linked to the destination, which fails atomically
                when something is already there.

        Returns:
            Whether the object was written (always, unless ``exclusive`` and the key exists).
        """
        dest = self._path(key)
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}{_PART_SUFFIX}"
                # O_EXCL + 0o666: never reuse an existing file or link, and let the umask decide permissions.
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
            except FileNotFoundError:
                # A concurrent delete pruned the (empty) directory between mkdir and open; try again.
                if attempt + 1 == _WRITE_ATTEMPTS:
                    raise
                continue
            except (FileExistsError, NotADirectoryError) as exc:
                raise StoreError(
                    f"Cannot write {self.url(key)}: a path component is a file, not a directory ({exc})"
                ) from exc
            break
        try:
            with os.fdopen(fd, "wb") as handle:
                fill(handle)
                handle.flush()
                os.fsync(handle.fileno())
            # Check again: the directory must still be inside the root, link-free, when the rename happens.
            self._path(key)
            if exclusive:
                return self._link_exclusive(tmp, dest)
            os.replace(tmp, dest)
        except IsADirectoryError as exc:
            raise StoreError(f"Cannot write {self.url(key)}: a directory already has that name") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            _fsync_dir(dest.parent)
        return True

    @staticmethod
    def _link_exclusive(tmp: Path, dest: Path) -> bool:
        """Publishes the complete ``tmp`` at ``dest`` unless ``dest`` exists; returns whether it did."""
        try:
            os.link(tmp, dest)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV):
                raise
        # A filesystem without hard links: O_EXCL creation, then the content (readers may see it partial).
        try:
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as handle, open(tmp, "rb") as source:
            shutil.copyfileobj(source, handle, _COPY_CHUNK)
            handle.flush()
            os.fsync(handle.fileno())
        return True

    def _prune_empty_dirs(self, start: Path) -> None:
        """Removes ``start`` and its parents while they are empty, stopping at the root."""
        current = start
        while current != self.root and self.root in current.parents:
            try:
                current.rmdir()
            except OSError:
                return
            current = current.parent

    # ------------------------------------------------------------------ primitives
    def _put_bytes(self, key: str, data: bytes, sha256: str) -> None:
        self._write_atomic(key, lambda handle: handle.write(data))

    def _create_exclusive(self, key: str, data: bytes, sha256: str) -> bool:
        return self._write_atomic(key, lambda handle: handle.write(data), exclusive=True)

    def _put_file(self, key: str, path: Path, sha256: str) -> None:
        with open(path, "rb") as source:
            self._write_atomic(key, lambda handle: shutil.copyfileobj(source, handle, _COPY_CHUNK))

    def _get_bytes(self, key: str) -> bytes:
        if self._object_stat(key) is None:
            raise self._missing(key)
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise self._missing(key) from exc

    def _get_file(self, key: str, path: Path) -> None:
        if self._object_stat(key) is None:
            raise self._missing(key)
        try:
            with open(self._path(key), "rb") as source, open(path, "wb") as target:
                shutil.copyfileobj(source, target, _COPY_CHUNK)
        except FileNotFoundError as exc:
            raise self._missing(key) from exc

    def _head(self, key: str) -> ObjectInfo | None:
        st = self._object_stat(key)
        return None if st is None else ObjectInfo(key, st.st_size, st.st_mtime)

    def _iter(self, prefix: str) -> Iterator[ObjectInfo]:
        """Yields regular files under ``prefix`` sorted by key; links and in-flight temp files are skipped."""
        start = self._path(prefix, directory=True)
        found: list[ObjectInfo] = []
        pending = [(start, prefix)]
        while pending:
            directory, key_prefix = pending.pop()
            try:
                entries = list(os.scandir(directory))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                key = f"{key_prefix}/{entry.name}" if key_prefix else entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append((Path(entry.path), key))
                    elif entry.is_file(follow_symlinks=False) and not is_temp_name(entry.name):
                        st = entry.stat(follow_symlinks=False)
                        found.append(ObjectInfo(key, st.st_size, st.st_mtime))
                except FileNotFoundError:
                    continue  # removed while listing
        found.sort(key=lambda info: info.key)
        yield from found

    def _delete_many(self, keys: list[str]) -> None:
        parents = set()
        for key in keys:
            path = self._path(key)
            if self._object_stat(key) is None:
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            parents.add(path.parent)
        for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
            self._prune_empty_dirs(parent)

    def _copy(self, src: str, dst: str) -> None:
        if self._object_stat(src) is None:
            raise self._missing(src)
        try:
            with open(self._path(src), "rb") as source:
                self._write_atomic(dst, lambda handle: shutil.copyfileobj(source, handle, _COPY_CHUNK))
        except FileNotFoundError as exc:
            raise self._missing(src) from exc

    def _collect_backend_garbage(self, prefix: str, live_txids: set[str], older_than: float) -> int:
        """Removes temp files (``.<name>.<random>.part``) of killed writers under ``prefix`` older than ``older_than``.

        A writer in flight keeps modifying its temp file, and ``older_than`` is at least the lease time to live.
        """
        cutoff = time.time() - older_than
        removed = 0
        for dirpath, dirnames, filenames in os.walk(self._path(prefix, directory=True), followlinks=False):
            for name in filenames:
                path = Path(dirpath) / name
                with contextlib.suppress(FileNotFoundError):
                    st = path.lstat()
                    if is_temp_name(name) and stat.S_ISREG(st.st_mode) and st.st_mtime < cutoff:
                        path.unlink()
                        removed += 1
        return removed

    def local_path(self, key: str) -> Path:
        """Returns the filesystem path of ``key`` under the root (whether or not the object exists).

        Raises:
            UnsafeKeyError: If the key leads outside the root or through a symbolic link.
        """
        return self._path(normalize_key(key))


def _fsync_dir(directory: Path) -> None:
    """Makes a rename in ``directory`` durable (best effort: some filesystems refuse directory fsync)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
