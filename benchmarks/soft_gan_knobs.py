"""Exploratory: do discriminator knobs close the soft-vs-Gumbel gap? → ``soft_gan_knobs.json``.

    for spec in r1:gan.r1_gamma=1.0 ldisc:gan.lr_disc_mult=0.3; do
      softdimo refine --config configs/mnist/soft_gan.yaml train.out_dir=RUNS train.max_steps=300 \
          train.checkpoint_every=150 train.checkpoints_total_limit=0 train.run_name=${spec%%:*} ${spec#*:}
    done
    python benchmarks/soft_gan_knobs.py --runs RUNS/refine

Domain FID (in-project classifier features, N = 1000) of each run's EMA student at steps 150 and
300 for τ ∈ {1, 2, 3}; compare with the soft / Gumbel-ST curves of ``soft_gan_mnist.json``.
"""
import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soft_gan import _domain_fid, student_at  # noqa: E402

from softdimo.results import write_results  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--runs", required=True)
ap.add_argument("--names", default="r1,ldisc")
ap.add_argument("--json", default="benchmarks/results/soft_gan_knobs.json")
args = ap.parse_args()
torch.set_num_threads(2)
R = Path(args.runs)
out = {}
with tempfile.TemporaryDirectory() as tmp:
    for n in args.names.split(","):
        for step in (150, 300):
            f = student_at(R / n, R / n / f"checkpoint-{step}", Path(tmp) / f"{n}-{step}")
            out[f"{n}@{step}"] = {str(t): _domain_fid(f, t, 1000, 0) for t in (1.0, 2.0, 3.0)}
            print(n, step, out[f"{n}@{step}"], flush=True)
write_results(args.json, "soft_gan_knobs", {
    "metric": "domain_fid (in-project classifier features), N = 1000, EMA student of checkpoint-N",
    "runs": {"r1": "gan.r1_gamma=1.0", "ldisc": "gan.lr_disc_mult=0.3"}, "domain_fid": out})
