"""The released MaskGIT transformer (MaskGIT-pytorch's ``MaskTransformer``), entered at its input embeddings.

softdimo's own implementation of the bidirectional transformer of MaskGIT-pytorch and
Halton-MaskGIT v1.0 (the Di[M]O MaskGit teacher), with the module tree of the published
``MaskGIT_ImageNet_256.pth`` so its ``model_state_dict`` loads key for key (``strict``):

* ``tok_emb``: one table of K + 1 + nclass + 1 rows: the K image tokens, the mask token (id K),
  the nclass class tokens (id K + 1 + y) and the null class (id K + 1 + nclass, the
  unconditional branch of classifier-free guidance);
* ``pos_emb`` [1, L + 1, d]: positions of the L image tokens and of the class token, which is
  *appended* after the image tokens;
* ``first_layer``: LayerNorm(eps 1e-12) → Dropout → Linear → GELU → LayerNorm(eps 1e-12) →
  Dropout → Linear (keys ``first_layer.{0,2,4,6}``);
* ``transformer.layers.{i}``: pre-norm blocks, ``.0`` = LayerNorm + ``nn.MultiheadAttention``
  (``.0.norm``, ``.0.fn.mha``; fused in-projection, biases, dropout), ``.1`` = LayerNorm + MLP
  Linear → GELU → Dropout → Linear → Dropout (``.1.norm``, ``.1.fn.net.{0,3}``); residual
  ``x = attn(x) + x; x = ff(x) + x``;
* ``last_layer``: LayerNorm(eps 1e-12) → Dropout → Linear → GELU → LayerNorm(eps 1e-12)
  (keys ``last_layer.{0,2,4}``);
* the output head is tied to ``tok_emb``: ``logits = h @ tok_emb.weightᵀ + bias`` with ``bias``
  [L + 1, vocab] a per-position bias; the released forward keeps the first L positions and
  the first K + 1 classes.

**The seam (soft embeddings, docs/method.md §4.1).** ``embed(ids)`` = ``tok_emb(ids)`` for ids in
[0, K] (mask included) and ``forward(embeds, cond)`` runs everything after the lookup: the class
token ``tok_emb(K + 1 + y)`` is appended, ``pos_emb`` added, and the network runs exactly as the
released forward does. A soft embedding is ``p @ tok_emb.weight[:K]``; on one-hot p it gives the
id path's logits. Di[M]O's σ noise (added to ``embed(ids)`` by the caller) therefore lands on the
visual-token embeddings only, before the positions, as in the released Di[M]O code. ``forward``
returns the logits of the K image tokens (softdimo's convention; the mask class is dropped) and,
with ``return_hidden``, each block's output at the L image positions (discriminator taps).

**Frozen in Di[M]O** (``embedding_parameters``): ``tok_emb``, ``pos_emb`` and ``bias`` — the
released ``fix_emb_layer``; the tied head and the class rows live in ``tok_emb`` and freeze with it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ..config import check_ranges, knob
from ..errors import ConfigError, DataError
from ..mdm import Condition
from ..pretrained import PretrainedMixin


@dataclass
class MaskGITConfig:
    """``MaskTransformer``'s constructor arguments (defaults: the released ImageNet-256 model)."""

    grid: int = knob(16, ge=1)  # tokens per side (the released ``patch_size``: image side / 16)
    hidden_dim: int = knob(768, ge=1)
    codebook_size: int = knob(1024, ge=1)  # K image tokens; the mask token is id K
    depth: int = knob(24, ge=1)
    heads: int = knob(16, ge=1)  # the released trainer builds the model with 16 heads (the class default is 8)
    mlp_dim: int = knob(3072, ge=1)
    dropout: float = knob(0.1, ge=0, lt=1)
    nclass: int = knob(1000, ge=1)  # class tokens; the null class is one more

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.hidden_dim % self.heads:
            raise ConfigError(f"hidden_dim={self.hidden_dim} is not divisible by heads={self.heads}.")

    @property
    def seq_len(self) -> int:
        """L image tokens (the class token excluded)."""
        return self.grid * self.grid

    @property
    def vocab(self) -> int:
        """Rows of ``tok_emb``: K image tokens, mask, nclass classes, null class."""
        return self.codebook_size + 1 + self.nclass + 1

    @property
    def cond(self) -> str:
        """Always ``"class"`` (the bundle reads ``config.cond``)."""
        return "class"

    @property
    def num_classes(self) -> int:
        return self.nclass


class PreNorm(nn.Module):
    """LayerNorm, then ``fn`` (keys ``norm``, ``fn``)."""

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class FeedForward(nn.Module):
    """Linear → GELU → Dropout → Linear → Dropout (keys ``net.0``, ``net.3``)."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim),
                                 nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Attention(nn.Module):
    """``nn.MultiheadAttention`` (batch first, biases, attention dropout) as self-attention (key ``mha``)."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(dim, num_heads=heads, dropout=dropout, batch_first=True, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mha(x, x, x, need_weights=False)[0]  # the released code also returns the weights, unused


class TransformerEncoder(nn.Module):
    """``depth`` pre-norm blocks: ``x = attn(x) + x; x = ff(x) + x`` (keys ``layers.{i}.{0,1}``)."""

    def __init__(self, c: MaskGITConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([PreNorm(c.hidden_dim, Attention(c.hidden_dim, c.heads, c.dropout)),
                           PreNorm(c.hidden_dim, FeedForward(c.hidden_dim, c.mlp_dim, c.dropout))])
            for _ in range(c.depth))

    def forward(self, x: torch.Tensor, hidden: list[torch.Tensor] | None = None) -> torch.Tensor:
        for attn, ff in self.layers:  # type: ignore[misc]
            x = attn(x) + x
            x = ff(x) + x
            if hidden is not None:
                hidden.append(x)
        return x


class MaskGITTransformer(nn.Module, PretrainedMixin):
    """The released ``MaskTransformer`` (module docstring) behind the Teacher protocol's network surface."""

    config_class = MaskGITConfig

    def __init__(self, config: MaskGITConfig) -> None:
        super().__init__()
        self.config = c = config
        d = c.hidden_dim
        self.tok_emb = nn.Embedding(c.vocab, d)
        self.pos_emb = nn.Parameter(nn.init.trunc_normal_(torch.zeros(1, c.seq_len + 1, d), 0.0, 0.02))
        self.first_layer = nn.Sequential(nn.LayerNorm(d, eps=1e-12), nn.Dropout(c.dropout), nn.Linear(d, d), nn.GELU(),
                                         nn.LayerNorm(d, eps=1e-12), nn.Dropout(c.dropout), nn.Linear(d, d))
        self.transformer = TransformerEncoder(c)
        self.last_layer = nn.Sequential(nn.LayerNorm(d, eps=1e-12), nn.Dropout(c.dropout), nn.Linear(d, d), nn.GELU(),
                                        nn.LayerNorm(d, eps=1e-12))
        self.bias = nn.Parameter(torch.zeros(c.seq_len + 1, c.vocab))

    # ------------------------------------------------------------------ vocabulary
    @property
    def num_tokens(self) -> int:
        return self.config.codebook_size

    @property
    def mask_id(self) -> int:
        return self.config.codebook_size

    @property
    def grid(self) -> tuple[int, int]:
        return (self.config.grid, self.config.grid)

    @property
    def num_classes(self) -> int:
        return self.config.nclass

    @property
    def null_class_id(self) -> int:
        """The label of the unconditional branch (its token is ``K + 1 + nclass``)."""
        return self.config.nclass

    @property
    def num_hidden_layers(self) -> int:
        return self.config.depth

    @property
    def hidden_width(self) -> int:
        return self.config.hidden_dim

    # ------------------------------------------------------------------ embeddings
    def embedding_table(self) -> torch.Tensor:
        """E = tok_emb rows of the K image tokens."""
        return self.tok_emb.weight[: self.num_tokens]

    def mask_embedding(self) -> torch.Tensor:
        return self.tok_emb.weight[self.mask_id]

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Ids [B, L] or [B, h, w] in [0, K] (mask included) → tok_emb rows [B, L, d]."""
        if ids.is_floating_point() or ids.dim() not in (2, 3):
            raise DataError(f"embed takes integer token ids [B, L] or [B, h, w], got {ids.dtype} {tuple(ids.shape)}; "
                            f"a soft embedding is p @ embedding_table().")
        ids = ids.reshape(ids.shape[0], -1)
        if ids.shape[1] != self.config.seq_len:
            raise DataError(f"this MaskGIT takes {self.config.seq_len} tokens per image, got {ids.shape[1]}.")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) > self.mask_id):
            raise DataError(f"token ids must be in [0, {self.mask_id}] ({self.mask_id} = mask), got range "
                            f"[{int(ids.min())}, {int(ids.max())}].")
        return self.tok_emb(ids.long())

    def embedding_parameters(self) -> list[nn.Parameter]:
        """What Di[M]O freezes in θ and ψ: the token table (with the tied head and the class rows), the
        positions and the per-position output bias."""
        return [self.tok_emb.weight, self.pos_emb, self.bias]

    def head_parameters(self) -> list[nn.Parameter]:
        """The output head: tied to ``tok_emb``, plus ``bias``."""
        return [self.tok_emb.weight, self.bias]

    def condition_parameters(self) -> list[nn.Parameter]:
        """The class tokens are rows of ``tok_emb``: freezing them freezes the whole table."""
        return [self.tok_emb.weight]

    # ------------------------------------------------------------------ conditions
    def encode_condition(self, labels: torch.Tensor | Sequence[int]) -> Condition:
        """Class labels in [0, nclass) → :class:`~softdimo.mdm.Condition`."""
        lab = torch.as_tensor(labels, device=self.tok_emb.weight.device)
        if lab.is_floating_point() or lab.dim() != 1:
            raise DataError(f"labels must be a 1-D integer tensor [B], got {lab.dtype} {tuple(lab.shape)}.")
        if lab.numel() and (int(lab.min()) < 0 or int(lab.max()) >= self.num_classes):
            raise DataError(f"class labels must be in [0, {self.num_classes - 1}], got range [{int(lab.min())}, "
                            f"{int(lab.max())}]. Use null_condition(B) for the unconditional branch.")
        return Condition(labels=lab.long())

    def null_condition(self, batch: int) -> Condition:
        """The null class (label ``nclass``) for ``batch`` samples."""
        return Condition(labels=torch.full((batch,), self.null_class_id, dtype=torch.long,
                                           device=self.tok_emb.weight.device))

    def class_tokens(self, cond: Condition, batch: int) -> torch.Tensor:
        """Token ids [B] of the class token: K + 1 + label (the null label maps to the null-class row)."""
        labels = getattr(cond, "labels", None)
        if labels is None or labels.dim() != 1 or labels.shape[0] != batch:
            got = None if labels is None else tuple(labels.shape)
            raise DataError(f"this MaskGIT needs class labels [{batch}] (encode_condition(labels=…) or "
                            f"null_condition({batch})), got {got}.")
        return labels.to(self.tok_emb.weight.device).long() + self.num_tokens + 1

    # ------------------------------------------------------------------ network
    def trunk(self, embeds: torch.Tensor, cond: Condition,
              hidden: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Image-token embeddings [B, L, d] → the last layer's output [B, L + 1, d] (class token last)."""
        b, length, d = embeds.shape
        if length != self.config.seq_len or d != self.config.hidden_dim:
            raise DataError(f"forward takes embeddings [B, {self.config.seq_len}, {self.config.hidden_dim}], got "
                            f"{tuple(embeds.shape)}.")
        cls = self.tok_emb(self.class_tokens(cond, b))[:, None].to(embeds.dtype)
        x = torch.cat([embeds, cls], dim=1) + self.pos_emb.to(embeds.dtype)
        x = self.first_layer(x)
        x = self.transformer(x, hidden)
        return self.last_layer(x)

    def full_logits(self, embeds: torch.Tensor, cond: Condition) -> torch.Tensor:
        """The released output: [B, L, K + 1] (image tokens and the mask class)."""
        h = self.trunk(embeds, cond)
        k1, length = self.num_tokens + 1, self.config.seq_len
        return h[:, :length] @ self.tok_emb.weight[:k1].t().to(h.dtype) + self.bias[:length, :k1].to(h.dtype)

    def forward(self, embeds: torch.Tensor, cond: Condition,
                return_hidden: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Embeddings [B, L, d] → logits [B, L, K] (and each block's output at the L image positions)."""
        hidden: list[torch.Tensor] | None = [] if return_hidden else None
        h = self.trunk(embeds, cond, hidden)
        k, length = self.num_tokens, self.config.seq_len
        logits = h[:, :length] @ self.embedding_table().t().to(h.dtype) + self.bias[:length, :k].to(h.dtype)
        if hidden is None:
            return logits
        return logits, [x[:, :length] for x in hidden]

    def forward_ids(self, ids: torch.Tensor, labels: torch.Tensor, drop_label: torch.Tensor | None = None) -> torch.Tensor:
        """The released call ``model(img_token, y, drop_label)``: [B, L, K + 1] logits (``drop_label`` True →
        the null class)."""
        labels = labels.long()
        if drop_label is not None:
            labels = torch.where(drop_label.bool(), torch.full_like(labels, self.null_class_id), labels)
        return self.full_logits(self.embed(ids), Condition(labels=labels))

    def extra_repr(self) -> str:
        c = self.config
        return (f"grid={c.grid}×{c.grid}, K={c.codebook_size}, nclass={c.nclass}, d={c.hidden_dim}, depth={c.depth}, "
                f"heads={c.heads}, mlp={c.mlp_dim}")


def grid_from_positions(num_positions: int) -> int:
    """Tokens per side from ``pos_emb``'s L + 1 rows (raises unless L is a square)."""
    side = math.isqrt(num_positions - 1)
    if side * side != num_positions - 1:
        raise ConfigError(f"pos_emb has {num_positions} rows: L + 1 with L = {num_positions - 1} not a square grid.")
    return side


__all__ = ["MaskGITConfig", "MaskGITTransformer", "grid_from_positions"]
