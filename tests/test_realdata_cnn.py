"""Real-data check: the custom CNN on the Kaggle chest X-rays reaches the paper's accuracy on CPUs.

Imports ``../shared/data/chest_xray/train`` (NORMAL/ PNEUMONIA/) at the ``cpu`` profile's resolution (stored 64 px,
patient split so no patient is on both sides, seed 42), trains the Table 1 custom CNN at 64 px with the paper's
optimizer (Adam 1e-4, unweighted binary cross-entropy, batch 32) and asserts a test accuracy of at least 94% (the
paper reports 94.03% at 128 px on a split that leaks patients). The accuracy after each epoch of this recipe on
2 CPUs was 87.0%, 96.4%, 97.1%, 97.4%, 96.2%: five epochs leave a margin without overtraining the budget.

Run with ``pytest -m "slow and realdata" -s`` (about 10-25 minutes on 2 CPUs); skipped when the data is absent.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json
import time
from pathlib import Path

import pytest

from cxrcore.config import PrepareSettings, TrainClassifierSettings
from cxrcore.data.ingest import import_dataset
from cxrcore.layout import classifier_prefix
from cxrcore.storage import join_key, open_store

pytestmark = [pytest.mark.slow, pytest.mark.realdata, pytest.mark.timeout(45 * 60)]

DATA = Path(__file__).resolve().parents[2] / "shared/data/chest_xray/train"
IMAGE_SIZE = 64
EPOCHS = 5
ACCURACY_FLOOR = 0.94


@pytest.mark.skipif(not (DATA / "NORMAL").is_dir() or not (DATA / "PNEUMONIA").is_dir(),
                    reason=f"real chest X-rays not found at {DATA} (needs NORMAL/ and PNEUMONIA/)")
def test_custom_cnn_reaches_the_paper_accuracy_on_real_xrays(tmp_path: Path) -> None:
    from cxrcore.train_classifier import run

    started = time.monotonic()
    store = open_store((tmp_path / "store").as_uri())
    imported = import_dataset(
        store, PrepareSettings(source=str(DATA), name="chest-xray", image_size=IMAGE_SIZE, split="patient", seed=42)
    )
    import_seconds = time.monotonic() - started

    settings = TrainClassifierSettings(
        store=store.uri,
        run_id="realdata",
        dataset="chest-xray",
        dataset_version=imported.version,
        model="custom_cnn",
        condition="baseline",
        epochs=EPOCHS,
        image_size=IMAGE_SIZE,
        batch_size=32,
        weights="none",
        seed=0,
        checkpoint_every=EPOCHS,
    )
    result = run(settings)
    metrics = store.get_json(join_key(classifier_prefix("realdata", "baseline", "custom_cnn", 0), "metrics.json"))
    summary = {
        "accuracy": round(metrics["accuracy"], 4),
        "accuracy_ci95": [round(value, 4) for value in metrics["accuracy_ci95"]],
        "auc": round(metrics["auc"], 4),
        "sensitivity": round(metrics["sensitivity"], 4),
        "specificity": round(metrics["specificity"], 4),
        "f1_macro": round(metrics["f1_macro"], 4),
        "train_accuracy": round(metrics["train_accuracy"], 4),
        "test_loss": round(metrics["test_loss"], 4),
        "n_test": metrics["n"],
        "n_train": metrics["counts"]["train_real"],
        "train_time_s": round(metrics["train_time_s"], 1),
        "import_s": round(import_seconds, 1),
        "total_s": round(time.monotonic() - started, 1),
    }
    print("realdata_custom_cnn", json.dumps(summary))

    assert result["status"] == "created"
    assert metrics["patients_on_both_sides"] == 0 and metrics["split_strategy"] == "patient"
    assert metrics["collapsed"] is False
    assert metrics["accuracy"] >= ACCURACY_FLOOR, summary
