"""Reading untrusted DICOM bytes into display-ready 8-bit pixels and a few facts that identify no one.

:func:`cxrcore.data.images.decode_image` hands every input that :func:`is_dicom` recognises to
:func:`read_dicom`, so the import (folders, zips, S3 prefixes, incoming batches), ``cxr evaluate``, ``cxr predict``
and ``--explain`` all read DICOM the same way (docs/architecture.md#data-flow). What it does:

* **Detection** by content, never by file name: the 128-byte preamble followed by ``DICM``, or a preamble-less
  little-endian data set that starts with a group 0x0002 or 0x0008 element (old "raw" files).
* **Limits**: the header's ``Rows x Columns`` is checked against ``max_pixels`` before any pixel is decoded, and a
  deflated data set is inflated once, bounded by the input limit, before pydicom inflates it (pydicom would not
  bound it).
* **Refusals by name** (:class:`DicomRejected`, turned into :class:`cxrcore.data.images.ImageRejected`): objects
  that are not images (structured reports, PDFs, presentation states: ``dicom-not-an-image``), no pixel data
  (``dicom-no-pixel-data``), several frames (``dicom-multi-frame``), colour or palette data
  (``dicom-unsupported-photometric``), compressed pixel data no installed plugin decodes, named by transfer
  syntax UID and name (``dicom-unsupported-transfer-syntax``: JPEG lossless and JPEG-LS need GPL or extra
  decoders that are not installed), pixel data shorter than the header declares (``truncated``), anything else
  that cannot be parsed (``corrupt``).
* **Pixels**: the Modality LUT (``RescaleSlope``/``RescaleIntercept`` or a Modality LUT Sequence), then the VOI LUT
  Sequence or the first ``WindowCenter``/``WindowWidth`` (pydicom's ``apply_modality_lut`` and ``apply_voi_lut``),
  else a window on the 0.5th..99.5th percentiles; the result is scaled to 0..255 and ``MONOCHROME1`` (or a
  ``PresentationLUTShape`` of ``INVERSE``) is inverted, so bone is bright as in ``MONOCHROME2`` and in JPEGs.
  Any ``BitsStored`` and signed ``PixelRepresentation`` are handled by pydicom's decoders.

**No PHI leaves this module.** Only the elements listed in :data:`_READ_TAGS` are parsed at all (``PatientName``,
``PatientBirthDate``, ``AccessionNumber``, ``InstitutionName`` and every other tag are skipped by pydicom's
``specific_tags``); ``PatientID`` (else ``StudyInstanceUID``) is read as raw bytes, never converted or validated
(pydicom's validation warnings quote values), and only its keyed hash :func:`patient_key` is returned. The coded
facts returned (:class:`DicomFacts`: modality, view, photometric interpretation) come from closed lists in
:mod:`cxrcore.vocab` (any other value is ``OTHER``), and rejection details name only tags, those codes, UIDs of
classes and syntaxes, and exception types, never another element's value or a pydicom message.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import io
import re
import struct
import zlib
from typing import Any

import numpy as np

from cxrcore.data.rejects import ImageRejected
from cxrcore.vocab import DICOM_MODALITIES, DICOM_OTHER, DICOM_PHOTOMETRICS, DICOM_UNKNOWN_VIEW, DICOM_VIEWS

__all__ = [
    "DICOM_REJECTION_REASONS",
    "PATIENT_KEY_PREFIX",
    "DicomFacts",
    "DicomRejected",
    "is_dicom",
    "patient_key",
    "read_dicom",
    "view_problem",
]

#: Every reason :func:`read_dicom` gives besides the generic ``truncated``, ``corrupt`` and ``decompression-bomb``.
DICOM_REJECTION_REASONS: tuple[str, ...] = (
    "dicom-not-an-image",
    "dicom-no-pixel-data",
    "dicom-multi-frame",
    "dicom-unsupported-photometric",
    "dicom-unsupported-transfer-syntax",
)
#: Prefix of the patient ids made from DICOM identifiers (``dicom-`` + 20 hex digits of a keyed hash).
PATIENT_KEY_PREFIX = "dicom-"
_PATIENT_KEY_HEX = 20

# The only elements pydicom parses (all others, PHI included, are skipped while reading).
_READ_TAGS: tuple[str, ...] = (
    "SpecificCharacterSet",
    "SOPClassUID",
    "Modality",
    "ViewPosition",
    "PatientID",
    "StudyInstanceUID",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "NumberOfFrames",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "RescaleIntercept",
    "RescaleSlope",
    "RescaleType",
    "ModalityLUTSequence",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "VOILUTSequence",
    "PresentationLUTShape",
    "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths",
    "FloatPixelData",
    "DoubleFloatPixelData",
    "PixelData",
)
# Identifiers of the patient, in order of preference; read raw, hashed, never returned.
_PATIENT_TAGS: tuple[str, ...] = ("PatientID", "StudyInstanceUID")
_PIXEL_ELEMENTS: tuple[str, ...] = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# DICOM code strings (CS): upper-case letters, digits, space and underscore, at most 16 characters.
_CODE_STRING = re.compile(r"^[A-Z0-9 _]{0,16}$")
_GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")
_PERCENTILES = (0.5, 99.5)
_DEFLATED = "1.2.840.10008.1.2.1.99"
_PREAMBLE = 128
_MAGIC = b"DICM"
# Explicit-VR value representations (PS3.5 6.2) and those with a 4-byte length after 2 reserved bytes.
_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split()
)
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ UC UN UR UT UV".split())


class DicomRejected(ImageRejected):
    """A DICOM input that cannot (or must not) become a training image; its texts hold no element value.

    ``reason`` is one of :data:`DICOM_REJECTION_REASONS`, ``truncated``, ``corrupt`` or ``decompression-bomb``.
    :func:`cxrcore.data.images.decode_image` re-raises it as a plain :class:`ImageRejected` without its cause
    chain, so no pydicom message (which may quote an element value) travels further.
    """


@dataclasses.dataclass(frozen=True)
class DicomFacts:
    """What a DICOM file says about itself, without identifying anyone.

    Coded values come from closed lists (:data:`cxrcore.vocab.DICOM_MODALITIES`, ``DICOM_VIEWS``,
    ``DICOM_PHOTOMETRICS``): any other value is ``OTHER``, an absent or empty one ``""``.

    Attributes:
        modality: ``Modality`` (``CR``, ``DX``, ...).
        view: ``ViewPosition`` (``PA``, ``AP``, ``LL``, ...).
        photometric: ``PhotometricInterpretation`` (``MONOCHROME1``, ``MONOCHROME2``, ...).
        bits_stored: ``BitsStored``.
        transfer_syntax: The transfer syntax UID.
        patient_key: ``dicom-`` + a keyed hash (:func:`patient_key`) of the patient identifier, or ``""`` when
            the file holds none or no salt was given.
        patient_key_from: The tag the identifier came from (``PatientID`` or ``StudyInstanceUID``), ``""`` when the
            file holds neither.
    """

    modality: str
    view: str
    photometric: str
    bits_stored: int
    transfer_syntax: str
    patient_key: str
    patient_key_from: str


def is_dicom(data: bytes) -> bool:
    """Whether ``data`` looks like a DICOM file: a preamble and ``DICM``, or a raw little-endian data set.

    A raw data set must start with an element of group 0x0002 (file meta) or 0x0008 (identification) followed by
    an explicit value representation or a plausible implicit length; no image format Pillow reads starts so.

    Args:
        data: The file's bytes (only the first 132 are looked at).

    Returns:
        ``True`` when the bytes should be read as DICOM.
    """
    if len(data) >= _PREAMBLE + 4 and data[_PREAMBLE : _PREAMBLE + 4] == _MAGIC:
        return True
    if len(data) < 8 or data[:2] not in (b"\x02\x00", b"\x08\x00"):
        return False
    if data[4:6] in _VRS:
        return True
    return struct.unpack_from("<I", data, 4)[0] < min(len(data), 2**16)


def patient_key(identifier: bytes, *, tag: str, salt: bytes) -> str:
    """The patient id a DICOM identifier becomes: ``dicom-`` + 20 hex digits of HMAC-SHA256 keyed by ``salt``.

    The identifier is stripped of the padding DICOM allows (spaces, NUL); the tag name is part of the message, so
    a ``PatientID`` and a ``StudyInstanceUID`` with the same text never collide. Without the salt the hash cannot
    be recomputed from a guessed identifier (no dictionary attack on short medical record numbers).

    Args:
        identifier: The element's raw value.
        tag: ``PatientID`` or ``StudyInstanceUID``.
        salt: The secret key (``PrepareSettings.patient_salt``).

    Returns:
        The patient id.

    Raises:
        ValueError: An empty salt or identifier, or an unknown tag.
    """
    if tag not in _PATIENT_TAGS:
        raise ValueError(f"tag must be one of {_PATIENT_TAGS}. Received: tag={tag!r}")
    if not salt:
        raise ValueError("salt must be non-empty bytes. Received: salt=<empty>")
    value = bytes(identifier).strip(b" \x00")
    if not value:
        raise ValueError(f"identifier must hold more than padding. Received: tag={tag!r}")
    digest = hmac.new(salt, tag.encode() + b"\x00" + value, hashlib.sha256).hexdigest()
    return PATIENT_KEY_PREFIX + digest[:_PATIENT_KEY_HEX]


def read_dicom(
    data: bytes, *, max_pixels: int, max_bytes: int, patient_salt: bytes | None = None
) -> tuple[np.ndarray, DicomFacts]:
    """Reads one single-frame grayscale DICOM image into full-resolution, display-ready 8-bit pixels.

    Args:
        data: The file's bytes (already checked to be non-empty and within ``max_bytes``).
        max_pixels: Largest accepted ``Rows * Columns``.
        max_bytes: Largest accepted size of an inflated (deflated transfer syntax) data set.
        patient_salt: Key of :func:`patient_key`; without it ``DicomFacts.patient_key`` stays ``""``.

    Returns:
        ``(pixels, facts)``: ``np.uint8`` ``(Rows, Columns)`` with bone bright, and the :class:`DicomFacts`.

    Raises:
        DicomRejected: The object is not a single-frame grayscale image, or cannot be read or decoded.
    """
    has_preamble = data[_PREAMBLE : _PREAMBLE + 4] == _MAGIC
    if has_preamble:
        _check_file_meta(data, max_bytes)
    ds = _read_dataset(data, force=not has_preamble)
    syntax = _transfer_syntax(ds)
    facts = _facts(ds, syntax, patient_salt)
    _check_image(ds, facts, max_pixels)
    stored = _decode_pixels(ds, syntax)
    return _display_pixels(ds, stored, facts.photometric), facts


# --------------------------------------------------------------------------------------------------- reading
def _file_meta_end(data: bytes) -> tuple[str, int]:
    """The transfer syntax UID in the file meta group and the offset where the data set starts."""
    offset = _PREAMBLE + 4
    syntax = ""
    while offset + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, offset)
        if group != 0x0002:
            return syntax, offset
        vr = data[offset + 4 : offset + 6]
        if vr in _LONG_VRS:
            if offset + 12 > len(data):
                break
            length, header = struct.unpack_from("<I", data, offset + 8)[0], 12
        else:
            length, header = struct.unpack_from("<H", data, offset + 6)[0], 8
        value = data[offset + header : offset + header + length]
        if element == 0x0010:
            syntax = value.rstrip(b"\x00 ").decode("ascii", "replace")
        offset += header + length
    raise DicomRejected("truncated", "the file ends inside its file meta information (group 0002)")


def _check_file_meta(data: bytes, max_bytes: int) -> None:
    """Refuses a file without a transfer syntax in its file meta, or a deflated data set that inflates beyond
    ``max_bytes`` (pydicom would inflate it without a bound)."""
    syntax, start = _file_meta_end(data)
    if not syntax:
        raise DicomRejected("corrupt", "the file meta information (group 0002) names no Transfer Syntax UID")
    if syntax != _DEFLATED:
        return
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(data[start:], max_bytes + 1)
    except zlib.error as exc:
        raise DicomRejected("corrupt", f"the deflated data set does not inflate ({type(exc).__name__})") from None
    if len(inflated) > max_bytes or inflater.unconsumed_tail:
        raise DicomRejected(
            "decompression-bomb", f"the deflated data set inflates beyond the limit of {max_bytes} bytes"
        )


def _read_dataset(data: bytes, *, force: bool) -> Any:
    """Parses only :data:`_READ_TAGS` (PHI elements are skipped); failures become rejections without messages."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(io.BytesIO(data), force=force, specific_tags=list(_READ_TAGS))
    except InvalidDicomError:
        raise DicomRejected("corrupt", "not a readable DICOM file (no valid header)") from None
    except EOFError:
        raise DicomRejected("truncated", "the file ends inside a data element") from None
    except Exception as exc:  # noqa: BLE001 - any parser failure on hostile bytes is a corrupt file
        raise DicomRejected("corrupt", f"the data set could not be parsed ({type(exc).__name__})") from None


def _transfer_syntax(ds: Any) -> Any:
    """The data set's transfer syntax; a raw (preamble-less) file gets the one it was read with."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax:
        return UID(str(syntax))
    implicit, little = ds.original_encoding
    if implicit:
        syntax = ImplicitVRLittleEndian
    else:
        syntax = ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    if meta is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    return syntax


def _raw_value(ds: Any, keyword: str) -> bytes | None:
    """An element's value as stored (never converted, so never validated: pydicom's warnings quote values)."""
    try:
        element = ds.get_item(keyword)
    except Exception:  # noqa: BLE001 - a malformed element holds nothing usable
        return None
    value = getattr(element, "value", None) if element is not None else None
    if isinstance(value, str):
        return value.encode("utf-8", "replace")
    return bytes(value) if isinstance(value, (bytes, bytearray)) else None


def _code_string(ds: Any, keyword: str, known: tuple[str, ...]) -> str:
    """A code-string element's value when it is one of ``known``; ``OTHER`` for any other value (never the value
    itself: a free-text entry must not reach a manifest), ``""`` when absent or empty."""
    raw = _raw_value(ds, keyword)
    if raw is None:
        return ""
    text = " ".join(raw.decode("ascii", "replace").split()).upper()
    if not text:
        return ""
    return text if _CODE_STRING.match(text) and text in known else DICOM_OTHER


def _patient(ds: Any, salt: bytes | None) -> tuple[str, str]:
    """``(patient_key, tag)`` from the first identifier present, read raw (never converted, validated or kept)."""
    for tag in _PATIENT_TAGS:
        raw = _raw_value(ds, tag)
        if raw is not None and raw.strip(b" \x00"):
            return (patient_key(raw, tag=tag, salt=salt) if salt else ""), tag
    return "", ""


def _facts(ds: Any, syntax: Any, salt: bytes | None) -> DicomFacts:
    key, key_from = _patient(ds, salt)
    bits = ds.get("BitsStored")
    return DicomFacts(
        modality=_code_string(ds, "Modality", DICOM_MODALITIES),
        view=_code_string(ds, "ViewPosition", DICOM_VIEWS),
        photometric=_code_string(ds, "PhotometricInterpretation", DICOM_PHOTOMETRICS),
        bits_stored=int(bits) if isinstance(bits, int) else 0,
        transfer_syntax=str(syntax),
        patient_key=key,
        patient_key_from=key_from,
    )


# --------------------------------------------------------------------------------------------------- checks
def _sop_class(ds: Any) -> tuple[str, str]:
    """``(uid, name)`` of the SOP class (``("", "")`` when absent); the name is pydicom's, or the UID."""
    from pydicom.uid import UID

    uid = str(ds.get("SOPClassUID") or "").strip()
    meta = getattr(ds, "file_meta", None)
    if not uid and meta is not None:
        uid = str(meta.get("MediaStorageSOPClassUID") or "").strip()
    return (uid, UID(uid).name) if uid else ("", "")


def _check_image(ds: Any, facts: DicomFacts, max_pixels: int) -> None:
    """Refuses non-image objects, several frames, colour, undecodable syntaxes and oversized images by name."""
    uid, name = _sop_class(ds)
    if uid and name != uid and "Image Storage" not in name:
        raise DicomRejected("dicom-not-an-image", f"SOP class {uid} ({name}) is not an image")
    if not any(keyword in ds for keyword in _PIXEL_ELEMENTS):
        shown = f"SOP class {uid} ({name})" if uid else "no SOP class"
        raise DicomRejected("dicom-no-pixel-data", f"the file holds no pixel data ({shown})")
    frames = _integer(ds, "NumberOfFrames", default=1)
    if frames > 1:
        raise DicomRejected("dicom-multi-frame", f"NumberOfFrames is {frames}; only single-frame images are read")
    samples = _integer(ds, "SamplesPerPixel", default=1)
    if facts.photometric not in _GRAYSCALE or samples != 1:
        shown = facts.photometric or "missing or invalid"
        raise DicomRejected(
            "dicom-unsupported-photometric",
            f"PhotometricInterpretation {shown} with {samples} sample(s) per pixel; only MONOCHROME1/MONOCHROME2 "
            "grayscale is read",
        )
    rows, columns = _integer(ds, "Rows", default=0), _integer(ds, "Columns", default=0)
    if rows < 1 or columns < 1:
        raise DicomRejected("corrupt", f"the header declares an empty image of {columns}x{rows}")
    if rows * columns > max_pixels:
        raise DicomRejected(
            "decompression-bomb",
            f"the header declares {columns}x{rows} = {rows * columns} pixels; the limit is {max_pixels}",
        )


def _integer(ds: Any, keyword: str, *, default: int) -> int:
    """An integer element (IS or US), ``default`` when absent; an unreadable value is a corrupt file."""
    try:
        value = ds.get(keyword)
        return default if value in (None, "") else int(value)
    except Exception:  # noqa: BLE001 - a malformed value on hostile bytes
        raise DicomRejected("corrupt", f"{keyword} is not an integer") from None


def _decode_pixels(ds: Any, syntax: Any) -> np.ndarray:
    """The stored values of the single frame (signed as ``PixelRepresentation`` says, masked to ``BitsStored``)."""
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        decoder = None
    if decoder is None or not decoder.is_available:
        raise DicomRejected(
            "dicom-unsupported-transfer-syntax",
            f"transfer syntax {syntax} ({syntax.name}) cannot be decoded here (no installed decoder plugin)",
        )
    if not syntax.is_compressed and "PixelData" in ds:
        expected = _expected_native_bytes(ds)
        if len(ds.PixelData) < expected:
            raise DicomRejected(
                "truncated", f"the pixel data holds {len(ds.PixelData)} bytes; the header declares {expected}"
            )
    try:
        stored = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - decoder failures on hostile bytes
        raise DicomRejected("corrupt", f"the pixel data could not be decoded ({type(exc).__name__})") from None
    if stored.ndim != 2:
        raise DicomRejected("corrupt", f"the pixel data decoded to an unexpected shape {stored.shape}")
    return stored


def _expected_native_bytes(ds: Any) -> int:
    """Bytes of one uncompressed frame as the header declares it (1-bit data packed eight to a byte)."""
    pixels = _integer(ds, "Rows", default=0) * _integer(ds, "Columns", default=0)
    bits = _integer(ds, "BitsAllocated", default=0)
    return (pixels + 7) // 8 if bits == 1 else pixels * max(bits, 0) // 8


# --------------------------------------------------------------------------------------------------- display
def _display_pixels(ds: Any, stored: np.ndarray, photometric: str) -> np.ndarray:
    """Modality LUT, VOI LUT / window (else a percentile window), 0..255, MONOCHROME1 inverted."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - a malformed Modality LUT or rescale
        raise DicomRejected("corrupt", f"the Modality LUT / rescale cannot be applied ({type(exc).__name__})") from None
    scaled = _voi_scaled(ds, values, apply_voi_lut)
    if scaled is None:
        scaled = _percentile_scaled(values)
    inverse = (_raw_value(ds, "PresentationLUTShape") or b"").strip(b" \x00").upper() == b"INVERSE"
    if photometric == "MONOCHROME1" or inverse:
        scaled = 1.0 - scaled
    return np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8)


def _voi_scaled(ds: Any, values: np.ndarray, apply_voi_lut) -> np.ndarray | None:
    """The VOI LUT Sequence or the first window applied and scaled to [0, 1]; ``None`` when neither is usable."""
    has_lut = bool(ds.get("VOILUTSequence"))
    has_window = "WindowCenter" in ds and "WindowWidth" in ds
    if not (has_lut or has_window):
        return None
    integral = has_lut and bool(np.array_equal(values, np.round(values)))
    try:
        # A VOI LUT is indexed by integers: the Modality LUT's output, when it is integral, goes in as integers.
        lut_input = values.astype(np.int64) if integral else values
        output = np.asarray(apply_voi_lut(lut_input, ds, index=0, prefer_lut=True), dtype=np.float64)
        if has_lut:
            item = ds.VOILUTSequence[0]
            entries, first = int(item.LUTDescriptor[0]) or 2**16, int(item.LUTDescriptor[1])
            table = np.asarray(apply_voi_lut(np.arange(first, first + entries), ds, index=0), dtype=np.float64)
            low, high = float(table.min()), float(table.max())
        else:
            low, high = _window_output_range(ds)
    except Exception:  # noqa: BLE001 - a malformed VOI LUT or window (width < 1, ...): fall back to percentiles
        return None
    if not high > low:
        return None
    return np.clip((output - low) / (high - low), 0.0, 1.0)


def _window_output_range(ds: Any) -> tuple[float, float]:
    """The range ``apply_voi_lut`` windows into: the stored range after rescale (PS3.3 C.11.2.1.2)."""
    bits = int(ds.BitsStored)
    if ds.get("ModalityLUTSequence"):
        low, high = 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    elif int(ds.get("PixelRepresentation", 0)) == 0:
        low, high = 0.0, float(2**bits - 1)
    else:
        low, high = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        low, high = low * float(slope) + float(intercept), high * float(slope) + float(intercept)
    return min(low, high), max(low, high)


def _percentile_scaled(values: np.ndarray) -> np.ndarray:
    """A window on the 0.5th..99.5th percentiles of the finite values, in [0, 1] (a flat image is zeros)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(values.shape, dtype=np.float64)
    low, high = (float(value) for value in np.percentile(finite, _PERCENTILES))
    if not high > low:
        low, high = float(finite.min()), float(finite.max())
    if not high > low:
        return np.zeros(values.shape, dtype=np.float64)
    scaled = (np.where(np.isfinite(values), values, low) - low) / (high - low)
    return np.clip(scaled, 0.0, 1.0)


def view_problem(facts: DicomFacts | None, allowed: tuple[str, ...] | None) -> str | None:
    """Why a DICOM file's view is not imported, or ``None`` when it is (or the file is not DICOM).

    Args:
        facts: The file's :class:`DicomFacts`, ``None`` for other formats.
        allowed: The ``ViewPosition`` values imported (``UNKNOWN`` for none), ``None`` for every view.

    Returns:
        ``"view LL not in PA, AP"``, or ``None``.
    """
    if facts is None or allowed is None:
        return None
    view = facts.view or DICOM_UNKNOWN_VIEW
    return None if view in allowed else f"view {view} not in {', '.join(allowed)}"
