"""The MaskGIT sampler: schedule of commits, no rewrites, CFG, N = 1, repr."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from softdimo.errors import ConfigError, DataError
from softdimo.mdm import MDM_PRESETS, MaskedTransformer, MaskGITSampler, SamplerStep, commit_counts


def tiny(**kw) -> MaskedTransformer:
    torch.manual_seed(0)
    return MaskedTransformer(dataclasses.replace(MDM_PRESETS["tiny"], **kw))


class CountingModel:
    """Wraps a model and counts forward passes (the sampler only needs the Teacher protocol)."""

    def __init__(self, model):
        self.model = model
        self.calls = 0
        self.num_tokens, self.mask_id, self.grid = model.num_tokens, model.mask_id, model.grid

    def embed(self, ids):
        return self.model.embed(ids)

    def embedding_table(self):
        return self.model.embedding_table()

    def forward(self, embeds, cond):
        self.calls += 1
        return self.model(embeds, cond)


@pytest.mark.parametrize("schedule", ["arccos", "cosine", "linear"])
@pytest.mark.parametrize("steps", [1, 3, 8, 16])
def test_commits_follow_schedule_and_never_rewrite(schedule, steps):
    model = tiny()
    cond = model.encode_condition(labels=torch.tensor([1, 2, 3, 4]))
    sampler = MaskGITSampler(steps=steps, schedule=schedule, temperature=1.0, confidence_noise=1.0,
                             cfg_scale=2.0)
    trace: list[SamplerStep] = []
    ids = sampler.sample(model, cond, model.null_condition(4), generator=torch.Generator().manual_seed(0),
                         trace=trace)
    L, M = model.seq_len, model.mask_id
    assert ids.shape == (4, L) and (ids != M).all() and (ids >= 0).all() and (ids < model.num_tokens).all()
    assert len(trace) == steps
    want = commit_counts(schedule, steps, L)
    prev = torch.full_like(ids, M)
    for k, st in enumerate(trace):
        committed_now = (st.ids != M).sum(1) - (prev != M).sum(1)
        assert (committed_now == want[k]).all() and st.committed == want[k]
        # committed tokens never change
        was = prev != M
        assert torch.equal(st.ids[was], prev[was])
        prev = st.ids
    assert torch.equal(trace[-1].ids, ids)


def test_deterministic_with_seed_and_greedy():
    model = tiny()
    cond = model.encode_condition(labels=[0, 7])
    s = MaskGITSampler(steps=4, temperature=1.0, confidence_noise=0.5)
    a = s.sample(model, cond, model.null_condition(2), generator=torch.Generator().manual_seed(5))
    b = s.sample(model, cond, model.null_condition(2), generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    g = MaskGITSampler(steps=4, temperature=0.0)
    assert torch.equal(g.sample(model, cond), g.sample(model, cond))


def test_cfg_one_uses_a_single_conditional_pass():
    model = tiny().eval()
    wrapped = CountingModel(model)
    ids = torch.full((2, model.seq_len), model.mask_id)
    ids[:, :5] = 3
    cond, null = model.encode_condition(labels=[1, 2]), model.null_condition(2)
    z = MaskGITSampler.guided_logits(wrapped, ids, cond, null, 1.0)
    assert wrapped.calls == 1
    assert torch.equal(z, model.forward_ids(ids, cond))
    z2 = MaskGITSampler.guided_logits(wrapped, ids, cond, null, 3.0)
    assert wrapped.calls == 3
    zc, zu = model.forward_ids(ids, cond), model.forward_ids(ids, null)
    assert torch.allclose(z2, zu + 3.0 * (zc - zu), atol=1e-5)
    # whole-sampler pass counts: N passes at w = 1, 2N at w ≠ 1
    wrapped.calls = 0
    MaskGITSampler(steps=5, cfg_scale=1.0).sample(wrapped, cond, null, generator=torch.Generator().manual_seed(0))
    assert wrapped.calls == 5
    wrapped.calls = 0
    MaskGITSampler(steps=5, cfg_scale=2.0).sample(wrapped, cond, null, generator=torch.Generator().manual_seed(0))
    assert wrapped.calls == 10
    with pytest.raises(DataError):
        MaskGITSampler(steps=2, cfg_scale=2.0).sample(model, cond, None)


def test_one_step_commits_everything():
    model = tiny(cond="none")
    trace: list[SamplerStep] = []
    ids = MaskGITSampler(steps=1).sample(model, None, None, batch=3, generator=torch.Generator().manual_seed(0),
                                          trace=trace)
    assert ids.shape == (3, model.seq_len) and (ids != model.mask_id).all()
    assert len(trace) == 1 and trace[0].committed == model.seq_len


def test_annealed_knobs_and_mode_restored():
    s = MaskGITSampler(steps=5, temperature=2.0, temperature_end=1.0, confidence_noise=1.0,
                       confidence_noise_end=0.0, cfg_scale=1.0, cfg_scale_end=3.0)
    assert [s.temperature_at(k) for k in (0, 2, 4)] == [2.0, 1.5, 1.0]
    assert [s.confidence_noise_at(k) for k in (0, 4)] == [1.0, 0.0]
    assert [s.cfg_scale_at(k) for k in (0, 2, 4)] == [1.0, 2.0, 3.0]
    one = MaskGITSampler(steps=1, temperature=2.0, temperature_end=0.5)
    assert one.temperature_at(0) == 2.0
    model = tiny().train()
    trace: list[SamplerStep] = []
    s.sample(model, model.encode_condition(labels=[1]), model.null_condition(1),
             generator=torch.Generator().manual_seed(0), trace=trace)
    assert [t.cfg_scale for t in trace] == [1.0, 1.5, 2.0, 2.5, 3.0]
    assert model.training  # eval() during sampling, restored afterwards


def test_repr_shows_every_knob_and_validation():
    s = MaskGITSampler.reference()
    text = repr(s)
    for f in dataclasses.fields(MaskGITSampler):
        assert f"{f.name}=" in text
    assert "steps=16" in text and "temperature=1.3" in text and "cfg_scale=2.5" in text and "arccos" in text
    with pytest.raises(ConfigError):
        MaskGITSampler(steps=0)
    with pytest.raises(ConfigError):
        MaskGITSampler(schedule="square")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        MaskGITSampler(temperature=-1.0)
    model = tiny()
    with pytest.raises(ConfigError):
        MaskGITSampler(steps=model.seq_len + 1).sample(model, model.null_condition(1))


def test_sampler_reproduces_memorised_class_patterns():
    """End to end: a tiny MDM trained on one token grid per class samples that grid back."""
    from softdimo.mdm import mdm_config

    torch.manual_seed(0)
    model = MaskedTransformer(mdm_config("tiny", cond_drop_prob=0.0)).train()
    g = torch.Generator().manual_seed(0)
    patterns = torch.randint(0, model.num_tokens, (2, model.seq_len), generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(120):
        labels = torch.randint(0, 2, (16,), generator=g)
        loss, _ = model.training_loss(patterns[labels], labels, label_smoothing=0.0, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    labels = torch.tensor([0, 1, 0, 1])
    out = MaskGITSampler(steps=4, temperature=0.5, confidence_noise=1.0).sample(
        model, model.encode_condition(labels=labels), generator=g)
    assert (out == patterns[labels]).float().mean() > 0.95
