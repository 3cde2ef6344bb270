"""Demo stage: the shipped tokenizers reconstruct test images.

For each dataset (MNIST, digit world) the shipped ``tokenizer-<name>`` encodes test images into
its token grid and decodes them back. Before → after is PSNR (dB) on the same test images:
*before* is what the grid alone carries (the image averaged over each token's patch and
upsampled, a continuous value per patch), *after* the tokenizer's ``decode(encode(x))`` (one
of K codes per patch). The picture shows originals, patch means and reconstructions.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..config import DataConfig
from ..data import build_dataset
from ..eval.references import image_batches
from ..paths import checkpoint_dir
from ..tokenizer import VQTokenizer
from ..tokenizer.metrics import reconstruction_metrics
from .budget import DemoBudget
from .stage import Picture, StageResult, Strip, save_strip

DATASETS = ("mnist", "world")
PICTURE_IMAGES = 12


def patch_means(x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``x`` averaged over each cell of ``grid`` and upsampled back (nearest): the grid's own content."""
    return F.interpolate(F.adaptive_avg_pool2d(x, grid), size=x.shape[-2:], mode="nearest")


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean per-image PSNR (dB) of images in [0, 1]."""
    mse = ((a - b) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(1.0 / mse)).mean())


def tokenizer_stage(name: str, results: Path, budget: DemoBudget) -> StageResult:
    """Reconstructions of ``budget.recon_num`` test images by the shipped tokenizer of ``name``."""
    t0 = time.time()
    path = checkpoint_dir(f"tokenizer-{name}")
    tok = VQTokenizer.from_pretrained(path).eval()
    test = build_dataset(DataConfig(dataset=name), "test")
    grid = tuple(tok.grid)
    base_psnr, n = 0.0, 0
    for x in image_batches(test, budget.recon_num, batch_size=250):
        base_psnr += psnr(patch_means(x, grid), x) * len(x)
        n += len(x)
    m = reconstruction_metrics(tok, image_batches(test, budget.recon_num, batch_size=250))
    x = next(image_batches(test, min(PICTURE_IMAGES, budget.recon_num), batch_size=PICTURE_IMAGES))
    with torch.no_grad():
        rec = tok.decode(tok.encode(x))
    h, w = grid
    pic = Picture(f"tokenizer-{name}: test images, the {h}×{w} grid's patch means, reconstructions",
                  [f"test image {i}" for i in range(len(x))],
                  [Strip("test images", save_strip(x, results, f"tokenizer-{name}-originals", len(x))),
                   Strip(f"patch means ({h}×{w})", save_strip(patch_means(x, grid), results,
                                                              f"tokenizer-{name}-patch-means", len(x))),
                   Strip(f"tokenizer-{name} decode(encode(x))",
                         save_strip(rec, results, f"tokenizer-{name}-reconstructions", len(x)))])
    return StageResult(
        name=f"tokenizer_{name}", title=f"Tokenizer ({name}): test images through the {h}×{w} token grid",
        metric="PSNR (dB)", higher_is_better=True, before=base_psnr / max(n, 1), after=float(m["psnr"]),
        before_label=f"patch means of the {h}×{w} grid (a float per patch)",
        after_label=f"tokenizer-{name}: one of K = {tok.num_tokens} codes per patch, decoded",
        evaluator="pixel PSNR on the test split", n=n, pictures=[pic],
        rows=[{"label": f"tokenizer-{name}", "psnr": m["psnr"], "codebook_usage": m["codebook_usage"],
               "perplexity": m["perplexity"], "n": n,
               "evaluators": {"codebook_usage": "share of the K codes used on the test images",
                              "perplexity": "exp(entropy) of the code histogram"}}],
        note="What the token grid keeps of an image: the decoder turns one code per patch into a sharper image "
             "than the patch's mean colour.", seconds=time.time() - t0)


__all__ = ["tokenizer_stage", "patch_means", "psnr", "DATASETS"]
