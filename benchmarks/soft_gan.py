"""Soft-Di[M]O ablations on MNIST (docs/method.md §5, §4.3) → ``benchmarks/results/soft_gan_mnist.json``.

    bash benchmarks/soft_gan_runs.sh RUNS_DIR 300 150      # the four refine runs (equal steps)
    python benchmarks/soft_gan.py --runs RUNS_DIR/refine

One process, one evaluator, one N for every row:

* **rows** (standard Inception FID, precision/recall, N = ``--num`` vs MNIST test[:N]): the teacher
  at its best setting from ``teacher_mnist.json`` (lowest FID over steps × CFG), the Di[M]O student
  at the temperature ``dimo_mnist.json`` chose, each refine run of ``soft_gan_runs.sh`` (Soft-Di[M]O
  = soft embeddings + GAN; Gumbel-ST + GAN; GAN only, no Di[M]O term; mask range [0, 0]), each
  as the EMA student of its ``checkpoint-<--row-step>`` (equal steps; the learning rate is constant
  after warm-up), and the shipped ``checkpoints/soft-dimo-mnist`` (1,000 steps). A one-step student's temperature τ is the best of
  ``--temperatures`` by domain FID (in-project classifier features) at ``--curve-num`` images.
* **curves**: domain FID at ``--curve-num`` images of the EMA weights of every ``checkpoint-N/`` of
  each run (step 0 = the Di[M]O student it starts from), at the run's chosen τ.
* **diagnostics**: the soft-vs-hard quantities each run logged (``metrics.jsonl``): token entropy,
  p_max, tr Σ of the embedding under p, the Monte-Carlo gap |D(ẽ) − E_j D(e_j)| (§4.2), and the
  discriminator's accuracy.
* **step cost**: seconds per optimiser step of ``refine`` (soft GAN) and of ``distill`` (Di[M]O), same
  batch and threads, alternated ``--cost-repeats`` times in this process; the first
  ``--cost-warmup`` steps of each run are excluded (``metrics.jsonl`` ``seconds`` column).

Targets (from the issue): Soft-Di[M]O FID ≤ 0.75 × Di[M]O FID and ≤ the teacher's best; soft beats
Gumbel-ST; GAN-only ends worse than Di[M]O + GAN; refine step ≤ 1.6 × Di[M]O step.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generators import Row, best_temperature, mnist_floor, run_rows  # noqa: E402

from softdimo.config import DataConfig, load_config  # noqa: E402
from softdimo.distill import OneStepStudent  # noqa: E402
from softdimo.evaluate import evaluate  # noqa: E402
from softdimo.paths import project_root  # noqa: E402
from softdimo.pretrained import load_tensors  # noqa: E402
from softdimo.results import now, write_results  # noqa: E402
from softdimo.sample import SamplingOptions  # noqa: E402
from softdimo.train.checkpoint import list_checkpoints  # noqa: E402

RUNS = {  # run folder name → (row label, what it ablates)
    "soft": ("Soft-Di[M]O (soft + GAN)", "soft embeddings ẽ = Eᵀ softmax(z) into the teacher discriminator"),
    "gumbel": ("Gumbel-ST + GAN", "gan.embedding=gumbel: hard one-hot forward, soft gradient"),
    "gan_only": ("GAN only", "dimo_weight=0: no Di[M]O term"),
    "mask_none": ("mask range [0, 0]", "gan.mask_ratio_range=[0,0]: no mask augmentation"),
}
DIAG_KEYS = ("soft_entropy", "soft_p_max", "soft_cov_trace", "soft_gap", "gan_loss", "dimo_loss")


def _domain_fid(path: Path, temperature: float, num: int, seed: int) -> float:
    out = evaluate(str(path), ["domain_fid"], num, DataConfig(dataset="mnist"), seed=seed, progress=False,
                   sampling=SamplingOptions(temperature=temperature))
    return float(out["domain_fid"])


WEIGHTS_PREFIX = {"live": "student.", "ema": "ema.student."}  # the student's tensors in models.safetensors


def student_at(run: Path, checkpoint: Path, folder: Path, weights: str = "ema") -> Path:
    """Write the ``weights`` (EMA or live) student of ``checkpoint`` (a ``checkpoint-N/`` of ``run``) as a
    student folder."""
    student = OneStepStudent.from_pretrained(run / "final")
    tensors = load_tensors(checkpoint / "models.safetensors")
    pre = WEIGHTS_PREFIX[weights]
    student.mdm.load_state_dict({k[len(pre):]: v for k, v in tensors.items() if k.startswith(pre)})
    student.save_pretrained(folder)
    return folder


def curve(run: Path, start: Path, temperature: float, num: int, seed: int, tmp: Path) -> list[dict[str, float]]:
    """Domain FID of the EMA student of every checkpoint of ``run`` (step 0: ``start``)."""
    points = [{"step": 0, "domain_fid": _domain_fid(start, temperature, num, seed)}]
    for step, ck in list_checkpoints(run):
        folder = student_at(run, ck, tmp / f"{run.name}-step-{step}")
        points.append({"step": step, "domain_fid": _domain_fid(folder, temperature, num, seed)})
        print(f"  {run.name} step {step}: domain FID {points[-1]['domain_fid']:.2f}", flush=True)
    return points


def diagnostics(run: Path) -> list[dict[str, float]]:
    """The logged soft-vs-hard diagnostics and discriminator accuracy of ``run`` (metrics.jsonl)."""
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


def _seconds_per_step(command: str, config: str, steps: int, warmup: int, out: Path, repeat: int) -> float:
    from softdimo.cli import run_training

    overrides = [f"train.out_dir={out}", f"train.run_name={command}-{repeat}", f"train.max_steps={steps}",
                 "train.log_every=1", "train.sample_every=0", "train.checkpoint_every=0"]
    if command == "refine":  # the soft-vs-hard diagnostics are logging (every log_every steps), not the step
        overrides.append("diag_samples=0")
    result = run_training(command, config, overrides, resume=False, progress=False)
    rows = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    t = {r["step"]: r["seconds"] for r in rows}
    return (t[steps] - t[warmup]) / (steps - warmup)


def step_cost(steps: int, warmup: int, repeats: int) -> dict[str, Any]:
    """Seconds per optimiser step of refine vs distill, alternated in this process."""
    root = project_root()
    configs = {"distill": str(root / "configs/mnist/dimo.yaml"), "refine": str(root / "configs/mnist/soft_gan.yaml")}
    times: dict[str, list[float]] = {k: [] for k in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(repeats):
            order = list(configs) if rep % 2 == 0 else list(reversed(configs))
            for cmd in order:
                times[cmd].append(_seconds_per_step(cmd, configs[cmd], steps, warmup, Path(tmp), rep))
                print(f"  {cmd} repeat {rep}: {times[cmd][-1]:.3f} s/step", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    batch = load_config_batch(configs["refine"])
    return {"seconds_per_step": med, "all": times, "refine_over_distill": med["refine"] / med["distill"],
            "steps": steps, "warmup_excluded": warmup, "repeats": repeats, "batch_size": batch,
            "configs": {k: str(Path(v).relative_to(root)) for k, v in configs.items()},
            "method": "run_training(...) alternated; (seconds at step S − seconds at step W)/(S − W) from "
                      "metrics.jsonl; refine = generator (L_DiMO + w·L_GAN) + aux + discriminator phases "
                      "(diag_samples=0: the logged soft-vs-hard diagnostics are left out), distill = generator + aux; "
                      "median over repeats"}


def load_config_batch(path: str) -> int:
    from softdimo.distill.refine import RefineRunConfig

    return load_config(RefineRunConfig, path, []).train.batch_size


def _best_teacher(teacher_json: Path) -> tuple[SamplingOptions, dict[str, Any]]:
    doc = json.loads(teacher_json.read_text())
    rows = doc["metrics"]["rows"]
    best = min(rows, key=lambda r: r["fid"])
    o = best["options"]
    return SamplingOptions(steps=o["steps"], cfg_scale=o["cfg_scale"]), {
        "from": str(teacher_json), "label": best["label"], "fid_there": best["fid"], "commit": doc.get("commit")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", required=True, help="folder holding the refine runs soft/, gumbel/, gan_only/, mask_none/")
    ap.add_argument("--teacher", default="checkpoints/teacher-mnist")
    ap.add_argument("--dimo", default="checkpoints/dimo-mnist")
    ap.add_argument("--shipped", default="checkpoints/soft-dimo-mnist")
    ap.add_argument("--teacher-json", default="benchmarks/results/teacher_mnist.json")
    ap.add_argument("--dimo-json", default="benchmarks/results/dimo_mnist.json")
    ap.add_argument("--json", default="benchmarks/results/soft_gan_mnist.json")
    ap.add_argument("--num", type=int, default=2000)
    ap.add_argument("--row-step", type=int, default=300, help="the runs' rows use their EMA student at this step")
    ap.add_argument("--curve-num", type=int, default=1000)
    ap.add_argument("--temperatures", default="1,2,3")
    ap.add_argument("--cost-steps", type=int, default=25)
    ap.add_argument("--cost-warmup", type=int, default=5)
    ap.add_argument("--cost-repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-cost", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    started, t0 = now(), time.time()
    temps = [float(t) for t in args.temperatures.split(",")]
    runs_dir = Path(args.runs)
    runs = {name: runs_dir / name for name in RUNS if (runs_dir / name / "final").is_dir()}
    missing = [n for n in RUNS if n not in runs]
    if missing:
        print(f"runs without final/: {missing} (left out)", flush=True)

    t_opts, t_src = _best_teacher(Path(args.teacher_json))
    dimo_doc = json.loads(Path(args.dimo_json).read_text())["metrics"]
    dimo_t = dimo_doc["student_rows"][0]["options"]["temperature"]
    tmp_dir = tempfile.TemporaryDirectory()
    tmp = Path(tmp_dir.name)
    at_step = {}  # every run's EMA student at the common step --row-step
    for name, path in runs.items():
        ck = path / f"checkpoint-{args.row_step}"
        if not (ck / "models.safetensors").is_file():
            raise SystemExit(f"{path} has no checkpoint-{args.row_step}; rows compare the runs at equal steps.")
        at_step[name] = student_at(path, ck, tmp / f"{name}-row")
    chosen, sweeps = {}, {}
    for name, path in [*at_step.items(), ("shipped", Path(args.shipped))]:
        print(f"temperature sweep: {name}", flush=True)
        chosen[name], sweeps[name] = best_temperature(str(path), temps, args.curve_num, args.seed, False)
    rows = [Row(f"teacher {t_opts.steps} steps cfg {t_opts.cfg_scale:g}", args.teacher, t_opts),
            Row(f"Di[M]O τ={dimo_t:g}", args.dimo, SamplingOptions(temperature=dimo_t))]
    rows += [Row(f"{RUNS[n][0]}, {args.row_step} steps τ={chosen[n]:g}", str(p),
                 SamplingOptions(temperature=chosen[n])) for n, p in at_step.items()]
    rows.append(Row(f"Soft-Di[M]O shipped τ={chosen['shipped']:g}", args.shipped,
                    SamplingOptions(temperature=chosen["shipped"])))
    data = DataConfig(dataset="mnist")
    results = run_rows(rows, ["fid", "pr"], args.num, data, args.seed, progress=False)
    floor = mnist_floor(args.num, results[0]["evaluator"], args.seed, False)
    for r in results:
        r["fid_over_floor"] = r["fid"] / floor["fid"]
    by = {r["label"]: r for r in results}
    teacher_fid, dimo_fid = results[0]["fid"], results[1]["fid"]
    run_fid = {n: by[rows[2 + i].label]["fid"] for i, n in enumerate(runs)}

    curves = {n: curve(p, Path(args.dimo), chosen[n], args.curve_num, args.seed, tmp) for n, p in runs.items()}
    diags = {n: diagnostics(p) for n, p in runs.items()}
    cost = None if args.skip_cost else step_cost(args.cost_steps, args.cost_warmup, args.cost_repeats)
    soft = run_fid.get("soft")
    targets = {
        "soft_fid_over_dimo": soft / dimo_fid if soft else None,
        "soft_le_0.75x_dimo": soft is not None and soft <= 0.75 * dimo_fid,
        "soft_fid_over_teacher_best": soft / teacher_fid if soft else None,
        "soft_le_teacher_best": soft is not None and soft <= teacher_fid,
        "shipped_soft_le_teacher_best": by[rows[-1].label]["fid"] <= teacher_fid,
        "soft_beats_gumbel": soft is not None and "gumbel" in run_fid and soft < run_fid["gumbel"],
        "gan_only_worse_than_dimo_plus_gan": "gan_only" in run_fid and soft is not None and run_fid["gan_only"] > soft,
        "refine_over_distill_step": cost["refine_over_distill"] if cost else None,
        "refine_step_le_1.6x": cost is not None and cost["refine_over_distill"] <= 1.6,
    }
    run_cfg = {}
    for n, p in runs.items():
        info = json.loads((p / "final" / "student.json").read_text())
        run_cfg[n] = {"what": RUNS[n][1], "run_dir": str(p), "steps": info["distillation"]["steps"],
                      "refine": info["distillation"].get("refine")}
    metrics = {
        "preset": "soft_gan_mnist", "n": args.num, "evaluator": results[0]["evaluator"], "floor": floor,
        "teacher_best": t_src, "rows": results, "temperature_sweeps": {
            "metric": f"domain_fid (in-project classifier features), N = {args.curve_num}", **sweeps},
        "curves": {"metric": f"domain_fid (in-project classifier features), N = {args.curve_num}, EMA weights "
                             f"of every checkpoint-N, at the run's chosen τ", **curves},
        "diagnostics": {"source": "metrics.jsonl generator/* (the soft run logs soft-vs-hard quantities every "
                                  "log step; d_acc from disc/d_acc)", **diags},
        "step_cost": cost, "targets": targets, "runs": run_cfg,
    }
    config = {"runs": str(runs_dir), "row_step": args.row_step, "teacher": args.teacher, "dimo": args.dimo, "shipped": args.shipped,
              "num": args.num, "curve_num": args.curve_num, "temperatures": temps, "seed": args.seed,
              "threads": args.threads, "runs_script": "bash benchmarks/soft_gan_runs.sh RUNS_DIR 300 150"}
    tmp_dir.cleanup()
    write_results(args.json, "soft_gan_mnist", metrics, config=config, started=started, seconds=time.time() - t0)
    print(json.dumps({"rows": {r["label"]: round(r["fid"], 2) for r in results}, "targets": targets}, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
