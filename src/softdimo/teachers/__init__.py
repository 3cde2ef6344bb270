"""Teachers: the Teacher protocol (docs/architecture.md §3) and the native MDM + VQ teacher.

* :mod:`.protocol`: :class:`Teacher`, the surface distillation code uses (embeddings in, logits
  out; conditions; decode and the differentiable decode_soft);
* :mod:`.native`: :class:`NativeTeacher`, our :class:`~softdimo.mdm.MaskedTransformer` with
  our frozen :class:`~softdimo.tokenizer.VQTokenizer`, saved and loaded as one folder;
* :mod:`.amused`: :class:`~softdimo.teachers.amused.AmusedTeacher`, a local aMUSEd (diffusers)
  folder as a teacher (:mod:`.meissonic`: Meissonic, with the transformer of the user's code checkout);
* :mod:`.maskgit`: :class:`~softdimo.teachers.maskgit.MaskGITTeacher`, the released MaskGIT
  (:mod:`.maskgit_net`) with taming's VQGAN (:mod:`.vqgan`), converted from the published files by
  :mod:`.maskgit_convert` (``softdimo convert --kind maskgit``);
* :mod:`.registry`: :func:`load_teacher` / :func:`detect_teacher_kind` (``teacher_kind``).

Teachers are trained by ``softdimo train-teacher`` (:mod:`softdimo.mdm.train`) and sampled by
``softdimo sample`` (:mod:`softdimo.sample`) and ``softdimo eval --model TEACHER_DIR``.
"""
from __future__ import annotations

from .bundle import MDMBundle
from .native import KIND, MANIFEST, NativeTeacher, check_compatible, default_sampler, read_manifest
from .protocol import CondKind, Teacher
from .registry import TEACHER_KINDS, TeacherKind, detect_teacher_kind, load_teacher

__all__ = ["Teacher", "CondKind", "MDMBundle", "NativeTeacher", "KIND", "MANIFEST", "default_sampler", "check_compatible",
           "read_manifest", "TEACHER_KINDS", "TeacherKind", "detect_teacher_kind", "load_teacher"]
