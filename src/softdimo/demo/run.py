"""`softdimo demo`: every stage once, each with a before → after number measured in this run.

:func:`run_demo` runs the stages in order, prints a line per stage with its two numbers, writes
``OUT/results/demo.json`` (``metrics.stages``: one :meth:`StageResult.to_json` per stage, and the
pictures under ``OUT/results/demo/``) and builds the report ``OUT/report/report.html`` from the
shipped benchmark results (``benchmarks/results``) with this run's files over them.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..errors import DataError
from ..paths import project_root
from ..report import ReportOptions, build_report
from ..results import now, write_results
from ..teachers.catalog import Family, families
from .budget import DemoBudget, budget_for
from .dimo_curve import dimo_curve_stage
from .onestep import TEACHER_STEPS, onestep_stage
from .reward import preset_student as reward_student
from .reward import reward_stage
from .soft_gan import soft_gan_stage
from .stage import Progress, StageResult
from .tokenizers import DATASETS, tokenizer_stage
from .tteo_stage import tteo_stage

MARKER = ".softdimo-demo"  # marks a folder the demo made (and may clear on the next run)
SHIPPED_RESULTS = ("benchmarks", "results")


def prepare_out(out: Path) -> None:
    """Create ``out``; clear the run folders and results of an earlier demo there (never other folders)."""
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; give a folder for the demo's outputs.")
    made = (out / MARKER).is_file() or ((out / "results").is_dir() and (out / "report").is_dir())  # or an older demo's
    if out.is_dir() and any(out.iterdir()) and not made:
        raise DataError(f"--out {out} is a folder that the demo did not make; choose an empty or new folder.")
    for sub in ("runs", "results", "report"):
        shutil.rmtree(out / sub, ignore_errors=True)
    (out / "report.md").unlink(missing_ok=True)  # an older demo's summary
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by softdimo demo; its contents are replaced by the next demo run here\n")


def domain_of(family: Family) -> str:
    """``teacher-mnist`` → ``mnist`` (a family's teacher is a folder under its present name: the
    catalog reads renamed teachers under theirs, :data:`~softdimo.paths.RENAMED_CHECKPOINTS`)."""
    return family.teacher.name.removeprefix("teacher-")


def best_text_student(stages: list[StageResult]) -> str | None:
    """The text student with the best GenEval-like score in the one-step stages."""
    rows = [r for s in stages if s.name.startswith("onestep_") for r in s.rows[2:] if "geneval" in r]
    return max(rows, key=lambda r: r["geneval"])["model"] if rows else None


def summary_lines(stages: list[StageResult]) -> list[str]:
    out = []
    for s in stages:
        b = "–" if s.before is None else f"{s.before:.4g}"
        a = "–" if s.after is None else f"{s.after:.4g}"
        mark = "improved" if s.improved else "NOT improved"
        out.append(f"  {s.title}\n      {s.metric}: {b} ({s.before_label}) -> {a} ({s.after_label}): {mark}")
    return out


def run_demo(out_dir: str | Path = "runs/demo", tiny: bool = False, progress: bool = True,
             size: str | None = None) -> dict[str, Any]:
    """Run the demo into ``out_dir`` (``size``: tiny, default or full); returns its summary."""
    size = size or ("tiny" if tiny else "default")
    budget: DemoBudget = budget_for(size)
    out = Path(out_dir)
    prepare_out(out)
    results = out / "results"
    results.mkdir(parents=True, exist_ok=True)
    if budget.threads:
        torch.set_num_threads(budget.threads)
    started, t0 = now(), time.time()
    fams = [f for f in families(project_root() / "checkpoints") if f.students]
    step = Progress(7, progress)
    quiet = True  # training stages print no bars; each stage prints its numbers
    stages: list[StageResult] = []

    step("tokenizers: test images through the token grid (shipped tokenizers)")
    for name in DATASETS:
        stages.append(tokenizer_stage(name, results, budget))
        step.line(f"tokenizer-{name}: PSNR {stages[-1].before:.1f} dB (patch means) -> {stages[-1].after:.1f} dB")
    step(f"one step vs {TEACHER_STEPS} steps: {', '.join(f.teacher.name for f in fams)} and their shipped students")
    for fam in fams:
        s = onestep_stage(fam, domain_of(fam), results, budget)
        stages.append(s)
        step.line(f"{fam.teacher.name}: {1e3 * s.before:.1f} ms/image -> {s.after_label}: {1e3 * s.after:.2f} ms/image"
                  if s.before and s.after else f"{fam.teacher.name}: no student")
    step(f"Di[M]O from scratch on teacher-mnist: a learning curve over {budget.dimo_steps} steps")
    stages.append(dimo_curve_stage(out, results, budget, step, quiet))
    step("Soft-Di[M]O: the shipped Di[M]O student and its shipped GAN refinement")
    stages.append(soft_gan_stage(out, results, budget, step, quiet))
    step(f"reward fine-tuning of the shipped text-to-image student ({budget.reward_steps} steps)")
    stages.append(reward_stage(out, results, budget, step, quiet))
    student = best_text_student(stages) or reward_student()
    step(f"TTEO: {budget.tteo_iters} SGD steps on the input embedding, best of {budget.best_of} ({Path(student).name})")
    stages.append(tteo_stage(student, results, budget, step))
    seconds = time.time() - t0

    step("report")
    metrics = {"size": size, "seconds": seconds, "all_improved": all(s.improved for s in stages),
               "stages": [s.to_json() for s in stages], "torch_threads": torch.get_num_threads()}
    write_results(results / "demo.json", "demo", metrics, config={"size": size, "budget": asdict(budget)},
                  started=started, seconds=seconds, command=f"softdimo demo{'' if size == 'default' else ' --' + size}")
    summary = build_report(ReportOptions(results=str(project_root().joinpath(*SHIPPED_RESULTS)),
                                         overlay=[str(results)], out=str(out / "report"),
                                         grids=False,  # the one-step stage's pictures show the same models
                                         checkpoints=str(project_root() / "checkpoints"),
                                         title=f"softdimo demo ({size}) and the shipped results"))
    lines = summary_lines(stages)
    print(f"\nsoftdimo demo ({size}): {seconds:.0f} s before the report; every stage improved: "
          f"{'yes' if metrics['all_improved'] else 'no'}")
    print("\n".join(lines))
    print(f"\nreport: {summary.html}\nresults: {results / 'demo.json'}")
    return {"size": size, "seconds": seconds, "report_html": str(summary.html), "report": str(summary.markdown),
            "results": str(results / "demo.json"), "stages": metrics["stages"], "all_improved": metrics["all_improved"],
            "report_problems": summary.problems}


__all__ = ["run_demo", "prepare_out", "summary_lines", "MARKER"]
