"""In-project reward networks: how well they read digit-world test scenes and MNIST digits.

    python benchmarks/reward_models.py --kind attribute --model checkpoints/reward-attribute-world \
        --tokenizer checkpoints/tokenizer-world --json benchmarks/results/reward_attribute_world.json
    python benchmarks/reward_models.py --kind miniclip --model checkpoints/reward-miniclip-world \
        --tokenizer checkpoints/tokenizer-world --json benchmarks/results/reward_miniclip_world.json

* ``top1`` / ``pairwise`` per GenEval tag and overall (:func:`softdimo.rewards.evaluate.evaluate_reward`)
  on the first ``--scenes`` digit-world **test** scenes (world seed 0, 32 px; digits from MNIST
  test; the world of ``--data-config``, default ``configs/world/reward_<kind>.yaml``, the slots
  layout): is the best prompt of the tag's whole
  prompt space right; does the true caption beat a random mismatched caption of the same tag
  (chance 0.5);
* ``mnist_label_top1``: the first ``--mnist`` MNIST test digits (grey, read as white digits on the
  world canvas, placed where the default layout puts a lone digit: :func:`softdimo.rewards.inputs.world_canvas`)
  against the ten prompts "a photo of a 0" … "a photo of a 9": the path class-label models use;
* attribute only: head accuracies on the test scenes (every digit count right; colour and relation
  presence decisions at 0.5, on the entries the loss trains);
* with ``--tokenizer``: ``recon/top1`` and ``recon/pairwise`` on the same scenes after
  ``decode(encode(x))`` through that tokenizer — the kind of image a generator's decoder makes.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from softdimo.config import DataConfig, to_dict
from softdimo.data import build_dataset
from softdimo.paths import config_path
from softdimo.results import now, write_results
from softdimo.rewards import RewardTermConfig, build_reward
from softdimo.rewards.evaluate import evaluate_reward
from softdimo.rewards.inputs import label_prompts
from softdimo.rewards.scenes import render_scenes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generators import world_data  # noqa: E402


@torch.no_grad()
def mnist_label_top1(reward, n: int) -> float:
    test = build_dataset(DataConfig(dataset="mnist"), "test")
    images = test.images_uint8(range(n)).float() / 255.0
    labels = test.labels[:n]
    prompts = label_prompts(range(10))
    hits = 0
    for i in range(0, n, 500):
        hits += int((reward.score_matrix(images[i:i + 500], prompts).argmax(-1) == labels[i:i + 500]).sum())
    return hits / n


@torch.no_grad()
def head_accuracy(reward, scenes) -> dict[str, float]:
    from softdimo.rewards.attribute import attribute_loss, scene_targets

    model = reward.model
    t = scene_targets(scenes.objects, model.config.max_count)
    totals: dict[str, float] = {}
    n = 0
    for i in range(0, len(scenes), 500):
        idx = torch.arange(i, min(len(scenes), i + 500))
        _, logs = attribute_loss(model(scenes.images[idx].float() / 255.0), t.index(idx))
        for k in ("count_acc", "color_acc", "relation_acc"):
            totals[k] = totals.get(k, 0.0) + logs[k] * len(idx)
        n += len(idx)
    return {f"head_{k}": v / n for k, v in totals.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", choices=["attribute", "miniclip"], required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--scenes", type=int, default=3000)
    ap.add_argument("--mnist", type=int, default=2000)
    ap.add_argument("--tokenizer", help="also score tokenizer reconstructions (e.g. checkpoints/tokenizer-world)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data-config", help="YAML whose data: section is the digit world of the test scenes "
                                          "(default configs/world/reward_<kind>.yaml)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    started, t0 = now(), time.time()
    reward = build_reward(RewardTermConfig(kind=args.kind, path=args.model, normalize="none"))
    world = replace(world_data(args.data_config, config_path("world", f"reward_{args.kind}.yaml")),
                    world_test_size=args.scenes)
    scenes = render_scenes(world, "test")
    metrics: dict = dict(evaluate_reward(reward, scenes, seed=0))
    metrics["mnist_label_top1"] = mnist_label_top1(reward, args.mnist)
    if args.kind == "attribute":
        metrics.update(head_accuracy(reward, scenes))
    if args.tokenizer:
        from softdimo.tokenizer import VQTokenizer

        tok = VQTokenizer.from_pretrained(args.tokenizer).eval()
        with torch.no_grad():
            recon = torch.cat([tok.decode(tok.encode(scenes.images[i:i + 500].float() / 255.0))
                               for i in range(0, len(scenes), 500)])
        recon_scenes = replace(scenes, images=(recon * 255).round().clamp(0, 255).to(torch.uint8))
        rec = evaluate_reward(reward, recon_scenes, seed=0)
        metrics.update({f"recon/{k}": v for k, v in rec.items() if k in ("top1", "pairwise")})
    metrics.update({"scenes": args.scenes, "mnist_digits": args.mnist})
    write_results(args.json, f"reward_{args.kind}_world", metrics,
                  config={"kind": args.kind, "model": args.model, "scenes": args.scenes, "world_seed": 0,
                          "split": "test", "mnist": args.mnist, "tokenizer": args.tokenizer,
                          "data": to_dict(world)},
                  started=started, seconds=time.time() - t0)
    for k, v in metrics.items():
        print(f"{k:>28}: {v:.4f}" if isinstance(v, float) else f"{k:>28}: {v}")


if __name__ == "__main__":
    main()
