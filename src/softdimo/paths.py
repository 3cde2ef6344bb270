"""Where the shipped checkpoints and presets live (a source checkout, or $SOFTDIMO_HOME)."""
from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The checkout holding ``checkpoints/`` and ``configs/`` (override with $SOFTDIMO_HOME)."""
    env = os.environ.get("SOFTDIMO_HOME")
    return Path(env) if env else Path(__file__).resolve().parents[2]


def checkpoint_dir(name: str) -> Path:
    """A shipped checkpoint folder, e.g. ``checkpoint_dir("tokenizer-mnist")``."""
    return project_root() / "checkpoints" / name


def config_path(*parts: str) -> Path:
    """A preset under ``configs/``, e.g. ``config_path("mnist", "tokenizer.yaml")``."""
    return project_root() / "configs" / Path(*parts)


def find_folder(value: str, marker: str) -> Path | None:
    """``value`` as a folder holding ``marker``: absolute, else relative to the cwd, else to the project root."""
    p = Path(value).expanduser()
    for c in ([p] if p.is_absolute() else [p, project_root() / p]):
        if (c / marker).is_file():
            return c
    return None
