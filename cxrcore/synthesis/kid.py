"""Quality of a synthetic set: KID on offline ``cxr-pixstat-v1`` features (docs/architecture.md#synthetic-selection).

KID (Binkowski et al. 2018) with the cubic polynomial kernel and the unbiased MMD estimator over subsets is pure
numpy (:func:`kernel_inception_distance`). It is computed on :data:`FEATURE_EXTRACTOR_NAME` features
(:func:`pixel_statistics_features`), NOT Inception features: no ImageNet weights are used (the job runs
offline), so the values are comparable within this project only, never with published KID/FID numbers. The
feature map resizes and filters with TensorFlow, imported on first use.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cxrcore.synthesis.images import resize_images

__all__ = [
    "FEATURE_EXTRACTOR_DESCRIPTION",
    "FEATURE_EXTRACTOR_NAME",
    "kernel_inception_distance",
    "pixel_statistics_features",
    "quality_report",
]

FEATURE_EXTRACTOR_NAME = "cxr-pixstat-v1"
FEATURE_EXTRACTOR_DESCRIPTION = (
    "cxr-pixstat-v1: a fixed, offline, training-free feature map of grayscale images resized to 64x64 "
    "(bilinear, antialiased, [0,1]); six blocks, each L2-normalised and scaled to an equal share of the "
    "288-dim norm: (1) 8x8 layout thumbnail minus its mean; (2) 32-bin intensity histogram; (3, 4) 32-bin "
    "histograms of sqrt(Sobel gradient magnitude) at 64 and 32 px; (5, 6) texture energy (mean |response| "
    "over a 2x2 grid) of 16 fixed zero-mean 5x5 random filters (seed 20240917) at 64 and 32 px. "
    "Histograms use the Hellinger embedding (sqrt of bin shares)."
)
_FEATURE_SIZE = 64
_FEATURE_SEED = 20240917
_HIST_BINS = 32
_TEXTURE_FILTERS = 16
_TEXTURE_KERNEL = 5
_FEATURE_BLOCKS = 6
_FEATURE_DIM = 64 + _HIST_BINS * 3 + 2 * 4 * _TEXTURE_FILTERS


def _texture_bank() -> np.ndarray:
    """16 fixed zero-mean, unit-norm 5x5 random filters, shaped ``(5, 5, 1, 16)`` for ``tf.nn.conv2d``."""
    rng = np.random.default_rng(_FEATURE_SEED)
    filters = rng.standard_normal((_TEXTURE_FILTERS, _TEXTURE_KERNEL, _TEXTURE_KERNEL))
    filters -= filters.mean(axis=(1, 2), keepdims=True)
    filters /= np.sqrt(np.sum(filters**2, axis=(1, 2), keepdims=True))
    return np.transpose(filters, (1, 2, 0))[:, :, np.newaxis, :].astype(np.float32)


def _hellinger_histogram(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Per-row ``sqrt`` of the bin shares of ``values`` ``(n, m)`` in ``_HIST_BINS`` bins over [low, high]."""
    count, width = values.shape
    bins = np.clip(((values - low) / (high - low) * _HIST_BINS).astype(np.int64), 0, _HIST_BINS - 1)
    flat = bins + np.arange(count, dtype=np.int64)[:, np.newaxis] * _HIST_BINS
    histogram = np.bincount(flat.ravel(), minlength=count * _HIST_BINS).reshape(count, _HIST_BINS)
    return np.sqrt(histogram / float(width))


def _grid_energy(responses: np.ndarray) -> np.ndarray:
    """Mean ``|response|`` over a 2x2 spatial grid: ``(n, h, w, f)`` -> ``(n, 4 * f)``."""
    count, height, width, filters = responses.shape
    half_h, half_w = height // 2, width // 2
    cropped = np.abs(responses[:, : 2 * half_h, : 2 * half_w])
    cells = cropped.reshape(count, 2, half_h, 2, half_w, filters).mean(axis=(2, 4))
    return cells.reshape(count, 4 * filters)


def _sobel_magnitude(tensor):
    import tensorflow as tf

    sobel_x = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=np.float32)
    kernel = np.stack([sobel_x, sobel_x.T], axis=-1)[:, :, np.newaxis, :]
    gradients = tf.nn.conv2d(tensor, tf.constant(kernel), strides=1, padding="VALID")
    return tf.sqrt(tf.reduce_sum(gradients * gradients, axis=-1)).numpy()


def _normalize_block(block: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(block, axis=1, keepdims=True)
    scale = math.sqrt(_FEATURE_DIM / _FEATURE_BLOCKS)
    return np.where(norms > 1e-12, block / np.maximum(norms, 1e-12), 0.0) * scale


def pixel_statistics_features(images: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """The offline ``cxr-pixstat-v1`` feature map (see :data:`FEATURE_EXTRACTOR_DESCRIPTION`).

    A fixed function (no training, no downloaded weights): identical inputs give identical features in every
    run, so KID values of one project are comparable with each other. It captures global layout, intensity
    distribution, edge-strength distribution at two scales and local texture, i.e. what a chest X-ray
    generator typically gets wrong (blur, wrong contrast, checkerboard artefacts, missing anatomy).

    Args:
        images: ``(n, h, w)`` grayscale, uint8 (scaled by 1/255) or float in [0, 1]; any size.
        batch_size: Images per TensorFlow call.

    Returns:
        float64 ``(n, 288)`` features; every non-constant image's vector has squared norm 288.
    """
    import tensorflow as tf

    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images must be (n, h, w) grayscale. Received: images.shape={images.shape}")
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    bank = tf.constant(_texture_bank())
    blocks_out = []
    for start in range(0, len(images), batch_size):
        batch = np.clip(resize_images(images[start : start + batch_size], _FEATURE_SIZE) / scale, 0.0, 1.0)
        count = len(batch)
        half = batch.reshape(count, _FEATURE_SIZE // 2, 2, _FEATURE_SIZE // 2, 2).mean(axis=(2, 4))
        layout = batch.reshape(count, 8, _FEATURE_SIZE // 8, 8, _FEATURE_SIZE // 8).mean(axis=(2, 4)).reshape(count, 64)
        layout = layout - layout.mean(axis=1, keepdims=True)
        full_tensor = tf.constant(batch[..., np.newaxis])
        half_tensor = tf.constant(half[..., np.newaxis].astype(np.float32))
        blocks = [
            layout,
            _hellinger_histogram(batch.reshape(count, -1), 0.0, 1.0),
            _hellinger_histogram(np.sqrt(_sobel_magnitude(full_tensor)).reshape(count, -1), 0.0, 2.0),
            _hellinger_histogram(np.sqrt(_sobel_magnitude(half_tensor)).reshape(count, -1), 0.0, 2.0),
            _grid_energy(tf.nn.conv2d(full_tensor, bank, strides=1, padding="VALID").numpy()),
            _grid_energy(tf.nn.conv2d(half_tensor, bank, strides=1, padding="VALID").numpy()),
        ]
        blocks_out.append(np.concatenate([_normalize_block(b.astype(np.float64)) for b in blocks], axis=1))
    if not blocks_out:
        return np.zeros((0, _FEATURE_DIM), dtype=np.float64)
    return np.concatenate(blocks_out, axis=0)


def kernel_inception_distance(
    features_a: np.ndarray,
    features_b: np.ndarray,
    *,
    num_subsets: int = 100,
    max_subset_size: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """KID (Binkowski et al. 2018): unbiased MMD^2 with the kernel ``(x.y / d + 1)^3``, averaged over subsets.

    Each subset draws ``m = min(len(a), len(b), max_subset_size)`` rows of each set without replacement (the
    estimator of clean-fid / torch-fidelity). The value depends on the features it is given: this project
    feeds :func:`pixel_statistics_features`, not Inception features.

    Args:
        features_a: ``(n_a, d)`` features of one set.
        features_b: ``(n_b, d)`` features of the other.
        num_subsets: Subsets averaged.
        max_subset_size: Upper bound of ``m``.
        seed: Seed of the subset draws.

    Returns:
        ``{"kid": mean, "kid_std": std over subsets, "subsets": ..., "subset_size": m}``; ``kid`` is ``None``
        (with a ``reason``) when either set has fewer than 2 rows.
    """
    a = np.asarray(features_a, dtype=np.float32)
    b = np.asarray(features_b, dtype=np.float32)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (n, d) with one d. Received: shapes {a.shape} and {b.shape}")
    if num_subsets < 1 or max_subset_size < 2:
        raise ValueError(
            f"num_subsets must be >= 1 and max_subset_size >= 2. Received: num_subsets={num_subsets}, "
            f"max_subset_size={max_subset_size}"
        )
    m = min(len(a), len(b), max_subset_size)
    if m < 2:
        return {"kid": None, "kid_std": None, "subsets": 0, "subset_size": m, "reason": "fewer than 2 images"}
    dim = a.shape[1]
    rng = np.random.default_rng(seed)
    estimates = np.empty(num_subsets, dtype=np.float64)
    for index in range(num_subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        # float32 kernels (BLAS speed), float64 sums: about 1e-8 absolute error on the estimate.
        k_xx = (x @ x.T / dim + 1.0) ** 3
        k_yy = (y @ y.T / dim + 1.0) ** 3
        k_xy = (x @ y.T / dim + 1.0) ** 3
        within = k_xx.sum(dtype=np.float64) - np.trace(k_xx, dtype=np.float64)
        within += k_yy.sum(dtype=np.float64) - np.trace(k_yy, dtype=np.float64)
        estimates[index] = within / (m * (m - 1)) - 2.0 * k_xy.sum(dtype=np.float64) / (m * m)
    return {
        "kid": float(estimates.mean()),
        "kid_std": float(estimates.std()),
        "subsets": int(num_subsets),
        "subset_size": int(m),
    }


def quality_report(
    candidate_features: np.ndarray, kept: np.ndarray, real_features: np.ndarray, reference: str, seed: int
) -> dict[str, Any]:
    """KID of the kept set and of all generated images against the real images (``selection.json`` quality).

    Args:
        candidate_features: ``(n, d)`` features of every generated image, in generation order.
        kept: Generation indices of the published images.
        real_features: ``(r, d)`` features of the real training images of the class.
        reference: The real set in words (recorded as ``reference``).
        seed: Seed of the subset draws.

    Returns:
        JSON-ready dict: metric, extractor and its description, note, reference, ``kept`` and ``all_generated``
        (each a :func:`kernel_inception_distance` result).
    """
    return {
        "metric": "KID (polynomial kernel (x.y/d+1)^3, unbiased MMD^2, mean over subsets; lower is better)",
        "extractor": FEATURE_EXTRACTOR_NAME,
        "extractor_description": FEATURE_EXTRACTOR_DESCRIPTION,
        "note": f"KID on {FEATURE_EXTRACTOR_NAME} features, not Inception features; comparable within this "
        "project only",
        "reference": reference,
        "kept": kernel_inception_distance(candidate_features[kept], real_features, seed=seed),
        "all_generated": kernel_inception_distance(candidate_features, real_features, seed=seed),
    }
