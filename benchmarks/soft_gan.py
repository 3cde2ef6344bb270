"""Soft-Di[M]O against its teacher and Di[M]O, and its ablations over training seeds (docs/method.md §5, §5.5)
→ ``benchmarks/results/soft_gan_mnist.json`` (``--dataset fashion``: ``soft_gan_fashion.json``).

    bash benchmarks/soft_gan_runs.sh RUNS 300 100 "0 1 2"   # 4 variants × 3 training seeds, equal steps
    python benchmarks/soft_gan.py --runs RUNS --seeds 0,1,2 --row-step 300

(Fashion-MNIST: ``bash benchmarks/soft_gan_runs.sh --config configs/fashion/soft_gan.yaml RUNS …`` and
``--dataset fashion`` here.) ``--runs`` is the runs script's RUNS: the run of variant NAME and seed S
is ``RUNS/refine/NAME-sS`` (:func:`run_dir`, the folder ``softdimo refine`` makes for
``train.out_dir=RUNS train.run_name=NAME-sS``).

The question: does GAN refinement with soft embeddings beat the teacher and the Di[M]O student, and
do the paper's ablations hold over training seeds? One process, one evaluator and one N: every
Inception number is the standard FID (§8.1, with precision/recall §8.2) of ``--num`` images against
the test split's first N, of a model measured in this run at ``--seed``. ``metrics``:

* ``teacher_best_fid``: the teacher at its best settings: the ``--teacher-candidates`` lowest-FID
  (steps ≤ 16, CFG) rows of ``--teacher-json``, each re-measured here (``teacher_rows``), the minimum.
* ``dimo_fid``: the Di[M]O student (``--dimo``) at the τ ``--dimo-json`` chose as its best
  (``student_best_tau``); ``dimo_fid_tau1`` at τ = 1 (``dimo_rows``).
* ``soft_fid``: the shipped Soft-Di[M]O student (``--shipped``) at its best τ (:func:`measure_student`):
  τ* = the lowest domain FID (§8.3, in-project classifier features, ``--curve-num`` images) of
  ``--temperatures``, then the lower Inception FID of τ = 1 and τ* (``generators.best_of_tau1``,
  the rule of the Di[M]O student); ``soft_fid_tau1``, ``soft_tau``, ``soft_rows``.
* ``ablations``: {``soft``, ``gumbel``, ``gan_only``, ``mask_none``, ``no_gan``} (:data:`VARIANTS`, the
  §5.5 overrides of the preset and the control without the GAN): per training seed the EMA student of
  the run's ``checkpoint-<--row-step>`` at the τ of ``--ablation-tau`` (``ablation_tau_rule``; default
  the sweep's τ*, one Inception FID a run; ``best_of_tau1``: picked as the shipped student's) (``fids``,
  ``temperatures``, ``seeds``, ``run_dirs``), and ``fid_mean``, ``fid_sd`` (sample sd; null with one
  seed), ``what`` (the override), ``rows``.
* ``curves``: the domain FID at ``--curve-num`` images of the EMA weights of every ``checkpoint-N``
  of each run (step 0: ``--dimo``, the student the runs start from) at the run's chosen τ.
* ``diagnostics``: per run, the soft-vs-hard quantities it logged (token entropy, p_max, tr Σ, the
  gap |D(ẽ) − E_j D(e_j)| of §4.2) and the discriminator's accuracy (``metrics.jsonl``).
* ``step_cost``: seconds per optimiser step of ``refine`` over ``distill``, same batch and threads,
  alternated ``--cost-repeats`` times in this process (``--skip-cost``: left out).
* ``floor``: the real-vs-real FID (train[:N] vs test[:N]) at the same N and evaluator.
* ``memo``: every evaluation is kept in ``--memo`` as it is made (``memo.EvalMemo``, keyed by the
  weights' content and the settings), so a stopped benchmark re-run measures only what it had not
  finished; how many results were reused and the commits they were measured at.
* ``targets`` (:func:`compute_targets`): each with its values and ``holds``; one whose inputs are
  absent (an ablation without finished runs, a pooled sd from one seed, a skipped step cost) is
  left out and named in ``targets_left_out``.
* ``controls`` (:func:`compute_controls`): the soft runs against the ``no_gan`` control (the GAN's
  gain beyond training the student longer), in the targets' format; empty without both.

The domain FID of the τ sweeps and the curves uses the dataset's in-project classifier (``classifier-mnist``,
``classifier-fashion``); ``--sweep-metric fid`` makes them Inception FID at ``--curve-num`` images instead
(``generators.sweep_metrics``; slower).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generators import SWEEP_TEXT, Row, _evaluators, best_of_tau1, best_temperature, mnist_floor, run_rows  # noqa: E402
from memo import EvalMemo  # noqa: E402

from softdimo.config import DataConfig, load_config  # noqa: E402
from softdimo.distill import OneStepStudent  # noqa: E402
from softdimo.evaluate import evaluate  # noqa: E402
from softdimo.paths import project_root  # noqa: E402
from softdimo.pretrained import load_tensors  # noqa: E402
from softdimo.results import now, write_results  # noqa: E402
from softdimo.sample import SamplingOptions  # noqa: E402
from softdimo.train.checkpoint import list_checkpoints  # noqa: E402

REFINE_COMMAND = "refine"  # run folders: <train.out_dir>/<command>/<train.run_name> (softdimo/train/rundir.py)
TEACHER_MAX_STEPS = 16  # teacher candidates: sampler settings of at most this many steps
FID_METRICS = ["fid", "pr"]
DIAG_KEYS = ("soft_entropy", "soft_p_max", "soft_cov_trace", "soft_gap", "gan_loss", "dimo_loss")
WEIGHTS_PREFIX = {"live": "student.", "ema": "ema.student."}  # the student's tensors in models.safetensors

# the targets (compute_targets)
SOFT_OVER_TEACHER = 0.95  # Soft-Di[M]O FID ≤ this × the teacher's best
SOFT_OVER_DIMO = 0.75  # Soft-Di[M]O FID ≤ this × Di[M]O's
REFINE_OVER_DISTILL = 1.6  # a refine step ≤ this × a Di[M]O step
BEST_TAU_RULE = ("the lower Inception FID of τ = 1 and the τ of --temperatures that temperature_sweeps.metric ranks "
                 "best (generators.best_of_tau1)")
# How the ablation runs pick τ (--ablation-tau): the rule above, or the sweep's τ alone (one Inception FID a run
# instead of two; every run is still treated alike).
ABLATION_TAU_RULES = {"best_of_tau1": BEST_TAU_RULE,
                      "sweep": "the τ of --temperatures that temperature_sweeps.metric ranks best (one Inception FID)"}
TARGET_NAMES = ("soft_le_0.95x_teacher", "soft_le_0.75x_dimo", "soft_beats_gumbel_by_pooled_sd",
                "soft_below_mask_none", "gan_only_worse_than_soft", "refine_step_le_1.6x")


@dataclass(frozen=True)
class Variant:
    """One §5.5 ablation: the overrides of the preset its runs add (benchmarks/soft_gan_runs.sh)."""

    label: str
    overrides: tuple[str, ...]

    @property
    def what(self) -> str:
        return " ".join(self.overrides) or "none (the preset: soft embeddings + GAN + Di[M]O)"


VARIANTS: dict[str, Variant] = {
    "soft": Variant("Soft-Di[M]O (soft + GAN)", ()),
    "gumbel": Variant("Gumbel-ST + GAN", ("gan.embedding=gumbel",)),
    "gan_only": Variant("GAN only", ("dimo_weight=0",)),
    "mask_none": Variant("mask range [0, 0]", ("gan.mask_ratio_range=[0,0]",)),
    # the control: the same steps of the Di[M]O term alone, so the GAN's effect is told apart from that of
    # training the student longer
    "no_gan": Variant("Di[M]O only, same steps (no GAN)", ("gan.w_gan=0",)),
}


def defaults(dataset: str) -> dict[str, str]:
    """The paths ``--dataset`` picks (each overridden by its flag)."""
    return {"teacher": f"checkpoints/teacher-{dataset}", "dimo": f"checkpoints/dimo-{dataset}",
            "shipped": f"checkpoints/soft-dimo-{dataset}", "config": f"configs/{dataset}/soft_gan.yaml",
            "distill_config": f"configs/{dataset}/dimo.yaml",
            "teacher_json": f"benchmarks/results/teacher_{dataset}.json",
            "dimo_json": f"benchmarks/results/dimo_{dataset}.json", "json": f"benchmarks/results/soft_gan_{dataset}.json"}


@dataclass(frozen=True)
class Measure:
    """What every measurement of one benchmark run shares."""

    data: DataConfig
    num: int  # N of every Inception number
    curve_num: int  # N of the τ sweeps and the curves
    temperatures: list[float]
    seed: int
    evaluate: Callable[..., dict[str, Any]] | None = None  # an EvalMemo (--memo): results kept for a re-run
    sweep_metric: str = "domain_fid"  # what the τ sweeps and the curves measure (generators.SWEEP_TEXT)


# ---------------------------------------------------------------------- students of the runs
def run_dir(runs: Path, name: str, seed: int) -> Path:
    """The folder of variant ``name``'s run with training seed ``seed`` (as soft_gan_runs.sh names it)."""
    return runs / REFINE_COMMAND / f"{name}-s{seed}"


def student_at(run: Path, checkpoint: Path, folder: Path, weights: str = "ema") -> Path:
    """Write the ``weights`` (EMA or live) student of ``checkpoint`` (a ``checkpoint-N/`` of ``run``) as a
    student folder."""
    student = OneStepStudent.from_pretrained(run / "final")
    tensors = load_tensors(checkpoint / "models.safetensors")
    pre = WEIGHTS_PREFIX[weights]
    student.mdm.load_state_dict({k[len(pre):]: v for k, v in tensors.items() if k.startswith(pre)})
    student.save_pretrained(folder)
    return folder


def finished_runs(runs: Path, seeds: list[int]) -> dict[str, dict[int, Path]]:
    """VARIANT → {seed: run folder} of the runs with a ``final/`` (the others are named and left out)."""
    out: dict[str, dict[int, Path]] = {}
    for name in VARIANTS:
        done = {s: run_dir(runs, name, s) for s in seeds if (run_dir(runs, name, s) / "final").is_dir()}
        missing = [s for s in seeds if s not in done]
        if missing:
            print(f"{name}: no finished run for seeds {missing} under {runs / REFINE_COMMAND} (left out)", flush=True)
        if done:
            out[name] = done
    return out


def row_student(run: Path, step: int, tmp: Path) -> Path:
    """The EMA student of ``run`` at ``checkpoint-<step>``: every run is compared at equal steps."""
    ck = run / f"checkpoint-{step}"
    if not (ck / "models.safetensors").is_file():
        raise SystemExit(f"{run} has no checkpoint-{step}; the ablations compare the runs at equal steps "
                         f"(--row-step, a multiple of the runs' checkpoint_every).")
    return student_at(run, ck, tmp / f"{run.name}-row")


# ---------------------------------------------------------------------- measuring
def _proxy_fid(path: Path, temperature: float, num: int, seed: int, data: DataConfig,
               evaluate_fn: Callable[..., dict[str, Any]] | None = None, metric: str = "domain_fid") -> float:
    """The FID of the τ sweeps and the curves, ``metric`` (``generators.sweep_metrics``; default the cheap
    domain FID); ``evaluate_fn``: default ``evaluate``."""
    evaluate_fn = evaluate_fn or evaluate
    out = evaluate_fn(str(path), [metric], num, data, seed=seed, progress=False,
                      sampling=SamplingOptions(temperature=temperature))
    return float(out[metric])


def _domain_fid(path: Path, temperature: float, num: int, seed: int) -> float:
    """Domain FID (docs/method.md §8.3) of a one-step student at τ, against MNIST test[:num]."""
    return _proxy_fid(path, temperature, num, seed, DataConfig(dataset="mnist"))


@dataclass
class StudentResult:
    """A one-step student at τ = 1 and at the sweep's τ; ``tau``/``fid``: the lower Inception FID of the two."""

    tau: float
    fid: float
    fid_tau1: float | None
    rows: list[dict[str, Any]]
    sweep: dict[str, dict[str, float]]


def measure_student(label: str, kind: str, path: Path, m: Measure, rule: str = "best_of_tau1",
                    **extra: Any) -> StudentResult:
    """τ* from the sweep over ``m.temperatures`` (``generators.best_temperature``), then Inception FID at τ*
    and τ = 1 and the lower of the two (``generators.best_of_tau1``); ``rule="sweep"``: at τ* only
    (``fid_tau1`` is then None unless τ* is 1). ``extra`` goes into every row."""
    print(f"temperature sweep: {label}", flush=True)
    swept, sweep = best_temperature(str(path), m.temperatures, m.curve_num, m.seed, False, m.data, m.evaluate,
                                    m.sweep_metric)
    taus = [swept] if swept == 1.0 or rule == "sweep" else [swept, 1.0]
    rows = run_rows([Row(f"{label} τ={t:g}", str(path), SamplingOptions(temperature=t)) for t in taus],
                    FID_METRICS, m.num, m.data, m.seed, progress=False, evaluate_fn=m.evaluate)
    for r in rows:
        r.update(kind=kind, **extra)
    best = best_of_tau1(rows[0], rows[-1])
    tau1 = rows[-1]["fid"] if rows[-1]["options"]["temperature"] == 1.0 else None
    return StudentResult(best["options"]["temperature"], best["fid"], tau1, rows, sweep)


def teacher_candidates(teacher_doc: dict[str, Any], k: int) -> list[dict[str, Any]]:
    """The ``k`` lowest-FID distinct (steps ≤ 16, CFG) settings of a teacher results file's rows."""
    rows = [r for r in teacher_doc["metrics"]["rows"]
            if r["options"].get("steps") is not None and r["options"]["steps"] <= TEACHER_MAX_STEPS]
    out: list[dict[str, Any]] = []
    for r in sorted(rows, key=lambda r: r["fid"]):
        setting = {"steps": r["options"]["steps"], "cfg_scale": r["options"]["cfg_scale"]}
        if setting not in [c["options"] for c in out]:
            out.append({"options": setting, "label_there": r["label"], "fid_there": r["fid"]})
    return out[:k]


def measure_teacher(path: str, candidates: list[dict[str, Any]], m: Measure) -> list[dict[str, Any]]:
    """The teacher at each candidate setting, measured here (``fid_there``: the setting's FID in its file)."""
    rows = [Row(f"teacher {c['options']['steps']} steps cfg {c['options']['cfg_scale']:g}", path,
                SamplingOptions(**c["options"])) for c in candidates]
    results = run_rows(rows, FID_METRICS, m.num, m.data, m.seed, progress=False, evaluate_fn=m.evaluate)
    for r, c in zip(results, candidates):
        r.update(kind="teacher", fid_there=c["fid_there"], label_there=c["label_there"])
    return results


def dimo_best_tau(dimo_doc: dict[str, Any]) -> float:
    """The τ a Di[M]O results file chose as its student's best (``student_best_tau``; files written before
    that key: the τ of its first student row)."""
    m = dimo_doc["metrics"]
    if m.get("student_best_tau") is not None:
        return float(m["student_best_tau"])
    return float(m["student_rows"][0]["options"]["temperature"])


def measure_dimo(path: str, tau: float, m: Measure) -> list[dict[str, Any]]:
    """The Di[M]O student at ``tau`` and at τ = 1 (one row when ``tau`` is 1)."""
    taus = [tau] if tau == 1.0 else [tau, 1.0]
    rows = run_rows([Row(f"Di[M]O τ={t:g}", path, SamplingOptions(temperature=t)) for t in taus], FID_METRICS,
                    m.num, m.data, m.seed, progress=False, evaluate_fn=m.evaluate)
    for r in rows:
        r["kind"] = "dimo"
    return rows


def mean_sd(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None with fewer than two values)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def measure_variant(name: str, runs: dict[int, Path], row_step: int, m: Measure, tmp: Path,
                    rule: str = "best_of_tau1") -> tuple[dict[str, Any], dict[int, StudentResult]]:
    """One ablation over its seeds: every run's EMA student at ``row_step``, each at its τ by ``rule``
    (:data:`ABLATION_TAU_RULES`)."""
    variant = VARIANTS[name]
    per_seed = {seed: measure_student(f"{variant.label}, seed {seed}, {row_step} steps", name,
                                      row_student(run, row_step, tmp), m, rule, seed=seed, run_dir=str(run))
                for seed, run in runs.items()}
    fids = [r.fid for r in per_seed.values()]
    mean, sd = mean_sd(fids)
    entry = {"fids": fids, "fid_mean": mean, "fid_sd": sd, "seeds": list(per_seed),
             "temperatures": [r.tau for r in per_seed.values()], "what": variant.what, "label": variant.label,
             "run_dirs": [str(p) for p in runs.values()], "row_step": row_step,
             "rows": [row for r in per_seed.values() for row in r.rows]}
    return entry, per_seed


def curve(run: Path, start: float, temperature: float, m: Measure, tmp: Path,
          known: dict[int, float]) -> list[dict[str, float]]:
    """The sweep FID of the EMA student of every checkpoint of ``run`` at ``temperature``; step 0 (the
    student the run starts from) is ``start``, steps in ``known`` are already measured."""
    key = m.sweep_metric
    points = [{"step": 0, key: start}]
    for step, ck in list_checkpoints(run):
        value = known.get(step)
        if value is None:
            value = _proxy_fid(student_at(run, ck, tmp / f"{run.name}-step-{step}"), temperature, m.curve_num,
                               m.seed, m.data, m.evaluate, key)
        points.append({"step": step, key: value})
        print(f"  {run.name} step {step}: {key} {value:.2f}", flush=True)
    return points


def diagnostics(run: Path) -> list[dict[str, float]]:
    """The logged soft-vs-hard diagnostics (§4.2) and discriminator accuracy of ``run`` (metrics.jsonl)."""
    out = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        point = {"step": row["step"]}
        point.update({k: row[f"generator/{k}"] for k in DIAG_KEYS if f"generator/{k}" in row})
        if "disc/d_acc" in row:
            point["d_acc"] = row["disc/d_acc"]
        if len(point) > 1:
            out.append(point)
    return out


# ---------------------------------------------------------------------- step cost
def _seconds_per_step(command: str, config: str, steps: int, warmup: int, out: Path, repeat: int,
                      threads: int) -> float:
    from softdimo.cli import run_training

    # the presets' own thread counts differ (distill 2, refine 1): both run at the benchmark's --threads
    overrides = [f"train.out_dir={out}", f"train.run_name={command}-{repeat}", f"train.max_steps={steps}",
                 "train.log_every=1", "train.sample_every=0", "train.checkpoint_every=0", f"train.threads={threads}"]
    if command == "refine":  # the soft-vs-hard diagnostics are logging (every log_every steps), not the step
        overrides.append("diag_samples=0")
    result = run_training(command, config, overrides, resume=False, progress=False)
    rows = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    t = {r["step"]: r["seconds"] for r in rows}
    return (t[steps] - t[warmup]) / (steps - warmup)


def step_cost(distill_config: str, refine_config: str, steps: int, warmup: int, repeats: int,
              threads: int) -> dict[str, Any]:
    """Seconds per optimiser step of refine vs distill at ``threads`` torch threads, alternated in this process."""
    root = project_root()
    configs = {"distill": str(root / distill_config), "refine": str(root / refine_config)}
    times: dict[str, list[float]] = {k: [] for k in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(repeats):
            order = list(configs) if rep % 2 == 0 else list(reversed(configs))
            for cmd in order:
                times[cmd].append(_seconds_per_step(cmd, configs[cmd], steps, warmup, Path(tmp), rep, threads))
                print(f"  {cmd} repeat {rep}: {times[cmd][-1]:.3f} s/step", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"seconds_per_step": med, "all": times, "refine_over_distill": med["refine"] / med["distill"],
            "steps": steps, "warmup_excluded": warmup, "repeats": repeats, "threads": threads,
            "batch_size": load_config_batch(configs["refine"]), "configs": {"distill": distill_config,
                                                                            "refine": refine_config},
            "method": "run_training(...) alternated; (seconds at step S − seconds at step W)/(S − W) from "
                      "metrics.jsonl; refine = generator (L_DiMO + w·L_GAN) + aux + discriminator phases "
                      "(diag_samples=0: the logged soft-vs-hard diagnostics are left out), distill = generator + aux; "
                      "median over repeats"}


def load_config_batch(path: str) -> int:
    from softdimo.distill.refine import RefineRunConfig

    return load_config(RefineRunConfig, path, []).train.batch_size


# ---------------------------------------------------------------------- targets
def pooled_sd(a: float | None, b: float | None) -> float | None:
    """sqrt((sd_a² + sd_b²) / 2); None when either sd is (one seed)."""
    return None if a is None or b is None else math.sqrt((a * a + b * b) / 2)


def soft_beats_by_pooled_sd(ablations: dict[str, dict[str, Any]], other: str) -> dict[str, Any] | None:
    """``soft`` mean FID below variant ``other``'s by more than their pooled sd; None when either variant or
    an sd is absent."""
    soft, rival = ablations.get("soft"), ablations.get(other)
    sd = pooled_sd(soft["fid_sd"], rival["fid_sd"]) if soft and rival else None
    if sd is None:
        return None
    return {"soft_mean": soft["fid_mean"], f"{other}_mean": rival["fid_mean"], "pooled_sd": sd,
            "threshold": rival["fid_mean"] - sd, "holds": soft["fid_mean"] < rival["fid_mean"] - sd}


def compute_controls(ablations: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Checks beside the targets: the GAN's gain over the same refine steps without it (``no_gan``); left out
    when either variant or an sd is absent."""
    check = soft_beats_by_pooled_sd(ablations, "no_gan")
    return {"soft_beats_no_gan_by_pooled_sd": check} if check else {}


def compute_targets(teacher_best_fid: float, dimo_fid: float, soft_fid: float, ablations: dict[str, dict[str, Any]],
                    refine_over_distill: float | None) -> dict[str, dict[str, Any]]:
    """The benchmark's targets from its numbers, each {values…, ``holds``}; one whose inputs are absent is left out.

    ``ablations``: VARIANT → {``fid_mean``, ``fid_sd``} (the variants without finished runs absent).
    """
    out: dict[str, dict[str, Any]] = {
        "soft_le_0.95x_teacher": {"soft_fid": soft_fid, "teacher_best_fid": teacher_best_fid,
                                  "ratio": soft_fid / teacher_best_fid, "threshold": SOFT_OVER_TEACHER * teacher_best_fid,
                                  "holds": soft_fid <= SOFT_OVER_TEACHER * teacher_best_fid},
        "soft_le_0.75x_dimo": {"soft_fid": soft_fid, "dimo_fid": dimo_fid, "ratio": soft_fid / dimo_fid,
                               "threshold": SOFT_OVER_DIMO * dimo_fid, "holds": soft_fid <= SOFT_OVER_DIMO * dimo_fid},
    }
    soft = ablations.get("soft")
    mask, gan_only = (ablations.get(k) for k in ("mask_none", "gan_only"))
    gumbel = soft_beats_by_pooled_sd(ablations, "gumbel")
    if gumbel:
        out["soft_beats_gumbel_by_pooled_sd"] = gumbel
    if soft and mask:
        out["soft_below_mask_none"] = {"soft_mean": soft["fid_mean"], "mask_none_mean": mask["fid_mean"],
                                       "holds": soft["fid_mean"] < mask["fid_mean"]}
    if soft and gan_only:
        out["gan_only_worse_than_soft"] = {"gan_only_mean": gan_only["fid_mean"], "soft_mean": soft["fid_mean"],
                                           "holds": gan_only["fid_mean"] > soft["fid_mean"]}
    if refine_over_distill is not None:
        out["refine_step_le_1.6x"] = {"refine_over_distill": refine_over_distill, "threshold": REFINE_OVER_DISTILL,
                                      "holds": refine_over_distill <= REFINE_OVER_DISTILL}
    return out


# ---------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", required=True, help="the RUNS folder of soft_gan_runs.sh (runs in RUNS/refine/NAME-sSEED)")
    ap.add_argument("--seeds", default="0,1,2", help="training seeds of the runs (comma-separated)")
    ap.add_argument("--dataset", choices=["mnist", "fashion"], default="mnist", help="picks the default paths")
    for key, text in (("teacher", "teacher folder"), ("dimo", "Di[M]O student folder (the runs' start)"),
                      ("shipped", "shipped Soft-Di[M]O student folder"), ("config", "the runs' refine preset"),
                      ("distill_config", "Di[M]O preset of the step cost"), ("teacher_json", "teacher results file"),
                      ("dimo_json", "Di[M]O results file"), ("json", "output results file")):
        ap.add_argument(f"--{key.replace('_', '-')}", help=f"{text} (default from --dataset)")
    ap.add_argument("--teacher-candidates", type=int, default=3, help="teacher settings re-measured")
    ap.add_argument("--num", type=int, default=2000)
    ap.add_argument("--row-step", type=int, default=300, help="the runs are compared at their EMA student of this step")
    ap.add_argument("--curve-num", type=int, default=1000)
    ap.add_argument("--temperatures", default="1,2,3")
    ap.add_argument("--sweep-metric", choices=sorted(SWEEP_TEXT), default="domain_fid",
                    help="what the τ sweeps and the curves measure at --curve-num: domain FID (the dataset's "
                         "in-project classifier) or Inception FID (slower)")
    ap.add_argument("--ablation-tau", choices=sorted(ABLATION_TAU_RULES), default="sweep",
                    help="how each ablation run's τ is picked: the sweep's τ (one Inception FID a run) or the "
                         "lower Inception FID of that τ and τ = 1, the rule of the shipped students (two)")
    ap.add_argument("--cost-steps", type=int, default=25)
    ap.add_argument("--cost-warmup", type=int, default=5)
    ap.add_argument("--cost-repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-cost", action="store_true")
    ap.add_argument("--memo", help="JSON-lines file keeping every measurement as it is made, so a stopped run "
                                   "repeats only what it had not finished (default RUNS/soft_gan_DATASET.memo.jsonl; "
                                   "'none': keep nothing)")
    args = ap.parse_args(argv)
    for key, value in defaults(args.dataset).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.memo is None:
        args.memo = str(Path(args.runs) / f"soft_gan_{args.dataset}.memo.jsonl")
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    started, t0 = now(), time.time()
    memo = None if args.memo == "none" else EvalMemo(args.memo, evaluate)
    m = Measure(DataConfig(dataset=args.dataset), args.num, args.curve_num,
                [float(t) for t in args.temperatures.split(",")], args.seed, memo, args.sweep_metric)
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = finished_runs(Path(args.runs), seeds)
    tmp_dir = tempfile.TemporaryDirectory()
    tmp = Path(tmp_dir.name)

    teacher_doc = json.loads(Path(args.teacher_json).read_text())
    teacher_rows = measure_teacher(args.teacher, teacher_candidates(teacher_doc, args.teacher_candidates), m)
    dimo_tau = dimo_best_tau(json.loads(Path(args.dimo_json).read_text()))
    dimo_rows = measure_dimo(args.dimo, dimo_tau, m)
    soft = measure_student("Soft-Di[M]O shipped", "soft", Path(args.shipped), m, shipped=True)
    ablations, per_run = {}, {}
    for name, seed_runs in runs.items():
        ablations[name], per_seed = measure_variant(name, seed_runs, args.row_step, m, tmp, args.ablation_tau)
        per_run.update({f"{name}-s{s}": (seed_runs[s], r) for s, r in per_seed.items()})

    all_rows = teacher_rows + dimo_rows + soft.rows + [r for a in ablations.values() for r in a["rows"]]
    evaluator = _evaluators(all_rows)["fid_pr"]  # one evaluator for every row (raises otherwise)
    floor = mnist_floor(args.num, evaluator, args.seed, False, args.dataset, m.evaluate)
    for r in all_rows:
        r["fid_over_floor"] = r["fid"] / floor["fid"]

    key = m.sweep_metric
    start = {}  # step 0 of every curve: the Di[M]O student, by τ
    curves = {}
    for run_name, (path, res) in per_run.items():
        if res.tau not in start:
            start[res.tau] = _proxy_fid(Path(args.dimo), res.tau, m.curve_num, m.seed, m.data, m.evaluate, key)
        known = {args.row_step: res.sweep[f"{res.tau:g}"][key]} if f"{res.tau:g}" in res.sweep else {}
        curves[run_name] = curve(path, start[res.tau], res.tau, m, tmp, known)
    diags = {run_name: diagnostics(path) for run_name, (path, _) in per_run.items()}
    cost = None if args.skip_cost else step_cost(args.distill_config, args.config, args.cost_steps,
                                                 args.cost_warmup, args.cost_repeats, args.threads)
    teacher_best_fid = min(r["fid"] for r in teacher_rows)
    targets = compute_targets(teacher_best_fid, dimo_rows[0]["fid"], soft.fid, ablations,
                              cost["refine_over_distill"] if cost else None)
    sweep_what = f"{key} at N = {args.curve_num}, seed {args.seed}"
    name = f"soft_gan_{args.dataset}"
    metrics = {
        "preset": name, "dataset": args.dataset, "n": args.num, "evaluator": evaluator, "floor": floor,
        "teacher_best_fid": teacher_best_fid, "teacher_rows": teacher_rows,
        "teacher_candidates_from": {"file": args.teacher_json, "commit": teacher_doc.get("commit"),
                                    "rule": f"the {args.teacher_candidates} lowest-FID settings of at most "
                                            f"{TEACHER_MAX_STEPS} steps"},
        "dimo_fid": dimo_rows[0]["fid"], "dimo_tau": dimo_tau, "dimo_fid_tau1": dimo_rows[-1]["fid"],
        "dimo_tau_from": args.dimo_json, "dimo_rows": dimo_rows,
        "soft_fid": soft.fid, "soft_tau": soft.tau, "soft_fid_tau1": soft.fid_tau1, "soft_rows": soft.rows,
        "best_tau_rule": BEST_TAU_RULE, "ablation_tau_rule": ABLATION_TAU_RULES[args.ablation_tau],
        "ablations": ablations,
        "temperature_sweeps": {"metric": sweep_what, "shipped": soft.sweep,
                               **{n: res.sweep for n, (_, res) in per_run.items()}},
        "curves": {"metric": f"{sweep_what}, EMA weights of every checkpoint-N, at the run's chosen τ "
                             f"(step 0: the Di[M]O student the runs start from)", **curves},
        "diagnostics": {"source": "metrics.jsonl generator/* (soft-vs-hard quantities every log step; d_acc from "
                                  "disc/d_acc)", **diags},
        "step_cost": cost, "targets": targets, "targets_left_out": [t for t in TARGET_NAMES if t not in targets],
        "controls": compute_controls(ablations),
        "memo": memo.summary() if memo else None,
    }
    config = {"runs": args.runs, "seeds": seeds, "row_step": args.row_step, "dataset": args.dataset,
              **{k: getattr(args, k) for k in defaults(args.dataset)}, "teacher_candidates": args.teacher_candidates,
              "num": args.num, "curve_num": args.curve_num, "temperatures": m.temperatures,
              "sweep_metric": args.sweep_metric, "seed": args.seed,
              "ablation_tau": args.ablation_tau, "memo": args.memo,
              "threads": args.threads, "variants": {n: list(v.overrides) for n, v in VARIANTS.items()},
              "runs_script": f"bash benchmarks/soft_gan_runs.sh {args.runs} STEPS EVERY \"{' '.join(map(str, seeds))}\""}
    tmp_dir.cleanup()
    write_results(args.json, name, metrics, config=config, started=started, seconds=time.time() - t0)
    print(json.dumps({"teacher_best_fid": teacher_best_fid, "dimo_fid": metrics["dimo_fid"], "soft_fid": soft.fid,
                      "ablations": {n: [a["fid_mean"], a["fid_sd"]] for n, a in ablations.items()},
                      "targets": {k: v["holds"] for k, v in targets.items()}}, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
