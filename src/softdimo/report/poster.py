"""The README's picture: every shipped teacher at N steps beside its one-step students, same conditions and seed.

:func:`draw_poster` reads the checkpoints folder (:func:`softdimo.teachers.catalog.families`) and
draws one panel per teacher: a row for the teacher at N steps (at the CFG scale its students were
distilled against), a row for the same teacher forced to one step, and a row per one-step student,
all on the same labels (0–9) or held-out prompts (one per GenEval tag) and the same seed, each row
labelled with its folder and sampler. ``python benchmarks/readme_figure.py`` redraws it when the
checkpoints change.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..imageio import make_grid, to_uint8
from ..sample import SamplingOptions, conditions_for, generate_images, heldout_prompts_interleaved, load_generator
from ..teachers.catalog import Family, families

SCALE = 3
LABEL_WIDTH = 300
PROMPTS = 6


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default()


def rows_of(fam: Family, steps: int) -> list[tuple[str, str, SamplingOptions | None]]:
    """(label, folder, sampler overrides) of one panel."""
    w = fam.teacher_cfg
    cfg = f", CFG {w:g}" if w is not None and w != 1 else ""
    t = str(fam.teacher.path)
    return ([(f"{fam.teacher.name}: {steps} steps{cfg}", t, SamplingOptions(steps=steps, cfg_scale=w)),
             (f"{fam.teacher.name}: 1 step{cfg}", t, SamplingOptions(steps=1, cfg_scale=w))]
            + [(f"{s.name}: 1 step", str(s.path), None) for s in fam.students])


def panel(fam: Family, steps: int, seed: int) -> Image.Image:
    """One teacher's panel (module docstring)."""
    if fam.cond == "class":
        spec, columns = {"labels": list(range(10))}, [str(i) for i in range(10)]
    else:
        prompts = [m["prompt"] for m in heldout_prompts_interleaved()[:PROMPTS]]
        spec, columns = {"prompts": prompts}, prompts
    strips = []
    for label, path, options in rows_of(fam, steps):
        gen = load_generator(path)
        images = generate_images(gen, conditions_for(gen, len(columns), **spec), options, seed=seed)
        arr = to_uint8(make_grid(images, nrow=len(columns), pad=1))
        arr = np.repeat(np.repeat(arr, SCALE, 0), SCALE, 1)
        strips.append((label, Image.fromarray(arr).convert("RGB")))
    width = LABEL_WIDTH + max(im.width for _, im in strips) + 8
    head = 26 if fam.cond == "class" else 26 + 14 * len(columns)
    height = head + sum(im.height + 6 for _, im in strips)
    out = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(out)
    title = "class-conditional (labels 0–9)" if fam.cond == "class" else "text-to-image (held-out prompts)"
    d.text((6, 4), f"{fam.teacher.name}, {title}; seed {seed}", fill="black", font=_font(15))
    if fam.cond != "class":
        for i, p in enumerate(columns):
            d.text((LABEL_WIDTH, 24 + 14 * i), f"column {i + 1}: {p}", fill="#333333", font=_font(11))
    y = head
    for label, im in strips:
        d.text((6, y + im.height // 2 - 8), label, fill="black", font=_font(14))
        out.paste(im, (LABEL_WIDTH, y))
        y += im.height + 6
    return out


def draw_poster(checkpoints: str | Path, out: str | Path, steps: int = 16, seed: int = 0) -> Path:
    """Draw every teacher's panel (module docstring) into one PNG at ``out``."""
    panels = [panel(f, steps, seed) for f in families(checkpoints) if f.students]
    if not panels:
        raise FileNotFoundError(f"no teacher with one-step students under {checkpoints}")
    width = max(p.width for p in panels)
    img = Image.new("RGB", (width, sum(p.height + 12 for p in panels)), "white")
    y = 0
    for p in panels:
        img.paste(p, (0, y))
        y += p.height + 12
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out, optimize=True)
    return out


__all__ = ["draw_poster", "panel", "rows_of"]
