"""The DCGAN training loop of ``cxr-gan-train``: batches, model, resume, callbacks, ``fit``.

See docs/architecture.md#layers. During training, I/O happens only in the Keras callbacks of this module
(:class:`EpochLog`, :class:`StoreCheckpoint`, and the sink of :class:`cxrcore.models.dcgan.GANSampleGrid`); the
models and ``train_step`` never touch the store.

A class with fewer training images than ``batch_size`` trains with a batch of all of them (rounded down to a
multiple of the replicas; logged ``gan_batch_reduced``). Every epoch has ``train_images // batch_size`` steps
(at most ``max_steps_per_epoch``) drawn from a seeded, reshuffled, repeated ``tf.data`` pipeline; a resumed run
skips the batches already consumed, so it sees the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cxrcore.config import GanTrainSettings
from cxrcore.data.pipeline import make_dataset
from cxrcore.ml.checkpoints import CheckpointSeries
from cxrcore.ml.devices import Devices, dtype_policy
from cxrcore.models.dcgan import (
    DCGAN,
    GANSampleGrid,
    build_discriminator,
    build_generator,
    default_gan_optimizers,
)
from cxrcore.storage import StoreError, TransientStoreError
from cxrcore.synthesis.gan_quality import QualityProbe, best_measurement, choose_published
from cxrcore.training.gan_state import (
    MeasuredNetworks,
    TrainingRecord,
    assign_optimizer_arrays,
    optimizer_arrays,
    restore_checkpoint,
    stage_checkpoint,
)

__all__ = [
    "CHANNELS",
    "BatchPlan",
    "EpochLog",
    "GanTraining",
    "QualityMonitor",
    "StoreCheckpoint",
    "build_dcgan",
    "plan_batches",
    "resume",
    "train_gan",
]

#: The paper feeds the GAN 64x64x3 images: grayscale X-rays repeated over three channels.
CHANNELS = 3
#: Images in every sample grid (4 x 4), drawn from fixed noise seeded by ``settings.seed``.
SAMPLE_GRID_IMAGES = 16
SAMPLE_GRID_COLUMNS = 4
#: Generated images per quality measurement, and real images in its fixed reference.
QUALITY_IMAGES = 256
#: Offset of the quality noise seed from ``settings.seed`` (distinct from the sample grid's noise).
QUALITY_NOISE_OFFSET = 7919


class EpochLog(keras.callbacks.Callback):
    """Times every epoch, appends its losses to the :class:`TrainingRecord` and logs a ``gan_epoch`` event.

    Args:
        record: The shared training record.
        epochs: Total epochs of the run (for the log).
        images_per_epoch: Images consumed per epoch (steps x global batch), for images/s.
        logger: structlog logger.
    """

    def __init__(self, record: TrainingRecord, *, epochs: int, images_per_epoch: int, logger: Any) -> None:
        super().__init__()
        self.record = record
        self.epochs = epochs
        self.images_per_epoch = images_per_epoch
        self.logger = logger
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        seconds = time.monotonic() - self._started
        row = {
            "epoch": epoch + 1,
            "d_loss": float(logs.get("d_loss", math.nan)),
            "g_loss": float(logs.get("g_loss", math.nan)),
            "seconds": round(seconds, 4),
            "d_real_accuracy": float(logs.get("d_real_accuracy", math.nan)),
            "d_fake_accuracy": float(logs.get("d_fake_accuracy", math.nan)),
            "images_per_second": round(self.images_per_epoch / seconds, 2) if seconds > 0 else math.nan,
            "d_grad_norm_max": round(float(logs.get("d_grad_norm_max", math.nan)), 4),
            "g_grad_norm_max": round(float(logs.get("g_grad_norm_max", math.nan)), 4),
        }
        self.record.losses.append(row)
        if not (math.isfinite(row["d_loss"]) and math.isfinite(row["g_loss"])):
            self.logger.warning(
                "gan_loss_not_finite",
                epoch=epoch + 1,
                d_loss=row["d_loss"],
                g_loss=row["g_loss"],
            )
        self.logger.info(
            "gan_epoch",
            epoch=epoch + 1,
            epochs=self.epochs,
            d_loss=round(row["d_loss"], 5),
            g_loss=round(row["g_loss"], 5),
            d_real_accuracy=round(row["d_real_accuracy"], 4),
            d_fake_accuracy=round(row["d_fake_accuracy"], 4),
            seconds=round(seconds, 3),
            images_per_s=row["images_per_second"],
            d_grad_norm_max=row["d_grad_norm_max"],
            g_grad_norm_max=row["g_grad_norm_max"],
        )


class QualityMonitor(keras.callbacks.Callback):
    """Measures the generator on fixed noise against a fixed real sample, every ``every`` steps.

    A measurement (:meth:`cxrcore.synthesis.gan_quality.QualityProbe.measure`: sample statistics, KID, two-sample
    accuracy) is taken before the first step of a fresh run (step 0: the untrained generator), at the end of
    every epoch that crosses a multiple of ``every`` steps, and after the last epoch. Rows are appended to the
    :class:`TrainingRecord` (so checkpoints carry them) and logged as ``gan_quality``. The noise comes from a
    NumPy generator of its own, so measuring never changes the training's random streams.

    When a trained generator measures the lowest KID so far, both networks' weights are kept in
    ``record.best`` (the generator's as measured: the moving average when the run keeps one), so the job can
    publish that generator instead of the last (``publish``) and checkpoints carry it across a resume.

    Args:
        record: The shared training record.
        probe: The fixed real reference.
        every: Steps between measurements.
        steps_per_epoch: Steps of every epoch.
        epochs: Total epochs of the run.
        num_images: Generated images per measurement.
        seed: Seed of the fixed noise.
        logger: structlog logger.
    """

    def __init__(
        self,
        record: TrainingRecord,
        probe: QualityProbe,
        *,
        every: int,
        steps_per_epoch: int,
        epochs: int,
        num_images: int,
        seed: int,
        logger: Any,
    ) -> None:
        super().__init__()
        self.record = record
        self.probe = probe
        self.every = every
        self.steps_per_epoch = steps_per_epoch
        self.epochs = epochs
        self.num_images = num_images
        self.seed = seed
        self.logger = logger

    def _measure(self, epoch: int) -> None:
        started = time.monotonic()
        generated = self.model.generate(self.num_images, seed=self.seed)
        row = {
            "step": epoch * self.steps_per_epoch,
            "epoch": epoch,
            **self.probe.measure(generated),
        }
        row["seconds"] = round(time.monotonic() - started, 3)
        self.record.quality.append(row)
        if best_measurement(self.record.quality) == len(self.record.quality) - 1:
            self._keep(row)
        self.logger.info(
            "gan_quality",
            step=row["step"],
            epoch=epoch,
            kid=row["kid"],
            two_sample_accuracy=row["two_sample_accuracy"],
            mean=row["mean"],
            image_std=row["image_std"],
            sample_std=row["sample_std"],
            seconds=row["seconds"],
            **{key: row[key] for key in ("inception_kid", "inception_fid") if key in row},
        )

    def _keep(self, row: dict[str, Any]) -> None:
        """Keeps both networks in ``record.best`` as measured by ``row`` (the best measurement so far:
        :func:`cxrcore.synthesis.gan_quality.best_measurement`, the rule ``publish`` chooses by)."""
        with self.model.averaged_generator() as generator:
            generator_weights = [np.array(value) for value in generator.get_weights()]
        self.record.best = MeasuredNetworks(
            step=row["step"],
            epoch=row["epoch"],
            kid=float(row["kid"]),
            generator=generator_weights,
            discriminator=[np.array(value) for value in self.model.discriminator.get_weights()],
        )

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if not self.record.quality and not self.record.losses:
            self._measure(0)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        done = epoch + 1
        step = done * self.steps_per_epoch
        if done == self.epochs or step // self.every > (step - self.steps_per_epoch) // self.every:
            self._measure(done)


class StoreCheckpoint(keras.callbacks.Callback):
    """Commits ``checkpoints/epoch-NNNN`` every ``every`` epochs and after the last epoch, through the series.

    At the end of a checkpoint epoch the state is written to a local directory
    (:func:`cxrcore.training.gan_state.stage_checkpoint`) while training waits; the upload, the commit and the
    pruning (:meth:`cxrcore.ml.checkpoints.CheckpointSeries.commit`) then run on one background thread while
    the next epochs train, so a slow store does not stall the accelerator. At most one upload is in flight: the
    next checkpoint (and :meth:`wait`) first waits for the previous one and re-raises its error.

    Args:
        series: The run's checkpoint series.
        record: The shared training record (losses and staged sample grids).
        every: Epochs between checkpoints.
        final_epoch: The run's last epoch (always checkpointed, so the run can be extended later).
        extra_state: JSON-ready values written into ``state.json`` (train image count, steps per epoch).
        staging_dir: Local directory for staged checkpoints (each removed after its upload).
        logger: structlog logger.
    """

    def __init__(
        self,
        series: CheckpointSeries,
        *,
        record: TrainingRecord,
        every: int,
        final_epoch: int,
        extra_state: dict[str, Any],
        staging_dir: Path,
        logger: Any,
    ) -> None:
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be >= 1. Received: every={every}")
        self.series = series
        self.record = record
        self.every = every
        self.final_epoch = final_epoch
        self.extra_state = extra_state
        self.staging_dir = staging_dir
        self.logger = logger
        self.written: list[int] = []
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="gan-checkpoint")
        self._pending: concurrent.futures.Future | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        done = epoch + 1
        if done % self.every != 0 and done != self.final_epoch:
            return
        self.wait()
        started = time.monotonic()
        local, saved = stage_checkpoint(self.staging_dir, self.model, done, self.record, self.extra_state)
        self.logger.info(
            "gan_checkpoint_staged",
            epoch=done,
            seconds=round(time.monotonic() - started, 3),
        )
        self._pending = self._executor.submit(self._upload, local, saved, done)

    def _upload(self, local: Path, saved: dict[str, Any], epoch: int) -> None:
        started = time.monotonic()
        try:
            key, removed = self.series.commit(epoch, local, saved=saved)
        finally:
            shutil.rmtree(local, ignore_errors=True)
        self.written.append(epoch)
        self.logger.info(
            "gan_checkpoint",
            epoch=epoch,
            key=key,
            pruned=removed,
            seconds=round(time.monotonic() - started, 3),
        )

    def wait(self) -> None:
        """Blocks until the upload in flight (if any) is committed; re-raises its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        """Waits for the upload in flight and stops the background thread."""
        try:
            self.wait()
        finally:
            self._executor.shutdown(wait=True)


@dataclasses.dataclass(frozen=True)
class BatchPlan:
    """The effective global batch and the steps of every epoch."""

    batch_size: int
    steps_per_epoch: int


def plan_batches(settings: GanTrainSettings, train_images: int, replicas: int, logger: Any) -> BatchPlan:
    """The batch size and steps per epoch for ``train_images`` images on ``replicas`` replicas.

    Raises:
        ValueError: Fewer training images than replicas, or a mode-seeking or detail-mean term with fewer than
            2 images per replica (they compare images within a batch).
    """
    if train_images < replicas:
        raise ValueError(
            f"Class {settings.class_name!r} has {train_images} training images, fewer than the {replicas} replicas. "
            f"Received: train_images={train_images}"
        )
    batch_size = settings.batch_size
    if train_images < batch_size:
        batch_size = train_images - train_images % replicas
        logger.warning(
            "gan_batch_reduced",
            requested=settings.batch_size,
            effective=batch_size,
            train_images=train_images,
        )
    terms = {
        "mode_seeking_weight": settings.mode_seeking_weight,
        "mode_seeking_detail_weight": settings.mode_seeking_detail_weight,
        "detail_mean_weight": settings.detail_mean_weight,
    }
    for name, weight in terms.items():
        if weight > 0.0 and batch_size // replicas < 2:
            raise ValueError(
                f"The {name} term compares images within a batch, and class {settings.class_name!r} gets "
                f"{batch_size // replicas} per replica ({train_images} training images, batch_size "
                f"{settings.batch_size}, {replicas} replicas). Received: {name}={weight}"
            )
    steps_per_epoch = train_images // batch_size
    if settings.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, settings.max_steps_per_epoch)
    return BatchPlan(batch_size=batch_size, steps_per_epoch=steps_per_epoch)


def build_dcgan(settings: GanTrainSettings, devices: Devices, *, total_steps: int | None = None) -> DCGAN:
    """A fresh, compiled Table 1 DCGAN, seeded by ``settings.seed``, built under the devices' strategy and policy.

    The stabilisers of the settings (Adam ``beta_1``, TTUR learning rates, one-sided label smoothing,
    DiffAugment, instance noise annealed over ``total_steps``, the mode-seeking term, the generator's weight
    average, the gradient spike guards) go to the model and its optimizers; at their defaults the model is the
    paper's.
    """
    keras.backend.clear_session()
    keras.utils.set_random_seed(settings.seed)
    with dtype_policy(devices.mixed_precision), devices.strategy.scope():
        generator = build_generator(
            settings.latent_dim,
            width_multiplier=settings.width_multiplier,
            output_size=settings.image_size,
            channels=CHANNELS,
        )
        discriminator = build_discriminator(
            input_size=settings.image_size,
            channels=CHANNELS,
            width_multiplier=settings.discriminator_width(),
        )
        model = DCGAN(
            discriminator,
            generator,
            latent_dim=settings.latent_dim,
            seed=settings.seed,
            label_smoothing=settings.label_smoothing,
            augment_policies=settings.augment_policies(),
            instance_noise=settings.instance_noise,
            instance_noise_steps=total_steps,
            mode_seeking_weight=settings.mode_seeking_weight,
            mode_seeking_detail_weight=settings.mode_seeking_detail_weight,
            detail_mean_weight=settings.detail_mean_weight,
        )
        d_rate, g_rate = settings.learning_rates()
        d_optimizer, g_optimizer = default_gan_optimizers(
            d_rate,
            settings.beta_1,
            generator_learning_rate=g_rate,
            generator_ema=settings.generator_ema,
            d_clipnorm=settings.d_clipnorm,
            g_clipnorm=settings.g_clipnorm,
        )
        model.compile(
            d_optimizer=d_optimizer,
            g_optimizer=g_optimizer,
            loss_fn=keras.losses.BinaryCrossentropy(from_logits=True),
            jit_compile=devices.xla,
        )
    return model


def resume(
    series: CheckpointSeries,
    model: DCGAN,
    record: TrainingRecord,
    *,
    epochs: int,
    work_dir: Path,
    logger: Any,
) -> tuple[int, str | None]:
    """Restores the newest usable checkpoint of the series with at most ``epochs`` epochs.

    A checkpoint that fails to restore is logged (``gan_checkpoint_unusable``) and skipped, and the freshly
    initialised state is put back: a half-restored model must not train on.

    Returns:
        ``(epochs already done, key of the restored checkpoint)``; ``(0, None)`` when none was usable.
    """
    fresh_state = None
    for candidate in series.resume_candidates(epochs):
        if fresh_state is None:
            fresh_state = (
                model.generator.get_weights(),
                model.discriminator.get_weights(),
                optimizer_arrays(model),
            )
        try:
            restore_checkpoint(series.store, candidate, model, record, work_dir)
        except TransientStoreError:
            raise  # an outage is not a bad checkpoint: exit 75 and resume from it on the retry
        except (ValueError, OSError, StoreError) as exc:
            logger.warning(
                "gan_checkpoint_unusable",
                key=candidate.key,
                error=f"{type(exc).__name__}: {exc}",
            )
            model.generator.set_weights(fresh_state[0])
            model.discriminator.set_weights(fresh_state[1])
            assign_optimizer_arrays(model, fresh_state[2])
            record.reset()
            continue
        logger.info(
            "gan_resume",
            key=candidate.key,
            resumed_from_epoch=candidate.epoch,
            epochs=epochs,
        )
        return candidate.epoch, candidate.key
    return 0, None


def _training_batches(images: np.ndarray, settings: GanTrainSettings, plan: BatchPlan, initial_epoch: int) -> Any:
    """Seeded, reshuffled batches in [0, 1], repeated; the first ``initial_epoch`` epochs' batches skipped."""
    data = make_dataset(
        images,
        image_size=settings.image_size,
        batch_size=plan.batch_size,
        channels=CHANNELS,
        shuffle=True,
        seed=settings.seed,
        scale="unit",
        drop_remainder=True,
    )
    data = data.repeat()
    return data.skip(initial_epoch * plan.steps_per_epoch) if initial_epoch else data


@dataclasses.dataclass
class GanTraining:
    """The trained DCGAN and how it got there.

    Attributes:
        model: The trained :class:`cxrcore.models.dcgan.DCGAN`.
        epochs: Epochs trained in all (``settings.epochs_for(plan.steps_per_epoch)``).
        record: Losses of every epoch and the staged sample grids.
        plan: The effective batch size and steps per epoch.
        initial_epoch: Epochs restored from a checkpoint (0 for a fresh run).
        resumed_from: Key of that checkpoint, or ``None``.
        checkpoints_written: Epochs checkpointed by this run.
        train_seconds: Seconds spent in ``fit``.
        published: Which measured generator is published
            (:func:`cxrcore.synthesis.gan_quality.choose_published` under ``settings.publish``).
    """

    model: DCGAN
    epochs: int
    record: TrainingRecord
    plan: BatchPlan
    initial_epoch: int
    resumed_from: str | None
    checkpoints_written: list[int]
    train_seconds: float
    published: dict[str, Any]

    @contextlib.contextmanager
    def published_networks(self) -> Iterator[tuple[keras.Model, keras.Model]]:
        """Lends ``(generator, discriminator)`` holding the published weights for the block, then puts back the
        trained ones.

        The last generator is the moving average when the run keeps one
        (:meth:`cxrcore.models.dcgan.DCGAN.averaged_generator`); an earlier one is ``record.best``.

        Raises:
            RuntimeError: The chosen measurement is not the one ``record.best`` holds.
        """
        if not self.published["replaced_last"]:
            with self.model.averaged_generator() as generator:
                yield generator, self.model.discriminator
            return
        best = self.record.best
        if best is None or best.step != self.published["step"]:
            held = None if best is None else best.step
            raise RuntimeError(
                f"The generator of step {self.published['step']} is to be published, but the kept networks are "
                f"of step {held}"
            )
        generator, discriminator = self.model.generator, self.model.discriminator
        trained = (generator.get_weights(), discriminator.get_weights())
        try:
            generator.set_weights(best.generator)
            discriminator.set_weights(best.discriminator)
            yield generator, discriminator
        finally:
            generator.set_weights(trained[0])
            discriminator.set_weights(trained[1])

    def published_grid(self) -> bytes:
        """The sample grid of the published generator's epoch (the newest grid when it is the last)."""
        if not self.published["replaced_last"]:
            return self.record.last_grid
        path = self.record.samples_dir / f"epoch-{self.published['epoch']:04d}.png"
        return path.read_bytes()


def _fit(
    model: DCGAN,
    data: Any,
    checkpoint: StoreCheckpoint,
    callbacks: list[Any],
    *,
    epochs: int,
    initial_epoch: int,
    steps_per_epoch: int,
    logger: Any,
) -> float:
    """Runs ``fit`` from ``initial_epoch``; always finishes the checkpoint upload in flight. Returns seconds."""
    started = time.monotonic()
    try:
        if initial_epoch < epochs:
            model.fit(
                data,
                epochs=epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps_per_epoch,
                callbacks=[*callbacks, checkpoint],
                shuffle=False,  # the tf.data pipeline shuffles (seeded); Keras cannot shuffle a dataset anyway
                verbose=0,
            )
    except BaseException:
        # The upload in flight is a valid resume point: finish it, but let the training error propagate.
        try:
            checkpoint.close()
        except Exception as exc:  # noqa: BLE001 - reported, the training error wins
            logger.error("gan_checkpoint_failed", error=f"{type(exc).__name__}: {exc}")
        raise
    checkpoint.close()
    return time.monotonic() - started


def _callbacks(
    settings: GanTrainSettings,
    record: TrainingRecord,
    images: np.ndarray,
    plan: BatchPlan,
    epochs: int,
    logger: Any,
    inception: tuple[Any, str] | None = None,
) -> list[keras.callbacks.Callback]:
    """The epoch log, the sample grid and the quality monitor of one training run (checkpointing comes last)."""
    extractor, extractor_name = inception if inception is not None else (None, "")
    return [
        EpochLog(record, epochs=epochs, images_per_epoch=plan.steps_per_epoch * plan.batch_size, logger=logger),
        GANSampleGrid(
            record.write_grid, num_images=SAMPLE_GRID_IMAGES, columns=SAMPLE_GRID_COLUMNS, seed=settings.seed
        ),
        QualityMonitor(
            record,
            QualityProbe(images, reference_size=QUALITY_IMAGES, seed=settings.seed, inception=extractor,
                         inception_name=extractor_name),
            every=settings.quality_every,
            steps_per_epoch=plan.steps_per_epoch,
            epochs=epochs,
            num_images=QUALITY_IMAGES,
            seed=settings.seed + QUALITY_NOISE_OFFSET,
            logger=logger,
        ),
    ]


def train_gan(
    settings: GanTrainSettings,
    *,
    images: np.ndarray,
    series: CheckpointSeries,
    devices: Devices,
    work_dir: Path,
    logger: Any,
    inception: tuple[Any, str] | None = None,
) -> GanTraining:
    """Builds the DCGAN, resumes from the series, trains and checkpoints along the way.

    The epoch count is ``settings.epochs_for(steps per epoch)``: the step budget when one is set, else the
    epochs. Quality is measured along the way (:class:`QualityMonitor`); with ``inception`` (an InceptionV3
    network and its recorded name, built before the DCGAN: building resets Keras' session and seed) every
    measurement also has InceptionV3 KID and FID. Nothing of the training depends on them.

    Raises:
        ValueError: Fewer training images than replicas.
        RuntimeError: Training ended without a loss row for every epoch or without a sample grid.
    """
    plan = plan_batches(settings, len(images), devices.replicas, logger)
    epochs = settings.epochs_for(plan.steps_per_epoch)
    model = build_dcgan(settings, devices, total_steps=epochs * plan.steps_per_epoch)
    record = TrainingRecord(samples_dir=work_dir / "samples")
    initial_epoch, resumed_from = resume(series, model, record, epochs=epochs, work_dir=work_dir, logger=logger)
    data = _training_batches(images, settings, plan, initial_epoch)
    checkpoint = StoreCheckpoint(
        series,
        record=record,
        every=settings.checkpoint_every,
        final_epoch=epochs,
        extra_state={
            "train_images": len(images),
            "steps_per_epoch": plan.steps_per_epoch,
            "batch_size": plan.batch_size,
        },
        staging_dir=work_dir / "checkpoints",
        logger=logger,
    )
    callbacks = _callbacks(settings, record, images, plan, epochs, logger, inception)
    logger.info(
        "gan_train_start",
        initial_epoch=initial_epoch,
        epochs=epochs,
        steps_per_epoch=plan.steps_per_epoch,
        batch_size=plan.batch_size,
        replicas=devices.replicas,
    )
    seconds = _fit(
        model,
        data,
        checkpoint,
        callbacks,
        epochs=epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=plan.steps_per_epoch,
        logger=logger,
    )
    if len(record.losses) != epochs or record.last_grid is None:
        raise RuntimeError(
            f"Training of {series.prefix} ended with {len(record.losses)} of {epochs} epochs recorded; "
            "refusing to publish"
        )
    published = choose_published(record.quality, settings.publish)
    if published["replaced_last"]:
        logger.warning(
            "gan_published_earlier",
            rule=settings.publish,
            step=published["step"],
            kid=published["kid"],
            last_step=published["last_step"],
            last_kid=published["last_kid"],
            reason=published["reason"],
        )
    return GanTraining(
        model=model,
        epochs=epochs,
        record=record,
        plan=plan,
        initial_epoch=initial_epoch,
        resumed_from=resumed_from,
        checkpoints_written=checkpoint.written,
        train_seconds=seconds,
        published=published,
    )
