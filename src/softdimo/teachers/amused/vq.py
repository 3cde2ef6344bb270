"""``VQModel`` as softdimo's tokenizer surface: encode, decode (index lookup), decode_soft (bypass).

``decode(ids)`` is ``VQModel.decode(ids, force_not_quantize=True)`` (the index lookup);
``decode_soft(p)`` bypasses it: ``p @ quantize.embedding.weight`` → [B, C, h, w] →
``post_quant_conv`` → ``decoder`` (with the latent for ``norm_type="spatial"``), differentiable
in p (docs/method.md §6.2). Both clip to [0, 1].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import DataError


class AmusedVQ(nn.Module):
    """``VQModel`` as softdimo's tokenizer surface: encode, decode (index lookup), decode_soft (bypass)."""

    def __init__(self, vqvae: nn.Module, grid: tuple[int, int]) -> None:
        super().__init__()
        self.vqvae = vqvae.eval().requires_grad_(False)
        self.grid = (int(grid[0]), int(grid[1]))

    def train(self, mode: bool = True) -> "AmusedVQ":
        super().train(mode)
        self.vqvae.eval()
        return self

    @property
    def num_tokens(self) -> int:
        return int(self.vqvae.config.num_vq_embeddings)  # type: ignore[union-attr]

    @property
    def scale(self) -> int:
        """Pixels per token side: 2^(levels − 1), as the pipeline's vae_scale_factor."""
        return 2 ** (len(self.vqvae.config.block_out_channels) - 1)  # type: ignore[union-attr]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images."""
        return (int(self.vqvae.config.out_channels), self.grid[0] * self.scale,  # type: ignore[union-attr]
                self.grid[1] * self.scale)

    def codebook(self) -> torch.Tensor:
        """The K code vectors [K, C]."""
        return self.vqvae.quantize.embedding.weight  # type: ignore[union-attr,return-value]

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] in [0, 1] → token ids [B, h, w] (nearest code of each latent)."""
        c, hh, ww = self.image_shape
        if images.dim() != 4 or tuple(images.shape[1:]) != (c, hh, ww):
            raise DataError(f"this aMUSEd VQ reads {c}-channel {hh}×{ww} images; got {tuple(images.shape)}. For the "
                            f"discriminator's real images use RGB data of that size (e.g. data.dataset=world "
                            f"data.world_size_px={hh}, or an image folder with data.image_size={hh}).")
        latents = self.vqvae.encode(images).latents  # type: ignore[union-attr]
        ids = self.vqvae.quantize(latents)[2][2]  # type: ignore[union-attr]
        return ids.reshape(images.shape[0], *self.grid)

    def _grid_ids(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.is_floating_point():
            raise DataError(f"decode takes integer token ids, got {ids.dtype}; for probabilities use decode_soft.")
        ids = ids.reshape(ids.shape[0], *self.grid).long()
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.num_tokens):
            raise DataError(f"token ids must be in [0, {self.num_tokens - 1}] (the mask id is not decodable), got "
                            f"range [{int(ids.min())}, {int(ids.max())}].")
        return ids

    def decode_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Continuous latent [B, h, w, C] (code vectors or their averages) → images in [0, 1]:
        post_quant_conv → decoder, no quantiser (the native tokenizer's signature)."""
        v, quant = self.vqvae, z.permute(0, 3, 1, 2).contiguous()
        dec = v.decoder(v.post_quant_conv(quant), quant if v.config.norm_type == "spatial" else None)  # type: ignore
        return dec.clamp(0, 1)

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """Ids [B, L] or [B, h, w] in [0, K) → images [B, C, H, W] in [0, 1] (VQModel's own index lookup)."""
        ids = self._grid_ids(ids)
        b, (h, w), dim = ids.shape[0], self.grid, self.codebook().shape[1]
        if self.vqvae.config.lookup_from_codebook:  # type: ignore[union-attr]
            out = self.vqvae.decode(ids, force_not_quantize=True, shape=(b, h, w, dim)).sample  # type: ignore
            return out.clamp(0, 1)
        return self.decode_latent(F.embedding(ids, self.codebook()))

    def decode_soft(self, p: torch.Tensor) -> torch.Tensor:
        """Probabilities [B, L, K] or [B, h, w, K] → images, differentiable in ``p`` (p @ codebook → decoder)."""
        k, (h, w) = self.num_tokens, self.grid
        if p.shape[-1] != k or p.numel() != p.shape[0] * h * w * k:
            raise DataError(f"decode_soft takes probabilities [B, {h * w}, {k}] or [B, {h}, {w}, {k}], got "
                            f"{tuple(p.shape)}.")
        book = self.codebook()
        return self.decode_latent((p.to(book.dtype) @ book).reshape(p.shape[0], h, w, -1))


__all__ = ["AmusedVQ"]
