"""Soft embeddings, Gumbel straight-through and the soft-vs-hard diagnostics (docs/method.md §4.1, §4.2, §4.3)."""
from __future__ import annotations

import pytest
import torch

from softdimo.errors import DataError
from softdimo.mdm import MDM_PRESETS, MaskedTransformer
from softdimo.soft import (embedding_covariance_trace, gumbel_noise, gumbel_straight_through, hard_embed,
                           soft_diagnostics, soft_embed, soft_hard_gap, soft_probs, token_entropy, token_pmax)

pytestmark = pytest.mark.usefixtures("one_thread")

B, L, K, D = 3, 16, 16, 32  # the tiny MDM preset: 4×4 grid, K = 16, width 32


def table(seed: int = 0) -> torch.Tensor:
    return torch.randn(K, D, generator=torch.Generator().manual_seed(seed))


def logits(seed: int = 1, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(B, L, K, generator=torch.Generator().manual_seed(seed))


def test_one_hot_logits_give_the_hard_embedding():
    e = table()
    ids = torch.randint(0, K, (B, L), generator=torch.Generator().manual_seed(2))
    z = torch.nn.functional.one_hot(ids, K).float() * 1e4
    assert torch.allclose(soft_embed(z, e), hard_embed(ids, e), atol=1e-5)
    assert torch.equal(hard_embed(ids, e), e[ids])


def test_soft_embed_is_the_probability_weighted_mean_and_passes_gradients():
    e = table()
    z = logits().requires_grad_(True)
    out = soft_embed(z, e)
    assert out.shape == (B, L, D)
    assert torch.allclose(out, torch.einsum("blk,kd->bld", torch.softmax(z, -1), e), atol=1e-6)
    (out * torch.randn_like(out)).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_temperature_and_a_trailing_mask_class():
    z = logits()
    assert torch.allclose(soft_probs(z, temperature=2.0), torch.softmax(z / 2.0, -1))
    z_mask = torch.cat([z, torch.full((B, L, 1), 5.0)], dim=-1)  # K+1-way head, mask class last
    p = soft_probs(z_mask, num_tokens=K)
    assert p.shape == (B, L, K) and torch.allclose(p, torch.softmax(z, -1))
    assert torch.allclose(soft_embed(z_mask, table()), soft_embed(z, table()))
    with pytest.raises(DataError, match="image tokens"):
        soft_embed(torch.randn(B, L, K + 3), table())
    with pytest.raises(DataError, match="temperature"):
        soft_probs(z, temperature=0.0)


def test_gumbel_straight_through_forward_is_a_table_row_with_soft_gradients():
    e = table()
    z = logits().requires_grad_(True)
    out = gumbel_straight_through(z, e, tau=1.0, generator=torch.Generator().manual_seed(7))
    g = gumbel_noise(z.shape, torch.Generator().manual_seed(7))  # the same draw
    idx = (z.detach() + g).argmax(-1)
    assert torch.equal(out, e[idx])
    assert not torch.equal(idx, z.detach().argmax(-1))  # the noise does change some tokens
    (out * torch.randn_like(out)).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_diagnostics_on_one_hot_and_uniform_logits():
    e = table()
    z_hot = torch.nn.functional.one_hot(torch.zeros(B, L, dtype=torch.long), K).float() * 1e4
    assert token_entropy(z_hot) == pytest.approx(0.0, abs=1e-6)
    assert token_pmax(z_hot) == pytest.approx(1.0)
    assert embedding_covariance_trace(z_hot, e) == pytest.approx(0.0, abs=1e-4)
    z_flat = torch.zeros(B, L, K)
    assert token_entropy(z_flat) == pytest.approx(float(torch.log(torch.tensor(K))), rel=1e-5)
    assert token_pmax(z_flat) == pytest.approx(1.0 / K)
    # uniform p: tr Σ = mean ‖E_j‖² − ‖mean E_j‖² = total variance of the rows (biased)
    assert embedding_covariance_trace(z_flat, e) == pytest.approx(float(e.var(0, unbiased=False).sum()), rel=1e-4)


def test_gap_is_zero_for_a_linear_f():
    e, z = table(), logits()
    w = torch.randn(D, generator=torch.Generator().manual_seed(3))
    gap = soft_hard_gap(lambda x: (x @ w).sum(1), z, e, samples=4000, generator=torch.Generator().manual_seed(4))
    spread = soft_hard_gap(lambda x: (x @ w).sum(1), z, e, samples=1, generator=torch.Generator().manual_seed(4))
    assert gap < 0.1 * spread  # Monte-Carlo error only: E[f(e_j)] = f(ẽ) for linear f


def test_cov_trace_and_gap_shrink_as_logits_sharpen():
    torch.manual_seed(0)
    mdm = MaskedTransformer(MDM_PRESETS["tiny"]).eval().requires_grad_(False)
    e = mdm.embedding_table().detach()
    cond = mdm.encode_condition(labels=torch.arange(B))

    def f(x: torch.Tensor) -> torch.Tensor:  # a frozen nonlinear functional: the teacher's mean logit
        return mdm(x, cond).mean(dim=(1, 2))

    stats = [soft_diagnostics(logits(scale=s), e, f=f, samples=64, generator=torch.Generator().manual_seed(5))
             for s in (1.0, 4.0, 16.0)]
    for a, b in zip(stats, stats[1:]):
        assert b["cov_trace"] < a["cov_trace"]
        assert b["gap"] < a["gap"]
        assert b["entropy"] < a["entropy"] and b["p_max"] > a["p_max"]
    assert set(stats[0]) == {"entropy", "p_max", "cov_trace", "gap"}
    assert "gap" not in soft_diagnostics(logits(), e)


def test_diagnostics_carry_no_gradient():
    e = table().requires_grad_(True)
    z = logits().requires_grad_(True)
    assert isinstance(embedding_covariance_trace(z, e), float)
    soft_hard_gap(lambda x: x.pow(2).sum((1, 2)), z, e, samples=2)
    assert z.grad is None and e.grad is None


def test_hard_embed_refuses_float_ids():
    with pytest.raises(DataError, match="integer token ids"):
        hard_embed(torch.zeros(B, L), table())
