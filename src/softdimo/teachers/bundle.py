"""One folder = an MDM + its frozen VQ tokenizer (+ the frozen MiniLM for text): :class:`MDMBundle`.

The native teacher φ (:class:`~softdimo.teachers.NativeTeacher`) and the one-step students of
Di[M]O (:class:`~softdimo.distill.OneStepStudent`) are the same kind of object (docs/method.md §3.1:
the student is a copy of the teacher's architecture); they differ only in how they sample. This
base class holds what they share:

* the Teacher-protocol surface (docs/architecture.md §3): ``num_tokens``, ``mask_id``, ``grid``,
  ``embed``, ``embedding_table``, ``forward(embeds, cond, return_hidden)``,
  ``encode_condition(labels | prompts)``, ``null_condition``, ``decode``, ``decode_soft``;
* the folder format, written by ``save_pretrained`` and checked by ``from_pretrained``::

      <MANIFEST>   {"kind": KIND, "cond": ..., "sampler": {...}, ...}   (written last)
      mdm/         MaskedTransformer.save_pretrained  (config.json + model.safetensors)
      tokenizer/   VQTokenizer.save_pretrained        (config.json + model.safetensors)

  Loading checks that every part is there (and lists what is missing), that the manifest is of
  this class's kind (a student folder is refused where a teacher is expected, and the other way
  round), and that the tokenizer's K and grid equal the MDM's.

A subclass sets ``KIND``, ``MANIFEST``, ``SAMPLER`` (the dataclass of its default sampler, stored
in the manifest) and ``default_sampler()``, and implements ``sample_ids``. ``MDM_CLASS`` and
``TOKENIZER_CLASS`` are the part classes ``from_pretrained`` builds (softdimo's own by default; the
MaskGIT bundles of :mod:`softdimo.teachers.maskgit` set the released network and VQGAN).
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, ClassVar, Sequence

import torch
from torch import nn

from ..config import from_dict
from ..errors import CheckpointError, ConfigError, DataError
from ..mdm import Condition, MaskedTransformer, TextEncoder
from ..pretrained import CONFIG_NAME, WEIGHTS_NAME, atomic_write_bytes, find_weights
from ..tokenizer import VQTokenizer
from .protocol import CondKind

FORMAT_VERSION = 1
PARTS = ("mdm", "tokenizer")


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


def read_manifest(path: str | os.PathLike, name: str) -> dict[str, Any] | None:
    """The parsed manifest ``name`` (e.g. ``teacher.json``) of ``path``, or None when there is none."""
    f = Path(path) / name
    if not f.is_file():
        return None
    try:
        data = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{f} is not valid JSON ({e}); the model folder is corrupt.") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"{f} must hold a JSON object; the model folder is corrupt.")
    return data


def _what_is(path: Path) -> str:
    """A short description of a folder of the wrong kind (for error messages)."""
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



class MDMBundle(nn.Module):
    """MDM + frozen VQ tokenizer (+ frozen MiniLM for text), saved as one folder (module docstring).

    ``sampler`` is the default sampler of :meth:`sample` (stored in the manifest);
    ``text_encoder`` is created on first use for text models.
    """

    KIND: ClassVar[str] = ""  # manifest "kind"
    MANIFEST: ClassVar[str] = ""  # manifest file name
    SAMPLER: ClassVar[type] = object  # dataclass of the default sampler
    ROLE: ClassVar[str] = "model"  # word used in error messages ("teacher", "student")
    HOW_TO_MAKE: ClassVar[str] = ""  # how a user gets such a folder (error messages)
    MDM_CLASS: ClassVar[type] = MaskedTransformer  # the class of mdm/ (a PretrainedMixin)
    TOKENIZER_CLASS: ClassVar[type] = VQTokenizer  # the class of tokenizer/ (a PretrainedMixin)

    @classmethod
    def default_sampler(cls) -> Any:
        raise NotImplementedError

    def __init__(self, mdm: MaskedTransformer, tokenizer: VQTokenizer,
                 sampler: Any = None) -> None:
        super().__init__()
        if mdm.config.cond not in ("class", "text"):
            raise ConfigError(f"a {self.ROLE} must be class- or text-conditional; this MDM has "
                              f"cond={mdm.config.cond!r}. Set model.cond to 'class' or 'text'.")
        check_compatible(mdm, tokenizer)
        self.mdm = mdm
        self.tokenizer = tokenizer.eval().requires_grad_(False)
        self.sampler = sampler if sampler is not None else self.default_sampler()
        self._text_encoder: TextEncoder | None = None

    def train(self, mode: bool = True) -> "MDMBundle":
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
        own = getattr(self.tokenizer, "image_shape", None)
        if own is not None:
            return tuple(own)  # type: ignore[return-value]
        c = self.tokenizer.config
        return (c.in_channels, c.image_size, c.image_size)

    @property
    def device(self) -> torch.device:
        return self.mdm.tok_emb.weight.device

    @property
    def text_encoder(self) -> TextEncoder:
        """The frozen MiniLM of a text model (created on first use; cached per prompt)."""
        if self.cond_kind != "text":
            raise DataError(f"this {self.ROLE} is class-conditional; it has no text encoder.")
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
        """Class labels in [0, num_classes) for a class model, or prompts for a text model."""
        if (labels is None) == (prompts is None):
            what = "labels=[…] (class ids)" if self.cond_kind == "class" else "prompts=[…] (strings)"
            raise DataError(f"encode_condition takes exactly one of labels or prompts; this "
                            f"{self.cond_kind} {self.ROLE} needs {what}.")
        if self.cond_kind == "class":
            if prompts is not None:
                raise DataError(f"this {self.ROLE} is class-conditional ({self.num_classes} classes): pass "
                                f"labels=[…], not prompts.")
            lab = torch.as_tensor(labels)
            if lab.numel() == 0:
                raise DataError("encode_condition got an empty list of labels; give at least one.")
            if lab.is_floating_point() or lab.dim() != 1:
                raise DataError(f"labels must be a 1-D list of integer class ids, got {lab.dtype} "
                                f"{tuple(lab.shape)}.")
            if int(lab.min()) < 0 or int(lab.max()) >= self.num_classes:
                raise DataError(f"class labels must be in [0, {self.num_classes - 1}] for this {self.ROLE}, "
                                f"got range [{int(lab.min())}, {int(lab.max())}].")
            return self.mdm.encode_condition(labels=lab.long())
        if labels is not None:
            raise DataError(f"this {self.ROLE} is text-conditional: pass prompts=[…] (strings), not labels.")
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
        """Token grids [B, L] in [0, K) for the labels or prompts (default sampler: :attr:`sampler`)."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, labels: torch.Tensor | Sequence[int] | None = None, prompts: Sequence[str] | None = None,
               sampler: Any = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images [B, C, H, W] in [0, 1]: ``sample_ids`` → ``decode``."""
        return self.decode(self.sample_ids(labels, prompts, sampler, generator))

    # ------------------------------------------------------------------ folders
    def manifest(self) -> dict[str, Any]:
        """The content of the manifest file (subclasses add their own fields)."""
        c, h, w = self.image_shape
        out: dict[str, Any] = {
            "kind": self.KIND, "format_version": FORMAT_VERSION, "cond": self.cond_kind,
            "num_classes": self.num_classes, "num_tokens": self.num_tokens, "grid": list(self.grid),
            "image": {"channels": c, "height": h, "width": w},
            "sampler": dataclasses.asdict(self.sampler),
        }
        if self.cond_kind == "text":
            out["text_encoder"] = {"name": "all-MiniLM-L6-v2", "max_length": self.mdm.config.max_text_len}
        return out

    def save_pretrained(self, path: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        """Write ``mdm/``, ``tokenizer/`` and (last) the manifest into ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.mdm.save_pretrained(path / "mdm", dtype=dtype)
        self.tokenizer.save_pretrained(path / "tokenizer", dtype=dtype)
        atomic_write_bytes(path / self.MANIFEST, (json.dumps(self.manifest(), indent=2) + "\n").encode())
        return path

    @classmethod
    def is_folder(cls, path: str | os.PathLike) -> bool:
        """True when ``path`` holds this class's manifest with this class's kind."""
        try:
            m = read_manifest(path, cls.MANIFEST)
        except CheckpointError:
            return False
        return m is not None and m.get("kind") == cls.KIND

    @classmethod
    def read_folder_manifest(cls, path: Path) -> dict[str, Any]:
        """The validated manifest of ``path`` (exists, is this class's kind, parts complete)."""
        role, make = cls.ROLE, cls.HOW_TO_MAKE
        if not path.is_dir():
            raise CheckpointError(f"{role} folder {path} does not exist. Pass {make}.")
        manifest = read_manifest(path, cls.MANIFEST)
        if manifest is None:
            raise CheckpointError(f"{path} is not a {role} folder: {cls.MANIFEST} is missing "
                                  f"({_what_is(path)}). Pass {make}.")
        kind = manifest.get("kind")
        if kind != cls.KIND:
            raise CheckpointError(f"{path}/{cls.MANIFEST} describes a '{kind}', not a '{cls.KIND}'. A "
                                  f"{role} is expected here; pass {make}.")
        missing = [f"{part}/{CONFIG_NAME}" for part in PARTS if not (path / part / CONFIG_NAME).is_file()]
        missing += [f"{part}/{WEIGHTS_NAME}" for part in PARTS if find_weights(path / part) is None]
        if missing:
            raise CheckpointError(f"{role} folder {path} is incomplete: missing {', '.join(missing)}. "
                                  f"Re-export it with {cls.__name__}.save_pretrained.")
        return manifest

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, map_location: str | torch.device = "cpu",
                        allow_pickle: bool | None = None) -> Any:
        """Load a folder written by :meth:`save_pretrained` (validated; see the module docstring).

        Pickle-based part weights are refused unless ``allow_pickle`` (see :mod:`softdimo.pretrained`).
        """
        path = Path(path)
        manifest = cls.read_folder_manifest(path)
        mdm = cls.MDM_CLASS.from_pretrained(path / "mdm", allow_pickle=allow_pickle)
        tokenizer = cls.TOKENIZER_CLASS.from_pretrained(path / "tokenizer", allow_pickle=allow_pickle)
        try:
            check_compatible(mdm, tokenizer, where=str(path))
        except ConfigError as e:
            raise CheckpointError(f"{cls.ROLE} folder {path} mixes parts that do not fit: {e}") from e
        if manifest.get("cond", mdm.config.cond) != mdm.config.cond:
            raise CheckpointError(f"{path}/{cls.MANIFEST} says cond={manifest.get('cond')!r} but mdm/ is "
                                  f"{mdm.config.cond!r}-conditional; the folder was edited or mixed.")
        raw = manifest.get("sampler")
        sampler = from_dict(cls.SAMPLER, raw, where=f"{path}/{cls.MANIFEST}", prefix="sampler.") \
            if isinstance(raw, dict) else None
        out = cls(mdm, tokenizer, sampler)
        out.load_manifest_extras(manifest)
        return out.to(map_location).eval()

    def load_manifest_extras(self, manifest: dict[str, Any]) -> None:
        """Hook: read subclass-specific manifest fields after loading (default: nothing)."""


__all__ = ["MDMBundle", "FORMAT_VERSION", "PARTS", "check_compatible", "read_manifest"]
