"""Di[M]O's equations (docs/method.md §3.2–§3.6): the initial state, the Jeffreys gradient, the losses.

Pure functions on tensors; the training stage (:mod:`softdimo.distill.train`) wires them to the
teacher φ, the student θ and the auxiliary ψ.

* **Initial state** (§3.2): ``hybrid_init`` fills the L positions with uniformly random image
  tokens in [0, K) and masks exactly ``max(1, round(r_init·L))`` of them (random permutation);
  ``noise_embeddings`` perturbs the student's input embeddings, variance-preserving:
  ``ê = √(1−σ²)·e + σ·ε`` (before the positional embeddings, mask tokens included). They live
  with the one-step sampler (:mod:`softdimo.mdm.onestep`) and are re-exported here.
* **Generalised Jeffreys gradient** (§3.5, Eq. 8 of the Di[M]O paper), per masked position, with
  respect to the logits, for ``D_β = (1−β)·FKL(p_φ‖p_ψ) + β·RKL``::

      g_F = p_ψ − p_φ
      g_R = p_ψ ⊙ (log p_ψ − log p_φ − KL(p_ψ‖p_φ))
      g   = (1−β)·g_F + β·g_R                      (β = 0: forward KL; β = 1: reverse KL)

  (``g_F`` is the gradient of FKL(p_φ‖p_ψ) = Σ p_φ log(p_φ/p_ψ) and ``g_R`` that of
  RKL = KL(p_ψ‖p_φ), both with respect to ψ's logits; Di[M]O pushes them into the student's
  x_init logits at the same positions, the "consistency" approximation.)
* **Surrogate loss** (§3.5): ``L = 0.5·Σ_{i,v} (z − sg(z − g))² / B``, whose gradient with
  respect to z is exactly ``g / B``. Options: the paper's ``1/L_M`` averaging over the masked
  positions of each sample, and the DMD normaliser ``w = 1 / mean_i ‖p_ψ^i − p_φ^i‖₁`` (see
  :func:`sample_weights`).
* **Auxiliary loss** (§3.6): label-smoothed cross-entropy of ψ's logits against the student's
  sampled tokens on the masked positions (:func:`softdimo.mdm.masking.masked_ce_loss`).
"""
from __future__ import annotations

from typing import Literal

import torch

from ..errors import DataError
from ..mdm.onestep import SigmaScale, embedding_rms, hybrid_init, noise_embeddings  # §3.2, re-exported
from ..soft import sample_tokens  # the token draw x ~ Cat(softmax(z/τ)) (§3.3), re-exported

Weighting = Literal["none", "dmd"]


def jeffreys_gradient(teacher_logits: torch.Tensor, aux_logits: torch.Tensor, beta: float) -> torch.Tensor:
    """g(β) = (1−β)·(p_ψ − p_φ) + β·p_ψ ⊙ (log p_ψ − log p_φ − KL(p_ψ‖p_φ)), per position [.., K]."""
    log_t = torch.log_softmax(teacher_logits.float(), dim=-1)
    log_a = torch.log_softmax(aux_logits.float(), dim=-1)
    p_t, p_a = log_t.exp(), log_a.exp()
    g = (1.0 - beta) * (p_a - p_t) if beta != 1.0 else torch.zeros_like(p_a)
    if beta != 0.0:
        diff = log_a - log_t
        kl = (p_a * diff).sum(-1, keepdim=True)
        g = g + beta * p_a * (diff - kl)
    return g


def sample_weights(teacher_logits: torch.Tensor, aux_logits: torch.Tensor, mask: torch.Tensor,
                   length_norm: bool, weighting: Weighting, eps: float = 1e-6) -> torch.Tensor:
    """Per-sample weights [B] of the surrogate loss (1 = the released code's default).

    ``length_norm``: the paper's 1/L_M (L_M = masked positions of the sample). ``weighting="dmd"``:
    the DMD normaliser of the paper's appendix, w = 1 / mean over masked positions of
    ‖p_ψ − p_φ‖₁ (p_ψ standing in for the unknown p_θ; no gradient).
    """
    b = mask.shape[0]
    w = torch.ones(b, device=mask.device)
    n_masked = mask.float().sum(1).clamp(min=1.0)
    if length_norm:
        w = w / n_masked
    if weighting == "dmd":
        p_t = torch.softmax(teacher_logits.float(), -1)
        p_a = torch.softmax(aux_logits.float(), -1)
        l1 = (p_a - p_t).abs().sum(-1)  # [B, L]
        mean_l1 = (l1 * mask).sum(1) / n_masked
        w = w / mean_l1.clamp(min=eps)
    elif weighting != "none":
        raise DataError(f"unknown loss weighting {weighting!r}; choose 'none' or 'dmd'.")
    return w


def surrogate_loss(logits: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """0.5·Σ (z − sg(z − g))² / B: a scalar whose gradient with respect to ``logits`` is ``grad / B``.

    ``grad`` [B, L, K] must already be zero at unmasked positions and carry any per-sample weight.
    """
    if logits.shape != grad.shape:
        raise DataError(f"logits {tuple(logits.shape)} and gradient {tuple(grad.shape)} must match.")
    z = logits.float()
    target = (z - grad.float()).detach()
    return 0.5 * (z - target).pow(2).sum() / logits.shape[0]


def finite_rows(*tensors: torch.Tensor) -> torch.Tensor:
    """Bool [B]: samples whose entries are finite in every tensor (non-finite samples are dropped)."""
    ok = torch.ones(tensors[0].shape[0], dtype=torch.bool, device=tensors[0].device)
    for t in tensors:
        ok &= torch.isfinite(t.reshape(t.shape[0], -1)).all(1)
    return ok


__all__ = ["hybrid_init", "noise_embeddings", "embedding_rms", "SigmaScale", "sample_tokens", "jeffreys_gradient", "sample_weights",
           "surrogate_loss", "finite_rows", "Weighting"]
