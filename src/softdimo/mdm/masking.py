"""Mask-ratio schedules, exact-count masking and the masked cross-entropy (docs/method.md §3.2, §3.4, §3.6).

**Training ratios** (docs/method.md §3.4). Draw ``u ~ U(0, 1)`` per sample and map it to a mask ratio:

=========  =========================  ====================================================
schedule   r(u)                       notes
=========  =========================  ====================================================
arccos     arccos(u) / (π/2)          MaskGit / Di[M]O default; P(r ≤ a) = 1 − cos(πa/2), E[r] = 2/π
cosine     cos(πu/2)                  Meissonic, used with the clamp [0.02, 0.98]
linear     u                          r uniform
=========  =========================  ====================================================

:class:`MaskSchedule` adds clamp knobs ``[min_ratio, max_ratio]`` (any schedule; defaults 0 and 1).

**Exact-count masking** (§3.2 step 2, §3.4): sample *b* gets exactly ``n_b = max(1, round(r_b·L))``
masked positions, chosen by a uniformly random permutation of the L positions — an exact count,
never a Bernoulli draw. ``round`` is round-half-to-even (``torch.round``, like Python's ``round``).

**Sampling (step) schedule.** :func:`mask_fraction` ``γ(t)`` is the fraction of the L positions
still masked at time ``t ∈ [0, 1]`` of the iterative MaskGIT sampler (γ(0) = 1, γ(1) = 0,
non-increasing). After step k of N, ``round(γ(k/N)·L)`` positions stay masked
(:func:`masked_after_steps`, adjusted so that every step commits at least one token).

*Choice of γ (documented decision).* We take γ equal to the schedule's own ratio map written as a
non-increasing function of time: γ_arccos(t) = arccos(t)/(π/2), γ_cosine(t) = cos(πt/2),
γ_linear(t) = 1 − t. Reason: the sampler visits the fractions γ(k/N), k = 0..N−1, spread evenly
in t, and with t ~ U(0, 1) the fraction γ(t) has exactly the training distribution of r(u) (for
linear, 1 − u and u have the same law). So the sampler feeds the model masking levels in the same
proportions it was trained on. MaskGIT's original paper pairs cosine training with
γ(t) = cos(πt/2), which is the same rule for the cosine schedule. The sampler's schedule is its
own knob, so cos(πt/2) can be used with an arccos-trained model by choosing ``"cosine"`` there.

**Masked cross-entropy** (§3.6): mean over the masked positions only of
``CE(logits_i, target_i)`` with label smoothing; unmasked positions contribute nothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from ..config import check_ranges, knob
from ..errors import ConfigError, DataError

ScheduleName = Literal["arccos", "cosine", "linear"]
SCHEDULES: tuple[str, ...] = ("arccos", "cosine", "linear")


def _check_name(name: str) -> None:
    if name not in SCHEDULES:
        raise ConfigError(f"unknown mask schedule {name!r}; choose one of {', '.join(SCHEDULES)}.")


@dataclass(frozen=True)
class MaskSchedule:
    """How training draws a mask ratio r from u ~ U(0, 1), clamped to [min_ratio, max_ratio]."""

    kind: ScheduleName = "arccos"  # the ratio map r(u) (table in the module docstring)
    min_ratio: float = knob(0.0, ge=0, le=1)  # lower clamp of r (Meissonic's cosine: 0.02)
    max_ratio: float = knob(1.0, ge=0, le=1)  # upper clamp of r (Meissonic's cosine: 0.98)

    def __post_init__(self) -> None:
        _check_name(self.kind)
        check_ranges(self)
        if not self.min_ratio <= self.max_ratio:
            raise ConfigError(f"mask schedule clamp must satisfy 0 ≤ min_ratio ≤ max_ratio ≤ 1, got "
                              f"[{self.min_ratio}, {self.max_ratio}].")

    @classmethod
    def maskgit(cls) -> "MaskSchedule":
        """arccos, unclamped (MaskGit teacher; Di[M]O's re-masking for MaskGit)."""
        return cls("arccos")

    @classmethod
    def meissonic(cls) -> "MaskSchedule":
        """cosine clamped to [0.02, 0.98] (Meissonic teacher)."""
        return cls("cosine", 0.02, 0.98)

    def ratio(self, u: torch.Tensor) -> torch.Tensor:
        """Mask ratios r(u) for uniform draws ``u`` in [0, 1], clamped."""
        return ratio(self, u)

    def sample(self, batch: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
        """Draw ``batch`` mask ratios: r(u), u ~ U(0, 1) (float32 [batch])."""
        if device is None:
            device = generator.device if generator is not None else "cpu"
        return self.ratio(torch.rand(batch, generator=generator, device=device))


def _raw_ratio(kind: str, u: torch.Tensor) -> torch.Tensor:
    u = u.clamp(0.0, 1.0)
    if kind == "arccos":
        return torch.arccos(u) / (math.pi / 2)
    if kind == "cosine":
        return torch.cos(u * (math.pi / 2))
    return u.clone()


def ratio(schedule: MaskSchedule | str, u: torch.Tensor | float) -> torch.Tensor:
    """Training mask ratio r(u) of ``schedule`` (a :class:`MaskSchedule` or a schedule name).

    A name means the unclamped schedule. The result is clamped to the schedule's
    [min_ratio, max_ratio] and always lies in [0, 1].
    """
    sched = MaskSchedule(schedule) if isinstance(schedule, str) else schedule
    u = torch.as_tensor(u, dtype=torch.float32)
    return _raw_ratio(sched.kind, u).clamp(sched.min_ratio, sched.max_ratio)


def mask_fraction(schedule: MaskSchedule | str, t: torch.Tensor | float) -> torch.Tensor:
    """γ(t): fraction still masked at sampling time t ∈ [0, 1]; γ(0) = 1, γ(1) = 0, non-increasing.

    Never clamped (the sampler must start all-mask and end mask-free). See the module docstring
    for why γ is the schedule's own ratio map.
    """
    kind = schedule if isinstance(schedule, str) else schedule.kind
    _check_name(kind)
    t = torch.as_tensor(t, dtype=torch.float64).clamp(0.0, 1.0)
    if kind == "linear":
        return 1.0 - t
    return _raw_ratio(kind, t)


def masked_after_steps(schedule: MaskSchedule | str, steps: int, length: int) -> list[int]:
    """Number of positions still masked after each step k = 0..N of an N-step sampler.

    ``m_0 = L``, ``m_N = 0`` and ``m_k = round(γ(k/N)·L)`` in between, then made strictly
    decreasing (each step commits ≥ 1 token) and ≥ N − k (each later step still has a token to
    commit). Requires 1 ≤ N ≤ L.
    """
    if steps < 1:
        raise ConfigError(f"the sampler needs at least 1 step, got steps={steps}.")
    if steps > length:
        raise ConfigError(f"steps={steps} is more than the {length} token positions; every step "
                          f"must commit at least one token. Use steps ≤ {length}.")
    t = torch.arange(steps + 1, dtype=torch.float64) / steps
    target = torch.round(mask_fraction(schedule, t) * length).long().tolist()
    m = [length]
    for k in range(1, steps + 1):
        m.append(max(min(int(target[k]), m[-1] - 1), steps - k))
    m[-1] = 0
    return m


def commit_counts(schedule: MaskSchedule | str, steps: int, length: int) -> list[int]:
    """Tokens committed at each of the N steps (sums to L; every entry ≥ 1)."""
    m = masked_after_steps(schedule, steps, length)
    return [m[k] - m[k + 1] for k in range(steps)]


def mask_counts(ratios: torch.Tensor | float, length: int) -> torch.Tensor:
    """``n = max(1, round(r·L))`` (long), the exact number of masked positions per sample."""
    r = torch.as_tensor(ratios, dtype=torch.float64)
    if bool(((r < 0) | (r > 1) | torch.isnan(r)).any()):
        raise DataError(f"mask ratios must lie in [0, 1], got values in "
                        f"[{float(r.min())}, {float(r.max())}].")
    return torch.round(r * length).long().clamp(1, length)


def exact_count_mask(batch: int, length: int, ratios: torch.Tensor | float,
                     generator: torch.Generator | None = None,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """Bool mask [batch, length] with exactly ``max(1, round(r_b·L))`` True entries in row b.

    ``ratios`` is a float or a [batch] tensor. The masked positions of each row are the first
    n_b entries of an independent uniformly random permutation of the positions.
    """
    if batch < 0 or length < 1:
        raise DataError(f"exact_count_mask needs batch ≥ 0 and length ≥ 1, got {batch}, {length}.")
    if device is None:
        device = generator.device if generator is not None else (
            ratios.device if isinstance(ratios, torch.Tensor) else "cpu")
    n = mask_counts(ratios, length).to(device)
    if n.dim() == 0:
        n = n.expand(batch)
    if n.shape != (batch,):
        raise DataError(f"ratios must be a float or a [{batch}] tensor, got shape {tuple(n.shape)}.")
    scores = torch.rand(batch, length, generator=generator, device=device)
    rank = scores.argsort(dim=1).argsort(dim=1)  # rank of each position in a random permutation
    return rank < n[:, None]


def masked_ce_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                   label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy averaged over masked positions only.

    ``logits`` [B, L, K], ``targets`` long [B, L] in [0, K), ``mask`` bool [B, L] (True = the
    position was masked and is scored). Returns a scalar; 0 (still attached to the graph) when
    nothing is masked.
    """
    if logits.dim() != 3 or targets.shape != logits.shape[:2] or mask.shape != logits.shape[:2]:
        raise DataError(f"masked_ce_loss expects logits [B, L, K], targets [B, L] and mask [B, L]; "
                        f"got {tuple(logits.shape)}, {tuple(targets.shape)}, {tuple(mask.shape)}.")
    if not 0.0 <= label_smoothing < 1.0:
        raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing}.")
    mask = mask.bool()
    if not bool(mask.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[mask].float(), targets[mask].long(), label_smoothing=label_smoothing)


__all__ = ["MaskSchedule", "ScheduleName", "SCHEDULES", "ratio", "mask_fraction", "masked_after_steps",
           "commit_counts", "mask_counts", "exact_count_mask", "masked_ce_loss"]
