"""`softdimo distill`: Di[M]O one-step distillation as a stage of the shared training loop (docs/method.md §3).

Models (§3.1): the teacher φ is loaded from a teacher folder and frozen; the student θ and the
auxiliary ψ are deep copies of φ's MDM, with their embedding layers (token table, positional
embeddings, tied head bias) frozen unless ``dimo.freeze_embeddings=false``. ``teacher_kind``
picks the adapter (:mod:`softdimo.teachers.registry`: softdimo's own teacher folder, or a local
aMUSEd folder); the stage only talks to the Teacher protocol and the teacher's distillation hooks
(``trainable_copy``, ``make_student``), so every kind distils, refines and exports the same way.

Two phases per step, each on its own fresh batch of conditions (labels or prompts only; **no
image is read**, §3.1 "data-free"):

* **generator** (Adam, warm-up, grad clip, EMA): x_init (§3.2) → z = θ(√(1−σ²)·e + σ·ε, c) →
  x ~ Cat(softmax(z)) without gradient → exact-count re-masking with the teacher's schedule (§3.4)
  → teacher logits with CFG (scale ``teacher_cfg``, null condition) and ψ's conditional logits,
  both without gradient → Jeffreys gradient g(β) at the masked positions (§3.5) → surrogate
  loss 0.5·‖z − sg(z − g)‖² / B. Samples whose teacher or ψ outputs are not finite are dropped
  (counted as ``dropped_samples``); the loop zeroes non-finite parameter gradients.
* **auxiliary** (``aux_updates`` rounds per step, no clipping by default, §3.6): a fresh batch,
  a no-grad student draw x, an independent re-masking, and the label-smoothed CE of ψ(x_t, c)
  against x on the masked positions (no CFG dropout).

Logged every ``train.log_every`` steps: ``generator/loss``, ``generator/g_abs`` (mean |g| over
masked positions and vocabulary), ``generator/fkl`` (KL(p_φ‖p_ψ) per masked position),
``generator/entropy`` and ``generator/p_max`` (of the student's softmax(z)), ``generator/sigma``,
``generator/dropped_samples``, ``aux/loss``, ``aux/acc``. Sample grids use the EMA student with
fixed seeds. The export is a :class:`~softdimo.distill.OneStepStudent` folder whose default
sampler carries the training r_init and σ and ``sample_temperature``.

Documented choices where the sources are silent: ``r_init_range`` draws r per *sample* (the code
draws per step); the σ warm-up ramps from 0 to ``sigma`` (linear or cosine); the student and ψ run
in train mode (dropout active, as in the released code) and the teacher in eval mode
(``teacher_dropout=true`` reproduces the MaskGit code's artefact).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from ..config import DataConfig, TrainConfig, check_ranges, knob, torch_dtype
from ..data import build_dataset, heldout_prompts_interleaved, read_prompts_file
from ..errors import ConfigError
from ..mdm.masking import MaskSchedule, exact_count_mask, masked_ce_loss
from ..mdm.onestep import OneStepSampler
from ..mdm.sampler import MaskGITSampler
from ..paths import find_folder
from ..teachers.bundle import read_manifest
from ..soft import token_entropy, token_pmax
from ..teachers.registry import TeacherKind, lists_missing_parts, load_teacher, resolve_kind, teacher_markers
from ..teachers.student import OneStepStudent
from ..train import Context, Phase, Tick
from .dimo import (SigmaScale, Weighting, embedding_rms, finite_rows, hybrid_init, jeffreys_gradient, noise_embeddings, sample_tokens,
                   sample_weights, surrogate_loss)
from .diagnostics import DiagnosticsConfig, collapse_diagnostics, repeat_inputs

SAMPLE_PROMPTS = 8  # held-out prompts in a text student's sample grid (two samples each)
AUX_DIR = "aux"  # ψ's weights inside an exported student folder


@dataclass
class DiMOConfig:
    """The knobs of docs/method.md §3 (defaults: the released MaskGit configuration, §9)."""

    r_init: float = knob(0.6, ge=0, le=1)  # fraction of mask tokens in x_init (§3.2)
    r_init_range: tuple[float, float] | None = knob(None, ge=0, le=1)  # draw r ~ U(a, b) per sample instead of r_init
    sigma: float = knob(0.1, ge=0, le=1)  # variance-preserving embedding noise σ of the student's input (§3.2)
    sigma_scale: SigmaScale = "absolute"  # σ·ε in absolute units (code), or × the embeddings' rms ("embedding")
    sigma_warmup_steps: int = knob(0, ge=0)  # ramp σ from 0 to ``sigma`` over this many steps (0 = fixed σ)
    sigma_warmup: Literal["linear", "cos"] = "linear"  # shape of the σ ramp
    remask: MaskSchedule = field(default_factory=MaskSchedule)  # re-masking schedule (§3.4): the teacher's
    beta: float = knob(0.0)  # generalised Jeffreys β: 0 = forward KL (code), 1 = reverse KL; paper's best −0.2
    teacher_cfg: float = knob(2.0, ge=0)  # CFG scale w of the teacher's logits (MaskGit: 2.0; Meissonic: 4.0)
    length_norm: bool = False  # the paper's 1/L_M averaging over masked positions (code: off)
    weighting: Weighting = "none"  # "dmd": the paper's w = 1/|p_ψ − p_φ| normaliser (code: off)
    train_temperature: float = knob(1.0, gt=0)  # τ of the student's token draw during training (§3.3)
    aux_label_smoothing: float = knob(0.1, ge=0, lt=1)  # label smoothing of ψ's CE (§3.6)
    aux_updates: int = knob(1, ge=1)  # ψ updates per generator step (§3.6: 1; TTUR did not help)
    aux_lr: float | None = knob(None, gt=0)  # ψ's learning rate (None = train.lr)
    aux_grad_clip: float | None = knob(None, gt=0)  # ψ's gradient clipping (code: none)
    freeze_embeddings: bool = True  # freeze token table, positions, tied head bias in θ and ψ (§3.1)
    freeze_head: bool = False  # also freeze the output head in θ and ψ (the released code: tied to the frozen table)
    freeze_condition: bool = False  # also freeze the class table / text projection (released: in the frozen table)
    dropout: bool = True  # θ and ψ in train mode (dropout on) during distillation, as in the code
    teacher_dropout: bool = False  # the MaskGit code's artefact: teacher left in train mode

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.r_init_range is not None:
            a, b = self.r_init_range
            if not a <= b:
                raise ValueError(f"r_init_range must satisfy 0 ≤ a ≤ b ≤ 1, got {self.r_init_range}")

    def sigma_at(self, step: int) -> float:
        """σ at optimiser step ``step`` (the warm-up ramp, then constant)."""
        if self.sigma_warmup_steps == 0 or step >= self.sigma_warmup_steps:
            return self.sigma
        frac = step / self.sigma_warmup_steps
        if self.sigma_warmup == "cos":
            frac = 0.5 * (1.0 - math.cos(math.pi * frac))
        return self.sigma * frac

    def inference_r_init(self) -> float:
        """r_init of the exported sampler: the fixed value, or the middle of the range."""
        return self.r_init if self.r_init_range is None else 0.5 * sum(self.r_init_range)


@dataclass
class DistillRunConfig:
    """Config of `softdimo distill` (see configs/mnist/dimo.yaml, configs/world/dimo.yaml)."""

    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_steps=2000, batch_size=64, lr=1e-5, warmup_steps=100, grad_clip=1.0, ema_decay=0.9999,
        checkpoint_every=500, sample_every=500, log_every=10))
    teacher: str = "checkpoints/teacher-mnist"  # teacher folder; relative: cwd, else the project root
    teacher_kind: TeacherKind = "auto"  # native, maskgit (teacher.json), amused or meissonic (local folders); auto = detect
    meissonic_code: str = ""  # teacher_kind=meissonic: the checkout of Meissonic's code (holds src/transformer.py)
    dimo: DiMOConfig = field(default_factory=DiMOConfig)
    prompts_file: str = ""  # text teachers: .txt (one prompt a line) or .jsonl with "prompt"; "" = world captions
    prompt_data: DataConfig = field(default_factory=lambda: DataConfig(dataset="world"))  # caption source
    sample_temperature: float = knob(1.0, ge=0)  # default τ of the exported student's sampler (§3.9)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)  # collapse measurements (§3.8)

    def __post_init__(self) -> None:
        check_ranges(self)


def resolve_teacher(value: str, kind: str = "native") -> Path:
    """A teacher folder: absolute, relative to the cwd, or to the project root.

    Native teachers hold ``teacher.json``; with ``kind`` auto or amused an aMUSEd folder
    (``model_index.json`` or ``transformer/config.json``) is accepted too. An amused path that
    is not found is returned as given: the adapter then lists what is missing.
    """
    student = find_folder(value, "student.json")
    if student is not None and find_folder(value, "teacher.json") != student:
        origin = (read_manifest(student, "student.json") or {}).get("distillation", {}).get("teacher")
        hint = f" (this one was distilled from {origin!r})" if origin else ""
        raise ConfigError(f"teacher={value!r} is a one-step student folder (student.json), not a teacher. "
                          f"Pass the teacher it was distilled from{hint}; to continue training a student "
                          f"use `softdimo refine` with student={value!r}.")
    if kind != "native":
        for marker in teacher_markers():
            found = find_folder(value, marker)
            if found is not None:
                return found
        if lists_missing_parts(kind):  # the adapter lists what is missing
            return Path(value).expanduser()
    found = find_folder(value, "teacher.json")
    if found is None and kind == "maskgit":
        raise ConfigError(f"teacher folder {value!r} not found (no teacher.json there, nor under the project root). "
                          f"Convert the published MaskGIT-pytorch weights first: softdimo convert --kind maskgit "
                          f"SRC DST --allow-pickle, then set teacher=DST.")
    if found is None:
        raise ConfigError(f"teacher folder {value!r} not found (no teacher.json there, nor under the project "
                          f"root). Train one with `softdimo train-teacher --config configs/mnist/teacher.yaml` "
                          f"and set teacher=<run dir>/final, or use a shipped checkpoints/teacher-*.")
    return found


def freeze_embeddings(mdm: nn.Module, head: bool = False, condition: bool = False) -> None:
    """Freeze the embedding layers of θ or ψ (§3.1), and optionally the output head and the conditioning."""
    groups = [("embedding_parameters", True), ("head_parameters", head), ("condition_parameters", condition)]
    for name, on in groups:
        if not on:
            continue
        get = getattr(mdm, name, None)
        if get is None:
            raise ConfigError(f"this teacher's network cannot freeze its {name.split('_')[0]} "
                              f"({type(mdm).__name__} has no {name}()); leave that dimo.freeze_* knob off.")
        for p in get():
            p.requires_grad_(False)


class DistillStage:
    """Di[M]O: trains the student θ (and the auxiliary ψ) against the frozen teacher φ."""

    def __init__(self, cfg: DistillRunConfig):
        self.cfg = cfg

    # ------------------------------------------------------------------ setup
    def setup(self, ctx: Context) -> None:
        self.ctx = ctx
        cfg, d = self.cfg, self.cfg.dimo
        self.teacher_dir = resolve_teacher(cfg.teacher, cfg.teacher_kind)
        self.teacher_kind = resolve_kind(cfg.teacher_kind, self.teacher_dir)
        teacher = load_teacher(self.teacher_kind, self.teacher_dir, device=ctx.device,
                               meissonic_code=cfg.meissonic_code or None)
        self.teacher = teacher.requires_grad_(False).train(d.teacher_dropout)
        self.student = teacher.trainable_copy().requires_grad_(True)
        self.aux = teacher.trainable_copy().requires_grad_(True)
        if d.freeze_embeddings:
            freeze_embeddings(self.student, d.freeze_head, d.freeze_condition)
            freeze_embeddings(self.aux, d.freeze_head, d.freeze_condition)
        self.student.train(d.dropout)
        self.aux.train(d.dropout)
        self.length = teacher.grid[0] * teacher.grid[1]
        self.prompts: list[str] | None = None
        self.prompt_source = None
        if teacher.cond_kind == "text":
            if cfg.prompts_file:
                self.prompts, _ = read_prompts_file(cfg.prompts_file)
            else:  # captions only: WorldDataset.prompt renders nothing
                if cfg.prompt_data.dataset != "world":
                    raise ConfigError("prompt_data must be the world dataset (its captions), or set prompts_file.")
                self.prompt_source = build_dataset(cfg.prompt_data, "train")
        self._fixed_condition()

    def _fixed_condition(self) -> None:
        if self.teacher.cond_kind == "class":
            k = self.teacher.num_classes
            self.sample_labels, self.sample_prompts, self.grid_nrow = list(range(k)) * 2, None, k
        else:
            prompts = [m["prompt"] for m in heldout_prompts_interleaved()[:SAMPLE_PROMPTS]]
            self.sample_labels, self.sample_prompts, self.grid_nrow = None, prompts * 2, SAMPLE_PROMPTS

    # ------------------------------------------------------------------ draws
    def draw_inputs(self, batch: int) -> dict:
        """``{"labels": …}`` ~ U{0..K−1} or ``{"prompts": […]}`` (data-free: no image is read)."""
        g = self.ctx.generator
        if self.teacher.cond_kind == "class":
            labels = torch.randint(0, self.teacher.num_classes, (batch,), generator=g)
            return {"labels": labels.to(self.ctx.device)}
        n = len(self.prompts) if self.prompts is not None else len(self.prompt_source)  # type: ignore[arg-type]
        idx = torch.randint(0, n, (batch,), generator=g).tolist()
        prompts = ([self.prompts[i] for i in idx] if self.prompts is not None
                   else [self.prompt_source.prompt(i) for i in idx])  # type: ignore[union-attr]
        return {"prompts": prompts}

    def draw_condition(self, batch: int):
        """The encoded condition of :meth:`draw_inputs`."""
        return self.teacher.encode_condition(**self.draw_inputs(batch))

    def student_logits(self, batch: int, step: int, cond) -> torch.Tensor:
        """z = θ(noised embed(x_init), c), [B, L, K]."""
        d, t, g = self.cfg.dimo, self.teacher, self.ctx.generator
        r = d.r_init
        if d.r_init_range is not None:
            a, b = d.r_init_range
            r = a + (b - a) * torch.rand(batch, generator=g)
        ids = hybrid_init(batch, self.length, t.num_tokens, t.mask_id, r, generator=g, device=self.ctx.device)
        sigma = d.sigma_at(step)
        scale = embedding_rms(self.student) if d.sigma_scale == "embedding" and sigma > 0 else 1.0
        e = noise_embeddings(self.student.embed(ids), sigma, generator=g, scale=scale)
        return self.student(e, cond)[..., : t.num_tokens]

    def remask(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x̃_t and its mask: exactly max(1, round(r·L)) positions, r from the re-mask schedule (§3.4)."""
        g, b = self.ctx.generator, x.shape[0]
        r = self.cfg.dimo.remask.sample(b, generator=g)
        mask = exact_count_mask(b, self.length, r, generator=g).to(x.device)
        return torch.where(mask, torch.full_like(x, self.teacher.mask_id), x), mask

    # ------------------------------------------------------------------ losses
    def generator_loss(self, tick: Tick) -> tuple[torch.Tensor, dict[str, float]]:
        b = self.ctx.micro_batch_size
        cond = self.draw_condition(b)
        z = self.student_logits(b, tick.step, cond)
        g, logs = self.dimo_gradient(z, cond, tick)
        return surrogate_loss(z, g), logs

    @torch.no_grad()
    def dimo_gradient(self, z: torch.Tensor, cond, tick: Tick) -> tuple[torch.Tensor, dict[str, float]]:
        """The per-token Jeffreys gradient g [B, L, K] on the student's logits ``z`` (zero off the mask)."""
        d, b = self.cfg.dimo, z.shape[0]
        x = sample_tokens(z, d.train_temperature, self.ctx.generator)
        x_t, mask = self.remask(x)
        k = self.teacher.num_tokens
        z_t = MaskGITSampler.guided_logits(self.teacher, x_t, cond, self.teacher.null_condition(b),
                                           d.teacher_cfg)[..., :k].float()
        z_a = self.aux(self.aux.embed(x_t), cond)[..., :k].float()
        ok = finite_rows(z_t, z_a)
        z_t, z_a = torch.nan_to_num(z_t), torch.nan_to_num(z_a)
        g = jeffreys_gradient(z_t, z_a, d.beta) * mask[..., None]
        w = sample_weights(z_t, z_a, mask, d.length_norm, d.weighting) * ok
        g = torch.nan_to_num(g * w[:, None, None])
        logs = self._generator_logs(z, z_t, z_a, g, mask, ok)
        logs["sigma"] = d.sigma_at(tick.step)
        return g, logs

    @staticmethod
    def _generator_logs(z, z_t, z_a, g, mask, ok) -> dict[str, float]:
        m = mask & ok[:, None]
        n = m.sum().clamp(min=1)
        log_t, log_a = torch.log_softmax(z_t, -1), torch.log_softmax(z_a, -1)
        fkl = (log_t.exp() * (log_t - log_a)).sum(-1)
        return {"g_abs": float(g.abs().sum() / (n * g.shape[-1])), "fkl": float((fkl * m).sum() / n),
                "entropy": token_entropy(z.detach()), "p_max": token_pmax(z.detach()),
                "mask_ratio": float(mask.float().mean()), "dropped_samples": float((~ok).sum())}

    def aux_loss(self, tick: Tick) -> tuple[torch.Tensor, dict[str, float]]:
        d, b = self.cfg.dimo, self.ctx.micro_batch_size
        cond = self.draw_condition(b)
        with torch.no_grad():
            z = self.student_logits(b, tick.step, cond)
            ok = finite_rows(z)
            x = sample_tokens(torch.nan_to_num(z), d.train_temperature, self.ctx.generator)
            x_t, mask = self.remask(x)
            mask = mask & ok[:, None]
        z_a = self.aux(self.aux.embed(x_t), cond)[..., : self.teacher.num_tokens]
        loss = masked_ce_loss(z_a, x, mask, d.aux_label_smoothing)
        with torch.no_grad():
            acc = (z_a.argmax(-1) == x)[mask].float().mean() if bool(mask.any()) else torch.tensor(0.0)
        return loss, {"acc": float(acc), "dropped_samples": float((~ok).sum())}

    # ------------------------------------------------------------------ loop protocol
    def modules(self) -> dict[str, nn.Module]:
        return {"student": self.student, "aux": self.aux}

    def phases(self) -> list[Phase]:
        t, d = self.cfg.train, self.cfg.dimo
        return [Phase.from_train("generator", self.student, self.generator_loss, t),
                Phase.from_train("aux", self.aux, self.aux_loss, t, lr=d.aux_lr if d.aux_lr is not None else t.lr,
                                 grad_clip=d.aux_grad_clip, repeats=d.aux_updates)]

    def ema_modules(self) -> list[str]:
        return ["student"]

    def student_bundle(self, mdm: nn.Module) -> OneStepStudent:
        """``mdm`` with the teacher's frozen parts and the training r_init/σ as a student (the teacher
        builds it: a :class:`OneStepStudent` for a native teacher, an ``AmusedStudent`` for aMUSEd)."""
        d = self.cfg.dimo
        sampler = OneStepSampler(r_init=d.inference_r_init(), sigma=d.sigma, temperature=self.cfg.sample_temperature,
                                 sigma_scale=d.sigma_scale)
        info = {"teacher": str(self.cfg.teacher), "beta": d.beta, "teacher_cfg": d.teacher_cfg,
                "steps": self.cfg.train.max_steps, "dimo": _plain(asdict(d))}
        return self.teacher.make_student(mdm, sampler, info)

    @torch.no_grad()
    def sample(self, models: dict[str, nn.Module]) -> torch.Tensor:
        s = self.student_bundle(models["student"])
        g = torch.Generator().manual_seed(0)
        return s.sample(labels=self.sample_labels, prompts=self.sample_prompts, generator=g).cpu()

    def diagnostic_conditions(self) -> list[dict]:
        """One ``{"labels": [y]}`` or ``{"prompts": [p]}`` per condition of the collapse diagnostics."""
        n = self.cfg.diagnostics.conditions
        if self.teacher.cond_kind == "class":
            return [{"labels": [y]} for y in range(min(n, self.teacher.num_classes))]
        return [{"prompts": [m["prompt"]]} for m in heldout_prompts_interleaved()[:n]]

    @torch.no_grad()
    def diagnostics(self, models: dict[str, nn.Module]) -> dict[str, float] | None:
        """Collapse diagnostics (:mod:`softdimo.distill.diagnostics`) of the EMA student and the live ψ."""
        dc = self.cfg.diagnostics
        if not dc.enabled:
            return None
        conditions = self.diagnostic_conditions()
        if dc.reference_steps and not hasattr(self, "_reference"):  # the teacher's samples, drawn once
            g = torch.Generator().manual_seed(1)
            sampler = self.teacher.sampler_with(steps=dc.reference_steps)
            was = self.teacher.training
            self.teacher.eval()
            self._reference = [self.teacher.sample(**repeat_inputs(c, dc.per_condition), sampler=sampler,
                                                   generator=g).cpu() for c in conditions]
            self.teacher.train(was)
        g = torch.Generator().manual_seed(0)
        return collapse_diagnostics(self.student_bundle(models["student"]), self.teacher, conditions,
                                    dc.per_condition, aux=models.get("aux"),
                                    reference=getattr(self, "_reference", None),
                                    remask_ratio=dc.remask_ratio, temperature=self.cfg.dimo.train_temperature,
                                    generator=g)

    def export(self, path: Path, models: dict[str, nn.Module]) -> None:
        """The student folder, plus ψ in ``aux/`` (so that `softdimo refine` continues it, not restarts it)."""
        dtype = torch_dtype(self.cfg.train.export_dtype)
        self.student_bundle(models["student"]).save_pretrained(path, dtype=dtype)
        models["aux"].save_pretrained(path / AUX_DIR, dtype=dtype)  # type: ignore[operator]


def _plain(x):
    """Tuples → lists (JSON-friendly) recursively."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def build(cfg: DistillRunConfig) -> DistillStage:
    return DistillStage(cfg)


__all__ = ["DiMOConfig", "DistillRunConfig", "DistillStage", "build", "resolve_teacher"]
