"""The train and test sides of one classifier, its class weights and its loss (pure: arrays in, values out).

See docs/architecture.md#layers. ``protocol=clean`` keeps the dataset's split: synthetic images join the
training side only, so the test set is the same real images in both conditions and McNemar's test can pair
them. ``protocol=paper-merge`` reproduces the paper instead: real (+ synthetic) images are pooled and re-split
80/20 stratified at random with the run's seed; synthetic images then reach the test set, which is recorded as
``test_contaminated``.

``validation_fraction > 0`` carves a validation split out of the training side (:func:`carve_validation`):
grouped by patient and stratified by class, real images only, and only patients with no test image, so it is
patient-disjoint from the training rows left and from the test rows. It picks the best epoch and the decision
threshold; the test split is never used to choose anything. Under ``clean`` the carve depends on the real
dataset, the fraction and ``validation_seed`` only (not on the classifier's seed or on synthetic images), so
:func:`validation_image_ids` gives the DCGAN the same split to leave out: no synthetic image is drawn from a
validation patient, and :func:`validation_digest` lets a classifier check that its GANs held out its split.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from cxrcore.data.splits import assign_split, patients_on_both_sides
from cxrcore.vocab import CLASS_NAMES, PAPER_TEST_FRACTION, PROTOCOLS

__all__ = [
    "TrainingData",
    "assemble_training_data",
    "binary_cross_entropy",
    "carve_validation",
    "class_weights",
    "gan_holdout_status",
    "validation_digest",
    "validation_image_ids",
]

#: Keras' ``epsilon()``: the clipping of ``binary_crossentropy``, reproduced by :func:`binary_cross_entropy`.
_BCE_EPSILON = 1e-7
#: The manifest columns the real and synthetic rows are pooled on (:func:`validation_image_ids` pools the same).
_POOL_COLUMNS = ["image_id", "sha256", "class", "label", "patient_id", "split"]


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
            ``test_synthetic``, ``validation``) and per class (``train_by_class``, ``test_by_class``,
            ``validation_by_class``).
        validation_images: uint8 ``(n_validation, size, size)`` carved from the training side, sorted by
            ``image_id`` (none without a validation split).
        validation_labels: int ``(n_validation,)``.
        validation_ids: ``image_id`` of each validation image.
        validation_patients: ``patients`` of the validation split and how many of them also have images in the
            training rows (``in_train``) or the test rows (``in_test``): both 0 by construction.
        validation_seen_by_gan: Per synthetic class, whether its GAN left this validation split out
            (:func:`gan_holdout_status`); empty for the baseline or without a validation split.
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
    validation_images: np.ndarray
    validation_labels: np.ndarray
    validation_ids: list[str]
    validation_patients: dict[str, int]
    validation_seen_by_gan: dict[str, str] = dataclasses.field(default_factory=dict)


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
    validation_fraction: float = 0.0,
    validation_seed: int = 0,
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
        validation_fraction: Share of the training patients carved out as the validation split
            (:func:`carve_validation`); 0: none.
        validation_seed: Seed of the validation carve (the same for every classifier seed, so the GANs can
            leave the same patients out).

    Returns:
        The :class:`TrainingData`.

    Raises:
        ValueError: Unknown protocol, an empty training or test side, or an empty validation split.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be 'clean' or 'paper-merge'. Received: protocol={protocol!r}")
    pool, pixels = _pool(real_manifest, real_images, synthetic, image_size)
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
    validation_index = carve_validation(
        pool, train_index, test_index, fraction=validation_fraction, seed=validation_seed
    )
    train_index = train_index[~np.isin(train_index, validation_index)]
    real = ~pool["synthetic"].to_numpy()
    real_rows = pool[real]
    labels = pool["label"].to_numpy().astype(int)
    return TrainingData(
        train_images=pixels[train_index],
        train_labels=labels[train_index],
        test_images=pixels[test_index],
        test_labels=test_frame["label"].to_numpy().astype(int),
        test_ids=test_frame["image_id"].astype(str).tolist(),
        split_strategy=strategy,
        dataset_split_strategy=dataset_split_strategy,
        patients_on_both_sides=patients_on_both_sides(real_rows, real_rows["split"]),
        test_contaminated=bool(test_frame["synthetic"].any()),
        counts=_counts(real, labels, train_index, test_index, validation_index),
        validation_images=pixels[validation_index],
        validation_labels=labels[validation_index],
        validation_ids=pool["image_id"].to_numpy()[validation_index].astype(str).tolist(),
        validation_patients=_validation_patients(pool, train_index, test_index, validation_index),
    )


def validation_image_ids(real_manifest: pd.DataFrame, *, fraction: float, seed: int) -> list[str]:
    """``image_id`` of the validation split a ``clean`` classifier carves from this dataset (pure).

    The same rows :func:`assemble_training_data` carves with ``protocol="clean"``, ``validation_fraction=fraction``
    and ``validation_seed=seed``, with or without synthetic images (they are never candidates).

    Args:
        real_manifest: Manifest of the real dataset (``image_id``, ``sha256``, ``class``, ``label``,
            ``patient_id``, ``split``).
        fraction: The classifiers' ``validation_fraction``; 0 gives an empty list.
        seed: The classifiers' ``validation_seed``.

    Returns:
        The ids, sorted.

    Raises:
        ValueError: ``fraction`` outside [0, 1), or a positive fraction that leaves the split empty.
    """
    pool = real_manifest.loc[:, _POOL_COLUMNS].assign(synthetic=False).reset_index(drop=True)
    is_test = (pool["split"] == "test").to_numpy()
    index = carve_validation(
        pool, np.flatnonzero(~is_test), np.flatnonzero(is_test), fraction=fraction, seed=seed
    )
    return sorted(pool["image_id"].to_numpy()[index].astype(str).tolist())


def validation_digest(image_ids: Sequence[str]) -> str | None:
    """SHA-256 of the sorted, newline-joined ids of a validation split; ``None`` for an empty split."""
    if not len(image_ids):
        return None
    return hashlib.sha256("\n".join(sorted(str(i) for i in image_ids)).encode()).hexdigest()


def gan_holdout_status(
    validation_ids: Sequence[str], holdouts: Mapping[str, Mapping[str, Any] | None]
) -> dict[str, str]:
    """Whether each class's GAN left this classifier's validation split out of its training images (pure).

    Args:
        validation_ids: ``image_id`` of the classifier's validation split.
        holdouts: Per class, the ``validation_holdout`` of its GAN's ``gan.json`` (``None``: not recorded).

    Returns:
        ``{class: status}``: ``held-out`` (the GAN left exactly this split out), ``seen`` (it trained on a
        different split's complement, or on the whole training split, so synthetic images may come from
        validation patients) or ``unknown`` (not recorded); empty without a validation split.
    """
    digest = validation_digest(validation_ids)
    if digest is None:
        return {}
    status = {}
    for name, holdout in sorted(holdouts.items()):
        if holdout is None:
            status[name] = "unknown"
        else:
            status[name] = "held-out" if holdout.get("digest") == digest else "seen"
    return status


def _pool(
    real_manifest: pd.DataFrame,
    real_images: np.ndarray,
    synthetic: Sequence[tuple[pd.DataFrame, np.ndarray]],
    image_size: int,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Real and synthetic rows in one frame (synthetic ones on the training side) and their resized pixels."""
    from cxrcore.data.pipeline import resize_images

    frames = [real_manifest.loc[:, _POOL_COLUMNS].assign(synthetic=False)]
    arrays = [resize_images(real_images, image_size)]
    for manifest, images in synthetic:
        frames.append(manifest.loc[:, _POOL_COLUMNS].assign(synthetic=True, split="train"))
        arrays.append(resize_images(images, image_size))
    pool = pd.concat(frames, ignore_index=True)
    return pool, (np.concatenate(arrays) if len(arrays) > 1 else arrays[0])


def _counts(
    real: np.ndarray,
    labels: np.ndarray,
    train_index: np.ndarray,
    test_index: np.ndarray,
    validation_index: np.ndarray,
) -> dict[str, Any]:
    """Images per side, real and synthetic, and per class (``metrics.json`` ``counts``)."""
    return {
        "train_real": int(real[train_index].sum()),
        "train_synthetic": int((~real[train_index]).sum()),
        "test_real": int(real[test_index].sum()),
        "test_synthetic": int((~real[test_index]).sum()),
        "validation": int(len(validation_index)),
        "train_by_class": _by_class(labels[train_index]),
        "test_by_class": _by_class(labels[test_index]),
        "validation_by_class": _by_class(labels[validation_index]),
    }


def carve_validation(
    pool: pd.DataFrame, train_index: np.ndarray, test_index: np.ndarray, *, fraction: float, seed: int
) -> np.ndarray:
    """Rows of ``pool`` held out of training as the validation split, sorted by ``image_id`` (pure).

    Candidates are the real rows of ``train_index`` whose patient has no row in ``test_index``; they are split
    grouped by patient and stratified by class (the ``patient`` strategy of :func:`cxrcore.data.splits.assign_split`
    with ``test_fraction=fraction`` and ``seed``).

    Args:
        pool: Rows with ``image_id``, ``sha256``, ``class``, ``patient_id`` and ``synthetic``, indexed 0..n-1.
        train_index: Positions of the training side.
        test_index: Positions of the test side.
        fraction: Share of the candidates' images per class; 0 gives no validation split.
        seed: Seed of the grouped split.

    Returns:
        Positions (a subset of ``train_index``).

    Raises:
        ValueError: ``fraction`` outside [0, 1), or a positive fraction that leaves the split empty.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1). Received: validation_fraction={fraction}")
    if fraction == 0.0:
        return np.zeros((0,), dtype=int)
    patient = pool["patient_id"].fillna(pool["image_id"]).astype(str)
    test_patients = set(patient.to_numpy()[test_index])
    train_rows = pool.iloc[train_index].assign(patient_id=patient.to_numpy()[train_index])
    candidates = train_rows[~train_rows["synthetic"].to_numpy() & ~train_rows["patient_id"].isin(test_patients)]
    split = assign_split(candidates, "patient", test_fraction=fraction, seed=seed)
    chosen = candidates.index[(split == "test").to_numpy()]
    if len(chosen) == 0:
        raise ValueError(
            f"The validation split is empty: {len(candidates)} real training images of patients without test "
            f"images are too few for the fraction. Received: validation_fraction={fraction}"
        )
    ordered = pool.loc[chosen].sort_values("image_id", kind="mergesort")
    return ordered.index.to_numpy().astype(int)


def _validation_patients(
    pool: pd.DataFrame, train_index: np.ndarray, test_index: np.ndarray, validation_index: np.ndarray
) -> dict[str, int]:
    patient = pool["patient_id"].fillna(pool["image_id"]).astype(str).to_numpy()
    validation = set(patient[validation_index])
    return {
        "patients": len(validation),
        "in_train": len(validation & set(patient[train_index])),
        "in_test": len(validation & set(patient[test_index])),
    }


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

