"""``index.html``: the document as one self-contained page (inline CSS, figures as base64 ``data:`` URIs, no
scripts), so one file is a complete Argo artifact; text from the store goes through :func:`html.escape`."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping

from cxrcore.report.render.blocks import Bullets, Document, FigureRef, Paragraph
from cxrcore.report.tables import DisplayTable

__all__ = ["render_html"]

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

