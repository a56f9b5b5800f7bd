"""The report job on planted, consistent outputs: sections, statistics, flags, figures, idempotence, errors."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrcore.layout import classifier_prefix, gan_prefix, report_prefix, synthetic_prefix
from cxrcore.metrics import binary_metrics, mcnemar
from cxrcore.report.job import NoClassifierOutputError, build_report
from cxrcore.report.paper import PAPER_TABLES, PAPER_TEST_SETS, paper_confusion_matrix
from cxrcore.report.render import SECTION_TITLES
from cxrcore.storage import Store, join_key

RUN_ID = "run-1"
DATASET = "demo"
VERSION = "v1"
MODELS = ("custom_cnn", "resnet50")
SEEDS = (0, 1)
N_TEST = 60
#: (condition, model) whose outputs predict PNEUMONIA for every image.
COLLAPSED = ("baseline", "resnet50")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HOSTILE = "<script>alert('x')</script>"


def _png(seed: int) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (24, 48), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def _labels() -> tuple[list[str], np.ndarray]:
    image_ids = [f"img-{index:03d}" for index in range(N_TEST)]
    labels = np.r_[np.zeros(20, dtype=int), np.ones(N_TEST - 20, dtype=int)]
    return image_ids, np.random.default_rng(7).permutation(labels)


def _probabilities(condition: str, model: str, seed: int, labels: np.ndarray) -> np.ndarray:
    if (condition, model) == COLLAPSED:
        return np.full(labels.size, 0.9) - np.random.default_rng(seed).random(labels.size) * 0.05
    rng = np.random.default_rng([{"baseline": 11, "augmented": 29}[condition], len(model), seed])
    signal = 1.0 if condition == "baseline" else 1.4
    logits = signal * (2 * labels - 1) + rng.normal(0.0, 1.0, labels.size)
    return (1.0 / (1.0 + np.exp(-logits))).round(4)


def _plant_classifier(store: Store, condition: str, model: str, seed: int, *, protocol: str = "clean") -> dict:
    image_ids, labels = _labels()
    probabilities = _probabilities(condition, model, seed, labels)
    metrics = binary_metrics(labels, probabilities)
    metrics.update(
        model=model,
        condition=condition,
        seed=seed,
        epochs=3,
        train_accuracy=0.9 + 0.01 * seed,
        test_loss=0.3 + 0.05 * seed + (0.1 if condition == "baseline" else 0.0),
        train_time_s=100.0 + 10 * seed,
        params_total=1000,
        params_trainable=900,
        dataset=DATASET,
        dataset_version=VERSION,
        split_strategy="patient",
        patients_on_both_sides=0,
        counts={"train_real": 240, "train_synthetic": 14 if condition == "augmented" else 0, "test_real": N_TEST,
                "test_synthetic": 0},
        protocol=protocol,
        optimizer="paper",
        image_size=32,
        learning_rate=1e-3 if model == "custom_cnn" else 1e-4,  # one rate per model (clf-lr as a JSON object)
        test_contaminated=protocol == "paper-merge",
    )
    predictions = pd.DataFrame({"image_id": image_ids, "label": labels, "probability": probabilities})
    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "loss": [0.7, 0.5, 0.4 - 0.01 * seed],
            "accuracy": [0.6, 0.75, 0.82],
            "val_loss": [0.72, 0.6, 0.55],
            "val_accuracy": [0.58, 0.7, 0.78],
        }
    )
    with store.commit(classifier_prefix(RUN_ID, condition, model, seed), inputs={"planted": True}) as tx:
        tx.put_json("metrics.json", metrics)
        tx.put_bytes("predictions.csv", predictions.sort_values("image_id").to_csv(index=False).encode())
        tx.put_bytes("history.csv", history.to_csv(index=False).encode())
    return {"labels": labels, "probabilities": probabilities, "metrics": metrics}


def _plant_dataset(store: Store) -> None:
    info = {
        "name": DATASET,
        "version": VERSION,
        "synthetic": True,
        "image_size": 32,
        "images": 300,
        "counts": {"NORMAL": 100, "PNEUMONIA": 200},
        "splits": {"train": {"NORMAL": 80, "PNEUMONIA": 160}, "test": {"NORMAL": 20, "PNEUMONIA": 40}},
        "split": {"strategy": "patient", "test_fraction": 0.2, "seed": 0},
        "patients": 150,
        "patients_on_both_sides": 0,
    }
    with store.commit(join_key("datasets", DATASET, VERSION), inputs={"planted": True}) as tx:
        tx.put_json("dataset.json", info)
    store.put_json(join_key("datasets", DATASET, "latest.json"), {"version": VERSION})


def _plant_gan(store: Store) -> None:
    for index, class_name in enumerate(("NORMAL", "PNEUMONIA")):
        epochs = np.arange(1, 6)
        losses = pd.DataFrame(
            {"epoch": epochs, "d_loss": 0.7 + 0.02 * epochs, "g_loss": 1.5 - 0.1 * epochs, "seconds": 2.0}
        )
        with store.commit(gan_prefix(RUN_ID, class_name), inputs={"planted": True}) as tx:
            tx.put_bytes("losses.csv", losses.to_csv(index=False).encode())
            tx.put_bytes("samples.png", _png(index))
            tx.put_json("gan.json", {"training": {"epochs": 5, "final_d_loss": 0.8}, "model": {"image_size": 32}})
        # cxr-synthesize's selection.json names.
        selection = {
            "strategy": HOSTILE if class_name == "NORMAL" else "last-fraction",
            "num_generated": 100,
            "num_kept": 7,
            "kept": [{"image_id": f"syn-{number}", "rank": number} for number in range(7)],
            "keep_fraction": 0.07,
            "memorization": {"threshold": 0.95, "flagged_count": index, "flagged_share": index / 7,
                             "method": "SSIM (Gaussian window 11) at 32x32 px"},
            "quality": {"extractor": "pixel-stats", "kept": {"kid": 0.0123 + index / 100, "kid_std": 0.001},
                        "all_generated": {"kid": 0.05, "kid_std": 0.002}},
        }
        with store.commit(synthetic_prefix(RUN_ID, class_name), inputs={"planted": True}) as tx:
            tx.put_json("selection.json", selection)
            tx.put_bytes("samples.png", _png(10 + index))


@pytest.fixture
def planted(store: Store) -> dict:
    """A run with 2 models x 2 conditions x 2 seeds, GANs, synthetic sets and one uncommitted output."""
    _plant_dataset(store)
    _plant_gan(store)
    planted_outputs = {
        (condition, model, seed): _plant_classifier(store, condition, model, seed)
        for condition in ("baseline", "augmented")
        for model in MODELS
        for seed in SEEDS
    }
    # An output whose job has not finished: staged objects, no _SUCCESS.
    store.put_bytes(join_key(classifier_prefix(RUN_ID, "augmented", "vgg16", 0), "_tmp", "tx1", "metrics.json"), b"{}")
    return planted_outputs


@pytest.fixture
def fast_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Builds every figure but skips matplotlib's drawing (a stand-in PNG), for tests about other things."""
    from cxrcore.report import figures

    monkeypatch.setattr(figures, "_png", lambda figure: _png(99))


def _read_report(store: Store) -> tuple[str, str, dict, dict]:
    prefix = report_prefix(RUN_ID)
    marker = store.require_committed(prefix)
    page = store.get_bytes(join_key(prefix, "index.html")).decode()
    markdown = store.get_bytes(join_key(prefix, "report.md")).decode()
    metrics = store.get_json(join_key(prefix, "metrics.json"))
    return page, markdown, metrics, marker.outputs


def test_full_report(store: Store, planted: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    if store.uri.startswith("s3://"):
        # matplotlib's drawing is exercised on the file store; over S3 only the store path differs.
        from cxrcore.report import figures

        monkeypatch.setattr(figures, "_png", lambda figure: _png(99))
    result = build_report(store, RUN_ID, dataset=DATASET, dataset_version="latest", title="Test report")
    assert result["status"] == "created"
    assert result["classifiers"] == 8
    page, markdown, metrics, outputs = _read_report(store)

    # Every section, in both renderings.
    for anchor, title in SECTION_TITLES.items():
        assert f'<section id="{anchor}">' in page
        assert f"<h2>{title}</h2>" in page
        assert f"## {title}" in markdown
    assert "SYNTHETIC DEMO DATA" in page and "SYNTHETIC DEMO DATA" in markdown
    assert "patient, test fraction 0.2, seed 0" in page
    assert "CONTAMINATED" not in page.split('<section id="table-2">')[0]

    # McNemar on the planted predictions of the same seed.
    per_seed = {(row["model"], row["seed"]): row for row in metrics["deltas"]["per_seed"]}
    assert set(per_seed) == {(model, seed) for model in MODELS for seed in SEEDS}
    for model in MODELS:
        for seed in SEEDS:
            baseline, augmented = planted[("baseline", model, seed)], planted[("augmented", model, seed)]
            expected = mcnemar(
                baseline["labels"],
                (baseline["probabilities"] >= 0.5).astype(int),
                (augmented["probabilities"] >= 0.5).astype(int),
            )
            row = per_seed[(model, seed)]
            assert row["p_value"] == pytest.approx(expected["p_value"], rel=1e-12)
            assert (row["b"], row["c"]) == (expected["b"], expected["c"])
            assert row["n_paired"] == N_TEST
            assert row["delta_accuracy"] == pytest.approx(
                augmented["metrics"]["accuracy"] - baseline["metrics"]["accuracy"]
            )
    delta_section = page.split('<section id="delta">')[1].split("</section>")[0]
    for row in per_seed.values():
        shown = f"{row['p_value']:.1e}" if row["p_value"] < 0.001 else f"{row['p_value']:.3f}"
        assert f"<td>{shown}</td>" in delta_section
    combined = {row["model"]: row for row in metrics["deltas"]["combined"]}
    deltas = [per_seed[("custom_cnn", seed)]["delta_accuracy"] for seed in SEEDS]
    assert combined["custom_cnn"]["delta_accuracy_mean"] == pytest.approx(np.mean(deltas))
    assert combined["custom_cnn"]["delta_accuracy_sd"] == pytest.approx(np.std(deltas, ddof=1))
    assert combined["custom_cnn"]["n_seeds"] == 2

    # Mean ± sd over seeds, in the numbers and in the rendered Table 2.
    summary = {(row["condition"], row["model"]): row for row in metrics["summary"]}
    accuracies = [planted[("baseline", "custom_cnn", seed)]["metrics"]["accuracy"] for seed in SEEDS]
    row = summary[("baseline", "custom_cnn")]
    assert row["accuracy_mean"] == pytest.approx(np.mean(accuracies))
    assert row["accuracy_sd"] == pytest.approx(np.std(accuracies, ddof=1))
    cell = f"{100 * np.mean(accuracies):.2f} ± {100 * np.std(accuracies, ddof=1):.2f}"
    table_2 = page.split('<section id="table-2">')[1].split("</section>")[0]
    assert cell in table_2
    aucs = [planted[("augmented", "resnet50", seed)]["metrics"]["auc"] for seed in SEEDS]
    assert summary[("augmented", "resnet50")]["auc_sd"] == pytest.approx(np.std(aucs, ddof=1))

    # The collapsed model is flagged everywhere, none silently.
    flagged = {(row["condition"], row["model"], row["seed"]) for row in metrics["collapsed"]}
    assert flagged == {("baseline", "resnet50", seed) for seed in SEEDS}
    assert result["collapsed"] == [f"baseline/resnet50/seed-{seed}" for seed in SEEDS]
    collapsed_section = page.split('<section id="collapsed">')[1].split("</section>")[0]
    assert 'class="warning"' in collapsed_section and "collapsed to one class" in collapsed_section
    assert "100.0" in collapsed_section  # share predicted as one class (%)
    assert re.search(r'<tr class="flagged"><td>&#9888; ResNet50</td>', table_2)
    assert "YES (2/2 seeds) → PNEUMONIA" in table_2
    assert "| **⚠ ResNet50** |" in markdown

    # The paper's numbers.
    for value in ("94.03", "96.84", "72.95", "0.92 / 0.93 / 0.92", "1,254"):
        assert value in page, value
    assert metrics["paper"]["tables"][0]["test_accuracy_percent"] == 94.03

    # GAN section: KID, memorization share, escaped free text.
    gan_section = page.split('<section id="gan">')[1].split("</section>")[0]
    assert "0.0123 ± 0.001; all generated 0.05 (pixel-stats)" in gan_section
    assert "14.3% (1 images) at or above SSIM 0.95" in gan_section and "MEMORIZATION" in gan_section
    methods = page.split('<section id="methods">')[1].split("</section>")[0]
    assert "paper (Adam; RMSprop for InceptionV3, SGD for ResNet50)" in methods
    # A setting the models do not share names the models of each value; a shared one is shown once.
    assert re.search(r">Learning rate</td><td[^>]*>0\.0001</td><td[^>]*>0\.0001 \(resnet50\); 0\.001 \(custom_cnn\)</td>",
                     methods), methods
    assert re.search(r">Classifier image size \(px\)</td><td[^>]*>128</td><td>32</td>", methods)
    assert re.search(r">Synthetic training images</td><td[^>]*>[^<]*</td><td>14</td>", methods)
    assert HOSTILE not in page and "&lt;script&gt;" in page
    assert "<script" not in page
    assert "\\<script\\>" in markdown

    # Incomplete output listed with its reason.
    incomplete = page.split('<section id="incomplete">')[1].split("</section>")[0]
    assert "classifiers/augmented/vgg16/seed-0" in incomplete and "no _SUCCESS marker" in incomplete

    # Figures: valid PNGs, embedded, linked from Markdown.
    figures = sorted(name for name in outputs if name.startswith("figures/"))
    expected_figures = {
        "figures/confusion_custom_cnn.png", "figures/confusion_transfer_baseline.png",
        "figures/confusion_transfer_augmented.png", "figures/roc_baseline.png", "figures/roc_augmented.png",
        "figures/accuracy_comparison.png", "figures/history_baseline.png", "figures/history_augmented.png",
        "figures/gan_losses.png", "figures/gan_samples_NORMAL.png", "figures/synthetic_samples_PNEUMONIA.png",
    }
    assert expected_figures <= set(figures)
    from PIL import Image

    for name in figures:
        data = store.get_bytes(join_key(report_prefix(RUN_ID), name))
        assert data.startswith(PNG_SIGNATURE), name
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        assert f"]({name})" in markdown
    sources = re.findall(r'<img[^>]*\ssrc="([^"]+)"', page)
    assert len(sources) == len(figures) and all(src.startswith("data:image/png;base64,") for src in sources)
    assert "http://" not in page and "https://" not in page

    # tables.csv is tidy and holds every table; metrics.json is strict JSON.
    tidy = pd.read_csv(io.BytesIO(store.get_bytes(join_key(report_prefix(RUN_ID), "tables.csv"))))
    assert list(tidy.columns) == ["table", "condition", "model", "seed", "statistic", "metric", "value"]
    assert {"per_seed", "summary", "delta_per_seed", "delta_combined", "paper", "paper_vs_ours"} <= set(tidy["table"])
    assert len(tidy[(tidy["table"] == "per_seed") & (tidy["metric"] == "accuracy")]) == 8
    json.loads(store.get_bytes(join_key(report_prefix(RUN_ID), "metrics.json")), parse_constant=_refuse_constant)

    # Idempotent: same inputs -> untouched; a new input -> rebuilt.
    marker = store.read_marker(report_prefix(RUN_ID))
    again = build_report(store, RUN_ID, dataset=DATASET, dataset_version="latest", title="Test report")
    assert again["status"] == "unchanged"
    assert store.read_marker(report_prefix(RUN_ID)) == marker


def _refuse_constant(name: str) -> None:
    raise AssertionError(f"metrics.json holds {name}")


@pytest.mark.parametrize("store", ["file"], indirect=True)
def test_rebuilds_when_an_output_finishes(store: Store, fast_figures: None) -> None:
    _plant_classifier(store, "baseline", "custom_cnn", 0)
    pending = classifier_prefix(RUN_ID, "baseline", "vgg16", 0)
    store.put_bytes(join_key(pending, "_tmp", "tx1", "metrics.json"), b"{}")
    first = build_report(store, RUN_ID, dataset=DATASET)
    assert first["status"] == "created" and first["incomplete"] == [f"classifier:{pending}"]
    _plant_classifier(store, "baseline", "vgg16", 0)
    store.clean_staging(pending)
    second = build_report(store, RUN_ID, dataset=DATASET)
    assert second["status"] == "created" and second["classifiers"] == 2 and second["incomplete"] == []
    assert build_report(store, RUN_ID, dataset=DATASET)["status"] == "unchanged"


@pytest.mark.parametrize("store", ["file"], indirect=True)
def test_baseline_only_run_says_not_run(store: Store, fast_figures: None) -> None:
    _plant_dataset(store)
    planted = {seed: _plant_classifier(store, "baseline", "custom_cnn", seed) for seed in (0,)}
    result = build_report(store, RUN_ID, dataset=DATASET)
    assert result["conditions"] == ["baseline"]
    page, markdown, metrics, outputs = _read_report(store)
    for anchor in ("table-3", "delta", "gan"):
        section = page.split(f'<section id="{anchor}">')[1].split("</section>")[0]
        assert "Not run" in section, anchor
    assert "Not run: no committed classifier output under classifiers/augmented/" in markdown
    assert metrics["deltas"] == {"per_seed": [], "combined": []}
    # One seed: no "±" in Table 2, the Wilson interval of that seed.
    table_2 = page.split('<section id="table-2">')[1].split("</section>")[0]
    accuracy = planted[0]["metrics"]["accuracy"]
    low, high = planted[0]["metrics"]["accuracy_ci95"]
    assert f"{100 * accuracy:.2f}" in table_2 and f"[{100 * low:.2f}, {100 * high:.2f}]" in table_2
    assert "figures/confusion_custom_cnn.png" in outputs and "figures/roc_augmented.png" not in outputs
    # Outputs without Grad-CAM panels (older, or explain_examples=0): said, not fatal.
    explanations = page.split('<section id="explanations">')[1].split("</section>")[0]
    assert "Grad-CAM panels not available" in explanations and "<img" not in explanations
    assert "Grad-CAM panels not available" in markdown and metrics["explanations"] == []


@pytest.mark.parametrize("store", ["file"], indirect=True)
def test_flagged_gan_and_stabilisers_are_reported(store: Store, fast_figures: None) -> None:
    """A flagged GAN whose images were used anyway is a warning naming why; stabilisers are listed vs the paper."""
    _plant_dataset(store)
    _plant_gan(store)
    _plant_classifier(store, "baseline", "custom_cnn", 0)
    quality = {"status": "flagged", "reasons": ["near-constant samples: mean per-image std 0.0010 < 0.02"],
               "trajectory": [{"step": 0, "kid": 9.1}, {"step": 40, "kid": 9.0}],
               "final": {"step": 40, "kid": 9.0, "two_sample_accuracy": 1.0, "repeated_detail_share": 0.31,
                         "real_repeated_detail_share": 0.06},
               "published": {"rule": "guarded", "step": 40, "epoch": 2, "kid": 9.0, "last_step": 40, "last_kid": 9.0,
                             "replaced_last": False, "reason": None}}
    published = {"rule": "guarded", "step": 500, "epoch": 5, "kid": 0.17, "last_step": 1032, "last_kid": 1.78,
                 "replaced_last": True, "reason": "the last generator broke down: KID 1.7800 at step 1032"}
    stabilisers = {"beta_1": {"value": 0.5, "paper": 0.9}, "label_smoothing": {"value": 0.1, "paper": 0.0},
                   "discriminator_width_multiplier": {"value": 1.0, "paper": 0.25, "paper_note": "Table 1: the generator's"},
                   "paper_settings": False}
    with store.commit(gan_prefix(RUN_ID, "NORMAL"), inputs={"planted": "flagged"}) as tx:
        tx.put_json("gan.json", {"training": {"epochs": 2, "steps": 40, "stabilisers": stabilisers},
                                 "quality": quality})
    with store.commit(gan_prefix(RUN_ID, "PNEUMONIA"), inputs={"planted": "recovered"}) as tx:
        tx.put_json("gan.json", {"training": {"epochs": 10, "steps": 1032},
                                 "quality": {"status": "ok", "reasons": [], "published": published,
                                             "final": {"step": 500, "kid": 0.17}}})
    selection = store.get_json(join_key(synthetic_prefix(RUN_ID, "NORMAL"), "selection.json"))
    selection["gan"] = {"quality": {"status": "flagged"}, "flagged_gan": "use"}
    selection["quality"]["two_sample_accuracy_kept"] = 0.97
    selection["quality"]["repeated_detail_share_kept"] = 0.29
    selection["quality"]["real_repeated_detail_share"] = 0.07
    with store.commit(synthetic_prefix(RUN_ID, "NORMAL"), inputs={"planted": "flagged"}) as tx:
        tx.put_json("selection.json", selection)
    build_report(store, RUN_ID, dataset=DATASET)
    page, markdown, _, _ = _read_report(store)
    gan = page.split('<section id="gan">')[1].split("</section>")[0]
    assert "GAN FLAGGED (NORMAL): near-constant samples" in gan and "WERE USED anyway (flagged_gan=use)" in gan
    assert "FLAGGED" in markdown and "9.1 -&gt; 9" in gan and "1; 0.97" in gan
    assert "0.31; 0.29; 0.07" in gan  # repeated detail: final GAN; kept; real (the synthesize job's measure)
    assert (
        "beyond the paper&#x27;s: beta_1 0.5 (paper 0.9), discriminator_width_multiplier 1.0 (paper Table 1: the "
        "generator&#x27;s, 0.25), label_smoothing 0.1 (paper 0.0)" in gan
    )
    assert "GAN FLAGGED (PNEUMONIA)" not in gan  # the PNEUMONIA GAN published its generator from before a breakdown
    assert (
        "DCGAN PNEUMONIA: the published generator is the one measured at step 500 (KID 0.17), not the last (step "
        "1,032, KID 1.78), under publish=guarded: the last generator broke down" in gan
    )
    assert "DCGAN NORMAL: the published generator" not in gan
    assert "DCGAN NORMAL: published the last generator (step 40) under publish=guarded" in gan


def test_inception_scores_are_reported_or_said_missing(store: Store, fast_figures: None) -> None:
    """selection.json quality.inception (format 2): the measured numbers per class, or why there are none."""
    _plant_dataset(store)
    _plant_gan(store)
    _plant_classifier(store, "baseline", "custom_cnn", 0)
    measured = {"status": "measured", "extractor": "keras-inceptionv3-imagenet-avgpool", "input_size": 299,
                "num_real": 2000, "kept": {"kid": 0.0412, "kid_std": 0.003, "fid": 61.25, "num_images": 105},
                "all_generated": {"kid": 0.052, "kid_std": 0.001, "fid": 40.5, "num_images": 1500}}
    skipped = {"status": "skipped", "reason": "inception=auto: ImageNet weights of inceptionv3 are not in the cache"}
    final = {"step": 40, "kid": 0.2, "inception_kid": 0.0871, "inception_fid": 152.5,
             "inception_extractor": "keras-inceptionv3-imagenet-avgpool"}
    with store.commit(gan_prefix(RUN_ID, "NORMAL"), inputs={"planted": "inception"}) as tx:
        tx.put_json("gan.json", {"training": {"epochs": 2, "steps": 40},
                                 "quality": {"status": "ok", "reasons": [], "final": final,
                                             "inception": {"status": "measured",
                                                           "extractor": "keras-inceptionv3-imagenet-avgpool"}}})
    for class_name, record in (("NORMAL", measured), ("PNEUMONIA", skipped)):
        selection = store.get_json(join_key(synthetic_prefix(RUN_ID, class_name), "selection.json"))
        selection["quality"]["inception"] = record
        with store.commit(synthetic_prefix(RUN_ID, class_name), inputs={"planted": class_name}) as tx:
            tx.put_json("selection.json", selection)
    build_report(store, RUN_ID, dataset=DATASET)
    page, markdown, metrics, _ = _read_report(store)
    gan = page.split('<section id="gan">')[1].split("</section>")[0]
    assert (
        "InceptionV3 scores of the synthetic sets (keras-inceptionv3-imagenet-avgpool; 2048-d average pool at 299 "
        "px): NORMAL GAN (the published generator&#x27;s measurement): KID 0.0871, FID 152.5. NORMAL: kept (105) KID 0.0412 ± 0.003, FID 61.25; all generated (1,500) KID 0.052 ± 0.001, FID 40.5 "
        "against 2,000 real" in gan
    )
    assert "InceptionV3 KID/FID not measured: PNEUMONIA (no ImageNet InceptionV3 file in the Keras cache" in gan
    assert "InceptionV3 scores" in markdown
    assert metrics["synthetic"]["NORMAL"]["selection"]["quality"]["inception"]["kept"]["fid"] == 61.25


@pytest.mark.parametrize("store", ["file"], indirect=True)
def test_contaminated_protocol_is_labelled(store: Store, fast_figures: None) -> None:
    _plant_dataset(store)
    _plant_classifier(store, "baseline", "custom_cnn", 0)
    _plant_classifier(store, "augmented", "custom_cnn", 0, protocol="paper-merge")
    build_report(store, RUN_ID, dataset=DATASET)
    page, markdown, metrics, _ = _read_report(store)
    header = page.split('<section id="header">')[1].split("</section>")[0]
    assert "CONTAMINATED TEST SET" in header and "augmented/custom_cnn/seed-0" in header
    assert metrics["contaminated"] is True and metrics["protocols"] == ["clean", "paper-merge"]


@pytest.mark.parametrize("store", ["file"], indirect=True)
def test_missing_classifiers_fail_clearly(store: Store) -> None:
    with pytest.raises(NoClassifierOutputError, match=r"runs/run-1/classifiers.*run_id='run-1'"):
        build_report(store, RUN_ID)
    store.put_bytes(join_key(classifier_prefix(RUN_ID, "baseline", "custom_cnn", 0), "_tmp", "t", "x"), b"1")
    with pytest.raises(NoClassifierOutputError, match=r"1 uncommitted: runs/run-1/classifiers/baseline/custom_cnn"):
        build_report(store, RUN_ID)


def test_entry_point_exit_codes(file_store: Store, tmp_path: Path, fast_figures: None) -> None:
    from jobs.report import main

    store, uri = file_store, file_store.uri
    assert main(["--store", uri, "--run-id", RUN_ID, "--log-format", "json"]) == 1
    _plant_dataset(store)
    _plant_classifier(store, "baseline", "custom_cnn", 0)
    export = tmp_path / "artifact"
    argv = ["--store", uri, "--run-id", RUN_ID, "--dataset", DATASET, "--log-format", "json"]
    assert main([*argv, "--export-dir", str(export)]) == 0
    assert store.is_committed(report_prefix(RUN_ID))
    # The Argo output artifact: the committed report, copied out (also when the report was already there).
    assert (export / "index.html").is_file() and (export / "report.md").is_file()
    (export / "index.html").unlink()
    assert main([*argv, "--export-dir", str(export)]) == 0
    assert (export / "index.html").is_file()


def test_run_from_settings_exports_the_artifact(
    store: Store, shrunk_settings, tmp_path: Path, fast_figures: None
) -> None:
    from cxrcore.config import ReportSettings
    from cxrcore.report.job import run

    _plant_dataset(store)
    _plant_classifier(store, "baseline", "custom_cnn", 0)
    export = tmp_path / "artifact"
    settings = shrunk_settings(ReportSettings, store=store, run_id=RUN_ID, dataset=DATASET, export_dir=str(export))
    summary = run(settings)
    assert summary["status"] == "created" and summary["classifiers"] == 1
    assert summary["uri"] == f"{store.uri}/{report_prefix(RUN_ID)}"
    outputs = store.require_committed(report_prefix(RUN_ID)).outputs
    assert summary["exported"] >= len(outputs) and all((export / name).is_file() for name in outputs)
    assert (export / "index.html").read_bytes() == store.get_bytes(join_key(report_prefix(RUN_ID), "index.html"))
    assert run(settings)["status"] == "unchanged"


def test_unusable_committed_output_is_listed_not_fatal(file_store: Store, fast_figures: None) -> None:
    store = file_store
    _plant_classifier(store, "baseline", "custom_cnn", 0)
    with store.commit(classifier_prefix(RUN_ID, "baseline", "vgg16", 0), inputs={}) as tx:
        tx.put_json("metrics.json", {"n": 3})
        tx.put_bytes("predictions.csv", b"image_id,label,probability\na,0,0.1\n")
    result = build_report(store, RUN_ID, dataset=DATASET)
    assert result["classifiers"] == 1
    assert any("vgg16" in item for item in result["incomplete"])
    page, _, metrics, _ = _read_report(store)
    assert "committed but unusable: metrics.json lacks" in page
    assert metrics["dataset"]["problem"]  # no dataset version in this store: said, not fatal


def _plant_gradcam(store: Store, condition: str, model: str, seed: int, *, panel: bytes | None = None) -> dict:
    """Re-commits a planted classifier output with a Grad-CAM panel and its gradcam.json, as the job writes them."""
    from cxrcore.explain import render_panel, select_examples
    from cxrcore.training.classifier_explain import gradcam_info

    planted = _plant_classifier(store, condition, model, seed)
    image_ids, labels = _labels()
    examples = select_examples(image_ids, labels, planted["probabilities"], per_outcome=1)
    pixels = np.random.default_rng(seed).integers(0, 256, (len(examples), 32, 32), dtype=np.uint8)
    heatmaps = np.random.default_rng(seed).random(pixels.shape).astype(np.float32)
    info = gradcam_info(examples, layer="conv_3", threshold=0.5, per_outcome=1, image_size=32)
    prefix = classifier_prefix(RUN_ID, condition, model, seed)
    objects = {name: store.get_bytes(join_key(prefix, name)) for name in ("metrics.json", "predictions.csv")}
    with store.commit(prefix, inputs={"planted": True, "gradcam": True}) as tx:
        for name, data in objects.items():
            tx.put_bytes(name, data)
        tx.put_bytes("gradcam.png", panel or render_panel(pixels, heatmaps, examples, per_outcome=1))
        tx.put_json("gradcam.json", info)
    return info


@pytest.mark.parametrize("store", ["file"], indirect=True)
def test_gradcam_panels_are_shown_and_missing_ones_said(store: Store, fast_figures: None) -> None:
    _plant_dataset(store)
    info = _plant_gradcam(store, "baseline", "custom_cnn", 0)
    _plant_gradcam(store, "baseline", "custom_cnn", 1)
    _plant_classifier(store, "baseline", "resnet50", 0)  # no panel: explain_examples=0, or an older output
    _plant_gradcam(store, "augmented", "custom_cnn", 0, panel=b"not a png")  # unusable: a warning
    result = build_report(store, RUN_ID, dataset=DATASET)
    page, markdown, metrics, outputs = _read_report(store)

    figure = "figures/gradcam_baseline_custom_cnn_seed-0.png"
    assert figure[len("figures/"):] in result["figures"]
    assert {figure, "figures/gradcam_baseline_custom_cnn_seed-1.png"} <= set(outputs)
    panel = store.get_bytes(join_key(classifier_prefix(RUN_ID, "baseline", "custom_cnn", 0), "gradcam.png"))
    assert store.get_bytes(join_key(report_prefix(RUN_ID), figure)) == panel
    section = page.split('<section id="explanations">')[1].split("</section>")[0]
    assert section.count("<img") == 1  # one panel per condition and model: the lowest seed's
    assert "Custom CNN, baseline, seed 0: Grad-CAM at conv_3, 4 test images (1 TP, 1 TN, 1 FP, 1 FN)" in section
    assert "Seeds 1 have their own panel" in section and "warm (red, yellow)" in section
    assert "not available for: ResNet50 (baseline), Custom CNN (augmented)" in section
    markdown_section = markdown.split("## Explanations (Grad-CAM)")[1].split("\n## ")[0]
    assert f"]({figure})" in markdown_section and "not available for: ResNet50 (baseline)" in markdown_section
    assert any("gradcam.png is not a PNG image" in warning for warning in metrics["warnings"])
    listed = {(entry["condition"], entry["model"], entry["seed"]): entry for entry in metrics["explanations"]}
    assert set(listed) == {("baseline", "custom_cnn", 0), ("baseline", "custom_cnn", 1)}
    entry = listed[("baseline", "custom_cnn", 0)]
    assert entry["figure"] == figure and entry["cells"] == info["cells"] and entry["threshold"] == 0.5
    assert [cell["outcome"] for cell in entry["cells"]] == ["true_positive", "true_negative", "false_positive",
                                                           "false_negative"]


#: The report files whose bytes :func:`test_report_bytes_are_pinned` pins.
GOLDEN_FILES = ("index.html", "report.md", "tables.csv", "metrics.json")
#: sha256 of each report file built from the fixed stores below (figures drawn as a stand-in PNG, the store's
#: URI, which names pytest's temporary folder, replaced by ``<store>``). A different digest is a different report:
#: change it on purpose only, then copy the digests the failure prints.
#: Changed on purpose: REPORT_FORMAT 2 added the "Explanations (Grad-CAM)" section (not available here: no output
#: holds a panel) and metrics.json ``explanations`` (empty); tables.csv did not change.
#: Changed on purpose ("full"): the DCGAN table gained GAN quality, the GAN's KID (step 0 -> final) and two-sample
#: columns ("not measured" for these planted GANs without a quality record), metrics.json the matching keys.
#: Changed on purpose ("full"): the DCGAN table gained the repeated-detail column (final GAN; kept; real: "–" here),
#: metrics.json the matching keys.
#: Changed on purpose ("full" metrics.json): each GAN's summary gained ``published`` (which measured generator
#: cxr-gan-train published; null for these planted GANs without a quality record), and the DCGAN table's note
#: names the late breakdown among the flagging rules and says that "final" is the published generator.
#: Changed on purpose ("full" metrics.json): each synthetic summary gained ``inception`` (selection.json
#: quality.inception, cxr-synthesize format 2; null for these planted sets without one), and each GAN summary
#: ``inception`` and ``inception_final`` (gan.json quality, cxr-gan-train format 10; nulls here).
#: Changed on purpose (the planted inputs): the planted classifiers record one learning rate per model (1e-3 for
#: the custom CNN, 1e-4 for the others), so Methods shows each rate with its models; the same report code on the
#: previous planted inputs gives the previous digests.
GOLDEN_DIGESTS: dict[str, dict[str, str]] = {
    "full": {
        "index.html": "fbce19be4338bf3ef922a7065d359536d07db6231d0d7786830b810fc3585bd9",
        "report.md": "fd544fb4560c3428bbc7d4f8653136ba37e6a7a5d4940c55d1a37da1eaa547dd",
        "tables.csv": "563a4e7eaf886db7f0fdbe52770468776483b906a364bb34cdcc5195a9a9e821",
        "metrics.json": "24140d2f30a1ffdf726b1ac73c4ac0d0b1e9a7ba07e5bc0aff20e3443e9f7404",
    },
    "partial": {
        "index.html": "92f3a04d3df8afefece547a8b82b191615b02322e7825e16f3c74104cbb7482c",
        "report.md": "e5110f2ec2476c0dc43f0bea629810b0e357cf5021f9df5552149e1b1be6afe5",
        "tables.csv": "6a4f9cf7d0df6b072fdab94477cb29416df6925633238681fe82b0b74ee4af26",
        "metrics.json": "87ea56bc9d4e1332eb70796098dd7f3479d126213872987099bd704803f55603",
    },
}


def _plant_partial(store: Store) -> None:
    """One paired model (its augmented output contaminated), one collapsed unpaired model, one output contradicting
    itself, one unusable output, no dataset version: the report's "not run", warning and problem branches."""
    _plant_classifier(store, "baseline", "custom_cnn", 0)
    _plant_classifier(store, "augmented", "custom_cnn", 0, protocol="paper-merge")
    _plant_classifier(store, "baseline", "resnet50", 1)
    # metrics.json disagreeing with its predictions.csv and its location: consistency warnings.
    image_ids, labels = _labels()
    metrics = binary_metrics(labels, np.full(labels.size, 0.2))
    metrics.update(model="vgg16", condition="baseline", seed=0, dataset=DATASET, dataset_version="v0")
    predictions = pd.DataFrame({"image_id": image_ids, "label": labels, "probability": np.full(labels.size, 0.7)})
    with store.commit(classifier_prefix(RUN_ID, "augmented", "vgg16", 1), inputs={"planted": True}) as tx:
        tx.put_json("metrics.json", metrics)
        tx.put_bytes("predictions.csv", predictions.to_csv(index=False).encode())
    with store.commit(classifier_prefix(RUN_ID, "baseline", "vgg16", 0), inputs={}) as tx:
        tx.put_json("metrics.json", {"n": 3})
        tx.put_bytes("predictions.csv", b"image_id,label,probability\na,0,0.1\n")


def _golden_digests(store: Store) -> dict[str, str]:
    uri = store.uri.encode()
    escaped = re.sub(rb"([\\`*_\[\]<>#|])", rb"\\\1", uri)  # as report.md writes it
    digests = {}
    for name in GOLDEN_FILES:
        data = store.get_bytes(join_key(report_prefix(RUN_ID), name))
        digests[name] = hashlib.sha256(data.replace(uri, b"<store>").replace(escaped, b"<store>")).hexdigest()
    return digests


@pytest.mark.parametrize("store", ["file"], indirect=True)
@pytest.mark.parametrize("scenario", ["full", "partial"])
def test_report_bytes_are_pinned(
    store: Store, fast_figures: None, scenario: str, request: pytest.FixtureRequest
) -> None:
    if scenario == "full":
        request.getfixturevalue("planted")
    else:
        _plant_partial(store)
    build_report(store, RUN_ID, dataset=DATASET, dataset_version="latest", title="Golden report")
    digests = _golden_digests(store)
    assert digests == GOLDEN_DIGESTS[scenario], f"report bytes changed for {scenario!r}; new digests: {digests}"


def test_paper_data_reproduce_published_accuracies() -> None:
    for condition, table in PAPER_TABLES.items():
        for row in table:
            derived = paper_confusion_matrix(condition, row.model)
            if derived is None:
                assert (condition, row.model) == ("baseline", "densenet201")
                continue
            (tn, fp), (fn, tp) = derived["matrix"]
            assert tn + fp + fn + tp == PAPER_TEST_SETS[condition]["total"]
            assert round(100 * derived["accuracy"], 2) == row.test_accuracy_percent, (condition, row.model)


def test_importing_the_report_job_does_not_import_tensorflow() -> None:
    code = (
        "import sys, cxrcore.report.job, jobs.report; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, "
        "sorted(m for m in sys.modules if m.startswith(('tensorflow', 'keras')))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
                               cwd=Path(__file__).resolve().parents[1])
    assert completed.returncode == 0, completed.stderr


def test_operating_points_table_shows_both_thresholds_only_when_recorded():
    from types import SimpleNamespace

    from cxrcore.report.collect.records import ClassifierKey
    from cxrcore.report.render.operating import operating_points_section

    recipe = {
        "accuracy": 0.9, "sensitivity": 0.88, "specificity": 0.95, "target_sensitivity": 0.95,
        "best_epoch": 3, "stopped_early": True, "validation": {"n": 415, "patients": 228},
        "at_default_threshold": {"threshold": 0.5, "accuracy": 0.901, "sensitivity": 0.883, "specificity": 0.951},
        "at_chosen_threshold": {"threshold": 0.273, "accuracy": 0.924, "sensitivity": 0.953, "specificity": 0.84},
    }
    paper = {"accuracy": 0.8, "sensitivity": 0.9, "specificity": 0.6, "at_chosen_threshold": None}
    data = SimpleNamespace(metrics={
        ClassifierKey("baseline", "custom_cnn", 0): recipe,
        ClassifierKey("baseline", "vgg16", 0): paper,
        ClassifierKey("augmented", "vgg16", 0): paper,
    })
    (table,) = operating_points_section(data, "baseline")
    assert len(table.rows) == 1  # the paper-profile output recorded no chosen threshold
    row = dict(zip(table.columns, table.rows[0]))
    assert row["Threshold"] == "0.273" and row["Accuracy"] == "92.40" and row["Sensitivity"] == "0.953"
    assert row["Accuracy @0.5"] == "90.10" and row["Specificity @0.5"] == "0.951"
    assert row["Best epoch"] == "3 (stopped early)" and row["Validation (images / patients)"] == "415 / 228"
    assert "sensitivity >= 0.95" in table.caption and "test split chose nothing" in table.caption
    assert operating_points_section(data, "augmented") == []


@pytest.mark.parametrize(
    ("seen", "expected"),
    [
        ([{"NORMAL": "held-out", "PNEUMONIA": "held-out"}] * 2, "trained without the validation patients"),
        ([{"NORMAL": "held-out", "PNEUMONIA": "held-out"}, {"NORMAL": "seen", "PNEUMONIA": "unknown"}],
         "WARNING: a GAN may have trained on validation patients (seen: NORMAL; unknown: PNEUMONIA)"),
        ([{}, {}], None),
    ],
)
def test_operating_points_caption_says_whether_the_gans_saw_validation_patients(seen, expected):
    from types import SimpleNamespace

    from cxrcore.report.collect.records import ClassifierKey
    from cxrcore.report.render.operating import operating_points_section

    def metrics(status):
        return {"target_sensitivity": 0.95, "validation": {"n": 10, "patients": 5, "seen_by_gan": status},
                "at_chosen_threshold": {"threshold": 0.3, "accuracy": 0.9}}

    data = SimpleNamespace(metrics={ClassifierKey("augmented", "custom_cnn", seed): metrics(status)
                                    for seed, status in enumerate(seen)})
    (table,) = operating_points_section(data, "augmented")
    if expected is None:
        assert "GAN" not in table.caption
    else:
        assert expected in table.caption
