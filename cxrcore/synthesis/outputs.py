"""What ``cxr-synthesize`` publishes besides its dataset, built from arrays (no I/O): records, candidates, samples.

Output (committed under ``runs/<run_id>/synthetic/<CLASS>/``, readable with
:func:`cxrcore.data.dataset.load_prefix`; docs/architecture.md#store-layout)::

    manifest.csv        one row per kept image (dataset format; source "synthetic", split "train",
                        one pseudo-patient per run and class so a patient split never puts one in test)
    dataset.json        image_size, counts, synthetic=true, run_id, class, gan digest, source dataset
    shards/shard-00000.npy
                        (the manifest, dataset.json and shards are written by cxrcore.data.writer.DatasetWriter)
    selection.json      strategy, kept ids/generation indices/scores, memorization report, KID, timings
    candidates.csv      every generated image: generation index, discriminator logit, confidence, rank
    samples.png         left: kept synthetic images, right: real training images of the class
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cxrcore.config import SynthesizeSettings
from cxrcore.data.images import encode_png
from cxrcore.storage import sha256_bytes
from cxrcore.synthesis.images import UPSAMPLING, quantize, resize_images

__all__ = [
    "SAMPLE_TILES",
    "SHARD_SIZE",
    "SYNTHESIZE_FORMAT",
    "candidates_csv",
    "image_ids",
    "kept_rows",
    "samples_png",
    "samples_record",
    "selection_record",
    "summary",
]

#: Version of the synthesis algorithm and output format; part of the idempotency inputs. 2: ``quality.inception``
#: (InceptionV3 KID/FID, or why not measured) and the ``inception`` input.
SYNTHESIZE_FORMAT = 2
#: Images per ``shards/shard-NNNNN.npy`` of a synthetic output.
SHARD_SIZE = 1024
#: Synthetic (and real) images shown in ``samples.png``.
SAMPLE_TILES = 32
_SAMPLE_COLUMNS = 8
_SAMPLE_MAX_TILE = 128


def image_ids(images: np.ndarray) -> list[str]:
    """The dataset ``image_id`` of each uint8 image: the first 16 hex digits of its PNG's sha256."""
    return [sha256_bytes(encode_png(image))[:16] for image in images]


def kept_rows(
    selected: np.ndarray,
    positions: np.ndarray,
    ids: Sequence[str],
    logits: np.ndarray,
    confidence: np.ndarray | None,
    memorization: dict[str, Any],
) -> list[dict[str, Any]]:
    """One ``selection.json`` ``kept`` entry per published image, in rank order.

    Args:
        selected: Generation indices of the selected images, in rank order.
        positions: Positions (in ``selected``) of the published ones.
        ids: Image ids of the selected images.
        logits: Discriminator logits of every generated image.
        confidence: Confidence of every generated image in the intended class, or ``None``.
        memorization: The memorization report of the selected images.

    Returns:
        JSON-ready rows.
    """
    rows = []
    for position in positions:
        index = int(selected[position])
        entry = memorization["per_image"][position]
        rows.append(
            {
                "image_id": ids[position],
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


def candidates_csv(logits: np.ndarray, confidence: np.ndarray | None, selected: np.ndarray, kept: np.ndarray) -> bytes:
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


def samples_png(synthetic: np.ndarray, real: np.ndarray) -> bytes:
    """``samples.png``: grid of kept synthetic images (left), an 8 px white band, grid of real images (right)."""
    from cxrcore.models.dcgan import make_grid

    size = min(_SAMPLE_MAX_TILE, synthetic.shape[1])
    left = make_grid(quantize(resize_images(synthetic, size) / 255.0), _SAMPLE_COLUMNS)
    right = make_grid(quantize(resize_images(real, size) / 255.0), _SAMPLE_COLUMNS)
    height = max(left.shape[0], right.shape[0])
    canvas = np.full((height, left.shape[1] + 8 + right.shape[1], 3), 255, dtype=np.uint8)
    canvas[: left.shape[0], : left.shape[1]] = left
    canvas[: right.shape[0], left.shape[1] + 8 :] = right
    return encode_png(canvas)


def samples_record(
    rows: Sequence[dict[str, Any]], num_published: int, real_ids: Sequence[str], class_name: str
) -> dict[str, Any]:
    """The ``samples`` entry of ``selection.json``: what ``samples.png`` shows, left and right."""
    return {
        "file": "samples.png",
        "layout": f"left: the first {min(SAMPLE_TILES, num_published)} kept SYNTHETIC images in rank "
        f"order; right (after a white band): {len(real_ids)} REAL {class_name} training images",
        "synthetic_ids": [row["image_id"] for row in rows[:SAMPLE_TILES]],
        "real_ids": list(real_ids),
    }


def selection_record(
    settings: SynthesizeSettings,
    *,
    label: int,
    num_images: int,
    latent_dim: int,
    num_selected: int,
    num_duplicates: int,
    gan: dict[str, Any],
    dataset: dict[str, Any],
    confidence_model: dict[str, str] | None,
    logits: np.ndarray,
    kept: np.ndarray,
    rows: list[dict[str, Any]],
    memorization: dict[str, Any],
    quality: dict[str, Any],
    samples: dict[str, Any],
) -> dict[str, Any]:
    """``selection.json`` without its ``timings_s`` (the step adds them last, when the write is timed).

    Args:
        settings: The job settings.
        label: The class label (seeds the latent stream).
        num_images: Images generated.
        latent_dim: Generator input size.
        num_selected: Images the strategy selected.
        num_duplicates: Published images whose pixels another published image already has.
        gan: ``prefix``, ``digest``, ``image_size``, ``latent_dim`` and ``epochs`` of the GAN.
        dataset: The real dataset version (name, version, digest).
        confidence_model: ``{"uri", "sha256"}`` of the classifier, or ``None``.
        logits: Discriminator logits of every generated image.
        kept: Generation indices of the published images.
        rows: :func:`kept_rows` of the published images.
        memorization: The memorization report.
        quality: The KID report.
        samples: :func:`samples_record`.

    Returns:
        The JSON-ready record.
    """
    return {
        "format": SYNTHESIZE_FORMAT,
        "run_id": settings.run_id,
        "class": settings.class_name,
        "strategy": settings.selection,
        "paper_strategy": "last-fraction",
        "seed": settings.seed,
        "latent_stream": (
            f"numpy default_rng([{settings.seed}, {label}]).standard_normal(({num_images}, {latent_dim}))"
        ),
        "num_generated": num_images,
        "keep_fraction": settings.keep_fraction,
        "num_selected": int(num_selected),
        "num_kept": len(rows),
        "duplicate_images_kept": int(num_duplicates),
        "upsampling": UPSAMPLING,
        "gan": gan,
        "dataset": dataset,
        "confidence_model": confidence_model,
        "discriminator_logit_mean": {
            "all_generated": float(logits.mean()),
            "kept": float(logits[kept].mean()),
        },
        "kept": rows,
        "memorization": memorization,
        "quality": quality,
        "samples": samples,
    }


def summary(status: str, uri: str, selection: dict[str, Any]) -> dict[str, Any]:
    """The job's result: status, uri, counts, memorized share and KID, from a ``selection.json``."""
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
