"""Image files outside the store, as ``cxr evaluate`` and ``cxr predict`` read them.

Images of any size, mode and bit depth go through :func:`cxrcore.data.images.decode_image` (the decoder the
dataset import uses): 8-bit grayscale, squashed to the model's input size. An unreadable file is reported with
its reason, never fatal (docs/architecture.md#command-line).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cxrcore.data.images import DEFAULT_MAX_BYTES, ImageRejected, decode_image
from cxrcore.vocab import CLASS_NAMES

__all__ = ["CLASS_FOLDERS", "DecodedFile", "class_folders", "decode_files", "labelled_files"]

#: Class folders of an evaluation directory, in label order (0 NORMAL, 1 PNEUMONIA).
CLASS_FOLDERS: tuple[str, str] = CLASS_NAMES
_DECODE_WORKERS = 8


@dataclasses.dataclass
class DecodedFile:
    """One image file, decoded, or the reason it could not be.

    Attributes:
        path: The file.
        pixels: uint8 ``(size, size)`` grayscale, or ``None`` when the file was rejected.
        reason: Rejection reason (one of :data:`cxrcore.data.images.REJECTION_REASONS` or ``unreadable``).
        detail: The rejection in words.
    """

    path: Path
    pixels: np.ndarray | None
    reason: str | None = None
    detail: str | None = None


def _decode_path(path: Path, size: int) -> DecodedFile:
    try:
        size_bytes = path.stat().st_size
        if size_bytes > DEFAULT_MAX_BYTES:
            return DecodedFile(path, None, "too-large-file", f"{size_bytes} bytes; the limit is {DEFAULT_MAX_BYTES}")
        data = path.read_bytes()
    except OSError as exc:
        return DecodedFile(path, None, "unreadable", f"{type(exc).__name__}: {exc}")
    try:
        return DecodedFile(path, decode_image(data, size=size).pixels)
    except ImageRejected as exc:
        return DecodedFile(path, None, exc.reason, exc.detail)


def decode_files(paths: Sequence[Path], size: int) -> list[DecodedFile]:
    """Decodes image files at ``size`` px in a few threads, in the given order.

    Args:
        paths: Image files.
        size: Square side of the decoded pixels.

    Returns:
        One :class:`DecodedFile` per path.
    """
    if len(paths) <= 1:
        return [_decode_path(path, size) for path in paths]
    workers = max(1, min(_DECODE_WORKERS, os.cpu_count() or 1, len(paths)))
    with cf.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda path: _decode_path(path, size), paths))


def class_folders(data_dir: Path) -> dict[str, Path]:
    """The class folders of ``data_dir`` by class name (folder names match in any case).

    Raises:
        FileNotFoundError: ``data_dir`` is not a directory.
        ValueError: It holds no class folder.
    """
    if not data_dir.is_dir():
        raise FileNotFoundError(f"No directory at {data_dir}. Received: data_dir={str(data_dir)!r}")
    children = {child.name.upper(): child for child in sorted(data_dir.iterdir()) if child.is_dir()}
    found = {name: children[name] for name in CLASS_FOLDERS if name in children}
    if not found:
        raise ValueError(
            f"{data_dir} must hold class folders {' and '.join(CLASS_FOLDERS)} (any case). "
            f"Received: folders={sorted(children)}"
        )
    return found


def _image_files(folder: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
        files.extend(Path(dirpath) / name for name in sorted(filenames) if not name.startswith("."))
    return files


def labelled_files(data_dir: Path) -> tuple[list[Path], list[int]]:
    """Every non-hidden file below the class folders of ``data_dir`` with its label, in label then path order.

    Raises:
        FileNotFoundError: ``data_dir`` is not a directory.
        ValueError: It holds no class folder.
    """
    folders = class_folders(data_dir)
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(CLASS_FOLDERS):
        if name in folders:
            found = _image_files(folders[name])
            paths.extend(found)
            labels.extend([label] * len(found))
    return paths, labels
