"""Which InceptionV3 weights score synthetic images, resolved at a job's edge (docs/architecture.md#gan-quality).

``cxr-gan-train`` (its quality measurements) and ``cxr-synthesize`` (the kept set) take the same ``inception``
setting: ``auto`` scores with Keras' own ImageNet InceptionV3 file when the Keras cache holds it (images built
with ``BAKE_IMAGENET_WEIGHTS=true``) and records why not otherwise, ``imagenet`` requires it, ``off`` never
scores, and anything else is a path or ``s3://`` URI of an InceptionV3 ``include_top=False`` weights file, named by
its sha256. Jobs resolve the setting before their work (a missing file fails first) and build the network
before they use it (:meth:`InceptionScorer.build`: a file of another network fails there, before any image).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cxrcore.inference import fetch_file
from cxrcore.storage import redact_uri, sha256_file
from cxrcore.synthesis.inception import (
    INCEPTION_EXTRACTOR_DESCRIPTION,
    INCEPTION_EXTRACTOR_NAME,
    build_inception_extractor,
)

__all__ = ["InceptionScorer", "InceptionWeightsError", "resolve_inception"]


class InceptionWeightsError(ValueError):
    """The ``inception`` setting names weights that do not exist or are not InceptionV3's (exit 1)."""


@dataclasses.dataclass(frozen=True)
class InceptionScorer:
    """Which InceptionV3 weights score images, or why none do.

    Attributes:
        weights: ``"imagenet"`` (Keras' file, verified in the cache) or a local weights file; ``None``: no scores.
        name: The extractor's recorded name.
        description: The extractor in words.
        record: What a marker's inputs record: the weights and their hash, ``{"weights": "off"}`` or
            ``{"weights": "absent"}`` (``auto`` without the file).
        reason: Why there are no scores (when ``weights`` is ``None``).
        source: The setting as given (redacted), for error messages.
    """

    weights: str | None
    name: str = ""
    description: str = ""
    record: dict[str, str] = dataclasses.field(default_factory=dict)
    reason: str = ""
    source: str = ""

    def skipped(self) -> dict[str, Any]:
        """The record of a job that did not score: ``{"status": "off" | "skipped", "reason": ...}``."""
        status = "off" if self.record.get("weights") == "off" else "skipped"
        return {"status": status, "reason": self.reason}

    def build(self) -> Any:
        """The network (:func:`cxrcore.synthesis.inception.build_inception_extractor`), ``None`` without weights.

        Raises:
            InceptionWeightsError: The file is not InceptionV3's ``include_top=False`` weights (names it).
        """
        if self.weights is None:
            return None
        try:
            return build_inception_extractor(self.weights)
        except ValueError as exc:
            raise InceptionWeightsError(f"Unusable InceptionV3 weights {self.source}: {exc}") from exc


def resolve_inception(choice: str, *, directory: Path, s3: Mapping[str, Any] | None, logger: Any) -> InceptionScorer:
    """Resolves an ``inception`` setting and builds the network it names.

    Args:
        choice: ``auto``, ``imagenet``, ``off``, or a weights file path / ``s3://`` URI.
        directory: Where a downloaded weights file goes.
        s3: Options of the store holding an ``s3://`` file.
        logger: structlog logger.

    Returns:
        The scorer (its ``weights`` are ``None`` for ``off`` and for ``auto`` without the cached file).

    Raises:
        cxrcore.models.weights_cache.WeightsCacheError: ``imagenet`` and the Keras cache lacks Keras' file (the
            message names the file, ``KERAS_HOME`` and the fixes; exit 1).
        InceptionWeightsError: A path or URI that does not exist (the message names it).
    """
    from cxrcore.models.weights_cache import IMAGENET_NO_TOP, WeightsCacheError, require_imagenet_weights

    choice = choice.strip()
    if choice.lower() == "off":
        return InceptionScorer(None, record={"weights": "off"}, reason="inception=off")
    if choice.lower() in ("auto", "imagenet"):
        try:
            path = require_imagenet_weights("inceptionv3")
        except WeightsCacheError as exc:
            if choice.lower() == "imagenet":
                raise
            logger.info("inception_scores_skipped", reason=str(exc))
            return InceptionScorer(None, record={"weights": "absent"}, reason=f"inception=auto: {exc}")
        logger.info("inception_weights_cached", path=str(path))
        record = {"weights": "imagenet", "keras_file_hash": IMAGENET_NO_TOP["inceptionv3"].file_hash}
        return InceptionScorer(
            "imagenet", INCEPTION_EXTRACTOR_NAME, INCEPTION_EXTRACTOR_DESCRIPTION, record, source="imagenet"
        )
    try:
        local = fetch_file(choice, directory / "inception", s3=s3)
    except FileNotFoundError as exc:
        raise InceptionWeightsError(f"No InceptionV3 weights file at {redact_uri(choice)}: {exc}") from exc
    digest = sha256_file(local)
    description = (
        f"InceptionV3 (include_top=False, pooling='avg') with the weights file {redact_uri(choice)} (sha256 "
        f"{digest}), otherwise as {INCEPTION_EXTRACTOR_NAME}: its values compare only with runs of the same file."
    )
    record = {"weights": redact_uri(choice), "sha256": digest}
    return InceptionScorer(
        str(local), f"inceptionv3-sha256-{digest[:12]}", description, record, source=redact_uri(choice)
    )
