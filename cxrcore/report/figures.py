"""The report's figures as PNG bytes (matplotlib's object API on the Agg canvas; pyplot is never used, so no
global backend state is touched and nothing needs a display).

Figure names (``figures/<name>`` in the report):

- ``confusion_custom_cnn.png`` — the paper's Fig. 2: the custom CNN before and after DCGAN.
- ``confusion_transfer_baseline.png`` / ``confusion_transfer_augmented.png`` — Figs. 3 and 4: the transfer
  learning models before / after DCGAN (plus any other model that ran).
- ``roc_<condition>.png`` — ROC curves of every model (one line per seed).
- ``accuracy_comparison.png`` — test accuracy with 95% CI per model and condition, beside the paper's.
- ``history_<condition>.png`` — training curves from each ``history.csv``.
- ``gan_losses.png`` — discriminator and generator losses per class.
- ``gan_samples_<CLASS>.png`` and ``synthetic_samples_<CLASS>.png`` — the PNGs the GAN and synthesize jobs
  stored, copied unchanged.
- ``gradcam_<condition>_<model>_seed-<seed>.png`` — each classifier output's Grad-CAM panel (``gradcam.png``),
  copied unchanged (:func:`gradcam_figure`).
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cxrcore.metrics import roc_curve
from cxrcore.report.collect import ClassifierKey, RunData
from cxrcore.report.collect.records import PNG_SIGNATURE
from cxrcore.report.paper import paper_row
from cxrcore.report.tables import display_name, model_order
from cxrcore.vocab import CLASS_NAMES, CONDITIONS, CUSTOM_CNN

__all__ = [
    "PNG_SIGNATURE",
    "accuracy_figure",
    "all_figures",
    "confusion_figure",
    "gan_loss_figure",
    "gradcam_figure",
    "history_figure",
    "roc_figure",
]

_DPI = 110
_CONDITION_TITLES = {"baseline": "before DCGAN (baseline)", "augmented": "after DCGAN (augmented)"}
_WARNING_COLOR = "#b00020"


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _color(index: int) -> tuple[float, float, float, float]:
    return colormaps["tab10"](index % 10)


# ---------------------------------------------------------------------------------------------- confusion
def confusion_figure(data: RunData, panels: Sequence[tuple[str, str]], title: str, columns: int = 3) -> bytes:
    """A grid of confusion-matrix heatmaps.

    Args:
        data: The collected run.
        panels: ``(condition, model)`` per panel, in reading order; each must have at least one result.
        title: Figure title.
        columns: Panels per row.

    Returns:
        PNG bytes. With several seeds a panel shows the mean counts over seeds.
    """
    if not panels:
        raise ValueError("A confusion figure needs at least one panel. Received: panels=[]")
    columns = max(1, min(columns, len(panels)))
    rows = math.ceil(len(panels) / columns)
    width = max(3.6 * columns, 5.0)
    figure = Figure(figsize=(width, 3.9 * rows + 0.7), layout="constrained")
    figure.suptitle(textwrap.fill(title, width=int(width * 9)), fontsize=12)
    axes = figure.subplots(rows, columns, squeeze=False)
    results = data.results
    for index, axis in enumerate(axes.flat):
        if index >= len(panels):
            axis.set_axis_off()
            continue
        condition, model = panels[index]
        group = results[(results["condition"] == condition) & (results["model"] == model)]
        if group.empty:
            raise ValueError(f"No result for the panel. Received: condition={condition!r}, model={model!r}")
        matrix = group[["tn", "fp", "fn", "tp"]].astype(float).mean().to_numpy().reshape(2, 2)
        seeds = len(group)
        axis.imshow(matrix, cmap="Blues", vmin=0, vmax=max(matrix.sum(axis=1).max(), 1))
        threshold = matrix.max() / 2
        integral = bool(np.all(matrix == np.round(matrix)))
        for (row, column), value in np.ndenumerate(matrix):
            text = f"{value:.0f}" if integral else f"{value:.1f}"
            axis.text(column, row, text, ha="center", va="center", fontsize=13,
                      color="white" if value > threshold else "black")
        axis.set_xticks([0, 1], labels=list(CLASS_NAMES))
        axis.set_yticks([0, 1], labels=list(CLASS_NAMES), rotation=90, va="center")
        axis.set_xlabel("Predicted")
        axis.set_ylabel("Actual")
        accuracy = 100 * float(group["accuracy"].mean())
        heading = f"{display_name(model)} — {condition}\nacc {accuracy:.2f}%"
        if seeds > 1:
            heading += f", mean of {seeds} seeds"
        collapsed = int(group["collapsed"].astype(bool).sum())
        if collapsed:
            heading += f"\nCOLLAPSED ({collapsed}/{seeds} seeds)"
        axis.set_title(heading, fontsize=10, color=_WARNING_COLOR if collapsed else "black")
    return _png(figure)


def _confusion_figures(data: RunData) -> dict[str, bytes]:
    figures: dict[str, bytes] = {}
    present = set(zip(data.results["condition"], data.results["model"]))
    custom = [(condition, CUSTOM_CNN) for condition in CONDITIONS if (condition, CUSTOM_CNN) in present]
    if custom:
        figures["confusion_custom_cnn.png"] = confusion_figure(
            data, custom, "Custom CNN confusion matrix (paper Fig. 2)", columns=2
        )
    for condition, figure_number in (("baseline", 3), ("augmented", 4)):
        models = [model for model in model_order(data.results["model"]) if model != CUSTOM_CNN]
        panels = [(condition, model) for model in models if (condition, model) in present]
        if panels:
            figures[f"confusion_transfer_{condition}.png"] = confusion_figure(
                data,
                panels,
                f"Transfer learning confusion matrices {_CONDITION_TITLES[condition]} (paper Fig. {figure_number})",
            )
    return figures


# ---------------------------------------------------------------------------------------------- ROC
def roc_figure(data: RunData, condition: str) -> bytes:
    """ROC curves of every model under ``condition`` (one line per seed, one colour per model)."""
    figure = Figure(figsize=(5.0, 4.6), layout="constrained")
    axis = figure.subplots()
    axis.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1, label="chance")
    results = data.results[data.results["condition"] == condition]
    for index, model in enumerate(model_order(results["model"])):
        group = results[results["model"] == model]
        for line, (_, row) in enumerate(group.iterrows()):
            frame = data.predictions[ClassifierKey(condition, model, int(row["seed"]))]
            labels = frame["label"].to_numpy()
            if labels.min() == labels.max():
                continue
            fpr, tpr, _ = roc_curve(labels, frame["probability"].to_numpy())
            label = None
            if line == 0:
                auc_text = f"{np.nanmean(group['auc'].astype(float)):.3f}" if group["auc"].notna().any() else "–"
                label = f"{display_name(model)} (AUC {auc_text}{', mean' if len(group) > 1 else ''})"
                if group["collapsed"].astype(bool).any():
                    label += " COLLAPSED"
            axis.plot(fpr, tpr, color=_color(index), linewidth=1.6 if len(group) == 1 else 1.0,
                      alpha=1.0 if len(group) == 1 else 0.7, label=label)
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.01)
    axis.set_xlabel("False positive rate (1 − specificity)")
    axis.set_ylabel("True positive rate (sensitivity)")
    axis.set_title(f"ROC curves {_CONDITION_TITLES.get(condition, condition)}")
    axis.legend(loc="lower right", fontsize=8)
    axis.grid(alpha=0.3)
    return _png(figure)


# ---------------------------------------------------------------------------------------------- accuracy
def accuracy_figure(summary: pd.DataFrame) -> bytes:
    """Test accuracy per model: ours (mean, 95% CI whiskers) beside the paper's, for both conditions."""
    models = model_order(summary["model"])
    figure = Figure(figsize=(max(7.5, 1.5 * len(models) + 2), 5.0), layout="constrained")
    axis = figure.subplots()
    width = 0.2
    positions = np.arange(len(models))
    series = [
        ("baseline", "paper", "Paper baseline (Table 2)", 0),
        ("baseline", "ours", "Ours baseline", 1),
        ("augmented", "paper", "Paper augmented (Table 3)", 2),
        ("augmented", "ours", "Ours augmented", 3),
    ]
    for offset, (condition, source, label, color_index) in enumerate(series):
        heights, lower, upper = [], [], []
        collapsed_marks: list[tuple[int, float]] = []
        for model in models:
            if source == "paper":
                published = paper_row(condition, model)
                if published is not None and published.recall == 0.50 and published.precision <= 0.40:
                    collapsed_marks.append((len(heights), published.test_accuracy_percent))
                heights.append(published.test_accuracy_percent if published else np.nan)
                lower.append(0.0)
                upper.append(0.0)
                continue
            row = summary[(summary["condition"] == condition) & (summary["model"] == model)]
            if row.empty:
                heights.append(np.nan)
                lower.append(0.0)
                upper.append(0.0)
                continue
            mean = 100 * float(row["accuracy_mean"].iloc[0])
            if int(row["collapsed_seeds"].iloc[0]):
                collapsed_marks.append((len(heights), mean))
            heights.append(mean)
            lower.append(max(0.0, mean - 100 * float(row["accuracy_ci_low_mean"].iloc[0])))
            upper.append(max(0.0, 100 * float(row["accuracy_ci_high_mean"].iloc[0]) - mean))
        values = np.asarray(heights, dtype=float)
        if np.isnan(values).all():
            continue
        hatch = "//" if source == "paper" else None
        axis.bar(positions + (offset - 1.5) * width, np.nan_to_num(values), width, label=label,
                 color=_color(0 if condition == "baseline" else 1), alpha=0.45 if source == "paper" else 0.95,
                 hatch=hatch, edgecolor="black", linewidth=0.4,
                 yerr=None if source == "paper" else np.vstack([lower, upper]), capsize=3)
        for position, height in collapsed_marks:
            axis.text(positions[position] + (offset - 1.5) * width, 42, "collapsed", rotation=90, ha="center",
                      va="bottom", fontsize=8, color="white", fontweight="bold",
                      bbox={"facecolor": _WARNING_COLOR, "edgecolor": "none", "pad": 1.5})
    axis.set_xticks(positions, labels=[display_name(model) for model in models], rotation=20)
    axis.set_ylabel("Test accuracy (%)")
    axis.set_ylim(40, 100)
    axis.axhline(50, color="grey", linewidth=0.6, linestyle=":")
    axis.set_title("Test accuracy: ours (95% CI) beside the paper's")
    figure.legend(fontsize=8, loc="outside lower center", ncols=4)
    axis.grid(axis="y", alpha=0.3)
    return _png(figure)


# ---------------------------------------------------------------------------------------------- history
def history_figure(data: RunData, condition: str) -> bytes | None:
    """Training curves (loss and accuracy per epoch, validation dashed when recorded) of one condition.

    Returns:
        PNG bytes, or ``None`` when no output of the condition has a usable ``history.csv``.
    """
    keys = [key for key in sorted(data.histories) if key.condition == condition]
    usable = [key for key in keys if {"epoch"} <= set(data.histories[key].columns)]
    if not usable:
        return None
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    loss_axis, accuracy_axis = figure.subplots(1, 2)
    models = model_order([key.model for key in usable])
    labelled: set[str] = set()
    for key in usable:
        history = data.histories[key]
        color = _color(models.index(key.model))
        seeds = sum(1 for other in usable if other.model == key.model)
        label = None
        if key.model not in labelled:
            label = display_name(key.model) + (f" ({seeds} seeds)" if seeds > 1 else "")
            labelled.add(key.model)
        for axis, metric in ((loss_axis, "loss"), (accuracy_axis, "accuracy")):
            if metric in history.columns:
                axis.plot(history["epoch"], history[metric], color=color, linewidth=1.4, label=label,
                          alpha=1.0 if seeds == 1 else 0.75)
            if f"val_{metric}" in history.columns:
                axis.plot(history["epoch"], history[f"val_{metric}"], color=color, linewidth=1.0, linestyle="--",
                          alpha=1.0 if seeds == 1 else 0.75)
    for axis, metric in ((loss_axis, "Loss"), (accuracy_axis, "Accuracy")):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("Epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
    loss_axis.set_title(f"Training loss {_CONDITION_TITLES.get(condition, condition)}")
    accuracy_axis.set_title("Training accuracy (dashed: validation, when recorded)")
    accuracy_axis.legend(fontsize=7, loc="lower right")
    return _png(figure)


# ---------------------------------------------------------------------------------------------- GAN
def gan_loss_figure(data: RunData) -> bytes | None:
    """Discriminator and generator loss per epoch, one panel per class with ``losses.csv``.

    Returns:
        PNG bytes, or ``None`` when no committed GAN has a usable ``losses.csv``.
    """
    panels = [
        (class_name, gan.losses)
        for class_name, gan in sorted(data.gans.items())
        if gan.losses is not None and {"epoch", "d_loss", "g_loss"} <= set(gan.losses.columns)
    ]
    if not panels:
        return None
    figure = Figure(figsize=(5.4 * len(panels), 4.0), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for axis, (class_name, losses) in zip(axes, panels):
        axis.plot(losses["epoch"], losses["d_loss"], label="discriminator", color=_color(0))
        axis.plot(losses["epoch"], losses["g_loss"], label="generator", color=_color(1))
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_title(f"DCGAN losses — {class_name}")
        axis.set_xlabel("Epoch")
        axis.set_ylabel("Binary cross-entropy")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    return _png(figure)


def gradcam_figure(key: ClassifierKey) -> str:
    """The report's figure name of a classifier output's Grad-CAM panel."""
    return f"gradcam_{key.condition}_{key.model}_seed-{key.seed}.png"


def all_figures(data: RunData, summary: pd.DataFrame) -> dict[str, bytes]:
    """Every figure of the report, keyed by file name (see the module docstring)."""
    figures = _confusion_figures(data)
    for condition in data.conditions():
        figures[f"roc_{condition}.png"] = roc_figure(data, condition)
    if not summary.empty:
        figures["accuracy_comparison.png"] = accuracy_figure(summary)
    for condition in data.conditions():
        history = history_figure(data, condition)
        if history is not None:
            figures[f"history_{condition}.png"] = history
    losses = gan_loss_figure(data)
    if losses is not None:
        figures["gan_losses.png"] = losses
    for class_name, gan in sorted(data.gans.items()):
        if gan.samples_png is not None:
            figures[f"gan_samples_{class_name}.png"] = gan.samples_png
    for class_name, synthetic in sorted(data.synthetic.items()):
        if synthetic.samples_png is not None:
            figures[f"synthetic_samples_{class_name}.png"] = synthetic.samples_png
    for key, explanation in sorted(data.explanations.items()):
        figures[gradcam_figure(key)] = explanation.panel_png
    return figures
