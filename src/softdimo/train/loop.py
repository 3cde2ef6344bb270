"""The one training loop shared by every stage (tokenizer, teacher, classifier, distill, refine).

A stage describes *what* to optimise as a list of :class:`Phase` objects (an optimiser and the
loss that drives it: one phase for the tokenizer or the teacher; generator + auxiliary for Di[M]O;
generator + auxiliary + discriminator for the GAN refinement). This loop does everything else,
once, for all of them: seeding, deterministic data order, gradient accumulation, optional bf16
autocast, gradient averaging across processes (accelerate), NaN/Inf guards, clipping, warm-up,
EMA, metrics.jsonl + TensorBoard, sample grids, atomic ``checkpoint-N/`` folders, exact
``--resume`` and the final ``save_pretrained`` export.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Literal, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import TrainConfig
from ..imageio import make_grid, save_image
from .checkpoint import latest_checkpoint, rng_state, set_rng_state, write_checkpoint
from .ema import EMA


@dataclass(frozen=True)
class Tick:
    """Where the loop is: optimiser step, micro-batch within it, and repeat of the phase."""

    step: int
    micro: int = 0
    repeat: int = 0


LossFn = Callable[[Tick], "tuple[torch.Tensor, dict[str, float]]"]


@dataclass
class Phase:
    """One optimiser over ``module``'s trainable parameters, driven by ``loss``."""

    name: str
    module: nn.Module
    loss: LossFn
    lr: float
    optimizer: Literal["adam", "adamw"] = "adam"
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: float | None = None
    warmup_steps: int = 0
    repeats: int = 1  # optimiser updates of this phase per training step (e.g. auxiliary rounds)

    def params(self) -> list[nn.Parameter]:
        return [p for p in self.module.parameters() if p.requires_grad]

    @classmethod
    def from_train(cls, name: str, module: nn.Module, loss: LossFn, train: TrainConfig, **overrides: Any) -> "Phase":
        """A phase whose optimiser knobs come from the shared ``train.`` config (overrides win)."""
        knobs = dict(lr=train.lr, optimizer=train.optimizer, betas=train.adam_betas, eps=train.adam_eps,
                     weight_decay=train.weight_decay,
                     grad_clip=train.grad_clip, warmup_steps=train.warmup_steps)
        return cls(name, module, loss, **{**knobs, **overrides})


@dataclass
class Context:
    """What a stage gets from the loop: devices, processes, RNG and the data order."""

    cfg: TrainConfig
    accelerator: Any
    generator: torch.Generator  # per-process generator for data-free draws; checkpointed
    data_seed: int = 0

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def world_size(self) -> int:
        return self.accelerator.num_processes

    @property
    def micro_batch_size(self) -> int:
        """Per-process micro-batch: the global batch split over processes and accumulation."""
        return self.cfg.batch_size // (self.world_size * self.cfg.grad_accum)

    def batch_indices(self, tick: Tick, n: int, repeats: int = 1) -> list[int]:
        """This process's dataset indices for ``tick``: a fixed function of (seed, step, micro).

        Epoch e visits a permutation of ``range(n)`` seeded by (seed, e); the global micro-batch
        is sliced across processes. Because the order is a pure function of the step, resuming
        at step s reproduces the uninterrupted run's batches exactly.
        """
        mb, world = self.micro_batch_size, self.world_size
        slot = (tick.step * repeats + tick.repeat) * self.cfg.grad_accum + tick.micro
        start = (slot * world + self.rank) * mb
        out = []
        for pos in range(start, start + mb):
            epoch, off = divmod(pos, n)
            out.append(int(_permutation(self.data_seed, epoch, n)[off]))
        return out


@lru_cache(maxsize=4)
def _permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


class Stage(Protocol):
    """What a training stage provides to :func:`train`."""

    def setup(self, ctx: Context) -> None:
        """Build models/data on ``ctx.device`` (called once, after seeding)."""

    def modules(self) -> dict[str, nn.Module]:
        """Every module whose weights change (checkpointed and restored)."""

    def phases(self) -> list[Phase]:
        """The optimisers and their losses, run in this order every step."""

    def ema_modules(self) -> list[str]:
        """Names in :meth:`modules` to keep an EMA of (exported instead of the live weights)."""

    def sample(self, models: dict[str, nn.Module]) -> torch.Tensor | None:
        """A fixed-seed batch of images [N,C,H,W] in [0,1] for the sample grid (or None).

        A stage may set an attribute ``grid_nrow`` (images per grid row)."""

    def export(self, path: Path, models: dict[str, nn.Module]) -> None:
        """Write the final model(s) to ``path`` with save_pretrained."""


@dataclass
class TrainResult:
    """What a finished :func:`train` call reports."""

    run_dir: Path
    final_dir: Path
    steps: int
    seconds: float
    last_logs: dict[str, float] = field(default_factory=dict)


def _make_optimizer(ph: Phase) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if ph.optimizer == "adamw" else torch.optim.Adam
    return cls(ph.params(), lr=ph.lr, betas=ph.betas, eps=ph.eps, weight_decay=ph.weight_decay)


def _warmup(steps: int) -> Callable[[int], float]:
    return lambda s: min(1.0, (s + 1) / steps) if steps > 0 else 1.0


def _build_accelerator(cfg: TrainConfig) -> Any:
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    # Several runs may share one Python process (the demo, tests, notebooks): forget the previous
    # run's mixed-precision choice; the process group (PartialState) is kept.
    AcceleratorState._reset_state()
    cpu = cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())
    return Accelerator(cpu=cpu, mixed_precision=cfg.mixed_precision)


def _reduce_grads(params: list[nn.Parameter], accelerator: Any) -> None:
    """Average gradients over processes with one collective (no-op for a single process)."""
    if accelerator.num_processes == 1 or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = accelerator.reduce(torch.cat([g.reshape(-1) for g in grads]), reduction="mean")
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def _sanitize_grads(params: list[nn.Parameter]) -> int:
    """Zero non-finite gradient entries in place; return how many parameters had any."""
    bad = 0
    for p in params:
        if p.grad is not None and not torch.isfinite(p.grad).all():
            bad += 1
            torch.nan_to_num_(p.grad, nan=0.0, posinf=0.0, neginf=0.0)
    return bad


class MetricsLog:
    """``metrics.jsonl`` (one JSON row per logged step) plus TensorBoard scalars and images."""

    def __init__(self, run_dir: Path, enabled: bool, resume_step: int):
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.tb = None
        if not enabled:
            return
        if self.path.exists():  # drop rows written after the checkpoint we resume from
            rows = [r for r in self.path.read_text().splitlines() if r.strip()]
            kept = [r for r in rows if json.loads(r).get("step", 0) <= resume_step]
            self.path.write_text("".join(r + "\n" for r in kept))
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tensorboard"))
        except ImportError:  # tensorboard is a dependency, but never fail a run for logging
            self.tb = None

    def log(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)

    def image(self, tag: str, image: torch.Tensor, step: int) -> None:
        if self.enabled and self.tb is not None:
            self.tb.add_image(tag, image.clamp(0, 1), step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def train(stage: Stage, cfg: TrainConfig, run_dir: str | Path, resume: bool = False,
          progress: bool = True, fault: Callable[[str, int], None] | None = None) -> TrainResult:
    """Run ``stage`` for ``cfg.max_steps`` optimiser steps, writing everything into ``run_dir``.

    ``fault(event, step)`` is a test hook invoked at "step" (after the optimiser updates) and
    "checkpoint" (inside a checkpoint write, before its rename).
    """
    run_dir = Path(run_dir)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    accelerator = _build_accelerator(cfg)
    rank, world = accelerator.process_index, accelerator.num_processes
    if cfg.batch_size % (world * cfg.grad_accum):
        from ..errors import ConfigError

        raise ConfigError(f"train.batch_size={cfg.batch_size} must be divisible by the number of "
                          f"processes ({world}) times train.grad_accum ({cfg.grad_accum}).")
    process_seed = cfg.seed * world + rank
    torch.manual_seed(process_seed)
    import random

    import numpy as np

    random.seed(process_seed)
    np.random.seed(process_seed % 2**32)
    ctx = Context(cfg=cfg, accelerator=accelerator,
                  generator=torch.Generator().manual_seed(process_seed), data_seed=cfg.seed)
    stage.setup(ctx)
    modules = stage.modules()
    phases = stage.phases()
    optimizers = {ph.name: _make_optimizer(ph) for ph in phases}
    schedulers = {ph.name: torch.optim.lr_scheduler.LambdaLR(optimizers[ph.name], _warmup(ph.warmup_steps))
                  for ph in phases}
    emas = {name: EMA(modules[name], cfg.ema_decay, cfg.ema_warmup)
            for name in stage.ema_modules()} if cfg.ema_decay else {}
    generators = {"ctx": ctx.generator}

    start = 0
    if resume:
        ck = latest_checkpoint(run_dir, rank)
        if ck is not None:
            for name, mod in modules.items():
                mod.load_state_dict({k[len(name) + 1:]: v for k, v in ck.models.items() if k.startswith(name + ".")})
            for name, ema in emas.items():
                pre = f"ema.{name}."
                ema.model.load_state_dict({k[len(pre):]: v for k, v in ck.models.items() if k.startswith(pre)})
            for name, opt in optimizers.items():
                opt.load_state_dict(ck.optim["optimizers"][name])
                schedulers[name].load_state_dict(ck.optim["schedulers"][name])
            if ck.rng is not None:
                set_rng_state(ck.rng, generators)
            start = ck.step

    def checkpoint(step: int) -> None:
        tensors = {f"{n}.{k}": v for n, m in modules.items() for k, v in m.state_dict().items()}
        tensors.update({f"ema.{n}.{k}": v for n, e in emas.items() for k, v in e.model.state_dict().items()})
        optim = {"optimizers": {n: o.state_dict() for n, o in optimizers.items()},
                 "schedulers": {n: s.state_dict() for n, s in schedulers.items()}}
        write_checkpoint(run_dir, step, tensors, optim, rng_state(generators), rank, world,
                         accelerator.is_main_process, barrier=accelerator.wait_for_everyone,
                         total_limit=cfg.checkpoints_total_limit,
                         fault=(lambda: fault("checkpoint", step)) if fault else None)

    def sampling_models() -> dict[str, nn.Module]:
        """Live modules, with each EMA copy standing in for its module."""
        return {**modules, **{n: e.model for n, e in emas.items()}}

    def write_samples(step: int) -> None:
        if not accelerator.is_main_process:
            return
        images = stage.sample(sampling_models())
        if images is not None:
            grid = make_grid(images.float().cpu(), nrow=getattr(stage, "grid_nrow", None))
            save_image(grid, run_dir / "samples" / f"step-{step}.png")
            metrics.image("samples", grid, step)

    metrics = MetricsLog(run_dir, accelerator.is_main_process, start)
    bar = tqdm(total=cfg.max_steps, initial=start, disable=not (progress and accelerator.is_main_process),
               desc=run_dir.name, dynamic_ncols=True)
    t0 = time.time()
    logs: dict[str, float] = {}
    counters = {"nonfinite_loss": 0, "nonfinite_grad": 0}
    for step in range(start, cfg.max_steps):
        logs = {}
        for ph in phases:
            opt, params = optimizers[ph.name], ph.params()
            for rep in range(ph.repeats):
                opt.zero_grad(set_to_none=True)
                for micro in range(cfg.grad_accum):
                    with accelerator.autocast():
                        loss, extra = ph.loss(Tick(step, micro, rep))
                    if not torch.isfinite(loss):
                        counters["nonfinite_loss"] += 1
                        continue
                    accelerator.backward(loss / cfg.grad_accum)
                    logs[f"{ph.name}/loss"] = logs.get(f"{ph.name}/loss", 0.0) + loss.item() / cfg.grad_accum
                    for k, v in extra.items():
                        if k == "loss":  # already logged from the returned loss itself
                            continue
                        logs[f"{ph.name}/{k}"] = logs.get(f"{ph.name}/{k}", 0.0) + float(v) / cfg.grad_accum
                _reduce_grads(params, accelerator)
                counters["nonfinite_grad"] += _sanitize_grads(params)
                if ph.grad_clip:
                    logs[f"{ph.name}/grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, ph.grad_clip))
                opt.step()
                schedulers[ph.name].step()
            logs[f"{ph.name}/lr"] = schedulers[ph.name].get_last_lr()[0]
        for name, ema in emas.items():
            ema.update(modules[name], step)
        done = step + 1
        if fault:
            fault("step", done)
        if done % cfg.log_every == 0 or done == cfg.max_steps:
            metrics.log(done, {**logs, **counters, "seconds": time.time() - t0})
        bar.update(1)
        main_loss = next((v for k, v in logs.items() if k.endswith("/loss")), math.nan)
        bar.set_postfix(loss=f"{main_loss:.4f}")
        if cfg.sample_every and done % cfg.sample_every == 0:
            write_samples(done)
        if (cfg.checkpoint_every and done % cfg.checkpoint_every == 0) or done == cfg.max_steps:
            checkpoint(done)
    bar.close()
    if start >= cfg.max_steps:
        logs = {}
    final_dir = run_dir / "final"
    if accelerator.is_main_process:
        tmp = run_dir / ".tmp-final"
        if tmp.exists():
            shutil.rmtree(tmp)
        stage.export(tmp, sampling_models())
        if final_dir.exists():
            shutil.rmtree(final_dir)
        os.replace(tmp, final_dir)
        if cfg.sample_every and not (run_dir / "samples" / f"step-{cfg.max_steps}.png").exists():
            write_samples(cfg.max_steps)
    accelerator.wait_for_everyone()
    metrics.close()
    return TrainResult(run_dir=run_dir, final_dir=final_dir, steps=cfg.max_steps,
                       seconds=time.time() - t0, last_logs=logs)
