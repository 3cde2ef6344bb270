"""Finding and reading a reward model's files on local disk, never from the network.

Real reward models (CLIP, HPSv2, PickScore, ImageReward) are too large to ship and there is no
model hub at run time (``/work/shared/OFFLINE.md``), so a user points an adapter at a folder (or
a checkpoint file) they obtained themselves. Everything here reads only that folder:

* :func:`offline` sets ``HF_HUB_OFFLINE=1`` (unless the user set it) before ``transformers``
  loads anything; every ``from_pretrained`` call of the adapters also passes
  ``local_files_only=True``;
* :func:`find_weights` resolves "a folder or a file" to one weights file and lists the file
  names it expected when there is none;
* :func:`read_state_dict` reads the weights through :mod:`softdimo.safeload`: safetensors, or a
  ``torch.save`` pickle only when pickle is allowed (``--allow-pickle``; then with
  ``weights_only=True``); it unwraps ``{"state_dict": ...}`` and ``module.`` prefixes and casts
  to float32.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from ...errors import CheckpointError
from ...safeload import PickleRefused, load_tensors

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")


def offline() -> None:
    """Make ``huggingface_hub``/``transformers`` refuse downloads (``HF_HUB_OFFLINE=1``)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def describe(kind: str, expected: str) -> str:
    """The sentence every "missing file" error ends with: what the folder for ``kind`` holds."""
    return (f"A '{kind}' reward loads only from local files (no downloads): point `path:` at {expected}. "
            f"See README, 'Real reward models'.")


def require_path(kind: str, path: str | os.PathLike | None, expected: str) -> Path:
    """``path`` as a :class:`Path` that exists, or :class:`CheckpointError` naming the expected files."""
    if path is None or str(path) == "":
        raise CheckpointError(f"reward '{kind}' needs a local path and none was given. " + describe(kind, expected))
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(f"reward '{kind}': {p} does not exist. " + describe(kind, expected))
    return p


def find_weights(kind: str, path: Path, names: Sequence[str], expected: str) -> Path:
    """The weights file at ``path``: the file itself, else the first of ``names`` in the folder,
    else the only ``*.safetensors|*.pt|*.pth|*.bin`` file there."""
    if path.is_file():
        return path
    for name in names:
        if (path / name).is_file():
            return path / name
    found = sorted(f for f in path.iterdir() if f.is_file() and f.suffix in WEIGHT_SUFFIXES)
    if len(found) == 1:
        return found[0]
    what = "no weights file" if not found else f"several weights files ({', '.join(f.name for f in found)})"
    raise CheckpointError(f"reward '{kind}': {path} has {what}; expected one of {', '.join(names)}. "
                          + describe(kind, expected))


def require_files(kind: str, folder: Path, alternatives: Sequence[Sequence[str]], expected: str) -> list[str]:
    """The first group of file names in ``alternatives`` that all exist in ``folder``, or an error."""
    for group in alternatives:
        if all((folder / n).is_file() for n in group):
            return list(group)
    options = " or ".join(" + ".join(g) for g in alternatives)
    raise CheckpointError(f"reward '{kind}': {folder} lacks {options}. " + describe(kind, expected))


def read_state_dict(kind: str, file: Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file as float32 (integer buffers unchanged), with wrappers removed."""
    try:
        obj = load_tensors(file, what=f"reward '{kind}'")
    except PickleRefused:
        raise
    except CheckpointError as e:  # corrupt file, or a pickle holding more than tensors
        raise CheckpointError(f"{e} Expected a state dict saved with safetensors or torch.save; if the file holds "
                              f"other Python objects, re-save only its state dict.") from e
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return {k: v.float() if v.is_floating_point() else v for k, v in obj.items()}
