"""`softdimo demo`: the main job on the embedded default, end to end, with a small budget.

Starting from the shipped checkpoints, the demo runs every stage of the method once, evaluates it,
and writes a report:

1. **tokenizers**: reconstructions of MNIST and digit-world test images (PSNR, codebook usage);
2. **Di[M]O on MNIST** (docs/method.md §3): a short ``softdimo distill`` of ``teacher-mnist``;
3. **Soft-Di[M]O on MNIST** (§5): a short ``softdimo refine`` (soft embeddings + GAN on the frozen
   teacher). It starts from the shipped ``dimo-mnist`` student, not from step 2's: a distillation
   this short has not converged, and the refinement's effect is what the step shows;
4. **the digit world** (§6–§7): a short Di[M]O of ``teacher-world``, a short reward fine-tuning
   of that student (soft images through the tokenizer decoder into the in-project rewards), and
   TTEO + best-of-N on the fine-tuned student;
5. **evaluation** at a small N: domain FID + classifier score on MNIST (in-project classifier; the
   shipped students are rows too, for reference), the GenEval-like score on the held-out world
   prompts;
6. **report**: one results JSON per table under ``OUT/results/`` and ``softdimo report`` built
   from them (``OUT/report/report.md`` and ``report.html``).

Budgets (:data:`BUDGETS`): ``tiny`` runs in seconds (the test suite), ``default`` in about ten
minutes on two CPU cores, ``full`` uses the presets' own step counts and N = 2000 (hours on a CPU).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .config import DataConfig
from .data import build_dataset
from .errors import ConfigError
from .eval.references import image_batches
from .evaluate import evaluate
from .imageio import make_grid, save_image
from .paths import checkpoint_dir, config_path
from .report import ReportOptions, build_report
from .results import write_results
from .run import run_training
from .sample import SamplingOptions
from .tokenizer import VQTokenizer
from .tokenizer.metrics import reconstruction_metrics
from .tteo import TTEORequest, load_tteo_config, run_tteo

DATASETS = ("mnist", "world")


@dataclass(frozen=True)
class DemoBudget:
    """Steps and sample sizes of one demo size."""

    distill_steps: int  # Di[M]O steps on MNIST
    refine_steps: int  # Soft-Di[M]O (GAN) steps on MNIST
    world_distill_steps: int  # Di[M]O steps on the digit world
    reward_steps: int  # reward fine-tuning steps on the digit world
    batch_size: int  # global batch of every training stage
    tteo_iters: int  # TTEO SGD steps per candidate
    best_of: int  # TTEO candidates per prompt
    eval_num: int  # N of the MNIST domain metrics
    world_prompts: int  # held-out prompts scored by GenEval (one image each)
    recon_num: int  # test images of the tokenizer check
    max_real_images: int = 0  # real MNIST images of the GAN (0 = all)
    threads: int = 0  # torch threads of the training stages (0 = torch's default: all cores)
    report_grids: bool = True  # draw side-by-side sample grids in the report


BUDGETS: dict[str, DemoBudget] = {
    "tiny": DemoBudget(distill_steps=2, refine_steps=2, world_distill_steps=2, reward_steps=2, batch_size=4,
                       tteo_iters=1, best_of=2, eval_num=16, world_prompts=6, recon_num=32, max_real_images=64,
                       threads=1, report_grids=False),
    "default": DemoBudget(distill_steps=200, refine_steps=150, world_distill_steps=100, reward_steps=50,
                          batch_size=32, tteo_iters=2, best_of=2, eval_num=500, world_prompts=120, recon_num=500),
    "full": DemoBudget(distill_steps=2000, refine_steps=1000, world_distill_steps=2000, reward_steps=1000,
                       batch_size=32, tteo_iters=4, best_of=4, eval_num=2000, world_prompts=600, recon_num=2000),
}
TEACHER_STEPS = 16  # the teacher rows sample with 16 MaskGIT steps
TEACHER_CFG_MNIST = 1.0  # lowest domain FID at 16 steps (benchmarks/results/domain/)


class _Steps:
    """Numbered progress lines ("[3/9] …") with the time each step took."""

    def __init__(self, total: int, enabled: bool):
        self.k, self.total, self.enabled, self.t = 0, total, enabled, time.time()

    def __call__(self, what: str) -> None:
        self.k += 1
        if self.enabled:
            print(f"[{self.k}/{self.total}] {what} (+{time.time() - self.t:.0f}s)", flush=True)


def _tokenizer(name: str, out_dir: Path, tiny: bool, progress: bool) -> tuple[VQTokenizer, str]:
    """The shipped tokenizer for ``name``, or one trained now (tiny: a few seconds)."""
    shipped = checkpoint_dir(f"tokenizer-{name}")
    if not tiny and (shipped / "model.safetensors").is_file():
        return VQTokenizer.from_pretrained(shipped), str(shipped)

    overrides = [f"train.out_dir={out_dir / 'runs'}", f"train.run_name={name}"]
    if tiny:
        overrides += ["train.max_steps=3", "train.batch_size=8", "train.checkpoint_every=0",
                      "train.sample_every=0", "model.base_channels=8", "model.codebook_size=32",
                      "model.norm_groups=4"]
    result = run_training("train-tokenizer", str(config_path(name, "tokenizer.yaml")), overrides,
                          resume=False, progress=progress)
    return VQTokenizer.from_pretrained(result.final_dir), str(result.final_dir)


def tokenizer_rows(out_dir: Path, budget: DemoBudget, tiny: bool, progress: bool) -> list[dict[str, Any]]:
    """Reconstruction metrics and a grid for each dataset's tokenizer."""
    rows = []
    for name in DATASETS:
        tok, source = _tokenizer(name, out_dir, tiny, progress)
        test = build_dataset(DataConfig(dataset=name), "test")
        m = reconstruction_metrics(tok, image_batches(test, budget.recon_num, batch_size=250))
        x = next(image_batches(test, 16))
        with torch.no_grad():
            rec = tok.decode(tok.encode(x))
        grid = save_image(make_grid(torch.cat([x, rec]), nrow=len(x)), out_dir / f"reconstructions_{name}.png")
        rows.append({"label": f"tokenizer-{name}", "dataset": name, "tokenizer": source, "grid": grid.name,
                     "n": budget.recon_num, **m})
    return rows


def _train(command: str, preset: str, name: str, out_dir: Path, budget: DemoBudget, steps: int,
           extra: list[str], progress: bool) -> Path:
    """One training stage through the CLI's code path; returns its ``final/`` folder."""
    overrides = [f"train.out_dir={out_dir / 'runs'}", f"train.run_name={name}", f"train.max_steps={steps}",
                 f"train.batch_size={budget.batch_size}", f"train.threads={budget.threads}",
                 f"train.warmup_steps={min(100, max(1, steps // 5))}", "train.checkpoint_every=0",
                 f"train.sample_every={steps}", f"train.log_every={max(1, min(25, steps))}", *extra]
    return run_training(command, str(config_path(*preset.split("/"))), overrides, resume=False,
                        progress=progress).final_dir


def _evaluate(model: str | Path, metrics: list[str], num: int, dataset: str, progress: bool,
              **sampling: Any) -> dict[str, Any]:
    return evaluate(str(model), metrics, num, DataConfig(dataset=dataset), progress=progress,
                    sampling=SamplingOptions(**sampling) if sampling else None)


def class_to_image_rows(runs: dict[str, Path], budget: DemoBudget, progress: bool) -> list[dict[str, Any]]:
    """Domain FID and classifier score (N = eval_num vs MNIST test) of teacher and students."""
    metrics = ["domain_fid", "classifier_score"]
    rows = [("teacher-mnist", "teacher", checkpoint_dir("teacher-mnist"),
             {"steps": TEACHER_STEPS, "cfg_scale": TEACHER_CFG_MNIST}),
            ("Di[M]O (this demo)", "dimo", runs["dimo"], {}),
            ("Soft-Di[M]O (this demo)", "soft", runs["soft"], {}),
            ("dimo-mnist (shipped)", "dimo", checkpoint_dir("dimo-mnist"), {}),
            ("soft-dimo-mnist (shipped)", "soft", checkpoint_dir("soft-dimo-mnist"), {})]
    out = []
    for label, kind, path, sampling in rows:
        res = _evaluate(path, metrics, budget.eval_num, "mnist", progress, **sampling)
        out.append({"label": label, "kind": kind, "model": str(path), **_keep(res)})
    return out


def text_to_image_rows(runs: dict[str, Path], tteo_dir: Path, budget: DemoBudget,
                       progress: bool) -> list[dict[str, Any]]:
    """GenEval-like score on the first ``world_prompts`` held-out prompts (one image each)."""
    rows = [("teacher-world", "teacher", checkpoint_dir("teacher-world"), {"steps": TEACHER_STEPS}),
            ("Di[M]O (this demo)", "dimo", runs["world_dimo"], {}),
            ("+ reward (this demo)", "reward", runs["reward"], {}),
            (f"+ reward + TTEO ({budget.tteo_iters} iters, best of {budget.best_of})", "tteo", tteo_dir, {})]
    out = []
    for label, kind, path, sampling in rows:
        res = _evaluate(path, ["geneval"], budget.world_prompts, "world", progress, **sampling)
        out.append({"label": label, "kind": kind, "model": str(path), **_keep(res)})
    return out


def _keep(res: dict[str, Any]) -> dict[str, Any]:
    """evaluate's output without bulky keys."""
    return {k: v for k, v in res.items() if k not in ("source",)}


def run_tteo_demo(student: Path, out: Path, budget: DemoBudget, progress: bool) -> dict[str, Any]:
    """TTEO + best-of-N on the first ``world_prompts`` held-out prompts (world rewards)."""
    cfg = load_tteo_config(config_path("world", "tteo.yaml"), iters=budget.tteo_iters, best_of=budget.best_of)
    req = TTEORequest(model=str(student), out=str(out), num=budget.world_prompts, batch_size=16)
    return run_tteo(req, cfg, progress=progress)


def _table(rows: list[dict[str, Any]], cols: list[tuple[str, str, Callable[[Any], str]]]) -> list[str]:
    lines = ["| " + " | ".join(c[0] for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(key)) if r.get(key) is not None else "–"
                                       for _, key, fmt in cols) + " |")
    return lines


def _f(digits: int) -> Callable[[Any], str]:
    return lambda v: f"{v:.{digits}f}"


def run_demo(out_dir: str | Path = "runs/demo", tiny: bool = False, progress: bool = True,
             size: str | None = None) -> dict[str, Any]:
    """Run the demo into ``out_dir`` (``size``: tiny, default or full); returns its summary."""
    size = size or ("tiny" if tiny else "default")
    if size not in BUDGETS:
        raise ConfigError(f"demo size must be one of {', '.join(BUDGETS)}, got {size!r}.")
    budget = BUDGETS[size]
    out_dir = Path(out_dir)
    results = out_dir / "results"
    results.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    step = _Steps(9, True)
    quiet = progress

    step("tokenizers: reconstructions of MNIST and digit-world test images")
    tok_rows = tokenizer_rows(out_dir, budget, size == "tiny", quiet)
    runs: dict[str, Path] = {}
    step(f"Di[M]O: distil teacher-mnist into a one-step student ({budget.distill_steps} steps)")
    runs["dimo"] = _train("distill", "mnist/dimo.yaml", "mnist-dimo", out_dir, budget, budget.distill_steps,
                          [], quiet)
    step(f"Soft-Di[M]O: refine the shipped dimo-mnist with the teacher GAN ({budget.refine_steps} steps)")
    runs["soft"] = _train("refine", "mnist/soft_gan.yaml", "mnist-soft-gan", out_dir, budget,
                          budget.refine_steps, [f"max_real_images={budget.max_real_images}"], quiet)
    step(f"Di[M]O: distil teacher-world ({budget.world_distill_steps} steps)")
    runs["world_dimo"] = _train("distill", "world/dimo.yaml", "world-dimo", out_dir, budget,
                                budget.world_distill_steps, [], quiet)
    step(f"reward fine-tuning of that student: mini-CLIP + attribute rewards ({budget.reward_steps} steps)")
    runs["reward"] = _train("refine", "world/soft_reward.yaml", "world-reward", out_dir, budget,
                            budget.reward_steps, [f"student={runs['world_dimo']}"], quiet)
    step(f"TTEO: {budget.tteo_iters} SGD steps on the input embedding, best of {budget.best_of}")
    tteo_dir = out_dir / "tteo"
    tteo = run_tteo_demo(runs["reward"], tteo_dir, budget, quiet)
    step(f"evaluate MNIST: domain FID and classifier score at N = {budget.eval_num}")
    c2i = class_to_image_rows(runs, budget, quiet)
    step(f"evaluate the digit world: GenEval-like score on {budget.world_prompts} held-out prompts")
    t2i = text_to_image_rows(runs, tteo_dir, budget, quiet)
    seconds = time.time() - t0

    step("report")
    config = {"size": size, "budget": asdict(budget), "runs": {k: str(v) for k, v in runs.items()}}
    write_results(results / "demo_tokenizers.json", "demo_tokenizers", {"rows": tok_rows}, config=config)
    write_results(results / "demo_class_to_image.json", "demo_class_to_image",
                  {"rows": c2i, "n": budget.eval_num, "evaluator": c2i[0].get("domain_evaluator")}, config=config)
    write_results(results / "demo_text_to_image.json", "demo_text_to_image",
                  {"rows": t2i, "n": budget.world_prompts, "tteo": {k: v for k, v in tteo.items() if k != "out"}},
                  config=config)
    summary = build_report(ReportOptions(results=str(results), out=str(out_dir / "report"),
                                         grids=budget.report_grids, title=f"softdimo demo ({size})"))
    lines = [f"# softdimo demo ({size})", "",
             f"Wall time {seconds:.0f} s (before the report). Full report: `{summary.markdown}` / "
             f"`{summary.html}`.", "",
             f"## Class-to-image (MNIST): domain FID and classifier score, N = {budget.eval_num} vs test", "",
             *_table(c2i, [("model", "label", str), ("domain FID ↓", "domain_fid", _f(2)),
                           ("classifier score ↑", "classifier_score", _f(3))]), "",
             f"## Text-to-image (digit world): GenEval-like score, {budget.world_prompts} held-out prompts", "",
             *_table(t2i, [("model", "label", str), ("overall ↑", "geneval", _f(3))]), "",
             "## Tokenizers", "",
             *_table(tok_rows, [("dataset", "dataset", str), ("PSNR (dB)", "psnr", _f(2)),
                                ("codebook usage", "codebook_usage", _f(3)), ("perplexity", "perplexity", _f(1))]),
             ""]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines) + "\n")
    print(f"\nsoftdimo demo report: {report}\n")
    print("\n".join(lines[4:]))
    return {"size": size, "report": str(report), "report_html": str(summary.html), "seconds": seconds,
            "class_to_image": c2i, "text_to_image": t2i, "tokenizers": tok_rows, "tteo": tteo}
