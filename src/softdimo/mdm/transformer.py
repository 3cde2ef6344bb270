"""The masked diffusion model (MDM): a bidirectional pre-LN transformer over the token grid.

It plays the teacher φ, and (as copies) the student θ and the auxiliary ψ of Di[M]O
(docs/method.md §3.1, §1; docs/architecture.md §3). Given L = h·w token ids, each in [0, K] where K is the
mask id [M], it predicts a distribution over the K image tokens at every position:

    e      = E[ids]                              embed():  table lookup only, [B, L, d]
    x_0    = e + P                               learned positional embeddings P, added in forward()
    x_l    = Block_l(x_{l-1}, c)                 pre-LN: self-attn, (cross-attn), MLP, residual each
    logits = W · LN(x_depth) + b                 [B, L, K]

``forward`` takes *embeddings*, so hard tokens (``embed(ids)``), noised embeddings
(√(1−σ²)·e + σ·ε, §3.2) and soft embeddings (``softmax(z) @ embedding_table()``, §4.1) all go
through one path.

Decisions:

* **Output over K classes, not K+1.** The mask id is an input-only token: the head scores the K
  image tokens. (The MaskGit code keeps a 1025-way head tied to the table, §1; a mask
  prediction is never a valid image token, and §4.1 renormalises over the V image tokens anyway.)
  Weight tying (``tie_weights``) uses rows 0..K−1 of the embedding table; off by default.
* **Class conditioning = one prepended token** (as MaskGit's class token, §1): a learned
  embedding from a table of ``num_classes + 1`` rows, the last row being the null class for CFG.
  Hidden states and logits are returned for the L image positions only.
* **Text conditioning = cross-attention** in every block to the frozen MiniLM token features
  (:mod:`softdimo.mdm.text`), projected by LayerNorm → Linear(text_dim, hidden), with a key
  padding mask (True = padding). The **null text** is the *empty context* (every key padded):
  the model then attends to a single learned null embedding instead. ``null_condition`` builds it,
  and condition dropout empties the context of the dropped samples.
* ``cond_drop_prob`` is the classifier-free-guidance dropout used by :meth:`training_loss`.
* :meth:`~MaskedTransformer.enable_gradient_checkpointing` (``train.gradient_checkpointing``)
  recomputes each block in backward instead of storing its activations; outputs and gradients are
  unchanged (dropout draws are replayed).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..config import check_ranges, knob
from ..errors import ConfigError, DataError
from ..pretrained import PretrainedMixin
from .masking import MaskSchedule, exact_count_mask, masked_ce_loss

LossPositions = Literal["masked", "all"]  # positions scored by the teacher's CE (docs/method.md §2.2)


@dataclass
class MDMConfig:
    """Architecture and conditioning knobs of :class:`MaskedTransformer`."""

    num_tokens: int = knob(512, ge=2)  # K, image codebook size; the mask id is K
    grid: tuple[int, int] = knob((7, 7), ge=1)  # token grid (h, w); L = h·w
    hidden: int = knob(192, ge=1)  # model width d
    depth: int = knob(4, ge=1)  # transformer blocks
    heads: int = knob(4, ge=1)  # attention heads (must divide hidden)
    mlp_ratio: float = knob(4.0, gt=0)  # MLP width = mlp_ratio·hidden
    dropout: float = knob(0.1, ge=0, lt=1)  # dropout on the input, attention weights and residual branches
    cond: Literal["class", "text", "none"] = "class"  # conditioning type
    num_classes: int = knob(10, ge=0)  # classes for cond=class (the null class id is num_classes)
    text_dim: int = knob(384, ge=1)  # width of the text-encoder features for cond=text (MiniLM: 384)
    max_text_len: int = knob(32, ge=1)  # longest text context (tokens, incl. [CLS]/[SEP]) accepted
    cond_drop_prob: float = knob(0.1, ge=0, le=1)  # probability of replacing the condition by the null one in training
    tie_weights: bool = False  # output head = embedding rows 0..K-1 (plus a bias)
    init_std: float = knob(0.02, ge=0)  # std of the normal initialisation of embeddings and linear layers
    norm_eps: float = knob(1e-6, gt=0)  # LayerNorm epsilon

    def __post_init__(self) -> None:
        self.grid = tuple(self.grid)  # type: ignore[assignment]
        check_ranges(self)
        if len(self.grid) != 2:
            raise ConfigError(f"grid must be two positive ints (h, w), got {self.grid}")
        if self.hidden % self.heads:
            raise ConfigError(f"hidden={self.hidden} must be a multiple of heads={self.heads}")
        if self.cond not in ("class", "text", "none"):
            raise ConfigError(f"cond must be 'class', 'text' or 'none', got {self.cond!r}")
        if self.cond == "class" and self.num_classes < 1:
            raise ConfigError(f"cond=class needs num_classes ≥ 1, got {self.num_classes}")

    @property
    def seq_len(self) -> int:
        return self.grid[0] * self.grid[1]


MDM_PRESETS: dict[str, MDMConfig] = {
    # Tests: matches the tokenizer's "tiny" preset (K = 16, 4×4 grid).
    "tiny": MDMConfig(num_tokens=16, grid=(4, 4), hidden=32, depth=2, heads=2, mlp_ratio=2.0,
                      dropout=0.0, num_classes=10, max_text_len=16),
    # CPU teacher for MNIST (7×7, K = 512); ≈ 1.97 M parameters (class).
    "small": MDMConfig(num_tokens=512, grid=(7, 7), hidden=192, depth=4, heads=4),
    # Bigger CPU teacher; ≈ 6.6 M parameters (class), ≈ 8.8 M with text cross-attention.
    "base": MDMConfig(num_tokens=512, grid=(7, 7), hidden=256, depth=8, heads=8),
}


def mdm_config(preset: str, **overrides: object) -> MDMConfig:
    """A copy of ``MDM_PRESETS[preset]`` with fields replaced (e.g. ``grid=(8, 8), cond="text"``)."""
    if preset not in MDM_PRESETS:
        raise ConfigError(f"unknown MDM preset {preset!r}; choose one of {', '.join(MDM_PRESETS)}.")
    try:
        return dataclasses.replace(MDM_PRESETS[preset], **overrides)  # type: ignore[arg-type]
    except TypeError as e:
        raise ConfigError(f"bad MDMConfig override for preset {preset!r}: {e}") from e


@dataclass
class Condition:
    """Conditioning inputs of one batch; build it with ``encode_condition`` / ``null_condition``.

    ``labels``: long [B], class ids, ``num_classes`` = null class. ``text``: float [B, T, text_dim]
    token features; ``text_padding``: bool [B, T], True = padding key. A row whose keys are all
    padding is the null (empty) text. An unconditional model uses ``Condition()`` (or None).
    """

    labels: torch.Tensor | None = None
    text: torch.Tensor | None = None
    text_padding: torch.Tensor | None = None

    @property
    def batch_size(self) -> int | None:
        if self.labels is not None:
            return int(self.labels.shape[0])
        if self.text is not None:
            return int(self.text.shape[0])
        return None

    def to(self, device: torch.device | str) -> "Condition":
        mv = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Condition(mv(self.labels), mv(self.text), mv(self.text_padding))

    def index(self, idx: torch.Tensor | slice) -> "Condition":
        """The condition of a subset of the batch (bool mask, index tensor or slice)."""
        sel = lambda t: None if t is None else t[idx]  # noqa: E731
        return Condition(sel(self.labels), sel(self.text), sel(self.text_padding))

    @staticmethod
    def cat(conds: Sequence["Condition"]) -> "Condition":
        """Concatenate along the batch (e.g. conditional + null for one CFG pass); text is padded."""
        conds = list(conds)
        labels = None
        if all(c.labels is not None for c in conds):
            labels = torch.cat([c.labels for c in conds])  # type: ignore[misc]
        text = padding = None
        if all(c.text is not None for c in conds):
            t_max = max(int(c.text.shape[1]) for c in conds)  # type: ignore[union-attr]
            texts, pads = [], []
            for c in conds:
                b, t, _ = c.text.shape  # type: ignore[union-attr]
                pad = c.text_padding if c.text_padding is not None else torch.zeros(
                    b, t, dtype=torch.bool, device=c.text.device)  # type: ignore[union-attr]
                texts.append(F.pad(c.text, (0, 0, 0, t_max - t)))  # type: ignore[arg-type]
                pads.append(F.pad(pad, (0, t_max - t), value=True))
            text, padding = torch.cat(texts), torch.cat(pads)
        return Condition(labels, text, padding)


class Attention(nn.Module):
    """Multi-head attention (self or cross) with an optional key padding mask."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor | None = None,
                key_valid: torch.Tensor | None = None) -> torch.Tensor:
        ctx = x if ctx is None else ctx
        b, n, d = x.shape
        h = self.heads
        q = self.q(x).view(b, n, h, d // h).transpose(1, 2)
        k, v = self.kv(ctx).view(b, ctx.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)
        mask = None if key_valid is None else key_valid[:, None, None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-LN block: x += Attn(LN x); [x += CrossAttn(LN x, text)]; x += MLP(LN x)."""

    def __init__(self, cfg: MDMConfig) -> None:
        super().__init__()
        d = cfg.hidden
        self.norm1 = nn.LayerNorm(d, eps=cfg.norm_eps)
        self.attn = Attention(d, cfg.heads, cfg.dropout)
        self.cross = cfg.cond == "text"
        if self.cross:
            self.norm_x = nn.LayerNorm(d, eps=cfg.norm_eps)
            self.xattn = Attention(d, cfg.heads, cfg.dropout)
        self.norm2 = nn.LayerNorm(d, eps=cfg.norm_eps)
        width = int(round(cfg.mlp_ratio * d))
        self.mlp = nn.Sequential(nn.Linear(d, width), nn.GELU(), nn.Linear(width, d))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor | None, key_valid: torch.Tensor | None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x)))
        if self.cross:
            x = x + self.drop(self.xattn(self.norm_x(x), ctx, key_valid))
        return x + self.drop(self.mlp(self.norm2(x)))


class MaskedTransformer(nn.Module, PretrainedMixin):
    """Bidirectional transformer MDM over the h×w token grid (module docstring for the maths).

    Teacher-protocol API: ``num_tokens``, ``mask_id``, ``grid``, ``embed``, ``embedding_table``,
    ``mask_embedding``, ``forward(embeds, cond, return_hidden)``, ``forward_ids``,
    ``encode_condition``, ``null_condition``; plus ``training_loss`` for teacher training.
    """

    config_class = MDMConfig

    def __init__(self, config: MDMConfig) -> None:
        super().__init__()
        self.config = config
        cfg = config
        d, k = cfg.hidden, cfg.num_tokens
        self.tok_emb = nn.Embedding(k + 1, d)  # rows 0..K-1 image tokens, row K = mask
        self.pos_emb = nn.Parameter(torch.zeros(1, cfg.seq_len, d))
        if cfg.cond == "class":
            self.class_emb = nn.Embedding(cfg.num_classes + 1, d)  # last row = null class
        elif cfg.cond == "text":
            self.text_norm = nn.LayerNorm(cfg.text_dim, eps=cfg.norm_eps)
            self.text_proj = nn.Linear(cfg.text_dim, d)
            self.null_text = nn.Parameter(torch.zeros(d))
        self.in_drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(d, eps=cfg.norm_eps)
        if cfg.tie_weights:
            self.head_bias = nn.Parameter(torch.zeros(k))
        else:
            self.head = nn.Linear(d, k)
        self.gradient_checkpointing = False
        self._init_weights()

    def enable_gradient_checkpointing(self, enable: bool = True) -> None:
        """Recompute block activations during backward (less memory for one more forward pass)."""
        self.gradient_checkpointing = enable

    def _init_weights(self) -> None:
        std = self.config.init_std
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
        nn.init.trunc_normal_(self.pos_emb, std=std, a=-2 * std, b=2 * std)
        if self.config.cond == "text":
            nn.init.trunc_normal_(self.null_text, std=std, a=-2 * std, b=2 * std)

    # ------------------------------------------------------------------ protocol properties
    @property
    def num_tokens(self) -> int:
        """K, the number of image tokens (mask excluded)."""
        return self.config.num_tokens

    @property
    def mask_id(self) -> int:
        """Id of the mask token [M] (= K)."""
        return self.config.num_tokens

    @property
    def grid(self) -> tuple[int, int]:
        return self.config.grid  # type: ignore[return-value]

    @property
    def seq_len(self) -> int:
        return self.config.seq_len

    @property
    def null_class_id(self) -> int:
        return self.config.num_classes

    # ------------------------------------------------------------------ embeddings
    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids [B, L] (or [B, h, w]) in [0, K] → embeddings [B, L, d]; lookup only, no positions."""
        if ids.is_floating_point() or ids.dim() not in (2, 3):
            raise DataError(f"embed expects integer token ids [B, L] or [B, h, w], got "
                            f"{ids.dtype} {tuple(ids.shape)}. For probabilities use "
                            f"p @ embedding_table() (the soft embedding).")
        ids = ids.reshape(ids.shape[0], -1)
        if ids.shape[1] != self.seq_len:
            raise DataError(f"this model takes {self.seq_len} tokens per sample (grid "
                            f"{self.grid[0]}×{self.grid[1]}), got {ids.shape[1]}.")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) > self.mask_id):
            raise DataError(f"token ids must be in [0, {self.mask_id}] ({self.mask_id} = mask), got "
                            f"range [{int(ids.min())}, {int(ids.max())}].")
        return self.tok_emb(ids.long())

    def embedding_table(self) -> torch.Tensor:
        """E ∈ R^{K×d}: the rows of the K image tokens (mask row excluded); soft embedding = p @ E."""
        return self.tok_emb.weight[: self.num_tokens]

    def mask_embedding(self) -> torch.Tensor:
        """The [d] embedding of the mask token."""
        return self.tok_emb.weight[self.mask_id]

    def embedding_parameters(self) -> list[nn.Parameter]:
        """Parameters Di[M]O freezes in student and auxiliary (§3.1): token table, positions, tied head bias."""
        params = [self.tok_emb.weight, self.pos_emb]
        if self.config.tie_weights:
            params.append(self.head_bias)
        return params

    def head_parameters(self) -> list[nn.Parameter]:
        """The output head (its own Linear; with ``tie_weights`` the head is the token table)."""
        return [self.head_bias] if self.config.tie_weights else list(self.head.parameters())

    def condition_parameters(self) -> list[nn.Parameter]:
        """The conditioning input: the class table, or the text projection and the null text key."""
        if self.config.cond == "class":
            return [self.class_emb.weight]
        if self.config.cond == "text":
            return [*self.text_norm.parameters(), *self.text_proj.parameters(), self.null_text]
        return []

    # ------------------------------------------------------------------ conditions
    def encode_condition(self, labels: torch.Tensor | Sequence[int] | None = None,
                         text_features: torch.Tensor | None = None,
                         key_padding_mask: torch.Tensor | None = None) -> Condition:
        """Build the :class:`Condition` for class labels, or for text features from the TextEncoder.

        ``text_features`` [B, T, text_dim] and ``key_padding_mask`` bool [B, T] (True = padding;
        None = no padding) come from :meth:`softdimo.mdm.text.TextEncoder.encode`.
        """
        cfg = self.config
        dev = self.tok_emb.weight.device
        if cfg.cond == "class":
            if labels is None or text_features is not None:
                raise DataError("this MDM is class-conditional: call encode_condition(labels=...) "
                                "with integer class ids.")
            lab = torch.as_tensor(labels, device=dev)
            if lab.is_floating_point() or lab.dim() != 1:
                raise DataError(f"labels must be a 1-D integer tensor [B], got {lab.dtype} {tuple(lab.shape)}.")
            if lab.numel() and (int(lab.min()) < 0 or int(lab.max()) >= cfg.num_classes):
                raise DataError(f"class labels must be in [0, {cfg.num_classes - 1}], got range "
                                f"[{int(lab.min())}, {int(lab.max())}]. Use null_condition(B) for "
                                f"the unconditional (null) class.")
            return Condition(labels=lab.long())
        if cfg.cond == "text":
            if text_features is None or labels is not None:
                raise DataError("this MDM is text-conditional: call encode_condition(text_features=..., "
                                "key_padding_mask=...) with the output of TextEncoder.encode(prompts).")
            if text_features.dim() != 3 or text_features.shape[-1] != cfg.text_dim:
                raise DataError(f"text_features must be [B, T, {cfg.text_dim}], got "
                                f"{tuple(text_features.shape)}.")
            b, t, _ = text_features.shape
            if t > cfg.max_text_len:
                raise DataError(f"text context has {t} tokens but this model accepts at most "
                                f"max_text_len={cfg.max_text_len}. Encode with "
                                f"TextEncoder(max_length={cfg.max_text_len}) or shorten the prompts.")
            if key_padding_mask is None:
                key_padding_mask = torch.zeros(b, t, dtype=torch.bool)
            if key_padding_mask.shape != (b, t):
                raise DataError(f"key_padding_mask must be [B, T] = [{b}, {t}], got "
                                f"{tuple(key_padding_mask.shape)}.")
            return Condition(text=text_features.to(dev).float(),
                             text_padding=key_padding_mask.to(dev).bool())
        if labels is not None or text_features is not None:
            raise DataError("this MDM is unconditional (cond='none'); call encode_condition() with no "
                            "arguments or pass cond=None.")
        return Condition()

    def null_condition(self, batch: int) -> Condition:
        """The null condition for CFG: null class id, or the empty text context (learned null key)."""
        dev = self.tok_emb.weight.device
        if self.config.cond == "class":
            return Condition(labels=torch.full((batch,), self.null_class_id, dtype=torch.long, device=dev))
        if self.config.cond == "text":
            return Condition(text=torch.zeros(batch, 1, self.config.text_dim, device=dev),
                             text_padding=torch.ones(batch, 1, dtype=torch.bool, device=dev))
        return Condition()

    def drop_condition(self, cond: Condition | None, prob: float,
                       generator: torch.Generator | None = None) -> Condition | None:
        """Replace each sample's condition by the null one with probability ``prob`` (CFG training)."""
        if cond is None or prob <= 0 or self.config.cond == "none":
            return cond
        b = cond.batch_size or 0
        gen_dev = generator.device if generator is not None else self.tok_emb.weight.device
        drop = (torch.rand(b, generator=generator, device=gen_dev) < prob).to(self.tok_emb.weight.device)
        if self.config.cond == "class":
            return Condition(labels=torch.where(drop, self.null_class_id, cond.labels))  # type: ignore[arg-type]
        pad = cond.text_padding if cond.text_padding is not None else torch.zeros(
            cond.text.shape[:2], dtype=torch.bool, device=cond.text.device)  # type: ignore[union-attr]
        return Condition(text=cond.text, text_padding=pad | drop[:, None])

    def _check_cond(self, cond: Condition | None, batch: int) -> Condition | None:
        kind = self.config.cond
        if kind == "none":
            return None
        need = "labels" if kind == "class" else "text"
        if cond is None or getattr(cond, need) is None:
            raise DataError(f"this MDM is {kind}-conditional; pass cond=model.encode_condition(...) "
                            f"or model.null_condition({batch}).")
        if cond.batch_size != batch:
            raise DataError(f"the condition holds {cond.batch_size} samples but the input holds {batch}.")
        return cond

    def _text_context(self, cond: Condition) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected context [B, T, d] and key validity [B, T]; empty rows use the learned null key."""
        text = cond.text
        b, t, _ = text.shape  # type: ignore[union-attr]
        pad = cond.text_padding if cond.text_padding is not None else torch.zeros(
            b, t, dtype=torch.bool, device=text.device)  # type: ignore[union-attr]
        ctx = self.text_proj(self.text_norm(text))
        empty = pad.all(dim=1)  # [B]
        first = torch.zeros(t, dtype=torch.bool, device=ctx.device)
        first[0] = True
        use_null = empty[:, None] & first[None, :]  # [B, T]
        ctx = torch.where(use_null[..., None], self.null_text.to(ctx.dtype), ctx)
        return ctx, (~pad) | use_null

    # ------------------------------------------------------------------ forward
    def forward(self, embeds: torch.Tensor, cond: Condition | None = None,
                return_hidden: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Embeddings [B, L, d] (hard, noised or soft) → logits [B, L, K].

        Positional embeddings are added here. With ``return_hidden`` also returns the residual
        stream after each of the ``depth`` blocks, image positions only: a list of [B, L, d].
        """
        cfg = self.config
        if embeds.dim() != 3 or embeds.shape[1:] != (cfg.seq_len, cfg.hidden):
            raise DataError(f"forward expects embeddings [B, {cfg.seq_len}, {cfg.hidden}] (use "
                            f"forward_ids for token ids), got {tuple(embeds.shape)}.")
        b = embeds.shape[0]
        cond = self._check_cond(cond, b)
        x = embeds + self.pos_emb.to(embeds.dtype)
        n_pre = 0
        ctx = key_valid = None
        if cfg.cond == "class":
            x = torch.cat([self.class_emb(cond.labels)[:, None].to(x.dtype), x], dim=1)  # type: ignore[union-attr]
            n_pre = 1
        elif cfg.cond == "text":
            ctx, key_valid = self._text_context(cond)  # type: ignore[arg-type]
        x = self.in_drop(x)
        hidden: list[torch.Tensor] = []
        for block in self.blocks:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, ctx, key_valid, use_reentrant=False)
            else:
                x = block(x, ctx, key_valid)
            if return_hidden:
                hidden.append(x[:, n_pre:])
        h = self.norm(x[:, n_pre:])
        if cfg.tie_weights:
            logits = h @ self.embedding_table().t() + self.head_bias
        else:
            logits = self.head(h)
        return (logits, hidden) if return_hidden else logits

    def forward_ids(self, ids: torch.Tensor, cond: Condition | None = None,
                    return_hidden: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """``forward(embed(ids), cond)``."""
        return self.forward(self.embed(ids), cond, return_hidden=return_hidden)

    # ------------------------------------------------------------------ training
    def training_loss(self, ids: torch.Tensor, cond_inputs: Condition | torch.Tensor | None = None,
                      schedule: MaskSchedule | None = None, label_smoothing: float = 0.1,
                      generator: torch.Generator | None = None,
                      loss_positions: LossPositions = "masked") -> tuple[torch.Tensor, dict[str, float]]:
        """MDM loss of one batch of token grids (teacher training, docs/method.md §2.2).

        Per sample: r ~ ``schedule`` (default arccos), mask exactly max(1, round(r·L)) positions,
        drop the condition with probability ``cond_drop_prob``, and take the label-smoothed CE
        on the masked positions (``loss_positions="masked"``) or on every position
        (``"all"``: the released MaskGit objective, in which the model also learns to copy the
        visible tokens). ``cond_inputs``: a :class:`Condition`, or class labels [B] for a
        class-conditional model. Logs: ``loss``, ``acc`` (masked-position accuracy),
        ``mask_ratio`` (mean masked fraction), ``cond_dropped`` (fraction of null conditions).
        """
        ids = ids.reshape(ids.shape[0], -1)
        if ids.shape[1] != self.seq_len or ids.is_floating_point():
            raise DataError(f"training_loss expects integer token ids [B, {self.seq_len}], got "
                            f"{ids.dtype} {tuple(ids.shape)}.")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.num_tokens):
            raise DataError(f"training targets must be image tokens in [0, {self.num_tokens - 1}], got "
                            f"range [{int(ids.min())}, {int(ids.max())}].")
        if isinstance(cond_inputs, torch.Tensor):
            cond_inputs = self.encode_condition(labels=cond_inputs)
        b, dev = ids.shape[0], ids.device
        gen_dev = generator.device if generator is not None else dev
        schedule = schedule or MaskSchedule()
        r = schedule.sample(b, generator=generator, device=gen_dev)
        mask = exact_count_mask(b, self.seq_len, r, generator=generator, device=gen_dev).to(dev)
        x = torch.where(mask, torch.full_like(ids, self.mask_id), ids)
        cond = self.drop_condition(cond_inputs, self.config.cond_drop_prob if self.training else 0.0,
                                   generator=generator)
        logits = self.forward_ids(x, cond)
        if loss_positions not in ("masked", "all"):
            raise ConfigError(f"loss_positions must be 'masked' or 'all', got {loss_positions!r}.")
        scored = mask if loss_positions == "masked" else torch.ones_like(mask)
        loss = masked_ce_loss(logits, ids, scored, label_smoothing)  # type: ignore[arg-type]
        with torch.no_grad():
            acc = (logits.argmax(-1) == ids)[mask].float().mean()  # type: ignore[union-attr]
            dropped = 0.0
            if cond is not None and self.config.cond == "class":
                dropped = float((cond.labels == self.null_class_id).float().mean())  # type: ignore[union-attr]
            elif cond is not None and self.config.cond == "text":
                dropped = float(cond.text_padding.all(1).float().mean())  # type: ignore[union-attr]
        logs = {"loss": float(loss.detach()), "acc": float(acc), "mask_ratio": float(mask.float().mean()),
                "cond_dropped": dropped}
        return loss, logs


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["LossPositions", "MDMConfig", "MDM_PRESETS", "mdm_config", "Condition", "MaskedTransformer", "count_parameters"]
