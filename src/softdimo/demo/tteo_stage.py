"""Demo stage: test-time embedding optimisation (TTEO) with best-of-N on held-out prompts.

The shipped text-to-image student with the best GenEval-like score in the one-step stage (its
weights never change) draws one image per held-out prompt twice, with the same seed: plainly in
one step (before), and with TTEO (a few SGD steps on its input embedding to raise the shipped
rewards of the soft image) over N candidates, keeping per prompt the one the rewards rank first
(after; ``softdimo tteo`` with ``configs/world/tteo.yaml``). Before → after: the GenEval-like
score (the evaluator is never a reward), with its paired standard error; the rewards' means and
the seconds per image beside it.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ..paths import config_path
from ..rewards import build_composite
from ..sample import load_generator
from ..tteo import load_tteo_config, tteo
from .budget import DemoBudget
from .measure import GENEVAL_EVALUATOR, SEED, Model, geneval, heldout, paired_se, world_images
from .reward import reward_means
from .stage import Picture, Progress, StageResult, Strip, save_strip

BATCH = 32
PICTURE = 6


def tteo_images(path: str, meta: list[dict[str, Any]], iters: int, best_of: int, seed: int = SEED) -> torch.Tensor:
    """One TTEO + best-of-N image per prompt (``softdimo tteo``'s procedure, in batches of :data:`BATCH`)."""
    cfg = load_tteo_config(config_path("world", "tteo.yaml"), iters=iters, best_of=best_of)
    student = load_generator(path).student  # type: ignore[attr-defined]
    sampler = student.sampler_with(temperature=cfg.temperature)
    rewards = build_composite(cfg.rewards)
    select = build_composite(cfg.select_rewards) if cfg.select_rewards else rewards
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, len(meta), BATCH):
        prompts = [m["prompt"] for m in meta[i:i + BATCH]]
        res = tteo(student, rewards, prompts=prompts, iters=cfg.iters, lr=cfg.lr, best_of=cfg.best_of, select=select,
                   sampler=sampler, soft_temperature=cfg.soft_temperature, generator=g)
        out.append(res.images)
    return torch.cat(out)


def tteo_stage(student: str, results: Path, budget: DemoBudget, progress: Progress) -> StageResult:
    """Plain one-step vs TTEO + best-of-N images of ``student`` on the held-out prompts (module docstring)."""
    t0 = time.time()
    name = Path(student).name
    meta = heldout(budget.world_prompts)
    prompts = [m["prompt"] for m in meta]
    t = time.time()
    plain = world_images(Model(name, student), meta)
    plain_s = (time.time() - t) / len(meta)
    t = time.time()
    tuned = tteo_images(student, meta, budget.tteo_iters, budget.best_of)
    tuned_s = (time.time() - t) / len(meta)
    b, a = geneval(plain, meta), geneval(tuned, meta)
    b.update(reward_means(plain, prompts))
    a.update(reward_means(tuned, prompts))
    se = paired_se(b, a)
    progress.line(f"GenEval-like {b['geneval']:.3f} -> {a['geneval']:.3f} (± {se:.3f})")
    what = f"TTEO {budget.tteo_iters} SGD steps, best of {budget.best_of}"
    keys = [k for k in b if k.startswith("reward_")]
    rows = [{"label": lab, "model": student, "geneval": r["geneval"], "geneval_per_tag": r["per_tag"],
             **{k: r[k] for k in keys}, "seconds_per_image": s, "n": len(meta),
             "evaluators": {**{k: "mean reward (configs/world/tteo.yaml terms) of the scored images" for k in keys},
                            "seconds_per_image": "wall clock of the whole set / images"}}
            for lab, r, s in ((f"{name}, one step (before)", b, plain_s), (f"{name} + {what} (after)", a, tuned_s))]
    # the picture: the first prompt of each tag, the same images as scored above
    k = min(PICTURE, len(meta))
    pic = Picture(f"One step vs {what}", prompts[:k],
                  [Strip(f"{name}, one step", save_strip(plain[:k], results, "tteo-plain", k)),
                   Strip(f"+ {what}", save_strip(tuned[:k], results, "tteo-selected", k))],
                  caption="The first held-out prompt of each tag; the images scored in the table.")
    return StageResult(
        name="tteo", title=f"TTEO + best-of-{budget.best_of} on {name} (weights unchanged)",
        metric="GenEval-like overall", higher_is_better=True, before=b["geneval"], after=a["geneval"],
        before_label=f"{name}, one step", after_label=what, evaluator=GENEVAL_EVALUATOR, n=len(meta), rows=rows,
        pictures=[pic],
        note=(f"{len(meta)} held-out prompts, one image each, the same seed; paired standard error of the difference "
              f"{se:.3f}. Candidates are ranked by the rewards (configs/world/tteo.yaml), never by the evaluator. "
              f"Cost: {tuned_s / max(plain_s, 1e-9):.0f}× the one-step time per image."),
        seconds=time.time() - t0,
        extra={"student": student, "paired_se": se, "seconds_per_image_before": plain_s,
               "seconds_per_image_after": tuned_s, **{f"{k}_before": b[k] for k in keys},
               **{f"{k}_after": a[k] for k in keys}})


__all__ = ["tteo_stage", "tteo_images"]
