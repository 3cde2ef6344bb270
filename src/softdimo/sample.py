"""`softdimo sample`: images from a generator folder (an N-step teacher or a one-step student).

A *generator folder* is recognised by its manifest kind (``teacher.json`` / ``student.json``, or
a diffusers aMUSEd folder), which the one registry of model kinds
(:mod:`softdimo.teachers.registry`) maps to the class that loads it. :func:`load_generator` wraps
the model as an :class:`ImageGenerator`: something that turns labels or prompts into images in
[0, 1] under :class:`SamplingOptions` (steps, CFG scale, temperature; None = the model's own
default). A new kind registered there is sampled here without any change.

What is sampled (:func:`conditions_for`):

* ``--labels 0,1,2`` (class generators) or ``--prompts "…" …`` / ``--prompts-file F`` (text
  generators; F is ``.jsonl`` with one GenEval metadata object per line, each with a
  ``"prompt"``, or plain text with one prompt per line);
* with none of them: labels 0..K−1 round-robin, or the committed held-out prompts of the digit
  world (:func:`softdimo.data.heldout_prompts`) with their six tags interleaved, cycled;
* ``--num N`` repeats the list round-robin up to N images (default: the list's length, or 16).

Output (:func:`write_outputs`): ``--out X.png`` writes one grid; any other ``--out`` is a folder
of ``000000.png, 000001.png, …`` plus ``samples.json`` (model, sampler, seed, conditions) and,
when the prompts carry GenEval metadata (held-out set or a JSONL file), ``metadata.jsonl`` in
image order (what ``softdimo eval --metrics geneval`` reads). Existing outputs are never
overwritten without ``--overwrite``.
"""
from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import torch

from tqdm.auto import tqdm

from .config import check_ranges, knob, resolve_device
from .data import heldout_prompts_interleaved, read_prompts_file
from .errors import DataError, SoftdimoError
from .files import check_writable
from .imageio import make_grid, save_image
from .pretrained import atomic_write_bytes
from .teachers import StudentRole
from .teachers.registry import manifest_files, model_class, read_kind

DEFAULT_NUM = 16
_OWN_FILE = re.compile(r"^\d{6}\.png$")


@dataclass
class SamplingOptions:
    """Overrides of a generator's default sampler (None = keep the model's default)."""

    steps: int | None = knob(None, ge=1)  # sampler steps N (iterative teachers); one-step generators accept 1 only
    cfg_scale: float | None = knob(None, ge=0)  # classifier-free guidance scale w (1 = no guidance)
    temperature: float | None = knob(None, ge=0)  # temperature of the token draws

    def __post_init__(self) -> None:
        check_ranges(self, flags={"cfg_scale": "--cfg"})


class ImageGenerator(Protocol):
    """What `softdimo sample` and `softdimo eval` need from a generator folder."""

    kind: str  # the manifest kind, e.g. "native-teacher"
    cond_kind: str  # "class" or "text"
    num_classes: int  # class generators: labels are 0..num_classes-1 (0 for text)

    def generate(self, labels: Sequence[int] | None = None, prompts: Sequence[str] | None = None,
                 options: SamplingOptions | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Images [B, C, H, W] in [0, 1] for B labels or B prompts."""
        ...

    def describe(self, options: SamplingOptions | None = None) -> dict[str, Any]:
        """The sampler's knobs as plain data (for samples.json and results)."""
        ...


class TeacherGenerator:
    """A :class:`~softdimo.teachers.NativeTeacher` as an :class:`ImageGenerator` (MaskGIT sampler)."""

    kind = "native-teacher"

    def __init__(self, teacher: Any) -> None:
        self.teacher = teacher
        self.cond_kind = teacher.cond_kind
        self.num_classes = teacher.num_classes

    def sampler(self, options: SamplingOptions | None = None) -> Any:
        o = options or SamplingOptions()
        return self.teacher.sampler_with(steps=o.steps, cfg_scale=o.cfg_scale, temperature=o.temperature)

    def generate(self, labels: Sequence[int] | None = None, prompts: Sequence[str] | None = None,
                 options: SamplingOptions | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        return self.teacher.sample(labels=labels, prompts=prompts, sampler=self.sampler(options),
                                   generator=generator)

    def describe(self, options: SamplingOptions | None = None) -> dict[str, Any]:
        return {"sampler": "MaskGITSampler", **asdict(self.sampler(options))}


class StudentGenerator:
    """A one-step :class:`~softdimo.distill.OneStepStudent` as an :class:`ImageGenerator`.

    One forward pass, no CFG: ``steps`` other than 1 and ``cfg_scale`` other than 1 are refused.
    """

    kind = "dimo-student"

    def __init__(self, student: Any) -> None:
        self.student = student
        self.cond_kind = student.cond_kind
        self.num_classes = student.num_classes

    def sampler(self, options: SamplingOptions | None = None) -> Any:
        o = options or SamplingOptions()
        if o.steps not in (None, 1):
            raise DataError(f"this is a one-step student: --steps must be 1 (or left out), got {o.steps}.")
        if o.cfg_scale not in (None, 1.0):
            raise DataError(f"a one-step student samples without classifier-free guidance; --cfg must be 1 "
                            f"(or left out), got {o.cfg_scale}.")
        return self.student.sampler_with(temperature=o.temperature)

    def generate(self, labels: Sequence[int] | None = None, prompts: Sequence[str] | None = None,
                 options: SamplingOptions | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        return self.student.sample(labels=labels, prompts=prompts, sampler=self.sampler(options),
                                   generator=generator)

    def describe(self, options: SamplingOptions | None = None) -> dict[str, Any]:
        return {"sampler": "OneStepSampler", "steps": 1, "cfg_scale": 1.0, **asdict(self.sampler(options))}


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> ImageGenerator:
    """Load the generator folder ``path`` by its manifest kind (:mod:`softdimo.teachers.registry`)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"--model {path} does not exist. Pass a teacher folder (train-teacher's "
                        f"<run dir>/final) or a one-step generator folder.")
    kind = read_kind(path)
    if kind is None:
        what = "a single model (tokenizer/classifier?)" if (path / "config.json").is_file() else "no manifest"
        raise SoftdimoError(f"{path} is not a generator folder softdimo can sample from ({what}; expected "
                            f"one of {', '.join(manifest_files())}). Pass a teacher or student folder.")
    model = model_class(kind, path).from_pretrained(path, map_location=device)
    gen = StudentGenerator(model) if isinstance(model, StudentRole) else TeacherGenerator(model)
    gen.kind = kind
    return gen


# ---------------------------------------------------------------------- conditions
@dataclass
class Conditions:
    """One condition per image: labels or prompts, and GenEval metadata where known."""

    labels: list[int] | None = None
    prompts: list[str] | None = None
    metadata: list[dict[str, Any]] | None = None
    distinct: int = 1  # length of the list before cycling (used for the grid layout)

    def __len__(self) -> int:
        return len(self.labels if self.labels is not None else self.prompts or [])

    def slice(self, i: int, j: int) -> "Conditions":
        cut = lambda x: None if x is None else x[i:j]  # noqa: E731
        return Conditions(cut(self.labels), cut(self.prompts), cut(self.metadata), self.distinct)


def _cycle(items: list, num: int) -> list:
    return [items[i % len(items)] for i in range(num)]


def parse_labels(text: str) -> list[int]:
    """``"0,1,2"`` → [0, 1, 2]."""
    try:
        labels = [int(t) for t in text.replace(" ", "").split(",") if t != ""]
    except ValueError as e:
        raise DataError(f"--labels {text!r}: give comma-separated integers, e.g. --labels 0,1,2.") from e
    if not labels:
        raise DataError("--labels is empty; give comma-separated integers, e.g. --labels 0,1,2.")
    return labels


def conditions_for(gen: ImageGenerator, num: int | None = None, labels: Sequence[int] | None = None,
                   prompts: Sequence[str] | None = None,
                   metadata: Sequence[dict[str, Any]] | None = None) -> Conditions:
    """The conditions of ``num`` images (module docstring for the defaults)."""
    if num is not None and num < 1:
        raise DataError(f"--num must be at least 1, got {num}.")
    if labels is not None and prompts is not None:
        raise DataError("give either labels or prompts, not both.")
    if gen.cond_kind == "class":
        if prompts is not None:
            raise DataError(f"this model is class-conditional ({gen.num_classes} classes): use --labels, "
                            f"not prompts.")
        base = list(labels) if labels is not None else list(range(gen.num_classes))
        bad = [x for x in base if not 0 <= int(x) < gen.num_classes]
        if bad:
            raise DataError(f"labels must be in [0, {gen.num_classes - 1}] for this model, got {bad[:5]}.")
        n = num if num is not None else (len(base) if labels is not None else DEFAULT_NUM)
        return Conditions(labels=_cycle([int(x) for x in base], n), distinct=len(base))
    if labels is not None:
        raise DataError("this model is text-conditional: use --prompts or --prompts-file, not --labels.")
    meta: list[dict[str, Any]] | None
    if prompts is None:
        meta = heldout_prompts_interleaved()
        base = [m["prompt"] for m in meta]
    else:
        base = list(prompts)
        meta = list(metadata) if metadata is not None else None
        if not base:
            raise DataError("the prompt list is empty; give at least one prompt.")
        empty = [i for i, p in enumerate(base) if not str(p).strip()]
        if empty:
            raise DataError(f"prompt {empty[0]} is empty; every image needs a non-empty prompt.")
    n = num if num is not None else (len(base) if prompts is not None else DEFAULT_NUM)
    return Conditions(prompts=_cycle(base, n), metadata=None if meta is None else _cycle(meta, n),
                      distinct=len(base))


# ---------------------------------------------------------------------- sampling and output
def generate_images(gen: ImageGenerator, conds: Conditions, options: SamplingOptions | None = None,
                    seed: int = 0, batch_size: int = 64, progress: bool = False) -> torch.Tensor:
    """All images of ``conds`` (CPU, [N, C, H, W] in [0, 1]), drawn in batches from one seeded generator."""
    g = torch.Generator().manual_seed(seed)
    out = []
    n = len(conds)
    for i in tqdm(range(0, n, batch_size), desc="sampling", disable=not progress, leave=False):
        c = conds.slice(i, min(n, i + batch_size))
        out.append(gen.generate(labels=c.labels, prompts=c.prompts, options=options, generator=g).float().cpu())
    return torch.cat(out)


def check_output(out: str | Path, overwrite: bool) -> Path:
    """Refuse to replace an existing grid file or a non-empty folder unless ``overwrite``."""
    out = Path(out)
    if out.suffix.lower() == ".png":
        if out.is_dir():
            raise SoftdimoError(f"--out {out} is a folder; give a file name ending in .png for a grid.")
        if out.exists() and not overwrite:
            raise SoftdimoError(f"--out {out} already exists; pass --overwrite to replace it or choose another name.")
        return check_writable(out, "--out")
    if out.exists() and not out.is_dir():
        raise SoftdimoError(f"--out {out} is a file; give a folder (or a name ending in .png for a grid).")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise SoftdimoError(f"--out {out} is a folder that is not empty; pass --overwrite to replace the "
                            f"samples in it or choose another folder.")
    return check_writable(out, "--out", folder=True)


def write_outputs(images: torch.Tensor, out: str | Path, conds: Conditions, info: dict[str, Any],
                  overwrite: bool = False, nrow: int | None = None) -> list[Path]:
    """A grid PNG (``out`` ends in .png) or a folder of PNGs + samples.json (+ metadata.jsonl)."""
    out = check_output(out, overwrite)
    if out.suffix.lower() == ".png":
        if nrow is None:
            n = images.shape[0]
            nrow = conds.distinct if conds.distinct <= 16 and n % conds.distinct == 0 else math.ceil(math.sqrt(n))
        return [save_image(make_grid(images, nrow=nrow), out)]
    out.mkdir(parents=True, exist_ok=True)
    for f in out.iterdir():  # --overwrite: drop the files a previous sample run wrote
        if f.is_file() and (_OWN_FILE.match(f.name) or f.name in ("metadata.jsonl", "samples.json")):
            f.unlink()
    written = [save_image(img, out / f"{i:06d}.png") for i, img in enumerate(images)]
    if conds.metadata is not None:
        atomic_write_bytes(out / "metadata.jsonl", "".join(json.dumps(m) + "\n" for m in conds.metadata).encode())
        written.append(out / "metadata.jsonl")
    record = {**info, "labels": conds.labels, "prompts": conds.prompts}
    atomic_write_bytes(out / "samples.json", (json.dumps(record, indent=2) + "\n").encode())
    written.append(out / "samples.json")
    return written


@dataclass
class SampleRequest:
    """Everything `softdimo sample` was asked for."""

    model: str
    out: str
    options: SamplingOptions = field(default_factory=SamplingOptions)
    labels: list[int] | None = None
    prompts: list[str] | None = None
    prompts_file: str | None = None
    num: int | None = knob(None, ge=1)
    seed: int = knob(0, ge=0, le=2**63 - 1)
    batch_size: int = knob(64, ge=1)
    nrow: int | None = knob(None, ge=1)
    overwrite: bool = False
    device: str = "auto"

    def __post_init__(self) -> None:
        check_ranges(self, flags={})


def run_sample(req: SampleRequest, progress: bool = True) -> dict[str, Any]:
    """Load the generator, draw the images and write them; returns a summary."""
    if sum(x is not None for x in (req.labels, req.prompts, req.prompts_file)) > 1:
        raise DataError("give at most one of --labels, --prompts and --prompts-file.")
    if req.batch_size < 1:
        raise DataError(f"--batch-size must be at least 1, got {req.batch_size}.")
    check_output(req.out, req.overwrite)  # fail before any sampling work
    device = resolve_device(req.device)
    gen = load_generator(req.model, device)
    prompts, metadata = req.prompts, None
    if req.prompts_file is not None:
        prompts, metadata = read_prompts_file(req.prompts_file)
    conds = conditions_for(gen, req.num, req.labels, prompts, metadata)
    t0 = time.time()
    images = generate_images(gen, conds, req.options, req.seed, req.batch_size, progress)
    seconds = time.time() - t0
    info = {"model": str(req.model), "kind": gen.kind, "seed": req.seed, "num": len(conds),
            **gen.describe(req.options)}
    written = write_outputs(images, req.out, conds, info, req.overwrite, req.nrow)
    return {"out": str(req.out), "num": len(conds), "files": len(written), "seconds": seconds,
            "kind": gen.kind, **gen.describe(req.options)}


__all__ = ["SamplingOptions", "ImageGenerator", "TeacherGenerator", "StudentGenerator", "read_kind", "load_generator", "Conditions", "conditions_for", "heldout_prompts_interleaved",
           "parse_labels", "read_prompts_file",
           "generate_images", "check_output", "write_outputs", "SampleRequest", "run_sample"]
