"""`softdimo report`: build ``report.md`` and a self-contained ``report.html`` from a folder of results JSON.

Order: overview (headline numbers), the demo's stages (``demo.json``), the sections of
:data:`softdimo.report.sections.SECTIONS`,
the sample grids (``--grids``), every results file no section read ("Other results"), and the
inventory of results files (status, commit, date, command; absent ones "not yet measured").
Assets of the Markdown report go to ``OUT/assets/`` (``fig-*.svg`` plots, ``grid-*.png`` strips;
earlier ones are replaced); the HTML page embeds them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import DataError
from ..pretrained import atomic_write_bytes
from . import grids
from .document import Figure, ImageGrid, Report
from .html import render_html
from .markdown import render_markdown
from .schema import ResultsDir
from .sections import SECTIONS, demo, other, overview

INTRO = ("Built by `softdimo report` from the results JSON files in {results}. Every number names its evaluator, "
         "its sample count N and the command that produced it: in the line or numbered list under its table, and "
         "on hover in the HTML page. A \"—\" cell is a number its results file does not hold.")


@dataclass
class ReportOptions:
    """What `softdimo report` builds."""

    results: str = "benchmarks/results"  # folder of results JSON files
    overlay: list[str] = field(default_factory=list)  # further folders whose files replace same-named ones of results
    out: str = "report"  # output folder: report.md, report.html, assets/
    grids: bool = True  # draw side-by-side sample grids from the checkpoints (needs sampling)
    checkpoints: str = "checkpoints"  # folder of the shipped generator folders used by the grids
    device: str = "auto"  # device of the grid sampling
    seed: int = 0  # seed of the grids
    title: str = "softdimo results report"


@dataclass
class ReportSummary:
    """Where the report went and what it holds."""

    markdown: Path
    html: Path
    assets: list[Path] = field(default_factory=list)
    sections: int = 0
    numbers: int = 0
    not_measured: list[str] = field(default_factory=list)  # expected results files that are absent
    problems: list[str] = field(default_factory=list)  # every problem noted by the sections


def build(opts: ReportOptions) -> Report:
    """The report as data (no files written)."""
    root = Path(opts.results)
    if not root.is_dir():
        raise DataError(f"--results {root} is not a folder; pass the folder of results JSON files "
                        f"(e.g. benchmarks/results).")
    rd = ResultsDir(root, opts.overlay)
    sections = [demo.section(rd), *(s for s in (make(rd) for make in SECTIONS) if s is not None)]
    if opts.grids:
        device = ("cuda" if torch.cuda.is_available() else "cpu") if opts.device == "auto" else opts.device
        sections.append(grids.section(opts.checkpoints, opts.seed, device))
    rest = [rel for rel in rd.all_files() if rel not in rd.used]
    if rest:
        sections.append(other.section(rd, rest))
    folders = ", ".join(f"`{p}`" for p in [opts.results, *opts.overlay])
    return Report(opts.title, INTRO.format(results=folders),
                  [overview.section(rd), *sections, overview.inventory(rd)])


def write(report: Report, out: str | Path) -> tuple[Path, Path, list[Path]]:
    """Write ``report.md`` (+ assets) and ``report.html`` into ``out``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; give a folder for report.md, report.html and assets/.")
    assets_dir = out / "assets"
    assets_dir.mkdir(parents=True, exist_ok=True)
    for old in list(assets_dir.glob("fig-*.svg")) + list(assets_dir.glob("grid-*.png")):
        old.unlink()
    refs: dict[int, object] = {}
    written: list[Path] = []
    used: set[str] = set()

    def unique(stem: str) -> str:
        name, k = stem, 2
        while name in used:
            name, k = f"{stem}-{k}", k + 1
        used.add(name)
        return name

    for s in report.sections:
        for b in s.blocks:
            if isinstance(b, Figure):
                path = assets_dir / f"fig-{unique(b.name)}.svg"
                atomic_write_bytes(path, b.svg.encode())
                refs[id(b)] = f"assets/{path.name}"
                written.append(path)
            elif isinstance(b, ImageGrid):
                paths = {}
                for k, row in enumerate(b.rows):
                    path = assets_dir / f"grid-{unique(f'{b.name}-{k}')}.png"
                    atomic_write_bytes(path, row.png)
                    paths[row.label] = f"assets/{path.name}"
                    written.append(path)
                refs[id(b)] = paths
    md, html = out / "report.md", out / "report.html"
    atomic_write_bytes(md, render_markdown(report, refs).encode())
    atomic_write_bytes(html, render_html(report).encode())
    return md, html, written


def build_report(opts: ReportOptions) -> ReportSummary:
    """Build and write the report (module docstring); returns a :class:`ReportSummary`."""
    report = build(opts)
    md, html, assets = write(report, opts.out)
    roots = [Path(p) for p in [opts.results, *opts.overlay]]
    missing = [rel for rel in overview.EXPECTED if not any((r / rel).is_file() for r in roots)]
    return ReportSummary(md, html, assets, len(report.sections), report.numbers(), missing,
                         [p for s in report.sections for p in s.problems])


__all__ = ["ReportOptions", "ReportSummary", "build", "write", "build_report", "INTRO"]
