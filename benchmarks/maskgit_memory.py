"""Planned memory of distill / refine on the released MaskGIT-256 (``--dry-run``'s numbers).

    python benchmarks/maskgit_memory.py --json benchmarks/results/maskgit_memory.json

No weights exist offline, so this writes a *config-only* converted MaskGIT folder (``teacher.json``
and the ``config.json`` of ``mdm/`` and ``tokenizer/``, no weights) with the released architecture —
the transformer of MaskGIT-pytorch (24 blocks, width 768, 16 heads, MLP 3072, 16×16 tokens, K = 1024,
1000 classes: 174.2 M parameters) and taming's f16 VQGAN (72.1 M) — and runs the dry-run planner
(:mod:`softdimo.dryrun`) on it for distill, refine with the GAN, and refine with a reward, at each
micro-batch in bf16 autocast with fp32 master weights, EMA 0.9999, frozen embedding layers.
``metrics.memory_gib[stage][micro_batch]`` holds the totals; ``plans`` the per-network tables.
``softdimo distill --dry-run teacher=YOUR/maskgit-256`` gives the numbers of a converted folder.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from softdimo.config import load_config
from softdimo.distill.refine import RefineRunConfig
from softdimo.distill.train import DistillRunConfig
from softdimo.dryrun import GIB, plan_for
from softdimo.results import now, write_results
from softdimo.teachers.maskgit import KIND, default_sampler
from softdimo.teachers.maskgit_net import MaskGITConfig
from softdimo.teachers.vqgan import VQGANConfig


def write_config_only(root: Path) -> Path:
    """teacher.json + mdm/config.json + tokenizer/config.json of the released 256-px model."""
    for part, cls, cfg in (("mdm", "MaskGITTransformer", MaskGITConfig()), ("tokenizer", "TamingVQGAN", VQGANConfig())):
        (root / part).mkdir(parents=True, exist_ok=True)
        (root / part / "config.json").write_text(json.dumps({"_class": cls, **asdict(cfg)}, indent=2))
    (root / "teacher.json").write_text(json.dumps({"kind": KIND, "format_version": 1, "cond": "class",
                                                   "num_classes": 1000, "num_tokens": 1024, "grid": [16, 16],
                                                   "sampler": asdict(default_sampler())}, indent=2))
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--micro-batches", type=int, nargs="+", default=[4, 8, 16, 64])  # 64: the released per-GPU batch
    ap.add_argument("--precision", default="bf16", choices=["bf16", "fp16", "fp32"])
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    started, t0 = now(), time.time()
    stages = {"distill": (DistillRunConfig, []),
              "refine-gan": (RefineRunConfig, []),
              "refine-reward": (RefineRunConfig, ["gan.w_gan=0", "reward.w_reward=1",
                                                  "reward.terms=[{kind: clip_score, path: unused}]"])}
    amp = "'no'" if args.precision == "fp32" else args.precision  # quoted: YAML reads a bare no as false
    memory: dict = {}
    plans: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_config_only(Path(tmp) / "maskgit-256")
        for stage, (cls, extra) in stages.items():
            memory[stage], plans[stage] = {}, {}
            for b in args.micro_batches:
                cfg = load_config(cls, None, [f"teacher={folder}", "teacher_kind=maskgit", f"train.batch_size={b}",
                                              "train.grad_accum=1", f"train.mixed_precision={amp}",
                                              "train.ema_decay=0.9999", *extra])
                plan = plan_for("refine" if stage.startswith("refine") else stage, cfg)
                memory[stage][str(b)] = plan.total_bytes / GIB
                plans[stage][str(b)] = plan.as_dict()
                print(stage, b, f"{plan.total_bytes / GIB:.2f} GiB", flush=True)
    t = plans["distill"][str(args.micro_batches[0])]["components"]
    params = {c["name"]: c["params"] for c in t}
    metrics = {"memory_gib": memory, "precision": args.precision,
               "parameters": {"transformer": params["teacher (frozen)"], "vqgan": params["VQ tokenizer (frozen)"],
                              "student_trainable": next(c["trainable"] for c in t if c["name"] == "student")},
               "architecture": {"transformer": asdict(MaskGITConfig()), "vqgan": asdict(VQGANConfig())},
               "plans": plans}
    write_results(args.json, "maskgit_memory", metrics, config=vars(args), started=started, seconds=time.time() - t0)


if __name__ == "__main__":
    main()
