"""Contract tests of :mod:`cxrcore.storage`: every store behaves the same on ``file://`` and ``s3://``.

Tests taking the ``store`` fixture run once per backend; the S3 backend talks HTTP to a real moto server
(see ``tests/conftest.py``). Tests named ``test_s3_*`` / ``test_file_*`` cover one backend's specifics.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from cxrcore.storage import (
    MARKER_NAME,
    TMP_DIR,
    FileStore,
    IntegrityError,
    NotCommittedError,
    ObjectInfo,
    ObjectNotFoundError,
    S3Store,
    Store,
    StoreError,
    UnsafeKeyError,
    hash_inputs,
    open_store,
    parse_s3_uri,
    sha256_bytes,
)

# Every test here is quick; a hung network call must fail the test instead of the CI job.
pytestmark = pytest.mark.timeout(60)

UNSAFE_KEYS = [
    "../escape",
    "a/../../escape",
    "a/..",
    "/etc/passwd",
    "a\\..\\escape",
    "a\x00b",
    "a\nb",
    "C:/windows",
]


# ---------------------------------------------------------------------------------------------- helpers
@pytest.fixture
def s3_store(s3_server, s3_bucket: str) -> S3Store:
    """A fresh S3 store at ``s3://<bucket>/root``, for tests of S3-only behaviour."""
    return S3Store(f"s3://{s3_bucket}/root", endpoint_url=s3_server.endpoint_url, addressing_style="path")


def keys_of(infos: list[ObjectInfo]) -> list[str]:
    """The keys of a listing, in listing order."""
    return [info.key for info in infos]


def make_tree(root: Path, files: dict[str, bytes]) -> None:
    """Writes ``{relative_path: content}`` under ``root``."""
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def s3_store_like(store: S3Store, **options) -> S3Store:
    """Another S3 store on the same bucket, prefix and endpoint as ``store``, with different options."""
    return S3Store(store.uri, endpoint_url=store.endpoint_url, addressing_style="path", **options)


def files_under(root: Path) -> set[Path]:
    """Every file or link below ``root``."""
    return {path for path in root.rglob("*") if path.is_file() or path.is_symlink()}


def plant_raw_object(store: Store, key: str, data: bytes) -> None:
    """Writes an object under ``key`` without the store's key checks, as another tool could."""
    if isinstance(store, S3Store):
        store.client.put_object(Bucket=store.bucket, Key=f"{store.prefix}/{key}", Body=data)
    else:
        assert isinstance(store, FileStore)
        path = store.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def remove_raw_object(store: Store, key: str) -> None:
    """Removes an object planted by :func:`plant_raw_object`."""
    if isinstance(store, S3Store):
        store.client.delete_object(Bucket=store.bucket, Key=f"{store.prefix}/{key}")
    else:
        (store.root / key).unlink()


# ---------------------------------------------------------------------------------------------- objects
def test_put_get_bytes_round_trip(store: Store) -> None:
    data = bytes(range(256)) * 10

    info = store.put_bytes("datasets//demo/./v1/blob.bin", data)

    assert info == ObjectInfo("datasets/demo/v1/blob.bin", len(data))
    assert store.get_bytes("datasets/demo/v1/blob.bin") == data
    assert store.get_bytes("datasets/demo/v1/blob.bin", sha256=sha256_bytes(data)) == data
    assert store.exists("datasets/demo/v1/blob.bin")
    assert store.info("datasets/demo/v1/blob.bin") == info


def test_put_overwrites_existing_object(store: Store) -> None:
    store.put_bytes("a/x", b"old content")
    store.put_bytes("a/x", b"new")

    assert store.get_bytes("a/x") == b"new"
    assert keys_of(store.list()) == ["a/x"]


def test_put_get_json_round_trip(store: Store) -> None:
    document = {"classes": ["NORMAL", "PNEUMONIA"], "counts": {"NORMAL": 1341, "PNEUMONIA": 3875}, "ok": True}

    store.put_json("meta/summary.json", document)

    assert store.get_json("meta/summary.json") == document


def test_get_json_of_invalid_json_raises_store_error(store: Store) -> None:
    store.put_bytes("broken.json", b"{not json")

    with pytest.raises(StoreError, match="not valid JSON"):
        store.get_json("broken.json")


def test_wrong_sha256_raises_integrity_error(store: Store, tmp_path: Path) -> None:
    store.put_bytes("x.bin", b"payload")
    wrong = sha256_bytes(b"other payload")

    with pytest.raises(IntegrityError, match="x.bin"):
        store.get_bytes("x.bin", sha256=wrong)
    target = tmp_path / "download" / "x.bin"
    with pytest.raises(IntegrityError):
        store.get_file("x.bin", target, sha256=wrong)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no temp file left behind


def test_put_file_get_file_round_trip(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "source.npz"
    source.write_bytes(os.urandom(100_000))

    digest = hashlib.sha256(source.read_bytes()).hexdigest()

    info = store.put_file("shards/train-0000.npz", source)
    target = store.get_file("shards/train-0000.npz", tmp_path / "out" / "copy.npz", sha256=digest)

    assert info == ObjectInfo("shards/train-0000.npz", 100_000)
    assert target == tmp_path / "out" / "copy.npz"
    assert target.read_bytes() == source.read_bytes()


def test_large_object_round_trip_uses_multipart_on_s3(store: Store, tmp_path: Path) -> None:
    if isinstance(store, S3Store):
        store = s3_store_like(store, multipart_threshold_mb=5, multipart_chunk_mb=5)
    source = tmp_path / "big.bin"
    data = os.urandom(12 * 1024 * 1024)
    source.write_bytes(data)
    digest = sha256_bytes(data)

    store.put_file("big/model.keras", source)
    target = store.get_file("big/model.keras", tmp_path / "big-copy.bin", sha256=digest)
    store.copy("big/model.keras", "big/model-copy.keras")

    assert target.read_bytes() == data
    assert store.get_bytes("big/model-copy.keras", sha256=digest) == data
    assert store.info("big/model-copy.keras").size == len(data)
    if isinstance(store, S3Store):
        for key in ("big/model.keras", "big/model-copy.keras"):
            head = store.client.head_object(Bucket=store.bucket, Key=f"root/{key}")
            # A multipart ETag is "<md5 of part md5s>-<part count>": 12 MiB in 5 MiB parts is 3 parts.
            assert head["ETag"].strip('"').endswith("-3"), head["ETag"]
            assert head["Metadata"] == {"sha256": digest}


def test_missing_key_raises_object_not_found(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFoundError, match="nothing/here"):
        store.get_bytes("nothing/here")
    with pytest.raises(ObjectNotFoundError):
        store.get_json("nothing/here.json")
    with pytest.raises(ObjectNotFoundError):
        store.get_file("nothing/here", tmp_path / "x")
    with pytest.raises(ObjectNotFoundError):
        store.info("nothing/here")
    with pytest.raises(ObjectNotFoundError):
        store.copy("nothing/here", "elsewhere")
    assert not store.exists("nothing/here")
    assert not (tmp_path / "x").exists()
    assert list(tmp_path.iterdir()) == ([tmp_path / "store"] if isinstance(store, FileStore) else [])
    store.delete("nothing/here")  # deleting an absent object is fine
    assert store.read_marker("nothing") is None


def test_url_names_a_key_inside_the_store(store: Store, tmp_path: Path) -> None:
    assert store.url() == store.uri and store.url("") == store.uri
    assert store.url("runs/r1/report") == f"{store.uri}/runs/r1/report"
    assert store.url("runs//r1/./report/") == f"{store.uri}/runs/r1/report"
    with pytest.raises(UnsafeKeyError):
        store.url("../escape")
    with pytest.raises(ObjectNotFoundError, match=store.url("nothing/here").replace(".", r"\.")):
        store.get_bytes("nothing/here")
    assert FileStore("/").url("a/b") == "file:///a/b"


def test_missing_key_is_a_file_not_found_error(store: Store) -> None:
    with pytest.raises(FileNotFoundError):
        store.get_bytes("absent")


# ---------------------------------------------------------------------------------------------- listing
def test_list_is_sorted_recursive_and_respects_prefix_boundaries(store: Store) -> None:
    for key in ["z", "a/bc/x", "a/b/2/x", "a-c", "a/b/1", "a/b0", "a/b/2/a"]:
        store.put_bytes(key, key.encode())

    everything = store.list()

    assert keys_of(everything) == sorted(["z", "a/bc/x", "a/b/2/x", "a-c", "a/b/1", "a/b0", "a/b/2/a"])
    assert [info.size for info in everything] == [len(info.key) for info in everything]
    assert keys_of(store.list("a/b")) == ["a/b/1", "a/b/2/a", "a/b/2/x"]
    assert keys_of(store.list("a/b/")) == ["a/b/1", "a/b/2/a", "a/b/2/x"]
    assert keys_of(store.list("a")) == ["a/b/1", "a/b/2/a", "a/b/2/x", "a/b0", "a/bc/x"]
    assert store.list("a/b/1") == []  # an object is not a prefix
    assert store.list("missing") == []


def test_list_prefixes_gives_immediate_children(store: Store) -> None:
    for key in ["runs/r1/gan/NORMAL/g.keras", "runs/r1/report.json", "runs/r2/x", "runs/r10/y", "top.txt"]:
        store.put_bytes(key, b"1")

    assert store.list_prefixes() == ["runs"]
    assert store.list_prefixes("runs") == ["runs/r1", "runs/r10", "runs/r2"]
    assert store.list_prefixes("runs/r1") == ["runs/r1/gan"]
    assert store.list_prefixes("runs/r2") == []


# ---------------------------------------------------------------------------------------------- deletion
def test_delete_removes_one_object(store: Store) -> None:
    store.put_bytes("a/x", b"1")
    store.put_bytes("a/y", b"2")

    store.delete("a/x")

    assert keys_of(store.list()) == ["a/y"]


def test_delete_prefix_respects_boundaries_and_refuses_root(store: Store) -> None:
    for key in ["a/b/1", "a/b/2/x", "a/bc/x", "a/b0"]:
        store.put_bytes(key, b"1")

    assert store.delete_prefix("a/b") == 2
    assert keys_of(store.list()) == ["a/b0", "a/bc/x"]
    assert store.delete_prefix("a/b") == 0
    with pytest.raises(UnsafeKeyError):
        store.delete_prefix("")
    assert keys_of(store.list()) == ["a/b0", "a/bc/x"]


# ---------------------------------------------------------------------------------------------- directories
def test_upload_dir_download_dir_round_trip(store: Store, tmp_path: Path) -> None:
    tree = {
        "NORMAL/img-0001.png": os.urandom(1000),
        "NORMAL/img-0002.png": os.urandom(10),
        "PNEUMONIA/bacteria/img-0003.png": os.urandom(2000),
        "PNEUMONIA/virus/deep/er/img-0004.png": b"",
        "manifest.csv": b"path,label\n",
    }
    make_tree(tmp_path / "src", tree)

    uploaded = store.upload_dir(tmp_path / "src", "datasets/demo")
    downloaded = store.download_dir("datasets/demo", tmp_path / "dst")

    assert sorted(keys_of(uploaded)) == sorted(f"datasets/demo/{name}" for name in tree)
    assert sorted(downloaded) == sorted(tmp_path / "dst" / name for name in tree)
    assert {p.relative_to(tmp_path / "dst").as_posix(): p.read_bytes() for p in files_under(tmp_path / "dst")} == tree


def test_upload_dir_does_not_follow_symlinks(store: Store, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    make_tree(outside, {"secret.txt": b"secret", "dir/also-secret.txt": b"secret"})
    make_tree(tmp_path / "src", {"real.txt": b"real"})
    (tmp_path / "src" / "link-to-file.txt").symlink_to(outside / "secret.txt")
    (tmp_path / "src" / "link-to-dir").symlink_to(outside / "dir", target_is_directory=True)

    store.upload_dir(tmp_path / "src", "up")

    assert keys_of(store.list()) == ["up/real.txt"]


def test_upload_dir_needs_a_directory(store: Store, tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError):
        store.upload_dir(tmp_path / "missing", "up")


def test_download_dir_never_writes_outside_target_for_hostile_keys(store: Store, tmp_path: Path) -> None:
    target = tmp_path / "work" / "target"
    store_dir = tmp_path / "store"
    hostile_keys = ["p/..\\..\\escaped.txt", "p/sub/\x01escaped.txt"]
    if isinstance(store, S3Store):
        # Object keys are free-form strings on S3; a filesystem cannot hold these names.
        hostile_keys += ["p/../../escaped.txt", "p/a/../../../escaped.txt", "p//tmp/escaped.txt"]
    store.put_bytes("p/ok.txt", b"fine")
    before = files_under(tmp_path)

    for hostile in hostile_keys:
        plant_raw_object(store, hostile, b"pwned")
        with pytest.raises(UnsafeKeyError):
            store.download_dir("p", target)
        remove_raw_object(store, hostile)

    written = {path for path in files_under(tmp_path) - before if store_dir not in path.parents}
    assert written == set()  # not even ok.txt: unsafe keys are refused before anything is downloaded
    assert store.download_dir("p", target) == [target / "ok.txt"]


def test_download_dir_refuses_a_symlink_in_the_target(store: Store, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    (target / "sub").symlink_to(outside, target_is_directory=True)
    store.put_bytes("p/sub/file.txt", b"would land outside")

    with pytest.raises(UnsafeKeyError):
        store.download_dir("p", target)

    assert list(outside.iterdir()) == []


# ---------------------------------------------------------------------------------------------- key safety
@pytest.mark.parametrize("bad_key", UNSAFE_KEYS, ids=repr)
def test_unsafe_keys_are_refused_everywhere(store: Store, tmp_path: Path, bad_key: str) -> None:
    local_file = tmp_path / "f.bin"
    local_file.write_bytes(b"x")
    local_dir = tmp_path / "d"
    make_tree(local_dir, {"a.txt": b"a"})
    store.put_bytes("good/key", b"x")
    calls = {
        "put_bytes": lambda: store.put_bytes(bad_key, b"x"),
        "put_json": lambda: store.put_json(bad_key, {}),
        "put_file": lambda: store.put_file(bad_key, local_file),
        "get_bytes": lambda: store.get_bytes(bad_key),
        "get_json": lambda: store.get_json(bad_key),
        "get_file": lambda: store.get_file(bad_key, tmp_path / "out"),
        "exists": lambda: store.exists(bad_key),
        "info": lambda: store.info(bad_key),
        "list": lambda: store.list(bad_key),
        "list_prefixes": lambda: store.list_prefixes(bad_key),
        "delete": lambda: store.delete(bad_key),
        "delete_prefix": lambda: store.delete_prefix(bad_key),
        "copy_from": lambda: store.copy(bad_key, "good/copy"),
        "copy_to": lambda: store.copy("good/key", bad_key),
        "upload_dir": lambda: store.upload_dir(local_dir, bad_key),
        "download_dir": lambda: store.download_dir(bad_key, tmp_path / "dl"),
        "commit": lambda: store.commit(bad_key, inputs={}),
        "read_marker": lambda: store.read_marker(bad_key),
        "require_committed": lambda: store.require_committed(bad_key),
        "is_committed": lambda: store.is_committed(bad_key),
        "clean_staging": lambda: store.clean_staging(bad_key),
    }
    if isinstance(store, FileStore):
        calls["local_path"] = lambda: store.local_path(bad_key)

    accepted = []
    for name, call in calls.items():
        try:
            call()
        except UnsafeKeyError:
            continue
        accepted.append(name)

    assert accepted == []
    with store.commit("out", inputs={}) as tx:
        with pytest.raises(UnsafeKeyError):
            tx.put_bytes(bad_key, b"x")
        with pytest.raises(UnsafeKeyError):
            tx.put_file(bad_key, local_file)
    assert keys_of(store.list()) == ["good/key", f"out/{MARKER_NAME}"]
    assert not (tmp_path / "out").exists() and not (tmp_path / "dl").exists()


def test_unsafe_key_error_is_a_value_error(store: Store) -> None:
    with pytest.raises(ValueError, match="Received: key="):
        store.put_bytes("../x", b"")


# ---------------------------------------------------------------------------------------------- commit protocol
def test_commit_publishes_outputs_and_writes_marker_last(store: Store, tmp_path: Path, monkeypatch) -> None:
    writes: list[str] = []
    original_put_bytes, original_copy = store._put_bytes, store._copy
    original_create = store._create_exclusive

    def recording_put_bytes(key: str, data: bytes, sha256: str) -> None:
        writes.append(key)
        original_put_bytes(key, data, sha256)

    def recording_create(key: str, data: bytes, sha256: str) -> bool:
        writes.append(key)
        return original_create(key, data, sha256)

    def recording_copy(src: str, dst: str) -> None:
        writes.append(dst)
        original_copy(src, dst)

    monkeypatch.setattr(store, "_put_bytes", recording_put_bytes)
    monkeypatch.setattr(store, "_copy", recording_copy)
    monkeypatch.setattr(store, "_create_exclusive", recording_create)
    local_file = tmp_path / "weights.h5"
    local_file.write_bytes(os.urandom(5000))
    inputs = {"dataset": "datasets/demo/v1", "epochs": 3, "seed": 7}

    with store.commit("runs/r1/gan", inputs=inputs, producer="gan-train 0.1") as tx:
        tx.put_bytes("samples.bin", b"samples")
        tx.put_json("history.json", {"loss": [1.0, 0.5]})
        tx.put_file("model/weights.h5", local_file)
        # Nothing is visible while the job works: only staging objects exist under the prefix.
        assert store.read_marker("runs/r1/gan") is None
        assert all(key.startswith(f"runs/r1/gan/{TMP_DIR}/") for key in keys_of(store.list("runs/r1/gan")))

    marker = store.require_committed("runs/r1/gan")
    assert writes[-1] == f"runs/r1/gan/{MARKER_NAME}"
    assert tx.marker == marker
    assert marker.prefix == "runs/r1/gan"
    assert marker.producer == "gan-train 0.1"
    assert marker.inputs == inputs
    assert marker.inputs_hash == hash_inputs(inputs)
    history = json.dumps({"loss": [1.0, 0.5]}, indent=2, sort_keys=True).encode()
    assert marker.outputs == {
        "history.json": {"sha256": sha256_bytes(history), "size": len(history)},
        "model/weights.h5": {"sha256": sha256_bytes(local_file.read_bytes()), "size": 5000},
        "samples.bin": {"sha256": sha256_bytes(b"samples"), "size": 7},
    }
    assert keys_of(store.list("runs/r1/gan")) == [
        f"runs/r1/gan/{MARKER_NAME}",
        "runs/r1/gan/history.json",
        "runs/r1/gan/model/weights.h5",
        "runs/r1/gan/samples.bin",
    ]
    for relative, recorded in marker.outputs.items():
        assert store.get_bytes(f"runs/r1/gan/{relative}", sha256=recorded["sha256"])
    assert store.get_json(f"runs/r1/gan/{MARKER_NAME}")["inputs_hash"] == hash_inputs(inputs)


def test_transaction_put_dir_stages_a_tree(store: Store, tmp_path: Path) -> None:
    make_tree(tmp_path / "images", {"a/1.png": b"1", "b/2.png": b"22"})

    with store.commit("synth", inputs={"n": 2}) as tx:
        tx.put_dir(tmp_path / "images", "png")

    assert store.require_committed("synth").outputs == {
        "png/a/1.png": {"sha256": sha256_bytes(b"1"), "size": 1},
        "png/b/2.png": {"sha256": sha256_bytes(b"22"), "size": 2},
    }


def test_transaction_refuses_reserved_keys_and_use_outside_with(store: Store) -> None:
    tx = store.commit("out", inputs={})
    with pytest.raises(StoreError, match="not open"):
        tx.put_bytes("x", b"1")
    with tx:
        with pytest.raises(ValueError, match="reserved"):
            tx.put_bytes(MARKER_NAME, b"{}")
        with pytest.raises(ValueError, match="reserved"):
            tx.put_bytes(f"{TMP_DIR}/x", b"1")


def test_require_committed_refuses_prefix_without_marker(store: Store) -> None:
    store.put_bytes("runs/r1/classifier/model.keras", b"half written")

    with pytest.raises(NotCommittedError, match="runs/r1/classifier"):
        store.require_committed("runs/r1/classifier")
    assert store.read_marker("runs/r1/classifier") is None
    assert not store.is_committed("runs/r1/classifier")


def test_exception_inside_commit_leaves_no_output_and_no_staging(store: Store) -> None:
    with pytest.raises(RuntimeError, match="training diverged"):
        with store.commit("runs/r1/gan", inputs={"epochs": 3}) as tx:
            tx.put_bytes("model.keras", b"partial")
            tx.put_bytes("deep/nested/sample.png", b"partial")
            raise RuntimeError("training diverged")

    assert store.list() == []
    assert store.read_marker("runs/r1/gan") is None


def test_exception_inside_recommit_keeps_previous_output(store: Store) -> None:
    with store.commit("out", inputs={"v": 1}) as tx:
        tx.put_bytes("a.txt", b"v1")

    with pytest.raises(RuntimeError):
        with store.commit("out", inputs={"v": 2}) as tx:
            tx.put_bytes("a.txt", b"v2")
            raise RuntimeError("boom")

    assert store.is_committed("out", {"v": 1})
    assert store.get_bytes("out/a.txt") == b"v1"
    assert keys_of(store.list("out")) == [f"out/{MARKER_NAME}", "out/a.txt"]


def test_interrupted_publish_leaves_no_marker(store: Store, monkeypatch) -> None:
    with store.commit("out", inputs={"v": 1}) as tx:
        tx.put_bytes("a.txt", b"v1")
        tx.put_bytes("b.txt", b"v1")
    original_copy = store._copy
    copies: list[str] = []

    def copy_then_crash(src: str, dst: str) -> None:
        if copies:
            raise OSError("node preempted during publish")
        copies.append(dst)
        original_copy(src, dst)

    monkeypatch.setattr(store, "max_workers", 1)  # deterministic order of the moves
    monkeypatch.setattr(store, "_copy", copy_then_crash)

    with pytest.raises(OSError, match="preempted"):
        with store.commit("out", inputs={"v": 2}) as tx:
            tx.put_bytes("a.txt", b"v2")
            tx.put_bytes("b.txt", b"v2")
            tx.put_bytes("c.txt", b"v2")

    assert len(copies) == 1
    assert store.read_marker("out") is None
    assert not store.is_committed("out")
    with pytest.raises(NotCommittedError):
        store.require_committed("out")
    assert not any(f"/{TMP_DIR}/" in key for key in keys_of(store.list()))


def test_recommit_replaces_objects_and_removes_stale_ones(store: Store) -> None:
    with store.commit("out", inputs={"v": 1}) as tx:
        tx.put_bytes("a.txt", b"v1-a")
        tx.put_bytes("sub/b.txt", b"v1-b")
    first = store.require_committed("out")

    with store.commit("out", inputs={"v": 2}) as tx:
        tx.put_bytes("sub/b.txt", b"v2-b")
        tx.put_bytes("c.txt", b"v2-c")
    second = store.require_committed("out")

    assert keys_of(store.list("out")) == [f"out/{MARKER_NAME}", "out/c.txt", "out/sub/b.txt"]
    assert store.get_bytes("out/sub/b.txt") == b"v2-b"
    assert set(second.outputs) == {"c.txt", "sub/b.txt"}
    assert second.inputs_hash != first.inputs_hash
    assert second.digest != first.digest


def test_is_committed_only_for_identical_inputs(store: Store) -> None:
    inputs = {"dataset": "d1", "params": {"lr": 0.0002, "beta1": 0.5}}
    with store.commit("out", inputs=inputs) as tx:
        tx.put_bytes("x", b"1")

    assert store.is_committed("out", {"params": {"beta1": 0.5, "lr": 0.0002}, "dataset": "d1"})  # key order free
    assert store.is_committed("out")
    assert not store.is_committed("out", {"dataset": "d1", "params": {"lr": 0.0001, "beta1": 0.5}})
    assert not store.is_committed("out", {"dataset": "d1"})
    assert not store.is_committed("other", inputs)


def test_clean_staging_removes_leftovers_only(store: Store) -> None:
    with store.commit("out", inputs={}) as tx:
        tx.put_bytes("kept.txt", b"1")
    store.put_bytes(f"out/{TMP_DIR}/20240101T000000-dead/kept.txt", b"left by a killed pod")
    store.put_bytes(f"out/{TMP_DIR}/20240102T000000-dead/x/y.bin", b"left by a killed pod")

    assert store.clean_staging("out") == 2
    assert keys_of(store.list()) == [f"out/{MARKER_NAME}", "out/kept.txt"]
    assert store.clean_staging("out") == 0
    assert store.is_committed("out")


def test_marker_is_not_confused_with_nested_prefix(store: Store) -> None:
    with store.commit("runs/r1", inputs={}) as tx:
        tx.put_bytes("report.json", b"{}")

    assert store.read_marker("runs") is None
    assert store.read_marker("runs/r1/report.json") is None


# ---------------------------------------------------------------------------------------------- file backend
def test_file_store_accepts_plain_paths_and_creates_root(tmp_path: Path) -> None:
    root = tmp_path / "new" / "root"

    store = open_store(str(root))
    store.put_bytes("x", b"1")

    assert isinstance(store, FileStore)
    assert store.root == root.resolve()
    assert store.uri == root.resolve().as_uri()
    assert store.local_path("x") == root.resolve() / "x"
    assert (root / "x").read_bytes() == b"1"
    assert isinstance(open_store(root.as_uri()), FileStore)
    assert isinstance(open_store(root), FileStore)
    assert open_store(f"file://localhost{root}").root == root.resolve()


def test_file_store_rejects_remote_file_uris(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Received: uri="):
        FileStore("file://fileserver/share")
    (tmp_path / "a-file").write_bytes(b"")
    with pytest.raises(StoreError):
        FileStore(tmp_path / "a-file")


def test_file_store_listing_hides_temp_files_and_symlinks(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    outside = tmp_path / "outside"
    make_tree(outside, {"secret.txt": b"secret"})
    store.put_bytes("d/real.txt", b"real")
    store.put_bytes("d/shard-3.part", b"an object that happens to end in .part")
    (store.root / "d" / ".real.txt.0123abcd.part").write_bytes(b"in-flight write")
    (store.root / "d" / "link.txt").symlink_to(outside / "secret.txt")
    (store.root / "linkdir").symlink_to(outside, target_is_directory=True)

    assert keys_of(store.list()) == ["d/real.txt", "d/shard-3.part"]
    with pytest.raises(UnsafeKeyError):
        store.exists("d/link.txt")  # the link leads outside the root
    with pytest.raises(UnsafeKeyError):
        store.get_bytes("linkdir/secret.txt")
    with pytest.raises(UnsafeKeyError):
        store.list("linkdir")
    with pytest.raises(UnsafeKeyError):
        store.put_bytes("linkdir/planted.txt", b"x")
    store.download_dir("", tmp_path / "dl")
    assert sorted(p.relative_to(tmp_path / "dl").as_posix() for p in files_under(tmp_path / "dl")) == [
        "d/real.txt",
        "d/shard-3.part",
    ]
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_file_store_writes_leave_no_temp_files_and_prune_empty_dirs(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    source = tmp_path / "src.bin"
    source.write_bytes(b"file")

    store.put_bytes("a/b/c.txt", b"1")
    store.put_file("a/b/d.txt", source)
    store.copy("a/b/c.txt", "a/e/f.txt")
    assert sorted(p.relative_to(store.root).as_posix() for p in files_under(store.root)) == [
        "a/b/c.txt",
        "a/b/d.txt",
        "a/e/f.txt",
    ]

    store.delete_prefix("a")
    assert list(store.root.iterdir()) == []


def test_file_store_reports_file_directory_clashes(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    store.put_bytes("a", b"file")
    with pytest.raises(StoreError, match="not a directory"):
        store.put_bytes("a/b", b"under a file")
    store.put_bytes("d/x", b"1")
    with pytest.raises(StoreError, match="directory"):
        store.put_bytes("d", b"over a directory")


# ---------------------------------------------------------------------------------------------- S3 backend
def test_s3_missing_bucket_gives_store_error_naming_bucket(s3_server) -> None:
    store = S3Store("s3://cxr-no-such-bucket/root", endpoint_url=s3_server.endpoint_url, addressing_style="path")
    calls = {
        "get_bytes": lambda: store.get_bytes("x"),
        "exists": lambda: store.exists("x"),
        "put_bytes": lambda: store.put_bytes("x", b"1"),
        "list": lambda: store.list(),
        "read_marker": lambda: store.read_marker("out"),
    }
    for name, call in calls.items():
        with pytest.raises(StoreError) as caught:
            call()
        assert not isinstance(caught.value, ObjectNotFoundError), name
        assert "bucket cxr-no-such-bucket does not exist or is not accessible" in str(caught.value), name


def test_s3_put_file_to_missing_bucket_gives_store_error(s3_server, tmp_path: Path) -> None:
    store = S3Store("s3://cxr-no-such-bucket", endpoint_url=s3_server.endpoint_url, addressing_style="path")
    source = tmp_path / "f"
    source.write_bytes(b"1")

    with pytest.raises(StoreError, match="cxr-no-such-bucket"):
        store.put_file("x", source)


def test_s3_objects_carry_sha256_metadata(s3_store: S3Store, tmp_path: Path) -> None:
    store = s3_store
    source = tmp_path / "f"
    source.write_bytes(b"file content")

    store.put_bytes("a", b"bytes content")
    store.put_file("b", source)
    store.copy("a", "c")

    def metadata(key: str) -> dict[str, str]:
        return store.client.head_object(Bucket=store.bucket, Key=f"root/{key}")["Metadata"]

    assert metadata("a") == {"sha256": sha256_bytes(b"bytes content")}
    assert metadata("b") == {"sha256": sha256_bytes(b"file content")}
    assert metadata("c") == {"sha256": sha256_bytes(b"bytes content")}


def test_s3_store_at_bucket_root_and_prefix_isolation(s3_server, s3_bucket: str) -> None:
    options = {"endpoint_url": s3_server.endpoint_url, "addressing_style": "path"}
    bucket_root = open_store(f"s3://{s3_bucket}", s3=options)
    nested = open_store(f"s3://{s3_bucket}/team/a", s3=options)
    sibling = open_store(f"s3://{s3_bucket}/team/ab", s3=options)

    nested.put_bytes("x", b"1")
    sibling.put_bytes("y", b"2")

    assert bucket_root.uri == f"s3://{s3_bucket}"
    assert keys_of(bucket_root.list()) == ["team/a/x", "team/ab/y"]
    assert keys_of(nested.list()) == ["x"]
    assert keys_of(sibling.list()) == ["y"]


def test_s3_delete_many_sends_batches_of_1000(s3_store: S3Store) -> None:
    store = s3_store
    batches: list[int] = []
    store.client.meta.events.register(
        "before-parameter-build.s3.DeleteObjects",
        lambda params, **_: batches.append(len(params["Delete"]["Objects"])),
    )
    store.put_bytes("k/0", b"1")
    store.put_bytes("k/2500", b"1")

    store._delete_many([f"k/{index}" for index in range(2501)])

    assert batches == [1000, 1000, 501]
    assert store.list() == []


def test_s3_endpoint_comes_from_standard_env_var(s3_server, s3_bucket: str, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint_url)

    store = open_store(f"s3://{s3_bucket}/env", s3={"addressing_style": "path"})
    store.put_bytes("x", b"via env")

    assert store.endpoint_url == s3_server.endpoint_url
    assert store.get_bytes("x") == b"via env"


def test_s3_client_config_applies_retry_and_transfer_options(s3_server, s3_bucket: str) -> None:
    store = open_store(
        f"s3://{s3_bucket}/cfg",
        s3={
            "endpoint_url": s3_server.endpoint_url,
            "addressing_style": "path",
            "retry_mode": "adaptive",
            "max_attempts": 7,
            "multipart_threshold_mb": 32,
            "multipart_chunk_mb": 8,
            "max_workers": 24,
        },
    )

    config = store.client.meta.config
    assert isinstance(store, S3Store)
    assert config.retries == {"mode": "adaptive", "total_max_attempts": 7}
    assert config.s3 == {"addressing_style": "path"}
    assert config.max_pool_connections >= 24
    assert store.max_workers == 24
    assert store.transfer_config.multipart_threshold == 32 * 1024 * 1024
    assert store.transfer_config.multipart_chunksize == 8 * 1024 * 1024
    assert store.transfer_config.max_concurrency == 24


def test_s3_tls_options_reach_the_client(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")

    with_bundle = S3Store("s3://some-bucket", endpoint_url="https://minio.internal:9000", ca_bundle=str(bundle))
    insecure = S3Store("s3://some-bucket", endpoint_url="https://minio.internal:9000", verify_tls=False)

    # botocore exposes no public accessor for the TLS setting of a client; its HTTP session holds it.
    assert with_bundle.client._endpoint.http_session._verify == str(bundle)
    assert insecure.client._endpoint.http_session._verify is False
    with pytest.raises(ValueError, match="Received: ca_bundle="):
        S3Store("s3://some-bucket", ca_bundle=str(bundle), verify_tls=False)


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"addressing_style": "sideways"}, "addressing_style"),
        ({"retry_mode": "forever"}, "retry_mode"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"multipart_threshold_mb": 1}, "multipart_threshold_mb"),
        ({"multipart_chunk_mb": 4}, "multipart_chunk_mb"),
        ({"multipart_chunk_mb": 6000}, "multipart_chunk_mb"),
        ({"max_workers": 0}, "max_workers"),
        ({"endpoint_url": "minio:9000"}, "endpoint_url"),
        ({"endpoint_url": "http://key:secret@minio:9000"}, "endpoint_url"),
        ({"region": ""}, "region"),
        ({"verify_tls": "no"}, "verify_tls"),
        ({"ca_bundle": "/does/not/exist.pem"}, "ca_bundle"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_s3_store_validates_options(options: dict, name: str) -> None:
    with pytest.raises(ValueError, match=f"Received: {name}="):
        S3Store("s3://some-bucket", **options)


def test_open_store_dispatches_on_scheme(tmp_path: Path) -> None:
    s3_store = open_store("s3://cxr-data/runs/r1", s3={"endpoint_url": "http://127.0.0.1:9"}, max_workers=3)

    assert isinstance(s3_store, S3Store)
    assert (s3_store.bucket, s3_store.prefix, s3_store.max_workers) == ("cxr-data", "runs/r1", 3)
    assert isinstance(open_store(str(tmp_path / "plain")), FileStore)
    assert isinstance(open_store((tmp_path / "uri").as_uri(), s3={"endpoint_url": "ignored"}), FileStore)
    with pytest.raises(ValueError, match="ftp://x"):
        open_store("ftp://x")
    with pytest.raises(ValueError, match="Received: uri="):
        open_store("")
    with pytest.raises(ValueError, match="aws_secret_access_key") as caught:
        open_store("s3://cxr-data", s3={"aws_secret_access_key": "never-a-parameter"})
    assert "never-a-parameter" not in str(caught.value)
    with pytest.raises(ValueError) as caught:
        open_store("ftp://user:hunter2@host/x")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://cxr-data", ("cxr-data", "")),
        ("s3://cxr-data/", ("cxr-data", "")),
        ("s3://cxr-data/runs//r1/", ("cxr-data", "runs/r1")),
        ("s3://my.bucket-01/a", ("my.bucket-01", "a")),
    ],
)
def test_parse_s3_uri_accepts_valid_uris(uri: str, expected: tuple[str, str]) -> None:
    assert parse_s3_uri(uri) == expected


@pytest.mark.parametrize(
    "uri",
    [
        "s3://",
        "s3://ab",
        "s3://Upper-Case",
        "s3://under_score",
        "s3://-leading-hyphen",
        "s3://double..dot",
        "s3://192.168.1.10",
        "s3://user:secret@bucket/x",
        "s3://bucket:9000/x",
        "s3://bucket/x?versionId=1",
        "s3://bucket/../x",
        "gs://bucket/x",
    ],
)
def test_parse_s3_uri_rejects_invalid_uris(uri: str) -> None:
    with pytest.raises(ValueError, match="Received:") as caught:
        parse_s3_uri(uri)
    assert "secret" not in str(caught.value)


def test_s3_error_messages_never_contain_the_secret_key(s3_server, s3_bucket: str, monkeypatch) -> None:
    secret = "Sup3rS3cretKeyThatMustNeverBeLogged0123456789"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    store = S3Store(f"s3://{s3_bucket}/root", endpoint_url=s3_server.endpoint_url, addressing_style="path")
    missing_bucket = S3Store("s3://cxr-no-such-bucket", endpoint_url=s3_server.endpoint_url)
    unreachable = S3Store("s3://cxr-data", endpoint_url="http://127.0.0.1:9", max_attempts=1)

    failures: list[BaseException] = []
    for call in (
        lambda: store.get_bytes("missing"),
        lambda: store.copy("missing", "other"),
        lambda: missing_bucket.get_bytes("x"),
        lambda: missing_bucket.exists("x"),
        lambda: unreachable.get_bytes("x"),
        lambda: unreachable.list(),
        lambda: S3Store("s3://cxr-data", endpoint_url=f"http://AKIAEXAMPLE:{secret}@127.0.0.1:9"),
    ):
        with pytest.raises((StoreError, ValueError)) as caught:
            call()
        failures.append(caught.value)

    assert "could not reach the endpoint" in str(failures[4])
    for failure in failures:
        chain = [failure, failure.__cause__, failure.__context__]
        text = " ".join(f"{exc} {exc!r}" for exc in chain if exc is not None)
        assert secret not in text, text
    assert secret not in repr(store)


def test_unreachable_endpoint_is_a_transient_error_and_exit_75(tmp_path, capsys, monkeypatch):
    """A dead endpoint after botocore's retries is transient: jobs exit 75 and Argo retries them."""
    import socket

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    from cxrcore.config import PrepareSettings
    from cxrcore.runtime import EXIT_TRANSIENT, run_job
    from cxrcore.storage import TransientStoreError, open_store

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = open_store(
        "s3://bucket/x",
        s3={"endpoint_url": f"http://127.0.0.1:{port}", "addressing_style": "path", "max_attempts": 1},
    )
    with pytest.raises(TransientStoreError, match="could not reach"):
        store.get_bytes("a")

    def job(settings):
        settings.open_store().get_bytes("a")

    argv = ["--source", "x", "--store", "s3://bucket/x", f"--s3.endpoint-url=http://127.0.0.1:{port}",
            "--s3.max-attempts", "1", "--s3.addressing-style", "path"]
    assert run_job("t", PrepareSettings, job, argv) == EXIT_TRANSIENT
    capsys.readouterr()
