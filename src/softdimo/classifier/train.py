"""`softdimo train-classifier`: the digit classifier as a stage of the shared training loop.

One phase: Adam on the cross-entropy of :class:`~softdimo.classifier.model.DigitClassifier` over
a labelled 1×28×28 dataset (MNIST by default), optionally joined by digit crops cut out of
digit-world *train* scenes (``world_crops.scenes``; see :mod:`softdimo.classifier.crops`). The
data order is the loop's (:meth:`~softdimo.train.Context.batch_indices` over the joined index
space: MNIST first, then the crops); the augmentation of a micro-batch is drawn from a generator
seeded by (seed, step, micro, repeat, rank), so a resumed run sees exactly the same images.

Augmentation (:class:`AugmentConfig`, all batched on the device): a random affine map (shift,
scale, rotation), then with some probability a down-and-up resampling (a digit drawn small, as
in the 32 px world, or by a blurry generator) and a blur. The exported model is the EMA of the
weights when ``train.ema_decay`` is set.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..config import DataConfig, TrainConfig, check_ranges, knob, torch_dtype
from ..data import build_dataset
from ..errors import ConfigError
from ..train import Context, Phase, Tick
from .crops import WorldCropConfig, load_world_crops
from .model import ClassifierConfig, DigitClassifier


@dataclass
class AugmentConfig:
    """Random distortions of every training batch (set ``enabled: false`` for none)."""

    enabled: bool = True
    max_shift_px: float = knob(2.0, ge=0)  # uniform shift in [-s, s] pixels per axis
    scale_range: tuple[float, float] = knob((0.85, 1.15), gt=0)  # uniform zoom factor
    max_rotate_deg: float = knob(12.0, ge=0, le=180)  # uniform rotation in [-r, r] degrees
    lowres_prob: float = knob(0.3, ge=0, le=1)  # probability of resampling an image down to a random side and back up
    lowres_sides: tuple[int, int] = knob((10, 18), ge=2)  # inclusive range of that smaller side (pixels)
    blur_prob: float = knob(0.3, ge=0, le=1)  # probability of mixing an image with its 3×3 box blur
    blur_max_mix: float = knob(0.8, ge=0, le=1)  # the mixing weight is uniform in [0, blur_max_mix]

    def __post_init__(self) -> None:
        check_ranges(self)
        lo, hi = self.scale_range
        if not lo <= hi:
            raise ValueError(f"augment.scale_range must satisfy 0 < lo ≤ hi, got {self.scale_range}")
        a, b = self.lowres_sides
        if not a <= b:
            raise ValueError(f"augment.lowres_sides must satisfy 2 ≤ lo ≤ hi, got {self.lowres_sides}")


def augment(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Distort a batch ``[B, 1, S, S]`` in [0, 1] as configured; draws come from ``generator`` (CPU)."""
    if not cfg.enabled or x.shape[0] == 0:
        return x
    b, _, h, w = x.shape

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return (lo + (hi - lo) * torch.rand(b, generator=generator)).to(x.device)

    angle = uniform(-cfg.max_rotate_deg, cfg.max_rotate_deg) * math.pi / 180
    scale = uniform(*cfg.scale_range)
    tx = uniform(-cfg.max_shift_px, cfg.max_shift_px) * 2 / w
    ty = uniform(-cfg.max_shift_px, cfg.max_shift_px) * 2 / h
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale  # output→input map: zoom in by `scale`
    theta = torch.stack([torch.stack([cos, -sin, tx], -1), torch.stack([sin, cos, ty], -1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    lo, hi = cfg.lowres_sides
    lowres = torch.rand(b, generator=generator) < cfg.lowres_prob
    sides = torch.randint(lo, hi + 1, (b,), generator=generator)
    if lowres.any():
        x = x.clone()
        for side in sides[lowres].unique().tolist():
            sel = (lowres & (sides == side)).nonzero().squeeze(1).to(x.device)
            small = F.interpolate(x[sel], size=(side, side), mode="bilinear", align_corners=False,
                                  antialias=True)
            x[sel] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    mix = torch.rand(b, generator=generator) * cfg.blur_max_mix
    mix = torch.where(torch.rand(b, generator=generator) < cfg.blur_prob, mix, torch.zeros_like(mix))
    blurred = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    m = mix.to(x.device).view(b, 1, 1, 1)
    return (x * (1 - m) + blurred * m).clamp(0, 1)


@dataclass
class ClassifierRunConfig:
    """Config of `softdimo train-classifier` (see configs/mnist/classifier.yaml)."""

    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_steps=3000, batch_size=128, lr=1e-3, ema_decay=0.999, checkpoint_every=1000, sample_every=1000,
        log_every=50))
    data: DataConfig = field(default_factory=DataConfig)  # a labelled 1×28×28 dataset (mnist or fashion)
    model: ClassifierConfig = field(default_factory=ClassifierConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    world_crops: WorldCropConfig = field(default_factory=WorldCropConfig)  # extra digits cut from world scenes
    label_smoothing: float = knob(0.0, ge=0, lt=1)  # cross-entropy label smoothing
    num_sample_images: int = knob(32, ge=1)  # augmented training images shown in each sample grid

    def __post_init__(self) -> None:
        check_ranges(self)


class ClassifierStage:
    """Trains a :class:`DigitClassifier` on ``cfg.data`` (train split) plus optional world crops."""

    def __init__(self, cfg: ClassifierRunConfig):
        self.cfg = cfg

    def setup(self, ctx: Context) -> None:
        self.ctx = ctx
        cfg, m = self.cfg, self.cfg.model
        data = build_dataset(cfg.data, "train")
        if data.num_classes < 2 or data.labels is None:
            raise ConfigError(f"train-classifier needs a labelled dataset; data.dataset={cfg.data.dataset!r} has "
                              f"no class labels. Use mnist or fashion.")
        if (data.channels, data.image_size, data.num_classes) != (m.in_channels, m.image_size, m.num_classes):
            raise ConfigError(
                f"dataset '{data.name}' has {data.channels}-channel {data.image_size}px images in "
                f"{data.num_classes} classes, but model.in_channels={m.in_channels}, "
                f"model.image_size={m.image_size}, model.num_classes={m.num_classes}. Set the model "
                f"fields to match the data.")
        images, labels = [data.images_uint8()], [data.labels]
        if cfg.world_crops.scenes > 0:
            if cfg.data.dataset != "mnist":
                raise ConfigError(f"world_crops.scenes={cfg.world_crops.scenes} adds digit crops, which only "
                                  f"make sense with data.dataset=mnist (got {cfg.data.dataset!r}); set "
                                  f"world_crops.scenes=0.")
            crops = load_world_crops(cfg.world_crops, "train")
            images.append(crops.images_uint8())
            labels.append(crops.labels)
        self.images = torch.cat(images)
        self.labels = torch.cat(labels)  # type: ignore[arg-type]
        self.num_mnist = len(data)
        self.model = DigitClassifier(m).to(ctx.device)
        n_crops = len(self.images) - self.num_mnist
        k_crops = min(cfg.num_sample_images // 2, n_crops)
        k_mnist = min(cfg.num_sample_images - k_crops, self.num_mnist)
        idx = list(range(k_mnist)) + list(range(self.num_mnist, self.num_mnist + k_crops))
        self.fixed = self.images[idx].float() / 255.0

    def _generator(self, tick: Tick) -> torch.Generator:
        key = (((self.cfg.train.seed * 1_000_003 + tick.step) * 131 + tick.micro) * 131 + tick.repeat) * 131
        return torch.Generator().manual_seed(key + self.ctx.rank)

    def batch(self, tick: Tick) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.tensor(self.ctx.batch_indices(tick, len(self.images)))
        x = self.images[idx].to(self.ctx.device).float() / 255.0
        return augment(x, self.cfg.augment, self._generator(tick)), self.labels[idx].to(self.ctx.device)

    def loss(self, tick: Tick) -> tuple[torch.Tensor, dict[str, float]]:
        x, y = self.batch(tick)
        logits = self.model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.cfg.label_smoothing)
        acc = (logits.detach().argmax(-1) == y).float().mean().item()
        return loss, {"acc": acc}

    def modules(self) -> dict[str, nn.Module]:
        return {"classifier": self.model}

    def phases(self) -> list[Phase]:
        return [Phase.from_train("classifier", self.model, self.loss, self.cfg.train)]

    def ema_modules(self) -> list[str]:
        return ["classifier"]

    @torch.no_grad()
    def sample(self, models: dict[str, nn.Module]) -> torch.Tensor:
        """The fixed images (MNIST, then world crops when used) under a fixed augmentation draw."""
        return augment(self.fixed, self.cfg.augment, torch.Generator().manual_seed(0)).cpu()

    def export(self, path: Path, models: dict[str, nn.Module]) -> None:
        models["classifier"].save_pretrained(path, dtype=torch_dtype(self.cfg.train.export_dtype))


def build(cfg: ClassifierRunConfig) -> ClassifierStage:
    return ClassifierStage(cfg)


__all__ = ["AugmentConfig", "ClassifierRunConfig", "ClassifierStage", "augment", "build"]
