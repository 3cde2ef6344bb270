"""aMUSEd as a softdimo teacher and its one-step students: the Teacher protocol over a local diffusers folder.

:class:`AmusedBundle` is an :class:`~softdimo.teachers.bundle.MDMBundle` of an
:class:`~.network.AmusedNetwork` (the seam), an :class:`~.vq.AmusedVQ` and the frozen CLIP
:class:`~.text.AmusedTextEncoder`; it adds what aMUSEd does differently from softdimo's own
models: prompts with micro-conditions, the negative prompt as the null condition of CFG, and the
diffusers folder layout (:mod:`.parts`). :class:`AmusedTeacher` and :class:`AmusedStudent` are its
two roles, as :class:`~softdimo.teachers.NativeTeacher` and
:class:`~softdimo.teachers.OneStepStudent` are for softdimo's folders.

**Sampling.** The teacher samples with softdimo's :class:`~softdimo.mdm.MaskGITSampler`, set up
as ``AmusedScheduler`` samples: multinomial draws at τ = 1, confidence = log p + g·Gumbel with g
annealed linearly 2 → 0, the scheduler's masking schedule; 12 steps and CFG 10 by default (the
pipeline's defaults). The mask id comes from the scheduler config (``mask_token_id``, the last
vocabulary row), not from ``codebook_size``.

**Students.** A distilled student is an :class:`AmusedStudent`: the same folder layout with the
distilled ``transformer/`` and a ``student.json`` manifest (kind ``amused-student``, the one-step
sampler's knobs, the distillation's provenance). ``trainable_copy`` gives θ and ψ (Di[M]O freezes
their embedding block and ``mlm_layer`` head, Meissonic's recipe), ``load_network`` reads ψ back
from a student's ``aux/``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any, ClassVar, Sequence

import torch

from ...config import from_dict
from ...errors import CheckpointError, DataError
from ...mdm import MaskGITSampler, OneStepSampler
from ...pretrained import atomic_write_bytes
from ..bundle import MDMBundle, TeacherRole, read_manifest
from ..protocol import CondKind
from ..student import StudentRole
from .network import AmusedNetwork
from .parts import load_part, quiet_hub, require_diffusers, resolve_parts
from .text import AmusedCondition, AmusedTextEncoder
from .vq import AmusedVQ

KIND = "amused-teacher"
STUDENT_KIND = "amused-student"
STUDENT_MANIFEST = "student.json"


def default_sampler(schedule: str = "cosine") -> MaskGITSampler:
    """aMUSEd's sampling as a MaskGITSampler: 12 steps, τ 1, confidence noise 2 → 0, CFG 10."""
    return MaskGITSampler(steps=12, schedule=schedule if schedule in ("cosine", "linear") else "cosine",  # type: ignore
                          temperature=1.0, confidence_noise=2.0, confidence_noise_end=0.0, cfg_scale=10.0)


class AmusedBundle(MDMBundle):
    """``mdm`` (:class:`AmusedNetwork`), ``tokenizer`` (:class:`AmusedVQ`), ``text``
    (:class:`AmusedTextEncoder`) and the default ``sampler`` (module docstring).

    ``negative_prompt`` is the null condition of CFG; ``aesthetic_score`` the last micro-condition;
    ``part_dirs`` the folders the parts were loaded from (a student copies the frozen ones).
    """

    FROZEN = ("tokenizer", "text")
    NETWORK: ClassVar[type] = AmusedNetwork

    def __init__(self, network: AmusedNetwork, vq: AmusedVQ, text: AmusedTextEncoder, sampler: Any = None,
                 negative_prompt: str = "", aesthetic_score: float = 6.0,
                 part_dirs: dict[str, Path] | None = None, scheduler_config: dict[str, Any] | None = None) -> None:
        self.scheduler_config = dict(scheduler_config or {})  # read by default_sampler() in the base's __init__
        super().__init__(network, vq, sampler)
        self.text = text
        self.negative_prompt = negative_prompt
        self.aesthetic_score = float(aesthetic_score)
        self.part_dirs = {k: Path(v) for k, v in (part_dirs or {}).items()}

    def check_parts(self, network: AmusedNetwork, vq: AmusedVQ) -> None:
        if vq.num_tokens != network.num_tokens:
            raise CheckpointError(f"the VQ has {vq.num_tokens} codes but the transformer predicts "
                                  f"codebook_size={network.num_tokens}; the parts do not belong together.")

    def default_sampler(self) -> Any:
        return default_sampler(str(self.scheduler_config.get("masking_schedule", "cosine")))

    @property
    def cond_kind(self) -> CondKind:
        return "text"

    @property
    def num_classes(self) -> int:
        return 0

    # ------------------------------------------------------------------ conditions
    def micro_conds(self, batch: int) -> torch.Tensor:
        """[B, 5]: [width, height, crop top, crop left, aesthetic score] (the pipeline's order)."""
        _, hh, ww = self.image_shape
        row = torch.tensor([ww, hh, 0.0, 0.0, self.aesthetic_score], device=self.device)
        return row.expand(batch, -1)

    def _condition(self, prompts: Sequence[str]) -> AmusedCondition:
        hidden, pooled = self.text.encode(prompts)
        return AmusedCondition(hidden, pooled, self.micro_conds(len(prompts)).to(hidden.dtype))

    def encode_condition(self, labels: torch.Tensor | Sequence[int] | None = None,
                         prompts: Sequence[str] | None = None) -> AmusedCondition:
        """The condition of ``prompts`` (aMUSEd is text-to-image: labels are refused)."""
        if labels is not None:
            raise DataError("aMUSEd is text-conditional: pass prompts=[…] (strings), not labels.")
        if prompts is None:
            raise DataError("encode_condition needs prompts=[…] (strings) for an aMUSEd teacher.")
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = list(prompts)
        if not prompts:
            raise DataError("encode_condition got an empty list of prompts; give at least one.")
        bad = [i for i, p in enumerate(prompts) if not isinstance(p, str) or not p.strip()]
        if bad:
            raise DataError(f"prompt {bad[0]} is empty or not a string; every image needs a non-empty prompt "
                            f"(the unconditional branch is null_condition).")
        return self._condition(prompts)

    def null_condition(self, batch: int) -> AmusedCondition:
        """The negative prompt (empty by default) for ``batch`` samples: CFG's unconditional branch."""
        return self._condition([self.negative_prompt] * batch)

    # ------------------------------------------------------------------ distillation hooks
    def load_network(self, path: str | os.PathLike) -> AmusedNetwork | None:
        """A copy of the network with the weights of the diffusers folder ``path`` (None if absent)."""
        path = Path(path)
        if not (path / "config.json").is_file():
            return None
        net = self.trainable_copy()
        net.load_weights(path)
        return net

    # ------------------------------------------------------------------ folders
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None, parts: dict[str, str | os.PathLike] | None = None,
                        map_location: str | torch.device = "cpu", negative_prompt: str = "",
                        aesthetic_score: float = 6.0, text_cache_size: int = 1024,
                        transformer_class: type | None = None) -> Any:
        """Load an aMUSEd folder (root + subfolders), or its parts from their own folders (``parts``), offline.

        ``transformer_class`` replaces ``UVit2DModel`` (a network with the same embedding block,
        e.g. Meissonic's; see :mod:`softdimo.teachers.meissonic`).
        """
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download (unless the user set otherwise)
        require_diffusers()
        from diffusers import VQModel  # optional dependency (the amused extra)
        from transformers import CLIPTextModelWithProjection, CLIPTokenizer  # loaded with diffusers only

        dirs = resolve_parts(path, parts)
        root = Path(path).expanduser() if path else None
        extra = cls.read_extras(root) if root is not None else {}
        transformer = load_part(transformer_class or cls.transformer_class(), "transformer",
                                       dirs["transformer"], root)
        vqvae = load_part(VQModel, "vqvae", dirs["vqvae"], root)
        text_model = load_part(CLIPTextModelWithProjection, "text_encoder", dirs["text_encoder"], root)
        tok = load_part(CLIPTokenizer, "tokenizer", dirs["tokenizer"], root)
        scheduler = cls.read_scheduler_config(dirs["scheduler"], root)
        if "mask_token_id" not in scheduler:
            raise CheckpointError(f"{dirs['scheduler']}/scheduler_config.json has no mask_token_id; the folder is not "
                                  f"an aMUSEd-style checkpoint.")
        sample_size = int(transformer.config.sample_size)
        grid = (sample_size, sample_size)
        network = cls.NETWORK(transformer, grid, int(transformer.config.codebook_size), int(scheduler["mask_token_id"]))
        text = AmusedTextEncoder(tok, text_model, cache_size=text_cache_size)
        out = cls(network, AmusedVQ(vqvae, grid), text, extra.get("sampler"),
                  extra.get("negative_prompt", negative_prompt), extra.get("aesthetic_score", aesthetic_score),
                  dirs, scheduler)
        out.load_extras(extra)
        return out.to(map_location).eval()

    @classmethod
    def transformer_class(cls) -> type:
        """The network class of ``transformer/`` (``UVit2DModel``)."""
        from diffusers import UVit2DModel  # optional dependency (the amused extra)

        return UVit2DModel

    @classmethod
    def read_scheduler_config(cls, folder: Path, root: Path | None) -> dict[str, Any]:
        """The scheduler config (``mask_token_id``, ``masking_schedule``), loaded as ``AmusedScheduler``."""
        from diffusers import AmusedScheduler  # optional dependency (the amused extra)

        return dict(load_part(AmusedScheduler, "scheduler", folder, root).config)

    @classmethod
    def read_extras(cls, root: Path) -> dict[str, Any]:
        """Manifest fields of the folder (students), checked against this class's role."""
        return {}

    def load_extras(self, extra: dict[str, Any]) -> None:
        """Hook: apply manifest fields after loading."""


class AmusedStudent(StudentRole, AmusedBundle):
    """A Di[M]O student of an aMUSEd teacher: the aMUSEd folder layout with the distilled
    ``transformer/`` and ``student.json`` (kind ``amused-student``, the one-step sampler's knobs,
    the distillation's provenance). Samples in one forward pass (:class:`~softdimo.mdm.OneStepSampler`)."""

    KIND = STUDENT_KIND

    def __init__(self, *args: Any, training: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.set_training_info(training)

    def manifest(self) -> dict[str, Any]:
        c, h, w = self.image_shape
        return {"kind": self.KIND, "format_version": 1, "cond": "text", "num_tokens": self.num_tokens,
                "mask_id": self.mask_id, "grid": list(self.grid), "image": {"channels": c, "height": h, "width": w},
                "sampler": dataclasses.asdict(self.sampler), "negative_prompt": self.negative_prompt,
                "aesthetic_score": self.aesthetic_score, "distillation": self.training_info}

    def save_pretrained(self, path: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        """Write the aMUSEd layout (frozen parts copied from the teacher's folders) and, last, student.json."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.mdm.save_pretrained(path / "transformer", dtype=dtype)
        for part in ("vqvae", "text_encoder", "tokenizer", "scheduler"):
            src, dst = self.part_dirs.get(part), path / part
            if src is None:
                self._save_part(part, dst)
            elif Path(src).resolve() != dst.resolve():
                shutil.copytree(src, dst, dirs_exist_ok=True)
        src_index = Path(self.part_dirs["transformer"]).parent / "model_index.json" if "transformer" in self.part_dirs \
            else None
        dst_index = path / "model_index.json"
        if src_index is not None and src_index.is_file() and src_index.resolve() != dst_index.resolve():
            shutil.copyfile(src_index, dst_index)
        atomic_write_bytes(path / STUDENT_MANIFEST, (json.dumps(self.manifest(), indent=2) + "\n").encode())
        return path

    def _save_part(self, part: str, dst: Path) -> None:
        """Write a frozen part held only in memory (a teacher built without folders)."""
        if part == "vqvae":
            with quiet_hub():
                self.tokenizer.vqvae.save_pretrained(str(dst))
        elif part == "text_encoder":
            with quiet_hub():
                self.text.model.save_pretrained(str(dst))
        elif part == "tokenizer":
            self.text.tokenizer.save_pretrained(str(dst))
        else:
            dst.mkdir(parents=True, exist_ok=True)
            cfg = {k: v for k, v in self.scheduler_config.items() if not k.startswith("_")}
            (dst / "scheduler_config.json").write_text(json.dumps({"_class_name": "AmusedScheduler", **cfg}, indent=2))

    @classmethod
    def read_extras(cls, root: Path) -> dict[str, Any]:
        m = read_manifest(root, STUDENT_MANIFEST)
        if m is None:
            raise CheckpointError(f"{root} is not an aMUSEd student folder: {STUDENT_MANIFEST} is missing. Pass the "
                                  f"folder written by `softdimo distill` with teacher_kind=amused (<run dir>/final).")
        if m.get("kind") != STUDENT_KIND:
            raise CheckpointError(f"{root}/{STUDENT_MANIFEST} describes a '{m.get('kind')}', not an "
                                  f"'{STUDENT_KIND}'.")
        raw = m.get("sampler")
        out: dict[str, Any] = {"manifest": m}
        if isinstance(raw, dict):
            out["sampler"] = from_dict(OneStepSampler, raw, where=f"{root}/{STUDENT_MANIFEST}", prefix="sampler.")
        for key in ("negative_prompt", "aesthetic_score"):
            if key in m:
                out[key] = m[key]
        return out

    def load_extras(self, extra: dict[str, Any]) -> None:
        info = extra.get("manifest", {}).get("distillation")
        self.set_training_info(info if isinstance(info, dict) else None)


class AmusedTeacher(TeacherRole, AmusedBundle):
    """aMUSEd as a Teacher (module docstring); its students are :class:`AmusedStudent` folders."""

    KIND = KIND
    STUDENT = AmusedStudent

    def make_student(self, network: AmusedNetwork, sampler: Any, training: dict[str, Any]) -> AmusedStudent:
        """The one-step student made of ``network`` and this teacher's frozen parts."""
        s = self.STUDENT(network, self.tokenizer, self.text, sampler, self.negative_prompt, self.aesthetic_score,
                         self.part_dirs, self.scheduler_config, training=training)
        s.train(network.training)
        return s

    @classmethod
    def read_extras(cls, root: Path) -> dict[str, Any]:
        """A teacher folder has no manifest fields, and a student's folder is refused."""
        if (root / STUDENT_MANIFEST).is_file():
            raise CheckpointError(f"{root} holds a distilled student ({STUDENT_MANIFEST}); a student cannot stand in "
                                  f"for its teacher. Pass the original aMUSEd folder as the teacher.")
        return {}


__all__ = ["AmusedBundle", "AmusedTeacher", "AmusedStudent", "default_sampler", "KIND", "STUDENT_KIND",
           "STUDENT_MANIFEST"]
