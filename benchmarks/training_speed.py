"""Training throughput of a stage preset through the shared loop, and the projected wall time.

    python benchmarks/training_speed.py --config configs/world/tokenizer.yaml --command train-tokenizer \
        --steps 150 --threads 1 2 --json benchmarks/results/tokenizer_world_speed.json

Runs ``--steps`` optimiser steps of the preset (checkpoints and grids off) for each thread count,
measures steps/s after the first 20% of steps (warm-up and data set-up excluded) from the loop's
own ``metrics.jsonl`` timestamps, and projects the preset's full ``train.max_steps``.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

from softdimo.cli import TRAIN_COMMANDS, run_training
from softdimo.config import load_config
from softdimo.results import now, write_results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--command", required=True, choices=sorted(TRAIN_COMMANDS))
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    started, t0 = now(), time.time()
    cfg_cls, _ = TRAIN_COMMANDS[args.command].load()
    full_steps = load_config(cfg_cls, args.config).train.max_steps
    warm = max(1, args.steps // 5)
    rows = {}
    for threads in args.threads:
        with tempfile.TemporaryDirectory() as tmp:
            run_training(args.command, args.config,
                         [f"train.max_steps={args.steps}", f"train.threads={threads}", "train.log_every=1",
                          "train.checkpoint_every=0", "train.sample_every=0", f"train.out_dir={tmp}"],
                         resume=False, progress=False)
            metrics = next(iter(__import__("pathlib").Path(tmp).glob("*/*/metrics.jsonl")))
            secs = {r["step"]: r["seconds"] for r in map(json.loads, metrics.read_text().splitlines())}
        rate = (args.steps - warm) / (secs[args.steps] - secs[warm])
        rows[str(threads)] = {"steps_per_second": rate,
                              "projected_minutes_for_max_steps": full_steps / rate / 60}
        print(threads, rows[str(threads)], flush=True)
    write_results(args.json, f"training_speed:{args.config}", {"max_steps": full_steps, "threads": rows,
                  "measured_steps": args.steps, "warmup_steps_excluded": warm},
                  config={"config": args.config, "command": args.command}, started=started,
                  seconds=time.time() - t0)


if __name__ == "__main__":
    main()
