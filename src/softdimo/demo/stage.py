"""What one demo stage reports: a before → after number measured in the run, and pictures.

A :class:`StageResult` names its metric, which direction is better, the two measured values with
what each one is (``before_label``, ``after_label``), the evaluator and N, and whether the after
value is better (:attr:`StageResult.improved`: a plain comparison of the two measured numbers).
A stage too short to converge is a ``"curve"`` stage: its points (step, value) are the result,
before = step 0 and after = the last step. Pictures are :class:`Picture` objects: a few strips of
samples, one per model, with the same conditions and seed, saved as PNG files next to the
results JSON (:func:`save_strip`). :meth:`StageResult.to_json` is the stage's entry in
``demo.json`` (``metrics.stages``); ``softdimo report`` reads it back
(:mod:`softdimo.report.sections.demo`).
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..imageio import make_grid, save_image


@dataclass
class Strip:
    """One model's row of samples in a picture."""

    label: str  # e.g. "teacher-mnist, 16 steps"
    file: str  # PNG, relative to the results folder
    note: str = ""  # e.g. the sampler or the measured latency


@dataclass
class Picture:
    """Strips of several models with the same conditions and seed."""

    title: str
    conditions: list[str]
    strips: list[Strip] = field(default_factory=list)
    caption: str = ""


@dataclass
class StageResult:
    """One stage's measured before → after (module docstring)."""

    name: str  # short id, e.g. "soft_gan"
    title: str  # what the stage does, in words
    metric: str  # e.g. "domain FID"
    higher_is_better: bool
    before: float | None
    after: float | None
    before_label: str  # what "before" measures, e.g. "dimo-mnist (shipped), best τ"
    after_label: str
    evaluator: str  # the network / procedure that measured the numbers
    n: int | str  # sample count of each number
    kind: str = "result"  # result | curve (a short run shown as a learning curve)
    curve: list[dict[str, float]] = field(default_factory=list)  # [{"step": s, "value": v}, …]
    rows: list[dict[str, Any]] = field(default_factory=list)  # further measured numbers, one dict per row
    pictures: list[Picture] = field(default_factory=list)
    note: str = ""  # one or two sentences on what the numbers show
    seconds: float = 0.0  # wall time of the stage
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. standard errors, run folders

    @property
    def improved(self) -> bool:
        """True when ``after`` is better than ``before`` (both measured and finite)."""
        if self.before is None or self.after is None or not (math.isfinite(self.before) and math.isfinite(self.after)):
            return False
        return self.after > self.before if self.higher_is_better else self.after < self.before

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["improved"] = self.improved
        d["delta"] = None if self.before is None or self.after is None else self.after - self.before
        return d


def slug(text: str) -> str:
    """A file-name stem: lower case, [a-z0-9-] only."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("[m]", "m")).strip("-") or "x"


def save_strip(images: torch.Tensor, results: Path, stem: str, nrow: int) -> str:
    """Save ``images`` [N, C, H, W] in [0, 1] as one strip ``demo/<stem>.png``; returns its path relative to ``results``."""
    rel = Path("demo") / f"{slug(stem)}.png"
    save_image(make_grid(images.float().cpu(), nrow=nrow), results / rel)
    return rel.as_posix()


class Progress:
    """Numbered progress lines ("[3/7] …") with the time since the start."""

    def __init__(self, total: int, enabled: bool = True):
        self.k, self.total, self.enabled, self.t0 = 0, total, enabled, time.time()

    def __call__(self, what: str) -> None:
        self.k += 1
        if self.enabled:
            print(f"[{self.k}/{self.total}] {what} (+{time.time() - self.t0:.0f}s)", flush=True)

    def line(self, what: str) -> None:
        """A result line under the current step."""
        if self.enabled:
            print(f"      {what}", flush=True)


__all__ = ["Strip", "Picture", "StageResult", "save_strip", "slug", "Progress"]
