"""Di[M]O one-step distillation (docs/method.md §3).

* :mod:`.dimo`: the equations — x_init, embedding noise, the generalised Jeffreys gradient, the
  surrogate and auxiliary losses;
* the one-step student it trains: :class:`~softdimo.teachers.OneStepStudent` (a model, in
  :mod:`softdimo.teachers`) and its :class:`~softdimo.mdm.OneStepSampler` (one forward pass),
  re-exported here;
* :mod:`.train`: ``softdimo distill``, the stage of the shared training loop.
"""
from __future__ import annotations

from .dimo import (finite_rows, hybrid_init, jeffreys_gradient, noise_embeddings, sample_tokens, sample_weights,
                   surrogate_loss)
from ..mdm.onestep import OneStepSampler
from ..teachers.student import OneStepStudent

__all__ = ["OneStepSampler", "OneStepStudent", "hybrid_init", "noise_embeddings", "sample_tokens",
           "jeffreys_gradient", "sample_weights", "surrogate_loss", "finite_rows"]
