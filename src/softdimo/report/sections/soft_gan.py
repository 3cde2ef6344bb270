"""Soft-Di[M]O against the teacher and Di[M]O, its ablations over training seeds, FID vs step, soft-vs-hard diagnostics.

One section per grey dataset D (:data:`~softdimo.report.sections.common.DATASETS`), from ``soft_gan_D.json``
(``soft_gan_mnist.json``, ``soft_gan_fashion.json``: ``benchmarks/soft_gan.py --dataset D``); an absent
``soft_gan_mnist.json`` is named "not yet measured", another dataset without its file adds no section.
Expected ``metrics`` part (as ``benchmarks/soft_gan.py`` writes it; every Inception number at one N, one
evaluator, one run)::

    {"n": 2000, "evaluator": "<FID network>",
     "floor": {"fid", "precision", "recall", "n", "evaluator"},
     "teacher_best_fid": 20.2, "dimo_fid": 16.1, "dimo_tau": 3.0, "dimo_fid_tau1": 18.5,
     "soft_fid": 15.0, "soft_tau": 2.0, "soft_fid_tau1": 15.9,
     "teacher_rows" | "dimo_rows" | "soft_rows": [   # the rows behind those numbers
       {"label": "Soft-Di[M]O shipped τ=2", "kind": "teacher" | "dimo" | "soft", "model": FOLDER,
        "options": {"steps", "cfg_scale", "temperature"}, "sampler": {…}, "n", "evaluator",
        "fid", "precision", "recall", "fid_over_floor"}, …],
     "ablations": {VARIANT: {"fids": [per seed], "fid_mean", "fid_sd" (null with one seed), "seeds",
                             "temperatures", "what": "<the override>", "label", "run_dirs", "row_step",
                             "rows": [rows as above, with "seed"]}, …},
     "curves": {"metric": "domain_fid at N = 1000, …", "evaluator" (optional), "n" (optional),
                RUN: [{"step": 0, "domain_fid": 56.1}, {"step": 150, …}, …], …},
     "diagnostics": {"source": "…", RUN: [{"step": 50, "soft_entropy", "soft_p_max", "soft_cov_trace", "soft_gap",
                                           "d_acc", …}, …], …},
     "targets": {NAME: {values…, "holds": bool}, …}, "targets_left_out": [NAME, …],
     "controls": {NAME: {values…, "holds": bool}, …} (optional; the soft runs vs the no_gan control),
     "step_cost": {"seconds_per_step": {"refine", "distill"}, "refine_over_distill", "repeats", "batch_size", …}}

``VARIANT``: ``soft``, ``gumbel``, ``gan_only``, ``mask_none``, ``no_gan`` (docs/method.md §5.5); ``RUN``: a
variant's run with one training seed (``soft-s0``, …). The ablations over seeds are shown by
:mod:`~softdimo.report.sections.ablations` (:func:`ablation_tables`). A file without ``ablations`` and
``soft_fid`` was written by an earlier version of the benchmark (one run per variant, no seeds): this
section shows its numbers as they stand (:func:`earlier_blocks`), and the sections that quote the
current keys leave it out (:func:`is_current`).
RUN names may also sit under a ``"runs"`` object; each curve may be parallel lists ``{"steps": […],
"<metric>": […]}``. The curve's value key is the first word of ``metric`` when the points have it,
else their first numeric key besides ``step``; its N is ``curves.n`` or the "N = …" in ``metric``.
Diagnostics are the refine stage's logged ``soft_*`` values (:func:`softdimo.soft.soft_diagnostics`,
§4.2: entropy, p_max, tr Σ and the discriminator's soft-vs-hard gap |D(ẽ) − E D(e_x)|).
"""
from __future__ import annotations

import re
from typing import Any

from ..document import Figure, Section, Table, Text, label, num
from ..plots import Series, svg_plot
from ..schema import ResultsDir, ResultsFile, as_float, points
from .common import (DATASETS, MAIN_DATASET, PRODUCED_BY, absent, dataset_title, figure_name, finish_dataset,
                     grey_file, kv_table, list_of_dicts, rows_table, sampler_text)
from .other import file_blocks

# {dataset}: the name in DATASETS
TITLE = "Soft-Di[M]O vs the teacher and Di[M]O ({dataset}): targets, FID vs step, soft-vs-hard diagnostics"
FILE = grey_file("soft_gan", MAIN_DATASET)  # the expected one (the overview's headline reads it)
FILES = [grey_file("soft_gan", d) for d in DATASETS]
DIAGNOSTICS = {"soft_entropy": "token entropy H(p) (nats)", "soft_p_max": "mean p_max",
               "soft_cov_trace": "tr Σ (embedding covariance)", "soft_gap": "soft-vs-hard gap |D(ẽ) − E D(e_x)|",
               "d_acc": "discriminator accuracy"}
METHODS = {"teacher": "teacher", "dimo": "Di[M]O", "soft": "Soft-Di[M]O"}
ROW_COLUMNS = [("fid", "FID", 2), ("fid_over_floor", "FID / floor", 2), ("precision", "precision", 3),
               ("recall", "recall", 3)]
BEST_KEYS = ("teacher_best_fid", "dimo_fid", "dimo_tau", "dimo_fid_tau1", "soft_fid", "soft_tau", "soft_fid_tau1")


def is_current(f: ResultsFile) -> bool:
    """Whether ``f`` holds the benchmark's present schema (``ablations`` over seeds and ``soft_fid``)."""
    return f.ok and isinstance(f.metrics.get("ablations"), dict) and as_float(f.metrics.get("soft_fid")) is not None


def earlier_blocks(f: ResultsFile) -> list:
    """A measured file of the earlier schema (one run per ablation, no ``soft_fid``): its numbers as they stand."""
    how = PRODUCED_BY.get(f.rel, "benchmarks/soft_gan.py")
    return [Text(f"`{f.rel}` was written by an earlier version of benchmarks/soft_gan.py (one run per ablation, "
                 f"no metrics.soft_fid): shown as it stands, without the spread over training seeds or the current "
                 f"targets; `{how}` writes the present one."), *file_blocks(f)]


def section(rd: ResultsDir, dataset: str = MAIN_DATASET) -> Section | None:
    """The section of grey ``dataset`` (None: another dataset than MNIST without its file)."""
    sg = rd.file(grey_file("soft_gan", dataset))
    s = Section(dataset_title(TITLE, dataset), files=[sg.rel])
    absent(s, sg, dataset)
    if sg.ok and not is_current(sg):
        s.blocks += earlier_blocks(sg)
    if not is_current(sg):
        return finish_dataset(s, dataset)
    cost = sg.get("metrics.step_cost", None, dict, required=False)
    cost_src = sg.source("wall clock, seconds per optimiser step (median of alternated runs)", (cost or {}).get("repeats"))
    s.blocks.append(comparison_table(sg))
    best = {k: sg.metrics[k] for k in BEST_KEYS if k in sg.metrics}
    s.blocks.append(kv_table(sg, "The best of each, the numbers the targets use", best, sg.source(),
                             note="τ: the one-step sampling temperature (the lower Inception FID of τ = 1 and the "
                                  "sweep's τ; Di[M]O: the τ its own benchmark chose)."))
    targets = sg.get("metrics.targets", None, dict)
    if targets:
        left = sg.metrics.get("targets_left_out") or []
        s.blocks.append(kv_table(sg, f"Soft-Di[M]O targets ({sg.rel})", targets, sg.source(), speed=cost_src,
                                 note=("Left out (inputs absent): " + ", ".join(map(str, left))) if left else ""))
    controls = sg.get("metrics.controls", None, dict, required=False)
    if controls:
        s.blocks.append(kv_table(sg, "Control: the GAN's gain beyond the same refine steps without it", controls,
                                 sg.source(), note="no_gan: gan.w_gan=0, the Di[M]O term alone for the same steps, "
                                                   "from the same start, over the same training seeds."))
    curves = sg.get("metrics.curves", None, dict)
    if curves:
        s.blocks += curve_blocks(sg, curves, dataset)
    diag = sg.get("metrics.diagnostics", None, dict)
    if diag:
        s.blocks += diagnostic_blocks(sg, diag, dataset)
    if cost:
        s.blocks.append(kv_table(sg, "Cost of a refine step vs a Di[M]O step", cost, cost_src))
    return finish_dataset(s, dataset, sg)


def comparison_table(f: ResultsFile) -> Table:
    """The floor, then every teacher, Di[M]O and Soft-Di[M]O row of the run."""
    rows = [r for key in ("teacher_rows", "dimo_rows", "soft_rows") for r in list_of_dicts(f.get(f"metrics.{key}", []))]
    first = [("method", lambda r: METHODS.get(str(r.get("kind")), str(r.get("kind", "?")))), ("row", "label"),
             ("sampler", sampler_text)]
    t = rows_table(f, "Soft-Di[M]O vs the teacher and Di[M]O (standard Inception FID, equal N, one run)", rows,
                   ROW_COLUMNS, first, note="Every model measured in the same run at the same N; lower FID is better.")
    floor = f.get("metrics.floor", {}, dict)
    if floor:
        src = f.source(floor.get("evaluator"), floor.get("n"))
        t.rows.insert(0, [label("real-vs-real floor"), label(f"train vs test, N = {floor.get('n', '?')}"), label(""),
                          num(floor.get("fid"), src), num(1.0, src), num(floor.get("precision"), src, 3),
                          num(floor.get("recall"), src, 3)])
    return t


def ablation_tables(f: ResultsFile) -> list[Table]:
    """The §5.5 ablations over training seeds: mean and sd per variant, and every seed's row."""
    abl = {k: v for k, v in f.get("metrics.ablations", {}, dict).items() if isinstance(v, dict)}
    src = f.source()
    step = next((v.get("row_step") for v in abl.values() if v.get("row_step") is not None), "?")
    summary = Table(f"Soft-Di[M]O ablations over training seeds (EMA students at step {step}, each at its best τ)",
                    ["variant", "override", "seeds", "mean FID", "sd", "min", "max"],
                    note="Standard Inception FID at the file's N; sd: sample standard deviation over the training "
                         "seeds (— with one seed). Every run starts from the same Di[M]O student.")
    per_seed = []
    for name, v in abl.items():
        fids = [x for x in (as_float(y) for y in v.get("fids") or []) if x is not None]
        summary.add(label(name), label(f"`{v.get('what', '?')}`"), label(", ".join(f"s{x}" for x in v.get("seeds") or [])),
                    num(v.get("fid_mean"), src), num(v.get("fid_sd"), src), num(min(fids) if fids else None, src),
                    num(max(fids) if fids else None, src))
        chosen = dict(zip(v.get("seeds") or [], v.get("temperatures") or []))
        per_seed += [r for r in list_of_dicts(v.get("rows"))
                     if (r.get("options") or {}).get("temperature") == chosen.get(r.get("seed"))]
    seeds = rows_table(f, "Soft-Di[M]O ablations: every training seed at its chosen τ", per_seed, ROW_COLUMNS,
                       [("variant", "kind"), ("seed", lambda r: f"s{r.get('seed', '?')}"), ("sampler", sampler_text)])
    return [summary] + ([seeds] if seeds.rows else [])


def runs_of(obj: dict[str, Any]) -> dict[str, Any]:
    """RUN → points: the ``runs`` object, else every entry holding a list or a parallel-lists object."""
    if isinstance(obj.get("runs"), dict):
        return obj["runs"]
    return {k: v for k, v in obj.items() if isinstance(v, list) or (isinstance(v, dict) and "steps" in v)}


def value_key(metric: str, pts: Any) -> str:
    """The key of the curve's values (module docstring)."""
    first = re.split(r"[\s(,]", metric.strip(), maxsplit=1)[0] if metric else ""
    sample = pts[0] if isinstance(pts, list) and pts and isinstance(pts[0], dict) else \
        (pts if isinstance(pts, dict) else {})
    if first and first in sample:
        return first
    for k, v in sample.items():
        if k not in ("step", "steps") and (as_float(v) is not None or isinstance(v, list)):
            return k
    return first or "fid"


def curve_blocks(f: ResultsFile, curves: dict[str, Any], dataset: str = MAIN_DATASET) -> list:
    metric = str(curves.get("metric", "fid"))
    n = curves.get("n")
    if n is None:
        m = re.search(r"N\s*=\s*(\d+)", metric)
        n = m.group(1) if m else None
    runs = runs_of(curves)
    keys = {run: value_key(metric, pts) for run, pts in runs.items()}
    name = next(iter(keys.values()), metric.split()[0] if metric else "fid")
    src = f.source(curves.get("evaluator") or metric, n)
    series = [Series(run, points(pts, keys[run])) for run, pts in runs.items()]
    if not series:
        f.problems.append(f"{f.rel}: metrics.curves holds no runs")
        return []
    fig = Figure(figure_name("fid-vs-step", dataset), f"{name} vs refine step",
                 svg_plot(f"{name} vs training step (EMA weights)", series, "refine step", name), [src],
                 caption=metric)
    t = Table(f"{name} at the first and the last evaluated step", ["run", "first step", name, "last step", name])
    for se in series:
        if se.points:
            (x0, y0), (x1, y1) = se.points[0], se.points[-1]
            t.add(label(se.label), num(int(x0), src, 0), num(y0, src), num(int(x1), src, 0), num(y1, src))
    return [fig, t]


def diagnostic_blocks(f: ResultsFile, diag: dict[str, Any], dataset: str = MAIN_DATASET) -> list:
    src = f.source("refine-stage soft diagnostics (softdimo.soft.soft_diagnostics), logged on one batch",
                   diag.get("n", "one training batch per logged step"))
    runs = runs_of(diag)
    out: list = []
    present = [k for k in DIAGNOSTICS if any(isinstance(p, dict) and k in p
                                             for pts in runs.values() if isinstance(pts, list) for p in pts)]
    for key in present:  # a run that did not log the quantity (no_gan: no discriminator) is left out of its plot
        series = [se for se in (Series(run, points(pts, key)) for run, pts in runs.items()) if se.points]
        out.append(Figure(figure_name(f"diag-{key}", dataset), f"{DIAGNOSTICS[key]} over training",
                          svg_plot(DIAGNOSTICS[key], series, "refine step", key), [src]))
    last = Table("Diagnostics at the last logged step", ["run", "step"] + present)
    for run, pts in runs.items():
        rows = [p for p in pts if isinstance(p, dict)] if isinstance(pts, list) else []
        if rows and present:
            p = rows[-1]
            last.add(label(run), num(p.get("step"), src, 0), *[num(p.get(k), src, 4) for k in present])
    if not present:
        f.problems.append(f"{f.rel}: metrics.diagnostics holds none of {', '.join(DIAGNOSTICS)}")
    return out + ([last] if last.rows else [])


__all__ = ["section", "TITLE", "FILE", "FILES", "DIAGNOSTICS", "is_current", "earlier_blocks", "comparison_table",
           "ablation_tables", "runs_of", "value_key"]
