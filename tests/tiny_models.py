"""Tiny teacher/student folders and CLI helpers shared by the fault, bad-input and determinism tests."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from softdimo.mdm import MDM_PRESETS, MaskedTransformer, MaskGITSampler
from softdimo.teachers import NativeTeacher
from softdimo.tokenizer import VQ_PRESETS, VQTokenizer

TOK = VQ_PRESETS["tiny"]  # 1×8×8 images → 4×4 grid, K = 16
DIMO_PRESET = "configs/mnist/dimo.yaml"


def make_teacher(seed: int = 0, **mdm) -> NativeTeacher:
    """A random tiny class-conditional teacher (10 classes, 4 sampler steps)."""
    torch.manual_seed(seed)
    tok = VQTokenizer(TOK)
    cfg = dataclasses.replace(MDM_PRESETS["tiny"], grid=TOK.grid, num_tokens=TOK.codebook_size, **mdm)
    return NativeTeacher(MaskedTransformer(cfg), tok, MaskGITSampler(steps=4, cfg_scale=2.0)).eval()


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
