"""Differentiable augmentation and instance noise for the DCGAN discriminator (training only, no I/O).

A discriminator trained on a few thousand X-rays memorises them within a few hundred steps: it reaches 100% on
real and generated images and the generator's gradient vanishes (measured on the Kaggle folder: every NORMAL
sample black after 170 steps). Two standard remedies, applied identically to real and generated batches inside
``DCGAN.train_step`` so the generator is trained through them:

* **DiffAugment** (Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training", NeurIPS 2020):
  random brightness, contrast, translation (zero padding, up to 1/8 of the side) and cutout (a square of half the
  side set to 0), each drawn per image. :data:`AUGMENT_POLICIES` names them; the generator never sees augmented
  targets, so its samples are not augmented.
* **Instance noise** (Sonderby et al. 2016): Gaussian noise of a given standard deviation added to every image
  the discriminator sees, annealed linearly to 0 over the step budget by the caller.

Both are plain TensorFlow ops on ``(batch, height, width, channels)`` float images in [0, 1], seeded with
stateless seeds so a run is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from cxrcore.vocab import GAN_AUGMENT_POLICIES

__all__ = ["AUGMENT_POLICIES", "diff_augment", "validate_policies"]

#: The DiffAugment transformations this module implements, in the order they are applied.
AUGMENT_POLICIES = GAN_AUGMENT_POLICIES

_TRANSLATION_RATIO = 0.125
_CUTOUT_RATIO = 0.5


def validate_policies(policies: Sequence[str]) -> tuple[str, ...]:
    """Returns ``policies`` as a tuple in application order.

    Raises:
        ValueError: An unknown policy name.
    """
    unknown = [name for name in policies if name not in AUGMENT_POLICIES]
    if unknown:
        raise ValueError(
            f"Unknown DiffAugment policy {unknown[0]!r}; known: {', '.join(AUGMENT_POLICIES)}. "
            f"Received: policies={list(policies)}"
        )
    return tuple(name for name in AUGMENT_POLICIES if name in policies)


def _brightness(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    shift = tf.random.stateless_uniform((tf.shape(images)[0], 1, 1, 1), seed=seed) - 0.5
    return images + shift * 0.5


def _contrast(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    factor = tf.random.stateless_uniform((tf.shape(images)[0], 1, 1, 1), seed=seed, minval=0.5, maxval=1.5)
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return (images - mean) * factor + mean


def _translation(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Shifts every image by up to 1/8 of its side in each axis, filling with zeros (DiffAugment's ``translation``)."""
    batch = tf.shape(images)[0]
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    max_dy = tf.cast(tf.cast(height, tf.float32) * _TRANSLATION_RATIO + 0.5, tf.int32)
    max_dx = tf.cast(tf.cast(width, tf.float32) * _TRANSLATION_RATIO + 0.5, tf.int32)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    dy = tf.random.stateless_uniform((batch, 1, 1), seed=seeds[0], minval=-max_dy, maxval=max_dy + 1, dtype=tf.int32)
    dx = tf.random.stateless_uniform((batch, 1, 1), seed=seeds[1], minval=-max_dx, maxval=max_dx + 1, dtype=tf.int32)
    rows = tf.range(height)[tf.newaxis, :, tf.newaxis] - dy  # (batch, height, 1): source row of each output row
    cols = tf.range(width)[tf.newaxis, tf.newaxis, :] - dx  # (batch, 1, width)
    rows = tf.broadcast_to(rows, (batch, height, width))
    cols = tf.broadcast_to(cols, (batch, height, width))
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    indices = tf.stack(
        [tf.clip_by_value(rows, 0, height - 1), tf.clip_by_value(cols, 0, width - 1)],
        axis=-1,
    )
    shifted = tf.gather_nd(images, indices, batch_dims=1)
    return shifted * tf.cast(inside, images.dtype)[..., tf.newaxis]


def _cutout(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Zeroes one square of half the side per image, centred anywhere (DiffAugment's ``cutout``)."""
    batch = tf.shape(images)[0]
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    size_y = tf.cast(tf.cast(height, tf.float32) * _CUTOUT_RATIO + 0.5, tf.int32)
    size_x = tf.cast(tf.cast(width, tf.float32) * _CUTOUT_RATIO + 0.5, tf.int32)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    centre_y = tf.random.stateless_uniform(
        (batch, 1, 1), seed=seeds[0], maxval=height + (1 - size_y % 2), dtype=tf.int32
    )
    centre_x = tf.random.stateless_uniform(
        (batch, 1, 1), seed=seeds[1], maxval=width + (1 - size_x % 2), dtype=tf.int32
    )
    rows = tf.range(height)[tf.newaxis, :, tf.newaxis]
    cols = tf.range(width)[tf.newaxis, tf.newaxis, :]
    inside_y = (rows >= centre_y - size_y // 2) & (rows < centre_y - size_y // 2 + size_y)
    inside_x = (cols >= centre_x - size_x // 2) & (cols < centre_x - size_x // 2 + size_x)
    keep = 1.0 - tf.cast(inside_y & inside_x, images.dtype)
    return images * keep[..., tf.newaxis]


_TRANSFORMS: dict[str, Any] = {
    "brightness": _brightness,
    "contrast": _contrast,
    "translation": _translation,
    "cutout": _cutout,
}


def diff_augment(images: tf.Tensor, policies: Sequence[str], seed: tf.Tensor) -> tf.Tensor:
    """Applies the named DiffAugment transformations to a batch, differentiably.

    Args:
        images: ``(batch, height, width, channels)`` float images (nominally in [0, 1]).
        policies: Names from :data:`AUGMENT_POLICIES`; applied in that tuple's order. Empty: returned unchanged.
        seed: A stateless seed, shape ``(2,)`` int32/int64; one seed per transformation is split from it.

    Returns:
        The augmented batch, same shape and dtype. Gradients flow to ``images`` through every transformation.
    """
    policies = validate_policies(policies)
    if not policies:
        return images
    seeds = tf.random.experimental.stateless_split(seed, len(policies))
    for index, name in enumerate(policies):
        images = _TRANSFORMS[name](images, seeds[index])
    return images
