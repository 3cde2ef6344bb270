"""Vector quantiser with an EMA codebook, Laplace smoothing and dead-code restarts.

Implements the quantisation step of VQ-VAE (van den Oord et al., 2017): each encoder vector
``z_e`` is replaced by its nearest codebook row ``e_k``, ``k = argmin_j ||z_e - e_j||²``, with a
straight-through gradient ``z_q = z_e + sg(e_k - z_e)`` and the commitment loss
``||z_e - sg(e_k)||²``. The codebook is not trained by gradient but as an exponential moving
average of the vectors assigned to each code (VQ-VAE appendix / Razavi et al., 2019):

    N_k ← γ N_k + (1-γ) n_k,        m_k ← γ m_k + (1-γ) Σ_{i: k_i = k} z_e^i,
    e_k = m_k / Ñ_k,                 Ñ_k = (N_k + ε) / (Σ_j N_j + K ε) · Σ_j N_j   (Laplace smoothing).

Codes whose share of assignments ``N_k / Σ_j N_j`` falls below ``dead_threshold / K`` are
restarted at randomly chosen encoder outputs of the current batch, so that (almost) every code
stays in use; a restarted (or freshly initialised) code starts at twice the threshold, so one
that still finds no vectors is restarted again after ln 2 / (1-γ) steps. All statistics live in registered buffers (they are saved in ``state_dict``), the
restart draws come from torch's global RNG (so a resumed run with restored RNG repeats them),
and when ``torch.distributed`` is initialised the statistics are all-reduced and the restart
vectors broadcast from rank 0, so every process keeps the same codebook.

Where new codes are placed (``code_sampling``):

* ``"uniform"``: initial codes and restarts are encoder outputs drawn uniformly from the batch;
* ``"error"``: they are drawn with probability ∝ the squared distance to the nearest existing
  code (D² seeding, as in k-means++, Arthur & Vassilvitskii 2007; initialisation picks the codes
  one at a time). On data dominated by one flat colour (the digit world's background covers
  ~70 % of all patches) uniform draws land mostly on that colour and split it over hundreds of
  near-identical codes, which a masked model then has to tell apart although nothing in the
  image does; D² draws put new codes where the quantisation error is, i.e. on the digits.

The codebook rows are exactly the vectors the decoder consumes: ``decode_soft`` in the
tokenizer averages these rows with the student's token probabilities (docs/method.md §4.1, §6).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@dataclass
class QuantizerOutput:
    """What one quantiser call returns."""

    z_q: torch.Tensor  # [N, d] quantised vectors with the straight-through gradient to z_e
    ids: torch.Tensor  # [N] long, chosen code per vector
    commitment: torch.Tensor  # scalar, mean ||z_e - sg(e_k)||² per element
    perplexity: float  # exp(entropy) of the code histogram of this batch (all processes in training)
    usage: float  # fraction of the K codes used at least once in this batch (idem)
    restarted: int  # number of dead codes restarted in this call


class EMAVectorQuantizer(nn.Module):
    """Nearest-neighbour quantiser over ``K`` codes of size ``d``, updated by EMA (see module doc).

    Args:
        num_codes: codebook size K.
        dim: code dimension d.
        decay: EMA decay γ of the cluster sizes and sums.
        eps: Laplace smoothing ε added to every cluster size.
        dead_threshold: a code is dead when its EMA share of assignments is below
            ``dead_threshold / K`` (i.e. this fraction of the uniform share); 0 disables restarts.
    """

    def __init__(self, num_codes: int, dim: int, decay: float = 0.99, eps: float = 1e-5,
                 dead_threshold: float = 0.03, code_sampling: str = "uniform") -> None:
        super().__init__()
        self.num_codes = num_codes
        self.dim = dim
        self.decay = decay
        self.eps = eps
        self.dead_threshold = dead_threshold
        if code_sampling not in ("uniform", "error"):
            raise ValueError(f"code_sampling must be 'uniform' or 'error', got {code_sampling!r}")
        self.code_sampling = code_sampling
        self.register_buffer("embedding", torch.randn(num_codes, dim) * 0.1)
        self.register_buffer("cluster_size", torch.zeros(num_codes))
        self.register_buffer("embed_sum", self.embedding.clone())
        # 0 until the codebook has been initialised from the first training batch.
        self.register_buffer("initialized", torch.zeros((), dtype=torch.long))

    def extra_repr(self) -> str:
        return (f"num_codes={self.num_codes}, dim={self.dim}, decay={self.decay}, eps={self.eps}, "
                f"dead_threshold={self.dead_threshold}, code_sampling={self.code_sampling!r}")

    # ------------------------------------------------------------------ lookup
    @staticmethod
    def _dist2(z: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """Squared distances [N, M] between the rows of ``z`` [N, d] and of ``e`` [M, d]."""
        return z.pow(2).sum(1, keepdim=True) - 2 * z @ e.t() + e.pow(2).sum(1)[None, :]

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for every row of ``z`` [N, d] → long [N]."""
        return self._dist2(z, self.embedding).argmin(dim=1)

    # ------------------------------------------------------------------ training updates
    @staticmethod
    def _all_reduce(t: torch.Tensor) -> torch.Tensor:
        if _distributed():
            dist.all_reduce(t)
        return t

    @staticmethod
    def _broadcast(t: torch.Tensor) -> torch.Tensor:
        if _distributed():
            dist.broadcast(t, src=0)
        return t

    def _sample_rows(self, z: torch.Tensor, n: int) -> torch.Tensor:
        """``n`` rows of ``z`` drawn with torch's global RNG (without replacement when possible)."""
        if z.shape[0] >= n:
            idx = torch.randperm(z.shape[0])[:n]
        else:
            idx = torch.randint(0, z.shape[0], (n,))
        rows = z[idx.to(z.device)].clone()
        return self._broadcast(rows)

    def _d2_rows(self, z: torch.Tensor, n: int, codes: torch.Tensor | None) -> torch.Tensor:
        """``n`` rows of ``z`` drawn ∝ squared distance to the nearest of ``codes`` (D² seeding).

        With ``codes=None`` the rows are picked one at a time, each new row joining the set the
        next distances are measured to (k-means++ seeding). Falls back to uniform draws where
        every distance is zero. Broadcast from rank 0 like :meth:`_sample_rows`.
        """
        if codes is None:
            picked = [int(torch.randint(0, z.shape[0], (1,)))]
            d2 = (z - z[picked[0]]).pow(2).sum(1)
            for _ in range(n - 1):
                w = d2 if float(d2.sum()) > 0 else torch.ones_like(d2)
                picked.append(int(torch.multinomial(w, 1)))
                d2 = torch.minimum(d2, (z - z[picked[-1]]).pow(2).sum(1))
            idx = torch.tensor(picked)
        else:
            d2 = self._dist2(z, codes).amin(1).clamp_min(0)
            w = d2 if float(d2.sum()) > 0 else torch.ones_like(d2)
            idx = torch.multinomial(w, n, replacement=bool((w > 0).sum() < n))
        return self._broadcast(z[idx.to(z.device)].clone())

    def _new_code_rows(self, z: torch.Tensor, n: int, codes: torch.Tensor | None) -> torch.Tensor:
        if self.code_sampling == "error":
            return self._d2_rows(z, n, codes)
        return self._sample_rows(z, n)

    @torch.no_grad()
    def _init_from(self, z: torch.Tensor) -> None:
        """Start every code at an encoder output of the first training batch (see ``code_sampling``)."""
        rows = self._new_code_rows(z, self.num_codes, None)
        if z.shape[0] < self.num_codes:  # repeated rows: separate them a little
            rows = rows + 0.01 * rows.std() * torch.randn(rows.shape).to(rows)
            rows = self._broadcast(rows)
        n = float(self._all_reduce(torch.tensor(float(z.shape[0]), device=z.device)))
        fresh = self._fresh_size(n)
        self.embedding.copy_(rows)
        self.embed_sum.copy_(rows * fresh)
        self.cluster_size.fill_(fresh)
        self.initialized.fill_(1)

    def _fresh_size(self, total: float) -> float:
        """EMA cluster size given to a new code: twice the dead threshold (uniform share if off).

        An unused fresh code therefore counts as dead again after ln 2 / (1-γ) steps (≈ 69
        for γ = 0.99), quickly enough to undo an early codebook collapse.
        """
        share = total / self.num_codes
        return share * (2 * self.dead_threshold if self.dead_threshold > 0 else 1.0)

    @torch.no_grad()
    def _ema_update(self, z: torch.Tensor, counts: torch.Tensor, onehot: torch.Tensor) -> int:
        sums = self._all_reduce(onehot.t() @ z)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        restarted = self._restart_dead(z)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.num_codes * self.eps) * n
        self.embedding.copy_(self.embed_sum / smoothed[:, None])
        return restarted

    @torch.no_grad()
    def _restart_dead(self, z: torch.Tensor) -> int:
        if self.dead_threshold <= 0:
            return 0
        total = self.cluster_size.sum()
        dead = self.cluster_size < self.dead_threshold * total / self.num_codes
        n_dead = int(dead.sum())  # identical on every process: cluster_size is all-reduced
        if n_dead == 0:
            return 0
        live = self.embedding[~dead] if bool((~dead).any()) else None
        rows = self._new_code_rows(z, n_dead, live)
        fresh = self._fresh_size(float(total))
        self.cluster_size[dead] = fresh
        self.embed_sum[dead] = rows * fresh
        return n_dead

    # ------------------------------------------------------------------ forward
    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """Quantise ``z`` [N, d]; in training mode also update the codebook (EMA + restarts)."""
        if z.dim() != 2 or z.shape[1] != self.dim:
            raise ValueError(f"quantiser expects [N, {self.dim}] vectors, got {tuple(z.shape)}")
        zf = z.float()
        restarted = 0
        if self.training and not bool(self.initialized):
            self._init_from(zf.detach())
        ids = self.nearest(zf.detach())
        e = self.embedding[ids].clone()  # the codes chosen now, before this step's EMA update
        onehot = F.one_hot(ids, self.num_codes).to(zf.dtype)
        with torch.no_grad():
            counts = onehot.sum(0)
            if self.training:  # eval may run on one process only: no collectives there
                counts = self._all_reduce(counts)
                restarted = self._ema_update(zf.detach(), counts, onehot)
            probs = counts / counts.sum().clamp_min(1)
            perplexity = float(torch.exp(-(probs * probs.clamp_min(1e-12).log()).sum()))
            usage = float((counts > 0).float().mean())
        commitment = F.mse_loss(zf, e)
        z_q = zf + (e - zf).detach()
        return QuantizerOutput(z_q=z_q.to(z.dtype), ids=ids, commitment=commitment,
                               perplexity=perplexity, usage=usage, restarted=restarted)
