"""The report as a document: sections of paragraphs, lists, tables and figures, rendered twice from the same
model — ``report.md`` (figures linked as ``figures/<name>``) and a self-contained ``index.html`` (figures embedded
as base64 ``data:`` URIs, styles inline), so one HTML file is a complete Argo artifact.

Every piece of text that comes from the store (run id, dataset name, model names, selection strategies, error
reasons) is escaped: :func:`html.escape` for HTML, backslash escapes for Markdown.

Modules: :mod:`~cxrcore.report.render.blocks` (the document model), one module per group of sections
(:mod:`~cxrcore.report.render.header`, :mod:`~cxrcore.report.render.results`, :mod:`~cxrcore.report.render.gan`,
:mod:`~cxrcore.report.render.explanations`, :mod:`~cxrcore.report.render.methods`, ...),
:mod:`~cxrcore.report.render.build` (:func:`build_document`), and the two renderers
:mod:`~cxrcore.report.render.to_markdown` and :mod:`~cxrcore.report.render.to_html`.
"""

from __future__ import annotations

from cxrcore.report.render.blocks import SECTION_TITLES, Bullets, Document, FigureRef, Paragraph, Section
from cxrcore.report.render.build import build_document
from cxrcore.report.render.to_html import render_html
from cxrcore.report.render.to_markdown import render_markdown

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
