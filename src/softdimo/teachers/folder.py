"""softdimo's own model folder: :class:`FolderBundle`, an :class:`~.bundle.MDMBundle` with class labels
or MiniLM prompts, saved as one folder (the native and the MaskGIT kinds).

The folder, written by ``save_pretrained`` and checked by ``from_pretrained``::

    <MANIFEST>   {"kind": KIND, "cond": ..., "sampler": {...}, ...}   (written last)
    mdm/         MDM_CLASS.save_pretrained        (config.json + model.safetensors)
    tokenizer/   TOKENIZER_CLASS.save_pretrained  (config.json + model.safetensors)

Loading checks that every part is there (and lists what is missing), that the manifest is of
this class's kind (a student folder is refused where a teacher is expected, and the other way
round), and that the tokenizer's K and grid equal the MDM's.

Conditions: class labels in [0, num_classes) for a class model, or prompts encoded by the frozen
MiniLM (:class:`~softdimo.mdm.TextEncoder`, created on first use) for a text model.

A subclass sets ``KIND``, ``MANIFEST``, ``SAMPLER`` (the dataclass of its default sampler, stored
in the manifest) and ``default_sampler()``. ``MDM_CLASS`` and ``TOKENIZER_CLASS`` are the part
classes ``from_pretrained`` builds (softdimo's own by default; the MaskGIT kind sets the released
network and VQGAN).
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, ClassVar, Sequence

import torch

from ..config import from_dict
from ..errors import CheckpointError, ConfigError, DataError
from ..mdm import Condition, MaskedTransformer, TextEncoder
from ..pretrained import CONFIG_NAME, WEIGHTS_NAME, atomic_write_bytes, find_weights
from ..tokenizer import VQTokenizer
from .bundle import MDMBundle, check_compatible, read_manifest
from .protocol import CondKind

FORMAT_VERSION = 1
PARTS = ("mdm", "tokenizer")


def _what_is(path: Path) -> str:
    """A short description of a folder of the wrong kind (for error messages)."""
    for f in sorted(path.glob("*.json")):
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):  # unreadable, not UTF-8 or not JSON
            continue
        if isinstance(data, dict) and isinstance(data.get("kind"), str):
            return f"a '{data['kind']}' folder ({f.name})"
        if isinstance(data, dict) and isinstance(data.get("_class"), str):
            return f"a single '{data['_class']}' model ({f.name})"
    return "not a softdimo model folder"


class FolderBundle(MDMBundle):
    """MDM + frozen VQ tokenizer (+ frozen MiniLM for text), saved as one folder (module docstring).

    ``sampler`` is the default sampler of :meth:`sample` (stored in the manifest);
    ``text_encoder`` is created on first use for text models.
    """

    SAMPLER: ClassVar[type] = object  # dataclass of the default sampler
    MDM_CLASS: ClassVar[type] = MaskedTransformer  # the class of mdm/ (a PretrainedMixin)
    TOKENIZER_CLASS: ClassVar[type] = VQTokenizer  # the class of tokenizer/ (a PretrainedMixin)

    def __init__(self, mdm: MaskedTransformer, tokenizer: VQTokenizer, sampler: Any = None) -> None:
        super().__init__(mdm, tokenizer, sampler)
        self._text_encoder: TextEncoder | None = None

    def check_parts(self, mdm: MaskedTransformer, tokenizer: VQTokenizer) -> None:
        if mdm.config.cond not in ("class", "text"):
            raise ConfigError(f"a {self.ROLE} must be class- or text-conditional; this MDM has "
                              f"cond={mdm.config.cond!r}. Set model.cond to 'class' or 'text'.")
        check_compatible(mdm, tokenizer)

    # ------------------------------------------------------------------ conditions
    @property
    def cond_kind(self) -> CondKind:
        return self.mdm.config.cond  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return self.mdm.config.num_classes if self.cond_kind == "class" else 0

    @property
    def text_encoder(self) -> TextEncoder:
        """The frozen MiniLM of a text model (created on first use; cached per prompt)."""
        if self.cond_kind != "text":
            raise DataError(f"this {self.ROLE} is class-conditional; it has no text encoder.")
        if self._text_encoder is None:
            self._text_encoder = TextEncoder(max_length=self.mdm.config.max_text_len, cache_size=8192)
        return self._text_encoder

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

    # ------------------------------------------------------------------ distillation hooks
    def load_network(self, path: str | os.PathLike) -> MaskedTransformer | None:
        """The MDM saved in ``path`` (e.g. a student folder's ``aux/``), None when it holds no weights."""
        path = Path(path)
        return self.MDM_CLASS.from_pretrained(path) if (path / WEIGHTS_NAME).is_file() else None

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


__all__ = ["FolderBundle", "FORMAT_VERSION", "PARTS"]
