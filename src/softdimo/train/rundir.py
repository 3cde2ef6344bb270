"""Run folders: ``<out_dir>/<command>/<run_name>/`` with the resolved ``config.yaml``.

A folder that already holds a run is never overwritten: without ``--resume`` the command stops
with a message, and with ``--resume`` the saved config must agree with the new one on everything
outside ``train.`` (the model and data of a run cannot change half-way).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..config import save_config, to_dict
from ..errors import ConfigError, SoftdimoError


def default_run_name(config_path: str | Path | None) -> str:
    """``configs/mnist/tokenizer.yaml`` → ``mnist-tokenizer`` (presets of different datasets differ)."""
    if not config_path:
        return "default"
    p = Path(config_path)
    return f"{p.parent.name}-{p.stem}" if p.parent.name not in ("", ".", "configs") else p.stem


def run_dir_for(command: str, cfg: Any, config_path: str | Path | None) -> Path:
    """Where a run of ``command`` with ``cfg`` writes its files."""
    name = cfg.train.run_name or default_run_name(config_path)
    return Path(cfg.train.out_dir) / command / name


def _holds_run(path: Path) -> bool:
    if not path.is_dir():
        return False
    return any((path / n).exists() for n in ("metrics.jsonl", "final")) or any(path.glob("checkpoint-*"))


def prepare_run_dir(command: str, cfg: Any, config_path: str | Path | None, resume: bool,
                    is_main: bool = True) -> Path:
    """Create (or check, when resuming) the run folder and save the resolved config into it."""
    run_dir = run_dir_for(command, cfg, config_path)
    saved = run_dir / "config.yaml"
    if _holds_run(run_dir) and not resume:
        raise SoftdimoError(
            f"run folder {run_dir} already holds a run. Pass --resume to continue it, choose "
            f"another name with train.run_name=NAME (or train.out_dir=DIR), or delete the folder "
            f"yourself; softdimo never overwrites a run.")
    if resume and saved.is_file():
        old = yaml.safe_load(saved.read_text()) or {}
        new = to_dict(cfg)
        changed = sorted(k for k in set(old) | set(new) if k != "train" and old.get(k) != new.get(k))
        if changed:
            raise ConfigError(
                f"--resume: the config of {run_dir} differs from the new one in section(s) "
                f"{', '.join(changed)}. Only train.* knobs may change when resuming; start a new "
                f"run (train.run_name=NAME) to change the model or data.")
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, saved)
    return run_dir
