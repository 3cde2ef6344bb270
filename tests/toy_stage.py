"""A tiny stage for testing the shared training loop without data packages."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from softdimo.pretrained import PretrainedMixin
from softdimo.train import Context, Phase, Tick


@dataclass
class ToyConfig:
    dim: int = 4


class ToyModel(nn.Module, PretrainedMixin):
    config_class = ToyConfig

    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        self.lin = nn.Linear(config.dim, 1)
        self.drop = nn.Dropout(0.2)  # uses the global RNG: exercised by exact resume

    def forward(self, x):
        return self.lin(self.drop(x))


class ToyStage:
    """Regression on a fixed synthetic dataset; one or two phases."""

    def __init__(self, two_phases: bool = False, nan_at: int | None = None):
        self.two_phases = two_phases
        self.nan_at = nan_at

    def setup(self, ctx: Context) -> None:
        self.ctx = ctx
        g = torch.Generator().manual_seed(123)
        self.x = torch.randn(50, 4, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1
        self.model = ToyModel(ToyConfig())
        self.other = nn.Linear(4, 1)

    def loss(self, tick: Tick):
        idx = self.ctx.batch_indices(tick, len(self.x))
        noise = torch.randn(len(idx), 4, generator=self.ctx.generator) * 0.01
        pred = self.model(self.x[idx] + noise).squeeze(-1)
        loss = ((pred - self.y[idx]) ** 2).mean()
        if self.nan_at is not None and tick.step == self.nan_at:
            loss = loss * float("nan")
        return loss, {"mse": loss.item()}

    def loss_other(self, tick: Tick):
        return (self.other(self.x[:8]) ** 2).mean(), {}

    def modules(self):
        return {"model": self.model, "other": self.other}

    def phases(self):
        ph = [Phase("model", self.model, self.loss, lr=0.05)]
        if self.two_phases:
            ph.append(Phase("other", self.other, self.loss_other, lr=0.01, repeats=2))
        return ph

    def ema_modules(self):
        return ["model"]

    def sample(self, models):
        return torch.rand(4, 1, 6, 6, generator=torch.Generator().manual_seed(0))

    def export(self, path: Path, models):
        models["model"].save_pretrained(path)
