"""The one-step generator: a distilled student θ with its one-forward sampler (docs/method.md §3.9).

:class:`OneStepSampler` draws an image in one forward pass, exactly as training saw it (§3.2):

1. x_init = uniformly random image tokens with exactly max(1, round(r_init·L)) mask tokens;
2. e_in = √(1−σ²)·embed(x_init) + σ·s·ε  (the same r_init, σ and noise scale s as in training);
3. z = f_θ(e_in, c)  — one forward pass, no classifier-free guidance (the student never uses it);
4. x^i ~ Cat(softmax(z^i / τ)) independently per position (τ = 0: argmax), then decode.

τ is the main inference knob (§3.9: the distilled logits are very peaked; the ImageNet student's
FID is best near τ ≈ 7). :meth:`OneStepSampler.initial_embeddings` and :meth:`OneStepSampler.logits`
are exposed separately so that test-time embedding optimisation can treat e_in as a variable.

:class:`OneStepStudent` is an :class:`~softdimo.teachers.bundle.MDMBundle` (same architecture,
tokenizer and conditioning as the teacher) saved with manifest ``student.json`` of kind
``dimo-student``; ``softdimo sample`` and ``softdimo eval`` recognise it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ..errors import ConfigError
from ..teachers.bundle import MDMBundle
from .dimo import SigmaScale, embedding_rms, hybrid_init, noise_embeddings, sample_tokens

MANIFEST = "student.json"
KIND = "dimo-student"


@dataclass
class OneStepSampler:
    """One forward pass from a random, partly masked, noised initial state (module docstring)."""

    r_init: float = 0.6  # fraction of mask tokens in x_init (training's r_init)
    sigma: float = 0.1  # variance-preserving embedding noise σ (training's final σ)
    temperature: float = 1.0  # τ of the per-position token draw (0 = argmax)
    sigma_scale: SigmaScale = "absolute"  # σ in absolute units, or relative to the embeddings' rms (training's)

    def __post_init__(self) -> None:
        if not 0.0 <= self.r_init <= 1.0:
            raise ConfigError(f"OneStepSampler.r_init must be in [0, 1], got {self.r_init}.")
        if not 0.0 <= self.sigma <= 1.0:
            raise ConfigError(f"OneStepSampler.sigma must be in [0, 1], got {self.sigma}.")
        if self.temperature < 0:
            raise ConfigError(f"OneStepSampler.temperature must be ≥ 0, got {self.temperature}.")
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


class OneStepStudent(MDMBundle):
    """A Di[M]O student θ + the teacher's frozen tokenizer: a one-step generator in one folder."""

    KIND = KIND
    MANIFEST = MANIFEST
    SAMPLER = OneStepSampler
    ROLE = "student"
    HOW_TO_MAKE = "the student folder written by `softdimo distill` (<run dir>/final) or a shipped checkpoints/dimo-*"

    def __init__(self, mdm: Any, tokenizer: Any, sampler: OneStepSampler | None = None,
                 training: dict[str, Any] | None = None) -> None:
        super().__init__(mdm, tokenizer, sampler)
        self.training_info: dict[str, Any] = dict(training or {})  # provenance, stored in student.json

    @classmethod
    def default_sampler(cls) -> OneStepSampler:
        return OneStepSampler()

    @torch.no_grad()
    def sample_ids(self, labels: torch.Tensor | Sequence[int] | None = None,
                   prompts: Sequence[str] | None = None, sampler: OneStepSampler | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """Token grids [B, L] from one forward pass (default sampler: :attr:`sampler`)."""
        cond = self.encode_condition(labels=labels, prompts=prompts)
        return (sampler or self.sampler).sample(self, cond, int(cond.batch_size or 0), generator)

    def manifest(self) -> dict[str, Any]:
        out = super().manifest()
        out["distillation"] = self.training_info
        return out

    def load_manifest_extras(self, manifest: dict[str, Any]) -> None:
        info = manifest.get("distillation")
        self.training_info = dict(info) if isinstance(info, dict) else {}


__all__ = ["OneStepSampler", "OneStepStudent", "MANIFEST", "KIND"]
