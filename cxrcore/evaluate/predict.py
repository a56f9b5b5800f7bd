"""``cxr predict``: the probability of pneumonia for each image file (docs/architecture.md#command-line)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cxrcore.evaluate.files import CLASS_FOLDERS, DecodedFile, decode_files
from cxrcore.inference import DEFAULT_BATCH_SIZE, predict_pixels, resolve_image_size

__all__ = ["predict_images"]


def predict_images(
    model,
    paths: Sequence[str | os.PathLike[str]],
    *,
    image_size: int | None = None,
    threshold: float = 0.5,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[dict[str, Any]]:
    """Probability of PNEUMONIA for each image file, in the given order.

    Args:
        model: A classifier (raw ``[0, 255]`` input).
        paths: Image files of any size or mode.
        image_size: Input size; default: the model's.
        threshold: Threshold for ``label_predicted``.
        batch_size: Images per forward pass.

    Returns:
        One dict per path: ``path``, ``probability`` (float), ``label_predicted`` (``NORMAL``/``PNEUMONIA``); an
        unreadable file gets ``probability`` and ``label_predicted`` ``None`` and an ``error`` (``reason: detail``).

    Raises:
        ValueError: A threshold outside (0, 1) or an image size the model contradicts.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1). Received: threshold={threshold}")
    size = resolve_image_size(model, image_size)
    decoded = decode_files([Path(path) for path in paths], size)
    kept = [index for index, item in enumerate(decoded) if item.pixels is not None]
    probabilities = (
        predict_pixels(model, np.stack([decoded[index].pixels for index in kept]), batch_size=batch_size)
        if kept
        else np.zeros((0,))
    )
    by_index = dict(zip(kept, probabilities.tolist()))
    return [
        _line(path, item, by_index.get(index), threshold) for index, (path, item) in enumerate(zip(paths, decoded))
    ]


def _line(
    path: str | os.PathLike[str], item: DecodedFile, probability: float | None, threshold: float
) -> dict[str, Any]:
    """The JSON line of one file: its probability and label, or why it could not be read."""
    if probability is None:
        error = f"{item.reason}: {item.detail}"
        return {"path": str(path), "probability": None, "label_predicted": None, "error": error}
    label = CLASS_FOLDERS[int(probability >= threshold)]
    return {"path": str(path), "probability": float(probability), "label_predicted": label}
