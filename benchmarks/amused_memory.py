"""Planned memory of distill / refine on amused-256 and amused-512 (``--dry-run``'s numbers).

    python benchmarks/amused_memory.py --json benchmarks/results/amused_memory.json

No weights exist offline, so this writes *config-only* aMUSEd folders (``config.json`` files, no
weights) with the published architecture — UVit2DModel's defaults are aMUSEd's transformer
(603.5 M parameters); the VQ model (146.2 M) and the CLIP-L/14 text encoder (123.7 M) as in the
checkpoints; amused-256: 16×16 tokens, amused-512: 32×32 tokens with the transformer's 2×
down/up-sampling — and runs the dry-run planner (:mod:`softdimo.dryrun`) on them for each stage,
batch size and precision. The architecture values are written here, not read from a download:
``softdimo distill --dry-run teacher=YOUR/amused-256`` gives the numbers of your folder.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from softdimo.config import load_config
from softdimo.distill.refine import RefineRunConfig
from softdimo.distill.train import DistillRunConfig
from softdimo.dryrun import plan_for
from softdimo.results import now, write_results

VQ = {"_class_name": "VQModel", "in_channels": 3, "out_channels": 3, "latent_channels": 64,
      "block_out_channels": [128, 256, 256, 512, 768], "down_block_types": ["DownEncoderBlock2D"] * 5,
      "up_block_types": ["UpDecoderBlock2D"] * 5, "layers_per_block": 2, "norm_num_groups": 32,
      "num_vq_embeddings": 8192, "mid_block_add_attention": False, "lookup_from_codebook": True, "force_upcast": True}
CLIP_L = {"architectures": ["CLIPTextModelWithProjection"], "model_type": "clip_text_model", "vocab_size": 49408,
          "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
          "projection_dim": 768, "max_position_embeddings": 77, "hidden_act": "quick_gelu"}
VARIANTS = {"amused-256": {"sample_size": 16, "downsample": False, "upsample": False},
            "amused-512": {"sample_size": 32, "downsample": True, "upsample": True}}


def write_config_only(root: Path, variant: dict) -> Path:
    for part, cfg in (("transformer", {"_class_name": "UVit2DModel", **variant}), ("vqvae", VQ),
                      ("text_encoder", CLIP_L), ("scheduler", {"_class_name": "AmusedScheduler", "mask_token_id": 8255,
                                                               "masking_schedule": "cosine"})):
        (root / part).mkdir(parents=True, exist_ok=True)
        name = "scheduler_config.json" if part == "scheduler" else "config.json"
        (root / part / name).write_text(json.dumps(cfg, indent=2))
    (root / "model_index.json").write_text(json.dumps({"_class_name": "AmusedPipeline"}))
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--precisions", nargs="+", default=["bf16", "fp32"], help="bf16, fp16 or fp32 (no autocast)")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    started, t0 = now(), time.time()
    stages = {"distill": (DistillRunConfig, []),
              "refine-gan": (RefineRunConfig, []),
              "refine-reward": (RefineRunConfig, ["gan.w_gan=0", "reward.w_reward=1",
                                                  "reward.terms=[{kind: clip_score, path: unused}]"])}
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, variant in VARIANTS.items():
            folder = write_config_only(Path(tmp) / name, variant)
            rows = out[name] = {}
            for stage, (cls, extra) in stages.items():
                for prec in args.precisions:
                    amp = "'no'" if prec == "fp32" else prec  # quoted: YAML reads a bare no as false
                    for b in args.batch_sizes:
                        cfg = load_config(cls, None, [f"teacher={folder}", "teacher_kind=amused",
                                                      f"train.batch_size={b}", f"train.mixed_precision={amp}",
                                                      "train.ema_decay=0.9999", *extra])
                        plan = plan_for("refine" if stage.startswith("refine") else stage, cfg)
                        rows[f"{stage}/{prec}/b{b}"] = plan.as_dict()
                        print(name, stage, prec, b, f"{plan.total_bytes / 1024 ** 3:.1f} GiB", flush=True)
    write_results(args.json, "amused_memory", out, config=vars(args), started=started, seconds=time.time() - t0)


if __name__ == "__main__":
    main()
