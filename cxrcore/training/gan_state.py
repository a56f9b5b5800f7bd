"""What a DCGAN checkpoint holds, staged to disk and restored, so a resumed run reproduces the uninterrupted one.

See docs/architecture.md#store-layout. A checkpoint ``checkpoints/epoch-NNNN/`` of ``cxr-gan-train`` holds::

    generator.weights.h5  discriminator.weights.h5
    optimizers.npz        every variable of both optimizers (Adam moments, iteration counters, loss-scale
                          state) and every seed-generator state (training noise, Dropout masks)
    state.json            epoch, losses and quality measurements so far, train image count, steps per epoch,
                          batch size
    best.npz              the lowest-KID measured generator so far (its published weights: the moving average
                          when the run keeps one) and its discriminator, with the step it was measured at;
                          absent before the first measurement after step 0
    samples/epoch-NNNN.png  every grid so far (so a resumed run still publishes all)

``save_weights`` stores weights only; the seed states decide the next noise and dropout masks, so the
checkpoint carries them for an exact resume.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from cxrcore.ml.checkpoints import STATE_FILE, Checkpoint, read_state, write_state
from cxrcore.ml.model_io import SavedFile, fetch_verified, save_model
from cxrcore.storage import Store

__all__ = [
    "BEST_FILE",
    "CHECKPOINT_FILES",
    "MeasuredNetworks",
    "LOSS_COLUMNS",
    "TrainingRecord",
    "assign_optimizer_arrays",
    "optimizer_arrays",
    "restore_checkpoint",
    "stage_checkpoint",
]

_GENERATOR_WEIGHTS = "generator.weights.h5"
_DISCRIMINATOR_WEIGHTS = "discriminator.weights.h5"
_OPTIMIZERS = "optimizers.npz"
#: Files of every checkpoint besides the sample grids.
CHECKPOINT_FILES = (_GENERATOR_WEIGHTS, _DISCRIMINATOR_WEIGHTS, _OPTIMIZERS, STATE_FILE)
#: The lowest-KID measured networks so far (optional: only once a trained generator has been measured).
BEST_FILE = "best.npz"
_SAMPLES = "samples"
#: Columns of ``losses.csv`` (the first four are the contract; the rest are diagnostics).
LOSS_COLUMNS = (
    "epoch",
    "d_loss",
    "g_loss",
    "seconds",
    "d_real_accuracy",
    "d_fake_accuracy",
    "images_per_second",
    "d_grad_norm_max",
    "g_grad_norm_max",
)


@dataclasses.dataclass(frozen=True)
class MeasuredNetworks:
    """The weights of both networks as they were when one quality measurement was taken.

    Attributes:
        step: The measurement's step.
        epoch: The measurement's epoch.
        kid: Its KID.
        generator: The generator's weights as measured and published (``get_weights`` order; the moving
            average of the trainable ones when the run keeps one).
        discriminator: The discriminator's weights (``get_weights`` order).
    """

    step: int
    epoch: int
    kid: float
    generator: list[np.ndarray]
    discriminator: list[np.ndarray]

    def arrays(self) -> dict[str, np.ndarray]:
        """The content of ``best.npz``."""
        arrays = {f"g_{index:05d}": value for index, value in enumerate(self.generator)}
        arrays.update({f"d_{index:05d}": value for index, value in enumerate(self.discriminator)})
        arrays["measured"] = np.asarray([self.step, self.epoch], dtype=np.int64)
        arrays["kid"] = np.asarray(self.kid, dtype=np.float64)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], key: str) -> MeasuredNetworks:
        """Reads :meth:`arrays` back.

        Raises:
            ValueError: ``measured`` or ``kid`` is missing or malformed.
        """
        measured = arrays.get("measured")
        if measured is None or measured.shape != (2,) or "kid" not in arrays:
            raise ValueError(f"Checkpoint {key}: {BEST_FILE} lacks its measured step and KID")
        return cls(
            step=int(measured[0]),
            epoch=int(measured[1]),
            kid=float(arrays["kid"]),
            generator=[arrays[name] for name in sorted(arrays) if name.startswith("g_")],
            discriminator=[arrays[name] for name in sorted(arrays) if name.startswith("d_")],
        )


@dataclasses.dataclass
class TrainingRecord:
    """What the callbacks share: the loss history and where the sample grids are staged.

    Attributes:
        samples_dir: Local directory holding ``epoch-NNNN.png`` grids.
        losses: One dict per completed epoch (keys: :data:`LOSS_COLUMNS`), oldest first.
        last_grid: PNG bytes of the newest grid, or ``None`` before the first epoch.
        quality: Quality measurements (:meth:`cxrcore.synthesis.gan_quality.QualityProbe.measure` rows with
            ``step`` and ``epoch``), oldest first.
        best: Both networks at the lowest-KID measurement of a trained generator so far
            (:func:`cxrcore.synthesis.gan_quality.best_measurement`), or ``None`` before one.
    """

    samples_dir: Path
    losses: list[dict[str, float]] = dataclasses.field(default_factory=list)
    last_grid: bytes | None = None
    quality: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    best: MeasuredNetworks | None = None

    def write_grid(self, epoch_index: int, png: bytes) -> None:
        """Sink of ``GANSampleGrid``: stages the grid of Keras epoch ``epoch_index`` (0-based)."""
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        (self.samples_dir / f"epoch-{epoch_index + 1:04d}.png").write_bytes(png)
        self.last_grid = png

    def grids(self) -> list[Path]:
        """Every staged grid, oldest first."""
        return sorted(self.samples_dir.glob("epoch-*.png")) if self.samples_dir.is_dir() else []

    def reset(self) -> None:
        """Forgets every epoch (after a failed restore)."""
        self.losses.clear()
        self.quality.clear()
        self.best = None
        self.last_grid = None
        for path in self.grids():
            path.unlink()

    def losses_csv(self) -> bytes:
        """The loss history as CSV bytes with :data:`LOSS_COLUMNS`."""
        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer,
            fieldnames=list(LOSS_COLUMNS),
            lineterminator="\n",
            extrasaction="ignore",
        )
        writer.writeheader()
        for row in self.losses:
            writer.writerow(row)
        return buffer.getvalue().encode()


def _seed_states(model: Any) -> list[Any]:
    """Every random-seed state variable of the DCGAN: its noise generator and each Dropout's."""
    return [variable for variable in model.variables if variable.path.endswith("seed_generator_state")]


def optimizer_arrays(model: Any) -> dict[str, np.ndarray]:
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


def assign_optimizer_arrays(model: Any, arrays: dict[str, np.ndarray], key: str = "the initial state") -> None:
    """Assigns arrays saved by :func:`optimizer_arrays`, checking every count and shape before assigning any.

    Raises:
        ValueError: A count or shape differs from the model's (nothing is assigned then).
    """
    pairs = []
    groups = (
        ("d", model.d_optimizer.variables),
        ("g", model.g_optimizer.variables),
        ("s", _seed_states(model)),
    )
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


def stage_checkpoint(
    staging_dir: Path,
    model: Any,
    epoch: int,
    record: TrainingRecord,
    extra_state: dict[str, Any],
) -> tuple[Path, dict[str, SavedFile]]:
    """Writes the checkpoint of ``epoch`` to a fresh local directory (nothing shared with training).

    Returns:
        ``(directory, {name: saved weights file})``.
    """
    local = staging_dir / f"epoch-{epoch:04d}"
    shutil.rmtree(local, ignore_errors=True)
    (local / _SAMPLES).mkdir(parents=True)
    saved = {
        _GENERATOR_WEIGHTS: save_model(model.generator, local / _GENERATOR_WEIGHTS, weights_only=True),
        _DISCRIMINATOR_WEIGHTS: save_model(model.discriminator, local / _DISCRIMINATOR_WEIGHTS, weights_only=True),
    }
    np.savez(local / _OPTIMIZERS, **optimizer_arrays(model))
    if record.best is not None and record.best.epoch <= epoch:
        np.savez(local / BEST_FILE, **record.best.arrays())
    quality = [row for row in record.quality if row["epoch"] <= epoch]
    write_state(
        local,
        {
            "epoch": epoch,
            "losses": record.losses[:epoch],
            "quality": quality,
            **extra_state,
        },
    )
    for grid in record.grids():
        shutil.copyfile(grid, local / _SAMPLES / grid.name)
    return local, saved


def restore_checkpoint(
    store: Store,
    checkpoint: Checkpoint,
    model: Any,
    record: TrainingRecord,
    work_dir: Path,
) -> dict[str, Any]:
    """Loads a checkpoint into ``model`` and ``record``; returns its state.

    Raises:
        ValueError: A file is missing from the checkpoint, its state does not describe its epoch, or the
            optimizer arrays do not fit the model.
        OSError: A weights file does not load.
        cxrcore.storage.StoreError: A download failed or an object does not match its recorded sha256.
    """
    local = work_dir / f"resume-{checkpoint.epoch:04d}"
    kept = (BEST_FILE,) if BEST_FILE in checkpoint.marker.outputs else ()
    fetch_verified(
        store,
        checkpoint.key,
        checkpoint.marker,
        {name: local / name for name in (*CHECKPOINT_FILES, *kept)},
    )
    state = read_state(local)
    if state.get("epoch") != checkpoint.epoch or len(state.get("losses", [])) != checkpoint.epoch:
        raise ValueError(f"Checkpoint {checkpoint.key} state.json does not describe epoch {checkpoint.epoch}")
    model.generator.load_weights(local / _GENERATOR_WEIGHTS)
    model.discriminator.load_weights(local / _DISCRIMINATOR_WEIGHTS)
    with np.load(local / _OPTIMIZERS, allow_pickle=False) as saved:
        arrays = {name: saved[name] for name in saved.files}
    assign_optimizer_arrays(model, arrays, checkpoint.key)
    grids = {
        name: record.samples_dir / name.split("/", 1)[1]
        for name in sorted(checkpoint.marker.outputs)
        if name.startswith(f"{_SAMPLES}/")
    }
    fetch_verified(store, checkpoint.key, checkpoint.marker, grids)
    record.losses[:] = state["losses"]
    record.quality[:] = state.get("quality", [])
    record.best = None
    if kept:
        with np.load(local / BEST_FILE, allow_pickle=False) as saved:
            record.best = MeasuredNetworks.from_arrays({name: saved[name] for name in saved.files}, checkpoint.key)
        if not any(row["step"] == record.best.step for row in record.quality):
            raise ValueError(
                f"Checkpoint {checkpoint.key}: {BEST_FILE} was measured at step {record.best.step}, which its "
                f"state.json does not list. Received: step={record.best.step}"
            )
    staged = record.grids()
    record.last_grid = staged[-1].read_bytes() if staged else None
    return state
