"""Every other results file (``demo.json``, ``faults.json``, ``scaling.json``, ``amused_tiny.json``, …), generically.

For each file no other section read: a ``metrics.rows`` list of dicts becomes a table (``label`` or
``name`` first, then every numeric key of the rows, per-row ``evaluator``/``n`` honoured), and the
remaining scalar metrics (nested objects flattened to dotted keys, three levels deep) become a
quantity/value table, each number with the file's ``metrics.evaluator`` and ``metrics.n`` when
given (timings — keys naming ``speed``, ``seconds``, ``step``, ``cost`` — as "wall clock"). A file meant for this generic view only needs ``write_results`` with flat, named metrics.
"""
from __future__ import annotations

from typing import Any

from ..document import Section, Text
from ..schema import ResultsDir, ResultsFile, as_float
from .common import flatten, kv_table, list_of_dicts, rows_table

TITLE = "Other results"
MAX_ENTRIES = 60
MAX_COLUMNS = 10


def section(rd: ResultsDir, files: list[str]) -> Section:
    s = Section(TITLE, files=[])
    for rel in files:
        f = rd.file(rel)
        if not f.ok:
            s.problems.append(f"`{rel}`: {f.status}, {f.error}; its numbers are left out.")
            continue
        s.files.append(rel)
        s.blocks += file_blocks(f)
        s.problems += [p for p in f.problems if p not in s.problems]
    if not s.blocks:
        s.blocks.append(Text("No other results files."))
    return s


def file_blocks(f: ResultsFile) -> list:
    m = dict(f.metrics)
    out: list = [Text(f"**{f.doc.get('name', f.rel)}** (`{f.rel}`)")]
    rows = list_of_dicts(m.pop("rows", None))
    if rows:
        keys: list[str] = []
        for r in rows:
            for k, v in r.items():
                if k not in keys and k not in ("n",) and (as_float(v) is not None or isinstance(v, bool)):
                    keys.append(k)
        first_key = "label" if any("label" in r for r in rows) else "name"
        out.append(rows_table(f, f"{f.rel}: rows", rows, [(k, k, 3) for k in keys[:MAX_COLUMNS]],
                              [(first_key, first_key)]))
    scalars: dict[str, Any] = dict(flatten(m)[:MAX_ENTRIES])
    if scalars:
        out.append(kv_table(f, f"{f.rel}: metrics", scalars, speed=f.source("wall clock")))
    return out


__all__ = ["section", "TITLE"]
