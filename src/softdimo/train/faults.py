"""Failures of a training run: the injected ones that prove the guards, and the message for real ones.

:class:`FaultInjector` applies :class:`~softdimo.config.FaultConfig` (``train.faults.*``, all off
by default) at fixed points of the shared loop:

* ``nan_loss_at`` / ``inf_grad_at``: a non-finite loss or gradient at step k. The loop's guards
  skip the loss / zero the gradient entries, count them (``nonfinite_loss``, ``nonfinite_grad``
  in ``metrics.jsonl``) and training continues.
* ``raise_at``: an exception after the updates of step k.
* ``disk_full_at``: ``OSError(ENOSPC)`` while ``checkpoint-k/`` is being written.
* ``kill_at`` / ``kill_in_checkpoint_at``: SIGKILL after step k, or with checkpoint-k half written.

Exceptions and full disks stop the run with :class:`TrainingFailed` (the CLI prints its message
and exits with :data:`TrainingFailed.exit_code`); the half-written checkpoint is discarded, so the
newest complete ``checkpoint-N/`` stays intact for ``--resume``.
"""
from __future__ import annotations

import errno
import os
import signal
import traceback
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..config import FaultConfig
from ..errors import SoftdimoError


class TrainingFailed(SoftdimoError):
    """A training run stopped on an error that is not a config mistake (a crash, a full disk).

    The CLI exits with status 3 (2 is kept for bad input), so a job scheduler can tell a run
    worth retrying with ``--resume`` from one whose command line is wrong.
    """

    exit_code = 3


class InjectedFault(RuntimeError):
    """The exception raised by ``train.faults.raise_at``."""


Hook = Callable[[str, int], None]


class FaultInjector:
    """Applies ``train.faults`` (and an optional test ``hook(event, step)``) inside the loop."""

    def __init__(self, cfg: FaultConfig, hook: Hook | None = None):
        self.cfg = cfg
        self.hook = hook

    def loss(self, step: int, loss: torch.Tensor) -> torch.Tensor:
        """The loss of 1-based step ``step``, made NaN at ``nan_loss_at``."""
        return loss * float("nan") if step == self.cfg.nan_loss_at else loss

    def grads(self, step: int, params: list[nn.Parameter]) -> None:
        """Put +Inf into the first gradient entry at ``inf_grad_at``."""
        if step == self.cfg.inf_grad_at:
            for p in params:
                if p.grad is not None and p.grad.numel():
                    p.grad.view(-1)[0] = float("inf")
                    return

    def after_step(self, step: int) -> None:
        """After the optimiser updates of ``step``: the test hook, ``kill_at``, ``raise_at``."""
        if self.hook is not None:
            self.hook("step", step)
        if step == self.cfg.kill_at:
            _kill()
        if step == self.cfg.raise_at:
            raise InjectedFault(f"fault injected by train.faults.raise_at={step}")

    def in_checkpoint(self, step: int) -> None:
        """Inside the write of ``checkpoint-<step>/``, before its rename."""
        if self.hook is not None:
            self.hook("checkpoint", step)
        if step == self.cfg.kill_in_checkpoint_at:
            _kill()
        if step == self.cfg.disk_full_at:
            raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (injected by train.faults.disk_full_at={step})")


def _kill() -> None:
    """Die at once, like a power loss: no cleanup, no flush, no exit handlers."""
    os.kill(os.getpid(), signal.SIGKILL)


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    f = frames[-1]
    return f" (raised at {Path(f.filename).name}:{f.lineno} in {f.name})"


def failure_message(exc: BaseException, step: int, during: str, newest: Path | None) -> str:
    """One paragraph: what stopped the run, where, and how to continue."""
    keep = (f"The newest complete checkpoint, {newest}, is intact" if newest is not None
            else "No complete checkpoint was written yet")
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return (f"the disk is full: {during} at step {step} failed ({exc}). {keep}; the half-written "
                f"files were removed. Free disk space (or lower train.checkpoints_total_limit) and run "
                f"the same command again with --resume.")
    return (f"training stopped at step {step} while {during}: {type(exc).__name__}: {exc}{_where(exc)}. "
            f"{keep}; fix the cause and run the same command again with --resume to continue from it.")


__all__ = ["TrainingFailed", "InjectedFault", "FaultInjector", "failure_message"]
