"""Which kind of teacher a folder holds, and loading it: the one place a new teacher kind registers.

``teacher_kind`` in the distill/refine configs is ``"auto"`` (default), ``"native"``,
``"amused"``, ``"maskgit"`` or ``"meissonic"``. ``auto`` reads the folder: a ``teacher.json`` of
kind ``native-teacher`` → native (softdimo's own teacher), of kind ``maskgit-teacher`` → maskgit
(a converted MaskGIT, ``softdimo convert --kind maskgit``), an aMUSEd ``model_index.json`` or
``transformer/`` → amused. Meissonic is never guessed: its transformer class comes from a checkout
of Meissonic's code, which the caller names (``meissonic_code``). :func:`load_teacher` returns an
object that implements the Teacher protocol plus the distillation hooks (``trainable_copy``,
``make_student``, ``load_student``, ``load_network``); adapters are imported only when used, so
the native path never imports diffusers.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import torch

from ..errors import CheckpointError, ConfigError
from .bundle import read_manifest

TeacherKind = Literal["auto", "native", "amused", "maskgit", "meissonic"]
TEACHER_KINDS: tuple[str, ...] = ("native", "amused", "maskgit", "meissonic")
MANIFEST_KINDS = {"native-teacher": "native", "maskgit-teacher": "maskgit"}  # teacher.json "kind" → teacher kind


def detect_teacher_kind(path: str | os.PathLike) -> str | None:
    """``"native"``, ``"maskgit"`` or ``"amused"`` for a teacher folder, None when ``path`` is none of them."""
    path = Path(path)
    if (path / "teacher.json").is_file():
        try:
            manifest = read_manifest(path, "teacher.json") or {}
        except CheckpointError:
            return "native"  # the native loader reports the corrupt manifest
        return MANIFEST_KINDS.get(str(manifest.get("kind")), "native")
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


def load_teacher(kind: str, path: str | os.PathLike, device: str | torch.device = "cpu",
                 meissonic_code: str | os.PathLike | None = None) -> Any:
    """The teacher of kind ``kind`` (``auto`` detects it) in folder ``path``.

    ``meissonic_code``: for ``meissonic``, the checkout of Meissonic's code that holds
    ``src/transformer.py`` (its ``Transformer2DModel``).
    """
    kind = resolve_kind(kind, path)
    if kind == "amused":
        from .amused import AmusedTeacher

        return AmusedTeacher.from_pretrained(path, map_location=device)
    if kind == "maskgit":
        from .maskgit import MaskGITTeacher

        return MaskGITTeacher.from_pretrained(path, map_location=device)
    if kind == "meissonic":
        from .meissonic import load_meissonic

        return load_meissonic(path, meissonic_code, map_location=device)
    from .native import NativeTeacher

    return NativeTeacher.from_pretrained(path, map_location=device)


__all__ = ["TeacherKind", "TEACHER_KINDS", "detect_teacher_kind", "resolve_kind", "load_teacher"]
