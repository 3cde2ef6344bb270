"""Demo stage: Di[M]O distillation from its first steps, shown as a learning curve.

A few hundred steps of ``softdimo distill`` (the ``configs/mnist/dimo.yaml`` preset, data-free)
do not make a finished student: the shipped students took thousands. So this stage shows what a
short run is, a learning curve. The student starts as a copy of the teacher, which drawn in one
step from x_init (random tokens with 60 % masks) gives poor digits; the run is trained in
segments (``--resume`` with a larger ``train.max_steps``, bit-identical to one run) and after each
segment its exported (EMA) student is measured: domain FID and classifier score of N images at
the plain one-step sampler (τ = 1 at every point, the same seed), plus a strip of samples.

Before → after: domain FID at step 0 → at the last step.
"""
from __future__ import annotations

import time
from pathlib import Path

from ..config import load_config
from ..paths import config_path
from ..run import TRAIN_COMMANDS, run_training
from ..sample import SamplingOptions
from ..train import build_context
from .budget import DemoBudget
from .measure import DOMAIN_EVALUATOR, Model, domain_quality, picture
from .stage import Progress, StageResult

PRESET = ("mnist", "dimo.yaml")
CURVE_TEMPERATURE = 1.0


def curve_steps(total: int, points: int) -> list[int]:
    """``points`` evenly spaced steps after 0, the last one ``total`` (distinct, increasing)."""
    return sorted({max(1, round(total * k / points)) for k in range(1, points + 1)})


def overrides(out_dir: Path, budget: DemoBudget, steps: int) -> list[str]:
    """The run's overrides; only ``train.max_steps`` changes between segments (what ``--resume`` allows)."""
    return [f"train.out_dir={out_dir / 'runs'}", "train.run_name=mnist-dimo-curve", f"train.max_steps={steps}",
            f"train.batch_size={budget.batch_size}", f"train.threads={budget.threads}",
            f"train.warmup_steps={min(100, max(1, budget.dimo_steps // 8))}", "train.checkpoint_every=0",
            "train.sample_every=0", f"train.log_every={max(1, min(25, budget.dimo_steps))}"]


def initial_student(out_dir: Path, budget: DemoBudget) -> Path:
    """The student before any update (a copy of the teacher), exported like a trained one."""
    cfg_cls, build = TRAIN_COMMANDS["distill"].load()
    cfg = load_config(cfg_cls, str(config_path(*PRESET)), overrides(out_dir, budget, 1))
    stage = build(cfg)
    stage.setup(build_context(cfg.train))
    path = out_dir / "runs" / "distill" / "mnist-dimo-step0"
    stage.export(path, stage.modules())
    return path


def dimo_curve_stage(out_dir: Path, results: Path, budget: DemoBudget, progress: Progress,
                     quiet: bool = True) -> StageResult:
    """The learning curve of a short Di[M]O run (module docstring)."""
    t0 = time.time()
    options = SamplingOptions(temperature=CURVE_TEMPERATURE)
    points: list[tuple[int, Path]] = [(0, initial_student(out_dir, budget))]
    curve, rows = [], []

    def measure(step: int, path: Path) -> None:
        q = domain_quality(Model(f"step {step}", str(path), options), budget.curve_num)
        curve.append({"step": step, "value": q["domain_fid"]})
        rows.append({"label": f"step {step}", "step": step, "model": str(path), **q, "n": budget.curve_num})
        progress.line(f"step {step}: domain FID {q['domain_fid']:.1f}, classifier score {q['classifier_score']:.2f}")

    measure(0, points[0][1])
    for k, steps in enumerate(curve_steps(budget.dimo_steps, budget.dimo_points)):
        res = run_training("distill", str(config_path(*PRESET)), overrides(out_dir, budget, steps), resume=k > 0,
                           progress=not quiet)
        points.append((steps, res.final_dir))
        measure(steps, res.final_dir)
    models = [Model(f"step {s}", str(p), options) for s, p in points]
    pic = picture(f"Di[M]O students along the run (τ = {CURVE_TEMPERATURE:g})", models, "class", results,
                  "dimo-curve", 1)
    return StageResult(
        name="dimo_curve", title=f"Di[M]O distillation of teacher-mnist: the first {budget.dimo_steps} steps",
        metric="domain FID", higher_is_better=False, before=curve[0]["value"], after=curve[-1]["value"],
        before_label="step 0 (the teacher's copy, one step)", after_label=f"step {points[-1][0]}",
        evaluator=DOMAIN_EVALUATOR, n=budget.curve_num, kind="curve", curve=curve, rows=rows, pictures=[pic],
        note=(f"A learning curve, not a finished model: the shipped Di[M]O students trained for thousands of steps "
              f"(see their model cards). Every point samples in one step at τ = {CURVE_TEMPERATURE:g} with the same "
              f"seed; batch {budget.batch_size}, preset configs/mnist/dimo.yaml."),
        seconds=time.time() - t0, extra={"run": str(points[-1][1].parent)})


__all__ = ["dimo_curve_stage", "curve_steps", "initial_student", "PRESET"]
