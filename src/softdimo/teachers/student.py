"""One-step students: the student role shared by every kind, and softdimo's own :class:`OneStepStudent`.

A Di[M]O student θ has its teacher's architecture, tokenizer and conditioning (docs/method.md
§3.1); it differs in how it samples: one forward pass of the
:class:`~softdimo.mdm.OneStepSampler` (§3.9), no classifier-free guidance. :class:`StudentRole`
is that difference, mixed in before a kind's bundle class:

* the default sampler is a :class:`~softdimo.mdm.OneStepSampler` (the training r_init, σ and τ
  come from the folder's manifest);
* ``sample_ids`` is one forward pass;
* ``training_info`` is the distillation's provenance, stored in the manifest under
  ``"distillation"``.

:class:`OneStepStudent` is a native student (softdimo's folder, manifest ``student.json`` of kind
``dimo-student``); ``softdimo sample`` and ``softdimo eval`` recognise it. The MaskGIT and aMUSEd
kinds define their students the same way (:mod:`.maskgit`, :mod:`.amused`).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from ..mdm.onestep import OneStepSampler
from .folder import FolderBundle

MANIFEST = "student.json"
KIND = "dimo-student"


class StudentRole:
    """The one-step student's sampling and provenance, mixed in before an :class:`~.bundle.MDMBundle`."""

    MANIFEST = MANIFEST
    ROLE = "student"
    SAMPLER = OneStepSampler
    training_info: dict[str, Any]

    def default_sampler(self) -> OneStepSampler:
        return OneStepSampler()

    def set_training_info(self, training: dict[str, Any] | None) -> None:
        """The distillation's provenance (stored in the manifest under ``"distillation"``)."""
        self.training_info = dict(training or {})

    @torch.no_grad()
    def sample_ids(self, labels: torch.Tensor | Sequence[int] | None = None,
                   prompts: Sequence[str] | None = None, sampler: OneStepSampler | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """Token grids [B, L] from one forward pass (default sampler: :attr:`sampler`; no CFG)."""
        cond = self.encode_condition(labels=labels, prompts=prompts)  # type: ignore[attr-defined]
        return (sampler or self.sampler).sample(self, cond, int(cond.batch_size or 0), generator)  # type: ignore


class OneStepStudent(StudentRole, FolderBundle):
    """A Di[M]O student θ + the teacher's frozen tokenizer: a one-step generator in one folder."""

    KIND = KIND
    HOW_TO_MAKE = "the student folder written by `softdimo distill` (<run dir>/final) or a shipped checkpoints/dimo-*"

    def __init__(self, mdm: Any, tokenizer: Any, sampler: OneStepSampler | None = None,
                 training: dict[str, Any] | None = None) -> None:
        super().__init__(mdm, tokenizer, sampler)
        self.set_training_info(training)  # provenance, stored in student.json

    def manifest(self) -> dict[str, Any]:
        out = super().manifest()
        out["distillation"] = self.training_info
        return out

    def load_manifest_extras(self, manifest: dict[str, Any]) -> None:
        info = manifest.get("distillation")
        self.set_training_info(info if isinstance(info, dict) else None)


__all__ = ["StudentRole", "OneStepStudent", "MANIFEST", "KIND"]
