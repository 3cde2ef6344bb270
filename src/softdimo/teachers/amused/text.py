"""aMUSEd's conditioning: CLIP prompt encodings plus the micro-conditions, one batch at a time.

The CLIP text encoder's penultimate hidden states and pooled projection
(:class:`AmusedTextEncoder`, frozen, cached per prompt), and the micro-conditions [width, height,
crop top, crop left, aesthetic score] = [W, H, 0, 0, 6] as the aMUSEd pipeline and training
script use them, together an :class:`AmusedCondition`.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn


@dataclass
class AmusedCondition:
    """The conditioning of one batch: CLIP hidden states [B, T, D], pooled projection [B, P], micro-conds [B, 5]."""

    hidden: torch.Tensor
    pooled: torch.Tensor
    micro_conds: torch.Tensor
    labels: None = None  # no class labels (the discriminator heads read this field)

    @property
    def batch_size(self) -> int:
        return int(self.hidden.shape[0])

    def to(self, device: torch.device | str) -> "AmusedCondition":
        return AmusedCondition(self.hidden.to(device), self.pooled.to(device), self.micro_conds.to(device))

    def index(self, idx: torch.Tensor | slice) -> "AmusedCondition":
        """The condition of a subset of the batch."""
        return AmusedCondition(self.hidden[idx], self.pooled[idx], self.micro_conds[idx])

    @staticmethod
    def cat(conds: Sequence["AmusedCondition"]) -> "AmusedCondition":
        """Concatenate along the batch (e.g. conditional + null for one CFG pass)."""
        return AmusedCondition(torch.cat([c.hidden for c in conds]), torch.cat([c.pooled for c in conds]),
                               torch.cat([c.micro_conds for c in conds]))


class AmusedTextEncoder(nn.Module):
    """CLIP tokenizer + frozen ``CLIPTextModelWithProjection``: prompts → (hidden states[-2], text_embeds).

    Encodings are cached per prompt (``cache_size`` most recent), as distillation redraws the
    same prompts many times; the encoder never trains.
    """

    def __init__(self, tokenizer: Any, model: nn.Module, cache_size: int = 1024) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.model = model.eval().requires_grad_(False)
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    def train(self, mode: bool = True) -> "AmusedTextEncoder":
        super().train(mode)
        self.model.eval()  # frozen: always eval
        return self

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> "AmusedTextEncoder":
        self._cache.clear()  # device or dtype changes invalidate the cache
        return super()._apply(fn, *args, **kwargs)

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states [B, T, D] (penultimate layer) and pooled projections [B, P] of ``prompts``."""
        todo = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        if todo:
            device = next(self.model.parameters()).device
            ids = self.tokenizer(todo, padding="max_length", truncation=True,
                                 max_length=self.tokenizer.model_max_length, return_tensors="pt").input_ids
            out = self.model(ids.to(device), return_dict=True, output_hidden_states=True)
            for i, p in enumerate(todo):
                self._cache[p] = (out.hidden_states[-2][i], out.text_embeds[i])
        rows = []
        for p in prompts:
            self._cache.move_to_end(p)
            rows.append(self._cache[p])
        hidden, pooled = torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return hidden, pooled


__all__ = ["AmusedCondition", "AmusedTextEncoder"]
