"""Grad-CAM examples of a trained classifier's test predictions: the ``gradcam.png`` panel and ``gradcam.json``.

After :mod:`cxrcore.steps.train_classifier` has scored the test split, :func:`gradcam_examples` picks a handful of
test images per outcome from those probabilities (:func:`cxrcore.explain.select_examples`: true/false
positives/negatives at the threshold of ``metrics.json``, the most confident of each), computes their Grad-CAM
heatmaps at the model's last convolutional block (:func:`cxrcore.explain.grad_cam`, on the pixels the model was
scored on) and renders one panel (:func:`cxrcore.explain.render_panel`). Cheap on purpose: at most
``4 * per_outcome`` images go through one gradient pass each.

``gradcam.json`` describes the panel and every cell; it names images by the dataset's own image ids (the first 16
hex digits of the file's sha256) and holds nothing else about them::

    {"format": 1, "method": "grad-cam", "target": "PNEUMONIA logit", "layer": "conv_3", "threshold": 0.5,
     "per_outcome": 2, "selection": "...", "image_size": 128,
     "panel": {"width": ..., "height": ..., "tile": 128, "rows": ["true_positive", ...]},
     "cells": [{"row": 0, "column": 0, "outcome": "true_positive", "image_id": "...", "label": "PNEUMONIA",
                "predicted": "PNEUMONIA", "probability": 0.97}, ...]}

Nothing here reads or writes the store: the step commits the bytes. TensorFlow is imported only inside
:func:`cxrcore.explain.grad_cam`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from cxrcore.explain import (
    OUTCOMES,
    PANEL_TILE,
    Example,
    cell_positions,
    explained_layer,
    grad_cam,
    panel_size,
    render_panel,
    select_examples,
)
from cxrcore.training.classifier_data import TrainingData
from cxrcore.vocab import CLASS_NAMES

__all__ = ["GRADCAM_FORMAT", "GradCamExamples", "gradcam_examples", "gradcam_info"]

#: Version of ``gradcam.json``'s layout.
GRADCAM_FORMAT = 1
_SELECTION = (
    "up to per_outcome test images of each outcome at the threshold, the most confident first: highest "
    "probability among those predicted PNEUMONIA, lowest among those predicted NORMAL; ties by image_id"
)


@dataclasses.dataclass(frozen=True)
class GradCamExamples:
    """What the classifier output commits as its Grad-CAM examples.

    Attributes:
        panel_png: ``gradcam.png``: the panel's PNG bytes.
        info: ``gradcam.json``: :func:`gradcam_info`.
    """

    panel_png: bytes
    info: dict[str, Any]


def gradcam_info(
    examples: list[Example],
    *,
    layer: str,
    threshold: float,
    per_outcome: int,
    image_size: int,
) -> dict[str, Any]:
    """The content of ``gradcam.json`` (pure; see the module docstring).

    Raises:
        ValueError: ``per_outcome`` below 1 (no panel to describe).
    """
    width, height = panel_size(per_outcome)
    cells = []
    for example, (row, column) in zip(examples, cell_positions(examples)):
        predicted = 1 if example.outcome in ("true_positive", "false_positive") else 0
        cells.append(
            {
                "row": row,
                "column": column,
                "outcome": example.outcome,
                "image_id": example.image_id,
                "label": CLASS_NAMES[example.label],
                "predicted": CLASS_NAMES[predicted],
                "probability": example.probability,
            }
        )
    return {
        "format": GRADCAM_FORMAT,
        "method": "grad-cam",
        "target": f"{CLASS_NAMES[1]} logit",
        "layer": layer,
        "threshold": float(threshold),
        "per_outcome": per_outcome,
        "selection": _SELECTION,
        "image_size": int(image_size),
        "panel": {
            "width": width,
            "height": height,
            "tile": PANEL_TILE,
            "rows": list(OUTCOMES),
        },
        "cells": cells,
    }


def gradcam_examples(
    model: Any,
    data: TrainingData,
    probabilities: np.ndarray,
    *,
    per_outcome: int,
    threshold: float,
    logger: Any,
) -> GradCamExamples | None:
    """Grad-CAM panel and description of a few test images per outcome, or ``None`` when there is nothing to draw.

    Args:
        model: The trained classifier (the inference copy the test probabilities come from).
        data: The training data; its test images, labels and ids are used.
        probabilities: The test probabilities, aligned with ``data.test_ids``.
        per_outcome: Images per outcome; 0 disables the panel.
        threshold: The decision threshold of ``metrics.json``'s confusion matrix.
        logger: A structlog logger.

    Returns:
        The panel and ``gradcam.json``; ``None`` when ``per_outcome`` is 0, the test split is empty, or the model
        has no convolutional block to explain (logged as ``gradcam_skipped``: the output is committed without).

    Raises:
        ValueError: Mismatched test arrays or a threshold outside ``(0, 1)``.
    """
    if per_outcome == 0 or len(data.test_ids) == 0:
        return None
    examples = select_examples(
        data.test_ids,
        data.test_labels,
        probabilities,
        per_outcome=per_outcome,
        threshold=threshold,
    )
    pixels = data.test_images[[example.index for example in examples]]
    try:
        layer = explained_layer(model)
        heatmaps = grad_cam(model, pixels)
    except ValueError as exc:  # a model without a convolutional block: nothing to explain
        logger.warning("gradcam_skipped", reason=str(exc))
        return None
    panel = render_panel(pixels, heatmaps, examples, per_outcome=per_outcome, threshold=threshold)
    info = gradcam_info(
        examples,
        layer=layer,
        threshold=threshold,
        per_outcome=per_outcome,
        image_size=int(pixels.shape[1]),
    )
    logger.info("gradcam_examples", images=len(examples), layer=layer, threshold=threshold)
    return GradCamExamples(panel_png=panel, info=info)
