"""``cxr-gan-train``: train the DCGAN of one class (paper Table 1), checkpointed, resumable and idempotent.

One job trains one class's DCGAN on the **training split** of a dataset version (test images never reach the
GAN) and publishes it under ``runs/<run_id>/gan/<CLASS>/`` (:func:`cxrcore.layout.gan_prefix`)::

    runs/<run_id>/gan/<CLASS>/
        generator.keras  discriminator.keras      full models (keras.models.load_model)
        losses.csv                                epoch, d_loss, g_loss, seconds, d_real_accuracy,
                                                  d_fake_accuracy, images_per_second (one row per epoch)
        samples.png                               grid of the last epoch (fixed, seeded noise)
        samples/epoch-NNNN.png                    one grid per epoch
        gan.json                                  settings, parameter counts, dataset version and digest,
                                                  train image count, epochs, resume point, wall time, device
        _SUCCESS                                  marker (written last)
        checkpoints/epoch-NNNN/                   each its own committed output (own _SUCCESS):
            generator.weights.h5  discriminator.weights.h5
            optimizers.npz                        every variable of both optimizers (Adam moments, iteration
                                                  counters, loss-scale state) and every seed-generator state
                                                  (training noise, Dropout masks)
            state.json                            epoch, losses so far, train image count, steps per epoch
            samples/epoch-NNNN.png                every grid so far (so a resumed run still publishes all)

Idempotence: the job's ``inputs`` are the dataset's marker digest plus every setting that changes the result
(see :func:`job_inputs`); when the prefix is committed with the same inputs the job returns the published summary
without loading images or TensorFlow models.

Checkpoints and resume: after every ``checkpoint_every`` epochs (and after the last one) a
:class:`StoreCheckpoint` callback writes the files above to a local directory and commits them, on a background
thread while training goes on, as ``checkpoints/epoch-NNNN`` with ``inputs = {"trajectory": ..., "epoch": N}``.
The *trajectory* is everything the weights after epoch N depend on (the job inputs minus the total epoch count),
so a run extended from 100 to 150 epochs resumes from its epoch-100 checkpoint. After each commit the newest two
checkpoints of the trajectory at or below that epoch are kept; older ones, uncommitted leftovers and checkpoints
of other trajectories are deleted (marker first). On start the job restores the newest committed checkpoint of
the same trajectory whose epoch does not exceed the requested count: weights (``load_weights``), optimizer
variables (assigned in ``Optimizer.variables`` order, counts and shapes checked first), every seed-generator
state, the loss history and the sample grids; the data pipeline skips the batches already consumed. On one
device the resumed run reproduces the uninterrupted one exactly (the tests check it); under
``MirroredStrategy`` it matches up to the order of cross-device reductions. A checkpoint that fails to restore
is logged and skipped (the freshly initialised state is put back). A killed pod loses at most
``checkpoint_every`` epochs.

During training, I/O happens only in Keras callbacks of this module (:class:`EpochLog`, :class:`StoreCheckpoint`,
and the sink of :class:`cxrcore.models.dcgan.GANSampleGrid`); the models and ``train_step`` never touch the store.

Hardware: ``tf.distribute.MirroredStrategy`` when more than one GPU is visible (``batch_size`` is the *global*
batch, split across replicas, so results do not depend on the GPU count), the default strategy otherwise. A
class with fewer training images than ``batch_size`` trains with a batch of all of them (logged, and recorded in
``gan.json`` as ``training.batch_size``). Every epoch has ``train_images // batch_size`` steps (at most
``max_steps_per_epoch``) drawn from a seeded, reshuffled, repeated ``tf.data`` pipeline.
``mixed_precision`` (``mixed_float16``) and ``xla`` (``jit_compile`` of the train step) apply on GPU only; on a
CPU-only machine they are logged as ignored.
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import io
import json
import math
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cxrcore import __version__
from cxrcore.config import GanTrainSettings, identity
from cxrcore.data.dataset import dataset_prefix, load_dataset, resolve_version
from cxrcore.layout import gan_prefix
from cxrcore.logging import get_logger
from cxrcore.storage import MARKER_NAME, Marker, Store, StoreError, hash_inputs, join_key
from cxrcore.vocab import CHECKPOINT_NAME_PATTERN

__all__ = [
    "CHANNELS",
    "CHECKPOINTS_KEPT",
    "EpochLog",
    "LOSS_COLUMNS",
    "StoreCheckpoint",
    "TrainingRecord",
    "checkpoint_prefix",
    "job_inputs",
    "run",
    "trajectory_inputs",
]

JOB_NAME = "cxr-gan-train"
#: Version of the output layout written by this module (part of the inputs: a layout change retrains).
OUTPUT_FORMAT = 1
#: The paper feeds the GAN 64x64x3 images: grayscale X-rays repeated over three channels.
CHANNELS = 3
#: Committed checkpoints kept per GAN.
CHECKPOINTS_KEPT = 2
#: Images in every sample grid (4 x 4), drawn from fixed noise seeded by ``settings.seed``.
SAMPLE_GRID_IMAGES = 16
SAMPLE_GRID_COLUMNS = 4
#: Columns of ``losses.csv`` (the first four are the contract; the rest are diagnostics).
LOSS_COLUMNS = ("epoch", "d_loss", "g_loss", "seconds", "d_real_accuracy", "d_fake_accuracy", "images_per_second")

_CHECKPOINT_DIR = "checkpoints"

log = get_logger(__name__)


# ---------------------------------------------------------------------------------------------- inputs and keys
def trajectory_inputs(settings: GanTrainSettings, dataset_marker: Marker, dataset_version: str) -> dict[str, Any]:
    """Everything the weights after any epoch depend on: dataset content and every result-changing setting.

    That is :func:`cxrcore.config.identity` of the settings without the total epoch count (a longer run passes
    through the same states), plus the resolved dataset version and its marker digest. Settings marked as not
    changing the result (store, logging, ``checkpoint_every``) are left out.

    Args:
        settings: The job settings.
        dataset_marker: The dataset version's ``_SUCCESS`` marker.
        dataset_version: The resolved dataset version id.

    Returns:
        A JSON-ready dict.
    """
    recorded = identity(settings)
    del recorded["epochs"]  # in job_inputs only
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


def job_inputs(settings: GanTrainSettings, dataset_marker: Marker, dataset_version: str) -> dict[str, Any]:
    """The ``inputs`` of the GAN prefix's marker: the trajectory plus the number of epochs."""
    return {
        "trajectory": trajectory_inputs(settings, dataset_marker, dataset_version),
        "epochs": identity(settings)["epochs"],
    }


def checkpoint_prefix(prefix: str, epoch: int) -> str:
    """``<gan prefix>/checkpoints/epoch-NNNN`` (``epoch`` = number of completed epochs)."""
    if not isinstance(epoch, int) or epoch < 1:
        raise ValueError(f"epoch must be a positive integer. Received: epoch={epoch!r}")
    return join_key(prefix, _CHECKPOINT_DIR, f"epoch-{epoch:04d}")


def _normalized(value: Any) -> Any:
    """``value`` as stored in a marker (JSON round trip), for equality checks against ``Marker.inputs``."""
    return json.loads(json.dumps(value, default=str))


# ---------------------------------------------------------------------------------------------- training record
@dataclasses.dataclass
class TrainingRecord:
    """What the callbacks share: the loss history and where the sample grids are staged.

    Attributes:
        samples_dir: Local directory holding ``epoch-NNNN.png`` grids.
        losses: One dict per completed epoch (keys: :data:`LOSS_COLUMNS`), oldest first.
        last_grid: PNG bytes of the newest grid, or ``None`` before the first epoch.
    """

    samples_dir: Path
    losses: list[dict[str, float]] = dataclasses.field(default_factory=list)
    last_grid: bytes | None = None

    def write_grid(self, epoch_index: int, png: bytes) -> None:
        """Sink of :class:`GANSampleGrid`: stages the grid of Keras epoch ``epoch_index`` (0-based)."""
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        (self.samples_dir / f"epoch-{epoch_index + 1:04d}.png").write_bytes(png)
        self.last_grid = png

    def reset(self) -> None:
        """Forgets every epoch (after a failed restore)."""
        self.losses.clear()
        self.last_grid = None
        for path in self.samples_dir.glob("epoch-*.png") if self.samples_dir.is_dir() else []:
            path.unlink()

    def losses_csv(self) -> bytes:
        """The loss history as CSV bytes with :data:`LOSS_COLUMNS`."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(LOSS_COLUMNS), lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for row in self.losses:
            writer.writerow(row)
        return buffer.getvalue().encode()


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
        }
        self.record.losses.append(row)
        if not (math.isfinite(row["d_loss"]) and math.isfinite(row["g_loss"])):
            self.logger.warning("gan_loss_not_finite", epoch=epoch + 1, d_loss=row["d_loss"], g_loss=row["g_loss"])
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
        )


class StoreCheckpoint(keras.callbacks.Callback):
    """Commits ``checkpoints/epoch-NNNN`` every ``every`` epochs and after the last epoch; prunes old ones.

    At the end of a checkpoint epoch the state is written to a local directory (weights, optimizer and seed
    arrays, ``state.json``, a copy of the sample grids so far) while training waits; the upload, the commit
    and the pruning then run on one background thread while the next epochs train, so a slow store does not
    stall the accelerator. At most one upload is in flight: the next checkpoint (and :meth:`wait`) first waits
    for the previous one and re-raises its error.

    Args:
        store: The store.
        prefix: The GAN prefix.
        trajectory: :func:`trajectory_inputs` of the run.
        record: The shared training record (losses and staged sample grids).
        every: Epochs between checkpoints.
        final_epoch: The run's last epoch (always checkpointed, so the run can be extended later).
        extra_state: JSON-ready values written into ``state.json`` (train image count, steps per epoch).
        staging_dir: Local directory for staged checkpoints (each removed after its upload).
        logger: structlog logger.
    """

    def __init__(
        self,
        store: Store,
        prefix: str,
        *,
        trajectory: dict[str, Any],
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
        self.store = store
        self.prefix = prefix
        self.trajectory = trajectory
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
        local = _stage_checkpoint(self.staging_dir, self.model, done, self.record, self.extra_state)
        self.logger.info("gan_checkpoint_staged", epoch=done, seconds=round(time.monotonic() - started, 3))
        self._pending = self._executor.submit(self._upload, local, done)

    def _upload(self, local: Path, epoch: int) -> None:
        started = time.monotonic()
        try:
            key = _commit_checkpoint(self.store, self.prefix, local, epoch, self.trajectory)
        finally:
            shutil.rmtree(local, ignore_errors=True)
        removed = _prune_checkpoints(self.store, self.prefix, self.trajectory, newest=epoch)
        self.written.append(epoch)
        self.logger.info(
            "gan_checkpoint", epoch=epoch, key=key, pruned=removed, seconds=round(time.monotonic() - started, 3)
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


# ---------------------------------------------------------------------------------------------- checkpoints
def _seed_states(model: Any) -> list[Any]:
    """Every random-seed state variable of the DCGAN: its noise generator and each Dropout's.

    ``save_weights`` stores weights only; these states decide the next noise and dropout masks, so a checkpoint
    carries them for an exact resume.
    """
    return [variable for variable in model.variables if variable.path.endswith("seed_generator_state")]


def _optimizer_arrays(model: Any) -> dict[str, np.ndarray]:
    """Both optimizers' variables (``d_*``/``g_*``, in ``Optimizer.variables`` order) and every seed state."""
    arrays: dict[str, np.ndarray] = {}
    for tag, optimizer in (("d", model.d_optimizer), ("g", model.g_optimizer)):
        for index, variable in enumerate(optimizer.variables):
            arrays[f"{tag}_{index:05d}"] = np.asarray(variable.numpy())
    seeds = _seed_states(model)
    for index, variable in enumerate(seeds):
        arrays[f"s_{index:05d}"] = np.asarray(variable.numpy())
    arrays["seed_paths"] = np.asarray([variable.path for variable in seeds], dtype=str)
    return arrays


def _assign_optimizer_arrays(model: Any, arrays: dict[str, np.ndarray], key: str = "the initial state") -> None:
    """Assigns arrays saved by :func:`_optimizer_arrays`, checking every count and shape before assigning any."""
    pairs = []
    groups = (("d", model.d_optimizer.variables), ("g", model.g_optimizer.variables), ("s", _seed_states(model)))
    for tag, variables in groups:
        saved = sorted(name for name in arrays if name.startswith(f"{tag}_"))
        if len(saved) != len(variables):
            raise ValueError(
                f"Checkpoint {key} holds {len(saved)} '{tag}_' variables but the model has {len(variables)}. "
                f"Received: variables={len(saved)}"
            )
        pairs.extend(zip(saved, variables, strict=True))
    for name, variable in pairs:
        value = arrays[name]
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(
                f"Checkpoint {key}: {name} has shape {value.shape} but variable {variable.path} has "
                f"{tuple(variable.shape)}. Received: shape={value.shape}"
            )
    for name, variable in pairs:
        variable.assign(arrays[name])


def _stage_checkpoint(
    staging_dir: Path, model: Any, epoch: int, record: TrainingRecord, extra_state: dict[str, Any]
) -> Path:
    """Writes the checkpoint of ``epoch`` to a fresh local directory (nothing shared with training)."""
    local = staging_dir / f"epoch-{epoch:04d}"
    shutil.rmtree(local, ignore_errors=True)
    (local / "samples").mkdir(parents=True)
    model.generator.save_weights(local / "generator.weights.h5")
    model.discriminator.save_weights(local / "discriminator.weights.h5")
    np.savez(local / "optimizers.npz", **_optimizer_arrays(model))
    state = {"epoch": epoch, "losses": record.losses[:epoch], **extra_state}
    (local / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
    for grid in sorted(record.samples_dir.glob("epoch-*.png")) if record.samples_dir.is_dir() else []:
        shutil.copyfile(grid, local / "samples" / grid.name)
    return local


def _commit_checkpoint(store: Store, prefix: str, local: Path, epoch: int, trajectory: dict[str, Any]) -> str:
    """Uploads a staged checkpoint as its own committed output ``checkpoints/epoch-NNNN``."""
    key = checkpoint_prefix(prefix, epoch)
    with store.commit(
        key, inputs={"trajectory": trajectory, "epoch": epoch}, producer=f"{JOB_NAME} {__version__}"
    ) as tx:
        for name in ("generator.weights.h5", "discriminator.weights.h5", "optimizers.npz", "state.json"):
            tx.put_file(name, local / name)
        tx.put_dir(local / "samples", "samples")
    return key


def _list_checkpoints(store: Store, prefix: str) -> list[tuple[int, str]]:
    """``(epoch, key)`` of every checkpoint folder (committed or not), oldest first."""
    found = []
    for key in store.list_prefixes(join_key(prefix, _CHECKPOINT_DIR)):
        match = CHECKPOINT_NAME_PATTERN.match(key.rsplit("/", 1)[-1])
        if match:
            found.append((int(match.group(1)), key))
    return sorted(found)


def _matching_checkpoints(store: Store, prefix: str, trajectory: dict[str, Any]) -> tuple[list, list]:
    """Splits checkpoint folders into ``(matching, other)``: committed ones of this trajectory vs the rest."""
    expected = _normalized(trajectory)
    matching, other = [], []
    for epoch, key in _list_checkpoints(store, prefix):
        marker = store.read_marker(key)
        if marker is not None and marker.inputs.get("trajectory") == expected and marker.inputs.get("epoch") == epoch:
            matching.append((epoch, key, marker))
        else:
            other.append((epoch, key))
    return matching, other


def _delete_output(store: Store, key: str) -> None:
    store.delete(join_key(key, MARKER_NAME))  # hide it first: a reader never sees half a checkpoint as committed
    store.delete_prefix(key)


def _prune_checkpoints(store: Store, prefix: str, trajectory: dict[str, Any], *, newest: int) -> int:
    """Keeps the newest :data:`CHECKPOINTS_KEPT` checkpoints of ``trajectory`` at or below epoch ``newest``.

    Checkpoints of the same trajectory above ``newest`` (from an earlier, longer run) stay: they remain valid
    resume points. Uncommitted folders and checkpoints of other trajectories are removed.
    """
    matching, other = _matching_checkpoints(store, prefix, trajectory)
    at_or_below = [item for item in matching if item[0] <= newest]
    doomed = [key for _, key, _ in at_or_below[:-CHECKPOINTS_KEPT]] + [key for _, key in other]
    for key in doomed:
        _delete_output(store, key)
    return len(doomed)


@dataclasses.dataclass
class _Resume:
    epoch: int
    key: str
    marker: Marker
    state: dict[str, Any]


def _resume_candidates(store: Store, prefix: str, trajectory: dict[str, Any], epochs: int) -> list[_Resume]:
    """Committed checkpoints of ``trajectory`` with epoch <= ``epochs``, newest first."""
    matching, _ = _matching_checkpoints(store, prefix, trajectory)
    candidates = []
    for epoch, key, marker in reversed(matching):
        if epoch > epochs:
            continue
        candidates.append(_Resume(epoch=epoch, key=key, marker=marker, state={}))
    return candidates


def _restore(store: Store, resume: _Resume, model: Any, record: TrainingRecord, work_dir: Path) -> None:
    """Loads a checkpoint into ``model`` and ``record``; raises on any inconsistency."""
    local = work_dir / f"resume-{resume.epoch:04d}"
    outputs = resume.marker.outputs
    for name in ("generator.weights.h5", "discriminator.weights.h5", "optimizers.npz", "state.json"):
        if name not in outputs:
            raise ValueError(f"Checkpoint {resume.key} lacks {name}. Received: outputs={sorted(outputs)}")
        store.get_file(join_key(resume.key, name), local / name, sha256=outputs[name]["sha256"])
    state = json.loads((local / "state.json").read_text())
    if state.get("epoch") != resume.epoch or len(state.get("losses", [])) != resume.epoch:
        raise ValueError(f"Checkpoint {resume.key} state.json does not describe epoch {resume.epoch}")
    model.generator.load_weights(local / "generator.weights.h5")
    model.discriminator.load_weights(local / "discriminator.weights.h5")
    with np.load(local / "optimizers.npz", allow_pickle=False) as saved:
        arrays = {name: saved[name] for name in saved.files}
    _assign_optimizer_arrays(model, arrays, resume.key)
    for rel, info in sorted(outputs.items()):
        if rel.startswith("samples/"):
            store.get_file(join_key(resume.key, rel), record.samples_dir / rel.split("/", 1)[1], sha256=info["sha256"])
    record.losses[:] = state["losses"]
    grids = sorted(record.samples_dir.glob("epoch-*.png")) if record.samples_dir.is_dir() else []
    record.last_grid = grids[-1].read_bytes() if grids else None
    resume.state = state


# ---------------------------------------------------------------------------------------------- hardware
def _configure_hardware(settings: GanTrainSettings, logger: Any) -> tuple[Any, bool, bool, dict[str, Any]]:
    """Picks the distribution strategy and the effective mixed-precision / XLA flags.

    Returns:
        ``(strategy, use_mixed_precision, use_xla, device_info)``.
    """
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except (RuntimeError, ValueError):  # already initialised by an earlier job in this process
            pass
    strategy = tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    use_mixed = settings.mixed_precision and bool(gpus)
    use_xla = settings.xla and bool(gpus)
    ignored = [name for name in ("mixed_precision", "xla") if getattr(settings, name) and not gpus]
    if ignored:
        logger.warning("gpu_settings_ignored", settings=ignored, reason="no GPU visible; training on CPU")
    names = []
    for gpu in gpus:
        try:
            details = tf.config.experimental.get_device_details(gpu)
        except (RuntimeError, ValueError):
            details = {}
        names.append(details.get("device_name", gpu.name))
    info = {
        "strategy": type(strategy).__name__,
        "replicas": int(strategy.num_replicas_in_sync),
        "gpus": names,
        "cpu_count": os.cpu_count(),
        "mixed_precision": use_mixed,
        "xla": use_xla,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    logger.info("gan_device", **info)
    return strategy, use_mixed, use_xla, info


def _count_params(model: Any) -> int:
    return int(sum(int(np.prod(variable.shape)) for variable in model.trainable_weights))


# ---------------------------------------------------------------------------------------------- the job
def _train_images(store: Store, settings: GanTrainSettings, version: str) -> tuple[np.ndarray, Any]:
    """The class's training-split images (uint8, ``(n, h, w)``) and the dataset; never test images."""
    dataset = load_dataset(store, settings.dataset, version)
    images, manifest = dataset.subset("train")
    mask = (manifest["class"] == settings.class_name).to_numpy()
    selected = images[mask]
    if len(selected) == 0:
        of_class = dataset.manifest[dataset.manifest["class"] == settings.class_name]
        counts = {str(split): int(count) for split, count in sorted(of_class["split"].value_counts().items())}
        raise ValueError(
            f"Dataset {settings.dataset!r} version {dataset.version!r} has no training images of class "
            f"{settings.class_name!r} (images of that class per split: {counts}); the GAN trains on the train "
            f"split only. Received: class_name={settings.class_name!r}"
        )
    return selected, dataset


def _existing_summary(store: Store, prefix: str, marker: Marker) -> dict[str, Any]:
    recorded = marker.outputs.get("gan.json")
    if recorded is None:
        raise StoreError(f"{store.uri}/{prefix}/{MARKER_NAME} does not list gan.json")
    info = json.loads(store.get_bytes(join_key(prefix, "gan.json"), sha256=recorded["sha256"]))
    return _summary(store, prefix, info, status="unchanged", marker=marker)


def _summary(store: Store, prefix: str, info: dict[str, Any], *, status: str, marker: Marker) -> dict[str, Any]:
    training = info["training"]
    return {
        "status": status,
        "uri": f"{store.uri.rstrip('/')}/{prefix}",
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
        "marker_digest": marker.digest,
    }


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
    inputs = job_inputs(settings, dataset_marker, version)
    epochs = settings.resolved_epochs()

    marker = store.read_marker(prefix)
    if marker is not None and marker.inputs_hash == hash_inputs(inputs):
        logger.info("gan_unchanged", uri=f"{store.uri.rstrip('/')}/{prefix}", epochs=epochs, dataset_version=version)
        return _existing_summary(store, prefix, marker)

    images, dataset = _train_images(store, settings, version)
    logger.info(
        "gan_data", dataset=settings.dataset, dataset_version=version, train_images=len(images), epochs=epochs
    )
    store.clean_staging(prefix)
    with tempfile.TemporaryDirectory(prefix="cxr-gan-") as tmp:
        work_dir = Path(tmp)
        return _train_and_publish(
            settings,
            store=store,
            prefix=prefix,
            images=images,
            dataset_version=version,
            dataset_digest=dataset_marker.digest,
            trajectory=trajectory,
            inputs=inputs,
            epochs=epochs,
            work_dir=work_dir,
            started=started,
            logger=logger,
        )


def _train_and_publish(
    settings: GanTrainSettings,
    *,
    store: Store,
    prefix: str,
    images: np.ndarray,
    dataset_version: str,
    dataset_digest: str,
    trajectory: dict[str, Any],
    inputs: dict[str, Any],
    epochs: int,
    work_dir: Path,
    started: float,
    logger: Any,
) -> dict[str, Any]:
    import keras

    from cxrcore.data.pipeline import make_dataset
    from cxrcore.models.dcgan import (
        DCGAN,
        DISCRIMINATOR_PAPER_PARAMS,
        GENERATOR_PAPER_PARAMS,
        GANSampleGrid,
        build_discriminator,
        build_generator,
        default_gan_optimizers,
    )

    strategy, use_mixed, use_xla, device = _configure_hardware(settings, logger)
    replicas = int(strategy.num_replicas_in_sync)
    if len(images) < replicas:
        raise ValueError(
            f"Class {settings.class_name!r} has {len(images)} training images, fewer than the {replicas} replicas. "
            f"Received: train_images={len(images)}"
        )
    batch_size = settings.batch_size
    if len(images) < batch_size:
        batch_size = len(images) - len(images) % replicas
        logger.warning(
            "gan_batch_reduced", requested=settings.batch_size, effective=batch_size, train_images=len(images)
        )
    steps_per_epoch = len(images) // batch_size
    if settings.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, settings.max_steps_per_epoch)

    keras.backend.clear_session()
    keras.utils.set_random_seed(settings.seed)
    previous_policy = keras.mixed_precision.global_policy()
    try:
        if use_mixed:
            keras.mixed_precision.set_global_policy("mixed_float16")
        with strategy.scope():
            generator = build_generator(
                settings.latent_dim,
                width_multiplier=settings.width_multiplier,
                output_size=settings.image_size,
                channels=CHANNELS,
            )
            discriminator = build_discriminator(
                input_size=settings.image_size, channels=CHANNELS, width_multiplier=settings.width_multiplier
            )
            model = DCGAN(discriminator, generator, latent_dim=settings.latent_dim, seed=settings.seed)
            d_optimizer, g_optimizer = default_gan_optimizers(settings.learning_rate)
            model.compile(
                d_optimizer=d_optimizer,
                g_optimizer=g_optimizer,
                loss_fn=keras.losses.BinaryCrossentropy(from_logits=True),
                jit_compile=use_xla,
            )
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)

    record = TrainingRecord(samples_dir=work_dir / "samples")
    initial_epoch = 0
    resumed_key = None
    fresh_state = None
    for candidate in _resume_candidates(store, prefix, trajectory, epochs):
        if fresh_state is None:
            fresh_state = (generator.get_weights(), discriminator.get_weights(), _optimizer_arrays(model))
        try:
            _restore(store, candidate, model, record, work_dir)
        except (ValueError, OSError, StoreError) as exc:
            # A half-restored model must not train on: put the freshly initialised state back.
            logger.warning("gan_checkpoint_unusable", key=candidate.key, error=f"{type(exc).__name__}: {exc}")
            generator.set_weights(fresh_state[0])
            discriminator.set_weights(fresh_state[1])
            _assign_optimizer_arrays(model, fresh_state[2])
            record.reset()
            continue
        initial_epoch, resumed_key = candidate.epoch, candidate.key
        logger.info("gan_resume", key=candidate.key, resumed_from_epoch=candidate.epoch, epochs=epochs)
        break

    data = make_dataset(
        images,
        image_size=settings.image_size,
        batch_size=batch_size,
        channels=CHANNELS,
        shuffle=True,
        seed=settings.seed,
        scale="unit",
        drop_remainder=True,
    )
    # Repeat so every epoch has exactly ``steps_per_epoch`` batches; on resume skip what was consumed, so the
    # resumed run sees the batches the uninterrupted run would have seen.
    data = data.repeat()
    if initial_epoch:
        data = data.skip(initial_epoch * steps_per_epoch)

    extra_state = {"train_images": int(len(images)), "steps_per_epoch": steps_per_epoch, "batch_size": batch_size}
    checkpoint = StoreCheckpoint(
        store,
        prefix,
        trajectory=trajectory,
        record=record,
        every=settings.checkpoint_every,
        final_epoch=epochs,
        extra_state=extra_state,
        staging_dir=work_dir / "checkpoints",
        logger=logger,
    )
    callbacks = [
        EpochLog(record, epochs=epochs, images_per_epoch=steps_per_epoch * batch_size, logger=logger),
        GANSampleGrid(
            record.write_grid, num_images=SAMPLE_GRID_IMAGES, columns=SAMPLE_GRID_COLUMNS, seed=settings.seed
        ),
        checkpoint,
    ]
    logger.info(
        "gan_train_start",
        initial_epoch=initial_epoch,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        batch_size=batch_size,
        replicas=replicas,
    )
    train_started = time.monotonic()
    try:
        if initial_epoch < epochs:
            model.fit(
                data,
                epochs=epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps_per_epoch,
                callbacks=callbacks,
                shuffle=False,  # the tf.data pipeline shuffles (seeded); Keras cannot shuffle a dataset anyway
                verbose=0,
            )
    except BaseException:
        # Training failed: still finish the checkpoint upload in flight (a valid resume point), but let the
        # training error be the one that propagates.
        try:
            checkpoint.close()
        except Exception as exc:  # noqa: BLE001 - reported, the training error wins
            logger.error("gan_checkpoint_failed", error=f"{type(exc).__name__}: {exc}")
        raise
    checkpoint.close()
    train_seconds = time.monotonic() - train_started
    if len(record.losses) != epochs or record.last_grid is None:
        raise RuntimeError(
            f"Training of {prefix} ended with {len(record.losses)} of {epochs} epochs recorded; refusing to publish"
        )

    generator_params = _count_params(generator)
    discriminator_params = _count_params(discriminator)
    last = record.losses[-1]
    info = {
        "format": OUTPUT_FORMAT,
        "job": JOB_NAME,
        "cxrcore_version": __version__,
        "settings": settings.model_dump(mode="json", exclude={"s3", "store", "io_workers", "log_level", "log_format"}),
        "dataset": {
            "name": settings.dataset,
            "version": dataset_version,
            "digest": dataset_digest,
            "split": "train",
            "class_name": settings.class_name,
            "train_images": int(len(images)),
        },
        "model": {
            "architecture": "DCGAN (paper Table 1)",
            "image_size": settings.image_size,
            "channels": CHANNELS,
            "latent_dim": settings.latent_dim,
            "width_multiplier": settings.width_multiplier,
            "generator_parameters": generator_params,
            "discriminator_parameters": discriminator_params,
            "paper_generator_parameters": GENERATOR_PAPER_PARAMS,
            "paper_discriminator_parameters": DISCRIMINATOR_PAPER_PARAMS,
        },
        "training": {
            "epochs": epochs,
            "steps_per_epoch": steps_per_epoch,
            "batch_size": batch_size,
            "requested_batch_size": settings.batch_size,
            "learning_rate": settings.learning_rate,
            "optimizer": "Adam (discriminator and generator)",
            "loss": "BinaryCrossentropy(from_logits=True)",
            "resumed_from_epoch": initial_epoch,
            "resumed_from": resumed_key,
            "epochs_trained_this_run": epochs - initial_epoch,
            "checkpoints_written": checkpoint.written,
            "train_seconds": round(train_seconds, 3),
            "training_seconds_all_epochs": round(sum(float(row["seconds"]) for row in record.losses), 3),
            "wall_seconds": round(time.monotonic() - started, 3),
            "final_d_loss": last["d_loss"],
            "final_g_loss": last["g_loss"],
        },
        "device": device,
    }
    models_dir = work_dir / "models"
    models_dir.mkdir()
    generator.save(models_dir / "generator.keras")
    discriminator.save(models_dir / "discriminator.keras")
    with store.commit(
        prefix, inputs=inputs, producer=f"{JOB_NAME} {__version__}", preserve=(_CHECKPOINT_DIR,)
    ) as tx:
        tx.put_file("generator.keras", models_dir / "generator.keras")
        tx.put_file("discriminator.keras", models_dir / "discriminator.keras")
        tx.put_bytes("losses.csv", record.losses_csv())
        tx.put_bytes("samples.png", record.last_grid)
        tx.put_dir(record.samples_dir, "samples")
        tx.put_json("gan.json", info)
    logger.info(
        "gan_committed",
        uri=f"{store.uri.rstrip('/')}/{prefix}",
        epochs=epochs,
        resumed_from_epoch=initial_epoch,
        final_d_loss=round(last["d_loss"], 5),
        final_g_loss=round(last["g_loss"], 5),
        wall_seconds=info["training"]["wall_seconds"],
    )
    return _summary(store, prefix, info, status="trained", marker=tx.marker)
