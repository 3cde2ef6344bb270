"""How much the demo does at each size: steps, sample counts, batch sizes (:data:`BUDGETS`).

``default`` is sized for about five to eight minutes on two CPU cores with empty caches;
``tiny`` runs in well under a minute (the test suite); ``full`` uses larger step counts and sample
sizes for tighter numbers (an hour or more on a CPU).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class DemoBudget:
    """Steps, sample counts and batch sizes of one demo size."""

    recon_num: int  # test images per tokenizer (PSNR)
    eval_num: int  # N of the MNIST domain FID / classifier score (one-step vs N steps, Soft-Di[M]O stage)
    world_prompts: int  # held-out digit-world prompts scored by the GenEval-like scorer (one image each)
    speed_batch: int  # batch size of the side-by-side timing
    speed_repeats: int  # timed calls per row (median)
    dimo_steps: int  # the short Di[M]O run shown as a learning curve
    dimo_points: int  # curve points after step 0 (evenly spaced up to dimo_steps)
    curve_num: int  # N of each curve point (domain FID)
    reward_steps: int  # reward fine-tuning of the shipped Di[M]O text-to-image student
    batch_size: int  # global batch of every training stage
    tteo_iters: int  # TTEO SGD steps per candidate
    best_of: int  # TTEO candidates per prompt
    temperatures: tuple[float, ...]  # one-step τ tried for each student of the Soft-Di[M]O stage (best τ reported)
    spread_seeds: int = 3  # sampling seeds of each Soft-Di[M]O-stage student at its τ (mean and its standard error)
    grid_per_condition: int = 2  # rows of samples per model in the pictures
    threads: int = 0  # torch threads (0 = torch's default: all cores)


BUDGETS: dict[str, DemoBudget] = {
    "tiny": DemoBudget(recon_num=16, eval_num=16, world_prompts=6, speed_batch=4, speed_repeats=1, dimo_steps=2,
                       dimo_points=1, curve_num=16, reward_steps=2, batch_size=4,
                       tteo_iters=1, best_of=2, temperatures=(1.0, 2.0), grid_per_condition=1, threads=1,
                       spread_seeds=2),
    "default": DemoBudget(recon_num=500, eval_num=500, world_prompts=240, speed_batch=32, speed_repeats=3,
                          dimo_steps=60, dimo_points=2, curve_num=300, reward_steps=50, batch_size=32,
                          tteo_iters=2, best_of=4, temperatures=(1.0, 2.0, 3.0, 5.0)),
    "full": DemoBudget(recon_num=2000, eval_num=2000, world_prompts=600, speed_batch=64, speed_repeats=5,
                       dimo_steps=1000, dimo_points=5, curve_num=1000, reward_steps=300, batch_size=32,
                       tteo_iters=4, best_of=4, temperatures=(1.0, 2.0, 3.0, 5.0)),
}


def short_run_overrides(budget: DemoBudget, out_dir, run_name: str, steps: int) -> list[str]:
    """The overrides of a demo training stage: ``steps`` steps under ``out_dir/runs/run_name`` at the
    budget's batch and threads, a warm-up of 1/8 of the run (at most 100), no checkpoints or grids."""
    return [f"train.out_dir={out_dir / 'runs'}", f"train.run_name={run_name}", f"train.max_steps={steps}",
            f"train.batch_size={budget.batch_size}", f"train.threads={budget.threads}",
            f"train.warmup_steps={min(100, max(1, steps // 8))}", "train.checkpoint_every=0", "train.sample_every=0",
            f"train.log_every={max(1, min(25, steps))}", "diag_samples=0"]


def budget_for(size: str) -> DemoBudget:
    """The budget of ``size`` (tiny, default or full)."""
    if size not in BUDGETS:
        raise ConfigError(f"demo size must be one of {', '.join(BUDGETS)}, got {size!r}.")
    return BUDGETS[size]


__all__ = ["DemoBudget", "BUDGETS", "budget_for"]
