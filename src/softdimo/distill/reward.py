"""The reward term of Soft-Di[M]O (docs/method.md §6): rewards of images decoded from soft embeddings.

From the student's logits z (the same z the Di[M]O loss uses, §4.1), the reward path builds a
differentiable image through the frozen tokenizer decoder, bypassing the quantiser:

``x̂ = Dec(Emb_Dec(z))``, ``Emb_Dec(z) = Cᵀ softmax(z / τ)`` with C the decoder's codebook
(``decode_soft``; ``embedding: soft``), or ``Dec(C[argmax(z+g)])`` forward with the gradient of
``Cᵀ softmax((z+g)/τ_g)`` for the Gumbel straight-through baseline (§4.3; ``embedding: gumbel``).

optionally translated at random by up to ``shift_px`` pixels per image (6.4), and the loss
``L_reward = −mean_b Σ_i λ_i R̂_i(x̂_b, c_b)`` over the configured, normalised reward
terms (:mod:`softdimo.rewards`). The generator objective of ``softdimo refine`` is
``dimo_weight·L_DiMO + w_GAN·L_GAN + w_reward·L_reward``. Class-conditional students are scored with
the prompts of their labels ("a photo of a 3", :func:`~softdimo.rewards.inputs.label_prompts`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F

from ..config import check_ranges, knob
from ..rewards.base import CompositeReward, RewardTermConfig
from ..soft import gumbel_straight_through_probs, soft_probs


@dataclass
class RewardLossConfig:
    """Reward fine-tuning knobs of `softdimo refine` (§6; weights unknown in the sources [I])."""

    terms: list[RewardTermConfig] = field(default_factory=list)  # the rewards R_i with λ_i and normalisation
    w_reward: float = knob(0.0, ge=0)  # w_reward in L = dimo_weight·L_DiMO + w_GAN·L_GAN + w_reward·L_reward
    embedding: Literal["soft", "gumbel"] = "soft"  # soft embedding (§4.1) or Gumbel straight-through (§4.3)
    temperature: float = knob(1.0, gt=0)  # τ of softmax(z/τ) on the reward path (§4.1: 1)
    gumbel_tau: float = knob(1.0, gt=0)  # τ of the Gumbel-softmax backward pass (§4.3: 1)
    shift_px: int = knob(0, ge=0)  # random translation of each reward image by up to ±shift_px pixels (6.4); 0: off

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.w_reward > 0 and not self.terms:
            raise ValueError("reward.w_reward > 0 needs at least one entry in reward.terms "
                             "(e.g. kind: attribute, path: checkpoints/reward-attribute-world)")


def reward_images(bundle, logits: torch.Tensor, cfg: RewardLossConfig,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """``Dec(Emb_Dec(z))`` through ``bundle.decode_soft``: images [B, C, H, W], differentiable in z [B, L, K].

    ``decode_soft(p)`` feeds ``Cᵀ p`` to the decoder, so with ``p = softmax(z/τ)`` this is the soft
    embedding of §4.1, and with the straight-through one-hot ``y_hard − sg(y_soft) + y_soft`` of
    ``softmax((z + g)/τ_g)`` it is the Gumbel baseline of §4.3 (forward: the decoded hard draw).
    """
    k = int(bundle.num_tokens)
    if cfg.embedding == "gumbel":
        p = gumbel_straight_through_probs(logits, k, cfg.gumbel_tau, generator)
    else:
        p = soft_probs(logits, cfg.temperature, num_tokens=k)
    images = bundle.decode_soft(p)
    return random_shift(images, cfg.shift_px, generator) if cfg.shift_px > 0 else images


def random_shift(images: torch.Tensor, max_px: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image translated by its own (dx, dy) ~ U{−max_px … max_px}², edges replicated (6.4); differentiable.

    The rewards then cannot be raised by patterns tied to exact pixel positions, which the student
    could otherwise learn to draw (reward hacking, §6.1).
    """
    b, _, h, w = images.shape
    padded = F.pad(images, (max_px, max_px, max_px, max_px), mode="replicate")
    offsets = torch.randint(0, 2 * max_px + 1, (b, 2), generator=generator).tolist()
    return torch.stack([padded[i, :, oy:oy + h, ox:ox + w] for i, (oy, ox) in enumerate(offsets)])


def reward_loss(rewards: CompositeReward, images: torch.Tensor,
                prompts: Sequence[str]) -> tuple[torch.Tensor, dict[str, float]]:
    """``−mean_b Σ_i λ_i R̂_i``, the mean of every normalised term (logged as ``reward_<name>``) and of its raw
    score (``reward_raw_<name>``, the one to read for progress: a running z-score stays near 0)."""
    terms = rewards.score_terms(images, prompts)
    total = rewards.combine(terms)
    logs = {f"reward_{k}": float(v.detach().float().mean()) for k, v in terms.items()}
    logs["reward"] = float(total.detach().float().mean())
    logs.update({f"reward_raw_{k}": v for k, v in rewards.raw_means().items()})
    return -total.mean(), logs


__all__ = ["RewardLossConfig", "random_shift", "reward_images", "reward_loss"]
