"""tf.data input from dataset shards: decoded once at import, resized once here, then shuffle/batch/prefetch.

Model contract (see ``cxrcore.models``): every classifier takes raw ``[0, 255]`` float pixels with 3 channels and
carries its own preprocessing inside the model, so one pipeline feeds every backbone correctly. The GAN wants
``[0, 1]`` (``scale="unit"``). A ``preprocess`` hook is still available for callers with other needs.

Determinism: shuffling and augmentation draw from ``seed`` only (stateless ops keyed by a seeded
``tf.data.Dataset.random`` stream), so two runs with the same seed see the same batches in the same order.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import os
from collections.abc import Callable
from typing import Literal

import numpy as np
import tensorflow as tf
from PIL import Image

__all__ = ["AugmentConfig", "make_dataset", "resize_images"]

_RESIZE_CHUNK = 256


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Mild, anatomy-preserving augmentation (no flips: the heart is on one side of a PA film).

    Attributes:
        max_shift: Largest translation as a fraction of the image size.
        max_zoom: Largest zoom-in as a fraction (random crop of a padded image, resized back).
        max_brightness: Largest brightness change, in [0, 1] pixel units.
        contrast_range: (lower, upper) contrast factor.
    """

    max_shift: float = 0.05
    max_zoom: float = 0.1
    max_brightness: float = 0.08
    contrast_range: tuple[float, float] = (0.85, 1.15)

    def __post_init__(self) -> None:
        for name in ("max_shift", "max_zoom", "max_brightness"):
            value = getattr(self, name)
            if not 0.0 <= value < 0.5:
                raise ValueError(f"{name} must be in [0, 0.5). Received: {name}={value}")
        low, high = self.contrast_range
        if not 0.0 < low <= high:
            raise ValueError(f"contrast_range must satisfy 0 < low <= high. Received: contrast_range={self.contrast_range}")


def resize_images(images: np.ndarray, image_size: int) -> np.ndarray:
    """Resizes uint8 ``(n, h, w)`` grayscale images to ``(n, image_size, image_size)`` uint8, once.

    Pillow's bilinear filter (antialiased when shrinking) in a few threads: Pillow releases the GIL, and this is
    4x faster on CPU than ``tf.image.resize(antialias=True)`` over the same array (bench/input_pipeline.py).
    """
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (n, h, w). Received: shape={images.shape}, dtype={images.dtype}")
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8. Received: image_size={image_size}")
    if images.shape[1:] == (image_size, image_size):
        return images
    out = np.empty((len(images), image_size, image_size), dtype=np.uint8)

    def resize_block(start: int) -> None:
        for index in range(start, min(start + _RESIZE_CHUNK, len(images))):
            resized = Image.fromarray(images[index]).resize((image_size, image_size), Image.Resampling.BILINEAR)
            out[index] = np.asarray(resized)

    workers = max(1, min(4, os.cpu_count() or 1))
    with cf.ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(resize_block, range(0, len(images), _RESIZE_CHUNK)))
    return out


def _augment(image: tf.Tensor, seeds: tf.Tensor, config: AugmentConfig, image_size: int) -> tf.Tensor:
    """Stateless augmentation of one ``(s, s, 1)`` float image in [0, 255]."""
    seed_a, seed_b, seed_c, seed_d = (tf.stack([seeds[0], seeds[1] + k]) for k in range(4))
    pad = int(round(image_size * (config.max_shift + config.max_zoom)))
    if pad > 0:
        padded = tf.pad(image[None], [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")[0]
        zoom = tf.random.stateless_uniform([], seed_a, 1.0 - config.max_zoom, 1.0)
        crop = tf.cast(tf.round(zoom * image_size), tf.int32)
        image = tf.image.stateless_random_crop(padded, tf.stack([crop, crop, 1]), seed_b)
        image = tf.image.resize(image, (image_size, image_size))
    image = image / 255.0
    if config.max_brightness > 0:
        image = tf.image.stateless_random_brightness(image, config.max_brightness, seed_c)
    low, high = config.contrast_range
    if high > low:
        image = tf.image.stateless_random_contrast(image, low, high, seed_d)
    return tf.clip_by_value(image, 0.0, 1.0) * 255.0


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    image_size: int,
    batch_size: int,
    channels: int = 3,
    shuffle: bool = False,
    seed: int = 0,
    augment: AugmentConfig | bool = False,
    scale: Literal["raw", "unit"] = "raw",
    preprocess: Callable[[tf.Tensor], tf.Tensor] | None = None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Builds a batched, prefetched ``tf.data.Dataset`` of ``(images, labels)`` (or images alone).

    Args:
        images: uint8 ``(n, h, w)`` grayscale images (as loaded from shards).
        labels: Optional ``(n,)`` labels (0 NORMAL, 1 PNEUMONIA).
        image_size: Model input size; images are resized once, before batching.
        batch_size: Batch size.
        channels: 1 or 3 (grayscale repeated: X-rays fed to ImageNet backbones).
        shuffle: Reshuffle every epoch (seeded).
        seed: Seed of shuffling and augmentation.
        augment: ``True`` for :class:`AugmentConfig` defaults, or a config; ``False`` for none.
        scale: ``raw`` keeps [0, 255] (classifiers); ``unit`` gives [0, 1] (the GAN).
        preprocess: Optional function applied to each float batch last (after scaling).
        drop_remainder: Drop a last partial batch (the GAN needs fixed batch shapes on several GPUs).

    Returns:
        A dataset yielding float32 ``(batch, image_size, image_size, channels)`` (and float32 labels).
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3. Received: channels={channels}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    if scale not in ("raw", "unit"):
        raise ValueError(f"scale must be 'raw' or 'unit'. Received: scale={scale!r}")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"labels must align with images. Received: len(labels)={len(labels)}, len(images)={len(images)}")
    if len(images) == 0:
        raise ValueError("make_dataset needs at least one image. Received: len(images)=0")
    config = AugmentConfig() if augment is True else (augment or None)
    pixels = resize_images(images, image_size)[..., None]

    tensors = (pixels,) if labels is None else (pixels, np.asarray(labels, dtype=np.float32))
    dataset = tf.data.Dataset.from_tensor_slices(tensors)
    if shuffle:
        dataset = dataset.shuffle(len(pixels), seed=seed, reshuffle_each_iteration=True)

    def to_float(image, *rest):
        return (tf.cast(image, tf.float32), *rest)

    dataset = dataset.map(to_float, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if config is not None:
        randoms = tf.data.Dataset.random(seed=seed).batch(2)
        dataset = tf.data.Dataset.zip((dataset, randoms)).map(
            lambda element, seeds: (_augment(element[0], seeds, config, image_size), *element[1:]),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)

    def finish(batch, *rest):
        if channels == 3:
            batch = tf.repeat(batch, 3, axis=-1)
        if scale == "unit":
            batch = batch / 255.0
        if preprocess is not None:
            batch = preprocess(batch)
        return batch if not rest else (batch, *rest)

    dataset = dataset.map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.deterministic = True
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
