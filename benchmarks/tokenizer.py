"""Tokenizer benchmark: PSNR, codebook usage, perplexity and rFID against the real floor.

    python benchmarks/tokenizer.py --model checkpoints/tokenizer-mnist --dataset mnist \
        --n 2000 --json benchmarks/results/tokenizer_mnist.json
    python benchmarks/tokenizer.py --model checkpoints/tokenizer-world \
        --data-config configs/world/tokenizer.yaml --json benchmarks/results/tokenizer_world.json

``rfid``: FID (standard Inception) between reconstructions of test[:N] and the originals;
``rfid_floor``: FID between test[:N] and train[:N] (two disjoint real samples of the same N).
PSNR, usage and perplexity are computed on the whole test split.
"""
from __future__ import annotations

import argparse
import time

import torch

from softdimo.config import DataConfig, load_data_config, to_dict
from softdimo.data import build_dataset
from softdimo.eval.fid import extract_features, fid_from_features
from softdimo.eval.inception import InceptionFeatures
from softdimo.eval.references import image_batches, real_stats
from softdimo.results import now, write_results
from softdimo.tokenizer import VQTokenizer
from softdimo.tokenizer.metrics import reconstruction_metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--dataset", choices=["mnist", "fashion", "world"])
    ap.add_argument("--data-config", help="YAML whose data: section is the dataset (e.g. configs/world/tokenizer.yaml)")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--json", required=True)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    started, t0 = now(), time.time()
    if (args.dataset is None) == (args.data_config is None):
        ap.error("give one of --dataset and --data-config")
    data = load_data_config(args.data_config) if args.data_config else DataConfig(dataset=args.dataset)
    test = build_dataset(data, "test")
    tok = VQTokenizer.from_pretrained(args.model).eval()
    metrics = reconstruction_metrics(tok, image_batches(test, len(test), batch_size=250))

    ext = InceptionFeatures()
    real = real_stats(data, "test", args.n, ext)
    floor_ref = real_stats(data, "train", args.n, ext)

    @torch.no_grad()
    def recon_batches():
        for x in image_batches(test, args.n, batch_size=50):
            yield tok.decode(tok.encode(x))

    rec_feats = extract_features(recon_batches(), ext, batch_size=50, desc="reconstructions")
    metrics.update({
        "rfid": fid_from_features(rec_feats, real.features),
        "rfid_floor": fid_from_features(floor_ref.features, real.features),
        "n": args.n,
        "evaluator": ext.evaluator_id,
    })
    metrics["rfid_over_floor"] = metrics["rfid"] / metrics["rfid_floor"]
    write_results(args.json, f"tokenizer_{data.dataset}", metrics,
                  config={"model": args.model, "tokenizer": to_dict(tok.config), "data": to_dict(data)},
                  started=started, seconds=time.time() - t0)
    print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()})


if __name__ == "__main__":
    main()
