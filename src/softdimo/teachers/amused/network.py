"""The seam: a ``UVit2DModel`` entered at its input embeddings (docs/method.md §4.1).

``UVit2DModel.embed`` is Embedding → RMSNorm → 1×1 conv. The protocol's *input embeddings* are
the Embedding rows, before the norm: ``embed(ids) = E[ids]`` with E = ``embed.embeddings.weight``
(vocab × d, mask row included), and ``forward(e, c)`` runs the rest of the network — the block's
own RMSNorm and conv, then everything after — exactly as the id path does. A soft embedding is
``softmax(z) @ E[:K]``; on a one-hot p it equals ``E[ids]`` and so gives the id path's logits bit
for bit. The network is diffusers' own ``forward``: the Embedding is swapped for
:class:`EmbeddingSeam`, which looks ids up as before and passes floating-point inputs
(embeddings) through, so no line of the network is re-implemented here (and Meissonic, which
reuses ``UVit2DConvEmbed``, fits the same way).

The student's σ noise enters at the same seam as the soft embedding, before the RMSNorm
(Di[M]O's Meissonic code adds it after the conv): one entry point for hard, noised and soft inputs.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ...errors import CheckpointError, DataError
from .parts import load_part, quiet_hub
from .text import AmusedCondition


class EmbeddingSeam(nn.Embedding):
    """``nn.Embedding`` that looks integer ids up and passes floating-point inputs (embeddings) through.

    Installed in place of ``UVit2DConvEmbed.embeddings`` (same parameter, same state-dict key), it
    lets the network's own forward start from input embeddings: hard ``E[ids]``, noised, or soft.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if x.is_floating_point():
            return x
        return super().forward(x)


class AmusedNetwork(nn.Module):
    """A ``UVit2DModel`` entered at its input embeddings (module docstring): the teacher's, the student's
    and the auxiliary's network.

    ``embed(ids)`` → E[ids] [B, L, d]; ``forward(embeds, cond, return_hidden)`` → logits [B, L, K]
    (and the output [B, L, hidden] of every transformer layer). Subclasses for other networks
    with the same embedding block override :meth:`run` (the call) and :meth:`hidden_blocks` (the taps).
    """

    WEIGHTS_CLASS: ClassVar[str] = "UVit2DModel"

    def __init__(self, transformer: nn.Module, grid: tuple[int, int], num_tokens: int, mask_id: int) -> None:
        super().__init__()
        emb = self.embedding_module(transformer)
        if not isinstance(emb, nn.Embedding):
            raise CheckpointError(f"the transformer's embed.embeddings is a {type(emb).__name__}, not an "
                                  f"nn.Embedding; this is not an aMUSEd-style network.")
        if not mask_id < emb.num_embeddings:
            raise CheckpointError(f"mask id {mask_id} is outside the embedding table ({emb.num_embeddings} rows); "
                                  f"the scheduler and transformer configs do not belong together.")
        if not num_tokens <= mask_id:
            raise CheckpointError(f"mask id {mask_id} falls inside the codebook (K={num_tokens}); the scheduler "
                                  f"config's mask_token_id must be ≥ codebook_size.")
        emb.__class__ = EmbeddingSeam  # same parameter and key: the id path is unchanged
        self.transformer = transformer
        self.grid = (int(grid[0]), int(grid[1]))
        self.num_tokens = int(num_tokens)
        self.mask_id = int(mask_id)

    @staticmethod
    def embedding_module(transformer: nn.Module) -> nn.Module:
        return transformer.embed.embeddings  # type: ignore[union-attr,return-value]

    @property
    def table(self) -> torch.Tensor:
        """E: the full input embedding table (vocab × d), mask row included."""
        return self.embedding_module(self.transformer).weight  # type: ignore[return-value]

    # ------------------------------------------------------------------ protocol surface
    def embedding_table(self) -> torch.Tensor:
        """E[:K]: the rows a soft embedding averages."""
        return self.table[: self.num_tokens]

    def mask_embedding(self) -> torch.Tensor:
        """E[mask_id] [d]."""
        return self.table[self.mask_id]

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Ids [B, L] or [B, h, w] in [0, vocab) → E[ids] [B, L, d]."""
        if ids.is_floating_point():
            raise DataError(f"embed takes integer token ids, got {ids.dtype}; a soft embedding is p @ "
                            f"embedding_table().")
        return self.embedding_module(self.transformer)(ids.reshape(ids.shape[0], -1).long())

    def embedding_parameters(self) -> list[nn.Parameter]:
        """What Di[M]O freezes in θ and ψ (docs/method.md §3.1, Meissonic's recipe): the whole embedding
        block (table, RMSNorm, 1×1 conv) and the output head (``mlm_layer``)."""
        t = self.transformer
        return [*t.embed.parameters(), *t.mlm_layer.parameters()]  # type: ignore[union-attr]

    @property
    def num_hidden_layers(self) -> int:
        """How many hidden states ``forward(..., return_hidden=True)`` returns."""
        return len(self.hidden_blocks())

    @property
    def hidden_width(self) -> int:
        """Width of those hidden states."""
        return int(self.transformer.config.hidden_size)  # type: ignore[union-attr]

    def hidden_blocks(self) -> list[nn.Module]:
        """The blocks whose outputs are the per-layer hidden states (discriminator taps)."""
        return list(self.transformer.transformer_layers)  # type: ignore[union-attr,arg-type]

    def tap(self, output: Any, n_text: int) -> torch.Tensor:
        """A hidden block's output as image-token states [B, L', hidden] (UVit: the output itself)."""
        return output

    def run(self, grid_embeds: torch.Tensor, cond: AmusedCondition) -> torch.Tensor:
        """The network's own forward on embeddings [B, h, w, d] → logits [B, K, h, w]."""
        return self.transformer(grid_embeds, encoder_hidden_states=cond.hidden, pooled_text_emb=cond.pooled,
                                micro_conds=cond.micro_conds)

    def forward(self, embeds: torch.Tensor, cond: AmusedCondition,
                return_hidden: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Embeddings [B, L, d] → logits [B, L, K] (and the per-layer hidden states [B, L', hidden];
        L' = L, or L/4 inside a network that down-samples the grid, as amused-512 does)."""
        b, length, d = embeds.shape
        h, w = self.grid
        if length != h * w:
            raise DataError(f"this aMUSEd network takes {h}×{w} = {h * w} tokens per image, got {length}.")
        if cond is None or cond.batch_size != b:
            raise DataError(f"the condition holds {None if cond is None else cond.batch_size} rows for a batch of "
                            f"{b}; build it with encode_condition(prompts=…) or null_condition({b}).")
        hidden: list[torch.Tensor] = []
        n_text = int(cond.hidden.shape[1])
        hooks = [blk.register_forward_hook(lambda _m, _i, out: hidden.append(self.tap(out, n_text)))
                 for blk in self.hidden_blocks()] if return_hidden else []
        try:
            logits = self.run(embeds.reshape(b, h, w, d), cond)
        finally:
            for hook in hooks:
                hook.remove()
        logits = logits.permute(0, 2, 3, 1).reshape(b, length, -1)
        return (logits, hidden) if return_hidden else logits

    # ------------------------------------------------------------------ weights
    def save_pretrained(self, path: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        """The transformer as a diffusers folder (config.json + diffusion_pytorch_model.safetensors)."""
        model = self.transformer
        if dtype is not None and any(t.is_floating_point() and t.dtype != dtype for t in model.state_dict().values()):
            model = copy.deepcopy(model)
            for t in (*model.parameters(), *model.buffers()):  # a plain cast (ModelMixin.to warns on dtypes)
                if t.is_floating_point():
                    t.data = t.data.to(dtype)
        with quiet_hub():
            model.save_pretrained(str(path))
        return Path(path)

    def load_weights(self, path: str | os.PathLike) -> None:
        """Load the transformer weights of a diffusers folder written by :meth:`save_pretrained`."""
        other = load_part(type(self.transformer), "transformer", Path(path), None)
        self.transformer.load_state_dict(other.state_dict())


__all__ = ["EmbeddingSeam", "AmusedNetwork"]
