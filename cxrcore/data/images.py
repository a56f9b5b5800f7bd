"""Decoding untrusted image bytes into fixed-size 8-bit grayscale arrays.

Every image that enters a dataset goes through :func:`decode_image`. It is a pure function of the given bytes
(no file system, no network) and treats its input as hostile:

* empty and oversized inputs are refused before Pillow sees them;
* only an allow-list of formats is opened (JPEG, PNG, BMP, TIFF, GIF, WEBP, PPM/PGM/PBM);
* the pixel count declared in the header is checked against ``max_pixels`` right after ``Image.open`` and
  before any pixel data is decoded (decompression bombs), without touching Pillow's global
  ``Image.MAX_IMAGE_PIXELS``;
* truncated files are refused (Pillow's global ``ImageFile.LOAD_TRUNCATED_IMAGES`` is never changed);
* the EXIF orientation is applied, every pixel mode is mapped to 8-bit grayscale, and the result is squashed
  to ``(size, size)`` as the paper did (it resized every image to 128x128).

DICOM files (recognised by content, :func:`cxrcore.data.dicom.is_dicom`: the ``DICM`` preamble or a raw data set,
whatever the file's name) are read by :func:`cxrcore.data.dicom.read_dicom` (Modality LUT, VOI LUT or window,
``MONOCHROME1`` inverted) and then take the same resize as every other image; the result also carries
:class:`cxrcore.data.dicom.DicomFacts` (modality, view, photometric interpretation, a keyed hash of the patient),
never a PHI value.

Metadata (EXIF, ICC profiles, text chunks, DICOM elements) never leaves this module: only pixels are returned.

Failures raise :class:`ImageRejected` with a short machine-readable ``reason`` for manifests and reports.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
from PIL import Image, ImageOps

from cxrcore.data.dicom import DICOM_REJECTION_REASONS, DicomFacts, DicomRejected, is_dicom, read_dicom
from cxrcore.data.rejects import ImageRejected

__all__ = [
    "ALLOWED_FORMATS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "MAX_SIZE",
    "MIN_SIZE",
    "REJECTION_REASONS",
    "DecodedImage",
    "ImageRejected",
    "decode_image",
    "encode_jpeg",
    "encode_png",
]

#: Pillow format names accepted by :func:`decode_image`. ``MPO`` is the name Pillow gives to camera JPEGs that
#: carry a multi-picture extension; it is a JPEG container and decodes through the JPEG plugin.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "MPO", "PNG", "BMP", "TIFF", "GIF", "WEBP", "PPM")
# The plugins handed to ``Image.open`` (MPO files are recognised by the JPEG plugin).
_OPEN_FORMATS: tuple[str, ...] = tuple(name for name in ALLOWED_FORMATS if name != "MPO")

#: Every reason :func:`decode_image` gives.
REJECTION_REASONS: tuple[str, ...] = (
    "empty-file",
    "not-an-image",
    "truncated",
    "decompression-bomb",
    "too-large-file",
    "unsupported-format",
    "corrupt",
    *DICOM_REJECTION_REASONS,
)

DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_BYTES = 64 * 2**20
MIN_SIZE = 16
MAX_SIZE = 2048

# JPEG DCT scaling (``Image.draft``) stops while the decoded image is still at least this many times the
# target on both axes; the final LANCZOS pass then works on an image >= 2x the target.
_DRAFT_FACTOR = 2
# ``reducing_gap`` for ``Image.resize``: a cheap box reduction to within 3x of the target, then LANCZOS.
_REDUCING_GAP = 3.0
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
# Messages Pillow uses when a PNG text/ICC chunk would decompress beyond its safety limits.
_CHUNK_BOMB_MESSAGES = ("Decompressed data too large", "Too much memory used in text chunks")


@dataclasses.dataclass
class DecodedImage:
    """A decoded, normalised image.

    Attributes:
        pixels: ``np.uint8`` array of shape ``(size, size)``, 8-bit grayscale.
        orig_width: Width declared by the file header (before EXIF orientation and resizing).
        orig_height: Height declared by the file header (before EXIF orientation and resizing).
        orig_mode: Pillow mode of the stored image, e.g. ``"RGB"``, ``"L"``, ``"I;16"`` (for DICOM the mode that
            holds its stored samples: ``L``, ``I;16`` or ``I``).
        format: Pillow format name, e.g. ``"JPEG"``, ``"PNG"``, or ``"DICOM"``.
        dicom: What a DICOM file says about itself (no PHI); ``None`` for other formats.
    """

    pixels: np.ndarray
    orig_width: int
    orig_height: int
    orig_mode: str
    format: str
    dicom: DicomFacts | None = None


def _validate_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")


def _validate_size(size: object) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be an integer between {MIN_SIZE} and {MAX_SIZE}. Received: size={size!r}")


def _open(data: bytes) -> Image.Image:
    """Opens ``data`` with the allowed Pillow plugins only (header parsing, no pixel decoding)."""
    try:
        img = Image.open(io.BytesIO(data), formats=_OPEN_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard fires inside ``open`` for absurd sizes (> 2 x MAX_IMAGE_PIXELS, or above
        # MAX_IMAGE_PIXELS when warnings are turned into errors).
        raise ImageRejected("decompression-bomb", f"Pillow refused the image size: {exc}") from exc
    except Image.UnidentifiedImageError:
        pass
    except Exception as exc:  # noqa: BLE001 - any parser failure on hostile bytes is a corrupt file
        raise ImageRejected("corrupt", f"image header could not be parsed: {type(exc).__name__}: {exc}") from exc
    else:
        if img.format in ALLOWED_FORMATS:
            return img
        other_format = img.format
        img.close()
        raise ImageRejected("unsupported-format", f"format {other_format} is not allowed")
    # Not one of the allowed formats: find out (headers only, nothing decoded) whether it is another image
    # format, so that reports can tell "a PSD was uploaded" from "this is not an image at all".
    try:
        with Image.open(io.BytesIO(data)) as probe:
            other_format = probe.format
    except Exception:  # noqa: BLE001 - including decompression-bomb guards: the answer is "not allowed" anyway
        other_format = None
    if other_format:
        raise ImageRejected(
            "unsupported-format",
            f"format {other_format} is not allowed; allowed formats: {', '.join(ALLOWED_FORMATS)}",
        )
    head = data[:16]
    raise ImageRejected("not-an-image", f"no image format recognised (first bytes: {head!r})")


def _load(img: Image.Image) -> None:
    """Decodes the pixel data, mapping Pillow's failures onto rejection reasons."""
    try:
        img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("decompression-bomb", f"Pillow refused the image size: {exc}") from exc
    except EOFError as exc:
        raise ImageRejected("truncated", f"image data ends early: {exc}") from exc
    except ValueError as exc:
        if any(message in str(exc) for message in _CHUNK_BOMB_MESSAGES):
            raise ImageRejected("decompression-bomb", f"a metadata chunk decompresses too far: {exc}") from exc
        raise ImageRejected("corrupt", f"image data could not be decoded: {exc}") from exc
    except OSError as exc:
        if "truncated" in str(exc):
            raise ImageRejected("truncated", f"image file is truncated: {exc}") from exc
        raise ImageRejected("corrupt", f"image data could not be decoded: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - any decoder failure on hostile bytes is a corrupt file
        raise ImageRejected("corrupt", f"image data could not be decoded: {type(exc).__name__}: {exc}") from exc


def _scale_to_uint8(array: np.ndarray) -> np.ndarray:
    """Linearly maps an integer/float array's own finite min..max onto 0..255 (constant -> zeros)."""
    values = array.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, dtype=np.uint8)
    low = float(values[finite].min())
    high = float(values[finite].max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values - low) * (255.0 / (high - low))
    scaled[~finite] = 0.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _to_grayscale(img: Image.Image) -> Image.Image:
    """Converts any Pillow mode to ``"L"``; alpha (or palette/tRNS transparency) is composited onto black."""
    mode = img.mode
    if mode in _SIXTEEN_BIT_MODES:
        return Image.fromarray(_scale_to_uint8(np.asarray(img)))
    has_alpha = "A" in img.getbands() or "a" in mode or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("L")
    if mode == "L":
        return img
    if mode in ("1", "P", "RGB"):
        return img.convert("L")
    # CMYK, YCbCr, LAB, HSV, RGBX, ...: through RGB, which every Pillow mode can reach.
    return img.convert("RGB").convert("L")


def decode_image(
    data: bytes,
    *,
    size: int,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    patient_salt: bytes | None = None,
) -> DecodedImage:
    """Decodes untrusted image bytes into a ``(size, size)`` 8-bit grayscale array.

    Steps: size checks on the raw bytes, open with the allowed plugins, pixel-count check on the header,
    JPEG draft decoding (colour JPEGs decode straight to luma; DCT scaling by 1/2..1/8 when the source is at
    least 4x the target), full decode (truncation detected), EXIF orientation, conversion to grayscale, and a
    squash resize with LANCZOS (``reducing_gap=3``).

    Grayscale conversion by mode:

    * ``L``: as is; colour JPEGs: their Y (luma) channel; ``1``, ``P``, ``RGB``, ``CMYK``, ...: ITU-R 601-2
      luma (via ``RGB`` where needed);
    * modes with alpha (``RGBA``, ``LA``, ``PA``, palette or tRNS transparency): composited onto black first;
    * ``I;16``/``I;16B``/``I``/``F``: scaled linearly from the image's own min..max to 0..255, so a 12-bit
      X-ray stored in a 16-bit container uses the full 8-bit range (a constant image becomes zeros).

    GIF, TIFF and WEBP files with several frames contribute their first frame. DICOM files are read by
    :func:`cxrcore.data.dicom.read_dicom` (single-frame grayscale only) and then resized the same way.

    Args:
        data: The file's bytes.
        size: Output side length in pixels (16..2048); the image is squashed, not cropped.
        max_pixels: Largest accepted ``width * height`` as declared by the header.
        max_bytes: Largest accepted input length in bytes (also bounds an inflated DICOM data set).
        patient_salt: Key of the patient hash of DICOM files (:func:`cxrcore.data.dicom.patient_key`); without
            it ``dicom.patient_key`` is ``""``. Other formats ignore it.

    Returns:
        A :class:`DecodedImage` holding only pixels and a few header facts (no metadata).

    Raises:
        ImageRejected: If the bytes are empty, too large, not an image, of a format outside
            :data:`ALLOWED_FORMATS`, truncated, corrupt, or declare more than ``max_pixels`` pixels; or a DICOM
            file that is not a single-frame grayscale image or cannot be decoded (reasons in
            :data:`cxrcore.data.dicom.DICOM_REJECTION_REASONS`).
        ValueError: If ``size``, ``max_pixels`` or ``max_bytes`` is invalid.
        TypeError: If ``data`` is not bytes-like.
    """
    data = _checked_bytes(data, size=size, max_pixels=max_pixels, max_bytes=max_bytes)
    if is_dicom(data):
        return _decode_dicom(data, size=size, max_pixels=max_pixels, max_bytes=max_bytes, patient_salt=patient_salt)
    img = _open(data)
    try:
        image_format = img.format or "unknown"
        orig_width, orig_height = img.size
        orig_mode = img.mode
        _check_header(img, max_pixels)
        if image_format in ("JPEG", "MPO"):
            _draft_luma(img, size)
        _load(img)
        pixels = _to_pixels(img, size)
    finally:
        img.close()
    return DecodedImage(
        pixels=pixels,
        orig_width=int(orig_width),
        orig_height=int(orig_height),
        orig_mode=orig_mode,
        format=image_format,
    )


def _decode_dicom(
    data: bytes, *, size: int, max_pixels: int, max_bytes: int, patient_salt: bytes | None
) -> DecodedImage:
    """A DICOM file's display-ready pixels through the same resize as every other image."""
    try:
        full, facts = read_dicom(data, max_pixels=max_pixels, max_bytes=max_bytes, patient_salt=patient_salt)
    except DicomRejected as exc:
        raise ImageRejected(exc.reason, exc.detail) from None
    height, width = full.shape
    with Image.fromarray(full) as img:
        pixels = _to_pixels(img, size)
    return DecodedImage(
        pixels=pixels,
        orig_width=int(width),
        orig_height=int(height),
        orig_mode=_dicom_mode(facts),
        format="DICOM",
        dicom=facts,
    )


def _dicom_mode(facts: DicomFacts) -> str:
    """The Pillow mode that holds a DICOM file's stored samples: ``L`` up to 8 bits, ``I;16`` up to 16, else ``I``."""
    if facts.bits_stored <= 8:
        return "L"
    return "I;16" if facts.bits_stored <= 16 else "I"


def _checked_bytes(data: object, *, size: object, max_pixels: object, max_bytes: int) -> bytes:
    """Validates the arguments of :func:`decode_image` and refuses empty and oversized inputs; returns the bytes."""
    _validate_size(size)
    _validate_positive_int("max_pixels", max_pixels)
    _validate_positive_int("max_bytes", max_bytes)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes. Received: type(data)={type(data).__name__}")
    data = bytes(data)
    if not data:
        raise ImageRejected("empty-file", "the file is empty (0 bytes)")
    if len(data) > max_bytes:
        raise ImageRejected("too-large-file", f"the file has {len(data)} bytes; the limit is {max_bytes}")
    return data


def _check_header(img: Image.Image, max_pixels: int) -> None:
    """Refuses an empty image, or one whose header declares more than ``max_pixels`` (before any decoding)."""
    width, height = img.size
    if width < 1 or height < 1:
        raise ImageRejected("corrupt", f"the header declares an empty image of {width}x{height}")
    if width * height > max_pixels:
        raise ImageRejected(
            "decompression-bomb",
            f"the header declares {width}x{height} = {width * height} pixels; the limit is {max_pixels}",
        )


def _draft_luma(img: Image.Image, size: int) -> None:
    """Asks libjpeg for luma, scaled in the DCT domain by 1/2, 1/4 or 1/8 while both sides stay >= 2 x size."""
    # libjpeg decodes colour JPEGs straight to luma, and the LANCZOS pass of _to_pixels still filters properly.
    try:
        img.draft("L", (_DRAFT_FACTOR * size, _DRAFT_FACTOR * size))
    except Exception as exc:  # noqa: BLE001 - an inconsistent JPEG header
        raise ImageRejected("corrupt", f"JPEG header is inconsistent: {type(exc).__name__}: {exc}") from exc


def _to_pixels(img: Image.Image, size: int) -> np.ndarray:
    """The decoded image oriented by its EXIF tag, in 8-bit grayscale, squashed to ``(size, size)``."""
    try:
        oriented = ImageOps.exif_transpose(img)
        gray = _to_grayscale(oriented)
        resized = gray.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=_REDUCING_GAP)
        pixels = np.array(resized, dtype=np.uint8)
    except ImageRejected:
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. a malformed EXIF block or an exotic mode
        raise ImageRejected("corrupt", f"image could not be converted: {type(exc).__name__}: {exc}") from exc
    if pixels.shape != (size, size):
        raise ImageRejected("corrupt", f"decoded to an unexpected shape {pixels.shape}")
    return pixels


def _as_image(pixels: np.ndarray) -> Image.Image:
    array = np.asarray(pixels)
    if array.dtype != np.uint8:
        raise ValueError(f"pixels must be np.uint8. Received: pixels.dtype={array.dtype}")
    if array.ndim == 2:
        return Image.fromarray(array)
    if array.ndim == 3 and array.shape[2] == 3:
        return Image.fromarray(array)
    raise ValueError(f"pixels must have shape (H, W) or (H, W, 3). Received: pixels.shape={array.shape}")


def encode_png(pixels: np.ndarray) -> bytes:
    """Encodes a ``uint8`` grayscale ``(H, W)`` or RGB ``(H, W, 3)`` array as PNG (lossless, no metadata).

    Args:
        pixels: The image.

    Returns:
        The PNG file's bytes.

    Raises:
        ValueError: If the array is not ``uint8`` of a supported shape.
    """
    buffer = io.BytesIO()
    _as_image(pixels).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def encode_jpeg(pixels: np.ndarray, quality: int = 95) -> bytes:
    """Encodes a ``uint8`` grayscale ``(H, W)`` or RGB ``(H, W, 3)`` array as baseline JPEG (no metadata).

    Args:
        pixels: The image.
        quality: JPEG quality, 1..100 (Pillow recommends at most 95).

    Returns:
        The JPEG file's bytes.

    Raises:
        ValueError: If the array is not ``uint8`` of a supported shape or ``quality`` is out of range.
    """
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an integer between 1 and 100. Received: quality={quality!r}")
    buffer = io.BytesIO()
    _as_image(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
