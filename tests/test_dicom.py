"""DICOM input: pixels with the right polarity, named rejects, hashed patients, and no PHI anywhere.

Every DICOM file here is written with pydicom from real pixels: the project's procedural phantoms (and, when
``../shared`` holds it, a few Kaggle radiographs), stored as MONOCHROME1/2, 8- and 12-bit, signed with a rescale,
windowed, compressed, with and without the preamble and a file extension. Each carries fake PHI (``DOE^JANE``,
``MRN-123456``, a birth date, an accession number, an institution, a study UID), and the import tests scan every
store object, every log line, every warning, the summary and the rejects for it.
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrcore import cli
from cxrcore.config import PrepareSettings, SettingsError
from cxrcore.data.dataset import load_dataset
from cxrcore.data.dicom import PATIENT_KEY_PREFIX, is_dicom, patient_key
from cxrcore.data.images import REJECTION_REASONS, ImageRejected, decode_image
from cxrcore.data.ingest import import_dataset
from cxrcore.data.phantom import generate_phantom
from cxrcore.logging import configure_logging
from cxrcore.storage import Store, open_store
from tests import fixtures_images as fx

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import (  # noqa: E402
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    RLELossless,
)

REAL_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "chest_xray" / "train"
SALT = "test-salt-0123456789abcdef"
DX_IMAGE = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
CR_IMAGE = "1.2.840.10008.5.1.4.1.1.1"  # Computed Radiography Image Storage
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
STUDY_UID = "1.2.826.0.1.3680043.8.498.1234567890123456789"
PHI = {
    "PatientName": "DOE^JANE",
    "PatientID": "MRN-123456",
    "PatientBirthDate": "19800101",
    "AccessionNumber": "ACC-998877",
    "InstitutionName": "GENERAL HOSPITAL NORTH",
    "ReferringPhysicianName": "HOUSE^GREGORY",
    "StudyInstanceUID": STUDY_UID,
}
#: Every string that must never leave the DICOM reader: the values and the parts of the names (the other patients'
#: values of the tests too), scanned as written and in lower case. Bare digit runs are not: hashes and metrics
#: hold them by chance.
PHI_STRINGS = (
    *PHI.values(), "DOE^", "^JANE", "HOUSE^", "GREGORY", "ROE^RICHARD", "POE^EDGAR", "MRN-654321", "MRN-777777",
    "MRN-", "ACC-99", "GENERAL HOSP", "3680043.8.498.1234567890", "JANE DOE",
)
SIZE = 32


# ---------------------------------------------------------------------------------------------------- writing
def phantom(seed: int, size: int = 96, pneumonia: bool = False) -> np.ndarray:
    """A chest-X-ray-like uint8 phantom: dark lungs, bright bone (the source pixels every file is made from)."""
    return generate_phantom(np.random.default_rng(seed), size=size, pneumonia=pneumonia)


def dicom_bytes(
    stored: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    signed: bool = False,
    view: str | None = "PA",
    sop_class: str = DX_IMAGE,
    syntax: str = ExplicitVRLittleEndian,
    preamble: bool = True,
    phi: dict[str, str] | None = None,
    compress: str | None = None,
    **elements,
) -> bytes:
    """A DICOM file of ``stored`` (its dtype sets BitsAllocated) with the fake PHI of :data:`PHI`."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    for keyword, value in (PHI if phi is None else phi).items():
        setattr(ds, keyword, value)
    ds.Modality = "DX"
    if view is not None:
        ds.ViewPosition = view
    if stored is not None:
        bits = stored.dtype.itemsize * 8
        ds.Rows, ds.Columns = stored.shape[-2:]
        ds.SamplesPerPixel = 1 if stored.ndim == 2 or photometric.startswith("MONO") else 3
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated, ds.BitsStored = bits, bits_stored or bits
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = int(signed)
        ds.PixelData = stored.tobytes()
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    if compress is not None:
        ds.compress(compress)
    buffer = io.BytesIO()
    if preamble:
        ds.save_as(buffer, enforce_file_format=True)
    else:
        ds.save_as(buffer, implicit_vr=False, little_endian=True)  # a raw data set: no preamble, no meta
    return buffer.getvalue()


def resized(pixels: np.ndarray, size: int = SIZE) -> np.ndarray:
    """``pixels`` through the resize every decoded image takes (LANCZOS, squashed)."""
    image = Image.fromarray(pixels).resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(image, dtype=np.float64)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64))[0, 1])


def _variants(src: np.ndarray) -> dict[str, bytes]:
    """The same source pixels in every storage the reader handles (bone bright in each after display)."""
    twelve = src.astype(np.uint16) * 16 + 8  # 12 bits in a 16-bit container
    lut = Dataset()
    lut.add_new(0x00283002, "US", [4096, 0, 16])  # LUTDescriptor
    lut.add_new(0x00283006, "US", [int(v) for v in np.sqrt(np.arange(4096) / 4095.0) * 65535])  # a monotonic LUT
    return {
        "monochrome2-8bit": dicom_bytes(src.copy()),
        "monochrome2-12bit": dicom_bytes(twelve, bits_stored=12),
        "monochrome1-12bit": dicom_bytes((4095 - twelve).astype(np.uint16), photometric="MONOCHROME1", bits_stored=12),
        "signed-rescale": dicom_bytes(
            (src.astype(np.int16) * 8 - 1024), bits_stored=12, signed=True, RescaleSlope=1, RescaleIntercept=-1000
        ),
        "window": dicom_bytes(twelve, bits_stored=12, WindowCenter=2048, WindowWidth=4096),
        "voi-lut": dicom_bytes(twelve, bits_stored=12, VOILUTSequence=pydicom.Sequence([lut])),
        "presentation-inverse": dicom_bytes((4095 - twelve).astype(np.uint16), bits_stored=12,
                                            PresentationLUTShape="INVERSE"),
        "no-preamble": dicom_bytes(twelve, bits_stored=12, preamble=False),
        "rle": dicom_bytes(twelve, bits_stored=12, compress=RLELossless),
        "jpeg2000": dicom_bytes(twelve, bits_stored=12, compress=JPEG2000Lossless),
    }


# ---------------------------------------------------------------------------------------------------- decoding
def test_every_storage_decodes_with_bone_bright_and_correlates_with_the_source() -> None:
    src = phantom(0)
    expected = resized(src)
    correlations = {}
    for name, data in _variants(src).items():
        assert is_dicom(data), name
        decoded = decode_image(data, size=SIZE)
        assert decoded.format == "DICOM" and decoded.pixels.shape == (SIZE, SIZE) and decoded.pixels.dtype == np.uint8
        assert decoded.dicom is not None and decoded.dicom.view == "PA" and decoded.dicom.modality == "DX"
        assert decoded.dicom.patient_key == "" and decoded.dicom.patient_key_from == "PatientID"  # no salt given
        correlations[name] = correlation(decoded.pixels, expected)
    print("polarity correlations:", {name: round(value, 4) for name, value in correlations.items()})
    assert min(correlations.values()) > 0.95, correlations


def test_monochrome1_is_inverted_to_bone_bright() -> None:
    src = phantom(1)
    stored = (4095 - src.astype(np.uint16) * 16).astype(np.uint16)
    decoded = decode_image(dicom_bytes(stored, photometric="MONOCHROME1", bits_stored=12), size=SIZE)
    assert decoded.dicom.photometric == "MONOCHROME1"
    assert correlation(decoded.pixels, resized(src)) > 0.95  # like the source (bone bright) ...
    raw = np.asarray(Image.fromarray((stored // 16).astype(np.uint8)).resize((SIZE, SIZE)), dtype=np.float64)
    assert correlation(decoded.pixels, raw) < -0.95  # ... and opposite to the stored values


def test_window_center_and_width_are_applied() -> None:
    src = phantom(2)
    stored = src.astype(np.uint16) * 16
    center, width = 1500.0, 1000.0
    decoded = decode_image(
        dicom_bytes(stored, bits_stored=12, WindowCenter=center, WindowWidth=width), size=src.shape[0]
    )
    # PS3.3 C.11.2.1.2.1 (LINEAR), scaled to 0..255: values below the window black, above it white.
    linear = ((stored - (center - 0.5)) / (width - 1) + 0.5).clip(0, 1) * 255
    assert np.abs(decoded.pixels.astype(float) - linear).mean() < 2.0
    assert (decoded.pixels[stored >= center + width / 2] >= 254).all()
    assert (decoded.pixels[stored <= center - width / 2] <= 1).all()


def test_without_a_window_a_percentile_window_is_used() -> None:
    src = phantom(3)
    stored = src.astype(np.uint16) * 16
    stored[0, 0], stored[0, 1] = 4095, 0  # two outliers do not set the scale
    decoded = decode_image(dicom_bytes(stored, bits_stored=12), size=src.shape[0])
    assert decoded.pixels.min() == 0 and decoded.pixels.max() == 255
    assert correlation(decoded.pixels, src) > 0.99


def test_coded_facts_come_from_closed_lists() -> None:
    src = phantom(4, size=32)
    decoded = decode_image(dicom_bytes(src, view="JANE DOE", Modality="ROE RICHARD"), size=SIZE)
    assert (decoded.dicom.view, decoded.dicom.modality) == ("OTHER", "OTHER")
    decoded = decode_image(dicom_bytes(src, view="ap axial", Modality="CR"), size=SIZE)
    assert (decoded.dicom.view, decoded.dicom.modality, decoded.dicom.photometric) == ("AP AXIAL", "CR", "MONOCHROME2")
    with pytest.raises(ImageRejected, match="PhotometricInterpretation OTHER"):
        decode_image(dicom_bytes(src, photometric="DOE JANE"), size=SIZE)


def test_detection_is_by_content_not_by_name() -> None:
    data = dicom_bytes(phantom(4, size=32))
    assert is_dicom(data) and is_dicom(dicom_bytes(phantom(4, size=32), preamble=False))
    for other in (fx.jpeg_bytes("L"), fx.png_bytes("L"), fx.png_12bit_in_16bit(), fx.text_as_jpeg(), b"\x08"):
        assert not is_dicom(other)


def test_patient_key_is_keyed_and_identifies_no_one() -> None:
    first = patient_key(b"MRN-123456 ", tag="PatientID", salt=b"k" * 16)
    assert first == patient_key(b"MRN-123456", tag="PatientID", salt=b"k" * 16)  # DICOM padding stripped
    assert first.startswith(PATIENT_KEY_PREFIX) and len(first) == len(PATIENT_KEY_PREFIX) + 20
    assert first != patient_key(b"MRN-123456", tag="PatientID", salt=b"j" * 16)
    assert first != patient_key(b"MRN-123456", tag="StudyInstanceUID", salt=b"k" * 16)
    assert "123456" not in first
    with pytest.raises(ValueError, match="salt"):
        patient_key(b"MRN-123456", tag="PatientID", salt=b"")
    decoded = decode_image(dicom_bytes(phantom(5, size=32)), size=SIZE, patient_salt=b"k" * 16)
    assert decoded.dicom.patient_key == first
    no_id = decode_image(dicom_bytes(phantom(5, size=32), phi={"PatientName": "DOE^JANE"}), size=SIZE,
                         patient_salt=b"k" * 16)
    assert (no_id.dicom.patient_key, no_id.dicom.patient_key_from) == ("", "")
    study = decode_image(dicom_bytes(phantom(5, size=32), phi={"StudyInstanceUID": STUDY_UID}), size=SIZE,
                         patient_salt=b"k" * 16)
    assert study.dicom.patient_key_from == "StudyInstanceUID" and study.dicom.patient_key.startswith("dicom-")


def _bad_dicoms() -> dict[str, tuple[bytes, str]]:
    """Files the reader must refuse, with the reason it must give."""
    src = phantom(6, size=48)
    good = dicom_bytes(src)
    frames = np.stack([src, src[::-1]])
    rgb = np.repeat(src[..., None], 3, axis=-1)
    deflated = dicom_bytes(np.zeros((2048, 2048), np.uint16), syntax=DeflatedExplicitVRLittleEndian)
    lossless = dicom_bytes(src.astype(np.uint16), bits_stored=12, syntax=JPEGLosslessSV1,
                           PixelData=pydicom.encaps.encapsulate([b"\xff\xd8\xff\xc3" + b"\x00" * 64]))
    return {
        "truncated": (good[: len(good) - 500], "truncated"),
        "cut-before-pixels": (good[:400], "dicom-no-pixel-data"),
        "no-pixel-data": (dicom_bytes(None), "dicom-no-pixel-data"),
        "structured-report": (dicom_bytes(None, sop_class=BASIC_TEXT_SR), "dicom-not-an-image"),
        "multi-frame": (dicom_bytes(frames, NumberOfFrames=2), "dicom-multi-frame"),
        "rgb": (dicom_bytes(rgb, photometric="RGB", PlanarConfiguration=0), "dicom-unsupported-photometric"),
        "jpeg-lossless": (lossless, "dicom-unsupported-transfer-syntax"),
        "bomb": (dicom_bytes(src, Rows=40_000, Columns=40_000), "decompression-bomb"),
        "deflate-bomb": (deflated, "decompression-bomb"),
        "garbage": (b"\x00" * 128 + b"DICM" + b"\xff" * 64, "corrupt"),
    }


def test_bad_dicom_files_are_named_rejects_without_phi() -> None:
    for name, (data, reason) in _bad_dicoms().items():
        with pytest.raises(ImageRejected) as caught:
            decode_image(data, size=SIZE, max_bytes=2**20, max_pixels=10_000_000)
        assert caught.value.reason == reason, (name, caught.value.reason, caught.value.detail)
        assert reason in REJECTION_REASONS
        _assert_no_phi(str(caught.value), where=name)
    lossless = _bad_dicoms()["jpeg-lossless"][0]
    with pytest.raises(ImageRejected, match=r"1\.2\.840\.10008\.1\.2\.4\.70 \(JPEG Lossless"):
        decode_image(lossless, size=SIZE)


@pytest.mark.skipif(
    not REAL_TRAIN.is_dir(), reason=f"real Kaggle data not found at {REAL_TRAIN} (it lives in ../shared)"
)
def test_real_radiographs_survive_the_round_trip() -> None:
    for folder in ("NORMAL", "PNEUMONIA"):
        path = sorted((REAL_TRAIN / folder).iterdir())[0]
        src = decode_image(path.read_bytes(), size=256).pixels
        twelve = src.astype(np.uint16) * 16
        for data in (dicom_bytes(twelve, bits_stored=12),
                     dicom_bytes((4095 - twelve).astype(np.uint16), photometric="MONOCHROME1", bits_stored=12)):
            assert correlation(decode_image(data, size=SIZE).pixels, resized(src)) > 0.95, path.name


# ---------------------------------------------------------------------------------------------------- the import
def _assert_no_phi(text: str | bytes, *, where: str) -> None:
    """No :data:`PHI_STRINGS` entry in ``text`` (bytes are scanned as they are: shards, markers, CSV, JSON)."""
    blob = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
    for phi in PHI_STRINGS:
        for variant in {phi, phi.lower()}:
            assert variant.encode() not in blob, f"PHI {variant!r} found in {where}"


def _assert_store_free_of_phi(store: Store, prefixes: tuple[str, ...] = ("",)) -> int:
    """Every object under ``prefixes`` (manifests, rejects, shards, markers, pointers) scanned; returns how many."""
    objects = [obj for prefix in prefixes for obj in store.list(prefix)]
    for obj in objects:
        _assert_no_phi(store.get_bytes(obj.key), where=store.url(obj.key))
    return len(objects)


def _mixed_tree() -> dict[str, bytes]:
    """DICOMs (two of one patient, in different classes' folders), an extension-less one, JPEGs, bad files."""
    src = [phantom(seed, size=64, pneumonia=seed % 2 == 1) for seed in range(10, 20)]
    twelve = [image.astype(np.uint16) * 16 for image in src]
    other = {**PHI, "PatientID": "MRN-654321", "PatientName": "ROE^RICHARD"}
    third = {**PHI, "PatientID": "MRN-777777", "PatientName": "POE^EDGAR"}
    bad = _bad_dicoms()
    return {
        "NORMAL/a.dcm": dicom_bytes(twelve[0], bits_stored=12),
        "NORMAL/b.DCM": dicom_bytes((4095 - twelve[2]).astype(np.uint16), photometric="MONOCHROME1", bits_stored=12),
        "NORMAL/c": dicom_bytes(src[4], phi=other),  # extension-less
        "NORMAL/d.dcm": dicom_bytes(twelve[6], bits_stored=12, view="AP", phi=third),
        "NORMAL/IM-0001-0001.jpeg": fx.jpeg_bytes("L", (48, 40)),
        "NORMAL/IM-0002-0001.png": fx.png_12bit_in_16bit((40, 40)),
        "PNEUMONIA/e.dcm": dicom_bytes(twelve[1], bits_stored=12, WindowCenter=2048, WindowWidth=4096),
        "PNEUMONIA/f.dcm": dicom_bytes((src[3].astype(np.int16) * 8 - 1024), bits_stored=12, signed=True,
                                       RescaleSlope=1, RescaleIntercept=-1000, phi=other),
        "PNEUMONIA/g.dcm": dicom_bytes(twelve[5], bits_stored=12, phi=third),
        "PNEUMONIA/person1_bacteria_1.jpeg": fx.jpeg_bytes("RGB", (50, 50)),
        "PNEUMONIA/person2_virus_2.jpeg": fx.jpeg_bytes("L", (45, 50)),
        "PNEUMONIA/lateral.dcm": dicom_bytes(twelve[7], bits_stored=12, view="LL"),
        "PNEUMONIA/noview.dcm": dicom_bytes(twelve[8], bits_stored=12, view=None),
        "PNEUMONIA/freetext.dcm": dicom_bytes(twelve[9], bits_stored=12, view="JANE DOE"),  # a name in a code
        "NORMAL/truncated.dcm": bad["truncated"][0],
        "NORMAL/report.dcm": bad["structured-report"][0],
        "NORMAL/frames.dcm": bad["multi-frame"][0],
        "PNEUMONIA/lossless.dcm": bad["jpeg-lossless"][0],
        "PNEUMONIA/nopixels.dcm": bad["no-pixel-data"][0],
    }


EXPECTED_REJECTS = {
    "NORMAL/frames.dcm": "dicom-multi-frame",
    "NORMAL/report.dcm": "dicom-not-an-image",
    "NORMAL/truncated.dcm": "truncated",
    "PNEUMONIA/freetext.dcm": "view-filtered",
    "PNEUMONIA/lateral.dcm": "view-filtered",
    "PNEUMONIA/lossless.dcm": "dicom-unsupported-transfer-syntax",
    "PNEUMONIA/nopixels.dcm": "dicom-no-pixel-data",
    "PNEUMONIA/noview.dcm": "view-filtered",
}


def _import_capturing(store: Store, settings: PrepareSettings, capsys: pytest.CaptureFixture[str]):
    """Runs the import with DEBUG JSON logs and every warning captured; returns (result, everything printed)."""
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream=stream)
    logging.getLogger("pydicom").setLevel(logging.DEBUG)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = import_dataset(store, settings)
    finally:
        logging.getLogger("pydicom").setLevel(logging.NOTSET)
    captured = capsys.readouterr()
    printed = "\n".join([stream.getvalue(), captured.out, captured.err, *(str(w.message) for w in caught)])
    return result, printed


def test_mixed_dicom_and_jpeg_folder_imports_without_phi(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CXR_PATIENT_SALT", SALT)
    fx.write_tree(tmp_path / "src", _mixed_tree())
    settings = PrepareSettings(source=str(tmp_path / "src"), name="dicom", image_size=SIZE, split="patient",
                               test_fraction=0.4, seed=3, shard_size=4)
    assert settings.salt_bytes() == SALT.encode()
    result, printed = _import_capturing(store, settings, capsys)
    assert result.status == "created"
    assert "import_committed" in printed  # the logs were captured
    rejects = {item["path"]: item["reason"] for item in result.rejects}
    assert rejects == EXPECTED_REJECTS, result.rejects
    details = {item["path"]: item["detail"] for item in result.rejects}
    assert details["PNEUMONIA/lateral.dcm"].startswith("view LL not in PA, AP")
    assert details["PNEUMONIA/noview.dcm"].startswith("view UNKNOWN not in PA, AP")
    assert details["PNEUMONIA/freetext.dcm"].startswith("view OTHER not in PA, AP")  # never the value itself

    dataset = load_dataset(store, "dicom", result.version)
    manifest = dataset.manifest.set_index("source_path")
    dicoms = ["NORMAL/a.dcm", "NORMAL/b.DCM", "NORMAL/c", "NORMAL/d.dcm", "PNEUMONIA/e.dcm", "PNEUMONIA/f.dcm",
              "PNEUMONIA/g.dcm"]
    jpegs = sorted(set(manifest.index) - set(dicoms))
    assert len(jpegs) == 4 and set(manifest.index) >= set(dicoms)
    assert (manifest.loc[dicoms, "orig_format"] == "DICOM").all()
    assert (manifest.loc[dicoms, "modality"] == "DX").all()
    assert manifest.loc["NORMAL/d.dcm", "view"] == "AP" and manifest.loc["NORMAL/a.dcm", "view"] == "PA"
    assert manifest.loc["NORMAL/b.DCM", "photometric"] == "MONOCHROME1"
    assert (manifest.loc[jpegs, ["modality", "view", "photometric"]] == "").all().all()
    # Patients: the salted hash of PatientID; files of one patient share it, and one side of the split.
    patients = manifest.loc[dicoms, "patient_id"]
    assert patients.str.startswith(PATIENT_KEY_PREFIX).all() and manifest.loc[dicoms, "patient_id_parsed"].all()
    same = {"MRN-123456": ["NORMAL/a.dcm", "NORMAL/b.DCM", "PNEUMONIA/e.dcm"],
            "MRN-654321": ["NORMAL/c", "PNEUMONIA/f.dcm"], "MRN-777777": ["NORMAL/d.dcm", "PNEUMONIA/g.dcm"]}
    for mrn, paths in same.items():
        key = patient_key(mrn.encode(), tag="PatientID", salt=SALT.encode())
        assert (manifest.loc[paths, "patient_id"] == key).all(), mrn
        assert manifest.loc[paths, "split"].nunique() == 1, mrn
    assert result.info["patients_on_both_sides"] == 0
    assert set(manifest.loc[jpegs, "patient_id"]) == {"IM-0001", "IM-0002", "person1", "person2"}
    # The pixels: bone bright (the MONOCHROME1 file like its source).
    src = phantom(12, size=64)
    row = dataset.manifest.index[dataset.manifest["source_path"] == "NORMAL/b.DCM"][0]
    assert correlation(dataset.images[row], resized(src)) > 0.95

    scanned = _assert_store_free_of_phi(store)
    assert scanned >= 6
    _assert_no_phi(printed, where="logs and warnings")
    _assert_no_phi(json.dumps(result.summary()), where="the import summary")
    assert SALT not in printed and SALT.encode() not in b"".join(store.get_bytes(o.key) for o in store.list(""))


def test_views_setting_and_zip_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXR_PATIENT_SALT", SALT)
    tree = {name: data for name, data in _mixed_tree().items() if name.endswith(("lateral.dcm", "noview.dcm"))}
    tree["NORMAL/IM-0001-0001.jpeg"] = fx.jpeg_bytes("L", (48, 40))
    (tmp_path / "src.zip").write_bytes(fx.zip_tree(tree))
    store = open_store((tmp_path / "store").as_uri())
    settings = PrepareSettings(source=str(tmp_path / "src.zip"), name="views", image_size=SIZE, split="paper",
                               dicom_views="pa, ll,unknown")
    assert settings.dicom_views == "PA,LL,UNKNOWN"
    assert PrepareSettings(source="/x", dicom_views="ap  axial,other").allowed_views() == ("AP AXIAL", "OTHER")
    result = import_dataset(store, settings)
    manifest = load_dataset(store, "views", result.version).manifest
    assert sorted(manifest["view"]) == ["", "", "LL"] and not result.rejects
    for bad in ("PA;AP", "PAA", ""):
        with pytest.raises(ValueError, match="dicom_views"):
            PrepareSettings(source="/x", dicom_views=bad)
    assert PrepareSettings(source="/x", dicom_views="*").allowed_views() is None


def test_dicom_from_an_s3_prefix(
    store: Store, s3_server, s3_bucket: str, s3_options: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CXR_PATIENT_SALT", SALT)
    client = s3_server.client()
    src = phantom(30, size=48)
    tree = {
        "src/NORMAL/scan-1": dicom_bytes(src),
        "src/PNEUMONIA/scan-2.dcm": dicom_bytes((255 - src), photometric="MONOCHROME1"),
        "src/PNEUMONIA/IM-0009-0001.jpeg": fx.jpeg_bytes("L", (40, 40)),
    }
    for key, data in tree.items():
        client.put_object(Bucket=s3_bucket, Key=key, Body=data)
    settings = PrepareSettings(source=f"s3://{s3_bucket}/src", s3=s3_options, name="s3dicom", image_size=SIZE,
                               split="paper")
    result = import_dataset(store, settings)
    dataset = load_dataset(store, "s3dicom", result.version)
    assert sorted(dataset.manifest["orig_format"]) == ["DICOM", "DICOM", "JPEG"] and not result.rejects
    for pixels, fmt in zip(dataset.images, dataset.manifest["orig_format"]):
        if fmt == "DICOM":
            assert correlation(pixels, resized(src)) > 0.95
    _assert_store_free_of_phi(store)


def test_a_dicom_patient_without_a_salt_fails_the_import_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CXR_PATIENT_SALT", raising=False)
    fx.write_tree(tmp_path / "src", {"NORMAL/a.dcm": dicom_bytes(phantom(40, size=32)),
                                     "NORMAL/IM-0001-0001.jpeg": fx.jpeg_bytes("L", (40, 40))})
    store = open_store((tmp_path / "store").as_uri())
    settings = PrepareSettings(source=str(tmp_path / "src"), name="nosalt", image_size=SIZE, split="paper")
    with pytest.raises(SettingsError, match="CXR_PATIENT_SALT") as caught:
        import_dataset(store, settings)
    assert "NORMAL/a.dcm" in str(caught.value)
    _assert_no_phi(str(caught.value), where="the error")
    assert not list(store.list("datasets"))
    code = cli.main(["data", "import", str(tmp_path / "src"), "--store", store.uri, "--name", "nosalt",
                     "--image-size", str(SIZE)])
    assert code == 2  # a setting, not retried (README "Failure behaviour")
    # A DICOM file without PatientID/StudyInstanceUID needs no salt: it is its own patient, by file name.
    fx.write_tree(tmp_path / "anon", {"NORMAL/anon-7.dcm": dicom_bytes(phantom(41, size=32), phi={}),
                                      "NORMAL/IM-0001-0001.jpeg": fx.jpeg_bytes("L", (40, 40))})
    result = import_dataset(store, PrepareSettings(source=str(tmp_path / "anon"), name="anon", image_size=SIZE,
                                                   split="paper"))
    manifest = load_dataset(store, "anon", result.version).manifest.set_index("source_path")
    assert manifest.loc["NORMAL/anon-7.dcm", "patient_id"] == "anon-7"
    with pytest.raises(ValueError, match="16 characters") as short:
        PrepareSettings(source="/x", patient_salt="short-salt")
    assert "short-salt" not in str(short.value)


def test_incremental_batches_keep_a_known_dicom_patient_on_its_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CXR_PATIENT_SALT", SALT)
    store_dir = tmp_path / "store"
    store = open_store(store_dir.as_uri())
    base_tree = {f"NORMAL/IM-{index:04d}-0001.jpeg": fx.jpeg_bytes("L", (40 + index, 40)) for index in range(6)}
    base_tree |= {f"PNEUMONIA/person{index}_virus_1.jpeg": fx.jpeg_bytes("L", (40, 40 + index)) for index in range(6)}
    base_tree["PNEUMONIA/first.dcm"] = dicom_bytes(phantom(50, size=48))
    fx.write_tree(tmp_path / "base", base_tree)
    base = import_dataset(store, PrepareSettings(source=str(tmp_path / "base"), name="inc", image_size=SIZE,
                                                 split="patient", test_fraction=0.5, seed=1))
    before = load_dataset(store, "inc", base.version).manifest.set_index("source_path")
    side = before.loc["PNEUMONIA/first.dcm", "split"]

    fx.write_tree(store_dir / "incoming" / "batch-1", {"PNEUMONIA/again.dcm": dicom_bytes(phantom(51, size=48)),
                                                       "NORMAL/new.dcm": dicom_bytes(phantom(52, size=48),
                                                                                     phi={**PHI, "PatientID": "X-1"}),
                                                       "_SUCCESS": b""})
    settings = PrepareSettings(source=(store_dir / "incoming").as_uri(), name="inc", image_size=SIZE,
                               split="patient", test_fraction=0.5, seed=1, base_version="latest",
                               batches='["batch-1"]')
    result = import_dataset(store, settings)
    after = load_dataset(store, "inc", result.version).manifest.set_index("source_path")
    assert after.loc["batch-1/PNEUMONIA/again.dcm", "patient_id"] == before.loc["PNEUMONIA/first.dcm", "patient_id"]
    assert after.loc["batch-1/PNEUMONIA/again.dcm", "split"] == side
    assert _assert_store_free_of_phi(store, ("datasets", "registry")) >= 10  # incoming/ holds the uploads


# ---------------------------------------------------------------------------------------------------- predict
def test_predict_evaluate_and_explain_read_dicom_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keras = pytest.importorskip("keras")
    from cxrcore.evaluate import load_model_uri, predict_images, predict_pixels
    from cxrcore.evaluate.files import decode_files
    from cxrcore.models import build_custom_cnn

    keras.utils.set_random_seed(0)
    model_path = tmp_path / "model.keras"
    build_custom_cnn(SIZE).save(model_path)
    keras.backend.clear_session()
    src = phantom(60, size=64, pneumonia=True)
    stored = (4095 - src.astype(np.uint16) * 16).astype(np.uint16)
    (tmp_path / "x.dcm").write_bytes(dicom_bytes(stored, photometric="MONOCHROME1", bits_stored=12))
    (tmp_path / "scan").write_bytes(dicom_bytes(src.astype(np.uint16) * 16, bits_stored=12))
    (tmp_path / "x.png").write_bytes(fx.png_bytes("L"))
    paths = [tmp_path / "x.dcm", tmp_path / "scan", tmp_path / "x.png"]

    decoded = decode_files(paths, SIZE)
    assert all(item.pixels is not None for item in decoded)
    assert correlation(decoded[0].pixels, resized(src)) > 0.95 and correlation(decoded[1].pixels, resized(src)) > 0.95
    model = load_model_uri(str(model_path))
    lines = predict_images(model, paths, explain_dir=tmp_path / "explain")
    expected = predict_pixels(model, np.stack([item.pixels for item in decoded]))
    assert [line["probability"] for line in lines] == pytest.approx(expected.tolist(), abs=1e-6)
    assert (tmp_path / "explain" / "x.gradcam.png").is_file() and (tmp_path / "explain" / "scan.gradcam.png").is_file()

    capsys.readouterr()
    assert cli.main(["predict", str(model_path), str(paths[0]), str(paths[1])]) == 0
    printed = capsys.readouterr()
    predicted = [json.loads(line) for line in printed.out.splitlines() if line.startswith("{")]
    assert [line["probability"] for line in predicted] == pytest.approx(expected[:2].tolist(), abs=1e-6)
    _assert_no_phi(printed.out + printed.err, where="cxr predict output")

    fx.write_tree(tmp_path / "eval", {"NORMAL/x.dcm": paths[0].read_bytes(), "PNEUMONIA/scan": paths[1].read_bytes()})
    assert cli.main(["evaluate", str(model_path), str(tmp_path / "eval")]) == 0
    printed = capsys.readouterr()
    metrics = json.loads(printed.out[printed.out.index("{"):])
    assert metrics["n"] == 2 and metrics["skipped_count"] == 0
    _assert_no_phi(printed.out + printed.err, where="cxr evaluate output")


# ---------------------------------------------------------------------------------------------------- retraining
def _dicom_batch(root: Path) -> None:
    """A producer's DICOM upload: two images of one patient (both classes' folders), an extension-less file, a
    MONOCHROME1 one, a lateral view (filtered) and a JPEG, then the batch's ``_SUCCESS``."""
    images = [phantom(seed, size=48, pneumonia=seed % 2 == 1).astype(np.uint16) * 16 for seed in range(70, 76)]
    other = {**PHI, "PatientID": "MRN-654321"}
    fx.write_tree(root, {
        "NORMAL/a.dcm": dicom_bytes(images[0], bits_stored=12),
        "NORMAL/b": dicom_bytes((4095 - images[2]).astype(np.uint16), photometric="MONOCHROME1", bits_stored=12,
                                phi=other),
        "PNEUMONIA/c.dcm": dicom_bytes(images[1], bits_stored=12),
        "PNEUMONIA/d.dcm": dicom_bytes(images[3], bits_stored=12, phi=other),
        "PNEUMONIA/lateral.dcm": dicom_bytes(images[5], bits_stored=12, view="LL"),
        "NORMAL/IM-0900-0001.jpeg": fx.jpeg_bytes("L", (48, 48)),
        "_SUCCESS": b"",
    })


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_dicom_batch_flows_through_the_retrain_workflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cxrcore.data.dataset import latest_key
    from cxrcore.ops.runner import LocalRunner, load_workflow, resolve_arguments
    from tests.helpers import make_demo_dataset

    monkeypatch.setenv("CXR_PATIENT_SALT", SALT)  # what the Secret cxr-patient-salt gives the pods
    store_dir = tmp_path / "store"
    store = open_store(store_dir.as_uri())
    base = make_demo_dataset(store, tmp_path, name="demo", per_class=16, size=32, seed=0)
    _dicom_batch(store_dir / "incoming" / "batch-dicom")

    workflow, templates = load_workflow(Path(__file__).resolve().parents[1] / "argo" / "retrain.yaml")
    overrides = {"store": store.uri, "dataset": "demo", "image-size": "32", "split": "patient", "data-seed": "0",
                 "clf-epochs": "1", "clf-size": "32", "clf-batch": "16", "clf-steps": "2", "weights": "none"}
    parameters = resolve_arguments(workflow, overrides=overrides)
    work = tmp_path / "work"
    run = LocalRunner(workflow, templates, parameters, work_dir=work, parallelism=2, name="retrain-dicom").run()
    assert run.status == "Succeeded", {name: (node.status, node.message) for name, node in run.nodes.items()}
    assert run.nodes["check"].parameters["batches"] == '["batch-dicom"]'

    version = run.nodes["import"].parameters["version"]
    assert version != base.version and store.get_json(latest_key("demo")) == {"version": version}
    dataset = load_dataset(store, "demo", version)
    rows = dataset.manifest[dataset.manifest["source_path"].str.startswith("batch-dicom/")].set_index("source_path")
    dicoms = ["batch-dicom/NORMAL/a.dcm", "batch-dicom/NORMAL/b", "batch-dicom/PNEUMONIA/c.dcm",
              "batch-dicom/PNEUMONIA/d.dcm"]
    assert sorted(rows.index) == sorted([*dicoms, "batch-dicom/NORMAL/IM-0900-0001.jpeg"])
    assert (rows.loc[dicoms, "orig_format"] == "DICOM").all() and (rows.loc[dicoms, "view"] == "PA").all()
    first = patient_key(b"MRN-123456", tag="PatientID", salt=SALT.encode())
    second = patient_key(b"MRN-654321", tag="PatientID", salt=SALT.encode())
    assert list(rows.loc[dicoms, "patient_id"]) == [first, second, first, second]
    for pair in (dicoms[0::2], dicoms[1::2]):
        assert rows.loc[pair, "split"].nunique() == 1
    rejects = store.get_bytes(f"datasets/demo/{version}/rejects.csv").decode()
    assert 'batch-dicom/PNEUMONIA/lateral.dcm,view-filtered,"view LL not in PA, AP' in rejects
    polarity = dataset.images[dataset.manifest.index[dataset.manifest["source_path"] == "batch-dicom/NORMAL/b"][0]]
    assert correlation(polarity, resized(phantom(72, size=48))) > 0.95

    assert _assert_store_free_of_phi(store, ("datasets", "registry", "runs")) > 20
    for path in work.rglob("*"):  # every step's log, result and metrics file
        if path.is_file():
            _assert_no_phi(path.read_bytes(), where=str(path))
