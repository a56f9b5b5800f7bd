"""The paper's published numbers (Talukdar et al., Tables 2 and 3 and Section 4 text) as data.

Everything here is transcribed from ``paper/paper.md``; nothing is computed from our runs. Two quantities the
paper does not print are *inferred* from its own numbers and labelled so:

- The test sets. ResNet50 and EfficientNetB0 predict PNEUMONIA for every image (macro precision 0.36, recall
  0.50, F1 0.42) and "detected 855 pneumonia cases" at 72.95% accuracy, so the baseline test set holds
  855 PNEUMONIA + 317 NORMAL = 1,172 images (20% of 5,856). After DCGAN they detect 915 at 72.97%, so the
  augmented test set holds 915 + 339 = 1,254 images: 82 more than the real test set, i.e. synthetic images
  were merged before the split and scored as test images (the paper's "contaminated" protocol).
- The full confusion matrices, from the correct counts the text quotes and the inferred test sets. Every such
  matrix reproduces the published test accuracy to two decimals, which is how the inference is checked.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from cxrcore.vocab import (
    PAPER_CLASSIFIER_EPOCHS,
    PAPER_GAN_EPOCHS,
    PAPER_GAN_IMAGE_SIZE,
    PAPER_GENERATED_IMAGES,
    PAPER_IMAGE_SIZE,
    PAPER_KEEP_FRACTION,
    PAPER_LEARNING_RATE,
    PAPER_TEST_FRACTION,
)

__all__ = [
    "PAPER_CITATION",
    "PAPER_CONFUSION_COUNTS",
    "PAPER_NOTES",
    "PAPER_SETTINGS",
    "PAPER_TABLES",
    "PAPER_TEST_SETS",
    "PaperRow",
    "paper_confusion_matrix",
    "paper_frame",
    "paper_row",
]

PAPER_CITATION = (
    "Talukdar, Siddika, Abir, Hassan, Hossain: Medical X-ray Image Classification Employing DCGAN and CNN "
    "Transfer Learning Techniques"
)


@dataclasses.dataclass(frozen=True)
class PaperRow:
    """One row of the paper's Table 2 (baseline) or Table 3 (augmented).

    Attributes:
        model: Our model name (``custom_cnn``, ``inceptionv3``, ...).
        paper_name: The model's name as printed in the paper.
        precision: Macro precision.
        recall: Macro recall.
        f1: Macro F1 score.
        train_accuracy_percent: Training accuracy in percent (the paper prints "1.00" for VGG16 and
            DenseNet201 in this percent column; read as 100%).
        test_accuracy_percent: Test accuracy in percent.
        loss: Test loss.
        train_time_s: Training time in seconds.
    """

    model: str
    paper_name: str
    precision: float
    recall: float
    f1: float
    train_accuracy_percent: float
    test_accuracy_percent: float
    loss: float
    train_time_s: float


#: Table 2 ("without DCGAN") and Table 3 ("DCGAN applied"), keyed by our condition names.
PAPER_TABLES: dict[str, tuple[PaperRow, ...]] = {
    "baseline": (
        PaperRow("custom_cnn", "Custom CNN", 0.92, 0.93, 0.92, 99.15, 94.03, 0.2923, 160),
        PaperRow("inceptionv3", "Inception V3", 0.92, 0.92, 0.92, 99.22, 93.69, 0.9448, 129),
        PaperRow("resnet50", "Resnet50", 0.36, 0.50, 0.42, 73.90, 72.95, 0.5270, 133),
        PaperRow("efficientnetb0", "EfficientNetB0", 0.36, 0.50, 0.42, 73.03, 72.95, 0.5847, 129),
        PaperRow("vgg16", "VGG16", 0.96, 0.94, 0.95, 100.0, 96.16, 0.2279, 93),
        PaperRow("densenet201", "DenseNet201", 0.97, 0.95, 0.96, 100.0, 96.84, 0.1961, 258),
        PaperRow("xception", "Xception", 0.93, 0.92, 0.92, 99.74, 94.03, 0.2504, 132),
    ),
    "augmented": (
        PaperRow("custom_cnn", "Custom CNN", 0.95, 0.95, 0.95, 99.23, 96.09, 0.1865, 179),
        PaperRow("inceptionv3", "Inception V3", 0.95, 0.94, 0.94, 99.63, 95.53, 0.7313, 163),
        PaperRow("resnet50", "Resnet50", 0.36, 0.50, 0.42, 75.05, 72.97, 0.5249, 182),
        PaperRow("efficientnetb0", "EfficientNetB0", 0.36, 0.50, 0.42, 74.21, 72.97, 0.5845, 144),
        PaperRow("vgg16", "VGG16", 0.96, 0.96, 0.96, 100.0, 96.89, 0.1838, 152),
        PaperRow("densenet201", "DenseNet201", 0.96, 0.96, 0.96, 100.0, 96.81, 0.1563, 328),
        PaperRow("xception", "Xception", 0.92, 0.94, 0.93, 98.88, 94.26, 0.2593, 209),
    ),
}

#: Correct predictions quoted in Sections 4.3-4.4: ``tp`` = PNEUMONIA detected, ``tn`` = NORMAL detected.
#: ``None`` where the text gives no number (DenseNet201 before DCGAN; NORMAL of the collapsed models).
PAPER_CONFUSION_COUNTS: dict[str, dict[str, dict[str, int | None]]] = {
    "baseline": {
        "custom_cnn": {"tp": 818, "tn": 284},
        "inceptionv3": {"tp": 822, "tn": 276},
        "resnet50": {"tp": 855, "tn": None},
        "efficientnetb0": {"tp": 855, "tn": None},
        "vgg16": {"tp": 839, "tn": 288},
        "densenet201": {"tp": None, "tn": None},
        "xception": {"tp": 821, "tn": 281},
    },
    "augmented": {
        "custom_cnn": {"tp": 887, "tn": 318},
        "inceptionv3": {"tp": 891, "tn": 307},
        "resnet50": {"tp": 915, "tn": None},
        "efficientnetb0": {"tp": 915, "tn": None},
        "vgg16": {"tp": 897, "tn": 318},
        "densenet201": {"tp": 899, "tn": 315},
        "xception": {"tp": 865, "tn": 317},
    },
}

#: Test-set composition inferred from the collapsed models' rows (see the module docstring).
PAPER_TEST_SETS: dict[str, dict[str, int]] = {
    "baseline": {"NORMAL": 317, "PNEUMONIA": 855, "total": 1172},
    "augmented": {"NORMAL": 339, "PNEUMONIA": 915, "total": 1254},
}

#: The paper's protocol, for the report's "what differs" paragraph.
PAPER_SETTINGS: dict[str, Any] = {
    "dataset": "Kaggle Chest X-Ray Images (Pneumonia), 5,856 images (73% pneumonia, 27% normal)",
    "images_total": 5856,
    "split": "pooled, stratified random 80/20 (images of one patient can fall on both sides)",
    "test_fraction": PAPER_TEST_FRACTION,
    "image_size": PAPER_IMAGE_SIZE,
    "gan_image_size": PAPER_GAN_IMAGE_SIZE,
    "gan_epochs": dict(PAPER_GAN_EPOCHS),
    "gan_generated": dict(PAPER_GENERATED_IMAGES),
    "selection": f"last ~{PAPER_KEEP_FRACTION:.0%} of the generated images",
    "keep_fraction": PAPER_KEEP_FRACTION,
    "classifier_epochs": PAPER_CLASSIFIER_EPOCHS,
    "learning_rate": PAPER_LEARNING_RATE,
    "optimizers": "Adam, except RMSprop (InceptionV3) and SGD (ResNet50)",
    "protocol": "synthetic images merged into the pool before the 80/20 split (test set contains synthetic images)",
    "seeds": 1,
    "statistics": "point estimates only: no confidence interval, no AUC, no significance test, one run per model",
}

#: Facts about the paper's numbers that the report states beside the comparison.
PAPER_NOTES: tuple[str, ...] = (
    "Precision, recall and F1 are macro averages over the two classes: the ResNet50/EfficientNetB0 rows "
    "(0.36/0.50/0.42 at 72.95%) are exactly a model that predicts PNEUMONIA for every image.",
    "ResNet50 and EfficientNetB0 are collapsed to one class in both tables; the paper reports them as results "
    "without flagging them.",
    "The augmented test set has 1,254 images against 1,172 for the baseline (inferred from the collapsed rows): "
    "synthetic images were scored as test images, so Table 3 is not comparable with Table 2.",
    "The paper prints train accuracy 1.00 for VGG16 and DenseNet201 in a percent column; read here as 100%.",
    "One run per model and no significance test: a change such as +0.73 points (VGG16) is smaller than the "
    "half-width of the 95% confidence interval of one accuracy near 96% on 1,172 test images (about 1.1 points).",
)


def paper_row(condition: str, model: str) -> PaperRow | None:
    """The paper's row for ``model`` under ``condition``, or ``None`` when the paper has no such row."""
    if condition not in PAPER_TABLES:
        raise ValueError(f"condition must be one of {tuple(PAPER_TABLES)}. Received: condition={condition!r}")
    for row in PAPER_TABLES[condition]:
        if row.model == model:
            return row
    return None


def paper_confusion_matrix(condition: str, model: str) -> dict[str, Any] | None:
    """The paper's confusion matrix of one model, quoted counts completed from the inferred test set.

    Args:
        condition: ``baseline`` or ``augmented``.
        model: Our model name.

    Returns:
        ``{"matrix": [[tn, fp], [fn, tp]], "quoted": {"tp": .., "tn": ..}, "derived": [names], "accuracy":
        implied test accuracy}``, or ``None`` when the text quotes no count for the model. A collapsed row's
        missing NORMAL count is derived from its table row (0 correct NORMAL when recall is 0.50).
    """
    if condition not in PAPER_CONFUSION_COUNTS:
        raise ValueError(
            f"condition must be one of {tuple(PAPER_CONFUSION_COUNTS)}. Received: condition={condition!r}"
        )
    quoted = PAPER_CONFUSION_COUNTS[condition].get(model)
    if quoted is None or quoted["tp"] is None:
        return None
    test_set = PAPER_TEST_SETS[condition]
    derived = ["fn", "fp"]
    tp = int(quoted["tp"])
    tn = quoted["tn"]
    if tn is None:
        row = paper_row(condition, model)
        if row is None or row.recall != 0.50 or tp != test_set["PNEUMONIA"]:
            return None
        tn = 0
        derived.append("tn")
    fn = test_set["PNEUMONIA"] - tp
    fp = test_set["NORMAL"] - int(tn)
    return {
        "matrix": [[int(tn), fp], [fn, tp]],
        "quoted": dict(quoted),
        "derived": derived,
        "accuracy": (tp + int(tn)) / test_set["total"],
    }


def paper_frame() -> pd.DataFrame:
    """Both tables as one tidy frame: one row per (condition, model), the paper's columns plus counts.

    Returns:
        Columns ``condition, model, paper_name, precision, recall, f1, train_accuracy_percent,
        test_accuracy_percent, loss, train_time_s, tp_quoted, tn_quoted``.
    """
    rows = []
    for condition, table in PAPER_TABLES.items():
        for row in table:
            counts = PAPER_CONFUSION_COUNTS[condition].get(row.model, {})
            rows.append(
                {
                    "condition": condition,
                    **dataclasses.asdict(row),
                    "tp_quoted": counts.get("tp"),
                    "tn_quoted": counts.get("tn"),
                }
            )
    return pd.DataFrame(rows)
