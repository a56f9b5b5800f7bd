"""The report's last section: how this run's protocol differs from the paper's, aspect by aspect."""

from __future__ import annotations

from typing import Any

from cxrcore.report.collect import RunData
from cxrcore.report.paper import PAPER_SETTINGS, PAPER_TEST_SETS
from cxrcore.report.render.blocks import Block, Paragraph, finite, format_value, unique
from cxrcore.report.tables import DisplayTable
from cxrcore.vocab import PAPER_IMAGE_SIZE, PAPER_LEARNING_RATE

__all__ = ["methods_section"]

#: Training settings shown in Methods when classifier outputs record them: (metrics key, aspect, paper value).
_OPTIONAL_SETTINGS: tuple[tuple[str, str, str], ...] = (
    ("image_size", "Classifier image size (px)", str(PAPER_IMAGE_SIZE)),
    ("optimizer", "Optimizer", "Adam; RMSprop for InceptionV3, SGD for ResNet50"),
    ("learning_rate", "Learning rate", f"{PAPER_LEARNING_RATE:g}"),
    ("batch_size", "Batch size", "not stated"),
    ("weights", "Backbone weights", "not stated (ImageNet implied by transfer learning)"),
)


_OPTIMIZER_NAMES = {"paper": "paper (Adam; RMSprop for InceptionV3, SGD for ResNet50)"}


def methods_section(data: RunData) -> list[Block]:
    """The ``methods`` section: a summary paragraph and the paper-vs-this-run table.

    Args:
        data: The collected run.

    Returns:
        The section's blocks.
    """
    results = data.results
    split = (data.dataset.info or {}).get("split") or {}
    strategies = unique(list(results["split_strategy"])) or [split.get("strategy")]
    protocols = unique(list(results["protocol"]))
    seeds = sorted(set(int(seed) for seed in results["seed"]))
    rows = _protocol_rows(data, strategies, protocols, seeds)
    for key, aspect, published in _OPTIONAL_SETTINGS:
        recorded = _recorded(data, key)
        if recorded:
            rows.insert(-2, [aspect, published, _shown(data, key, recorded)])
    return [
        Paragraph(_summary_text(strategies, protocols, seeds)),
        DisplayTable(columns=["Aspect", "Paper", "This run"], rows=rows, caption="Paper protocol vs this run"),
    ]


def _protocol_rows(data: RunData, strategies: list[Any], protocols: list[Any], seeds: list[int]) -> list[list[str]]:
    """The aspects every run records: data, split, synthetic images, test set, selection, epochs, seeds, statistics."""
    results = data.results
    info = data.dataset.info or {}
    split = info.get("split") or {}
    both_sides = unique([int(v) for v in results["patients_on_both_sides"] if finite(v)])
    epochs = unique([int(v) for v in results["epochs"] if finite(v)])
    test_sizes = {
        condition: unique([int(n) for n in results.loc[results["condition"] == condition, "n"]])
        for condition in data.conditions()
    }
    synthetic_train = unique([int(v) for v in results.loc[results["condition"] == "augmented", "n_train_synthetic"]
                               if finite(v)])
    return [
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


def _shown(data: RunData, key: str, recorded: list[Any]) -> str:
    """A recorded setting as the table shows it; when models differ (e.g. one learning rate per model), each value
    is followed by the models that used it."""

    def name(value: Any) -> str:
        return format_value(_OPTIMIZER_NAMES.get(value, value) if key == "optimizer" else value)

    if len(recorded) == 1:
        return name(recorded[0])
    parts = []
    for value in recorded:
        models = unique([metrics.get("model") for metrics in data.metrics.values() if metrics.get(key) == value])
        parts.append(f"{name(value)} ({', '.join(str(model) for model in models)})" if models else name(value))
    return "; ".join(parts)


def _recorded(data: RunData, key: str) -> list[Any]:
    """The distinct values of ``key`` the classifiers' ``metrics.json`` record (text and numbers only)."""
    return unique(
        [
            metrics[key]
            for metrics in data.metrics.values()
            if isinstance(metrics.get(key), (str, int, float)) and not isinstance(metrics.get(key), bool)
        ]
    )


def _summary_text(strategies: list[Any], protocols: list[Any], seeds: list[int]) -> str:
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
    return text
