"""``cxr external-test``: every committed classifier of a run scored on an external set, and its report section."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from cxrcore.config import ExternalTestSettings, external_sources  # noqa: E402
from cxrcore.data.demo import write_demo_dataset  # noqa: E402
from cxrcore.layout import classifier_prefix, external_prefix, parse_external_prefix  # noqa: E402
from cxrcore.metrics import binary_metrics  # noqa: E402
from cxrcore.models import build_custom_cnn  # noqa: E402
from cxrcore.report.job import build_report  # noqa: E402
from cxrcore.steps.external_test import ExternalTestError, external_dataset_name, external_metrics, run  # noqa: E402
from cxrcore.storage import open_store  # noqa: E402

SIZE = 32
RUN_ID = "r1"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained custom CNN at 32 px, saved like cxr-train-classifier's ``model.keras``."""
    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("model") / "model.keras"
    build_custom_cnn(SIZE).save(path)
    keras.backend.clear_session()
    return path


@pytest.fixture
def store_uri(tmp_path: Path, model_file: Path) -> str:
    """A file store with one baseline and one augmented classifier output of run ``r1`` committed."""
    store = open_store(str(tmp_path / "store"))
    labels = np.array([0] * 10 + [1] * 10)
    probabilities = np.linspace(0.01, 0.99, 20)
    internal = {**binary_metrics(labels, probabilities), "at_chosen_threshold": {"threshold": 0.4}}
    predictions = pd.DataFrame({"image_id": [f"i{n:02d}" for n in range(20)], "label": labels,
                                "probability": probabilities})
    for condition in ("baseline", "augmented"):
        with store.commit(classifier_prefix(RUN_ID, condition, "custom_cnn", 0), inputs={"c": condition}) as tx:
            tx.put_bytes("model.keras", model_file.read_bytes())
            tx.put_json("metrics.json", internal)
            tx.put_bytes("predictions.csv", predictions.to_csv(index=False).encode())
    return str(tmp_path / "store")


@pytest.fixture(scope="module")
def external_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("external") / "demo"
    write_demo_dataset(folder, per_class=4, size=40, seed=3)
    return folder


def test_sources_are_one_location_or_a_json_list():
    assert external_sources(" /data/a ") == ["/data/a"]
    assert external_sources('["s3://b/x/", "/data/b.zip"]') == ["s3://b/x/", "/data/b.zip"]
    for bad in ("", "[]", '["", "/a"]', "[1]"):
        with pytest.raises(ValueError, match="Received: source="):
            external_sources(bad)


def test_external_keys_round_trip():
    prefix = external_prefix(RUN_ID, "external-abc", "augmented", "vgg16", 2)
    assert prefix == "runs/r1/external/external-abc/augmented/vgg16/seed-2"
    parsed = parse_external_prefix(prefix + "/")
    assert (parsed.dataset, parsed.classifier.label()) == ("external-abc", "augmented/vgg16/seed-2")
    assert parsed.prefix == prefix
    with pytest.raises(ValueError, match="Received: key="):
        parse_external_prefix("runs/r1/external/external-abc/other/vgg16/seed-2")


def test_external_metrics_keep_internal_numbers_apart():
    labels = np.array([0, 0, 1, 1])
    metrics = external_metrics(labels, np.array([0.1, 0.6, 0.45, 0.9]), {"accuracy": 0.9, "auc": 0.95, "x": 1}, 0.4)
    assert metrics["accuracy"] == 0.5 and metrics["at_chosen_threshold"]["accuracy"] == 0.75
    assert metrics["internal"] == {"n": None, "accuracy": 0.9, "accuracy_ci95": None, "auc": 0.95}
    assert external_metrics(labels, np.full(4, 0.5), {}, None)["at_chosen_threshold"] is None


def test_every_classifier_is_scored_on_the_external_set_once(store_uri: str, external_folder: Path):
    settings = ExternalTestSettings(store=store_uri, run_id=RUN_ID, source=json.dumps([str(external_folder)]),
                                    image_size=SIZE)
    first = run(settings)
    assert first["count"] == 2 and {o["status"] for o in first["outputs"]} == {"created"}
    dataset = external_dataset_name(str(external_folder))
    assert first["datasets"][0]["name"] == dataset and first["datasets"][0]["images"] == 8
    store = open_store(store_uri)
    for condition in ("baseline", "augmented"):
        prefix = external_prefix(RUN_ID, dataset, condition, "custom_cnn", 0)
        metrics = store.get_json(prefix + "/metrics.json")
        assert metrics["n"] == 8 and len(metrics["confusion_matrix"]) == 2 and 0 <= metrics["accuracy"] <= 1
        assert {"sensitivity", "specificity", "auc", "accuracy_ci95"} <= set(metrics)
        assert metrics["internal"]["accuracy"] == 1.0 and metrics["at_chosen_threshold"]["threshold"] == 0.4
        predictions = pd.read_csv(io.BytesIO(store.get_bytes(prefix + "/predictions.csv")))
        assert len(predictions) == 8 and sorted(predictions["label"].tolist()) == [0] * 4 + [1] * 4
    again = run(settings)
    assert {o["status"] for o in again["outputs"]} == {"unchanged"}

    # The report gains the section, with the internal numbers labelled and McNemar on the external images.
    assert build_report(store, RUN_ID, title="t")["status"] == "created"
    markdown = store.get_bytes("runs/r1/report/report.md").decode()
    page = store.get_bytes("runs/r1/report/index.html").decode()
    assert "## External test" in markdown and '<section id="external">' in page
    section = markdown.split("## External test")[1].split("\n## ")[0]
    assert f"External test {dataset}" in section and "Internal accuracy %" in section and "100.00" in section
    assert "Baseline vs augmented on the same external images" in section and "p (McNemar)" in section


def test_a_report_without_external_outputs_has_no_section(store_uri: str):
    store = open_store(store_uri)
    build_report(store, RUN_ID, title="t")
    assert "External test" not in store.get_bytes("runs/r1/report/report.md").decode()


def test_a_run_without_classifiers_is_refused(tmp_path: Path, external_folder: Path):
    settings = ExternalTestSettings(store=str(tmp_path / "empty"), run_id=RUN_ID, source=str(external_folder))
    with pytest.raises(ExternalTestError, match="no committed classifier"):
        run(settings)

