"""TTEO and best-of-N on the class-conditional MNIST student, checked by an independent evaluator.

    python benchmarks/tteo_mnist.py --json benchmarks/results/tteo_mnist.json

For ``--per-class`` images of each digit (labels 0–9, fixed seed), the one-step student
``--model`` is sampled plainly and with TTEO / best-of-N (docs/method.md §7) under the attribute
reward (labels read as "a photo of a 3"). Reported per setting (iters, N):

* ``reward``: the mean attribute reward (log-probability) of the returned images — what TTEO and
  the selection optimise;
* ``evaluator_accuracy`` and ``evaluator_confidence``: accuracy and mean softmax probability of the
  requested digit under ``classifier-mnist``, the project's *evaluator* classifier (a different
  network from every reward), so a gain there is not reward hacking;
* ``classifier_score``: the IS-like score of the same classifier (diversity check: 10 = every image
  confidently classified and classes balanced);
* ``seconds``: wall time of the setting.

Every setting starts from the same x_init draws (same seed): ``iters=0, N=1`` is the plain student.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import asdict

import torch

from softdimo.classifier import DigitClassifier
from softdimo.distill import OneStepStudent
from softdimo.eval.domain import classifier_probs, classifier_score
from softdimo.results import now, write_results
from softdimo.rewards import RewardTermConfig, build_composite
from softdimo.tteo import tteo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="checkpoints/dimo-mnist")
    ap.add_argument("--reward", default="checkpoints/reward-attribute-world")
    ap.add_argument("--scale", type=float, default=0.1, help="reward normalisation: R·scale is optimised")
    ap.add_argument("--classifier", default="checkpoints/classifier-mnist")
    ap.add_argument("--per-class", type=int, default=20)
    ap.add_argument("--settings", default="0x1,2x1,4x1,0x4,4x4", help="itersxN, comma-separated")
    ap.add_argument("--lr", type=float, default=0.2)
    ap.add_argument("--temperature", type=float, help="student token temperature (default: its own)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", required=True)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    started, t0 = now(), time.time()
    student = OneStepStudent.from_pretrained(args.model)
    sampler = student.sampler_with(temperature=args.temperature)
    rewards = build_composite([RewardTermConfig(kind="attribute", path=args.reward, normalize="scale",
                                                scale=args.scale)])
    clf = DigitClassifier.from_pretrained(args.classifier).eval()
    labels = torch.arange(10).repeat_interleave(args.per_class)
    metrics: dict = {}
    for setting in args.settings.split(","):
        iters, n = (int(v) for v in setting.split("x"))
        t = time.time()
        res = tteo(student, rewards, labels=labels, iters=iters, lr=args.lr, best_of=n, sampler=sampler,
                   generator=torch.Generator().manual_seed(args.seed))
        seconds = time.time() - t
        probs = classifier_probs(res.images, clf)
        metrics[f"iters{iters}_n{n}"] = {
            "reward": float(res.selected("attribute").mean() / args.scale),
            "evaluator_accuracy": float((probs.argmax(1) == labels).float().mean()),
            "evaluator_confidence": float(probs[torch.arange(len(labels)), labels].mean()),
            "classifier_score": float(classifier_score(res.images, clf)),
            "seconds": seconds}
        print(setting, metrics[f"iters{iters}_n{n}"], flush=True)
    write_results(args.json, "tteo_mnist", metrics,
                  config={"model": args.model, "reward": args.reward, "scale": args.scale, "lr": args.lr,
                          "per_class": args.per_class, "seed": args.seed, "sampler": asdict(sampler), "classifier": args.classifier},
                  started=started, seconds=time.time() - t0)


if __name__ == "__main__":
    main()
