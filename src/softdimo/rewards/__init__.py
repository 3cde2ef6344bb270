"""Differentiable rewards for reward fine-tuning and TTEO (docs/method.md §6–§7).

:func:`build_reward` turns one :class:`RewardTermConfig` into a normalised :class:`Reward`;
:func:`build_composite` turns a list of them into the weighted sum ``Σ_i λ_i R_i``.
In-project rewards (``miniclip``, ``attribute``) load from a ``softdimo train-reward`` folder;
the real reward models (``clip_score``, ``hpsv2``, ``pickscore``, ``imagereward``) load local
weights through :func:`softdimo.rewards.adapters.load_adapter`.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import ConfigError
from .attribute import AttributeReward
from .base import (ADAPTER_KINDS, IN_PROJECT_KINDS, CompositeReward, Reward, RewardTermConfig, RunningZScore,
                   ScaledReward, normalized, zscore_composite)
from .miniclip import MiniClipReward


def _load_raw(cfg: RewardTermConfig, device: torch.device | str) -> Reward:
    if cfg.kind in IN_PROJECT_KINDS:
        if not cfg.path:
            raise ConfigError(f"reward '{cfg.kind}' needs `path:`: a folder written by `softdimo train-reward` "
                              f"(e.g. checkpoints/reward-{cfg.kind}-world).")
        if cfg.kind == "miniclip":
            return MiniClipReward.from_pretrained(cfg.path, device=device)
        return AttributeReward.from_pretrained(cfg.path, device=device)
    if cfg.kind in ADAPTER_KINDS:
        try:  # optional: the adapters of real reward models (transformers) may be absent from an installation
            from .adapters import load_adapter  # type: ignore[attr-defined]
        except ImportError as e:
            raise ConfigError(f"reward kind '{cfg.kind}' needs softdimo.rewards.adapters.load_adapter, which is not "
                              f"available in this installation ({e}). Use kind miniclip or attribute.") from e
        return load_adapter(cfg.kind, cfg.path, device)
    raise ConfigError(f"unknown reward kind '{cfg.kind}'; choose one of "
                      f"{', '.join(IN_PROJECT_KINDS + ADAPTER_KINDS)}.")


def build_reward(cfg: RewardTermConfig, device: torch.device | str = "cpu") -> Reward:
    """Load the reward of one term, rename it to ``cfg.name`` if set, and normalise it."""
    raw = _load_raw(cfg, device)
    if cfg.name:
        raw.name = cfg.name
    out = normalized(raw, cfg)
    if isinstance(out, torch.nn.Module):
        out.to(device)
    return out


def build_composite(cfgs: Sequence[RewardTermConfig], device: torch.device | str = "cpu") -> CompositeReward:
    """``Σ_i λ_i R̂_i`` of the configured terms (weights = ``cfg.weight``)."""
    if not cfgs:
        raise ConfigError("no reward terms configured; add at least one entry under `rewards:` "
                          "(e.g. kind: miniclip, path: checkpoints/reward-miniclip-world).")
    return CompositeReward([build_reward(c, device) for c in cfgs], [c.weight for c in cfgs])


__all__ = ["Reward", "RewardTermConfig", "ScaledReward", "RunningZScore", "CompositeReward", "build_reward",
           "build_composite", "normalized", "zscore_composite"]
