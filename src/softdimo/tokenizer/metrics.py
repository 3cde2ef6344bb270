"""Reconstruction metrics of a tokenizer: PSNR, codebook usage and code perplexity."""
from __future__ import annotations

import math
from typing import Iterable

import torch

from .vq import VQTokenizer


@torch.no_grad()
def reconstruction_metrics(tokenizer: VQTokenizer, batches: Iterable[torch.Tensor]) -> dict[str, float]:
    """Metrics over all images of ``batches`` ([B,C,H,W] in [0,1]).

    ``psnr``: mean over images of 10·log10(1/MSE); ``codebook_usage``: fraction of the K codes
    used at least once; ``perplexity``: exp of the entropy of the code histogram (K = all codes
    used equally often).
    """
    tokenizer.eval()
    device = next(tokenizer.parameters()).device
    counts = torch.zeros(tokenizer.num_tokens, dtype=torch.float64)
    psnr_sum, n = 0.0, 0
    for x in batches:
        x = x.to(device).float()
        ids = tokenizer.encode(x)
        rec = tokenizer.decode(ids)
        mse = ((rec - x) ** 2).flatten(1).mean(1).clamp_min(1e-10)
        psnr_sum += float((10 * torch.log10(1.0 / mse)).sum())
        n += len(x)
        counts += torch.bincount(ids.flatten().cpu(), minlength=tokenizer.num_tokens).double()
    p = counts / counts.sum()
    entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
    return {"psnr": psnr_sum / max(n, 1), "codebook_usage": float((counts > 0).double().mean()),
            "perplexity": math.exp(entropy), "n_images": n}
