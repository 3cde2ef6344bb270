"""The one training loop shared by every stage (tokenizer, teacher, classifier, distill, refine).

A stage describes *what* to optimise as a list of :class:`Phase` objects (an optimiser and the
loss that drives it: one phase for the tokenizer or the teacher; generator + auxiliary for Di[M]O;
generator + auxiliary + discriminator for the GAN refinement). This loop does everything else,
once, for all of them: seeding, deterministic data order, gradient accumulation, optional bf16
autocast, gradient checkpointing, gradient averaging across processes (accelerate), NaN/Inf
guards, clipping, warm-up, EMA, metrics.jsonl + TensorBoard, sample grids, atomic
``checkpoint-N/`` folders, exact ``--resume``, fault injection (:mod:`.faults`) and the final
``save_pretrained`` export. Any failure after set-up stops the run with
:class:`~softdimo.train.faults.TrainingFailed`, naming the newest complete checkpoint.
"""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Literal, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from ..config import TrainConfig
from ..errors import ConfigError, SoftdimoError
from ..imageio import make_grid, save_image
from ..pretrained import atomic_write_bytes
from .checkpoint import (latest_checkpoint, list_checkpoints, replace_dir, rng_state, set_rng_state,
                         write_checkpoint)
from .ema import EMA
from .faults import FaultInjector, TrainingFailed, failure_message


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

        A stage may set an attribute ``grid_nrow`` (images per grid row), and may define
        ``diagnostics(models) -> dict[str, float]``: measurements logged as ``diag/<name>`` rows of
        metrics.jsonl (and TensorBoard) whenever a sample grid is written."""

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
    from accelerate import Accelerator  # heavy: accelerate's state machinery, only when a run starts
    from accelerate.state import AcceleratorState  # (with Accelerator)

    # Several runs may share one Python process (the demo, tests, notebooks): forget the previous
    # run's mixed-precision choice; the process group (PartialState) is kept.
    AcceleratorState._reset_state()
    if cfg.mixed_precision == "fp16":
        raise ConfigError("train.mixed_precision=fp16 needs loss scaling, which the training loop does "
                          "not do; use train.mixed_precision=bf16 (or no).")
    launcher = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if launcher not in ("no", cfg.mixed_precision):
        warnings.warn(f"the accelerate launcher asks for mixed precision '{launcher}' but the run config "
                      f"says train.mixed_precision={cfg.mixed_precision}; softdimo follows the run config "
                      f"(set train.mixed_precision to change it).", stacklevel=2)
    cpu = cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())
    accelerator = Accelerator(cpu=cpu, mixed_precision=cfg.mixed_precision)
    kind = accelerator.distributed_type.value
    if kind in ("FSDP", "DEEPSPEED", "MEGATRON_LM"):
        raise ConfigError(f"the accelerate config asks for {kind}, but the shared training loop replicates "
                          f"every model on every process (data parallel, like DDP) and does not shard them. "
                          f"Launch with configs/accelerate/ddp.yaml (or torchrun) and save memory with "
                          f"train.mixed_precision=bf16 and train.gradient_checkpointing=true.")
    return accelerator


def build_context(cfg: TrainConfig, seed: int | None = None) -> Context:
    """The :class:`Context` a stage gets from :func:`train`, for set-ups outside the loop too.

    The accelerator of ``cfg`` (device, processes, mixed precision) and the stage's generator,
    seeded with ``seed`` (default: this process's seed, ``cfg.seed · world + rank``). Notebooks
    and tests call ``stage.setup(build_context(cfg))`` to use a stage's losses directly.
    """
    accelerator = _build_accelerator(cfg)
    if seed is None:
        seed = cfg.seed * accelerator.num_processes + accelerator.process_index
    return Context(cfg=cfg, accelerator=accelerator, generator=torch.Generator().manual_seed(seed),
                   data_seed=cfg.seed)


def enable_gradient_checkpointing(modules: dict[str, nn.Module]) -> int:
    """Call ``enable_gradient_checkpointing()`` on every submodule that has it; return how many did."""
    n = 0
    for mod in modules.values():
        for sub in mod.modules():
            fn = getattr(sub, "enable_gradient_checkpointing", None)
            if callable(fn):
                fn()
                n += 1
    return n


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


def _across_processes(logs: dict[str, float], counters: dict[str, int]) -> dict[str, float]:
    """Logged values averaged over processes (each over the processes that logged it); counters summed."""
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, (logs, counters))
    keys = sorted(set().union(*(p[0] for p in parts)))
    row: dict[str, float] = {k: sum(p[0][k] for p in parts if k in p[0]) / sum(k in p[0] for p in parts)
                             for k in keys}
    return {**row, **{k: sum(p[1][k] for p in parts) for k in counters}}


def _row_step(row: str) -> float:
    """The step of one metrics.jsonl row; a blank row or one cut short by a crash counts as infinitely late."""
    try:
        return float(json.loads(row)["step"])
    except (ValueError, KeyError, TypeError):
        return math.inf


class MetricsLog:
    """``metrics.jsonl`` (one JSON row per logged step) plus TensorBoard scalars and images."""

    def __init__(self, run_dir: Path, enabled: bool, resume_step: int):
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.tb = None
        if not enabled:
            return
        if self.path.exists():  # drop rows written after the checkpoint we resume from
            kept = [r for r in self.path.read_text(errors="replace").splitlines() if _row_step(r) <= resume_step]
            atomic_write_bytes(self.path, "".join(r + "\n" for r in kept).encode())
        try:
            from torch.utils.tensorboard import SummaryWriter  # heavy: tensorboard, only for the main process's log

            # purge_step: TensorBoard hides the events a killed run wrote after the checkpoint
            self.tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=resume_step or None)
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


def _newest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def train(stage: Stage, cfg: TrainConfig, run_dir: str | Path, resume: bool = False,
          progress: bool = True, fault: Callable[[str, int], None] | None = None,
          on_start: Callable[[], None] | None = None) -> TrainResult:
    """Run ``stage`` for ``cfg.max_steps`` optimiser steps, writing everything into ``run_dir``.

    ``cfg.faults`` injects failures (:mod:`.faults`); ``fault(event, step)`` is a further test
    hook invoked at "step" (after the optimiser updates of 1-based step ``step``) and
    "checkpoint" (inside the write of checkpoint-``step``, before its rename). An exception after
    set-up (a crash, a full disk) is re-raised as :class:`TrainingFailed` with a message naming
    the newest complete checkpoint; config and data mistakes keep their own errors. ``on_start()`` is
    called once set-up and ``--resume`` went through, before anything is written into ``run_dir``.
    """
    run_dir = Path(run_dir)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    ctx = build_context(cfg)
    accelerator = ctx.accelerator
    rank, world = accelerator.process_index, accelerator.num_processes
    if cfg.batch_size % (world * cfg.grad_accum):
        raise ConfigError(f"train.batch_size={cfg.batch_size} must be divisible by the number of "
                          f"processes ({world}) times train.grad_accum ({cfg.grad_accum}).")
    process_seed = cfg.seed * world + rank
    torch.manual_seed(process_seed)
    random.seed(process_seed)
    np.random.seed(process_seed % 2**32)
    stage.setup(ctx)
    modules = stage.modules()
    if cfg.gradient_checkpointing and not enable_gradient_checkpointing(modules):
        warnings.warn("train.gradient_checkpointing=true, but no trained module of this stage supports "
                      "it; training without it.", stacklevel=2)
    phases = stage.phases()
    optimizers = {ph.name: _make_optimizer(ph) for ph in phases}
    schedulers = {ph.name: torch.optim.lr_scheduler.LambdaLR(optimizers[ph.name], _warmup(ph.warmup_steps))
                  for ph in phases}
    emas = {name: EMA(modules[name], cfg.ema_decay, cfg.ema_warmup)
            for name in stage.ema_modules()} if cfg.ema_decay else {}
    generators = {"ctx": ctx.generator}
    faults = FaultInjector(cfg.faults, hook=fault)
    counters = {"nonfinite_loss": 0, "nonfinite_grad": 0}

    start = 0
    if resume:
        if accelerator.is_main_process:  # leftovers of a write that was killed half-way
            for junk in [*run_dir.glob(".tmp-checkpoint-*"), *run_dir.glob(".old-checkpoint-*")]:
                shutil.rmtree(junk, ignore_errors=True)
        accelerator.wait_for_everyone()
        ck = latest_checkpoint(run_dir, rank)
        if ck is None:
            warnings.warn(f"--resume: {run_dir} holds no complete checkpoint; training from step 0.",
                          stacklevel=2)
        else:
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
            if ck.world_size != world:
                warnings.warn(f"{ck.path} was written by {ck.world_size} process(es) and is resumed by "
                              f"{world}: the weights, optimiser and data order continue, but the random "
                              f"draws differ from an uninterrupted run.", stacklevel=2)
            saved = (ck.rng or {}).get("counters", ck.extra.get("counters", {}))  # this process's own, if saved
            counters.update({k: int(v) for k, v in saved.items() if k in counters})
            start = ck.step
            if accelerator.is_main_process:  # said even without a progress bar
                print(f"{run_dir}: resumed from {ck.path.name} at step {ck.step} of {cfg.max_steps}", flush=True)

    def checkpoint(step: int) -> None:
        tensors = {f"{n}.{k}": v for n, m in modules.items() for k, v in m.state_dict().items()}
        tensors.update({f"ema.{n}.{k}": v for n, e in emas.items() for k, v in e.model.state_dict().items()})
        optim = {"optimizers": {n: o.state_dict() for n, o in optimizers.items()},
                 "schedulers": {n: s.state_dict() for n, s in schedulers.items()}}
        write_checkpoint(run_dir, step, tensors, optim, {**rng_state(generators), "counters": dict(counters)},
                         rank, world,
                         accelerator.is_main_process, barrier=accelerator.wait_for_everyone,
                         total_limit=cfg.checkpoints_total_limit,
                         fault=lambda: faults.in_checkpoint(step), extra={"counters": dict(counters)})

    def sampling_models() -> dict[str, nn.Module]:
        """Live modules, with each EMA copy standing in for its module."""
        return {**modules, **{n: e.model for n, e in emas.items()}}

    def write_samples(step: int) -> None:
        if not accelerator.is_main_process:
            return
        cuda = [torch.cuda.current_device()] if accelerator.device.type == "cuda" else []
        diagnose = getattr(stage, "diagnostics", None)
        with torch.random.fork_rng(devices=cuda):  # a grid or a diagnostic never shifts the training draws
            images = stage.sample(sampling_models())
            diag = diagnose(sampling_models()) if diagnose is not None else None
        if images is not None:
            grid = make_grid(images.float().cpu(), nrow=getattr(stage, "grid_nrow", None))
            save_image(grid, run_dir / "samples" / f"step-{step}.png")
            metrics.image("samples", grid, step)
        if diag:
            metrics.log(step, {f"diag/{k}": v for k, v in diag.items()})

    if on_start is not None:  # set-up and resume went through: the run folder may be written from here on
        on_start()
    metrics = MetricsLog(run_dir, accelerator.is_main_process, start)
    bar = tqdm(total=cfg.max_steps, initial=start, disable=not (progress and accelerator.is_main_process),
               desc=run_dir.name, dynamic_ncols=True)
    t0 = time.time()
    logs: dict[str, float] = {}
    done, doing = start, "training"
    final_dir = run_dir / "final"
    try:
        for step in range(start, cfg.max_steps):
            done, doing = step + 1, "training"
            logs = {}
            for ph in phases:
                opt, params = optimizers[ph.name], ph.params()
                for rep in range(ph.repeats):
                    opt.zero_grad(set_to_none=True)
                    for micro in range(cfg.grad_accum):
                        with accelerator.autocast():
                            loss, extra = ph.loss(Tick(step, micro, rep))
                        loss = faults.loss(done, loss)
                        if not torch.isfinite(loss):
                            counters["nonfinite_loss"] += 1
                            warnings.warn("a non-finite loss was skipped (counted as nonfinite_loss in "
                                          "metrics.jsonl); training continues.", stacklevel=2)
                            continue
                        accelerator.backward(loss / cfg.grad_accum)
                        share = cfg.grad_accum * ph.repeats  # logged: the mean over micro-batches and repeats
                        logs[f"{ph.name}/loss"] = logs.get(f"{ph.name}/loss", 0.0) + loss.item() / share
                        for k, v in extra.items():
                            if k == "loss":  # already logged from the returned loss itself
                                continue
                            logs[f"{ph.name}/{k}"] = logs.get(f"{ph.name}/{k}", 0.0) + float(v) / share
                    faults.grads(done, params)
                    _reduce_grads(params, accelerator)
                    counters["nonfinite_grad"] += _sanitize_grads(params)
                    if ph.grad_clip:
                        logs[f"{ph.name}/grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, ph.grad_clip))
                    opt.step()
                    schedulers[ph.name].step()
                logs[f"{ph.name}/lr"] = schedulers[ph.name].get_last_lr()[0]
            for name, ema in emas.items():
                ema.update(modules[name], step)
            faults.after_step(done)
            if done % cfg.log_every == 0 or done == cfg.max_steps:
                doing = "writing metrics.jsonl"
                row = _across_processes(logs, counters) if world > 1 else {**logs, **counters}
                metrics.log(done, {**row, "seconds": time.time() - t0})
            bar.update(1)
            main_loss = next((v for k, v in logs.items() if k.endswith("/loss")), math.nan)
            bar.set_postfix(loss=f"{main_loss:.4f}")
            if cfg.sample_every and done % cfg.sample_every == 0:
                doing = f"writing samples/step-{done}.png"
                write_samples(done)
            if (cfg.checkpoint_every and done % cfg.checkpoint_every == 0) or done == cfg.max_steps:
                doing = f"writing checkpoint-{done}"
                checkpoint(done)
        bar.close()
        if start >= cfg.max_steps:
            logs = {}
        if accelerator.is_main_process:
            doing = "exporting final/"
            tmp = run_dir / ".tmp-final"
            if tmp.exists():
                shutil.rmtree(tmp)
            stage.export(tmp, sampling_models())
            replace_dir(tmp, final_dir)
            if cfg.sample_every and not (run_dir / "samples" / f"step-{cfg.max_steps}.png").exists():
                doing = f"writing samples/step-{cfg.max_steps}.png"
                write_samples(cfg.max_steps)
        accelerator.wait_for_everyone()
    except (SoftdimoError, KeyboardInterrupt):
        raise
    except Exception as e:
        if accelerator.is_main_process:
            shutil.rmtree(run_dir / ".tmp-final", ignore_errors=True)
        raise TrainingFailed(failure_message(e, done, doing, _newest_checkpoint(run_dir))) from e
    finally:
        bar.close()
        metrics.close()
    return TrainResult(run_dir=run_dir, final_dir=final_dir, steps=cfg.max_steps,
                       seconds=time.time() - t0, last_logs=logs)
