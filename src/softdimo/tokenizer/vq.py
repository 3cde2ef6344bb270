"""The VQ image tokenizer: ``encode`` images to token grids, ``decode`` / ``decode_soft`` back.

A small convolutional VQ-VAE (van den Oord et al., 2017) with an EMA codebook
(:mod:`softdimo.tokenizer.quantizer`). It implements the tokenizer half of the Teacher protocol
(docs/architecture.md §3) and the differentiable decoding of docs/method.md §4.1 / §6:

    decode(ids)    = Dec(E[ids])            (codebook lookup, then the decoder)
    decode_soft(p) = Dec(p @ E)             (soft latent Emb_Dec(z) = E^T p, bypassing the quantiser)

with E = :meth:`VQTokenizer.codebook`. Both run the same decoder on a [B, d, h, w] latent, so
``decode_soft(one_hot(ids)) == decode(ids)`` up to float rounding. Images are [B, C, H, W] in
[0, 1]; the decoder ends in a sigmoid so every output is in [0, 1]. The training loss is
``l1_weight·|x̂-x| + mse_weight·(x̂-x)² + commitment_weight·||z_e - sg(e)||²`` (L1 keeps strokes
sharp, MSE fixes the overall intensity).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check_ranges, knob
from ..errors import ConfigError, DataError
from ..pretrained import PretrainedMixin
from .quantizer import EMAVectorQuantizer


@dataclass
class VQConfig:
    """Architecture and loss knobs of :class:`VQTokenizer`."""

    in_channels: int = knob(1, ge=1)  # image channels (1 grey, 3 RGB)
    image_size: int = knob(28, ge=1)  # square input side in pixels; must be divisible by 2**(len(channel_mult)-1)
    base_channels: int = knob(32, ge=1)  # width of the full-resolution level
    channel_mult: tuple[int, ...] = knob((1, 2, 2), ge=1)  # width multiplier per level; len-1 = number of 2× downsamplings
    num_res_blocks: int = knob(1, ge=0)  # residual blocks per level (encoder and decoder)
    mid_res_blocks: int = knob(1, ge=0)  # extra residual blocks at the token resolution (encoder and decoder)
    norm_groups: int = knob(8, ge=1)  # GroupNorm groups (must divide every level's width)
    codebook_size: int = knob(512, ge=2)  # K, number of image tokens
    codebook_dim: int = knob(16, ge=1)  # d, size of one code vector (what decode_soft averages)
    commitment_weight: float = knob(0.25, ge=0)  # β of the commitment loss ||z_e - sg(e)||²
    ema_decay: float = knob(0.99, gt=0, lt=1)  # EMA decay of the codebook statistics
    ema_eps: float = knob(1e-5, gt=0)  # Laplace smoothing of the EMA cluster sizes
    dead_code_threshold: float = knob(0.03, ge=0)  # restart codes whose usage share < this × 1/K (0 = never)
    code_sampling: Literal["uniform", "error"] = "uniform"  # where initial/restarted codes go (quantizer docstring)
    l1_weight: float = knob(1.0, ge=0)  # weight of the pixel L1 reconstruction loss
    mse_weight: float = knob(1.0, ge=0)  # weight of the pixel MSE reconstruction loss

    def __post_init__(self) -> None:
        check_ranges(self)
        if not self.channel_mult:
            raise ConfigError(f"channel_mult must be a non-empty tuple of positive ints, got {self.channel_mult}")
        down = 2 ** (len(self.channel_mult) - 1)
        if self.image_size % down:
            raise ValueError(f"image_size {self.image_size} is not divisible by {down} "
                             f"(2**(len(channel_mult)-1)); change image_size or channel_mult")
        for m in self.channel_mult:
            if (self.base_channels * m) % self.norm_groups:
                raise ValueError(f"norm_groups {self.norm_groups} does not divide width "
                                 f"{self.base_channels * m}")

    @property
    def grid(self) -> tuple[int, int]:
        s = self.image_size // 2 ** (len(self.channel_mult) - 1)
        return (s, s)


class ResBlock(nn.Module):
    """GroupNorm → SiLU → 3×3 conv, twice, plus a (1×1-projected) skip."""

    def __init__(self, c_in: int, c_out: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Encoder(nn.Module):
    """Image [B, C, H, W] in [0, 1] → continuous latent [B, d, h, w]."""

    def __init__(self, cfg: VQConfig) -> None:
        super().__init__()
        widths = [cfg.base_channels * m for m in cfg.channel_mult]
        g = cfg.norm_groups
        layers: list[nn.Module] = [nn.Conv2d(cfg.in_channels, widths[0], 3, padding=1)]
        c = widths[0]
        for i, w in enumerate(widths):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResBlock(c, w, g))
                c = w
            if i < len(widths) - 1:
                layers.append(nn.Conv2d(c, c, 4, stride=2, padding=1))
        for _ in range(cfg.mid_res_blocks):
            layers.append(ResBlock(c, c, g))
        layers += [nn.GroupNorm(g, c), nn.SiLU(), nn.Conv2d(c, cfg.codebook_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2 - 1)


class Decoder(nn.Module):
    """Latent [B, d, h, w] → image [B, C, H, W] in [0, 1] (sigmoid output)."""

    def __init__(self, cfg: VQConfig) -> None:
        super().__init__()
        widths = [cfg.base_channels * m for m in cfg.channel_mult][::-1]
        g = cfg.norm_groups
        c = widths[0]
        layers: list[nn.Module] = [nn.Conv2d(cfg.codebook_dim, c, 3, padding=1)]
        for _ in range(cfg.mid_res_blocks):
            layers.append(ResBlock(c, c, g))
        for i, w in enumerate(widths):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResBlock(c, c, g))
            if i < len(widths) - 1:  # upsample, and narrow to the next (finer) level's width
                c_next = widths[i + 1]
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c_next, 3, padding=1)]
                c = c_next
        layers += [nn.GroupNorm(g, c), nn.SiLU(), nn.Conv2d(c, cfg.in_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(z))


class VQTokenizer(nn.Module, PretrainedMixin):
    """Convolutional VQ-VAE tokenizer: images ↔ grids of ``num_tokens``-way token ids.

    ``training_loss(images)`` (also reachable as ``forward(images)``, so a DDP/accelerate
    wrapper can drive it) returns the loss and a dict of float logs; in training mode it also
    updates the EMA codebook.
    """

    config_class = VQConfig

    def __init__(self, config: VQConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.quantizer = EMAVectorQuantizer(config.codebook_size, config.codebook_dim,
                                            decay=config.ema_decay, eps=config.ema_eps,
                                            dead_threshold=config.dead_code_threshold,
                                            code_sampling=config.code_sampling)
        self.decoder = Decoder(config)

    # ------------------------------------------------------------------ protocol
    @property
    def grid(self) -> tuple[int, int]:
        """Token grid (h, w) of one image."""
        return self.config.grid

    @property
    def num_tokens(self) -> int:
        """Codebook size K."""
        return self.config.codebook_size

    def codebook(self) -> torch.Tensor:
        """The [K, d] code vectors the decoder consumes (E in decode_soft's ``p @ E``)."""
        return self.quantizer.embedding

    # ------------------------------------------------------------------ input checks
    def _check_images(self, images: torch.Tensor) -> None:
        c, s = self.config.in_channels, self.config.image_size
        if not isinstance(images, torch.Tensor) or images.dim() != 4:
            got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise DataError(f"the tokenizer expects a batch of images [B, {c}, {s}, {s}] with values "
                            f"in [0, 1], got {got}. Add the batch/channel dimensions (e.g. "
                            f"x[:, None] for grey images).")
        if images.shape[1] != c:
            raise DataError(f"the tokenizer was built for {c}-channel images but got "
                            f"{images.shape[1]} channels (shape {tuple(images.shape)}). Use a "
                            f"tokenizer trained on this data, or convert the images "
                            f"({'x.mean(1, keepdim=True)' if c == 1 else 'x.expand(-1, 3, -1, -1)'}).")
        if tuple(images.shape[2:]) != (s, s):
            raise DataError(f"the tokenizer expects {s}×{s} images but got "
                            f"{images.shape[2]}×{images.shape[3]}. Resize the images to {s}×{s} "
                            f"(or train a tokenizer with image_size={images.shape[2]}).")
        if not images.is_floating_point():
            raise DataError(f"the tokenizer expects float images in [0, 1], got dtype "
                            f"{images.dtype}. Convert with images.float() / 255.")

    def _grid_layout(self, x: torch.Tensor, trailing: int, what: str) -> torch.Tensor:
        """Reshape [B, L, ...] to [B, h, w, ...] (or check [B, h, w, ...])."""
        h, w = self.grid
        lead = x.shape[: x.dim() - trailing]
        if len(lead) == 2 and lead[1] == h * w:
            return x.reshape(lead[0], h, w, *x.shape[x.dim() - trailing:])
        if len(lead) == 3 and tuple(lead[1:]) == (h, w):
            return x
        raise DataError(f"{what} must be [B, {h}, {w}{', K' if trailing else ''}] or "
                        f"[B, {h * w}{', K' if trailing else ''}] for this tokenizer (grid {h}×{w}), "
                        f"got {tuple(x.shape)}.")

    # ------------------------------------------------------------------ encode / decode
    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] in [0, 1] → token ids, long [B, h, w]."""
        self._check_images(images)
        z = self.encoder(images)
        b, d, h, w = z.shape
        ids = self.quantizer.nearest(z.permute(0, 2, 3, 1).reshape(-1, d).float())
        return ids.view(b, h, w)

    def decode_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Continuous latent [B, h, w, d] (code vectors or their averages) → images in [0, 1]."""
        return self.decoder(z.permute(0, 3, 1, 2).contiguous())

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids [B, h, w] or [B, L] → images [B, C, H, W] in [0, 1]."""
        if ids.is_floating_point():
            raise DataError(f"decode takes integer token ids, got dtype {ids.dtype}; for "
                            f"probabilities over the K={self.num_tokens} tokens use decode_soft.")
        ids = self._grid_layout(ids, 0, "token ids")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.num_tokens):
            raise DataError(f"token ids must be in [0, {self.num_tokens - 1}] (the mask id is not "
                            f"decodable), got range [{int(ids.min())}, {int(ids.max())}].")
        return self.decode_latent(F.embedding(ids.long(), self.codebook()))

    def decode_soft(self, p: torch.Tensor) -> torch.Tensor:
        """Token probabilities [B, h, w, K] or [B, L, K] → images, differentiable in ``p``.

        Implements ``Dec(E^T p)`` (docs/method.md §6): the expected code vector per position is
        fed to the decoder, bypassing the quantiser; ``decode_soft(one_hot(ids)) == decode(ids)``.
        """
        if p.shape[-1] != self.num_tokens:
            raise DataError(f"decode_soft expects probabilities over the K={self.num_tokens} image "
                            f"tokens in the last dimension, got shape {tuple(p.shape)}. Drop the "
                            f"mask class and renormalise before calling it.")
        p = self._grid_layout(p, 1, "token probabilities")
        e = self.codebook()
        return self.decode_latent(p.to(e.dtype) @ e)

    # ------------------------------------------------------------------ training
    def reconstruct(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(decode(encode(images)), ids)`` without updating the codebook."""
        ids = self.encode(images)
        return self.decode(ids), ids

    def training_loss(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Reconstruction + commitment loss of one batch, and float logs.

        In training mode this also updates the EMA codebook and restarts dead codes.
        Logs: ``loss``, ``recon_l1``, ``recon_mse``, ``psnr``, ``commitment``, ``perplexity``,
        ``usage`` (fraction of the K codes used in the batch), ``restarted`` (dead codes restarted).
        """
        self._check_images(images)
        cfg = self.config
        z = self.encoder(images)
        b, d, h, w = z.shape
        q = self.quantizer(z.permute(0, 2, 3, 1).reshape(-1, d))
        recon = self.decode_latent(q.z_q.view(b, h, w, d))
        l1 = (recon - images).abs().mean()
        mse = (recon - images).pow(2).mean()
        loss = cfg.l1_weight * l1 + cfg.mse_weight * mse + cfg.commitment_weight * q.commitment
        m = float(mse.detach())
        logs = {"loss": float(loss.detach()), "recon_l1": float(l1.detach()), "recon_mse": m,
                "psnr": 10 * math.log10(1.0 / max(m, 1e-10)),
                "commitment": float(q.commitment.detach()), "perplexity": q.perplexity,
                "usage": q.usage, "restarted": float(q.restarted)}
        return loss, logs

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Same as :meth:`training_loss` (so wrapped models can be called directly)."""
        return self.training_loss(images)
