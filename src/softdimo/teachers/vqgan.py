"""The taming-transformers VQGAN (Esser et al.) as softdimo's image tokenizer, weight for weight.

The released MaskGIT (MaskGIT-pytorch / Halton-MaskGIT v1.0) tokenizes ImageNet with taming's
VQGAN: f16, K = 1024 codes of 256 channels, 256×256 RGB. This module is softdimo's own
implementation of that network, with the module tree of the published ``last.ckpt``, so its
``state_dict`` loads key for key (``strict``), without renaming or reshaping:

* ``encoder``: ``conv_in``, ``down.{level}.block.{i}`` (ResnetBlock: ``norm1``, ``conv1``,
  ``norm2``, ``conv2``, ``nin_shortcut`` when the width changes), ``down.{level}.attn.{i}`` at the
  resolutions of ``attn_resolutions`` (AttnBlock: ``norm``, ``q``, ``k``, ``v``, ``proj_out``, 1×1
  convolutions), ``down.{level}.downsample.conv`` (3×3, stride 2, pad right/bottom by 1), ``mid``
  (``block_1``, ``attn_1``, ``block_2``), ``norm_out``, ``conv_out``;
* ``decoder``: ``conv_in``, ``mid``, ``up.{level}.block.{i}`` (``num_res_blocks + 1`` per level),
  ``up.{level}.attn.{i}``, ``up.{level}.upsample.conv`` (nearest ×2 then 3×3), ``norm_out``,
  ``conv_out``; levels run from the deepest to level 0;
* ``quantize.embedding`` (the K × embed_dim codebook), ``quant_conv`` and ``post_quant_conv`` (1×1).

Every GroupNorm has 32 groups and eps 1e-6, the activation is swish, attention is single-head
over the h·w positions (scale C^-½). The checkpoint's training-loss weights (``loss.*``:
discriminator and LPIPS) are not part of the network.

Tokenizer surface (the one :class:`~softdimo.tokenizer.VQTokenizer` offers): images are in
[0, 1] (the network reads and writes [−1, 1]); ``encode`` → ids [B, h, w] (nearest code in squared
distance), ``decode(ids)`` (codebook lookup → ``post_quant_conv`` → decoder), ``decode_soft(p)``
(``p @ codebook`` into the same path, differentiable in p; equal to ``decode`` on one-hot p),
``decode_latent``, ``codebook``, ``grid``, ``num_tokens``, ``image_shape``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check_ranges, knob
from ..errors import ConfigError, DataError
from ..pretrained import PretrainedMixin

GROUPS = 32  # taming's Normalize: GroupNorm(32, C, eps=1e-6)


@dataclass
class VQGANConfig:
    """taming's ``model.params`` (``embed_dim``, ``n_embed``) and ``ddconfig`` under their own names.

    Defaults: the ImageNet f16 VQGAN with K = 1024 that MaskGIT uses.
    """

    embed_dim: int = knob(256, ge=1)  # channels of a code vector
    n_embed: int = knob(1024, ge=2)  # K, the number of codes
    ch: int = knob(128, ge=1)  # base width
    ch_mult: list[int] = knob(default_factory=lambda: [1, 1, 2, 2, 4], ge=1)  # width per level; f = 2^(levels − 1)
    num_res_blocks: int = knob(2, ge=1)  # ResnetBlocks per encoder level (decoder: one more)
    attn_resolutions: list[int] = knob(default_factory=lambda: [16], ge=1)  # feature sizes that get an AttnBlock
    dropout: float = knob(0.0, ge=0, lt=1)
    resamp_with_conv: bool = True  # convolutional down/up-sampling (else average pooling / plain upsampling)
    in_channels: int = knob(3, ge=1)
    out_ch: int = knob(3, ge=1)
    resolution: int = knob(256, ge=1)  # image side the attention resolutions refer to (fixes where AttnBlocks sit)
    z_channels: int = knob(256, ge=1)  # encoder output / decoder input width
    double_z: bool = False  # a VQGAN has one z (True is for KL autoencoders)
    image_size: int = knob(0, ge=0)  # side of the images it tokenizes (0 = resolution; the network is convolutional)

    def __post_init__(self) -> None:
        if self.double_z:
            raise ConfigError("this VQGAN has double_z=true: that is a KL autoencoder, not a VQGAN "
                              "(quant_conv reads z_channels). Use the VQGAN's model.yaml.")
        check_ranges(self)
        if not self.ch_mult:
            raise ConfigError(f"bad VQGAN config: ch_mult={self.ch_mult}, num_res_blocks={self.num_res_blocks}, "
                              f"n_embed={self.n_embed}.")
        widths = {self.ch} | {self.ch * m for m in self.ch_mult}
        if any(w % GROUPS for w in widths):
            raise ConfigError(f"every VQGAN width must be a multiple of {GROUPS} (GroupNorm({GROUPS})); "
                              f"ch={self.ch} × ch_mult={self.ch_mult} gives {sorted(widths)}.")
        for name in ("resolution", "image_size"):
            if getattr(self, name) % self.factor or getattr(self, name) < 0:
                raise ConfigError(f"{name} {getattr(self, name)} is not a multiple of the down-sampling factor "
                                  f"{self.factor} (ch_mult has {len(self.ch_mult)} levels).")

    @property
    def factor(self) -> int:
        """Pixels per token side: 2^(levels − 1)."""
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def size(self) -> int:
        """Side of the images: ``image_size``, or ``resolution`` when it is 0."""
        return self.image_size or self.resolution

    @property
    def grid(self) -> tuple[int, int]:
        side = self.size // self.factor
        return (side, side)


def swish(x: torch.Tensor) -> torch.Tensor:
    """x·σ(x), written as taming writes it (``F.silu`` rounds differently in the last bits)."""
    return x * torch.sigmoid(x)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=GROUPS, num_channels=channels, eps=1e-6, affine=True)


def _conv(c_in: int, c_out: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=k, stride=stride, padding=1 if k == 3 and stride == 1 else 0)


class ResnetBlock(nn.Module):
    """GN → swish → conv3 → GN → swish → dropout → conv3, plus the (1×1 if widths differ) shortcut."""

    def __init__(self, c_in: int, c_out: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = _norm(c_in)
        self.conv1 = _conv(c_in, c_out)
        self.norm2 = _norm(c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _conv(c_out, c_out)
        if c_in != c_out:
            self.nin_shortcut = _conv(c_in, c_out, k=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(self.dropout(swish(self.norm2(h))))
        if hasattr(self, "nin_shortcut"):
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the h·w positions with 1×1-conv projections, residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = _norm(channels)
        self.q = _conv(channels, channels, k=1)
        self.k = _conv(channels, channels, k=1)
        self.v = _conv(channels, channels, k=1)
        self.proj_out = _conv(channels, channels, k=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.norm(x)
        q = self.q(y).reshape(b, c, h * w).transpose(1, 2)  # [B, hw, C]
        k = self.k(y).reshape(b, c, h * w)  # [B, C, hw]
        v = self.v(y).reshape(b, c, h * w)
        att = torch.softmax(torch.bmm(q, k) * c ** -0.5, dim=2)  # [B, hw(query), hw(key)]
        out = torch.bmm(v, att.transpose(1, 2)).reshape(b, c, h, w)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """Pad right and bottom by one, then a stride-2 3×3 conv (or 2×2 average pooling)."""

    def __init__(self, channels: int, with_conv: bool) -> None:
        super().__init__()
        if with_conv:
            self.conv = _conv(channels, channels, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "conv"):
            return self.conv(F.pad(x, (0, 1, 0, 1)))
        return F.avg_pool2d(x, kernel_size=2, stride=2)


class Upsample(nn.Module):
    """Nearest-neighbour ×2, then a 3×3 conv (if ``with_conv``)."""

    def __init__(self, channels: int, with_conv: bool) -> None:
        super().__init__()
        if with_conv:
            self.conv = _conv(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x) if hasattr(self, "conv") else x


def _level(blocks: list[nn.Module], attns: list[nn.Module]) -> nn.Module:
    level = nn.Module()
    level.block = nn.ModuleList(blocks)
    level.attn = nn.ModuleList(attns)
    return level


def _middle(channels: int, dropout: float) -> nn.Module:
    mid = nn.Module()
    mid.block_1 = ResnetBlock(channels, channels, dropout)
    mid.attn_1 = AttnBlock(channels)
    mid.block_2 = ResnetBlock(channels, channels, dropout)
    return mid


def _run_middle(mid: nn.Module, h: torch.Tensor) -> torch.Tensor:
    return mid.block_2(mid.attn_1(mid.block_1(h)))  # type: ignore[operator]


class Encoder(nn.Module):
    """Image [B, C, H, W] in [−1, 1] → z [B, z_channels, H/f, W/f] (module docstring)."""

    def __init__(self, c: VQGANConfig) -> None:
        super().__init__()
        self.conv_in = _conv(c.in_channels, c.ch)
        mults = (1, *c.ch_mult)
        res = c.resolution
        self.down = nn.ModuleList()
        for level, m in enumerate(c.ch_mult):
            c_in, c_out = c.ch * mults[level], c.ch * m
            blocks, attns = [], []
            for _ in range(c.num_res_blocks):
                blocks.append(ResnetBlock(c_in, c_out, c.dropout))
                c_in = c_out
                if res in c.attn_resolutions:
                    attns.append(AttnBlock(c_out))
            mod = _level(blocks, attns)
            if level != len(c.ch_mult) - 1:
                mod.downsample = Downsample(c_out, c.resamp_with_conv)
                res //= 2
            self.down.append(mod)
        width = c.ch * c.ch_mult[-1]
        self.mid = _middle(width, c.dropout)
        self.norm_out = _norm(width)
        self.conv_out = _conv(width, c.z_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            for i, block in enumerate(level.block):  # type: ignore[arg-type]
                h = block(h)
                if len(level.attn):  # type: ignore[arg-type]
                    h = level.attn[i](h)  # type: ignore[index]
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = _run_middle(self.mid, h)
        return self.conv_out(swish(self.norm_out(h)))


class Decoder(nn.Module):
    """z [B, z_channels, h, w] → image [B, out_ch, h·f, w·f] in (about) [−1, 1] (module docstring)."""

    def __init__(self, c: VQGANConfig) -> None:
        super().__init__()
        n = len(c.ch_mult)
        width = c.ch * c.ch_mult[-1]
        self.conv_in = _conv(c.z_channels, width)
        self.mid = _middle(width, c.dropout)
        res = c.resolution // 2 ** (n - 1)
        levels: dict[int, nn.Module] = {}
        c_in = width
        for level in reversed(range(n)):  # built deepest first, stored by level index
            c_out = c.ch * c.ch_mult[level]
            blocks, attns = [], []
            for _ in range(c.num_res_blocks + 1):
                blocks.append(ResnetBlock(c_in, c_out, c.dropout))
                c_in = c_out
                if res in c.attn_resolutions:
                    attns.append(AttnBlock(c_out))
            mod = _level(blocks, attns)
            if level != 0:
                mod.upsample = Upsample(c_out, c.resamp_with_conv)
                res *= 2
            levels[level] = mod
        self.up = nn.ModuleList(levels[i] for i in range(n))
        self.norm_out = _norm(c_in)
        self.conv_out = _conv(c_in, c.out_ch)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = _run_middle(self.mid, self.conv_in(z))
        for level in reversed(self.up):  # type: ignore[call-overload]
            for i, block in enumerate(level.block):
                h = block(h)
                if len(level.attn):
                    h = level.attn[i](h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(swish(self.norm_out(h)))


class VectorQuantizer(nn.Module):
    """The codebook (``embedding``, K × embed_dim) and nearest-code lookup in squared distance."""

    def __init__(self, n_embed: int, embed_dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_embed, embed_dim)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Vectors [N, C] → ids [N] of the nearest code (‖z‖² + ‖e‖² − 2 z·e, as taming computes it)."""
        e = self.embedding.weight
        d = z.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * z @ e.t()
        return d.argmin(1)


class TamingVQGAN(nn.Module, PretrainedMixin):
    """taming's ``VQModel`` network (encoder, decoder, quantiser, 1×1 convs) behind the tokenizer surface."""

    config_class = VQGANConfig

    def __init__(self, config: VQGANConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quantize = VectorQuantizer(config.n_embed, config.embed_dim)
        self.quant_conv = nn.Conv2d(config.z_channels, config.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(config.embed_dim, config.z_channels, 1)

    # ------------------------------------------------------------------ tokenizer surface
    @property
    def grid(self) -> tuple[int, int]:
        return self.config.grid

    @property
    def num_tokens(self) -> int:
        return self.config.n_embed

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images it reads and writes."""
        r = self.config.size
        return (self.config.out_ch, r, r)

    def codebook(self) -> torch.Tensor:
        """The [K, embed_dim] code vectors (E in decode_soft's ``p @ E``)."""
        return self.quantize.embedding.weight

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] in [0, 1] → token ids, long [B, h, w]."""
        c, hh, ww = self.config.in_channels, self.config.size, self.config.size
        if images.dim() != 4 or tuple(images.shape[1:]) != (c, hh, ww) or not images.is_floating_point():
            raise DataError(f"this VQGAN reads float {c}-channel {hh}×{ww} images in [0, 1], got "
                            f"{images.dtype} {tuple(images.shape)}. For the discriminator's real images use data "
                            f"of that size (e.g. data.dataset=folder data.image_size={hh}).")
        z = self.quant_conv(self.encoder(2 * images - 1))
        b, d, h, w = z.shape
        return self.quantize.nearest(z.permute(0, 2, 3, 1).reshape(-1, d).float()).view(b, h, w)

    def decode_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Continuous latent [B, h, w, embed_dim] (code vectors or their averages) → images in [0, 1]."""
        x = self.decoder(self.post_quant_conv(z.permute(0, 3, 1, 2).contiguous()))
        return (x.clamp(-1, 1) + 1) / 2

    def _grid(self, x: torch.Tensor, trailing: int, what: str) -> torch.Tensor:
        h, w = self.grid
        lead = x.shape[: x.dim() - trailing]
        if len(lead) == 2 and lead[1] == h * w:
            return x.reshape(lead[0], h, w, *x.shape[x.dim() - trailing:])
        if len(lead) == 3 and tuple(lead[1:]) == (h, w):
            return x
        k = ", K" if trailing else ""
        raise DataError(f"{what} must be [B, {h * w}{k}] or [B, {h}, {w}{k}] for this VQGAN, got {tuple(x.shape)}.")

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids [B, L] or [B, h, w] in [0, K) → images [B, C, H, W] in [0, 1]."""
        if ids.is_floating_point():
            raise DataError(f"decode takes integer token ids, got {ids.dtype}; for probabilities use decode_soft.")
        ids = self._grid(ids, 0, "token ids").long()
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.num_tokens):
            raise DataError(f"token ids must be in [0, {self.num_tokens - 1}] (the mask id is not decodable), got "
                            f"range [{int(ids.min())}, {int(ids.max())}].")
        return self.decode_latent(self.quantize.embedding(ids))

    def decode_soft(self, p: torch.Tensor) -> torch.Tensor:
        """Probabilities [B, L, K] or [B, h, w, K] → images, differentiable in ``p`` (p @ codebook → decoder)."""
        if p.shape[-1] != self.num_tokens:
            raise DataError(f"decode_soft takes probabilities over the K={self.num_tokens} codes in the last "
                            f"dimension, got {tuple(p.shape)}.")
        p = self._grid(p, 1, "token probabilities")
        book = self.codebook()
        return self.decode_latent(p.to(book.dtype) @ book)


__all__ = ["VQGANConfig", "TamingVQGAN", "Encoder", "Decoder", "ResnetBlock", "AttnBlock", "VectorQuantizer"]
