"""The N-step MaskGIT sampler with classifier-free guidance (the teacher's sampler, docs/method.md §2.3).

Start from L mask tokens. At step k = 0..N−1 (annealing fraction s = k/(N−1), or 0 when N = 1):

1. logits: ``z = z_u + w_k·(z_c − z_u)`` (CFG, §3.5 notation) with ``z_c = f(embed(ids), cond)``
   and ``z_u = f(embed(ids), null_cond)``; for ``w_k == 1`` only the conditional pass runs;
2. candidates: ``x̂_i ~ Cat(softmax(z_i / τ_k))`` at every masked position (τ_k = 0: argmax);
3. confidence: ``c_i = log softmax(z_i)[x̂_i] + g_k·G_i``, G_i ~ Gumbel(0, 1) i.i.d. (randomised
   confidence; the log-probability is at temperature 1, the guided model's own belief);
4. commit the ``n_k`` masked positions of highest confidence; committed tokens are never rewritten.

``n_k`` follows :func:`softdimo.mdm.masking.commit_counts` (the schedule's γ(k/N); ≥ 1 per step,
sums to L), so after N steps no mask is left; N = 1 commits everything at once. τ, g and w are
each constant, or linear in s from the start value to the ``*_end`` value.

The reference teacher sampler of the paper (§2.3) is :meth:`MaskGITSampler.reference`: 16 steps,
arccos, temperature 1.3, randomised confidence, CFG 2.5.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..config import check_ranges, knob
from ..errors import ConfigError, DataError
from ..soft import gumbel_noise
from .masking import SCHEDULES, ScheduleName, commit_counts


@dataclass
class SamplerStep:
    """What one sampling step did (filled into ``trace`` when one is passed to ``sample``)."""

    step: int
    committed: int  # tokens committed at this step (per sample)
    ids: torch.Tensor  # the token grid after this step, [B, L] (a copy)
    temperature: float
    confidence_noise: float
    cfg_scale: float


def _lerp(start: float, end: float | None, s: float) -> float:
    return start if end is None else start + (end - start) * s


@dataclass
class MaskGITSampler:
    """Iterative confidence-based MaskGIT decoding with CFG; every knob is a field (and in repr)."""

    steps: int = knob(16, ge=1)  # N forward passes (each commits ≥ 1 token); 1 = commit all at once
    schedule: ScheduleName = "arccos"  # γ(t): fraction still masked after step k is γ(k/N)
    temperature: float = knob(1.0, ge=0)  # τ of the candidate draw at the first step (0 = argmax)
    temperature_end: float | None = knob(None, ge=0)  # τ at the last step, linear in between (None = constant)
    confidence_noise: float = knob(0.0, ge=0)  # scale g of the Gumbel noise added to log-confidences, first step
    confidence_noise_end: float | None = knob(0.0, ge=0)  # g at the last step (None = constant); annealed to 0 by default
    cfg_scale: float = knob(1.0, ge=0)  # guidance w at the first step; 1 = conditional pass only
    cfg_scale_end: float | None = knob(None, ge=0)  # w at the last step, linear in between (None = constant)

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"MaskGITSampler.steps must be an integer ≥ 1, got {self.steps!r}.")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"MaskGITSampler.schedule must be one of {', '.join(SCHEDULES)}, got "
                              f"{self.schedule!r}.")
        check_ranges(self)

    @classmethod
    def reference(cls, steps: int = 16, cfg_scale: float = 2.5) -> "MaskGITSampler":
        """The paper's MaskGit teacher sampler (§2.3): arccos, τ 1.3, randomised confidence, CFG 2.5.

        The randomisation scale (1.0, annealed to 0) is our choice; the paper gives none.
        """
        return cls(steps=steps, schedule="arccos", temperature=1.3, temperature_end=None,
                   confidence_noise=1.0, confidence_noise_end=0.0, cfg_scale=cfg_scale, cfg_scale_end=None)

    # ------------------------------------------------------------------ per-step knobs
    def _fraction(self, k: int) -> float:
        return k / (self.steps - 1) if self.steps > 1 else 0.0

    def temperature_at(self, k: int) -> float:
        return _lerp(self.temperature, self.temperature_end, self._fraction(k))

    def confidence_noise_at(self, k: int) -> float:
        return _lerp(self.confidence_noise, self.confidence_noise_end, self._fraction(k))

    def cfg_scale_at(self, k: int) -> float:
        return _lerp(self.cfg_scale, self.cfg_scale_end, self._fraction(k))

    # ------------------------------------------------------------------ one step's logits
    @staticmethod
    def guided_logits(model: Any, ids: torch.Tensor, cond: Any, null_cond: Any, scale: float) -> torch.Tensor:
        """``z_u + scale·(z_c − z_u)``; exactly one (conditional) forward pass when ``scale == 1``."""
        z_c = model.forward(model.embed(ids), cond)
        if scale == 1.0:
            return z_c
        if null_cond is None:
            raise DataError(f"cfg_scale={scale} needs a null condition: pass "
                            f"null_cond=model.null_condition(B), or use cfg_scale=1.")
        z_u = model.forward(model.embed(ids), null_cond)
        return z_u + scale * (z_c - z_u)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, model: Any, cond: Any = None, null_cond: Any = None, batch: int | None = None,
               generator: torch.Generator | None = None, trace: list[SamplerStep] | None = None) -> torch.Tensor:
        """Token ids [B, L] in [0, K) with no mask left.

        ``model`` is anything with ``embed``, ``forward(embeds, cond)``, ``num_tokens``,
        ``mask_id`` and ``grid`` (the Teacher protocol). ``batch`` defaults to the condition's
        batch size. The model is put in eval mode for the call and restored afterwards. If
        ``trace`` is a list, one :class:`SamplerStep` per step is appended to it.
        """
        if batch is None:
            batch = getattr(cond, "batch_size", None)
            if batch is None:
                raise DataError("sample needs batch=B when the condition does not tell the batch size.")
        h, w = model.grid
        length, k_img, mask_id = h * w, int(model.num_tokens), int(model.mask_id)
        counts = commit_counts(self.schedule, self.steps, length)
        device = model.embedding_table().device
        was_training = getattr(model, "training", False)
        if hasattr(model, "eval"):
            model.eval()
        try:
            ids = torch.full((batch, length), mask_id, dtype=torch.long, device=device)
            for k, n in enumerate(counts):
                tau, g, scale = self.temperature_at(k), self.confidence_noise_at(k), self.cfg_scale_at(k)
                logits = self.guided_logits(model, ids, cond, null_cond, scale).float()[..., :k_img]
                logp = torch.log_softmax(logits, dim=-1)
                if tau == 0:
                    cand = logits.argmax(-1)
                else:
                    cand = (logits / tau + gumbel_noise(logits.shape, generator, device)).argmax(-1)
                conf = logp.gather(-1, cand[..., None])[..., 0].clamp(min=-1e4)
                if g > 0:
                    conf = conf + g * gumbel_noise(conf.shape, generator, device)
                masked = ids == mask_id
                conf = conf.masked_fill(~masked, float("-inf"))
                pick = conf.topk(n, dim=-1).indices  # n ≤ masked count in every row
                ids = ids.scatter(1, pick, cand.gather(1, pick))
                if trace is not None:
                    trace.append(SamplerStep(k, n, ids.clone(), tau, g, scale))
        finally:
            if hasattr(model, "train"):
                model.train(was_training)
        return ids


__all__ = ["MaskGITSampler", "SamplerStep"]
