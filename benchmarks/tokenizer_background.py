"""How a world tokenizer codes the flat background: codes used and code perplexity on background patches.

    python benchmarks/tokenizer_background.py --models slots=checkpoints/tokenizer-world \
        --n 2000 --json benchmarks/results/tokenizer_world_background.json
    # the free-layout tokenizers it replaced (retired; from git history: K = 128 at e52b7a2~1, K = 512 at a236c2d~1)
    git show e52b7a2~1:checkpoints/tokenizer-world/config.json > /tmp/tok128/config.json   # (and model.safetensors)
    python benchmarks/tokenizer_background.py --layout free --models k128=/tmp/tok128,k512=/tmp/tok512 \
        --n 2000 --json benchmarks/results/tokenizer_world_background_free.json

A patch is *background* when every pixel of its (H/h)×(W/w) cell equals the world's background colour
(:data:`softdimo.data.world.BACKGROUND`). For world test[:N], per tokenizer: the share of background
patches, and for background and digit patches the number of distinct codes and the perplexity
exp(entropy) of their code histogram. A masked model must predict these codes; codes that nothing in
the image tells apart are irreducible loss for it.
"""
from __future__ import annotations

import argparse
import time

import torch

from softdimo.config import DataConfig
from softdimo.data import build_dataset
from softdimo.data.world import BACKGROUND
from softdimo.results import now, write_results
from softdimo.tokenizer import VQTokenizer


def code_stats(ids: torch.Tensor, k: int) -> dict[str, float]:
    counts = torch.bincount(ids, minlength=k).float()
    p = counts[counts > 0] / counts.sum()
    return {"codes_used": int((counts > 0).sum()), "perplexity": float(torch.exp(-(p * p.log()).sum()))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", required=True, help="LABEL=PATH[,LABEL=PATH…] tokenizer folders")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--layout", choices=["slots", "free"], default="slots", help="the world's layout (data.world_layout)")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    started, t0 = now(), time.time()
    x = build_dataset(DataConfig(dataset="world", world_layout=args.layout), "test").images_uint8(range(args.n))
    bg = torch.tensor(BACKGROUND, dtype=torch.uint8).view(1, 3, 1, 1)
    metrics: dict[str, dict] = {}
    for item in args.models.split(","):
        label, path = item.split("=", 1)
        tok = VQTokenizer.from_pretrained(path).eval()
        h, w = tok.grid
        ph, pw = x.shape[2] // h, x.shape[3] // w
        is_bg = (x == bg).all(1).view(-1, h, ph, w, pw).all(4).all(2).reshape(-1)  # [N·h·w]
        ids = tok.encode(x.float() / 255).reshape(-1)
        metrics[label] = {"model": path, "num_codes": tok.num_tokens, "background_share": float(is_bg.float().mean()),
                          "background": code_stats(ids[is_bg], tok.num_tokens),
                          "digit": code_stats(ids[~is_bg], tok.num_tokens)}
        print(label, metrics[label], flush=True)
    name = "tokenizer_world_background" + ("" if args.layout == "slots" else f"_{args.layout}")
    write_results(args.json, name, {"n": args.n, "reference": f"world test[:{args.n}] ({args.layout} layout)",
                                    "layout": args.layout, "tokenizers": metrics},
                  config=vars(args), started=started, seconds=time.time() - t0)


if __name__ == "__main__":
    main()
