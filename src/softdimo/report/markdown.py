"""The Markdown writer: ``report.md`` plus ``assets/`` (SVG plots, PNG sample grids).

Numbers are footnoted per table: when every number of a table comes from one source, one line
under the table names it ("All numbers: evaluator …; N = …; command: …"); otherwise each number
carries a marker ``[k]`` and the sources are listed under the table.
"""
from __future__ import annotations

from .document import Cell, Figure, ImageGrid, Report, Section, Source, Table, Text


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def source_lines(sources: list[Source]) -> list[str]:
    if not sources:
        return []
    if len(sources) == 1:
        return [f"*All numbers:* {sources[0].describe()}", ""]
    return ["*Sources:*", ""] + [f"{k}. {s.describe()}" for k, s in enumerate(sources, 1)] + [""]


def table_md(t: Table) -> list[str]:
    sources = t.sources()
    marks = len(sources) > 1

    def show(c: Cell) -> str:
        if marks and c.source is not None:
            return _cell(f"{c.text} [{sources.index(c.source) + 1}]")
        return _cell(c.text)

    out = [f"### {t.title}", ""]
    if not t.rows:
        return out + ["*(no rows)*", ""]
    out.append("| " + " | ".join(_cell(c) for c in t.columns) + " |")
    out.append("|" + "---|" * len(t.columns))
    for row in t.rows:
        cells = [show(c) for c in row] + [""] * (len(t.columns) - len(row))
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    if t.note:
        out += [t.note, ""]
    return out + source_lines(sources)


def figure_md(f: Figure, asset: str) -> list[str]:
    alt = f.title.replace("[", "(").replace("]", ")")
    out = [f"### {f.title}", "", f"![{alt}]({asset})", ""]
    if f.caption:
        out += [f.caption, ""]
    return out + source_lines(f.sources)


def grid_md(g: ImageGrid, assets: dict[str, str]) -> list[str]:
    out = [f"### {g.title}", ""]
    if g.caption:
        out += [g.caption, ""]
    if g.conditions:
        out += ["Columns (left to right): " + ", ".join(f"`{c}`" for c in g.conditions), ""]
    out += ["| model | sampler | samples |", "|---|---|---|"]
    for r in g.rows:
        alt = _cell(r.label).replace("[", "(").replace("]", ")")
        out.append(f"| {_cell(r.label)} | {_cell(r.sampler)} | ![{alt}]({assets[r.label]}) |")
    out.append("")
    out += ["*Commands:*", ""] + [f"- {r.label}: `{r.source.command}`" for r in g.rows] + [""]
    return out


def section_md(s: Section, assets: dict[int, object]) -> list[str]:
    out = [f"## {s.title}", ""]
    if s.files:
        out += ["Results files: " + ", ".join(f"`{f}`" for f in s.files), ""]
    for p in s.problems:
        out.append(f"> {p}")
    if s.problems:
        out.append("")
    for b in s.blocks:
        if isinstance(b, Text):
            out += [b.text, ""]
        elif isinstance(b, Table):
            out += table_md(b)
        elif isinstance(b, Figure):
            out += figure_md(b, str(assets[id(b)]))
        elif isinstance(b, ImageGrid):
            out += grid_md(b, assets[id(b)])  # type: ignore[arg-type]
    return out


def render_markdown(report: Report, assets: dict[int, object]) -> str:
    """The Markdown text; ``assets`` maps ``id(figure)`` → its relative path, ``id(grid)`` → {row label: path}."""
    out = [f"# {report.title}", "", report.intro, "", "## Contents", ""]
    out += [f"- [{s.title}](#{s.anchor})" for s in report.sections] + [""]
    for s in report.sections:
        out += section_md(s, assets)
    return "\n".join(out).rstrip() + "\n"


__all__ = ["render_markdown", "table_md", "source_lines"]
