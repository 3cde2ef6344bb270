"""The small CNN both in-project reward networks read scenes with.

Input: any image batch, brought to a world canvas ``[B, 3, S, S]`` by
:func:`~softdimo.rewards.inputs.world_canvas` and centred to [-1, 1]. Then one stage per entry of
``channels``: ``convs_per_stage`` (default 1) × (3×3 conv → GroupNorm → ReLU) and a 2×2 max-pool (32 → 16 → 8 → 4
for three stages). The last map is read two ways and concatenated: its spatial mean (translation
invariant: which digits and colours, how many) and its flattening (where things are: the
attribute reward needs positions); then linear ``hidden`` → ReLU → dropout. GroupNorm (no batch
statistics) keeps the frozen reward a pure function of its weights and of each image alone; it
mostly speeds up training (the count heads otherwise sit on the marginal for hundreds of steps).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import check_ranges, knob
from .inputs import _background as _bg, world_canvas


@dataclass
class BackboneConfig:
    """Architecture of the scene CNN (shared by the mini-CLIP image encoder and the attribute classifier)."""

    image_size: int = knob(32, ge=1)  # world canvas side the network reads (images are resized / pasted to it)
    channels: tuple[int, ...] = knob((32, 64, 128), ge=1)  # conv width of each stage (each ends in a 2× max-pool)
    convs_per_stage: int = knob(1, ge=1)  # 3×3 conv + ReLU layers per stage
    hidden: int = knob(512, ge=1)  # width of the feature vector after the flatten
    dropout: float = knob(0.1, ge=0, lt=1)  # dropout on the features (training only)
    norm_groups: int = knob(8, ge=0)  # GroupNorm groups after every conv (0 = no normalisation)

    def __post_init__(self) -> None:
        check_ranges(self)
        if not self.channels:
            raise ValueError("channels must be a non-empty tuple of positive ints")
        if self.image_size // 2 ** len(self.channels) < 1:
            raise ValueError(f"image_size {self.image_size} is too small for {len(self.channels)} poolings")
        if self.norm_groups and any(c % self.norm_groups for c in self.channels):
            raise ValueError(f"norm_groups must be 0 or divide every entry of channels {self.channels}, "
                             f"got {self.norm_groups}")


def _background(x: torch.Tensor) -> torch.Tensor:
    return _bg(x.device, x.dtype)


class SceneCNN(nn.Module):
    """Images → features ``[B, hidden]`` (module docstring)."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.image_size = cfg.image_size
        layers: list[nn.Module] = []
        c_in, side = 4, cfg.image_size
        for c in cfg.channels:
            for _ in range(cfg.convs_per_stage):
                layers.append(nn.Conv2d(c_in, c, 3, padding=1))
                if cfg.norm_groups:
                    layers.append(nn.GroupNorm(cfg.norm_groups, c))
                layers.append(nn.ReLU())
                c_in = c
            layers.append(nn.MaxPool2d(2))
            side //= 2
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Linear(c_in * (side * side + 1), cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = world_canvas(images, self.image_size)
        ink = (x - _background(x)).abs().amax(1, keepdim=True)  # colour-invariant digit shape
        h = self.conv(torch.cat([x * 2 - 1, ink * 2 - 1], dim=1))
        return self.fc(torch.cat([h.mean((2, 3)), h.flatten(1)], dim=1))


__all__ = ["BackboneConfig", "SceneCNN"]
