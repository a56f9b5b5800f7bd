"""The classifiers' validation patients never reach the DCGAN, and a classifier checks that its GANs left them out.

The validation carve of a ``clean`` classifier depends on the real dataset, ``validation_fraction`` and
``validation_seed`` only, so ``cxr-gan-train`` with the same two settings leaves exactly those images out;
``gan.json`` records the digest of the split it left out, ``cxr-synthesize`` carries it into the synthetic
dataset.json, and ``cxr-train-classifier`` compares it with its own split (``metrics.json``
``validation.seen_by_gan``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrcore.config import GanTrainSettings, SynthesizeSettings, TrainClassifierSettings, identity
from cxrcore.data.dataset import load_dataset
from cxrcore.layout import classifier_prefix, gan_prefix
from cxrcore.storage import Store, join_key
from cxrcore.training.classifier_data import (
    assemble_training_data,
    gan_holdout_status,
    validation_digest,
    validation_image_ids,
)
from tests.helpers import make_demo_dataset

SIZE = 32


def _synthetic(class_name: str, count: int) -> tuple[pd.DataFrame, np.ndarray]:
    label = 0 if class_name == "NORMAL" else 1
    manifest = pd.DataFrame(
        {
            "image_id": [f"syn-{class_name}-{i}" for i in range(count)],
            "sha256": [f"{class_name}{i:060d}" for i in range(count)],
            "class": class_name,
            "label": label,
            "patient_id": f"synthetic-{class_name}",
            "split": "train",
        }
    )
    return manifest, np.full((count, SIZE, SIZE), 100 + label, dtype=np.uint8)


@pytest.fixture
def demo(file_store: Store, tmp_path: Path) -> Store:
    make_demo_dataset(file_store, tmp_path, per_class=16, size=SIZE)
    return file_store


@pytest.mark.parametrize("fraction", [0.2, 0.35])
@pytest.mark.parametrize("validation_seed", [0, 7])
def test_the_gan_holdout_is_the_classifiers_carve_for_every_classifier_seed(demo, fraction, validation_seed):
    dataset = load_dataset(demo, "demo")
    expected = validation_image_ids(dataset.manifest, fraction=fraction, seed=validation_seed)
    assert expected and expected == sorted(expected)
    synthetic = [_synthetic("NORMAL", 5), _synthetic("PNEUMONIA", 3)]
    for seed, extra in ((0, []), (3, synthetic), (11, synthetic)):
        data = assemble_training_data(
            dataset.manifest, dataset.images, extra, protocol="clean", dataset_split_strategy="patient",
            seed=seed, image_size=SIZE, validation_fraction=fraction, validation_seed=validation_seed,
        )
        assert sorted(data.validation_ids) == expected, seed
    assert validation_image_ids(dataset.manifest, fraction=0.0, seed=validation_seed) == []


def test_validation_digest_is_order_free_and_none_when_empty():
    assert validation_digest(["b", "a"]) == validation_digest(["a", "b"]) != validation_digest(["a"])
    assert validation_digest([]) is None


@pytest.mark.parametrize(
    ("holdouts", "expected"),
    [
        ({"NORMAL": {"digest": "D"}, "PNEUMONIA": {"digest": "D"}}, {"NORMAL": "held-out", "PNEUMONIA": "held-out"}),
        ({"NORMAL": {"digest": "other"}, "PNEUMONIA": {"digest": None}}, {"NORMAL": "seen", "PNEUMONIA": "seen"}),
        ({"NORMAL": None, "PNEUMONIA": {"digest": "D"}}, {"NORMAL": "unknown", "PNEUMONIA": "held-out"}),
        ({}, {}),
    ],
)
def test_gan_holdout_status(holdouts, expected):
    ids = ["v1", "v2"]
    digest = validation_digest(ids)
    resolved = {
        name: None if record is None else {"digest": digest if record["digest"] == "D" else record["digest"]}
        for name, record in holdouts.items()
    }
    assert gan_holdout_status(ids, resolved) == expected
    assert gan_holdout_status([], resolved) == {}  # no validation split, nothing to leak


def test_validation_settings_change_the_gan_identity():
    base = GanTrainSettings(run_id="r1", class_name="NORMAL")
    assert identity(base)["validation_fraction"] == 0.0
    assert identity(base) != identity(GanTrainSettings(run_id="r1", class_name="NORMAL", validation_fraction=0.2))
    assert identity(GanTrainSettings(run_id="r1", class_name="NORMAL", validation_fraction=0.2)) != identity(
        GanTrainSettings(run_id="r1", class_name="NORMAL", validation_fraction=0.2, validation_seed=1)
    )


def test_gan_leaves_the_validation_patients_out_and_the_classifier_checks_it(
    demo, shrunk_settings, capsys: pytest.CaptureFixture[str]
):
    from cxrcore.steps import gan_train as gan_step
    from cxrcore.steps import synthesize as synth_step
    from cxrcore.steps import train_classifier as clf_step

    dataset = load_dataset(demo, "demo")
    held_out = validation_image_ids(dataset.manifest, fraction=0.25, seed=0)
    train = dataset.manifest[dataset.manifest["split"] == "train"]
    for class_name in ("NORMAL", "PNEUMONIA"):
        settings = shrunk_settings(GanTrainSettings, class_name=class_name, quality_every=10_000,
                                   validation_fraction=0.25)
        summary = gan_step.run(settings)
        info = demo.get_json(join_key(gan_prefix("r1", class_name), "gan.json"))
        of_class = train[train["class"] == class_name]
        left_out = int(of_class["image_id"].isin(held_out).sum())
        assert left_out > 0
        assert summary["train_images"] == info["dataset"]["train_images"] == len(of_class) - left_out
        assert info["dataset"]["validation_holdout"] == {
            "fraction": 0.25, "seed": 0, "images": len(held_out), "images_of_class": left_out,
            "digest": validation_digest(held_out),
        }
        synth_step.run(shrunk_settings(SynthesizeSettings, class_name=class_name, flagged_gan="use"))

    recipe = {"validation_fraction": 0.25, "early_stopping_patience": 1}
    clf_step.run(shrunk_settings(TrainClassifierSettings, model="custom_cnn", condition="augmented", **recipe))
    metrics = demo.get_json(join_key(classifier_prefix("r1", "augmented", "custom_cnn", 0), "metrics.json"))
    assert metrics["validation"]["seen_by_gan"] == {"NORMAL": "held-out", "PNEUMONIA": "held-out"}
    # The classifier seed does not move the validation split (the GANs are shared by every seed).
    clf_step.run(shrunk_settings(TrainClassifierSettings, model="custom_cnn", condition="augmented", seed=1, **recipe))
    metrics = demo.get_json(join_key(classifier_prefix("r1", "augmented", "custom_cnn", 1), "metrics.json"))
    assert metrics["validation"]["seen_by_gan"] == {"NORMAL": "held-out", "PNEUMONIA": "held-out"}

    # Another carve than the GANs': said in metrics.json and in a warning.
    capsys.readouterr()
    clf_step.run(
        shrunk_settings(TrainClassifierSettings, model="custom_cnn", condition="augmented", seed=2,
                        validation_seed=5, **recipe)
    )
    metrics = demo.get_json(join_key(classifier_prefix("r1", "augmented", "custom_cnn", 2), "metrics.json"))
    assert metrics["validation"]["seen_by_gan"] == {"NORMAL": "seen", "PNEUMONIA": "seen"}
    captured = capsys.readouterr()
    assert "validation_patients_seen_by_gan" in captured.out + captured.err
