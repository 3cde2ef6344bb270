"""Soft-Di[M]O's discriminator on the frozen teacher, its mask augmentation and its losses (docs/method.md §5).

**Discriminator** ``D_η(e_r, r)``. The frozen teacher backbone φ runs on input embeddings
e [B, L, d] (real: ``E_φ[x]`` of real-image tokens; fake: the student's soft embeddings
``Emb_φ(z_θ) = E_φᵀ softmax(z_θ)``, §4.1) with the teacher's own condition. A light head reads
the hidden state h_l [B, L, d] of each tapped block l (:class:`DiscriminatorHead`)::

    a_l   = LeakyReLU_0.2( W1 · (LN(h_l) + r·w_r) )          per token, [B, L, h]
    φ_l   = mean over tokens of a_l                           [B, h]
    D_l   = w2·φ_l + b2 + ⟨emb_l(y), φ_l⟩                    (projection term only for class labels)
    D     = mean over the tapped blocks of D_l                [B] (a logit)

Since w2 is linear, ``w2·φ_l + b2`` is the per-token MLP score averaged over tokens. Only the
heads train; the backbone's weights get no gradient, but ``D`` is differentiable in e, which
carries the generator's GAN gradient back to the student's logits.

**Mask augmentation.** Before D, a fraction r ~ U(a, b) (default [0, 0.95], §5) of positions
of both real and fake inputs is replaced by the teacher's mask embedding, exactly round(r·L)
positions per sample (0 allowed); r is also given to the heads.

**Losses** (s = D logit, σ the sigmoid, softplus(x) = log(1 + eˣ))::

    generator (non-saturating)  L_GAN = E[−log σ(D(fake))]            = mean softplus(−s_fake)
    discriminator, "bce"        E[−log σ(s_real)] + E[−log(1 − σ(s_fake))]
                                  = mean softplus(−s_real) + mean softplus(s_fake)
    discriminator, "hinge"      mean relu(1 − s_real) + mean relu(1 + s_fake)
    R1                          mean over the batch of ‖∂ Σ_b D(real_b) / ∂ real_b‖²   (times γ/2, by the caller)

The generator minimises ``L_DiMO + w_GAN·L_GAN`` (§5).

Choices where the papers are silent (docs/method.md §9) ([I], all knobs of :class:`GANConfig`): the taps, the head,
the ratio-conditioning by an added learned vector ``r·w_r``, averaging (not summing) the heads'
logits so that the logit scale does not grow with the number of taps, and BCE without R1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check_ranges, knob
from ..errors import ConfigError, DataError
from ..mdm.masking import exact_count_mask
from ..soft import gumbel_straight_through, soft_embed


@dataclass
class GANConfig:
    """Knobs of the GAN refinement (docs/method.md §5, §9); [I] = inferred, not given by the paper."""

    layers: tuple[int, ...] = knob((), ge=0)  # teacher blocks to tap, 0-based; () = `num_taps` spaced evenly, last included [I]
    num_taps: int = knob(4, ge=1)  # taps when `layers` is empty (capped at the teacher's depth) [I]
    head_hidden: int = knob(0, ge=0)  # width h of each head's MLP; 0 = the teacher width d [I]
    class_projection: bool = True  # add ⟨emb(y), φ⟩ when the condition carries class labels [I]
    mask_ratio_range: tuple[float, float] = knob((0.0, 0.95), ge=0, le=1)  # r range of the mask augmentation (paper's best)
    mask_ratio_dist: Literal["uniform"] = "uniform"  # distribution of r in the range; only U(a, b) for now [I]
    disc_loss: Literal["bce", "hinge"] = "bce"  # discriminator loss [I]
    r1_gamma: float = knob(0.0, ge=0)  # γ of the R1 penalty (γ/2)·‖∇D(real)‖² on real embeddings; 0 = off [I]
    w_gan: float = knob(1.0, ge=0)  # weight of L_GAN in L_DiMO + w_GAN·L_GAN (paper: 200 in the long MaskBit stage) [I]
    lr_disc_mult: float = knob(1.0, gt=0)  # discriminator lr = lr_disc_mult × generator lr (suggested 1 to 10) [I]
    embedding: Literal["soft", "gumbel"] = "soft"  # fake input: soft embedding, or the Gumbel-ST baseline (§4.3)
    gumbel_tau: float = knob(1.0, gt=0)  # τ of the Gumbel-ST baseline [I]

    def __post_init__(self) -> None:
        self.layers = tuple(int(i) for i in self.layers)
        self.mask_ratio_range = tuple(float(x) for x in self.mask_ratio_range)  # type: ignore[assignment]
        check_ranges(self)
        if any(i < 0 for i in self.layers) or len(set(self.layers)) != len(self.layers):
            raise ConfigError(f"gan.layers must be distinct 0-based block indices, got {list(self.layers)}.")
        if self.num_taps < 1:
            raise ConfigError(f"gan.num_taps must be ≥ 1, got {self.num_taps}.")
        if self.head_hidden < 0:
            raise ConfigError(f"gan.head_hidden must be ≥ 0 (0 = the teacher width), got {self.head_hidden}.")
        if len(self.mask_ratio_range) != 2 or not 0.0 <= self.mask_ratio_range[0] <= self.mask_ratio_range[1] <= 1.0:
            raise ConfigError(f"gan.mask_ratio_range must be [a, b] with 0 ≤ a ≤ b ≤ 1, got "
                              f"{list(self.mask_ratio_range)}; the paper's best is [0, 0.95].")
        if self.mask_ratio_dist != "uniform":
            raise ConfigError(f"gan.mask_ratio_dist must be 'uniform', got {self.mask_ratio_dist!r}.")
        if self.disc_loss not in ("bce", "hinge"):
            raise ConfigError(f"gan.disc_loss must be 'bce' or 'hinge', got {self.disc_loss!r}.")
        if self.embedding not in ("soft", "gumbel"):
            raise ConfigError(f"gan.embedding must be 'soft' or 'gumbel', got {self.embedding!r}.")
        for name in ("r1_gamma", "w_gan"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"gan.{name} must be ≥ 0, got {getattr(self, name)}.")
        for name in ("lr_disc_mult", "gumbel_tau"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"gan.{name} must be > 0, got {getattr(self, name)}.")

    def tap_layers(self, depth: int) -> list[int]:
        """The tapped blocks of a ``depth``-block teacher: ``layers``, or n = min(num_taps, depth)
        evenly spaced ones, ceil((i+1)·depth/n) − 1 for i < n (24 blocks, 4 taps: 5, 11, 17, 23)."""
        if self.layers:
            if max(self.layers) >= depth:
                raise ConfigError(f"gan.layers {list(self.layers)} name blocks beyond the teacher's {depth} "
                                  f"(valid: 0..{depth - 1}); leave gan.layers empty for evenly spaced taps.")
            return sorted(self.layers)
        n = min(self.num_taps, depth)
        return [math.ceil((i + 1) * depth / n) - 1 for i in range(n)]


class DiscriminatorHead(nn.Module):
    """One tap's head: LN → (+ r·w_r) → Linear(d, h) → LeakyReLU(0.2) → Linear(h, 1), mean over tokens,
    plus the projection term ⟨emb(y), φ⟩ (module docstring).

    The ratio enters as a learned vector scaled by r and added to the normalised features; w_r
    starts at zero. The class table has ``num_classes + 1`` rows (the last one for the teacher's
    null class) and starts at zero, so a fresh head is unconditional and ratio-blind.
    """

    def __init__(self, dim: int, hidden: int, num_classes: int = 0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.ratio = nn.Parameter(torch.zeros(dim))
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, 1)
        self.class_emb = nn.Embedding(num_classes + 1, hidden) if num_classes > 0 else None
        if self.class_emb is not None:
            nn.init.zeros_(self.class_emb.weight)

    def forward(self, h: torch.Tensor, r: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states [B, L, d], ratios [B] (and labels [B]) → logits [B]."""
        x = self.norm(h) + r.to(h.dtype)[:, None, None] * self.ratio
        pooled = F.leaky_relu(self.fc1(x), 0.2).mean(dim=1)  # φ [B, h]
        out = self.fc2(pooled).squeeze(-1)
        if self.class_emb is not None and labels is not None:
            out = out + (self.class_emb(labels.long()) * pooled).sum(-1)
        return out


def _tap_shape(backbone: Any) -> tuple[int, int, int]:
    """(blocks, width, class labels) of the hidden states ``backbone(..., return_hidden=True)`` returns:
    a :class:`~softdimo.mdm.MaskedTransformer`'s config, or an adapter's ``num_hidden_layers`` /
    ``hidden_width`` (e.g. :class:`~softdimo.teachers.amused.AmusedNetwork`, text-only)."""
    if hasattr(backbone, "num_hidden_layers") and hasattr(backbone, "hidden_width"):
        return int(backbone.num_hidden_layers), int(backbone.hidden_width), int(getattr(backbone, "num_classes", 0))
    cfg = backbone.config
    return cfg.depth, cfg.hidden, cfg.num_classes if cfg.cond == "class" else 0


class TeacherDiscriminator(nn.Module):
    """D_η: the frozen teacher backbone plus one :class:`DiscriminatorHead` per tapped block.

    ``backbone`` is the teacher's :class:`~softdimo.mdm.MaskedTransformer` or an adapter's network
    (a bundle with an ``mdm`` attribute, such as :class:`~softdimo.teachers.NativeTeacher` or the
    aMUSEd teacher, is unwrapped). It is
    frozen (``requires_grad_(False)``) and kept in a plain attribute, not as a submodule, so
    ``parameters()``, ``state_dict()`` and an optimiser built from them hold the heads only, and
    ``.to()`` / ``.train()`` leave the backbone alone (its owner places it and sets its mode).
    ``num_classes`` defaults to the backbone's for a class teacher, else 0 (no projection).
    """

    def __init__(self, backbone: Any, config: GANConfig | None = None, num_classes: int | None = None) -> None:
        super().__init__()
        backbone = getattr(backbone, "mdm", backbone)
        backbone.requires_grad_(False)
        object.__setattr__(self, "_backbone", backbone)  # not registered: no trainable teacher weights
        self.config = config or GANConfig()
        depth, width, own_classes = _tap_shape(backbone)
        if num_classes is None:
            num_classes = own_classes
        self.layers = self.config.tap_layers(depth)
        hidden = self.config.head_hidden or width
        n_cls = num_classes if self.config.class_projection else 0
        self.heads = nn.ModuleList(DiscriminatorHead(width, hidden, n_cls) for _ in self.layers)

    @property
    def backbone(self) -> Any:
        """The frozen teacher transformer (not a submodule)."""
        return self._backbone

    def mask_embedding(self) -> torch.Tensor:
        """The teacher's [d] mask-token embedding (no gradient)."""
        return self._backbone.mask_embedding().detach()

    def forward(self, embeds: torch.Tensor, cond: Any, r: torch.Tensor) -> torch.Tensor:
        """D(e_r, r): input embeddings [B, L, d] (already mask-augmented), condition, ratios [B] → logits [B]."""
        if r.shape != embeds.shape[:1]:
            raise DataError(f"the discriminator needs one mask ratio per sample: r has shape {tuple(r.shape)}, "
                            f"the input {embeds.shape[0]} samples.")
        _, hidden = self._backbone(embeds, cond, return_hidden=True)
        labels = getattr(cond, "labels", None)
        logits = [head(hidden[i], r, labels) for i, head in zip(self.layers, self.heads)]
        return torch.stack(logits).mean(0)

    def score(self, embeds: torch.Tensor, cond: Any, r: torch.Tensor,
              generator: torch.Generator | None = None) -> torch.Tensor:
        """``forward(mask_augment(embeds, mask embedding, r), cond, r)``: the logit of an un-augmented input."""
        masked, _ = mask_augment(embeds, self.mask_embedding(), r, generator)
        return self(masked, cond, r)


def fake_embeddings(logits: torch.Tensor, table: torch.Tensor, config: GANConfig,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """The generator's input to D per ``config.embedding``: ``soft_embed`` (§4.1) or Gumbel-ST (§4.3)."""
    if config.embedding == "gumbel":
        return gumbel_straight_through(logits, table, tau=config.gumbel_tau, generator=generator)
    return soft_embed(logits, table)


def draw_mask_ratios(batch: int, ratio_range: tuple[float, float] = (0.0, 0.95),
                     generator: torch.Generator | None = None,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """r ~ U(a, b), one per sample (float32 [batch])."""
    a, b = ratio_range
    if not 0.0 <= a <= b <= 1.0:
        raise DataError(f"the mask-ratio range must satisfy 0 ≤ a ≤ b ≤ 1, got [{a}, {b}].")
    gen_dev = generator.device if generator is not None else (device or "cpu")
    u = torch.rand(batch, generator=generator, device=gen_dev)
    return (a + (b - a) * u).to(device or gen_dev)


def mask_augment(embeds: torch.Tensor, mask_embedding: torch.Tensor, r: torch.Tensor | float,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace exactly round(r_b·L) random positions of sample b (0 allowed) by the mask embedding.

    ``embeds`` [B, L, d], ``mask_embedding`` [d], ``r`` a float or [B]. Returns the augmented
    embeddings (differentiable in the kept positions) and the bool mask [B, L] (True = replaced).
    """
    if embeds.dim() != 3 or mask_embedding.shape != embeds.shape[-1:]:
        raise DataError(f"mask_augment expects embeddings [B, L, d] and a mask embedding [d], got "
                        f"{tuple(embeds.shape)} and {tuple(mask_embedding.shape)}.")
    b, length, _ = embeds.shape
    gen_dev = generator.device if generator is not None else embeds.device
    r = torch.as_tensor(r, dtype=torch.float32, device=gen_dev).expand(b)
    mask = exact_count_mask(b, length, r, generator=generator, device=gen_dev)  # max(1, round(r·L)) per row
    unmasked = torch.round(r.double() * length) == 0  # rows with round(r·L) = 0 keep every position
    mask = (mask & ~unmasked[:, None]).to(embeds.device)
    out = torch.where(mask[..., None], mask_embedding.to(embeds.dtype), embeds)
    return out, mask


# ---------------------------------------------------------------------- losses
def generator_gan_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating L_GAN = E[−log σ(D(fake))] = mean softplus(−D(fake))."""
    return F.softplus(-fake_logits.float()).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                       kind: Literal["bce", "hinge"] = "bce") -> torch.Tensor:
    """The discriminator's loss (module docstring).

    bce: mean softplus(−D(real)) + mean softplus(D(fake)); hinge: mean relu(1 − D(real)) + mean relu(1 + D(fake)).
    """
    real, fake = real_logits.float(), fake_logits.float()
    if kind == "bce":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    raise ConfigError(f"unknown discriminator loss {kind!r}; choose 'bce' or 'hinge'.")


def r1_penalty(real_logits: torch.Tensor, real_embeds: torch.Tensor) -> torch.Tensor:
    """mean_b ‖∂ Σ D(real) / ∂ real_b‖² with create_graph (the caller multiplies by γ/2).

    ``real_embeds`` must have had ``requires_grad_(True)`` before the forward pass that made
    ``real_logits``; a D that does not depend on it gives 0.
    """
    if not real_embeds.requires_grad:
        raise DataError("r1_penalty needs the real embeddings to require grad: call "
                        "real_embeds.requires_grad_(True) before computing the real logits.")
    if not real_logits.requires_grad:
        return real_logits.new_zeros(())
    (grad,) = torch.autograd.grad(real_logits.sum(), real_embeds, create_graph=True, allow_unused=True)
    if grad is None:
        return real_logits.new_zeros(())
    return grad.float().pow(2).reshape(grad.shape[0], -1).sum(1).mean()


__all__ = ["GANConfig", "DiscriminatorHead", "TeacherDiscriminator", "fake_embeddings", "draw_mask_ratios",
           "mask_augment", "generator_gan_loss", "discriminator_loss", "r1_penalty"]
