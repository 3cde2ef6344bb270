"""Exponential moving average of model weights.

``ema ← d·ema + (1−d)·θ`` after every optimiser step, with the Di[M]O code's warm-up
``d_s = min(d, (1+s)/(10+s))`` (docs/method.md §3.7). Buffers (e.g. a VQ codebook's EMA statistics) are
copied from the live model, not averaged.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """An EMA copy of a module, updated in place."""

    def __init__(self, model: nn.Module, decay: float, warmup: bool = True):
        self.decay = decay
        self.warmup = warmup
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def rate(self, step: int) -> float:
        """Decay used at optimiser step ``step`` (0-based count of completed updates)."""
        return min(self.decay, (1 + step) / (10 + step)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = self.rate(step)
        for e, p in zip(self.model.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1.0 - d)
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)
