"""The Teacher and Student protocols: the one seam between the stages and a concrete model (docs/architecture.md §3).

A teacher bundles a masked diffusion model (MDM) and its image tokenizer. Di[M]O (docs/method.md §3)
and Soft-Di[M]O (§4–§7) only ever talk to this surface, so the native teacher
(:class:`~softdimo.teachers.native.NativeTeacher`) and adapters of real teachers (MaskGIT,
aMUSEd, Meissonic) are interchangeable:

* vocabulary and layout: ``num_tokens`` K (image tokens, mask excluded), ``mask_id`` (= K for
  the native teacher), ``grid`` (h, w), L = h·w, ``image_shape`` (C, H, W), ``device``;
* embeddings: ``embedding_table()`` → E ∈ R^{K×d}, the rows a soft embedding averages
  (ẽ = Eᵀ softmax(z), §4.1), ``mask_embedding()`` and ``embed(ids)`` → [B, L, d] for ids in
  [0, K] (mask included);
* the network: ``forward(embeds, cond, return_hidden=False)`` → logits [B, L, K] (plus the
  per-block hidden states [B, L, d] for discriminator heads). It takes *embeddings*, so hard,
  noised and soft inputs share one path; ``mdm`` is the network itself (the discriminator's
  frozen backbone) and ``tokenizer`` the frozen image tokenizer;
* conditions: ``encode_condition(labels=… | prompts=…)`` and ``null_condition(batch)`` (the
  unconditional branch of classifier-free guidance); ``cond_kind`` says which of the two a
  teacher takes and ``num_classes`` how many labels (0 for text teachers);
* images: ``decode(ids)`` → [B, C, H, W] in [0, 1], and ``decode_soft(p)`` → the same,
  differentiable in the token probabilities p [B, L, K] (p @ codebook into the decoder);
* sampling: ``sampler`` (the default), ``sampler_with(**knobs)``, ``sample(labels | prompts)``;
* distillation hooks: ``trainable_copy()`` (the start of θ and ψ), ``make_student(mdm, sampler,
  info)``, ``load_student(path)`` (the kind's student folder) and ``load_network(path)`` (ψ
  saved in a student's ``aux/``).

A :class:`Student` has the same surface without the hooks, plus ``training_info`` (the
distillation's provenance); it samples in one forward pass. Every kind implements both on the
shared base :class:`~softdimo.teachers.bundle.MDMBundle`; :func:`~softdimo.teachers.load_teacher`
returns a :class:`Teacher`.
"""
from __future__ import annotations

import os
from typing import Any, Literal, Protocol, Sequence, runtime_checkable

import torch
from torch import nn

CondKind = Literal["class", "text"]


@runtime_checkable
class Generator(Protocol):
    """What teachers and students share: an MDM and its tokenizer that turn conditions into images."""

    mdm: nn.Module  # the network (embeddings in, logits out)
    tokenizer: nn.Module  # the frozen image tokenizer (decode, decode_soft)
    sampler: Any  # the default sampler of :meth:`sample`

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
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of decoded images."""
        ...

    @property
    def device(self) -> torch.device:
        """Where the network's weights are."""
        ...

    @property
    def cond_kind(self) -> CondKind:
        """``"class"`` (integer labels) or ``"text"`` (prompts)."""
        ...

    @property
    def num_classes(self) -> int:
        """Number of class labels for a class model (0 for a text model)."""
        ...

    def embedding_table(self) -> torch.Tensor:
        """E ∈ R^{K×d}: the input embeddings of the K image tokens (soft embedding = p @ E)."""
        ...

    def mask_embedding(self) -> torch.Tensor:
        """E[mask_id] [d]: the input embedding of the mask token."""
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

    def sampler_with(self, **overrides: Any) -> Any:
        """The default sampler with some knobs replaced (None values are ignored)."""
        ...

    def sample(self, labels: torch.Tensor | Sequence[int] | None = None, prompts: Sequence[str] | None = None,
               sampler: Any = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images [B, C, H, W] in [0, 1] for the labels or prompts."""
        ...

    def save_pretrained(self, path: str | os.PathLike, dtype: torch.dtype | None = None) -> Any:
        """Write the model's folder."""
        ...


@runtime_checkable
class Student(Generator, Protocol):
    """A one-step generator distilled from a teacher (samples in one forward pass, no CFG)."""

    training_info: dict[str, Any]  # the distillation's provenance (manifest "distillation")


@runtime_checkable
class Teacher(Generator, Protocol):
    """What the stages need from a teacher (docs/architecture.md §3): the surface plus the distillation hooks."""

    def trainable_copy(self) -> nn.Module:
        """A deep copy of the network: the start of the student θ and of the auxiliary ψ (§3.1)."""
        ...

    def make_student(self, mdm: nn.Module, sampler: Any, training: dict[str, Any]) -> Student:
        """``mdm`` with this teacher's frozen parts as a one-step student."""
        ...

    def load_student(self, path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Student:
        """The one-step student folder ``path`` of this teacher's kind."""
        ...

    def load_network(self, path: str | os.PathLike) -> nn.Module | None:
        """The network saved in ``path`` (a student folder's ``aux/``), None when it holds no weights."""
        ...


__all__ = ["Generator", "Teacher", "Student", "CondKind"]
