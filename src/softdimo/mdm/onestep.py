"""The one-step generator's sampler and its initial state (docs/method.md §3.2, §3.9).

* **Initial state** (§3.2): :func:`hybrid_init` fills the L positions with uniformly random image
  tokens in [0, K) and masks exactly ``max(1, round(r_init·L))`` of them (random permutation);
  :func:`noise_embeddings` perturbs the input embeddings, variance-preserving:
  ``ê = √(1−σ²)·e + σ·ε`` (before the positional embeddings, mask tokens included);
  :func:`embedding_rms` measures σ against the embeddings' own scale when asked.

:class:`OneStepSampler` draws an image in one forward pass, exactly as training saw it (§3.2):

1. x_init = uniformly random image tokens with exactly max(1, round(r_init·L)) mask tokens;
2. e_in = √(1−σ²)·embed(x_init) + σ·s·ε  (the same r_init, σ and noise scale s as in training);
3. z = f_θ(e_in, c)  — one forward pass, no classifier-free guidance (the student never uses it);
4. x^i ~ Cat(softmax(z^i / τ)) independently per position (τ = 0: argmax), then decode.

τ is the main inference knob (§3.9: the distilled logits are very peaked; the ImageNet student's
FID is best near τ ≈ 7). :meth:`OneStepSampler.initial_embeddings` and :meth:`OneStepSampler.logits`
are exposed separately so that test-time embedding optimisation can treat e_in as a variable.
The Di[M]O stage (:mod:`softdimo.distill.train`) draws its students' inputs with the same functions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch

from ..config import check_ranges, knob
from ..errors import ConfigError, DataError
from ..soft import sample_tokens
from .masking import exact_count_mask

SigmaScale = Literal["absolute", "embedding"]  # σ·ε in absolute units, or relative to the embeddings' rms


def hybrid_init(batch: int, length: int, num_tokens: int, mask_id: int, r_init: float | torch.Tensor,
                generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """x_init [B, L]: uniform random tokens in [0, K) with exactly max(1, round(r·L)) masks per row (§3.2)."""
    gen_dev = generator.device if generator is not None else device
    ids = torch.randint(0, num_tokens, (batch, length), generator=generator, device=gen_dev)
    mask = exact_count_mask(batch, length, r_init, generator=generator, device=gen_dev)
    return torch.where(mask, torch.full_like(ids, mask_id), ids).to(device)


def noise_embeddings(embeds: torch.Tensor, sigma: float, generator: torch.Generator | None = None,
                     scale: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Variance-preserving perturbation √(1−σ²)·e + σ·s·ε, ε ~ N(0, I) (§3.2); σ = 0 returns ``embeds``.

    ``s`` (``scale``) is the per-dimension scale of the embeddings the noise is measured against:
    1 is the released code's absolute σ (its embeddings are N(0, 1)); :func:`embedding_rms` makes σ
    relative to a table of any scale (``dimo.sigma_scale="embedding"``).
    """
    if not 0.0 <= sigma <= 1.0:
        raise DataError(f"the embedding noise σ must be in [0, 1], got {sigma}.")
    if sigma == 0.0:
        return embeds
    gen_dev = generator.device if generator is not None else embeds.device
    eps = torch.randn(embeds.shape, generator=generator, device=gen_dev).to(embeds.device, embeds.dtype)
    return math.sqrt(1.0 - sigma * sigma) * embeds + sigma * scale * eps


@torch.no_grad()
def embedding_rms(model) -> torch.Tensor:
    """s = sqrt(mean e²) over the embeddings ``model.embed(ids)`` of every image token id (a scalar).

    The noise scale of ``sigma_scale="embedding"``: with it, σ = 0.1 perturbs the input by about
    10 % whatever the table's scale (the released MaskGit table is N(0, 1), so s ≈ 1 there).
    """
    h, w = model.grid
    length, k = h * w, int(model.num_tokens)
    rows = -(-k // length)
    ids = (torch.arange(rows * length) % k).reshape(rows, length).to(model.embedding_table().device)
    return model.embed(ids).float().pow(2).mean().sqrt()


@dataclass
class OneStepSampler:
    """One forward pass from a random, partly masked, noised initial state (module docstring)."""

    r_init: float = knob(0.6, ge=0, le=1)  # fraction of mask tokens in x_init (training's r_init)
    sigma: float = knob(0.1, ge=0, le=1)  # variance-preserving embedding noise σ (training's final σ)
    temperature: float = knob(1.0, ge=0)  # τ of the per-position token draw (0 = argmax)
    sigma_scale: SigmaScale = "absolute"  # σ in absolute units, or relative to the embeddings' rms (training's)

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.sigma_scale not in ("absolute", "embedding"):
            raise ConfigError(f"OneStepSampler.sigma_scale must be 'absolute' or 'embedding', got {self.sigma_scale!r}.")

    @property
    def steps(self) -> int:
        return 1

    def initial_ids(self, model: Any, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """x_init [B, L] (step 1)."""
        h, w = model.grid
        return hybrid_init(batch, h * w, int(model.num_tokens), int(model.mask_id), self.r_init,
                           generator=generator, device=model.embedding_table().device)

    def initial_embeddings(self, model: Any, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """e_in [B, L, d]: the noised embedding of x_init (steps 1–2)."""
        scale = embedding_rms(model) if self.sigma_scale == "embedding" and self.sigma > 0 else 1.0
        return noise_embeddings(model.embed(self.initial_ids(model, batch, generator)), self.sigma, generator, scale)

    @staticmethod
    def logits(model: Any, embeds: torch.Tensor, cond: Any) -> torch.Tensor:
        """z = f_θ(e_in, c) over the K image tokens (step 3)."""
        return model.forward(embeds, cond)[..., : int(model.num_tokens)]

    @torch.no_grad()
    def sample(self, model: Any, cond: Any, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Token ids [B, L] in [0, K); ``model`` is put in eval mode for the call and restored."""
        was_training = getattr(model, "training", False)
        model.eval()
        try:
            z = self.logits(model, self.initial_embeddings(model, batch, generator), cond)
            return sample_tokens(z, self.temperature, generator)
        finally:
            model.train(was_training)


__all__ = ["hybrid_init", "noise_embeddings", "embedding_rms", "SigmaScale", "OneStepSampler"]
