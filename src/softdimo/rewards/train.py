"""`softdimo train-reward`: the in-project reward networks as stages of the shared training loop.

``kind: miniclip`` trains the mini-CLIP image encoder (:mod:`softdimo.rewards.miniclip`),
``kind: attribute`` the attribute classifier (:mod:`softdimo.rewards.attribute`); both read the
first ``data.world_train_size`` digit-world **train** scenes, rendered once at setup. Presets:
``configs/world/reward_miniclip.yaml`` and ``configs/world/reward_attribute.yaml``. The exported
``final/`` folder (config.json + model.safetensors) is what a reward term's ``path`` points to.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..config import DataConfig, TrainConfig, check_ranges, knob
from .attribute import AttributeConfig, AttributeStage
from .miniclip import MiniClipConfig, MiniClipStage
from .scenes import RewardAugmentConfig


@dataclass
class RewardRunConfig:
    """Config of `softdimo train-reward` (see configs/world/reward_*.yaml)."""

    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_steps=2500, batch_size=128, lr=1e-3, warmup_steps=100, ema_decay=0.999, checkpoint_every=1000,
        sample_every=1000, log_every=50))
    kind: Literal["miniclip", "attribute"] = "miniclip"  # which reward network to train
    data: DataConfig = field(default_factory=lambda: DataConfig(dataset="world", world_train_size=30000))
    miniclip: MiniClipConfig = field(default_factory=MiniClipConfig)  # architecture when kind=miniclip
    attribute: AttributeConfig = field(default_factory=AttributeConfig)  # architecture when kind=attribute
    augment: RewardAugmentConfig = field(default_factory=RewardAugmentConfig)
    num_sample_images: int = knob(32, ge=1)  # training scenes shown (augmented) in each sample grid

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.data.dataset != "world":
            raise ValueError(f"train-reward reads digit-world scenes: data.dataset must be 'world', "
                             f"got {self.data.dataset!r}")
        size = self.miniclip.image_size if self.kind == "miniclip" else self.attribute.image_size
        if size != self.data.world_size_px:
            raise ValueError(f"the {self.kind} network reads {size} px canvases but data.world_size_px="
                             f"{self.data.world_size_px}; set {self.kind}.image_size to match")


def build(cfg: RewardRunConfig) -> MiniClipStage | AttributeStage:
    return MiniClipStage(cfg) if cfg.kind == "miniclip" else AttributeStage(cfg)


__all__ = ["RewardRunConfig", "build"]
