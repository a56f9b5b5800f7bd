"""Nearest real neighbour of each kept synthetic image by SSIM: the memorization check (arrays in, arrays out).

For each kept image, the exact SSIM maximum over every REAL training image of the same class, at
``min(GAN size, stored real size, 64)`` px; images at or above ``memorization_threshold`` are flagged (and
dropped with ``drop_memorized``); see docs/architecture.md#synthetic-selection. SSIM is ``tf.image.ssim``'s
(Gaussian window, VALID padding), computed as banded matrix products so one pass over the references serves
every query; TensorFlow is imported on first use (it runs next to the generator, on the GPU when there is one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cxrcore.synthesis.images import quantize, resize_images

__all__ = [
    "MEMORIZATION_MAX_SIZE",
    "SSIM_PARAMETERS",
    "memorization_check",
    "memorization_report",
    "nearest_by_ssim",
    "ssim",
]

#: The memorization check runs at ``min(GAN size, stored real size, MEMORIZATION_MAX_SIZE)`` pixels.
MEMORIZATION_MAX_SIZE = 64
#: SSIM as ``tf.image.ssim`` computes it (Wang et al. 2004 with a Gaussian window, VALID padding).
SSIM_PARAMETERS: dict[str, float] = {"filter_size": 11, "filter_sigma": 1.5, "k1": 0.01, "k2": 0.03}


def _gaussian_window() -> np.ndarray:
    """The 1-D factor of ``tf.image.ssim``'s normalised 11x11 Gaussian (sigma 1.5)."""
    size = int(SSIM_PARAMETERS["filter_size"])
    coords = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    window = np.exp(-0.5 * coords**2 / SSIM_PARAMETERS["filter_sigma"] ** 2)
    return (window / window.sum()).astype(np.float32)


def _gaussian_band(length: int) -> np.ndarray:
    """``(length - 10, length)`` matrix whose rows are the 1-D window at each VALID position."""
    window = _gaussian_window()
    band = np.zeros((length - len(window) + 1, length), dtype=np.float32)
    for row in range(len(band)):
        band[row, row : row + len(window)] = window
    return band


def _gaussian_filter(images):
    """Separable VALID Gaussian filtering of a float tensor ``(n, h, w)`` -> ``(n, h - 10, w - 10)``.

    Written as two matrix products with banded window matrices (``B_h @ x @ B_w^T``): the same sums as
    ``tf.image.ssim``'s 2-D convolution, but BLAS/GPU friendly (a single-channel 11x11 convolution is slow on CPU).
    """
    import tensorflow as tf

    rows = tf.constant(_gaussian_band(int(images.shape[-2])))
    columns = tf.constant(_gaussian_band(int(images.shape[-1])).T)
    return tf.matmul(tf.matmul(rows, images), columns)


def _as_unit_float(images: np.ndarray, name: str) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"{name} must be (n, h, w) grayscale. Received: {name}.shape={images.shape}")
    size = int(SSIM_PARAMETERS["filter_size"])
    if min(images.shape[1:]) < size:
        raise ValueError(
            f"{name} must be at least {size} px on each side for SSIM. Received: {name}.shape={images.shape}"
        )
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return images.astype(np.float32)


def _ssim_from_moments(mean_x, mean_y, filtered_xx, filtered_yy, filtered_xy):
    """SSIM maps from Gaussian-filtered moments, exactly as ``tf.image.ssim`` combines them (max_val 1)."""
    c1 = (SSIM_PARAMETERS["k1"]) ** 2
    c2 = (SSIM_PARAMETERS["k2"]) ** 2
    num0 = mean_x * mean_y * 2.0
    den0 = mean_x**2 + mean_y**2
    luminance = (num0 + c1) / (den0 + c1)
    contrast_structure = (filtered_xy * 2.0 - num0 + c2) / (filtered_xx + filtered_yy - den0 + c2)
    return luminance * contrast_structure


def ssim(images_a: np.ndarray, images_b: np.ndarray) -> np.ndarray:
    """Pairwise-aligned SSIM of two batches of grayscale images, equal to ``tf.image.ssim`` (max_val 1 or 255).

    Args:
        images_a: ``(n, h, w)`` uint8 (scaled by 1/255) or float in [0, 1].
        images_b: Same shape.

    Returns:
        float64 ``(n,)`` SSIM of ``images_a[i]`` and ``images_b[i]``.
    """
    import tensorflow as tf

    a = _as_unit_float(images_a, "images_a")
    b = _as_unit_float(images_b, "images_b")
    if a.shape != b.shape:
        raise ValueError(f"images_a and images_b must have one shape. Received: {a.shape} and {b.shape}")
    x, y = tf.constant(a), tf.constant(b)
    mean_x, mean_y = _gaussian_filter(x), _gaussian_filter(y)
    filtered_xx, filtered_yy, filtered_xy = _gaussian_filter(x * x), _gaussian_filter(y * y), _gaussian_filter(x * y)
    maps = _ssim_from_moments(mean_x, mean_y, filtered_xx, filtered_yy, filtered_xy)
    return tf.reduce_mean(maps, axis=(1, 2)).numpy().astype(np.float64)


def nearest_by_ssim(
    queries: np.ndarray, references: np.ndarray, *, max_block_pixels: int = 1 << 22
) -> tuple[np.ndarray, np.ndarray]:
    """For each query image, the reference image with the highest SSIM (an exact maximum over all references).

    The per-image Gaussian moments are computed once; each (query, reference) pair only filters the product
    image, in blocks of at most ``max_block_pixels`` pixels (memory-bounded on CPU and GPU alike).

    Args:
        queries: ``(q, h, w)`` uint8 or float [0, 1] images.
        references: ``(r, h, w)`` images of the same size (r >= 1).
        max_block_pixels: Upper bound of ``pairs * h * w`` per block.

    Returns:
        ``(index, value)``: int64 ``(q,)`` index of the nearest reference (earliest on ties) and float64
        ``(q,)`` its SSIM.
    """
    import tensorflow as tf

    q = _as_unit_float(queries, "queries")
    r = _as_unit_float(references, "references")
    if q.shape[1:] != r.shape[1:]:
        raise ValueError(f"queries and references must share a size. Received: {q.shape[1:]} and {r.shape[1:]}")
    if len(r) == 0:
        raise ValueError("references must hold at least one image. Received: 0 references")
    best_index = np.zeros(len(q), dtype=np.int64)
    best_value = np.full(len(q), -np.inf, dtype=np.float64)
    if len(q) == 0:
        return best_index, best_value
    pixels = q.shape[1] * q.shape[2]
    reference_block = max(1, min(len(r), max_block_pixels // pixels))
    query_block = max(1, min(len(q), max_block_pixels // (pixels * reference_block)))
    query_tensor, reference_tensor = tf.constant(q), tf.constant(r)
    query_mean, reference_mean = _gaussian_filter(query_tensor), _gaussian_filter(reference_tensor)
    query_square = _gaussian_filter(query_tensor * query_tensor)
    reference_square = _gaussian_filter(reference_tensor * reference_tensor)
    for q_start in range(0, len(q), query_block):
        q_stop = min(len(q), q_start + query_block)
        for r_start in range(0, len(r), reference_block):
            r_stop = min(len(r), r_start + reference_block)
            products = query_tensor[q_start:q_stop, tf.newaxis] * reference_tensor[tf.newaxis, r_start:r_stop]
            shape = tf.shape(products)
            filtered_xy = _gaussian_filter(tf.reshape(products, (-1, shape[2], shape[3])))
            filtered_xy = tf.reshape(filtered_xy, (q_stop - q_start, r_stop - r_start, *filtered_xy.shape[1:]))
            maps = _ssim_from_moments(
                query_mean[q_start:q_stop, tf.newaxis],
                reference_mean[tf.newaxis, r_start:r_stop],
                query_square[q_start:q_stop, tf.newaxis],
                reference_square[tf.newaxis, r_start:r_stop],
                filtered_xy,
            )
            values = tf.reduce_mean(maps, axis=(2, 3)).numpy().astype(np.float64)
            block_best = np.argmax(values, axis=1)
            block_value = values[np.arange(len(values)), block_best]
            better = block_value > best_value[q_start:q_stop]
            best_value[q_start:q_stop] = np.where(better, block_value, best_value[q_start:q_stop])
            best_index[q_start:q_stop] = np.where(better, block_best + r_start, best_index[q_start:q_stop])
    return best_index, best_value


def memorization_report(
    image_ids: Sequence[str],
    generation_indices: Sequence[int],
    nearest_ids: Sequence[str],
    nearest_ssim: np.ndarray,
    *,
    threshold: float,
    size: int,
    num_references: int,
) -> dict[str, Any]:
    """Summarises the nearest-real-neighbour check of the kept images (pure; no I/O).

    Args:
        image_ids: Ids of the kept synthetic images.
        generation_indices: Their generation indices.
        nearest_ids: ``image_id`` of each one's nearest real training image.
        nearest_ssim: That SSIM.
        threshold: SSIM above which an image counts as memorized (``>=``).
        size: Side in pixels at which SSIM was computed.
        num_references: Real images searched.

    Returns:
        JSON-ready dict: method, threshold, flagged share, flagged ids and generation indices, SSIM summary,
        and one entry per image.
    """
    values = np.asarray(nearest_ssim, dtype=np.float64)
    flagged = values >= threshold
    count = len(values)
    return {
        "method": (
            f"SSIM (Gaussian window {SSIM_PARAMETERS['filter_size']}, sigma {SSIM_PARAMETERS['filter_sigma']}, "
            f"k1 {SSIM_PARAMETERS['k1']}, k2 {SSIM_PARAMETERS['k2']}, as tf.image.ssim) at {size}x{size} px "
            f"grayscale; exact maximum over all {num_references} real training images of the class"
        ),
        "size": int(size),
        "threshold": float(threshold),
        "num_checked": count,
        "num_references": int(num_references),
        "flagged_count": int(flagged.sum()),
        "flagged_share": float(flagged.mean()) if count else 0.0,
        "flagged_ids": [str(image_ids[i]) for i in np.flatnonzero(flagged)],
        "flagged_generation_indices": [int(generation_indices[i]) for i in np.flatnonzero(flagged)],
        "nearest_ssim_max": float(values.max()) if count else None,
        "nearest_ssim_mean": float(values.mean()) if count else None,
        "nearest_ssim_median": float(np.median(values)) if count else None,
        "per_image": [
            {
                "image_id": str(image_ids[i]),
                "generation_index": int(generation_indices[i]),
                "nearest_real_id": str(nearest_ids[i]),
                "nearest_real_ssim": float(values[i]),
                "memorized": bool(flagged[i]),
            }
            for i in range(count)
        ],
    }


def memorization_check(
    kept_gray: np.ndarray,
    real_images: np.ndarray,
    *,
    image_ids: Sequence[str],
    generation_indices: Sequence[int],
    real_ids: Sequence[str],
    size: int,
    threshold: float,
    drop: bool,
) -> tuple[dict[str, Any], np.ndarray]:
    """Runs the memorization check on the selected images and says which of them are published (pure).

    Both sets are resized to ``size`` px (antialiased bilinear) and quantised to 8 bits before SSIM, so a
    generated copy of a real image scores exactly like the stored original.

    Args:
        kept_gray: float ``(k, g, g)`` in [0, 1]: the selected images at the GAN size, in rank order.
        real_images: uint8 ``(r, h, w)``: the real training images of the class.
        image_ids: Ids of the selected images.
        generation_indices: Their generation indices.
        real_ids: ``image_id`` of each real image.
        size: Side at which SSIM is computed.
        threshold: SSIM at or above which an image counts as memorized.
        drop: Whether flagged images are left out of the published set.

    Returns:
        ``(report, positions)``: the :func:`memorization_report` plus ``dropped``, and the int64 positions (in
        rank order) of the selected images that are published: all of them, or the unflagged ones with ``drop``.
    """
    nearest, nearest_ssim = nearest_by_ssim(
        quantize(resize_images(kept_gray, size)), quantize(resize_images(real_images, size) / 255.0)
    )
    report = memorization_report(
        image_ids,
        generation_indices,
        [real_ids[i] for i in nearest],
        nearest_ssim,
        threshold=threshold,
        size=size,
        num_references=len(real_images),
    )
    report["dropped"] = bool(drop)
    flagged = nearest_ssim >= threshold
    positions = np.flatnonzero(~flagged) if drop else np.arange(len(nearest_ssim))
    return report, positions.astype(np.int64)
