"""Procedural chest-X-ray-like phantoms: the project's shippable stand-in for chest X-rays (NOT medical data).

See docs/architecture.md#data-flow. A phantom is drawn from anatomy and view parameters
(:mod:`cxrcore.data.phantom.anatomy`) and rendered analytically (:mod:`cxrcore.data.phantom.render`); PNEUMONIA
phantoms carry patchy consolidations. :func:`generate_phantom` draws both from one stream;
:func:`cxrcore.data.demo.write_demo_dataset` draws a patient's anatomy once and each view from its own stream.
"""

from __future__ import annotations

import numpy as np

from cxrcore.data.phantom.anatomy import Anatomy, View, sample_anatomy, sample_view
from cxrcore.data.phantom.render import render

__all__ = [
    "MAXIMUM_SIZE",
    "MINIMUM_SIZE",
    "Anatomy",
    "View",
    "generate_phantom",
    "render",
    "sample_anatomy",
    "sample_view",
    "validate_size",
]

MINIMUM_SIZE = 16
MAXIMUM_SIZE = 1024


def validate_size(size: int) -> None:
    """Raises ``ValueError`` unless ``size`` is an int in ``[MINIMUM_SIZE, MAXIMUM_SIZE]``."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not (
        MINIMUM_SIZE <= size <= MAXIMUM_SIZE
    ):
        raise ValueError(
            f"size must be an integer between {MINIMUM_SIZE} and {MAXIMUM_SIZE} pixels. Received: size={size!r}"
        )


def generate_phantom(rng: np.random.Generator, *, size: int, pneumonia: bool) -> np.ndarray:
    """Renders one chest-X-ray-like phantom with fresh anatomy and view parameters.

    Args:
        rng: Random stream; anatomy, view, textures and noise are all drawn from it.
        size: Side of the square image in pixels, 16 to 1024.
        pneumonia: Whether to paint one to four patchy consolidations into the lung fields.

    Returns:
        A uint8 array of shape ``(size, size)``: dark background and lungs, bright bone and soft tissue.

    Raises:
        ValueError: If ``size`` is out of range.
        TypeError: If ``rng`` is not a ``numpy.random.Generator``.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator. Received: rng={type(rng).__name__}")
    validate_size(size)
    anatomy = sample_anatomy(rng, pneumonia=bool(pneumonia))
    view = sample_view(rng)
    return render(anatomy, view, int(size), rng)
