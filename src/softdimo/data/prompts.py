"""Prompt lists: the digit world's held-out prompts in a balanced order, and prompts read from a file.

* :func:`heldout_prompts_interleaved`: the committed held-out prompts (GenEval metadata) with
  the six tags interleaved, so every prefix covers all of them (sample grids, ``softdimo sample``
  and ``softdimo eval`` defaults, the distillation's diagnostics);
* :func:`read_prompts_file`: ``.jsonl`` with one GenEval metadata object per line (each with a
  ``"prompt"``), or plain text with one prompt per line (``--prompts-file``, ``prompts_file``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..files import read_text
from .geneval import interleave_tags
from .world import heldout_prompts


def heldout_prompts_interleaved() -> list[dict[str, Any]]:
    """The digit world's held-out prompts with the tags interleaved (prompt i has tag i mod 6).

    The committed file lists its prompts tag by tag; interleaving makes every prefix balanced
    over the six GenEval tags, so ``--num N`` below the file's length still covers all of them.
    """
    return interleave_tags(heldout_prompts())


def read_prompts_file(path: str | Path) -> tuple[list[str], list[dict[str, Any]] | None]:
    """Prompts (and GenEval metadata for ``.jsonl``) from a file."""
    path = Path(path)
    lines = [ln for ln in read_text(path, "--prompts-file").splitlines() if ln.strip()]
    if not lines:
        raise DataError(f"--prompts-file {path} holds no prompts.")
    if path.suffix.lower() != ".jsonl":
        return [ln.strip() for ln in lines], None
    meta = []
    for k, ln in enumerate(lines, 1):
        try:
            m = json.loads(ln)
        except json.JSONDecodeError as e:
            raise DataError(f"{path} line {k} is not valid JSON ({e}).") from e
        if not isinstance(m, dict) or not isinstance(m.get("prompt"), str) or not m["prompt"].strip():
            raise DataError(f"{path} line {k}: each line must be a JSON object with a non-empty \"prompt\".")
        meta.append(m)
    return [m["prompt"] for m in meta], meta


__all__ = ["heldout_prompts_interleaved", "read_prompts_file"]
