"""Nested training states (optimisers, LR schedulers, RNGs) on disk without pickle.

A state is a tree of dicts, lists, tuples, numbers, strings, None and tensors (what
``optimizer.state_dict()``, ``scheduler.state_dict()`` and :func:`~softdimo.train.checkpoint.rng_state`
return). :func:`save_state` writes its tensors to ``NAME.safetensors`` and the rest of the tree
to ``NAME.json``, where a tensor is ``{"__tensor__": key}``, a tuple ``{"__tuple__": [...]}`` and
a dict whose keys are not all strings (an optimiser's per-parameter state) ``{"__items__":
[[key, value], ...]}``; :func:`load_state` rebuilds the same tree. Reading it runs no code, so a
checkpoint needs no ``--allow-pickle``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..files import atomic_write_bytes
from ..pretrained import save_tensors
from ..safeload import load_tensors

_MARKERS = ("__tensor__", "__tuple__", "__items__")


def _encode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj
        return {"__tensor__": key}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and not any(k in _MARKERS for k in obj):
            return {k: _encode(v, tensors) for k, v in obj.items()}
        return {"__items__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a training state (tensors and plain data only)")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        if set(obj) == {"__tuple__"}:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
        if set(obj) == {"__items__"}:
            return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
        return {k: _decode(v, tensors) for k, v in obj.items()}
    return obj


def state_files(folder: Path, name: str) -> tuple[Path, Path]:
    """``(NAME.safetensors, NAME.json)`` in ``folder``."""
    return folder / f"{name}.safetensors", folder / f"{name}.json"


def save_state(state: Any, folder: Path, name: str) -> None:
    """Write ``state`` as ``NAME.safetensors`` + ``NAME.json`` in ``folder`` (each atomically)."""
    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(state, tensors)
    st, js = state_files(Path(folder), name)
    save_tensors(tensors, st)
    atomic_write_bytes(js, json.dumps(tree).encode())


def load_state(folder: Path, name: str) -> Any:
    """The tree :func:`save_state` wrote; :class:`CheckpointError` when a file is missing or corrupt."""
    st, js = state_files(Path(folder), name)
    tensors = load_tensors(st, allow_pickle=False)
    try:
        tree = json.loads(js.read_text())
        return _decode(tree, tensors)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{js} is missing or corrupt ({type(e).__name__}: {e}).") from e


__all__ = ["save_state", "load_state", "state_files"]
