"""The discriminator on the frozen teacher, mask augmentation and the GAN losses (docs/method.md §5)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from softdimo.distill.dimo import jeffreys_gradient, surrogate_loss
from softdimo.distill.gan import (DiscriminatorHead, GANConfig, TeacherDiscriminator, discriminator_loss,
                                  draw_mask_ratios, fake_embeddings, generator_gan_loss, mask_augment, r1_penalty)
from softdimo.errors import ConfigError, DataError
from softdimo.mdm import MDM_PRESETS, MaskedTransformer
from softdimo.soft import soft_embed
from tiny_models import make_mdm

pytestmark = pytest.mark.usefixtures("one_thread")

B = 4


def real_embeds(mdm: MaskedTransformer, seed: int = 1) -> torch.Tensor:
    ids = torch.randint(0, mdm.num_tokens, (B, mdm.seq_len), generator=torch.Generator().manual_seed(seed))
    return mdm.embed(ids)


# ---------------------------------------------------------------------- config
def test_config_taps_and_validation():
    assert GANConfig().tap_layers(24) == [5, 11, 17, 23]  # blocks 6, 12, 18, 24 of 24
    assert GANConfig().tap_layers(2) == [0, 1]  # capped at the depth
    assert GANConfig(num_taps=3).tap_layers(5) == [1, 3, 4]
    assert GANConfig(layers=[3, 1]).tap_layers(4) == [1, 3]
    with pytest.raises(ConfigError, match="beyond"):
        GANConfig(layers=(5,)).tap_layers(4)
    for bad in (dict(mask_ratio_range=(0.5, 0.2)), dict(mask_ratio_range=(0.0, 1.5)), dict(disc_loss="wgan"),
                dict(embedding="hard"), dict(r1_gamma=-1.0), dict(lr_disc_mult=0.0), dict(gumbel_tau=0.0),
                dict(num_taps=0), dict(layers=(1, 1)), dict(mask_ratio_dist="arccos")):
        with pytest.raises(ValueError):  # ConfigError is a ValueError
            GANConfig(**bad)


# ---------------------------------------------------------------------- the discriminator
def test_backbone_is_not_a_parameter_and_gets_no_update_while_heads_do():
    mdm = make_mdm()
    before = {k: v.clone() for k, v in mdm.state_dict().items()}
    disc = TeacherDiscriminator(mdm, GANConfig())
    assert len(disc.heads) == mdm.config.depth == 2
    backbone_ids = {id(p) for p in mdm.parameters()}
    assert not backbone_ids & {id(p) for p in disc.parameters()}
    assert not any(k.startswith("_backbone") for k in disc.state_dict())
    assert all(not p.requires_grad for p in mdm.parameters())
    heads_before = {n: p.detach().clone() for n, p in disc.named_parameters()}

    opt = torch.optim.Adam(disc.parameters(), lr=1e-2)
    cond = mdm.encode_condition(labels=torch.arange(B))
    g = torch.Generator().manual_seed(0)
    fake = torch.randn(B, mdm.seq_len, mdm.config.hidden, generator=g) * 0.02
    r_real, r_fake = draw_mask_ratios(B, (0.0, 0.95), g), draw_mask_ratios(B, (0.0, 0.95), g)
    loss = discriminator_loss(disc.score(real_embeds(mdm), cond, r_real, g), disc.score(fake, cond, r_fake, g))
    loss.backward()
    opt.step()

    assert all(p.grad is None for p in mdm.parameters())
    for k, v in mdm.state_dict().items():
        assert torch.equal(v, before[k]), k
    changed = {n for n, p in disc.named_parameters() if not torch.equal(p, heads_before[n])}
    for i in range(len(disc.heads)):  # every head learns, including the ratio vector and the class projection
        assert {f"heads.{i}.{n}" for n in ("fc1.weight", "fc2.weight", "ratio", "class_emb.weight")} <= changed


def test_discriminator_output_shape_and_gradient_to_embeddings():
    mdm = make_mdm()
    disc = TeacherDiscriminator(mdm, GANConfig(head_hidden=8, num_taps=1))
    assert disc.layers == [1] and disc.heads[0].fc1.out_features == 8
    x = real_embeds(mdm).detach().requires_grad_(True)
    out = disc(x, mdm.encode_condition(labels=torch.arange(B)), torch.full((B,), 0.3))
    assert out.shape == (B,)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(DataError, match="one mask ratio per sample"):
        disc(x, mdm.encode_condition(labels=torch.arange(B)), torch.zeros(B + 1))


def test_text_teacher_has_no_class_projection():
    mdm = make_mdm(cond="text", text_dim=8)
    disc = TeacherDiscriminator(mdm)
    assert all(h.class_emb is None for h in disc.heads)
    cond = mdm.encode_condition(text_features=torch.randn(B, 3, 8))
    assert disc(real_embeds(mdm), cond, torch.zeros(B)).shape == (B,)


def test_generator_gets_gradient_from_both_dimo_and_gan_terms():
    mdm = make_mdm()
    disc = TeacherDiscriminator(mdm)
    with torch.no_grad():  # a non-trivial discriminator
        for p in disc.parameters():
            p.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(p.numel()))
    g = torch.Generator().manual_seed(0)
    gen = nn.Linear(8, mdm.num_tokens)  # a tiny "generator": features → logits [B, L, K]
    feats = torch.randn(B, mdm.seq_len, 8, generator=g)
    logits = gen(feats)
    cond = mdm.encode_condition(labels=torch.arange(B))

    teacher_logits = torch.randn(logits.shape, generator=g)
    aux_logits = torch.randn(logits.shape, generator=g)
    l_dimo = surrogate_loss(logits, jeffreys_gradient(teacher_logits, aux_logits, beta=0.0))
    r = draw_mask_ratios(B, (0.0, 0.95), g)
    l_gan = generator_gan_loss(disc.score(soft_embed(logits, mdm.embedding_table()), cond, r, g))

    w = 0.5
    (g_dimo,) = torch.autograd.grad(l_dimo, gen.weight, retain_graph=True)
    (g_gan,) = torch.autograd.grad(l_gan, gen.weight, retain_graph=True)
    (g_sum,) = torch.autograd.grad(l_dimo + w * l_gan, gen.weight)
    assert g_dimo.abs().sum() > 0 and g_gan.abs().sum() > 0
    assert torch.allclose(g_sum, g_dimo + w * g_gan, atol=1e-7)
    assert not torch.allclose(g_sum, g_dimo) and not torch.allclose(g_sum, w * g_gan)
    assert all(p.grad is None for p in mdm.parameters())


def test_fake_embeddings_soft_or_gumbel():
    mdm = make_mdm()
    table = mdm.embedding_table().detach()
    z = torch.randn(B, mdm.seq_len, mdm.num_tokens, generator=torch.Generator().manual_seed(0))
    assert torch.equal(fake_embeddings(z, table, GANConfig()), soft_embed(z, table))
    hard = fake_embeddings(z, table, GANConfig(embedding="gumbel"), torch.Generator().manual_seed(1))
    rows = (hard[:, :, None, :] == table[None, None]).all(-1)  # [B, L, K]
    assert (rows.sum(-1) == 1).all()  # every position is exactly one table row


# ---------------------------------------------------------------------- mask augmentation
@pytest.mark.parametrize("r", [0.0, 0.3, 0.95])
def test_masked_fraction_matches_the_drawn_ratio(r):
    mdm = make_mdm()
    x = real_embeds(mdm)
    m = mdm.mask_embedding().detach()
    out, mask = mask_augment(x, m, torch.full((B,), r), torch.Generator().manual_seed(2))
    n = round(r * mdm.seq_len)
    is_mask = (out == m).all(-1)
    assert (is_mask.sum(1) == n).all() and torch.equal(is_mask, mask)
    assert torch.equal(out[~mask], x[~mask])


def test_per_sample_ratios_and_draws():
    mdm = make_mdm()
    r = torch.tensor([0.0, 0.25, 0.5, 1.0])
    _, mask = mask_augment(real_embeds(mdm), mdm.mask_embedding(), r, torch.Generator().manual_seed(0))
    assert mask.sum(1).tolist() == [0, 4, 8, 16]
    d = draw_mask_ratios(1000, (0.2, 0.6), torch.Generator().manual_seed(0))
    assert d.min() >= 0.2 and d.max() <= 0.6 and abs(float(d.mean()) - 0.4) < 0.02
    with pytest.raises(DataError):
        mask_augment(real_embeds(mdm), mdm.mask_embedding(), torch.full((B,), 1.2))


# ---------------------------------------------------------------------- losses
def test_losses_on_hand_computed_values():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731
    bce = (sp(-2.0) + sp(1.0)) / 2 + (sp(0.5) + sp(-3.0)) / 2
    assert float(discriminator_loss(real, fake, "bce")) == pytest.approx(bce, rel=1e-6)
    # hinge: relu(1 − real) = [0, 2], relu(1 + fake) = [1.5, 0]
    assert float(discriminator_loss(real, fake, "hinge")) == pytest.approx(1.0 + 0.75)
    assert float(generator_gan_loss(fake)) == pytest.approx((sp(-0.5) + sp(3.0)) / 2, rel=1e-6)
    assert float(generator_gan_loss(torch.zeros(3))) == pytest.approx(math.log(2.0))
    with pytest.raises(ConfigError):
        discriminator_loss(real, fake, "wgan")  # type: ignore[arg-type]


def test_r1_penalty_zero_for_a_constant_discriminator_positive_otherwise():
    x = torch.randn(B, 5, 3, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    bias = nn.Parameter(torch.tensor(0.7))
    assert float(r1_penalty(bias.expand(B), x)) == 0.0  # does not use x at all
    assert float(r1_penalty(x.sum((1, 2)) * 0.0 + bias, x)) == 0.0  # uses x, with zero gradient
    w = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    pen = r1_penalty((x * w).sum((1, 2)), x)  # linear D: ∂D/∂x_b = w for every sample
    assert float(pen) == pytest.approx(float(w.pow(2).sum()), rel=1e-6)
    head = DiscriminatorHead(3, 4)
    pen = r1_penalty(head(x, torch.zeros(B)), x)
    assert float(pen.detach()) > 0
    pen.backward()  # create_graph: the penalty trains the head
    assert head.fc1.weight.grad is not None and head.fc1.weight.grad.abs().sum() > 0
    with pytest.raises(DataError, match="requires_grad"):
        r1_penalty(bias.expand(B), x.detach())


def test_native_teacher_bundle_is_unwrapped():
    class Bundle:  # anything holding the MDM as `.mdm`, as NativeTeacher does
        def __init__(self, mdm):
            self.mdm = mdm

    mdm = make_mdm()
    disc = TeacherDiscriminator(Bundle(mdm), GANConfig(class_projection=False))
    assert disc.backbone is mdm and all(h.class_emb is None for h in disc.heads)
    assert torch.equal(disc.mask_embedding(), mdm.mask_embedding())
    assert MDM_PRESETS["tiny"].depth == len(disc.heads)
