"""``cxr predict``: the probability of pneumonia for each image file (docs/architecture.md#command-line).

With ``explain_dir`` each readable image also gets a Grad-CAM explanation (:mod:`cxrcore.explain`), written here,
at the edge, as ``<explain_dir>/<image stem>.gradcam.png``.
"""

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
    explain_dir: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """Probability of PNEUMONIA for each image file, in the given order.

    Args:
        model: A classifier (raw ``[0, 255]`` input).
        paths: Image files of any size or mode.
        image_size: Input size; default: the model's.
        threshold: Threshold for ``label_predicted``.
        batch_size: Images per forward pass.
        explain_dir: Folder (created if missing) that receives one Grad-CAM PNG per readable image,
            ``<stem>.gradcam.png`` (``<stem>-2.gradcam.png``, ... for repeated stems); none by default.

    Returns:
        One dict per path: ``path``, ``probability`` (float), ``label_predicted`` (``NORMAL``/``PNEUMONIA``), and
        with ``explain_dir`` ``explanation`` (the PNG's path); an unreadable file gets ``probability`` and
        ``label_predicted`` ``None`` and an ``error`` (``reason: detail``), and no explanation.

    Raises:
        ValueError: A threshold outside (0, 1) or an image size the model contradicts.
        OSError: ``explain_dir`` cannot be written.
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
    lines = [
        _line(path, item, by_index.get(index), threshold) for index, (path, item) in enumerate(zip(paths, decoded))
    ]
    if explain_dir is not None and kept:
        written = _write_explanations(model, [decoded[index] for index in kept], probabilities, Path(explain_dir))
        for index, explanation in zip(kept, written):
            lines[index]["explanation"] = str(explanation)
    return lines


def _explanation_paths(files: Sequence[DecodedFile], explain_dir: Path) -> list[Path]:
    """``<explain_dir>/<stem>.gradcam.png`` per file; a repeated stem gets ``-2``, ``-3``, ... in input order."""
    seen: dict[str, int] = {}
    paths = []
    for item in files:
        stem = item.path.stem
        seen[stem] = seen.get(stem, 0) + 1
        suffix = "" if seen[stem] == 1 else f"-{seen[stem]}"
        paths.append(explain_dir / f"{stem}{suffix}.gradcam.png")
    return paths


def _write_explanations(
    model, files: Sequence[DecodedFile], probabilities: np.ndarray, explain_dir: Path
) -> list[Path]:
    """Writes one Grad-CAM PNG per decoded file (each atomically) and returns their paths."""
    from cxrcore.explain import grad_cam, render_explanation

    pixels = np.stack([item.pixels for item in files])
    heatmaps = grad_cam(model, pixels)
    explain_dir.mkdir(parents=True, exist_ok=True)
    targets = _explanation_paths(files, explain_dir)
    for target, image, heatmap, probability in zip(targets, pixels, heatmaps, probabilities.tolist()):
        partial = target.with_name(f".{target.name}.partial")
        partial.write_bytes(render_explanation(image, heatmap, probability))
        os.replace(partial, target)
    return targets


def _line(
    path: str | os.PathLike[str], item: DecodedFile, probability: float | None, threshold: float
) -> dict[str, Any]:
    """The JSON line of one file: its probability and label, or why it could not be read."""
    if probability is None:
        error = f"{item.reason}: {item.detail}"
        return {"path": str(path), "probability": None, "label_predicted": None, "error": error}
    label = CLASS_FOLDERS[int(probability >= threshold)]
    return {"path": str(path), "probability": float(probability), "label_predicted": label}
