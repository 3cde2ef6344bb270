"""Demo stage: Soft-Di[M]O GAN refinement of the shipped Di[M]O student.

A short ``softdimo refine`` with the ``configs/mnist/soft_gan.yaml`` preset: the preset's Di[M]O
student (the shipped ``dimo-mnist``) keeps its Di[M]O term and gains a GAN whose discriminator is
the frozen teacher read through soft embeddings; the real side is the first ``max_real_images``
MNIST training images, tokenized once (a disk cache keyed by the tokenizer). Before → after:
domain FID of the student before and after the run, each at its best one-step temperature τ over
the same short list (N images, the same seed for every τ and both models), so that neither side
is handicapped by a τ chosen for the other.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..config import load_config
from ..paths import config_path
from ..run import TRAIN_COMMANDS, run_training
from ..sample import SamplingOptions
from .budget import DemoBudget, short_run_overrides
from .measure import DOMAIN_EVALUATOR, Model, mnist_quality, picture
from .stage import Progress, StageResult

PRESET = ("mnist", "soft_gan.yaml")


def preset_student() -> str:
    """The Di[M]O student the preset refines (its ``student`` key)."""
    cfg_cls, _ = TRAIN_COMMANDS["refine"].load()
    return str(load_config(cfg_cls, str(config_path(*PRESET)), []).student)


def best_temperature(label: str, path: str, budget: DemoBudget) -> tuple[float, dict[str, float], list[dict[str, Any]]]:
    """(τ, its quality, one row per τ) with the lowest domain FID over ``budget.temperatures``."""
    rows = []
    for tau in budget.temperatures:
        q = mnist_quality(Model(label, path, SamplingOptions(temperature=tau)), budget.eval_num)
        rows.append({"label": f"{label}, τ {tau:g}", "model": path, "temperature": tau, **q, "n": budget.eval_num})
    best = min(rows, key=lambda r: r["domain_fid"])
    return best["temperature"], {"domain_fid": best["domain_fid"], "classifier_score": best["classifier_score"]}, rows


def soft_gan_stage(out_dir: Path, results: Path, budget: DemoBudget, progress: Progress,
                   quiet: bool = True) -> StageResult:
    """Refine the preset's Di[M]O student with the teacher GAN; best-τ domain FID before and after."""
    t0 = time.time()
    student = preset_student()
    name = Path(student).name
    tau0, q0, rows0 = best_temperature(f"{name} (before)", student, budget)
    progress.line(f"{name}: domain FID {q0['domain_fid']:.1f} at τ {tau0:g}")
    steps = budget.gan_steps
    res = run_training("refine", str(config_path(*PRESET)),
                       short_run_overrides(budget, out_dir, "mnist-soft-gan", steps)
                       + [f"max_real_images={budget.max_real_images}"], resume=False, progress=not quiet)
    tau1, q1, rows1 = best_temperature(f"{name} + GAN, {steps} steps (after)", str(res.final_dir), budget)
    progress.line(f"refined: domain FID {q1['domain_fid']:.1f} at τ {tau1:g}")
    before = Model(f"{name} (before), τ {tau0:g}", student, SamplingOptions(temperature=tau0))
    after = Model(f"+ Soft-Di[M]O GAN, {steps} steps, τ {tau1:g}", str(res.final_dir), SamplingOptions(temperature=tau1))
    pic = picture("Before and after the GAN refinement (each at its best τ)", [before, after], "class", results,
                  "soft-gan", budget.grid_per_condition)
    return StageResult(
        name="soft_gan", title=f"Soft-Di[M]O: GAN refinement of {name} on the frozen teacher ({steps} steps)",
        metric="domain FID", higher_is_better=False, before=q0["domain_fid"], after=q1["domain_fid"],
        before_label=f"{name}, τ {tau0:g}", after_label=f"refined for {steps} steps, τ {tau1:g}",
        evaluator=DOMAIN_EVALUATOR, n=budget.eval_num, rows=rows0 + rows1, pictures=[pic],
        note=(f"Each student at its best one-step τ of {', '.join(f'{t:g}' for t in budget.temperatures)} (same N, "
              f"same seed). Real images: the first {budget.max_real_images or 'all'} MNIST training digits; "
              f"batch {budget.batch_size}, preset configs/mnist/soft_gan.yaml."),
        seconds=time.time() - t0, extra={"run": str(res.run_dir), "student": student,
                                         "classifier_score_before": q0["classifier_score"],
                                         "classifier_score_after": q1["classifier_score"]})


__all__ = ["soft_gan_stage", "best_temperature", "preset_student", "PRESET"]
