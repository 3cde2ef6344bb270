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
from dataclasses import dataclass
from typing import Any, Callable

from .config import load_config
from .train import prepare_run_dir, train
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


__all__ = ["TrainCommand", "TRAIN_COMMANDS", "DRY_RUN_COMMANDS", "run_training"]
