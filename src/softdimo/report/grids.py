"""Side-by-side sample grids: the teacher at N steps vs Di[M]O vs Soft-Di[M]O, same conditions, same seed.

Every strip is drawn exactly as ``softdimo sample --model M [--steps N] --labels … --num K --seed S
--out strip.png`` draws it (:func:`softdimo.sample.conditions_for` + :func:`~softdimo.sample.generate_images`),
so the command printed under each strip reproduces it. Columns are the conditions (class labels, or
prompts), repeated ``per_condition`` times (one row each); every model gets the same conditions and
seed. :func:`default_specs` reads what the checkpoints folder holds
(:func:`softdimo.teachers.catalog.families`): each teacher at 1, 4 and 16 steps and every student
distilled from it; class models draw labels 0–9, text models the first held-out prompt of each
GenEval tag.
"""
from __future__ import annotations

import io
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from ..errors import SoftdimoError
from ..imageio import make_grid, to_uint8
from ..sample import SamplingOptions, conditions_for, generate_images, heldout_prompts_interleaved, load_generator
from ..teachers.catalog import families
from .document import GridRow, ImageGrid, Section, Source, Text
from .sections.common import sampler_text

TITLE = "Sample grids: each shipped teacher at N steps vs its one-step students"
TEACHER_STEPS = (1, 4, 16)


@dataclass
class GridModel:
    """One strip: a generator folder and its sampler overrides."""

    label: str
    path: str
    steps: int | None = None  # teacher steps (None: the model's default)


@dataclass
class GridSpec:
    """One side-by-side grid: models × the same conditions and seed."""

    name: str
    title: str
    models: list[GridModel]
    labels: list[int] | None = None
    prompts: list[str] | None = None
    per_condition: int = 2
    seed: int = 0
    missing: list[str] = field(default_factory=list)  # folders looked for but absent


def default_specs(checkpoints: str | Path, seed: int = 0) -> list[GridSpec]:
    """One grid per teacher under ``checkpoints`` with the students distilled from it (module docstring)."""
    out = []
    for fam in families(checkpoints):
        cond = ({"labels": list(range(10))} if fam.cond == "class" else
                {"prompts": [m["prompt"] for m in heldout_prompts_interleaved()[:6]]})
        models = [GridModel(f"{fam.teacher.name}, N={n}", str(fam.teacher.path), n) for n in TEACHER_STEPS] + \
            [GridModel(f"{s.name}, 1 step", str(s.path)) for s in fam.students]
        what = "labels" if "labels" in cond else "prompts"
        out.append(GridSpec(fam.teacher.name.removeprefix("teacher-"),
                            f"{fam.teacher.name} and its one-step students: same {what}, seed {seed}",
                            models, seed=seed, **cond))
    return out


def command_for(spec: GridSpec, model: GridModel, num: int) -> str:
    parts = ["softdimo", "sample", "--model", model.path]
    if model.steps is not None:
        parts += ["--steps", str(model.steps)]
    if spec.labels is not None:
        parts += ["--labels", ",".join(map(str, spec.labels))]
    else:
        parts += ["--prompts", *(spec.prompts or [])]
    stem = re.sub(r"[^a-z0-9]+", "-", re.sub(r"[\[\]]", "", model.label.lower())).strip("-")  # Di[M]O → dimo
    parts += ["--num", str(num), "--seed", str(spec.seed), "--out", f"{spec.name}-{stem}.png"]
    return " ".join(shlex.quote(p) for p in parts)


def png_bytes(image: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="PNG")
    return buf.getvalue()


def draw(spec: GridSpec, device: str | torch.device = "cpu", problems: list[str] | None = None) -> ImageGrid:
    """Sample every model of ``spec`` (module docstring) into one :class:`ImageGrid`."""
    conds_list = [str(x) for x in (spec.labels if spec.labels is not None else spec.prompts or [])]
    num = len(conds_list) * spec.per_condition
    grid = ImageGrid(spec.name, spec.title, conds_list,
                     caption=f"{spec.per_condition} rows per model: the conditions are cycled; seed {spec.seed}; "
                             f"each model's default sampler except the teacher's steps.")
    for m in spec.models:
        try:
            gen = load_generator(m.path, device)
            options = SamplingOptions(steps=m.steps) if m.steps is not None else None
            conds = conditions_for(gen, num, labels=spec.labels, prompts=spec.prompts)
            images = generate_images(gen, conds, options, seed=spec.seed)
        except SoftdimoError as e:
            if problems is not None:
                problems.append(f"{m.label} ({m.path}): {e}")
            continue
        strip = make_grid(images, nrow=len(conds_list))
        cmd = command_for(spec, m, num)
        src = Source(file="(drawn by the report)", command=cmd, evaluator="none (samples)", n=str(num))
        grid.rows.append(GridRow(m.label, sampler_text({"sampler": gen.describe(options)}) + f" ({m.path})",
                                 png_bytes(strip), src))
    return grid


def section(checkpoints: str | Path, seed: int = 0, device: str = "cpu",
            specs: list[GridSpec] | None = None) -> Section:
    """The grids section: one grid per spec with at least one model; what is absent is named."""
    s = Section(TITLE)
    for spec in specs if specs is not None else default_specs(checkpoints, seed):
        if not spec.models:
            s.problems.append(f"{spec.name}: no generator folders found ({', '.join(spec.missing)}); not drawn.")
            continue
        for path in spec.missing:
            s.problems.append(f"{spec.name}: `{path}` is absent; its strip is left out.")
        grid = draw(spec, device, s.problems)
        if grid.rows:
            s.blocks.append(grid)
    if not s.blocks:
        s.blocks.append(Text("No sample grids: no generator folders were found."))
    return s


__all__ = ["GridModel", "GridSpec", "default_specs", "draw", "section", "command_for", "TITLE"]
