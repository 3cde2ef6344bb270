"""Where the shipped checkpoints and presets live (a source checkout, or $SOFTDIMO_HOME)."""
from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The checkout holding ``checkpoints/`` and ``configs/`` (override with $SOFTDIMO_HOME)."""
    env = os.environ.get("SOFTDIMO_HOME")
    return Path(env) if env else Path(__file__).resolve().parents[2]


#: Shipped folders renamed since results files, model cards and students' provenance named them:
#: the slots layout became the digit world (docs/method.md §8.7), and its ``*-world-slots``
#: checkpoints are shipped under the plain ``*-world`` names.
RENAMED_CHECKPOINTS: dict[str, str] = {
    f"{kind}-world-slots": f"{kind}-world"
    for kind in ("tokenizer", "teacher", "reward-miniclip", "reward-attribute", "dimo", "soft-reward")
}


def present_name(name: str) -> str:
    """The folder name a checkpoint has now (``teacher-world-slots`` → ``teacher-world``; others unchanged)."""
    return RENAMED_CHECKPOINTS.get(name, name)


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
