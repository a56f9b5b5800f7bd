"""Rendering a phantom: the attenuation of every structure in a fixed order, then the exposure.

See docs/architecture.md#data-flow. :func:`render` maps the anatomy onto the image through the view
(:class:`_Frame`), adds torso, lungs and heart, the lung detail (texture, vessels, hila, consolidations, nodules),
spine, ribs, clavicles and abdomen, and exposes the result like a radiograph (quantum noise, film-like inversion,
windowing, gamma). The image's random stream is drawn in a fixed order (lung texture, vessel wobble, consolidation
patchiness when there are consolidations, detector noise), so the same parameters and stream give the same pixels.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np
from scipy import ndimage

from cxrcore.data.phantom.anatomy import Anatomy, Blob, Lung, View

__all__ = ["render"]


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


def _lung_mask(x: np.ndarray, y: np.ndarray, lung: Lung, inspiration: float, softness: float) -> np.ndarray:
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
    blobs: tuple[Blob, ...],
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


@dataclasses.dataclass(frozen=True)
class _Frame:
    """One view's geometry: the anatomy coordinates of every pixel and the way back to pixels.

    Attributes:
        size: Image side in pixels.
        view: The view (rotation, shift, scale) that maps anatomy onto the image.
        x: Anatomy x coordinate of every pixel (float32, ``(size, size)``).
        y: Anatomy y coordinate of every pixel.
        distance_from_midline: ``abs(x)``.
        softness: Edge softness of the lung masks, in anatomy units.
        pixels_per_unit: Pixels per anatomy unit.
    """

    size: int
    view: View
    x: np.ndarray
    y: np.ndarray
    distance_from_midline: np.ndarray
    softness: float
    pixels_per_unit: float

    def pixel_center_of(self, anatomy_x: float, anatomy_y: float) -> tuple[float, float]:
        """Fractional pixel ``(row, column)`` of an anatomy point."""
        view = self.view
        cosine, sine = math.cos(view.rotation), math.sin(view.rotation)
        image_point_x = view.scale * (cosine * anatomy_x - sine * anatomy_y) + view.shift_x
        image_point_y = view.scale * (sine * anatomy_x + cosine * anatomy_y) + view.shift_y
        return (image_point_y + 1.0) * self.size / 2.0 - 0.5, (image_point_x + 1.0) * self.size / 2.0 - 0.5


def _frame(view: View, size: int) -> _Frame:
    """The geometry of ``view`` on a ``size`` x ``size`` image."""
    pixel_positions = ((np.arange(size, dtype=np.float32) + 0.5) / size) * 2.0 - 1.0
    image_y, image_x = np.meshgrid(pixel_positions, pixel_positions, indexing="ij")
    cosine, sine = math.cos(view.rotation), math.sin(view.rotation)
    offset_x, offset_y = image_x - view.shift_x, image_y - view.shift_y
    x = (cosine * offset_x + sine * offset_y) / view.scale
    y = (-sine * offset_x + cosine * offset_y) / view.scale
    return _Frame(
        size=size,
        view=view,
        x=x,
        y=y,
        distance_from_midline=np.abs(x),
        softness=max(0.02, 1.5 / size),
        pixels_per_unit=view.scale * size / 2.0,
    )


def _torso(anatomy: Anatomy, frame: _Frame) -> tuple[np.ndarray, np.ndarray]:
    """The body mask (torso, shoulders, neck) and the soft tissue's attenuation."""
    x, y, distance_from_midline = frame.x, frame.y, frame.distance_from_midline
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
    return body, anatomy.soft_tissue_density * body * (0.35 + 0.65 * thickness)


def _lungs_and_heart(
    anatomy: Anatomy, frame: _Frame, body: np.ndarray, attenuation: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The lung fields (the heart and mediastinum cut out) and the attenuation with the heart shadow added."""
    x, y, view = frame.x, frame.y, frame.view
    # Lung fields, with the heart cutting into the medial lower part of the image-right lung.
    lungs = np.maximum(
        _lung_mask(x, y, anatomy.right_lung, view.inspiration, frame.softness),
        _lung_mask(x, y, anatomy.left_lung, view.inspiration, frame.softness),
    )
    heart_tilt_cosine, heart_tilt_sine = math.cos(anatomy.heart_tilt), math.sin(anatomy.heart_tilt)
    heart_dx, heart_dy = x - anatomy.heart_center_x, y - anatomy.heart_center_y - view.inspiration
    heart_along = (heart_tilt_cosine * heart_dx + heart_tilt_sine * heart_dy) / anatomy.heart_half_width
    heart_across = (-heart_tilt_sine * heart_dx + heart_tilt_cosine * heart_dy) / anatomy.heart_half_height
    heart = _soft_step(1.0 - np.sqrt(heart_along**2 + heart_across**2), 0.08)
    mediastinum = _soft_step(0.09 + 0.05 * np.clip(y + 0.3, 0.0, 1.0) - frame.distance_from_midline, 0.02)
    lungs = lungs * (1.0 - 0.92 * np.maximum(heart, mediastinum)) * body
    return lungs, attenuation + anatomy.heart_density * heart * body


def _vascular_markings(
    anatomy: Anatomy, frame: _Frame, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parenchymal texture, vessels radiating from the hila, and the hila themselves (two noise draws)."""
    x, y, size = frame.x, frame.y, frame.size
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
    return lung_texture, vessels, hila


def _lung_detail(anatomy: Anatomy, frame: _Frame, rng: np.random.Generator) -> np.ndarray:
    """Everything denser than air inside the lungs: texture, vessels, hila, consolidations, nodules, shadows."""
    x, y, size = frame.x, frame.y, frame.size
    lung_texture, vessels, hila = _vascular_markings(anatomy, frame, rng)
    lower_zone = _soft_step(y - 0.1, 0.15)
    # Consolidations: clusters of blobs with an irregular texture, kept inside the pleura.
    lung_detail = np.zeros((size, size), dtype=np.float32)
    if anatomy.consolidations:
        density = _blob_field(
            x, y, anatomy.consolidations, frame.pixel_center_of, frame.pixels_per_unit, size, sharpness=1.0
        )
        patchiness = 0.55 + 0.45 * np.tanh(_smooth_noise(rng, size, 20))
        consolidation = (1.0 - np.exp(-1.6 * density)) * patchiness
        lung_detail += 0.9 * anatomy.consolidation_severity * consolidation
    if anatomy.nodules:
        lung_detail += 0.25 * _blob_field(
            x, y, anatomy.nodules, frame.pixel_center_of, frame.pixels_per_unit, size, sharpness=2.0
        )
    lung_detail += (
        0.015 * lung_texture
        + anatomy.vessel_density * vessels
        + anatomy.hilar_density * hila
        + anatomy.lower_zone_shadow * lower_zone
    )
    return lung_detail


def _spine(anatomy: Anatomy, frame: _Frame) -> np.ndarray:
    """The spine's attenuation: vertebral bodies, visible through the mediastinum."""
    spine = _soft_step(anatomy.spine_half_width - frame.distance_from_midline, 0.015)
    vertebrae = 0.75 + 0.25 * np.cos(2.0 * math.pi * frame.y / anatomy.vertebra_period)
    return 0.10 * spine * vertebrae * _soft_step(0.95 - frame.y, 0.05)


def _ribs(anatomy: Anatomy, frame: _Frame, body: np.ndarray) -> np.ndarray:
    """The rib cage (0..1): posterior arcs with a brighter cortex, fainter anterior arcs."""
    y, distance_from_midline = frame.y, frame.distance_from_midline
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
    lowest_dome_y = max(anatomy.right_lung.dome_top_y, anatomy.left_lung.dome_top_y) + frame.view.inspiration
    within_cage = within_cage * _soft_step(lowest_dome_y + 0.25 - y, 0.1)
    return (rib_profile + 0.35 * anterior_profile) * within_cage * body


def _clavicles(anatomy: Anatomy, frame: _Frame, body: np.ndarray) -> np.ndarray:
    """The clavicles (0..1): bands from the manubrium rising laterally towards the shoulders."""
    y, distance_from_midline = frame.y, frame.distance_from_midline
    clavicle_lateral = np.clip(distance_from_midline - 0.06, 0.0, None)
    clavicle_center = anatomy.clavicle_y - anatomy.clavicle_slope * clavicle_lateral + 0.1 * clavicle_lateral**2
    clavicles = _soft_step(0.035 - np.abs(y - clavicle_center), 0.012)
    return (
        clavicles
        * _soft_step(distance_from_midline - 0.07, 0.02)
        * _soft_step(0.62 - distance_from_midline, 0.04)
        * body
    )


def _abdomen(anatomy: Anatomy, frame: _Frame, body: np.ndarray, attenuation: np.ndarray) -> np.ndarray:
    """``attenuation`` with the abdomen below the domes (a little denser) and the gastric bubble (air) added."""
    x, y = frame.x, frame.y
    abdomen = _soft_step(y - anatomy.left_lung.dome_top_y - 0.12, 0.08) * body
    gastric_bubble = np.exp(
        -(((x - anatomy.left_lung.center_x) / 0.1) ** 2 + ((y - anatomy.left_lung.dome_top_y - 0.16) / 0.06) ** 2)
    )
    return attenuation + 0.05 * abdomen - 0.12 * gastric_bubble * body


def _expose(attenuation: np.ndarray, view: View, size: int, rng: np.random.Generator) -> np.ndarray:
    """Transmitted fraction with quantum noise, then film-like inversion, windowing, gamma and a slight blur."""
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


def render(anatomy: Anatomy, view: View, size: int, rng: np.random.Generator) -> np.ndarray:
    """Renders one phantom: attenuation of every structure, in a fixed order, then the exposure.

    Args:
        anatomy: Patient parameters.
        view: Pose and exposure parameters.
        size: Image side in pixels.
        rng: Random stream of the image (textures and quantum noise, drawn in a fixed order).

    Returns:
        A uint8 ``(size, size)`` grayscale image.
    """
    frame = _frame(view, size)
    body, attenuation = _torso(anatomy, frame)
    lungs, attenuation = _lungs_and_heart(anatomy, frame, body, attenuation)
    lung_detail = _lung_detail(anatomy, frame, rng)
    attenuation = attenuation - anatomy.lung_air_density * lungs + lungs * lung_detail
    attenuation = attenuation + _spine(anatomy, frame)
    attenuation = attenuation + anatomy.rib_density * _ribs(anatomy, frame, body)
    attenuation = attenuation + anatomy.clavicle_density * _clavicles(anatomy, frame, body)
    attenuation = _abdomen(anatomy, frame, body, attenuation)
    return _expose(attenuation, view, size, rng)
