"""The native teacher φ: our MDM and our VQ tokenizer as one Teacher (docs/architecture.md §3), one folder.

:class:`NativeTeacher` is a :class:`~softdimo.teachers.folder.FolderBundle` (the Teacher-protocol
surface and the folder format, manifest ``teacher.json`` of kind ``native-teacher``) whose
``sample`` is the N-step MaskGIT sampler with CFG (docs/method.md §2.3) followed by ``decode``.
Its students are :class:`~softdimo.teachers.student.OneStepStudent` folders. A one-step
student's folder is refused here: a student cannot stand in for its teacher.
"""
from __future__ import annotations

from typing import Any

from ..mdm import MaskedTransformer, MaskGITSampler
from .bundle import TeacherRole, check_compatible, read_manifest
from .folder import FolderBundle
from .student import OneStepStudent

MANIFEST = "teacher.json"
KIND = "native-teacher"


def default_sampler() -> MaskGITSampler:
    """The teacher's default sampler: 16 steps, arccos, τ 1, randomised confidence (1 → 0), CFG 2."""
    return MaskGITSampler(steps=16, schedule="arccos", temperature=1.0, confidence_noise=1.0,
                          confidence_noise_end=0.0, cfg_scale=2.0)


class NativeTeacher(TeacherRole, FolderBundle):
    """MDM φ + frozen VQ tokenizer (+ frozen MiniLM for text): the Teacher protocol, one folder.

    ``sampler`` is the default :class:`~softdimo.mdm.MaskGITSampler` of :meth:`sample` (stored
    in ``teacher.json``).
    """

    KIND = KIND
    MANIFEST = MANIFEST
    SAMPLER = MaskGITSampler
    STUDENT = OneStepStudent
    HOW_TO_MAKE = ("the teacher folder written by train-teacher (<run dir>/final) or a shipped "
                   "checkpoints/teacher-*")

    def default_sampler(self) -> MaskGITSampler:
        return default_sampler()

    def make_student(self, mdm: MaskedTransformer, sampler: Any, training: dict[str, Any]) -> OneStepStudent:
        """``mdm`` with this teacher's tokenizer (and text encoder) as a one-step student."""
        s = self.STUDENT(mdm, self.tokenizer, sampler, training=training)
        s.train(mdm.training)  # the bundle's mode is the MDM's (sampling restores it afterwards)
        if self.cond_kind == "text":
            s._text_encoder = self.text_encoder
        return s

    @classmethod
    def is_teacher_folder(cls, path) -> bool:
        """True when ``path`` holds a ``teacher.json`` of kind ``native-teacher``."""
        return cls.is_folder(path)


__all__ = ["NativeTeacher", "MANIFEST", "KIND", "default_sampler", "check_compatible", "read_manifest"]
