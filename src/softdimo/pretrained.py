"""`save_pretrained` / `from_pretrained` for every softdimo model.

A pretrained folder holds ``config.json`` (the model's typed config plus a ``_class`` tag) and
``model.safetensors`` (the weights). Files are written to a temporary name and renamed, so a
crash never leaves a half-written folder behind, and loading checks the class tag, the config keys
and every tensor shape so that a mismatched checkpoint fails with a clear message.

Safe loading: weights are read from safetensors. A pickle-based file (``.bin``, ``.pt``, ``.pth``,
``.ckpt``, ``.pkl``; e.g. a folder holding ``pytorch_model.bin``) can run arbitrary code when
unpickled, so it is refused with a :class:`CheckpointError` unless the caller opts in, with
``allow_pickle=True`` or inside ``with pickle_allowed():`` (the CLI's ``--allow-pickle``); it is
then read with ``torch.load(weights_only=True)``, which accepts tensors and plain containers only.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pickle
import tempfile
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar, Iterator, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import from_dict
from .errors import CheckpointError
from .files import atomic_write_bytes  # re-exported: every writer of model folders uses it

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")  # weights files that need unpickling
PICKLE_NAMES = ("pytorch_model.bin", "model.bin", "model.pt", "model.pth", "model.ckpt")  # looked for in a folder

_ALLOW_PICKLE: ContextVar[bool] = ContextVar("softdimo_allow_pickle", default=False)


@contextmanager
def pickle_allowed(allow: bool = True) -> Iterator[None]:
    """Within this block, loads that are not told otherwise accept pickle-based weights (opt-in)."""
    token = _ALLOW_PICKLE.set(allow)
    try:
        yield
    finally:
        _ALLOW_PICKLE.reset(token)


def pickle_is_allowed(allow_pickle: bool | None = None) -> bool:
    """``allow_pickle`` itself, or (None) the setting of the enclosing :func:`pickle_allowed` block."""
    return _ALLOW_PICKLE.get() if allow_pickle is None else bool(allow_pickle)


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


def load_tensors(path: Path, allow_pickle: bool | None = None) -> dict[str, torch.Tensor]:
    """Load a safetensors file, turning any read failure into a :class:`CheckpointError`.

    A pickle-based file (:data:`PICKLE_SUFFIXES`) is refused unless pickle is allowed
    (``allow_pickle=True``, or None inside :func:`pickle_allowed`); it is then read with
    ``torch.load(weights_only=True)`` and must hold a flat dict of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist. Point to a folder written by "
                              f"save_pretrained (it holds {CONFIG_NAME} and {WEIGHTS_NAME}).")
    if path.suffix.lower() in PICKLE_SUFFIXES:
        if not pickle_is_allowed(allow_pickle):
            raise CheckpointError(
                f"{path} is a pickle-based weights file, and unpickling can run arbitrary code, so softdimo "
                f"reads weights from safetensors only. If you trust where the file comes from, pass "
                f"allow_pickle=True (command line: --allow-pickle); it is then read with "
                f"torch.load(weights_only=True). Better, convert it once to {WEIGHTS_NAME} with "
                f"safetensors.torch.save_file.")
        return _load_pickle(path)
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"weights file {path} is corrupt or not a safetensors file ({e}). "
                              f"Re-create it with the command in the model card, or restore it "
                              f"from version control.") from e


def _load_pickle(path: Path) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)`` of an opted-in pickle file: a state dict of tensors."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} could not be read with torch.load(weights_only=True) ({e}); it is "
                              f"corrupt or holds objects other than tensors, which softdimo never "
                              f"unpickles.") from e
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                            for k, v in obj.items()):
        raise CheckpointError(f"{path} does not hold a state dict (a mapping of names to tensors); "
                              f"softdimo cannot load weights from it.")
    return obj


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
        try:
            raw = json.loads(cfg_file.read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{cfg_file} is not valid JSON ({e}); the folder is corrupt.") from e
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
