"""The reward protocol, per-reward normalisation and the weighted composite (docs/method.md §6–§7).

A reward maps images in [0, 1] and their prompts to one score per image, differentiably in the
images (docs/method.md §6: ``R_i(Dec(Emb_Dec(z_θ)), c)``). Everything that consumes rewards —
reward fine-tuning (``L_reward = -Σ_i λ_i R_i``) and TTEO with best-of-N selection — sees only
this protocol, so in-project rewards (mini-CLIP, attribute classifier) and adapters for real
reward models (CLIP score, HPSv2, PickScore, ImageReward in :mod:`softdimo.rewards.adapters`)
are interchangeable.

Scales differ between rewards (a cosine is in [-1, 1], a log-probability is ≤ 0, ImageReward
is roughly N(0, 1)), so each term is normalised before weighting, as docs/method.md §6 suggests
("each normalised to similar scales") [I]:

- :class:`ScaledReward`: ``(R - shift) · scale`` with fixed numbers;
- :class:`RunningZScore`: ``(R - μ) / σ`` with μ, σ an exponential running estimate over the
  batches seen in training mode (frozen in eval mode, e.g. during TTEO).

Best-of-N selection (docs/method.md §7) ranks the N candidates of one prompt by the sum over
rewards of per-reward z-scores computed *across those N candidates* (:func:`zscore_composite`),
which needs no knowledge of the rewards' scales.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import torch
from torch import nn

from ..config import check_ranges, knob
from ..errors import ConfigError

RewardKind = Literal["miniclip", "attribute", "clip_score", "hpsv2", "pickscore", "imagereward"]
IN_PROJECT_KINDS = ("miniclip", "attribute")
ADAPTER_KINDS = ("clip_score", "hpsv2", "pickscore", "imagereward")


@runtime_checkable
class Reward(Protocol):
    """Anything with a ``name`` and a differentiable ``score``.

    ``score(images, prompts)``: ``images`` is ``[B, C, H, W]`` in [0, 1] (C = 1 or 3, any small
    size: a reward resizes and normalises for its own network); ``prompts`` has B strings.
    Returns a float tensor ``[B]`` (higher is better) with gradients flowing into ``images``.
    A reward's own weights are frozen; it never updates them.
    """

    name: str

    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor: ...


@dataclass
class RewardTermConfig:
    """One reward term of a weighted composite (``λ_i R_i`` in docs/method.md §6)."""

    kind: RewardKind = "miniclip"  # which reward model; the last four load local weights through softdimo.rewards.adapters
    path: str = ""  # checkpoint folder (in-project kinds: a train-reward final/ or checkpoints/reward-*; adapters: local weights)
    weight: float = knob(1.0)  # λ_i in L_reward = -Σ_i λ_i R_i and in the best-of-N composite
    normalize: Literal["none", "scale", "zscore"] = "scale"  # per-reward normalisation before weighting
    scale: float = knob(1.0)  # normalize=scale: R ← (R - shift) · scale
    shift: float = knob(0.0)  # normalize=scale: subtracted before scaling
    zscore_momentum: float = knob(0.01, gt=0, le=1)  # normalize=zscore: EMA rate of the running mean/variance
    zscore_eps: float = knob(1e-4, gt=0)  # normalize=zscore: added to the running std
    name: str = ""  # label in logs and score tables (default: kind)

    def __post_init__(self) -> None:
        check_ranges(self)


class ScaledReward(nn.Module):
    """``(R - shift) · scale`` with fixed numbers (e.g. ×100 for a CLIP cosine)."""

    def __init__(self, reward: Reward, scale: float = 1.0, shift: float = 0.0):
        super().__init__()
        self.reward = reward
        self.name = reward.name
        self.scale = float(scale)
        self.shift = float(shift)
        self.last_raw: torch.Tensor | None = None  # raw scores R of the last call, detached (for logging)

    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        raw = self.reward.score(images, prompts)
        self.last_raw = raw.detach()
        return (raw - self.shift) * self.scale


class RunningZScore(nn.Module):
    """``(R - μ) / (σ + eps)`` with μ, σ² exponential running moments of the raw reward.

    The moments update (without gradient) on every call in training mode, with rate
    ``momentum``; the first batch initialises them. In eval mode they are frozen. The division
    uses the moments *before* the current batch's update, detached, so the gradient is
    ``∇R / (σ + eps)``.
    """

    def __init__(self, reward: Reward, momentum: float = 0.01, eps: float = 1e-4):
        super().__init__()
        if not 0.0 < momentum <= 1.0:
            raise ConfigError(f"zscore_momentum must be in (0, 1], got {momentum}.")
        self.reward = reward
        self.name = reward.name
        self.momentum = float(momentum)
        self.eps = float(eps)
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("var", torch.ones(()))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self.last_raw: torch.Tensor | None = None  # raw scores R of the last call, detached (for logging)

    @torch.no_grad()
    def update(self, raw: torch.Tensor) -> None:
        """Fold one batch of raw scores into the running moments."""
        raw = raw.detach().float()
        m, v = raw.mean(), raw.var(unbiased=False) if raw.numel() > 1 else torch.zeros((), device=raw.device)
        if int(self.count) == 0:
            self.mean.copy_(m)
            self.var.copy_(v.clamp_min(self.eps ** 2))
        else:
            a = self.momentum
            delta = m - self.mean
            self.mean.add_(a * delta)
            self.var.mul_(1 - a).add_(a * (v + (1 - a) * delta * delta))
        self.count.add_(1)

    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        raw = self.reward.score(images, prompts)
        self.last_raw = raw.detach()
        first = self.training and int(self.count) == 0
        if first:  # the first training batch initialises the moments
            self.update(raw)
        mean, std = self.mean.clone(), self.var.sqrt().clone()
        if self.training and not first:
            self.update(raw)
        return (raw - mean) / (std + self.eps)


class CompositeReward(nn.Module):
    """``Σ_i λ_i R̂_i`` over normalised reward terms R̂_i (docs/method.md §6).

    :meth:`score` returns the weighted sum ``[B]``; :meth:`score_terms` returns every term's
    normalised score (unweighted) by name, for logging and for best-of-N selection.
    """

    def __init__(self, terms: Sequence[Reward], weights: Sequence[float]):
        super().__init__()
        if len(terms) != len(weights):
            raise ValueError(f"{len(terms)} rewards but {len(weights)} weights")
        if not terms:
            raise ConfigError("a reward composite needs at least one reward term; add one under `rewards:`.")
        names = [t.name for t in terms]
        if len(set(names)) != len(names):
            raise ConfigError(f"reward names must be unique, got {names}; set `name:` on repeated kinds.")
        self.terms = nn.ModuleList([t if isinstance(t, nn.Module) else _Holder(t) for t in terms])
        self._rewards = list(terms)
        self.weights = [float(w) for w in weights]
        self.name = "+".join(names)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self._rewards]

    def score_terms(self, images: torch.Tensor, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        return {r.name: r.score(images, prompts) for r in self._rewards}

    def raw_means(self) -> dict[str, float]:
        """The mean raw (un-normalised) score of each normalised term's last call, by name.

        A running z-score hides whether a reward rises during fine-tuning (its output stays near 0);
        the raw mean shows it. Terms without a normaliser score raw already and are left out.
        """
        raws = {r.name: getattr(r, "last_raw", None) for r in self._rewards}
        return {name: float(raw.float().mean()) for name, raw in raws.items() if raw is not None}

    def combine(self, terms: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Weighted sum of per-term scores returned by :meth:`score_terms`."""
        return sum(w * terms[r.name] for r, w in zip(self._rewards, self.weights))  # type: ignore[return-value]

    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        return self.combine(self.score_terms(images, prompts))


class _Holder(nn.Module):
    """Wraps a non-module reward so that ``.train()/.eval()/.to()`` calls pass over it harmlessly."""

    def __init__(self, reward: Reward):
        super().__init__()
        self.reward = reward
        self.name = reward.name

    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        return self.reward.score(images, prompts)


def normalized(reward: Reward, cfg: RewardTermConfig) -> Reward:
    """Wrap ``reward`` in the normalisation ``cfg.normalize`` asks for."""
    if cfg.normalize == "scale":
        return ScaledReward(reward, cfg.scale, cfg.shift)
    if cfg.normalize == "zscore":
        return RunningZScore(reward, cfg.zscore_momentum, cfg.zscore_eps)
    return reward


def zscore_composite(scores: Mapping[str, torch.Tensor], weights: Mapping[str, float] | None = None,
                     dim: int = 0, eps: float = 1e-6) -> torch.Tensor:
    """Composite selection score of docs/method.md §7: ``Σ_i λ_i (s_i - mean_N s_i) / std_N s_i``.

    ``scores[name]`` has the N candidates along ``dim`` (e.g. ``[N, B]``: N candidates for each
    of B prompts); the mean and (population) std are taken along ``dim``, so each reward counts
    equally whatever its scale. A reward that is constant across the candidates contributes 0.
    Returns a tensor of the scores' shape; ``argmax(dim)`` picks the best candidate.
    """
    total = None
    for name, s in scores.items():
        s = s.detach().float()
        z = (s - s.mean(dim, keepdim=True)) / (s.std(dim, unbiased=False, keepdim=True) + eps)
        w = 1.0 if weights is None else float(weights[name])
        total = w * z if total is None else total + w * z
    if total is None:
        raise ValueError("zscore_composite needs at least one score")
    return total


def freeze(module: nn.Module) -> nn.Module:
    """Put a reward network in eval mode with no trainable parameters."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


__all__ = ["Reward", "RewardKind", "RewardTermConfig", "ScaledReward", "RunningZScore", "CompositeReward",
           "normalized", "zscore_composite", "freeze", "IN_PROJECT_KINDS", "ADAPTER_KINDS"]
