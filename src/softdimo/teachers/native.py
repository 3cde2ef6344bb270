"""The native teacher φ: our MDM and our VQ tokenizer as one Teacher (docs/architecture.md §3), one folder.

:class:`NativeTeacher` is an :class:`~softdimo.teachers.bundle.MDMBundle` (the Teacher-protocol
surface and the folder format, manifest ``teacher.json`` of kind ``native-teacher``) whose
``sample`` is the N-step MaskGIT sampler with CFG (docs/method.md §2.3) followed by ``decode``.
A one-step student's folder is refused here: a student cannot stand in for its teacher.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Sequence

import torch

from ..mdm import MaskedTransformer, MaskGITSampler
from ..pretrained import WEIGHTS_NAME
from .bundle import MDMBundle, check_compatible, read_manifest

MANIFEST = "teacher.json"
KIND = "native-teacher"


def default_sampler() -> MaskGITSampler:
    """The teacher's default sampler: 16 steps, arccos, τ 1, randomised confidence (1 → 0), CFG 2."""
    return MaskGITSampler(steps=16, schedule="arccos", temperature=1.0, confidence_noise=1.0,
                          confidence_noise_end=0.0, cfg_scale=2.0)


class NativeTeacher(MDMBundle):
    """MDM φ + frozen VQ tokenizer (+ frozen MiniLM for text): the Teacher protocol, one folder.

    ``sampler`` is the default :class:`~softdimo.mdm.MaskGITSampler` of :meth:`sample` (stored
    in ``teacher.json``).
    """

    KIND = KIND
    MANIFEST = MANIFEST
    SAMPLER = MaskGITSampler
    ROLE = "teacher"
    HOW_TO_MAKE = ("the teacher folder written by train-teacher (<run dir>/final) or a shipped "
                   "checkpoints/teacher-*")

    @classmethod
    def default_sampler(cls) -> MaskGITSampler:
        return default_sampler()

    @torch.no_grad()
    def sample_ids(self, labels: torch.Tensor | Sequence[int] | None = None,
                   prompts: Sequence[str] | None = None, sampler: MaskGITSampler | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """Token grids [B, L] from the MaskGIT sampler (default: :attr:`sampler`) with CFG."""
        cond = self.encode_condition(labels=labels, prompts=prompts)
        b = int(cond.batch_size or 0)
        sampler = sampler or self.sampler
        return sampler.sample(self, cond, self.null_condition(b), batch=b, generator=generator)

    # ------------------------------------------------------------------ distillation hooks
    def trainable_copy(self) -> MaskedTransformer:
        """A deep copy of the MDM: the start of the student θ and of the auxiliary ψ (§3.1)."""
        return copy.deepcopy(self.mdm)

    def load_network(self, path: str | os.PathLike) -> MaskedTransformer | None:
        """The MDM saved in ``path`` (e.g. a student folder's ``aux/``), None when it holds no weights."""
        path = Path(path)
        return MaskedTransformer.from_pretrained(path) if (path / WEIGHTS_NAME).is_file() else None

    def make_student(self, mdm: MaskedTransformer, sampler: Any, training: dict[str, Any]) -> Any:
        """``mdm`` with this teacher's tokenizer (and text encoder) as a one-step student."""
        from ..distill.student import OneStepStudent

        s = OneStepStudent(mdm, self.tokenizer, sampler, training=training)
        s.train(mdm.training)  # the bundle's mode is the MDM's (sampling restores it afterwards)
        if self.cond_kind == "text":
            s._text_encoder = self.text_encoder
        return s

    def load_student(self, path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
        """The one-step student folder ``path`` (``student.json`` of kind ``dimo-student``)."""
        from ..distill.student import OneStepStudent

        return OneStepStudent.from_pretrained(path, map_location=map_location)

    @classmethod
    def is_teacher_folder(cls, path) -> bool:
        """True when ``path`` holds a ``teacher.json`` of kind ``native-teacher``."""
        return cls.is_folder(path)


__all__ = ["NativeTeacher", "MANIFEST", "KIND", "default_sampler", "check_compatible", "read_manifest"]
