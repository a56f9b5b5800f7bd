"""Tests of :mod:`cxrcore.data.sources`: folder, zip and S3 import sources, their refusals, and Kaggle naming."""

from __future__ import annotations

import collections
import concurrent.futures as cf
import hashlib
import os
import pickle
import struct
import warnings
import zipfile
from pathlib import Path

import pytest

from cxrcore.data.images import ImageRejected
from cxrcore.data.sources import (
    FolderSource,
    PatientId,
    S3Source,
    Source,
    SourceFile,
    SourceFileRejected,
    ZipSource,
    classify_path,
    open_source,
    parse_patient_id,
)
from tests.fixtures_images import (
    jpeg_bytes,
    junk_entries_zip,
    nested_zip,
    sample_tree,
    write_bytes,
    write_tree,
    zip_bomb,
    zip_bytes,
    zip_slip,
    zip_symlink,
    zip_tree,
    zip_with_lying_size,
)

REAL_TRAIN = Path(__file__).resolve().parents[2] / "shared/data/chest_xray/train"
S3_PREFIX = "incoming/kaggle"

#: Junk every kind of source must refuse the same way (path -> content).
JUNK = {
    ".DS_Store": b"\x00\x00\x00\x01Bud1",
    "__MACOSX/chest_xray/train/NORMAL/._IM-0115-0001.jpeg": b"\x00\x05\x16\x07",
    "chest_xray/train/NORMAL/._IM-0115-0001.jpeg": b"\x00\x05\x16\x07",
    "chest_xray/train/Thumbs.db": b"\xd0\xcf\x11\xe0",
    "chest_xray/test/PNEUMONIA/desktop.ini": b"[.ShellClassInfo]\r\n",
    "chest_xray/.git/config": b"[core]\n",
    "chest_xray/extra/more.zip": b"PK\x05\x06" + bytes(18),
    "chest_xray/extra/more.tar.gz": b"\x1f\x8b\x08\x00",
}
JUNK_REASONS = {
    ".DS_Store": "hidden-file",
    "__MACOSX/chest_xray/train/NORMAL/._IM-0115-0001.jpeg": "hidden-file",
    "chest_xray/train/NORMAL/._IM-0115-0001.jpeg": "hidden-file",
    "chest_xray/train/Thumbs.db": "hidden-file",
    "chest_xray/test/PNEUMONIA/desktop.ini": "hidden-file",
    "chest_xray/.git/config": "hidden-file",
    "chest_xray/extra/more.zip": "nested-archive",
    "chest_xray/extra/more.tar.gz": "nested-archive",
}


def _listing(source: Source) -> tuple[list[tuple[str, int, str]], list[tuple[str, str]]]:
    files, rejections = source.scan()
    return (
        [(f.path, f.size, hashlib.sha256(f.read()).hexdigest()) for f in files],
        [(r.path, r.reason) for r in rejections],
    )


def _upload(server, bucket: str, tree: dict[str, bytes], prefix: str = S3_PREFIX) -> str:
    client = server.client()
    for rel, data in tree.items():
        client.put_object(Bucket=bucket, Key=f"{prefix}/{rel}", Body=data)
    return f"s3://{bucket}/{prefix}"


def _patch_zip(data: bytes, *, local_offset: int, central_offset: int, fmt: str, value: int) -> bytes:
    """Patches one field of the (single) member's local header and central directory entry."""
    patched = bytearray(data)
    struct.pack_into(fmt, patched, patched.find(b"PK\x03\x04") + local_offset, value)
    struct.pack_into(fmt, patched, patched.find(b"PK\x01\x02") + central_offset, value)
    return bytes(patched)


@pytest.fixture
def mixed_tree() -> dict[str, bytes]:
    return {**sample_tree(), **JUNK}


@pytest.fixture
def folder_source(tmp_path: Path, mixed_tree: dict[str, bytes]) -> Source:
    return open_source(write_tree(tmp_path / "folder", mixed_tree))


@pytest.fixture
def zip_source(tmp_path: Path, mixed_tree: dict[str, bytes]) -> Source:
    return open_source(write_bytes(tmp_path / "chest_xray.zip", zip_tree(mixed_tree)))


# --------------------------------------------------------------------------------------------------- equivalence
def test_folder_and_zip_enumerate_the_same_tree(folder_source: Source, zip_source: Source) -> None:
    assert (folder_source.kind, zip_source.kind) == ("folder", "zip")
    folder = _listing(folder_source)
    archive = _listing(zip_source)
    assert folder == archive
    files, rejections = folder
    tree = sample_tree()
    assert [path for path, _, _ in files] == sorted(tree)
    assert [size for _, size, _ in files] == [len(tree[path]) for path in sorted(tree)]
    assert dict(rejections) == JUNK_REASONS
    assert [path for path, _ in rejections] == sorted(JUNK_REASONS)


def test_s3_enumerates_the_same_tree_as_folder_and_zip(
    s3_server, s3_bucket: str, s3_options: dict[str, str], folder_source: Source, mixed_tree: dict[str, bytes]
) -> None:
    uri = _upload(s3_server, s3_bucket, mixed_tree)
    # An object beside the prefix (same leading characters) must not leak in.
    s3_server.client().put_object(Bucket=s3_bucket, Key=f"{S3_PREFIX}-other/NORMAL/x.jpeg", Body=b"x")
    source = open_source(uri, s3_options=s3_options)
    assert isinstance(source, S3Source)
    assert source.kind == "s3"
    assert source.description == f"s3://{s3_bucket}/{S3_PREFIX}"
    assert _listing(source) == _listing(folder_source)


def test_kaggle_nested_duplicate_tree_is_enumerated_twice(zip_source: Source) -> None:
    files, _ = zip_source.scan()
    paths = [f.path for f in files]
    assert "chest_xray/train/NORMAL/IM-0115-0001.jpeg" in paths
    assert "chest_xray/chest_xray/train/NORMAL/IM-0115-0001.jpeg" in paths
    by_hash = collections.Counter(hashlib.sha256(f.read()).hexdigest() for f in files)
    assert set(by_hash.values()) == {2}  # every image exactly twice: dedupe by content happens downstream


def test_descriptions_are_clean_uris(tmp_path: Path, folder_source: Source, zip_source: Source) -> None:
    assert folder_source.description == (tmp_path / "folder").resolve().as_uri()
    assert zip_source.description == (tmp_path / "chest_xray.zip").resolve().as_uri()
    assert repr(zip_source) == f"ZipSource({zip_source.description!r})"


def test_scan_does_not_write_anything(tmp_path: Path, zip_source: Source) -> None:
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    files, _ = zip_source.scan()
    for file in files:
        file.read()
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_source_file_equality_ignores_the_reader() -> None:
    assert SourceFile("a/b.jpeg", 3, lambda: b"abc") == SourceFile("a/b.jpeg", 3, lambda: b"xyz")


# --------------------------------------------------------------------------------------------------- zip policy
def _zip_source(tmp_path: Path, data: bytes, name: str = "source.zip", **limits) -> Source:
    return open_source(write_bytes(tmp_path / name, data), **limits)


def test_zip_slip_members_are_unsafe_paths(tmp_path: Path) -> None:
    files, rejections = _zip_source(tmp_path, zip_slip()).scan()
    assert [f.path for f in files] == ["NORMAL/IM-0001-0001.jpeg"]
    assert {(r.path, r.reason) for r in rejections} == {
        ("../evil.jpeg", "unsafe-path"),
        ("/abs.jpeg", "unsafe-path"),
        ("NORMAL/../../up.jpeg", "unsafe-path"),
        ("C:/drive.jpeg", "unsafe-path"),
        ("NORMAL\\..\\..\\backslash.jpeg", "unsafe-path"),
    }
    assert not (tmp_path.parent / "evil.jpeg").exists()


def test_zip_symlink_member_is_refused(tmp_path: Path) -> None:
    files, rejections = _zip_source(tmp_path, zip_symlink()).scan()
    assert [f.path for f in files] == ["NORMAL/IM-0001-0001.jpeg"]
    assert [(r.path, r.reason) for r in rejections] == [("NORMAL/link.jpeg", "symlink")]


def test_zip_special_file_member_is_refused(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("NORMAL/fifo.jpeg")
    info.create_system = 3
    info.external_attr = 0o010644 << 16  # S_IFIFO
    buffer = tmp_path / "fifo.zip"
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(info, b"")
    _, rejections = open_source(buffer).scan()
    assert [(r.path, r.reason) for r in rejections] == [("NORMAL/fifo.jpeg", "special-file")]


def test_zip_bomb_by_declared_size(tmp_path: Path) -> None:
    files, rejections = _zip_source(tmp_path, zip_bomb()).scan()  # 100 MiB member, default 64 MiB limit
    assert files == []
    assert [(r.path, r.reason) for r in rejections] == [("NORMAL/bomb.jpeg", "zip-bomb")]
    assert "per-file limit" in rejections[0].detail


def test_zip_bomb_by_compression_ratio(tmp_path: Path) -> None:
    files, rejections = _zip_source(tmp_path, zip_bomb(2 * 2**20)).scan()  # 2 MiB of zeros, ~1000:1
    assert files == []
    assert [r.reason for r in rejections] == ["zip-bomb"]
    assert "compression ratio" in rejections[0].detail
    # A looser ratio accepts it (the size is within the default limit).
    files, rejections = _zip_source(tmp_path, zip_bomb(2 * 2**20), name="loose.zip", max_ratio=10_000).scan()
    assert [f.size for f in files] == [2 * 2**20] and rejections == []
    assert files[0].read() == bytes(2 * 2**20)


def test_small_highly_compressible_members_are_not_ratio_bombs(tmp_path: Path) -> None:
    files, rejections = _zip_source(tmp_path, zip_bytes({"NORMAL/blank.png": bytes(500_000)})).scan()
    assert [f.path for f in files] == ["NORMAL/blank.png"] and rejections == []


def test_zip_bomb_by_total_size(tmp_path: Path) -> None:
    data = zip_bytes({f"NORMAL/{index}.jpeg": os.urandom(600) for index in range(3)})
    files, rejections = _zip_source(tmp_path, data, max_total_bytes=1500).scan()
    assert [f.path for f in files] == ["NORMAL/0.jpeg", "NORMAL/1.jpeg"]
    assert [(r.path, r.reason) for r in rejections] == [("NORMAL/2.jpeg", "zip-bomb")]
    assert "total" in rejections[0].detail


def test_zip_bomb_is_enforced_while_reading_when_the_header_lies(tmp_path: Path) -> None:
    # The headers claim 1,000 bytes (ratio and size look harmless); the data inflates to 8 MiB.
    data = zip_with_lying_size(bytes(8 * 2**20), declared_size=1000)
    files, rejections = _zip_source(tmp_path, data, max_file_bytes=2**20).scan()
    assert rejections == []
    assert [(f.path, f.size) for f in files] == [("NORMAL/liar.jpeg", 1000)]
    with pytest.raises(SourceFileRejected) as caught:
        files[0].read()
    assert (caught.value.path, caught.value.reason) == ("NORMAL/liar.jpeg", "zip-bomb")
    assert isinstance(caught.value, ImageRejected)  # one `except ImageRejected` covers read and decode


@pytest.mark.parametrize(("actual", "declared"), [(2000, 1000), (2000, 3000)], ids=["larger", "smaller"])
def test_zip_member_whose_size_differs_from_its_header_is_corrupt(tmp_path: Path, actual: int, declared: int) -> None:
    files, _ = _zip_source(tmp_path, zip_with_lying_size(os.urandom(actual), declared_size=declared)).scan()
    with pytest.raises(SourceFileRejected) as caught:
        files[0].read()
    assert caught.value.reason == "corrupt"
    assert str(declared) in caught.value.detail


def test_zip_member_with_bad_crc_is_corrupt(tmp_path: Path) -> None:
    data = _patch_zip(zip_bytes({"NORMAL/a.jpeg": jpeg_bytes()}), local_offset=14, central_offset=16, fmt="<I", value=0)
    files, _ = _zip_source(tmp_path, data).scan()
    with pytest.raises(SourceFileRejected) as caught:
        files[0].read()
    assert caught.value.reason == "corrupt"
    assert "CRC" in caught.value.detail


def test_encrypted_and_unsupported_compression_members_are_refused(tmp_path: Path) -> None:
    plain = zip_bytes({"NORMAL/a.jpeg": jpeg_bytes()})
    encrypted = _patch_zip(plain, local_offset=6, central_offset=8, fmt="<H", value=0x1)
    deflate64 = _patch_zip(plain, local_offset=8, central_offset=10, fmt="<H", value=9)
    _, rejections = _zip_source(tmp_path, encrypted, name="encrypted.zip").scan()
    assert [r.reason for r in rejections] == ["encrypted"]
    _, rejections = _zip_source(tmp_path, deflate64, name="deflate64.zip").scan()
    assert [r.reason for r in rejections] == ["unsupported-compression"]


def test_nested_archive_and_os_junk_are_refused(tmp_path: Path) -> None:
    files, rejections = _zip_source(tmp_path, nested_zip(), name="nested.zip").scan()
    assert [f.path for f in files] == ["NORMAL/IM-0001-0001.jpeg"]
    assert [(r.path, r.reason) for r in rejections] == [("NORMAL/more.zip", "nested-archive")]
    files, rejections = _zip_source(tmp_path, junk_entries_zip(), name="junk.zip").scan()
    assert [f.path for f in files] == ["NORMAL/IM-0001-0001.jpeg"]  # the "NORMAL/" directory entry is skipped
    assert {r.reason for r in rejections} == {"hidden-file"}
    assert [r.path for r in rejections] == [
        ".DS_Store",
        "NORMAL/.DS_Store",
        "NORMAL/._IM-0001-0001.jpeg",
        "NORMAL/Thumbs.db",
        "PNEUMONIA/desktop.ini",
        "__MACOSX/NORMAL/._IM-0001-0001.jpeg",
    ]


def test_duplicate_zip_members_keep_the_first(tmp_path: Path) -> None:
    path = tmp_path / "dupes.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about the duplicate name
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("NORMAL/a.jpeg", b"first")
            archive.writestr("NORMAL/a.jpeg", b"second")
            archive.writestr("NORMAL//b.jpeg", b"b1")
            archive.writestr("NORMAL/./b.jpeg", b"b2")
    files, rejections = open_source(path).scan()
    assert [(f.path, f.read()) for f in files] == [("NORMAL/a.jpeg", b"first"), ("NORMAL/b.jpeg", b"b1")]
    assert [(r.path, r.reason) for r in rejections] == [
        ("NORMAL/a.jpeg", "duplicate-path"),
        ("NORMAL/b.jpeg", "duplicate-path"),
    ]


def test_zip_reads_are_thread_safe_and_survive_close(zip_source: Source) -> None:
    files, _ = zip_source.scan()
    expected = [hashlib.sha256(f.read()).hexdigest() for f in files]
    with cf.ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(3):
            assert list(pool.map(lambda f: hashlib.sha256(f.read()).hexdigest(), files)) == expected
    zip_source.close()
    assert hashlib.sha256(files[0].read()).hexdigest() == expected[0]  # reopened lazily
    with zip_source as same:
        assert same is zip_source


def test_source_files_are_picklable(folder_source: Source, zip_source: Source) -> None:
    for source in (folder_source, zip_source):
        files, _ = source.scan()
        files[0].read()  # an open handle must not prevent pickling
        clone = pickle.loads(pickle.dumps(files[0]))
        assert clone == files[0]
        assert clone.read() == files[0].read()


def test_zip_is_detected_by_magic_and_by_case_insensitive_suffix(tmp_path: Path) -> None:
    data = zip_tree(sample_tree())
    assert isinstance(open_source(write_bytes(tmp_path / "upload.bin", data)), ZipSource)
    assert isinstance(open_source(write_bytes(tmp_path / "UPLOAD.ZIP", data)), ZipSource)


@pytest.mark.parametrize(
    "data",
    [b"this is not a zip", b"PK\x03\x04" + b"\x00" * 30, zip_bytes({"a.jpeg": b"x"})[:-10]],
    ids=["text", "magic-only", "cut-short"],
)
def test_invalid_zip_is_a_clear_value_error(tmp_path: Path, data: bytes) -> None:
    path = write_bytes(tmp_path / "broken.zip", data)
    with pytest.raises(ValueError, match="not a valid zip archive") as caught:
        open_source(path)
    assert str(path) in str(caught.value)


# --------------------------------------------------------------------------------------------------- folder policy
def test_folder_symlinks_inside_the_root_are_followed_and_outside_ones_refused(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "root", {"NORMAL/IM-0001-0001.jpeg": b"real", "elsewhere/IM-0002-0001.jpeg": b"2"})
    write_bytes(tmp_path / "outside/secret.jpeg", b"secret")
    (root / "NORMAL/inside-link.jpeg").symlink_to("../elsewhere/IM-0002-0001.jpeg")
    (root / "NORMAL/outside-link.jpeg").symlink_to(tmp_path / "outside/secret.jpeg")
    (root / "NORMAL/dangling.jpeg").symlink_to(root / "missing.jpeg")
    (root / "NORMAL/passwd.jpeg").symlink_to("/etc/passwd")
    (root / "linked-outside").symlink_to(tmp_path / "outside", target_is_directory=True)
    (root / "linked-inside").symlink_to(root / "elsewhere", target_is_directory=True)
    files, rejections = open_source(root).scan()
    assert [(f.path, f.read()) for f in files] == [
        ("NORMAL/IM-0001-0001.jpeg", b"real"),
        ("NORMAL/inside-link.jpeg", b"2"),
        ("elsewhere/IM-0002-0001.jpeg", b"2"),
    ]
    assert [(r.path, r.reason) for r in rejections] == [
        ("NORMAL/dangling.jpeg", "symlink"),
        ("NORMAL/outside-link.jpeg", "symlink"),
        ("NORMAL/passwd.jpeg", "symlink"),
        ("linked-outside", "symlink"),
    ]


def test_folder_symlink_swapped_after_scan_is_refused_at_read(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "root", {"real.jpeg": b"real"})
    write_bytes(tmp_path / "secret.jpeg", b"secret")
    link = root / "NORMAL/link.jpeg"
    link.parent.mkdir()
    link.symlink_to("../real.jpeg")
    files, _ = open_source(root).scan()
    link.unlink()
    link.symlink_to(tmp_path / "secret.jpeg")
    with pytest.raises(SourceFileRejected) as caught:
        next(f for f in files if f.path == "NORMAL/link.jpeg").read()
    assert caught.value.reason == "symlink"


def test_folder_unsafe_and_special_names_are_refused(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "root", {"NORMAL/ok.jpeg": b"ok", "NORMAL/back\\slash.jpeg": b"x"})
    write_bytes(root / "NORMAL/ctrl\x01.jpeg", b"x")
    descriptor = os.open(os.fsencode(root / "NORMAL") + b"/latin1-\xff.jpeg", os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(descriptor)
    os.mkfifo(root / "NORMAL/pipe.jpeg")
    files, rejections = open_source(root).scan()
    assert [f.path for f in files] == ["NORMAL/ok.jpeg"]
    reasons = collections.Counter(r.reason for r in rejections)
    assert reasons == {"unsafe-path": 3, "special-file": 1}
    assert ("NORMAL/pipe.jpeg", "special-file") in [(r.path, r.reason) for r in rejections]


def test_folder_size_limits(tmp_path: Path) -> None:
    tree = {"NORMAL/a.jpeg": b"a" * 400, "NORMAL/b.jpeg": b"b" * 400, "NORMAL/c.jpeg": b"c" * 2000}
    root = write_tree(tmp_path / "root", tree)
    files, rejections = open_source(root, max_file_bytes=1000, max_total_bytes=500).scan()
    assert [f.path for f in files] == ["NORMAL/a.jpeg"]
    assert [(r.path, r.reason) for r in rejections] == [
        ("NORMAL/b.jpeg", "too-large-total"),
        ("NORMAL/c.jpeg", "too-large-file"),
    ]


def test_folder_file_grown_after_scan_is_refused_at_read(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "root", {"NORMAL/a.jpeg": b"a" * 100})
    files, _ = open_source(root, max_file_bytes=1000).scan()
    (root / "NORMAL/a.jpeg").write_bytes(b"a" * 5000)
    with pytest.raises(SourceFileRejected) as caught:
        files[0].read()
    assert caught.value.reason == "too-large-file"


def test_folder_given_as_file_uri_and_through_a_symlinked_root(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "root", {"NORMAL/a.jpeg": b"a"})
    (tmp_path / "alias").symlink_to(root, target_is_directory=True)
    for src in (root.as_uri(), str(tmp_path / "alias"), tmp_path / "alias"):
        source = open_source(src)
        assert isinstance(source, FolderSource)
        assert [(f.path, f.read()) for f in source.scan()[0]] == [("NORMAL/a.jpeg", b"a")]


def test_empty_folder_scans_to_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert open_source(tmp_path / "empty").scan() == ([], [])


# --------------------------------------------------------------------------------------------------- S3 policy
def test_s3_unsafe_keys_are_refused(s3_server, s3_bucket: str, s3_options: dict[str, str]) -> None:
    client = s3_server.client()
    keys = ["NORMAL/ok.jpeg", "a//b.jpeg", "./c.jpeg", "x/../d.jpeg", "NORMAL\\e.jpeg", "/f.jpeg", "g\x01.jpeg"]
    for key in keys:
        client.put_object(Bucket=s3_bucket, Key=f"{S3_PREFIX}/{key}", Body=b"x")
    client.put_object(Bucket=s3_bucket, Key=f"{S3_PREFIX}/NORMAL/", Body=b"")  # folder placeholder: skipped
    try:
        files, rejections = open_source(f"s3://{s3_bucket}/{S3_PREFIX}", s3_options=s3_options).scan()
    finally:
        # One by one: a control character in a key breaks the XML of a batch delete on the test server.
        for key in keys:
            client.delete_object(Bucket=s3_bucket, Key=f"{S3_PREFIX}/{key}")
    assert [f.path for f in files] == ["NORMAL/ok.jpeg"]
    assert sorted(r.path for r in rejections) == sorted(keys[1:])
    assert {r.reason for r in rejections} == {"unsafe-path"}


def test_s3_size_limits_and_replaced_object(s3_server, s3_bucket: str, s3_options: dict[str, str]) -> None:
    tree = {"NORMAL/a.jpeg": b"a" * 400, "NORMAL/b.jpeg": b"b" * 400, "NORMAL/c.jpeg": b"c" * 2000}
    uri = _upload(s3_server, s3_bucket, tree)
    source = open_source(uri, s3_options=s3_options, max_file_bytes=1000, max_total_bytes=500)
    files, rejections = source.scan()
    assert [f.path for f in files] == ["NORMAL/a.jpeg"]
    assert [(r.path, r.reason) for r in rejections] == [
        ("NORMAL/b.jpeg", "too-large-total"),
        ("NORMAL/c.jpeg", "too-large-file"),
    ]
    clone = pickle.loads(pickle.dumps(files[0]))  # reconnects lazily in the receiving process
    assert clone.read() == b"a" * 400
    s3_server.client().put_object(Bucket=s3_bucket, Key=f"{S3_PREFIX}/NORMAL/a.jpeg", Body=b"a" * 5000)
    with pytest.raises(SourceFileRejected) as caught:
        files[0].read()
    assert caught.value.reason == "too-large-file"


def test_s3_uri_with_credentials_or_query_is_refused_without_echoing_secrets() -> None:
    with pytest.raises(ValueError) as caught:
        open_source("s3://AKIAEXAMPLE:topsecret@cxr-data/incoming")
    assert "topsecret" not in str(caught.value)
    with pytest.raises(ValueError, match="query"):
        open_source("s3://cxr-data/incoming?versionId=3")


# --------------------------------------------------------------------------------------------------- dispatch
def test_missing_path_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.zip"):
        open_source(tmp_path / "missing.zip")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        open_source(str(tmp_path / "nowhere"))


def test_plain_file_that_is_not_a_zip_is_a_value_error(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "image.jpeg", jpeg_bytes())
    with pytest.raises(ValueError, match="not a zip archive") as caught:
        open_source(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_file_bytes", 0),
        ("max_file_bytes", 1.5),
        ("max_total_bytes", -1),
        ("max_total_bytes", True),
        ("max_ratio", 0),
        ("max_ratio", "200"),
    ],
)
def test_limits_are_validated(tmp_path: Path, name: str, value) -> None:
    with pytest.raises(ValueError, match=rf"Received: {name}="):
        open_source(tmp_path, **{name: value})


@pytest.mark.parametrize("src", ["", "   ", None, 42])
def test_src_is_validated(src) -> None:
    with pytest.raises(ValueError, match="Received: src="):
        open_source(src)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------- naming
@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("chest_xray/train/NORMAL/IM-0115-0001.jpeg", ("NORMAL", "train")),
        ("chest_xray/chest_xray/test/PNEUMONIA/person1_virus_6.jpeg", ("PNEUMONIA", "test")),
        ("chest_xray/val/normal/x.jpeg", ("NORMAL", "val")),
        ("Chest_Xray/TRAIN/Pneumonia/y.jpeg", ("PNEUMONIA", "train")),
        ("NORMAL/z.png", ("NORMAL", None)),
        ("incoming/batch1/PNEUMONIA/a.jpeg", ("PNEUMONIA", None)),
        ("train/extra/NORMAL/b.jpeg", ("NORMAL", "train")),
        ("NORMAL/test/c.jpeg", ("NORMAL", None)),  # a split below the class folder does not count
        ("PNEUMONIA/NORMAL/d.jpeg", ("NORMAL", None)),  # the nearest class folder wins
        ("test/train/PNEUMONIA/e.jpeg", ("PNEUMONIA", "train")),  # the nearest split wins
        ("misc/f.jpeg", (None, None)),
        ("train/g.jpeg", (None, None)),
        ("NORMAL", (None, None)),  # a file named like a class is not a folder
        ("validation/NORMAL/h.jpeg", ("NORMAL", None)),
    ],
)
def test_classify_path(path: str, expected: tuple[str | None, str | None]) -> None:
    assert classify_path(path) == expected


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("person124_virus_231.jpeg", PatientId("person124", True)),
        ("person1000_bacteria_2931.jpeg", PatientId("person1000", True)),
        ("person447_virus_921_1.jpeg", PatientId("person447", True)),
        ("IM-0115-0001.jpeg", PatientId("IM-0115", True)),
        ("IM-0429-0001-0002.jpeg", PatientId("IM-0429", True)),
        ("NORMAL2-IM-1427-0001.jpeg", PatientId("NORMAL2-IM-1427", True)),
        ("NORMAL2-IM-0587-0001-0001.jpeg", PatientId("NORMAL2-IM-0587", True)),
        ("PHANTOMN-IM-0007-0002.jpeg", PatientId("PHANTOMN-IM-0007", True)),
        ("chest_xray/train/PNEUMONIA/person1_virus_6.jpeg", PatientId("person1", True)),
        ("Person5_Virus_12.JPEG", PatientId("Person5", True)),
        ("im-0001-0001.png", PatientId("im-0001", True)),
        ("scan_2021.png", PatientId("scan_2021", False)),
        ("person12.jpeg", PatientId("person12", False)),
        ("IM-0115.jpeg", PatientId("IM-0115", False)),
        ("person1_flu_2.jpeg", PatientId("person1_flu_2", False)),
        ("no_extension", PatientId("no_extension", False)),
        ("archive.tar.gz", PatientId("archive.tar", False)),
    ],
)
def test_parse_patient_id(filename: str, expected: PatientId) -> None:
    assert parse_patient_id(filename) == expected


@pytest.mark.parametrize("filename", ["", "/", None])
def test_parse_patient_id_validates(filename) -> None:
    with pytest.raises(ValueError, match="Received: filename="):
        parse_patient_id(filename)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------- real data
@pytest.mark.realdata
def test_real_kaggle_train_folder_scans_cleanly() -> None:
    if not REAL_TRAIN.is_dir():
        pytest.skip(f"real data not present at {REAL_TRAIN} (mount ../shared/data/chest_xray to run this)")
    source = open_source(REAL_TRAIN)
    files, rejections = source.scan()
    assert len(files) == 5216
    assert rejections == []
    unparsed = [f.path for f in files if not parse_patient_id(f.path).parsed]
    assert unparsed == []
    classes = collections.Counter(classify_path(f.path)[0] for f in files)
    assert classes == {"NORMAL": 1341, "PNEUMONIA": 3875}
    assert sum(f.size for f in files) == sum(p.stat().st_size for p in REAL_TRAIN.rglob("*.jpeg"))
