"""Several ψ updates per generator step keep a multimodal teacher's modes (docs/method.md §3.6).

A tiny teacher learns two equally likely token grids per class (mode A and mode B, no shared
token at any position). Two short distillations from it differ only in `dimo.aux_updates`.
With one ψ update (the released setting at this high learning rate) ψ lags the student, which
drops a mode; with four, the student draws both modes of each class, as whole grids far more
often than a per-token mixture of the marginals would (2 × (1/2)^4 = 1/8 of the samples).
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from softdimo.config import TrainConfig
from softdimo.distill import OneStepStudent
from softdimo.distill.train import DiMOConfig, DistillRunConfig, DistillStage
from softdimo.mdm import MDM_PRESETS, MaskedTransformer, MaskGITSampler
from softdimo.teachers import NativeTeacher
from softdimo.tokenizer import VQ_PRESETS, VQTokenizer
from softdimo.train import train

pytestmark = pytest.mark.usefixtures("one_thread")

TOK = dataclasses.replace(VQ_PRESETS["tiny"], channel_mult=(1, 2, 2))  # 8×8 images → 2×2 grid, K = 16
K = TOK.codebook_size
L = TOK.grid[0] * TOK.grid[1]
TEACHER_STEPS, DISTILL_STEPS = 800, 150


def modes(c: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The two token grids of class c; they differ at every position."""
    a = torch.tensor([(c + i) % K for i in range(L)])
    return a, (a + K // 2) % K


def bimodal_teacher(steps: int) -> NativeTeacher:
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    cfg = dataclasses.replace(MDM_PRESETS["tiny"], grid=TOK.grid, num_tokens=K, num_classes=2, dropout=0.0)
    mdm = MaskedTransformer(cfg)
    opt = torch.optim.Adam(mdm.parameters(), lr=2e-3)
    for _ in range(steps):
        c = torch.randint(0, 2, (64,), generator=g)
        pick = torch.randint(0, 2, (64,), generator=g)
        ids = torch.stack([modes(int(ci))[int(w)] for ci, w in zip(c, pick)])
        loss, _ = mdm.training_loss(ids, c, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return NativeTeacher(mdm.eval(), VQTokenizer(TOK), MaskGITSampler(steps=4, cfg_scale=1.0))


def mode_counts(teacher_dir, run_dir, aux_updates: int) -> list[tuple[int, int]]:
    """Per class, how many of 200 one-step samples are exactly grid A and exactly grid B."""
    cfg = DistillRunConfig(train=TrainConfig(max_steps=DISTILL_STEPS, batch_size=32, lr=1e-3, warmup_steps=10,
                                             grad_clip=1.0, checkpoint_every=0, sample_every=0, log_every=100,
                                             seed=0, device="cpu"),
                           teacher=str(teacher_dir), dimo=DiMOConfig(teacher_cfg=1.0, aux_updates=aux_updates))
    student = OneStepStudent.from_pretrained(train(DistillStage(cfg), cfg.train, run_dir, progress=False).final_dir)
    counts = []
    for c in range(2):
        ids = student.sample_ids(labels=[c] * 200, sampler=student.sampler_with(temperature=1.0),
                                 generator=torch.Generator().manual_seed(1))
        a, b = modes(c)
        counts.append((int((ids == a).all(1).sum()), int((ids == b).all(1).sum())))
    return counts


def test_several_aux_updates_keep_both_modes_of_each_class(tmp_path):
    bimodal_teacher(TEACHER_STEPS).save_pretrained(tmp_path / "teacher")
    lagging = mode_counts(tmp_path / "teacher", tmp_path / "aux1", aux_updates=1)
    tracking = mode_counts(tmp_path / "teacher", tmp_path / "aux4", aux_updates=4)
    for c, (n_a, n_b) in enumerate(tracking):
        assert min(n_a, n_b) >= 10, f"class {c}: a mode was dropped with 4 ψ updates (A {n_a}, B {n_b} of 200)"
        assert n_a + n_b >= 50, f"class {c}: only {n_a + n_b}/200 samples are whole grids of one mode"
    assert min(map(min, tracking)) > min(map(min, lagging)), (lagging, tracking)
