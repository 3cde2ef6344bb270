"""Text-to-image (digit world): GenEval-like score per tag, rewards and TTEO.

Reads (each optional):

* ``teacher_world.json`` (``benchmarks/generators.py --preset teacher_world``): ``metrics.rows``
  (``label``, ``options``, ``n``, ``evaluator``, ``geneval`` overall, ``geneval_per_tag`` {tag: accuracy},
  ``seconds_per_image``), ``metrics.steps_sweep.geneval_by_steps``, ``metrics.speed``;
* ``dimo_world.json`` (``--preset dimo_world``): ``metrics.teacher_rows`` and ``metrics.student_rows``
  (same row schema), ``metrics.targets``;
* ``t2i_world.json``, expected schema (``metrics`` part)::

      {"n": 1200, "evaluator": "<GenEval-like scorer>",
       "evaluators": {"geneval": "…", "clip_score": "mini-CLIP …", "reward": "…", "fid": "…"},
       "num_prompts": 600, "images_per_prompt": 2,
       "speed": {"batch_size", "repeats", "device"},
       "tteo_latency_ratio": {row label: s/image ÷ the one-step student's}, "targets": {…},
       "rows": [{"label": "Di[M]O + reward + TTEO 2 iters",
                 "kind": "teacher" | "dimo" | "reward" | "tteo" | "best_of_n" | "gumbel_reward" | "reward_only",
                 "model": FOLDER, "options": {…}, "tteo_iters": 2, "best_of": 4,
                 "geneval": 0.52, "geneval_per_tag": {"single_object": …, …},
                 "clip_score": 0.31, "reward": 0.8, "fid": 35.2, "seconds_per_image": 0.01,
                 "n": 1200, "ns": {"fid": 2000},            # per-metric N where it differs
                 "evaluators": {"fid": "…"}}, …]}          # per-row overrides of the evaluators

A row's number takes its evaluator from ``row.evaluators[metric]``, else ``metrics.evaluators[metric]``,
else ``row.evaluator``, else ``metrics.evaluator``; its N from ``row.ns[metric]``, else ``row.n``, else
``metrics.n``.
"""
from __future__ import annotations

from typing import Any

from ..document import Figure, Section
from ..plots import Series, svg_plot
from ..schema import ResultsDir, ResultsFile, as_float, points
from .common import GENEVAL_TAGS, absent, finish, kv_table, list_of_dicts, method_name, rows_table, sampler_text, \
    speed_source

TITLE = "Text-to-image (digit world): GenEval-like per tag, rewards, TTEO"
PER_TAG = [("geneval", "overall", 3)] + [(f"geneval_per_tag.{t}", t, 3) for t in GENEVAL_TAGS]


def section(rd: ResultsDir) -> Section:
    tw, dw, t2 = rd.file("teacher_world.json"), rd.file("dimo_world.json"), rd.file("t2i_world.json")
    s = Section(TITLE, files=[f.rel for f in (tw, dw, t2) if f.ok])
    for f in (tw, dw, t2):
        absent(s, f)
    name = [("row", "label"), ("sampler", sampler_text)]
    if tw.ok:
        rows = list_of_dicts(tw.get("metrics.rows", [], list))
        s.blocks.append(rows_table(tw, "Teacher: GenEval-like accuracy per tag", rows,
                                   PER_TAG + [("seconds_per_image", "s / image", 4)], name, speed_source(tw),
                                   note="Overall = mean of the six per-tag accuracies; an image is correct or not."))
    if dw.ok:
        rows = list_of_dicts(dw.get("metrics.teacher_rows", [], list)) + \
            list_of_dicts(dw.get("metrics.student_rows", [], list))
        s.blocks.append(rows_table(dw, "Teacher N steps vs one-step Di[M]O: GenEval-like per tag", rows,
                                   PER_TAG + [("seconds_per_image", "s / image", 4)],
                                   [("method", lambda r: method_name(r.get("model"))), *name], speed_source(dw)))
        targets = dw.get("metrics.targets", None, dict, required=False)
        if targets:
            s.blocks.append(kv_table(dw, "Di[M]O text-to-image targets (dimo_world.json)", targets,
                                     speed=speed_source(dw)))
    if tw.ok or dw.ok:
        s.blocks.append(geneval_plot(tw, dw))
    if t2.ok:
        rows = list_of_dicts(t2.get("metrics.rows", [], list))
        s.blocks.append(rows_table(
            t2, "Soft-Di[M]O text-to-image: rewards, TTEO, best-of-N and ablations", rows,
            PER_TAG + [("clip_score", "mini-CLIP", 3), ("reward", "reward", 3), ("fid", "FID", 2),
                       ("seconds_per_image", "s / image", 4)],
            [("row", "label"), ("kind", "kind")], speed_source(t2),
            note="TTEO: test-time embedding optimisation (iterations in the row label); best-of-N picks by the "
                 "reward, never by the evaluator."))
        latency = t2.get("metrics.tteo_latency_ratio", None, dict, required=False)
        if latency:  # ratios of timings: their source is the speed measurement
            s.blocks.append(kv_table(t2, "TTEO latency per image / one-step sampling (t2i_world.json)", latency,
                                     source=speed_source(t2)))
        targets = t2.get("metrics.targets", None, dict, required=False)
        if targets:
            s.blocks.append(kv_table(t2, "Text-to-image targets (t2i_world.json)", targets, speed=speed_source(t2)))
    return finish(s, tw, dw, t2)


def geneval_plot(tw: ResultsFile, dw: ResultsFile) -> Figure:
    """GenEval-like overall against teacher steps, one-step students as points at N = 1."""
    series = []
    if tw.ok:
        series.append(Series("teacher", points(tw.get("metrics.steps_sweep.geneval_by_steps", {}, dict), "geneval")))
    if dw.ok:
        trows = list_of_dicts(dw.metrics.get("teacher_rows"))
        pts = sorted((float(_steps(r)), float(r["geneval"])) for r in trows
                     if as_float(r.get("geneval")) is not None and as_float(_steps(r)) is not None)
        if pts and not (series and series[0].points):
            series = [Series("teacher", pts)]
        for r in list_of_dicts(dw.metrics.get("student_rows")):
            if as_float(r.get("geneval")) is not None:
                series.append(Series(f"{method_name(r.get('model'))} ({sampler_text(r)})",
                                     [(1.0, float(r["geneval"]))], "points"))
    svg = svg_plot("GenEval-like overall vs teacher steps", series, "teacher sampler steps N", "GenEval-like overall",
                   log_x=2)
    return Figure("geneval-vs-steps", "Teacher steps vs GenEval-like overall, one-step students as points", svg,
                  [f.source() for f in (tw, dw) if f.ok])


def _steps(row: dict[str, Any]) -> Any:
    o = row.get("options") if isinstance(row.get("options"), dict) else {}
    return o.get("steps")


__all__ = ["section", "TITLE"]
