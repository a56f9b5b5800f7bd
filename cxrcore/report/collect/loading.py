"""Phase 2 of collecting a run: read every committed output the inventory lists into a :class:`RunData`.

One row per classifier output in :attr:`RunData.results`, and the predictions, training histories, Grad-CAM
panels, GAN losses and synthetic-set selection reports beside it; an output that cannot be used is listed with the
reason (docs/architecture.md, "Store layout").
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from cxrcore.layout import GRADCAM_INFO_FILE, GRADCAM_PANEL_FILE
from cxrcore.logging import get_logger
from cxrcore.report.collect.discovery import discover
from cxrcore.report.collect.files import (
    InvalidOutput,
    check_consistency,
    optional_csv,
    optional_json,
    optional_png,
    parse_csv,
    parse_metrics,
    parse_predictions,
    read_json_output,
    read_output,
    result_row,
)
from cxrcore.report.collect.records import (
    RESULT_COLUMNS,
    ClassifierKey,
    DatasetSummary,
    Explanation,
    ExternalKey,
    GanOutput,
    Incomplete,
    Inventory,
    RunData,
    SyntheticOutput,
)
from cxrcore.storage import Marker, Store, StoreError, TransientStoreError, join_key
from cxrcore.vocab import CONDITIONS, MODEL_NAMES

__all__ = ["collect_run", "load"]

log = get_logger("cxrcore.report.collect")


def load(store: Store, inventory: Inventory, *, dataset: str, dataset_version: str) -> RunData:
    """Reads every committed output the inventory lists.

    Args:
        store: The store.
        inventory: From :func:`~cxrcore.report.collect.discover`.
        dataset: Dataset name from the settings (used when the classifiers do not record one).
        dataset_version: Dataset version from the settings (``latest`` resolves to the newest).

    Returns:
        The :class:`RunData`.
    """
    incomplete = list(inventory.incomplete)
    warnings: list[str] = []
    classifiers = _ClassifierOutputs()
    for key, (prefix, marker) in sorted(inventory.classifiers.items()):
        try:
            classifiers.add(store, key, prefix, marker, warnings)
        except TransientStoreError:
            raise  # the store is down, not the output broken: exit 75, Argo retries
        except (InvalidOutput, StoreError) as exc:
            incomplete.append(Incomplete("classifier", prefix, f"committed but unusable: {exc}"))
            log.warning("report_output_unusable", prefix=prefix, error=str(exc))
    external_metrics, external_predictions = _load_external(store, inventory, incomplete)
    results = pd.DataFrame(classifiers.rows, columns=list(RESULT_COLUMNS))
    if not results.empty:
        results = results.sort_values(["condition", "model", "seed"], key=_sort_key).reset_index(drop=True)
    return RunData(
        run_id=inventory.run_id,
        results=results,
        predictions=classifiers.predictions,
        histories=classifiers.histories,
        metrics=classifiers.metrics,
        gans=_load_gans(store, inventory, incomplete),
        synthetic=_load_synthetic(store, inventory, incomplete),
        dataset=_dataset_summary(store, results, dataset, dataset_version, warnings),
        incomplete=incomplete,
        warnings=warnings,
        inputs=inventory.input_digests(),
        external_metrics=external_metrics,
        external_predictions=external_predictions,
        explanations=classifiers.explanations,
    )


def collect_run(store: Store, run_id: str, *, dataset: str = "chest-xray", dataset_version: str = "latest") -> RunData:
    """:func:`~cxrcore.report.collect.discover` then :func:`load`, for callers that do not need the skip check in
    between."""
    return load(store, discover(store, run_id), dataset=dataset, dataset_version=dataset_version)


class _ClassifierOutputs:
    """The classifier outputs read so far: result rows and, keyed like them, predictions, histories, metrics and
    Grad-CAM panels."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.predictions: dict[ClassifierKey, pd.DataFrame] = {}
        self.histories: dict[ClassifierKey, pd.DataFrame] = {}
        self.metrics: dict[ClassifierKey, dict[str, Any]] = {}
        self.explanations: dict[ClassifierKey, Explanation] = {}

    def add(self, store: Store, key: ClassifierKey, prefix: str, marker: Marker, warnings: list[str]) -> None:
        """Reads one committed classifier output; raises before recording anything when it is unusable."""
        metrics = parse_metrics(read_json_output(store, prefix, marker, "metrics.json"))
        frame = parse_predictions(read_output(store, prefix, marker, "predictions.csv"))
        warnings.extend(check_consistency(key, prefix, metrics, frame))
        if "history.csv" in marker.outputs:
            try:
                self.histories[key] = parse_csv(read_output(store, prefix, marker, "history.csv"), "history.csv")
            except TransientStoreError:
                raise  # the store is down, not the output broken: exit 75, Argo retries
            except (InvalidOutput, StoreError) as exc:
                warnings.append(f"{prefix}: history.csv unusable ({exc}); training curves omitted for it")
        self.rows.append(result_row(key, prefix, marker, metrics))
        self.predictions[key] = frame
        self.metrics[key] = metrics
        self._add_explanation(store, key, prefix, marker, warnings)

    def _add_explanation(
        self, store: Store, key: ClassifierKey, prefix: str, marker: Marker, warnings: list[str]
    ) -> None:
        """Reads the output's Grad-CAM panel when its marker lists one; an unusable panel is a warning."""
        if GRADCAM_PANEL_FILE not in marker.outputs:
            return  # explanations disabled, or an output older than them: the report says "not available"
        try:
            panel = optional_png(store, prefix, marker, GRADCAM_PANEL_FILE)
            info = optional_json(store, prefix, marker, GRADCAM_INFO_FILE)
        except TransientStoreError:
            raise  # the store is down, not the output broken: exit 75, Argo retries
        except (InvalidOutput, StoreError) as exc:
            warnings.append(f"{prefix}: Grad-CAM files unusable ({exc}); its panel is omitted")
            return
        if panel is not None:
            self.explanations[key] = Explanation(prefix, panel, info)


def _load_external(
    store: Store, inventory: Inventory, incomplete: list[Incomplete]
) -> tuple[dict[ExternalKey, dict[str, Any]], dict[ExternalKey, pd.DataFrame]]:
    """``metrics.json`` and ``predictions.csv`` of every committed external-test output (both empty without)."""
    metrics: dict[ExternalKey, dict[str, Any]] = {}
    predictions: dict[ExternalKey, pd.DataFrame] = {}
    for key, (prefix, marker) in sorted(inventory.external.items()):
        try:
            content = parse_metrics(read_json_output(store, prefix, marker, "metrics.json"))
            frame = parse_predictions(read_output(store, prefix, marker, "predictions.csv"))
        except TransientStoreError:
            raise  # the store is down, not the output broken: exit 75, Argo retries
        except (InvalidOutput, StoreError) as exc:
            incomplete.append(Incomplete("external", prefix, f"committed but unusable: {exc}"))
            continue
        metrics[key], predictions[key] = content, frame
    return metrics, predictions


def _load_gans(store: Store, inventory: Inventory, incomplete: list[Incomplete]) -> dict[str, GanOutput]:
    gans: dict[str, GanOutput] = {}
    for class_name, (prefix, marker) in sorted(inventory.gans.items()):
        try:
            gans[class_name] = GanOutput(
                class_name=class_name,
                prefix=prefix,
                losses=optional_csv(store, prefix, marker, "losses.csv"),
                samples_png=optional_png(store, prefix, marker, "samples.png"),
                info=optional_json(store, prefix, marker, "gan.json"),
            )
        except TransientStoreError:
            raise  # the store is down, not the output broken: exit 75, Argo retries
        except (InvalidOutput, StoreError) as exc:
            incomplete.append(Incomplete("gan", prefix, f"committed but unusable: {exc}"))
    return gans


def _load_synthetic(store: Store, inventory: Inventory, incomplete: list[Incomplete]) -> dict[str, SyntheticOutput]:
    synthetic: dict[str, SyntheticOutput] = {}
    for class_name, (prefix, marker) in sorted(inventory.synthetic.items()):
        try:
            synthetic[class_name] = SyntheticOutput(
                class_name=class_name,
                prefix=prefix,
                selection=optional_json(store, prefix, marker, "selection.json"),
                samples_png=optional_png(store, prefix, marker, "samples.png"),
            )
        except TransientStoreError:
            raise  # the store is down, not the output broken: exit 75, Argo retries
        except (InvalidOutput, StoreError) as exc:
            incomplete.append(Incomplete("synthetic", prefix, f"committed but unusable: {exc}"))
    return synthetic


def _sort_key(column: pd.Series) -> pd.Series:
    if column.name == "condition":
        return column.map({name: index for index, name in enumerate(CONDITIONS)})
    if column.name == "model":
        order = {name: index for index, name in enumerate(MODEL_NAMES)}
        return column.map(lambda name: (order.get(name, len(order)), name)).map(
            lambda pair: f"{pair[0]:04d}{pair[1]}"
        )
    return column


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
        except TransientStoreError:
            raise
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
    except TransientStoreError:
        raise
    except (StoreError, ValueError, OSError) as exc:
        return DatasetSummary(name, version, None, None, f"dataset.json unreadable: {exc}")
    if not isinstance(info, dict):
        return DatasetSummary(name, version, None, marker.digest, "dataset.json is not a JSON object")
    return DatasetSummary(name, version, info, marker.digest)
