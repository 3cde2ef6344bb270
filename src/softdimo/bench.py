"""`softdimo bench`: seconds per image and peak memory of a teacher at N steps vs one-step students.

Rows, all timed side by side in one process by :func:`softdimo.eval.speed.measure_speed` (order
rotated every repeat, warm-up calls not counted, median of the repeats), at every batch size B:

* ``teacher N=n``: the teacher's MaskGIT sampler at n steps without guidance (w = 1: one forward
  pass per step) and ``teacher N=n cfg=w`` with guidance (two passes per step), n in ``--steps``;
* ``student NAME``: every one-step student (one forward pass, its own default sampler);
* ``floor``: the physical floor of any one-step generator built on this teacher: encode the
  condition, **one teacher forward pass** (conditional only) on the all-mask grid, argmax, **one
  decode** — the same batch and conditions. A one-step student runs the same network once, plus
  its x_init draw, embedding noise and token draw; ``student / floor`` is what those extras cost.

Every sampler is ``generate(labels | prompts, options, generator)`` of the folder's
:class:`~softdimo.sample.ImageGenerator` (the ``softdimo sample`` path: condition encoding, sampling
and decoding to images), with a seeded ``torch.Generator`` on the device. Conditions: labels
0..K−1 cycled (class models) or the digit world's held-out prompts cycled (text models).

Ratios come from the measured medians of the same run: ``student_over_floor`` (target ≤ 1.10 at
every batch size) and ``teacher_over_student`` (target: the teacher at 16 steps with CFG ≥ 25× the
student at batch 64). The speed of a guided row does not depend on w, only on w ≠ 1.

Peak memory per call: ``torch.cuda.max_memory_allocated`` above the memory already allocated on a
GPU; on the CPU the peak increase of the process's resident set size, sampled by a background
thread after freed heap pages are handed back to the OS (see :mod:`softdimo.eval.speed`; an
estimate that can miss short-lived allocations).

Results JSON (``--json``; metrics part)::

    {"device", "torch_threads", "method", "memory_method",
     "teacher": {"path", "cfg_scale", "sampler"}, "students": {NAME: {"path", "sampler"}},
     "batch_sizes", "steps", "repeats", "warmup",
     "rows": [{"name", "kind": "teacher"|"student"|"floor", "steps", "cfg_scale", "batch_size",
               "median_seconds", "seconds_per_image", "images_per_second", "peak_memory_mb", "repeats"}],
     "skipped": [{"name", "batch_size", "why"}],
     "ratios": {"student_over_floor": {NAME: {B: r}},
                "teacher_over_student": {NAME: {TEACHER ROW: {B: r}}}},
     "targets": {"student_over_floor": {"threshold": 1.10, NAME: {"worst", "worst_batch", "pass"}},
                 "teacher16_cfg_over_student": {"threshold": 25, "batch_size", "teacher_row",
                                                NAME: {"ratio", "pass"}}}}
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from .config import check_ranges, knob
from .errors import DataError, SoftdimoError
from .eval.speed import SpeedResult, measure_speed
from .sample import ImageGenerator, SamplingOptions, conditions_for, load_generator

FLOOR = "floor"
FLOOR_TARGET = 1.10  # student time / (one teacher forward + one decode) at most this
SPEEDUP_TARGET = 25.0  # teacher 16 steps with CFG / student at least this …
SPEEDUP_BATCH = 64  # … at this batch size
METHOD = ("softdimo.eval.speed.measure_speed: every row at every batch size in one process, order rotated "
          "every repeat, warm-up calls not counted, median of the repeats; sampler = ImageGenerator.generate("
          "labels|prompts, options, generator=torch.Generator(device).manual_seed(seed)) incl. condition "
          "encoding and decoding; floor = encode condition + one conditional teacher forward on the all-mask "
          "grid + argmax + one decode")
MEMORY_METHOD = {"cuda": "torch.cuda.max_memory_allocated during one call, minus the memory allocated before it",
                 "cpu": "peak increase of the process RSS during one call (/proc/self/statm sampled every 2 ms by a "
                        "background thread, after glibc malloc_trim); an estimate"}


@dataclass
class BenchConfig:
    """What `softdimo bench` measures."""

    teacher: str  # teacher folder (teacher.json)
    students: list[tuple[str, str]] = field(default_factory=list)  # (name, student folder)
    batch_sizes: list[int] = knob(default_factory=lambda: [1, 4, 16, 64, 256], ge=1)
    steps: list[int] = knob(default_factory=lambda: [1, 2, 4, 8, 16], ge=1)  # teacher sampler steps N
    cfg_scale: float = knob(2.0, ge=0)  # w of the guided teacher rows (the unguided rows use w = 1)
    repeats: int = knob(3, ge=1)  # timed calls per row and batch size (the median is reported)
    warmup: int = knob(1, ge=0)  # untimed calls per row and batch size before timing
    seed: int = knob(0, ge=0, le=2**63 - 1)
    device: str = "auto"  # auto | cpu | cuda
    max_seconds_per_call: float | None = knob(None, gt=0)  # a row slower than this skips its larger batch sizes

    def __post_init__(self) -> None:
        check_ranges(self, flags={"cfg_scale": "--cfg"})
        if not self.batch_sizes or not self.steps:
            raise DataError("--batch-sizes and --steps must each list at least one positive integer.")
        if self.cfg_scale == 1.0:
            raise DataError("--cfg 1 means no guidance; the unguided rows are always measured. Give the guidance "
                            "scale of the guided rows, e.g. --cfg 2.")
        names = [n for n, _ in self.students]
        if len(set(names)) != len(names) or FLOOR in names:
            raise DataError(f"student names must be unique and not '{FLOOR}', got {names}.")


def parse_int_list(text: str, what: str) -> list[int]:
    """``"1,4,16"`` → [1, 4, 16]."""
    try:
        out = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError as e:
        raise DataError(f"{what} {text!r}: give comma-separated integers, e.g. 1,4,16.") from e
    if not out:
        raise DataError(f"{what} is empty; give comma-separated integers, e.g. 1,4,16.")
    return out


def parse_students(text: str | Sequence[str] | None) -> list[tuple[str, str]]:
    """``"dimo=DIR,soft=DIR"`` (or a list of such items) → [("dimo", DIR), ("soft", DIR)].

    A bare DIR is named after its folder.
    """
    if text is None:
        return []
    items = [t for part in ([text] if isinstance(text, str) else text) for t in part.split(",") if t.strip()]
    out = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = item.rstrip("/").split("/")[-1], item
        if not name.strip() or not path.strip():
            raise DataError(f"--students {item!r}: give NAME=FOLDER items, e.g. dimo=checkpoints/dimo-mnist.")
        out.append((name.strip(), path.strip()))
    return out


# ---------------------------------------------------------------------- samplers
def teacher_row(steps: int, cfg_scale: float) -> str:
    return f"teacher N={steps}" if cfg_scale == 1.0 else f"teacher N={steps} cfg={cfg_scale:g}"


def student_row(name: str) -> str:
    return f"student {name}"


def _condition_lists(gen: ImageGenerator, batch: int) -> dict[str, Any]:
    c = conditions_for(gen, batch)
    return {"labels": c.labels, "prompts": c.prompts}


def floor_call(teacher: Any, labels: Sequence[int] | None, prompts: Sequence[str] | None) -> torch.Tensor:
    """One conditional teacher forward pass on the all-mask grid, argmax, one decode (module docstring)."""
    with torch.no_grad():
        cond = teacher.encode_condition(labels=labels, prompts=prompts)
        b = len(labels if labels is not None else prompts)
        h, w = teacher.grid
        ids = torch.full((b, h * w), int(teacher.mask_id), dtype=torch.long, device=teacher.device)
        z = teacher.forward(teacher.embed(ids), cond)[..., : int(teacher.num_tokens)]
        return teacher.decode(z.argmax(-1))


def build_samplers(teacher: ImageGenerator, students: dict[str, ImageGenerator], cfg: BenchConfig,
                   device: torch.device) -> tuple[dict[str, Callable[[int], Any]], dict[str, dict[str, Any]]]:
    """``name → sampler(batch)`` for every row, and ``name → {kind, steps, cfg_scale}``."""
    bundle = getattr(teacher, "teacher", None)
    if bundle is None or not all(hasattr(bundle, a) for a in ("embed", "forward", "decode", "encode_condition")):
        raise SoftdimoError(f"--teacher is a '{teacher.kind}', which does not expose the Teacher protocol "
                            f"(embed / forward / decode) the floor row needs; pass a teacher folder.")
    conds = {b: _condition_lists(teacher, b) for b in cfg.batch_sizes}  # built once, outside the timed calls

    def cond_of(b: int) -> dict[str, Any]:
        return conds[b] if b in conds else _condition_lists(teacher, b)

    def gen_call(gen: ImageGenerator, options: SamplingOptions | None) -> Callable[[int], Any]:
        def call(b: int) -> Any:
            g = torch.Generator(device=device).manual_seed(cfg.seed)
            return gen.generate(**cond_of(b), options=options, generator=g)
        return call

    samplers: dict[str, Callable[[int], Any]] = {}
    info: dict[str, dict[str, Any]] = {}
    for n in cfg.steps:
        for w in (1.0, cfg.cfg_scale):
            name = teacher_row(n, w)
            samplers[name] = gen_call(teacher, SamplingOptions(steps=n, cfg_scale=w))
            info[name] = {"kind": "teacher", "steps": n, "cfg_scale": w}
    samplers[FLOOR] = lambda b: floor_call(bundle, **cond_of(b))
    info[FLOOR] = {"kind": "floor", "steps": 1, "cfg_scale": 1.0}
    for name, gen in students.items():
        samplers[student_row(name)] = gen_call(gen, None)
        info[student_row(name)] = {"kind": "student", "steps": 1, "cfg_scale": 1.0}
    return samplers, info


# ---------------------------------------------------------------------- ratios and targets
def compute_ratios(rows: list[dict[str, Any]], students: Sequence[str]) -> dict[str, Any]:
    """``student_over_floor`` and ``teacher_over_student`` from the rows' median times (same batch size)."""
    t = {(r["name"], r["batch_size"]): r["median_seconds"] for r in rows}
    batches = sorted({r["batch_size"] for r in rows})
    teachers = [r["name"] for r in rows if r.get("kind") == "teacher"]
    teachers = list(dict.fromkeys(teachers))
    over_floor: dict[str, dict[str, float]] = {}
    over_student: dict[str, dict[str, dict[str, float]]] = {}
    for s in students:
        sr = student_row(s)
        over_floor[s] = {str(b): t[(sr, b)] / t[(FLOOR, b)] for b in batches if (sr, b) in t and (FLOOR, b) in t}
        over_student[s] = {name: {str(b): t[(name, b)] / t[(sr, b)] for b in batches
                                  if (name, b) in t and (sr, b) in t} for name in teachers}
    return {"student_over_floor": over_floor, "teacher_over_student": over_student}


def compute_targets(ratios: dict[str, Any], students: Sequence[str], cfg_scale: float,
                    max_steps: int = 16) -> dict[str, Any]:
    """Pass/fail of the two speed targets (module docstring) from :func:`compute_ratios`' output."""
    floor: dict[str, Any] = {"threshold": FLOOR_TARGET}
    for s in students:
        r = ratios["student_over_floor"].get(s, {})
        if r:
            worst_b = max(r, key=r.get)
            floor[s] = {"worst": r[worst_b], "worst_batch": int(worst_b), "pass": r[worst_b] <= FLOOR_TARGET}
    t16 = teacher_row(max_steps, cfg_scale)
    speed: dict[str, Any] = {"threshold": SPEEDUP_TARGET, "batch_size": SPEEDUP_BATCH, "teacher_row": t16}
    for s in students:
        per_b = ratios["teacher_over_student"].get(s, {}).get(t16, {})
        if str(SPEEDUP_BATCH) in per_b:
            speed[s] = {"ratio": per_b[str(SPEEDUP_BATCH)], "pass": per_b[str(SPEEDUP_BATCH)] >= SPEEDUP_TARGET}
    return {"student_over_floor": floor, "teacher16_cfg_over_student": speed}


def format_table(metrics: dict[str, Any]) -> str:
    """A Markdown table: milliseconds per image (rows × batch sizes), then the ratios."""
    rows = metrics["rows"]
    batches = metrics["batch_sizes"]
    by = {(r["name"], r["batch_size"]): r for r in rows}
    names = list(dict.fromkeys(r["name"] for r in rows))
    out = ["| ms / image | " + " | ".join(f"B={b}" for b in batches) + " |",
           "|---|" + "---|" * len(batches)]
    for n in names:
        cells = [f"{1e3 * by[(n, b)]['seconds_per_image']:.3f}" if (n, b) in by else "—" for b in batches]
        out.append(f"| {n} | " + " | ".join(cells) + " |")
    for s, per_b in metrics["ratios"]["student_over_floor"].items():
        out.append(f"| {s} / floor | " + " | ".join(f"{per_b[str(b)]:.3f}" if str(b) in per_b else "—"
                                                      for b in batches) + " |")
    t16 = metrics["targets"]["teacher16_cfg_over_student"]["teacher_row"]
    for s, per_t in metrics["ratios"]["teacher_over_student"].items():
        per_b = per_t.get(t16, {})
        out.append(f"| {t16} / {s} | " + " | ".join(f"{per_b[str(b)]:.1f}×" if str(b) in per_b else "—"
                                                     for b in batches) + " |")
    return "\n".join(out)


# ---------------------------------------------------------------------- the command
def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SoftdimoError("--device cuda was asked for but no CUDA device is available; use --device cpu.")
    return torch.device(device)


def run_bench(cfg: BenchConfig, measure: Callable[..., list[SpeedResult]] = measure_speed) -> dict[str, Any]:
    """Load the generators, time every row at every batch size, and return the metrics (module docstring)."""
    device = resolve_device(cfg.device)
    teacher = load_generator(cfg.teacher, device)
    if getattr(teacher, "teacher", None) is None:
        raise SoftdimoError(f"--teacher {cfg.teacher} holds a '{teacher.kind}', not a teacher; pass a teacher folder "
                            f"(e.g. checkpoints/teacher-mnist).")
    students: dict[str, ImageGenerator] = {}
    for name, path in cfg.students:
        gen = load_generator(path, device)
        if getattr(gen, "teacher", None) is not None:
            raise SoftdimoError(f"--students {name}={path} is a teacher folder; give one-step student folders.")
        if gen.cond_kind != teacher.cond_kind or gen.num_classes != teacher.num_classes:
            raise SoftdimoError(f"student {name} ({path}) is {gen.cond_kind}-conditional with {gen.num_classes} "
                                f"classes but the teacher is {teacher.cond_kind}-conditional with "
                                f"{teacher.num_classes}; compare a student with its own teacher.")
        students[name] = gen
    samplers, info = build_samplers(teacher, students, cfg, device)
    results = measure(samplers, cfg.batch_sizes, repeats=cfg.repeats, warmup=cfg.warmup, device=device,
                      max_seconds_per_call=cfg.max_seconds_per_call)
    rows = [{"name": r.name, **info[r.name], "batch_size": r.batch_size, "median_seconds": r.median_seconds,
             "seconds_per_image": r.seconds_per_image, "images_per_second": r.images_per_second,
             "peak_memory_mb": r.peak_memory_mb, "repeats": r.repeats} for r in results]
    done = {(r["name"], r["batch_size"]) for r in rows}
    skipped = [{"name": n, "batch_size": b, "why": f"a smaller batch took longer than --max-seconds-per-call "
                                                   f"{cfg.max_seconds_per_call}"}
               for b in cfg.batch_sizes for n in samplers if (n, b) not in done]
    ratios = compute_ratios(rows, list(students))
    return {
        "device": str(device), "torch_threads": torch.get_num_threads(), "method": METHOD,
        "memory_method": MEMORY_METHOD["cuda" if device.type == "cuda" else "cpu"],
        "teacher": {"path": str(cfg.teacher), "cfg_scale": cfg.cfg_scale, "sampler": teacher.describe(None)},
        "students": {n: {"path": p, "sampler": students[n].describe(None)} for n, p in cfg.students},
        "batch_sizes": list(cfg.batch_sizes), "steps": list(cfg.steps), "repeats": cfg.repeats, "warmup": cfg.warmup,
        "rows": rows, "skipped": skipped, "ratios": ratios,
        "targets": compute_targets(ratios, list(students), cfg.cfg_scale, max(cfg.steps)),
    }


__all__ = ["BenchConfig", "run_bench", "build_samplers", "floor_call", "compute_ratios", "compute_targets",
           "format_table", "parse_int_list", "parse_students", "teacher_row", "student_row", "FLOOR",
           "FLOOR_TARGET", "SPEEDUP_TARGET", "SPEEDUP_BATCH"]
