"""Teachers and their one-step students: every kind of model behind the Teacher protocol (docs/architecture.md §3).

* :mod:`.protocol`: :class:`Teacher` and :class:`Student`, the surface the stages use (embeddings
  in, logits out; conditions; decode and the differentiable decode_soft; sampling; the
  distillation hooks);
* :mod:`.bundle`: :class:`MDMBundle`, the shared base of every kind (a network + its frozen
  tokenizer + a default sampler);
* :mod:`.folder`: :class:`FolderBundle`, softdimo's own folder format (manifest, ``mdm/``,
  ``tokenizer/``) with class labels or MiniLM prompts;
* :mod:`.native`: :class:`NativeTeacher`, our :class:`~softdimo.mdm.MaskedTransformer` with our
  frozen :class:`~softdimo.tokenizer.VQTokenizer`; :mod:`.student`: its one-step
  :class:`OneStepStudent` and the student role every kind shares;
* :mod:`.maskgit`: the released MaskGIT (:mod:`.maskgit_net`) with taming's VQGAN (:mod:`.vqgan`),
  converted from the published files by :mod:`.maskgit_convert` (``softdimo convert --kind maskgit``);
* :mod:`.amused`: a local aMUSEd (diffusers) folder (:mod:`.meissonic`: Meissonic, with the
  transformer of the user's code checkout);
* :mod:`.registry`: the one registry of kinds — :func:`load_teacher`, :func:`load_model`,
  :func:`read_kind`, :func:`detect_teacher_kind` (``teacher_kind``);
* :mod:`.train`: ``softdimo train-teacher``, the stage that trains a native teacher.

Teachers are sampled by ``softdimo sample`` (:mod:`softdimo.sample`) and ``softdimo eval --model
TEACHER_DIR``; students by the same commands and ``softdimo tteo``.
"""
from __future__ import annotations

from .bundle import MDMBundle, check_compatible, read_manifest
from .folder import FolderBundle
from .native import KIND, MANIFEST, NativeTeacher, default_sampler
from .protocol import CondKind, Generator, Student, Teacher
from .registry import (KINDS, TEACHER_KINDS, ModelKind, TeacherKind, detect_teacher_kind, load_model, load_teacher,
                       model_class, read_kind)
from .student import OneStepStudent, StudentRole

__all__ = ["Teacher", "Student", "Generator", "CondKind", "MDMBundle", "FolderBundle", "NativeTeacher",
           "OneStepStudent", "StudentRole", "KIND", "MANIFEST", "default_sampler", "check_compatible",
           "read_manifest", "KINDS", "TEACHER_KINDS", "ModelKind", "TeacherKind", "detect_teacher_kind",
           "load_teacher", "load_model", "model_class", "read_kind"]
