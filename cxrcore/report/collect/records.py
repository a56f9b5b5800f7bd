"""The records the report collects from a run: keys, inventory, committed outputs and their loaded content.

Plain dataclasses and two tolerant readers (:func:`lookup`, :func:`number_or_nan`); nothing here reads the store
(see docs/architecture.md, "Store layout").
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pandas as pd

from cxrcore.storage import Marker
from cxrcore.vocab import CONDITIONS

__all__ = [
    "PNG_SIGNATURE",
    "RESULT_COLUMNS",
    "ClassifierKey",
    "DatasetSummary",
    "Explanation",
    "ExternalKey",
    "GanOutput",
    "Incomplete",
    "Inventory",
    "RunData",
    "SyntheticOutput",
    "lookup",
    "number_or_nan",
]

#: The first bytes of every PNG file.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: Columns of :attr:`RunData.results`, one row per committed classifier output (condition x model x seed).
RESULT_COLUMNS: tuple[str, ...] = (
    "condition",
    "model",
    "seed",
    "prefix",
    "n",
    "accuracy",
    "accuracy_ci_low",
    "accuracy_ci_high",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "sensitivity",
    "specificity",
    "auc",
    "tn",
    "fp",
    "fn",
    "tp",
    "predicted_positive_share",
    "collapsed",
    "collapsed_to",
    "train_accuracy",
    "test_loss",
    "train_time_s",
    "epochs",
    "params_total",
    "params_trainable",
    "dataset",
    "dataset_version",
    "split_strategy",
    "patients_on_both_sides",
    "n_train_real",
    "n_train_synthetic",
    "test_contaminated",
    "protocol",
    "threshold",
    "marker_digest",
)


@dataclasses.dataclass(frozen=True, order=True)
class ClassifierKey:
    """Identifies one classifier output: ``runs/<run_id>/classifiers/<condition>/<model>/seed-<seed>``."""

    condition: str
    model: str
    seed: int

    def label(self) -> str:
        """``condition/model/seed-N``, for messages."""
        return f"{self.condition}/{self.model}/seed-{self.seed}"


@dataclasses.dataclass(frozen=True, order=True)
class ExternalKey:
    """Identifies one external-test output: ``runs/<run_id>/external/<dataset>/<condition>/<model>/seed-<seed>``."""

    dataset: str
    classifier: ClassifierKey


@dataclasses.dataclass(frozen=True)
class Incomplete:
    """An output prefix the report could not use.

    Attributes:
        kind: ``classifier``, ``gan``, ``synthetic`` or ``dataset``.
        prefix: The store prefix.
        reason: Why it was skipped (no marker, a missing file, malformed content).
    """

    kind: str
    prefix: str
    reason: str


@dataclasses.dataclass
class Inventory:
    """What :func:`discover` found under a run, from listings and markers only.

    Attributes:
        run_id: The run.
        classifiers: Committed classifier outputs: key -> (prefix, marker).
        gans: Committed DCGANs: class -> (prefix, marker).
        synthetic: Committed synthetic sets: class -> (prefix, marker).
        incomplete: Prefixes with objects but no ``_SUCCESS`` marker, or with an unexpected layout.
        external: Committed external-test outputs: key -> (prefix, marker).
    """

    run_id: str
    classifiers: dict[ClassifierKey, tuple[str, Marker]] = dataclasses.field(default_factory=dict)
    gans: dict[str, tuple[str, Marker]] = dataclasses.field(default_factory=dict)
    synthetic: dict[str, tuple[str, Marker]] = dataclasses.field(default_factory=dict)
    incomplete: list[Incomplete] = dataclasses.field(default_factory=list)
    external: dict[ExternalKey, tuple[str, Marker]] = dataclasses.field(default_factory=dict)

    def input_digests(self) -> dict[str, Any]:
        """The report's inputs: the marker digest of every committed prefix and the incomplete prefixes."""
        committed = {prefix: marker.digest for prefix, marker in self.classifiers.values()}
        committed.update({prefix: marker.digest for prefix, marker in self.gans.values()})
        committed.update({prefix: marker.digest for prefix, marker in self.synthetic.values()})
        committed.update({prefix: marker.digest for prefix, marker in self.external.values()})
        return {
            "committed": dict(sorted(committed.items())),
            "incomplete": sorted(f"{item.kind}:{item.prefix}" for item in self.incomplete),
        }


@dataclasses.dataclass
class GanOutput:
    """One committed DCGAN (``runs/<run_id>/gan/<CLASS>``).

    Attributes:
        class_name: NORMAL or PNEUMONIA.
        prefix: The store prefix.
        losses: ``losses.csv`` (epoch, d_loss, g_loss, seconds, ...) or ``None`` when absent.
        samples_png: ``samples.png`` bytes or ``None``.
        info: ``gan.json`` content (empty when absent).
    """

    class_name: str
    prefix: str
    losses: pd.DataFrame | None
    samples_png: bytes | None
    info: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """Epochs trained, final losses and training time, from ``gan.json`` and ``losses.csv``."""
        losses = self.losses if self.losses is not None else pd.DataFrame()
        info = self.info
        epochs = lookup(info, ("training", "epochs"), ("epochs",), ("epochs_trained",), ("settings", "epochs"))
        if epochs is None and "epoch" in losses.columns:
            epochs = int(len(losses))
        final = losses.iloc[-1] if len(losses) else {}
        seconds = lookup(info, ("training", "training_seconds_all_epochs"), ("training", "train_seconds"))
        if seconds is None and "seconds" in losses.columns:
            seconds = float(pd.to_numeric(losses["seconds"], errors="coerce").sum())
        return {
            "epochs": epochs,
            "final_d_loss": number_or_nan(final.get("d_loss")) if len(losses) else None,
            "final_g_loss": number_or_nan(final.get("g_loss")) if len(losses) else None,
            "train_seconds": seconds,
            "image_size": lookup(info, ("model", "image_size"), ("image_size",), ("settings", "image_size")),
            "generator_parameters": lookup(info, ("model", "generator_parameters")),
            "discriminator_parameters": lookup(info, ("model", "discriminator_parameters")),
            "steps": lookup(info, ("training", "steps")),
            "stabilisers": lookup(info, ("training", "stabilisers")),
            "quality_status": lookup(info, ("quality", "status")),
            "quality_reasons": lookup(info, ("quality", "reasons")) or [],
            "kid_final": lookup(info, ("quality", "final", "kid")),
            "kid_start": _first_kid(lookup(info, ("quality", "trajectory"))),
            "two_sample_final": lookup(info, ("quality", "final", "two_sample_accuracy")),
            "repeated_detail_final": lookup(info, ("quality", "final", "repeated_detail_share")),
            "real_repeated_detail": lookup(info, ("quality", "final", "real_repeated_detail_share")),
            "quality_extractor": lookup(info, ("quality", "feature_extractor")),
            "published": lookup(info, ("quality", "published")),
            "inception": lookup(info, ("quality", "inception")),
            "inception_final": {
                key: lookup(info, ("quality", "final", f"inception_{key}")) for key in ("kid", "fid", "extractor")
            },
        }


@dataclasses.dataclass(frozen=True)
class Explanation:
    """A classifier output's Grad-CAM examples: ``gradcam.png`` and what ``gradcam.json`` says of it.

    Attributes:
        prefix: The classifier output's prefix.
        panel_png: ``gradcam.png`` bytes (one row per outcome, each cell an X-ray beside its overlay).
        info: ``gradcam.json`` content (layer, threshold, per_outcome, cells; empty when absent).
    """

    prefix: str
    panel_png: bytes
    info: dict[str, Any]

    def cells(self) -> list[dict[str, Any]]:
        """The described cells (``outcome``, ``image_id``, ``label``, ``probability``, ...); ``[]`` when unknown."""
        cells = self.info.get("cells")
        return [cell for cell in cells if isinstance(cell, dict)] if isinstance(cells, list) else []

    def outcome_counts(self) -> dict[str, int]:
        """Cells per outcome, in the order they first appear."""
        counts: dict[str, int] = {}
        for cell in self.cells():
            outcome = str(cell.get("outcome"))
            counts[outcome] = counts.get(outcome, 0) + 1
        return counts


@dataclasses.dataclass
class SyntheticOutput:
    """One committed synthetic set (``runs/<run_id>/synthetic/<CLASS>``).

    Attributes:
        class_name: NORMAL or PNEUMONIA.
        prefix: The store prefix.
        selection: ``selection.json`` content (empty when absent).
        samples_png: ``samples.png`` bytes (synthetic beside real) or ``None``.
    """

    class_name: str
    prefix: str
    selection: dict[str, Any]
    samples_png: bytes | None

    def summary(self) -> dict[str, Any]:
        """The selection report's headline numbers, read tolerantly from ``selection.json``.

        Returns:
            ``strategy``, ``num_generated``, ``kept``, ``keep_fraction``, ``kid`` and ``kid_std`` (of the kept
            images), ``kid_all_generated``, ``extractor``, ``memorization_share`` (share of kept images at or
            above the similarity threshold), ``memorization_flagged``, ``memorization_threshold`` and
            ``memorization_metric``; ``None`` for what the file does not hold (cxr-synthesize's names first, then
            the shorter names of the report's contract).
        """
        selection = self.selection
        kept = lookup(selection, ("num_kept",), ("kept_count",), ("kept",), ("count",))
        if isinstance(kept, list):
            kept = len(kept)
        metric = lookup(selection, ("memorization", "metric"), ("memorization", "method"))
        if isinstance(metric, str):
            metric = metric.split(" (", 1)[0]
        return {
            "strategy": lookup(selection, ("strategy",), ("selection",)),
            "num_generated": lookup(selection, ("num_generated",), ("generated",)),
            "kept": kept,
            "keep_fraction": lookup(selection, ("keep_fraction",)),
            "kid": lookup(selection, ("quality", "kept", "kid"), ("quality", "kid"), ("kid",)),
            "kid_std": lookup(selection, ("quality", "kept", "kid_std"), ("quality", "kid_std"), ("kid_std",)),
            "kid_all_generated": lookup(selection, ("quality", "all_generated", "kid")),
            "two_sample_kept": lookup(selection, ("quality", "two_sample_accuracy_kept")),
            "repeated_detail_kept": lookup(selection, ("quality", "repeated_detail_share_kept")),
            "real_repeated_detail": lookup(selection, ("quality", "real_repeated_detail_share")),
            "gan_quality_status": lookup(selection, ("gan", "quality", "status")),
            "flagged_gan": lookup(selection, ("gan", "flagged_gan")),
            "extractor": lookup(selection, ("quality", "extractor"), ("extractor",), ("quality", "feature_extractor")),
            "inception": lookup(selection, ("quality", "inception")),
            "memorization_share": lookup(
                selection,
                ("memorization", "flagged_share"),
                ("memorization", "share_above_threshold"),
                ("memorization_share",),
            ),
            "memorization_flagged": lookup(selection, ("memorization", "flagged_count")),
            "memorization_threshold": lookup(selection, ("memorization", "threshold"), ("memorization_threshold",)),
            "memorization_metric": metric,
        }


@dataclasses.dataclass
class DatasetSummary:
    """The dataset version the classifiers were evaluated on.

    Attributes:
        name: Dataset name.
        version: Version id (``None`` when unknown).
        info: ``dataset.json`` content (``None`` when it could not be read).
        digest: The version's marker digest (``None`` when not committed or unreadable).
        problem: Why ``info`` is missing, if it is.
    """

    name: str
    version: str | None
    info: dict[str, Any] | None
    digest: str | None
    problem: str | None = None


@dataclasses.dataclass
class RunData:
    """Everything the report shows, loaded from the store.

    Attributes:
        run_id: The run.
        results: One row per committed classifier output, columns :data:`RESULT_COLUMNS`, sorted.
        predictions: ``(image_id, label, probability)`` frames keyed like ``results`` rows.
        histories: ``history.csv`` frames (epoch, loss, accuracy, ...), where present.
        metrics: Raw ``metrics.json`` of each output.
        gans: Committed DCGANs by class.
        synthetic: Committed synthetic sets by class.
        dataset: The evaluated dataset version.
        incomplete: Outputs that exist but could not be used, with reasons.
        warnings: Inconsistencies found while loading (metrics vs predictions, mixed dataset versions, ...).
        inputs: The report's inputs: :meth:`Inventory.input_digests` (what the skip check compares).
        external_metrics: ``metrics.json`` of each external-test output (empty without ``cxr external-test``).
        external_predictions: ``predictions.csv`` of each external-test output, keyed likewise.
        explanations: Grad-CAM examples of the classifier outputs that committed them, keyed like ``results`` rows.
    """

    run_id: str
    results: pd.DataFrame
    predictions: dict[ClassifierKey, pd.DataFrame]
    histories: dict[ClassifierKey, pd.DataFrame]
    metrics: dict[ClassifierKey, dict[str, Any]]
    gans: dict[str, GanOutput]
    synthetic: dict[str, SyntheticOutput]
    dataset: DatasetSummary
    incomplete: list[Incomplete]
    warnings: list[str]
    inputs: dict[str, Any]
    external_metrics: dict[ExternalKey, dict[str, Any]] = dataclasses.field(default_factory=dict)
    external_predictions: dict[ExternalKey, pd.DataFrame] = dataclasses.field(default_factory=dict)
    explanations: dict[ClassifierKey, Explanation] = dataclasses.field(default_factory=dict)

    def conditions(self) -> list[str]:
        """Conditions with at least one result, in :data:`CONDITIONS` order."""
        present = set(self.results["condition"])
        return [condition for condition in CONDITIONS if condition in present]


def _first_kid(trajectory: Any) -> Any:
    """The KID of the first quality measurement (step 0: the untrained generator), or ``None``."""
    if isinstance(trajectory, list) and trajectory and isinstance(trajectory[0], dict):
        return trajectory[0].get("kid")
    return None


def lookup(mapping: dict[str, Any], *paths: tuple[str, ...]) -> Any:
    """The value at the first of ``paths`` (key sequences into nested dicts) that exists and is not null."""
    for path in paths:
        value: Any = mapping
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            return value
    return None


def number_or_nan(value: Any) -> float:
    """``value`` as a finite float, or ``NaN`` when it is missing, a bool, not a number, or not finite."""
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan
