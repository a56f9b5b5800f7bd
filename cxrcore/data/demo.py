"""Procedural chest-X-ray-like phantoms: the project's shippable demo dataset.

The Kaggle chest X-ray data cannot be redistributed, so demos, smoke runs and CI use these phantoms instead.
Each image is rendered analytically from a small set of "anatomy" parameters (torso, lung fields, ribs, spine,
clavicles, heart shadow, diaphragm domes, vascular markings) and "view" parameters (pose, exposure, contrast,
gamma, quantum noise). PNEUMONIA phantoms add one to four patchy consolidations inside the lung fields.
Benign confounders (a faint nodule, denser hila, a diffuse lower-zone soft-tissue shadow) appear in both classes
at the same rate, and consolidations are sometimes faint, so the task is learnable but not trivial.

:func:`write_demo_dataset` writes the Kaggle layout (``train/`` and ``test/``, each with ``NORMAL/`` and
``PNEUMONIA/``), split by patient, with Kaggle-style file names (``PHANTOMN-IM-0001-0001.jpeg``) so patient ids
parse like the real ones, plus ``DEMO_SYNTHETIC.json`` and ``README.txt`` so every downstream tool can label the
data as synthetic. These images are NOT medical data.

Determinism: every patient draws its anatomy from ``numpy.random.default_rng([seed, class_index, patient, 0])``
and every image its view from ``default_rng([seed, class_index, patient, 1, image])``, so the same parameters
give byte-identical files and generating one patient never depends on another.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from cxrcore.vocab import CLASS_NAMES, DEMO_FILENAME_PATTERN

__all__ = [
    "CLASS_NAMES",
    "FILENAME_PATTERN",
    "FILENAME_PREFIXES",
    "GENERATOR_NAME",
    "GENERATOR_VERSION",
    "JPEG_QUALITY",
    "MANIFEST_NAME",
    "MAXIMUM_SIZE",
    "MINIMUM_SIZE",
    "README_NAME",
    "SPLIT_NAMES",
    "generate_phantom",
    "write_demo_dataset",
]

GENERATOR_NAME = "cxrcore.data.demo"
GENERATOR_VERSION = 1
MANIFEST_NAME = "DEMO_SYNTHETIC.json"
README_NAME = "README.txt"
SPLIT_NAMES = ("train", "test")
FILENAME_PREFIXES = {"NORMAL": "PHANTOMN", "PNEUMONIA": "PHANTOMP"}
FILENAME_PATTERN = DEMO_FILENAME_PATTERN
JPEG_QUALITY = 95
MINIMUM_SIZE = 16
MAXIMUM_SIZE = 1024

_IMAGES_PER_PATIENT_CHOICES = (1, 2, 3)
_IMAGES_PER_PATIENT_PROBABILITIES = (0.5, 0.3, 0.2)

_README_TEXT = """\
SYNTHETIC DEMO DATA - NOT MEDICAL DATA

Every image in this folder is a procedural phantom drawn by {generator} (version {version}): ellipses, bands
and noise arranged to look roughly like a posteroanterior chest radiograph. No patient, no scanner and no real
radiograph was involved. "PNEUMONIA" phantoms carry painted-on patchy bright blobs; "NORMAL" ones do not.

The data exists so that the cxr-gan pipeline can be demonstrated and tested without the Kaggle chest X-ray
dataset, which cannot be redistributed. Never use it to train, validate or evaluate anything clinical, and
never report numbers measured on it as results about pneumonia.

Layout: train/ and test/, each with NORMAL/ and PNEUMONIA/, split by patient. File names follow the Kaggle
scheme <PREFIX>-IM-<patient>-<image>.jpeg (PHANTOMN = NORMAL, PHANTOMP = PNEUMONIA); a phantom "patient" has
one to three views of the same phantom anatomy. Parameters and counts are in {manifest}.
"""


# --------------------------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Blob:
    """A soft round opacity in anatomy coordinates (the field of view spans -1..1 on both axes)."""

    center_x: float
    center_y: float
    radius: float
    amplitude: float


@dataclasses.dataclass(frozen=True)
class _Lung:
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
class _Anatomy:
    """Everything that stays the same across the views of one phantom patient."""

    torso_half_width: float
    torso_center_y: float
    shoulder_y: float
    soft_tissue_density: float
    lung_air_density: float
    right_lung: _Lung
    left_lung: _Lung
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
    consolidations: tuple[_Blob, ...]
    consolidation_severity: float
    nodules: tuple[_Blob, ...]


@dataclasses.dataclass(frozen=True)
class _View:
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


def _sample_lung(rng: np.random.Generator, *, side: int) -> _Lung:
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
    return _Lung(
        center_x=center_x,
        center_y=rng.uniform(-0.06, 0.02),
        half_width=half_width,
        half_height=rng.uniform(0.66, 0.74),
        apex_narrowing=rng.uniform(0.40, 0.55),
        dome_top_y=dome_top_y,
        dome_center_x=center_x - side * rng.uniform(0.0, 0.06),
        dome_curvature=rng.uniform(1.6, 2.6),
    )


def _point_in_lung(rng: np.random.Generator, lung: _Lung) -> tuple[float, float]:
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
    rng: np.random.Generator, lungs: tuple[_Lung, _Lung]
) -> tuple[tuple[_Blob, ...], float]:
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
    blobs: list[_Blob] = []
    for cluster in range(cluster_count):
        lung = lungs[first_side if rng.random() < 0.6 or cluster == 0 else 1 - first_side]
        center_x, center_y = _point_in_lung(rng, lung)
        spread = rng.uniform(0.05, 0.12)
        cluster_amplitude = rng.uniform(0.6, 1.0)
        for _ in range(int(rng.integers(4, 12))):
            blobs.append(
                _Blob(
                    center_x=center_x + rng.normal(0.0, spread),
                    center_y=center_y + rng.normal(0.0, spread * 1.2),
                    radius=rng.uniform(0.05, 0.11),
                    amplitude=cluster_amplitude * rng.uniform(0.5, 1.0),
                )
            )
    return tuple(blobs), severity


def _sample_anatomy(rng: np.random.Generator, *, pneumonia: bool) -> _Anatomy:
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
    nodules: tuple[_Blob, ...] = ()
    if rng.random() < 0.25:
        nodule_x, nodule_y = _point_in_lung(rng, (right_lung, left_lung)[int(rng.integers(0, 2))])
        nodules = (
            _Blob(
                center_x=nodule_x,
                center_y=nodule_y,
                radius=rng.uniform(0.015, 0.03),
                amplitude=rng.uniform(0.3, 0.7),
            ),
        )
    hilar_density = rng.uniform(0.12, 0.2) if rng.random() < 0.3 else rng.uniform(0.04, 0.09)
    lower_zone_shadow = rng.uniform(0.03, 0.08) if rng.random() < 0.3 else 0.0
    consolidations: tuple[_Blob, ...] = ()
    consolidation_severity = 0.0
    if pneumonia:
        consolidations, consolidation_severity = _sample_consolidations(rng, (right_lung, left_lung))
    return _Anatomy(
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


def _sample_view(rng: np.random.Generator) -> _View:
    """Draws the pose and exposure of one image.

    Args:
        rng: Random stream of the image.

    Returns:
        The view parameters.
    """
    window_low = rng.uniform(-0.05, 0.12)
    return _View(
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


# --------------------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------------------


def _soft_step(value: np.ndarray, softness: float) -> np.ndarray:
    """Smooth step from 0 (``value <= -2 * softness``) to 1 (``value >= 2 * softness``).

    A cubic smoothstep shaped like ``(1 + tanh(value / softness)) / 2`` but several times cheaper to evaluate.

    Args:
        value: Signed distance-like field, positive inside.
        softness: Half-width scale of the transition in the units of ``value``.

    Returns:
        An array of the same shape with values in [0, 1].
    """
    step = np.clip(value * (0.25 / softness) + 0.5, 0.0, 1.0)
    return step * step * (3.0 - 2.0 * step)


def _repeated_square(values: np.ndarray, times: int) -> np.ndarray:
    """``values ** (2 ** times)`` by repeated squaring (much faster than ``numpy.power`` on float32).

    Args:
        values: Input array.
        times: How many times to square.

    Returns:
        A new array.
    """
    result = values * values
    for _ in range(times - 1):
        result = result * result
    return result


_NOISE_TAPS = 5


@functools.lru_cache(maxsize=64)
def _interpolation_taps(size: int, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Sparse Gaussian weights that resample ``cells`` coarse samples onto ``size`` pixels.

    Each pixel blends its :data:`_NOISE_TAPS` nearest coarse samples (clamped at the borders) with normalised
    Gaussian weights, which is smooth and, unlike a dense matrix product, never wakes BLAS threads.

    Args:
        size: Output length in pixels.
        cells: Number of coarse samples, spread evenly over the same extent.

    Returns:
        ``(indices, weights)``, both read-only of shape ``(size, _NOISE_TAPS)``: int64 and float32.
    """
    pixel_positions = (np.arange(size) + 0.5) / size * cells - 0.5
    nearest = np.floor(pixel_positions).astype(np.int64)
    tap_offsets = np.arange(_NOISE_TAPS) - (_NOISE_TAPS // 2)
    unclamped = nearest[:, None] + tap_offsets[None, :]
    weights = np.exp(-0.5 * ((pixel_positions[:, None] - unclamped) / 0.6) ** 2)
    weights /= weights.sum(axis=1, keepdims=True)
    indices = np.clip(unclamped, 0, cells - 1)
    weights = weights.astype(np.float32)
    indices.setflags(write=False)
    weights.setflags(write=False)
    return indices, weights


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Band-limited noise: a ``cells`` x ``cells`` Gaussian grid smoothly resampled to ``size`` x ``size``.

    Args:
        rng: Random stream of the image.
        size: Output side in pixels.
        cells: Side of the coarse grid (higher = finer texture).

    Returns:
        A float32 ``(size, size)`` array with zero mean and unit standard deviation.
    """
    indices, weights = _interpolation_taps(size, cells)
    coarse = rng.standard_normal((cells, cells), dtype=np.float32)
    # Columns first on the small grid, then rows, so the large pass gathers whole contiguous rows.
    columns = np.zeros((cells, size), dtype=np.float32)
    for tap in range(_NOISE_TAPS):
        columns += coarse[:, indices[:, tap]] * weights[None, :, tap]
    fine = np.zeros((size, size), dtype=np.float32)
    for tap in range(_NOISE_TAPS):
        fine += weights[:, tap, None] * columns[indices[:, tap], :]
    deviation = float(fine.std())
    return (fine - fine.mean()) / (deviation if deviation > 0 else 1.0)


def _lung_mask(x: np.ndarray, y: np.ndarray, lung: _Lung, inspiration: float, softness: float) -> np.ndarray:
    """Soft mask (0..1) of one lung field.

    Args:
        x: Anatomy x coordinate of every pixel.
        y: Anatomy y coordinate of every pixel.
        lung: The lung parameters.
        inspiration: Downward shift of the diaphragm dome for this view.
        softness: Edge softness in anatomy units.

    Returns:
        The mask, same shape as ``x``.
    """
    horizontal = (x - lung.center_x) / lung.half_width
    vertical = (y - lung.center_y) / lung.half_height
    width_profile = 1.0 - lung.apex_narrowing * np.clip(-vertical, 0.0, 1.0) ** 2
    radius = np.sqrt((horizontal / width_profile) ** 2 + vertical**2)
    inside_ellipse = _soft_step((1.0 - radius) * lung.half_width, softness)
    dome_y = lung.dome_top_y + inspiration + lung.dome_curvature * (x - lung.dome_center_x) ** 2
    above_dome = _soft_step(dome_y - y, softness)
    return inside_ellipse * above_dome


def _blob_field(
    x: np.ndarray,
    y: np.ndarray,
    blobs: tuple[_Blob, ...],
    pixel_center_of: Any,
    pixel_radius_scale: float,
    size: int,
    sharpness: float,
) -> np.ndarray:
    """Sum of soft round blobs, each evaluated only inside its own pixel bounding box.

    Args:
        x: Anatomy x coordinate of every pixel.
        y: Anatomy y coordinate of every pixel.
        blobs: The blobs to draw.
        pixel_center_of: Callable mapping anatomy ``(x, y)`` to fractional pixel ``(row, column)``.
        pixel_radius_scale: Pixels per anatomy unit.
        size: Image side in pixels.
        sharpness: Exponent of the radial profile: 1 gives a Gaussian, larger values give a flatter top and a
            sharper edge.

    Returns:
        A float32 ``(size, size)`` array.
    """
    field = np.zeros((size, size), dtype=np.float32)
    for blob in blobs:
        row, column = pixel_center_of(blob.center_x, blob.center_y)
        reach = 3.5 * blob.radius * pixel_radius_scale + 2.0
        row_start, row_stop = max(int(row - reach), 0), min(int(row + reach) + 2, size)
        column_start, column_stop = max(int(column - reach), 0), min(int(column + reach) + 2, size)
        if row_start >= row_stop or column_start >= column_stop:
            continue
        window = (slice(row_start, row_stop), slice(column_start, column_stop))
        squared = ((x[window] - blob.center_x) ** 2 + (y[window] - blob.center_y) ** 2) / (2.0 * blob.radius**2)
        field[window] += blob.amplitude * np.exp(-(squared**sharpness))
    return field


def _render(anatomy: _Anatomy, view: _View, size: int, rng: np.random.Generator) -> np.ndarray:
    """Renders one phantom.

    Args:
        anatomy: Patient parameters.
        view: Pose and exposure parameters.
        size: Image side in pixels.
        rng: Random stream of the image (textures and quantum noise).

    Returns:
        A uint8 ``(size, size)`` grayscale image.
    """
    pixel_positions = ((np.arange(size, dtype=np.float32) + 0.5) / size) * 2.0 - 1.0
    image_y, image_x = np.meshgrid(pixel_positions, pixel_positions, indexing="ij")
    cosine, sine = math.cos(view.rotation), math.sin(view.rotation)
    offset_x, offset_y = image_x - view.shift_x, image_y - view.shift_y
    x = (cosine * offset_x + sine * offset_y) / view.scale
    y = (-sine * offset_x + cosine * offset_y) / view.scale

    def pixel_center_of(anatomy_x: float, anatomy_y: float) -> tuple[float, float]:
        image_point_x = view.scale * (cosine * anatomy_x - sine * anatomy_y) + view.shift_x
        image_point_y = view.scale * (sine * anatomy_x + cosine * anatomy_y) + view.shift_y
        return (image_point_y + 1.0) * size / 2.0 - 0.5, (image_point_x + 1.0) * size / 2.0 - 0.5

    pixels_per_unit = view.scale * size / 2.0
    softness = max(0.02, 1.5 / size)
    distance_from_midline = np.abs(x)

    # Torso (a rounded box whose soft tissue thins towards the edges), shoulders and neck over dark air.
    torso_radius = _repeated_square(x / anatomy.torso_half_width, 2) + _repeated_square(
        y - anatomy.torso_center_y, 2
    )
    body = _soft_step(1.0 - torso_radius, 0.06)
    # Shoulders slope down and out from the base of the neck to the top of the arms.
    shoulder_line = anatomy.shoulder_y + 0.6 * np.clip(distance_from_midline - 0.2, 0.0, None) ** 2
    shoulders = _soft_step(y - shoulder_line, 0.02) * _soft_step(
        anatomy.torso_half_width + 0.08 - distance_from_midline, 0.02
    )
    neck = _soft_step(0.19 - distance_from_midline, 0.04) * _soft_step(-0.6 - y, 0.05)
    body = np.maximum(body, np.maximum(shoulders, neck))
    thickness = np.sqrt(np.clip(1.0 - (x / (anatomy.torso_half_width + 0.05)) ** 2, 0.0, 1.0))
    attenuation = anatomy.soft_tissue_density * body * (0.35 + 0.65 * thickness)

    # Lung fields, with the heart cutting into the medial lower part of the image-right lung.
    lungs = np.maximum(
        _lung_mask(x, y, anatomy.right_lung, view.inspiration, softness),
        _lung_mask(x, y, anatomy.left_lung, view.inspiration, softness),
    )
    heart_tilt_cosine, heart_tilt_sine = math.cos(anatomy.heart_tilt), math.sin(anatomy.heart_tilt)
    heart_dx, heart_dy = x - anatomy.heart_center_x, y - anatomy.heart_center_y - view.inspiration
    heart_along = (heart_tilt_cosine * heart_dx + heart_tilt_sine * heart_dy) / anatomy.heart_half_width
    heart_across = (-heart_tilt_sine * heart_dx + heart_tilt_cosine * heart_dy) / anatomy.heart_half_height
    heart = _soft_step(1.0 - np.sqrt(heart_along**2 + heart_across**2), 0.08)
    mediastinum = _soft_step(0.09 + 0.05 * np.clip(y + 0.3, 0.0, 1.0) - distance_from_midline, 0.02)
    lungs = lungs * (1.0 - 0.92 * np.maximum(heart, mediastinum)) * body
    attenuation = attenuation + anatomy.heart_density * heart * body

    # Parenchymal texture and vascular markings radiating from the hila.
    lung_texture = _smooth_noise(rng, size, 24)
    hilum_x = np.where(x < 0.0, np.float32(-anatomy.hilum_offset_x), np.float32(anatomy.hilum_offset_x))
    hilum_dx, hilum_dy = x - hilum_x, y - anatomy.hilum_y
    hilum_distance = np.sqrt(hilum_dx**2 + hilum_dy**2) + 1e-3
    hilum_angle = np.arctan2(hilum_dy, np.abs(hilum_dx))
    wobble = 0.35 * _smooth_noise(rng, size, 10)
    phase_a, phase_b, phase_c, phase_d = anatomy.vessel_phases
    trunks = _repeated_square(
        np.clip(np.cos(9.0 * hilum_angle + 2.5 * hilum_distance + phase_a + wobble), 0.0, 1.0), 3
    )
    branches = _repeated_square(
        np.clip(np.cos(19.0 * hilum_angle - 3.0 * hilum_distance + phase_b + 1.5 * wobble), 0.0, 1.0), 3
    )
    twigs = _repeated_square(
        np.clip(np.cos(33.0 * hilum_angle + 4.0 * hilum_distance + phase_c - wobble), 0.0, 1.0), 3
    )
    vessels = (
        trunks * np.exp(-hilum_distance / 0.22)
        + 0.7 * branches * np.exp(-hilum_distance / 0.3) * _soft_step(hilum_distance - 0.12, 0.05)
        + 0.5 * twigs * np.exp(-hilum_distance / 0.4) * _soft_step(hilum_distance - 0.22, 0.05)
    )
    hila = np.exp(-((hilum_dx / 0.09) ** 2 + (hilum_dy / 0.14) ** 2)) * (1.0 + 0.3 * np.sin(phase_d + 20.0 * y))
    lower_zone = _soft_step(y - 0.1, 0.15)

    # Consolidations: clusters of blobs with an irregular texture, kept inside the pleura.
    lung_detail = np.zeros((size, size), dtype=np.float32)
    if anatomy.consolidations:
        density = _blob_field(x, y, anatomy.consolidations, pixel_center_of, pixels_per_unit, size, sharpness=1.0)
        patchiness = 0.55 + 0.45 * np.tanh(_smooth_noise(rng, size, 20))
        consolidation = (1.0 - np.exp(-1.6 * density)) * patchiness
        lung_detail += 0.9 * anatomy.consolidation_severity * consolidation
    if anatomy.nodules:
        lung_detail += 0.25 * _blob_field(
            x, y, anatomy.nodules, pixel_center_of, pixels_per_unit, size, sharpness=2.0
        )
    lung_detail += (
        0.015 * lung_texture
        + anatomy.vessel_density * vessels
        + anatomy.hilar_density * hila
        + anatomy.lower_zone_shadow * lower_zone
    )
    attenuation = attenuation - anatomy.lung_air_density * lungs + lungs * lung_detail

    # Spine with vertebral bodies, visible through the mediastinum.
    spine = _soft_step(anatomy.spine_half_width - distance_from_midline, 0.015)
    vertebrae = 0.75 + 0.25 * np.cos(2.0 * math.pi * y / anatomy.vertebra_period)
    attenuation = attenuation + 0.10 * spine * vertebrae * _soft_step(0.95 - y, 0.05)

    # Posterior ribs: arcs rising from the spine and drooping laterally, spaced wider towards the base.
    lateral = np.clip(distance_from_midline - 0.06, 0.0, None)
    rib_coordinate = y + anatomy.rib_arch * lateral - anatomy.rib_droop * lateral**2 - anatomy.first_rib_y
    rib_span = anatomy.rib_spacing * anatomy.rib_count
    normalized = np.clip(rib_coordinate / rib_span, 0.0, None)
    rib_phase = anatomy.rib_count * normalized ** (1.0 - anatomy.rib_spacing_growth * 0.5)
    rib_distance = np.abs(rib_phase - np.round(rib_phase))
    rib_profile = _soft_step(anatomy.rib_thickness * 0.5 - rib_distance, 0.05)
    # A brighter cortex along both edges of each rib.
    rib_profile = rib_profile * (0.75 + 0.5 * np.clip(rib_distance / (anatomy.rib_thickness * 0.5), 0.0, 1.0) ** 2)
    within_cage = (
        _soft_step(rib_phase + 0.3, 0.1)
        * _soft_step(anatomy.rib_count - 0.5 - rib_phase, 0.2)
        * _soft_step(distance_from_midline - 0.05, 0.02)
        * _soft_step(anatomy.torso_half_width - 0.05 - distance_from_midline, 0.03)
    )
    # Anterior ribs: fainter arcs descending towards the midline.
    anterior_coordinate = y - 0.45 * (distance_from_midline - 0.75) - anatomy.first_rib_y - 0.05
    anterior_phase = np.clip(anterior_coordinate, 0.0, None) / (anatomy.rib_spacing * 1.5)
    anterior_distance = np.abs(anterior_phase - np.round(anterior_phase))
    anterior_profile = _soft_step(0.18 - anterior_distance, 0.05) * _soft_step(distance_from_midline - 0.2, 0.05)
    anterior_profile = anterior_profile * _soft_step(anatomy.rib_count * 0.55 - anterior_phase, 0.3)
    anterior_profile = anterior_profile * _soft_step(anterior_phase + 0.2, 0.1)
    lowest_dome_y = max(anatomy.right_lung.dome_top_y, anatomy.left_lung.dome_top_y) + view.inspiration
    within_cage = within_cage * _soft_step(lowest_dome_y + 0.25 - y, 0.1)
    ribs = (rib_profile + 0.35 * anterior_profile) * within_cage * body
    attenuation = attenuation + anatomy.rib_density * ribs

    # Clavicles: bands from the manubrium rising laterally towards the shoulders.
    clavicle_lateral = np.clip(distance_from_midline - 0.06, 0.0, None)
    clavicle_center = anatomy.clavicle_y - anatomy.clavicle_slope * clavicle_lateral + 0.1 * clavicle_lateral**2
    clavicles = _soft_step(0.035 - np.abs(y - clavicle_center), 0.012)
    clavicles = (
        clavicles
        * _soft_step(distance_from_midline - 0.07, 0.02)
        * _soft_step(0.62 - distance_from_midline, 0.04)
        * body
    )
    attenuation = attenuation + anatomy.clavicle_density * clavicles

    # Abdomen below the domes is a little denser than the chest wall; a small gastric bubble under the left dome.
    abdomen = _soft_step(y - anatomy.left_lung.dome_top_y - 0.12, 0.08) * body
    gastric_bubble = np.exp(
        -(((x - anatomy.left_lung.center_x) / 0.1) ** 2 + ((y - anatomy.left_lung.dome_top_y - 0.16) / 0.06) ** 2)
    )
    attenuation = attenuation + 0.05 * abdomen - 0.12 * gastric_bubble * body

    # Exposure: transmitted fraction with quantum noise, then film-like inversion, windowing and gamma.
    attenuation = np.clip(attenuation, 0.0, None)
    transmitted = np.exp(-view.attenuation_gain * attenuation)
    detector_noise = rng.standard_normal((size, size), dtype=np.float32)
    transmitted = transmitted + view.noise_level * np.sqrt(transmitted + 0.02) * detector_noise
    reference = 1.0 - math.exp(-view.attenuation_gain * 0.75)
    brightness = (1.0 - transmitted) / reference
    brightness = np.clip((brightness - view.window_low) / (view.window_high - view.window_low), 0.0, 1.0)
    brightness = brightness**view.gamma
    brightness = ndimage.gaussian_filter(brightness, sigma=max(0.5, size / 256.0), mode="nearest")
    return np.clip(np.rint(brightness * 255.0), 0, 255).astype(np.uint8)


def _validate_size(size: int) -> None:
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
    _validate_size(size)
    anatomy = _sample_anatomy(rng, pneumonia=bool(pneumonia))
    view = _sample_view(rng)
    return _render(anatomy, view, int(size), rng)


# --------------------------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------------------------


def _plan_class(seed: int, class_index: int, per_class: int, test_fraction: float) -> list[tuple[int, int, str]]:
    """Decides the patients of one class, their image counts and their split.

    Args:
        seed: Dataset seed.
        class_index: Index into :data:`CLASS_NAMES`.
        per_class: Images of this class in total.
        test_fraction: Target fraction of the images in the test split.

    Returns:
        ``(patient, image_count, split)`` for every patient, patients numbered from 1.
    """
    rng = np.random.default_rng([seed, class_index, 0x5EED])
    image_counts: list[int] = []
    remaining = per_class
    while remaining > 0:
        count = int(rng.choice(_IMAGES_PER_PATIENT_CHOICES, p=_IMAGES_PER_PATIENT_PROBABILITIES))
        if not image_counts:
            count = min(count, per_class - 1)  # At least two patients, so both splits get one.
        count = min(count, remaining)
        image_counts.append(count)
        remaining -= count
    target = min(max(round(test_fraction * per_class), 1), per_class - 1)
    order = rng.permutation(len(image_counts))
    test_patients: set[int] = set()
    test_images = 0
    for index in order:
        if test_images + image_counts[index] <= target:
            test_patients.add(int(index))
            test_images += image_counts[index]
        if test_images == target:
            break
    if not test_patients:
        test_patients.add(int(min(order, key=lambda index: image_counts[index])))
    return [
        (index + 1, count, "test" if index in test_patients else "train")
        for index, count in enumerate(image_counts)
    ]


def _file_name(class_name: str, patient: int, image: int) -> str:
    """The Kaggle-style file name of one phantom image."""
    return f"{FILENAME_PREFIXES[class_name]}-IM-{patient:04d}-{image:04d}.jpeg"


def _summary(out_dir: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """The dictionary :func:`write_demo_dataset` returns, built from a manifest."""
    return {
        "out_dir": str(out_dir),
        "counts": {split: dict(classes) for split, classes in manifest["counts"].items()},
        "patients": {split: dict(classes) for split, classes in manifest["patients"].items()},
        "seed": manifest["seed"],
        "size": manifest["size"],
        "per_class": manifest["per_class"],
        "test_fraction": manifest["test_fraction"],
        "synthetic": True,
    }


def _existing_summary(out_dir: Path, parameters: dict[str, Any]) -> dict[str, Any] | None:
    """Checks a non-empty existing ``out_dir``.

    Args:
        out_dir: The resolved target directory, which exists.
        parameters: The requested generator parameters.

    Returns:
        The summary when ``out_dir`` already holds a complete demo dataset with identical parameters, ``None``
        when ``out_dir`` is empty.

    Raises:
        ValueError: If ``out_dir`` is not a directory, holds anything else, or holds a demo dataset with other
            parameters or missing files.
    """
    if not out_dir.is_dir():
        raise ValueError(f"Output path exists and is not a directory: {out_dir}")
    if not any(out_dir.iterdir()):
        return None
    manifest_path = out_dir / MANIFEST_NAME
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = None
    is_demo_manifest = (
        isinstance(manifest, dict)
        and manifest.get("generator") == GENERATOR_NAME
        and manifest.get("synthetic") is True
    )
    if not is_demo_manifest:
        raise ValueError(
            f"Refusing to write the demo dataset into non-empty directory {out_dir}: it is not a demo dataset "
            f"(no valid {MANIFEST_NAME}). Choose an empty or new directory."
        )
    differing = {
        name: (manifest.get(name), value) for name, value in parameters.items() if manifest.get(name) != value
    }
    if differing:
        details = ", ".join(
            f"{name}: existing={existing!r}, requested={requested!r}"
            for name, (existing, requested) in differing.items()
        )
        raise ValueError(
            f"Refusing to overwrite the demo dataset in {out_dir}: it was generated with other parameters "
            f"({details}). Choose another directory or delete it first."
        )
    for split in SPLIT_NAMES:
        for class_name in CLASS_NAMES:
            folder = out_dir / split / class_name
            found = sum(1 for path in folder.glob("*.jpeg")) if folder.is_dir() else 0
            expected = manifest["counts"][split][class_name]
            if found != expected:
                raise ValueError(
                    f"Demo dataset in {out_dir} is incomplete or modified: {split}/{class_name} holds {found} "
                    f"images, its {MANIFEST_NAME} says {expected}. Delete it and generate it again."
                )
    return _summary(out_dir, manifest)


def write_demo_dataset(
    out_dir: str | os.PathLike[str],
    *,
    per_class: int = 200,
    size: int = 128,
    seed: int = 0,
    test_fraction: float = 0.2,
) -> dict[str, Any]:
    """Writes a demo dataset of phantoms in the Kaggle chest X-ray layout, atomically.

    The images are written to a temporary sibling directory that is renamed into place at the end, so an
    interrupted run leaves no half-written ``out_dir``. Re-running with identical parameters on a finished
    dataset does nothing and returns the same summary.

    Args:
        out_dir: Target directory; must not exist, be empty, or hold a demo dataset with identical parameters.
        per_class: Images per class (NORMAL and PNEUMONIA each), at least 2.
        size: Side of the square images in pixels, 16 to 1024.
        seed: Non-negative integer seed; the same parameters give byte-identical files.
        test_fraction: Approximate fraction of each class's images in ``test/``, strictly between 0 and 1.
            Patients never straddle the split.

    Returns:
        A summary: ``out_dir`` (absolute), ``counts`` and ``patients`` per split and class, ``seed``, ``size``,
        ``per_class``, ``test_fraction`` and ``synthetic=True``.

    Raises:
        ValueError: If a parameter is out of range, or ``out_dir`` exists with other content.
    """
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 2:
        raise ValueError(f"per_class must be an integer of at least 2. Received: per_class={per_class!r}")
    _validate_size(size)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer. Received: seed={seed!r}")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not (
        0.0 < test_fraction < 1.0
    ):
        raise ValueError(
            f"test_fraction must be strictly between 0 and 1. Received: test_fraction={test_fraction!r}"
        )
    per_class, size, seed, test_fraction = int(per_class), int(size), int(seed), float(test_fraction)
    parameters = {
        "version": GENERATOR_VERSION,
        "seed": seed,
        "size": size,
        "per_class": per_class,
        "test_fraction": test_fraction,
    }

    target = Path(out_dir).expanduser().resolve()
    if target.exists():
        existing = _existing_summary(target, parameters)
        if existing is not None:
            return existing
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.partial-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        counts = {split: {class_name: 0 for class_name in CLASS_NAMES} for split in SPLIT_NAMES}
        patients = {split: {class_name: 0 for class_name in CLASS_NAMES} for split in SPLIT_NAMES}
        for split in SPLIT_NAMES:
            for class_name in CLASS_NAMES:
                (staging / split / class_name).mkdir(parents=True)
        for class_index, class_name in enumerate(CLASS_NAMES):
            pneumonia = class_name == "PNEUMONIA"
            for patient, image_count, split in _plan_class(seed, class_index, per_class, test_fraction):
                patient_rng = np.random.default_rng([seed, class_index, patient, 0])
                anatomy = _sample_anatomy(patient_rng, pneumonia=pneumonia)
                for image in range(1, image_count + 1):
                    view_rng = np.random.default_rng([seed, class_index, patient, 1, image])
                    pixels = _render(anatomy, _sample_view(view_rng), size, view_rng)
                    path = staging / split / class_name / _file_name(class_name, patient, image)
                    Image.fromarray(pixels).save(path, format="JPEG", quality=JPEG_QUALITY)
                counts[split][class_name] += image_count
                patients[split][class_name] += 1
        manifest = {
            "synthetic": True,
            "generator": GENERATOR_NAME,
            **parameters,
            "counts": counts,
            "patients": patients,
            "classes": list(CLASS_NAMES),
            "filename_prefixes": dict(FILENAME_PREFIXES),
            "note": "Procedural phantoms, not medical data.",
        }
        manifest_text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        (staging / MANIFEST_NAME).write_text(manifest_text, encoding="utf-8")
        (staging / README_NAME).write_text(
            _README_TEXT.format(generator=GENERATOR_NAME, version=GENERATOR_VERSION, manifest=MANIFEST_NAME),
            encoding="utf-8",
        )
        try:
            # Replaces a missing or empty target atomically; fails if someone filled it meanwhile.
            os.replace(staging, target)
        except OSError:
            existing = _existing_summary(target, parameters) if target.exists() else None
            if existing is None:
                raise
            shutil.rmtree(staging, ignore_errors=True)
            return existing
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return _summary(target, manifest)
