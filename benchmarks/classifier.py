"""Evaluator-classifier benchmark: test accuracy, and (MNIST) accuracy on digit crops of world test scenes.

    python benchmarks/classifier.py --model checkpoints/classifier-mnist \
        --json benchmarks/results/classifier_mnist.json
    python benchmarks/classifier.py --dataset fashion   # classifier-fashion -> classifier_fashion.json

``--dataset fashion`` measures the Fashion-MNIST classifier on its test split (``fashion_test_*``); the
world crops are digits and are left out.

* ``mnist_test_accuracy`` (``fashion_test_accuracy``): argmax accuracy on all 10,000 test images (as
  stored, no augmentation);
* ``world_crop_accuracy``: argmax accuracy on every digit of the first ``--world-scenes``
  digit-world *test* scenes (``world_seed`` 0, 32 px, the layout of ``--world-layout``, default
  the world's slots layout; their digits come from MNIST test): each
  digit is cut out with its ground-truth box, turned into a grey ink map (distance from the
  background, foreground threshold 0.1) and framed like MNIST (``softdimo.classifier.crops``),
  exactly the input the GenEval-like scorer gives the classifier;
* per-class accuracies, mean confidence, and the share of crops above GenEval's 0.3 and 0.9
  confidence thresholds.
"""
from __future__ import annotations

import argparse
import time

import torch

from softdimo.classifier import SHIPPED_BY_DATASET, DigitClassifier, WorldCropConfig
from softdimo.classifier.crops import world_crops
from softdimo.config import DataConfig, to_dict
from softdimo.data import build_dataset
from softdimo.results import now, write_results


def accuracy_report(model: DigitClassifier, images: torch.Tensor, labels: torch.Tensor, prefix: str) -> dict:
    probs = model.predict_proba(images)
    conf, pred = probs.max(1)
    hit = pred == labels
    out = {f"{prefix}_accuracy": hit.float().mean().item(), f"{prefix}_n": int(labels.numel()),
           f"{prefix}_mean_confidence": conf.mean().item(),
           f"{prefix}_share_conf_gt_0.3": (conf > 0.3).float().mean().item(),
           f"{prefix}_share_correct_and_conf_gt_0.9": (hit & (conf > 0.9)).float().mean().item(),
           f"{prefix}_per_class_accuracy": {str(c): hit[labels == c].float().mean().item() for c in range(10)}}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=sorted(SHIPPED_BY_DATASET), default="mnist",
                    help="the classifier's dataset: picks the default --model and --json")
    ap.add_argument("--model", help="classifier folder (default checkpoints/classifier-DATASET)")
    ap.add_argument("--json", help="results file (default benchmarks/results/classifier_DATASET.json)")
    ap.add_argument("--world-scenes", type=int, default=10000)
    ap.add_argument("--world-layout", choices=("slots", "free"), default="slots",
                    help="layout of the world scenes the crops are cut from (data.world_layout)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    args.model = args.model or f"checkpoints/{SHIPPED_BY_DATASET[args.dataset]}"
    args.json = args.json or f"benchmarks/results/classifier_{args.dataset}.json"
    if args.threads:
        torch.set_num_threads(args.threads)
    started, t0 = now(), time.time()
    model = DigitClassifier.from_pretrained(args.model).eval()
    test = build_dataset(DataConfig(dataset=args.dataset), "test")
    metrics = accuracy_report(model, test.images_uint8(), test.labels, f"{args.dataset}_test")
    config = {"model": args.model, "dataset": args.dataset, "classifier": to_dict(model.config)}
    if args.dataset == "mnist":
        crop_cfg = WorldCropConfig(scenes=args.world_scenes, size_px=32, seed=0, layout=args.world_layout)
        images, labels = world_crops(crop_cfg, "test")
        metrics.update(accuracy_report(model, images, labels, "world_crop"))
        metrics["world_scenes"] = args.world_scenes
        config.update(world_crops=to_dict(crop_cfg), world_split="test")
    write_results(args.json, f"classifier_{args.dataset}", metrics, config=config,
                  started=started, seconds=time.time() - t0)
    print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()
           if not isinstance(v, dict)})


if __name__ == "__main__":
    main()
