"""The models of the synthesis step at work: generate and score every candidate, and a classifier's confidence.

Generation (docs/architecture.md#synthetic-selection): the committed generator (sigmoid output in [0, 1]) turns
each latent into an image; the committed discriminator scores each raw generated image (logit of "real", the
input it was trained on); the image becomes grayscale (the mean of its channels: the stored dataset format is
8-bit grayscale) and is upsampled to ``output_size`` as :data:`cxrcore.synthesis.images.UPSAMPLING` says.
Batched: TensorFlow runs on the GPU when there is one.

The ``confidence`` strategy scores the published uint8 pixels with :func:`cxrcore.inference.predict_pixels`,
the inference path that training, evaluation and promotion use, so a classifier sees the same pixels here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from cxrcore.inference import predict_pixels
from cxrcore.logging import progress
from cxrcore.synthesis.images import to_grayscale, upsample_to_uint8
from cxrcore.synthesis.selection import intended_class_confidence

__all__ = ["Candidates", "candidate_confidence", "generate"]


@dataclasses.dataclass
class Candidates:
    """Every generated image of a run, in generation order.

    Attributes:
        gray: float32 ``(n, g, g)`` grayscale in [0, 1] at the GAN size.
        final: uint8 ``(n, output_size, output_size)``: the images as they would be published.
        discriminator_logits: float64 ``(n,)`` realism logits of the raw generated images.
    """

    gray: np.ndarray
    final: np.ndarray
    discriminator_logits: np.ndarray


def generate(
    generator, discriminator, latents: np.ndarray, output_size: int, batch_size: int, logger: Any
) -> Candidates:
    """Generates, scores, converts and upsamples in batches (no I/O; progress goes to ``logger``).

    Args:
        generator: The committed generator (latent -> ``(g, g, c)`` in [0, 1]).
        discriminator: The committed discriminator (image -> realism logit).
        latents: ``(n, latent_dim)``: row ``i`` is the latent of generation index ``i``.
        output_size: Side of the published images.
        batch_size: Latents per forward pass.
        logger: Receives ``synthesize_generate`` progress events.

    Returns:
        The :class:`Candidates`.
    """
    grays, finals, logits = [], [], []
    starts = range(0, len(latents), batch_size)
    for start in progress(starts, total=len(starts), event="synthesize_generate", logger=logger):
        images = np.asarray(generator(latents[start : start + batch_size], training=False), dtype=np.float32)
        logits.append(np.asarray(discriminator(images, training=False), dtype=np.float64).reshape(-1))
        gray = to_grayscale(images)
        grays.append(gray)
        finals.append(upsample_to_uint8(gray, output_size))
    return Candidates(np.concatenate(grays), np.concatenate(finals), np.concatenate(logits))


def candidate_confidence(classifier, images: np.ndarray, class_name: str, batch_size: int) -> np.ndarray:
    """A classifier's confidence in the intended class for each candidate, through :func:`predict_pixels`.

    Args:
        classifier: A classifier taking raw ``[0, 255]`` pixels and giving a sigmoid P(PNEUMONIA).
        images: uint8 ``(n, h, w)`` candidates (resized to the classifier's input like every scored image).
        class_name: The class the images were generated for.
        batch_size: Images per forward pass.

    Returns:
        float64 ``(n,)``: P(PNEUMONIA) for PNEUMONIA, ``1 - P`` for NORMAL.

    Raises:
        ValueError: The classifier does not take ``(h, w, 1|3)`` square images or does not give one probability
            per image.
    """
    return intended_class_confidence(predict_pixels(classifier, images, batch_size=batch_size), class_name)
