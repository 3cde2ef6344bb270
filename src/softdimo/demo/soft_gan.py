"""Demo stage: what Soft-Di[M]O GAN refinement did to the shipped Di[M]O student.

Before: the Di[M]O student that the ``configs/mnist/soft_gan.yaml`` preset refines (its ``student``
key, the shipped ``dimo-mnist``). After: the shipped student that a run of that preset made from it
(the folder under ``checkpoints/`` whose ``student.json`` says ``refined_from`` that student with a
GAN weight above zero; its model card gives the command). Both are measured in this run: domain
FID of N one-step images, each student at its best temperature τ over the same short list (the
same seed for every τ and both models), so that neither side is handicapped by a τ chosen for the
other; then each at its τ with ``budget.spread_seeds`` sampling seeds in all, whose means are the
stage's before and after, with the standard error of their difference. No training happens here: the
refinement that made the shipped student took hundreds of steps (its card), far beyond a demo's
minutes, and a few dozen steps would show noise.
"""
from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Any

from ..config import load_config
from ..errors import DataError
from ..paths import config_path, project_root
from ..run import TRAIN_COMMANDS
from ..sample import SamplingOptions
from ..teachers.catalog import catalog, entry
from .budget import DemoBudget
from .measure import DOMAIN_EVALUATOR, SEED, Model, domain_quality, picture
from .stage import Progress, StageResult

PRESET = ("mnist", "soft_gan.yaml")


def preset_student() -> str:
    """The Di[M]O student the preset refines (its ``student`` key)."""
    cfg_cls, _ = TRAIN_COMMANDS["refine"].load()
    return str(load_config(cfg_cls, str(config_path(*PRESET)), []).student)


def refined_student(student: str, root: str | Path | None = None) -> Path:
    """The shipped folder under ``root`` (default ``checkpoints/``) refined from ``student`` with a GAN.

    Read from each student's ``distillation`` record (:func:`~softdimo.teachers.catalog.catalog`):
    ``refined_from`` names ``student`` and ``refine.gan.w_gan`` is above zero. Raises
    :class:`DataError` when none or several match.
    """
    root = Path(root) if root is not None else project_root() / "checkpoints"
    found = [e.path for e in catalog(root) if e.provenance.get("refined_from") == student
             and float(e.provenance.get("refine", {}).get("gan", {}).get("w_gan", 0.0)) > 0]
    if len(found) != 1:
        what = "no" if not found else f"{len(found)} ({', '.join(p.name for p in found)})"
        raise DataError(f"{root} holds {what} student refined from {student} with a GAN; the demo's Soft-Di[M]O "
                        f"stage compares exactly one such student with its start. Train one with "
                        f"`softdimo refine --config configs/mnist/soft_gan.yaml` and copy its final/ there.")
    return found[0]


def best_temperature(label: str, path: str, budget: DemoBudget) -> tuple[float, dict[str, float], list[dict[str, Any]]]:
    """(τ, its quality, one row per τ) with the lowest domain FID over ``budget.temperatures``."""
    rows = []
    for tau in budget.temperatures:
        q = domain_quality(Model(label, path, SamplingOptions(temperature=tau)), budget.eval_num)
        rows.append({"label": f"{label}, τ {tau:g}", "model": path, "temperature": tau, **q, "n": budget.eval_num})
    best = min(rows, key=lambda r: r["domain_fid"])
    return best["temperature"], {"domain_fid": best["domain_fid"], "classifier_score": best["classifier_score"]}, rows


def over_seeds(label: str, path: str, tau: float, first: float, budget: DemoBudget) -> list[dict[str, Any]]:
    """Domain FID of ``path`` at ``tau`` for each of ``budget.spread_seeds`` sampling seeds (the first, SEED,
    is ``first``, already measured by the τ sweep)."""
    rows = [{"label": f"{label}, τ {tau:g}, seed {SEED}", "model": path, "temperature": tau, "seed": SEED,
             "domain_fid": first, "n": budget.eval_num}]
    for k in range(1, budget.spread_seeds):
        q = domain_quality(Model(label, path, SamplingOptions(temperature=tau)), budget.eval_num, seed=SEED + k)
        rows.append({"label": f"{label}, τ {tau:g}, seed {SEED + k}", "model": path, "temperature": tau,
                     "seed": SEED + k, **q, "n": budget.eval_num})
    return rows


def diff_se(a: list[float], b: list[float]) -> float | None:
    """Standard error of mean(b) − mean(a) for independent draws (None with fewer than two of each)."""
    if len(a) < 2 or len(b) < 2:
        return None
    return math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))


def soft_gan_stage(out_dir: Path, results: Path, budget: DemoBudget, progress: Progress,
                   quiet: bool = True) -> StageResult:
    """The shipped Di[M]O student and its shipped Soft-Di[M]O refinement; best-τ domain FID of each."""
    del out_dir, quiet  # no run folder: both students are shipped
    t0 = time.time()
    student = preset_student()
    refined = refined_student(student)
    name, soft = Path(student).name, refined.name
    tau0, q0, rows0 = best_temperature(f"{name} (before)", student, budget)
    progress.line(f"{name}: domain FID {q0['domain_fid']:.1f} at τ {tau0:g}")
    tau1, q1, rows1 = best_temperature(f"{soft} (after)", str(refined), budget)
    progress.line(f"{soft}: domain FID {q1['domain_fid']:.1f} at τ {tau1:g}")
    seeds0 = over_seeds(f"{name} (before)", student, tau0, q0["domain_fid"], budget)
    seeds1 = over_seeds(f"{soft} (after)", str(refined), tau1, q1["domain_fid"], budget)
    fid0, fid1 = ([r["domain_fid"] for r in rows] for rows in (seeds0, seeds1))
    mean0, mean1, se = statistics.fmean(fid0), statistics.fmean(fid1), diff_se(fid0, fid1)
    progress.line(f"over {len(fid0)} sampling seeds: {mean0:.1f} -> {mean1:.1f}"
                  + ("" if se is None else f" (difference ± {se:.1f})"))
    steps = entry(refined).provenance.get("steps")
    before = Model(f"{name}, τ {tau0:g}", student, SamplingOptions(temperature=tau0))
    after = Model(f"{soft}, τ {tau1:g}", str(refined), SamplingOptions(temperature=tau1))
    pic = picture("Before and after the GAN refinement (each at its best τ)", [before, after], "class", results,
                  "soft-gan", budget.grid_per_condition)
    return StageResult(
        name="soft_gan", title=f"Soft-Di[M]O: {name} refined with a GAN on the frozen teacher ({soft})",
        metric="domain FID", higher_is_better=False, before=mean0, after=mean1,
        before_label=f"{name}, τ {tau0:g}", after_label=f"{soft}, τ {tau1:g}",
        evaluator=DOMAIN_EVALUATOR, n=budget.eval_num, rows=rows0 + rows1 + seeds0[1:] + seeds1[1:], pictures=[pic],
        note=(f"Both students shipped; {soft} is {name} after {steps} refinement steps of the preset "
              f"configs/mnist/soft_gan.yaml (its model card gives the command and its standard-Inception FID). "
              f"Each at its best one-step τ of {', '.join(f'{t:g}' for t in budget.temperatures)} (seed {SEED}), "
              f"then the mean over {len(fid0)} sampling seeds at that τ, N = {budget.eval_num} each"
              + ("." if se is None else f"; the difference {mean1 - mean0:+.1f} has a standard error of {se:.1f}.")),
        seconds=time.time() - t0, extra={"student": student, "refined": str(refined), "refine_steps": steps,
                                         "classifier_score_before": q0["classifier_score"],
                                         "classifier_score_after": q1["classifier_score"],
                                         "domain_fid_seeds_before": fid0, "domain_fid_seeds_after": fid1,
                                         "difference_se": se})


__all__ = ["soft_gan_stage", "best_temperature", "preset_student", "refined_student", "PRESET"]
