"""``report.md``: the document in Markdown, figures linked as ``figures/<name>``; text from the store is
backslash-escaped."""

from __future__ import annotations

import re

from cxrcore.report.render.blocks import Bullets, Document, FigureRef, Paragraph
from cxrcore.report.tables import DisplayTable

__all__ = ["render_markdown"]

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
