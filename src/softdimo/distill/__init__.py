"""Di[M]O one-step distillation (docs/method.md §3).

* :mod:`.dimo`: the equations — x_init, embedding noise, the generalised Jeffreys gradient, the
  surrogate and auxiliary losses;
* :mod:`.student`: :class:`OneStepStudent` and its :class:`OneStepSampler` (one forward pass);
* :mod:`.train`: ``softdimo distill``, the stage of the shared training loop.
"""
from __future__ import annotations

from .dimo import (finite_rows, hybrid_init, jeffreys_gradient, noise_embeddings, sample_tokens, sample_weights,
                   surrogate_loss)
from .student import OneStepSampler, OneStepStudent

__all__ = ["OneStepSampler", "OneStepStudent", "hybrid_init", "noise_embeddings", "sample_tokens",
           "jeffreys_gradient", "sample_weights", "surrogate_loss", "finite_rows"]
