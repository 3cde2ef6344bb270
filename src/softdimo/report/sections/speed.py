"""Speed and memory: teacher N steps (with and without CFG) vs one-step students vs the physical floor.

Reads ``speed.json`` written by ``softdimo bench`` (schema in :mod:`softdimo.bench`): ``metrics.rows``
(``name``, ``kind``, ``batch_size``, ``seconds_per_image``, ``peak_memory_mb``, ``repeats``),
``metrics.ratios``, ``metrics.targets``, ``metrics.device``, ``metrics.memory_method``.
"""
from __future__ import annotations

from typing import Any

from ..document import Figure, Section, Table, label, num
from ..plots import Series, svg_plot
from ..schema import ResultsDir, ResultsFile, as_float
from .common import absent, finish, list_of_dicts

TITLE = "Speed and memory (softdimo bench)"


def section(rd: ResultsDir) -> Section:
    f = rd.file("speed.json")
    s = Section(TITLE, files=[f.rel] if f.ok else [])
    absent(s, f)
    if f.ok:
        rows = list_of_dicts(f.get("metrics.rows", [], list))
        if rows:
            s.blocks += speed_blocks(f, rows)
    return finish(s, f)


def _sources(f: ResultsFile, repeats: Any) -> tuple[Any, Any]:
    dev = f.metrics.get("device", "?")
    time_src = f.source(f"wall clock ({dev}, median of side-by-side repeats)", f"{repeats} timed calls per cell")
    mem_src = f.source(f"peak memory: {f.metrics.get('memory_method', 'not stated')}", "1 call per cell")
    return time_src, mem_src


def speed_blocks(f: ResultsFile, rows: list[dict[str, Any]]) -> list:
    batches = sorted({int(r["batch_size"]) for r in rows if as_float(r.get("batch_size")) is not None})
    names = list(dict.fromkeys(str(r.get("name")) for r in rows))
    by = {(str(r.get("name")), r.get("batch_size")): r for r in rows}
    time_src, mem_src = _sources(f, f.metrics.get("repeats", "?"))
    cols = ["row"] + [f"B={b}" for b in batches]
    ms = Table("Milliseconds per image", cols, note="Teacher rows: the MaskGIT sampler at N steps, without and with "
               "CFG (two forward passes per step). Floor: one conditional teacher forward pass + one decode.")
    mem = Table("Peak memory per call (MB)", cols)
    for n in names:
        ms.add(label(n), *[num(_ms(by.get((n, b))), time_src, 3) for b in batches])
        mem.add(label(n), *[num((by.get((n, b)) or {}).get("peak_memory_mb"), mem_src, 1) for b in batches])
    out: list = [ms]
    ratios = f.get("metrics.ratios", {}, dict)
    over_floor = ratios.get("student_over_floor") if isinstance(ratios.get("student_over_floor"), dict) else {}
    targets = f.get("metrics.targets", {}, dict)
    t16 = (targets.get("teacher16_cfg_over_student") or {}).get("teacher_row", "teacher N=16 cfg=2")
    rt = Table("Ratios (same run, same batch size)", cols,
               note="student / floor: target ≤ 1.10 at every batch size. teacher / student: target ≥ 25× for the "
                    "teacher at 16 steps with CFG at batch 64.")
    for s_name, per_b in over_floor.items():
        rt.add(label(f"{s_name} / floor"), *[num((per_b or {}).get(str(b)), time_src, 3) for b in batches])
    over_student = ratios.get("teacher_over_student") if isinstance(ratios.get("teacher_over_student"), dict) else {}
    for s_name, per_t in over_student.items():
        per_b = (per_t or {}).get(t16, {})
        rt.add(label(f"{t16} / {s_name}"), *[num((per_b or {}).get(str(b)), time_src, 1, "×") for b in batches])
    if rt.rows:
        out.append(rt)
    if targets:
        tt = Table("Targets", ["target", "student", "measured", "threshold", "pass"])
        fl = targets.get("student_over_floor") or {}
        for s_name, v in fl.items():
            if isinstance(v, dict):
                tt.add("student / floor (worst batch size)", s_name, num(v.get("worst"), time_src, 3),
                       num(fl.get("threshold"), time_src, 2), num(v.get("pass"), time_src))
        sp = targets.get("teacher16_cfg_over_student") or {}
        for s_name, v in sp.items():
            if isinstance(v, dict):
                tt.add(f"{sp.get('teacher_row', '?')} / student at batch {sp.get('batch_size', '?')}", s_name,
                       num(v.get("ratio"), time_src, 1, "×"), num(sp.get("threshold"), time_src, 0, "×"),
                       num(v.get("pass"), time_src))
        if tt.rows:
            out.append(tt)
    out.append(mem)
    kind = {str(r.get("name")): (r.get("kind"), r.get("steps")) for r in rows}
    ends = {1, max_steps(rows)}
    plotted = [n for n in names if kind[n][0] != "teacher" or kind[n][1] in ends]  # teacher: fewest and most steps
    series = [Series(n, [(float(b), float(_ms(by[(n, b)]))) for b in batches if _ms(by.get((n, b))) is not None],
                     "dashed" if n == "floor" else "line") for n in plotted]
    out.append(Figure("speed-vs-batch", "Speed vs batch size", svg_plot("milliseconds per image vs batch size", series,
                                                                          "batch size", "ms / image", log_x=2,
                                                                          log_y=10), [time_src]))
    return out


def max_steps(rows: list[dict[str, Any]]) -> int:
    steps = [int(r["steps"]) for r in rows if r.get("kind") == "teacher" and as_float(r.get("steps")) is not None]
    return max(steps) if steps else 16


def _ms(row: dict[str, Any] | None) -> float | None:
    v = as_float((row or {}).get("seconds_per_image"))
    return None if v is None else 1e3 * v


__all__ = ["section", "TITLE"]
