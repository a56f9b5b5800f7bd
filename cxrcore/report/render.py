"""The report as a document: sections of paragraphs, lists, tables and figures, rendered twice from the same
model — ``report.md`` (figures linked as ``figures/<name>``) and a self-contained ``index.html`` (figures embedded
as base64 ``data:`` URIs, styles inline), so one HTML file is a complete Argo artifact.

Every piece of text that comes from the store (run id, dataset name, model names, selection strategies, error
reasons) is escaped: :func:`html.escape` for HTML, backslash escapes for Markdown.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from cxrcore import __version__
from cxrcore.metrics import COLLAPSE_SHARE
from cxrcore.report.collect import RunData
from cxrcore.report.paper import PAPER_CITATION, PAPER_NOTES, PAPER_SETTINGS, PAPER_TEST_SETS
from cxrcore.report.tables import (
    Analysis,
    DisplayTable,
    collapsed_table,
    condition_table,
    delta_table,
    display_name,
    paper_comparison_table,
    paper_confusion_table,
)
from cxrcore.vocab import CLASS_NAMES, CONDITIONS, PAPER_IMAGE_SIZE, PAPER_LEARNING_RATE

__all__ = [
    "SECTION_TITLES",
    "Bullets",
    "Document",
    "FigureRef",
    "Paragraph",
    "Section",
    "build_document",
    "render_html",
    "render_markdown",
]

#: Section anchors and titles, in report order (tests and readers rely on these ids).
SECTION_TITLES: dict[str, str] = {
    "header": "Run",
    "table-2": "Table 2 — baseline (real training images only)",
    "table-3": "Table 3 — augmented (real + DCGAN training images)",
    "delta": "Baseline → augmented, with McNemar tests",
    "paper": "Paper vs ours",
    "collapsed": "Collapsed models",
    "gan": "DCGAN and synthetic images",
    "confusion": "Confusion matrices",
    "roc": "ROC curves",
    "training": "Training curves",
    "incomplete": "Incomplete outputs and consistency checks",
    "methods": "Methods: what differs from the paper",
}


@dataclasses.dataclass
class Paragraph:
    """Plain text; ``warning`` draws it as a bold warning."""

    text: str
    warning: bool = False


@dataclasses.dataclass
class Bullets:
    """A bulleted list of plain-text items."""

    items: list[str]
    warning: bool = False


@dataclasses.dataclass
class FigureRef:
    """A figure of the report by file name (``figures/<name>``)."""

    name: str
    caption: str
    sample_grid: bool = False


Block = Paragraph | Bullets | DisplayTable | FigureRef


@dataclasses.dataclass
class Section:
    """One section: an anchor from :data:`SECTION_TITLES`, its title and its blocks."""

    anchor: str
    title: str
    blocks: list[Block]


@dataclasses.dataclass
class Document:
    """The whole report."""

    title: str
    subtitle: str
    sections: list[Section]


# ---------------------------------------------------------------------------------------------- content
def _finite(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _format(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if math.isfinite(value) else "–"
    return str(value)


def _unique(values: Sequence[Any]) -> list[Any]:
    """Distinct non-missing values, numbers before strings, each group in natural order."""
    present = {value for value in values if value is not None and not (isinstance(value, float) and math.isnan(value))}
    numbers = sorted(value for value in present if isinstance(value, (int, float)))
    return numbers + sorted(str(value) for value in present if not isinstance(value, (int, float)))


def build_document(
    data: RunData, analysis: Analysis, figures: Mapping[str, bytes], *, title: str, store_uri: str
) -> Document:
    """Assembles every section of the report.

    Args:
        data: The collected run.
        analysis: Its computed tables.
        figures: Figure PNGs by file name (only their names are used here).
        title: The report title.
        store_uri: The store root, for the header.

    Returns:
        The :class:`Document`, sections in :data:`SECTION_TITLES` order.
    """
    builders = {
        "header": lambda: _header(data, store_uri),
        "table-2": lambda: _condition_section(analysis, "baseline"),
        "table-3": lambda: _condition_section(analysis, "augmented"),
        "delta": lambda: _delta_section(data, analysis),
        "paper": lambda: _paper_section(analysis, figures),
        "collapsed": lambda: _collapsed_section(data),
        "gan": lambda: _gan_section(data, figures),
        "confusion": lambda: _figure_section(
            figures,
            [
                ("confusion_custom_cnn.png", "Custom CNN before and after DCGAN (the paper's Fig. 2)."),
                ("confusion_transfer_baseline.png", "Transfer learning models before DCGAN (the paper's Fig. 3)."),
                ("confusion_transfer_augmented.png", "Transfer learning models after DCGAN (the paper's Fig. 4)."),
            ],
            "Rows: actual class; columns: predicted class. With several seeds each cell is the mean count.",
        ),
        "roc": lambda: _figure_section(
            figures,
            [(f"roc_{condition}.png", f"ROC curves, {condition}; one line per seed.") for condition in CONDITIONS],
            "The paper reports no ROC curve or AUC. A collapsed model can still rank images (AUC above 0.5) while "
            "its 0.5 threshold puts every image in one class.",
        ),
        "training": lambda: _figure_section(
            figures,
            [(f"history_{condition}.png", f"Training curves, {condition}.") for condition in CONDITIONS],
            "From each classifier's history.csv.",
        ),
        "incomplete": lambda: _incomplete_section(data),
        "methods": lambda: _methods_section(data, analysis),
    }
    sections = [Section(anchor, SECTION_TITLES[anchor], builders[anchor]()) for anchor in SECTION_TITLES]
    subtitle = f"Run {data.run_id} — generated by cxr-report {__version__}"
    return Document(title=title, subtitle=subtitle, sections=sections)


def _header(data: RunData, store_uri: str) -> list[Block]:
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
    split = info.get("split") or {}
    strategies = _unique(list(results["split_strategy"])) or ([split.get("strategy")] if split.get("strategy") else [])
    both_sides = _unique([int(v) for v in results["patients_on_both_sides"] if _finite(v)])
    if not both_sides and _finite(info.get("patients_on_both_sides")):
        both_sides = [int(info["patients_on_both_sides"])]
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
    split_text = f"Split: {', '.join(map(str, strategies)) or 'unknown'}"
    if split:
        split_text += f", test fraction {split.get('test_fraction')}, seed {split.get('seed')}"
    if isinstance(info.get("splits"), dict) and isinstance(info["splits"].get("test"), dict):
        split_text += " — test images: " + ", ".join(
            f"{name} {count:,}" for name, count in sorted(info["splits"]["test"].items())
        )
    items.append(split_text)
    if both_sides:
        patients = f" of {info['patients']:,} patients" if isinstance(info.get("patients"), int) else ""
        items.append(
            f"Patients with images on both sides of the split: {', '.join(map(str, both_sides))}{patients}"
            + (" — LEAKAGE: test accuracy is optimistic" if max(both_sides) > 0 else " (no leakage)")
        )
    protocols = _unique(list(results["protocol"]))
    items.append(
        f"Protocol: {', '.join(protocols)}"
        + (" (synthetic images join the training split only; the test set is real images only)"
           if protocols == ["clean"] else "")
    )
    run_conditions = data.conditions()
    items.append(
        f"Conditions: {', '.join(run_conditions)}"
        + ("" if "augmented" in run_conditions else " — augmented not run")
    )
    models = list(dict.fromkeys(results["model"]))
    items.append(f"Models: {', '.join(display_name(model) for model in models)}")
    items.append(f"Seeds: {', '.join(str(seed) for seed in sorted(set(int(s) for s in results['seed'])))}")
    items.append(
        f"Classifier outputs collected: {len(results)}; incomplete or unusable outputs: {len(data.incomplete)}; "
        f"consistency warnings: {len(data.warnings)}"
    )
    blocks.append(Bullets(items))
    blocks.append(Paragraph(f"Compared with: {PAPER_CITATION}."))
    return blocks


def _condition_section(analysis: Analysis, condition: str) -> list[Block]:
    table = condition_table(analysis.summary, condition)
    if table is None:
        return [Paragraph(f"Not run: no committed classifier output under classifiers/{condition}/ for this run.")]
    return [table]


def _delta_section(data: RunData, analysis: Analysis) -> list[Block]:
    table = delta_table(analysis.per_seed, analysis.combined)
    conditions = data.conditions()
    if table is None:
        if "augmented" not in conditions:
            return [Paragraph("Not run: the augmented condition has no committed classifier output, so there is "
                              "nothing to compare the baseline with.")]
        return [Paragraph("No model and seed ran under both conditions, so no paired comparison is possible.")]
    blocks: list[Block] = [table]
    paired = set(analysis.per_seed["model"])
    unpaired = [model for model in dict.fromkeys(data.results["model"]) if model not in paired]
    if unpaired:
        blocks.append(
            Paragraph(
                "Not compared (missing one condition or no common seed): "
                + ", ".join(display_name(model) for model in unpaired)
                + "."
            )
        )
    significant = analysis.per_seed[analysis.per_seed["p_value"] < 0.05]
    if significant.empty:
        blocks.append(Paragraph("No baseline → augmented change is significant at p < 0.05 (McNemar, per seed)."))
    else:
        blocks.append(
            Bullets(
                [
                    f"{display_name(row['model'])} seed {int(row['seed'])}: "
                    f"{'better' if row['delta_accuracy'] > 0 else 'worse'} after augmentation "
                    f"({100 * row['delta_accuracy']:+.2f} pp, p = {row['p_value']:.3g})"
                    for _, row in significant.iterrows()
                ]
            )
        )
    return blocks


def _paper_section(analysis: Analysis, figures: Mapping[str, bytes]) -> list[Block]:
    blocks: list[Block] = [paper_comparison_table(analysis.comparison)]
    if "accuracy_comparison.png" in figures:
        blocks.append(FigureRef("accuracy_comparison.png",
                                "Test accuracy per model: ours with 95% CI whiskers, the paper's hatched."))
    blocks.append(Paragraph("About the paper's numbers:"))
    blocks.append(Bullets(list(PAPER_NOTES)))
    blocks.append(paper_confusion_table())
    return blocks


def _collapsed_section(data: RunData) -> list[Block]:
    table = collapsed_table(data.results)
    if table is None:
        return [Paragraph(f"No model collapsed: none predicts one class for {100 * COLLAPSE_SHARE:.0f}% or more of "
                          "its test images.")]
    labels = [f"{row[0]}/{row[1]}/seed-{row[2]} → {row[3]} ({row[4]}%)" for row in table.rows]
    return [
        Paragraph(
            f"WARNING: {len(table.rows)} classifier output(s) collapsed to one class (at least "
            f"{100 * COLLAPSE_SHARE:.0f}% of test images predicted as one class): {'; '.join(labels)}. Their "
            "accuracy equals the share of that class in the test set; the paper's ResNet50 and EfficientNetB0 "
            "rows are the same failure.",
            warning=True,
        ),
        table,
    ]


def _gan_section(data: RunData, figures: Mapping[str, bytes]) -> list[Block]:
    if not data.gans and not data.synthetic:
        reason = "no committed output under gan/ or synthetic/ for this run"
        if "augmented" in data.conditions():
            reason += " (yet augmented classifiers exist: check the incomplete outputs)"
        return [Paragraph(f"Not run: {reason}.")]
    rows = []
    for class_name in CLASS_NAMES:
        gan = data.gans.get(class_name)
        synthetic = data.synthetic.get(class_name)
        gan_summary = gan.summary() if gan else {}
        selection = synthetic.summary() if synthetic else {}
        kid = selection.get("kid")
        kid_text = _format(kid) if kid is not None else "–"
        if kid is not None and selection.get("kid_std") is not None:
            kid_text += f" ± {_format(selection['kid_std'])}"
        if kid is not None and selection.get("kid_all_generated") is not None:
            kid_text += f"; all generated {_format(selection['kid_all_generated'])}"
        if kid is not None and selection.get("extractor"):
            kid_text += f" ({selection['extractor']})"
        share = selection.get("memorization_share")
        share_text = f"{100 * float(share):.1f}%" if _finite(share) else "–"
        if _finite(share) and selection.get("memorization_flagged") is not None:
            share_text += f" ({_format(selection['memorization_flagged'])} images)"
        if _finite(share) and selection.get("memorization_threshold") is not None:
            share_text += (f" at or above {selection.get('memorization_metric') or 'similarity'} "
                           f"{selection['memorization_threshold']}")
        paper_epochs = PAPER_SETTINGS["gan_epochs"][class_name]
        paper_generated = PAPER_SETTINGS["gan_generated"][class_name]
        rows.append(
            [
                class_name,
                f"{_format(gan_summary.get('epochs'))} (paper {paper_epochs})" if gan else "not run",
                _format(gan_summary.get("final_d_loss")) if gan else "–",
                _format(gan_summary.get("final_g_loss")) if gan else "–",
                _format(gan_summary.get("train_seconds"), 5) if gan else "–",
                _format(selection.get("strategy")) if synthetic else "not run",
                f"{_format(selection.get('num_generated'))} (paper {paper_generated})" if synthetic else "–",
                _format(selection.get("kept")) if synthetic else "–",
                kid_text,
                share_text,
            ]
        )
    blocks: list[Block] = [
        DisplayTable(
            columns=["Class", "GAN epochs", "Final D loss", "Final G loss", "GAN train time (s)", "Selection",
                     "Generated", "Kept", "KID (lower is better)", "Memorization: kept images near a real one"],
            rows=rows,
            caption="DCGAN training and synthetic-set selection per class",
            notes=[
                "The paper kept the last ~7% of 1,500 PNEUMONIA and 1,000 NORMAL images and reports no quality "
                "or memorization measure. KID: kernel inception distance between synthetic and real training "
                "images (of the kept set; all generated after the semicolon), on the feature extractor named. "
                "Memorization: share of kept images whose nearest real training image is at least as similar as the "
                "threshold.",
            ],
        )
    ]
    for class_name in CLASS_NAMES:
        synthetic = data.synthetic.get(class_name)
        share = synthetic.summary().get("memorization_share") if synthetic else None
        if _finite(share) and float(share) > 0:
            blocks.append(Paragraph(
                f"MEMORIZATION: {100 * float(share):.1f}% of the kept {class_name} images are near-copies of real "
                "training images.", warning=True))
    if "gan_losses.png" in figures:
        blocks.append(FigureRef("gan_losses.png", "Discriminator and generator loss per epoch."))
    for class_name in CLASS_NAMES:
        if f"gan_samples_{class_name}.png" in figures:
            blocks.append(FigureRef(f"gan_samples_{class_name}.png", f"DCGAN samples, {class_name}.", sample_grid=True))
        if f"synthetic_samples_{class_name}.png" in figures:
            blocks.append(FigureRef(f"synthetic_samples_{class_name}.png",
                                    f"Kept synthetic images beside real ones, {class_name}.", sample_grid=True))
    if data.synthetic:
        blocks.append(
            Paragraph(
                "The complete selection reports (every kept image with its nearest real neighbour, timings, the GAN "
                "they came from) are in metrics.json under synthetic.<CLASS>.selection and in each synthetic "
                "prefix's selection.json."
            )
        )
    return blocks


def _figure_section(figures: Mapping[str, bytes], wanted: list[tuple[str, str]], note: str) -> list[Block]:
    present = [FigureRef(name, caption) for name, caption in wanted if name in figures]
    if not present:
        return [Paragraph("No figure: no committed output provides the data.")]
    return [Paragraph(note), *present]


def _incomplete_section(data: RunData) -> list[Block]:
    blocks: list[Block] = []
    if data.incomplete:
        blocks.append(
            DisplayTable(
                columns=["Kind", "Prefix", "Reason"],
                rows=[[item.kind, item.prefix, item.reason] for item in data.incomplete],
                caption="Outputs skipped by this report",
                notes=["Uncommitted outputs (no _SUCCESS marker) are never read: their jobs are running, failed, "
                       "or are being rewritten. Re-run the report after they finish."],
            )
        )
    else:
        blocks.append(Paragraph(f"None: every output found under runs/{data.run_id}/ is committed and usable."))
    if data.warnings:
        blocks.append(Paragraph("Consistency warnings:", warning=True))
        blocks.append(Bullets(list(data.warnings), warning=True))
    else:
        blocks.append(Paragraph("Consistency checks passed: every metrics.json agrees with its predictions.csv, and "
                                "every classifier used the same dataset version."))
    return blocks


def _methods_section(data: RunData, analysis: Analysis) -> list[Block]:
    results = data.results
    info = data.dataset.info or {}
    split = info.get("split") or {}
    strategies = _unique(list(results["split_strategy"])) or [split.get("strategy")]
    protocols = _unique(list(results["protocol"]))
    both_sides = _unique([int(v) for v in results["patients_on_both_sides"] if _finite(v)])
    epochs = _unique([int(v) for v in results["epochs"] if _finite(v)])
    seeds = sorted(set(int(seed) for seed in results["seed"]))
    test_sizes = {
        condition: _unique([int(n) for n in results.loc[results["condition"] == condition, "n"]])
        for condition in data.conditions()
    }
    synthetic_train = _unique([int(v) for v in results.loc[results["condition"] == "augmented", "n_train_synthetic"]
                               if _finite(v)])
    rows = [
        ["Data", PAPER_SETTINGS["dataset"],
         f"{data.dataset.name} {data.dataset.version or ''}".strip()
         + (f", {info['images']:,} images" if isinstance(info.get("images"), int) else "")
         + (" — synthetic demo phantoms, not X-rays" if info.get("synthetic") else "")],
        ["Split", PAPER_SETTINGS["split"],
         f"{', '.join(str(s) for s in strategies if s)}"
         + (f", test fraction {split.get('test_fraction')}, seed {split.get('seed')}" if split else "")
         + (f"; patients on both sides: {', '.join(map(str, both_sides))}" if both_sides else "")],
        ["Synthetic images", PAPER_SETTINGS["protocol"],
         ", ".join(protocols)
         + (": synthetic images join the training split only; test images are real" if protocols == ["clean"]
            else ": CONTAMINATED — synthetic images can be test images" if "paper-merge" in protocols else "")],
        ["Test set", f"{PAPER_TEST_SETS['baseline']['total']:,} (baseline) and "
                     f"{PAPER_TEST_SETS['augmented']['total']:,} (augmented) images, inferred",
         "; ".join(f"{condition}: {', '.join(f'{n:,}' for n in sizes)} images"
                   for condition, sizes in test_sizes.items())],
        ["Synthetic training images", "≈7% of 1,500 PNEUMONIA + 1,000 NORMAL generated",
         ", ".join(f"{n:,}" for n in synthetic_train) if synthetic_train else "augmented not run"],
        ["Selection", PAPER_SETTINGS["selection"],
         "; ".join(f"{name}: {synthetic.summary().get('strategy') or 'unknown'}"
                   for name, synthetic in sorted(data.synthetic.items())) or "not run"],
        ["Classifier epochs", str(PAPER_SETTINGS["classifier_epochs"]),
         ", ".join(map(str, epochs)) if epochs else "not recorded"],
        ["Runs per model", "1", f"{len(seeds)} seed(s): {', '.join(map(str, seeds))}"],
        ["Statistics", PAPER_SETTINGS["statistics"],
         "macro P/R/F1 as the paper, plus sensitivity, specificity, ROC AUC, Wilson 95% CI of accuracy, McNemar's "
         "exact test baseline vs augmented on the same test images, mean ± sd over seeds, collapse flag"],
    ]
    for key, aspect, published in _OPTIONAL_SETTINGS:
        recorded = _unique(
            [
                metrics[key]
                for metrics in data.metrics.values()
                if isinstance(metrics.get(key), (str, int, float)) and not isinstance(metrics.get(key), bool)
            ]
        )
        if recorded:
            shown = [_OPTIMIZER_NAMES.get(value, value) if key == "optimizer" else value for value in recorded]
            rows.insert(-2, [aspect, published, ", ".join(_format(value) for value in shown)])
    text = (
        "This run uses the paper's model architectures (Table 1) and differs from the paper where its protocol "
        "inflates or hides its results; the table lists every difference the outputs record. "
    )
    if protocols == ["clean"]:
        text += ("Synthetic images were added to the training split only, so every test image is a real image "
                 "that no model saw in training (the paper merged synthetic images before splitting, which puts "
                 "them in its test set). ")
    if "patient" in strategies:
        text += ("The split groups images by patient, so no patient contributes images to both training and test "
                 "(the paper's pooled random split does). ")
    elif "paper" in strategies:
        text += "The split is the paper's pooled stratified random split, which lets a patient fall on both sides. "
    if len(seeds) > 1:
        text += f"Each model was trained with {len(seeds)} seeds and the tables report mean ± sd. "
    text += ("Every accuracy carries a 95% confidence interval, and baseline and augmented models are compared with "
             "McNemar's test on the same test images rather than by their point estimates.")
    return [
        Paragraph(text),
        DisplayTable(columns=["Aspect", "Paper", "This run"], rows=rows, caption="Paper protocol vs this run"),
    ]


#: Training settings shown in Methods when classifier outputs record them: (metrics key, aspect, paper value).
_OPTIONAL_SETTINGS: tuple[tuple[str, str, str], ...] = (
    ("image_size", "Classifier image size (px)", str(PAPER_IMAGE_SIZE)),
    ("optimizer", "Optimizer", "Adam; RMSprop for InceptionV3, SGD for ResNet50"),
    ("learning_rate", "Learning rate", f"{PAPER_LEARNING_RATE:g}"),
    ("batch_size", "Batch size", "not stated"),
    ("weights", "Backbone weights", "not stated (ImageNet implied by transfer learning)"),
)


_OPTIMIZER_NAMES = {"paper": "paper (Adam; RMSprop for InceptionV3, SGD for ResNet50)"}


# ---------------------------------------------------------------------------------------------- Markdown
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")


def _markdown_text(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def _markdown_table(table: DisplayTable) -> list[str]:
    lines = []
    if table.caption:
        lines += [f"**{_markdown_text(table.caption)}**", ""]
    lines.append("| " + " | ".join(_markdown_text(cell) for cell in table.columns) + " |")
    lines.append("|" + "|".join(" --- " for _ in table.columns) + "|")
    for index, row in enumerate(table.rows):
        cells = [_markdown_text(cell) for cell in row]
        if index in table.flagged:
            cells[0] = f"⚠ {cells[0]}"
            cells = [f"**{cell}**" if cell else cell for cell in cells]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for note in table.notes:
        lines += [f"_{_markdown_text(note)}_", ""]
    return lines


def render_markdown(document: Document) -> str:
    """``report.md``: figures are linked as ``figures/<name>`` (the report prefix holds them)."""
    lines = [f"# {_markdown_text(document.title)}", "", _markdown_text(document.subtitle), "", "Contents:", ""]
    lines += [f"{index}. {_markdown_text(section.title)}" for index, section in enumerate(document.sections, 1)]
    lines.append("")
    for section in document.sections:
        lines += [f"## {_markdown_text(section.title)}", ""]
        for block in section.blocks:
            if isinstance(block, Paragraph):
                text = _markdown_text(block.text)
                lines += [f"> **⚠ {text}**" if block.warning else text, ""]
            elif isinstance(block, Bullets):
                lines += [f"- **{_markdown_text(item)}**" if block.warning else f"- {_markdown_text(item)}"
                          for item in block.items]
                lines.append("")
            elif isinstance(block, DisplayTable):
                lines += _markdown_table(block)
            elif isinstance(block, FigureRef):
                lines += [f"![{_markdown_text(block.caption)}](figures/{block.name})", "",
                          f"_{_markdown_text(block.caption)}_", ""]
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------- HTML
_STYLE = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 2rem auto;
       max-width: 1440px; padding: 0 1rem; color: #1b1b1b; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; } .subtitle { color: #555; margin-top: 0; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2rem; margin-top: 2.2rem; }
nav ol { columns: 2; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.86rem; display: block; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
td { white-space: nowrap; } td.wrap { white-space: normal; min-width: 9rem; }
th { background: #f0f3f7; } tbody tr:nth-child(even) { background: #fafafa; }
tr.flagged, tr.flagged td { background: #fde7ea; font-weight: bold; color: #8a0016; }
caption { caption-side: top; text-align: left; font-weight: bold; padding: 0.3rem 0; }
.note { color: #555; font-size: 0.85rem; margin: 0.2rem 0; }
.warning { background: #fff3cd; border-left: 6px solid #b00020; padding: 0.6rem 0.9rem; font-weight: bold;
           color: #6b0012; }
ul.warning { padding-left: 2rem; }
figure { margin: 1rem 1rem 1rem 0; display: inline-block; vertical-align: top; max-width: 100%; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figure img.samples { width: min(100%, 720px); image-rendering: pixelated; }
figcaption { color: #444; font-size: 0.9rem; }
"""


#: Cells longer than this many characters may wrap; shorter ones (numbers, "0.92 ± 0.01") never do.
_NOWRAP_LIMIT = 18


def _html_table(table: DisplayTable) -> str:
    parts = ["<table>"]
    if table.caption:
        parts.append(f"<caption>{html.escape(table.caption)}</caption>")
    parts.append("<thead><tr>" + "".join(f"<th>{html.escape(cell)}</th>" for cell in table.columns) + "</tr></thead>")
    parts.append("<tbody>")
    for index, row in enumerate(table.rows):
        attributes = ' class="flagged"' if index in table.flagged else ""
        cells = [html.escape(cell) for cell in row]
        wrap = [len(cell) > _NOWRAP_LIMIT for cell in row]
        if index in table.flagged:
            cells[0] = "&#9888; " + cells[0]
        parts.append(
            f"<tr{attributes}>"
            + "".join(
                f'<td class="wrap">{cell}</td>' if long else f"<td>{cell}</td>" for cell, long in zip(cells, wrap)
            )
            + "</tr>"
        )
    parts.append("</tbody></table>")
    parts += [f'<p class="note">{html.escape(note)}</p>' for note in table.notes]
    return "\n".join(parts)


def render_html(document: Document, figures: Mapping[str, bytes]) -> str:
    """``index.html``: one self-contained file (inline CSS, figures as base64 PNG data URIs, no scripts).

    Raises:
        ValueError: If a section refers to a figure missing from ``figures``.
    """
    body = [
        f"<h1>{html.escape(document.title)}</h1>",
        f'<p class="subtitle">{html.escape(document.subtitle)}</p>',
        "<nav><ol>"
        + "".join(f'<li><a href="#{html.escape(s.anchor)}">{html.escape(s.title)}</a></li>' for s in document.sections)
        + "</ol></nav>",
    ]
    for section in document.sections:
        body.append(f'<section id="{html.escape(section.anchor)}">')
        body.append(f"<h2>{html.escape(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, Paragraph):
                if block.warning:
                    body.append(f'<p class="warning"><strong>&#9888; {html.escape(block.text)}</strong></p>')
                else:
                    body.append(f"<p>{html.escape(block.text)}</p>")
            elif isinstance(block, Bullets):
                css = ' class="warning"' if block.warning else ""
                body.append(f"<ul{css}>" + "".join(f"<li>{html.escape(item)}</li>" for item in block.items) + "</ul>")
            elif isinstance(block, DisplayTable):
                body.append(_html_table(block))
            elif isinstance(block, FigureRef):
                if block.name not in figures:
                    raise ValueError(f"The document refers to a missing figure. Received: name={block.name!r}")
                encoded = base64.b64encode(figures[block.name]).decode("ascii")
                css = ' class="samples"' if block.sample_grid else ""
                body.append(
                    f'<figure><img{css} src="data:image/png;base64,{encoded}" alt="{html.escape(block.caption)}">'
                    f"<figcaption>{html.escape(block.caption)} ({html.escape(block.name)})</figcaption></figure>"
                )
        body.append("</section>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(document.title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )

