"""Which generated images a synthetic set keeps: the latent stream and the selection strategies (pure numpy).

Every strategy keeps ``k = max(1, round(keep_fraction * n))`` of the ``n`` generated images
(docs/architecture.md#synthetic-selection): ``last-fraction`` (the paper's "approximately the last 7%", read
literally with one trained generator), ``discriminator`` (highest realism logit), ``confidence`` (a classifier's
probability of the intended class) and ``diversity`` (greedy k-center, seeded with the highest logit). Arrays in,
arrays out; no TensorFlow, no I/O.
"""

from __future__ import annotations

import numpy as np

from cxrcore.vocab import CLASS_NAMES, SELECTION_STRATEGIES

__all__ = [
    "SELECTION_STRATEGIES",
    "intended_class_confidence",
    "keep_count",
    "latent_vectors",
    "select_diversity",
    "select_indices",
    "select_last_fraction",
    "select_top_scores",
]


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

    Drawn once, so generation index ``i`` always gets the same latent whatever the batch size is.

    Args:
        num_images: Rows to draw.
        latent_dim: Generator input size.
        seed: Run seed.
        label: Class label (0 NORMAL, 1 PNEUMONIA), so the two classes draw independent streams.

    Returns:
        float32 ``(num_images, latent_dim)`` standard normal values from ``default_rng([seed, label])``.

    Raises:
        ValueError: On a negative count or a latent size below 1.
    """
    if num_images < 0 or latent_dim < 1:
        raise ValueError(
            f"num_images must be >= 0 and latent_dim >= 1. Received: num_images={num_images}, latent_dim={latent_dim}"
        )
    rng = np.random.default_rng([int(seed), int(label)])
    return rng.standard_normal((num_images, latent_dim)).astype(np.float32)


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

    Raises:
        ValueError: ``k`` out of range or a non-finite score.
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

    Raises:
        ValueError: Features not 2-D, ``k`` out of range or ``start`` not a row.
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
    """The classifier's confidence in the intended class: ``p`` for PNEUMONIA, ``1 - p`` for NORMAL.

    Args:
        probability_pneumonia: ``(n,)`` P(PNEUMONIA) of the candidates.
        class_name: The class the images were generated for.

    Returns:
        float64 ``(n,)`` confidence in ``class_name``.

    Raises:
        ValueError: Unknown class name.
    """
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


def _check_k(k: int, num_images: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= num_images:
        raise ValueError(f"k must be an integer in [1, {num_images}]. Received: k={k!r}")
