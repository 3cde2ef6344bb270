"""The mini-CLIP reward: scaled cosine between an image embedding and the caption's frozen MiniLM embedding.

A CLIP score in miniature for the digit world (docs/method.md §6 names CLIP score among the
rewards; docs/architecture.md §5). The text tower is the frozen all-MiniLM-L6-v2 of
:class:`~softdimo.mdm.text.TextEncoder` (its L2-normalised mean-pooled sentence embedding t(c),
384-d); only the image tower trains.

**Image encoder** (:class:`MiniClipImageEncoder`): a :class:`~softdimo.rewards.backbone.SceneCNN`
→ linear to 384 → L2 normalisation, v(x), plus a learnable logit scale s (CLIP's temperature).

**Training** (``softdimo train-reward --config configs/world/reward_miniclip.yaml``): rendered
world train scenes and their captions. Because the text tower is frozen, the negatives of the
contrastive loss are not limited to the batch: each image's logits are s·v(x)ᵀt(c') over the bank
of **every distinct training caption** c' (≤ 8,690 in the world), with cross-entropy toward its own
caption. This is the image→text half of CLIP's InfoNCE with a complete negative set, and it has no
false negatives from repeated captions in a batch (single-object captions repeat often).

**Reward** (:class:`MiniClipReward`): ``R(x, c) = reward_scale · v(x)ᵀ t(c)`` (``reward_scale``
100: the CLIP-score convention), differentiable in x. MiniLM's mean pooling nearly ignores word
order (cos("a red 3 and a blue 7", "a blue 3 and a red 7") ≈ 0.99), so colour binding and
left/right are weaker signals here than in the attribute reward; see the model card's numbers.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import knob
from ..errors import ConfigError, DataError
from ..mdm.text import FEATURE_DIM, TextEncoder
from ..paths import find_folder
from ..pretrained import PretrainedMixin
from ..train import Context, Tick
from .backbone import BackboneConfig, SceneCNN
from .base import freeze
from .scenes import SceneStage


@dataclass
class MiniClipConfig(BackboneConfig):
    """Architecture of :class:`MiniClipImageEncoder` (backbone knobs plus the embedding and scales)."""

    embed_dim: int = knob(FEATURE_DIM, ge=1)  # must equal the MiniLM sentence embedding (384)
    init_logit_scale: float = knob(10.0, gt=0)  # initial s of the contrastive logits s·cos
    max_logit_scale: float = knob(100.0, gt=0)  # s is clamped to this (as in CLIP)
    reward_scale: float = knob(100.0, gt=0)  # R = reward_scale · cos (the CLIP-score convention)
    text_max_length: int = knob(32, ge=1, le=512)  # MiniLM tokens per caption (world captions need ≤ 16)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.embed_dim != FEATURE_DIM:
            raise ValueError(f"embed_dim must equal the MiniLM embedding size {FEATURE_DIM}, got {self.embed_dim}")
        if not self.init_logit_scale <= self.max_logit_scale:
            raise ValueError("need 0 < init_logit_scale ≤ max_logit_scale")


class MiniClipImageEncoder(nn.Module, PretrainedMixin):
    """Images → unit vectors ``[B, 384]`` in MiniLM's sentence-embedding space (module docstring)."""

    config_class = MiniClipConfig

    def __init__(self, config: MiniClipConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = SceneCNN(config)
        self.proj = nn.Linear(config.hidden, config.embed_dim)
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(config.init_logit_scale)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(self.backbone(images)), dim=-1)

    def logit_scale(self) -> torch.Tensor:
        return self.log_logit_scale.clamp(max=math.log(self.config.max_logit_scale)).exp()


class MiniClipReward(nn.Module):
    """``R(x, c) = reward_scale · cos(v(x), t(c))`` with the frozen MiniLM t (module docstring)."""

    def __init__(self, encoder: MiniClipImageEncoder, text: TextEncoder | None = None, name: str = "miniclip") -> None:
        super().__init__()
        self.encoder = freeze(encoder)
        self.text = text or TextEncoder(max_length=encoder.config.text_max_length, cache_size=16384)
        self.name = name

    @classmethod
    def from_pretrained(cls, path: str | Path, device: torch.device | str = "cpu", **kw: Any) -> "MiniClipReward":
        found = find_folder(str(path), "config.json")
        if found is None:
            raise ConfigError(f"mini-CLIP folder {str(path)!r} not found. Train one with `softdimo train-reward "
                              f"--config configs/world/reward_miniclip.yaml` or use checkpoints/reward-miniclip-world.")
        return cls(MiniClipImageEncoder.from_pretrained(found, map_location=device), **kw)

    def train(self, mode: bool = True) -> "MiniClipReward":
        super().train(mode)
        self.encoder.eval()
        return self

    def text_embeddings(self, prompts: Sequence[str]) -> torch.Tensor:
        """t(c) ``[P, 384]`` (cached per prompt)."""
        _, _, pooled = self.text.encode(list(prompts))
        return pooled.to(self.encoder.proj.weight.device)

    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        if len(prompts) != images.shape[0]:
            raise DataError(f"{images.shape[0]} images but {len(prompts)} prompts; give one prompt per image.")
        v = self.encoder(images)
        return self.encoder.config.reward_scale * (v * self.text_embeddings(prompts)).sum(-1)

    def score_matrix(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """``[B, P]``: every image against every prompt."""
        return self.encoder.config.reward_scale * self.encoder(images) @ self.text_embeddings(prompts).T


# ---------------------------------------------------------------------- training stage
class MiniClipStage(SceneStage):
    """Trains a :class:`MiniClipImageEncoder` against the frozen MiniLM caption bank (module docstring)."""

    NAME = "miniclip"

    def build(self, ctx: Context) -> None:
        m = self.cfg.miniclip
        self.captions = sorted(set(self.scenes.prompts))
        where = {c: i for i, c in enumerate(self.captions)}
        self.caption_idx = torch.tensor([where[p] for p in self.scenes.prompts])
        text = TextEncoder(max_length=m.text_max_length, cache_size=0)
        bank = [text.encode(self.captions[i:i + 512])[2] for i in range(0, len(self.captions), 512)]
        self.bank = torch.cat(bank).to(ctx.device)  # [U, 384], unit rows
        self.model = MiniClipImageEncoder(m).to(ctx.device)

    def loss(self, tick: Tick) -> tuple[torch.Tensor, dict[str, float]]:
        idx, x = self.batch(tick)
        target = self.caption_idx[idx].to(self.ctx.device)
        v = self.model(x)
        logits = self.model.logit_scale() * v @ self.bank.T
        loss = F.cross_entropy(logits, target)
        with torch.no_grad():
            acc = (logits.argmax(-1) == target).float().mean()
            cos = (v * self.bank[target]).sum(-1).mean()
        return loss, {"acc": float(acc), "cos": float(cos), "logit_scale": float(self.model.logit_scale().detach())}


__all__ = ["MiniClipConfig", "MiniClipImageEncoder", "MiniClipReward", "MiniClipStage"]
