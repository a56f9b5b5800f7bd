"""Tests of ``cxr-synthesize`` (cxrcore/steps/synthesize.py, cxrcore/synthesis/, jobs/synthesize.py).

A tiny DCGAN (width 1/8, 32 px) is committed as a fake ``gan-train`` output over a demo dataset, then ``run()``
is exercised for every selection strategy through the file store and the S3 test server. Pure parts (SSIM,
nearest-neighbour search, KID, selection) are checked against references; the ``confidence`` strategy against
the one inference path (:func:`cxrcore.inference.predict_pixels`) and the training pipeline's resize.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses
import io
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import cxrcore
from cxrcore import synthesize
from cxrcore.config import SynthesizeSettings
from cxrcore.data.dataset import load_dataset, load_prefix, resolve_version
from cxrcore.data.pipeline import resize_images as training_resize
from cxrcore.inference import predict_pixels
from cxrcore.layout import dataset_prefix, gan_prefix, synthetic_prefix
from cxrcore.models.dcgan import build_discriminator, build_generator
from cxrcore.storage import Store, open_store, sha256_bytes
from cxrcore.synthesis import similarity
from jobs.synthesize import main as job_main
from tests.helpers import make_demo_dataset, write_inception_weights

GAN_SIZE = 32
LATENT_DIM = 8
OUTPUT_SIZE = 64
NUM_IMAGES = 40
KEEP_FRACTION = 0.1
#: sha256 of the dataset part of a synthetic output (see test_committed_dataset_bytes_are_pinned).
PINNED_SYNTHETIC_DIGESTS = {
    "dataset.json": "c983262b57f009b7d3ecb03f6a4e838cad03eb73dd03b67922e63624b2525f2b",
    # Re-pinned when the manifest gained the DICOM columns modality/view/photometric (empty here); without
    # them the file hashes to the previous pin, eca8f171a7048cd58bea3fd3642c5c8f6f5958652e0813156fbe7de92dc5f7b4.
    "manifest.csv": "a3714ba850615db44752dbe3529ce4b54f0b32a10acdb83d00a095264306e638",
    "shards/shard-00000.npy": "9fd6da66980981891be570fa6debbfe9b069b6f403ddfeec00fe5f32bd7cd044",
}


@dataclasses.dataclass(frozen=True)
class ModelFiles:
    """Saved ``.keras`` files of the tiny test models."""

    generator: Path
    discriminator: Path
    classifier: Path


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> ModelFiles:
    """A tiny seeded generator + discriminator and a brightness-driven sigmoid classifier, saved once."""
    directory = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(0)
    generator = build_generator(LATENT_DIM, width_multiplier=1 / 8, output_size=GAN_SIZE)
    discriminator = build_discriminator(input_size=GAN_SIZE, width_multiplier=1 / 8)
    # Classifier contract: raw [0, 255] 3-channel input, sigmoid P(PNEUMONIA). A fixed 48 px input exercises the
    # job's resizing; P grows with mean brightness, so its ranking is easy to predict.
    inputs = keras.Input((48, 48, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    classifier = keras.Model(inputs, outputs)
    classifier.layers[-1].set_weights([np.full((3, 1), 20.0 / 3, np.float32), np.array([-10.0], np.float32)])
    files = ModelFiles(directory / "generator.keras", directory / "discriminator.keras", directory / "clf.keras")
    generator.save(files.generator)
    discriminator.save(files.discriminator)
    classifier.save(files.classifier)
    return files


def commit_gan(
    store: Store, run_id: str, class_name: str, generator: Path, discriminator: Path, quality: dict | None = None
) -> None:
    """Publishes a fake ``gan-train`` output the way the real job does (models + gan.json + _SUCCESS)."""
    info = {
        "dataset": {"name": "demo", "version": resolve_version(store, "demo")},
        "model": {"image_size": GAN_SIZE, "latent_dim": LATENT_DIM},
        "quality": quality or {"status": "ok", "reasons": []},
    }
    with store.commit(gan_prefix(run_id, class_name), inputs={"test": run_id}) as tx:
        tx.put_file("generator.keras", generator)
        tx.put_file("discriminator.keras", discriminator)
        tx.put_json("gan.json", info)


@dataclasses.dataclass(frozen=True)
class World:
    """One backend's store holding the demo dataset, shared by the tests of this module."""

    store: Store
    s3: dict


@pytest.fixture(scope="module")
def file_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """A ``file://`` store with the demo dataset, imported once per module."""
    work = tmp_path_factory.mktemp("world-file")
    store = open_store((work / "store").as_uri())
    make_demo_dataset(store, work, per_class=16, size=32)
    return World(store, {})


@pytest.fixture(scope="module")
def s3_world(s3_server, s3_options, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A store on the S3 test server (own bucket) with the demo dataset, imported once per module."""
    client = s3_server.client()
    bucket = f"cxr-synth-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    store = open_store(f"s3://{bucket}/root", s3=s3_options)
    make_demo_dataset(store, tmp_path_factory.mktemp("world-s3"), per_class=16, size=32)
    yield World(store, s3_options)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        objects = [{"Key": entry["Key"]} for entry in page.get("Contents", [])]
        if objects:
            client.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
    client.delete_bucket(Bucket=bucket)


@pytest.fixture(params=["file", "s3"])
def world(request: pytest.FixtureRequest) -> World:
    """The shared world of each backend (ids ``file`` and ``s3``)."""
    return request.getfixturevalue(f"{request.param}_world")


def make_settings(world: World, run_id: str, **overrides) -> SynthesizeSettings:
    values = {
        "store": world.store.uri,
        "s3": world.s3,
        "run_id": run_id,
        "dataset": "demo",
        "class_name": "PNEUMONIA",
        "num_images": NUM_IMAGES,
        "output_size": OUTPUT_SIZE,
        "keep_fraction": KEEP_FRACTION,
        "batch_size": 16,
        "seed": 3,
    }
    values.update(overrides)
    return SynthesizeSettings(**values)


@pytest.mark.parametrize("strategy", synthesize.SELECTION_STRATEGIES)
def test_run_every_strategy(world, model_files, strategy):
    store, run_id = world.store, f"run-{strategy}"
    commit_gan(store, run_id, "PNEUMONIA", model_files.generator, model_files.discriminator)
    extra = {}
    if strategy == "confidence":
        store.put_file("models/clf.keras", model_files.classifier)
        extra["confidence_model"] = f"{store.uri}/models/clf.keras"
    settings = make_settings(world, run_id, selection=strategy, **extra)

    result = synthesize.run(settings)

    k = round(KEEP_FRACTION * NUM_IMAGES)
    assert result["status"] == "created"
    assert (result["num_generated"], result["num_selected"], result["num_kept"]) == (NUM_IMAGES, k, k)
    prefix = synthetic_prefix(run_id, "PNEUMONIA")
    manifest, images, info, marker = load_prefix(store, prefix)
    assert len(manifest) == k and images.shape == (k, OUTPUT_SIZE, OUTPUT_SIZE)
    assert info["image_size"] == OUTPUT_SIZE and info["synthetic"] is True and info["counts"]["PNEUMONIA"] == k
    assert set(manifest["split"]) == {"train"} and set(manifest["source"]) == {"synthetic"}
    assert set(manifest["patient_id"]) == {f"synthetic-{run_id}-PNEUMONIA"} and set(manifest["label"]) == {1}
    assert {"samples.png", "selection.json", "candidates.csv", "shards/shard-00000.npy"} <= set(marker.outputs)

    selection = store.get_json(f"{prefix}/selection.json")
    candidates = pd.read_csv(io.BytesIO(store.get_bytes(f"{prefix}/candidates.csv")))
    kept = [row["generation_index"] for row in selection["kept"]]
    assert manifest["source_path"].tolist() == [f"gan:{run_id}/PNEUMONIA/{index}" for index in kept]
    assert len(set(kept)) == k and candidates["kept"].sum() == k
    others = candidates[~candidates["kept"]]
    if strategy == "last-fraction":
        assert kept == list(range(NUM_IMAGES - k, NUM_IMAGES))
    elif strategy == "discriminator":
        logits = candidates.set_index("generation_index")["discriminator_logit"]
        assert logits[kept].min() >= others["discriminator_logit"].max()
    elif strategy == "confidence":
        confidence = candidates.set_index("generation_index")["confidence"]
        assert confidence[kept].min() >= others["confidence"].max()
        assert confidence[kept].tolist() == sorted(confidence[kept], reverse=True)
        # The classifier scored the published pixels exactly as evaluation and training do: its 48 px input
        # gets the training pipeline's Pillow resize of the 64 px images (P(PNEUMONIA) is the confidence here).
        classifier = keras.models.load_model(model_files.classifier, compile=False)
        recorded = np.array([row["confidence"] for row in selection["kept"]])
        np.testing.assert_allclose(recorded, predict_pixels(classifier, images), rtol=0, atol=1e-7)
        np.testing.assert_allclose(confidence[kept].to_numpy(), recorded, rtol=0, atol=1e-7)
        rgb = np.repeat(training_resize(images, 48).astype(np.float32)[..., None], 3, axis=-1)
        np.testing.assert_allclose(recorded, classifier.predict(rgb, verbose=0)[:, 0], rtol=0, atol=1e-6)
    else:
        assert kept[0] == int(candidates["discriminator_logit"].idxmax())

    memorization = selection["memorization"]
    real_ids = set(load_dataset(store, "demo").manifest["image_id"])
    assert memorization["num_checked"] == k and memorization["size"] == GAN_SIZE
    assert {row["nearest_real_id"] for row in memorization["per_image"]} <= real_ids
    assert selection["quality"]["extractor"] == synthesize.FEATURE_EXTRACTOR_NAME
    assert np.isfinite(selection["quality"]["kept"]["kid"]) and "not Inception" in selection["quality"]["note"]

    again = synthesize.run(settings)
    assert again["status"] == "unchanged"
    assert store.read_marker(prefix) == marker


def test_planted_real_image_is_flagged_and_dropped(file_world, tmp_path, model_files):
    """A generator that outputs a real training image for half of its latents: those copies are flagged."""
    world = file_world
    store = world.store
    dataset = load_dataset(store, "demo")
    train_images, train_manifest = dataset.subset("train")
    of_class = (train_manifest["class"] == "PNEUMONIA").to_numpy()
    real, real_id = train_images[of_class][0], train_manifest["image_id"][of_class].iloc[0]
    other = np.random.default_rng(1).integers(0, 256, real.shape).astype(np.float32)
    real_rgb = np.repeat(real[..., np.newaxis], 3, axis=-1).astype(np.float32).reshape(-1) / 255.0
    other_rgb = np.repeat(other[..., np.newaxis], 3, axis=-1).reshape(-1) / 255.0
    # gate = sigmoid(1000 * z[0]) is 0 or 1; image = gate * (real - other) + other.
    inputs = keras.Input((LATENT_DIM,))
    gate = keras.layers.Dense(1, activation="sigmoid", name="gate")(inputs)
    pixels = keras.layers.Dense(real_rgb.size, name="mix")(gate)
    outputs = keras.layers.Reshape((GAN_SIZE, GAN_SIZE, 3))(pixels)
    stub = keras.Model(inputs, outputs)
    gate_kernel = np.zeros((LATENT_DIM, 1), np.float32)
    gate_kernel[0, 0] = 1000.0
    stub.get_layer("gate").set_weights([gate_kernel, np.zeros(1, np.float32)])
    stub.get_layer("mix").set_weights([(real_rgb - other_rgb)[np.newaxis], other_rgb])
    stub.save(tmp_path / "stub.keras")
    commit_gan(store, "planted", "PNEUMONIA", tmp_path / "stub.keras", model_files.discriminator)

    num_images = 24
    latents = synthesize.latent_vectors(num_images, LATENT_DIM, 3, 1)
    copies = set(np.flatnonzero(latents[:, 0] > 0.05).tolist())
    originals = set(np.flatnonzero(latents[:, 0] < -0.05).tolist())
    assert copies and originals
    settings = make_settings(world, "planted", num_images=num_images, keep_fraction=1.0)

    result = synthesize.run(settings)
    report = store.get_json(f"{synthetic_prefix('planted', 'PNEUMONIA')}/selection.json")["memorization"]
    by_index = {row["generation_index"]: row for row in report["per_image"]}
    for index in copies:
        assert by_index[index]["memorized"] and by_index[index]["nearest_real_id"] == real_id
        assert by_index[index]["nearest_real_ssim"] == pytest.approx(1.0, abs=1e-5)
    assert not any(by_index[index]["memorized"] for index in originals)
    flagged = set(report["flagged_generation_indices"])
    assert copies <= flagged and not flagged & originals
    assert result["num_kept"] == num_images and result["memorized_count"] == len(flagged)
    assert report["flagged_share"] == pytest.approx(len(flagged) / num_images)

    dropped = synthesize.run(settings.model_copy(update={"drop_memorized": True}))
    manifest, _, _, _ = load_prefix(store, synthetic_prefix("planted", "PNEUMONIA"))
    assert dropped["status"] == "created" and dropped["num_kept"] == num_images - len(flagged) == len(manifest)
    assert not {int(path.rsplit("/", 1)[1]) for path in manifest["source_path"]} & flagged


def test_missing_inputs_fail_clearly(file_store, capsys):
    empty = World(file_store, {})
    with pytest.raises(synthesize.SynthesizeError, match=r"runs/r1/gan/PNEUMONIA .*cxr-gan-train"):
        synthesize.run(make_settings(empty, "r1"))
    with pytest.raises(synthesize.SynthesizeError, match="confidence-model"):
        synthesize.run(make_settings(empty, "r1", selection="confidence"))
    argv = ["--store", empty.store.uri, "--run-id", "r1", "--dataset", "demo", "--class-name", "NORMAL"]
    assert job_main(argv) == 1
    assert job_main([*argv, "--selection", "best"]) == 2
    assert "selection" in capsys.readouterr().err


def test_ssim_matches_tensorflow():
    rng = np.random.default_rng(0)
    base = tf.image.resize(rng.random((4, 8, 8, 1)), (40, 40), method="bicubic").numpy()[..., 0]
    a = np.clip(base * 255, 0, 255).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-30, 30, a.shape), 0, 255).astype(np.uint8)
    b[0] = a[0]
    b[1] = np.roll(a[1], 3, axis=1)
    b[2] = rng.integers(0, 256, a[2].shape)
    expected = tf.image.ssim(a[..., None], b[..., None], max_val=255).numpy()
    np.testing.assert_allclose(synthesize.ssim(a, b), expected, atol=1e-5)
    assert synthesize.ssim(a, b)[0] == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(synthesize.ssim(a / 255.0, b / 255.0), expected, atol=1e-5)


def test_nearest_by_ssim_is_the_exact_maximum():
    rng = np.random.default_rng(1)
    references = rng.integers(0, 256, (9, 24, 24)).astype(np.uint8)
    queries = np.clip(references[[4, 0, 7]].astype(int) + rng.integers(-60, 60, (3, 24, 24)), 0, 255).astype(np.uint8)
    queries = np.concatenate([queries, references[2:3]])
    index, value = synthesize.nearest_by_ssim(queries, references, max_block_pixels=24 * 24 * 2)
    brute = np.array([[synthesize.ssim(q[None], r[None])[0] for r in references] for q in queries])
    np.testing.assert_array_equal(index, brute.argmax(axis=1))
    np.testing.assert_allclose(value, brute.max(axis=1), atol=1e-6)
    assert index.tolist() == [4, 0, 7, 2] and value[3] == pytest.approx(1.0)


def test_kid_on_pixel_statistics_features():
    rng = np.random.default_rng(2)
    smooth = tf.image.resize(rng.random((80, 6, 6, 1)), (48, 48), method="bicubic").numpy()[..., 0]
    images = np.clip(smooth * 200 + 30, 0, 255).astype(np.uint8)
    noise = rng.integers(0, 256, (80, 48, 48)).astype(np.uint8)
    features = synthesize.pixel_statistics_features(images, batch_size=32)
    assert features.shape == (80, 288)
    np.testing.assert_allclose(synthesize.pixel_statistics_features(images[:5]), features[:5], atol=1e-6)
    noise_features = synthesize.pixel_statistics_features(noise)
    itself = synthesize.kernel_inception_distance(features, features, num_subsets=20)["kid"]
    halves = synthesize.kernel_inception_distance(features[:40], features[40:], num_subsets=20)["kid"]
    against_noise = synthesize.kernel_inception_distance(features, noise_features, num_subsets=20)["kid"]
    assert abs(itself) < 0.05 * against_noise and abs(halves) < 0.05 * against_noise and against_noise > 0.1
    assert synthesize.kernel_inception_distance(features[:1], features)["kid"] is None


def test_selection_functions():
    assert synthesize.keep_count(1500, 0.07) == 105 and synthesize.keep_count(1000, 0.07) == 70
    assert synthesize.keep_count(5, 0.01) == 1 and synthesize.keep_count(5, 1.0) == 5
    assert synthesize.select_last_fraction(10, 3).tolist() == [7, 8, 9]
    assert synthesize.select_top_scores(np.array([0.1, 0.9, 0.5, 0.9]), 3).tolist() == [1, 3, 2]
    points = np.array([[0.0], [0.1], [10.0], [5.0], [9.9]])
    assert synthesize.select_diversity(points, 3, 0).tolist() == [0, 2, 3]
    duplicates = np.zeros((4, 2))
    assert synthesize.select_diversity(duplicates, 4, 2).tolist() == [2, 0, 1, 3]
    scores = np.array([0.0, 3.0, 1.0, 2.0, -1.0])
    assert synthesize.select_indices("diversity", 2, num_images=5, discriminator_scores=scores,
                                     diversity_features=points)[0] == 1
    np.testing.assert_allclose(synthesize.intended_class_confidence(np.array([0.2, 0.9]), "NORMAL"), [0.8, 0.1])
    with pytest.raises(ValueError, match="confidence_scores"):
        synthesize.select_indices("confidence", 2, num_images=5)
    with pytest.raises(ValueError, match="k must be"):
        synthesize.select_last_fraction(3, 4)
    latents = synthesize.latent_vectors(6, 4, seed=3, label=1)
    np.testing.assert_array_equal(synthesize.latent_vectors(3, 4, seed=3, label=1), latents[:3])
    assert not np.array_equal(synthesize.latent_vectors(6, 4, seed=3, label=0), latents)
    json.dumps(synthesize.memorization_report(["a"], [0], ["r"], np.array([0.97]), threshold=0.95, size=32,
                                              num_references=1))


def test_memorization_check_flags_and_drops_a_planted_copy():
    rng = np.random.default_rng(4)
    real = rng.integers(0, 256, (5, 32, 32)).astype(np.uint8)
    kept = np.stack([real[3] / 255.0, rng.random((32, 32)), real[1] / 255.0]).astype(np.float32)
    common = {"image_ids": ["a", "b", "c"], "generation_indices": [7, 2, 9], "real_ids": list("vwxyz"), "size": 16,
              "threshold": 0.95}
    report, positions = similarity.memorization_check(kept, real, drop=False, **common)
    assert positions.tolist() == [0, 1, 2] and report["dropped"] is False
    assert report["flagged_ids"] == ["a", "c"] and report["flagged_generation_indices"] == [7, 9]
    assert report["per_image"][0]["nearest_real_id"] == "y" and report["per_image"][2]["nearest_real_id"] == "w"
    assert report["per_image"][0]["nearest_real_ssim"] == pytest.approx(1.0, abs=1e-5)
    dropped, kept_positions = similarity.memorization_check(kept, real, drop=True, **common)
    assert kept_positions.tolist() == [1] and dropped["dropped"] is True


def test_selection_and_kid_import_without_tensorflow():
    code = (
        "import sys, numpy as np\n"
        "from cxrcore.synthesis import kid, selection\n"
        "selection.select_indices('last-fraction', 2, num_images=5)\n"
        "kid.kernel_inception_distance(np.eye(4), np.eye(4)[::-1], num_subsets=2)\n"
        "print(sorted(name for name in ('tensorflow', 'keras') if name in sys.modules))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True,
        timeout=120, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


def test_committed_dataset_bytes_are_pinned(file_world, model_files):
    """The dataset part of a synthetic output (manifest, ``dataset.json``, shards) keeps its exact bytes.

    ``dataset.json`` records marker digests that depend on when the test models were saved (``.keras`` files
    carry a save date) and the package version; those fields are checked against their sources, then replaced by
    fixed values before hashing.
    """
    store, run_id = file_world.store, "pinned"
    commit_gan(store, run_id, "PNEUMONIA", model_files.generator, model_files.discriminator)
    assert synthesize.run(make_settings(file_world, run_id))["status"] == "created"
    prefix = synthetic_prefix(run_id, "PNEUMONIA")
    marker = store.read_marker(prefix)
    dataset_version = resolve_version(store, "demo")
    info = json.loads(store.get_bytes(f"{prefix}/dataset.json"))
    assert info.pop("gan_digest") == store.read_marker(gan_prefix(run_id, "PNEUMONIA")).digest
    assert info["source_dataset"].pop("digest") == store.read_marker(dataset_prefix("demo", dataset_version)).digest
    assert info.pop("cxrcore_version") == cxrcore.__version__
    assert info["source_dataset"].pop("version") == dataset_version
    # Added after the pin (the GAN's validation holdout, recorded from gan.json; this fake GAN has none).
    assert info.pop("gan_validation_holdout") is None
    digests = {name: sha256_bytes(store.get_bytes(f"{prefix}/{name}")) for name in marker.outputs
               if name == "manifest.csv" or name.startswith("shards/")}
    digests["dataset.json"] = sha256_bytes(json.dumps(info, indent=2, sort_keys=True).encode())
    assert digests == PINNED_SYNTHETIC_DIGESTS


def test_flagged_gan_is_refused_unless_used_on_purpose(file_world, model_files, capsys):
    """A GAN that cxr-gan-train flagged: exit 1 naming the reasons; with flagged_gan=use the output records it."""
    store, run_id = file_world.store, "run-flagged"
    reason = "near-constant samples: mean per-image std 0.0010 < 0.02"
    commit_gan(store, run_id, "PNEUMONIA", model_files.generator, model_files.discriminator,
               quality={"status": "flagged", "reasons": [reason]})
    with pytest.raises(synthesize.SynthesizeError, match="flagged as failed.*near-constant.*--flagged-gan use"):
        synthesize.run(make_settings(file_world, run_id))
    assert not store.is_committed(synthetic_prefix(run_id, "PNEUMONIA"))
    code = job_main(["--store", store.uri, "--run-id", run_id, "--dataset", "demo", "--class-name", "PNEUMONIA",
                     "--num-images", str(NUM_IMAGES), "--output-size", str(OUTPUT_SIZE)])
    assert code == 1 and "flagged as failed" in capsys.readouterr().err

    result = synthesize.run(make_settings(file_world, run_id, flagged_gan="use"))
    assert result["status"] == "created"
    selection = store.get_json(f"{synthetic_prefix(run_id, 'PNEUMONIA')}/selection.json")
    assert selection["gan"]["quality"] == {"status": "flagged", "reasons": [reason]}
    assert selection["gan"]["flagged_gan"] == "use"
    accuracy = selection["quality"]["two_sample_accuracy_kept"]
    assert accuracy is None or 0.0 <= accuracy <= 1.0
    assert selection["quality"]["kept_statistics"]["image_std"] >= 0.0
    for key in ("repeated_detail_share_kept", "real_repeated_detail_share"):
        share = selection["quality"][key]
        assert share is None or 0.0 <= share <= 1.0, key


# ---------------------------------------------------------------------------------------------------- InceptionV3
@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded InceptionV3 weights file (no ImageNet download here): what a user's own file looks like."""
    return write_inception_weights(tmp_path_factory.mktemp("inception") / "inceptionv3.weights.h5")


@pytest.fixture
def empty_keras_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Keras home without any ImageNet file (what Keras read at import is patched too)."""
    from keras.src.backend import config as keras_config

    home = tmp_path / "keras-home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(home))
    return home


def test_inception_scores_from_a_weights_uri(s3_world, model_files, inception_weights):
    """inception=<s3:// URI>: the kept set gets InceptionV3 KID and FID at 299 px, named by the file's sha256."""
    store, run_id = s3_world.store, "run-inception"
    commit_gan(store, run_id, "NORMAL", model_files.generator, model_files.discriminator)
    store.put_file("weights/inceptionv3.weights.h5", inception_weights)
    uri = f"{store.uri}/weights/inceptionv3.weights.h5"
    settings = make_settings(s3_world, run_id, class_name="NORMAL", inception=uri)

    assert synthesize.run(settings)["status"] == "created"

    prefix = synthetic_prefix(run_id, "NORMAL")
    selection = store.get_json(f"{prefix}/selection.json")
    inception = selection["quality"]["inception"]
    digest = sha256_bytes(inception_weights.read_bytes())
    real = load_dataset(store, "demo").manifest
    num_real = int(((real["class"] == "NORMAL") & (real["split"] == "train")).sum())
    k = round(KEEP_FRACTION * NUM_IMAGES)
    assert inception["status"] == "measured" and inception["extractor"] == f"inceptionv3-sha256-{digest[:12]}"
    assert inception["weights"] == {"weights": uri, "sha256": digest} and inception["input_size"] == 299
    assert (inception["kept"]["num_images"], inception["all_generated"]["num_images"]) == (k, NUM_IMAGES)
    assert inception["num_real"] == num_real
    for key in ("kept", "all_generated"):
        assert np.isfinite(inception[key]["kid"]) and inception[key]["fid"] >= 0.0, key
    assert selection["timings_s"]["inception_s"] > 0.0
    assert store.read_marker(prefix).inputs["inception"] == {"weights": uri, "sha256": digest}
    assert synthesize.run(settings)["status"] == "unchanged"

    # Turning the scores off is another output (its marker records what was used), not a silent reuse.
    off = make_settings(s3_world, run_id, class_name="NORMAL", inception="off")
    assert synthesize.run(off)["status"] == "created"
    assert store.get_json(f"{prefix}/selection.json")["quality"]["inception"] == {
        "status": "off", "reason": "inception=off"}
    assert store.read_marker(prefix).inputs["inception"] == {"weights": "off"}


def test_inception_auto_uses_the_keras_cache_when_it_holds_the_file(
    file_world, model_files, inception_weights, monkeypatch
):
    """inception=auto with Keras' ImageNet file verified in the cache: measured under the ImageNet extractor name.

    Keras' own file cannot be downloaded here, so the cache check is stood in for and the extractor is built from
    the test file at InceptionV3's smallest side; the wiring (what is recorded, and under which name) is real.
    """
    from cxrcore.models import weights_cache
    from cxrcore.steps import inception_weights as resolver

    built: list[str] = []

    def build(weights):
        built.append(weights)
        return real_build(str(inception_weights), input_size=75)

    real_build = resolver.build_inception_extractor
    monkeypatch.setattr(weights_cache, "require_imagenet_weights", lambda backbone: inception_weights)
    monkeypatch.setattr(resolver, "build_inception_extractor", build)
    store, run_id = file_world.store, "run-inception-auto"
    commit_gan(store, run_id, "PNEUMONIA", model_files.generator, model_files.discriminator)

    assert synthesize.run(make_settings(file_world, run_id))["status"] == "created"

    inception = store.get_json(f"{synthetic_prefix(run_id, 'PNEUMONIA')}/selection.json")["quality"]["inception"]
    assert built == ["imagenet"] and inception["status"] == "measured"
    assert inception["extractor"] == "keras-inceptionv3-imagenet-avgpool"
    assert inception["weights"]["weights"] == "imagenet" and inception["input_size"] == 75


def test_inception_without_the_cache_is_skipped_under_auto_and_fails_early_under_imagenet(
    file_world, model_files, empty_keras_home, capsys, monkeypatch
):
    from cxrcore.models.weights_cache import IMAGENET_NO_TOP, WeightsCacheError
    from cxrcore.steps import synthesize as step

    store, run_id = file_world.store, "run-inception-absent"
    commit_gan(store, run_id, "PNEUMONIA", model_files.generator, model_files.discriminator)
    prefix = synthetic_prefix(run_id, "PNEUMONIA")
    fname = IMAGENET_NO_TOP["inceptionv3"].fname

    assert synthesize.run(make_settings(file_world, run_id))["status"] == "created"
    inception = store.get_json(f"{prefix}/selection.json")["quality"]["inception"]
    assert inception["status"] == "skipped" and fname in inception["reason"]
    assert store.read_marker(prefix).inputs["inception"] == {"weights": "absent"}
    marker = store.read_marker(prefix)

    # imagenet: the job stops before generating anything (exit 1, the log names the file and KERAS_HOME), and
    # the committed output is untouched.
    def no_generation(*args, **kwargs):
        raise AssertionError("generated before the weights check")

    monkeypatch.setattr(step, "generate", no_generation)
    with pytest.raises(WeightsCacheError, match=fname):
        synthesize.run(make_settings(file_world, run_id, inception="imagenet"))
    capsys.readouterr()
    code = job_main(["--store", store.uri, "--run-id", run_id, "--dataset", "demo", "--class-name", "PNEUMONIA",
                     "--num-images", str(NUM_IMAGES), "--output-size", str(OUTPUT_SIZE), "--inception", "imagenet"])
    err = capsys.readouterr().err
    assert code == 1 and fname in err and f"KERAS_HOME={empty_keras_home}" in err
    assert store.read_marker(prefix) == marker
    with pytest.raises(synthesize.SynthesizeError, match="No InceptionV3 weights file at"):
        synthesize.run(make_settings(file_world, run_id, inception=str(empty_keras_home / "absent.weights.h5")))
    # A file of another network: refused before generating, naming the file (exit 1), nothing committed.
    wrong = empty_keras_home / "vgg16.weights.h5"
    keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3)).save_weights(wrong)
    with pytest.raises(synthesize.SynthesizeError, match=r"Unusable InceptionV3 weights .*vgg16\.weights\.h5"):
        synthesize.run(make_settings(file_world, run_id, inception=str(wrong)))
    code = job_main(["--store", store.uri, "--run-id", run_id, "--dataset", "demo", "--class-name", "PNEUMONIA",
                     "--num-images", str(NUM_IMAGES), "--output-size", str(OUTPUT_SIZE), "--inception", str(wrong)])
    assert code == 1 and "vgg16.weights.h5" in capsys.readouterr().err
    assert store.read_marker(prefix) == marker
