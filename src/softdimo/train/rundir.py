"""Run folders: ``<out_dir>/<command>/<run_name>/`` with the resolved ``config.yaml``.

A folder that already holds a run is never overwritten: without ``--resume`` the command stops
with a message, and with ``--resume`` the saved config must agree with the new one on everything
outside ``train.`` (the model and data of a run cannot change half-way).

A command that stops on bad input leaves the disk as it found it (:func:`undo_on_bad_input`): a
run folder it created is removed again, and the ``config.yaml`` of a run it was asked to resume
is put back, as long as no checkpoint or ``final/`` was written.
"""
from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import yaml

from ..config import from_dict, save_config, to_dict
from ..errors import ConfigError, SoftdimoError
from ..files import atomic_write_bytes, check_writable, read_text


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


def read_saved_config(saved: Path) -> dict[str, Any]:
    """The resolved config a run folder holds (``config.yaml``), or :class:`ConfigError` if it is damaged."""
    try:
        old = yaml.safe_load(read_text(saved, "--resume: the run's", ConfigError)) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"--resume: {saved} is not valid YAML ({e}); the run folder is damaged. Restore the "
                          f"file, or start a new run (train.run_name=NAME).") from e
    if not isinstance(old, dict):
        raise ConfigError(f"--resume: {saved} must hold a mapping of sections, got {type(old).__name__}; the run "
                          f"folder is damaged. Restore the file, or start a new run (train.run_name=NAME).")
    return old


def with_new_defaults(old: dict[str, Any], cls: type, saved: Path) -> dict[str, Any]:
    """A run's saved config with every knob added to ``cls`` since the run started at its default, so that
    resuming compares like with like (a new knob's default is the behaviour before it existed). A saved
    config ``cls`` no longer reads (a knob since removed) is returned as saved: the comparison then names it."""
    try:
        return to_dict(from_dict(cls, old, where=str(saved)))
    except (ConfigError, TypeError, ValueError):
        return old


def _saved_work(path: Path) -> set[str]:
    """Names of the checkpoint folders and ``final/`` in ``path`` (what a failed command must not lose)."""
    if not path.is_dir():
        return set()
    return {p.name for p in path.iterdir() if p.name == "final" or p.name.startswith("checkpoint-")}


@contextmanager
def undo_on_bad_input(run_dir: Path, enabled: bool = True) -> Iterator[None]:
    """Within this block, a :class:`SoftdimoError` of bad input (exit status 2) undoes what the run
    folder gained, unless a checkpoint or ``final/`` was written meanwhile: the folders created for
    it are removed, or the ``config.yaml`` it held is restored. The error is re-raised."""
    run_dir = Path(run_dir)
    created = [p for p in (run_dir, *run_dir.parents) if not p.exists()]
    saved = run_dir / "config.yaml"
    old_config = saved.read_bytes() if saved.is_file() else None
    work = _saved_work(run_dir)
    try:
        yield
    except SoftdimoError as e:
        if enabled and getattr(e, "exit_code", 2) == 2 and _saved_work(run_dir) == work:
            if created:
                shutil.rmtree(created[-1], ignore_errors=True)
            elif old_config is not None and saved.is_file() and saved.read_bytes() != old_config:
                atomic_write_bytes(saved, old_config)
            elif old_config is None and saved.is_file():
                saved.unlink()
        raise


def prepare_run_dir(command: str, cfg: Any, config_path: str | Path | None, resume: bool,
                    is_main: bool = True, write: bool = True) -> Path:
    """Check the run folder (a new one, or the run to resume) and, with ``write``, create it and save the
    resolved config into it; without, the caller does that with :func:`write_run_config` once the run
    has started (so that a run refused at set-up writes nothing)."""
    run_dir = run_dir_for(command, cfg, config_path)
    check_writable(run_dir, "the run folder (train.out_dir / <command> / train.run_name)", folder=True)
    saved = run_dir / "config.yaml"
    if _holds_run(run_dir) and not resume:
        raise SoftdimoError(
            f"run folder {run_dir} already holds a run. Pass --resume to continue it, choose "
            f"another name with train.run_name=NAME (or train.out_dir=DIR), or delete the folder "
            f"yourself; softdimo never overwrites a run.")
    if resume and saved.exists():
        old = with_new_defaults(read_saved_config(saved), type(cfg), saved)
        new = to_dict(cfg)
        changed = sorted(k for k in set(old) | set(new) if k != "train" and old.get(k) != new.get(k))
        if changed:
            raise ConfigError(
                f"--resume: the config of {run_dir} differs from the new one in section(s) "
                f"{', '.join(changed)}. Only train.* knobs may change when resuming; start a new "
                f"run (train.run_name=NAME) to change the model or data.")
    if is_main and write:
        write_run_config(run_dir, cfg)
    return run_dir


def write_run_config(run_dir: Path, cfg: Any) -> None:
    """Create the run folder and save the resolved config as its ``config.yaml``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
