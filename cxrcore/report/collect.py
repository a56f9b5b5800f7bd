"""Collect every committed output of one run into tidy pandas frames.

Two phases, so an up-to-date report costs only a listing and a few marker reads:

1. :func:`discover` lists ``runs/<run_id>/`` and reads ``_SUCCESS`` markers only. It returns an
   :class:`Inventory`: the committed classifier, GAN and synthetic-set prefixes with their marker digests (the
   report's inputs) and every prefix that holds objects but no marker ("incomplete": still running, failed, or
   being rewritten).
2. :func:`load` reads the committed files (each verified against the sha256 its marker records) into a
   :class:`RunData`: one row per classifier output in :attr:`RunData.results`, and the predictions, training
   histories, GAN losses and synthetic-set selection reports beside it. A committed output whose files are
   missing or malformed is moved to the incomplete list with the reason, never silently dropped.

Images are never loaded: the sample grids are the PNGs the GAN and synthesize jobs stored.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from cxrcore.layout import classifiers_root, gan_prefix, run_prefix, synthetic_prefix
from cxrcore.logging import get_logger
from cxrcore.storage import MARKER_NAME, TMP_DIR, Marker, Store, StoreError, join_key
from cxrcore.vocab import CLASS_NAMES, CONDITIONS, MODEL_DIRECTORY_PATTERN, MODEL_NAMES, SEED_DIRECTORY_PATTERN

__all__ = [
    "RESULT_COLUMNS",
    "ClassifierKey",
    "DatasetSummary",
    "GanOutput",
    "Incomplete",
    "Inventory",
    "RunData",
    "SyntheticOutput",
    "collect_run",
    "describe_run_root",
    "discover",
    "load",
]

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

#: Keys every classifier ``metrics.json`` must hold for the report to use it.
REQUIRED_METRIC_KEYS: tuple[str, ...] = (
    "n",
    "accuracy",
    "accuracy_ci95",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "sensitivity",
    "specificity",
    "confusion_matrix",
    "collapsed",
)
#: Class names accepted in ``predictions.csv`` ``label`` besides 0/1.
_LABEL_NAMES = {name: index for index, name in enumerate(CLASS_NAMES)}

log = get_logger(__name__)


@dataclasses.dataclass(frozen=True, order=True)
class ClassifierKey:
    """Identifies one classifier output: ``runs/<run_id>/classifiers/<condition>/<model>/seed-<seed>``."""

    condition: str
    model: str
    seed: int

    def label(self) -> str:
        """``condition/model/seed-N``, for messages."""
        return f"{self.condition}/{self.model}/seed-{self.seed}"


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
    """

    run_id: str
    classifiers: dict[ClassifierKey, tuple[str, Marker]] = dataclasses.field(default_factory=dict)
    gans: dict[str, tuple[str, Marker]] = dataclasses.field(default_factory=dict)
    synthetic: dict[str, tuple[str, Marker]] = dataclasses.field(default_factory=dict)
    incomplete: list[Incomplete] = dataclasses.field(default_factory=list)

    def input_digests(self) -> dict[str, Any]:
        """The report's inputs: the marker digest of every committed prefix and the incomplete prefixes."""
        committed = {prefix: marker.digest for prefix, marker in self.classifiers.values()}
        committed.update({prefix: marker.digest for prefix, marker in self.gans.values()})
        committed.update({prefix: marker.digest for prefix, marker in self.synthetic.values()})
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
        epochs = _lookup(info, ("training", "epochs"), ("epochs",), ("epochs_trained",), ("settings", "epochs"))
        if epochs is None and "epoch" in losses.columns:
            epochs = int(len(losses))
        final = losses.iloc[-1] if len(losses) else {}
        seconds = _lookup(info, ("training", "training_seconds_all_epochs"), ("training", "train_seconds"))
        if seconds is None and "seconds" in losses.columns:
            seconds = float(pd.to_numeric(losses["seconds"], errors="coerce").sum())
        return {
            "epochs": epochs,
            "final_d_loss": _number(final.get("d_loss")) if len(losses) else None,
            "final_g_loss": _number(final.get("g_loss")) if len(losses) else None,
            "train_seconds": seconds,
            "image_size": _lookup(info, ("model", "image_size"), ("image_size",), ("settings", "image_size")),
            "generator_parameters": _lookup(info, ("model", "generator_parameters")),
            "discriminator_parameters": _lookup(info, ("model", "discriminator_parameters")),
        }


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
        kept = _lookup(selection, ("num_kept",), ("kept_count",), ("kept",), ("count",))
        if isinstance(kept, list):
            kept = len(kept)
        metric = _lookup(selection, ("memorization", "metric"), ("memorization", "method"))
        if isinstance(metric, str):
            metric = metric.split(" (", 1)[0]
        return {
            "strategy": _lookup(selection, ("strategy",), ("selection",)),
            "num_generated": _lookup(selection, ("num_generated",), ("generated",)),
            "kept": kept,
            "keep_fraction": _lookup(selection, ("keep_fraction",)),
            "kid": _lookup(selection, ("quality", "kept", "kid"), ("quality", "kid"), ("kid",)),
            "kid_std": _lookup(selection, ("quality", "kept", "kid_std"), ("quality", "kid_std"), ("kid_std",)),
            "kid_all_generated": _lookup(selection, ("quality", "all_generated", "kid")),
            "extractor": _lookup(selection, ("quality", "extractor"), ("extractor",), ("quality", "feature_extractor")),
            "memorization_share": _lookup(
                selection,
                ("memorization", "flagged_share"),
                ("memorization", "share_above_threshold"),
                ("memorization_share",),
            ),
            "memorization_flagged": _lookup(selection, ("memorization", "flagged_count")),
            "memorization_threshold": _lookup(selection, ("memorization", "threshold"), ("memorization_threshold",)),
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

    def conditions(self) -> list[str]:
        """Conditions with at least one result, in :data:`CONDITIONS` order."""
        present = set(self.results["condition"])
        return [condition for condition in CONDITIONS if condition in present]


def _lookup(mapping: dict[str, Any], *paths: tuple[str, ...]) -> Any:
    """The value at the first of ``paths`` (key sequences into nested dicts) that exists and is not null."""
    for path in paths:
        value: Any = mapping
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            return value
    return None


class _InvalidOutput(ValueError):
    """A committed output whose content the report cannot use."""


# ---------------------------------------------------------------------------------------------- discovery
def discover(store: Store, run_id: str) -> Inventory:
    """Lists a run's outputs and reads their markers (no other object is read).

    Args:
        store: The store holding ``runs/<run_id>/``.
        run_id: The run id.

    Returns:
        The :class:`Inventory`.
    """
    inventory = Inventory(run_id=run_id)
    root = classifiers_root(run_id)
    seen: dict[str, bool] = {}
    unexpected: set[str] = set()
    for obj in store.list(root):
        parts = obj.key[len(root) + 1 :].split("/")
        if len(parts) < 4:
            unexpected.add(join_key(root, *parts[:-1]) if len(parts) > 1 else obj.key)
            continue
        condition, model, seed_dir = parts[:3]
        prefix = join_key(root, condition, model, seed_dir)
        if (
            condition not in CONDITIONS
            or not MODEL_DIRECTORY_PATTERN.match(model)
            or not SEED_DIRECTORY_PATTERN.match(seed_dir)
        ):
            unexpected.add(prefix)
            continue
        is_marker = len(parts) == 4 and parts[3] == MARKER_NAME
        seen[prefix] = seen.get(prefix, False) or is_marker
    for prefix in sorted(unexpected):
        inventory.incomplete.append(
            Incomplete(
                "classifier",
                prefix,
                "unexpected layout: expected classifiers/<baseline|augmented>/<model>/seed-<n>/",
            )
        )
    for prefix, has_marker in sorted(seen.items()):
        condition, model, seed_dir = prefix.rsplit("/", 3)[1:]
        key = ClassifierKey(condition, model, int(SEED_DIRECTORY_PATTERN.match(seed_dir).group(1)))
        marker = _read_marker(store, prefix, inventory, "classifier") if has_marker else None
        if marker is not None:
            inventory.classifiers[key] = (prefix, marker)
        elif not has_marker:
            inventory.incomplete.append(Incomplete("classifier", prefix, _uncommitted_reason(store, prefix)))
    for class_name in CLASS_NAMES:
        for kind, prefix, found in (
            ("gan", gan_prefix(run_id, class_name), inventory.gans),
            ("synthetic", synthetic_prefix(run_id, class_name), inventory.synthetic),
        ):
            marker = _read_marker(store, prefix, inventory, kind)
            if marker is not None:
                found[class_name] = (prefix, marker)
            elif _has_objects(store, prefix):
                inventory.incomplete.append(Incomplete(kind, prefix, _uncommitted_reason(store, prefix)))
    return inventory


def _read_marker(store: Store, prefix: str, inventory: Inventory, kind: str) -> Marker | None:
    try:
        return store.read_marker(prefix)
    except StoreError as exc:
        inventory.incomplete.append(Incomplete(kind, prefix, f"unreadable {MARKER_NAME} marker: {exc}"))
        return None


def _has_objects(store: Store, prefix: str) -> bool:
    return any(True for _ in store.list(prefix))


def _uncommitted_reason(store: Store, prefix: str) -> str:
    keys = [obj.key[len(prefix) + 1 :] for obj in store.list(prefix)]
    staged = any(key.startswith(TMP_DIR + "/") for key in keys)
    checkpoints = any(key.startswith("checkpoints/") for key in keys)
    details = []
    if staged:
        details.append("a write is staged (job running, or it failed mid-commit)")
    if checkpoints:
        details.append("checkpoints exist (training started)")
    suffix = f": {'; '.join(details)}" if details else ""
    return f"no {MARKER_NAME} marker (job not finished){suffix}"


# ---------------------------------------------------------------------------------------------- loading
def load(store: Store, inventory: Inventory, *, dataset: str, dataset_version: str) -> RunData:
    """Reads every committed output the inventory lists.

    Args:
        store: The store.
        inventory: From :func:`discover`.
        dataset: Dataset name from the settings (used when the classifiers do not record one).
        dataset_version: Dataset version from the settings (``latest`` resolves to the newest).

    Returns:
        The :class:`RunData`.
    """
    incomplete = list(inventory.incomplete)
    warnings: list[str] = []
    rows: list[dict[str, Any]] = []
    predictions: dict[ClassifierKey, pd.DataFrame] = {}
    histories: dict[ClassifierKey, pd.DataFrame] = {}
    raw_metrics: dict[ClassifierKey, dict[str, Any]] = {}
    for key, (prefix, marker) in sorted(inventory.classifiers.items()):
        try:
            metrics = _parse_metrics(_read_json(store, prefix, marker, "metrics.json"), prefix)
            frame = _parse_predictions(_read(store, prefix, marker, "predictions.csv"), prefix)
        except (_InvalidOutput, StoreError) as exc:
            incomplete.append(Incomplete("classifier", prefix, f"committed but unusable: {exc}"))
            log.warning("report_output_unusable", prefix=prefix, error=str(exc))
            continue
        warnings.extend(_check_consistency(key, prefix, metrics, frame))
        if "history.csv" in marker.outputs:
            try:
                histories[key] = _parse_csv(_read(store, prefix, marker, "history.csv"), prefix, "history.csv")
            except (_InvalidOutput, StoreError) as exc:
                warnings.append(f"{prefix}: history.csv unusable ({exc}); training curves omitted for it")
        rows.append(_result_row(key, prefix, marker, metrics))
        predictions[key] = frame
        raw_metrics[key] = metrics
    results = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    if not results.empty:
        results = results.sort_values(["condition", "model", "seed"], key=_sort_key).reset_index(drop=True)

    gans: dict[str, GanOutput] = {}
    for class_name, (prefix, marker) in sorted(inventory.gans.items()):
        try:
            gans[class_name] = GanOutput(
                class_name=class_name,
                prefix=prefix,
                losses=_optional_csv(store, prefix, marker, "losses.csv"),
                samples_png=_optional_png(store, prefix, marker, "samples.png"),
                info=_optional_json(store, prefix, marker, "gan.json"),
            )
        except (_InvalidOutput, StoreError) as exc:
            incomplete.append(Incomplete("gan", prefix, f"committed but unusable: {exc}"))
    synthetic: dict[str, SyntheticOutput] = {}
    for class_name, (prefix, marker) in sorted(inventory.synthetic.items()):
        try:
            synthetic[class_name] = SyntheticOutput(
                class_name=class_name,
                prefix=prefix,
                selection=_optional_json(store, prefix, marker, "selection.json"),
                samples_png=_optional_png(store, prefix, marker, "samples.png"),
            )
        except (_InvalidOutput, StoreError) as exc:
            incomplete.append(Incomplete("synthetic", prefix, f"committed but unusable: {exc}"))

    dataset_summary = _dataset_summary(store, results, dataset, dataset_version, warnings)
    return RunData(
        run_id=inventory.run_id,
        results=results,
        predictions=predictions,
        histories=histories,
        metrics=raw_metrics,
        gans=gans,
        synthetic=synthetic,
        dataset=dataset_summary,
        incomplete=incomplete,
        warnings=warnings,
        inputs=inventory.input_digests(),
    )


def collect_run(store: Store, run_id: str, *, dataset: str = "chest-xray", dataset_version: str = "latest") -> RunData:
    """:func:`discover` then :func:`load`, for callers that do not need the skip check in between."""
    return load(store, discover(store, run_id), dataset=dataset, dataset_version=dataset_version)


def _sort_key(column: pd.Series) -> pd.Series:
    if column.name == "condition":
        return column.map({name: index for index, name in enumerate(CONDITIONS)})
    if column.name == "model":
        order = {name: index for index, name in enumerate(MODEL_NAMES)}
        return column.map(lambda name: (order.get(name, len(order)), name)).map(
            lambda pair: f"{pair[0]:04d}{pair[1]}"
        )
    return column


def _read(store: Store, prefix: str, marker: Marker, name: str) -> bytes:
    recorded = marker.outputs.get(name)
    if recorded is None:
        raise _InvalidOutput(f"{name} is not listed in its {MARKER_NAME} marker")
    return store.get_bytes(join_key(prefix, name), sha256=recorded.get("sha256"))


def _read_json(store: Store, prefix: str, marker: Marker, name: str) -> Any:
    data = _read(store, prefix, marker, name)
    try:
        return json.loads(data)
    except ValueError as exc:
        raise _InvalidOutput(f"{name} is not valid JSON ({exc})") from exc


def _optional_json(store: Store, prefix: str, marker: Marker, name: str) -> dict[str, Any]:
    if name not in marker.outputs:
        return {}
    content = _read_json(store, prefix, marker, name)
    if not isinstance(content, dict):
        raise _InvalidOutput(f"{name} must hold a JSON object. Received: {type(content).__name__}")
    return content


def _optional_csv(store: Store, prefix: str, marker: Marker, name: str) -> pd.DataFrame | None:
    if name not in marker.outputs:
        return None
    return _parse_csv(_read(store, prefix, marker, name), prefix, name)


def _optional_png(store: Store, prefix: str, marker: Marker, name: str) -> bytes | None:
    if name not in marker.outputs:
        return None
    data = _read(store, prefix, marker, name)
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise _InvalidOutput(f"{name} is not a PNG image")
    return data


def _parse_csv(data: bytes, prefix: str, name: str) -> pd.DataFrame:
    try:
        return pd.read_csv(io.BytesIO(data))
    except (ValueError, pd.errors.ParserError) as exc:
        raise _InvalidOutput(f"{name} is not valid CSV ({exc})") from exc


def _parse_metrics(content: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(content, dict):
        raise _InvalidOutput(f"metrics.json must hold a JSON object. Received: {type(content).__name__}")
    missing = [key for key in REQUIRED_METRIC_KEYS if key not in content]
    if missing:
        raise _InvalidOutput(f"metrics.json lacks {missing}")
    matrix = content["confusion_matrix"]
    if (
        not isinstance(matrix, list)
        or len(matrix) != 2
        or not all(isinstance(row, list) and len(row) == 2 for row in matrix)
        or not all(isinstance(value, int) and value >= 0 for row in matrix for value in row)
    ):
        raise _InvalidOutput(f"metrics.json confusion_matrix must be [[tn, fp], [fn, tp]]. Received: {matrix!r}")
    interval = content["accuracy_ci95"]
    if not isinstance(interval, list) or len(interval) != 2:
        raise _InvalidOutput(f"metrics.json accuracy_ci95 must be [low, high]. Received: {interval!r}")
    return content


def _parse_predictions(data: bytes, prefix: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype={"image_id": str}, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise _InvalidOutput(f"predictions.csv is not valid CSV ({exc})") from exc
    missing = [column for column in ("image_id", "label", "probability") if column not in frame.columns]
    if missing:
        raise _InvalidOutput(f"predictions.csv lacks columns {missing}")
    raw_labels = frame["label"].map(lambda value: _LABEL_NAMES.get(str(value).strip().upper(), value))
    try:
        labels = pd.to_numeric(raw_labels).astype(int)
        probabilities = pd.to_numeric(frame["probability"]).astype(float)
    except (ValueError, TypeError) as exc:
        raise _InvalidOutput(f"predictions.csv label/probability are not numeric ({exc})") from exc
    if not labels.isin((0, 1)).all():
        raise _InvalidOutput("predictions.csv label must be 0/NORMAL or 1/PNEUMONIA")
    if not np.isfinite(probabilities).all() or (probabilities < 0).any() or (probabilities > 1).any():
        raise _InvalidOutput("predictions.csv probability must lie in [0, 1]")
    if frame["image_id"].duplicated().any():
        raise _InvalidOutput("predictions.csv repeats an image_id")
    return pd.DataFrame(
        {"image_id": frame["image_id"].astype(str), "label": labels, "probability": probabilities}
    ).reset_index(drop=True)


def _check_consistency(key: ClassifierKey, prefix: str, metrics: dict[str, Any], frame: pd.DataFrame) -> list[str]:
    found = []
    recorded = (metrics.get("condition"), metrics.get("model"), metrics.get("seed"))
    expected = (key.condition, key.model, key.seed)
    for name, value, wanted in zip(("condition", "model", "seed"), recorded, expected):
        if value is not None and value != wanted:
            found.append(f"{prefix}: metrics.json says {name}={value!r} but the output lies under {wanted!r}")
    if int(metrics["n"]) != len(frame):
        found.append(f"{prefix}: metrics.json n={metrics['n']} but predictions.csv has {len(frame)} rows")
        return found
    threshold = float(metrics.get("threshold", 0.5))
    predicted = (frame["probability"].to_numpy() >= threshold).astype(int)
    labels = frame["label"].to_numpy()
    matrix = [
        [int(((labels == 0) & (predicted == 0)).sum()), int(((labels == 0) & (predicted == 1)).sum())],
        [int(((labels == 1) & (predicted == 0)).sum()), int(((labels == 1) & (predicted == 1)).sum())],
    ]
    if matrix != metrics["confusion_matrix"]:
        found.append(
            f"{prefix}: confusion matrix from predictions.csv at threshold {threshold} is {matrix} but "
            f"metrics.json records {metrics['confusion_matrix']}"
        )
    return found


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def _result_row(key: ClassifierKey, prefix: str, marker: Marker, metrics: dict[str, Any]) -> dict[str, Any]:
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    n = tn + fp + fn + tp
    contaminated = bool(metrics.get("test_contaminated", False))
    protocol = metrics.get("protocol") or ("paper-merge" if contaminated else "clean")
    return {
        "condition": key.condition,
        "model": key.model,
        "seed": key.seed,
        "prefix": prefix,
        "n": int(metrics["n"]),
        "accuracy": _number(metrics["accuracy"]),
        "accuracy_ci_low": _number(metrics["accuracy_ci95"][0]),
        "accuracy_ci_high": _number(metrics["accuracy_ci95"][1]),
        "precision_macro": _number(metrics["precision_macro"]),
        "recall_macro": _number(metrics["recall_macro"]),
        "f1_macro": _number(metrics["f1_macro"]),
        "sensitivity": _number(metrics["sensitivity"]),
        "specificity": _number(metrics["specificity"]),
        "auc": _number(metrics.get("auc")),
        "tn": tn,
        "fp": fp,
        "fn": fn,
        "tp": tp,
        "predicted_positive_share": _number(metrics.get("predicted_positive_share", (tp + fp) / n if n else None)),
        "collapsed": bool(metrics["collapsed"]),
        "collapsed_to": metrics.get("collapsed_to"),
        "train_accuracy": _number(metrics.get("train_accuracy")),
        "test_loss": _number(metrics.get("test_loss")),
        "train_time_s": _number(metrics.get("train_time_s")),
        "epochs": _number(metrics.get("epochs")),
        "params_total": _number(metrics.get("params_total")),
        "params_trainable": _number(metrics.get("params_trainable")),
        "dataset": metrics.get("dataset"),
        "dataset_version": metrics.get("dataset_version"),
        "split_strategy": metrics.get("split_strategy"),
        "patients_on_both_sides": _number(metrics.get("patients_on_both_sides")),
        "n_train_real": _number(_lookup(metrics, ("n_train_real",), ("counts", "train_real"))),
        "n_train_synthetic": _number(_lookup(metrics, ("n_train_synthetic",), ("counts", "train_synthetic"))),
        "test_contaminated": contaminated,
        "protocol": str(protocol),
        "threshold": _number(metrics.get("threshold", 0.5)),
        "marker_digest": marker.digest,
    }


def _dataset_summary(
    store: Store, results: pd.DataFrame, dataset: str, dataset_version: str, warnings: list[str]
) -> DatasetSummary:
    from cxrcore.data.dataset import DatasetError, dataset_prefix, resolve_version

    recorded = sorted(
        {(str(name), str(version)) for name, version in zip(results["dataset"], results["dataset_version"])
         if isinstance(name, str) and isinstance(version, str)}
    )
    if len(recorded) > 1:
        listed = ", ".join(f"{name}/{version}" for name, version in recorded)
        warnings.append(
            f"The classifiers were evaluated on different dataset versions ({listed}); their numbers are not "
            "comparable with each other"
        )
    if recorded:
        name, version = recorded[0]
        if dataset_version not in ("", "latest") and (name, version) != (dataset, dataset_version):
            warnings.append(
                f"The settings name dataset {dataset}/{dataset_version} but the classifiers were evaluated on "
                f"{name}/{version}; the report describes {name}/{version}"
            )
    else:
        name = dataset
        try:
            version = resolve_version(store, dataset, dataset_version)
        except (DatasetError, StoreError, ValueError) as exc:
            return DatasetSummary(name, None, None, None, f"dataset version unknown: {exc}")
    try:
        prefix = dataset_prefix(name, version)
        marker = store.read_marker(prefix)
        if marker is None:
            return DatasetSummary(name, version, None, None, f"{prefix} is not committed")
        if "dataset.json" not in marker.outputs:
            return DatasetSummary(name, version, None, marker.digest, f"{prefix} has no dataset.json")
        info = json.loads(
            store.get_bytes(join_key(prefix, "dataset.json"), sha256=marker.outputs["dataset.json"]["sha256"])
        )
    except (StoreError, ValueError, OSError) as exc:
        return DatasetSummary(name, version, None, None, f"dataset.json unreadable: {exc}")
    if not isinstance(info, dict):
        return DatasetSummary(name, version, None, marker.digest, "dataset.json is not a JSON object")
    return DatasetSummary(name, version, info, marker.digest)


def describe_run_root(store: Store, run_id: str) -> str:
    """``<store uri>/runs/<run_id>``, for error messages."""
    return f"{store.uri.rstrip('/')}/{run_prefix(run_id)}"
