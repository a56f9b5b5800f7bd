"""``cxr-gan-train`` end to end on tiny demo data: outputs, idempotence, exact resume after a kill, bad input.

Every test runs the real job (``cxrcore.gan_train.run``) against a real store: a ``file://`` directory and the
moto S3 server over HTTP (the ``store`` fixture). The GAN is the paper's architecture at 32 px with 1/8 of the
filters, 1-2 steps per epoch, so a run takes a few seconds on a CPU.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import hashlib
import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrcore import gan_train
from cxrcore.config import GanTrainSettings, PrepareSettings
from cxrcore.data.dataset import load_dataset
from cxrcore.data.demo import write_demo_dataset
from cxrcore.data.ingest import import_dataset
from cxrcore.layout import gan_prefix
from cxrcore.models.dcgan import build_discriminator, build_generator
from cxrcore.storage import Store
from tests.helpers import make_demo_dataset, write_inception_weights

pytestmark = pytest.mark.filterwarnings(
    # Raised inside Keras' own save_weights (h5py reading TF variables); nothing this project can change.
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

#: Tiny but complete: the Table 1 layer stack at 32 px with 1/8 of the filters.
TINY = {
    "dataset": "demo",
    "image_size": 32,
    "width_multiplier": 0.125,
    "batch_size": 4,
    "max_steps_per_epoch": 2,
    "seed": 3,
}
PUBLISHED = {"generator.keras", "discriminator.keras", "losses.csv", "samples.png", "gan.json"}
CHECKPOINT_FILES = {"generator.weights.h5", "discriminator.weights.h5", "optimizers.npz", "state.json"}


class SimulatedKill(Exception):
    """Stands in for a pod being killed in the middle of training."""


def _settings(shrunk_settings, store: Store, **values) -> GanTrainSettings:
    """:data:`TINY` job settings pointing at ``store`` (an S3 store's endpoint included)."""
    return shrunk_settings(GanTrainSettings, store=store, **{**TINY, **values})


def _snapshot(store: Store, prefix: str) -> dict[str, int]:
    return {obj.key: obj.size for obj in store.list(prefix)}


def _committed_epochs(store: Store, prefix: str) -> list[int]:
    keys = store.list_prefixes(f"{prefix}/checkpoints")
    return sorted(int(key.rsplit("-", 1)[1]) for key in keys if store.read_marker(key) is not None)


def _losses(store: Store, prefix: str) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(store.get_bytes(f"{prefix}/losses.csv")))


def test_gan_train_publishes_every_output_and_skips_identical_rerun(store, tmp_path, shrunk_settings):
    import keras

    from cxrcore.models.dcgan import DCGAN

    imported = make_demo_dataset(store, tmp_path)
    settings = _settings(shrunk_settings, store, run_id="smoke", class_name="NORMAL", epochs=2, checkpoint_every=1)
    summary = gan_train.run(settings)

    prefix = gan_prefix("smoke", "NORMAL")
    assert summary["status"] == "trained"
    assert summary["epochs"] == 2 and summary["resumed_from_epoch"] == 0
    marker = store.require_committed(prefix)
    samples = {f"samples/epoch-{epoch:04d}.png" for epoch in (1, 2)}
    assert PUBLISHED | samples <= set(marker.outputs)
    for rel, recorded in marker.outputs.items():
        store.get_bytes(f"{prefix}/{rel}", sha256=recorded["sha256"])  # present and intact

    # Only the class's training images were used: never test images, never the other class.
    dataset = load_dataset(store, "demo", imported.version)
    manifest = dataset.manifest
    train_normal = int(((manifest["split"] == "train") & (manifest["class"] == "NORMAL")).sum())
    assert 0 < train_normal < int((manifest["class"] == "NORMAL").sum())
    info = store.get_json(f"{prefix}/gan.json")
    assert info["dataset"] == {
        "name": "demo",
        "version": imported.version,
        "digest": dataset.marker.digest,
        "split": "train",
        "class_name": "NORMAL",
        "train_images": train_normal,
        "validation_holdout": {"fraction": 0.0, "seed": 0, "images": 0, "images_of_class": 0, "digest": None},
    }
    assert summary["train_images"] == train_normal
    assert info["training"]["epochs"] == 2 and info["training"]["resumed_from_epoch"] == 0
    assert info["training"]["wall_seconds"] > 0
    assert info["model"]["generator_parameters"] > 0 and info["model"]["discriminator_parameters"] > 0
    assert info["device"]["replicas"] == 1 and "tensorflow" in info["device"]
    assert info["settings"]["width_multiplier"] == 0.125
    assert info["training"]["stabilisers"]["paper_settings"] is True and info["training"]["steps"] == 4
    quality = info["quality"]
    assert [row["step"] for row in quality["trajectory"]] == [0, 4]  # untrained, then the published generator
    assert quality["status"] in ("ok", "flagged") and quality["final"] == quality["trajectory"][-1]
    assert quality["feature_extractor"] == "cxr-pixstat-v1" and summary["quality_status"] == quality["status"]
    assert all(0.0 <= row["two_sample_accuracy"] <= 1.0 for row in quality["trajectory"])
    assert all(0.0 <= row["repeated_detail_share"] <= 1.0 for row in quality["trajectory"])
    assert len({row["real_repeated_detail_share"] for row in quality["trajectory"]}) == 1  # one fixed reference

    losses = _losses(store, prefix)
    assert list(losses.columns[:4]) == ["epoch", "d_loss", "g_loss", "seconds"]
    assert losses["epoch"].tolist() == [1, 2]
    assert np.isfinite(losses[["d_loss", "g_loss", "seconds"]].to_numpy()).all()
    grid = store.get_bytes(f"{prefix}/samples.png")
    assert grid.startswith(b"\x89PNG") and grid == store.get_bytes(f"{prefix}/samples/epoch-0002.png")

    assert _committed_epochs(store, prefix) == [1, 2]
    checkpoint = store.require_committed(f"{prefix}/checkpoints/epoch-0002")
    assert CHECKPOINT_FILES | samples <= set(checkpoint.outputs)

    # generator.keras / discriminator.keras are full models that load and generate.
    local = tmp_path / "download"
    generator = keras.models.load_model(store.get_file(f"{prefix}/generator.keras", local / "generator.keras"))
    discriminator = keras.models.load_model(
        store.get_file(f"{prefix}/discriminator.keras", local / "discriminator.keras")
    )
    images = DCGAN(discriminator, generator, latent_dim=100).generate(5, seed=0)
    assert images.shape == (5, 32, 32, 3)
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert DCGAN(discriminator, generator, latent_dim=100).score(images).shape == (5,)

    # The same settings again: nothing is trained and nothing in the store changes.
    before = _snapshot(store, "runs")
    marker_bytes = store.get_bytes(f"{prefix}/_SUCCESS")
    again = gan_train.run(settings)
    assert again["status"] == "unchanged"
    assert again["marker_digest"] == summary["marker_digest"]
    assert _snapshot(store, "runs") == before
    assert store.get_bytes(f"{prefix}/_SUCCESS") == marker_bytes


def _generator_weights(store: Store, prefix: str, tmp_path: Path) -> list[np.ndarray]:
    """The weights of a published ``generator.keras``, in layer order."""
    import keras

    local = store.get_file(f"{prefix}/generator.keras", tmp_path / f"{prefix.replace('/', '_')}-generator.keras")
    return keras.models.load_model(local, compile=False).get_weights()


def _checkpoint_generator(store: Store, key: str, settings: GanTrainSettings, tmp_path: Path) -> list[np.ndarray]:
    """The trained generator weights a checkpoint holds, loaded into a generator of the run's shape."""
    generator = build_generator(settings.latent_dim, width_multiplier=settings.width_multiplier,
                                output_size=settings.image_size, channels=3)
    generator.load_weights(store.get_file(f"{key}/generator.weights.h5", tmp_path / "checkpoint-generator.weights.h5"))
    return generator.get_weights()


def test_gan_train_resumes_exactly_after_a_kill(store, tmp_path, shrunk_settings, monkeypatch):
    make_demo_dataset(store, tmp_path)
    # With a generator weight average: it lives in the optimizer state, so the checkpoints must carry it.
    values = {"class_name": "PNEUMONIA", "epochs": 4, "checkpoint_every": 1, "generator_ema": 0.9}
    # Exactness is the job's property, not the backend's: compare with an uninterrupted run once (file store).
    reference = None
    if store.uri.startswith("file://"):
        gan_train.run(_settings(shrunk_settings, store, run_id="uninterrupted", **values))
        reference = _losses(store, gan_prefix("uninterrupted", "PNEUMONIA"))
        reference_generator = _generator_weights(store, gan_prefix("uninterrupted", "PNEUMONIA"), tmp_path)

    # Kill the job when epoch 3 starts: epochs 1 and 2 are checkpointed, nothing is published.
    original = gan_train.EpochLog.on_epoch_begin

    def kill_at_epoch_three(self, epoch, logs=None):
        if epoch == 2:
            raise SimulatedKill("pod killed during epoch 3")
        original(self, epoch, logs)

    monkeypatch.setattr(gan_train.EpochLog, "on_epoch_begin", kill_at_epoch_three)
    settings = _settings(shrunk_settings, store, run_id="killed", **values)
    with pytest.raises(SimulatedKill):
        gan_train.run(settings)
    prefix = gan_prefix("killed", "PNEUMONIA")
    assert store.read_marker(prefix) is None
    assert _committed_epochs(store, prefix) == [1, 2]

    # The restarted pod continues at epoch 3 and publishes all four epochs.
    monkeypatch.setattr(gan_train.EpochLog, "on_epoch_begin", original)
    summary = gan_train.run(settings)
    assert summary["status"] == "trained"
    assert summary["resumed_from_epoch"] == 2 and summary["epochs_trained"] == 2
    info = store.get_json(f"{prefix}/gan.json")
    assert info["training"]["resumed_from_epoch"] == 2
    assert info["training"]["resumed_from"] == f"{prefix}/checkpoints/epoch-0002"
    assert info["training"]["checkpoints_written"] == [3, 4]
    losses = _losses(store, prefix)
    assert losses["epoch"].tolist() == [1, 2, 3, 4]
    # The step-0 measurement came back with the checkpoint (not taken again on resume); the final one follows.
    assert [row["epoch"] for row in info["quality"]["trajectory"]] == [0, 4]
    marker = store.require_committed(prefix)
    assert {f"samples/epoch-{epoch:04d}.png" for epoch in (1, 2, 3, 4)} <= set(marker.outputs)
    # Only the newest two checkpoints remain.
    assert _committed_epochs(store, prefix) == [3, 4]
    assert [key.rsplit("/", 1)[1] for key in store.list_prefixes(f"{prefix}/checkpoints")] == [
        "epoch-0003",
        "epoch-0004",
    ]
    # Weights, optimizer moments, noise/dropout seeds and data order were all restored: the resumed run
    # reproduces the uninterrupted one.
    if reference is not None:
        np.testing.assert_allclose(
            losses[["d_loss", "g_loss"]].to_numpy(), reference[["d_loss", "g_loss"]].to_numpy(), rtol=1e-5, atol=1e-6
        )
        # The published generator holds the weight average, and the resumed run's equals the uninterrupted one's.
        assert info["model"]["generator_weights"] == "moving average (momentum 0.9)"
        for resumed, uninterrupted in zip(_generator_weights(store, prefix, tmp_path), reference_generator, strict=True):
            np.testing.assert_allclose(resumed, uninterrupted, rtol=1e-5, atol=1e-6)


def test_gan_train_step_budget_with_stabilisers(tmp_path, file_store, shrunk_settings):
    """steps=5 at 2 steps per epoch trains 3 epochs; the stabilisers are used and recorded beside the paper's."""
    store = file_store
    make_demo_dataset(store, tmp_path)
    settings = _settings(
        shrunk_settings, store, run_id="budget", class_name="PNEUMONIA", steps=5, beta_1=0.5, d_learning_rate=4e-4,
        label_smoothing=0.1, diff_augment="translation,cutout", instance_noise=0.1, quality_every=2,
        discriminator_width_multiplier=0.5, generator_ema=0.9, mode_seeking_weight=0.02,
        mode_seeking_detail_weight=0.03, detail_mean_weight=5.0, d_clipnorm=10.0, g_clipnorm=5.0,
    )
    assert settings.width_multiplier != 0.5
    summary = gan_train.run(settings)
    info = store.get_json(f"{gan_prefix('budget', 'PNEUMONIA')}/gan.json")
    training = info["training"]
    assert summary["epochs"] == training["epochs"] == 3 and (training["step_budget"], training["steps"]) == (5, 6)
    assert [row["step"] for row in info["quality"]["trajectory"]] == [0, 2, 4, 6]
    stabilisers = training["stabilisers"]
    assert stabilisers["paper_settings"] is False and stabilisers["beta_1"] == {"value": 0.5, "paper": 0.9}
    assert stabilisers["d_learning_rate"]["value"] == 4e-4 and stabilisers["diff_augment"]["value"] == "translation,cutout"
    assert stabilisers["g_learning_rate"] == {"value": 1e-4, "paper": 1e-4}
    assert stabilisers["generator_ema"] == {"value": 0.9, "paper": 0.0}
    assert stabilisers["mode_seeking_weight"] == {"value": 0.02, "paper": 0.0}
    assert stabilisers["mode_seeking_detail_weight"] == {"value": 0.03, "paper": 0.0}
    assert stabilisers["detail_mean_weight"] == {"value": 5.0, "paper": 0.0}
    assert stabilisers["d_clipnorm"] == {"value": 10.0, "paper": 0.0}
    assert stabilisers["g_clipnorm"] == {"value": 5.0, "paper": 0.0}
    losses = _losses(store, gan_prefix("budget", "PNEUMONIA"))
    assert (losses["d_grad_norm_max"] > 0).all() and (losses["g_grad_norm_max"] > 0).all()
    assert info["model"]["generator_weights"] == "moving average (momentum 0.9)"
    # The published generator is the average, not the trained weights of the last checkpoint.
    prefix = gan_prefix("budget", "PNEUMONIA")
    published = _generator_weights(store, prefix, tmp_path)
    trained = _checkpoint_generator(store, f"{prefix}/checkpoints/epoch-0003", settings, tmp_path)
    assert [array.shape for array in published] == [array.shape for array in trained]
    assert any(not np.allclose(a, b) for a, b in zip(published, trained, strict=True))
    # The discriminator has its own width; Table 1's is the generator's.
    assert stabilisers["discriminator_width_multiplier"] == {
        "value": 0.5, "paper": settings.width_multiplier, "paper_note": "Table 1: the generator's"
    }
    wide = build_discriminator(input_size=settings.image_size, channels=3, width_multiplier=0.5).count_params()
    assert info["model"]["discriminator_width_multiplier"] == 0.5 and info["model"]["discriminator_parameters"] == wide
    # A longer budget of the same trajectory resumes from the committed epoch-3 checkpoint.
    longer = gan_train.run(settings.model_copy(update={"steps": 8}))
    assert longer["resumed_from_epoch"] == 3 and longer["epochs"] == 4


def test_gan_train_scores_with_inception_without_changing_the_trajectory(tmp_path, file_store, shrunk_settings,
                                                                         monkeypatch, capsys):
    """inception=<weights file>: every measurement gains InceptionV3 KID and FID; the weights trained are the same."""
    from cxrcore.steps import inception_weights as resolver

    store = file_store
    make_demo_dataset(store, tmp_path)
    weights = write_inception_weights(tmp_path / "inceptionv3.weights.h5")
    real_build = resolver.build_inception_extractor
    # InceptionV3's smallest side keeps 256 images per measurement fast on CPU; the file is the real one.
    monkeypatch.setattr(resolver, "build_inception_extractor", lambda path: real_build(path, input_size=75))
    plain = _settings(shrunk_settings, store, run_id="plain", class_name="NORMAL", steps=4, quality_every=2,
                      inception="off")
    scored = plain.model_copy(update={"run_id": "scored", "inception": str(weights)})
    gan_train.run(plain)
    assert "inception_kid" not in "".join(capsys.readouterr())
    gan_train.run(scored)
    assert "inception_kid" in "".join(capsys.readouterr())  # the gan_quality events carry the scores

    plain_info = store.get_json(f"{gan_prefix('plain', 'NORMAL')}/gan.json")
    info = store.get_json(f"{gan_prefix('scored', 'NORMAL')}/gan.json")
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert info["quality"]["inception"]["status"] == "measured"
    assert info["quality"]["inception"]["extractor"] == f"inceptionv3-sha256-{digest[:12]}"
    assert info["quality"]["inception"]["weights"] == {"weights": str(weights), "sha256": digest}
    rows = info["quality"]["trajectory"]
    assert [row["step"] for row in rows] == [0, 2, 4]
    for row in rows:
        assert np.isfinite(row["inception_kid"]) and row["inception_fid"] >= 0.0, row
        assert row["inception_extractor"] == f"inceptionv3-sha256-{digest[:12]}"
    assert plain_info["quality"]["inception"] == {"status": "off", "reason": "inception=off"}
    assert all("inception_kid" not in row for row in plain_info["quality"]["trajectory"])
    # Scoring changed no weight: both runs published the same generator and logged the same losses.
    for a, b in zip(_generator_weights(store, gan_prefix("plain", "NORMAL"), tmp_path),
                    _generator_weights(store, gan_prefix("scored", "NORMAL"), tmp_path), strict=True):
        np.testing.assert_array_equal(a, b)
    pd.testing.assert_frame_equal(_losses(store, gan_prefix("plain", "NORMAL")).drop(columns=["seconds", "images_per_second"]),
                                  _losses(store, gan_prefix("scored", "NORMAL")).drop(columns=["seconds", "images_per_second"]))
    assert [row["kid"] for row in rows] == [row["kid"] for row in plain_info["quality"]["trajectory"]]


def _published_statistics(store: Store, prefix: str, settings: GanTrainSettings, tmp_path: Path) -> dict[str, float]:
    """Sample statistics of the published generator.keras on the quality measurements' fixed noise."""
    import keras

    from cxrcore.synthesis.gan_quality import sample_statistics
    from cxrcore.training.gan import QUALITY_IMAGES, QUALITY_NOISE_OFFSET

    local = store.get_file(f"{prefix}/generator.keras", tmp_path / f"{prefix.replace('/', '_')}-stats.keras")
    generator = keras.models.load_model(local, compile=False)
    rng = np.random.default_rng(settings.seed + QUALITY_NOISE_OFFSET)
    noise = rng.standard_normal((QUALITY_IMAGES, settings.latent_dim)).astype(np.float32)
    images = np.concatenate([np.asarray(generator(noise[start : start + 64], training=False))
                             for start in range(0, len(noise), 64)])
    return sample_statistics(images)


def _assert_published_row(statistics: dict[str, float], row: dict[str, float]) -> None:
    for name in ("mean", "image_std", "sample_std"):
        assert statistics[name] == pytest.approx(row[name], abs=2e-4), name


def test_gan_train_publishes_the_best_generator_when_the_last_broke_down(tmp_path, file_store, shrunk_settings,
                                                                         monkeypatch):
    """A late breakdown (injected into the measured KIDs) under publish=guarded: the lowest-KID generator and its
    discriminator are published, with their epoch's grid; publish=last on the same checkpoints republishes the broken
    one (flagged) without training; guarded again restores the kept networks from the final checkpoint."""
    from cxrcore.synthesis.gan_quality import QualityProbe

    store = file_store
    make_demo_dataset(store, tmp_path)
    measure = QualityProbe.measure
    kids = iter([5.0, 0.30, 0.10, 0.90])  # untrained, steps 2 and 4 improve, step 6 breaks down

    def scripted(self, generated):
        return {**measure(self, generated), "kid": next(kids)}

    monkeypatch.setattr(QualityProbe, "measure", scripted)
    settings = _settings(
        shrunk_settings, store, run_id="guard", class_name="PNEUMONIA", steps=6, quality_every=2, checkpoint_every=1,
        generator_ema=0.5, publish="guarded", g_learning_rate=0.02, d_learning_rate=0.02,
    )
    gan_train.run(settings)
    prefix = gan_prefix("guard", "PNEUMONIA")
    info = store.get_json(f"{prefix}/gan.json")
    quality = info["quality"]
    assert [row["kid"] for row in quality["trajectory"]] == [5.0, 0.30, 0.10, 0.90]
    # A tiny GAN after 6 steps draws near-constant images (flagged for that), but the breakdown is not held
    # against the published generator, which preceded it.
    assert quality["final"]["step"] == 4 and quality["last"]["step"] == 6
    assert not any(reason.startswith("broke down") for reason in quality["reasons"])
    steps_4_and_6 = quality["trajectory"][2], quality["trajectory"][3]
    assert any(steps_4_and_6[0][name] != steps_4_and_6[1][name] for name in ("mean", "image_std", "sample_std"))
    published = quality["published"]
    assert (published["rule"], published["step"], published["epoch"], published["replaced_last"]) == (
        "guarded", 4, 2, True
    )
    assert "broke down: KID 0.9000 at step 6" in published["reason"]
    # The published networks are those measured at step 4 (the generator's moving average as measured), and the
    # report's grid is that epoch's.
    _assert_published_row(_published_statistics(store, prefix, settings, tmp_path), quality["trajectory"][2])
    discriminator = _published_weights(store, prefix, "discriminator", tmp_path)
    for name, expected_equal in (("epoch-0002", True), ("epoch-0003", False)):
        if store.read_marker(f"{prefix}/checkpoints/{name}") is None:
            continue
        held = _checkpoint_discriminator(store, f"{prefix}/checkpoints/{name}", settings, tmp_path)
        assert all(np.array_equal(a, b) for a, b in zip(discriminator, held, strict=True)) is expected_equal
    assert store.get_bytes(f"{prefix}/samples.png") == store.get_bytes(f"{prefix}/samples/epoch-0002.png")
    final_checkpoint = store.require_committed(f"{prefix}/checkpoints/epoch-0003")
    assert "best.npz" in final_checkpoint.outputs
    first_generator = _generator_weights(store, prefix, tmp_path)
    with np.load(store.get_file(f"{prefix}/checkpoints/epoch-0003/best.npz", tmp_path / "best.npz")) as kept:
        assert kept["measured"].tolist() == [4, 2] and float(kept["kid"]) == 0.10
        kept_generator = [kept[name] for name in sorted(kept.files) if name.startswith("g_")]
    for published_array, kept_array in zip(first_generator, kept_generator, strict=True):
        np.testing.assert_array_equal(published_array, kept_array)

    # publish=last: same trajectory, so the final checkpoint is restored and nothing trains or is measured again.
    last = gan_train.run(settings.model_copy(update={"publish": "last"}))
    assert last["resumed_from_epoch"] == 3 and last["epochs_trained"] == 0
    quality = store.get_json(f"{prefix}/gan.json")["quality"]
    assert any(reason.startswith("broke down") for reason in quality["reasons"])
    assert quality["published"]["replaced_last"] is False and quality["published"]["reason"] is None
    _assert_published_row(_published_statistics(store, prefix, settings, tmp_path), quality["trajectory"][3])
    assert store.get_bytes(f"{prefix}/samples.png") == store.get_bytes(f"{prefix}/samples/epoch-0003.png")

    # guarded again: the step-4 networks come back from the checkpoint's best.npz.
    gan_train.run(settings)
    assert store.get_json(f"{prefix}/gan.json")["quality"]["published"]["step"] == 4
    for again, first in zip(_generator_weights(store, prefix, tmp_path), first_generator, strict=True):
        np.testing.assert_array_equal(again, first)


def _published_weights(store: Store, prefix: str, network: str, tmp_path: Path) -> list[np.ndarray]:
    import keras

    local = store.get_file(f"{prefix}/{network}.keras", tmp_path / f"{prefix.replace('/', '_')}-{network}.keras")
    return keras.models.load_model(local, compile=False).get_weights()


def _checkpoint_discriminator(store: Store, key: str, settings: GanTrainSettings, tmp_path: Path) -> list[np.ndarray]:
    discriminator = build_discriminator(input_size=settings.image_size, channels=3,
                                        width_multiplier=settings.discriminator_width())
    local = store.get_file(f"{key}/discriminator.weights.h5", tmp_path / f"{key.replace('/', '_')}-d.weights.h5")
    discriminator.load_weights(local)
    return discriminator.get_weights()


def test_gan_train_refuses_a_class_without_training_images(tmp_path, file_store):
    store = file_store
    source = tmp_path / "only-test-pneumonia"
    write_demo_dataset(source, per_class=6, size=32, seed=0)
    shutil.rmtree(Path(source) / "train" / "PNEUMONIA")  # PNEUMONIA images exist, but only in test/
    import_dataset(store, PrepareSettings(source=str(source), name="lopsided", image_size=32, split="official"))

    settings = GanTrainSettings(
        store=store.uri, run_id="empty", class_name="PNEUMONIA", **{**TINY, "dataset": "lopsided"}, epochs=1
    )
    with pytest.raises(ValueError, match=r"Dataset 'lopsided' version '[^']+' has no training images of class "
                       r"'PNEUMONIA'.*'test': [1-9]"):
        gan_train.run(settings)
    assert store.list("runs") == []


def test_gan_train_entrypoint_exit_codes(tmp_path, capsys):
    from jobs.gan_train import main

    assert main(["--run-id", "r1", "--class-name", "SOMETHING"]) == 2  # bad settings
    assert "class_name" in capsys.readouterr().err
    store_uri = (tmp_path / "empty-store").as_uri()
    # A dataset that was never imported: the job fails (exit 1) and names the dataset, publishing nothing.
    assert main(["--store", store_uri, "--run-id", "r1", "--class-name", "NORMAL", "--dataset", "absent"]) == 1
    assert "absent" in capsys.readouterr().err
    assert not (tmp_path / "empty-store" / "runs").exists()


def test_checkpoint_series_keeps_one_pruning_rule(tmp_path, file_store):
    """The rule both trainers share (cxrcore.ml.checkpoints): newest two at or below the epoch just written."""
    from cxrcore.ml.checkpoints import CheckpointSeries, read_state, write_state
    from cxrcore.ml.model_io import SavedFile, fetch_verified
    from cxrcore.storage import IntegrityError

    store = file_store
    prefix = "runs/r1/gan/NORMAL"

    def series(trajectory: str) -> CheckpointSeries:
        return CheckpointSeries(
            store, prefix, inputs_for=lambda epoch: {"trajectory": trajectory, "epoch": epoch}, producer="test"
        )

    def commit(target: CheckpointSeries, epoch: int) -> int:
        local = tmp_path / f"stage-{epoch}"
        (local / "samples").mkdir(parents=True, exist_ok=True)
        write_state(local, {"epoch": epoch})
        (local / "samples" / f"epoch-{epoch:04d}.png").write_bytes(b"png")
        return target.commit(epoch, local)[1]

    def folders() -> list[int]:
        return [epoch for epoch, _ in series("a").folders()]

    long_run = series("a")
    for epoch in range(1, 5):
        commit(long_run, epoch)
    assert folders() == [3, 4] and [c.epoch for c in long_run.resume_candidates(10)] == [4, 3]
    store.put_bytes(f"{prefix}/checkpoints/epoch-0009/state.json", b"{}")  # an uncommitted leftover
    # A shorter run of the same trajectory: checkpoints above its epoch stay (valid resume points); the
    # leftover goes; the newest two at or below its epoch stay.
    assert commit(long_run, 2) == 1
    assert folders() == [2, 3, 4]
    assert [c.epoch for c in long_run.resume_candidates(3)] == [3, 2]
    newest = long_run.resume_candidates(3)[0]
    fetched = fetch_verified(store, newest.key, newest.marker, {"state.json": tmp_path / "fetched" / "state.json"})
    assert read_state(fetched["state.json"].parent) == {"epoch": 3}
    # Other inputs: the old trajectory's checkpoints are not resume points and are pruned.
    other = series("b")
    assert other.resume_candidates(10) == []
    assert commit(other, 1) == 3
    assert folders() == [1] and long_run.resume_candidates(10) == []
    # A staged file whose sha256 differs from the one taken at save time is never committed.
    local = tmp_path / "stage-bad"
    local.mkdir()
    write_state(local, {"epoch": 2})
    with pytest.raises(IntegrityError):
        other.commit(2, local, saved={"state.json": SavedFile(local / "state.json", "0" * 64)})
    assert store.read_marker(other.key(2)) is None and folders() == [1]


def test_stabilisers_compare_with_the_paper_not_with_the_run():
    """A run that only raises ``learning_rate`` is not the paper's: both rates differ from the paper's 1e-4."""
    from cxrcore.steps.gan_train import stabilisers

    changed = stabilisers(GanTrainSettings(run_id="r", class_name="NORMAL", learning_rate=2e-4))
    assert changed["d_learning_rate"] == {"value": 2e-4, "paper": 1e-4} and changed["paper_settings"] is False
    wider = stabilisers(GanTrainSettings(run_id="r", class_name="NORMAL", width_multiplier=0.25,
                                         discriminator_width_multiplier=1.0))
    assert wider["discriminator_width_multiplier"] == {
        "value": 1.0, "paper": 0.25, "paper_note": "Table 1: the generator's"
    } and not wider["paper_settings"]
    unset = GanTrainSettings(run_id="r", class_name="NORMAL", width_multiplier=0.25, discriminator_width_multiplier="0")
    assert unset.discriminator_width_multiplier is None and unset.discriminator_width() == 0.25  # Argo's "0": unset
    paper = stabilisers(GanTrainSettings(run_id="r", class_name="NORMAL"))
    assert paper["paper_settings"] is True and paper["beta_1"] == {"value": 0.9, "paper": 0.9}
    assert paper["diff_augment"] == {"value": "none", "paper": "none"} and paper["instance_noise"]["annealed_to_zero"]
