"""Reading one committed output's files: each verified against the sha256 its marker records, then validated.

A committed output whose files are missing or malformed raises :class:`InvalidOutput` (or the store's
:class:`~cxrcore.storage.StoreError`); the loader moves it to the incomplete list with the reason, never drops it
silently (docs/architecture.md, "Commit protocol").
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pandas as pd

from cxrcore.metrics import confusion_counts
from cxrcore.report.collect.records import PNG_SIGNATURE, ClassifierKey, lookup, number_or_nan
from cxrcore.storage import MARKER_NAME, Marker, Store, join_key
from cxrcore.vocab import CLASS_NAMES

__all__ = [
    "REQUIRED_METRIC_KEYS",
    "InvalidOutput",
    "check_consistency",
    "optional_csv",
    "optional_json",
    "optional_png",
    "parse_csv",
    "parse_metrics",
    "parse_predictions",
    "read_json_output",
    "read_output",
    "result_row",
]

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


class InvalidOutput(ValueError):
    """A committed output whose content the report cannot use."""


def read_output(store: Store, prefix: str, marker: Marker, name: str) -> bytes:
    """The bytes of ``<prefix>/<name>``, verified against the sha256 its marker records.

    Raises:
        InvalidOutput: When the marker does not list ``name``.
    """
    recorded = marker.outputs.get(name)
    if recorded is None:
        raise InvalidOutput(f"{name} is not listed in its {MARKER_NAME} marker")
    return store.get_bytes(join_key(prefix, name), sha256=recorded.get("sha256"))


def read_json_output(store: Store, prefix: str, marker: Marker, name: str) -> Any:
    """:func:`read_output` parsed as JSON."""
    data = read_output(store, prefix, marker, name)
    try:
        return json.loads(data)
    except ValueError as exc:
        raise InvalidOutput(f"{name} is not valid JSON ({exc})") from exc


def optional_json(store: Store, prefix: str, marker: Marker, name: str) -> dict[str, Any]:
    """A JSON object the output may hold (``{}`` when its marker does not list it)."""
    if name not in marker.outputs:
        return {}
    content = read_json_output(store, prefix, marker, name)
    if not isinstance(content, dict):
        raise InvalidOutput(f"{name} must hold a JSON object. Received: {type(content).__name__}")
    return content


def optional_csv(store: Store, prefix: str, marker: Marker, name: str) -> pd.DataFrame | None:
    """A CSV file the output may hold (``None`` when its marker does not list it)."""
    if name not in marker.outputs:
        return None
    return parse_csv(read_output(store, prefix, marker, name), name)


def optional_png(store: Store, prefix: str, marker: Marker, name: str) -> bytes | None:
    """A PNG image the output may hold (``None`` when its marker does not list it)."""
    if name not in marker.outputs:
        return None
    data = read_output(store, prefix, marker, name)
    if not data.startswith(PNG_SIGNATURE):
        raise InvalidOutput(f"{name} is not a PNG image")
    return data


def parse_csv(data: bytes, name: str) -> pd.DataFrame:
    """``data`` as a frame; ``name`` is the file's name, for the error."""
    try:
        return pd.read_csv(io.BytesIO(data))
    except (ValueError, pd.errors.ParserError) as exc:
        raise InvalidOutput(f"{name} is not valid CSV ({exc})") from exc


def parse_metrics(content: Any) -> dict[str, Any]:
    """A classifier's ``metrics.json`` content, checked for the keys and shapes the report reads."""
    if not isinstance(content, dict):
        raise InvalidOutput(f"metrics.json must hold a JSON object. Received: {type(content).__name__}")
    missing = [key for key in REQUIRED_METRIC_KEYS if key not in content]
    if missing:
        raise InvalidOutput(f"metrics.json lacks {missing}")
    matrix = content["confusion_matrix"]
    if (
        not isinstance(matrix, list)
        or len(matrix) != 2
        or not all(isinstance(row, list) and len(row) == 2 for row in matrix)
        or not all(isinstance(value, int) and value >= 0 for row in matrix for value in row)
    ):
        raise InvalidOutput(f"metrics.json confusion_matrix must be [[tn, fp], [fn, tp]]. Received: {matrix!r}")
    interval = content["accuracy_ci95"]
    if not isinstance(interval, list) or len(interval) != 2:
        raise InvalidOutput(f"metrics.json accuracy_ci95 must be [low, high]. Received: {interval!r}")
    return content


def parse_predictions(data: bytes) -> pd.DataFrame:
    """A classifier's ``predictions.csv`` as ``(image_id, label, probability)``, labels 0/1."""
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype={"image_id": str}, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise InvalidOutput(f"predictions.csv is not valid CSV ({exc})") from exc
    missing = [column for column in ("image_id", "label", "probability") if column not in frame.columns]
    if missing:
        raise InvalidOutput(f"predictions.csv lacks columns {missing}")
    raw_labels = frame["label"].map(lambda value: _LABEL_NAMES.get(str(value).strip().upper(), value))
    try:
        labels = pd.to_numeric(raw_labels).astype(int)
        probabilities = pd.to_numeric(frame["probability"]).astype(float)
    except (ValueError, TypeError) as exc:
        raise InvalidOutput(f"predictions.csv label/probability are not numeric ({exc})") from exc
    if not labels.isin((0, 1)).all():
        raise InvalidOutput("predictions.csv label must be 0/NORMAL or 1/PNEUMONIA")
    if not np.isfinite(probabilities).all() or (probabilities < 0).any() or (probabilities > 1).any():
        raise InvalidOutput("predictions.csv probability must lie in [0, 1]")
    if frame["image_id"].duplicated().any():
        raise InvalidOutput("predictions.csv repeats an image_id")
    return pd.DataFrame(
        {"image_id": frame["image_id"].astype(str), "label": labels, "probability": probabilities}
    ).reset_index(drop=True)


def check_consistency(key: ClassifierKey, prefix: str, metrics: dict[str, Any], frame: pd.DataFrame) -> list[str]:
    """Warnings where ``metrics.json`` disagrees with its location or with its ``predictions.csv``."""
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
    matrix = confusion_counts(frame["label"].to_numpy(), predicted)
    if matrix != metrics["confusion_matrix"]:
        found.append(
            f"{prefix}: confusion matrix from predictions.csv at threshold {threshold} is {matrix} but "
            f"metrics.json records {metrics['confusion_matrix']}"
        )
    return found


def result_row(key: ClassifierKey, prefix: str, marker: Marker, metrics: dict[str, Any]) -> dict[str, Any]:
    """One row of :attr:`~cxrcore.report.collect.RunData.results` from a validated ``metrics.json``."""
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    n = tn + fp + fn + tp
    contaminated = bool(metrics.get("test_contaminated", False))
    protocol = metrics.get("protocol") or ("paper-merge" if contaminated else "clean")
    number = number_or_nan
    return {
        "condition": key.condition,
        "model": key.model,
        "seed": key.seed,
        "prefix": prefix,
        "n": int(metrics["n"]),
        "accuracy": number(metrics["accuracy"]),
        "accuracy_ci_low": number(metrics["accuracy_ci95"][0]),
        "accuracy_ci_high": number(metrics["accuracy_ci95"][1]),
        "precision_macro": number(metrics["precision_macro"]),
        "recall_macro": number(metrics["recall_macro"]),
        "f1_macro": number(metrics["f1_macro"]),
        "sensitivity": number(metrics["sensitivity"]),
        "specificity": number(metrics["specificity"]),
        "auc": number(metrics.get("auc")),
        "tn": tn,
        "fp": fp,
        "fn": fn,
        "tp": tp,
        "predicted_positive_share": number(metrics.get("predicted_positive_share", (tp + fp) / n if n else None)),
        "collapsed": bool(metrics["collapsed"]),
        "collapsed_to": metrics.get("collapsed_to"),
        "train_accuracy": number(metrics.get("train_accuracy")),
        "test_loss": number(metrics.get("test_loss")),
        "train_time_s": number(metrics.get("train_time_s")),
        "epochs": number(metrics.get("epochs")),
        "params_total": number(metrics.get("params_total")),
        "params_trainable": number(metrics.get("params_trainable")),
        "dataset": metrics.get("dataset"),
        "dataset_version": metrics.get("dataset_version"),
        "split_strategy": metrics.get("split_strategy"),
        "patients_on_both_sides": number(metrics.get("patients_on_both_sides")),
        "n_train_real": number(lookup(metrics, ("n_train_real",), ("counts", "train_real"))),
        "n_train_synthetic": number(lookup(metrics, ("n_train_synthetic",), ("counts", "train_synthetic"))),
        "test_contaminated": contaminated,
        "protocol": str(protocol),
        "threshold": number(metrics.get("threshold", 0.5)),
        "marker_digest": marker.digest,
    }
