"""Collapse diagnostics of a one-step student (softdimo.distill.diagnostics)."""
from __future__ import annotations

import copy
import math

import torch

from softdimo.distill import OneStepSampler, OneStepStudent
from softdimo.distill.diagnostics import collapse_diagnostics, mutual_info_bound
from tiny_models import make_teacher

CONDS = [{"labels": [y]} for y in range(3)]


def student_of(teacher, **sampler) -> OneStepStudent:
    return OneStepStudent(copy.deepcopy(teacher.mdm), teacher.tokenizer, OneStepSampler(**sampler))


def test_a_student_that_ignores_x_init_has_zero_mutual_information():
    teacher = make_teacher()
    student = student_of(teacher, sigma=0.0)
    with torch.no_grad():
        student.mdm.tok_emb.weight.zero_()  # every x_init embeds to the same input
    d = collapse_diagnostics(student, teacher, CONDS, 8, aux=copy.deepcopy(teacher.mdm),
                             generator=torch.Generator().manual_seed(0))
    assert abs(d["mutual_info"]) < 1e-5
    assert d["pixel_var"] > 0  # independent token draws still vary the pixels
    assert d["aux_minus_teacher"] == 0.0  # ψ = φ: no lag
    assert d["delta_fraction"] == 0.0


def test_a_student_that_copies_x_init_has_delta_tokens_and_high_mutual_information():
    teacher = make_teacher()
    student = student_of(teacher, sigma=0.0, r_init=0.0)
    table = torch.nn.functional.normalize(torch.randn(17, 32, generator=torch.Generator().manual_seed(1)), dim=1)
    with torch.no_grad():
        student.mdm.tok_emb.weight.copy_(table)
    student.mdm.forward = lambda e, cond=None, return_hidden=False: 200.0 * e @ table[:16].t()  # logits ∝ cos
    d = collapse_diagnostics(student, teacher, CONDS, 16, generator=torch.Generator().manual_seed(0))
    assert d["delta_fraction"] > 0.85  # every visible token is copied with p ≈ 1; one position is masked
    assert d["p_max"] > 0.85
    assert 1.5 < d["mutual_info"] <= mutual_info_bound(16)
    assert "aux_nll" not in d and "recall" not in d


def test_recall_against_a_reference():
    teacher = make_teacher()
    student = student_of(teacher)
    g = torch.Generator().manual_seed(0)
    far = [torch.ones(8, 1, 8, 8) * 5.0 for _ in CONDS]  # nowhere near any decoded image
    d = collapse_diagnostics(student, teacher, CONDS, 8, reference=far, generator=g)
    assert d["recall"] == 0.0
    assert math.isfinite(d["teacher_nll"]) and d["teacher_nll"] > 0
