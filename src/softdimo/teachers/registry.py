"""The one registry of model kinds: from a folder's manifest kind to the class that loads it.

Every kind of model — softdimo's own, the released MaskGIT, aMUSEd, Meissonic — is one
:class:`ModelKind` in :data:`KINDS`: its teacher class, its student class and how its teacher
folders are found. Distillation and refinement (``teacher_kind``), ``softdimo sample``,
``softdimo eval``, ``softdimo tteo``, ``softdimo bench`` and the report all load through it, so
**adding a teacher kind** is one module with its two bundle classes (on
:class:`~softdimo.teachers.bundle.MDMBundle`) and one entry here.

A folder's kind is the ``"kind"`` of its manifest (``teacher.json`` or ``student.json``: e.g.
``native-teacher``, ``dimo-student``, ``maskgit-teacher``, ``amused-student``), or, for a folder
without one, what a kind's ``detect`` recognises (a diffusers aMUSEd folder reads as
``amused-teacher``). ``teacher_kind`` in the distill/refine configs is ``"auto"`` (default) or a
kind's name; ``auto`` reads the folder. Meissonic is never guessed: its transformer class comes
from a checkout of Meissonic's code, which the caller names (``meissonic_code``). Loading never
imports an optional dependency until a folder of that kind loads (diffusers for aMUSEd).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import torch

from ..errors import CheckpointError, ConfigError, SoftdimoError
from .amused import AmusedStudent, AmusedTeacher, is_amused_folder
from .bundle import MDMBundle, read_manifest
from .maskgit import MaskGITStudent, MaskGITTeacher
from .meissonic import MeissonicTeacher, load_meissonic
from .native import NativeTeacher
from .protocol import Generator, Teacher
from .student import OneStepStudent

TeacherKind = Literal["auto", "native", "amused", "maskgit", "meissonic"]


@dataclass(frozen=True)
class ModelKind:
    """One kind of model: its classes and how its folders are recognised."""

    name: str  # the value of teacher_kind
    teacher: type[MDMBundle]  # loads the kind's teacher folders (from_pretrained)
    student: type[MDMBundle]  # loads the kind's one-step student folders
    markers: tuple[str, ...] = ("teacher.json",)  # files that mark one of its teacher folders
    detect: Callable[[Path], bool] | None = None  # recognises a teacher folder without a softdimo manifest
    auto: bool = True  # teacher_kind=auto and the manifest lookup may pick it
    lists_missing: bool = False  # its loader lists a folder's missing parts (a path not found is passed on)
    load: Callable[..., Any] | None = None  # a loader with extra arguments (default: teacher.from_pretrained)


DIFFUSERS_MARKERS = ("model_index.json", "transformer/config.json")
KINDS: dict[str, ModelKind] = {k.name: k for k in (
    ModelKind("native", NativeTeacher, OneStepStudent),
    ModelKind("maskgit", MaskGITTeacher, MaskGITStudent),
    ModelKind("amused", AmusedTeacher, AmusedStudent, markers=DIFFUSERS_MARKERS, detect=is_amused_folder,
              lists_missing=True),
    ModelKind("meissonic", MeissonicTeacher, AmusedStudent, markers=DIFFUSERS_MARKERS, auto=False,
              lists_missing=True, load=lambda path, device, code: load_meissonic(path, code, map_location=device)),
)}
TEACHER_KINDS: tuple[str, ...] = tuple(KINDS)


def model_classes() -> dict[str, type[MDMBundle]]:
    """Manifest kind (``native-teacher``, ``dimo-student``, …) → the class that loads such a folder."""
    out: dict[str, type[MDMBundle]] = {}
    for k in KINDS.values():
        if k.auto:
            out.setdefault(k.teacher.KIND, k.teacher)
            out.setdefault(k.student.KIND, k.student)
    return out


def manifest_files() -> tuple[str, ...]:
    """The manifest file names that mark a generator folder (``teacher.json``, ``student.json``)."""
    names = [cls.MANIFEST for cls in model_classes().values() if cls.MANIFEST]
    return tuple(dict.fromkeys(names))


def read_kind(path: str | os.PathLike) -> str | None:
    """The manifest kind of the generator folder ``path`` (None: not a generator folder)."""
    path = Path(path)
    if not path.is_dir():
        return None
    for name in manifest_files():
        data = read_manifest(path, name)
        if data is not None:
            kind = data.get("kind")
            if not isinstance(kind, str):
                raise CheckpointError(f"{path / name} has no \"kind\"; the model folder is corrupt.")
            return kind
    for k in KINDS.values():
        if k.auto and k.detect is not None and k.detect(path):
            return k.teacher.KIND
    return None


def model_class(kind: str, path: str | os.PathLike = "") -> type[MDMBundle]:
    """The class of folders of manifest kind ``kind`` (:class:`SoftdimoError` for an unknown kind)."""
    classes = model_classes()
    if kind not in classes:
        where = f"{path} holds a '{kind}', which" if path else f"'{kind}' is a kind"
        raise SoftdimoError(f"{where} softdimo cannot sample from; known kinds: {', '.join(classes)}.")
    return classes[kind]


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> Generator:
    """The teacher or student in the generator folder ``path``, by its manifest kind."""
    kind = read_kind(path)
    if kind is None:
        raise SoftdimoError(f"{path} is not a generator folder (expected one of {', '.join(manifest_files())}).")
    return model_class(kind, path).from_pretrained(path, map_location=device)


def detect_teacher_kind(path: str | os.PathLike) -> str | None:
    """The name of the kind of the teacher folder ``path`` (``native``, ``maskgit``, ``amused``), None
    when it is none of them."""
    path = Path(path)
    if (path / NativeTeacher.MANIFEST).is_file():
        try:
            manifest = read_manifest(path, NativeTeacher.MANIFEST) or {}
        except CheckpointError:
            return "native"  # the native loader reports the corrupt manifest
        found = [k.name for k in KINDS.values() if k.auto and k.teacher.KIND == manifest.get("kind")]
        return found[0] if found else "native"
    for k in KINDS.values():
        if k.auto and k.detect is not None and k.detect(path):
            return k.name
    return None


def resolve_kind(kind: str, path: str | os.PathLike) -> str:
    """``kind``, or the detected kind for ``"auto"`` (native when nothing is recognised, so that the
    native loader's message explains what a teacher folder is)."""
    if kind == "auto":
        return detect_teacher_kind(path) or "native"
    if kind not in KINDS:
        raise ConfigError(f"unknown teacher kind {kind!r}; choose one of auto, {', '.join(TEACHER_KINDS)}.")
    return kind


def teacher_markers() -> tuple[str, ...]:
    """The files that mark a teacher folder of any kind (in the order a folder search tries them)."""
    return tuple(dict.fromkeys(m for k in KINDS.values() for m in k.markers))


def lists_missing_parts(kind: str) -> bool:
    """Whether the loader of ``kind`` lists what a folder is missing (so a path not found is passed on)."""
    return kind in KINDS and KINDS[kind].lists_missing


def load_teacher(kind: str, path: str | os.PathLike, device: str | torch.device = "cpu",
                 meissonic_code: str | os.PathLike | None = None) -> Teacher:
    """The teacher of kind ``kind`` (``auto`` detects it) in folder ``path``.

    ``meissonic_code``: for ``meissonic``, the checkout of Meissonic's code that holds
    ``src/transformer.py`` (its ``Transformer2DModel``).
    """
    k = KINDS[resolve_kind(kind, path)]
    if k.load is not None:
        return k.load(path, device, meissonic_code)
    return k.teacher.from_pretrained(path, map_location=device)  # type: ignore[return-value]


__all__ = ["ModelKind", "KINDS", "TEACHER_KINDS", "TeacherKind", "model_classes", "manifest_files", "read_kind",
           "model_class", "load_model", "detect_teacher_kind", "resolve_kind", "teacher_markers",
           "lists_missing_parts", "load_teacher"]
