"""`softdimo train-tokenizer`: the VQ tokenizer as a stage of the shared training loop.

One phase: Adam on the tokenizer's reconstruction + commitment loss (the codebook itself is
updated by EMA inside the quantiser). The exported model is the EMA of the weights when
``train.ema_decay`` is set.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import default_collate

from ..config import DataConfig, TrainConfig, check_ranges, knob, torch_dtype
from ..data import build_dataset
from ..errors import ConfigError
from ..train import Context, Phase, Tick
from .vq import VQConfig, VQTokenizer


@dataclass
class TokenizerRunConfig:
    """Config of `softdimo train-tokenizer` (see configs/mnist/tokenizer.yaml)."""

    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=1e-3, batch_size=64))
    data: DataConfig = field(default_factory=DataConfig)
    model: VQConfig = field(default_factory=VQConfig)
    num_sample_images: int = knob(16, ge=1)  # originals and reconstructions shown in each sample grid

    def __post_init__(self) -> None:
        check_ranges(self)


class TokenizerStage:
    """Trains a :class:`VQTokenizer` on ``cfg.data`` (train split)."""

    def __init__(self, cfg: TokenizerRunConfig):
        self.cfg = cfg

    def setup(self, ctx: Context) -> None:
        self.ctx = ctx
        self.data = build_dataset(self.cfg.data, "train")
        m = self.cfg.model
        if (self.data.channels, self.data.image_size) != (m.in_channels, m.image_size):
            raise ConfigError(
                f"dataset '{self.data.name}' has {self.data.channels}-channel {self.data.image_size}px "
                f"images but model.in_channels={m.in_channels}, model.image_size={m.image_size}. "
                f"Set the model fields to match the data (or use the preset config for it).")
        self.model = VQTokenizer(m).to(ctx.device)
        test = build_dataset(self.cfg.data, "test")
        n = min(self.cfg.num_sample_images, len(test))
        self.fixed = torch.stack([test[i]["image"] for i in range(n)])
        self.grid_nrow = n  # grid: originals on the first row, reconstructions below

    def batch(self, tick: Tick) -> torch.Tensor:
        idx = self.ctx.batch_indices(tick, len(self.data))
        return default_collate([self.data[i] for i in idx])["image"].to(self.ctx.device)

    def loss(self, tick: Tick) -> tuple[torch.Tensor, dict[str, float]]:
        return self.model.training_loss(self.batch(tick))

    def modules(self) -> dict[str, nn.Module]:
        return {"tokenizer": self.model}

    def phases(self) -> list[Phase]:
        return [Phase.from_train("tokenizer", self.model, self.loss, self.cfg.train)]

    def ema_modules(self) -> list[str]:
        return ["tokenizer"]

    @torch.no_grad()
    def sample(self, models: dict[str, nn.Module]) -> torch.Tensor:
        tok = models["tokenizer"]
        was = tok.training
        tok.eval()
        x = self.fixed.to(self.ctx.device)
        rec = tok.decode(tok.encode(x))
        tok.train(was)
        return torch.cat([x, rec]).cpu()

    def export(self, path: Path, models: dict[str, nn.Module]) -> None:
        models["tokenizer"].save_pretrained(path, dtype=torch_dtype(self.cfg.train.export_dtype))


def build(cfg: TokenizerRunConfig) -> TokenizerStage:
    return TokenizerStage(cfg)
