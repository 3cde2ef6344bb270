"""`save_pretrained` / `from_pretrained` for every softdimo model.

A pretrained folder holds ``config.json`` (the model's typed config plus a ``_class`` tag) and
``model.safetensors`` (the weights). Files are written to a temporary name and renamed, so a
crash never leaves a half-written folder behind, and loading checks the class tag, the config keys
and every tensor shape so that a mismatched checkpoint fails with a clear message.

Safe loading: weights are read through :mod:`softdimo.safeload`: safetensors, or a pickle-based
file (``.bin``, ``.pt``, ``.pth``, ``.ckpt``, ``.pkl``; e.g. a folder holding ``pytorch_model.bin``)
only when the caller opts in, with ``allow_pickle=True`` or inside ``with pickle_allowed():`` (the
CLI's ``--allow-pickle``), and then with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from safetensors.torch import save_file

from .config import from_dict
from .errors import CheckpointError
from .files import atomic_write_bytes, read_json  # atomic_write_bytes re-exported: every writer of model folders uses it
from .safeload import PICKLE_SUFFIXES, load_tensors, pickle_allowed, pickle_is_allowed  # re-exported

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PICKLE_NAMES = ("pytorch_model.bin", "model.bin", "model.pt", "model.pth", "model.ckpt")  # looked for in a folder


def find_weights(folder: str | os.PathLike) -> Path | None:
    """The weights file of a pretrained folder: ``model.safetensors``, else a pickle-based one, else None."""
    folder = Path(folder)
    for name in (WEIGHTS_NAME, *PICKLE_NAMES):
        if (folder / name).is_file():
            return folder / name
    return None

M = TypeVar("M", bound="PretrainedMixin")


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Save a flat dict of tensors as safetensors, atomically (contiguous, detached CPU copies)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    # safetensors refuses tensors that share memory (tied weights): clone them apart.
    seen: set[int] = set()
    for k, v in clean.items():
        ptr = v.untyped_storage().data_ptr() if v.numel() else -1
        if ptr in seen:
            clean[k] = v.clone()
        seen.add(ptr)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(clean, tmp, metadata=metadata)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class PretrainedMixin:
    """Mixin for ``nn.Module`` subclasses built from a single dataclass config.

    Subclasses set ``config_class`` and take the config as the only constructor argument,
    stored as ``self.config``.
    """

    config_class: ClassVar[type]
    config: Any

    def save_pretrained(self, path: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``path`` (created if needed).

        ``dtype`` (e.g. ``torch.float16``) stores floating-point weights in a smaller type; they
        are cast back to float32 on load.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = self.state_dict()  # type: ignore[attr-defined]
        if dtype is not None:
            state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        save_tensors(state, path / WEIGHTS_NAME, metadata={"class": type(self).__name__})
        cfg = {"_class": type(self).__name__, **dataclasses.asdict(self.config)}
        atomic_write_bytes(path / CONFIG_NAME, (json.dumps(cfg, indent=2) + "\n").encode())
        return path

    @classmethod
    def read_config(cls, path: str | os.PathLike) -> Any:
        """Read and validate the typed config of a pretrained folder without loading weights."""
        path = Path(path)
        cfg_file = path / CONFIG_NAME
        if not cfg_file.is_file():
            raise CheckpointError(f"{path} is not a pretrained {cls.__name__} folder: {CONFIG_NAME} is "
                                  f"missing. Pass the folder written by save_pretrained (for a "
                                  f"training run: <run dir>/final).")
        raw = read_json(cfg_file, "the model config", CheckpointError)
        tag = raw.pop("_class", None)
        if tag != cls.__name__:
            raise CheckpointError(f"{path} holds a '{tag}', not a '{cls.__name__}'. Check that you "
                                  f"passed the right folder for this argument.")
        return from_dict(cls.config_class, raw, where=str(cfg_file))

    @classmethod
    def from_pretrained(cls: type[M], path: str | os.PathLike, map_location: str | torch.device = "cpu",
                        allow_pickle: bool | None = None) -> M:
        """Build the model from ``config.json`` and load ``model.safetensors`` strictly.

        A folder with only pickle-based weights (``pytorch_model.bin``, ``model.pt``, …) is refused
        unless pickle is allowed (module docstring).
        """
        path = Path(path)
        config = cls.read_config(path)
        model = cls(config)  # type: ignore[call-arg]
        state = load_tensors(find_weights(path) or path / WEIGHTS_NAME, allow_pickle)
        own = model.state_dict()  # type: ignore[attr-defined]
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        bad = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
        if missing or unexpected or bad:
            raise CheckpointError(
                f"weights in {path} do not match its config: missing {missing[:5]}, unexpected "
                f"{unexpected[:5]}, wrong shape {bad[:5]}. The folder was edited or mixed with "
                f"another model; re-export it with save_pretrained.")
        state = {k: v.to(own[k].dtype) for k, v in state.items()}
        model.load_state_dict(state)  # type: ignore[attr-defined]
        return model.to(map_location)  # type: ignore[attr-defined,return-value]


__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "PICKLE_SUFFIXES", "PICKLE_NAMES", "PretrainedMixin", "save_tensors",
           "load_tensors", "find_weights", "pickle_allowed", "pickle_is_allowed", "atomic_write_bytes"]
