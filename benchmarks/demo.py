"""Wall time and summary of `softdimo demo` → ``benchmarks/results/demo.json``.

    python benchmarks/demo.py [--size default] [--out runs/demo-bench]

Runs the demo exactly as ``softdimo demo`` does (``softdimo.demo.run_demo``) in this process and
records its wall time (target: ≤ 15 minutes on 2 CPU cores for the default size), the budget and
every row of its tables.
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import time
from pathlib import Path

import torch

from softdimo.demo import BUDGETS, run_demo
from softdimo.results import now, write_results

TARGET_SECONDS = 15 * 60


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="default", choices=list(BUDGETS))
    ap.add_argument("--out", default="runs/demo-bench", help="demo output folder (replaced)")
    ap.add_argument("--json", default="benchmarks/results/demo.json")
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    started, t0 = now(), time.time()
    res = run_demo(out, size=args.size, progress=False)
    wall = time.time() - t0
    metrics = {
        "size": args.size, "wall_seconds": wall, "wall_seconds_before_report": res["seconds"],
        "target_seconds": TARGET_SECONDS, "within_target": wall <= TARGET_SECONDS,
        "torch_threads": torch.get_num_threads(),
        "rows": [{**r, "table": "class_to_image"} for r in res["class_to_image"]]
        + [{**r, "table": "text_to_image"} for r in res["text_to_image"]],
        "tokenizers": res["tokenizers"],
        "tteo": {k: v for k, v in res["tteo"].items() if k != "out"},
    }
    write_results(args.json, "demo", metrics, config={"size": args.size, "budget": dataclasses.asdict(BUDGETS[args.size])},
                  started=started, seconds=wall)
    print(f"demo ({args.size}): {wall:.0f} s (target ≤ {TARGET_SECONDS} s); wrote {args.json}")


if __name__ == "__main__":
    main()
