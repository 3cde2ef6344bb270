"""Soft-Di[M]O training curves: FID against refine step, soft-vs-hard diagnostics, targets and step cost.

Expected ``soft_gan_mnist.json`` (``metrics`` part, as ``benchmarks/soft_gan.py`` writes it)::

    {"n": 2000, "evaluator": "<FID network>",
     "floor": {"fid", "precision", "recall", "n", "evaluator"},
     "rows": [   # same N, evaluator and seed; every run from checkpoints/dimo-mnist, equal refine steps
       {"label": "Soft-Di[M]O (soft + GAN) τ=2",
        "kind": "teacher" | "dimo" | "soft" | "gumbel" | "gan_only" | "mask_none" (optional: read from the label),
        "model": FOLDER, "options": {"steps", "cfg_scale", "temperature"},
        "sampler": {…}, "n": 2000, "evaluator": "…", "fid", "precision", "recall", "fid_over_floor",
        "seconds_per_image" (optional)}, …],
     "curves": {"metric": "domain_fid (…), N = 1000, …", "evaluator" (optional), "n" (optional),
                RUN: [{"step": 0, "domain_fid": 56.1}, {"step": 150, …}, …], …},
     "diagnostics": {"source": "…", RUN: [{"step": 50, "soft_entropy", "soft_p_max", "soft_cov_trace", "soft_gap",
                                           "d_acc", …}, …], …},
     "targets": {NAME: number | bool, …},
     "step_cost": {"seconds_per_step": {"refine", "distill"}, "refine_over_distill", "repeats", "batch_size", …}}

``RUN`` names (``soft``, ``gumbel``, ``gan_only``, ``mask_none``) may also sit under a ``"runs"``
object; each curve may be parallel lists ``{"steps": […], "<metric>": […]}``. The curve's value key
is the first word of ``metric`` when the points have it, else their first numeric key besides
``step``; its N is ``curves.n`` or the "N = …" in ``metric``. Diagnostics are the refine stage's
logged ``soft_*`` values (:func:`softdimo.soft.soft_diagnostics`, §4.2: entropy, p_max, tr Σ and the
discriminator's soft-vs-hard gap |D(ẽ) − E D(e_x)|).
"""
from __future__ import annotations

import re
from typing import Any

from ..document import Figure, Section, Table, label, num
from ..plots import Series, svg_plot
from ..schema import ResultsDir, ResultsFile, as_float, points
from .common import absent, finish, kv_table

TITLE = "Soft-Di[M]O training: FID vs step and soft-vs-hard diagnostics"
DIAGNOSTICS = {"soft_entropy": "token entropy H(p) (nats)", "soft_p_max": "mean p_max",
               "soft_cov_trace": "tr Σ (embedding covariance)", "soft_gap": "soft-vs-hard gap |D(ẽ) − E D(e_x)|",
               "d_acc": "discriminator accuracy"}


def section(rd: ResultsDir) -> Section:
    sg = rd.file("soft_gan_mnist.json")
    s = Section(TITLE, files=[sg.rel] if sg.ok else [])
    absent(s, sg)
    if sg.ok:
        curves = sg.get("metrics.curves", None, dict)
        if curves:
            s.blocks += curve_blocks(sg, curves)
        diag = sg.get("metrics.diagnostics", None, dict)
        if diag:
            s.blocks += diagnostic_blocks(sg, diag)
        targets = sg.get("metrics.targets", None, dict, required=False)
        cost = sg.get("metrics.step_cost", None, dict, required=False)
        cost_src = sg.source("wall clock, seconds per optimiser step (median of alternated runs)",
                             (cost or {}).get("repeats"))
        if targets:
            s.blocks.append(kv_table(sg, "Soft-Di[M]O targets (soft_gan_mnist.json)", targets, sg.source(),
                                     speed=cost_src))
        if cost:
            s.blocks.append(kv_table(sg, "Cost of a refine step vs a Di[M]O step", cost, cost_src))
    return finish(s, sg)


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


def curve_blocks(f: ResultsFile, curves: dict[str, Any]) -> list:
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
    fig = Figure("fid-vs-step", f"{name} vs refine step",
                 svg_plot(f"{name} vs training step (EMA weights)", series, "refine step", name), [src],
                 caption=metric)
    t = Table(f"{name} at the first and the last evaluated step", ["run", "first step", name, "last step", name])
    for se in series:
        if se.points:
            (x0, y0), (x1, y1) = se.points[0], se.points[-1]
            t.add(label(se.label), num(int(x0), src, 0), num(y0, src), num(int(x1), src, 0), num(y1, src))
    return [fig, t]


def diagnostic_blocks(f: ResultsFile, diag: dict[str, Any]) -> list:
    src = f.source("refine-stage soft diagnostics (softdimo.soft.soft_diagnostics), logged on one batch",
                   diag.get("n", "one training batch per logged step"))
    runs = runs_of(diag)
    out: list = []
    present = [k for k in DIAGNOSTICS if any(isinstance(p, dict) and k in p
                                             for pts in runs.values() if isinstance(pts, list) for p in pts)]
    for key in present:
        series = [Series(run, points(pts, key)) for run, pts in runs.items()]
        out.append(Figure(f"diag-{key}", f"{DIAGNOSTICS[key]} over training",
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


__all__ = ["section", "TITLE", "DIAGNOSTICS", "runs_of", "value_key"]
