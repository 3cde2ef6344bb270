"""The released MaskGIT (ImageNet, class-conditional) as a softdimo teacher, and its one-step students.

A converted MaskGIT folder (``softdimo convert --kind maskgit``, :mod:`.maskgit_convert`) is an
:class:`~softdimo.teachers.bundle.MDMBundle` folder, loaded without pickle::

    teacher.json   {"kind": "maskgit-teacher", "sampler": {...}, "source": {...}}   (written last)
    mdm/           MaskGITTransformer: config.json + model.safetensors (the released keys, unchanged)
    tokenizer/     TamingVQGAN:        config.json + model.safetensors (the released keys, unchanged)

:class:`MaskGITTeacher` is the Teacher protocol over :class:`~.maskgit_net.MaskGITTransformer`
(embeddings in, logits over the K image tokens out, per-block taps; class token with a null
class for CFG) and :class:`~.vqgan.TamingVQGAN` (``decode``, ``decode_soft``), plus the
distillation hooks ``trainable_copy``, ``make_student``, ``load_student`` and ``load_network``.
A Di[M]O student is a :class:`MaskGITStudent`: the same layout with the distilled ``mdm/``,
``student.json`` of kind ``maskgit-student`` (the one-step sampler's r_init, σ, τ and the
provenance), and ``aux/`` (ψ) written by ``softdimo distill``.

**Teacher sampling** (:func:`default_sampler`), the released sampler of MaskGIT-pytorch for the
256-px model, with the step count of the Di[M]O tables: 16 steps, arccos schedule, token draws
at softmax temperature 1, confidence = log p + g·Gumbel with g annealed linearly from 4.5 to 0
(``randomize="linear"``, ``r_temp=4.5``), and guidance ramped linearly over the steps, the
released ``(1 + w_k)·z_c − w_k·z_u`` with w_k = 3·k/(N−1), i.e. softdimo's scale 1 → 4. Two
documented differences: softdimo's sampler commits ``round(γ(k/N)·L)`` tokens per step (γ the
arccos map) where the released one normalises arccos increments, and its confidence is the
log-probability at temperature 1 (the released one uses the draw's temperature; equal at τ = 1).
An override of the guidance scale alone (``--cfg W``, ``sampler_with(cfg_scale=W)``) means a
constant scale W, as for every other teacher.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from ..errors import ConfigError
from ..mdm.sampler import MaskGITSampler
from .maskgit_net import MaskGITTransformer
from .native import NativeTeacher
from .student import OneStepStudent
from .vqgan import TamingVQGAN

KIND = "maskgit-teacher"
STUDENT_KIND = "maskgit-student"
CONVERT_HINT = "the folder written by `softdimo convert --kind maskgit SRC DST --allow-pickle`"


def default_sampler() -> MaskGITSampler:
    """The released 256-px sampler at 16 steps (module docstring)."""
    return MaskGITSampler(steps=16, schedule="arccos", temperature=1.0, confidence_noise=4.5,
                          confidence_noise_end=0.0, cfg_scale=1.0, cfg_scale_end=4.0)


class MaskGITStudent(OneStepStudent):
    """A Di[M]O student of a MaskGIT teacher: one forward pass, the released network and VQGAN."""

    KIND = STUDENT_KIND
    HOW_TO_MAKE = "the student folder written by `softdimo distill` on a maskgit teacher (<run dir>/final)"
    MDM_CLASS = MaskGITTransformer
    TOKENIZER_CLASS = TamingVQGAN


class MaskGITTeacher(NativeTeacher):
    """The released MaskGIT transformer + taming VQGAN as a Teacher, one pickle-free folder."""

    KIND = KIND
    STUDENT = MaskGITStudent
    HOW_TO_MAKE = CONVERT_HINT
    MDM_CLASS = MaskGITTransformer
    TOKENIZER_CLASS = TamingVQGAN

    def __init__(self, mdm: MaskGITTransformer, tokenizer: TamingVQGAN, sampler: Any = None) -> None:
        super().__init__(mdm, tokenizer, sampler)  # type: ignore[arg-type]
        self.source: dict[str, Any] = {}  # where the weights were converted from (teacher.json "source")

    def default_sampler(self) -> MaskGITSampler:
        return default_sampler()

    def sampler_with(self, **overrides: Any) -> Any:
        """The default sampler with fields replaced; ``cfg_scale`` alone sets a constant scale."""
        if overrides.get("cfg_scale") is not None and overrides.get("cfg_scale_end") is None:
            kept = {k: v for k, v in overrides.items() if v is not None}
            try:
                return dataclasses.replace(self.sampler, **kept, cfg_scale_end=None)
            except TypeError as e:
                raise ConfigError(f"bad sampler override {sorted(kept)}: {e}") from e
        return super().sampler_with(**overrides)

    # ------------------------------------------------------------------ folders
    def manifest(self) -> dict[str, Any]:
        out = super().manifest()
        if self.source:
            out["source"] = self.source
        return out

    def load_manifest_extras(self, manifest: dict[str, Any]) -> None:
        src = manifest.get("source")
        self.source = dict(src) if isinstance(src, dict) else {}


def is_maskgit_folder(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a converted MaskGIT teacher (``teacher.json`` of kind ``maskgit-teacher``)."""
    return MaskGITTeacher.is_folder(path)


__all__ = ["MaskGITTeacher", "MaskGITStudent", "default_sampler", "is_maskgit_folder", "KIND", "STUDENT_KIND"]
