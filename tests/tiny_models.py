"""Tiny models, training configs and CLI helpers shared by the tests (one copy of each).

* :func:`make_teacher` / :func:`make_student` / :func:`make_mdm`: random tiny native models;
* :func:`tiny_train`: the shared loop's config for a few CPU steps;
* :func:`ready`: a stage set up outside the loop (:func:`softdimo.train.build_context`), for
  direct calls to its losses;
* :func:`distill_args`, :func:`run_cli`: the command line in a fresh process;
* :func:`folder_tensors`, :func:`same_tensors`: bit-identity of exported folders.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from softdimo.config import TrainConfig
from softdimo.distill import OneStepSampler, OneStepStudent
from softdimo.distill.train import DistillRunConfig, DistillStage
from softdimo.mdm import MDM_PRESETS, MaskedTransformer, MaskGITSampler, mdm_config
from softdimo.teachers import NativeTeacher
from softdimo.tokenizer import VQ_PRESETS, VQConfig, VQTokenizer
from softdimo.train import build_context, train

TOK = VQ_PRESETS["tiny"]  # 1×8×8 images → 4×4 grid, K = 16
DIMO_PRESET = "configs/mnist/dimo.yaml"


TOK28 = VQConfig(in_channels=1, image_size=28, base_channels=8, channel_mult=(1, 2, 2), num_res_blocks=1,
                 mid_res_blocks=0, norm_groups=4, codebook_size=16, codebook_dim=4)  # 1×28×28 → 7×7, K = 16


def make_teacher(seed: int = 0, tok: VQConfig = TOK, sampler: MaskGITSampler | None = None,
                 **mdm) -> NativeTeacher:
    """A random tiny teacher (class-conditional, 10 classes, by default 4 sampler steps with CFG 2).

    ``tok``: the tokenizer's config (its grid and K size the MDM); ``mdm``: MDMConfig overrides.
    """
    torch.manual_seed(seed)
    vq = VQTokenizer(tok)
    cfg = dataclasses.replace(MDM_PRESETS["tiny"], grid=tok.grid, num_tokens=tok.codebook_size, **mdm)
    sampler = sampler if sampler is not None else MaskGITSampler(steps=4, cfg_scale=2.0)
    return NativeTeacher(MaskedTransformer(cfg), vq, sampler).eval()


def make_student(teacher: NativeTeacher | None = None, **sampler) -> OneStepStudent:
    """A one-step student sharing ``teacher``'s MDM and tokenizer (default: :func:`make_teacher`'s)."""
    teacher = teacher if teacher is not None else make_teacher()
    return OneStepStudent(teacher.mdm, teacher.tokenizer, OneStepSampler(**sampler)).eval()


def make_mdm(seed: int = 0, **overrides) -> MaskedTransformer:
    """A random MDM of the ``tiny`` preset (``overrides``: MDMConfig fields), in eval mode."""
    torch.manual_seed(seed)
    return MaskedTransformer(mdm_config("tiny", **overrides)).eval()


def meissonic_like() -> type:
    """A stand-in for Meissonic's ``Transformer2DModel``: ``UVit2DModel`` behind Meissonic's call signature
    and block names (Meissonic's own class lives in its code checkout, which is not installable)."""
    from diffusers import UVit2DModel  # optional dependency (the amused extra)

    class MeissonicLike(UVit2DModel):
        calls: list = []

        @property
        def transformer_blocks(self):
            return self.transformer_layers

        def forward(self, hidden_states, encoder_hidden_states, pooled_projections, timestep, img_ids, txt_ids,
                    micro_conds):
            self.calls.append((img_ids.shape, txt_ids.shape, int(timestep.sum())))
            return super().forward(hidden_states, encoder_hidden_states, pooled_projections, micro_conds)

    return MeissonicLike


def tiny_train(steps: int, **overrides) -> TrainConfig:
    """The loop's config for ``steps`` CPU steps of batch 8 (no checkpoints or grids; a log row every step)."""
    knobs = dict(max_steps=steps, batch_size=8, lr=1e-3, warmup_steps=0, grad_clip=1.0, ema_decay=0.9,
                 checkpoint_every=0, sample_every=0, log_every=1, seed=3, device="cpu")
    return TrainConfig(**{**knobs, **overrides})


def ready(stage, seed: int = 0):
    """``stage`` set up outside the loop (generator seeded ``seed``), for direct calls to its losses."""
    stage.setup(build_context(stage.cfg.train, seed=seed))
    return stage


def write_generators(root: Path) -> tuple[Path, Path]:
    """``root/teacher`` (:func:`make_teacher`) and ``root/student`` (its student at τ 2); returns both folders."""
    root = Path(root)
    teacher = make_teacher()
    teacher.save_pretrained(root / "teacher")
    make_student(teacher, temperature=2.0).save_pretrained(root / "student")
    return root / "teacher", root / "student"


def write_distilled(root: Path) -> tuple[Path, Path]:
    """``root/teacher`` (4 sampler steps, no CFG) and a 2-step Di[M]O student of it; returns both folders."""
    root = Path(root)
    make_teacher(sampler=MaskGITSampler(steps=4)).save_pretrained(root / "teacher")
    cfg = DistillRunConfig(train=tiny_train(2), teacher=str(root / "teacher"))
    return root / "teacher", train(DistillStage(cfg), cfg.train, root / "distill", progress=False).final_dir


def distill_args(teacher: Path, out: Path, name: str, steps: int = 6, *extra: str) -> list[str]:
    """`softdimo distill` on a tiny teacher: fp32 export, a checkpoint every 2 steps, a log row every step."""
    return ["distill", "--config", DIMO_PRESET, f"teacher={teacher}", f"train.max_steps={steps}",
            "train.batch_size=4", "train.checkpoint_every=2", "train.checkpoints_total_limit=0",
            "train.sample_every=0", "train.log_every=1", "train.threads=1", "train.export_dtype=float32",
            "train.warmup_steps=0", f"train.out_dir={out}", f"train.run_name={name}", "--no-progress", *extra]


def run_cli(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m softdimo ARGS`` in a fresh process (one thread)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "softdimo", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def folder_tensors(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of every safetensors file under ``folder``, keyed by relative path and name."""
    out = {}
    for f in sorted(Path(folder).rglob("*.safetensors")):
        for k, v in load_file(str(f)).items():
            out[f"{f.relative_to(folder)}:{k}"] = v
    return out


def same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Same keys and bit-identical values."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
