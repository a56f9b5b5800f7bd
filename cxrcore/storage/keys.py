"""Object-key and local-path normalisation that can never escape a root.

Every key that reaches a store goes through :func:`normalize_key`; every local path derived from an untrusted
name (an archive member, an object key being downloaded) goes through :func:`safe_join`.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

__all__ = ["UnsafeKeyError", "normalize_key", "join_key", "safe_join"]

_FORBIDDEN_CHARS = {"\x00", "\\"}


class UnsafeKeyError(ValueError):
    """A key or path that is absolute, climbs out of its root, or holds forbidden characters."""


def normalize_key(key: str, *, allow_empty: bool = False) -> str:
    """Returns ``key`` as a clean relative POSIX key, or raises.

    Empty components and ``.`` are dropped; ``..``, absolute keys, backslashes, NUL and other control
    characters are refused, because a key that needs them is either a mistake or an attack.

    Args:
        key: The key relative to the store root, e.g. ``"datasets/demo/v1/manifest.csv"``.
        allow_empty: Accept ``""`` (the root itself), used for listing.

    Returns:
        The normalised key, without leading or trailing slashes.

    Raises:
        UnsafeKeyError: If the key could escape the root or is not a string.
    """
    if not isinstance(key, str):
        raise UnsafeKeyError(f"Object key must be a string. Received: key={key!r}")
    if any(ch in _FORBIDDEN_CHARS or ord(ch) < 32 for ch in key):
        raise UnsafeKeyError(f"Object key holds a control character or backslash. Received: key={key!r}")
    if key.startswith("/"):
        raise UnsafeKeyError(f"Object key must be relative to the store root. Received: key={key!r}")
    parts = [p for p in key.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeKeyError(f"Object key must not contain '..'. Received: key={key!r}")
    if parts and len(parts[0]) >= 2 and parts[0][1] == ":":
        raise UnsafeKeyError(f"Object key looks like a drive path. Received: key={key!r}")
    normalized = "/".join(parts)
    if not normalized and not allow_empty:
        raise UnsafeKeyError(f"Object key must not be empty. Received: key={key!r}")
    return normalized


def join_key(*parts: str) -> str:
    """Joins key parts with ``/`` and normalises the result (each part may hold slashes)."""
    return normalize_key(posixpath.join(*[p for p in parts if p]) if parts else "", allow_empty=True)


def safe_join(root: str | os.PathLike[str], key: str) -> Path:
    """Maps a key onto a path under ``root`` and proves it stays there, following symlinks.

    Args:
        root: Local directory acting as the root.
        key: Untrusted relative key.

    Returns:
        The absolute path of ``key`` under ``root``.

    Raises:
        UnsafeKeyError: If the key, or a symlink on its way, leads outside ``root``.
    """
    clean = normalize_key(key, allow_empty=True)
    root_path = Path(root).resolve()
    candidate = (root_path / clean) if clean else root_path
    resolved = candidate.resolve()
    if resolved != root_path and root_path not in resolved.parents:
        raise UnsafeKeyError(f"Path escapes its root {root_path} (through a symlink?). Received: key={key!r}")
    return candidate
