"""Pixel operations of the synthesis step: grayscale, resizing, upsampling, quantisation (arrays in, arrays out).

Generated images are float grayscale in [0, 1] at the GAN size; published images are uint8 at ``output_size``
(docs/architecture.md#synthetic-selection). Resizing is ``tf.image.resize`` (antialiased), batched, imported on
first use: these functions run in the synthesis image, next to the generator.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DIVERSITY_FEATURE_SIZE",
    "UPSAMPLING",
    "diversity_features",
    "quantize",
    "resize_images",
    "to_grayscale",
    "upsample_to_uint8",
]

#: How generated images are brought from the GAN size to ``output_size``.
UPSAMPLING = "tf.image.resize bicubic (Keys a=-0.5, half-pixel centres, antialias=True) on float gray, clip, round"
#: Side of the downsampled images whose pixels are the diversity strategy's feature space.
DIVERSITY_FEATURE_SIZE = 16
_RESIZE_BATCH = 256


def to_grayscale(images: np.ndarray) -> np.ndarray:
    """Mean of the channels of ``(n, h, w, c)`` images (``(n, h, w)`` passes through), as float32.

    Raises:
        ValueError: Neither 3-D nor 4-D.
    """
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

    Raises:
        ValueError: The images are not ``(n, h, w)``.
    """
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images must be (n, h, w). Received: images.shape={images.shape}")
    if images.shape[1:] == (size, size):
        return images.astype(np.float32)
    import tensorflow as tf

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


def quantize(gray: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] (values outside are clipped) as uint8: ``round(255 * x)``."""
    return np.round(np.clip(np.asarray(gray, dtype=np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def diversity_features(images: np.ndarray) -> np.ndarray:
    """The diversity strategy's feature space: images area-downsampled to 16x16, in [0, 1], flattened."""
    small = resize_images(np.asarray(images), DIVERSITY_FEATURE_SIZE, method="area") / 255.0
    return small.reshape(len(small), -1).astype(np.float64)
