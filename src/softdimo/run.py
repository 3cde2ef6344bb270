"""The training commands: which stage each ``softdimo <command>`` runs, and running one.

:data:`TRAIN_COMMANDS` maps a command (``train-tokenizer``, ``train-teacher``, ``distill``, …) to
the module of its stage and the class of its typed config; :func:`run_training` loads and
validates the config (preset + dotted overrides), prepares the run folder and runs the shared
training loop. A run that stops on bad input (exit status 2) before it saved a checkpoint leaves
no run folder behind (:func:`softdimo.train.rundir.undo_on_bad_input`). The command line (:mod:`softdimo.cli`) and the demo (:mod:`softdimo.demo`) both
train through it. Stage modules are imported by name when their command runs, so that
``softdimo --help`` and the commands that do not train stay quick.
"""
from __future__ import annotations

import importlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from .config import load_config
from .errors import CheckpointError, ConfigError, SoftdimoError
from .files import check_writable
from .train import prepare_run_dir, train
from .train.checkpoint import list_checkpoints, read_checkpoint, replace_dir
from .train.loop import build_context
from .train.rundir import run_dir_for, undo_on_bad_input, write_run_config


@dataclass(frozen=True)
class TrainCommand:
    """A training command: its config class and stage factory, imported lazily."""

    module: str
    config_class: str
    help: str

    def load(self) -> tuple[type, Callable[[Any], Any]]:
        mod = importlib.import_module(self.module)
        return getattr(mod, self.config_class), mod.build


TRAIN_COMMANDS: dict[str, TrainCommand] = {
    "train-tokenizer": TrainCommand("softdimo.tokenizer.train", "TokenizerRunConfig",
                                    "train the VQ tokenizer (encode / decode / decode_soft)"),
    "train-classifier": TrainCommand("softdimo.classifier.train", "ClassifierRunConfig",
                                     "train the digit classifier (domain FID, classifier score, GenEval scorer)"),
    "train-teacher": TrainCommand("softdimo.teachers.train", "TeacherRunConfig",
                                  "train the MDM teacher (class- or text-conditional) on frozen-tokenizer ids"),
    "train-reward": TrainCommand("softdimo.rewards.train", "RewardRunConfig",
                                 "train an in-project reward network (mini-CLIP or attribute classifier)"),
    "distill": TrainCommand("softdimo.distill.train", "DistillRunConfig",
                            "Di[M]O: distil a teacher into a one-step student (data-free)"),
    "refine": TrainCommand("softdimo.distill.refine", "RefineRunConfig",
                           "Soft-Di[M]O: refine a Di[M]O student with a GAN and/or reward terms"),
}


DRY_RUN_COMMANDS = ("train-teacher", "distill", "refine")  # commands with a --dry-run memory plan


def run_training(command: str, config_path: str | None, overrides: list[str], resume: bool,
                 progress: bool = True) -> Any:
    """Load the config of ``command``, prepare its run folder and train; returns the TrainResult."""
    cfg_cls, build = TRAIN_COMMANDS[command].load()
    cfg = load_config(cfg_cls, config_path, overrides)
    is_main = int(os.environ.get("RANK", "0")) == 0
    with undo_on_bad_input(run_dir_for(command, cfg, config_path), enabled=is_main):
        run_dir = prepare_run_dir(command, cfg, config_path, resume, is_main=is_main, write=False)
        start = (lambda: write_run_config(run_dir, cfg)) if is_main else None
        return train(build(cfg), cfg.train, run_dir, resume=resume, progress=progress, on_start=start)


def export_checkpoint(run_dir: str | Path, out: str | Path, step: int | None = None,
                      weights: Literal["ema", "live"] = "ema", command: str | None = None) -> Path:
    """Write ``checkpoint-<step>/`` of a training run (the newest when ``step`` is None) as the model
    folder its ``final/`` would be, so that a run can be sampled and evaluated while it goes on.

    ``run_dir`` is ``<train.out_dir>/<command>/<train.run_name>``; its ``config.yaml`` rebuilds the
    stage (set-up as in training: the tokenizer, the teacher, cached token ids), the checkpoint's
    weights are loaded, and the stage's own export writes ``out`` — with ``weights="ema"`` what
    ``final/`` holds (the EMA copies of the stage's EMA modules; the live weights of a run without
    EMA, ``train.ema_decay: 0``), with ``"live"`` the live weights.
    """
    run_dir, out = Path(run_dir), Path(out)
    command = command or run_dir.parent.name
    if command not in TRAIN_COMMANDS:
        raise ConfigError(f"{run_dir} is not in a <out_dir>/<command>/<run_name> folder of a training command "
                          f"({', '.join(TRAIN_COMMANDS)}); pass the command.")
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir} holds no config.yaml: not a training run folder.")
    found = dict(list_checkpoints(run_dir))
    if not found:
        raise ConfigError(f"{run_dir} holds no checkpoint-N/ folder yet.")
    step = max(found) if step is None else step
    if step not in found:
        raise ConfigError(f"{run_dir} has no checkpoint-{step}/; it has " + ", ".join(f"checkpoint-{s}" for s in found))
    check_writable(out, "the export folder", folder=True)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty; choose a new folder.")
    cfg_cls, build = TRAIN_COMMANDS[command].load()
    cfg = load_config(cfg_cls, str(run_dir / "config.yaml"), [])
    try:
        ck = read_checkpoint(found[step], rank=0)
    except SoftdimoError:  # e.g. an intact checkpoint in the earlier pickle format: the user decides
        raise
    except Exception as e:  # any other failure to read: not a usable checkpoint
        raise CheckpointError(f"{found[step]} is incomplete or corrupt ({type(e).__name__}: {e}); export another "
                              f"--step.") from e
    stage = build(cfg)
    stage.setup(build_context(cfg.train))
    modules = stage.modules()
    ema = set(stage.ema_modules()) if weights == "ema" and cfg.train.ema_decay else set()
    for name, module in modules.items():
        prefix = f"ema.{name}." if name in ema else f"{name}."
        tensors = {k[len(prefix):]: v for k, v in ck.models.items() if k.startswith(prefix)}
        if not tensors:
            raise CheckpointError(f"checkpoint-{step} of {run_dir} holds no {prefix}* weights.")
        module.load_state_dict(tensors)
    tmp = out.parent / f".tmp-export-{out.name}"  # a failed export leaves no half-written folder
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        stage.export(tmp, modules)
        replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


__all__ = ["TrainCommand", "TRAIN_COMMANDS", "DRY_RUN_COMMANDS", "run_training", "export_checkpoint"]
