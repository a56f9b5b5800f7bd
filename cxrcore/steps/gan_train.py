"""``cxr-gan-train``: train the DCGAN of one class (paper Table 1), checkpointed, resumable and idempotent.

See docs/architecture.md#layers and #store-layout. One job trains one class's DCGAN on the **training split** of
a dataset version (test images never reach the GAN) and publishes it under ``runs/<run_id>/gan/<CLASS>/``
(:func:`cxrcore.layout.gan_prefix`)::

    runs/<run_id>/gan/<CLASS>/
        generator.keras  discriminator.keras      full models (keras.models.load_model): the measured generator
                                                  ``publish`` chose (the last one unless told otherwise) and
                                                  the discriminator as it was then
        losses.csv                                epoch, d_loss, g_loss, seconds, d_real_accuracy,
                                                  d_fake_accuracy, images_per_second, d_grad_norm_max,
                                                  g_grad_norm_max (one row per epoch)
        samples.png                               grid of the published generator's epoch (fixed, seeded noise)
        samples/epoch-NNNN.png                    one grid per epoch
        gan.json                                  settings, parameter counts, dataset version and digest,
                                                  train image count, validation_holdout (the classifiers'
                                                  validation split left out), epochs/steps, stabilisers, resume point,
                                                  wall time, device, and ``quality``: the measurements
                                                  every ``quality_every`` steps and the verdict (``ok`` or
                                                  ``flagged`` with reasons; cxrcore.synthesis.gan_quality),
                                                  and ``quality.published``: which generator was published
        _SUCCESS                                  marker (written last)
        checkpoints/epoch-NNNN/                   each its own committed output (:mod:`cxrcore.training.gan_state`)

The step: plan (dataset version, :func:`job_inputs`) -> skip when the prefix is committed from the same inputs
(without loading images or TensorFlow models) -> train (:func:`cxrcore.training.gan.train_gan`) -> commit.

Checkpoints and resume (:mod:`cxrcore.ml.checkpoints`): after every ``checkpoint_every`` epochs and after the
last one, a checkpoint is committed with ``inputs = {"trajectory": ..., "epoch": N}``. The *trajectory* is
everything the weights after epoch N depend on (the job inputs minus the total epoch count), so a run extended
from 100 to 150 epochs resumes from its epoch-100 checkpoint. On start the job restores the newest committed
checkpoint of the same trajectory whose epoch does not exceed the requested count. On one device the resumed run
reproduces the uninterrupted one exactly (the tests check it); under ``MirroredStrategy`` it matches up to the
order of cross-device reductions. A killed pod loses at most ``checkpoint_every`` epochs.

Which generator is published (``publish``; :func:`cxrcore.synthesis.gan_quality.choose_published`): ``last``
(the paper's), ``best`` (the lowest KID of the measured trained generators) or ``guarded`` (the last unless it
broke down late, then the lowest-KID one). The networks of the lowest-KID measurement so far travel in every
checkpoint (``best.npz``), so a resumed run publishes the same ones, and ``publish`` and ``quality_every`` are
not part of the trajectory: changing the rule republishes from the final checkpoint without training again. The
verdict is taken on the measurements up to the published generator; ``quality.published`` records the rule,
the step and, when it is not the last, why.

Hardware (:mod:`cxrcore.ml.devices`): ``batch_size`` is the *global* batch, so results do not depend on the GPU
count; ``mixed_precision`` and ``xla`` apply on GPU only.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from cxrcore import __version__
from cxrcore.config import GanTrainSettings, identity
from cxrcore.data.dataset import dataset_prefix, load_dataset, resolve_version
from cxrcore.layout import gan_prefix
from cxrcore.logging import get_logger
from cxrcore.ml.checkpoints import CHECKPOINTS_DIR, CheckpointSeries, checkpoint_key
from cxrcore.ml.devices import Devices, configure_devices
from cxrcore.ml.model_io import put_verified, save_model
from cxrcore.models import (
    DISCRIMINATOR_PAPER_PARAMS,
    GENERATOR_PAPER_PARAMS,
    model_summary_counts,
)
from cxrcore.steps.inception_weights import InceptionScorer, resolve_inception
from cxrcore.storage import (
    MARKER_NAME,
    Marker,
    Store,
    StoreError,
    hash_inputs,
    join_key,
)
from cxrcore.synthesis.gan_quality import THUMBNAIL_SIZE, judge
from cxrcore.synthesis.kid import FEATURE_EXTRACTOR_NAME
from cxrcore.training.classifier_data import validation_digest, validation_image_ids
from cxrcore.training.gan import CHANNELS, GanTraining, train_gan
from cxrcore.vocab import PAPER_LEARNING_RATE

__all__ = [
    "JOB_NAME",
    "OUTPUT_FORMAT",
    "checkpoint_prefix",
    "gan_info",
    "job_inputs",
    "run",
    "trajectory_inputs",
]

JOB_NAME = "cxr-gan-train"
#: Version of the output layout written by this step (part of the inputs: a layout change retrains).
OUTPUT_FORMAT = 10  # 2: quality, stabilisers; 3: validation_holdout; 4: D width; 5: generator weight average;
# 6: mode-seeking term; 7: its detail-band variant; 8: the detail-mean term; 9: publish (best.npz in checkpoints);
# 10: InceptionV3 KID/FID in the measurements (quality.inception says which weights, or why none), and the
# gradient spike guards (d_clipnorm, g_clipnorm)
_INFO_FILE = "gan.json"

log = get_logger(__name__)


# ---------------------------------------------------------------------------------------------- plan
def trajectory_inputs(settings: GanTrainSettings, dataset_marker: Marker, dataset_version: str) -> dict[str, Any]:
    """Everything the weights after any epoch depend on: dataset content and every result-changing setting.

    That is :func:`cxrcore.config.identity` of the settings without the total epoch count (a longer run passes
    through the same states), plus the resolved dataset version and its marker digest. Settings marked as not
    changing the result (store, logging, ``checkpoint_every``) are left out, and so are ``publish`` and
    ``quality_every``: they choose among the states, they do not change them.

    Args:
        settings: The job settings.
        dataset_marker: The dataset version's ``_SUCCESS`` marker.
        dataset_version: The resolved dataset version id.

    Returns:
        A JSON-ready dict.
    """
    recorded = identity(settings)
    del (
        recorded["epochs"],
        recorded["steps"],
        recorded["publish"],
        recorded["quality_every"],
    )  # in job_inputs only: a longer budget passes the same states, and these choose among them
    return {
        "job": "gan-train",
        "format": OUTPUT_FORMAT,
        "dataset": settings.dataset,
        "dataset_version": dataset_version,
        "dataset_digest": dataset_marker.digest,
        "split": "train",
        "channels": CHANNELS,
        **recorded,
    }


def job_inputs(
    settings: GanTrainSettings, dataset_marker: Marker, dataset_version: str, inception: dict[str, str]
) -> dict[str, Any]:
    """The ``inputs`` of the GAN prefix's marker: the trajectory, the epoch count or the step budget, which
    measured generator is published (``publish``, ``quality_every``) and what scored the measurements besides
    the offline KID (``inception``: :class:`cxrcore.steps.inception_weights.InceptionScorer` ``record``; not part
    of the trajectory, which it does not change)."""
    recorded = identity(settings)
    budget = {"epochs": recorded["epochs"]} if recorded["steps"] is None else {"steps": recorded["steps"]}
    return {
        "trajectory": trajectory_inputs(settings, dataset_marker, dataset_version),
        **budget,
        "publish": recorded["publish"],
        "quality_every": recorded["quality_every"],
        "inception": inception,
    }


def checkpoint_prefix(prefix: str, epoch: int) -> str:
    """``<gan prefix>/checkpoints/epoch-NNNN`` (``epoch`` = number of completed epochs)."""
    return checkpoint_key(prefix, epoch)


def _checkpoint_series(store: Store, prefix: str, trajectory: dict[str, Any]) -> CheckpointSeries:
    return CheckpointSeries(
        store,
        prefix,
        inputs_for=lambda epoch: {"trajectory": trajectory, "epoch": epoch},
        producer=f"{JOB_NAME} {__version__}",
    )


# ---------------------------------------------------------------------------------------------- data
def _train_images(store: Store, settings: GanTrainSettings, version: str) -> tuple[np.ndarray, dict[str, Any]]:
    """The class's training-split images (uint8, ``(n, h, w)``) and ``gan.json``'s ``validation_holdout``.

    Never test images, and never the classifiers' validation split when ``validation_fraction > 0``: the
    patients :func:`cxrcore.training.classifier_data.validation_image_ids` carves are left out, so no synthetic
    image is drawn from a patient that picks the classifiers' best epoch and threshold.
    """
    dataset = load_dataset(store, settings.dataset, version)
    held_out = validation_image_ids(
        dataset.manifest, fraction=settings.validation_fraction, seed=settings.validation_seed
    )
    images, manifest = dataset.subset("train")
    of_class = (manifest["class"] == settings.class_name).to_numpy()
    left_out = of_class & manifest["image_id"].astype(str).isin(held_out).to_numpy()
    selected = images[of_class & ~left_out]
    if len(selected) == 0:
        counts_frame = dataset.manifest[dataset.manifest["class"] == settings.class_name]
        counts = {str(split): int(count) for split, count in sorted(counts_frame["split"].value_counts().items())}
        raise ValueError(
            f"Dataset {settings.dataset!r} version {dataset.version!r} has no training images of class "
            f"{settings.class_name!r} outside the classifiers' validation split (images of that class per "
            f"split: {counts}, {int(left_out.sum())} held out for validation); the GAN trains on the "
            f"train split only. Received: class_name={settings.class_name!r}, "
            f"validation_fraction={settings.validation_fraction}"
        )
    holdout = {
        "fraction": settings.validation_fraction,
        "seed": settings.validation_seed,
        "images": len(held_out),
        "images_of_class": int(left_out.sum()),
        "digest": validation_digest(held_out),
    }
    return selected, holdout


# ---------------------------------------------------------------------------------------------- outputs
def gan_info(
    settings: GanTrainSettings,
    training: GanTraining,
    *,
    dataset_version: str,
    dataset_digest: str,
    train_images: int,
    device: dict[str, Any],
    wall_seconds: float,
    validation_holdout: dict[str, Any],
    inception: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The content of ``gan.json`` (pure).

    ``validation_holdout`` records the classifiers' validation split left out of training (fraction, seed,
    images, digest of its ids: :func:`cxrcore.training.classifier_data.validation_digest`); ``inception`` what
    scored the measurements with InceptionV3 (``quality.inception``), or why nothing did.
    """
    last = training.record.losses[-1]
    epochs = training.epochs
    return {
        "format": OUTPUT_FORMAT,
        "job": JOB_NAME,
        "cxrcore_version": __version__,
        "settings": settings.model_dump(
            mode="json",
            exclude={"s3", "store", "io_workers", "log_level", "log_format"},
        ),
        "dataset": {
            "name": settings.dataset,
            "version": dataset_version,
            "digest": dataset_digest,
            "split": "train",
            "class_name": settings.class_name,
            "train_images": train_images,
            "validation_holdout": validation_holdout,
        },
        "model": {
            "architecture": "DCGAN (paper Table 1)",
            "image_size": settings.image_size,
            "channels": CHANNELS,
            "latent_dim": settings.latent_dim,
            "width_multiplier": settings.width_multiplier,
            "discriminator_width_multiplier": settings.discriminator_width(),
            "generator_weights": (
                f"moving average (momentum {settings.generator_ema})" if settings.generator_ema else "trained"
            ),
            "generator_parameters": model_summary_counts(training.model.generator)[1],
            "discriminator_parameters": model_summary_counts(training.model.discriminator)[1],
            "paper_generator_parameters": GENERATOR_PAPER_PARAMS,
            "paper_discriminator_parameters": DISCRIMINATOR_PAPER_PARAMS,
        },
        "training": {
            "epochs": epochs,
            "step_budget": settings.steps,
            "steps": epochs * training.plan.steps_per_epoch,
            "steps_per_epoch": training.plan.steps_per_epoch,
            "batch_size": training.plan.batch_size,
            "requested_batch_size": settings.batch_size,
            "learning_rate": settings.learning_rate,
            "optimizer": "Adam (discriminator and generator)",
            "stabilisers": stabilisers(settings),
            "loss": "BinaryCrossentropy(from_logits=True)",
            "resumed_from_epoch": training.initial_epoch,
            "resumed_from": training.resumed_from,
            "epochs_trained_this_run": epochs - training.initial_epoch,
            "checkpoints_written": training.checkpoints_written,
            "train_seconds": round(training.train_seconds, 3),
            "training_seconds_all_epochs": round(sum(float(row["seconds"]) for row in training.record.losses), 3),
            "wall_seconds": round(wall_seconds, 3),
            "final_d_loss": last["d_loss"],
            "final_g_loss": last["g_loss"],
        },
        "quality": quality_section(training.record.quality, training.published, inception=inception),
        "device": device,
    }


def stabilisers(settings: GanTrainSettings) -> dict[str, Any]:
    """The DCGAN training settings used, each beside the paper's value, and whether all are the paper's (pure).

    The paper's values are the settings' defaults (Adam beta_1 0.9, no smoothing, DiffAugment or instance noise)
    and :data:`cxrcore.vocab.PAPER_LEARNING_RATE` for both networks, whatever ``learning_rate`` this run set.
    """
    d_rate, g_rate = settings.learning_rates()
    used = {
        "beta_1": settings.beta_1,
        "d_learning_rate": d_rate,
        "g_learning_rate": g_rate,
        "label_smoothing": settings.label_smoothing,
        "diff_augment": settings.diff_augment,
        "instance_noise": settings.instance_noise,
        "mode_seeking_weight": settings.mode_seeking_weight,
        "mode_seeking_detail_weight": settings.mode_seeking_detail_weight,
        "detail_mean_weight": settings.detail_mean_weight,
        "discriminator_width_multiplier": settings.discriminator_width(),
        "generator_ema": settings.generator_ema,
        "d_clipnorm": settings.d_clipnorm,
        "g_clipnorm": settings.g_clipnorm,
    }
    defaults = GanTrainSettings.model_fields
    paper = {
        name: PAPER_LEARNING_RATE if name.endswith("learning_rate") else defaults[name].default for name in used
    }
    paper["discriminator_width_multiplier"] = settings.width_multiplier  # Table 1: one scale for both networks
    record: dict[str, Any] = {name: {"value": used[name], "paper": paper[name]} for name in used}
    record["instance_noise"]["annealed_to_zero"] = True
    record["discriminator_width_multiplier"]["paper_note"] = "Table 1: the generator's"
    record["paper_settings"] = used == paper
    return record


def quality_section(
    trajectory: list[dict[str, Any]], published: dict[str, Any], *, inception: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``gan.json``'s ``quality`` (pure).

    The verdict (:func:`cxrcore.synthesis.gan_quality.judge`) is taken on the measurements up to the published
    generator, whose row is ``final``; ``published`` is
    :func:`cxrcore.synthesis.gan_quality.choose_published`'s answer and ``last`` the last measurement.
    ``inception`` says what scored the rows' ``inception_kid`` / ``inception_fid`` (or why they have none); the
    verdict and the publishing rules use the offline KID only.
    """
    up_to_published = trajectory[: published["index"] + 1]
    verdict = judge(up_to_published)
    scored = [row for row in trajectory if row.get("kid") is not None]
    return {
        **verdict,
        "feature_extractor": FEATURE_EXTRACTOR_NAME,
        "two_sample_test": f"5-fold logistic regression on {THUMBNAIL_SIZE}x{THUMBNAIL_SIZE} thumbnails, "
        "generated vs real training images (0.5 = indistinguishable)",
        "published": {name: value for name, value in published.items() if name != "index"},
        "final": up_to_published[-1],
        "last": trajectory[-1],
        "best_kid": min(scored, key=lambda row: row["kid"]) if scored else None,
        "inception": inception if inception is not None else {"status": "off", "reason": "not requested"},
        "trajectory": trajectory,
    }


def _summary(store: Store, prefix: str, info: dict[str, Any], *, status: str, marker: Marker) -> dict[str, Any]:
    training = info["training"]
    return {
        "status": status,
        "uri": store.url(prefix),
        "prefix": prefix,
        "run_id": info["settings"]["run_id"],
        "class_name": info["settings"]["class_name"],
        "dataset": info["dataset"]["name"],
        "dataset_version": info["dataset"]["version"],
        "train_images": info["dataset"]["train_images"],
        "epochs": training["epochs"],
        "resumed_from_epoch": training["resumed_from_epoch"],
        "epochs_trained": training["epochs_trained_this_run"],
        "final_d_loss": training["final_d_loss"],
        "final_g_loss": training["final_g_loss"],
        "wall_seconds": training["wall_seconds"],
        "generator_parameters": info["model"]["generator_parameters"],
        "discriminator_parameters": info["model"]["discriminator_parameters"],
        "quality_status": info["quality"]["status"],
        "quality_reasons": info["quality"]["reasons"],
        "marker_digest": marker.digest,
    }


def _existing_summary(store: Store, prefix: str, marker: Marker) -> dict[str, Any]:
    recorded = marker.outputs.get(_INFO_FILE)
    if recorded is None:
        raise StoreError(f"{store.url(prefix)}/{MARKER_NAME} does not list {_INFO_FILE}")
    info = json.loads(store.get_bytes(join_key(prefix, _INFO_FILE), sha256=recorded["sha256"]))
    return _summary(store, prefix, info, status="unchanged", marker=marker)


def _publish(
    store: Store,
    prefix: str,
    training: GanTraining,
    info: dict[str, Any],
    inputs: dict[str, Any],
    work_dir: Path,
) -> Marker:
    """Saves both published networks (verified) and commits the GAN prefix, leaving its checkpoints in place."""
    with training.published_networks() as (published_generator, published_discriminator):
        generator = save_model(published_generator, work_dir / "models" / "generator.keras")
        discriminator = save_model(published_discriminator, work_dir / "models" / "discriminator.keras")
    with store.commit(
        prefix,
        inputs=inputs,
        producer=f"{JOB_NAME} {__version__}",
        preserve=(CHECKPOINTS_DIR,),
    ) as transaction:
        put_verified(transaction, "generator.keras", generator)
        put_verified(transaction, "discriminator.keras", discriminator)
        transaction.put_bytes("losses.csv", training.record.losses_csv())
        transaction.put_bytes("samples.png", training.published_grid())
        transaction.put_dir(training.record.samples_dir, "samples")
        transaction.put_json(_INFO_FILE, info)
    return transaction.marker


def _log_committed(logger: Any, uri: str, training: GanTraining, info: dict[str, Any]) -> None:
    """``gan_committed`` (and ``gan_flagged`` first when the quality verdict flagged the GAN)."""
    last = training.record.losses[-1]
    quality = info["quality"]
    if quality["status"] == "flagged":
        logger.warning("gan_flagged", uri=uri, reasons=quality["reasons"])
    logger.info(
        "gan_committed",
        uri=uri,
        epochs=training.epochs,
        steps=info["training"]["steps"],
        resumed_from_epoch=training.initial_epoch,
        quality=quality["status"],
        published_step=quality["published"]["step"],
        kid=quality["final"]["kid"],
        two_sample_accuracy=quality["final"]["two_sample_accuracy"],
        final_d_loss=round(last["d_loss"], 5),
        final_g_loss=round(last["g_loss"], 5),
        wall_seconds=info["training"]["wall_seconds"],
    )


# ---------------------------------------------------------------------------------------------- the step
def run(settings: GanTrainSettings) -> dict[str, Any]:
    """Trains (or resumes, or skips) the DCGAN of ``settings.class_name`` and commits it to the store.

    Args:
        settings: The job settings.

    Returns:
        A summary dict: ``status`` (``trained`` or ``unchanged``), ``uri``, the dataset version, train image
        count, epochs, ``resumed_from_epoch``, final losses, wall time, parameter counts and the marker digest.

    Raises:
        ValueError: Bad settings for the model (image size not a multiple of 8) or no training images of the
            class in the dataset version.
        cxrcore.data.dataset.DatasetError: Missing or uncommitted dataset version.
        cxrcore.storage.StoreError: Store failures.
    """
    if settings.image_size % 8 != 0:
        raise ValueError(
            f"image_size must be a multiple of 8 (the DCGAN has three stride-2 stages). "
            f"Received: image_size={settings.image_size}"
        )
    started = time.monotonic()
    logger = log.bind(job=JOB_NAME, run_id=settings.run_id, class_name=settings.class_name)
    store = settings.open_store()
    prefix = gan_prefix(settings.run_id, settings.class_name)
    version = resolve_version(store, settings.dataset, settings.dataset_version)
    dataset_marker = store.require_committed(dataset_prefix(settings.dataset, version))
    trajectory = trajectory_inputs(settings, dataset_marker, version)
    with tempfile.TemporaryDirectory(prefix="cxr-gan-") as tmp:
        work_dir = Path(tmp)
        inception = resolve_inception(settings.inception, directory=work_dir,
                                      s3=settings.s3.as_options(settings.io_workers), logger=logger)
        inputs = job_inputs(settings, dataset_marker, version, inception.record)
        budget = {"epochs": settings.resolved_epochs(), "steps": settings.steps}

        marker = store.read_marker(prefix)
        if marker is not None and marker.inputs_hash == hash_inputs(inputs):
            logger.info("gan_unchanged", uri=store.url(prefix), dataset_version=version, **budget)
            return _existing_summary(store, prefix, marker)
        return _train_and_publish(
            settings, store, prefix, version, dataset_marker, trajectory, inputs, inception, work_dir, started, logger
        )


def _train_and_publish(
    settings: GanTrainSettings,
    store: Store,
    prefix: str,
    version: str,
    dataset_marker: Marker,
    trajectory: dict[str, Any],
    inputs: dict[str, Any],
    inception: InceptionScorer,
    work_dir: Path,
    started: float,
    logger: Any,
) -> dict[str, Any]:
    """The training half of :func:`run`: data, devices, InceptionV3 (after the devices are configured, before the
    DCGAN, whose build resets Keras' session and seed), training, ``gan.json`` and the commit."""
    budget = {"epochs": settings.resolved_epochs(), "steps": settings.steps}
    images, holdout = _train_images(store, settings, version)
    logger.info(
        "gan_data",
        dataset=settings.dataset,
        dataset_version=version,
        train_images=len(images),
        validation_held_out=holdout["images_of_class"],
        **budget,
    )
    store.clean_staging(prefix)
    devices: Devices = configure_devices(mixed_precision=settings.mixed_precision, xla=settings.xla, logger=logger)
    device = devices.describe()
    logger.info("gan_device", **device)
    extractor = inception.build()  # a file of another network fails here, before any training
    training = train_gan(
        settings,
        images=images,
        series=_checkpoint_series(store, prefix, trajectory),
        devices=devices,
        work_dir=work_dir,
        logger=logger,
        inception=None if extractor is None else (extractor, inception.name),
    )
    scored = (
        inception.skipped()
        if extractor is None
        else {"status": "measured", "extractor": inception.name, "description": inception.description,
              "weights": inception.record}
    )
    info = gan_info(
        settings,
        training,
        dataset_version=version,
        dataset_digest=dataset_marker.digest,
        train_images=len(images),
        validation_holdout=holdout,
        device=device,
        wall_seconds=time.monotonic() - started,
        inception=scored,
    )
    committed = _publish(store, prefix, training, info, inputs, work_dir)
    _log_committed(logger, store.url(prefix), training, info)
    return _summary(store, prefix, info, status="trained", marker=committed)
