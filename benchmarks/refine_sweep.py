"""Exploratory refine runs at equal steps, scored by domain FID along the way → a results JSON.

    python benchmarks/refine_sweep.py --out RUNS --steps 150 --every 75 \\
        --common dimo.aux_updates=4 --run soft= --run no_gan=gan.w_gan=0 \\
        --json benchmarks/results/soft_gan_pilot.json

Each ``--run NAME=OVERRIDES`` (space-separated dotted overrides, empty for the preset) is one
``softdimo refine --config CONFIG`` run of ``--steps`` steps in ``RUNS/refine/NAME`` with a checkpoint
every ``--every`` steps; a finished run is kept and an interrupted one resumed, so the command can
be repeated, and repeated with more ``--steps`` to extend finished runs (the learning rate is
constant after warm-up, so an extended run continues as one longer run would). Then every checkpoint's student — the live weights and/or the EMA (``--weights``) —
is scored by domain FID (in-project classifier features, ``--num`` images, MNIST test split) at
each of ``--temperatures``; step 0 is the student the runs start from, scored the same way. The
diagnostics the runs logged (discriminator accuracy, the soft-vs-hard quantities of
docs/method.md §4.2) are averaged over each checkpoint interval.

The EMA of a short run follows the live weights closely (its decay warms up as
min(d, (1+s)/(10+s)), so ≈ 0.94 at step 150): score both to see whether averaging helps.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soft_gan import _domain_fid, student_at  # noqa: E402

from softdimo.config import load_config  # noqa: E402
from softdimo.distill.refine import RefineRunConfig  # noqa: E402
from softdimo.results import now, write_results  # noqa: E402
from softdimo.train.checkpoint import list_checkpoints  # noqa: E402

LOGGED = ("generator/gan_loss", "generator/dimo_loss", "generator/soft_entropy", "generator/soft_p_max",
          "generator/soft_gap", "generator/grad_z_dimo", "generator/grad_z_gan", "generator/grad_z_cos",
          "disc/d_acc", "disc/d_real", "disc/d_fake")


def train(cfg: str, out: Path, name: str, overrides: list[str], steps: int, every: int, threads: int) -> float:
    """One refine run (resumed if interrupted or shorter than ``steps``, skipped if it reached them); its wall
    seconds (0 if skipped)."""
    run = out / "refine" / name
    done = [s for s, _ in list_checkpoints(run)]
    if (run / "final" / "student.json").is_file() and done and done[-1] >= steps:
        return 0.0
    cmd = [sys.executable, "-m", "softdimo", "refine", "--config", cfg, "--no-progress",
           f"train.out_dir={out}", f"train.run_name={name}", f"train.max_steps={steps}",
           f"train.checkpoint_every={every}", "train.checkpoints_total_limit=0", f"train.sample_every={steps}",
           f"train.threads={threads}", *overrides]
    if run.is_dir():
        cmd.append("--resume")
    print("+", shlex.join(cmd), flush=True)
    t0 = time.time()
    subprocess.run(cmd, check=True)
    return time.time() - t0


def domain_fid(path: Path, temperatures: list[float], num: int, seed: int) -> dict[str, float]:
    return {f"{t:g}": _domain_fid(path, t, num, seed) for t in temperatures}


def logged_means(run: Path, lo: int, hi: int) -> dict[str, float]:
    """Mean of each logged diagnostic over steps (lo, hi]."""
    sums: dict[str, list[float]] = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if lo < row["step"] <= hi:
            for k in LOGGED:
                if k in row:
                    sums.setdefault(k.split("/")[1], []).append(float(row[k]))
    return {k: sum(v) / len(v) for k, v in sums.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="runs folder (RUNS/refine/NAME)")
    ap.add_argument("--config", default="configs/mnist/soft_gan.yaml")
    ap.add_argument("--run", action="append", required=True, metavar="NAME=OVERRIDES",
                    help="one run: a name and its space-separated dotted overrides (repeatable)")
    ap.add_argument("--common", default="", help="overrides shared by every run")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--every", type=int, default=75)
    ap.add_argument("--weights", default="live", help="comma-separated: live, ema")
    ap.add_argument("--temperatures", default="1")
    ap.add_argument("--num", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    started, t0 = now(), time.time()
    out, temps = Path(args.out), [float(x) for x in args.temperatures.split(",")]
    weights = [w for w in args.weights.split(",") if w]
    runs = {}
    for spec in args.run:
        name, _, text = spec.partition("=")
        runs[name] = shlex.split(args.common) + shlex.split(text)
    wall = {n: train(args.config, out, n, o, args.steps, args.every, args.threads) for n, o in runs.items()}
    start = load_config(RefineRunConfig, args.config).student
    rows: dict[str, Any] = {"start": {"path": start, "domain_fid": domain_fid(Path(start), temps, args.num, args.seed)}}
    print("start", rows["start"], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in runs.items():
            run, points, prev = out / "refine" / name, [], 0
            for step, ck in list_checkpoints(run):
                point: dict[str, Any] = {"step": step, "logged": logged_means(run, prev, step)}
                for w in weights:
                    folder = student_at(run, ck, Path(tmp) / f"{name}-{step}-{w}", w)
                    point[f"domain_fid_{w}"] = domain_fid(folder, temps, args.num, args.seed)
                points.append(point)
                prev = step
                print(name, point, flush=True)
            rows[name] = {"overrides": overrides, "train_seconds": wall[name], "points": points}
    write_results(args.json, "refine_sweep", {
        "metric": f"domain_fid (in-project classifier features), N = {args.num}, MNIST test split, seed {args.seed}",
        "weights": weights, "temperatures": temps, "steps": args.steps, "every": args.every,
        "config": args.config, "rows": rows}, started=started, seconds=time.time() - t0)
    print("wrote", args.json)


if __name__ == "__main__":
    main()
