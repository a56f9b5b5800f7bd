"""``cxr-gan-train`` under its historical import path: the step is :mod:`cxrcore.steps.gan_train`.

See docs/architecture.md#layers. ``jobs/gan_train.py`` calls :func:`run`; the training loop and its callbacks
live in :mod:`cxrcore.training.gan`, a checkpoint's content in :mod:`cxrcore.training.gan_state`, and the
checkpoint series, devices and model files in :mod:`cxrcore.ml`.
"""

from __future__ import annotations

from cxrcore.ml.checkpoints import CHECKPOINTS_KEPT
from cxrcore.steps.gan_train import (
    checkpoint_prefix,
    job_inputs,
    run,
    trajectory_inputs,
)
from cxrcore.training.gan import CHANNELS, EpochLog, StoreCheckpoint
from cxrcore.training.gan_state import LOSS_COLUMNS, TrainingRecord

__all__ = [
    "CHANNELS",
    "CHECKPOINTS_KEPT",
    "LOSS_COLUMNS",
    "EpochLog",
    "StoreCheckpoint",
    "TrainingRecord",
    "checkpoint_prefix",
    "job_inputs",
    "run",
    "trajectory_inputs",
]
