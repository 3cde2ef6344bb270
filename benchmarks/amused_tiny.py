"""The aMUSEd adapter end to end on a tiny random aMUSEd: soft-vs-hard gaps, distillation, speed.

    OMP_NUM_THREADS=1 python benchmarks/amused_tiny.py --steps 300 --json benchmarks/results/amused_tiny.json

1. Writes a tiny random aMUSEd folder (:func:`softdimo.teachers.amused_tiny.write_tiny_amused`:
   K = 32, 8×8 tokens, 32×32 RGB, width 32, 2 layers) and loads it with the adapter.
2. Soft-vs-hard gaps on one-hot p (max |difference| over ``--gap-batches`` batches of random
   tokens and prompts): the embedding path (logits of ``p @ E[:K]`` vs ``embed(ids)`` vs diffusers'
   own ``UVit2DModel(ids)``) and the decoder path (``decode_soft(p)`` vs ``decode(ids)`` vs
   ``VQModel.decode(ids, force_not_quantize=True)``). Target ≤ 1e-5.
3. ``softdimo distill`` for ``--steps`` steps on it (CPU, one thread, world captions as prompts)
   through the shared loop; the first and last logged Di[M]O statistics.
4. Seconds per image, measured in this process on the same prompts: the teacher with its
   default sampler (12 MaskGIT steps, CFG 10: 24 forward passes) vs the distilled student
   (1 forward pass), both including the VQ decode; median of ``--repeats`` timed calls.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from softdimo.cli import run_training
from softdimo.results import now, write_results
from softdimo.teachers.amused import AmusedStudent, AmusedTeacher
from softdimo.teachers.amused_tiny import TinyAmusedConfig, write_tiny_amused

PROMPTS = ["a red 3", "a blue 7 to the left of a green 1", "two yellow 5", "a purple 0 above a white 9"]


@torch.no_grad()
def gaps(t: AmusedTeacher, batches: int, batch: int) -> dict[str, float]:
    """Max |soft − hard| (and |adapter − diffusers|) of the embedding and decoder paths on one-hot p."""
    out = {"embedding_soft_vs_ids": 0.0, "embedding_adapter_vs_diffusers": 0.0, "decoder_soft_vs_ids": 0.0,
           "decoder_adapter_vs_diffusers": 0.0}
    g = torch.Generator().manual_seed(0)
    h, w = t.grid
    for i in range(batches):
        ids = torch.randint(0, t.num_tokens, (batch, h * w), generator=g)
        cond = t.encode_condition(prompts=[PROMPTS[(i + j) % len(PROMPTS)] for j in range(batch)])
        p = F.one_hot(ids, t.num_tokens).float()
        z_ids = t(t.embed(ids), cond)
        z_soft = t(p @ t.embedding_table(), cond)
        z_lib = t.mdm.transformer(ids.view(batch, h, w), encoder_hidden_states=cond.hidden,
                                  pooled_text_emb=cond.pooled, micro_conds=cond.micro_conds)
        z_lib = z_lib.permute(0, 2, 3, 1).reshape(batch, h * w, -1)
        x_ids, x_soft = t.decode(ids), t.decode_soft(p)
        v = t.tokenizer.vqvae
        x_lib = v.decode(ids.view(batch, h, w), force_not_quantize=True,
                         shape=(batch, h, w, v.config.latent_channels)).sample.clamp(0, 1)
        for key, a, b in (("embedding_soft_vs_ids", z_soft, z_ids), ("embedding_adapter_vs_diffusers", z_ids, z_lib),
                          ("decoder_soft_vs_ids", x_soft, x_ids), ("decoder_adapter_vs_diffusers", x_ids, x_lib)):
            out[key] = max(out[key], float((a - b).abs().max()))
    return out


def seconds_per_image(fn, images: int, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300, help="distillation steps")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--gap-batches", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    started, t0 = now(), time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tiny = TinyAmusedConfig()
        folder = write_tiny_amused(Path(tmp) / "tiny-amused", tiny)
        teacher = AmusedTeacher.from_pretrained(folder)
        gap = gaps(teacher, args.gap_batches, args.batch_size)
        print("gaps", gap, flush=True)
        overrides = [f"teacher={folder}", f"train.max_steps={args.steps}", f"train.batch_size={args.batch_size}",
                     "train.lr=0.0003", "train.warmup_steps=20", "train.ema_decay=0.99", "train.grad_clip=1.0",
                     f"train.threads={args.threads}", "train.device=cpu", "train.log_every=10",
                     "train.checkpoint_every=0", "train.sample_every=0", f"train.out_dir={tmp}/runs",
                     "train.run_name=amused-tiny", "dimo.teacher_cfg=2.0"]
        result = run_training("distill", None, overrides, resume=False, progress=False)
        rows = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
        keys = ("generator/loss", "generator/fkl", "generator/g_abs", "aux/loss", "aux/acc")
        student = AmusedStudent.from_pretrained(result.final_dir)
        prompts = [PROMPTS[i % len(PROMPTS)] for i in range(args.batch_size)]
        g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
        t_sec = seconds_per_image(lambda: teacher.sample(prompts=prompts, generator=g()), len(prompts), args.repeats)
        s_sec = seconds_per_image(lambda: student.sample(prompts=prompts, generator=g()), len(prompts), args.repeats)
        s = teacher.sampler
        metrics = {
            "gaps_max_abs": gap, "gap_target": 1e-5, "gaps_within_target": all(v <= 1e-5 for v in gap.values()),
            "distill": {"steps": args.steps, "batch_size": args.batch_size, "seconds": result.seconds,
                        "first": {k: rows[0].get(k) for k in keys}, "last": {k: rows[-1].get(k) for k in keys}},
            "speed": {"teacher_steps": s.steps, "teacher_cfg": s.cfg_scale,
                      "teacher_forward_passes": s.steps * (2 if s.cfg_scale != 1 else 1),
                      "teacher_seconds_per_image": t_sec, "student_seconds_per_image": s_sec,
                      "speedup": t_sec / s_sec, "batch": len(prompts), "threads": args.threads,
                      "includes": "token sampling + VQ decode"},
            "tiny_amused": vars(tiny),
        }
        print(json.dumps(metrics["speed"]), flush=True)
    write_results(args.json, "amused_tiny", metrics, config=vars(args), started=started, seconds=time.time() - t0)


if __name__ == "__main__":
    main()
