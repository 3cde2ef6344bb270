"""Di[M]O throughput with 1 vs 2 processes on this machine, same global batch → ``benchmarks/results/scaling.json``.

    python benchmarks/scaling.py --steps 300 --batch-size 32 --json benchmarks/results/scaling.json

Runs ``softdimo distill --config configs/mnist/dimo.yaml`` (the shipped MNIST teacher) under
``torchrun --standalone --nproc_per_node N`` for each N of ``--procs``, with the same global
``train.batch_size``, ``--threads`` CPU threads per process (default 1, so N processes use N
cores and no run oversubscribes them), checkpoints and grids off and a log row every step. Run
it on an otherwise idle machine. For each N it reports:

* **samples/s**: generator samples per second = global batch × optimiser steps per second,
  measured from the loop's own ``metrics.jsonl`` clock after the first ``--warmup-frac`` of the
  steps (start-up, process-group set-up and warm-up excluded); each step also runs one auxiliary
  update on a batch of the same size;
* **loss curves**: ``generator/loss`` and ``aux/loss`` of every step (averaged over the processes,
  i.e. over the whole global batch, as the loop logs them).

The runs draw different random numbers (process r seeds with seed·N + r), so the curves are
compared statistically over the last half of the steps: the mean difference of paired
``--block``-step block means, in units of its standard error (``z``); ``agree`` is |z| < 3 for
both losses.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from softdimo.paths import project_root
from softdimo.results import now, write_results

LOSSES = ("generator/loss", "aux/loss")


def run(procs: int, threads: int, args: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    """One torchrun'd distill run; its metrics.jsonl rows."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
           "-m", "softdimo", "distill", "--config", args.config, f"train.max_steps={args.steps}",
           f"train.batch_size={args.batch_size}", f"train.threads={threads}", f"train.seed={args.seed}",
           "train.checkpoint_every=0", "train.sample_every=0", "train.log_every=1", f"train.out_dir={out}",
           f"train.run_name=p{procs}", "--no-progress"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=project_root())
    if res.returncode != 0:
        raise SystemExit(f"{procs}-process run failed:\n{res.stderr[-3000:]}")
    path = out / "distill" / f"p{procs}" / "metrics.jsonl"
    return [json.loads(r) for r in path.read_text().splitlines()]


def throughput(rows: list[dict[str, Any]], batch: int, warmup_frac: float) -> dict[str, float]:
    secs = {r["step"]: r["seconds"] for r in rows}
    last = max(secs)
    first = max(1, int(round(last * warmup_frac)))
    steps_per_s = (last - first) / (secs[last] - secs[first])
    return {"steps_per_second": steps_per_s, "samples_per_second": steps_per_s * batch,
            "measured_steps": last - first, "excluded_warmup_steps": first}


def agreement(a: list[float], b: list[float], block: int) -> dict[str, float | bool]:
    """Paired comparison of two loss curves over their last half, in blocks of ``block`` steps.

    d_j = (mean of block j of a) − (mean of block j of b); z = mean(d) / (sd(d)/√n). Pairing the
    blocks step by step cancels the trend both curves share; blocks absorb short correlations.
    """
    half = len(a) // 2
    ta, tb = a[half:], b[half:]
    block = max(1, min(block, len(ta) // 2))
    d = [statistics.fmean(ta[i:i + block]) - statistics.fmean(tb[i:i + block])
         for i in range(0, len(ta) - block + 1, block)]
    sd = statistics.stdev(d) if len(d) > 1 else math.inf
    z = statistics.fmean(d) / (sd / math.sqrt(len(d))) if sd > 0 else 0.0
    return {"mean_a": statistics.fmean(ta), "mean_b": statistics.fmean(tb), "blocks": len(d), "z": z,
            "agree": abs(z) < 3.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/mnist/dimo.yaml")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=32, help="global batch (the same for every N)")
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads of each process")
    ap.add_argument("--warmup-frac", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--block", type=int, default=10, help="steps per block of the paired loss comparison")
    ap.add_argument("--json", default="benchmarks/results/scaling.json")
    args = ap.parse_args()
    started, t0 = now(), time.time()
    rows: dict[int, dict[str, Any]] = {}
    curves: dict[int, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for procs in args.procs:
            threads = args.threads
            metrics = run(procs, threads, args, Path(tmp))
            curves[procs] = {k: [r[k] for r in metrics] for k in LOSSES}
            rows[procs] = {"processes": procs, "threads_per_process": threads,
                           **throughput(metrics, args.batch_size, args.warmup_frac)}
            print(json.dumps(rows[procs]), flush=True)
    base = args.procs[0]
    for procs in args.procs:
        rows[procs]["speedup_vs_first"] = rows[procs]["samples_per_second"] / rows[base]["samples_per_second"]
    compare = {f"{base}_vs_{p}": {k: agreement(curves[base][k], curves[p][k], args.block) for k in LOSSES}
               for p in args.procs[1:]}
    metrics_out = {
        "rows": [rows[p] for p in args.procs],
        "loss_agreement": compare,
        "agree": all(v["agree"] for c in compare.values() for v in c.values()),
        "loss_curves": {str(p): curves[p] for p in args.procs},
        "unit": "generator samples per second (global batch × optimiser steps/s; each step also trains the "
                "auxiliary on a batch of the same size)",
    }
    write_results(args.json, "scaling:distill", metrics_out,
                  config={"config": args.config, "steps": args.steps, "batch_size": args.batch_size,
                          "procs": args.procs, "threads_per_process": args.threads, "seed": args.seed,
                          "launcher": "torchrun --standalone", "backend": "gloo (CPU)"},
                  started=started, seconds=time.time() - t0)
    print(json.dumps({"rows": metrics_out["rows"], "loss_agreement": compare}, indent=1))


if __name__ == "__main__":
    main()
