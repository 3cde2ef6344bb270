"""A tiny, randomly initialised MaskGIT in the *published* file formats (tests, benchmarks, documentation).

:func:`write_tiny_published` writes what the MaskGIT-pytorch project publishes, with the same file
names, nesting and key names, at a few dozen channels::

    <root>/MaskGIT/MaskGIT_ImageNet_256.pth   {"iter", "global_epoch", "model_state_dict", "optimizer_state_dict"}
    <root>/VQGAN/last.ckpt                    {"epoch", "global_step", "pytorch-lightning_version", "callbacks",
                                               "optimizer_states", "lr_schedulers", "state_dict"} with the
                                               training loss's weights under state_dict["loss.…"]
    <root>/VQGAN/model.yaml                   taming's model.target / model.params (embed_dim, n_embed,
                                               ddconfig, lossconfig)

so that ``softdimo convert --kind maskgit`` runs its real path on a CPU in seconds. The
transformer file keeps its published name although the tiny model works at 32 px (8×8 tokens,
K = 64, 10 classes): the name selects the file, the weights' shapes give the sizes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from .maskgit_convert import VQGAN_CKPT, VQGAN_YAML, transformer_file
from .maskgit_net import MaskGITConfig, MaskGITTransformer
from .vqgan import TamingVQGAN, VQGANConfig


@dataclass
class TinyMaskGITConfig:
    """Sizes of the tiny MaskGIT (defaults: K = 64, 8×8 tokens, 32×32 RGB, width 64, 2 blocks, 10 classes)."""

    codebook_size: int = 64
    embed_dim: int = 16  # code vector width
    vq_ch: int = 32  # VQGAN base width (a multiple of GroupNorm's 32 groups)
    vq_levels: int = 3  # f = 2^(levels − 1) = 4
    image_size: int = 32
    hidden_dim: int = 64
    depth: int = 2
    heads: int = 16  # the released head count, which the converter assumes (it is not in the weights)
    mlp_dim: int = 128
    nclass: int = 10
    grid: int = 0  # transformer tokens per side; 0 = the VQGAN's grid at image_size (2× that: like the 512-px model)
    seed: int = 0

    def vqgan(self) -> VQGANConfig:
        factor = 2 ** (self.vq_levels - 1)
        return VQGANConfig(embed_dim=self.embed_dim, n_embed=self.codebook_size, ch=self.vq_ch,
                           ch_mult=[1] * self.vq_levels, num_res_blocks=1, attn_resolutions=[self.image_size // factor],
                           resolution=self.image_size, z_channels=self.vq_ch)

    def transformer(self) -> MaskGITConfig:
        return MaskGITConfig(grid=self.grid or self.vqgan().grid[0], hidden_dim=self.hidden_dim, codebook_size=self.codebook_size,
                             depth=self.depth, heads=self.heads, mlp_dim=self.mlp_dim, dropout=0.1, nclass=self.nclass)


def taming_yaml(c: VQGANConfig) -> dict[str, Any]:
    """taming's model.yaml content for ``c`` (the layout of the published file)."""
    dd = {"double_z": False, "z_channels": c.z_channels, "resolution": c.resolution, "in_channels": c.in_channels,
          "out_ch": c.out_ch, "ch": c.ch, "ch_mult": list(c.ch_mult), "num_res_blocks": c.num_res_blocks,
          "attn_resolutions": list(c.attn_resolutions), "dropout": c.dropout}
    loss = {"target": "taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator",
            "params": {"disc_conditional": False, "disc_in_channels": 3, "disc_start": 250001, "disc_weight": 0.8,
                       "codebook_weight": 1.0}}
    return {"model": {"base_learning_rate": 4.5e-06, "target": "taming.models.vqgan.VQModel",
                      "params": {"embed_dim": c.embed_dim, "n_embed": c.n_embed, "ddconfig": dd, "lossconfig": loss}}}


def write_tiny_published(root: str | Path, config: TinyMaskGITConfig | None = None,
                         callbacks: dict[Any, Any] | None = None, variant: int = 256) -> Path:
    """Write the three published files of a random tiny MaskGIT under ``root`` (module docstring).

    ``callbacks`` is the Lightning checkpoint's ``callbacks`` entry (default: empty).
    """
    c = config or TinyMaskGITConfig()
    root = Path(root)
    torch.manual_seed(c.seed)
    vq = TamingVQGAN(c.vqgan())
    net = MaskGITTransformer(c.transformer())
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.9, 0.96))
    (root / "MaskGIT").mkdir(parents=True, exist_ok=True)
    (root / "VQGAN").mkdir(parents=True, exist_ok=True)
    torch.save({"iter": 0, "global_epoch": 0, "model_state_dict": net.state_dict(),
                "optimizer_state_dict": opt.state_dict()}, root / "MaskGIT" / transformer_file(variant))
    loss_weights = {"loss.discriminator.main.0.weight": torch.randn(8, 3, 4, 4),
                    "loss.discriminator.main.0.bias": torch.zeros(8),
                    "loss.perceptual_loss.lin0.model.1.weight": torch.randn(1, 8, 1, 1)}
    torch.save({"epoch": 0, "global_step": 0, "pytorch-lightning_version": "1.0.8", "callbacks": callbacks or {},
                "optimizer_states": [], "lr_schedulers": [], "state_dict": {**vq.state_dict(), **loss_weights}},
               root / "VQGAN" / VQGAN_CKPT)
    (root / "VQGAN" / VQGAN_YAML).write_text(yaml.safe_dump(taming_yaml(vq.config), sort_keys=False))
    return root


__all__ = ["TinyMaskGITConfig", "write_tiny_published", "taming_yaml"]
