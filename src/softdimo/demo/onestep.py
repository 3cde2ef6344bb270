"""Demo stage: one step vs N steps, with the shipped teacher and its shipped one-step students.

For each teacher under ``checkpoints/`` and the students distilled from it (read from their
provenance, :func:`softdimo.teachers.catalog.families`):

* **time**: seconds per image of the teacher at its N-step sampler (N = 16, the CFG scale its
  students were distilled against) and of every student (one forward pass), timed side by side at
  one batch size in this process (:func:`softdimo.eval.speed.measure_speed`: rows alternated,
  a warm-up call, median of the repeats);
* **quality**, same N, same seed: domain FID and classifier score (class teachers: MNIST or
  Fashion-MNIST, each with its own classifier) or the GenEval-like score on held-out prompts (text
  teachers, digit world), for the teacher at N steps,
  the teacher forced to one step, and every student;
* a picture: the same labels or prompts and seed for every row.

Before → after: seconds per image, teacher at N steps → the student with the best quality. The
quality of both sits beside it (``rows``), with the one-step teacher as the baseline a student
has to beat.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import torch

from ..classifier import domain_evaluator
from ..eval.speed import measure_speed
from ..sample import SamplingOptions, conditions_for, load_generator
from ..teachers.catalog import Family
from .budget import DemoBudget
from .measure import GENEVAL_EVALUATOR, Model, domain_quality, geneval, heldout, picture, world_images
from .stage import StageResult

TEACHER_STEPS = 16


def models_of(family: Family) -> tuple[Model, Model, list[Model]]:
    """The teacher at N steps, the teacher at one step, and every student (its own sampler)."""
    w = family.teacher_cfg
    t = str(family.teacher.path)
    cfg = f", CFG {w:g}" if w is not None else ""
    return (Model(f"{family.teacher.name}, {TEACHER_STEPS} steps{cfg}", t, SamplingOptions(steps=TEACHER_STEPS, cfg_scale=w)),
            Model(f"{family.teacher.name}, 1 step{cfg}", t, SamplingOptions(steps=1, cfg_scale=w)),
            [Model(f"{s.name}, 1 step", str(s.path)) for s in family.students])


def timing(models: list[Model], cond: str, batch: int, repeats: int) -> dict[str, float]:
    """Seconds per image of each model at batch ``batch``, timed side by side (module docstring)."""
    samplers: dict[str, Callable[[int], Any]] = {}
    for m in models:
        gen = load_generator(m.path)
        spec = {"labels": list(range(10))} if cond == "class" else {"prompts": [p["prompt"] for p in heldout(batch)]}
        conds = conditions_for(gen, batch, **spec)

        def call(b: int, gen=gen, conds=conds, options=m.options) -> Any:
            return gen.generate(labels=conds.labels, prompts=conds.prompts, options=options,
                                generator=torch.Generator().manual_seed(0))
        samplers[m.label] = call
    res = measure_speed(samplers, [batch], repeats=repeats, warmup=1)
    return {r.name: r.seconds_per_image for r in res}


def quality(m: Model, cond: str, domain: str, budget: DemoBudget) -> dict[str, Any]:
    """Domain FID + classifier score against ``domain`` (class) or GenEval-like (text) of ``m``."""
    if cond == "class":
        return domain_quality(m, budget.eval_num, dataset=domain)
    meta = heldout(budget.world_prompts)
    res = geneval(world_images(m, meta), meta)
    return {"geneval": res["geneval"], "geneval_per_tag": res["per_tag"]}


def onestep_stage(family: Family, domain: str, results: Path, budget: DemoBudget) -> StageResult:
    """One step vs N steps for one teacher family (module docstring)."""
    t0 = time.time()
    cond = family.cond
    slow, one, students = models_of(family)
    speed = timing([slow, one, *students], cond, budget.speed_batch, budget.speed_repeats)
    key, better_high = ("domain_fid", False) if cond == "class" else ("geneval", True)
    q_eval = domain_evaluator(domain) if cond == "class" else GENEVAL_EVALUATOR
    clock = f"wall clock, batch {budget.speed_batch}, median of {budget.speed_repeats} side-by-side calls"
    rows = []
    for m in (slow, one, *students):
        q = quality(m, cond, domain, budget)
        rows.append({"label": m.label, "model": m.path, "sampler": m.sampler_text(), **q,
                     "seconds_per_image": speed.get(m.label),
                     "n": budget.eval_num if cond == "class" else len(heldout(budget.world_prompts)),
                     "evaluators": {**{k: q_eval for k in q}, "seconds_per_image": clock},
                     "ns": {"seconds_per_image": f"batch {budget.speed_batch} × {budget.speed_repeats}"}})
    best = (max if better_high else min)(rows[2:], key=lambda r: r[key]) if students else None
    notes = {r["label"]: f"{r['sampler']}" + (f"; {1e3 * r['seconds_per_image']:.1f} ms / image"
                                               if r.get("seconds_per_image") else "") for r in rows}
    pic = picture(f"{family.teacher.name}: {TEACHER_STEPS} steps vs one step", [slow, one, *students], cond, results,
                  f"onestep-{family.teacher.name}", budget.grid_per_condition, notes)
    ratio = (speed[slow.label] / best["seconds_per_image"]) if best and best.get("seconds_per_image") else None
    q_name = "domain FID (lower is better)" if cond == "class" else "GenEval-like overall (higher is better)"
    note = (f"The student draws an image in one forward pass; the teacher needs {TEACHER_STEPS} (twice that with CFG). "
            f"Quality ({q_name}) of every row is in the table, with the teacher forced to one step as the baseline a "
            f"student has to beat.")
    return StageResult(
        name=f"onestep_{domain}", title=f"One step vs {TEACHER_STEPS} steps ({domain}): shipped teacher and students",
        metric="seconds per image", higher_is_better=False, before=speed.get(slow.label),
        after=best.get("seconds_per_image") if best else None, before_label=slow.label,
        after_label=best["label"] if best else "no student found",
        evaluator=clock,
        n=f"batch {budget.speed_batch} × {budget.speed_repeats}", rows=rows, pictures=[pic], note=note,
        seconds=time.time() - t0,
        extra={"speedup": ratio, "quality_metric": key, "quality_evaluator": q_eval, "quality_before": rows[0][key], "quality_after": best[key] if best else None,
               "quality_one_step_teacher": rows[1][key]})


__all__ = ["onestep_stage", "models_of", "timing", "TEACHER_STEPS"]
