"""Which kind of teacher a folder holds, and loading it: the one place a new teacher kind registers.

``teacher_kind`` in the distill/refine configs is ``"auto"`` (default), ``"native"`` or
``"amused"``. ``auto`` reads the folder: ``teacher.json`` → native (softdimo's own teacher), an
aMUSEd ``model_index.json`` or ``transformer/`` → amused. :func:`load_teacher` returns an object
that implements the Teacher protocol plus the distillation hooks (``trainable_copy``,
``make_student``, ``load_student``, ``load_network``); adapters are imported only when used, so
the native path never imports diffusers.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import torch

from ..errors import ConfigError

TeacherKind = Literal["auto", "native", "amused"]
TEACHER_KINDS: tuple[str, ...] = ("native", "amused")


def detect_teacher_kind(path: str | os.PathLike) -> str | None:
    """``"native"`` or ``"amused"`` for a teacher folder, None when ``path`` is neither."""
    path = Path(path)
    if (path / "teacher.json").is_file():
        return "native"
    from .amused import is_amused_folder

    return "amused" if is_amused_folder(path) else None


def resolve_kind(kind: str, path: str | os.PathLike) -> str:
    """``kind``, or the detected kind for ``"auto"`` (native when nothing is recognised, so that the
    native loader's message explains what a teacher folder is)."""
    if kind == "auto":
        return detect_teacher_kind(path) or "native"
    if kind not in TEACHER_KINDS:
        raise ConfigError(f"unknown teacher kind {kind!r}; choose one of auto, {', '.join(TEACHER_KINDS)}.")
    return kind


def load_teacher(kind: str, path: str | os.PathLike, device: str | torch.device = "cpu") -> Any:
    """The teacher of kind ``kind`` (``native`` or ``amused``; ``auto`` detects it) in folder ``path``."""
    kind = resolve_kind(kind, path)
    if kind == "amused":
        from .amused import AmusedTeacher

        return AmusedTeacher.from_pretrained(path, map_location=device)
    from .native import NativeTeacher

    return NativeTeacher.from_pretrained(path, map_location=device)


__all__ = ["TeacherKind", "TEACHER_KINDS", "detect_teacher_kind", "resolve_kind", "load_teacher"]
