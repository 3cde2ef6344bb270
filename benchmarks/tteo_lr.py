"""TTEO step size on the digit world: GenEval-like and reward of TTEO'd draws against no TTEO.

    python benchmarks/tteo_lr.py --model checkpoints/soft-reward-world --first 300 --prompts 180 \
        --settings 0x0,4x0.2,4x0.05,8x0.01,8x0.005,8x0.0025 --json benchmarks/results/tteo_lr_world.json

TTEO (docs/method.md §7) takes SGD steps on the one-step student's input embeddings. The step size
is in embedding units, so it depends on the model: the paper's lr 0.2 suits its tokenizers'
embeddings, not necessarily another's. This benchmark picks it on prompts that the text-to-image
benchmark does not score: held-out prompts ``[first, first + prompts)`` (tags interleaved; the
benchmark ``t2i_world.py`` scores the first 300), one image each, best of 1 (no selection), the
rewards and soft τ of ``--tteo-config``. Every setting ``ITERSxLR`` draws from the same seed, so
the no-TTEO row (``0x…``) is the start of every other.

Per setting, under ``metrics.rows``: ``geneval`` (overall, the GenEval-like scorer; never a
reward), ``per_tag``, ``reward_hard`` (the TTEO composite Σ λ_i R̂_i of the final hard-decoded
images, mean), ``soft_objective_first`` / ``soft_objective_last`` (the optimised soft objective
before the first and after the last step, mean: an lr that overshoots makes it fall), ``seconds``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from generators import GENEVAL_EVALUATOR  # noqa: E402

from softdimo.classifier import load_shipped_classifier  # noqa: E402
from softdimo.data.prompts import heldout_prompts_interleaved  # noqa: E402
from softdimo.eval.geneval import GenEvalScorer  # noqa: E402
from softdimo.results import now, write_results  # noqa: E402
from softdimo.rewards import build_composite  # noqa: E402
from softdimo.sample import SamplingOptions, StudentGenerator, load_generator  # noqa: E402
from softdimo.tteo import load_tteo_config, tteo  # noqa: E402


def parse_settings(text: str) -> list[tuple[int, float]]:
    """``"0x0,4x0.2"`` → ``[(0, 0.0), (4, 0.2)]`` (iterations × learning rate)."""
    out = []
    for item in text.split(","):
        iters, _, lr = item.partition("x")
        try:
            out.append((int(iters), float(lr)))
        except ValueError:
            raise SystemExit(f"--settings: '{item}' is not ITERSxLR (e.g. 8x0.005)") from None
        if out[-1][0] < 0 or out[-1][1] < 0:
            raise SystemExit(f"--settings: '{item}' needs ITERS ≥ 0 and LR ≥ 0")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="checkpoints/soft-reward-world", help="one-step student folder")
    ap.add_argument("--tteo-config", default="configs/world/tteo.yaml", help="rewards and soft τ (its iters/lr unused)")
    ap.add_argument("--first", type=int, default=300, help="first held-out prompt used (t2i_world.py scores [0, 300))")
    ap.add_argument("--prompts", type=int, default=180)
    ap.add_argument("--settings", default="0x0,4x0.2,4x0.05,8x0.01,8x0.005,8x0.0025")
    ap.add_argument("--batch-size", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="benchmarks/results/tteo_lr_world.json")
    args = ap.parse_args()
    if args.first < 0 or args.prompts < 1 or args.batch_size < 1:
        ap.error("--first must be ≥ 0, --prompts and --batch-size ≥ 1.")
    settings = parse_settings(args.settings)
    torch.set_num_threads(args.threads)
    started, t0 = now(), time.time()
    meta = heldout_prompts_interleaved()[args.first:args.first + args.prompts]
    if len(meta) < args.prompts:
        ap.error(f"the held-out set has {args.first + len(meta)} prompts; ask for fewer.")
    prompts = [m["prompt"] for m in meta]
    cfg = load_tteo_config(args.tteo_config)
    rewards = build_composite(cfg.rewards, "cpu").eval()
    gen = load_generator(args.model, "cpu")
    if not isinstance(gen, StudentGenerator):
        raise SystemExit(f"{args.model} is a '{gen.kind}'; TTEO needs a one-step student folder.")
    sampler = gen.sampler(SamplingOptions(temperature=cfg.temperature))
    scorer = GenEvalScorer(load_shipped_classifier())
    rows = {}
    for iters, lr in settings:
        t = time.time()
        g = torch.Generator().manual_seed(args.seed)
        images, objective = [], []
        for i in range(0, len(prompts), args.batch_size):
            res = tteo(gen.student, rewards, prompts=prompts[i:i + args.batch_size], iters=iters, lr=lr, best_of=1,
                       sampler=sampler, soft_temperature=cfg.soft_temperature, generator=g)
            images.append(res.images)
            objective.append(res.objective[0])  # [iters + 1, B] of the one candidate
        x, obj = torch.cat(images), torch.cat(objective, 1)
        ge = scorer.score(x, meta)
        with torch.no_grad():
            hard = torch.cat([rewards.score(x[i:i + args.batch_size], prompts[i:i + args.batch_size])
                              for i in range(0, len(x), args.batch_size)])
        name = f"{iters}x{lr:g}"
        rows[name] = {"iters": iters, "lr": lr, "geneval": ge["overall"], "per_tag": ge["per_tag"],
                      "reward_hard": float(hard.mean()), "soft_objective_first": float(obj[0].mean()),
                      "soft_objective_last": float(obj[-1].mean()), "seconds": time.time() - t}
        print(name, json.dumps({k: round(v, 4) for k, v in rows[name].items() if isinstance(v, float)}), flush=True)
    metrics = {"n": len(prompts), "model": args.model, "prompts": f"heldout_prompts_interleaved()[{args.first}:"
               f"{args.first + args.prompts}]", "images_per_prompt": 1, "best_of": 1,
               "soft_temperature": cfg.soft_temperature, "evaluator": GENEVAL_EVALUATOR,
               "reward": f"TTEO composite of {args.tteo_config}", "rows": rows}
    write_results(args.json, "tteo_lr", metrics, config=vars(args), started=started, seconds=time.time() - t0)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
