"""KID and FID on InceptionV3 features, when ImageNet weights are at hand (docs/architecture.md#gan-quality).

The project's own quality numbers use the offline ``cxr-pixstat-v1`` features (:mod:`cxrcore.synthesis.kid`):
they need no weights, so every run has them, and the GAN's publishing rules are calibrated on them. With
InceptionV3's ImageNet weights in the Keras cache (images built with ``BAKE_IMAGENET_WEIGHTS=true``) the kept set
is also scored the usual way: the 2048-d global average pool of InceptionV3 at 299x299 px, KID (the same
estimator as :func:`cxrcore.synthesis.kid.kernel_inception_distance`) and FID (Heusel et al. 2017).

The weights are Keras' ImageNet InceptionV3, not the TF-slim graph ``pytorch-fid`` and the original TTUR code
ported, so the values are close to, not identical with, published FIDs; FID is also biased upward at small
sample counts (it is reported with its counts). A weights file other than Keras' own names its extractor by the
file's sha256: its values compare only with runs of the same file.

Everything here is arrays and a model in, values out; the job layer resolves where the weights come from.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cxrcore.synthesis.kid import kernel_inception_distance

__all__ = [
    "INCEPTION_EXTRACTOR_NAME",
    "INCEPTION_INPUT_SIZE",
    "build_inception_extractor",
    "feature_scores",
    "frechet_distance",
    "inception_features",
    "inception_quality",
]

#: Side InceptionV3 sees, as in every published FID/KID.
INCEPTION_INPUT_SIZE = 299
#: Feature width of InceptionV3's global average pool.
INCEPTION_FEATURE_DIM = 2048
#: The extractor with Keras' own ImageNet file.
INCEPTION_EXTRACTOR_NAME = "keras-inceptionv3-imagenet-avgpool"
INCEPTION_EXTRACTOR_DESCRIPTION = (
    "keras.applications.InceptionV3 (include_top=False, pooling='avg') with Keras' ImageNet weights: grayscale "
    "images in [0, 1] resized to 299x299 (bilinear, antialiased), repeated to RGB, scaled to [0, 255] and passed "
    "through inception_v3.preprocess_input; 2048-d features. Not the TF-slim FID graph, so values are close to, "
    "not identical with, published FIDs."
)
#: Images per InceptionV3 call (299 px RGB float32: ~1 MB each).
_BATCH = 32


def build_inception_extractor(weights: str, *, input_size: int = INCEPTION_INPUT_SIZE) -> Any:
    """InceptionV3 without its top, global average pooled: ``(n, size, size, 3)`` in [-1, 1] -> ``(n, 2048)``.

    Args:
        weights: ``"imagenet"`` (Keras' cache; the job checks it holds Keras' file first, so nothing is
            downloaded) or a local ``.h5`` / ``.weights.h5`` file of InceptionV3 with ``include_top=False``.
        input_size: Side of the input; 299 for numbers comparable with anyone else's (smaller only in tests).

    Returns:
        A ``keras.Model``.

    Raises:
        ValueError: The weights are neither ``"imagenet"`` nor a readable InceptionV3 file (the message names
            the file), or ``input_size`` is below InceptionV3's minimum of 75.
    """
    import keras

    from cxrcore.models.transfer import get_backbone, load_base_weights

    spec = get_backbone("inceptionv3")
    if not isinstance(input_size, int) or input_size < spec.min_input_size:
        raise ValueError(
            f"`input_size` must be an integer >= {spec.min_input_size}. Received: input_size={input_size}"
        )
    if not isinstance(weights, str) or not weights:
        raise ValueError(f"`weights` must be 'imagenet' or a local weights file. Received: weights={weights!r}")
    shape = (input_size, input_size, 3)
    if weights == "imagenet":
        return spec.constructor(include_top=False, weights="imagenet", input_shape=shape, pooling="avg")
    model = spec.constructor(include_top=False, weights=None, input_shape=shape, pooling="avg")
    load_base_weights(model, weights, backbone=spec.name)
    return model


def inception_features(extractor: Any, images: np.ndarray, *, batch_size: int = _BATCH) -> np.ndarray:
    """Features of grayscale images under InceptionV3's own preprocessing.

    Args:
        extractor: A model from :func:`build_inception_extractor`.
        images: ``(n, h, w)`` grayscale, uint8 (scaled by 1/255) or float in [0, 1]; any size.
        batch_size: Images per call.

    Returns:
        float64 ``(n, features)``.

    Raises:
        ValueError: The images are not ``(n, h, w)``, or ``batch_size`` < 1.
    """
    from cxrcore.models.transfer import get_backbone
    from cxrcore.synthesis.images import resize_images

    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images must be (n, h, w) grayscale. Received: images.shape={images.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    size = int(extractor.input_shape[1])
    width = int(extractor.output_shape[-1])
    if len(images) == 0:
        return np.zeros((0, width), dtype=np.float64)
    preprocess = get_backbone("inceptionv3").preprocess_input
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    out = np.empty((len(images), width), dtype=np.float64)
    for start in range(0, len(images), batch_size):
        batch = np.clip(resize_images(images[start : start + batch_size], size) / scale, 0.0, 1.0) * 255.0
        rgb = np.repeat(batch[..., np.newaxis], 3, axis=-1).astype(np.float32)
        out[start : start + len(batch)] = np.asarray(extractor(preprocess(rgb), training=False), dtype=np.float64)
    return out


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two feature sets: ``|mu_a - mu_b|^2 + Tr(S_a) + Tr(S_b) - 2 Tr((S_a S_b)^(1/2))``.

    The sample covariances ``S = C^T C / (n - 1)`` of the centred features ``C`` (``np.cov``). Instead of a
    ``d x d`` matrix square root (``scipy.linalg.sqrtm``, cubic in d = 2048 and complex-valued on the singular
    covariances of fewer than d images), the trace term is computed exactly and in real arithmetic:
    ``Tr((S_a S_b)^(1/2))`` is the sum of the singular values of ``C_a C_b^T / sqrt((n_a - 1)(n_b - 1))`` (the
    eigenvalues of ``S_a S_b`` are the squared singular values of that matrix), and ``C = Q R`` turns it into the
    singular values of the small ``R_a R_b^T``.

    Args:
        features_a: ``(n_a, d)``, ``n_a >= 2``.
        features_b: ``(n_b, d)``, ``n_b >= 2``.

    Returns:
        The distance (>= 0; 0 for identical sets).

    Raises:
        ValueError: Bad shapes, fewer than 2 rows, or non-finite features.
    """
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (n, d) with one d. Received: shapes {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"FID needs at least 2 rows per set. Received: rows {len(a)} and {len(b)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("features must be finite. Received: NaN or inf in the features")
    centred_a, centred_b = a - a.mean(axis=0), b - b.mean(axis=0)
    scale_a, scale_b = len(a) - 1.0, len(b) - 1.0
    r_a = np.linalg.qr(centred_a, mode="r")
    r_b = np.linalg.qr(centred_b, mode="r")
    trace_root = float(np.linalg.svd(r_a @ r_b.T, compute_uv=False).sum()) / math.sqrt(scale_a * scale_b)
    difference = a.mean(axis=0) - b.mean(axis=0)
    value = (
        float(difference @ difference)
        + float(np.sum(centred_a * centred_a)) / scale_a
        + float(np.sum(centred_b * centred_b)) / scale_b
        - 2.0 * trace_root
    )
    return max(value, 0.0)


def inception_quality(
    extractor: Any,
    *,
    kept: np.ndarray,
    generated: np.ndarray,
    real: np.ndarray,
    name: str,
    description: str,
    seed: int,
) -> dict[str, Any]:
    """KID and FID of the kept and of all generated images against the real ones, on InceptionV3 features.

    Args:
        extractor: A model from :func:`build_inception_extractor`.
        kept: ``(k, h, w)`` kept synthetic images (uint8 or [0, 1]).
        generated: ``(g, h, w)`` generated images (all, or a sample of them).
        real: ``(r, h, w)`` real training images of the class.
        name: The extractor's name as recorded (:data:`INCEPTION_EXTRACTOR_NAME`, or one naming the weights).
        description: The extractor in words.
        seed: Seed of KID's subset draws.

    Returns:
        JSON-ready dict: status ``measured``, extractor, description, the counts, ``kept`` and ``all_generated``
        (each ``{"kid", "kid_std", "fid", ...}``); FID is ``None`` with fewer than 2 images.
    """
    real_features = inception_features(extractor, real)
    result: dict[str, Any] = {
        "status": "measured",
        "extractor": name,
        "extractor_description": description,
        "input_size": int(extractor.input_shape[1]),
        "num_real": int(len(real)),
        "note": "FID is biased upward at small counts: compare FIDs of equal counts only",
    }
    for key, images in (("kept", kept), ("all_generated", generated)):
        entry = feature_scores(inception_features(extractor, images), real_features, seed=seed)
        entry["num_images"] = int(len(images))
        result[key] = entry
    return result


def feature_scores(features: np.ndarray, real_features: np.ndarray, *, seed: int) -> dict[str, Any]:
    """KID (:func:`cxrcore.synthesis.kid.kernel_inception_distance`, with its ``kid_std`` and subset counts) and
    FID of one feature set against the real one; ``fid`` is ``None`` when either set has fewer than 2 rows or a
    non-finite value (a diverged generator's NaN images: measured and flagged through the KID, not a crash)."""
    entry = kernel_inception_distance(features, real_features, seed=seed)
    usable = all(len(rows) >= 2 and np.isfinite(rows).all() for rows in (features, real_features))
    entry["fid"] = frechet_distance(features, real_features) if usable else None
    return entry
