"""The generator folders of a checkpoints folder: each teacher and the one-step students distilled from it.

The demo, the report's sample grids and ``softdimo serve`` read whatever ``checkpoints/`` holds
instead of naming models: :func:`catalog` lists every generator folder directly under a folder
(its kind read through the registry, :func:`~softdimo.teachers.registry.read_kind`), and a
student's teacher is read from its provenance (``student.json`` → ``"distillation"`` →
``"teacher"``; a folder renamed since, :data:`~softdimo.paths.RENAMED_CHECKPOINTS`, is read under
its present name).
:func:`families` groups them: one :class:`Family` per teacher, with its students in name order. A
folder that is not a generator (a tokenizer, a reward) is left out.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SoftdimoError
from ..paths import present_name
from .bundle import read_manifest
from .registry import read_kind

_TEACHER_IN_TEXT = re.compile(r"""['"]teacher['"]\s*:\s*['"]([^'"]+)['"]""")


@dataclass
class Entry:
    """One generator folder."""

    name: str  # the folder's name, e.g. "dimo-mnist"
    path: Path
    kind: str  # manifest kind, e.g. "native-teacher", "dimo-student"
    role: str  # "teacher" or "student"
    cond: str  # "class" or "text"
    teacher: str = ""  # students: the name of the teacher folder they were distilled from ("" = unknown)
    title: str = ""  # the first heading of its MODEL_CARD.md, without the leading "name: "
    provenance: dict[str, Any] = field(default_factory=dict)  # students: the parsed "distillation" record


@dataclass
class Family:
    """A teacher and the students distilled from it."""

    teacher: Entry
    students: list[Entry] = field(default_factory=list)

    @property
    def cond(self) -> str:
        return self.teacher.cond

    @property
    def teacher_cfg(self) -> float | None:
        """The CFG scale the students were distilled against (None: unknown; use the teacher's default)."""
        for s in self.students:
            w = s.provenance.get("teacher_cfg")
            if isinstance(w, (int, float)) and not isinstance(w, bool):
                return float(w)
        return None


def provenance(info: Any) -> dict[str, Any]:
    """A student's ``"distillation"`` record as a dict (it may be stored as the text of one)."""
    if isinstance(info, str):
        try:
            info = ast.literal_eval(info)
        except (ValueError, SyntaxError):
            m = _TEACHER_IN_TEXT.search(info)
            return {"teacher": m.group(1)} if m else {}
    return dict(info) if isinstance(info, dict) else {}


def provenance_teacher(info: Any) -> str:
    """The teacher folder named by a student's ``"distillation"`` record (a dict, or its text form)."""
    teacher = provenance(info).get("teacher")
    return teacher if isinstance(teacher, str) else ""


def _title(path: Path) -> str:
    card = path / "MODEL_CARD.md"
    if not card.is_file():
        return ""
    for line in card.read_text(errors="replace").splitlines():
        if line.startswith("# "):
            text = line[2:].strip()
            return text.split(":", 1)[1].strip() if ":" in text else text
    return ""


def entry(path: str | Path) -> Entry | None:
    """The :class:`Entry` of one folder, or None when it is not a generator folder."""
    path = Path(path)
    try:
        kind = read_kind(path)
    except SoftdimoError:
        return None
    if kind is None:
        return None
    student = read_manifest(path, "student.json")
    manifest = student or read_manifest(path, "teacher.json") or {}
    cond = str(manifest.get("cond") or ("text" if "amused" in kind or "meissonic" in kind else "class"))
    record = provenance(student.get("distillation")) if student else {}
    teacher = present_name(Path(provenance_teacher(record)).name) if record else ""
    return Entry(path.name, path, kind, "student" if student is not None or kind.endswith("-student") else "teacher",
                 cond, teacher, _title(path), record)


def catalog(root: str | Path) -> list[Entry]:
    """Every generator folder directly under ``root``, in name order (an absent root: none)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = (entry(p) for p in sorted(root.iterdir()) if p.is_dir())
    return [e for e in found if e is not None]


def families(root: str | Path) -> list[Family]:
    """One :class:`Family` per teacher under ``root``; students whose teacher is elsewhere are left out."""
    entries = catalog(root)
    fams = {e.name: Family(e) for e in entries if e.role == "teacher"}
    for e in entries:
        if e.role == "student" and e.teacher in fams:
            fams[e.teacher].students.append(e)
    return list(fams.values())


__all__ = ["Entry", "Family", "catalog", "families", "entry", "provenance", "provenance_teacher"]
