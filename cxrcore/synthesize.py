"""``cxr-synthesize``: generate synthetic X-rays of one class with its DCGAN, select, check and publish them.

Paper (section 3.1): 1,500 PNEUMONIA and 1,000 NORMAL images are generated at 64x64, upsampled to 128x128, and
"approximately the last 7%" are kept. Read literally with one trained generator, "the last 7%" are the last
images in generation order; that is the ``last-fraction`` strategy and the default. We add quality-aware
strategies and a memorization check (docs/architecture.md#synthetic-selection). Every strategy keeps
``k = max(1, round(keep_fraction * n))`` of the ``n`` generated images.

Pipeline (all TensorFlow work is batched and runs on the GPU when there is one):

1. Latents: ``numpy.random.default_rng([seed, label]).standard_normal((n, latent_dim))`` drawn once, so
   generation index ``i`` always gets the same latent whatever ``batch_size`` is.
2. Generation: the committed generator (sigmoid output in [0, 1]); the committed discriminator scores each
   raw generated image (logit of "real", the input it was trained on).
3. Grayscale: the mean of the generator's channels (the stored dataset format is 8-bit grayscale).
4. Upsampling (:data:`UPSAMPLING`): ``tf.image.resize(method="bicubic", antialias=True)`` (Keys cubic,
   a = -0.5, half-pixel centres) from the GAN size to ``output_size`` on the float image, then clipped to
   [0, 255] and rounded to uint8 (one quantisation only).
5. Selection (:func:`select_indices`): ``last-fraction`` (the paper), ``discriminator`` (highest realism
   logit), ``confidence`` (a classifier's probability of the intended class), ``diversity`` (greedy k-center
   over 16x16 downsampled pixels, seeded with the highest discriminator logit).
6. Memorization (:func:`nearest_by_ssim`): for each kept image, the exact SSIM maximum over every REAL
   training image of the same class, at ``min(GAN size, stored real size, 64)`` px; images above
   ``memorization_threshold`` are flagged (and dropped with ``drop_memorized``).
7. Quality (:func:`kernel_inception_distance`): KID with the cubic polynomial kernel and the unbiased MMD
   estimator over subsets, computed on :data:`FEATURE_EXTRACTOR_NAME` features
   (:func:`pixel_statistics_features`) — NOT Inception features: no ImageNet weights are used (the job runs
   offline), so the values are comparable within this project only, never with published KID/FID numbers.

Output (committed under ``runs/<run_id>/synthetic/<CLASS>/``, readable with
:func:`cxrcore.data.dataset.load_prefix`)::

    manifest.csv        one row per kept image (dataset format; source "synthetic", split "train",
                        one pseudo-patient per run and class so a patient split never puts one in test)
    dataset.json        image_size, counts, synthetic=true, run_id, class, gan digest, source dataset
    shards/shard-00000.npy
    selection.json      strategy, kept ids/generation indices/scores, memorization report, KID, timings
    candidates.csv      every generated image: generation index, discriminator logit, confidence, rank
    samples.png         left: kept synthetic images, right: real training images of the class

Selection, metric and feature functions are pure (arrays in, arrays out); only :func:`run` and its
``_``-prefixed helpers touch the store.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrcore import __version__
from cxrcore.config import SynthesizeSettings, identity
from cxrcore.data.dataset import (
    DATASET_FORMAT,
    dataset_prefix,
    encode_shard,
    load_dataset,
    manifest_to_csv,
    resolve_version,
)
from cxrcore.data.images import encode_png
from cxrcore.layout import gan_prefix, synthetic_prefix
from cxrcore.logging import get_logger, progress
from cxrcore.storage import (
    Marker,
    NotCommittedError,
    Store,
    join_key,
    open_store,
    redact_uri,
    sha256_bytes,
    sha256_file,
)
from cxrcore.vocab import CLASS_NAMES, SELECTION_STRATEGIES

__all__ = [
    "DIVERSITY_FEATURE_SIZE",
    "FEATURE_EXTRACTOR_DESCRIPTION",
    "FEATURE_EXTRACTOR_NAME",
    "MEMORIZATION_MAX_SIZE",
    "SELECTION_STRATEGIES",
    "SSIM_PARAMETERS",
    "SYNTHESIZE_FORMAT",
    "SynthesizeError",
    "UPSAMPLING",
    "diversity_features",
    "intended_class_confidence",
    "job_inputs",
    "keep_count",
    "kernel_inception_distance",
    "latent_vectors",
    "memorization_report",
    "nearest_by_ssim",
    "pixel_statistics_features",
    "resize_images",
    "run",
    "select_diversity",
    "select_indices",
    "select_last_fraction",
    "select_top_scores",
    "ssim",
    "to_grayscale",
    "upsample_to_uint8",
]

#: Version of this job's algorithm and output format; part of the idempotency inputs.
SYNTHESIZE_FORMAT = 1
#: How generated images are brought from the GAN size to ``output_size``.
UPSAMPLING = "tf.image.resize bicubic (Keys a=-0.5, half-pixel centres, antialias=True) on float gray, clip, round"
#: The memorization check runs at ``min(GAN size, stored real size, MEMORIZATION_MAX_SIZE)`` pixels.
MEMORIZATION_MAX_SIZE = 64
#: SSIM as ``tf.image.ssim`` computes it (Wang et al. 2004 with a Gaussian window, VALID padding).
SSIM_PARAMETERS: dict[str, float] = {"filter_size": 11, "filter_sigma": 1.5, "k1": 0.01, "k2": 0.03}
#: Side of the downsampled images whose pixels are the diversity strategy's feature space.
DIVERSITY_FEATURE_SIZE = 16

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
_SAMPLE_TILES = 32
_SAMPLE_COLUMNS = 8
_SAMPLE_MAX_TILE = 128
_SHARD_SIZE = 1024
_RESIZE_BATCH = 256


class SynthesizeError(ValueError):
    """The synthesis job cannot run: a missing input, an unusable model, or nothing left to publish."""


def _tf():
    """Imports TensorFlow on first use, so the pure-numpy parts of this module load without it."""
    import tensorflow as tf

    return tf


# ---------------------------------------------------------------------------------------------- generation
def keep_count(num_images: int, keep_fraction: float) -> int:
    """How many of ``num_images`` every strategy keeps: ``max(1, round(keep_fraction * num_images))``.

    The paper's "approximately the last 7%" of 1,500 and 1,000 images gives 105 and 70.

    Args:
        num_images: Images generated (>= 1).
        keep_fraction: Share kept, in (0, 1].

    Returns:
        The number kept, between 1 and ``num_images``.

    Raises:
        ValueError: On a non-positive count or a fraction outside (0, 1].
    """
    if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
        raise ValueError(f"num_images must be a positive integer. Received: num_images={num_images!r}")
    if not 0.0 < keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction must be in (0, 1]. Received: keep_fraction={keep_fraction!r}")
    return min(num_images, max(1, round(keep_fraction * num_images)))


def latent_vectors(num_images: int, latent_dim: int, seed: int, label: int) -> np.ndarray:
    """The seeded latent stream: row ``i`` is the latent of generation index ``i``.

    Args:
        num_images: Rows to draw.
        latent_dim: Generator input size.
        seed: Run seed.
        label: Class label (0 NORMAL, 1 PNEUMONIA), so the two classes draw independent streams.

    Returns:
        float32 ``(num_images, latent_dim)`` standard normal values from ``default_rng([seed, label])``.
    """
    if num_images < 0 or latent_dim < 1:
        raise ValueError(
            f"num_images must be >= 0 and latent_dim >= 1. Received: num_images={num_images}, latent_dim={latent_dim}"
        )
    rng = np.random.default_rng([int(seed), int(label)])
    return rng.standard_normal((num_images, latent_dim)).astype(np.float32)


def to_grayscale(images: np.ndarray) -> np.ndarray:
    """Mean of the channels of ``(n, h, w, c)`` images (``(n, h, w)`` passes through), as float32."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        return images
    if images.ndim != 4:
        raise ValueError(f"images must be (n, h, w) or (n, h, w, c). Received: images.shape={images.shape}")
    return images.mean(axis=-1, dtype=np.float32)


def resize_images(images: np.ndarray, size: int, *, method: str = "bilinear") -> np.ndarray:
    """Resizes ``(n, h, w)`` grayscale images to ``(n, size, size)`` float32, antialiased, values unclipped.

    Args:
        images: uint8 or float array ``(n, h, w)``; values keep their scale.
        size: Target side in pixels.
        method: ``tf.image.resize`` method (``bilinear``, ``bicubic``, ``area``).

    Returns:
        float32 ``(n, size, size)``; the input (as float32) when it already has that size.
    """
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images must be (n, h, w). Received: images.shape={images.shape}")
    if images.shape[1:] == (size, size):
        return images.astype(np.float32)
    tf = _tf()
    resized = np.zeros((len(images), size, size), dtype=np.float32)
    for start in range(0, len(images), _RESIZE_BATCH):
        batch = tf.convert_to_tensor(images[start : start + _RESIZE_BATCH, ..., np.newaxis].astype(np.float32))
        output = tf.image.resize(batch, (size, size), method=method, antialias=True)
        resized[start : start + _RESIZE_BATCH] = output.numpy()[..., 0]
    return resized


def upsample_to_uint8(gray: np.ndarray, size: int) -> np.ndarray:
    """Turns float grayscale images in [0, 1] into uint8 images of ``size`` px as described in :data:`UPSAMPLING`.

    Args:
        gray: float ``(n, h, w)`` in [0, 1].
        size: Output side (the paper: 128 from 64).

    Returns:
        uint8 ``(n, size, size)``.
    """
    scaled = resize_images(np.asarray(gray, dtype=np.float32) * 255.0, size, method="bicubic")
    return np.round(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)


def _quantize(gray: np.ndarray) -> np.ndarray:
    return np.round(np.clip(np.asarray(gray, dtype=np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


# ----------------------------------------------------------------------------------------------- selection
def select_last_fraction(num_images: int, k: int) -> np.ndarray:
    """The paper's strategy: the last ``k`` generation indices, in generation order."""
    _check_k(k, num_images)
    return np.arange(num_images - k, num_images, dtype=np.int64)


def select_top_scores(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, best first; ties go to the earlier generation index.

    Args:
        scores: ``(n,)`` finite scores (higher is better).
        k: How many to keep.

    Returns:
        int64 ``(k,)`` indices in rank order.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    _check_k(k, len(scores))
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"scores must be finite. Received: {int((~np.isfinite(scores)).sum())} non-finite values")
    return np.argsort(-scores, kind="stable")[:k].astype(np.int64)


def select_diversity(features: np.ndarray, k: int, start: int) -> np.ndarray:
    """Greedy farthest-point (k-center) selection: each pick maximises its distance to the picks so far.

    A 2-approximation of the k-center problem: the kept set covers the generated set as evenly as possible,
    which counters mode collapse (many near-identical samples).

    Args:
        features: ``(n, d)`` feature vectors (Euclidean distance).
        k: How many to keep.
        start: Index of the first pick (the run uses the highest discriminator logit).

    Returns:
        int64 ``(k,)`` indices in pick order; ties go to the earlier generation index.
    """
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"features must be (n, d). Received: features.shape={features.shape}")
    count = len(features)
    _check_k(k, count)
    if not 0 <= start < count:
        raise ValueError(f"start must index a feature row (0..{count - 1}). Received: start={start}")
    chosen = [int(start)]
    distance = np.sum((features - features[start]) ** 2, axis=1)
    distance[start] = -1.0
    for _ in range(k - 1):
        pick = int(np.argmax(distance))
        chosen.append(pick)
        distance = np.minimum(distance, np.sum((features - features[pick]) ** 2, axis=1))
        distance[chosen] = -1.0
    return np.asarray(chosen, dtype=np.int64)


def intended_class_confidence(probability_pneumonia: np.ndarray, class_name: str) -> np.ndarray:
    """The classifier's confidence in the intended class: ``p`` for PNEUMONIA, ``1 - p`` for NORMAL."""
    if class_name not in CLASS_NAMES:
        raise ValueError(f"class_name must be one of {CLASS_NAMES}. Received: class_name={class_name!r}")
    probability = np.asarray(probability_pneumonia, dtype=np.float64).reshape(-1)
    return probability if class_name == "PNEUMONIA" else 1.0 - probability


def select_indices(
    strategy: str,
    k: int,
    *,
    num_images: int,
    discriminator_scores: np.ndarray | None = None,
    confidence_scores: np.ndarray | None = None,
    diversity_features: np.ndarray | None = None,
) -> np.ndarray:
    """Applies one selection strategy and returns the kept generation indices in rank order.

    Args:
        strategy: One of :data:`SELECTION_STRATEGIES`.
        k: How many to keep.
        num_images: Images generated.
        discriminator_scores: ``(n,)`` realism logits (``discriminator`` and ``diversity``).
        confidence_scores: ``(n,)`` confidence in the intended class (``confidence``).
        diversity_features: ``(n, d)`` features (``diversity``).

    Returns:
        int64 ``(k,)`` generation indices.

    Raises:
        ValueError: Unknown strategy or a missing/misaligned score array.
    """

    def need(name: str, values: np.ndarray | None) -> np.ndarray:
        if values is None or len(values) != num_images:
            got = None if values is None else len(values)
            raise ValueError(f"Strategy {strategy!r} needs {name} for all {num_images} images. Received: {name}={got}")
        return np.asarray(values)

    if strategy == "last-fraction":
        return select_last_fraction(num_images, k)
    if strategy == "discriminator":
        return select_top_scores(need("discriminator_scores", discriminator_scores), k)
    if strategy == "confidence":
        return select_top_scores(need("confidence_scores", confidence_scores), k)
    if strategy == "diversity":
        scores = need("discriminator_scores", discriminator_scores)
        start = int(select_top_scores(scores, 1)[0])
        return select_diversity(need("diversity_features", diversity_features), k, start)
    raise ValueError(f"strategy must be one of {SELECTION_STRATEGIES}. Received: strategy={strategy!r}")


def diversity_features(images: np.ndarray) -> np.ndarray:
    """The diversity strategy's feature space: images area-downsampled to 16x16, in [0, 1], flattened."""
    small = resize_images(np.asarray(images), DIVERSITY_FEATURE_SIZE, method="area") / 255.0
    return small.reshape(len(small), -1).astype(np.float64)


def _check_k(k: int, num_images: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= num_images:
        raise ValueError(f"k must be an integer in [1, {num_images}]. Received: k={k!r}")


# ---------------------------------------------------------------------------------------------------- SSIM
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
    tf = _tf()
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
    tf = _tf()
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
    tf = _tf()
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


# ---------------------------------------------------------------------------------------- features and KID
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
    tf = _tf()
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
    tf = _tf()
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


# ------------------------------------------------------------------------------------------- model running
@dataclasses.dataclass
class _Candidates:
    """Every generated image of a run, in generation order."""

    gray: np.ndarray  # float32 (n, g, g) in [0, 1]
    final: np.ndarray  # uint8 (n, output_size, output_size)
    discriminator_logits: np.ndarray  # float64 (n,)


def _generate(
    generator, discriminator, latents: np.ndarray, output_size: int, batch_size: int, logger: Any
) -> _Candidates:
    """Generates, scores, converts and upsamples in batches (no I/O; progress goes to ``logger``)."""
    grays, finals, logits = [], [], []
    starts = range(0, len(latents), batch_size)
    for start in progress(starts, total=len(starts), event="synthesize_generate", logger=logger):
        images = np.asarray(generator(latents[start : start + batch_size], training=False), dtype=np.float32)
        logits.append(np.asarray(discriminator(images, training=False), dtype=np.float64).reshape(-1))
        gray = to_grayscale(images)
        grays.append(gray)
        finals.append(upsample_to_uint8(gray, output_size))
    return _Candidates(np.concatenate(grays), np.concatenate(finals), np.concatenate(logits))


def _classifier_probabilities(model, images: np.ndarray, batch_size: int) -> np.ndarray:
    """P(PNEUMONIA) of uint8 grayscale images for a classifier taking raw [0, 255] input."""
    shape = model.input_shape
    if isinstance(shape, list):
        shape = shape[0]
    if len(shape) != 4 or shape[-1] not in (1, 3):
        raise SynthesizeError(f"The confidence model must take (h, w, 1|3) images. Received: input_shape={shape}")
    height, width, channels = shape[1], shape[2], shape[3]
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].astype(np.float32)
        if height is not None and width is not None and batch.shape[1:] != (height, width):
            if height != width:
                raise SynthesizeError(f"The confidence model's input must be square. Received: input_shape={shape}")
            batch = np.clip(resize_images(batch, int(height)), 0.0, 255.0)
        batch = np.repeat(batch[..., np.newaxis], channels, axis=-1)
        outputs.append(np.asarray(model(batch, training=False), dtype=np.float64))
    probabilities = np.concatenate(outputs, axis=0)
    if probabilities.ndim != 2 or probabilities.shape[1] != 1:
        raise SynthesizeError(
            "The confidence model must output one sigmoid P(PNEUMONIA) per image. "
            f"Received: shape={probabilities.shape}"
        )
    return probabilities[:, 0]


def _samples_png(synthetic: np.ndarray, real: np.ndarray) -> bytes:
    """``samples.png``: grid of kept synthetic images (left), an 8 px white band, grid of real images (right)."""
    from cxrcore.models.dcgan import make_grid

    size = min(_SAMPLE_MAX_TILE, synthetic.shape[1])
    left = make_grid(_quantize(resize_images(synthetic, size) / 255.0), _SAMPLE_COLUMNS)
    right = make_grid(_quantize(resize_images(real, size) / 255.0), _SAMPLE_COLUMNS)
    height = max(left.shape[0], right.shape[0])
    canvas = np.full((height, left.shape[1] + 8 + right.shape[1], 3), 255, dtype=np.uint8)
    canvas[: left.shape[0], : left.shape[1]] = left
    canvas[: right.shape[0], left.shape[1] + 8 :] = right
    return encode_png(canvas)


# ----------------------------------------------------------------------------------------------------- I/O
def _load_keras(path: Path):
    """Loads a ``.keras`` model saved by this project (safe mode, no compile)."""
    import keras

    # Importing the model modules registers their serializable layers (package "cxrcore"), e.g. the transfer
    # classifiers' preprocessing layers, so classifiers of any backbone load for selection=confidence.
    import cxrcore.models.custom_cnn  # noqa: F401
    import cxrcore.models.dcgan  # noqa: F401
    import cxrcore.models.transfer  # noqa: F401

    return keras.models.load_model(path, compile=False)


def _download_committed(store: Store, prefix: str, marker: Marker, name: str, directory: Path) -> Path:
    entry = marker.outputs.get(name)
    if entry is None:
        raise SynthesizeError(f"{store.uri}/{prefix} is committed but its _SUCCESS marker does not list {name}")
    return store.get_file(join_key(prefix, name), directory / name, sha256=entry["sha256"])


def _fetch_confidence_model(settings: SynthesizeSettings, directory: Path) -> tuple[Path, str]:
    """Downloads (s3://) or locates (file:// or path) the classifier; returns its local path and sha256.

    A URI that does not end in ``.keras`` names a classifier output prefix/folder holding ``model.keras``.
    """
    uri = str(settings.confidence_model)
    if uri.startswith("s3://"):
        parent, _, name = uri.rstrip("/").rpartition("/")
        if not name.endswith(".keras"):
            parent, name = uri.rstrip("/"), "model.keras"
        store = open_store(parent, s3=settings.s3.as_options(settings.io_workers), max_workers=settings.io_workers)
        try:
            path = store.get_file(name, directory / "confidence-model.keras")
        except FileNotFoundError as exc:
            raise SynthesizeError(f"No confidence model at {redact_uri(uri)}: {exc}") from exc
    else:
        local = Path(urllib.parse.unquote(urllib.parse.urlsplit(uri).path) if uri.startswith("file://") else uri)
        path = local / "model.keras" if local.is_dir() else local
        if not path.is_file():
            raise SynthesizeError(f"No confidence model file at {path}. Received: confidence_model={uri!r}")
    return path, sha256_file(path)


def _dataset_version(store: Store, settings: SynthesizeSettings, gan_info: dict[str, Any], logger: Any) -> str:
    """The real dataset version to check against: the flag, else the GAN's training version, else the latest.

    ``gan.json`` of ``cxr-gan-train`` records ``{"dataset": {"name": ..., "version": ...}}``; with
    ``dataset_version=latest`` the memorization check and KID use the version the GAN was trained on.
    """
    trained = gan_info.get("dataset") if isinstance(gan_info.get("dataset"), dict) else {}
    trained_on = trained.get("version")
    same_name = trained.get("name", settings.dataset) == settings.dataset
    if settings.dataset_version in ("", "latest") and isinstance(trained_on, str) and same_name:
        return resolve_version(store, settings.dataset, trained_on)
    version = resolve_version(store, settings.dataset, settings.dataset_version)
    if isinstance(trained_on, str) and trained_on != version:
        logger.warning("synthesize_dataset_differs_from_gan", gan_dataset_version=trained_on, dataset_version=version)
    return version


def job_inputs(
    settings: SynthesizeSettings,
    *,
    gan: dict[str, str],
    dataset: dict[str, Any],
    confidence_model: dict[str, str] | None,
) -> dict[str, Any]:
    """The ``inputs`` of the synthetic output's marker.

    Args:
        settings: The job settings; :func:`cxrcore.config.identity` of them is recorded.
        gan: ``{"prefix", "digest"}`` of the committed GAN.
        dataset: ``{"name", "version", "digest"}`` of the real dataset version.
        confidence_model: ``{"uri", "sha256"}`` of the ``confidence`` selection's classifier, or ``None``.

    Returns:
        A JSON-ready dict.
    """
    return {
        "format": SYNTHESIZE_FORMAT,
        "gan": gan,
        "dataset": dataset,
        "confidence_model": confidence_model,
        "settings": identity(settings),
    }


def _summary(status: str, uri: str, selection: dict[str, Any]) -> dict[str, Any]:
    memorization = selection.get("memorization", {})
    quality = selection.get("quality", {})
    return {
        "status": status,
        "uri": uri,
        "class": selection.get("class"),
        "strategy": selection.get("strategy"),
        "num_generated": selection.get("num_generated"),
        "num_selected": selection.get("num_selected"),
        "num_kept": selection.get("num_kept"),
        "memorized_count": memorization.get("flagged_count"),
        "memorized_share": memorization.get("flagged_share"),
        "kid_kept": quality.get("kept", {}).get("kid"),
        "kid_all_generated": quality.get("all_generated", {}).get("kid"),
        "kid_features": quality.get("extractor"),
    }


def _manifest(
    images: np.ndarray, generation_indices: np.ndarray, settings: SynthesizeSettings, gan_size: int
) -> pd.DataFrame:
    label = CLASS_NAMES.index(settings.class_name)
    rows = []
    for position, (pixels, generation_index) in enumerate(zip(images, generation_indices, strict=True)):
        digest = sha256_bytes(encode_png(pixels))
        rows.append(
            {
                "image_id": digest[:16],
                "sha256": digest,
                "pixel_sha256": sha256_bytes(np.ascontiguousarray(pixels).tobytes()),
                "class": settings.class_name,
                "label": label,
                "patient_id": f"synthetic-{settings.run_id}-{settings.class_name}",
                "patient_id_parsed": False,
                "source": "synthetic",
                "source_path": f"gan:{settings.run_id}/{settings.class_name}/{int(generation_index)}",
                "source_split": "",
                "split": "train",
                "orig_width": gan_size,
                "orig_height": gan_size,
                "orig_mode": "RGB",
                "orig_format": "GAN",
                "width": settings.output_size,
                "height": settings.output_size,
                "shard": f"shard-{position // _SHARD_SIZE:05d}.npy",
                "shard_index": position % _SHARD_SIZE,
            }
        )
    return pd.DataFrame(rows)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What one run reads and writes, resolved before any model or image is loaded."""

    store: Store
    gan_prefix: str
    gan_marker: Marker
    gan_info: dict[str, Any]
    output_prefix: str
    output_uri: str
    dataset_name: str
    dataset_version: str
    dataset_marker: Marker
    num_images: int
    keep: int
    label: int

    @property
    def dataset_record(self) -> dict[str, Any]:
        """The real dataset as recorded in inputs and outputs: name, version, marker digest."""
        return {"name": self.dataset_name, "version": self.dataset_version, "digest": self.dataset_marker.digest}


def _plan(settings: SynthesizeSettings, logger: Any) -> _Plan:
    """Validates the settings and resolves the GAN and dataset markers (no model or image is read)."""
    if settings.selection == "confidence" and not settings.confidence_model:
        raise SynthesizeError(
            "selection=confidence needs a classifier: set --confidence-model (s3://... or a path to model.keras). "
            f"Received: confidence_model={settings.confidence_model!r}"
        )
    store = settings.open_store()
    source = gan_prefix(settings.run_id, settings.class_name)
    output = synthetic_prefix(settings.run_id, settings.class_name)
    try:
        gan_marker = store.require_committed(source)
    except NotCommittedError as exc:
        raise SynthesizeError(
            f"The GAN of class {settings.class_name} for run {settings.run_id} is not committed at "
            f"{store.uri.rstrip('/')}/{source} (no _SUCCESS): run cxr-gan-train --run-id {settings.run_id} "
            f"--class-name {settings.class_name} first"
        ) from exc
    gan_info = store.get_json(join_key(source, "gan.json")) if "gan.json" in gan_marker.outputs else {}
    gan_info = gan_info if isinstance(gan_info, dict) else {}
    version = _dataset_version(store, settings, gan_info, logger)
    num_images = settings.resolved_num_images()
    return _Plan(
        store=store,
        gan_prefix=source,
        gan_marker=gan_marker,
        gan_info=gan_info,
        output_prefix=output,
        output_uri=f"{store.uri.rstrip('/')}/{output}",
        dataset_name=settings.dataset,
        dataset_version=version,
        dataset_marker=store.require_committed(dataset_prefix(settings.dataset, version)),
        num_images=num_images,
        keep=keep_count(num_images, settings.keep_fraction),
        label=CLASS_NAMES.index(settings.class_name),
    )


def _load_models(plan: _Plan, work: Path) -> tuple[Any, Any]:
    """Downloads (sha256-verified) and loads the committed generator and discriminator; checks they fit."""
    generator = _load_keras(_download_committed(plan.store, plan.gan_prefix, plan.gan_marker, "generator.keras", work))
    discriminator = _load_keras(
        _download_committed(plan.store, plan.gan_prefix, plan.gan_marker, "discriminator.keras", work)
    )
    if tuple(discriminator.input_shape[1:]) != tuple(generator.output_shape[1:]):
        raise SynthesizeError(
            f"The discriminator input {discriminator.input_shape[1:]} does not match the generator output "
            f"{generator.output_shape[1:]} in {plan.gan_prefix}"
        )
    return generator, discriminator


def _load_real(plan: _Plan, settings: SynthesizeSettings) -> tuple[np.ndarray, list[str], int]:
    """The REAL training images of the class (uint8), their ids, and the dataset's stored image size."""
    dataset = load_dataset(plan.store, settings.dataset, plan.dataset_version)
    train_images, train_manifest = dataset.subset("train")
    of_class = (train_manifest["class"] == settings.class_name).to_numpy()
    if not of_class.any():
        raise SynthesizeError(
            f"Dataset {settings.dataset} {plan.dataset_version} has no {settings.class_name} training images to "
            "check synthetic images against"
        )
    return train_images[of_class], train_manifest["image_id"][of_class].tolist(), int(dataset.info["image_size"])


def _quality(
    candidate_features: np.ndarray, kept: np.ndarray, real_features: np.ndarray, reference: str, seed: int
) -> dict[str, Any]:
    """KID of the kept set and of all generated images against the real images (pure)."""
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


def _kept_rows(
    selected: np.ndarray,
    positions: np.ndarray,
    image_ids: list[str],
    logits: np.ndarray,
    confidence: np.ndarray | None,
    memorization: dict[str, Any],
) -> list[dict[str, Any]]:
    """One ``selection.json`` entry per published image, in rank order (pure)."""
    rows = []
    for position in positions:
        index = int(selected[position])
        entry = memorization["per_image"][position]
        rows.append(
            {
                "image_id": image_ids[position],
                "generation_index": index,
                "rank": int(position),
                "discriminator_logit": float(logits[index]),
                "discriminator_probability": float(1.0 / (1.0 + np.exp(-logits[index]))),
                "confidence": None if confidence is None else float(confidence[index]),
                "nearest_real_id": entry["nearest_real_id"],
                "nearest_real_ssim": entry["nearest_real_ssim"],
                "memorized": entry["memorized"],
            }
        )
    return rows


def _candidates_csv(logits: np.ndarray, confidence: np.ndarray | None, selected: np.ndarray, kept: np.ndarray) -> bytes:
    """``candidates.csv``: every generated image with its scores, selection rank (-1: not selected) and fate."""
    count = len(logits)
    rank = np.full(count, -1, dtype=np.int64)
    rank[selected] = np.arange(len(selected))
    frame = pd.DataFrame(
        {
            "generation_index": np.arange(count),
            "discriminator_logit": logits,
            "confidence": np.full(count, np.nan) if confidence is None else confidence,
            "rank": rank,
            "kept": np.isin(np.arange(count), kept),
        }
    )
    return frame.to_csv(index=False, lineterminator="\n").encode()


def _dataset_info(plan: _Plan, settings: SynthesizeSettings, manifest: pd.DataFrame, gan_size: int) -> dict[str, Any]:
    """``dataset.json`` of the synthetic set (the dataset format's info plus its provenance)."""
    count = int(len(manifest))
    return {
        "name": f"synthetic-{settings.run_id}-{settings.class_name}",
        "format": DATASET_FORMAT,
        "synthetic": True,
        "synthetic_info": {"kind": "dcgan", "strategy": settings.selection},
        "run_id": settings.run_id,
        "class": settings.class_name,
        "gan_digest": plan.gan_marker.digest,
        "gan_image_size": gan_size,
        "source_dataset": plan.dataset_record,
        "image_size": settings.output_size,
        "channels": 1,
        "images": count,
        "counts": {name: count if name == settings.class_name else 0 for name in CLASS_NAMES},
        "splits": {"train": {settings.class_name: count}},
        "shards": sorted(set(manifest["shard"])),
        "cxrcore_version": __version__,
    }


def run(settings: SynthesizeSettings) -> dict[str, Any]:
    """Job entry of ``cxr-synthesize``: generates, selects, checks and commits one class's synthetic set.

    Idempotent: the marker's inputs are the GAN's marker digest, the real dataset's marker digest, the
    confidence model's sha256 (when one is given; it is fetched to hash it), the settings that change the
    output and :data:`SYNTHESIZE_FORMAT`; a committed output with the same inputs is left alone.

    Args:
        settings: The job settings.

    Returns:
        JSON-ready summary: status (``created``/``unchanged``), uri, counts, memorized share, KID.

    Raises:
        SynthesizeError: The GAN output is not committed, a model is unusable, ``confidence`` selection has no
            model, the class has no real training images, or ``drop_memorized`` removed every kept image.
        cxrcore.data.dataset.DatasetError: The real dataset is missing or inconsistent.
    """
    started = time.monotonic()
    timings: dict[str, float] = {}
    # Bound here, after the job configured logging (a module-level logger would keep the default renderer).
    log = get_logger("cxrcore.synthesize", run_id=settings.run_id, class_name=settings.class_name)
    plan = _plan(settings, log)
    with tempfile.TemporaryDirectory(prefix="cxr-synthesize-") as tmp:
        work = Path(tmp)
        model_path, model_record = None, None
        if settings.confidence_model:
            model_path, model_sha256 = _fetch_confidence_model(settings, work)
            model_record = {"uri": redact_uri(str(settings.confidence_model)), "sha256": model_sha256}
        inputs = job_inputs(
            settings,
            gan={"prefix": plan.gan_prefix, "digest": plan.gan_marker.digest},
            dataset=plan.dataset_record,
            confidence_model=model_record,
        )
        if plan.store.is_committed(plan.output_prefix, inputs):
            log.info("synthesize_unchanged", uri=plan.output_uri)
            selection = plan.store.get_json(join_key(plan.output_prefix, "selection.json"))
            return _summary("unchanged", plan.output_uri, selection)

        phase = time.monotonic()
        generator, discriminator = _load_models(plan, work)
        latent_dim, gan_size = int(generator.input_shape[-1]), int(generator.output_shape[1])
        classifier = _load_keras(model_path) if model_path else None
        real_images, real_ids, real_size = _load_real(plan, settings)
        timings["load_s"] = time.monotonic() - phase
        log.info("synthesize_start", num_images=plan.num_images, keep=plan.keep, strategy=settings.selection,
                 gan_size=gan_size, real_train_images=len(real_images), dataset_version=plan.dataset_version)

        # Generate and score every candidate, then select.
        phase = time.monotonic()
        latents = latent_vectors(plan.num_images, latent_dim, settings.seed, plan.label)
        candidates = _generate(generator, discriminator, latents, settings.output_size, settings.batch_size, log)
        timings["generate_s"] = time.monotonic() - phase
        phase = time.monotonic()
        confidence = None
        if classifier is not None:
            probabilities = _classifier_probabilities(classifier, candidates.final, settings.batch_size)
            confidence = intended_class_confidence(probabilities, settings.class_name)
        selected = select_indices(
            settings.selection,
            plan.keep,
            num_images=plan.num_images,
            discriminator_scores=candidates.discriminator_logits,
            confidence_scores=confidence,
            diversity_features=diversity_features(candidates.final) if settings.selection == "diversity" else None,
        )
        timings["select_s"] = time.monotonic() - phase

        # Memorization: nearest real training image by SSIM at a common size.
        phase = time.monotonic()
        check_size = min(gan_size, real_size, MEMORIZATION_MAX_SIZE)
        nearest, nearest_ssim = nearest_by_ssim(
            _quantize(resize_images(candidates.gray[selected], check_size)),
            _quantize(resize_images(real_images, check_size) / 255.0),
        )
        kept_images = candidates.final[selected]
        kept_ids = [sha256_bytes(encode_png(image))[:16] for image in kept_images]
        memorization = memorization_report(
            kept_ids,
            selected.tolist(),
            [real_ids[i] for i in nearest],
            nearest_ssim,
            threshold=settings.memorization_threshold,
            size=check_size,
            num_references=len(real_images),
        )
        memorization["dropped"] = bool(settings.drop_memorized)
        flagged = nearest_ssim >= settings.memorization_threshold
        positions = np.flatnonzero(~flagged) if settings.drop_memorized else np.arange(len(selected))
        if len(positions) == 0:
            raise SynthesizeError(
                f"All {len(selected)} selected images are memorized copies (SSIM >= "
                f"{settings.memorization_threshold} to a real training image) and drop_memorized is set; nothing "
                "left to publish. Received: drop_memorized=True"
            )
        kept = selected[positions]
        timings["memorization_s"] = time.monotonic() - phase

        phase = time.monotonic()
        reference = (
            f"{len(real_images)} real {settings.class_name} training images of {settings.dataset} "
            f"{plan.dataset_version}"
        )
        quality = _quality(
            pixel_statistics_features(candidates.final),
            kept,
            pixel_statistics_features(real_images),
            reference,
            settings.seed,
        )
        timings["quality_s"] = time.monotonic() - phase

        phase = time.monotonic()
        published = kept_images[positions]
        kept_rows = _kept_rows(selected, positions, kept_ids, candidates.discriminator_logits, confidence, memorization)
        rng = np.random.default_rng([settings.seed, plan.label, 1])
        real_sample = np.sort(rng.choice(len(real_images), min(_SAMPLE_TILES, len(real_images)), replace=False))
        manifest = _manifest(published, kept, settings, gan_size)
        selection = {
            "format": SYNTHESIZE_FORMAT,
            "run_id": settings.run_id,
            "class": settings.class_name,
            "strategy": settings.selection,
            "paper_strategy": "last-fraction",
            "seed": settings.seed,
            "latent_stream": (
                f"numpy default_rng([{settings.seed}, {plan.label}])"
                f".standard_normal(({plan.num_images}, {latent_dim}))"
            ),
            "num_generated": plan.num_images,
            "keep_fraction": settings.keep_fraction,
            "num_selected": int(len(selected)),
            "num_kept": int(len(positions)),
            "duplicate_images_kept": int(len(published) - len(set(manifest["image_id"]))),
            "upsampling": UPSAMPLING,
            "gan": {
                "prefix": plan.gan_prefix,
                "digest": plan.gan_marker.digest,
                "image_size": gan_size,
                "latent_dim": latent_dim,
                "epochs": plan.gan_info.get("training", {}).get("epochs"),
            },
            "dataset": plan.dataset_record,
            "confidence_model": model_record,
            "discriminator_logit_mean": {
                "all_generated": float(candidates.discriminator_logits.mean()),
                "kept": float(candidates.discriminator_logits[kept].mean()),
            },
            "kept": kept_rows,
            "memorization": memorization,
            "quality": quality,
            "samples": {
                "file": "samples.png",
                "layout": f"left: the first {min(_SAMPLE_TILES, len(published))} kept SYNTHETIC images in rank "
                f"order; right (after a white band): {len(real_sample)} REAL {settings.class_name} training images",
                "synthetic_ids": [row["image_id"] for row in kept_rows[:_SAMPLE_TILES]],
                "real_ids": [real_ids[i] for i in real_sample],
            },
        }
        info = _dataset_info(plan, settings, manifest, gan_size)
        samples = _samples_png(published[:_SAMPLE_TILES], real_images[real_sample])
        candidates_csv = _candidates_csv(candidates.discriminator_logits, confidence, selected, kept)
        with plan.store.commit(plan.output_prefix, inputs=inputs, producer=f"cxr-synthesize {__version__}") as tx:
            for number, name in enumerate(info["shards"]):
                shard = published[number * _SHARD_SIZE : (number + 1) * _SHARD_SIZE]
                tx.put_bytes(join_key("shards", name), encode_shard(shard))
            tx.put_bytes("manifest.csv", manifest_to_csv(manifest))
            tx.put_bytes("candidates.csv", candidates_csv)
            tx.put_bytes("samples.png", samples)
            tx.put_json("dataset.json", info)
            timings["write_s"] = time.monotonic() - phase
            timings["total_s"] = time.monotonic() - started
            selection["timings_s"] = {name: round(value, 3) for name, value in timings.items()}
            tx.put_json("selection.json", selection)
    log.info("synthesize_committed", uri=plan.output_uri, kept=len(manifest),
             memorized=memorization["flagged_count"], kid_kept=quality["kept"]["kid"])
    return _summary("created", plan.output_uri, selection)
