"""The HTML writer: one self-contained page (inline CSS, inline SVG plots, PNG grids as data URIs; no scripts).

Every number cell carries its source twice: a footnote marker (or the table's single-source line)
and a ``title`` attribute (evaluator, N, command) shown on hover.
"""
from __future__ import annotations

import base64
import io
import re
from html import escape

from PIL import Image

from .document import Figure, ImageGrid, Report, Section, Source, Table, Text

CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 24px auto; max-width: 1180px; color: #1a1a1a;
       line-height: 1.45; padding: 0 16px; }
h1 { border-bottom: 2px solid #333; padding-bottom: 6px; }
h2 { border-bottom: 1px solid #bbb; padding-bottom: 4px; margin-top: 40px; }
h3 { margin-top: 26px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border: 1px solid #c8c8c8; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.num sup { color: #666; font-size: 10px; margin-left: 2px; }
code { background: #f4f4f4; padding: 0 3px; font-size: 12px; word-break: break-all; }
.sources { font-size: 12px; color: #444; margin: 2px 0 14px 0; }
.sources ol { margin: 2px 0; padding-left: 22px; }
.problem { background: #fff6e0; border-left: 4px solid #e0a000; padding: 4px 10px; margin: 4px 0; font-size: 13px; }
.note { font-size: 13px; color: #333; }
img.grid { image-rendering: pixelated; image-rendering: crisp-edges; display: block; max-width: 100%; height: auto; }
figure { margin: 10px 0; }
figcaption { font-size: 13px; color: #333; }
nav ul { columns: 2; }
"""


def _inline(text: str) -> str:
    """Escape, then render `code` spans and **bold**."""
    t = escape(text)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", t)


def sources_html(sources: list[Source]) -> str:
    if not sources:
        return ""
    if len(sources) == 1:
        return f'<div class="sources"><i>All numbers:</i> {_inline(sources[0].describe())}</div>'
    items = "".join(f"<li>{_inline(s.describe())}</li>" for s in sources)
    return f'<div class="sources"><i>Sources:</i><ol>{items}</ol></div>'


def table_html(t: Table) -> str:
    sources = t.sources()
    marks = len(sources) > 1
    out = [f"<h3>{escape(t.title)}</h3>"]
    if not t.rows:
        return "".join(out) + "<p><i>(no rows)</i></p>"
    out.append("<table><thead><tr>" + "".join(f"<th>{escape(c)}</th>" for c in t.columns) + "</tr></thead><tbody>")
    for row in t.rows:
        cells = []
        for c in row:
            if c.source is None:
                cells.append(f"<td>{_inline(c.text)}</td>")
                continue
            sup = f"<sup>{sources.index(c.source) + 1}</sup>" if marks else ""
            cells.append(f'<td class="num" title="{escape(c.source.describe())}">{escape(c.text)}{sup}</td>')
        cells += ["<td></td>"] * (len(t.columns) - len(row))
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    if t.note:
        out.append(f'<p class="note">{_inline(t.note)}</p>')
    out.append(sources_html(sources))
    return "\n".join(out)


def figure_html(f: Figure) -> str:
    cap = f"<figcaption>{_inline(f.caption)}</figcaption>" if f.caption else ""
    return f"<h3>{escape(f.title)}</h3><figure>{f.svg}{cap}</figure>{sources_html(f.sources)}"


def _png_size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as im:
        return im.size


def grid_html(g: ImageGrid) -> str:
    out = [f"<h3>{escape(g.title)}</h3>"]
    if g.caption:
        out.append(f'<p class="note">{_inline(g.caption)}</p>')
    if g.conditions:
        out.append('<p class="note">Columns (left to right): ' +
                   ", ".join(f"<code>{escape(c)}</code>" for c in g.conditions) + "</p>")
    out.append("<table><thead><tr><th>model</th><th>sampler</th><th>samples</th></tr></thead><tbody>")
    for r in g.rows:
        w, h = _png_size(r.png)
        data = base64.b64encode(r.png).decode()
        out.append(f"<tr><td>{escape(r.label)}</td><td>{_inline(r.sampler)}</td><td>"
                   f'<img class="grid" alt="{escape(r.label)}" width="{w * g.scale}" height="{h * g.scale}" '
                   f'title="{escape(r.source.describe())}" src="data:image/png;base64,{data}"></td></tr>')
    out.append("</tbody></table>")
    items = "".join(f"<li>{escape(r.label)}: <code>{escape(r.source.command)}</code></li>" for r in g.rows)
    out.append(f'<div class="sources"><i>Commands:</i><ul>{items}</ul></div>')
    return "\n".join(out)


def section_html(s: Section) -> str:
    out = [f'<section id="{s.anchor}"><h2>{escape(s.title)}</h2>']
    if s.files:
        out.append('<p class="note">Results files: ' + ", ".join(f"<code>{escape(f)}</code>" for f in s.files) + "</p>")
    out += [f'<div class="problem">{_inline(p)}</div>' for p in s.problems]
    for b in s.blocks:
        if isinstance(b, Text):
            out.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Table):
            out.append(table_html(b))
        elif isinstance(b, Figure):
            out.append(figure_html(b))
        elif isinstance(b, ImageGrid):
            out.append(grid_html(b))
    out.append("</section>")
    return "\n".join(out)


def render_html(report: Report) -> str:
    """The whole page as one string (module docstring)."""
    toc = "".join(f'<li><a href="#{s.anchor}">{escape(s.title)}</a></li>' for s in report.sections)
    body = "\n".join(section_html(s) for s in report.sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(report.title)}</title>'
            f"<style>{CSS}</style></head><body>\n<h1>{escape(report.title)}</h1>\n<p>{_inline(report.intro)}</p>\n"
            f"<nav><h2>Contents</h2><ul>{toc}</ul></nav>\n{body}\n</body></html>\n")


__all__ = ["render_html", "table_html", "CSS"]
