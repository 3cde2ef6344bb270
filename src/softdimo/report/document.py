"""The report as plain data: sections of text, tables, plots and sample grids, each number with its source.

A :class:`Source` says where a number comes from (results file, the command that wrote it, the
evaluator and the sample count N). Every number :class:`Cell` carries one; writers
(:mod:`~softdimo.report.markdown`, :mod:`~softdimo.report.html`) footnote it. Sections build these
objects; writers never read results files.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Union


@dataclass(frozen=True)
class Source:
    """Provenance of a number: results file, command, evaluator and N (as written there)."""

    file: str  # results file, relative to the results folder
    command: str  # the command that wrote the file
    evaluator: str = "not stated"  # e.g. the FID network, the GenEval-like scorer, "wall clock"
    n: str = "not stated"  # sample count N (or, for timings, batch × repeats)
    commit: str = ""  # git commit of the run

    def describe(self) -> str:
        commit = f", commit {self.commit[:12]}" if self.commit else ""
        return f"evaluator: {self.evaluator}; N = {self.n}; command: `{self.command}` ({self.file}{commit})"


@dataclass
class Cell:
    """One table cell: its text, and the source of the number it shows (None for labels)."""

    text: str
    source: Source | None = None

    @property
    def is_number(self) -> bool:
        return self.source is not None


NOT_MEASURED = "—"


def fmt_number(value: Any, digits: int = 2, suffix: str = "") -> str:
    """A number as text (``digits`` after the point; ints and bools as such); None → "—"."""
    if value is None:
        return NOT_MEASURED
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}".replace(",", " ") + suffix if abs(value) >= 10000 else f"{value}{suffix}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value != 0 and abs(value) < 10 ** -digits:
            return f"{value:.{max(1, digits)}e}{suffix}"
        return f"{value:.{digits}f}{suffix}"
    return str(value)


def num(value: Any, source: Source, digits: int = 2, suffix: str = "") -> Cell:
    """A number cell (``value`` None → "—", still with its source: the file exists, the number does not)."""
    return Cell(fmt_number(value, digits, suffix), source if value is not None else None)


def label(text: Any) -> Cell:
    return Cell(str(text))


@dataclass
class Table:
    """A titled table; ``rows`` hold :class:`Cell` objects (plain strings are labels)."""

    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    note: str = ""  # one line under the table (what the numbers mean)

    def add(self, *cells: Cell | str) -> None:
        self.rows.append([c if isinstance(c, Cell) else label(c) for c in cells])

    def sources(self) -> list[Source]:
        """The distinct sources of the table's numbers, in order of first use."""
        out: list[Source] = []
        for row in self.rows:
            for c in row:
                if c.source is not None and c.source not in out:
                    out.append(c.source)
        return out


@dataclass
class Figure:
    """An inline SVG plot with the sources of its points."""

    name: str  # file stem of the written asset (unique in a report)
    title: str
    svg: str
    sources: list[Source] = field(default_factory=list)
    caption: str = ""


@dataclass
class GridRow:
    """One model's strip of samples in a side-by-side grid."""

    label: str  # e.g. "teacher N=16 cfg=2"
    sampler: str  # the sampler's knobs, as text
    png: bytes  # the strip, a PNG
    source: Source  # command that reproduces the strip (evaluator: none)


@dataclass
class ImageGrid:
    """Samples of several models with the same conditions and seed, one strip per model."""

    name: str
    title: str
    conditions: list[str]  # the labels / prompts of the columns, in order
    rows: list[GridRow] = field(default_factory=list)
    caption: str = ""
    scale: int = 3  # display magnification (pixelated) in HTML


@dataclass
class Text:
    """A paragraph; `code` spans in backquotes."""

    text: str


Block = Union[Text, Table, Figure, ImageGrid]


@dataclass
class Section:
    """One part of the report, built from one (or a few related) results files."""

    title: str
    files: list[str] = field(default_factory=list)  # the results files it reads
    blocks: list[Block] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # missing keys, malformed or absent files

    @property
    def anchor(self) -> str:
        """GitHub's heading slug: lower case, punctuation dropped, spaces → hyphens."""
        return "".join(ch for ch in self.title.lower() if ch.isalnum() or ch in " -_").replace(" ", "-")


@dataclass
class Report:
    title: str
    intro: str
    sections: list[Section] = field(default_factory=list)

    def numbers(self) -> int:
        """How many number cells the report's tables hold."""
        return sum(c.is_number for s in self.sections for b in s.blocks if isinstance(b, Table)
                   for row in b.rows for c in row)


__all__ = ["Source", "Cell", "NOT_MEASURED", "fmt_number", "num", "label", "Table", "Figure", "GridRow",
           "ImageGrid", "Text", "Block", "Section", "Report"]
