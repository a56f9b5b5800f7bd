"""``cxr-train-classifier``: smoke training on demo phantoms through the file store and the S3 test server.

Covers both conditions (the test set is the same real images), the committed outputs and their schema, the
model round trip, idempotent reruns, resuming after a failure, checkpoint pruning, weights from an ``s3://`` URI,
the paper-merge protocol, missing synthetic inputs and the collapse flag.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import structlog

from cxrcore.config import S3Settings, TrainClassifierSettings
from cxrcore.data.dataset import CLASS_NAMES, DatasetError, encode_shard, load_dataset, manifest_to_csv
from cxrcore.layout import classifier_prefix, synthetic_prefix
from cxrcore.storage import S3Store, Store, join_key, open_store, sha256_bytes
from tests.helpers import make_demo_dataset

keras = pytest.importorskip("keras")

from cxrcore import train_classifier  # noqa: E402
from cxrcore.training import classifier as classifier_training  # noqa: E402
from cxrcore.evaluate import load_model_uri, predict_pixels  # noqa: E402

SIZE = 32
SYNTHETIC_PER_CLASS = 4
OUTPUTS = {"model.keras", "history.csv", "metrics.json", "predictions.csv"}


# ---------------------------------------------------------------------------------------------------- helpers
def _s3_options(store: Store) -> dict:
    return {"endpoint_url": store.endpoint_url, "addressing_style": "path"} if isinstance(store, S3Store) else {}


def _settings(store: Store, **overrides) -> TrainClassifierSettings:
    values = {
        "store": store.uri,
        "run_id": "r1",
        "dataset": "demo",
        "model": "custom_cnn",
        "condition": "baseline",
        "epochs": 1,
        "batch_size": 8,
        "image_size": SIZE,
        "weights": "none",
        "max_steps_per_epoch": 2,
        "seed": 0,
        "log_format": "console",
    }
    if isinstance(store, S3Store):
        values["s3"] = S3Settings(**_s3_options(store))
    values.update(overrides)
    return TrainClassifierSettings(**values)


def write_synthetic(store: Store, run_id: str, class_name: str, *, count: int = SYNTHETIC_PER_CLASS, size: int = 40):
    """Commits a tiny synthetic output of one class in the dataset format (as cxr-synthesize writes it)."""
    rng = np.random.default_rng(CLASS_NAMES.index(class_name))
    pixels = rng.integers(0, 256, size=(count, size, size), dtype=np.uint8)
    rows = []
    for index in range(count):
        digest = sha256_bytes(pixels[index].tobytes())
        rows.append(
            {
                "image_id": f"syn-{class_name.lower()}-{index:04d}",
                "sha256": digest,
                "pixel_sha256": digest,
                "class": class_name,
                "label": CLASS_NAMES.index(class_name),
                "patient_id": f"synthetic-{class_name.lower()}-{index:04d}",
                "patient_id_parsed": False,
                "source": "synthetic",
                "source_path": "",
                "source_split": "",
                "split": "train",
                "orig_width": size,
                "orig_height": size,
                "orig_mode": "L",
                "orig_format": "generated",
                "width": size,
                "height": size,
                "shard": "shard-00000.npy",
                "shard_index": index,
            }
        )
    with store.commit(synthetic_prefix(run_id, class_name), inputs={"test": class_name}) as tx:
        tx.put_bytes("shards/shard-00000.npy", encode_shard(pixels))
        tx.put_bytes("manifest.csv", manifest_to_csv(pd.DataFrame(rows)))
        tx.put_json("dataset.json", {"image_size": size, "class": class_name, "images": count})


def _read_csv(store: Store, key: str) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(store.get_bytes(key)), dtype={"image_id": str})


def _committed_outputs(store: Store, prefix: str) -> dict:
    marker = store.require_committed(prefix)
    assert OUTPUTS <= set(marker.outputs)
    for name, entry in marker.outputs.items():
        assert sha256_bytes(store.get_bytes(join_key(prefix, name))) == entry["sha256"]
    return marker.outputs


def _real_test_pixels(store: Store) -> tuple[list[str], np.ndarray]:
    dataset = load_dataset(store, "demo")
    images, manifest = dataset.subset("test")
    order = np.argsort(manifest["image_id"].to_numpy(), kind="mergesort")
    return manifest["image_id"].to_numpy()[order].tolist(), images[order]



@pytest.fixture
def demo(store: Store, tmp_path: Path) -> Store:
    make_demo_dataset(store, tmp_path, per_class=16, size=SIZE)
    return store


# ---------------------------------------------------------------------------------------------------- tests
def test_baseline_and_augmented_share_the_real_test_set(demo: Store, capsys: pytest.CaptureFixture[str]) -> None:
    store = demo
    for class_name in CLASS_NAMES:
        write_synthetic(store, "r1", class_name)

    baseline = train_classifier.run(_settings(store, condition="baseline"))
    augmented = train_classifier.run(_settings(store, condition="augmented"))
    assert baseline["status"] == augmented["status"] == "created"

    test_ids, test_pixels = _real_test_pixels(store)
    frames = {}
    for condition in ("baseline", "augmented"):
        prefix = classifier_prefix("r1", condition, "custom_cnn", 0)
        _committed_outputs(store, prefix)
        metrics = store.get_json(join_key(prefix, "metrics.json"))
        predictions = _read_csv(store, join_key(prefix, "predictions.csv"))
        history = _read_csv(store, join_key(prefix, "history.csv"))
        frames[condition] = predictions

        assert list(predictions.columns) == ["image_id", "label", "probability"]
        assert predictions["image_id"].tolist() == test_ids  # every real test image, sorted by image_id
        assert list(history.columns) == ["epoch", "loss", "accuracy", "seconds"] and history["epoch"].tolist() == [1]
        for key in ("accuracy", "accuracy_ci95", "precision_macro", "recall_macro", "f1_macro", "sensitivity",
                    "specificity", "auc", "confusion_matrix", "collapsed", "train_accuracy", "test_loss",
                    "train_time_s", "params_total", "params_trainable", "patients_on_both_sides", "device"):
            assert key in metrics, key
        assert metrics["n"] == len(test_ids)
        assert metrics["model"] == "custom_cnn" and metrics["condition"] == condition and metrics["seed"] == 0
        assert metrics["dataset"] == "demo" and metrics["split_strategy"] == "patient"
        assert metrics["test_contaminated"] is False
        assert metrics["train_time_s"] > 0 and metrics["train_time_s"] == pytest.approx(history["seconds"].sum())
        assert metrics["params_trainable"] == metrics["params_total"] > 0
        labels = predictions["label"].to_numpy()
        probabilities = predictions["probability"].to_numpy()
        expected_loss = train_classifier.binary_cross_entropy(labels, probabilities)
        assert metrics["test_loss"] == pytest.approx(expected_loss, abs=1e-6)
        predicted = (probabilities >= 0.5).astype(int)
        assert metrics["confusion_matrix"] == [
            [int(((labels == 0) & (predicted == 0)).sum()), int(((labels == 0) & (predicted == 1)).sum())],
            [int(((labels == 1) & (predicted == 0)).sum()), int(((labels == 1) & (predicted == 1)).sum())],
        ]

        # model.keras loads with cxrcore.models alone and reproduces predictions.csv.
        model = load_model_uri(f"{store.uri}/{prefix}", s3=_s3_options(store))
        np.testing.assert_allclose(predict_pixels(model, test_pixels), probabilities, atol=1e-5)

    baseline_metrics = store.get_json(join_key(classifier_prefix("r1", "baseline", "custom_cnn", 0), "metrics.json"))
    augmented_metrics = store.get_json(join_key(classifier_prefix("r1", "augmented", "custom_cnn", 0), "metrics.json"))
    assert baseline_metrics["counts"]["train_synthetic"] == 0
    assert augmented_metrics["counts"]["train_synthetic"] == 2 * SYNTHETIC_PER_CLASS
    assert augmented_metrics["counts"]["train_real"] == baseline_metrics["counts"]["train_real"]
    assert augmented_metrics["counts"]["test_synthetic"] == 0
    assert frames["baseline"]["label"].tolist() == frames["augmented"]["label"].tolist()

    # Idempotent: the job entrypoint finds the output committed from the same inputs and changes nothing.
    from jobs.train_classifier import main

    marker_before = store.read_marker(classifier_prefix("r1", "augmented", "custom_cnn", 0))
    s3_flags = []
    if isinstance(store, S3Store):
        s3_flags = [f"--s3.endpoint-url={store.endpoint_url}", "--s3.addressing-style=path"]
    capsys.readouterr()
    code = main([
        f"--store={store.uri}", "--run-id=r1", "--dataset=demo", "--model=custom_cnn", "--condition=augmented",
        "--epochs=1", "--batch-size=8", f"--image-size={SIZE}", "--weights=none", "--max-steps-per-epoch=2",
        "--log-format=json", *s3_flags,
    ])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "unchanged"
    assert store.read_marker(classifier_prefix("r1", "augmented", "custom_cnn", 0)) == marker_before


def test_backbone_with_weights_from_a_uri(demo: Store, tmp_path: Path) -> None:
    store = demo
    # Base-network weights published in the store (an s3:// URI on S3, a local path otherwise).
    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    weights_file = tmp_path / "vgg16_base.weights.h5"
    base.save_weights(weights_file)
    keras.backend.clear_session()
    if isinstance(store, S3Store):
        store.put_file("weights/vgg16_base.weights.h5", weights_file)
        weights = f"{store.uri}/weights/vgg16_base.weights.h5"
        missing = f"{store.uri}/weights/absent.weights.h5"
    else:
        weights = str(weights_file)
        missing = str(tmp_path / "absent.weights.h5")

    with pytest.raises(FileNotFoundError, match="absent.weights.h5"):
        train_classifier.run(_settings(store, model="vgg16", weights=missing))

    result = train_classifier.run(_settings(store, model="vgg16", weights=weights))
    prefix = classifier_prefix("r1", "baseline", "vgg16", 0)
    _committed_outputs(store, prefix)
    metrics = store.get_json(join_key(prefix, "metrics.json"))
    assert result["status"] == "created" and metrics["model"] == "vgg16"
    assert metrics["params_total"] > metrics["params_trainable"] > 0  # the base is frozen
    assert metrics["weights_sha256"] == sha256_bytes(weights_file.read_bytes())
    assert metrics["optimizer"] == "paper" and metrics["image_size"] == SIZE


def test_resume_after_failure_and_checkpoint_pruning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store((tmp_path / "store").as_uri())
    make_demo_dataset(store, tmp_path, per_class=16, size=SIZE)
    settings = _settings(store, epochs=4, checkpoint_every=1, max_steps_per_epoch=1)
    prefix = classifier_prefix("r1", "baseline", "custom_cnn", 0)
    original = classifier_training._fit_one_epoch
    trained: list[int] = []

    def failing(model, dataset, *, epoch, steps, class_weight):
        if epoch == 3:
            raise RuntimeError("injected failure (node preempted)")
        trained.append(epoch)
        return original(model, dataset, epoch=epoch, steps=steps, class_weight=class_weight)

    monkeypatch.setattr(classifier_training, "_fit_one_epoch", failing)
    with pytest.raises(RuntimeError, match="injected failure"):
        train_classifier.run(settings)
    assert trained == [0, 1, 2]
    assert store.read_marker(prefix) is None
    checkpoints = join_key(prefix, "checkpoints")
    assert [key.rsplit("/", 1)[-1] for key in store.list_prefixes(checkpoints)] == ["epoch-0002", "epoch-0003"]
    state = json.loads(store.get_bytes(join_key(checkpoints, "epoch-0003", "state.json")))
    assert state["epoch"] == 3 and [row["epoch"] for row in state["history"]] == [1, 2, 3]

    def counting(model, dataset, *, epoch, steps, class_weight):
        trained.append(epoch)
        return original(model, dataset, epoch=epoch, steps=steps, class_weight=class_weight)

    monkeypatch.setattr(classifier_training, "_fit_one_epoch", counting)
    trained.clear()
    with structlog.testing.capture_logs() as logs:
        result = train_classifier.run(settings)
    assert result["status"] == "created"
    assert trained == [3]  # only the epoch after the newest checkpoint
    resumed = [entry for entry in logs if entry["event"] == "classifier_resumed"]
    assert resumed and resumed[0]["epoch"] == 3
    _committed_outputs(store, prefix)
    history = _read_csv(store, join_key(prefix, "history.csv"))
    assert history["epoch"].tolist() == [1, 2, 3, 4]
    np.testing.assert_allclose(history["seconds"].to_numpy()[:3], [row["seconds"] for row in state["history"]])
    metrics = store.get_json(join_key(prefix, "metrics.json"))
    assert metrics["epochs_trained"] == 4
    assert metrics["train_time_s"] == pytest.approx(history["seconds"].sum())
    # Checkpoints survive the publish of the final output (preserve=("checkpoints",)).
    assert store.read_marker(join_key(checkpoints, "epoch-0003")) is not None


def test_paper_merge_records_a_contaminated_test_set(tmp_path: Path) -> None:
    store = open_store((tmp_path / "store").as_uri())
    make_demo_dataset(store, tmp_path, per_class=16, size=SIZE)
    for class_name in CLASS_NAMES:
        write_synthetic(store, "r1", class_name, count=10)
    train_classifier.run(_settings(store, condition="augmented", protocol="paper-merge", seed=3))
    prefix = classifier_prefix("r1", "augmented", "custom_cnn", 3)
    metrics = store.get_json(join_key(prefix, "metrics.json"))
    predictions = _read_csv(store, join_key(prefix, "predictions.csv"))
    assert metrics["split_strategy"] == "paper-merge" and metrics["dataset_split_strategy"] == "patient"
    assert metrics["test_contaminated"] is True and metrics["counts"]["test_synthetic"] > 0
    assert predictions["image_id"].str.startswith("syn-").sum() == metrics["counts"]["test_synthetic"]
    # Stratified 80/20 of the pooled 32 real + 20 synthetic images.
    assert metrics["n"] == round(0.2 * 26) * 2
    assert predictions["image_id"].tolist() == sorted(predictions["image_id"])


def test_augmented_needs_both_synthetic_outputs(tmp_path: Path) -> None:
    store = open_store((tmp_path / "store").as_uri())
    make_demo_dataset(store, tmp_path, per_class=16, size=SIZE)
    write_synthetic(store, "r1", "NORMAL")
    with pytest.raises(DatasetError) as error:
        train_classifier.run(_settings(store, condition="augmented"))
    message = str(error.value)
    assert "runs/r1/synthetic/PNEUMONIA" in message and "synthetic/NORMAL" not in message


def test_collapsed_model_is_flagged_and_logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store((tmp_path / "store").as_uri())
    make_demo_dataset(store, tmp_path, per_class=16, size=SIZE)

    def always_pneumonia(settings, weights):
        inputs = keras.Input((settings.image_size, settings.image_size, 3))
        pooled = keras.layers.GlobalAveragePooling2D()(inputs)
        outputs = keras.layers.Dense(
            1, activation="sigmoid", kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(12.0)
        )(pooled)
        return keras.Model(inputs, outputs, name="always_pneumonia")

    monkeypatch.setattr(classifier_training, "_build_model", always_pneumonia)
    with structlog.testing.capture_logs() as logs:
        result = train_classifier.run(_settings(store))
    assert result["collapsed"] is True
    metrics = store.get_json(join_key(classifier_prefix("r1", "baseline", "custom_cnn", 0), "metrics.json"))
    assert metrics["collapsed"] is True and metrics["collapsed_to"] == "PNEUMONIA"
    assert metrics["specificity"] == 0.0 and metrics["sensitivity"] == 1.0
    warnings = [entry for entry in logs if entry["event"] == "model_collapsed"]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"
    assert warnings[0]["collapsed_to"] == "PNEUMONIA"


def test_pure_helpers() -> None:
    assert train_classifier.class_weights(np.array([0, 1, 1, 1]), "none") is None
    assert train_classifier.class_weights(np.array([0, 1, 1, 1]), "balanced") == {0: 2.0, 1: 4 / 6}
    with pytest.raises(ValueError, match="both classes"):
        train_classifier.class_weights(np.array([1, 1]), "balanced")
    expected = -np.mean([np.log(0.9), np.log(0.8)])
    assert train_classifier.binary_cross_entropy([1, 0], [0.9, 0.2]) == pytest.approx(expected)
    assert np.isfinite(train_classifier.binary_cross_entropy([1, 0], [0.0, 1.0]))
