"""The train and test sides of one classifier, its class weights and its loss (pure: arrays in, values out).

See docs/architecture.md#layers. ``protocol=clean`` keeps the dataset's split: synthetic images join the
training side only, so the test set is the same real images in both conditions and McNemar's test can pair
them. ``protocol=paper-merge`` reproduces the paper instead: real (+ synthetic) images are pooled and re-split
80/20 stratified at random with the run's seed; synthetic images then reach the test set, which is recorded as
``test_contaminated``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cxrcore.data.splits import assign_split, patients_on_both_sides
from cxrcore.vocab import CLASS_NAMES, PAPER_TEST_FRACTION, PROTOCOLS

__all__ = ["TrainingData", "assemble_training_data", "binary_cross_entropy", "class_weights"]

#: Keras' ``epsilon()``: the clipping of ``binary_crossentropy``, reproduced by :func:`binary_cross_entropy`.
_BCE_EPSILON = 1e-7


@dataclasses.dataclass
class TrainingData:
    """The images one classifier trains and is tested on, already at the model's input size.

    Attributes:
        train_images: uint8 ``(n_train, size, size)``: real training images, then synthetic ones.
        train_labels: int ``(n_train,)`` (1 = PNEUMONIA).
        test_images: uint8 ``(n_test, size, size)``, sorted by ``image_id``.
        test_labels: int ``(n_test,)``.
        test_ids: ``image_id`` of each test image.
        split_strategy: The split in effect: the dataset's (``patient``/``paper``/``official``) for the ``clean``
            protocol, ``paper-merge`` for the pooled re-split.
        dataset_split_strategy: The dataset version's own split strategy.
        patients_on_both_sides: Patients with real images in the test set and in the training set.
        test_contaminated: Whether synthetic images are in the test set (``paper-merge`` with synthetic data).
        counts: Images per side and source (``train_real``, ``train_synthetic``, ``test_real``,
            ``test_synthetic``) and per class (``train_by_class``, ``test_by_class``).
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    test_ids: list[str]
    split_strategy: str
    dataset_split_strategy: str
    patients_on_both_sides: int
    test_contaminated: bool
    counts: dict[str, Any]


def _by_class(labels: np.ndarray) -> dict[str, int]:
    return {name: int((labels == index).sum()) for index, name in enumerate(CLASS_NAMES)}


def assemble_training_data(
    real_manifest: pd.DataFrame,
    real_images: np.ndarray,
    synthetic: Sequence[tuple[pd.DataFrame, np.ndarray]],
    *,
    protocol: str,
    dataset_split_strategy: str,
    seed: int,
    image_size: int,
) -> TrainingData:
    """Puts the train and test sides together (pure: no I/O).

    Args:
        real_manifest: Manifest of the real dataset (``image_id``, ``sha256``, ``class``, ``label``,
            ``patient_id``, ``split``), aligned with ``real_images``.
        real_images: uint8 ``(n, h, w)`` real images.
        synthetic: ``(manifest, images)`` of each synthetic class (empty for the baseline).
        protocol: ``clean`` (synthetic joins the training side only; the dataset's split is kept) or
            ``paper-merge`` (pool everything and re-split stratified 80/20 with ``seed``).
        dataset_split_strategy: The dataset's split strategy, recorded for ``clean``.
        seed: Seed of the ``paper-merge`` split.
        image_size: Model input size; every image is resized to it once.

    Returns:
        The :class:`TrainingData`.

    Raises:
        ValueError: Unknown protocol, or an empty training or test side.
    """
    from cxrcore.data.pipeline import resize_images

    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be 'clean' or 'paper-merge'. Received: protocol={protocol!r}")
    columns = ["image_id", "sha256", "class", "label", "patient_id", "split"]
    frames = [real_manifest.loc[:, columns].assign(synthetic=False)]
    arrays = [resize_images(real_images, image_size)]
    for manifest, images in synthetic:
        frames.append(manifest.loc[:, columns].assign(synthetic=True, split="train"))
        arrays.append(resize_images(images, image_size))
    pool = pd.concat(frames, ignore_index=True)
    pixels = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
    if protocol == "paper-merge":
        pool["split"] = assign_split(pool, "paper", test_fraction=PAPER_TEST_FRACTION, seed=seed).to_numpy()
        strategy = "paper-merge"
    else:
        strategy = dataset_split_strategy
    is_test = (pool["split"] == "test").to_numpy()
    # val rows (official split) train too: the paper had no validation set and no early stopping.
    train_index = np.flatnonzero(~is_test)
    test_frame = pool[is_test].sort_values("image_id", kind="mergesort")
    test_index = test_frame.index.to_numpy()
    if len(train_index) == 0 or len(test_index) == 0:
        raise ValueError(
            "Training needs images on both sides of the split. "
            f"Received: train={len(train_index)}, test={len(test_index)}, protocol={protocol!r}"
        )
    real = ~pool["synthetic"].to_numpy()
    real_rows = pool[real]
    train_labels = pool["label"].to_numpy()[train_index].astype(int)
    test_labels = test_frame["label"].to_numpy().astype(int)
    return TrainingData(
        train_images=pixels[train_index],
        train_labels=train_labels,
        test_images=pixels[test_index],
        test_labels=test_labels,
        test_ids=test_frame["image_id"].astype(str).tolist(),
        split_strategy=strategy,
        dataset_split_strategy=dataset_split_strategy,
        patients_on_both_sides=patients_on_both_sides(real_rows, real_rows["split"]),
        test_contaminated=bool(test_frame["synthetic"].any()),
        counts={
            "train_real": int(real[train_index].sum()),
            "train_synthetic": int((~real[train_index]).sum()),
            "test_real": int(real[test_index].sum()),
            "test_synthetic": int((~real[test_index]).sum()),
            "train_by_class": _by_class(train_labels),
            "test_by_class": _by_class(test_labels),
        },
    )


def class_weights(labels: np.ndarray, mode: str) -> dict[int, float] | None:
    """Keras ``class_weight`` for ``mode``: ``None`` for ``none``, ``n / (2 * n_class)`` for ``balanced``."""
    if mode == "none":
        return None
    if mode != "balanced":
        raise ValueError(f"class_weight must be 'none' or 'balanced'. Received: class_weight={mode!r}")
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=2)
    if (counts == 0).any():
        raise ValueError(f"Balanced class weights need both classes in training. Received: counts={counts.tolist()}")
    return {label: float(len(labels) / (2.0 * count)) for label, count in enumerate(counts)}


def binary_cross_entropy(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean binary cross-entropy as Keras computes it (probabilities clipped to ``[1e-7, 1 - 1e-7]``)."""
    labels = np.asarray(labels, dtype=np.float64).ravel()
    clipped = np.clip(np.asarray(probabilities, dtype=np.float64).ravel(), _BCE_EPSILON, 1.0 - _BCE_EPSILON)
    return float(-np.mean(labels * np.log(clipped) + (1.0 - labels) * np.log(1.0 - clipped)))

