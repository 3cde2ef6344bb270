"""Class-to-image per grey dataset: the teacher at N steps vs the one-step Di[M]O and Soft-Di[M]O students.

For each dataset D of :data:`~softdimo.report.sections.common.DATASETS` (``mnist``, ``fashion``; the same
schema, written by the same benchmarks with ``--dataset D``) reads (each optional; what is absent from MNIST is
named in its section, and a dataset with none of its files adds no section):

* ``teacher_D.json`` (``benchmarks/generators.py``): ``metrics.rows`` (one per sampler setting:
  ``label``, ``options``/``sampler``, ``n``, ``evaluator``, ``fid``, ``precision``, ``recall``,
  ``fid_over_floor``, ``seconds_per_image``), ``metrics.floor`` (real-vs-real ``fid``, ``precision``,
  ``recall``, ``n``, ``evaluator``), ``metrics.steps_sweep.fid_by_steps`` ({steps: FID} at the best
  CFG ``metrics.best_cfg``), ``metrics.cfg_sweep.{fid,precision,recall}_by_cfg``, ``metrics.speed``
  (``batch_size``, ``repeats``, ``device`` of the seconds per image);
* ``dimo_D.json``: ``metrics.student_rows`` (same row schema), ``metrics.teacher_rows`` (used when
  teacher_D.json is absent), ``metrics.targets`` (flat scalars), ``metrics.speed``;
* ``soft_gan_D.json``: its shipped Soft-Di[M]O rows ``metrics.soft_rows`` (schema in
  :mod:`~softdimo.report.sections.soft_gan`; a file of its earlier schema is left out);
* every top-level ``eval_*.json`` written by ``softdimo eval`` with an FID against a reference of D
  (``metrics.reference`` ``D:test[:N]``, ``source``, ``sampler``, ``n``, ``evaluator``, ``fid``, ``precision``,
  ``recall``).
"""
from __future__ import annotations

from typing import Any

from ..document import Figure, Section, Table, Text, label, num
from ..plots import HLine, Series, svg_plot
from ..schema import ResultsDir, ResultsFile, as_float, points
from .common import (DATASETS, MAIN_DATASET, absent, dataset_title, figure_name, finish_dataset, grey_file, kv_table,
                     list_of_dicts, method_name, rows_table, sampler_text, speed_source)
from .soft_gan import is_current

TITLE = "Class-to-image ({dataset}): teacher steps vs one-step students"  # {dataset}: the name in DATASETS


def eval_files(rd: ResultsDir, dataset: str = MAIN_DATASET) -> list[ResultsFile]:
    """Top-level ``eval_*.json`` single evaluations with an FID against a reference of ``dataset``."""
    out = []
    for rel in rd.glob("eval_*.json"):
        f = rd.peek(rel)
        m = f.metrics
        if f.ok and as_float(m.get("fid")) is not None and str(m.get("reference", "")).startswith(dataset):
            out.append(rd.file(rel))
    return out


def eval_row(f: ResultsFile) -> dict[str, Any]:
    """A single ``softdimo eval`` result as a table row."""
    m = f.metrics
    model = f.get("config.model", m.get("source", "?"), required=False)
    return {"label": f"{method_name(model)} ({model})", "model": model, **m}


def _steps(row: dict[str, Any]) -> tuple[float, float]:
    o = row.get("options") if isinstance(row.get("options"), dict) else {}
    return (as_float(o.get("steps")) or 0.0, as_float(o.get("cfg_scale")) or 0.0)


def section(rd: ResultsDir, dataset: str = MAIN_DATASET) -> Section | None:
    """The section of grey ``dataset`` (None: another dataset than MNIST with none of its files)."""
    tf, df, sg = (rd.file(grey_file(kind, dataset)) for kind in ("teacher", "dimo", "soft_gan"))
    evals = eval_files(rd, dataset)
    s = Section(dataset_title(TITLE, dataset), files=[f.rel for f in (tf, df) if f.ok] +
                ([sg.rel] if is_current(sg) else []) + [e.rel for e in evals])
    for f in (tf, df):
        absent(s, f, dataset)
    floor = tf.get("metrics.floor", None, dict) if tf.ok else df.get("metrics.floor", None, dict)
    floor_fid = as_float(floor.get("fid")) if floor else None
    columns = [("fid", "FID", 2), ("fid_over_floor", "FID / floor", 2), ("precision", "precision", 3),
               ("recall", "recall", 3), ("seconds_per_image", "s / image", 4)]
    first = [("method", lambda r: r.get("_method", "?")), ("sampler", sampler_text)]
    main = Table("FID, precision and recall (standard Inception) at equal N", [h for h, _ in first] +
                 [h for _, h, _ in columns],
                 note="Lower FID is better; read every FID against the real-vs-real floor at the same N. "
                      "`s / image` is generation time only, timed side by side in the benchmark run.")
    if floor:
        src = (tf if tf.ok else df).source(floor.get("evaluator"), floor.get("n"))
        main.add("real-vs-real floor", f"train vs test, N = {floor.get('n', '?')}", num(floor_fid, src),
                 num(1.0 if floor_fid else None, src), num(floor.get("precision"), src, 3),
                 num(floor.get("recall"), src, 3), "")
    teacher_rows = list_of_dicts(tf.get("metrics.rows", [], list)) if tf.ok else \
        list_of_dicts(df.get("metrics.teacher_rows", [], list))
    teacher_rows = sorted(teacher_rows, key=_steps)
    owner = tf if tf.ok else df
    for r in teacher_rows:
        r["_method"] = "teacher"
    main.rows += rows_table(owner, "", teacher_rows, columns, first, speed_source(owner)).rows
    students = list_of_dicts(df.get("metrics.student_rows", [], list)) if df.ok else []
    for r in students:
        r["_method"] = method_name(r.get("model"))
    main.rows += rows_table(df, "", students, columns, first, speed_source(df)).rows
    soft_rows = list_of_dicts(sg.metrics.get("soft_rows")) if is_current(sg) else []
    for r in soft_rows:
        r["_method"] = "Soft-Di[M]O"
    main.rows += rows_table(sg, "", soft_rows, columns, first, speed_source(sg)).rows
    eval_rows = []
    for f in evals:
        r = eval_row(f)
        r["_method"] = method_name(r.get("model"))
        if floor_fid and r.get("fid_over_floor") is None and str(r.get("n")) == str(floor.get("n")):
            r["fid_over_floor"] = r["fid"] / floor_fid
        eval_rows.append(r)
        main.rows += rows_table(f, "", [r], columns, first).rows
    if main.rows:
        s.blocks.append(main)
        s.blocks.append(steps_plot(tf if tf.ok else df, students + soft_rows + eval_rows, floor_fid,
                                   [f for f in (tf, df, *evals) if f.ok] + ([sg] if soft_rows else []), dataset))
    cfg = tf.get("metrics.cfg_sweep", None, dict) if tf.ok else None
    if cfg:
        s.blocks.append(cfg_table(tf, cfg))
    if df.ok:
        targets = df.get("metrics.targets", None, dict)
        if targets:
            s.blocks.append(kv_table(df, f"Di[M]O targets ({df.rel})", targets, df.source(), digits=3,
                                     speed=speed_source(df)))
        keys = ("teacher_best_fid", "student_fid_tau1", "student_best_fid", "student_best_tau", "diversity_ratio",
                "recall_ratio", "delta_token_fraction")
        fidelity = {k: df.metrics[k] for k in keys if k in df.metrics}
        if fidelity:  # the fidelity benchmark's keys (absent from files written before it)
            fidelity["targets"] = df.get("metrics.fidelity_targets", {}, dict, required=False)
            s.blocks.append(kv_table(df, f"Di[M]O fidelity: the one-step student against its teacher ({df.rel})",
                                     fidelity, df.source(), digits=3,
                                     note="Targets: best-τ FID ≤ 1.2 × the teacher's best, τ = 1 FID ≤ 1.5 ×, "
                                          "diversity and recall ratios ≥ 0.8, near-delta token fraction ≥ 0.3."))
    if not (tf.ok or df.ok or evals) and dataset == MAIN_DATASET:
        s.blocks.append(Text(f"Not yet measured: no teacher or student results for {DATASETS[dataset]}."))
    return finish_dataset(s, dataset, tf, df, *evals)


def steps_plot(f: ResultsFile, students: list[dict[str, Any]], floor_fid: float | None,
               files: list[ResultsFile], dataset: str = MAIN_DATASET) -> Figure:
    """FID against teacher steps (line, best CFG) with the one-step students as points at N = 1."""
    sweep = f.get("metrics.steps_sweep", {}, dict, required=False)
    cfg = sweep.get("cfg_scale", f.metrics.get("best_cfg", f.metrics.get("teacher_best_cfg")))
    series = [Series(f"teacher, CFG {cfg:g}" if as_float(cfg) is not None else "teacher",
                     points(sweep.get("fid_by_steps"), "fid"))]
    if not series[0].points:  # dimo_D.json: teacher_rows
        rows = list_of_dicts(f.metrics.get("teacher_rows"))
        series[0].points = sorted((_steps(r)[0], r["fid"]) for r in rows if as_float(r.get("fid")) is not None)
    for r in students:
        if as_float(r.get("fid")) is not None:
            series.append(Series(f"{r.get('_method', '?')} ({sampler_text(r)})", [(1.0, float(r["fid"]))], "points"))
    hl = [HLine(floor_fid, "real-vs-real floor")] if floor_fid else []
    svg = svg_plot("FID vs teacher steps; one-step students at N = 1", series, "teacher sampler steps N", "FID",
                   log_x=2, hlines=hl)
    return Figure(figure_name("fid-vs-steps", dataset), "Teacher steps vs FID, one-step students as points", svg,
                  [x.source() for x in files], caption="Standard Inception FID at equal N; dotted: the floor.")


def cfg_table(f: ResultsFile, cfg: dict[str, Any]) -> Table:
    steps = cfg.get("steps", "?")
    t = Table(f"Teacher CFG sweep at {steps} steps", ["CFG w", "FID", "precision", "recall"])
    src = f.source()
    fid = cfg.get("fid_by_cfg") if isinstance(cfg.get("fid_by_cfg"), dict) else {}
    for w, v in fid.items():
        t.add(label(w), num(v, src), num((cfg.get("precision_by_cfg") or {}).get(w), src, 3),
              num((cfg.get("recall_by_cfg") or {}).get(w), src, 3))
    return t


__all__ = ["section", "eval_files", "eval_row", "steps_plot", "TITLE"]
