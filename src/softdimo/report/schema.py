"""Tolerant reading of results JSON files: a missing file, a malformed file or a missing key never crashes.

:class:`ResultsDir` opens files of a results folder by relative name (``"dimo_mnist.json"``,
``"domain/dimo_mnist_t1.json"``) and remembers which ones the report used. :class:`ResultsFile`
wraps one file: ``status`` is ``"ok"``, ``"missing"`` or ``"malformed"`` (not JSON, or not the
``{"name", "command", "metrics", …}`` object of :func:`softdimo.results.write_results`), and
:meth:`ResultsFile.get` looks up a dotted path, returning a default and recording the missing key in
``problems`` so that a section can say what is missing instead of failing.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .document import Source

REQUIRED_KEYS = ("name", "command", "metrics")
_MISSING = object()


@dataclass
class ResultsFile:
    """One results file, read tolerantly (module docstring)."""

    rel: str  # path relative to the results folder
    status: str = "missing"  # ok | missing | malformed
    error: str = ""
    doc: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    root: Path | None = None  # the results folder the file was read from (files it names are relative to it)

    @classmethod
    def read(cls, root: Path, rel: str) -> "ResultsFile":
        path = root / rel
        if not path.is_file():
            return cls(rel, "missing", "not yet measured", root=root)
        try:
            doc = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            return cls(rel, "malformed", f"not valid JSON ({e})", root=root)
        if not isinstance(doc, dict):
            return cls(rel, "malformed", f"holds a {type(doc).__name__}, not a results object", root=root)
        absent = [k for k in REQUIRED_KEYS if k not in doc]
        if absent:
            return cls(rel, "malformed", f"lacks {', '.join(absent)} (write it with softdimo.results.write_results)",
                       root=root)
        if not isinstance(doc["metrics"], dict):
            return cls(rel, "malformed", "its \"metrics\" is not an object", root=root)
        return cls(rel, "ok", "", doc, root=root)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def command(self) -> str:
        return str(self.doc.get("command") or "not stated")

    @property
    def commit(self) -> str:
        return str(self.doc.get("commit") or "")

    @property
    def metrics(self) -> dict[str, Any]:
        m = self.doc.get("metrics")
        return m if isinstance(m, dict) else {}

    def get(self, path: str, default: Any = None, kind: type | tuple[type, ...] | None = None,
            required: bool = True) -> Any:
        """The value at dotted ``path`` (from the document root, e.g. ``"metrics.floor.fid"``).

        Absent (or not of ``kind``) → ``default``, and, when ``required``, a line in ``problems``.
        """
        cur: Any = self.doc
        for part in path.split("."):
            if isinstance(cur, dict) and part in cur:
                cur = cur[part]
            else:
                cur = _MISSING
                break
        if cur is _MISSING or cur is None or (kind is not None and not isinstance(cur, kind)):
            if required and self.ok:
                what = "missing" if cur is _MISSING or cur is None else f"not a {_kind_name(kind)}"
                msg = f"{self.rel}: {path} is {what}"
                if msg not in self.problems:
                    self.problems.append(msg)
            return default
        return cur

    def source(self, evaluator: Any = None, n: Any = None) -> Source:
        """A :class:`Source` for numbers of this file (evaluator and N default to the file's own)."""
        ev = evaluator if evaluator not in (None, "") else self.metrics.get("evaluator")
        nn = n if n not in (None, "") else self.metrics.get("n")
        return Source(file=self.rel, command=self.command, evaluator=str(ev) if ev else "not stated",
                      n=str(nn) if nn not in (None, "") else "not stated", commit=self.commit)

    def row_source(self, row: dict[str, Any], metric: str | None = None) -> Source:
        """Source of a number in a result row.

        Evaluator: ``row.evaluators[metric]``, ``metrics.evaluators[metric]``, ``row.evaluator``, the file's.
        N: ``row.ns[metric]``, ``row.n``, the file's.
        """
        ev = None
        evs = row.get("evaluators")
        if metric and isinstance(evs, dict):
            ev = evs.get(metric)
        if ev is None and metric and isinstance(self.metrics.get("evaluators"), dict):
            ev = self.metrics["evaluators"].get(metric)
        if ev is None:
            ev = row.get("evaluator")
        n = None
        ns = row.get("ns")
        if metric and isinstance(ns, dict):
            n = ns.get(metric)
        if n is None:
            n = row.get("n")
        return self.source(ev, n)


def _kind_name(kind: Any) -> str:
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return getattr(kind, "__name__", str(kind))


class ResultsDir:
    """The results folder: files opened once, by relative name; :attr:`used` lists those the report read.

    ``overlay`` folders lie over ``root``: a file of the same relative name in a later overlay
    replaces the earlier one (e.g. a demo run's ``demo.json`` over the shipped benchmark results).
    """

    def __init__(self, root: str | Path, overlay: list[str | Path] | tuple[str | Path, ...] = ()) -> None:
        self.root = Path(root)
        self.roots = [self.root, *(Path(p) for p in overlay)]
        self._files: dict[str, ResultsFile] = {}
        self.used: list[str] = []

    def _root_of(self, rel: str) -> Path:
        """The last folder holding ``rel`` (``root`` when none does)."""
        for root in reversed(self.roots):
            if (root / rel).is_file():
                return root
        return self.root

    def file(self, rel: str) -> ResultsFile:
        f = self.peek(rel)
        if rel not in self.used:
            self.used.append(rel)
        return f

    def peek(self, rel: str) -> ResultsFile:
        """Like :meth:`file` but not marked as used."""
        if rel not in self._files:
            self._files[rel] = ResultsFile.read(self._root_of(rel), rel)
        return self._files[rel]

    def all_files(self) -> list[str]:
        """Every ``*.json`` under the folders (relative, sorted, each name once)."""
        found = {str(p.relative_to(r)) for r in self.roots if r.is_dir() for p in r.rglob("*.json") if p.is_file()}
        return sorted(found)

    def glob(self, pattern: str) -> list[str]:
        found = {str(p.relative_to(r)) for r in self.roots if r.is_dir() for p in r.glob(pattern) if p.is_file()}
        return sorted(found)

    def origin(self, rel: str) -> str:
        """The folder ``rel`` is read from, as text (for the inventory)."""
        return str(self._root_of(rel))


def as_float(value: Any) -> float | None:
    """``value`` as a float when it is a real number (not bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def points(obj: Any, y: str, x: str = "step") -> list[tuple[float, float]]:
    """(x, y) pairs from a list of point dicts ``[{x: …, y: …}]`` or parallel lists ``{x+"s"|x: […], y: […]}``."""
    out: list[tuple[float, float]] = []
    if isinstance(obj, list):
        for p in obj:
            if isinstance(p, dict):
                xv, yv = as_float(p.get(x)), as_float(p.get(y))
                if xv is not None and yv is not None:
                    out.append((xv, yv))
    elif isinstance(obj, dict):
        xs = obj.get(x + "s", obj.get(x))
        ys = obj.get(y)
        if isinstance(xs, list) and isinstance(ys, list):
            for xv, yv in zip(xs, ys):
                xf, yf = as_float(xv), as_float(yv)
                if xf is not None and yf is not None:
                    out.append((xf, yf))
        elif all(as_float(v) is not None for v in obj.values()) and obj:  # {"1": 65.1, "2": 26.1}
            for k, v in obj.items():
                try:
                    out.append((float(k), float(v)))
                except ValueError:
                    pass
    return sorted(out)


__all__ = ["ResultsFile", "ResultsDir", "as_float", "points", "REQUIRED_KEYS"]
