"""The shared base of every teacher and student: :class:`MDMBundle`, an MDM with its frozen tokenizer.

A teacher φ and its one-step student θ are the same kind of object (docs/method.md §3.1: the
student is a copy of the teacher's architecture); they differ only in how they sample. Every
kind of model — softdimo's own, the released MaskGIT, aMUSEd, Meissonic — is an
:class:`MDMBundle` of a network ``mdm`` (embeddings in, logits out) and a frozen ``tokenizer``
(``decode``, ``decode_soft``), with a default ``sampler``. The base holds what they share, the
Teacher protocol's surface (docs/architecture.md §3):

* vocabulary and layout: ``num_tokens`` K, ``mask_id``, ``grid``, ``image_shape``, ``device``;
* the network: ``embedding_table``, ``mask_embedding``, ``embed``, ``forward(embeds, cond,
  return_hidden)``;
* images: ``decode``, ``decode_soft``;
* sampling: ``sampler_with`` (the default sampler with some knobs replaced) and ``sample``.

Two roles are mixed in before a kind's bundle class: :class:`TeacherRole` (``sample_ids`` is the
N-step MaskGIT sampler with classifier-free guidance against ``null_condition``; the distillation
hooks ``trainable_copy``, ``make_student``, ``load_student``) and
:class:`~softdimo.teachers.student.StudentRole` (one forward pass; the distillation's provenance).

What differs per kind is left to the subclass: the conditions (``cond_kind``, ``num_classes``,
``encode_condition``, ``null_condition``), the folder format (``save_pretrained``,
``from_pretrained``, ``is_folder``), the parts' checks (``check_parts``) and the default sampler.
:mod:`.folder` is softdimo's folder format (native and MaskGIT kinds); :mod:`.amused` the
diffusers layout.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
from pathlib import Path
from typing import Any, ClassVar, Sequence

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..files import read_json
from .protocol import CondKind


def read_manifest(path: str | os.PathLike, name: str) -> dict[str, Any] | None:
    """The parsed manifest ``name`` (e.g. ``teacher.json``) of ``path``, or None when there is none."""
    f = Path(path) / name
    if not f.is_file():
        return None
    return read_json(f, "the manifest (the model folder is corrupt?)", CheckpointError)


def check_compatible(mdm: Any, tokenizer: Any, where: str = "") -> None:
    """Raise :class:`ConfigError` unless the tokenizer's K and grid equal the MDM's."""
    at = f" ({where})" if where else ""
    if tokenizer.num_tokens != mdm.num_tokens:
        raise ConfigError(f"the tokenizer has K={tokenizer.num_tokens} codes but the MDM predicts "
                          f"num_tokens={mdm.num_tokens}{at}. Set model.num_tokens={tokenizer.num_tokens} "
                          f"or use the tokenizer the MDM was trained with.")
    if tuple(tokenizer.grid) != tuple(mdm.grid):
        h, w = tokenizer.grid
        raise ConfigError(f"the tokenizer makes {h}×{w} token grids but the MDM expects "
                          f"{mdm.grid[0]}×{mdm.grid[1]}{at}. Set model.grid=[{h}, {w}] or use the "
                          f"tokenizer the MDM was trained with.")


class MDMBundle(nn.Module):
    """A network ``mdm`` + its frozen ``tokenizer`` + a default ``sampler`` (module docstring)."""

    KIND: ClassVar[str] = ""  # manifest "kind" of this class's folders
    MANIFEST: ClassVar[str] = ""  # manifest file name
    ROLE: ClassVar[str] = "model"  # word used in error messages ("teacher", "student")
    HOW_TO_MAKE: ClassVar[str] = ""  # how a user gets such a folder (error messages)
    FROZEN: ClassVar[tuple[str, ...]] = ("tokenizer",)  # submodules that stay in eval mode

    def __init__(self, mdm: nn.Module, tokenizer: nn.Module, sampler: Any = None) -> None:
        super().__init__()
        self.check_parts(mdm, tokenizer)
        self.mdm = mdm
        self.tokenizer = tokenizer.eval().requires_grad_(False)
        self.sampler = sampler if sampler is not None else self.default_sampler()

    def check_parts(self, mdm: nn.Module, tokenizer: nn.Module) -> None:
        """Raise unless ``mdm`` and ``tokenizer`` belong together (default: same K and grid)."""
        check_compatible(mdm, tokenizer)

    def default_sampler(self) -> Any:
        """The sampler :meth:`sample` uses when none is given or stored in the folder."""
        raise NotImplementedError

    def train(self, mode: bool = True) -> "MDMBundle":
        """Set the network's mode; the frozen parts (:attr:`FROZEN`) always stay in eval mode."""
        super().train(mode)
        for name in self.FROZEN:
            getattr(self, name).eval()
        return self

    # ------------------------------------------------------------------ protocol properties
    @property
    def num_tokens(self) -> int:
        return int(self.mdm.num_tokens)

    @property
    def mask_id(self) -> int:
        return int(self.mdm.mask_id)

    @property
    def grid(self) -> tuple[int, int]:
        return self.mdm.grid

    @property
    def cond_kind(self) -> CondKind:
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        raise NotImplementedError

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of decoded images."""
        own = getattr(self.tokenizer, "image_shape", None)
        if own is not None:
            return tuple(own)  # type: ignore[return-value]
        c = self.tokenizer.config
        return (c.in_channels, c.image_size, c.image_size)

    @property
    def device(self) -> torch.device:
        return self.mdm.embedding_table().device

    # ------------------------------------------------------------------ network
    def embedding_table(self) -> torch.Tensor:
        return self.mdm.embedding_table()

    def mask_embedding(self) -> torch.Tensor:
        return self.mdm.mask_embedding()

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.mdm.embed(ids)

    def forward(self, embeds: torch.Tensor, cond: Any,
                return_hidden: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        return self.mdm(embeds, cond, return_hidden=return_hidden)

    # ------------------------------------------------------------------ conditions
    def encode_condition(self, labels: torch.Tensor | Sequence[int] | None = None,
                         prompts: Sequence[str] | None = None) -> Any:
        raise NotImplementedError

    def null_condition(self, batch: int) -> Any:
        raise NotImplementedError

    # ------------------------------------------------------------------ images
    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        return self.tokenizer.decode(ids)

    def decode_soft(self, p: torch.Tensor) -> torch.Tensor:
        return self.tokenizer.decode_soft(p)

    # ------------------------------------------------------------------ sampling
    def sampler_with(self, **overrides: Any) -> Any:
        """The default sampler with some fields replaced (None values are ignored)."""
        kept = {k: v for k, v in overrides.items() if v is not None}
        try:
            return dataclasses.replace(self.sampler, **kept)
        except TypeError as e:
            raise ConfigError(f"bad sampler override {sorted(kept)}: {e}") from e

    def sample_ids(self, labels: torch.Tensor | Sequence[int] | None = None,
                   prompts: Sequence[str] | None = None, sampler: Any = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """Token grids [B, L] in [0, K) (the role decides how: :class:`TeacherRole`, ``StudentRole``)."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, labels: torch.Tensor | Sequence[int] | None = None, prompts: Sequence[str] | None = None,
               sampler: Any = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images [B, C, H, W] in [0, 1]: ``sample_ids`` → ``decode``."""
        return self.decode(self.sample_ids(labels, prompts, sampler, generator))

    # ------------------------------------------------------------------ folders
    @classmethod
    def is_folder(cls, path: str | os.PathLike) -> bool:
        """True when ``path`` holds this class's manifest with this class's kind."""
        try:
            m = read_manifest(path, cls.MANIFEST)
        except CheckpointError:
            return False
        return m is not None and m.get("kind") == cls.KIND

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
        raise NotImplementedError

    def save_pretrained(self, path: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        raise NotImplementedError


class TeacherRole:
    """The teacher's sampling and distillation hooks, mixed in before an :class:`MDMBundle`.

    ``sample_ids`` is the N-step MaskGIT sampler with classifier-free guidance; ``trainable_copy``,
    ``make_student`` and ``load_student`` (its :attr:`STUDENT` class) start and reload the
    students; the bundle class provides ``load_network`` (its folder format).
    """

    ROLE = "teacher"
    STUDENT: ClassVar[type]  # the class of this kind's one-step students
    mdm: nn.Module

    @torch.no_grad()
    def sample_ids(self, labels: torch.Tensor | Sequence[int] | None = None,
                   prompts: Sequence[str] | None = None, sampler: Any = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """Token grids [B, L] in [0, K): the N-step MaskGIT sampler (default: :attr:`sampler`) with
        classifier-free guidance against :meth:`null_condition` (docs/method.md §2.3)."""
        cond = self.encode_condition(labels=labels, prompts=prompts)  # type: ignore[attr-defined]
        b = int(cond.batch_size or 0)
        sampler = sampler or self.sampler  # type: ignore[attr-defined]
        return sampler.sample(self, cond, self.null_condition(b), batch=b, generator=generator)  # type: ignore

    def trainable_copy(self) -> nn.Module:
        """A deep copy of the network: the start of the student θ and of the auxiliary ψ (§3.1)."""
        return copy.deepcopy(self.mdm)

    def make_student(self, mdm: nn.Module, sampler: Any, training: dict[str, Any]) -> "MDMBundle":
        """``mdm`` with this teacher's frozen parts as a one-step student (a :attr:`STUDENT`)."""
        raise NotImplementedError

    def load_student(self, path: str | os.PathLike, map_location: str | torch.device = "cpu") -> "MDMBundle":
        """The one-step student folder ``path`` of this kind (a :attr:`STUDENT`)."""
        return self.STUDENT.from_pretrained(path, map_location=map_location)


__all__ = ["MDMBundle", "TeacherRole", "check_compatible", "read_manifest"]
