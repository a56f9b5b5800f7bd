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

from cxrcore.config import ReportSettings, TrainClassifierSettings
from cxrcore.data.dataset import CLASS_NAMES, DatasetError, encode_shard, load_dataset, manifest_to_csv
from cxrcore.explain import OUTCOMES, PANEL_TILE, panel_size, select_examples
from cxrcore.layout import GRADCAM_INFO_FILE, GRADCAM_PANEL_FILE, classifier_prefix, report_prefix, synthetic_prefix
from cxrcore.storage import S3Store, Store, join_key, sha256_bytes
from cxrcore.training import classifier_recipe as recipe
from cxrcore.training.classifier_data import carve_validation
from tests.helpers import make_demo_dataset, s3_options_for

keras = pytest.importorskip("keras")

from cxrcore import train_classifier  # noqa: E402
from cxrcore.training import classifier as classifier_training  # noqa: E402
from cxrcore.evaluate import load_model_uri, predict_pixels  # noqa: E402

SIZE = 32
SYNTHETIC_PER_CLASS = 4
OUTPUTS = {"model.keras", "history.csv", "metrics.json", "predictions.csv"}
GRADCAM_OUTPUTS = {GRADCAM_PANEL_FILE, GRADCAM_INFO_FILE}


# ---------------------------------------------------------------------------------------------------- helpers
def _settings(shrunk_settings, store: Store, **overrides) -> TrainClassifierSettings:
    """One epoch of two batches of 8 of the custom CNN at ``SIZE`` px, baseline, seed 0, on ``store``."""
    values = {
        "model": "custom_cnn",
        "condition": "baseline",
        "batch_size": 8,
        "image_size": SIZE,
        "max_steps_per_epoch": 2,
        "seed": 0,
    }
    return shrunk_settings(TrainClassifierSettings, store=store, **{**values, **overrides})


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


def _check_gradcam(store: Store, prefix: str, predictions: pd.DataFrame, *, per_outcome: int, layer: str) -> dict:
    """The committed Grad-CAM panel and its description match the committed predictions; returns the description."""
    from PIL import Image

    marker = store.require_committed(prefix)
    assert GRADCAM_OUTPUTS <= set(marker.outputs)
    info = store.get_json(join_key(prefix, GRADCAM_INFO_FILE))
    labels, probabilities = predictions["label"].to_numpy(), predictions["probability"].to_numpy()
    expected = select_examples(predictions["image_id"].tolist(), labels, probabilities, per_outcome=per_outcome)
    assert [(cell["outcome"], cell["image_id"]) for cell in info["cells"]] == [
        (example.outcome, example.image_id) for example in expected
    ]
    by_id = predictions.set_index("image_id")
    for cell in info["cells"]:
        assert cell["probability"] == pytest.approx(by_id.loc[cell["image_id"], "probability"], abs=1e-9)
        assert cell["label"] == CLASS_NAMES[int(by_id.loc[cell["image_id"], "label"])]
        assert cell["predicted"] == CLASS_NAMES[int(cell["outcome"] in ("true_positive", "false_positive"))]
        assert set(cell) == {"row", "column", "outcome", "image_id", "label", "predicted", "probability"}
        assert cell["row"] == OUTCOMES.index(cell["outcome"]) and cell["column"] < per_outcome
    assert info["layer"] == layer and info["threshold"] == 0.5 and info["per_outcome"] == per_outcome
    assert info["method"] == "grad-cam" and info["image_size"] == SIZE and info["panel"]["tile"] == PANEL_TILE
    panel = Image.open(io.BytesIO(store.get_bytes(join_key(prefix, GRADCAM_PANEL_FILE))))
    assert panel.format == "PNG" and panel.mode == "RGB"
    assert panel.size == panel_size(per_outcome) == (info["panel"]["width"], info["panel"]["height"])
    return info


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
def test_baseline_and_augmented_share_the_real_test_set(
    demo: Store, capsys: pytest.CaptureFixture[str], shrunk_settings
) -> None:
    store = demo
    for class_name in CLASS_NAMES:
        write_synthetic(store, "r1", class_name)

    baseline = train_classifier.run(_settings(shrunk_settings, store, condition="baseline"))
    augmented = train_classifier.run(_settings(shrunk_settings, store, condition="augmented"))
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
                    "train_time_s", "params_total", "params_trainable", "patients_on_both_sides", "device",
                    "at_default_threshold", "chosen_threshold", "at_chosen_threshold", "validation"):
            assert key in metrics, key
        assert metrics["n"] == len(test_ids)
        assert metrics["model"] == "custom_cnn" and metrics["condition"] == condition and metrics["seed"] == 0
        assert metrics["dataset"] == "demo" and metrics["split_strategy"] == "patient"
        assert metrics["test_contaminated"] is False
        assert metrics["train_time_s"] > 0 and metrics["train_time_s"] == pytest.approx(history["seconds"].sum())
        assert metrics["params_trainable"] == metrics["params_total"] > 0
        # The paper's defaults: no validation split, so nothing is chosen; the 0.5 operating point is spelled out.
        assert metrics["validation"] is None and metrics["chosen_threshold"] is None
        assert metrics["at_chosen_threshold"] is None and metrics["best_epoch"] is None
        assert metrics["at_default_threshold"]["accuracy"] == metrics["accuracy"]
        labels = predictions["label"].to_numpy()
        probabilities = predictions["probability"].to_numpy()
        expected_loss = train_classifier.binary_cross_entropy(labels, probabilities)
        assert metrics["test_loss"] == pytest.approx(expected_loss, abs=1e-6)
        predicted = (probabilities >= 0.5).astype(int)
        assert metrics["confusion_matrix"] == [
            [int(((labels == 0) & (predicted == 0)).sum()), int(((labels == 0) & (predicted == 1)).sum())],
            [int(((labels == 1) & (predicted == 0)).sum()), int(((labels == 1) & (predicted == 1)).sum())],
        ]

        # Grad-CAM of the most confident test images per outcome (explain_examples defaults to 2).
        _check_gradcam(store, prefix, predictions, per_outcome=2, layer="conv_3")

        # model.keras loads with cxrcore.models alone and reproduces predictions.csv.
        model = load_model_uri(store.url(prefix), s3=s3_options_for(store))
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


def test_backbone_with_weights_from_a_uri(demo: Store, tmp_path: Path, shrunk_settings) -> None:
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
        train_classifier.run(_settings(shrunk_settings, store, model="vgg16", weights=missing))

    result = train_classifier.run(_settings(shrunk_settings, store, model="vgg16", weights=weights))
    prefix = classifier_prefix("r1", "baseline", "vgg16", 0)
    _committed_outputs(store, prefix)
    metrics = store.get_json(join_key(prefix, "metrics.json"))
    assert result["status"] == "created" and metrics["model"] == "vgg16"
    assert metrics["params_total"] > metrics["params_trainable"] > 0  # the base is frozen
    assert metrics["weights_sha256"] == sha256_bytes(weights_file.read_bytes())
    assert metrics["optimizer"] == "paper" and metrics["image_size"] == SIZE
    _check_gradcam(store, prefix, _read_csv(store, join_key(prefix, "predictions.csv")), per_outcome=2, layer="vgg16")


@pytest.mark.parametrize(
    "recipe_settings",
    [{}, {"validation_fraction": 0.3, "lr_schedule": "plateau", "augment": True}],
    ids=["paper", "recipe"],
)
def test_resume_after_failure_and_checkpoint_pruning(
    tmp_path: Path, file_store: Store, shrunk_settings, monkeypatch: pytest.MonkeyPatch, recipe_settings: dict
) -> None:
    store = file_store
    make_demo_dataset(store, tmp_path, per_class=16, size=SIZE)
    settings = _settings(shrunk_settings, store, epochs=4, checkpoint_every=1, max_steps_per_epoch=1, **recipe_settings)
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
    if recipe_settings:  # the best epoch's weights travel with the checkpoints; the history replays the schedule
        assert store.read_marker(join_key(checkpoints, "epoch-0003")).outputs.keys() >= {"best_weights.npz"}
        np.testing.assert_allclose(history["val_loss"].to_numpy()[:3], [row["val_loss"] for row in state["history"]])
    metrics = store.get_json(join_key(prefix, "metrics.json"))
    assert metrics["epochs_trained"] == 4
    assert metrics["train_time_s"] == pytest.approx(history["seconds"].sum())
    # Checkpoints survive the publish of the final output (preserve=("checkpoints",)).
    assert store.read_marker(join_key(checkpoints, "epoch-0003")) is not None


def test_paper_merge_records_a_contaminated_test_set(tmp_path: Path, file_store: Store, shrunk_settings) -> None:
    store = file_store
    make_demo_dataset(store, tmp_path, per_class=16, size=SIZE)
    for class_name in CLASS_NAMES:
        write_synthetic(store, "r1", class_name, count=10)
    train_classifier.run(_settings(shrunk_settings, store, condition="augmented", protocol="paper-merge", seed=3))
    prefix = classifier_prefix("r1", "augmented", "custom_cnn", 3)
    metrics = store.get_json(join_key(prefix, "metrics.json"))
    predictions = _read_csv(store, join_key(prefix, "predictions.csv"))
    assert metrics["split_strategy"] == "paper-merge" and metrics["dataset_split_strategy"] == "patient"
    assert metrics["test_contaminated"] is True and metrics["counts"]["test_synthetic"] > 0
    assert predictions["image_id"].str.startswith("syn-").sum() == metrics["counts"]["test_synthetic"]
    # Stratified 80/20 of the pooled 32 real + 20 synthetic images.
    assert metrics["n"] == round(0.2 * 26) * 2
    assert predictions["image_id"].tolist() == sorted(predictions["image_id"])


def test_augmented_needs_both_synthetic_outputs(tmp_path: Path, file_store: Store, shrunk_settings) -> None:
    store = file_store
    make_demo_dataset(store, tmp_path, per_class=16, size=SIZE)
    write_synthetic(store, "r1", "NORMAL")
    with pytest.raises(DatasetError) as error:
        train_classifier.run(_settings(shrunk_settings, store, condition="augmented"))
    message = str(error.value)
    assert "runs/r1/synthetic/PNEUMONIA" in message and "synthetic/NORMAL" not in message


def test_collapsed_model_is_flagged_and_logged(
    tmp_path: Path, file_store: Store, shrunk_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = file_store
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
        result = train_classifier.run(_settings(shrunk_settings, store))
    assert result["collapsed"] is True
    metrics = store.get_json(join_key(classifier_prefix("r1", "baseline", "custom_cnn", 0), "metrics.json"))
    assert metrics["collapsed"] is True and metrics["collapsed_to"] == "PNEUMONIA"
    assert metrics["specificity"] == 0.0 and metrics["sensitivity"] == 1.0
    warnings = [entry for entry in logs if entry["event"] == "model_collapsed"]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"
    assert warnings[0]["collapsed_to"] == "PNEUMONIA"
    # No convolutional block to explain: committed without a Grad-CAM panel, and said so.
    marker = store.require_committed(classifier_prefix("r1", "baseline", "custom_cnn", 0))
    assert not GRADCAM_OUTPUTS & set(marker.outputs)
    skipped = [entry for entry in logs if entry["event"] == "gradcam_skipped"]
    assert len(skipped) == 1 and "no convolutional layer" in skipped[0]["reason"]


def test_gradcam_panels_reach_the_report(
    tmp_path: Path, file_store: Store, shrunk_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cxrcore.report import figures
    from cxrcore.report.job import run as report

    store = file_store
    make_demo_dataset(store, tmp_path, per_class=16, size=SIZE)
    train_classifier.run(_settings(shrunk_settings, store, explain_examples=1))
    train_classifier.run(_settings(shrunk_settings, store, model="vgg16", explain_examples=0))
    explained = classifier_prefix("r1", "baseline", "custom_cnn", 0)
    predictions = _read_csv(store, join_key(explained, "predictions.csv"))
    info = _check_gradcam(store, explained, predictions, per_outcome=1, layer="conv_3")
    assert not GRADCAM_OUTPUTS & set(store.require_committed(classifier_prefix("r1", "baseline", "vgg16", 0)).outputs)

    monkeypatch.setattr(figures, "_png", lambda figure: b"\x89PNG\r\n\x1a\n stand-in")  # only the panels matter
    assert report(shrunk_settings(ReportSettings, store=store))["status"] == "created"
    prefix = report_prefix("r1")
    figure = "figures/gradcam_baseline_custom_cnn_seed-0.png"
    assert store.get_bytes(join_key(prefix, figure)) == store.get_bytes(join_key(explained, GRADCAM_PANEL_FILE))
    page = store.get_bytes(join_key(prefix, "index.html")).decode()
    markdown = store.get_bytes(join_key(prefix, "report.md")).decode()
    section = page.split('<section id="explanations">')[1].split("</section>")[0]
    assert "<h2>Explanations (Grad-CAM)</h2>" in section and "warm (red, yellow)" in section
    assert section.count("<img") == 1 and "data:image/png;base64," in section
    assert "gradcam_baseline_custom_cnn_seed-0.png" in section and "Grad-CAM at conv_3" in section
    assert "not available for: VGG16 (baseline)" in section
    assert "## Explanations (Grad-CAM)" in markdown and f"]({figure})" in markdown
    assert "not available for: VGG16 (baseline)" in markdown
    (entry,) = store.get_json(join_key(prefix, "metrics.json"))["explanations"]
    assert entry["figure"] == figure and entry["cells"] == info["cells"] and entry["layer"] == "conv_3"


def test_pure_helpers() -> None:
    assert train_classifier.class_weights(np.array([0, 1, 1, 1]), "none") is None
    assert train_classifier.class_weights(np.array([0, 1, 1, 1]), "balanced") == {0: 2.0, 1: 4 / 6}
    with pytest.raises(ValueError, match="both classes"):
        train_classifier.class_weights(np.array([1, 1]), "balanced")
    expected = -np.mean([np.log(0.9), np.log(0.8)])
    assert train_classifier.binary_cross_entropy([1, 0], [0.9, 0.2]) == pytest.approx(expected)
    assert np.isfinite(train_classifier.binary_cross_entropy([1, 0], [0.0, 1.0]))


# ---------------------------------------------------------------------------------------------------- the recipe
#: Settings of the generalisation recipe as the smoke/demo/cpu profiles pass them (validation large enough to
#: hold both classes of the 16-per-class demo set).
RECIPE = {
    "augment": True,
    "class_weight": "balanced",
    "validation_fraction": 0.3,
    "early_stopping_patience": 1,
    "lr_schedule": "cosine",
    "target_sensitivity": 0.9,
}


def _manifest(patients: list[tuple[str, str, int, str]]) -> pd.DataFrame:
    """Rows of ``(patient_id, class, images, split)``: the manifest columns assemble_training_data reads."""
    rows = []
    for patient, class_name, count, split in patients:
        for image in range(count):
            image_id = f"{patient}-{image}"
            rows.append({"image_id": image_id, "sha256": sha256_bytes(image_id.encode()), "class": class_name,
                         "label": CLASS_NAMES.index(class_name), "patient_id": patient, "split": split})
    return pd.DataFrame(rows)


# 20 NORMAL and 20 PNEUMONIA patients with 1-3 images; "shared" patients have images in train and in test
# (the paper's pooled split does that), and must never be picked for validation.
_PATIENTS = [
    (f"{class_name[0]}{index:02d}", class_name, 1 + index % 3, "test" if index % 5 == 0 else "train")
    for class_name in CLASS_NAMES
    for index in range(20)
] + [("shared-n", "NORMAL", 2, "train"), ("shared-n", "NORMAL", 1, "test"),
     ("shared-p", "PNEUMONIA", 2, "train"), ("shared-p", "PNEUMONIA", 1, "test")]


@pytest.mark.parametrize(
    ("protocol", "synthetic_per_class", "fraction", "seed"),
    [("clean", 0, 0.1, 0), ("clean", 5, 0.25, 3), ("paper-merge", 5, 0.2, 1), ("clean", 0, 0.0, 0)],
    ids=["clean", "clean-synthetic", "paper-merge", "off"],
)
def test_validation_split_is_patient_disjoint_from_train_and_test(protocol, synthetic_per_class, fraction, seed):
    manifest = _manifest(_PATIENTS)
    manifest["image_id"] = manifest["image_id"] + manifest.groupby("image_id").cumcount().astype(str)
    images = np.zeros((len(manifest), 8, 8), dtype=np.uint8)
    synthetic = []
    for class_name in CLASS_NAMES if synthetic_per_class else ():
        rows = _manifest([(f"synthetic-{class_name}-{i}", class_name, 1, "train") for i in range(synthetic_per_class)])
        synthetic.append((rows, np.full((len(rows), 8, 8), 255, dtype=np.uint8)))
    data = train_classifier.assemble_training_data(
        manifest, images, synthetic, protocol=protocol, dataset_split_strategy="patient", seed=seed, image_size=8,
        validation_fraction=fraction,
    )
    patient_of = dict(zip(manifest["image_id"], manifest["patient_id"], strict=True))
    validation_patients = {patient_of[image_id] for image_id in data.validation_ids}
    test_patients = {patient_of.get(image_id, image_id) for image_id in data.test_ids}
    assert not set(data.validation_ids) & set(data.test_ids)
    assert not validation_patients & test_patients
    assert data.validation_patients == {"patients": len(validation_patients), "in_train": 0, "in_test": 0}
    assert all(not image_id.startswith("synthetic") for image_id in data.validation_ids)
    assert (data.validation_images == 0).all()  # real images only
    total = len(manifest) + 2 * synthetic_per_class
    assert len(data.train_labels) + len(data.validation_labels) + len(data.test_labels) == total
    assert data.counts["validation"] == len(data.validation_ids) == len(data.validation_labels)
    assert data.validation_ids == sorted(data.validation_ids)
    if fraction == 0.0:
        assert data.validation_ids == [] and data.counts["validation_by_class"] == {"NORMAL": 0, "PNEUMONIA": 0}
    else:
        assert set(data.counts["validation_by_class"].values()) != {0}  # stratified: both classes
        assert "shared-n" not in validation_patients and "shared-p" not in validation_patients
    again = train_classifier.assemble_training_data(
        manifest, images, synthetic, protocol=protocol, dataset_split_strategy="patient", seed=seed, image_size=8,
        validation_fraction=fraction,
    )
    assert again.validation_ids == data.validation_ids  # deterministic for a seed


def test_an_empty_validation_split_is_refused() -> None:
    pool = _manifest([("a", "NORMAL", 1, "train"), ("b", "PNEUMONIA", 1, "test")]).assign(synthetic=False)
    with pytest.raises(ValueError, match="validation split is empty"):
        carve_validation(pool, np.array([0]), np.array([1]), fraction=0.1, seed=0)
    with pytest.raises(ValueError, match="validation_fraction=1.0"):
        carve_validation(pool, np.array([0]), np.array([1]), fraction=1.0, seed=0)


@pytest.mark.parametrize(
    ("labels", "probabilities", "target", "expected"),
    [
        # positives sorted: 0.9 0.8 0.7 0.6 0.2; 0.8 of 5 needs 4 of them -> the 4th largest, 0.6.
        ([1, 1, 1, 1, 1, 0, 0], [0.9, 0.8, 0.7, 0.6, 0.2, 0.65, 0.1], 0.8, 0.6),
        ([1, 1, 1, 1, 1, 0, 0], [0.9, 0.8, 0.7, 0.6, 0.2, 0.65, 0.1], 1.0, 0.2),  # every positive
        ([1, 1, 1, 1, 1, 0, 0], [0.9, 0.8, 0.7, 0.6, 0.2, 0.65, 0.1], 0.1, 0.9),  # at least one positive
        ([1] * 20, [index / 20 for index in range(20)], 0.95, 0.05),  # 0.95 * 20 = 19 positives, not 20
        ([1, 1, 0], [1.0, 1.0, 0.5], 0.95, 1.0),  # saturated probabilities
        ([0, 0], [0.3, 0.4], 0.95, None),  # no positive: nothing to reach
    ],
    ids=["0.8", "all", "one", "float-rounding", "saturated", "no-positive"],
)
def test_threshold_is_the_highest_that_keeps_the_target_sensitivity(labels, probabilities, target, expected):
    threshold = recipe.choose_threshold(np.array(labels), np.array(probabilities), target)
    assert threshold == (None if expected is None else pytest.approx(expected))
    if threshold is not None:
        point = recipe.operating_point(np.array(labels), np.array(probabilities), threshold)
        assert point["sensitivity"] >= target
        above = [p for p, label in zip(probabilities, labels, strict=True) if label == 1 and p > threshold]
        if above:  # any higher threshold misses the target
            higher = recipe.operating_point(np.array(labels), np.array(probabilities), min(above))
            assert higher["sensitivity"] < target


def test_operating_point_on_hand_made_probabilities() -> None:
    point = recipe.operating_point(np.array([0, 0, 1, 1]), np.array([0.2, 0.6, 0.55, 0.9]), 0.5)
    assert point["confusion_matrix"] == [[1, 1], [0, 2]]
    assert (point["accuracy"], point["sensitivity"], point["specificity"]) == (0.75, 1.0, 0.5)
    point = recipe.operating_point(np.array([0, 0, 1, 1]), np.array([0.2, 0.6, 0.55, 0.9]), 0.7)
    assert (point["accuracy"], point["sensitivity"], point["specificity"]) == (0.75, 0.5, 1.0)


_LOSSES = [{"val_loss": loss} for loss in (1.0, 0.8, 0.9, 0.85, 0.95, 0.7)]


@pytest.mark.parametrize(
    ("schedule", "epoch", "epochs", "history", "expected"),
    [
        ("constant", 5, 10, [], 1e-3),
        ("cosine", 0, 10, [], 1e-3),
        ("cosine", 9, 10, [], 1e-5),
        ("cosine", 0, 1, [], 1e-3),
        ("plateau", 2, 10, _LOSSES, 1e-3),  # improving so far
        ("plateau", 4, 10, _LOSSES, 5e-4),  # two: halved
        ("plateau", 6, 10, _LOSSES, 5e-4),  # improved at epoch 6; halved once more only after two more
    ],
)
def test_learning_rate_schedules(schedule, epoch, epochs, history, expected):
    assert recipe.learning_rate_for_epoch(schedule, 1e-3, epoch, epochs, history) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("history", "patience", "best", "stop"),
    [(_LOSSES[:3], 1, 2, True), (_LOSSES[:3], 2, 2, False), (_LOSSES[:5], 3, 2, True), (_LOSSES, 3, 6, False),
     (_LOSSES[:5], 0, 2, False), ([{"val_loss": 0.5}, {"val_loss": 0.5}], 1, 1, True)],
)
def test_best_epoch_and_early_stopping(history, patience, best, stop):
    assert recipe.best_epoch(history) == best
    assert recipe.should_stop(history, patience) is stop


#: AUC saturates before the loss does: epoch 2 ranks best, epoch 4 ties it on AUC and wins on the lower loss.
_AUCS = [{"val_loss": loss, "val_auc": auc}
         for loss, auc in ((0.9, 0.80), (0.7, 0.95), (0.5, 0.93), (0.45, 0.95), (0.4, 0.90), (0.3, float("nan")))]


@pytest.mark.parametrize(
    ("history", "patience", "best", "stop"),
    [(_AUCS[:2], 1, 2, False), (_AUCS[:3], 1, 2, True), (_AUCS[:4], 1, 4, False), (_AUCS, 2, 4, True),
     (_AUCS[:5], 2, 4, False)],
)
def test_best_epoch_by_validation_auc(history, patience, best, stop):
    assert recipe.best_epoch(history, "val_auc") == best
    assert recipe.should_stop(history, patience, "val_auc") is stop
    # The loss alone would have picked the last finite-loss epoch.
    assert recipe.best_epoch(history) == len(history)


#: The demo's custom CNN (seed 1, 2026-12-01): epoch 5 ranks best by AUC while calling every validation image
#: PNEUMONIA at 0.5 (its test images too: flagged collapsed); epoch 6 ranks a little worse and calls both classes.
_SHARES = [{"val_loss": loss, "val_auc": auc, "val_positive_share": share}
           for loss, auc, share in ((0.692, 0.773, 1.0), (0.689, 0.825, 0.5), (0.682, 0.837, 0.9),
                                    (0.630, 0.835, 0.7), (0.684, 0.858, 1.0), (0.613, 0.845, 0.6))]


@pytest.mark.parametrize(
    ("history", "metric", "best"),
    [
        (_SHARES, "val_auc", 6),  # epoch 5's AUC is the highest, but it collapsed on validation
        (_SHARES[:5], "val_auc", 3),
        (_SHARES[:1], "val_auc", 1),  # every epoch collapsed: the best of them
        ([{**_SHARES[0], "val_positive_share": 0.0}, _SHARES[4]], "val_auc", 2),  # both collapsed (either class)
        ([{**_SHARES[4], "val_positive_share": 0.979}, _SHARES[5]], "val_auc", 1),  # 97.9% is not collapsed
        ([{**_SHARES[4], "val_positive_share": 0.021}, _SHARES[5]], "val_auc", 1),
        ([{**_SHARES[4], "val_positive_share": 0.02}, _SHARES[5]], "val_auc", 2),  # 98% NORMAL is
        ([{"val_loss": 0.3, "val_auc": 0.9, "val_positive_share": 1.0}, {"val_loss": 0.6, "val_auc": 0.8}],
         "val_loss", 2),  # the loss metric too; a row without the column (older checkpoints) counts as usable
        ([{"val_loss": 0.3, "val_auc": 0.9}, {"val_loss": 0.6, "val_auc": 0.8}], "val_loss", 1),
    ],
)
def test_a_collapsed_epoch_is_chosen_only_when_every_epoch_collapsed(history, metric, best):
    assert recipe.best_epoch(history, metric) == best


def test_collapsed_epochs_do_not_count_as_improvements():
    # AUC 0.858 at the collapsed epoch 5 is no improvement on epoch 3 (0.837): early stopping counts from epoch 3
    # until epoch 6 beats it, and plateau halves the rate after epochs 4 and 5 failed to.
    assert recipe.should_stop(_SHARES[:5], 2, "val_auc") is True
    assert recipe.should_stop(_SHARES, 2, "val_auc") is False
    assert recipe.learning_rate_for_epoch("plateau", 1e-3, 5, 10, _SHARES, "val_auc") == pytest.approx(5e-4)


def test_plateau_by_validation_auc_and_bad_metric():
    # AUC improves at epochs 1, 2 and 4 (tie broken by the loss), then epochs 5 and 6 are worse: halved once.
    assert recipe.learning_rate_for_epoch("plateau", 1e-3, 6, 10, _AUCS, "val_auc") == pytest.approx(5e-4)
    assert recipe.learning_rate_for_epoch("plateau", 1e-3, 4, 10, _AUCS, "val_auc") == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="selection_metric must be one of val_loss, val_auc"):
        recipe.best_epoch(_AUCS, "accuracy")
    with pytest.raises(ValueError, match="needs 'val_auc'"):
        recipe.best_epoch(_LOSSES, "val_auc")


@pytest.mark.parametrize("field", ["early_stopping_patience", "lr_schedule"])
def test_recipe_settings_that_need_a_validation_split(field):
    value = {"early_stopping_patience": 2, "lr_schedule": "plateau"}[field]
    with pytest.raises(ValueError, match=f"{field} needs a validation split"):
        TrainClassifierSettings(run_id="r1", model="custom_cnn", condition="baseline", **{field: value})
    TrainClassifierSettings(run_id="r1", model="custom_cnn", condition="baseline", validation_fraction=0.1, **{field: value})


@pytest.mark.parametrize("model", ["custom_cnn", "vgg16"])
def test_recipe_end_to_end_chooses_on_validation_only(
    file_store: Store, tmp_path: Path, shrunk_settings, monkeypatch: pytest.MonkeyPatch, model: str
) -> None:
    make_demo_dataset(file_store, tmp_path, per_class=16, size=SIZE)
    settings = shrunk_settings(TrainClassifierSettings, model=model, condition="baseline", epochs=3, **RECIPE)
    scored: list[np.ndarray] = []
    chosen_on: list[tuple[np.ndarray, np.ndarray]] = []
    original_score, original_choose = classifier_training.score, classifier_training.choose_threshold

    def recording_score(model_, images, settings_):
        scored.append(images.copy())
        return original_score(model_, images, settings_)

    def recording_choose(labels, probabilities, target):
        chosen_on.append((np.asarray(labels).copy(), np.asarray(probabilities).copy()))
        return original_choose(labels, probabilities, target)

    monkeypatch.setattr(classifier_training, "score", recording_score)
    monkeypatch.setattr(classifier_training, "choose_threshold", recording_choose)
    assert train_classifier.run(settings)["status"] == "created"

    dataset = load_dataset(file_store, "demo")
    expected = train_classifier.assemble_training_data(
        dataset.manifest, dataset.images, [], protocol="clean", dataset_split_strategy="patient", seed=0,
        image_size=SIZE, validation_fraction=RECIPE["validation_fraction"],
    )
    prefix = classifier_prefix("r1", "baseline", model, 0)
    metrics = file_store.get_json(join_key(prefix, "metrics.json"))
    history = _read_csv(file_store, join_key(prefix, "history.csv"))
    predictions = _read_csv(file_store, join_key(prefix, "predictions.csv"))

    # Epoch selection saw the validation images only; the threshold was chosen on the final model's validation
    # predictions; no test image id is a validation image id.
    assert not set(expected.validation_ids) & set(predictions["image_id"])
    for images in scored[: metrics["epochs_trained"]]:
        np.testing.assert_array_equal(images, expected.validation_images)
    (labels, probabilities), = chosen_on
    np.testing.assert_array_equal(labels, expected.validation_labels)
    saved = load_model_uri(file_store.url(prefix))
    np.testing.assert_allclose(predict_pixels(saved, expected.validation_images), probabilities, atol=1e-5)

    assert list(history.columns) == [
        "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "val_auc", "val_positive_share", "learning_rate",
        "seconds",
    ]
    # The lowest validation loss among the epochs whose validation predictions did not collapse (all, if all did).
    usable = history[(history["val_positive_share"] < 0.98) & (history["val_positive_share"] > 0.02)]
    assert metrics["best_epoch"] == int((usable if len(usable) else history)["val_loss"].idxmin()) + 1
    assert metrics["stopped_early"] == (metrics["epochs_trained"] < 3)
    validation = metrics["validation"]
    assert validation["n"] == len(expected.validation_ids) and validation["patients_in_test"] == 0
    assert validation["patients_in_train"] == 0
    threshold = metrics["chosen_threshold"]
    assert threshold == pytest.approx(recipe.choose_threshold(labels, probabilities, RECIPE["target_sensitivity"]))
    assert validation["at_chosen_threshold"]["sensitivity"] >= RECIPE["target_sensitivity"]
    test_labels, test_probabilities = predictions["label"].to_numpy(), predictions["probability"].to_numpy()
    for key, at in (("at_default_threshold", 0.5), ("at_chosen_threshold", threshold)):
        point = metrics[key]
        assert point["threshold"] == pytest.approx(at) and point["n"] == len(predictions)
        assert point == recipe.operating_point(test_labels, test_probabilities, at)
    # The metrics at 0.5 keep their names and meaning.
    assert metrics["threshold"] == 0.5 and metrics["accuracy"] == metrics["at_default_threshold"]["accuracy"]
    assert metrics["sensitivity"] == metrics["at_default_threshold"]["sensitivity"]
    for key, value in RECIPE.items():
        assert metrics[key] == value
    if model != "custom_cnn":  # weights=none: the backbone trained end to end, not frozen random features
        assert metrics["params_trainable"] == metrics["params_total"]  # VGG16 has no BatchNorm statistics

    # An identical rerun is a no-op.
    marker = file_store.read_marker(prefix)
    assert train_classifier.run(settings)["status"] == "unchanged"
    assert file_store.read_marker(prefix) == marker
