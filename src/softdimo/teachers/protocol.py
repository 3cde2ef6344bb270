"""The Teacher protocol: the one seam between distillation code and a concrete teacher (docs/architecture.md §3).

A teacher bundles a masked diffusion model (MDM) and its image tokenizer. Di[M]O (docs/method.md §3)
and Soft-Di[M]O (§4–§7) only ever talk to this surface, so the native teacher
(:class:`~softdimo.teachers.native.NativeTeacher`) and adapters of real teachers (aMUSEd) are
interchangeable:

* vocabulary and layout: ``num_tokens`` K (image tokens, mask excluded), ``mask_id`` (= K for
  the native teacher), ``grid`` (h, w), L = h·w;
* embeddings: ``embedding_table()`` → E ∈ R^{K×d}, the rows a soft embedding averages
  (ẽ = Eᵀ softmax(z), §4.1), and ``embed(ids)`` → [B, L, d] for ids in [0, K] (mask included);
* the network: ``forward(embeds, cond, return_hidden=False)`` → logits [B, L, K] (plus the
  per-block hidden states [B, L, d] for discriminator heads). It takes *embeddings*, so hard,
  noised and soft inputs share one path;
* conditions: ``encode_condition(labels=… | prompts=…)`` and ``null_condition(batch)`` (the
  unconditional branch of classifier-free guidance); ``cond_kind`` says which of the two a
  teacher takes and ``num_classes`` how many labels (0 for text teachers);
* images: ``decode(ids)`` → [B, C, H, W] in [0, 1], and ``decode_soft(p)`` → the same,
  differentiable in the token probabilities p [B, L, K] (p @ codebook into the decoder).
"""
from __future__ import annotations

from typing import Any, Literal, Protocol, Sequence, runtime_checkable

import torch

CondKind = Literal["class", "text"]


@runtime_checkable
class Teacher(Protocol):
    """What distillation needs from a teacher (docs/architecture.md §3); see the module docstring."""

    @property
    def num_tokens(self) -> int:
        """K, the number of image tokens (the mask token excluded)."""
        ...

    @property
    def mask_id(self) -> int:
        """Id of the mask token [M]."""
        ...

    @property
    def grid(self) -> tuple[int, int]:
        """Token grid (h, w) of one image."""
        ...

    @property
    def cond_kind(self) -> CondKind:
        """``"class"`` (integer labels) or ``"text"`` (prompts)."""
        ...

    @property
    def num_classes(self) -> int:
        """Number of class labels for a class teacher (0 for a text teacher)."""
        ...

    def embedding_table(self) -> torch.Tensor:
        """E ∈ R^{K×d}: the input embeddings of the K image tokens (soft embedding = p @ E)."""
        ...

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids [B, L] in [0, K] (mask included) → input embeddings [B, L, d]."""
        ...

    def forward(self, embeds: torch.Tensor, cond: Any,
                return_hidden: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Embeddings [B, L, d] → logits [B, L, K] (and per-block hidden states [B, L, d])."""
        ...

    def encode_condition(self, labels: torch.Tensor | Sequence[int] | None = None,
                         prompts: Sequence[str] | None = None) -> Any:
        """The condition of a batch: class labels or text prompts (exactly one of them)."""
        ...

    def null_condition(self, batch: int) -> Any:
        """The null condition of ``batch`` samples, for classifier-free guidance."""
        ...

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids [B, L] or [B, h, w] in [0, K) → images [B, C, H, W] in [0, 1]."""
        ...

    def decode_soft(self, p: torch.Tensor) -> torch.Tensor:
        """Token probabilities [B, L, K] → images in [0, 1], differentiable in ``p``."""
        ...


__all__ = ["Teacher", "CondKind"]
