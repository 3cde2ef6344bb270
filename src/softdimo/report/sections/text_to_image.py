"""Text-to-image (digit world): GenEval-like score per tag, rewards and TTEO.

Reads (each optional):

* ``teacher_world.json`` (``benchmarks/generators.py --preset teacher_world``): ``metrics.rows``
  (``label``, ``options``, ``n``, ``evaluator``, ``geneval`` overall, ``geneval_per_tag`` {tag: accuracy},
  ``seconds_per_image``), ``metrics.steps_sweep.geneval_by_steps``, ``metrics.speed``;
* ``dimo_world.json`` (``--preset dimo_world``): ``metrics.teacher_rows`` and ``metrics.student_rows``
  (same row schema), ``metrics.targets``;
* ``t2i_world.json`` (``benchmarks/t2i_world.py``), ``metrics`` part::

      {"n": 1200, "evaluator": "<GenEval-like scorer>",
       "evaluators": {"geneval": "…", "per_tag": "…", "geneval_se": "…", "clip_score": "mini-CLIP …",
                      "reward": "…", "fid": "…"},
       "num_prompts": 300, "images_per_prompt": 4, "skipped": ["gumbel_reward"],
       "speed": {"batch_size", "repeats", "device"},
       "tteo": {"config": YAML, "student": "reward", "iters": 4, "lr": 0.2, "best_of": 4, …},
       "rows": {"teacher" | "dimo" | "reward" | "tteo" | "best_of_n" | "gumbel_reward" | "reward_only":
                {"label": "Soft-Di[M]O + reward + TTEO 4 iters, best of 4", "model": FOLDER, "options": {…},
                 "sampler": {…}, "tteo_iters": 4, "best_of": 4,
                 "geneval": 0.52, "geneval_se": 0.02, "per_tag": {"single_object": …, …}, "per_tag_se": {…},
                 "clip_score": 0.31, "reward": 0.8, "fid": 35.2, "seconds_per_image": 0.01,
                 "n": 1200, "ns": {"fid": 2000},            # per-metric N where it differs
                 "evaluators": {"fid": "…"}}, …},           # per-row overrides of the evaluators
       "tteo_latency_ratio": {"tteo": s/image ÷ the one-step student's, "best_of_n": …},
       "targets": {NAME: {"metric": "geneval" | "fid", "values": {row: …}, "se": {row: …} | "value", "se",
                          "threshold" | "low", "high", "gap", "gap_se", "holds", "shown"}, …,
                   "reward_only_hacking": {"reward_up", "geneval_down", "fid_up", "holds", …}}}

  A ``t2i_world.json`` of the earlier schema (``metrics.rows`` a list of rows with a ``kind``) is shown
  like any other results file, with a note.

A row's number takes its evaluator from ``row.evaluators[metric]``, else ``metrics.evaluators[metric]``,
else ``row.evaluator``, else ``metrics.evaluator``; its N from ``row.ns[metric]``, else ``row.n``, else
``metrics.n``.
"""
from __future__ import annotations

from typing import Any

from ..document import Figure, Section, Table, Text, label, num
from ..plots import Series, svg_plot
from ..schema import ResultsDir, ResultsFile, as_float, points
from .common import GENEVAL_TAGS, absent, finish, kv_table, list_of_dicts, method_name, rows_table, sampler_text, \
    speed_source
from .other import file_blocks

TITLE = "Text-to-image (digit world): GenEval-like per tag, rewards, TTEO"
PER_TAG = [("geneval", "overall", 3)] + [(f"geneval_per_tag.{t}", t, 3) for t in GENEVAL_TAGS]
T2I_ROWS = ["teacher", "dimo", "reward", "tteo", "best_of_n", "gumbel_reward", "reward_only"]
T2I_COLUMNS = [("geneval", "overall", 3), ("geneval_se", "± SE", 3)] + \
    [(f"per_tag.{t}", t, 3) for t in GENEVAL_TAGS] + \
    [("clip_score", "mini-CLIP", 3), ("reward", "reward", 3), ("fid", "FID", 2), ("seconds_per_image", "s / image", 4)]


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
        s.blocks += t2i_blocks(t2, s.problems)
    return finish(s, tw, dw, t2)


def t2i_blocks(f: ResultsFile, problems: list[str]) -> list:
    """The rows, TTEO settings, latency ratios and targets of ``t2i_world.json`` (the earlier schema generically)."""
    rows = f.get("metrics.rows", None, dict, required=False)
    if rows is None:  # a measured file of the earlier schema: its numbers as they stand
        return [Text(f"`{f.rel}` was written by an earlier version of benchmarks/t2i_world.py (rows as a list): "
                     f"shown as it stands, without standard errors or the current targets."), *file_blocks(f)]
    named = [{**rows[k], "name": k} for k in [*T2I_ROWS, *(k for k in rows if k not in T2I_ROWS)]
             if isinstance(rows.get(k), dict)]
    skipped = f.metrics.get("skipped")
    note = ("± SE: standard error of the overall score, clustered by prompt. TTEO: test-time embedding "
            "optimisation; best-of-N picks by the reward, never by the evaluator.")
    if isinstance(skipped, list) and skipped:
        note += f" Not run: {', '.join(map(str, skipped))}."
    out: list = [rows_table(f, "Soft-Di[M]O text-to-image: rewards, TTEO, best-of-N and ablations", named,
                            T2I_COLUMNS, [("row", "name"), ("method", "label"), ("sampler", sampler_text)],
                            speed_source(f), note=note)]
    settings = f.get("metrics.tteo", None, dict, required=False)
    if settings:
        out.append(kv_table(f, "TTEO settings (t2i_world.json)", settings))
    latency = f.get("metrics.tteo_latency_ratio", None, dict, required=False)
    if latency:  # ratios of timings: their source is the speed measurement
        out.append(kv_table(f, "TTEO latency per image / one-step sampling (t2i_world.json)", latency,
                            source=speed_source(f)))
    targets = f.get("metrics.targets", None, dict, required=False)
    if targets:
        out.append(targets_table(f, targets))
        hacking = targets.get("reward_only_hacking")
        if isinstance(hacking, dict):
            out.append(hacking_table(f, hacking))
    return out


def hacking_table(f: ResultsFile, hacking: dict[str, Any]) -> Table:
    """The parts of the reward-only target, each number with the evaluator of the metric its key names."""
    t = Table("Reward only: the reward up over Di[M]O, GenEval-like down or FID up against + reward "
              "(t2i_world.json)", ["quantity", "value"])
    for key, value in hacking.items():
        if as_float(value) is None and not isinstance(value, bool):
            continue
        metric = next((m for m in ("geneval", "fid", "reward") if m in key.removeprefix("reward_only_")), None)
        digits = 2 if metric == "fid" else 3
        t.add(key, num(value, f.source(_evaluator(f, metric) if metric else None), digits))
    return t


def targets_table(f: ResultsFile, targets: dict[str, Any]) -> Table:
    """One line per target: the measured value, its threshold, the gap and its SE, whether it holds and is shown."""
    t = Table("Text-to-image targets (t2i_world.json)", ["target", "value", "threshold", "gap", "gap SE", "holds",
                                                         "shown"],
              note="gap > 0: the target's direction; shown: the gap is positive and larger than its standard error "
                   "(FID has none).")
    for name, tg in targets.items():
        if not isinstance(tg, dict):
            continue
        src = f.source(_evaluator(f, str(tg.get("metric", "geneval"))))
        values = tg.get("values") if isinstance(tg.get("values"), dict) else {}
        value = tg.get("value", next(iter(values.values()), None))
        if tg.get("threshold") is None and as_float(tg.get("low")) is not None and as_float(tg.get("high")) is not None:
            threshold = label(f"[{tg['low']:g}, {tg['high']:g}]")
        else:
            threshold = num(as_float(tg.get("threshold")), src, 3)
        t.add(name, num(as_float(value), src, 3), threshold, num(as_float(tg.get("gap")), src, 3),
              num(as_float(tg.get("gap_se")), src, 3), num(_bool(tg.get("holds")), src),
              num(_bool(tg.get("shown")), src))
    return t


def _evaluator(f: ResultsFile, metric: str) -> Any:
    evs = f.metrics.get("evaluators")
    return evs.get(metric) if isinstance(evs, dict) else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


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
