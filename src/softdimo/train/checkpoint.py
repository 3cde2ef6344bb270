"""Resumable training checkpoints: ``checkpoint-N/`` folders written atomically.

A checkpoint holds every trained module and its EMA (``models.safetensors``), optimiser and
LR-scheduler states (``optim.safetensors`` + ``optim.json``), one RNG state per process
(``rng-<rank>.safetensors`` + ``rng-<rank>.json``; see :mod:`.statefile`: no pickle anywhere)
and ``state.json`` (step, world size, loop counters and the SHA-256 of every other file).
Checkpoints written before this format (``optim.pt``, ``rng-<rank>.pt``) are pickles: they resume
only with ``--allow-pickle``. It is assembled in
``.tmp-checkpoint-N/``, flushed to disk, and renamed into place as the very last operation, so a
crash at any moment leaves either the complete folder or nothing; a failed write (a full disk)
removes its temporary folder. On resume the newest folder that loads completely and matches its
digests is used; a truncated or corrupt one is skipped with a warning.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..pretrained import atomic_write_bytes, load_tensors, save_tensors
from ..safeload import PickleRefused, load_pickle
from .statefile import load_state, save_state

CKPT_RE = re.compile(r"^checkpoint-(\d+)$")


def rng_state(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Every RNG this process draws from: python, numpy, torch (CPU and CUDA) and named generators."""
    py = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
        "generators": {k: g.get_state() for k, g in generators.items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    """Restore what :func:`rng_state` captured."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npst = state["numpy"]
    np.random.set_state((npst[0], npst[1].numpy().astype(np.uint32), *npst[2:]))
    torch.set_rng_state(state["torch"])
    for k, g in generators.items():
        g.set_state(state["generators"][k])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class Checkpoint:
    """A checkpoint read back from disk."""

    path: Path
    step: int
    models: dict[str, torch.Tensor]
    optim: dict[str, Any]
    rng: dict[str, Any] | None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # e.g. the loop's counters
    world_size: int = 1  # processes of the run that wrote it


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``checkpoint-N`` folder, oldest first."""
    out = []
    if run_dir.is_dir():
        for p in run_dir.iterdir():
            m = CKPT_RE.match(p.name)
            if m and p.is_dir():
                out.append((int(m.group(1)), p))
    return sorted(out)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_dir(src: Path, dst: Path) -> None:
    """Move folder ``src`` to ``dst``; an existing ``dst`` is renamed away first, never half-deleted."""
    old = dst.with_name(f".old-{dst.name}")
    if old.exists():
        shutil.rmtree(old)
    if dst.exists():
        os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def write_checkpoint(run_dir: Path, step: int, models: dict[str, torch.Tensor], optim: dict[str, Any],
                     rng: dict[str, Any], rank: int, world_size: int, is_main: bool,
                     barrier: Any = None, total_limit: int = 0, fault: Any = None,
                     extra: dict[str, Any] | None = None) -> Path:
    """Write ``checkpoint-<step>/`` atomically; every rank saves its own RNG file.

    ``barrier`` (a no-argument callable) synchronises processes between the per-rank writes and
    the rename done by rank 0. ``fault`` is a hook called before the rename (fault injection).
    ``extra`` (plain JSON data) is stored in ``state.json``. On any error the temporary folder is
    removed and the error re-raised; older checkpoints are deleted (``total_limit``) only after
    the new one is in place.
    """
    final = run_dir / f"checkpoint-{step}"
    tmp = run_dir / f".tmp-checkpoint-{step}"
    try:
        if is_main:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
        if barrier:
            barrier()
        save_state(rng, tmp, f"rng-{rank}")
        if is_main:
            save_tensors(models, tmp / "models.safetensors")
            save_state(optim, tmp, "optim")
            if fault is not None:
                fault()
        if barrier:
            barrier()
        if is_main:
            files = sorted(p for p in tmp.iterdir() if p.is_file())
            for f in files:
                _fsync(f)
            state = {"step": step, "world_size": world_size, "extra": extra or {},
                     "sha256": {f.name: _sha256(f) for f in files}}
            atomic_write_bytes(tmp / "state.json", json.dumps(state, indent=1).encode())
            replace_dir(tmp, final)
            if total_limit > 0:
                for _, old in list_checkpoints(run_dir)[:-total_limit]:
                    shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        if is_main:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    if barrier:
        barrier()
    return final


def read_checkpoint(path: Path, rank: int) -> Checkpoint:
    """Load one checkpoint folder completely; raises on any missing, corrupt or altered part.

    Every file listed in ``state.json`` must match its SHA-256, and the RNG file of every rank
    of the run that wrote it must load (so that all processes agree on which checkpoint is good).
    """
    state = json.loads((path / "state.json").read_text())
    for name, digest in state.get("sha256", {}).items():
        if _sha256(path / name) != digest:
            raise ValueError(f"{name} does not match the SHA-256 recorded in state.json")
    world = int(state.get("world_size", 1))
    models = load_tensors(path / "models.safetensors", allow_pickle=False)
    optim = _read_state(path, "optim")
    rngs = {r: _read_state(path, f"rng-{r}") for r in range(world)}
    return Checkpoint(path=path, step=int(state["step"]), models=models, optim=optim, rng=rngs.get(rank),
                      extra=dict(state.get("extra", {})), world_size=world)


def _read_state(path: Path, name: str) -> Any:
    """``NAME.safetensors`` + ``NAME.json``, or a checkpoint of the earlier format's ``NAME.pt``
    (a pickle: read only with --allow-pickle, with ``torch.load(weights_only=True)``)."""
    if not (path / f"{name}.json").is_file() and (path / f"{name}.pt").is_file():
        return load_pickle(path / f"{name}.pt", what=f"checkpoint {path.name} (written by an earlier softdimo)")
    return load_state(path, name)


def latest_checkpoint(run_dir: Path, rank: int = 0) -> Checkpoint | None:
    """The newest checkpoint that loads completely, skipping broken ones with a warning."""
    for step, path in reversed(list_checkpoints(run_dir)):
        try:
            return read_checkpoint(path, rank)
        except PickleRefused:  # intact, but in the earlier pickle format: the user decides
            raise
        except Exception as e:  # any failure to read means: not a usable checkpoint
            warnings.warn(f"checkpoint {path} is incomplete or corrupt ({type(e).__name__}: {e}); "
                          f"falling back to the previous one.", stacklevel=2)
    return None
