"""The report's first section: warnings that change how every number reads, then what the run was."""

from __future__ import annotations

from typing import Any

from cxrcore.report.collect import RunData
from cxrcore.report.paper import PAPER_CITATION
from cxrcore.report.render.blocks import Block, Bullets, Paragraph, finite, unique
from cxrcore.report.tables import display_name

__all__ = ["header_section"]


def header_section(data: RunData, store_uri: str) -> list[Block]:
    """The ``header`` section: synthetic-data, contamination and collapse warnings, then the run's facts.

    Args:
        data: The collected run.
        store_uri: The store root, named in the first line.

    Returns:
        The section's blocks.
    """
    items = [*_data_items(data, store_uri), *_run_items(data)]
    return [*_warnings(data), Bullets(items), Paragraph(f"Compared with: {PAPER_CITATION}.")]


def _warnings(data: RunData) -> list[Block]:
    results = data.results
    info = data.dataset.info or {}
    blocks: list[Block] = []
    if info.get("synthetic"):
        blocks.append(
            Paragraph(
                f"SYNTHETIC DEMO DATA: dataset {data.dataset.name} consists of procedurally generated phantoms "
                "(cxr demo-data), not chest X-rays. The numbers below exercise the pipeline; they say nothing about "
                "pneumonia diagnosis.",
                warning=True,
            )
        )
    contaminated = results[results["test_contaminated"].astype(bool)]
    if not contaminated.empty:
        listed = ", ".join(
            f"{row['condition']}/{row['model']}/seed-{row['seed']}" for _, row in contaminated.iterrows()
        )
        blocks.append(
            Paragraph(
                f"CONTAMINATED TEST SET: {len(contaminated)} classifier output(s) used the paper-merge protocol "
                f"(synthetic images merged before the split, so the test set holds synthetic images): {listed}. "
                "Their test scores are not comparable with clean results.",
                warning=True,
            )
        )
    collapsed = results[results["collapsed"].astype(bool)]
    if not collapsed.empty:
        blocks.append(
            Paragraph(
                f"COLLAPSED MODELS: {len(collapsed)} classifier output(s) predict one class for nearly every test "
                "image; see the section Collapsed models.",
                warning=True,
            )
        )
    return blocks


def _data_items(data: RunData, store_uri: str) -> list[str]:
    """Where the outputs are, the dataset version, its split and any patient leakage."""
    results = data.results
    info = data.dataset.info or {}
    items = [
        f"Run: {data.run_id} (store {store_uri}, outputs under runs/{data.run_id}/)",
        f"Dataset: {data.dataset.name}, version {data.dataset.version or 'unknown'}"
        + (f" — {info.get('images'):,} images" if isinstance(info.get("images"), int) else "")
        + (
            " (" + ", ".join(f"{name} {count:,}" for name, count in info["counts"].items()) + ")"
            if isinstance(info.get("counts"), dict)
            else ""
        )
        + (" — SYNTHETIC DEMO PHANTOMS" if info.get("synthetic") else ""),
    ]
    if data.dataset.problem:
        items.append(f"Dataset details unavailable: {data.dataset.problem}")
    items.append(_split_text(data, info))
    both_sides = unique([int(v) for v in results["patients_on_both_sides"] if finite(v)])
    if not both_sides and finite(info.get("patients_on_both_sides")):
        both_sides = [int(info["patients_on_both_sides"])]
    if both_sides:
        patients = f" of {info['patients']:,} patients" if isinstance(info.get("patients"), int) else ""
        items.append(
            f"Patients with images on both sides of the split: {', '.join(map(str, both_sides))}{patients}"
            + (" — LEAKAGE: test accuracy is optimistic" if max(both_sides) > 0 else " (no leakage)")
        )
    return items


def _split_text(data: RunData, info: dict[str, Any]) -> str:
    split = info.get("split") or {}
    strategies = unique(list(data.results["split_strategy"])) or (
        [split.get("strategy")] if split.get("strategy") else []
    )
    text = f"Split: {', '.join(map(str, strategies)) or 'unknown'}"
    if split:
        text += f", test fraction {split.get('test_fraction')}, seed {split.get('seed')}"
    if isinstance(info.get("splits"), dict) and isinstance(info["splits"].get("test"), dict):
        text += " — test images: " + ", ".join(
            f"{name} {count:,}" for name, count in sorted(info["splits"]["test"].items())
        )
    return text


def _run_items(data: RunData) -> list[str]:
    """The protocol, conditions, models and seeds that ran, and how many outputs were collected or skipped."""
    results = data.results
    protocols = unique(list(results["protocol"]))
    run_conditions = data.conditions()
    models = list(dict.fromkeys(results["model"]))
    return [
        f"Protocol: {', '.join(protocols)}"
        + (" (synthetic images join the training split only; the test set is real images only)"
           if protocols == ["clean"] else ""),
        f"Conditions: {', '.join(run_conditions)}"
        + ("" if "augmented" in run_conditions else " — augmented not run"),
        f"Models: {', '.join(display_name(model) for model in models)}",
        f"Seeds: {', '.join(str(seed) for seed in sorted(set(int(s) for s in results['seed'])))}",
        f"Classifier outputs collected: {len(results)}; incomplete or unusable outputs: {len(data.incomplete)}; "
        f"consistency warnings: {len(data.warnings)}",
    ]
