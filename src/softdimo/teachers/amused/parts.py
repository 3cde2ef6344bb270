"""A local aMUSEd folder and its parts: what must be there, and loading one part offline.

A real aMUSEd checkpoint (``amused/amused-256`` or ``-512``, downloaded elsewhere) is a folder::

    model_index.json
    transformer/   UVit2DModel                  (the MDM: logits over the K = codebook_size tokens)
    vqvae/         VQModel                      (the image tokenizer; images in [0, 1])
    text_encoder/  CLIPTextModelWithProjection  (pooled projection + penultimate hidden states)
    tokenizer/     CLIPTokenizer
    scheduler/     AmusedScheduler              (mask_token_id, masking schedule)

:func:`resolve_parts` finds each part (``<root>/<name>``, or its own folder when named) and lists
everything missing at once; :func:`load_part` loads one with diffusers' / transformers' own
``from_pretrained(root, subfolder=…)``, always with ``local_files_only=True`` (nothing is
downloaded) and safetensors only unless pickle is allowed (:mod:`softdimo.pretrained`).
diffusers is an optional dependency (the ``amused`` extra): it is imported only when a part loads.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

from ...errors import CheckpointError, ConfigError
from ...safeload import hf_from_pretrained, pickle_is_allowed

PARTS = ("transformer", "vqvae", "text_encoder", "tokenizer", "scheduler")
INSTALL_HINT = 'install the aMUSEd extra: pip install "softdimo[amused]" (diffusers>=0.42,<0.43)'
_SAFE_WEIGHTS = ("*.safetensors", "*.safetensors.index.json")
_PICKLE_WEIGHTS = ("*.bin", "*.bin.index.json")
MODEL_PARTS = ("transformer", "vqvae", "text_encoder")  # parts with weights


def require_diffusers() -> None:
    """Raise :class:`ConfigError` (what to install) when diffusers is missing."""
    try:
        import diffusers  # noqa: F401  # optional dependency (the amused extra): only checked here
    except ImportError as e:
        raise ConfigError(f"aMUSEd teachers need diffusers, which is not installed; {INSTALL_HINT}.") from e


def _part_problems(part: str, folder: Path) -> list[str]:
    """What is missing from one part's folder (empty: complete)."""
    if not folder.is_dir():
        return [f"{part}/ (folder {folder} does not exist)"]
    if part == "scheduler":
        return [] if (folder / "scheduler_config.json").is_file() else [f"{part}/scheduler_config.json"]
    if part == "tokenizer":
        if (folder / "tokenizer.json").is_file() or all((folder / f).is_file() for f in ("vocab.json", "merges.txt")):
            return []
        return [f"{part}/vocab.json + merges.txt (or tokenizer.json)"]
    out = [] if (folder / "config.json").is_file() else [f"{part}/config.json"]
    if not any(any(folder.glob(p)) for p in _SAFE_WEIGHTS):
        if not any(any(folder.glob(p)) for p in _PICKLE_WEIGHTS):
            out.append(f"{part}/ weights (*.safetensors)")
        elif not pickle_is_allowed():
            out.append(f"{part}/ safetensors weights (only pickle-based *.bin there: pass --allow-pickle to read them)")
    return out


def resolve_parts(path: str | os.PathLike | None, parts: dict[str, str | os.PathLike] | None = None) -> dict[str, Path]:
    """The folder of each part: ``parts[name]`` when given, else ``<path>/<name>``; checked complete.

    Raises :class:`CheckpointError` listing every missing part (and file) at once.
    """
    parts = dict(parts or {})
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ConfigError(f"unknown aMUSEd parts {unknown}; the parts are {', '.join(PARTS)}.")
    root = Path(path).expanduser() if path else None
    if root is not None and not root.is_dir():
        raise CheckpointError(f"aMUSEd folder {root} does not exist. Download amused/amused-256 (or -512) "
                              f"on a machine with network access (see the README, 'Real teachers') and pass its "
                              f"local folder.")
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name in PARTS:
        if name in parts:
            folder = Path(parts[name]).expanduser()
        elif root is not None:
            folder = root / name
        else:
            missing.append(f"{name}/ (no folder given)")
            continue
        missing += _part_problems(name, folder)
        found[name] = folder
    if missing:
        where = f"aMUSEd folder {root}" if root is not None else "the aMUSEd parts"
        raise CheckpointError(f"{where} is incomplete; missing: {'; '.join(missing)}. A complete folder holds "
                              f"{', '.join(p + '/' for p in PARTS)} (as written by diffusers' save_pretrained or "
                              f"downloaded from the hub); copy the missing parts there or name their folders.")
    return found


def is_amused_folder(path: str | os.PathLike) -> bool:
    """True when ``path`` looks like an aMUSEd checkpoint (model_index.json of an aMUSEd pipeline, or
    a ``transformer/`` holding a UVit2DModel config)."""
    path = Path(path)
    for f, key in ((path / "model_index.json", "_class_name"), (path / "transformer" / "config.json", "_class_name")):
        if f.is_file():
            try:
                name = json.loads(f.read_text()).get(key, "")
            except (OSError, ValueError, AttributeError):  # unreadable, not UTF-8 or not JSON: not aMUSEd
                continue
            if isinstance(name, str) and (name.startswith("Amused") or name == "UVit2DModel"):
                return True
    return False


@contextlib.contextmanager
def quiet_hub() -> Iterator[None]:
    """No per-file progress bars from diffusers / transformers while loading or saving parts."""
    from diffusers.utils import logging as dlog  # optional dependency (the amused extra)
    from transformers.utils import logging as tlog  # loaded with diffusers only

    was = dlog.is_progress_bar_enabled(), tlog.is_progress_bar_enabled()
    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        if was[0]:
            dlog.enable_progress_bar()
        if was[1]:
            tlog.enable_progress_bar()


def load_part(cls: Any, part: str, folder: Path, root: Path | None, **kwargs: Any) -> Any:
    """``cls.from_pretrained`` offline: ``(root, subfolder=part)`` for a part in place, else ``(folder)``."""
    with quiet_hub():  # safetensors only unless pickle is allowed (softdimo.safeload)
        if root is not None and folder == root / part:
            return hf_from_pretrained(cls, root, subfolder=part, what=f"the aMUSEd {part}", **kwargs)
        return hf_from_pretrained(cls, folder, what=f"the aMUSEd {part}", **kwargs)


__all__ = ["PARTS", "MODEL_PARTS", "INSTALL_HINT", "require_diffusers", "resolve_parts", "is_amused_folder",
           "quiet_hub", "load_part"]
