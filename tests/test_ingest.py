"""Dataset import: folder, zip and S3 sources; bad files; dedupe; immutability; the real Kaggle data."""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrcore.cli import main as cxr_main
from cxrcore.config import PrepareSettings
from cxrcore.data.dataset import DatasetError, dataset_prefix, load_dataset, resolve_version
from cxrcore.data.ingest import import_dataset, parse_demo_uri
from cxrcore.storage import join_key, sha256_bytes
from tests import fixtures_images as fx

REAL_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "chest_xray" / "train"
needs_real_data = pytest.mark.skipif(
    not REAL_TRAIN.is_dir(), reason=f"real Kaggle data not found at {REAL_TRAIN} (it lives in ../shared)"
)


def _good_tree() -> dict[str, bytes]:
    """A Kaggle-style tree: 2 patients per class, some odd modes, one byte-identical copy."""
    normal = fx.jpeg_bytes("L", (40, 30))
    return {
        "chest_xray/train/NORMAL/IM-0001-0001.jpeg": normal,
        "chest_xray/train/NORMAL/IM-0001-0002.jpeg": fx.png_bytes("RGBA", (50, 50)),
        "chest_xray/train/NORMAL/NORMAL2-IM-0002-0001.jpeg": fx.png_12bit_in_16bit((64, 48)),
        "chest_xray/test/NORMAL/IM-0003-0001.jpeg": fx.image_bytes("P", "PNG", (30, 30)),
        "chest_xray/train/PNEUMONIA/person1_bacteria_1.jpeg": fx.jpeg_bytes("RGB", (60, 40)),
        "chest_xray/train/PNEUMONIA/person1_bacteria_2.jpeg": fx.cmyk_jpeg((40, 40)),
        "chest_xray/train/PNEUMONIA/person2_virus_3.jpeg": fx.exif_orientation_jpeg(6, (64, 32)),
        "chest_xray/test/PNEUMONIA/person3_virus_4.jpeg": fx.jpeg_bytes("L", (48, 48), quality=80),
        # A byte-identical copy of the first NORMAL image (as the Kaggle set has 26 of).
        "chest_xray/train/NORMAL/IM-0001-0003.jpeg": normal,
    }


def _bad_tree() -> dict[str, bytes]:
    return {
        "chest_xray/train/NORMAL/IM-0100-0001.jpeg": fx.truncated_jpeg((128, 128)),
        "chest_xray/train/NORMAL/IM-0101-0001.jpeg": fx.empty_file(),
        "chest_xray/train/PNEUMONIA/person100_virus_1.jpeg": fx.text_as_jpeg(),
        "chest_xray/train/PNEUMONIA/person101_virus_1.png": fx.png_bomb(),
        "chest_xray/train/stray.jpeg": fx.jpeg_bytes("L", (20, 20)),
    }


def _settings(source, **kwargs) -> PrepareSettings:
    defaults = {"name": "t", "image_size": 32, "split": "official", "seed": 1, "shard_size": 3}
    return PrepareSettings(source=str(source), **{**defaults, **kwargs})


def test_folder_import_counts_dedupe_rejects_and_manifest(store, tmp_path):
    fx.write_tree(tmp_path / "src", {**_good_tree(), **_bad_tree()})
    result = import_dataset(store, _settings(tmp_path / "src"))
    summary = result.summary()
    assert summary["status"] == "created"
    assert summary["images"] == 8 and summary["duplicate_count"] == 1
    assert summary["counts"] == {"NORMAL": 4, "PNEUMONIA": 4}
    assert summary["splits"] == {"train": {"NORMAL": 3, "PNEUMONIA": 3}, "test": {"NORMAL": 1, "PNEUMONIA": 1}}
    reasons = {Path(r["path"]).name: r["reason"] for r in summary["rejected"]}
    assert reasons == {
        "IM-0100-0001.jpeg": "truncated",
        "IM-0101-0001.jpeg": "empty-file",
        "person100_virus_1.jpeg": "not-an-image",
        "person101_virus_1.png": "decompression-bomb",
        "stray.jpeg": "wrong-folder",
    }
    assert summary["duplicates"][0]["duplicate_of"].endswith("IM-0001-0001.jpeg")

    dataset = load_dataset(store, "t", result.version, verify_pixels=True)
    frame = dataset.manifest
    assert dataset.images.shape == (8, 32, 32) and dataset.images.dtype == np.uint8
    assert set(frame["patient_id"]) == {"IM-0001", "NORMAL2-IM-0002", "IM-0003", "person1", "person2", "person3"}
    assert frame["patient_id_parsed"].all()
    assert (frame["source"] == "real").all()
    # 16-bit input used its full range; every stored image verifies against its manifest hash.
    row = frame.index[frame["source_path"].str.endswith("NORMAL2-IM-0002-0001.jpeg")][0]
    assert dataset.images[row].max() >= 250
    for index, digest in enumerate(frame["pixel_sha256"]):
        assert sha256_bytes(dataset.images[index].tobytes()) == digest
    # Several shards (shard_size=3), each listed with its hash in the marker.
    marker = store.read_marker(dataset_prefix("t", result.version))
    shards = [key for key in marker.outputs if key.startswith("shards/")]
    assert len(shards) == 3
    assert {"manifest.csv", "rejects.csv", "duplicates.csv", "dataset.json"} <= set(marker.outputs)
    rejects = pd.read_csv(pd.io.common.BytesIO(store.get_bytes(join_key(dataset_prefix("t", result.version), "rejects.csv"))))
    assert len(rejects) == 5


def test_reimport_is_a_noop_and_new_content_is_a_new_version(store, tmp_path):
    fx.write_tree(tmp_path / "src", _good_tree())
    first = import_dataset(store, _settings(tmp_path / "src"))
    before = {obj.key: obj.size for obj in store.list("datasets")}
    marker_before = store.get_bytes(join_key(dataset_prefix("t", first.version), "_SUCCESS"))
    again = import_dataset(store, _settings(tmp_path / "src"))
    assert again.status == "unchanged" and again.version == first.version
    assert {obj.key: obj.size for obj in store.list("datasets")} == before
    assert store.get_bytes(join_key(dataset_prefix("t", first.version), "_SUCCESS")) == marker_before

    fx.write_bytes(tmp_path / "src/chest_xray/train/NORMAL/IM-0009-0001.jpeg", fx.jpeg_bytes("L", (33, 33)))
    second = import_dataset(store, _settings(tmp_path / "src"))
    assert second.status == "created" and second.version != first.version
    assert resolve_version(store, "t") == second.version
    # The first version is still there, untouched.
    assert store.get_bytes(join_key(dataset_prefix("t", first.version), "_SUCCESS")) == marker_before
    assert len(load_dataset(store, "t", first.version).manifest) == 8


def test_zip_and_s3_sources_give_the_same_dataset(store, tmp_path, s3_server, s3_bucket, s3_options):
    import boto3

    tree = _good_tree()
    (tmp_path / "data.zip").write_bytes(fx.zip_tree(tree))
    from_zip = import_dataset(store, _settings(tmp_path / "data.zip"))
    client = boto3.client("s3", endpoint_url=s3_server.endpoint_url, region_name="us-east-1")
    for key, data in tree.items():
        client.put_object(Bucket=s3_bucket, Key=f"raw/{key}", Body=data)
    settings = _settings(f"s3://{s3_bucket}/raw", s3=s3_options)
    from_s3 = import_dataset(store, settings)
    assert from_s3.version == from_zip.version  # same content and settings -> same version
    assert from_s3.status == "unchanged"
    assert from_zip.info["source"].endswith("data.zip")


def test_hostile_zip_is_refused_member_by_member(store, tmp_path):
    (tmp_path / "slip.zip").write_bytes(fx.zip_tree({**_good_tree(), "../evil.jpeg": fx.jpeg_bytes()}))
    result = import_dataset(store, _settings(tmp_path / "slip.zip"))
    assert any(r["reason"] == "unsafe-path" for r in result.rejects)
    assert result.info["images"] == 8
    assert not (tmp_path / "evil.jpeg").exists()


@pytest.mark.parametrize("split", ["paper", "patient"])
def test_split_strategies_are_recorded(store, tmp_path, split):
    fx.write_tree(tmp_path / "src", _good_tree())
    result = import_dataset(store, _settings(tmp_path / "src", split=split, test_fraction=0.3))
    dataset = load_dataset(store, "t", result.version)
    assert dataset.info["split"] == {"strategy": split, "test_fraction": 0.3, "seed": 1}
    assert set(dataset.manifest["split"]) <= {"train", "test"}
    if split == "patient":
        assert dataset.info["patients_on_both_sides"] == 0


def test_source_without_images_fails_and_stores_nothing(store, tmp_path):
    fx.write_tree(tmp_path / "src", _bad_tree())
    with pytest.raises(ValueError, match="No valid image"):
        import_dataset(store, _settings(tmp_path / "src"))
    assert store.list("datasets") == []


def test_missing_source_names_the_path(store, tmp_path):
    with pytest.raises((FileNotFoundError, ValueError), match="nowhere"):
        import_dataset(store, _settings(tmp_path / "nowhere"))


def test_tampered_shard_is_detected(tmp_path):
    from cxrcore.storage import open_store

    store = open_store(f"file://{tmp_path / 'store'}")
    fx.write_tree(tmp_path / "src", _good_tree())
    result = import_dataset(store, _settings(tmp_path / "src"))
    shard = tmp_path / "store" / dataset_prefix("t", result.version) / "shards" / "shard-00000.npy"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(Exception, match="sha256"):
        load_dataset(store, "t", result.version)


def test_uncommitted_version_is_refused(tmp_path):
    from cxrcore.storage import open_store

    store = open_store(f"file://{tmp_path / 'store'}")
    store.put_bytes("datasets/t/vhalf/manifest.csv", b"image_id\n")
    with pytest.raises(DatasetError, match="_SUCCESS"):
        load_dataset(store, "t", "vhalf")


def test_demo_source_and_demo_label(store):
    result = import_dataset(store, _settings("demo://?per_class=6&size=32&seed=3", split="patient"))
    assert result.info["synthetic"] is True
    assert result.info["source"] == "demo://?per_class=6&size=32&seed=3"
    dataset = load_dataset(store, "t", result.version)
    assert (dataset.manifest["source"] == "demo").all()
    assert dataset.info["counts"] == {"NORMAL": 6, "PNEUMONIA": 6}
    with pytest.raises(ValueError, match="Unknown demo source option"):
        parse_demo_uri("demo://?bogus=1")


def test_cli_import_and_demo_data(tmp_path, capsys):
    assert cxr_main(["demo-data", str(tmp_path / "demo"), "--per-class", "5", "--size", "32"]) == 0
    capsys.readouterr()
    code = cxr_main(
        ["data", "import", str(tmp_path / "demo"), "--store", f"file://{tmp_path / 'store'}", "--name", "demo",
         "--image-size", "32", "--log-format", "json"]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 10 and summary["synthetic"] is True and summary["status"] == "created"
    assert cxr_main(["data", "import", str(tmp_path / "missing"), "--store", f"file://{tmp_path / 'store'}"]) == 1
    assert cxr_main(["data", "import", str(tmp_path / "demo"), "--image-size", "3"]) == 2


@needs_real_data
@pytest.mark.realdata
def test_real_data_sample(tmp_path, store):
    """A 120-file sample of the Kaggle training folder, plus two known byte-identical pairs."""
    rng = random.Random(0)
    files = {name: sorted((REAL_TRAIN / name).iterdir()) for name in ("NORMAL", "PNEUMONIA")}
    chosen = {name: rng.sample(paths, 60) for name, paths in files.items()}
    chosen["PNEUMONIA"] += [REAL_TRAIN / "PNEUMONIA" / n for n in ("person1481_bacteria_3862.jpeg", "person1481_bacteria_3863.jpeg")]
    chosen["NORMAL"] += [REAL_TRAIN / "NORMAL" / n for n in ("NORMAL2-IM-0587-0001-0001.jpeg", "NORMAL2-IM-0587-0001-0002.jpeg")]
    for name, paths in chosen.items():
        (tmp_path / "sample" / name).mkdir(parents=True)
        for path in set(paths):
            shutil.copy(path, tmp_path / "sample" / name / path.name)
    n_files = sum(len(set(paths)) for paths in chosen.values())
    result = import_dataset(store, _settings(tmp_path / "sample", image_size=64, split="patient", shard_size=64))
    info = result.info
    assert info["files_seen"] == n_files
    assert info["duplicate_count"] >= 2 and info["images"] == n_files - info["duplicate_count"]
    assert info["rejected_count"] == 0
    dataset = load_dataset(store, "t", result.version)
    assert dataset.manifest["patient_id_parsed"].all()
    assert dataset.info["patients_on_both_sides"] == 0
    assert (dataset.manifest["orig_width"] == 224).all()


@needs_real_data
@pytest.mark.realdata
@pytest.mark.timeout(600)
def test_real_data_full_import(tmp_path):
    """The whole training folder: 5,216 files -> 5,190 images + 26 byte-identical copies, every patient id parsed."""
    from cxrcore.storage import open_store

    store = open_store(f"file://{tmp_path / 'store'}")
    result = import_dataset(store, _settings(REAL_TRAIN, image_size=128, split="patient", shard_size=1024))
    info = result.info
    assert info["files_seen"] == 5216
    assert info["images"] == 5190 and info["duplicate_count"] == 26 and info["rejected_count"] == 0
    assert info["counts"]["NORMAL"] + info["counts"]["PNEUMONIA"] == 5190
    assert info["patient_ids_parsed"] == 5190
    assert info["patients_on_both_sides"] == 0
    assert len(info["shards"]) == 6
    dataset = load_dataset(store, "t", result.version)
    assert len(dataset.manifest) == 5190


def _pinned_outputs(store, version: str, source: str) -> dict[str, str]:
    """sha256 of every committed object of a version (shards together), ``dataset.json`` with ``source`` masked."""
    prefix = dataset_prefix("t", version)
    marker = store.read_marker(prefix)
    info_bytes = store.get_bytes(join_key(prefix, "dataset.json"))
    assert json.loads(info_bytes)["source"] == source
    masked = info_bytes.replace(json.dumps(source).encode(), b'"<source>"')
    shards = "".join(f"{key}={marker.outputs[key]['sha256']};" for key in sorted(marker.outputs) if "shards/" in key)
    pinned = {
        name: sha256_bytes(store.get_bytes(join_key(prefix, name)))
        for name in ("manifest.csv", "rejects.csv", "duplicates.csv")
    }
    return {**pinned, "dataset.json": sha256_bytes(masked), "shards": sha256_bytes(shards.encode())}


#: What a small import and an incremental import on top of it commit, byte for byte (pinned before the dataset
#: writer took over the manifest rows, shard names and dataset.json; a change here changes every dataset version).
#: manifest.csv re-pinned when the DICOM columns modality, view, photometric were appended (empty here): without
#: them its bytes are the earlier pins' (026165b7..., 6d7932ab...), and the version ids did not change.
PINNED_FULL_IMPORT = {
    "version": "v1bbc52cee80e",
    "manifest.csv": "b2ff3274545ffaead8fee6de7ccbea7d29e1be6c21fc9b8e9d0027e99a254be7",
    "rejects.csv": "41ee8a27266f14d8f345c41da8c92fbac625189388a8e89226347d603a1ae3c4",
    "duplicates.csv": "64ee66f039cfc9181b8769f5eeaa6ad6762fc85bf25b09392231b2e5d5ab2661",
    "dataset.json": "b69dc23760d6ac5300fa93e8824e13cbf73c27dc8adf515428af10aef4579e40",
    "shards": "617abaed44954e03488c405e725b0e104f2e8a968f3f76c466a526c44e9eb32e",
}
PINNED_INCREMENTAL_IMPORT = {
    "version": "v5728f9adfd5f",
    "manifest.csv": "664939c8d34e52e4b38631e1da483ecbc387ecb4d5589c180adda48474769f92",
    "rejects.csv": "2852067978723c7ce2384597f5f18bd14301491c15c9c24db540478441c95443",
    "duplicates.csv": "9f36bf0969495e439694dcf15ba408042bb411d99989e6bbbd50db88e72ecf00",
    "dataset.json": "f74fb055ae22f0c75fd3d2e81f632dc9be8d98971ce74eab0da94afc0a91af04",
    "shards": "810a06a572530ace76a3e12223208a8c5349ab352f68696e12a2e344eac8d704",
}


def test_small_import_and_incremental_import_outputs_are_pinned(tmp_path):
    from cxrcore.storage import open_store

    store = open_store(f"file://{tmp_path / 'store'}")
    fx.write_tree(tmp_path / "src", {**_good_tree(), **_bad_tree()})
    first = import_dataset(store, _settings(tmp_path / "src", decode_workers=2))
    batch = {
        "b1/NORMAL/IM-0200-0001.jpeg": fx.jpeg_bytes("L", (36, 44)),
        "b1/PNEUMONIA/person200_virus_1.jpeg": fx.png_bytes("RGB", (44, 36)),
        "b1/PNEUMONIA/person1_bacteria_9.jpeg": fx.jpeg_bytes("RGB", (52, 40), quality=70),
        "b1/NORMAL/IM-0001-0001.jpeg": _good_tree()["chest_xray/train/NORMAL/IM-0001-0001.jpeg"],
        "b1/_SUCCESS": b"",
    }
    fx.write_tree(tmp_path / "incoming", batch)
    second = import_dataset(
        store, _settings(tmp_path / "incoming", split="patient", base_version="latest", batches='["b1"]')
    )
    assert (first.status, second.status) == ("created", "created")
    full = {"version": first.version, **_pinned_outputs(store, first.version, (tmp_path / "src").as_uri())}
    incoming = (tmp_path / "incoming").as_uri()
    incremental = {"version": second.version, **_pinned_outputs(store, second.version, incoming)}
    assert full == PINNED_FULL_IMPORT
    assert incremental == PINNED_INCREMENTAL_IMPORT


def test_dataset_writer_rows_shards_and_info_for_a_synthetic_set(tmp_path):
    """What synthesis writes through the writer: generated images, split train, PNG digests, 2-image shards."""
    from cxrcore.data.dataset import load_prefix
    from cxrcore.data.images import encode_png
    from cxrcore.data.writer import DatasetWriter, ImageRecord, dataset_info, shard_names
    from cxrcore.storage import open_store

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 16, 16), dtype=np.uint8)
    writer = DatasetWriter(tmp_path / "staging", image_size=16, shard_size=2)
    (tmp_path / "staging").mkdir()
    for index, pixels in enumerate(images):
        digest = sha256_bytes(encode_png(pixels))
        record = ImageRecord(
            sha256=digest, class_name="PNEUMONIA", patient_id="synthetic-r1-PNEUMONIA", patient_id_parsed=False,
            source="synthetic", source_path=f"gan:r1/PNEUMONIA/{index * 3}", source_split="", orig_width=8,
            orig_height=8, orig_mode="RGB", orig_format="GAN", split="train",
        )
        row = writer.add(pixels, record)
        assert row["image_id"] == digest[:16] and row["label"] == 1 and (row["width"], row["height"]) == (16, 16)
        assert (row["shard"], row["shard_index"]) == (f"shard-{index // 2:05d}.npy", index % 2)
        assert row["pixel_sha256"] == sha256_bytes(pixels.tobytes())
    assert writer.flush() == shard_names(3) == ["shard-00000.npy", "shard-00001.npy", "shard-00002.npy"]
    manifest = writer.manifest()
    info = dataset_info(
        manifest, name="synthetic-r1-PNEUMONIA", image_size=16, shards=writer.shard_names, synthetic=True,
        synthetic_info={"kind": "dcgan"}, extra={"run_id": "r1", "class": "PNEUMONIA"},
    )
    assert info["counts"] == {"NORMAL": 0, "PNEUMONIA": 5} and info["splits"] == {"train": {"PNEUMONIA": 5}}
    assert info["images"] == 5 and info["shards"] == shard_names(3) and info["run_id"] == "r1"
    with pytest.raises(ValueError, match="shared"):
        dataset_info(
            manifest, name="x", image_size=16, shards=[], synthetic=True, synthetic_info=None, extra={"images": 1}
        )
    store = open_store(f"file://{tmp_path / 'store'}")
    with store.commit("runs/r1/synthetic/PNEUMONIA", inputs={"test": 1}) as tx:
        writer.commit(tx, manifest, info)
    loaded, pixels, stored_info, marker = load_prefix(store, "runs/r1/synthetic/PNEUMONIA", verify_pixels=True)
    assert np.array_equal(pixels, images) and stored_info == info
    assert sorted(marker.outputs) == ["dataset.json", "manifest.csv", *(f"shards/{n}" for n in shard_names(3))]
    assert list(loaded["source_path"]) == [f"gan:r1/PNEUMONIA/{index * 3}" for index in range(5)]


def test_dataset_writer_refuses_bad_input(tmp_path):
    from cxrcore.data.writer import DatasetWriter, ImageRecord

    with pytest.raises(ValueError, match="shard-00000.npy"):
        DatasetWriter(tmp_path, image_size=16, shard_size=2, existing_shards=["shard-00001.npy"])
    writer = DatasetWriter(tmp_path, image_size=16, shard_size=2)
    record = ImageRecord("0" * 64, "NORMAL", "p", True, "real", "a.png", "", 16, 16, "L", "PNG")
    with pytest.raises(ValueError, match="uint8"):
        writer.add(np.zeros((8, 8), dtype=np.uint8), record)
    with pytest.raises(ValueError, match="class_name"):
        writer.add(np.zeros((16, 16), dtype=np.uint8), dataclasses.replace(record, class_name="COVID"))
