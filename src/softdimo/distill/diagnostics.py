"""Collapse diagnostics of a one-step student (docs/method.md §3.8).

A Di[M]O student can match the teacher's per-token marginals and still lose its images: it then
ignores x_init, draws every token from a broad per-position distribution, and its samples of one
condition all look alike. :func:`collapse_diagnostics` measures that, for a set of conditions
(class labels or prompts), with ``M`` student draws per condition:

* ``pixel_var``: within-condition diversity, Σ_pixels Var_m(image_m) of the decoded samples
  (images in [0, 1]; the trace of the per-condition pixel covariance), averaged over conditions;
* ``recall``: improved recall (k = 3) of a reference set of the same condition (e.g. the
  teacher's N-step samples) by the student's samples, on flattened pixels, averaged over
  conditions; how much of the reference the student covers. Only with ``reference``;
* ``teacher_nll``: the teacher's cross-entropy (conditional, no CFG) of the student's sampled
  tokens at exactly ``round(r·L)`` re-masked positions, r = ``remask_ratio``; how plausible the
  student's token grids are to the teacher;
* ``aux_nll`` and ``aux_minus_teacher``: ψ's cross-entropy on the same masked positions, and its
  gap to the teacher's. ψ must model the student's distribution; ψ no better than the teacher on
  the student's own samples means ψ lags the student and the Di[M]O gradient p_ψ − p_φ cannot see
  what the student does. Only with ``aux``;
* ``delta_fraction``: the fraction of tokens whose p_max > 0.99 (eval mode); the paper's students
  put about half of the tokens there;
* ``mutual_info``: I(x_init; x^i | c) per token, in nats, the dependence of the output on the
  initial state, estimated over the M draws as H(mean_m p_m^i) − mean_m H(p_m^i) (the exact MI of
  the student's output distributions under the empirical law of the M initial states; at most
  log M). Near 0: the student ignores x_init, its only source of diversity;
* ``entropy`` and ``p_max``: mean per-token entropy (nats) and p_max of softmax(z).

Everything runs without gradient, in eval mode (modes are restored), with the caller's generator.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check_ranges, knob
from ..eval.prdc import precision_recall
from ..mdm.masking import exact_count_mask
from .dimo import sample_tokens

DELTA_PMAX = 0.99  # a token is a near-delta when p_max exceeds this


@dataclass
class DiagnosticsConfig:
    """When and how `distill` and `refine` measure collapse (logged as ``diag/*`` with each sample grid)."""

    enabled: bool = True  # run :func:`collapse_diagnostics` at every ``train.sample_every`` step
    conditions: int = knob(10, ge=1)  # number of conditions (the first labels, or held-out prompts)
    per_condition: int = knob(16, ge=2)  # student draws per condition (mutual_info is at most log of this)
    remask_ratio: float = knob(0.5, gt=0, le=1)  # fraction of the student's tokens re-masked for teacher_nll / aux_nll
    reference_steps: int = knob(8, ge=0)  # teacher steps of the recall reference (per_condition samples each); 0 = no recall

    def __post_init__(self) -> None:
        check_ranges(self)


@contextmanager
def eval_mode(*modules: nn.Module | None) -> Iterator[None]:
    """Put ``modules`` in eval mode for the block and restore each one's mode afterwards."""
    mods = [m for m in modules if m is not None]
    modes = [m.training for m in mods]
    for m in mods:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(mods, modes):
            m.train(mode)


def repeat_inputs(inputs: dict[str, Any], m: int) -> dict[str, Any]:
    """``{"labels": [y]}`` or ``{"prompts": [p]}`` (one condition) → the same condition ``m`` times."""
    (key, value), = inputs.items()
    return {key: [list(value)[0]] * m}


def pixel_variance(images: torch.Tensor) -> float:
    """Σ_pixels Var_m(images_m): the trace of the pixel covariance of one condition's samples [M, C, H, W]."""
    return float(images.float().var(0).sum())


def _nll(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> float:
    return float(F.cross_entropy(logits[mask].float(), targets[mask]))


@torch.no_grad()
def collapse_diagnostics(student: Any, teacher: Any, conditions: Sequence[dict[str, Any]], per_condition: int = 16,
                         *, aux: nn.Module | None = None, reference: Sequence[torch.Tensor] | None = None,
                         remask_ratio: float = 0.5, temperature: float | None = None,
                         generator: torch.Generator | None = None) -> dict[str, float]:
    """The module docstring's diagnostics, averaged over ``conditions``.

    ``student``: a one-step student bundle (``sampler``, ``encode_condition``, ``embed``,
    ``forward``, ``decode``); ``teacher``: a teacher bundle of the same token space; ``conditions``:
    one ``{"labels": [y]}`` or ``{"prompts": [p]}`` per condition; ``reference``: per condition,
    images [R, C, H, W] in [0, 1] (e.g. teacher samples) for the recall; ``temperature``: τ of the
    token draw (None: the student sampler's).
    """
    if per_condition < 2:
        raise ValueError(f"per_condition must be ≥ 2 (variances and mutual information), got {per_condition}")
    if reference is not None and len(reference) != len(conditions):
        raise ValueError(f"reference holds {len(reference)} image sets for {len(conditions)} conditions")
    sampler = student.sampler
    tau = sampler.temperature if temperature is None else temperature
    k, m = int(student.num_tokens), per_condition
    rows: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        rows.setdefault(name, []).append(value)

    with eval_mode(student, teacher, aux):
        for c, inputs in enumerate(conditions):
            many = repeat_inputs(inputs, m)
            cond = student.encode_condition(**many)
            z = sampler.logits(student, sampler.initial_embeddings(student, m, generator), cond).float()
            logp = torch.log_softmax(z, -1)
            p = logp.exp()
            ent = -(p * logp).sum(-1)  # [M, L]
            p_bar = p.mean(0)  # [L, K]
            h_bar = -(p_bar * torch.log(p_bar.clamp_min(1e-30))).sum(-1)  # [L]
            pmax = p.max(-1).values
            add("entropy", float(ent.mean()))
            add("p_max", float(pmax.mean()))
            add("delta_fraction", float((pmax > DELTA_PMAX).float().mean()))
            add("mutual_info", float((h_bar - ent.mean(0)).mean()))
            x = sample_tokens(z, tau, generator)
            images = student.decode(x).float()
            add("pixel_var", pixel_variance(images))
            if reference is not None:
                ref = reference[c].float().reshape(reference[c].shape[0], -1)
                add("recall", precision_recall(ref, images.reshape(m, -1), k=3).recall)
            mask = exact_count_mask(m, x.shape[1], remask_ratio, generator=generator).to(x.device)
            x_t = torch.where(mask, torch.full_like(x, int(teacher.mask_id)), x)
            t_cond = teacher.encode_condition(**many)
            t_nll = _nll(teacher.forward(teacher.embed(x_t), t_cond)[..., :k], x, mask)
            add("teacher_nll", t_nll)
            if aux is not None:
                a_nll = _nll(aux(aux.embed(x_t), cond)[..., :k], x, mask)
                add("aux_nll", a_nll)
                add("aux_minus_teacher", a_nll - t_nll)
    return {name: sum(v) / len(v) for name, v in rows.items()}


def mutual_info_bound(per_condition: int) -> float:
    """The largest ``mutual_info`` :func:`collapse_diagnostics` can report with M draws: log M."""
    return math.log(per_condition)


__all__ = ["DiagnosticsConfig", "collapse_diagnostics", "pixel_variance", "eval_mode", "repeat_inputs", "mutual_info_bound", "DELTA_PMAX"]
