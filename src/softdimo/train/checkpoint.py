"""Resumable training checkpoints: ``checkpoint-N/`` folders written atomically.

A checkpoint holds every trained module and its EMA (``models.safetensors``), optimiser and
LR-scheduler states (``optim.pt``, tensors and plain containers only, read back with
``weights_only=True``), one RNG file per process (``rng-<rank>.pt``) and ``state.json`` (step,
world size). It is assembled in ``.tmp-checkpoint-N/`` and renamed into place as the very last
operation, so a crash at any moment leaves either the complete folder or nothing. On resume the
newest folder that loads completely is used; a truncated or corrupt one is skipped with a warning.
"""
from __future__ import annotations

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


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``checkpoint-N`` folder, oldest first."""
    out = []
    if run_dir.is_dir():
        for p in run_dir.iterdir():
            m = CKPT_RE.match(p.name)
            if m and p.is_dir():
                out.append((int(m.group(1)), p))
    return sorted(out)


def write_checkpoint(run_dir: Path, step: int, models: dict[str, torch.Tensor], optim: dict[str, Any],
                     rng: dict[str, Any], rank: int, world_size: int, is_main: bool,
                     barrier: Any = None, total_limit: int = 0, fault: Any = None) -> Path:
    """Write ``checkpoint-<step>/`` atomically; every rank saves its own RNG file.

    ``barrier`` (a no-argument callable) synchronises processes between the per-rank writes and
    the rename done by rank 0. ``fault`` is a test hook called before the rename.
    """
    final = run_dir / f"checkpoint-{step}"
    tmp = run_dir / f".tmp-checkpoint-{step}"
    if is_main:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    if barrier:
        barrier()
    torch.save(rng, tmp / f"rng-{rank}.pt")
    if is_main:
        save_tensors(models, tmp / "models.safetensors")
        torch.save(optim, tmp / "optim.pt")
        if fault is not None:
            fault()
    if barrier:
        barrier()
    if is_main:
        atomic_write_bytes(tmp / "state.json",
                           json.dumps({"step": step, "world_size": world_size}).encode())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        if total_limit > 0:
            for _, old in list_checkpoints(run_dir)[:-total_limit]:
                shutil.rmtree(old, ignore_errors=True)
    if barrier:
        barrier()
    return final


def read_checkpoint(path: Path, rank: int) -> Checkpoint:
    """Load one checkpoint folder completely; raises on any missing or corrupt part."""
    state = json.loads((path / "state.json").read_text())
    models = load_tensors(path / "models.safetensors")
    optim = torch.load(path / "optim.pt", map_location="cpu", weights_only=True)
    rng_file = path / f"rng-{rank}.pt"
    rng = torch.load(rng_file, map_location="cpu", weights_only=True) if rng_file.exists() else None
    return Checkpoint(path=path, step=int(state["step"]), models=models, optim=optim, rng=rng)


def latest_checkpoint(run_dir: Path, rank: int = 0) -> Checkpoint | None:
    """The newest checkpoint that loads completely, skipping broken ones with a warning."""
    for step, path in reversed(list_checkpoints(run_dir)):
        try:
            return read_checkpoint(path, rank)
        except Exception as e:  # any failure to read means: not a usable checkpoint
            warnings.warn(f"checkpoint {path} is incomplete or corrupt ({type(e).__name__}: {e}); "
                          f"falling back to the previous one.", stacklevel=2)
    return None
