"""The MaskGIT teacher end to end on a tiny random MaskGIT in the published file formats.

    OMP_NUM_THREADS=1 python benchmarks/maskgit_tiny.py --steps 100 --json benchmarks/results/maskgit_tiny.json

1. Writes the three published files of a tiny random MaskGIT
   (:func:`softdimo.teachers.maskgit_tiny.write_tiny_published`: K = 64, 8×8 tokens, 32×32 RGB,
   width 64, 2 blocks, 16 heads, 10 classes) and converts them
   (:func:`softdimo.teachers.maskgit_convert.convert_maskgit`, what ``softdimo convert --kind
   maskgit --allow-pickle`` runs).
2. ``soft_hard_max_abs``: max |soft − hard| on one-hot p over ``--gap-batches`` batches of random
   tokens and labels, for the logits (``p @ E`` vs ``embed(ids)``) and the images (``decode_soft``
   vs ``decode``). Target ≤ 1e-5.
3. ``softdimo distill`` for ``--steps`` steps (CPU, one thread) through the shared loop; the first
   and last logged Di[M]O statistics.
4. Seconds per image, timed side by side in one process (:func:`softdimo.eval.speed.measure_speed`:
   alternating calls, median of ``--repeats``): the teacher with its default sampler (16 steps,
   guidance ramped 1 → 4: 31 forward passes) vs the distilled student (1 forward pass), both
   including the VQGAN decode, at batch ``--batch-size``. These are plumbing numbers of a tiny
   model, not MaskGIT-256 speeds.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from softdimo.cli import run_training
from softdimo.eval.speed import measure_speed
from softdimo.results import now, write_results
from softdimo.teachers.maskgit import MaskGITStudent, MaskGITTeacher
from softdimo.teachers.maskgit_convert import convert_maskgit
from softdimo.teachers.maskgit_tiny import TinyMaskGITConfig, write_tiny_published


@torch.no_grad()
def gaps(t: MaskGITTeacher, batches: int, batch: int) -> dict[str, float]:
    """Max |soft − hard| of the logits and of the decoded images on one-hot p."""
    out = {"logits": 0.0, "images": 0.0}
    g = torch.Generator().manual_seed(0)
    h, w = t.grid
    for _ in range(batches):
        ids = torch.randint(0, t.num_tokens, (batch, h * w), generator=g)
        cond = t.encode_condition(labels=torch.randint(0, t.num_classes, (batch,), generator=g))
        p = F.one_hot(ids, t.num_tokens).float()
        out["logits"] = max(out["logits"], float((t(p @ t.embedding_table(), cond) - t(t.embed(ids), cond)).abs().max()))
        out["images"] = max(out["images"], float((t.decode_soft(p) - t.decode(ids)).abs().max()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100, help="distillation steps")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--gap-batches", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    started, t0 = now(), time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tiny = TinyMaskGITConfig()
        write_tiny_published(Path(tmp) / "pretrained_maskgit", tiny)
        folder = convert_maskgit(Path(tmp) / "pretrained_maskgit", Path(tmp) / "maskgit", allow_pickle=True)
        teacher = MaskGITTeacher.from_pretrained(folder).eval()
        gap = gaps(teacher, args.gap_batches, args.batch_size)
        print("soft-hard gaps", gap, flush=True)
        overrides = [f"teacher={folder}", f"train.max_steps={args.steps}", f"train.batch_size={args.batch_size}",
                     "train.lr=0.0003", "train.warmup_steps=20", "train.ema_decay=0.99", "train.grad_clip=1.0",
                     f"train.threads={args.threads}", "train.device=cpu", "train.log_every=10",
                     "train.checkpoint_every=0", "train.sample_every=0", f"train.out_dir={tmp}/runs",
                     "train.run_name=maskgit-tiny"]
        result = run_training("distill", None, overrides, resume=False, progress=False)
        rows = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
        keys = ("generator/loss", "generator/fkl", "generator/g_abs", "generator/entropy", "aux/loss", "aux/acc")
        student = MaskGITStudent.from_pretrained(result.final_dir).eval()
        labels = [i % teacher.num_classes for i in range(args.batch_size)]
        g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
        timed = measure_speed({"teacher": lambda b: teacher.sample(labels=labels[:b], generator=g()),
                               "student": lambda b: student.sample(labels=labels[:b], generator=g())},
                              [args.batch_size], repeats=args.repeats, warmup=1)
        sec = {r.name: r.seconds_per_image for r in timed}
        s = teacher.sampler
        passes = sum(1 if s.cfg_scale_at(k) == 1.0 else 2 for k in range(s.steps))
        metrics = {
            "soft_hard_max_abs": max(gap.values()), "soft_hard_gaps": gap, "gap_target": 1e-5,
            "distill_steps": args.steps,
            "teacher_seconds_per_image": sec["teacher"], "student_seconds_per_image": sec["student"],
            "teacher_over_student": sec["teacher"] / sec["student"],
            "distill": {"batch_size": args.batch_size, "seconds": result.seconds,
                        "first": {k: rows[0].get(k) for k in keys}, "last": {k: rows[-1].get(k) for k in keys}},
            "speed": {"teacher_sampler": {"steps": s.steps, "schedule": s.schedule, "cfg_scale": s.cfg_scale,
                                          "cfg_scale_end": s.cfg_scale_end, "confidence_noise": s.confidence_noise},
                      "teacher_forward_passes": passes, "student_forward_passes": 1, "batch": args.batch_size,
                      "threads": args.threads, "includes": "token sampling + VQGAN decode",
                      "rows": [r.as_dict() for r in timed]},
            "tiny_maskgit": vars(tiny),
        }
        print(json.dumps({k: metrics[k] for k in ("soft_hard_max_abs", "teacher_seconds_per_image",
                                                  "student_seconds_per_image", "teacher_over_student")}), flush=True)
    write_results(args.json, "maskgit_tiny", metrics, config=vars(args), started=started, seconds=time.time() - t0)


if __name__ == "__main__":
    main()
