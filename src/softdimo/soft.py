"""Soft embeddings, the Gumbel straight-through baseline, and the soft-vs-hard diagnostics.

**Soft embedding** (docs/method.md §4.1). With student logits z^i at position i and
p^i = softmax(z^i / τ) over the K image tokens, the soft embedding is the expected row of an
*existing* table E ∈ R^{K×d} (the teacher's input table for the GAN, the decoder's codebook for
rewards)::

    ẽ^i = Eᵀ p^i = Σ_j p^i_j · E_j                     soft_embed(z, E)      (τ = 1 by default)

It is differentiable in z; the hard embedding ``hard_embed(x, E) = E[x]`` is not.

**Gumbel noise** has its one home here (:func:`gumbel_noise`): the token draw x ~ Cat(softmax(z/τ))
(:func:`sample_tokens`), the MaskGIT sampler and both straight-through baselines use it.

**Gumbel straight-through** (§4.3), the ablation baseline: with g ~ Gumbel(0, 1),
``y_soft = softmax((z + g)/τ)`` and ``j* = argmax(z + g)``::

    e = E[j*] + (y_soft·E − sg(y_soft·E))              gumbel_straight_through(z, E)

The forward value is exactly the row E[j*] (the added term is x − x = 0); the backward pass is
the gradient of y_soft·E, i.e. ``y_hard − sg(y_soft) + y_soft`` pushed through E.

**Why soft works** (§4.2). For f with Hessian norm ≤ L, the first-order Taylor term vanishes
around ẽ = E_p[e_j], so ``|f(ẽ) − E_{j~p} f(e_j)| ≤ (L/2)·tr Σ`` with Σ = Cov_{j~p}(e_j) and
``tr Σ = Σ_j p_j‖E_j‖² − ‖ẽ‖²``. The paper's bound ``(L/2)‖Σ‖`` is stated with this trace.
Diagnostics (no gradient): :func:`token_entropy`, :func:`token_pmax`,
:func:`embedding_covariance_trace` (tr Σ) and :func:`soft_hard_gap` (a Monte-Carlo estimate of
the left-hand side), gathered by :func:`soft_diagnostics`. They read the logits at τ = 1; pass
``z / τ`` to measure another temperature.

Logits carry the K image tokens; a K+1-way head (image tokens then the mask class [M]) is
accepted too: its last class is dropped and the softmax renormalised over the K image tokens.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .errors import DataError

EmbeddingFn = Callable[[torch.Tensor], torch.Tensor]  # embeddings [B, L, d] → scores [B]


def _image_logits(logits: torch.Tensor, num_tokens: int | None) -> torch.Tensor:
    """``logits[..., :K]`` when a K+1-way head (mask class last) is given; K-way logits unchanged."""
    if num_tokens is None or logits.shape[-1] == num_tokens:
        return logits
    if logits.shape[-1] == num_tokens + 1:
        return logits[..., :num_tokens]
    raise DataError(f"logits have {logits.shape[-1]} classes but the table has {num_tokens} image tokens; "
                    f"pass logits over the K image tokens (or K+1 with the mask class last).")


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise DataError(f"the softmax temperature must be > 0, got {temperature}.")


def soft_probs(logits: torch.Tensor, temperature: float = 1.0, num_tokens: int | None = None) -> torch.Tensor:
    """p = softmax(z / τ) over the last dim (float32); ``num_tokens`` K drops a trailing mask class."""
    _check_temperature(temperature)
    return torch.softmax(_image_logits(logits, num_tokens).float() / temperature, dim=-1)


def soft_embed(logits: torch.Tensor, table: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """ẽ = Eᵀ softmax(z / τ) (§4.1): logits [B, L, K] and table E [K, d] → [B, L, d], differentiable."""
    p = soft_probs(logits, temperature, num_tokens=table.shape[0])
    return p.to(table.dtype) @ table


def hard_embed(ids: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """E[x]: token ids [B, L] in [0, K) → table rows [B, L, d]."""
    if ids.is_floating_point():
        raise DataError(f"hard_embed expects integer token ids, got {ids.dtype}; for logits use soft_embed.")
    return F.embedding(ids.long(), table)


def gumbel_noise(shape: torch.Size | tuple[int, ...], generator: torch.Generator | None = None,
                 device: torch.device | str | None = None) -> torch.Tensor:
    """g = −log(−log u), u ~ U(0, 1) clamped to [1e-20, 1 − 1e-7]: standard Gumbel(0, 1) noise (float32).

    u is drawn with ``generator`` on the generator's device (without one: on ``device``) and moved
    to ``device`` (default: that same device) before the transform. The one Gumbel draw of the
    package: the MaskGIT sampler's token draws and confidences, :func:`sample_tokens` and the
    straight-through baselines all call it, so one seed gives one set of draws everywhere.
    """
    gen_dev = generator.device if generator is not None else (device or "cpu")
    u = torch.rand(shape, generator=generator, device=gen_dev).to(device or gen_dev)
    return -torch.log(-torch.log(u.clamp(1e-20, 1.0 - 1e-7)))


def sample_tokens(logits: torch.Tensor, temperature: float = 1.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Independent draws ``x^i ~ Cat(softmax(z^i / τ))`` per position (τ = 0: argmax); no gradient.

    The Gumbel-max trick: ``argmax(z/τ + g)`` with g from :func:`gumbel_noise` (docs/method.md §3.3).
    """
    if temperature < 0:
        raise DataError(f"temperature must be ≥ 0, got {temperature}.")
    logits = logits.detach().float()
    if temperature == 0:
        return logits.argmax(-1)
    return (logits / temperature + gumbel_noise(logits.shape, generator, logits.device)).argmax(-1)


def _gumbel_softmax(logits: torch.Tensor, num_tokens: int, tau: float,
                    generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The noisy logits z + g over the K image tokens and y_soft = softmax((z + g)/τ) (§4.3)."""
    _check_temperature(tau)
    z = _image_logits(logits, num_tokens).float()
    noisy = z + gumbel_noise(z.shape, generator, device=z.device)
    return noisy, torch.softmax(noisy / tau, dim=-1)


def gumbel_straight_through(logits: torch.Tensor, table: torch.Tensor, tau: float = 1.0,
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """§4.3: forward E[argmax(z + g)] exactly; backward the gradient of softmax((z + g)/τ) @ E."""
    noisy, y_soft = _gumbel_softmax(logits, table.shape[0], tau, generator)
    soft = y_soft.to(table.dtype) @ table
    return hard_embed(noisy.argmax(-1), table) + (soft - soft.detach())


def gumbel_straight_through_probs(logits: torch.Tensor, num_tokens: int, tau: float = 1.0,
                                  generator: torch.Generator | None = None) -> torch.Tensor:
    """§4.3 on token probabilities: ``y_hard − sg(y_soft) + y_soft`` [B, L, K], one-hot forward (the
    draw argmax(z + g)), the gradient of y_soft = softmax((z + g)/τ) backward (e.g. into ``decode_soft``)."""
    noisy, y_soft = _gumbel_softmax(logits, num_tokens, tau, generator)
    y_hard = F.one_hot(noisy.argmax(-1), num_tokens).to(y_soft.dtype)
    return y_hard - y_soft.detach() + y_soft


# ---------------------------------------------------------------------- diagnostics (§4.2)
@torch.no_grad()
def token_entropy(logits: torch.Tensor) -> float:
    """Mean over positions of the entropy H(p) = −Σ_j p_j log p_j (nats)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return float(-(logp.exp() * logp).sum(-1).mean())


@torch.no_grad()
def token_pmax(logits: torch.Tensor) -> float:
    """Mean over positions of p_max = max_j p_j (1 = one-hot)."""
    return float(torch.softmax(logits.float(), dim=-1).amax(-1).mean())


@torch.no_grad()
def embedding_covariance_trace(logits: torch.Tensor, table: torch.Tensor) -> float:
    """Mean over positions of tr Σ = Σ_j p_j‖E_j‖² − ‖ẽ‖², Σ = Cov_{j~p}(E_j).

    The soft-vs-hard gap of an f with Hessian norm ≤ L is at most (L/2)·tr Σ (§4.2).
    """
    p = soft_probs(logits, num_tokens=table.shape[0])
    e = table.float()
    tr = p @ e.pow(2).sum(-1) - (p @ e).pow(2).sum(-1)
    return float(tr.clamp(min=0.0).mean())


@torch.no_grad()
def soft_hard_gap(f: EmbeddingFn, logits: torch.Tensor, table: torch.Tensor, samples: int = 8,
                  generator: torch.Generator | None = None) -> float:
    """Mean over the batch of |f(ẽ) − E_{x~p} f(E[x])|, the expectation estimated with ``samples`` draws.

    ``f`` maps embeddings [B, L, d] to scores [B] (e.g. a discriminator's logit); x draws every
    position independently from softmax(z).
    """
    if samples < 1:
        raise DataError(f"soft_hard_gap needs samples ≥ 1, got {samples}.")
    logp = torch.log(soft_probs(logits, num_tokens=table.shape[0]))
    f_soft = f(logp.exp().to(table.dtype) @ table).float()
    f_hard = torch.zeros_like(f_soft)
    for _ in range(samples):
        ids = (logp + gumbel_noise(logp.shape, generator, device=logp.device)).argmax(-1)  # x ~ Cat(p)
        f_hard += f(hard_embed(ids, table)).float()
    return float((f_soft - f_hard / samples).abs().mean())


@torch.no_grad()
def soft_diagnostics(logits: torch.Tensor, table: torch.Tensor, f: EmbeddingFn | None = None,
                     samples: int = 8, generator: torch.Generator | None = None) -> dict[str, float]:
    """``entropy``, ``p_max``, ``cov_trace`` (tr Σ) and, when ``f`` is given, ``gap`` (:func:`soft_hard_gap`)."""
    z = _image_logits(logits, table.shape[0])
    out = {"entropy": token_entropy(z), "p_max": token_pmax(z), "cov_trace": embedding_covariance_trace(z, table)}
    if f is not None:
        out["gap"] = soft_hard_gap(f, z, table, samples=samples, generator=generator)
    return out


__all__ = ["soft_probs", "soft_embed", "hard_embed", "gumbel_noise", "sample_tokens", "gumbel_straight_through",
           "gumbel_straight_through_probs", "token_entropy",
           "token_pmax", "embedding_covariance_trace", "soft_hard_gap", "soft_diagnostics", "EmbeddingFn"]
