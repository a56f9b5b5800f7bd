"""``cxr evaluate``: a trained classifier's metrics on a ``NORMAL/ PNEUMONIA/`` folder of images.

A folder of full-size Kaggle JPEGs, 16-bit PNGs or RGBA screenshots is scored exactly like the stored test set
(docs/architecture.md#command-line): decoded by :mod:`cxrcore.evaluate.files`, predicted by
:func:`cxrcore.inference.predict_pixels`, summarised by :func:`cxrcore.metrics.binary_metrics`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from cxrcore.evaluate.files import CLASS_FOLDERS, decode_files, labelled_files
from cxrcore.inference import DEFAULT_BATCH_SIZE, predict_pixels, resolve_image_size
from cxrcore.logging import get_logger
from cxrcore.metrics import binary_metrics

__all__ = ["evaluate_folder"]

log = get_logger(__name__)

_EVAL_CHUNK = 1024


def _score_files(
    model, root: Path, paths: list[Path], labels: list[int], size: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Decodes and predicts chunk by chunk, so memory stays bounded for folders of any size.

    Returns:
        ``(labels, probabilities, skipped)`` of the readable files, and one entry per unreadable one
        (``path`` relative to ``root``, ``reason``, ``detail``).
    """
    kept_labels: list[int] = []
    chunks: list[np.ndarray] = []
    skipped: list[dict[str, Any]] = []
    for start in range(0, len(paths), _EVAL_CHUNK):
        decoded = decode_files(paths[start : start + _EVAL_CHUNK], size)
        pixels = [item.pixels for item in decoded if item.pixels is not None]
        kept_labels.extend(
            label for item, label in zip(decoded, labels[start : start + _EVAL_CHUNK]) if item.pixels is not None
        )
        skipped.extend(
            {"path": item.path.relative_to(root).as_posix(), "reason": item.reason, "detail": item.detail}
            for item in decoded
            if item.pixels is None
        )
        if pixels:
            chunks.append(predict_pixels(model, np.stack(pixels), batch_size=batch_size))
    probabilities = np.concatenate(chunks) if chunks else np.zeros((0,), dtype=np.float64)
    return np.asarray(kept_labels, dtype=int), probabilities, skipped


def evaluate_folder(
    model,
    data_dir: str | os.PathLike[str],
    *,
    image_size: int | None = None,
    threshold: float = 0.5,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict[str, Any]:
    """Scores a classifier on a ``NORMAL/ PNEUMONIA/`` folder of images of any size or mode.

    Args:
        model: A classifier (raw ``[0, 255]`` input, sigmoid P(PNEUMONIA) output).
        data_dir: Folder holding ``NORMAL/`` and/or ``PNEUMONIA/`` (any case; files in sub-folders count).
        image_size: Input size; default: the model's.
        threshold: Decision threshold on P(PNEUMONIA).
        batch_size: Images per forward pass.

    Returns:
        The metrics of :func:`cxrcore.metrics.binary_metrics` (``n``, ``accuracy``, ``accuracy_ci95``,
        ``precision_macro``, ``recall_macro``, ``f1_macro``, ``sensitivity``, ``specificity``, ``auc``,
        ``confusion_matrix``, ``collapsed``, ...) plus ``model``, ``data_dir``, ``image_size``, ``counts`` (images
        scored per class), ``skipped_count`` and ``skipped`` (``path`` relative to ``data_dir``, ``reason``,
        ``detail``).

    Raises:
        FileNotFoundError: ``data_dir`` does not exist.
        ValueError: No class folder, or not one readable image.
    """
    root = Path(data_dir)
    size = resolve_image_size(model, image_size)
    paths, labels = labelled_files(root)
    kept_labels, probabilities, skipped = _score_files(model, root, paths, labels, size, batch_size)
    for entry in skipped:
        log.warning("image_skipped", **entry)
    if len(probabilities) == 0:
        raise ValueError(
            f"No readable image in {root} ({len(paths)} file(s), {len(skipped)} skipped). "
            f"Received: data_dir={str(root)!r}"
        )
    metrics = binary_metrics(kept_labels, probabilities, threshold=threshold)
    result = {
        "model": model.name,
        "data_dir": str(root),
        "image_size": size,
        "counts": {name: int((kept_labels == label).sum()) for label, name in enumerate(CLASS_FOLDERS)},
        **metrics,
        "skipped_count": len(skipped),
        "skipped": skipped,
    }
    if metrics["collapsed"]:
        log.warning("model_collapsed", collapsed_to=metrics["collapsed_to"], n=metrics["n"], data_dir=str(root))
    return result
