"""The decision thresholds of the training recipe: metrics at 0.5 beside those at the threshold chosen on the
validation split (shown under Tables 2 and 3 when a classifier recorded them; the paper profile does not)."""

from __future__ import annotations

from typing import Any

from cxrcore.report.collect import RunData
from cxrcore.report.render.blocks import Block
from cxrcore.report.tables import DisplayTable, display_name

__all__ = ["operating_points_section"]

_COLUMNS = ["Model", "Seed", "Threshold", "Accuracy", "Sensitivity", "Specificity", "Accuracy @0.5",
            "Sensitivity @0.5", "Specificity @0.5", "Best epoch", "Validation (images / patients)"]


def _number(value: Any, digits: int = 3) -> str:
    return "—" if not isinstance(value, (int, float)) or isinstance(value, bool) else f"{value:.{digits}f}"


def _percent(value: Any) -> str:
    return "—" if not isinstance(value, (int, float)) or isinstance(value, bool) else f"{100 * value:.2f}"


def _row(model: str, seed: int, metrics: dict[str, Any]) -> list[str]:
    chosen = metrics.get("at_chosen_threshold") or {}
    default = metrics.get("at_default_threshold") or {}
    validation = metrics.get("validation") or {}
    size = validation.get("n")
    patients = validation.get("patients")
    best = metrics.get("best_epoch")
    stopped = " (stopped early)" if metrics.get("stopped_early") else ""
    return [
        display_name(model),
        str(seed),
        _number(chosen.get("threshold")),
        _percent(chosen.get("accuracy")),
        _number(chosen.get("sensitivity")),
        _number(chosen.get("specificity")),
        _percent(default.get("accuracy", metrics.get("accuracy"))),
        _number(default.get("sensitivity", metrics.get("sensitivity"))),
        _number(default.get("specificity", metrics.get("specificity"))),
        ("—" if best is None else str(best)) + stopped,
        "—" if size is None else f"{size} / {patients if patients is not None else '—'}",
    ]


def operating_points_section(data: RunData, condition: str) -> list[Block]:
    """A table of both operating points for the ``condition``'s classifiers that recorded a chosen threshold."""
    rows = [
        _row(key.model, key.seed, metrics)
        for key, metrics in sorted(data.metrics.items(), key=lambda item: (item[0].model, item[0].seed))
        if key.condition == condition and isinstance(metrics.get("at_chosen_threshold"), dict)
    ]
    if not rows:
        return []
    target = next(
        (m.get("target_sensitivity") for k, m in data.metrics.items() if k.condition == condition), None
    )
    caption = (
        f"Operating points, {condition}: the threshold chosen on the patient-disjoint validation split for "
        f"sensitivity >= {target if target is not None else 'the target'}, beside the metrics at 0.5 (the "
        "paper's). The test split chose nothing."
    )
    return [DisplayTable(columns=list(_COLUMNS), rows=rows, caption=caption + _gan_holdout_note(data, condition))]


def _gan_holdout_note(data: RunData, condition: str) -> str:
    """Whether the GANs left the validation patients out (``metrics.json`` ``validation.seen_by_gan``)."""
    statuses: dict[str, set[str]] = {}
    for key, metrics in data.metrics.items():
        seen = (metrics.get("validation") or {}).get("seen_by_gan")
        if key.condition != condition or not isinstance(seen, dict):
            continue
        for class_name, status in seen.items():
            statuses.setdefault(str(status), set()).add(str(class_name))
    if not statuses:
        return ""
    if set(statuses) == {"held-out"}:
        return " The GANs were trained without the validation patients."
    named = "; ".join(
        f"{status}: {', '.join(sorted(classes))}" for status, classes in sorted(statuses.items()) if status != "held-out"
    )
    return (
        f" WARNING: a GAN may have trained on validation patients ({named}), so the best epoch and the threshold "
        "chosen on validation can be optimistic; train the GANs with the classifiers' validation-fraction."
    )
