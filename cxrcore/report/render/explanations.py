"""The report's Grad-CAM section: each model's committed panel of test images per outcome, per condition."""

from __future__ import annotations

from collections.abc import Mapping

from cxrcore.report.collect import ClassifierKey, Explanation, RunData
from cxrcore.report.figures import gradcam_figure
from cxrcore.report.render.blocks import Block, FigureRef, Paragraph, finite, format_value
from cxrcore.report.tables import display_name

__all__ = ["EXPLANATIONS_NOTE", "explanations_section"]

#: How to read the panels (shown above them).
EXPLANATIONS_NOTE = (
    "How to read these panels: each row holds test images of one outcome at the decision threshold (true "
    "positives, true negatives, false positives, false negatives; the most confident of each: highest probability "
    "among those predicted PNEUMONIA, lowest among those predicted NORMAL). Each cell shows the X-ray as the model "
    "saw it and, beside it, the Grad-CAM heatmap of the PNEUMONIA score over it: warm (red, yellow) regions are "
    "those whose features raised the predicted probability of pneumonia, cool (blue) ones did not. Grad-CAM is "
    "coarse: it is computed at the model's last convolutional block (a few cells across for a backbone, e.g. 4x4 "
    "at 128 px) and upsampled, so it shows roughly where the model looked, not whether that is where the disease "
    "is. It is a sanity check of the model, not a diagnostic: a heatmap on the borders, labels or outside the lungs "
    "points to a shortcut."
)
_NOT_AVAILABLE = (
    "Grad-CAM panels not available: no classifier output of this run holds one (gradcam.png). Outputs trained "
    "with explain_examples=0, committed before the panels existed, or of a model without a convolutional block "
    "have none; a re-run does not add them to an output already committed."
)
_SHORT_OUTCOMES = {"true_positive": "TP", "true_negative": "TN", "false_positive": "FP", "false_negative": "FN"}


def explanations_section(data: RunData, figures: Mapping[str, bytes]) -> list[Block]:
    """The ``explanations`` section: the reading note, one panel per condition and model, what is missing.

    Each condition and model shows the panel of its lowest seed that has one (the other seeds' panels are in
    their own outputs); a condition and model whose outputs have none is listed as not available.

    Args:
        data: The collected run.
        figures: Figure PNGs by file name (only their names are used here).

    Returns:
        The section's blocks (a "not available" paragraph when no output of the run holds a panel).
    """
    if not data.explanations:
        return [Paragraph(_NOT_AVAILABLE)]
    blocks: list[Block] = [Paragraph(EXPLANATIONS_NOTE)]
    missing = []
    pairs = dict.fromkeys(zip(data.results["condition"], data.results["model"]))
    for condition, model in pairs:
        seeds = sorted(
            int(seed) for seed in data.results.loc[
                (data.results["condition"] == condition) & (data.results["model"] == model), "seed"
            ]
        )
        keys = [ClassifierKey(condition, model, seed) for seed in seeds]
        shown = [key for key in keys if key in data.explanations and gradcam_figure(key) in figures]
        if not shown:
            missing.append(f"{display_name(model)} ({condition})")
            continue
        others = [key.seed for key in shown[1:]]
        blocks.append(FigureRef(gradcam_figure(shown[0]), _caption(shown[0], data.explanations[shown[0]], others)))
    if missing:
        blocks.append(
            Paragraph(
                "Grad-CAM panels not available for: " + ", ".join(missing) + " (trained with explain_examples=0, "
                "committed before the panels existed, or a model without a convolutional block)."
            )
        )
    return blocks


def _caption(key: ClassifierKey, explanation: Explanation, other_seeds: list[int]) -> str:
    """``"<Model>, <condition>, seed <n>: Grad-CAM at <layer>, 8 test images (2 TP, ...) at threshold 0.5."``"""
    info = explanation.info
    counts = explanation.outcome_counts()
    listed = ", ".join(f"{count} {_SHORT_OUTCOMES.get(outcome, outcome)}" for outcome, count in counts.items())
    text = f"{display_name(key.model)}, {key.condition}, seed {key.seed}: Grad-CAM"
    if isinstance(info.get("layer"), str):
        text += f" at {info['layer']}"
    if counts:
        text += f", {sum(counts.values())} test images ({listed})"
    if finite(info.get("threshold")):
        text += f" at threshold {format_value(float(info['threshold']))}"
    text += "."
    if other_seeds:
        text += " Seeds " + ", ".join(map(str, other_seeds)) + " have their own panel in their outputs' gradcam.png."
    return text
