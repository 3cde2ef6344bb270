"""Demo stage: reward fine-tuning of the shipped text-to-image Di[M]O student.

A short ``softdimo refine`` with the ``configs/world/soft_reward.yaml`` preset: the preset's Di[M]O
student (the shipped ``dimo-world``) keeps its Di[M]O term and gains the in-project rewards
(mini-CLIP and the attribute classifier) of its soft images, ``decode_soft(softmax(z))``, on the
world's *training* captions. Before → after is measured on the *held-out* prompts, one image
each, the same seed: the rewards the run optimises (their sum as ``softdimo tteo`` weighs them:
10 × the mini-CLIP cosine + 0.1 × the attribute log-probability), and, beside them, the
GenEval-like score (a separate evaluator, never a reward) with its paired standard error. A run
this short moves the rewards on prompts it never saw; whether the evaluator follows is what the
second number shows.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ..config import load_config
from ..paths import config_path
from ..rewards import build_composite
from ..run import TRAIN_COMMANDS, run_training
from ..tteo import default_reward_terms
from .budget import DemoBudget, short_run_overrides
from .measure import GENEVAL_EVALUATOR, Model, geneval, heldout, paired_se, picture, world_images
from .stage import Progress, StageResult

PRESET = ("world", "soft_reward.yaml")


def preset_student() -> str:
    """The Di[M]O student the preset fine-tunes (its ``student`` key)."""
    cfg_cls, _ = TRAIN_COMMANDS["refine"].load()
    return str(load_config(cfg_cls, str(config_path(*PRESET)), []).student)


def reward_means(images: torch.Tensor, prompts: list[str]) -> dict[str, float]:
    """Mean of each shipped reward (as TTEO scales them) over ``images`` and their prompts."""
    rewards = build_composite(default_reward_terms()).eval()
    with torch.no_grad():
        terms = rewards.score_terms(images, prompts)
    return {f"reward_{k}": float(v.float().mean()) for k, v in terms.items()}


def measure_world(label: str, path: str, meta: list[dict[str, Any]]) -> dict[str, Any]:
    """GenEval-like (per image) and the rewards of one image per held-out prompt."""
    images = world_images(Model(label, path), meta)
    return {**geneval(images, meta), **reward_means(images, [m["prompt"] for m in meta])}


def reward_total(r: dict[str, Any]) -> float:
    """The rewards' sum (each already weighted as ``softdimo tteo`` weighs it)."""
    return float(sum(v for k, v in r.items() if k.startswith("reward_")))


def reward_stage(out_dir: Path, results: Path, budget: DemoBudget, progress: Progress,
                 quiet: bool = True) -> StageResult:
    """Reward fine-tuning of the preset's student; the rewards and GenEval-like on held-out prompts, before and after."""
    t0 = time.time()
    student = preset_student()
    name = Path(student).name
    meta = heldout(budget.world_prompts)
    b = measure_world(name, student, meta)
    progress.line(f"{name}: held-out reward {reward_total(b):.3f}, GenEval-like {b['geneval']:.3f}")
    steps = budget.reward_steps
    res = run_training("refine", str(config_path(*PRESET)), short_run_overrides(budget, out_dir, "world-reward", steps),
                       resume=False, progress=not quiet)
    a = measure_world(f"{name} + reward", str(res.final_dir), meta)
    se = paired_se(b, a)
    progress.line(f"reward fine-tuned: held-out reward {reward_total(a):.3f}, GenEval-like {a['geneval']:.3f} "
                  f"(Δ {a['geneval'] - b['geneval']:+.3f} ± {se:.3f})")
    keys = [k for k in b if k.startswith("reward_")]
    reward_eval = "mean reward (configs/world/tteo.yaml terms) of the scored images"
    rows = [{"label": lab, "model": path, "reward": reward_total(r), **{k: r[k] for k in keys}, "geneval": r["geneval"],
             "n": len(meta), "evaluators": {**{k: reward_eval for k in [*keys, "reward"]}, "geneval": GENEVAL_EVALUATOR}}
            for lab, path, r in ((f"{name} (before)", student, b), (f"+ reward, {steps} steps (after)",
                                                                     str(res.final_dir), a))]
    pic = picture("Before and after the reward fine-tuning", [Model(f"{name} (before)", student),
                                                              Model(f"+ reward, {steps} steps", str(res.final_dir))],
                  "text", results, "reward", budget.grid_per_condition)
    return StageResult(
        name="reward", title=f"Reward fine-tuning of {name} through soft embeddings ({steps} steps)",
        metric="reward on held-out prompts", higher_is_better=True, before=reward_total(b), after=reward_total(a),
        before_label=f"{name}", after_label=f"fine-tuned for {steps} steps",
        evaluator="the shipped rewards, 10 × mini-CLIP cosine + 0.1 × attribute log-probability, mean over the images",
        n=len(meta), rows=rows, pictures=[pic],
        note=(f"{len(meta)} held-out prompts (never trained on), one image each, the same seed before and after. The "
              f"GenEval-like score, a separate evaluator, went {b['geneval']:.3f} → {a['geneval']:.3f} (paired standard "
              f"error of the difference {se:.3f}). Batch {budget.batch_size}, preset configs/world/soft_reward.yaml."),
        seconds=time.time() - t0,
        extra={"run": str(res.run_dir), "student": student, "geneval_before": b["geneval"],
               "geneval_after": a["geneval"], "geneval_paired_se": se,
               **{f"{k}_before": b[k] for k in keys}, **{f"{k}_after": a[k] for k in keys}})


__all__ = ["reward_stage", "preset_student", "reward_means", "reward_total", "measure_world", "PRESET"]
