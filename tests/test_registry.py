"""Scheduled retraining: incoming batches and their ledger, incremental imports, the champion registry.

Promotion tests use one-neuron Keras models on a dataset of constant-intensity images: a model with threshold
``t`` predicts PNEUMONIA exactly for images brighter than ``t``, so which holdout images each model gets right
(and hence accuracy and McNemar's test) is set by hand. The end-to-end test runs ``argo/retrain.yaml`` through
the local Argo runner: a run with a new batch imports, trains and promotes; a run without one does nothing.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrcore.config import PrepareSettings, SettingsError, parse_settings
from cxrcore.data.dataset import dataset_prefix, latest_key, load_dataset, manifest_from_csv
from cxrcore.data.ingest import import_dataset
from cxrcore.data.splits import assign_split
from cxrcore.registry import (
    PromoteSettings,
    append_to_ledger,
    champion_key,
    decide,
    decisions_prefix,
    ledger_key,
    parse_batches,
    read_ledger,
    run_promote,
    scan_incoming,
    select_holdout,
)
from cxrcore.storage import Store, join_key, open_store
from tests.helpers import s3_options_for

REPO = Path(__file__).resolve().parents[1]
SIZE = 16


def _png(value: int, size: int = SIZE) -> bytes:
    """A constant gray PNG: its bytes (and so its sha256) are unique per value."""
    buffer = io.BytesIO()
    Image.new("L", (size, size), int(value)).save(buffer, format="PNG")
    return buffer.getvalue()


def _put_tree(store: Store, prefix: str, tree: dict[str, bytes]) -> None:
    for path, data in tree.items():
        store.put_bytes(join_key(prefix, path), data)


def _settings(store: Store, **kwargs) -> PrepareSettings:
    """Import settings reading the store's own incoming/ prefix (through S3 for the s3 store)."""
    defaults = {"name": "t", "image_size": SIZE, "split": "patient", "seed": 3, "shard_size": 4}
    return PrepareSettings(source=store.url("incoming"), s3=s3_options_for(store), **{**defaults, **kwargs})


# ---------------------------------------------------------------------------------------------------- batches
def test_parse_batches_accepts_json_lists_of_names_only():
    assert parse_batches("") == []
    assert parse_batches('["b-1", "b_2.x"]') == ["b-1", "b_2.x"]
    for bad in ("b-1", "[]", '["a", "a"]', '["../x"]', '[""]', '{"a": 1}', "[1]"):
        with pytest.raises(ValueError):
            parse_batches(bad)
    with pytest.raises(SettingsError, match="batches"):
        parse_settings(PrepareSettings, ["--source=x", '--batches=["../etc"]'])
    with pytest.raises(SettingsError, match="base_version"):
        parse_settings(PrepareSettings, ["--source=x", "--base-version=../v1"])


def test_scan_lists_complete_unledgered_batches_sorted(store):
    _put_tree(
        store,
        "incoming",
        {
            "b2/NORMAL/IM-0001-0001.png": _png(1),
            "b2/_SUCCESS": b"",
            "a1/PNEUMONIA/person1_virus_1.png": _png(2),
            "a1/_SUCCESS": b"uploader 1.0",
            "old/NORMAL/IM-0002-0001.png": _png(3),
            "old/_SUCCESS": b"",
            "partial/NORMAL/IM-0003-0001.png": _png(4),  # still uploading: no _SUCCESS yet
            "nested/NORMAL/_SUCCESS": b"",  # a marker below the batch's top level does not count
            "bad+name/_SUCCESS": b"",  # not a valid batch name: skipped with a warning
            "stray.txt": b"not a batch",
        },
    )
    key = ledger_key("t")
    assert scan_incoming(store, ledger_key=key) == ["a1", "b2", "old"]
    append_to_ledger(store, key, [{"batch": "old", "dataset_version": "v1", "imported_at": "x", "files": 1}])
    assert scan_incoming(store, ledger_key=key) == ["a1", "b2"]
    assert scan_incoming(store, incoming_prefix="nowhere", ledger_key=key) == []


def test_ledger_appends_once_in_one_object(store):
    key = ledger_key("t")
    assert read_ledger(store, key) == []
    entry = {"batch": "b1", "dataset_version": "v1", "imported_at": "t0", "files": 3}
    append_to_ledger(store, key, [entry])
    append_to_ledger(store, key, [{**entry, "dataset_version": "v2"}, {**entry, "batch": "b2"}])
    ledger = read_ledger(store, key)
    assert [(e["batch"], e["dataset_version"]) for e in ledger] == [("b1", "v1"), ("b2", "v1")]
    assert [obj.key for obj in store.list("registry")] == [key]
    store.put_json(key, {"not": "a list"})
    with pytest.raises(Exception, match="not a ledger"):
        read_ledger(store, key)


def test_incoming_command_writes_argo_outputs(tmp_path, file_store):
    store = file_store
    out = tmp_path / "out"
    # As Argo runs it: its own process (the command configures logging for the whole process).
    command = [sys.executable, "-m", "cxrcore.cli", "incoming", f"--store={store.uri}", "--dataset=t",
               f"--result-dir={out}"]
    assert subprocess.run(command, capture_output=True, check=False).returncode == 0
    assert (out / "found").read_text() == "false" and (out / "batches").read_text() == "[]"
    _put_tree(store, "incoming", {"b1/NORMAL/IM-0001-0001.png": _png(9), "b1/_SUCCESS": b""})
    finished = subprocess.run(command, capture_output=True, check=False)
    assert finished.returncode == 0, finished.stderr.decode()
    assert (out / "found").read_text() == "true" and json.loads((out / "batches").read_text()) == ["b1"]
    assert (out / "count").read_text() == "1"
    assert json.loads(finished.stdout)["found"] is True


# ---------------------------------------------------------------------------------------------------- import
def _base_tree() -> dict[str, bytes]:
    """10 patients per class, one image each, then a second image for patients 1 (both classes)."""
    tree = {}
    for patient in range(1, 11):
        tree[f"NORMAL/IM-{patient:04d}-0001.png"] = _png(patient)
        tree[f"PNEUMONIA/person{patient}_virus_{patient}.png"] = _png(100 + patient)
    return tree


def test_import_on_base_keeps_base_rows_adds_new_and_ledgers(store):
    _put_tree(store, "incoming", {**{f"base/{k}": v for k, v in _base_tree().items()}, "base/_SUCCESS": b""})
    first = import_dataset(store, _settings(store, batches='["base"]'))
    assert first.status == "created" and "base_version" not in first.info
    base = load_dataset(store, "t", first.version)
    test_patient = base.manifest.loc[base.manifest["split"] == "test", "patient_id"].iloc[0]
    train_patient = base.manifest.loc[base.manifest["split"] == "train", "patient_id"].iloc[0]

    def name_of(patient: str) -> str:
        return f"NORMAL/{patient}-0009.png" if patient.startswith("IM-") else f"PNEUMONIA/{patient}_virus_99.png"

    batch = {f"NORMAL/IM-{p:04d}-0001.png": _png(30 + p) for p in range(50, 58)}
    batch |= {f"PNEUMONIA/person{p}_virus_1.png": _png(150 + p) for p in range(50, 58)}
    batch |= {
        name_of(test_patient): _png(250),  # a patient of the base's test side: stays on it
        name_of(train_patient): _png(251),  # and one of its train side
        "NORMAL/IM-0099-0001.png": _png(1),  # byte-identical to a base image: a duplicate, not a new row
        "NORMAL/IM-0098-0001.png": b"not an image",
        "README.txt": b"batch notes",
    }
    _put_tree(store, "incoming", {**{f"b1/{k}": v for k, v in batch.items()}, "b1/_SUCCESS": b""})
    _put_tree(store, "incoming", {"b2/NORMAL/IM-0200-0001.png": _png(240)})  # incomplete: never touched

    with pytest.raises(ValueError, match="not complete"):
        import_dataset(store, _settings(store, base_version="latest", batches='["b1", "b2"]'))
    with pytest.raises(ValueError, match="same size"):
        import_dataset(store, _settings(store, base_version="latest", batches='["b1"]', image_size=32))

    second = import_dataset(store, _settings(store, base_version="latest", batches='["b1"]'))
    assert second.status == "created" and second.version != first.version
    assert second.info["base_version"] == first.version and second.info["batches"] == ["b1"]
    assert second.info["added_images"] == 18
    assert second.info["batch_counts"] == {"b1": {"files": 21, "images": 18, "duplicates": 1, "rejected": 1}}
    assert second.duplicates[0]["duplicate_of"] == f"{first.version}:base/NORMAL/IM-0001-0001.png"
    assert store.get_json(latest_key("t")) == {"version": second.version}

    merged = load_dataset(store, "t", second.version)
    assert len(merged.manifest) == len(base.manifest) + 18
    old = merged.manifest.iloc[: len(base.manifest)]
    for column in ("sha256", "split", "shard", "shard_index", "pixel_sha256"):
        assert old[column].tolist() == base.manifest[column].tolist(), column
    assert np.array_equal(merged.images[: len(base.manifest)], base.images)
    new = merged.manifest.iloc[len(base.manifest) :].reset_index(drop=True)
    assert new["source_path"].str.startswith("b1/").all() and not set(new["sha256"]) & set(base.manifest["sha256"])
    assert new.loc[new["patient_id"] == test_patient, "split"].tolist() == ["test"]
    assert new.loc[new["patient_id"] == train_patient, "split"].tolist() == ["train"]
    fresh = new[~new["patient_id"].isin([test_patient, train_patient])]
    expected = assign_split(new.drop(columns="split"), "patient", test_fraction=0.2, seed=3)
    assert fresh["split"].tolist() == expected[fresh.index].tolist()
    assert set(fresh["split"]) == {"train", "test"}

    ledger = read_ledger(store, ledger_key("t"))
    assert [(e["batch"], e["dataset_version"], e["files"]) for e in ledger] == [
        ("base", first.version, 20), ("b1", second.version, 21),
    ]
    # A ledgered batch is never imported again: the same request is answered from the ledger.
    again = import_dataset(store, _settings(store, base_version="latest", batches='["b1"]'))
    assert (again.status, again.version) == ("unchanged", second.version)
    assert read_ledger(store, ledger_key("t")) == ledger
    assert store.get_json(latest_key("t")) == {"version": second.version}
    assert scan_incoming(store, ledger_key=ledger_key("t")) == []


def test_batch_of_duplicates_only_is_ledgered_without_a_new_version(tmp_path, file_store):
    store = file_store
    _put_tree(store, "incoming", {**{f"base/{k}": v for k, v in _base_tree().items()}, "base/_SUCCESS": b""})
    first = import_dataset(store, _settings(store, batches='["base"]'))
    _put_tree(store, "incoming", {"dup/NORMAL/IM-0500-0001.png": _png(1), "dup/_SUCCESS": b""})
    result = import_dataset(store, _settings(store, base_version="latest", batches='["dup"]'))
    assert (result.status, result.version) == ("unchanged", first.version)
    assert store.list_prefixes("datasets/t") == [dataset_prefix("t", first.version)]
    assert read_ledger(store, ledger_key("t"))[-1] == {
        **read_ledger(store, ledger_key("t"))[-1],
        "batch": "dup",
        "dataset_version": first.version,
        "images": 0,
        "duplicates": 1,
    }


def test_retry_after_a_crash_before_the_ledger_records_the_true_lineage(file_store, monkeypatch):
    import cxrcore.data.ingest as ingest

    store = file_store
    _put_tree(store, "incoming", {**{f"base/{k}": v for k, v in _base_tree().items()}, "base/_SUCCESS": b""})
    first = import_dataset(store, _settings(store, batches='["base"]'))
    batch = {f"NORMAL/IM-{p:04d}-0001.png": _png(30 + p) for p in range(50, 54)}
    batch |= {f"PNEUMONIA/person{p}_virus_1.png": _png(150 + p) for p in range(50, 54)}
    _put_tree(store, "incoming", {**{f"b1/{k}": v for k, v in batch.items()}, "b1/_SUCCESS": b""})

    real_append = ingest.append_to_ledger

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("pod killed between the version commit and the ledger update")

    monkeypatch.setattr(ingest, "append_to_ledger", crash)
    with pytest.raises(KeyboardInterrupt):
        import_dataset(store, _settings(store, base_version="latest", batches='["b1"]'))
    monkeypatch.setattr(ingest, "append_to_ledger", real_append)
    second_version = store.get_json(latest_key("t"))["version"]
    assert second_version != first.version and [e["batch"] for e in read_ledger(store, ledger_key("t"))] == ["base"]

    retry = import_dataset(store, _settings(store, base_version="latest", batches='["b1"]'))
    assert (retry.status, retry.version) == ("unchanged", second_version)
    entry = read_ledger(store, ledger_key("t"))[-1]
    assert entry["batch"] == "b1" and entry["dataset_version"] == second_version
    assert entry["base_version"] == first.version and entry["images"] == 8
    assert store.list_prefixes("datasets/t") == sorted(
        [dataset_prefix("t", first.version), dataset_prefix("t", second_version)]
    )


# ---------------------------------------------------------------------------------------------------- decide
@pytest.mark.parametrize(
    ("champion_wrong", "challenger_wrong", "margin", "decision", "reason"),
    [
        (None, 0, 0.005, "promote", "no champion yet"),
        (10, 0, 0.005, "promote", "challenger +25.00 pp >= margin 0.50 pp and McNemar p=0.00195 < 0.05"),
        (1, 0, 0.05, "keep", "challenger +2.50 pp < margin 5.00 pp"),
        (3, 0, 0.005, "keep", "McNemar p=0.25 >= 0.05"),
        (0, 10, 0.005, "keep", "challenger -25.00 pp < margin 0.50 pp; McNemar: challenger right on 0"),
        (2, 2, 0.0, "keep", "McNemar: challenger right on 0 images the champion missed, wrong on 0"),
    ],
)
def test_decide_rules(champion_wrong, challenger_wrong, margin, decision, reason):
    labels = np.ones(40, dtype=int)

    def predictions(wrong: int) -> np.ndarray:
        out = labels.copy()
        out[:wrong] = 0
        return out

    result = decide(
        labels,
        predictions(challenger_wrong),
        None if champion_wrong is None else predictions(champion_wrong),
        margin=margin,
        alpha=0.05,
    )
    assert result.decision == decision
    assert result.reason.startswith(reason), result.reason


# ---------------------------------------------------------------------------------------------------- promote
#: Holdout: 40 constant images, intensity 10, 15, ..., 205; PNEUMONIA above 100.
HOLDOUT_VALUES = list(range(10, 210, 5))
PERFECT, WRONG_1, WRONG_3, WRONG_10 = 102.5, 107.5, 117.5, 152.5


def _threshold_model(threshold: float):
    """p(PNEUMONIA) = sigmoid(mean intensity - threshold): right on every image but those in between."""
    import keras

    inputs = keras.Input((SIZE, SIZE, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(1, activation="sigmoid")
    model = keras.Model(inputs, dense(pooled), name=f"threshold_{int(threshold * 10)}")
    dense.set_weights([np.array([[1.0]], dtype="float32"), np.array([-threshold], dtype="float32")])
    return model


def _holdout_dataset(store: Store, work: Path) -> str:
    tree = {}
    for value in HOLDOUT_VALUES:
        label = "PNEUMONIA" if value > 100 else "NORMAL"
        tree[f"test/{label}/IM-{value:04d}-0001.png"] = _png(value)
    for value in (1, 2, 3, 4, 250, 251, 252, 253):
        tree[f"train/{'PNEUMONIA' if value > 100 else 'NORMAL'}/IM-{1000 + value}-0001.png"] = _png(value)
    for path, data in tree.items():
        (work / "holdout" / path).parent.mkdir(parents=True, exist_ok=True)
        (work / "holdout" / path).write_bytes(data)
    settings = PrepareSettings(source=str(work / "holdout"), name="t", image_size=SIZE, split="official")
    return import_dataset(store, settings).version


def _classifier(store: Store, work: Path, run_id: str, threshold: float, version: str) -> str:
    prefix = f"runs/{run_id}/classifiers/baseline/custom_cnn/seed-0"
    path = work / f"{run_id}.keras"
    _threshold_model(threshold).save(path)
    metrics = {"dataset": "t", "dataset_version": version, "model": "custom_cnn", "condition": "baseline", "seed": 0}
    with store.commit(prefix, inputs={"run": run_id}) as tx:
        tx.put_file("model.keras", path)
        tx.put_json("metrics.json", metrics)
    return prefix


def _promote(store: Store, run_id: str, prefix: str, margin: float = 0.005) -> dict:
    settings = PromoteSettings(
        store=store.uri, run_id=run_id, dataset="t", challenger=prefix, margin=margin, log_format="console"
    )
    return run_promote(settings)


@pytest.mark.parametrize(
    ("champion", "challenger", "margin", "decision", "reason"),
    [
        (PERFECT, WRONG_10, 0.005, "keep", "challenger -25.00 pp < margin 0.50 pp"),
        (WRONG_10, PERFECT, 0.005, "promote", "challenger +25.00 pp >= margin 0.50 pp and McNemar p=0.00195"),
        (WRONG_1, PERFECT, 0.05, "keep", "challenger +2.50 pp < margin 5.00 pp"),
        (WRONG_3, PERFECT, 0.005, "keep", "McNemar p=0.25 >= 0.05"),
    ],
    ids=["worse", "better-significant", "within-margin", "not-significant"],
)
def test_promote_decisions_and_records(tmp_path, file_store, champion, challenger, margin, decision, reason):
    store = file_store
    version = _holdout_dataset(store, tmp_path)
    first = _promote(store, "champ", _classifier(store, tmp_path, "champ", champion, version))
    assert (first["decision"], first["reason"], first["status"]) == ("promote", "no champion yet", "created")
    assert first["holdout_images"] == 40 and first["champion_accuracy"] is None
    before = store.get_bytes(champion_key("pneumonia"))

    prefix = _classifier(store, tmp_path, "chall", challenger, version)
    result = _promote(store, "chall", prefix, margin=margin)
    assert result["decision"] == decision and result["reason"].startswith(reason), result["reason"]
    wrong = {PERFECT: 0, WRONG_1: 1, WRONG_3: 3, WRONG_10: 10}
    assert result["challenger_accuracy"] == pytest.approx(1 - wrong[challenger] / 40)
    assert result["champion_accuracy"] == pytest.approx(1 - wrong[champion] / 40)

    records = store.list(decisions_prefix("pneumonia"))
    assert len(records) == 2 and records[-1].key.endswith("-chall.json")
    record = store.get_json(records[-1].key)
    assert record["decision"] == decision and record["champion"]["prefix"].startswith("runs/champ/")
    assert record["holdout"]["images"] == 40 and record["mcnemar"]["discordant"] == abs(
        wrong[champion] - wrong[challenger]
    )
    champion_record = store.get_json(champion_key("pneumonia"))
    if decision == "promote":
        assert champion_record["prefix"] == prefix and champion_record["run_id"] == "chall"
        assert champion_record["dataset_version"] == version and champion_record["holdout_images"] == 40
        assert champion_record["previous"]["prefix"].startswith("runs/champ/")
        assert champion_record["metrics"]["accuracy"] == pytest.approx(1.0)
    else:
        assert store.get_bytes(champion_key("pneumonia")) == before


def test_promote_retry_is_idempotent_and_recovers_a_lost_record(tmp_path, file_store):
    store = file_store
    version = _holdout_dataset(store, tmp_path)
    prefix = _classifier(store, tmp_path, "r1", PERFECT, version)
    first = _promote(store, "r1", prefix)
    again = _promote(store, "r1", prefix)
    assert again["status"] == "unchanged" and again["decision"] == first["decision"] == "promote"
    assert len(store.list(decisions_prefix("pneumonia"))) == 1
    # The job died after writing champion.json but before the decision record: the retry rewrites it.
    store.delete(store.list(decisions_prefix("pneumonia"))[0].key)
    recovered = _promote(store, "r1", prefix)
    assert (recovered["status"], recovered["decision"]) == ("unchanged", "promote")
    assert recovered["reason"] == first["reason"]
    assert len(store.list(decisions_prefix("pneumonia"))) == 1
    with pytest.raises(ValueError, match="classifier output"):
        _promote(store, "r1", "runs/r1/report")
    with pytest.raises(ValueError, match="not a committed"):
        _promote(store, "r2", "runs/r2/classifiers/baseline/custom_cnn/seed-0")


def test_promotion_holdout_is_chosen_once_and_never_grows(tmp_path, file_store):
    store = file_store
    version = _holdout_dataset(store, tmp_path)
    first = _promote(store, "champ", _classifier(store, tmp_path, "champ", WRONG_10, version))
    pointer = store.get_json("registry/pneumonia/holdout.json")
    fixed = store.get_json(pointer["key"])
    assert pointer["key"] == f"registry/pneumonia/holdouts/{pointer['id']}.json"
    assert (fixed["images"], fixed["dataset_version"], first["holdout_id"]) == (40, version, pointer["id"])
    # A new version adds test images, as every imported batch does; the promotion holdout stays the same 40.
    extra = {f"test/PNEUMONIA/IM-{value:04d}-0001.png": _png(value) for value in (211, 212, 213, 214)}
    extra |= {f"test/NORMAL/IM-{value:04d}-0001.png": _png(value) for value in (6, 7, 8, 9)}
    extra |= {f"train/NORMAL/IM-{value:04d}-0001.png": _png(value) for value in (11, 12)}
    for path, data in extra.items():
        (tmp_path / "more" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "more" / path).write_bytes(data)
    settings = PrepareSettings(
        source=str(tmp_path / "more"), name="t", image_size=SIZE, split="official", base_version=version
    )
    newer = import_dataset(store, settings).version
    assert int((load_dataset(store, "t", newer).manifest["split"] == "test").sum()) == 48
    result = _promote(store, "chall", _classifier(store, tmp_path, "chall", PERFECT, newer))
    assert (result["holdout_images"], result["holdout_id"]) == (40, pointer["id"])
    record = store.get_json(store.list(decisions_prefix("pneumonia"))[-1].key)
    assert record["holdout"]["holdout_key"] == pointer["key"] and record["holdout"]["dataset_version"] == newer
    assert record["holdout"]["chosen_from_version"] == version
    assert store.get_json(pointer["key"]) == fixed  # never rewritten
    # A tampered holdout is refused, not silently used.
    store.put_json(pointer["key"], {**fixed, "sha256": fixed["sha256"][1:]})
    with pytest.raises(Exception, match="digest"):
        _promote(store, "chall2", _classifier(store, tmp_path, "chall2", PERFECT, newer))


def test_holdout_leaves_out_images_the_champion_trained_on(tmp_path, file_store):
    store = file_store
    shared = {"train/PNEUMONIA/person1_virus_1.png": _png(150), "test/NORMAL/IM-0002-0001.png": _png(6),
              "test/PNEUMONIA/person2_virus_2.png": _png(160)}
    # The champion's version trained on image 5; the challenger's version (not built on it) tests on it.
    old = {**shared, "train/NORMAL/IM-0001-0001.png": _png(5)}
    new = {**shared, "test/NORMAL/IM-0001-0001.png": _png(5), "train/NORMAL/IM-0003-0001.png": _png(7)}
    versions = []
    for name, tree in (("old", old), ("new", new)):
        for path, data in tree.items():
            (tmp_path / name / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name / path).write_bytes(data)
        settings = PrepareSettings(source=str(tmp_path / name), name="t", image_size=SIZE, split="official")
        versions.append(import_dataset(store, settings).version)
    champion = {"dataset": "t", "dataset_version": versions[0]}
    holdout = select_holdout(store, "t", versions[1], champion)
    assert holdout.info["images"] == 2 and holdout.info["excluded_champion_training"] == 1
    assert select_holdout(store, "t", versions[1], None).info["images"] == 3


# ---------------------------------------------------------------------------------------------------- workflow
def _run_retrain(store_uri: str, work: Path, name: str):
    from cxrcore.ops.runner import LocalRunner, load_workflow, resolve_arguments

    workflow, templates = load_workflow(REPO / "argo" / "retrain.yaml")
    parameters = resolve_arguments(
        workflow,
        overrides={
            "store": store_uri,
            "dataset": "demo",
            "image-size": "32",
            "split": "patient",
            "data-seed": "0",
            "clf-epochs": "1",
            "clf-size": "32",
            "clf-batch": "16",
            "clf-steps": "2",
            "weights": "none",
        },
    )
    return LocalRunner(workflow, templates, parameters, work_dir=work, parallelism=2, name=name).run()


def _upload_demo_batch(store_dir: Path, work: Path, batch: str, seed: int) -> None:
    from cxrcore.data.demo import write_demo_dataset

    write_demo_dataset(work / f"demo-{batch}", per_class=6, size=32, seed=seed)
    shutil.copytree(work / f"demo-{batch}", store_dir / "incoming" / batch)
    (store_dir / "incoming" / batch / "_SUCCESS").write_bytes(b"")


def _first_retrain(tmp_path: Path):
    """A demo dataset, one incoming batch and the first retrain run, checked: import, challenger, promotion."""
    from tests.helpers import make_demo_dataset

    store_dir = tmp_path / "store"
    store = open_store(store_dir.as_uri())
    base = make_demo_dataset(store, tmp_path, name="demo", per_class=16, size=32, seed=0)
    _upload_demo_batch(store_dir, tmp_path, "batch-1", seed=11)

    first = _run_retrain(store.uri, tmp_path / "work", "retrain-1")
    statuses = {name: node.status for name, node in first.nodes.items()}
    assert first.status == "Succeeded", {n: (x.status, x.message) for n, x in first.nodes.items()}
    assert statuses == {name: "Succeeded" for name in ("check", "import", "challenger", "promote", "report", "onExit")}
    assert first.nodes["check"].parameters == {"found": "true", "batches": '["batch-1"]'}
    assert first.nodes["promote"].parameters == {"decision": "promote", "reason": "no champion yet"}
    version = first.nodes["import"].parameters["version"]
    assert version != base.version and store.get_json(latest_key("demo")) == {"version": version}
    merged = manifest_from_csv(store.get_bytes(f"{dataset_prefix('demo', version)}/manifest.csv"), key="m")
    old = manifest_from_csv(store.get_bytes(f"{dataset_prefix('demo', base.version)}/manifest.csv"), key="m")
    assert merged.iloc[: len(old)][["sha256", "split"]].equals(old[["sha256", "split"]])
    assert len(merged) > len(old)
    champion = store.get_json(champion_key("pneumonia"))
    assert champion["prefix"] == "runs/retrain-1/classifiers/baseline/custom_cnn/seed-0"
    assert champion["dataset_version"] == version
    assert [entry["batch"] for entry in read_ledger(store, ledger_key("demo"))] == ["batch-1"]
    assert store.is_committed("runs/retrain-1/report")
    return store, store_dir


@pytest.mark.timeout(900)
def test_retrain_workflow_imports_a_batch_and_promotes_the_first_champion(tmp_path):
    _first_retrain(tmp_path)


@pytest.mark.slow  # 55 s: three workflow runs (the first one is in the default run above)
@pytest.mark.timeout(900)
def test_retrain_workflow_promotes_then_does_nothing_then_decides(tmp_path):
    store, store_dir = _first_retrain(tmp_path)

    datasets = [obj.key for obj in store.list("datasets")]
    registry = {obj.key: store.get_bytes(obj.key) for obj in store.list("registry")}
    second = _run_retrain(store.uri, tmp_path / "work", "retrain-2")
    assert second.status == "Succeeded"
    assert second.nodes["check"].parameters == {"found": "false", "batches": "[]"}
    assert {name: node.status for name, node in second.nodes.items() if name not in ("check", "onExit")} == {
        name: "Skipped" for name in ("import", "challenger", "promote", "report")
    }
    assert [obj.key for obj in store.list("datasets")] == datasets
    assert {obj.key: store.get_bytes(obj.key) for obj in store.list("registry")} == registry
    assert [obj.key for obj in store.list("runs/retrain-2")] == ["runs/retrain-2/workflow.json"]

    _upload_demo_batch(store_dir, tmp_path, "batch-2", seed=12)
    third = _run_retrain(store.uri, tmp_path / "work", "retrain-3")
    assert third.status == "Succeeded", {n: (x.status, x.message) for n, x in third.nodes.items()}
    decision = third.nodes["promote"].parameters
    assert decision["decision"] in ("promote", "keep")
    assert "pp" in decision["reason"] or "McNemar" in decision["reason"], decision["reason"]
    record = store.get_json(store.list(decisions_prefix("pneumonia"))[-1].key)
    assert record["run_id"] == "retrain-3" and record["champion"]["run_id"] == "retrain-1"
    assert record["holdout"]["dataset_version"] == third.nodes["import"].parameters["version"]
    expected = "retrain-3" if decision["decision"] == "promote" else "retrain-1"
    assert store.get_json(champion_key("pneumonia"))["run_id"] == expected
    assert [entry["batch"] for entry in read_ledger(store, ledger_key("demo"))] == ["batch-1", "batch-2"]
