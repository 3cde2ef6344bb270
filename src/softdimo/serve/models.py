"""The models behind ``softdimo serve``: load any generator folder by path, draw and time its images.

:class:`ModelPool` keeps the folders it has loaded (by resolved path) and offers the web page's two
actions without any web code, so that they are tested and used on their own:

* :meth:`ModelPool.compare`: a teacher at N steps and one-step students on the same labels or
  prompts and seed, each call timed (a warm-up draw when a model is first loaded, then the wall
  time of the call, per image);
* :meth:`ModelPool.tteo`: a one-step student drawn plainly and with TTEO + best-of-N
  (:func:`softdimo.tteo.tteo`, the shipped rewards of ``configs/world/tteo.yaml``), with the
  rewards of both and the time per image.

Conditions are text, as typed on the page: labels ``"3, 7"`` (or ``"3 7"``) for class models,
one prompt per line for text models (:func:`parse_conditions`); each model reads the kind it
needs. Every user mistake raises :class:`~softdimo.errors.DataError` with a message to show.
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import DataError
from ..paths import config_path, find_folder, project_root
from ..rewards import build_composite
from ..rewards.inputs import label_prompts
from ..sample import ImageGenerator, SamplingOptions, StudentGenerator, conditions_for, generate_images, load_generator
from ..teachers.catalog import Entry, catalog
from ..teachers.registry import manifest_files
from ..tteo import load_tteo_config, tteo

MAX_IMAGES = 64  # images per model and request


@dataclass
class Generation:
    """One model's images for a request, and how long they took."""

    label: str
    path: str
    kind: str  # manifest kind
    sampler: dict[str, Any]
    images: torch.Tensor  # [N, C, H, W] in [0, 1]
    seconds: float  # wall time of the call
    conditions: list[str] = field(default_factory=list)

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / max(1, self.images.shape[0])

    def summary(self) -> dict[str, Any]:
        return {"label": self.label, "folder": self.path, "kind": self.kind, "images": int(self.images.shape[0]),
                "seconds": self.seconds, "seconds_per_image": self.seconds_per_image,
                "steps": self.sampler.get("steps"), "cfg_scale": self.sampler.get("cfg_scale"),
                "temperature": self.sampler.get("temperature")}


def parse_conditions(text: str | None, cond: str, num_classes: int = 0) -> dict[str, list]:
    """``{"labels": […]}`` or ``{"prompts": […]}`` from the page's text for a ``cond`` model."""
    text = (text or "").strip()
    if cond == "class":
        if not text:
            return {"labels": list(range(num_classes or 10))}
        parts = [p for p in re.split(r"[,\s]+", text) if p]
        try:
            return {"labels": [int(p) for p in parts]}
        except ValueError as e:
            raise DataError(f"labels must be whole numbers separated by commas or spaces, e.g. 3, 7; got {text!r}.") from e
    prompts = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not prompts:
        raise DataError("type at least one prompt (one per line), e.g. a photo of a red 3.")
    return {"prompts": prompts}


class ModelPool:
    """Generator folders loaded by path, on one device (module docstring)."""

    def __init__(self, checkpoints: str | Path | None = None, device: str = "cpu") -> None:
        self.checkpoints = Path(checkpoints) if checkpoints is not None else project_root() / "checkpoints"
        self.device = device
        self._models: dict[str, ImageGenerator] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ folders
    def entries(self) -> list[Entry]:
        """Every generator folder of the checkpoints folder."""
        return catalog(self.checkpoints)

    def teachers(self) -> list[str]:
        return [str(e.path) for e in self.entries() if e.role == "teacher"]

    def students(self, teacher: str | None = None) -> list[str]:
        """Student folders (of ``teacher`` when given: the ones distilled from it)."""
        name = Path(teacher).name if teacher else None
        return [str(e.path) for e in self.entries() if e.role == "student" and (name is None or e.teacher == name)]

    def resolve(self, path: str) -> Path:
        """``path`` as a generator folder: as given, under the checkpoints folder, or under the project root."""
        text = (path or "").strip()
        if not text:
            raise DataError("choose a model or type the path of a teacher or student folder.")
        for marker in manifest_files():
            found = find_folder(text, marker) or find_folder(str(self.checkpoints / text), marker)
            if found is not None:
                return found.resolve()
        p = Path(text).expanduser()
        if p.is_dir():  # e.g. a diffusers folder without a softdimo manifest: the registry decides
            return p.resolve()
        raise DataError(f"{text!r} is not a generator folder (no {' or '.join(manifest_files())}); give a teacher or "
                        f"student folder, e.g. {self.checkpoints / 'teacher-mnist'}.")

    def load(self, path: str) -> tuple[ImageGenerator, Path]:
        """The generator of ``path`` (loaded once; the first load also draws one untimed warm-up image)."""
        folder = self.resolve(path)
        key = str(folder)
        with self._lock:
            if key not in self._models:
                gen = load_generator(folder, self.device)
                spec = parse_conditions("", gen.cond_kind, gen.num_classes) if gen.cond_kind == "class" else \
                    {"prompts": ["a photo of a 3"]}
                with torch.no_grad():
                    gen.generate(**{k: v[:1] for k, v in spec.items()}, generator=torch.Generator().manual_seed(0))
                self._models[key] = gen
            return self._models[key], folder

    # ------------------------------------------------------------------ actions
    def generate(self, path: str, text: str | None, options: SamplingOptions | None = None, seed: int = 0,
                 per_condition: int = 1, label: str | None = None) -> Generation:
        """Images of ``path`` for the conditions ``text`` (each repeated ``per_condition`` times), timed."""
        gen, folder = self.load(path)
        spec = parse_conditions(text, gen.cond_kind, gen.num_classes)
        base = spec.get("labels") or spec.get("prompts") or []
        num = len(base) * max(1, int(per_condition))
        if num > MAX_IMAGES:
            raise DataError(f"at most {MAX_IMAGES} images per model: {len(base)} conditions × {per_condition} is {num}.")
        conds = conditions_for(gen, num, **spec)
        t0 = time.perf_counter()
        with torch.no_grad():
            images = generate_images(gen, conds, options, seed=int(seed), batch_size=MAX_IMAGES)
        seconds = time.perf_counter() - t0
        return Generation(label or folder.name, str(folder), gen.kind, gen.describe(options), images, seconds,
                          [str(c) for c in base])

    def compare(self, teacher: str | None, students: Sequence[str], text: str | None, steps: int | None = 16,
                cfg_scale: float | None = None, seed: int = 0, per_condition: int = 1) -> list[Generation]:
        """The teacher at ``steps`` (and CFG) and every one-step student, same conditions and seed."""
        out = []
        if teacher:
            options = SamplingOptions(steps=int(steps) if steps else None, cfg_scale=cfg_scale)
            g = self.generate(teacher, text, options, seed, per_condition)
            g.label = f"{Path(g.path).name} · {g.sampler.get('steps')} steps" + \
                (f" · CFG {g.sampler['cfg_scale']:g}" if g.sampler.get("cfg_scale") not in (None, 1, 1.0) else "")
            out.append(g)
        for s in students:
            g = self.generate(s, text, None, seed, per_condition)
            g.label = f"{Path(g.path).name} · 1 step"
            out.append(g)
        if not out:
            raise DataError("choose a teacher or at least one student.")
        return out

    def tteo(self, student: str, text: str | None, iters: int = 2, best_of: int = 4, seed: int = 0
             ) -> tuple[Generation, Generation, dict[str, dict[str, float]]]:
        """Plain one-step images and TTEO + best-of-N images of ``student``; mean rewards of both."""
        gen, folder = self.load(student)
        if not isinstance(gen, StudentGenerator):
            raise DataError(f"{folder.name} is a '{gen.kind}'; TTEO optimises the input of a one-step student.")
        if int(iters) < 0 or int(best_of) < 1:
            raise DataError(f"TTEO needs iterations ≥ 0 and best-of ≥ 1, got {iters} and {best_of}.")
        plain = self.generate(student, text, None, seed)
        plain.label = f"{folder.name} · 1 step"
        cfg = load_tteo_config(config_path("world", "tteo.yaml"), iters=int(iters), best_of=int(best_of))
        rewards = build_composite(cfg.rewards, self.device)
        select = build_composite(cfg.select_rewards, self.device) if cfg.select_rewards else rewards
        spec = parse_conditions(text, gen.cond_kind, gen.num_classes)
        student_model = gen.student
        t0 = time.perf_counter()
        res = tteo(student_model, rewards, labels=spec.get("labels"), prompts=spec.get("prompts"), iters=cfg.iters,
                   lr=cfg.lr, best_of=cfg.best_of, select=select,
                   sampler=student_model.sampler_with(temperature=cfg.temperature),
                   soft_temperature=cfg.soft_temperature, generator=torch.Generator().manual_seed(int(seed)))
        seconds = time.perf_counter() - t0
        tuned = Generation(f"{folder.name} · TTEO {cfg.iters} steps, best of {cfg.best_of}", str(folder), "tteo",
                           {"steps": 1, "iters": cfg.iters, "best_of": cfg.best_of}, res.images, seconds,
                           plain.conditions)
        prompts = spec.get("prompts")
        with torch.no_grad():
            from_plain = select.score_terms(plain.images.to(self.device),
                                            prompts if prompts is not None else label_prompts(spec["labels"]))
        scores = {"one step": {k: float(v.float().mean()) for k, v in from_plain.items()},
                  "TTEO + best-of-N": {k: float(res.selected(k).mean()) for k in res.scores}}
        return plain, tuned, scores


__all__ = ["ModelPool", "Generation", "parse_conditions", "MAX_IMAGES"]
