"""Generators of good, odd and hostile image files and archives, for any test that needs them.

Everything is synthesised in memory in milliseconds (the 100 MB zip bomb, the slowest, is cached); no real
X-ray is ever copied into the project. Functions return ``bytes``; :func:`write_bytes`, :func:`write_tree` and
:func:`zip_tree` put them on disk or into an archive.

Usage::

    from tests.fixtures_images import image_bytes, truncated_jpeg, zip_slip

    data = image_bytes("RGB", "JPEG")
"""

from __future__ import annotations

import functools
import io
import os
import struct
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "BAD_IMAGE_CASES",
    "DEFAULT_SIZE",
    "VALID_IMAGE_CASES",
    "cmyk_jpeg",
    "empty_file",
    "exif_orientation_jpeg",
    "gradient",
    "image_bytes",
    "jpeg_bytes",
    "junk_entries_zip",
    "nested_zip",
    "palette_png_with_transparency",
    "png_12bit_in_16bit",
    "png_bomb",
    "png_bytes",
    "sample_tree",
    "text_as_jpeg",
    "truncated_jpeg",
    "truncated_png",
    "unsupported_format_image",
    "write_bytes",
    "write_tree",
    "zip_bomb",
    "zip_bytes",
    "zip_slip",
    "zip_symlink",
    "zip_tree",
    "zip_with_lying_size",
]

DEFAULT_SIZE = (48, 40)  # (width, height): deliberately not square, so the squash resize is exercised.


def gradient(width: int = DEFAULT_SIZE[0], height: int = DEFAULT_SIZE[1], *, maximum: int = 255) -> np.ndarray:
    """A diagonal gradient from 0 to ``maximum`` (inclusive), dtype ``uint16`` if ``maximum > 255`` else ``uint8``."""
    ys, xs = np.mgrid[0:height, 0:width]
    ramp = (xs + ys) / max(width + height - 2, 1)
    dtype = np.uint16 if maximum > 255 else np.uint8
    return np.rint(ramp * maximum).astype(dtype)


def _save(img: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def _rgb(width: int, height: int) -> Image.Image:
    base = gradient(width, height)
    return Image.fromarray(np.stack([base, 255 - base, np.full_like(base, 128)], axis=-1))


def _make(mode: str, width: int, height: int) -> Image.Image:
    """An in-memory image of ``mode`` with non-constant content."""
    if mode == "L":
        return Image.fromarray(gradient(width, height))
    if mode == "RGB":
        return _rgb(width, height)
    if mode == "RGBA":
        img = _rgb(width, height).convert("RGBA")
        img.putalpha(Image.fromarray(gradient(width, height)[:, ::-1].copy()))
        return img
    if mode == "LA":
        img = Image.fromarray(gradient(width, height)).convert("LA")
        img.putalpha(Image.fromarray(gradient(width, height)[::-1].copy()))
        return img
    if mode == "P":
        return _rgb(width, height).quantize(colors=64)
    if mode == "1":
        return Image.fromarray(gradient(width, height)).convert("1")
    if mode == "CMYK":
        return _rgb(width, height).convert("CMYK")
    if mode == "I;16":
        return Image.fromarray(gradient(width, height, maximum=4095))
    if mode == "I":
        return Image.fromarray(gradient(width, height, maximum=4095).astype(np.int32))
    if mode == "F":
        return Image.fromarray(gradient(width, height).astype(np.float32) / 255.0)
    raise ValueError(f"Unsupported fixture mode. Received: mode={mode!r}")


def image_bytes(mode: str, fmt: str = "PNG", size: tuple[int, int] = DEFAULT_SIZE, **params) -> bytes:
    """Encodes a synthetic image of ``mode`` (``L``, ``RGB``, ``RGBA``, ``LA``, ``P``, ``1``, ``CMYK``, ``I;16``,
    ``I``, ``F``) in Pillow format ``fmt`` at ``size`` = (width, height)."""
    return _save(_make(mode, *size), fmt, **params)


def jpeg_bytes(mode: str = "L", size: tuple[int, int] = DEFAULT_SIZE, quality: int = 90) -> bytes:
    """A valid JPEG (modes ``L``, ``RGB``, ``CMYK``)."""
    return image_bytes(mode, "JPEG", size, quality=quality)


def png_bytes(mode: str = "L", size: tuple[int, int] = DEFAULT_SIZE) -> bytes:
    """A valid PNG (modes ``L``, ``RGB``, ``RGBA``, ``LA``, ``P``, ``1``, ``I;16``)."""
    return image_bytes(mode, "PNG", size)


def cmyk_jpeg(size: tuple[int, int] = DEFAULT_SIZE) -> bytes:
    """A CMYK JPEG (as written by print workflows)."""
    return jpeg_bytes("CMYK", size)


def png_12bit_in_16bit(size: tuple[int, int] = DEFAULT_SIZE, low: int = 0, high: int = 4095) -> bytes:
    """A 16-bit grayscale PNG whose values span only ``low..high`` (12-bit by default), like a DICOM export."""
    ramp = gradient(*size, maximum=4095).astype(np.float64) / 4095
    values = np.rint(low + ramp * (high - low)).astype(np.uint16)
    return _save(Image.fromarray(values), "PNG")


def palette_png_with_transparency(size: tuple[int, int] = DEFAULT_SIZE) -> bytes:
    """A palette PNG where palette index 0 is transparent (a ``tRNS`` chunk, no alpha band)."""
    img = _make("P", *size)
    return _save(img, "PNG", transparency=0)


def exif_orientation_jpeg(orientation: int = 6, size: tuple[int, int] = (64, 32)) -> bytes:
    """A landscape JPEG whose top half is white and bottom half black, tagged with EXIF ``orientation``.

    With orientation 6 ("rotate 90 degrees clockwise to display"), the displayed image is portrait and its
    white half is on the right.
    """
    width, height = size
    pixels = np.zeros((height, width), dtype=np.uint8)
    pixels[: height // 2] = 255
    img = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _save(img, "JPEG", quality=95, exif=exif.tobytes())


def truncated_jpeg(size: tuple[int, int] = (256, 256)) -> bytes:
    """A valid JPEG cut in half."""
    data = jpeg_bytes("RGB", size)
    return data[: len(data) // 2]


def truncated_png(size: tuple[int, int] = (256, 256)) -> bytes:
    """A valid PNG cut in half (inside the IDAT chunk)."""
    data = image_bytes("RGB", "PNG", size, compress_level=0)
    return data[: len(data) // 2]


def empty_file() -> bytes:
    """A zero-byte file."""
    return b""


def text_as_jpeg() -> bytes:
    """Plain text, as found in a file somebody named ``notes.jpeg``."""
    return b"This is not an image, it is a note that was saved with a .jpeg extension.\n" * 4


def unsupported_format_image() -> bytes:
    """A valid image in a format outside the decoder's allow-list (PCX)."""
    return image_bytes("RGB", "PCX")


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


@functools.lru_cache(maxsize=8)
def png_bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    """A complete, valid 1-bit PNG of ``width x height`` black pixels that is only tens of KB on disk.

    Built by hand, streaming the zlib stream block by block, so generating it needs no big image in memory
    (20000x20000 takes about 0.3 s and ~50 KB; cached).
    """
    row_bytes = 1 + (width + 7) // 8  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    block_rows = max(1, (1 << 20) // row_bytes)
    block = bytes(row_bytes * block_rows)
    parts = []
    remaining = height
    while remaining > 0:
        rows = min(block_rows, remaining)
        parts.append(compressor.compress(block if rows == block_rows else bytes(row_bytes * rows)))
        remaining -= rows
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grayscale, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------------------------------- tables
#: name -> (bytes factory, expected Pillow format, expected stored mode). Every valid kind the decoder accepts.
VALID_IMAGE_CASES: dict[str, tuple] = {
    "jpeg-L": (lambda: jpeg_bytes("L"), "JPEG", "L"),
    "jpeg-RGB": (lambda: jpeg_bytes("RGB"), "JPEG", "RGB"),
    "jpeg-CMYK": (cmyk_jpeg, "JPEG", "CMYK"),
    "png-L": (lambda: png_bytes("L"), "PNG", "L"),
    "png-RGB": (lambda: png_bytes("RGB"), "PNG", "RGB"),
    "png-RGBA": (lambda: png_bytes("RGBA"), "PNG", "RGBA"),
    "png-LA": (lambda: png_bytes("LA"), "PNG", "LA"),
    "png-P": (lambda: png_bytes("P"), "PNG", "P"),
    "png-P-tRNS": (palette_png_with_transparency, "PNG", "P"),
    "png-1": (lambda: png_bytes("1"), "PNG", "1"),
    "png-I16-12bit": (png_12bit_in_16bit, "PNG", "I;16"),
    "bmp-RGB": (lambda: image_bytes("RGB", "BMP"), "BMP", "RGB"),
    "bmp-1": (lambda: image_bytes("1", "BMP"), "BMP", "1"),
    "tiff-L": (lambda: image_bytes("L", "TIFF"), "TIFF", "L"),
    "tiff-CMYK": (lambda: image_bytes("CMYK", "TIFF"), "TIFF", "CMYK"),
    "tiff-I16": (lambda: image_bytes("I;16", "TIFF"), "TIFF", "I;16"),
    "tiff-I32": (lambda: image_bytes("I", "TIFF"), "TIFF", "I"),
    "tiff-F": (lambda: image_bytes("F", "TIFF"), "TIFF", "F"),
    "gif-P": (lambda: image_bytes("P", "GIF"), "GIF", "P"),
    "webp-RGB": (lambda: image_bytes("RGB", "WEBP"), "WEBP", "RGB"),
    "webp-RGBA": (lambda: image_bytes("RGBA", "WEBP", lossless=True), "WEBP", "RGBA"),
    "ppm-RGB": (lambda: image_bytes("RGB", "PPM"), "PPM", "RGB"),
    "pgm-L": (lambda: image_bytes("L", "PPM"), "PPM", "L"),
}

#: name -> (bytes factory, expected :attr:`ImageRejected.reason`).
BAD_IMAGE_CASES: dict[str, tuple] = {
    "zero-bytes": (empty_file, "empty-file"),
    "text-named-jpeg": (text_as_jpeg, "not-an-image"),
    "random-bytes": (lambda: bytes(range(256)) * 8, "not-an-image"),
    "truncated-jpeg": (truncated_jpeg, "truncated"),
    "truncated-png": (truncated_png, "truncated"),
    "png-bomb-20000": (png_bomb, "decompression-bomb"),
    "pcx-not-allowed": (unsupported_format_image, "unsupported-format"),
}


# --------------------------------------------------------------------------------------------------- archives
def zip_bytes(entries: Mapping[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip holding ``entries`` (name -> content); names are stored verbatim, dangerous ones included."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data, compress_type=compression)
    return buffer.getvalue()


def zip_slip() -> bytes:
    """A zip with members that would land outside the extraction folder, next to one safe member."""
    good = jpeg_bytes("L")
    return zip_bytes(
        {
            "NORMAL/IM-0001-0001.jpeg": good,
            "../evil.jpeg": good,
            "/abs.jpeg": good,
            "NORMAL/../../up.jpeg": good,
            "C:/drive.jpeg": good,
            "NORMAL\\..\\..\\backslash.jpeg": good,
        }
    )


def zip_symlink(target: str = "../../../etc/passwd") -> bytes:
    """A zip with a symlink member ``NORMAL/link.jpeg`` pointing at ``target``, next to one safe member."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("NORMAL/IM-0001-0001.jpeg", jpeg_bytes("L"))
        link = zipfile.ZipInfo("NORMAL/link.jpeg", date_time=(2020, 1, 1, 0, 0, 0))
        link.create_system = 3  # Unix
        link.external_attr = 0o120777 << 16  # S_IFLNK | 0777
        archive.writestr(link, target)
    return buffer.getvalue()


@functools.lru_cache(maxsize=4)
def zip_bomb(uncompressed_bytes: int = 100 * 2**20, name: str = "NORMAL/bomb.jpeg") -> bytes:
    """A zip whose member ``name`` inflates to ``uncompressed_bytes`` zeros (~1000:1); streamed, cached.

    100 MiB compresses to ~100 KB and takes about half a second the first time.
    """
    buffer = io.BytesIO()
    chunk = bytes(1 << 20)
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED  # a ZipInfo does not inherit the archive's compression
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open(info, "w") as member:
            remaining = uncompressed_bytes
            while remaining > 0:
                piece = min(remaining, len(chunk))
                member.write(chunk[:piece])
                remaining -= piece
    return buffer.getvalue()


def zip_with_lying_size(content: bytes, declared_size: int, name: str = "NORMAL/liar.jpeg") -> bytes:
    """A one-member zip whose headers declare ``declared_size`` uncompressed bytes while the data inflates to
    ``content`` (CRC left correct). Both the local header and the central directory are patched."""
    data = bytearray(zip_bytes({name: content}))
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    if local != 0 or central < 0:
        raise AssertionError("unexpected zip layout")
    struct.pack_into("<I", data, local + 22, declared_size)  # local header: uncompressed size
    struct.pack_into("<I", data, central + 24, declared_size)  # central directory: uncompressed size
    return bytes(data)


def nested_zip() -> bytes:
    """A zip holding another zip (and one normal image)."""
    inner = zip_bytes({"NORMAL/IM-0002-0001.jpeg": jpeg_bytes("L")})
    return zip_bytes({"NORMAL/IM-0001-0001.jpeg": jpeg_bytes("L"), "NORMAL/more.zip": inner})


def junk_entries_zip() -> bytes:
    """A zip as produced by macOS Finder / Windows Explorer: resource forks, .DS_Store, Thumbs.db, ..."""
    good = jpeg_bytes("L")
    return zip_bytes(
        {
            "NORMAL/": b"",
            "NORMAL/IM-0001-0001.jpeg": good,
            "__MACOSX/NORMAL/._IM-0001-0001.jpeg": b"\x00\x05\x16\x07resource fork",
            "NORMAL/._IM-0001-0001.jpeg": b"\x00\x05\x16\x07resource fork",
            ".DS_Store": b"\x00\x00\x00\x01Bud1",
            "NORMAL/.DS_Store": b"\x00\x00\x00\x01Bud1",
            "NORMAL/Thumbs.db": b"\xd0\xcf\x11\xe0",
            "PNEUMONIA/desktop.ini": b"[.ShellClassInfo]\r\n",
        }
    )


def sample_tree(size: tuple[int, int] = (32, 32)) -> dict[str, bytes]:
    """A miniature of the Kaggle ``chest_xray`` layout, including its nested duplicate tree.

    Returns:
        Relative POSIX path -> file content; the duplicate tree holds byte-identical copies.
    """
    names = {
        "train/NORMAL": ["IM-0115-0001.jpeg", "NORMAL2-IM-0587-0001-0001.jpeg"],
        "train/PNEUMONIA": ["person1_virus_6.jpeg", "person1000_bacteria_2931.jpeg"],
        "test/NORMAL": ["IM-0001-0001.jpeg"],
        "test/PNEUMONIA": ["person100_bacteria_475.jpeg"],
        "val/NORMAL": ["NORMAL2-IM-1427-0001.jpeg"],
        "val/PNEUMONIA": ["person1946_bacteria_4874.jpeg"],
    }
    tree: dict[str, bytes] = {}
    for index, (folder, files) in enumerate(sorted(names.items())):
        for offset, name in enumerate(files):
            pixels = np.roll(gradient(*size), 3 * index + offset, axis=1)
            data = _save(Image.fromarray(pixels), "JPEG", quality=90)
            tree[f"chest_xray/{folder}/{name}"] = data
            tree[f"chest_xray/chest_xray/{folder}/{name}"] = data
    return dict(sorted(tree.items()))


# --------------------------------------------------------------------------------------------------- disk
def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Writes ``data`` to ``path`` (parents created) and returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_tree(root: str | os.PathLike[str], tree: Mapping[str, bytes]) -> Path:
    """Writes ``tree`` (relative POSIX path -> content) under ``root``; returns ``root``."""
    root = Path(root)
    for rel, data in tree.items():
        write_bytes(root / rel, data)
    root.mkdir(parents=True, exist_ok=True)
    return root


def zip_tree(tree: Mapping[str, bytes], *, with_dir_entries: bool = True) -> bytes:
    """Zips ``tree`` like ``zip -r`` does, directory entries included."""
    entries: dict[str, bytes] = {}
    if with_dir_entries:
        for rel in tree:
            parts = rel.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                entries.setdefault("/".join(parts[:depth]) + "/", b"")
    entries.update(tree)
    return zip_bytes(dict(sorted(entries.items())))
