"""Overview: headline numbers (each from its results file); the inventory of results files (last section).

The inventory lists every file the report expects (:data:`EXPECTED`; absent ones are "not yet measured", a
``soft_gan_{mnist,fashion}.json`` of the benchmark's earlier schema "measured (earlier schema)") and every other
``*.json`` found, with its status, name, command, commit and date.
"""
from __future__ import annotations

from typing import Any

from ..document import Section, Table, label, num
from ..schema import ResultsDir, ResultsFile, as_float
from . import soft_gan
from .common import DATASETS, MAIN_DATASET, grey_file, list_of_dicts

TITLE = "Overview"
INVENTORY_TITLE = "Results files"
EXPECTED = ["teacher_mnist.json", "dimo_mnist.json", "soft_gan_mnist.json", "teacher_world.json", "dimo_world.json",
            "t2i_world.json", "speed.json", "demo.json", "faults.json", "scaling.json", "amused_tiny.json",
            "tokenizer_mnist.json", "tokenizer_world.json", "classifier_mnist.json", "eval_validation.json",
            "geneval_validation.json"]
# the rows of ``t2i_world.json`` the headline names, in its order
T2I_HEADLINE = {"teacher": "teacher (best sampler)", "dimo": "Di[M]O", "reward": "Soft-Di[M]O + reward",
                "tteo": "+ reward + TTEO"}


def section(rd: ResultsDir) -> Section:
    """Headline numbers."""
    return Section(TITLE, blocks=[headline(rd)])


def inventory(rd: ResultsDir) -> Section:
    """Every expected and every present results file: status, commit, date, command."""
    several = len(rd.roots) > 1
    inv = Table("Every expected and every present file", ["file", "status", "commit", "started", "command"] +
                (["folder"] if several else []))
    for rel in list(dict.fromkeys(EXPECTED + rd.all_files())):
        f = rd.peek(rel)
        status = {"ok": "measured", "missing": "not yet measured"}.get(f.status, f"malformed: {f.error}")
        if rel in soft_gan.FILES and f.ok and not soft_gan.is_current(f):
            status = "measured (earlier schema)"
        inv.add(label(rel), label(status), label(f.commit[:12]), label(str(f.doc.get("started", ""))),
                label(f"`{f.command}`" if f.ok else ""), *([label(f"`{rd.origin(rel)}`")] if several else []))
    return Section(INVENTORY_TITLE, blocks=[inv])


def _first_row(f: ResultsFile, key: str) -> dict[str, Any] | None:
    """The first row of ``metrics[key]``."""
    rows = list_of_dicts(f.metrics.get(key))
    return rows[0] if rows else None


def _soft_best_row(f: ResultsFile) -> dict[str, Any] | None:
    """The shipped Soft-Di[M]O row at its best τ (``soft_fid``) of a current ``soft_gan_mnist.json``."""
    if not soft_gan.is_current(f):
        return None
    return next((r for r in list_of_dicts(f.metrics.get("soft_rows")) if r.get("fid") == f.metrics["soft_fid"]), None)


def headline(rd: ResultsDir) -> Table:
    """A few numbers a reader wants first; each says where it comes from, or that it is not yet measured."""
    t = Table("Headline numbers", ["quantity", "value"],
              note="Each number is repeated, with its table, in the sections below.")
    tf, df, sg = rd.peek("teacher_mnist.json"), rd.peek("dimo_mnist.json"), rd.peek(soft_gan.FILE)
    sp, dw, t2 = rd.peek("speed.json"), rd.peek("dimo_world.json"), rd.peek("t2i_world.json")

    def add(what: str, f: ResultsFile, value: Any, row: dict[str, Any] | None = None, digits: int = 2,
            suffix: str = "", evaluator: Any = None, n: Any = None, metric: str = "fid") -> None:
        if f.ok and (as_float(value) is not None or isinstance(value, bool)):
            src = f.row_source(row, metric) if row is not None else f.source(evaluator, n)
            t.add(what, num(value, src, digits, suffix))
        else:
            t.add(what, "not yet measured")

    target = tf.metrics.get("target_fid16_within_3x_floor") if tf.ok else None
    add("MNIST teacher FID at 16 steps (best CFG)", tf, (target or {}).get("fid_16step"))
    floor = tf.metrics.get("floor") if tf.ok and isinstance(tf.metrics.get("floor"), dict) else {}
    add("MNIST real-vs-real floor FID", tf, floor.get("fid"), evaluator=floor.get("evaluator"), n=floor.get("n"))
    row = _first_row(df, "student_rows") if df.ok else None
    add("MNIST Di[M]O FID (one step)", df, (row or {}).get("fid"), row)
    row = _soft_best_row(sg)
    if row is None:
        ev = rd.peek("eval_soft_dimo_mnist.json")  # the shipped student at its stored τ
        add("MNIST Soft-Di[M]O FID (one step)", ev, ev.metrics.get("fid") if ev.ok else None)
    else:
        add("MNIST Soft-Di[M]O FID (one step)", sg, row.get("fid"), row)
    for dataset, name in DATASETS.items():  # another grey dataset: its line only once it is measured
        f = rd.peek(grey_file("soft_gan", dataset))
        if dataset != MAIN_DATASET and soft_gan.is_current(f):
            for what, key in (("teacher FID (best sampler)", "teacher_best_fid"),
                              ("Di[M]O FID (one step)", "dimo_fid"), ("Soft-Di[M]O FID (one step)", "soft_fid")):
                add(f"{name} {what}", f, f.metrics.get(key))
    tg = sp.metrics.get("targets") if sp.ok and isinstance(sp.metrics.get("targets"), dict) else {}
    speed = tg.get("teacher16_cfg_over_student") or {}
    floor_t = tg.get("student_over_floor") or {}
    dev = sp.metrics.get("device", "?") if sp.ok else "?"
    for name, v in speed.items():
        if isinstance(v, dict):
            add(f"speed-up of {name} vs {speed.get('teacher_row', '?')} at batch {speed.get('batch_size', '?')}", sp,
                v.get("ratio"), digits=1, suffix="×", evaluator=f"wall clock ({dev})", n=sp.metrics.get("repeats"))
    for name, v in floor_t.items():
        if isinstance(v, dict):
            add(f"{name} time / physical floor (worst batch size)", sp, v.get("worst"), digits=3,
                evaluator=f"wall clock ({dev})", n=sp.metrics.get("repeats"))
    if not sp.ok:
        add("student speed-up vs teacher 16 steps with CFG (speed.json)", sp, None)
    t2i = t2.metrics.get("rows") if t2.ok else None
    if isinstance(t2i, dict):  # one run decides the text-to-image numbers: teacher to TTEO from the same draws
        for key, what in T2I_HEADLINE.items():
            row = t2i.get(key) if isinstance(t2i.get(key), dict) else None
            add(f"digit world: {what} GenEval-like overall", t2, (row or {}).get("geneval"), row, digits=3,
                metric="geneval")
    else:
        tw = dw.metrics.get("targets") if dw.ok and isinstance(dw.metrics.get("targets"), dict) else {}
        add("digit world: teacher 16-step GenEval-like overall", dw, tw.get("teacher16_geneval"), digits=3)
        add("digit world: Di[M]O GenEval-like overall", dw, tw.get("student_geneval"), digits=3)
    if not t.rows:
        t.rows.append([label("(nothing measured yet)"), label("")])
    return t


__all__ = ["section", "inventory", "EXPECTED", "TITLE", "INVENTORY_TITLE"]
