"""``cxr-train-classifier`` under its historical import path: the step is :mod:`cxrcore.steps.train_classifier`.

See docs/architecture.md#layers. ``jobs/train_classifier.py`` calls :func:`run`; the train and test sides live in
:mod:`cxrcore.training.classifier_data`, the training loop, scoring and ``metrics.json`` in
:mod:`cxrcore.training.classifier`, and the checkpoint series, devices and model files in :mod:`cxrcore.ml`.
"""

from __future__ import annotations

from cxrcore.ml.checkpoints import CHECKPOINTS_DIR
from cxrcore.ml.checkpoints import CHECKPOINTS_KEPT as KEEP_CHECKPOINTS
from cxrcore.steps.train_classifier import TRAINING_FORMAT, run
from cxrcore.steps.train_classifier import training_inputs as _training_inputs  # noqa: F401 - tests/test_identity.py
from cxrcore.training.classifier import build_metrics
from cxrcore.training.classifier_data import (
    TrainingData,
    assemble_training_data,
    binary_cross_entropy,
    class_weights,
)
from cxrcore.vocab import PAPER_TEST_FRACTION

__all__ = [
    "CHECKPOINTS_DIR",
    "KEEP_CHECKPOINTS",
    "PAPER_TEST_FRACTION",
    "TRAINING_FORMAT",
    "TrainingData",
    "assemble_training_data",
    "binary_cross_entropy",
    "build_metrics",
    "class_weights",
    "run",
]
