"""The native teacher: our MDM and our VQ tokenizer as one Teacher (DESIGN.md §3), saved as one folder.

:class:`NativeTeacher` implements :class:`~softdimo.teachers.protocol.Teacher` directly:

* the network half (``embed``, ``embedding_table``, ``forward``, ``null_condition``) is the
  :class:`~softdimo.mdm.MaskedTransformer` φ;
* the image half (``decode``, ``decode_soft``) is the frozen :class:`~softdimo.tokenizer.VQTokenizer`
  (always in eval mode, no gradients into its weights; gradients still flow to ``p`` in
  ``decode_soft``);
* prompts of a text teacher are encoded by the frozen MiniLM
  (:class:`~softdimo.mdm.TextEncoder`, created on first use, cached per prompt);
* ``sample`` is the N-step MaskGIT sampler with CFG (METHOD.md §A.10) followed by ``decode``.

Folder layout (``save_pretrained`` / ``from_pretrained``)::

    teacher.json     {"kind": "native-teacher", "cond": ..., "sampler": {...}, ...}  (written last)
    mdm/             MaskedTransformer.save_pretrained  (config.json + model.safetensors)
    tokenizer/       VQTokenizer.save_pretrained        (config.json + model.safetensors)

Loading checks that every part is there (and lists what is missing), that ``teacher.json`` is a
native teacher's (not a one-step student's or anything else), and that the tokenizer's K and grid
equal the MDM's.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..config import from_dict
from ..errors import CheckpointError, ConfigError, DataError
from ..mdm import Condition, MaskedTransformer, MaskGITSampler, TextEncoder
from ..pretrained import CONFIG_NAME, WEIGHTS_NAME, atomic_write_bytes
from ..tokenizer import VQTokenizer
from .protocol import CondKind

MANIFEST = "teacher.json"
KIND = "native-teacher"
FORMAT_VERSION = 1
PARTS = ("mdm", "tokenizer")


def default_sampler() -> MaskGITSampler:
    """The teacher's default sampler: 16 steps, arccos, τ 1, randomised confidence (1 → 0), CFG 2."""
    return MaskGITSampler(steps=16, schedule="arccos", temperature=1.0, confidence_noise=1.0,
                          confidence_noise_end=0.0, cfg_scale=2.0)


def check_compatible(mdm: MaskedTransformer, tokenizer: VQTokenizer, where: str = "") -> None:
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


def read_manifest(path: str | os.PathLike) -> dict[str, Any] | None:
    """The parsed ``teacher.json`` of ``path``, or None when there is none."""
    f = Path(path) / MANIFEST
    if not f.is_file():
        return None
    try:
        data = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{f} is not valid JSON ({e}); the teacher folder is corrupt.") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"{f} must hold a JSON object; the teacher folder is corrupt.")
    return data


def _what_is(path: Path) -> str:
    """A short description of a folder that is not a teacher (for error messages)."""
    for f in sorted(path.glob("*.json")):
        try:
            data = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and isinstance(data.get("kind"), str):
            return f"a '{data['kind']}' folder ({f.name})"
        if isinstance(data, dict) and isinstance(data.get("_class"), str):
            return f"a single '{data['_class']}' model ({f.name})"
    return "not a softdimo model folder"


class NativeTeacher(nn.Module):
    """MDM φ + frozen VQ tokenizer (+ frozen MiniLM for text): the Teacher protocol, one folder.

    ``sampler`` is the default :class:`~softdimo.mdm.MaskGITSampler` of :meth:`sample` (stored
    in ``teacher.json``); ``text_encoder`` is created on first use for text teachers.
    """

    def __init__(self, mdm: MaskedTransformer, tokenizer: VQTokenizer,
                 sampler: MaskGITSampler | None = None) -> None:
        super().__init__()
        if mdm.config.cond not in ("class", "text"):
            raise ConfigError(f"a teacher must be class- or text-conditional; this MDM has "
                              f"cond={mdm.config.cond!r}. Set model.cond to 'class' or 'text'.")
        check_compatible(mdm, tokenizer)
        self.mdm = mdm
        self.tokenizer = tokenizer.eval().requires_grad_(False)
        self.sampler = sampler if sampler is not None else default_sampler()
        self._text_encoder: TextEncoder | None = None

    def train(self, mode: bool = True) -> "NativeTeacher":
        """Set the MDM's mode; the tokenizer always stays in eval mode (it is frozen)."""
        super().train(mode)
        self.tokenizer.eval()
        return self

    # ------------------------------------------------------------------ protocol properties
    @property
    def num_tokens(self) -> int:
        return self.mdm.num_tokens

    @property
    def mask_id(self) -> int:
        return self.mdm.mask_id

    @property
    def grid(self) -> tuple[int, int]:
        return self.mdm.grid

    @property
    def cond_kind(self) -> CondKind:
        return self.mdm.config.cond  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return self.mdm.config.num_classes if self.cond_kind == "class" else 0

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of decoded images."""
        c = self.tokenizer.config
        return (c.in_channels, c.image_size, c.image_size)

    @property
    def device(self) -> torch.device:
        return self.mdm.tok_emb.weight.device

    @property
    def text_encoder(self) -> TextEncoder:
        """The frozen MiniLM of a text teacher (created on first use; cached per prompt)."""
        if self.cond_kind != "text":
            raise DataError("this teacher is class-conditional; it has no text encoder.")
        if self._text_encoder is None:
            self._text_encoder = TextEncoder(max_length=self.mdm.config.max_text_len, cache_size=8192)
        return self._text_encoder

    # ------------------------------------------------------------------ network
    def embedding_table(self) -> torch.Tensor:
        return self.mdm.embedding_table()

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.mdm.embed(ids)

    def forward(self, embeds: torch.Tensor, cond: Condition | None,
                return_hidden: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        return self.mdm(embeds, cond, return_hidden=return_hidden)

    # ------------------------------------------------------------------ conditions
    def encode_condition(self, labels: torch.Tensor | Sequence[int] | None = None,
                         prompts: Sequence[str] | None = None) -> Condition:
        """Class labels in [0, num_classes) for a class teacher, or prompts for a text teacher."""
        if (labels is None) == (prompts is None):
            what = "labels=[…] (class ids)" if self.cond_kind == "class" else "prompts=[…] (strings)"
            raise DataError(f"encode_condition takes exactly one of labels or prompts; this "
                            f"{self.cond_kind} teacher needs {what}.")
        if self.cond_kind == "class":
            if prompts is not None:
                raise DataError(f"this teacher is class-conditional ({self.num_classes} classes): pass "
                                f"labels=[…], not prompts.")
            lab = torch.as_tensor(labels)
            if lab.numel() == 0:
                raise DataError("encode_condition got an empty list of labels; give at least one.")
            if lab.is_floating_point() or lab.dim() != 1:
                raise DataError(f"labels must be a 1-D list of integer class ids, got {lab.dtype} "
                                f"{tuple(lab.shape)}.")
            if int(lab.min()) < 0 or int(lab.max()) >= self.num_classes:
                raise DataError(f"class labels must be in [0, {self.num_classes - 1}] for this teacher, "
                                f"got range [{int(lab.min())}, {int(lab.max())}].")
            return self.mdm.encode_condition(labels=lab.long())
        if labels is not None:
            raise DataError("this teacher is text-conditional: pass prompts=[…] (strings), not labels.")
        if isinstance(prompts, str):
            prompts = [prompts]
        feats, pad, _ = self.text_encoder.encode(list(prompts))  # checks empty lists and prompts
        return self.mdm.encode_condition(text_features=feats, key_padding_mask=pad)

    def null_condition(self, batch: int) -> Condition:
        return self.mdm.null_condition(batch)

    # ------------------------------------------------------------------ images
    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        return self.tokenizer.decode(ids)

    def decode_soft(self, p: torch.Tensor) -> torch.Tensor:
        return self.tokenizer.decode_soft(p)

    # ------------------------------------------------------------------ sampling
    def sampler_with(self, **overrides: Any) -> MaskGITSampler:
        """The default sampler with some fields replaced (None values are ignored)."""
        kept = {k: v for k, v in overrides.items() if v is not None}
        try:
            return dataclasses.replace(self.sampler, **kept)
        except TypeError as e:
            raise ConfigError(f"bad sampler override {sorted(kept)}: {e}") from e

    @torch.no_grad()
    def sample_ids(self, labels: torch.Tensor | Sequence[int] | None = None,
                   prompts: Sequence[str] | None = None, sampler: MaskGITSampler | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """Token grids [B, L] from the MaskGIT sampler (default: :attr:`sampler`) with CFG."""
        cond = self.encode_condition(labels=labels, prompts=prompts)
        b = int(cond.batch_size or 0)
        sampler = sampler or self.sampler
        return sampler.sample(self, cond, self.null_condition(b), batch=b, generator=generator)

    @torch.no_grad()
    def sample(self, labels: torch.Tensor | Sequence[int] | None = None, prompts: Sequence[str] | None = None,
               sampler: MaskGITSampler | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images [B, C, H, W] in [0, 1]: sampler ids → ``decode``."""
        return self.decode(self.sample_ids(labels, prompts, sampler, generator))

    # ------------------------------------------------------------------ folders
    def manifest(self) -> dict[str, Any]:
        """The content of ``teacher.json``."""
        c, h, w = self.image_shape
        out: dict[str, Any] = {
            "kind": KIND, "format_version": FORMAT_VERSION, "cond": self.cond_kind,
            "num_classes": self.num_classes, "num_tokens": self.num_tokens, "grid": list(self.grid),
            "image": {"channels": c, "height": h, "width": w},
            "sampler": dataclasses.asdict(self.sampler),
        }
        if self.cond_kind == "text":
            out["text_encoder"] = {"name": "all-MiniLM-L6-v2", "max_length": self.mdm.config.max_text_len}
        return out

    def save_pretrained(self, path: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        """Write ``mdm/``, ``tokenizer/`` and (last) ``teacher.json`` into ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.mdm.save_pretrained(path / "mdm", dtype=dtype)
        self.tokenizer.save_pretrained(path / "tokenizer", dtype=dtype)
        atomic_write_bytes(path / MANIFEST, (json.dumps(self.manifest(), indent=2) + "\n").encode())
        return path

    @classmethod
    def is_teacher_folder(cls, path: str | os.PathLike) -> bool:
        """True when ``path`` holds a ``teacher.json`` of kind ``native-teacher``."""
        try:
            m = read_manifest(path)
        except CheckpointError:
            return False
        return m is not None and m.get("kind") == KIND

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, map_location: str | torch.device = "cpu") -> "NativeTeacher":
        """Load a folder written by :meth:`save_pretrained` (validated; see the module docstring)."""
        path = Path(path)
        if not path.is_dir():
            raise CheckpointError(f"teacher folder {path} does not exist. Pass the folder written by "
                                  f"train-teacher (<run dir>/final) or a shipped checkpoints/teacher-*.")
        manifest = read_manifest(path)
        if manifest is None:
            raise CheckpointError(f"{path} is not a teacher folder: {MANIFEST} is missing ({_what_is(path)}). "
                                  f"Pass the folder written by train-teacher (<run dir>/final).")
        kind = manifest.get("kind")
        if kind != KIND:
            raise CheckpointError(f"{path}/{MANIFEST} describes a '{kind}', not a '{KIND}'. A teacher is "
                                  f"expected here (a one-step student cannot stand in for its teacher); "
                                  f"pass the teacher folder (train-teacher's <run dir>/final).")
        missing = [f"{part}/{name}" for part in PARTS for name in (CONFIG_NAME, WEIGHTS_NAME)
                   if not (path / part / name).is_file()]
        if missing:
            raise CheckpointError(f"teacher folder {path} is incomplete: missing {', '.join(missing)}. "
                                  f"Re-export it with NativeTeacher.save_pretrained (or train-teacher).")
        mdm = MaskedTransformer.from_pretrained(path / "mdm")
        tokenizer = VQTokenizer.from_pretrained(path / "tokenizer")
        try:
            check_compatible(mdm, tokenizer, where=str(path))
        except ConfigError as e:
            raise CheckpointError(f"teacher folder {path} mixes parts that do not fit: {e}") from e
        if manifest.get("cond", mdm.config.cond) != mdm.config.cond:
            raise CheckpointError(f"{path}/{MANIFEST} says cond={manifest.get('cond')!r} but mdm/ is "
                                  f"{mdm.config.cond!r}-conditional; the folder was edited or mixed.")
        raw = manifest.get("sampler")
        sampler = from_dict(MaskGITSampler, raw, where=f"{path}/{MANIFEST}", prefix="sampler.") \
            if isinstance(raw, dict) else None
        return cls(mdm, tokenizer, sampler).to(map_location).eval()


__all__ = ["NativeTeacher", "MANIFEST", "KIND", "default_sampler", "check_compatible", "read_manifest"]
