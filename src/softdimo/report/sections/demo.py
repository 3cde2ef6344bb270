"""The demo: every stage with its before → after number, its curve and its pictures (``demo.json``).

Reads ``demo.json`` as ``softdimo demo`` writes it (``softdimo.demo.stage.StageResult.to_json``;
``metrics`` part)::

    {"size": "default", "seconds": 412.0, "setup_seconds": 95.0 (optional), "all_improved": true,
     "stages": [{"name", "title", "metric", "higher_is_better", "before", "after", "improved", "delta",
                 "before_label", "after_label", "evaluator", "n", "kind": "result" | "curve",
                 "curve": [{"step", "value"}, …], "rows": [{"label", <numbers>…}, …],
                 "pictures": [{"title", "conditions", "caption",
                               "strips": [{"label", "file" (PNG, relative to the results folder), "note"}]}],
                 "note", "seconds", "extra": {…}}, …]}

A ``demo.json`` without ``stages`` (an older demo) is shown like any other results file.
"""
from __future__ import annotations

from typing import Any

from ..document import Figure, GridRow, ImageGrid, Section, Source, Table, Text, label, num
from ..plots import Series, svg_plot
from ..schema import ResultsDir, ResultsFile, as_float
from .common import finish, list_of_dicts, rows_table
from .other import file_blocks

TITLE = "Demo: every stage, before → after"
FILE = "demo.json"
SKIP_KEYS = {"n", "step"}
HEADERS = {"domain_fid": "domain FID", "classifier_score": "classifier score", "seconds_per_image": "s / image",
           "geneval": "GenEval-like", "psnr": "PSNR (dB)", "codebook_usage": "codebook usage", "temperature": "τ",
           "reward_miniclip": "mini-CLIP reward", "reward_attribute": "attribute reward"}
PICTURE_SCALE = 2


def section(rd: ResultsDir) -> Section:
    f = rd.file(FILE)
    s = Section(TITLE, files=[f.rel] if f.ok else [])
    if f.status == "malformed":
        s.problems.append(f"`{f.rel}`: malformed, {f.error}; its numbers are left out.")
    if not f.ok:
        s.blocks.append(Text("Run `softdimo demo` (or `python benchmarks/demo.py`) to measure every stage."))
        return s
    stages = list_of_dicts(f.metrics.get("stages"))
    if not stages:
        s.blocks += file_blocks(f)
        return finish(s, f)
    s.blocks.append(Text(overview_text(f)))
    s.blocks.append(summary_table(f, stages))
    for st in stages:
        s.blocks += stage_blocks(f, st, s.problems)
    return finish(s, f)


def overview_text(f: ResultsFile) -> str:
    m = f.metrics
    parts = [f"`{f.command}` ({m.get('size', '?')} size)"]
    secs = as_float(m.get("seconds"))
    if secs is not None:
        parts.append(f"ran in {secs:.0f} s")
    setup = as_float(m.get("setup_seconds"))
    if setup is not None:
        parts.append(f"after a set-up (`make setup`) of {setup:.0f} s")
    improved = m.get("all_improved")
    if isinstance(improved, bool):
        parts.append("every stage improved its number" if improved else "not every stage improved its number")
    return ", ".join(parts) + ". Each stage below measured both of its numbers in this run, with the same N and seed."


def stage_source(f: ResultsFile, st: dict[str, Any]) -> Source:
    return f.source(st.get("evaluator"), st.get("n"))


def summary_table(f: ResultsFile, stages: list[dict[str, Any]]) -> Table:
    t = Table("Before → after, measured in the run",
              ["stage", "metric", "before → after", "before", "after", "improved", "stage time (s)"],
              note="A curve stage is a short run from its first step: before = step 0, after = its last step.")
    for st in stages:
        src = stage_source(f, st)
        better = "higher" if st.get("higher_is_better") else "lower"
        kind = " (learning curve)" if st.get("kind") == "curve" else ""
        t.add(label(f"{st.get('title', st.get('name', '?'))}{kind}"),
              label(f"{st.get('metric', '?')} ({better} is better)"),
              label(f"{st.get('before_label', '?')} → {st.get('after_label', '?')}"),
              num(st.get("before"), src, digits(st.get("before"))), num(st.get("after"), src, digits(st.get("after"))),
              num(st.get("improved"), src), num(st.get("seconds"), f.source("wall clock", "one run"), 0))
    return t


def digits(value: Any) -> int:
    v = as_float(value)
    if v is None or v == 0:
        return 2
    return 4 if abs(v) < 0.1 else 3 if abs(v) < 10 else 1


def stage_blocks(f: ResultsFile, st: dict[str, Any], problems: list[str]) -> list:
    name = str(st.get("name", "stage"))
    out: list = [Text(f"**{st.get('title', name)}.** {st.get('note', '')}")]
    src = stage_source(f, st)
    curve = [(float(p["step"]), float(p["value"])) for p in list_of_dicts(st.get("curve"))
             if as_float(p.get("step")) is not None and as_float(p.get("value")) is not None]
    if curve:
        metric = str(st.get("metric", "value"))
        out.append(Figure(f"demo-{name}", f"{metric} along the run",
                          svg_plot(f"{metric} vs training step", [Series(name, curve)], "training step", metric),
                          [src], caption=f"{st.get('evaluator', '')}; N = {st.get('n', '?')} per point."))
    rows = [{"evaluator": st.get("evaluator"), "n": st.get("n"), **r} for r in list_of_dicts(st.get("rows"))]
    if rows:
        keys: list[str] = []
        for r in rows:
            for k, v in r.items():
                if k not in keys and k not in SKIP_KEYS and (as_float(v) is not None or isinstance(v, bool)):
                    keys.append(k)
        out.append(rows_table(f, f"{st.get('title', name)}: every measured row", rows,
                              [(k, HEADERS.get(k, k.replace("_", " ")), 4) for k in keys], [("row", "label")]))
    for k, pic in enumerate(list_of_dicts(st.get("pictures"))):
        grid = picture_grid(f, st, pic, f"demo-{name}-{k}", problems)
        if grid.rows:
            out.append(grid)
    return out


def picture_grid(f: ResultsFile, st: dict[str, Any], pic: dict[str, Any], name: str, problems: list[str]) -> ImageGrid:
    conditions = [str(c) for c in pic.get("conditions") or []]
    grid = ImageGrid(name, str(pic.get("title", st.get("title", ""))), conditions, caption=str(pic.get("caption", "")),
                     scale=PICTURE_SCALE)
    for strip in list_of_dicts(pic.get("strips")):
        rel = str(strip.get("file", ""))
        path = (f.root / rel) if f.root is not None and rel else None
        if path is None or not path.is_file():
            problems.append(f"`{f.rel}`: picture `{rel}` ({strip.get('label', '?')}) is missing next to it.")
            continue
        src = Source(file=f.rel, command=f.command, evaluator="none (samples)", n=str(len(conditions)),
                     commit=f.commit)
        grid.rows.append(GridRow(str(strip.get("label", "?")), str(strip.get("note", "")), path.read_bytes(), src))
    return grid


__all__ = ["section", "TITLE", "FILE"]
