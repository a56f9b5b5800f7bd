"""Is a GAN drawing X-rays? Sample statistics, KID and a two-sample test on a fixed set (pure numpy/sklearn).

See docs/architecture.md#gan-quality. ``cxr-gan-train`` measures its generator every ``quality_every`` steps on
one fixed noise batch against one fixed sample of the class's real training images, and ``cxr-synthesize``
measures the kept images the same way. Four families of numbers:

* **Sample statistics**: mean pixel, mean per-image standard deviation (``image_std``: a blank or uniform image
  has ~0) and the mean per-pixel standard deviation across samples (``sample_std``: ~0 when every sample is the
  same image, i.e. mode collapse).
* **KID** on the offline :data:`cxrcore.synthesis.kid.FEATURE_EXTRACTOR_NAME` features (lower is better).
* **Two-sample test**: the 5-fold cross-validated accuracy of a logistic regression that tells generated from
  real 16x16 thumbnails (:func:`two_sample_accuracy`); 0.5 means indistinguishable at that scale, 1.0 means
  trivially separable.
* **Repeated detail**: the share of the images' fine detail that is the same in every image
  (:func:`repeated_detail_share`), next to the real images' own share: a generator that draws the same rib cage
  in every sample has a share far above the real one even when its samples differ in outline and exposure.

:func:`judge` turns a trajectory of such measurements into ``{"status": "ok" | "flagged", "reasons": [...]}``:
a GAN whose samples are near-constant (blank, uniform or collapsed), whose KID never improved, or whose final KID
rose far above its best earlier one (a late breakdown) is flagged, and
``cxr-synthesize`` then refuses its images unless told to use them (``flagged_gan=use``), which the report says.
:func:`choose_published` picks which measured generator is published (the last, the lowest-KID one, or the last
unless it broke down); the verdict is then taken on the trajectory up to that one.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from cxrcore.synthesis.images import resize_images, to_grayscale
from cxrcore.synthesis.kid import (
    FEATURE_EXTRACTOR_NAME,
    kernel_inception_distance,
    pixel_statistics_features,
)
from cxrcore.vocab import GAN_PUBLISH_RULES

__all__ = [
    "QUALITY_THRESHOLDS",
    "THUMBNAIL_SIZE",
    "QualityProbe",
    "QualityThresholds",
    "best_measurement",
    "breakdown_reason",
    "choose_published",
    "judge",
    "repeated_detail_share",
    "sample_statistics",
    "two_sample_accuracy",
]

#: Side of the thumbnails of the two-sample test.
THUMBNAIL_SIZE = 16
_FOLDS = 5
#: Std of the blur that :func:`repeated_detail_share` subtracts, as a fraction of the image side (2 px at 64 px).
DETAIL_BLUR_FRACTION = 1.0 / 32.0


@dataclasses.dataclass(frozen=True)
class QualityThresholds:
    """Where a GAN counts as failed.

    Attributes:
        min_image_std: Mean per-image pixel standard deviation below which samples are blank or uniform.
        min_sample_std: Mean per-pixel standard deviation across samples below which they are one image.
        min_kid_improvement: Share by which the final KID must undercut the first measurement (two or more).
        max_kid_regression: Factor by which the final KID may exceed the best earlier KID: beyond it (and beyond
            ``kid_regression_margin``) the GAN broke down late in training, which the first-vs-last check misses.
        kid_regression_margin: Absolute KID rise that counts as a breakdown at all, above the estimate's noise
            when the best KID is near 0.
    """

    min_image_std: float = 0.02
    min_sample_std: float = 0.01
    min_kid_improvement: float = 0.1
    max_kid_regression: float = 2.0
    kid_regression_margin: float = 0.05


#: The thresholds ``cxr-gan-train`` applies (recorded in ``gan.json``).
QUALITY_THRESHOLDS = QualityThresholds()


def _gray_unit(images: np.ndarray) -> np.ndarray:
    """``(n, h, w[, c])`` uint8 or float images as float32 ``(n, h, w)`` in [0, 1] (channels averaged)."""
    images = np.asarray(images)
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    return np.clip(to_grayscale(images) / scale, 0.0, 1.0)


def sample_statistics(images: np.ndarray) -> dict[str, float]:
    """Mean pixel, mean per-image std and mean per-pixel std across samples, of images in [0, 1] (or uint8)."""
    gray = _gray_unit(images)
    if len(gray) == 0:
        raise ValueError("sample_statistics needs at least one image. Received: images.shape=(0, ...)")
    return {
        "mean": round(float(gray.mean()), 4),
        "image_std": round(float(gray.std(axis=(1, 2)).mean()), 4),
        "sample_std": round(float(gray.std(axis=0).mean()), 4) if len(gray) > 1 else 0.0,
    }


def repeated_detail_share(images: np.ndarray, *, size: int | None = None) -> float | None:
    """The share of the images' fine detail that is the same in every image (0: none repeats, 1: all of it).

    The detail is each image minus its Gaussian blur (std :data:`DETAIL_BLUR_FRACTION` of the side: ribs,
    vessels, edges). Per pixel, the detail splits into its mean over the images (what every image repeats) and
    the spread around it. The share is the energy of the mean over the total, with the mean's energy corrected for
    the finite number of images (``mean**2 - variance / n``), so it does not grow as sets shrink: independent
    images score ~0 whatever ``n`` is, identical images 1. Real X-rays of one class repeat some detail (the
    anatomy sits in roughly the same place); compare a generator's share with the real images' share.

    Args:
        images: ``(n, h, w[, c])`` uint8 or float images in [0, 1].
        size: Side to measure at (area resize) when given: sets of different resolutions are compared at their
            common one, since detail finer than a set's resolution (an upsampled GAN's) is not there to repeat.

    Returns:
        The share in [0, 1], rounded to 4 places; ``None`` for fewer than 2 images or no detail at all.
    """
    from scipy.ndimage import gaussian_filter

    gray = _gray_unit(images)
    if size is not None:
        gray = resize_images(gray, size, method="area")
    gray = gray.astype(np.float64)
    count = len(gray)
    if count < 2:
        return None
    sigma = DETAIL_BLUR_FRACTION * gray.shape[1]
    detail = gray - gaussian_filter(gray, sigma=(0.0, sigma, sigma), mode="reflect")
    variance = detail.var(axis=0, ddof=1)
    fixed = float(np.sum(detail.mean(axis=0) ** 2 - variance / count))
    spread = float(np.sum(variance))
    total = max(fixed, 0.0) + spread
    if total <= 1e-12:
        return None
    return round(min(max(fixed, 0.0) / total, 1.0), 4)


def _thumbnails(gray: np.ndarray) -> np.ndarray:
    return resize_images(gray, THUMBNAIL_SIZE, method="area").reshape(len(gray), -1).astype(np.float64)


def two_sample_accuracy(real: np.ndarray, generated: np.ndarray, *, seed: int = 0) -> float | None:
    """Cross-validated accuracy of a logistic regression telling generated from real 16x16 thumbnails.

    Both sets are cut to the smaller one's size (balanced classes, so 0.5 is chance). Thumbnails are area
    averages in [0, 1], standardised per pixel inside each fold.

    Args:
        real: Real images, ``(n, h, w[, c])`` uint8 or float in [0, 1].
        generated: Generated images, same conventions.
        seed: Seed of the subsampling and the fold shuffling.

    Returns:
        The mean accuracy over 5 stratified folds, or ``None`` when either set has fewer than 5 images.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    real_gray, generated_gray = _gray_unit(real), _gray_unit(generated)
    count = min(len(real_gray), len(generated_gray))
    if count < _FOLDS:
        return None
    rng = np.random.default_rng(seed)
    real_rows = _thumbnails(real_gray[rng.choice(len(real_gray), count, replace=False)])
    generated_rows = _thumbnails(generated_gray[rng.choice(len(generated_gray), count, replace=False)])
    features = np.concatenate([real_rows, generated_rows])
    labels = np.r_[np.ones(count), np.zeros(count)]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = StratifiedKFold(n_splits=_FOLDS, shuffle=True, random_state=seed)
    return round(float(cross_val_score(model, features, labels, cv=folds).mean()), 4)


class QualityProbe:
    """A fixed reference for measuring one GAN over its training: real features and thumbnails computed once.

    Args:
        real: The class's real training images, ``(n, h, w[, c])`` uint8 or float in [0, 1].
        reference_size: Real images kept as the reference (drawn with ``seed``).
        seed: Seed of the draw, the KID subsets and the two-sample folds.
        inception: InceptionV3 network (:func:`cxrcore.synthesis.inception.build_inception_extractor`) that also
            scores every measurement (``inception_kid``, ``inception_fid``); ``None``: the offline KID only.
        inception_name: Its recorded name.
    """

    def __init__(
        self,
        real: np.ndarray,
        *,
        reference_size: int = 256,
        seed: int = 0,
        inception: Any = None,
        inception_name: str = "",
    ) -> None:
        if reference_size < 2:
            raise ValueError(f"`reference_size` must be >= 2. Received: reference_size={reference_size}")
        gray = _gray_unit(real)
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(len(gray), min(reference_size, len(gray)), replace=False))
        self.real = gray[chosen]
        self.seed = seed
        self.real_features = pixel_statistics_features(self.real)
        self.real_repeated_detail_share = repeated_detail_share(self.real)
        self.inception = inception
        self.inception_name = inception_name
        if inception is not None:
            from cxrcore.synthesis.inception import inception_features

            self.real_inception_features = inception_features(inception, self.real)

    def measure(self, generated: np.ndarray) -> dict[str, Any]:
        """Sample statistics, KID, two-sample accuracy and repeated detail of ``generated`` against the reference
        (and InceptionV3 KID and FID with an ``inception`` network)."""
        gray = _gray_unit(generated)
        kid = kernel_inception_distance(pixel_statistics_features(gray), self.real_features, seed=self.seed)
        row = {
            **sample_statistics(gray),
            "kid": None if kid["kid"] is None else round(float(kid["kid"]), 5),
            "two_sample_accuracy": two_sample_accuracy(self.real, gray, seed=self.seed),
            "repeated_detail_share": repeated_detail_share(gray),
            "real_repeated_detail_share": self.real_repeated_detail_share,
            "images": len(gray),
            "reference_images": len(self.real),
            "extractor": FEATURE_EXTRACTOR_NAME,
        }
        if self.inception is not None:
            row.update(self._inception_scores(gray))
        return row

    def _inception_scores(self, gray: np.ndarray) -> dict[str, Any]:
        from cxrcore.synthesis.inception import feature_scores, inception_features

        scores = feature_scores(inception_features(self.inception, gray), self.real_inception_features, seed=self.seed)
        kid, fid = scores["kid"], scores["fid"]
        return {
            "inception_kid": None if kid is None or not math.isfinite(kid) else round(float(kid), 5),
            "inception_fid": None if fid is None else round(float(fid), 3),
            "inception_extractor": self.inception_name,
        }


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def breakdown_reason(
    trajectory: list[dict[str, Any]], thresholds: QualityThresholds = QUALITY_THRESHOLDS
) -> str | None:
    """Why the last measured generator broke down late, or ``None`` when it did not.

    A breakdown is a final KID more than ``max_kid_regression`` times the best earlier KID and more than
    ``kid_regression_margin`` above it, or a final KID that is not a number (rows without a KID are skipped; fewer
    than two scored rows never break down).

    Args:
        trajectory: :meth:`QualityProbe.measure` rows, each with a ``step``, oldest first.
        thresholds: Where a GAN counts as failed.
    """
    scored = [row for row in trajectory if row.get("kid") is not None]
    earlier = [row for row in scored[:-1] if math.isfinite(row["kid"])]
    if not earlier:
        return None
    last = scored[-1]["kid"]
    best = min(earlier, key=lambda row: row["kid"])
    if not math.isfinite(last):
        return f"broke down: KID {last} at step {scored[-1]['step']} vs {best['kid']:.4f} at step {best['step']}"
    if last - best["kid"] > thresholds.kid_regression_margin and last > thresholds.max_kid_regression * best["kid"]:
        return (
            f"broke down: KID {last:.4f} at step {scored[-1]['step']} vs {best['kid']:.4f} at step "
            f"{best['step']} (more than {thresholds.max_kid_regression:g}x the best and "
            f"{thresholds.kid_regression_margin:g} higher)"
        )
    return None


def best_measurement(trajectory: list[dict[str, Any]]) -> int | None:
    """Index of the trained generator with the lowest finite KID (the earliest on a tie), or ``None`` without one.

    The step-0 row (the untrained generator) is never a candidate.
    """
    candidates = [index for index, row in enumerate(trajectory) if row["step"] > 0 and _finite(row.get("kid"))]
    if not candidates:
        return None
    return min(candidates, key=lambda index: trajectory[index]["kid"])


def choose_published(
    trajectory: list[dict[str, Any]], rule: str, thresholds: QualityThresholds = QUALITY_THRESHOLDS
) -> dict[str, Any]:
    """Which measured generator ``cxr-gan-train`` publishes under ``rule`` (:data:`cxrcore.vocab.GAN_PUBLISH_RULES`).

    * ``last``: the generator after the last step (the paper's).
    * ``best``: the trained generator with the lowest KID (Keras' ``restore_best_weights``, monitored on KID).
    * ``guarded``: the last one, unless it broke down late (:func:`breakdown_reason`); then the lowest-KID one.

    Args:
        trajectory: :meth:`QualityProbe.measure` rows with ``step`` and ``epoch``, oldest first; the last row
            measures the generator after the last step.
        rule: One of ``last``, ``best``, ``guarded``.
        thresholds: Where a GAN counts as broken down.

    Returns:
        ``{"rule", "index", "step", "epoch", "kid", "last_step", "last_kid", "replaced_last", "reason"}``: the
        chosen row's index in ``trajectory`` and its step, epoch and KID; ``reason`` says why another row than the
        last was chosen (``None`` when the last was).

    Raises:
        ValueError: An empty trajectory or an unknown rule.
    """
    if rule not in GAN_PUBLISH_RULES:
        raise ValueError(f"rule must be one of {', '.join(GAN_PUBLISH_RULES)}. Received: rule={rule!r}")
    if not trajectory:
        raise ValueError("choose_published needs at least one quality measurement. Received: trajectory=[]")
    last_index = len(trajectory) - 1
    index, reason = last_index, None
    best = best_measurement(trajectory)
    if best is not None and best != last_index:
        if rule == "best":
            index = best
            reason = f"lowest KID of the trained generators (the last, step {trajectory[-1]['step']}, had " + (
                "none)" if trajectory[-1].get("kid") is None else f"{trajectory[-1]['kid']:.4f})"
            )
        elif rule == "guarded" and (broke_down := breakdown_reason(trajectory, thresholds)) is not None:
            index = best
            reason = f"the last generator {broke_down}; published the lowest-KID one before it"
    chosen, last = trajectory[index], trajectory[-1]
    return {
        "rule": rule,
        "index": index,
        "step": chosen["step"],
        "epoch": chosen["epoch"],
        "kid": chosen.get("kid"),
        "last_step": last["step"],
        "last_kid": last.get("kid"),
        "replaced_last": index != last_index,
        "reason": reason,
    }


def judge(trajectory: list[dict[str, Any]], thresholds: QualityThresholds = QUALITY_THRESHOLDS) -> dict[str, Any]:
    """Flags a GAN from its quality trajectory (oldest first; the last row is the published generator).

    Args:
        trajectory: :meth:`QualityProbe.measure` rows, each with a ``step``.
        thresholds: Where a GAN counts as failed.

    Returns:
        ``{"status": "ok" | "flagged", "reasons": [str, ...], "thresholds": {...}}``.

    Raises:
        ValueError: An empty trajectory.
    """
    if not trajectory:
        raise ValueError("judge needs at least one quality measurement. Received: trajectory=[]")
    final = trajectory[-1]
    reasons = []
    if final["image_std"] < thresholds.min_image_std:
        reasons.append(
            f"near-constant samples: mean per-image std {final['image_std']:.4f} < {thresholds.min_image_std} "
            f"(mean pixel {final['mean']:.3f}; blank or uniform images)"
        )
    if final["sample_std"] < thresholds.min_sample_std:
        reasons.append(
            f"collapsed: std across samples {final['sample_std']:.4f} < {thresholds.min_sample_std} "
            "(every sample is nearly the same image)"
        )
    scored = [row for row in trajectory if row.get("kid") is not None]
    if len(scored) >= 2:
        first, last = scored[0]["kid"], scored[-1]["kid"]
        # KID is an unbiased estimate and can be slightly negative: the margin is taken on its magnitude.
        if not last < first - thresholds.min_kid_improvement * abs(first):
            reasons.append(
                f"KID never improved: {last:.4f} at step {final['step']} vs {first:.4f} at step "
                f"{trajectory[0]['step']} (needs {thresholds.min_kid_improvement:.0%} lower)"
            )
        broke_down = breakdown_reason(scored, thresholds)
        if broke_down is not None:
            reasons.append(broke_down)
    return {
        "status": "flagged" if reasons else "ok",
        "reasons": reasons,
        "thresholds": dataclasses.asdict(thresholds),
    }
