"""The parameters of a phantom: its patient's anatomy and each image's view, and how they are drawn.

See docs/architecture.md#data-flow. :func:`sample_anatomy` draws everything that stays the same across the views
of one phantom patient (torso, lung fields, heart, ribs, clavicles, hila, vessels, and for PNEUMONIA one to four
patchy consolidations); :func:`sample_view` draws what changes from one exposure to the next (pose, exposure,
contrast, gamma, quantum noise). Benign confounders (a faint nodule, denser hila, a lower-zone shadow) are drawn
for both classes with the same probabilities, so they carry no label. Coordinates span -1..1 on both axes.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = ["Anatomy", "Blob", "Lung", "View", "sample_anatomy", "sample_view"]


@dataclasses.dataclass(frozen=True)
class Blob:
    """A soft round opacity in anatomy coordinates (the field of view spans -1..1 on both axes)."""

    center_x: float
    center_y: float
    radius: float
    amplitude: float


@dataclasses.dataclass(frozen=True)
class Lung:
    """One lung field: an ellipse narrowed towards the apex and cut below by its diaphragm dome."""

    center_x: float
    center_y: float
    half_width: float
    half_height: float
    apex_narrowing: float
    dome_top_y: float
    dome_center_x: float
    dome_curvature: float


@dataclasses.dataclass(frozen=True)
class Anatomy:
    """Everything that stays the same across the views of one phantom patient."""

    torso_half_width: float
    torso_center_y: float
    shoulder_y: float
    soft_tissue_density: float
    lung_air_density: float
    right_lung: Lung
    left_lung: Lung
    heart_center_x: float
    heart_center_y: float
    heart_half_width: float
    heart_half_height: float
    heart_tilt: float
    heart_density: float
    spine_half_width: float
    vertebra_period: float
    first_rib_y: float
    rib_count: int
    rib_spacing: float
    rib_spacing_growth: float
    rib_arch: float
    rib_droop: float
    rib_thickness: float
    rib_density: float
    clavicle_y: float
    clavicle_slope: float
    clavicle_density: float
    hilum_offset_x: float
    hilum_y: float
    hilar_density: float
    vessel_phases: tuple[float, float, float, float]
    vessel_density: float
    lower_zone_shadow: float
    consolidations: tuple[Blob, ...]
    consolidation_severity: float
    nodules: tuple[Blob, ...]


@dataclasses.dataclass(frozen=True)
class View:
    """What changes from one exposure of a phantom patient to the next."""

    rotation: float
    shift_x: float
    shift_y: float
    scale: float
    inspiration: float
    attenuation_gain: float
    window_low: float
    window_high: float
    gamma: float
    noise_level: float


def _sample_lung(rng: np.random.Generator, *, side: int) -> Lung:
    """Draws one lung field; ``side`` is -1 for the image-left (patient right) lung and +1 for the other.

    Args:
        rng: Random stream of the patient.
        side: -1 or +1, the sign of the lung centre's x coordinate.

    Returns:
        The lung parameters.
    """
    center_x = side * rng.uniform(0.38, 0.43)
    half_width = rng.uniform(0.28, 0.32)
    # The right hemidiaphragm (image left) usually sits a little higher than the left one.
    dome_top_y = rng.uniform(0.38, 0.50) + (0.04 if side > 0 else 0.0)
    return Lung(
        center_x=center_x,
        center_y=rng.uniform(-0.06, 0.02),
        half_width=half_width,
        half_height=rng.uniform(0.66, 0.74),
        apex_narrowing=rng.uniform(0.40, 0.55),
        dome_top_y=dome_top_y,
        dome_center_x=center_x - side * rng.uniform(0.0, 0.06),
        dome_curvature=rng.uniform(1.6, 2.6),
    )


def _point_in_lung(rng: np.random.Generator, lung: Lung) -> tuple[float, float]:
    """Draws a point well inside a lung field, favouring the middle and lower zones.

    Args:
        rng: Random stream of the patient.
        lung: The lung to place the point in.

    Returns:
        ``(x, y)`` in anatomy coordinates.
    """
    horizontal = rng.uniform(-0.6, 0.6)
    vertical = rng.uniform(-0.55, 0.45) + 0.15 * rng.random()
    x = lung.center_x + horizontal * lung.half_width * (1.0 - 0.4 * max(-vertical, 0.0))
    y = lung.center_y + vertical * lung.half_height
    # Keep the point above the diaphragm dome.
    dome_y = lung.dome_top_y + lung.dome_curvature * (x - lung.dome_center_x) ** 2
    return x, min(y, dome_y - 0.08)


def _sample_consolidations(
    rng: np.random.Generator, lungs: tuple[Lung, Lung]
) -> tuple[tuple[Blob, ...], float]:
    """Draws one to four patchy consolidations, each a cluster of soft blobs.

    Args:
        rng: Random stream of the patient.
        lungs: The two lung fields; clusters land in either, sometimes both.

    Returns:
        The blobs of all clusters and the overall severity (0..1, scales their density).
    """
    cluster_count = int(rng.choice((1, 2, 3, 4), p=(0.45, 0.30, 0.15, 0.10)))
    # About a fifth of the cases are faint and hard to see; the rest range from mild to dense.
    severity = rng.uniform(0.2, 0.4) if rng.random() < 0.2 else rng.uniform(0.45, 1.0)
    first_side = int(rng.integers(0, 2))
    blobs: list[Blob] = []
    for cluster in range(cluster_count):
        lung = lungs[first_side if rng.random() < 0.6 or cluster == 0 else 1 - first_side]
        center_x, center_y = _point_in_lung(rng, lung)
        spread = rng.uniform(0.05, 0.12)
        cluster_amplitude = rng.uniform(0.6, 1.0)
        for _ in range(int(rng.integers(4, 12))):
            blobs.append(
                Blob(
                    center_x=center_x + rng.normal(0.0, spread),
                    center_y=center_y + rng.normal(0.0, spread * 1.2),
                    radius=rng.uniform(0.05, 0.11),
                    amplitude=cluster_amplitude * rng.uniform(0.5, 1.0),
                )
            )
    return tuple(blobs), severity


def sample_anatomy(rng: np.random.Generator, *, pneumonia: bool) -> Anatomy:
    """Draws the anatomy of one phantom patient.

    Args:
        rng: Random stream of the patient.
        pneumonia: Whether to add consolidations.

    Returns:
        The anatomy parameters.
    """
    right_lung = _sample_lung(rng, side=-1)
    left_lung = _sample_lung(rng, side=+1)
    rib_count = int(rng.integers(9, 11))
    # Benign confounders, drawn for both classes with the same probabilities so that they carry no label.
    nodules: tuple[Blob, ...] = ()
    if rng.random() < 0.25:
        nodule_x, nodule_y = _point_in_lung(rng, (right_lung, left_lung)[int(rng.integers(0, 2))])
        nodules = (
            Blob(
                center_x=nodule_x,
                center_y=nodule_y,
                radius=rng.uniform(0.015, 0.03),
                amplitude=rng.uniform(0.3, 0.7),
            ),
        )
    hilar_density = rng.uniform(0.12, 0.2) if rng.random() < 0.3 else rng.uniform(0.04, 0.09)
    lower_zone_shadow = rng.uniform(0.03, 0.08) if rng.random() < 0.3 else 0.0
    consolidations: tuple[Blob, ...] = ()
    consolidation_severity = 0.0
    if pneumonia:
        consolidations, consolidation_severity = _sample_consolidations(rng, (right_lung, left_lung))
    return Anatomy(
        torso_half_width=rng.uniform(0.84, 0.94),
        torso_center_y=rng.uniform(0.15, 0.25),
        shoulder_y=rng.uniform(-0.9, -0.8),
        soft_tissue_density=rng.uniform(0.50, 0.62),
        lung_air_density=rng.uniform(0.36, 0.44),
        right_lung=right_lung,
        left_lung=left_lung,
        heart_center_x=rng.uniform(0.10, 0.16),
        heart_center_y=rng.uniform(0.30, 0.38),
        heart_half_width=rng.uniform(0.34, 0.40),
        heart_half_height=rng.uniform(0.24, 0.30),
        heart_tilt=rng.uniform(0.25, 0.55),
        heart_density=rng.uniform(0.06, 0.1),
        spine_half_width=rng.uniform(0.055, 0.075),
        vertebra_period=rng.uniform(0.10, 0.13),
        first_rib_y=rng.uniform(-0.72, -0.64),
        rib_count=rib_count,
        rib_spacing=rng.uniform(1.05, 1.2) / rib_count,
        rib_spacing_growth=rng.uniform(0.1, 0.3),
        rib_arch=rng.uniform(0.3, 0.45),
        rib_droop=rng.uniform(1.0, 1.4),
        rib_thickness=rng.uniform(0.28, 0.36),
        rib_density=rng.uniform(0.10, 0.14),
        clavicle_y=rng.uniform(-0.66, -0.58),
        clavicle_slope=rng.uniform(0.25, 0.4),
        clavicle_density=rng.uniform(0.14, 0.2),
        hilum_offset_x=rng.uniform(0.15, 0.2),
        hilum_y=rng.uniform(-0.08, 0.02),
        hilar_density=hilar_density,
        vessel_phases=tuple(float(phase) for phase in rng.uniform(0.0, 2.0 * math.pi, size=4)),
        vessel_density=rng.uniform(0.07, 0.1),
        lower_zone_shadow=lower_zone_shadow,
        consolidations=consolidations,
        consolidation_severity=consolidation_severity,
        nodules=nodules,
    )


def sample_view(rng: np.random.Generator) -> View:
    """Draws the pose and exposure of one image.

    Args:
        rng: Random stream of the image.

    Returns:
        The view parameters.
    """
    window_low = rng.uniform(-0.05, 0.12)
    return View(
        rotation=math.radians(rng.uniform(-4.0, 4.0)),
        shift_x=rng.uniform(-0.04, 0.04),
        shift_y=rng.uniform(-0.04, 0.04),
        scale=rng.uniform(0.94, 1.06),
        inspiration=rng.uniform(-0.03, 0.03),
        attenuation_gain=rng.uniform(1.8, 2.6),
        window_low=window_low,
        window_high=window_low + rng.uniform(0.9, 1.1),
        gamma=rng.uniform(0.85, 1.3),
        noise_level=rng.uniform(0.01, 0.03),
    )
