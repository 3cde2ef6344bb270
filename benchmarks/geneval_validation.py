"""Validation of the GenEval-like scorer on ground-truth renders of the 600 held-out prompts.

    python benchmarks/geneval_validation.py --model checkpoints/classifier-mnist \
        --json benchmarks/results/geneval_validation.json

* **matched**: each held-out prompt (100 per tag) is rendered ``--renders`` times by
  ``render_prompt`` (seeds ``base + 1000·r + i``, digits from MNIST *test*, which the classifier
  never saw) and scored against its own prompt. A correct scorer gives ≈ 1 (target ≥ 0.95).
* **shuffled**: the same renders scored against the prompt of another render *of the same tag*
  (a seeded random cyclic permutation within each tag and render round, so a render is never paired
  with its own or its sibling render's prompt entry), so the prompt asks for the right kind of scene
  but, almost always, other digits / colours / relation. A scorer that looks at the image must
  fall to chance; ``chance`` gives, per tag, the probability that a uniformly drawn prompt of the
  tag is satisfied by a scene of the tag (derivation in ``chance_derivation``).
* **confusion**: per tag and condition, correct/incorrect counts and how often each GenEval rule
  failed (``count`` = too few confident objects of the class, ``color``, ``position``, ``exclude``);
  plus detection diagnostics on matched renders (object recall by box, class and colour accuracy of
  the detections that match a ground-truth box).
* **noisy** (robustness, not a target): matched renders with i.i.d. Gaussian pixel noise of the
  given σ per channel (in [0, 1] units, clamped), as a stand-in for imperfect generated images.

The renders are of the world's default layout, slots (``softdimo.data.world.WorldLayout``;
``--slots``, ``--digit-px``, ``--size-px`` change it); ``--layout free`` validates the scorer on the
earlier free layout instead (0.980 matched, 0.025 shuffled when the free layout was the default):

    python benchmarks/geneval_validation.py --layout free --json /tmp/geneval_validation_free.json
"""
from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np
import torch

from softdimo.classifier import DigitClassifier
from softdimo.config import to_dict
from softdimo.data import heldout_prompts, render_prompt
from softdimo.data import geneval as ge
from softdimo.data.world import DEFAULT_LAYOUT, WorldLayout
from softdimo.eval.geneval import RULES, GenEvalScorer, ScorerConfig
from softdimo.results import now, write_results

# P(a uniformly drawn prompt of the tag is satisfied by a ground-truth scene of the same tag), for
# an ideal detector (scenes hold exactly the prompted digits; relations are placed clearly, so the
# perpendicular relations never hold).
CHANCE = {
    "single_object": 1 / 10,
    "two_object": 1 / 45,
    "counting": 1 / 30,
    "colors": 1 / 100,
    "position": (2 / 90) * (1 / 4),
    "color_attr": (2 / 90) * (1 / 90),
}
CHANCE_DERIVATION = {
    "single_object": "class must match: 1/10",
    "two_object": "the unordered pair of distinct classes must match: 1/C(10,2) = 1/45",
    "counting": "class 1/10 and count exactly (>= count, < count+1 by the exclude clause) 1/3: 1/30",
    "colors": "class 1/10 × colour 1/10",
    "position": "the two classes as a set 2/90, then the one relation of 4 that holds (the reverse one "
                "when the classes come swapped): 1/180",
    "color_attr": "the two classes as a set 2/90, then both colours in the right assignment 1/(10·9): 1/4050",
}


def iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def confusion(details: list[dict]) -> dict:
    table: dict = {}
    for tag in ge.TAGS:
        rows = [d for d in details if d["tag"] == tag]
        fails = Counter(r for d in rows for r in set(d["failed"]))
        table[tag] = {"correct": sum(d["correct"] for d in rows),
                      "incorrect": sum(not d["correct"] for d in rows),
                      "failed_rule_counts": {r: fails.get(r, 0) for r in RULES},
                      "most_failed_rule": fails.most_common(1)[0][0] if fails else None}
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="checkpoints/classifier-mnist")
    ap.add_argument("--json", default="benchmarks/results/geneval_validation.json")
    ap.add_argument("--renders", type=int, default=2, help="renders per prompt (different seeds)")
    ap.add_argument("--seed", type=int, default=12345, help="base seed of the renders and the shuffle")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--examples", type=int, default=20, help="failed matched renders listed in the JSON")
    ap.add_argument("--noise", type=float, nargs="*", default=[0.02, 0.04], help="σ of the noisy conditions")
    ap.add_argument("--layout", choices=("free", "slots"), default=DEFAULT_LAYOUT.kind,
                    help="the world's layout (data.world_layout; default: the default layout, slots)")
    ap.add_argument("--slots", type=int, default=2, help="cells per side of the slots layout (data.world_slots)")
    ap.add_argument("--digit-px", type=int, default=0, help="longer side of every digit; 0 = the layout's default")
    ap.add_argument("--size-px", type=int, default=32, help="canvas size (data.world_size_px)")
    args = ap.parse_args()
    layout = WorldLayout(kind=args.layout, slots=args.slots, digit_px=args.digit_px)
    if args.threads:
        torch.set_num_threads(args.threads)
    started, t0 = now(), time.time()
    scorer = GenEvalScorer(DigitClassifier.from_pretrained(args.model), ScorerConfig())
    prompts = heldout_prompts()

    images, metas, truths = [], [], []
    for r in range(args.renders):
        for i, meta in enumerate(prompts):
            image, objects = render_prompt(meta, args.seed + 1000 * r + i, digits_split="test", size_px=args.size_px,
                                           layout=layout)
            images.append(image)
            metas.append(meta)
            truths.append(objects)
    detections = scorer.detect_many(images)

    matched = [scorer.judge(dets, m)[1] for dets, m in zip(detections, metas)]
    rng = np.random.default_rng(args.seed)
    shuffled_metas = list(metas)
    n_prompts = len(prompts)
    for r in range(args.renders):  # within one render round, so a render never gets its sibling's prompt
        for tag in ge.TAGS:
            idx = [k for k in range(r * n_prompts, (r + 1) * n_prompts) if metas[k]["tag"] == tag]
            order = [idx[int(i)] for i in rng.permutation(len(idx))]
            for k, j in zip(order, order[1:] + order[:1]):  # a random cycle: nobody keeps its own prompt
                shuffled_metas[k] = metas[j]
    shuffled = [scorer.judge(dets, m)[1] for dets, m in zip(detections, shuffled_metas)]
    same_prompt = {tag: float(np.mean([shuffled_metas[k]["prompt"] == metas[k]["prompt"]
                                       for k in range(len(metas)) if metas[k]["tag"] == tag])) for tag in ge.TAGS}

    def summary(details: list[dict]) -> dict:
        per_tag = {t: float(np.mean([d["correct"] for d in details if d["tag"] == t])) for t in ge.TAGS}
        return {"overall": float(np.mean(list(per_tag.values()))), "per_tag": per_tag}

    # detection diagnostics on the matched renders
    n_obj = found = cls_ok = col_ok = extra = 0
    for dets, objs in zip(detections, truths):
        used = set()
        for o in objs:
            n_obj += 1
            best = max(range(len(dets)), key=lambda k: iou(dets[k].bbox, o["bbox"]), default=None)
            if best is None or iou(dets[best].bbox, o["bbox"]) < 0.5:
                continue
            used.add(best)
            found += 1
            cls_ok += dets[best].label == o["class"]
            col_ok += dets[best].color == o["color"]
        extra += len(dets) - len(used)

    noisy = {}
    g = torch.Generator().manual_seed(args.seed)
    for sigma in args.noise:
        noisy_images = [(im.float() / 255 + sigma * torch.randn(im.shape, generator=g)).clamp(0, 1) for im in images]
        res = scorer.score(noisy_images, metas)
        noisy[str(sigma)] = {"overall": res["overall"], "per_tag": res["per_tag"]}

    m, s = summary(matched), summary(shuffled)
    metrics = {
        "n_images": len(images), "renders_per_prompt": args.renders,
        "matched_overall": m["overall"], "matched_per_tag": m["per_tag"],
        "shuffled_overall": s["overall"], "shuffled_per_tag": s["per_tag"],
        "chance_overall": float(np.mean(list(CHANCE.values()))), "chance_per_tag": CHANCE,
        "chance_derivation": CHANCE_DERIVATION,
        "noisy_matched": noisy,
        "shuffled_same_prompt_share": same_prompt,
        "confusion": {"matched": confusion(matched), "shuffled": confusion(shuffled)},
        "detection": {"objects": n_obj, "recall_iou_0.5": found / n_obj, "class_accuracy_of_found": cls_ok / max(found, 1),
                      "color_accuracy_of_found": col_ok / max(found, 1), "extra_detections": extra},
        "failed_matched_examples": [
            {"index": k, "prompt": d["prompt"], "failed": d["failed"], "reasons": d["reasons"],
             "objects": d["objects"]} for k, d in enumerate(matched) if not d["correct"]][:args.examples],
    }
    write_results(args.json, "geneval_validation", metrics,
                  config={"model": args.model, "scorer": to_dict(scorer.config), "renders": args.renders,
                          "seed": args.seed, "prompts": "softdimo.data.heldout_prompts() (600, 100 per tag)",
                          "world": {"size_px": args.size_px, "layout": args.layout, "slots": args.slots,
                                    "digit_px": args.digit_px}},
                  started=started, seconds=time.time() - t0)
    print(f"matched  overall {m['overall']:.4f} ", {t: round(v, 3) for t, v in m["per_tag"].items()})
    print(f"shuffled overall {s['overall']:.4f} ", {t: round(v, 3) for t, v in s["per_tag"].items()})
    print(f"chance   overall {metrics['chance_overall']:.4f} ", {t: round(v, 4) for t, v in CHANCE.items()})
    for sigma, res in noisy.items():
        print(f"noisy σ={sigma} overall {res['overall']:.4f}")
    print("detection", metrics["detection"])
    for tag, row in metrics["confusion"]["matched"].items():
        print(f"  {tag:14s} matched {row['correct']}/{row['correct'] + row['incorrect']} "
              f"fails {row['failed_rule_counts']}")


if __name__ == "__main__":
    main()
