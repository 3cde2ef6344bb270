"""Results JSON: the one format every benchmark and ``softdimo eval`` writes (docs/architecture.md §4).

``{"name", "command", "commit", "machine", "started", "seconds", "config", "metrics"}``.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from .pretrained import atomic_write_bytes


FROZEN_COMMIT = "FROZEN_COMMIT"  # written by scripts/freeze.sh at the root of a frozen code copy


def git_commit(cwd: str | Path | None = None) -> str:
    """The commit of the code that runs: the checkout's HEAD (``-dirty`` when the tree has changes),
    the commit recorded in ``FROZEN_COMMIT`` of a frozen copy (``scripts/freeze.sh``), or ``unknown``."""
    here = Path(cwd or Path(__file__).resolve().parent)
    for parent in (here, *here.parents):
        stamp = parent / FROZEN_COMMIT
        if stamp.is_file():
            return stamp.read_text().strip()
    cwd = str(here)
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict[str, Any]:
    """A short description of where a number was measured."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def write_results(path: str | Path, name: str, metrics: dict[str, Any], config: Any = None,
                  started: str | None = None, seconds: float | None = None,
                  command: str | None = None) -> dict[str, Any]:
    """Write one results JSON file and return its content."""
    doc = {
        "name": name,
        "command": command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "commit": git_commit(),
        "machine": machine(),
        "started": started or now(),
        "seconds": seconds,
        "config": config,
        "metrics": metrics,
    }
    atomic_write_bytes(Path(path), (json.dumps(doc, indent=2) + "\n").encode())
    return doc
