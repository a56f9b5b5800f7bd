"""The report as a document model: sections of paragraphs, lists, tables and figures, and the helpers that turn
collected values into text. Renderers (:mod:`~cxrcore.report.render.to_markdown`,
:mod:`~cxrcore.report.render.to_html`) draw the same model twice."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from cxrcore.report.tables import DisplayTable

__all__ = [
    "SECTION_TITLES",
    "Block",
    "Bullets",
    "Document",
    "FigureRef",
    "Paragraph",
    "Section",
    "finite",
    "format_value",
    "unique",
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
    "explanations": "Explanations (Grad-CAM)",
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


def finite(value: Any) -> bool:
    """Whether ``value`` converts to a finite float (``None`` and bools never do)."""
    if value is None or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def format_value(value: Any, digits: int = 4) -> str:
    """``value`` as a table cell: ``–`` when missing, yes/no, thousands separators, ``digits`` significant."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if math.isfinite(value) else "–"
    return str(value)


def unique(values: Sequence[Any]) -> list[Any]:
    """Distinct non-missing values, numbers before strings, each group in natural order."""
    present = {value for value in values if value is not None and not (isinstance(value, float) and math.isnan(value))}
    numbers = sorted(value for value in present if isinstance(value, (int, float)))
    return numbers + sorted(str(value) for value in present if not isinstance(value, (int, float)))
