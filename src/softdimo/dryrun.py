"""``--dry-run``: plan the memory of a training command without loading a single weight.

Every network of the stage is built on PyTorch's ``meta`` device from the configs alone (the
teacher folder's ``config.json`` files, or the run config for ``train-teacher``): shapes, no data.
The plan then counts, per network, what a run keeps resident on one process:

* weights: every parameter in fp32 (the shared loop keeps fp32 master weights; ``bf16`` and
  ``fp16`` autocast the compute, not the storage);
* gradients (fp32) and Adam's two moments (fp32) for the *trainable* parameters only — the
  frozen teacher, tokenizer, text encoder, and the student's frozen embedding layers have none;
* an EMA copy of the student (``train.ema_decay``);
* activations, estimated by running the gradient-carrying forward passes of the heaviest phase
  on the meta device at the per-process micro-batch (``train.batch_size / train.grad_accum``) in
  the autocast precision and summing the tensors autograd saves for the backward pass (an upper
  estimate: math attention, no activation checkpointing). No-grad passes (teacher with CFG,
  sampling) are transient and not counted.

For ``distill`` the heaviest phase is the student's (its forward with gradients; the auxiliary
phase is the same size and runs after it); for ``refine`` the generator phase adds the frozen
teacher run *with* input gradients on the soft embedding (discriminator heads) and, with reward
terms, the tokenizer decoder (the reward models themselves are not counted). ``softdimo CMD
--dry-run`` prints the table (:meth:`MemoryPlan.table`) and exits.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .distill.gan import TeacherDiscriminator
from .distill.train import resolve_teacher
from .errors import CheckpointError, ConfigError
from .mdm import Condition, MaskedTransformer
from .files import read_json
from .mdm.text import minilm_dir
from .safeload import hf_from_pretrained
from .teachers.amused import AmusedCondition, AmusedNetwork, AmusedVQ, require_diffusers
from .teachers.maskgit_net import MaskGITTransformer
from .teachers.registry import resolve_kind
from .teachers.train import resolve_tokenizer
from .teachers.vqgan import TamingVQGAN
from .tokenizer import VQTokenizer

GIB = 1024 ** 3
META = torch.device("meta")
DRY_RUN_COMMANDS = ("train-teacher", "distill", "refine")


@dataclass
class Component:
    """One network of the plan: its parameter counts and whether it trains / has an EMA copy."""

    name: str
    params: int
    trainable: int = 0
    ema: bool = False

    @property
    def weight_bytes(self) -> int:
        return 4 * self.params * (2 if self.ema else 1)

    @property
    def grad_bytes(self) -> int:
        return 4 * self.trainable

    @property
    def optimizer_bytes(self) -> int:
        return 8 * self.trainable  # Adam's first and second moments, fp32


@dataclass
class MemoryPlan:
    """What a training command keeps resident on one process (module docstring)."""

    command: str
    teacher: str
    micro_batch: int
    precision: str
    components: list[Component] = field(default_factory=list)
    activation_bytes: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return (sum(c.weight_bytes + c.grad_bytes + c.optimizer_bytes for c in self.components)
                + self.activation_bytes)

    def as_dict(self) -> dict[str, Any]:
        return {"command": self.command, "teacher": self.teacher, "micro_batch": self.micro_batch,
                "precision": self.precision, "activations_gib": self.activation_bytes / GIB,
                "total_gib": self.total_bytes / GIB, "notes": self.notes,
                "components": [{"name": c.name, "params": c.params, "trainable": c.trainable, "ema": c.ema,
                                "weights_gib": c.weight_bytes / GIB, "grads_gib": c.grad_bytes / GIB,
                                "adam_gib": c.optimizer_bytes / GIB} for c in self.components]}

    def table(self) -> str:
        """A plain-text table: one row per network, then activations and the total."""
        rows = [f"{self.command} dry run: teacher {self.teacher}; micro-batch {self.micro_batch} per process, "
                f"precision {self.precision}",
                f"{'network':<22}{'params':>14}{'trainable':>14}{'weights GiB':>13}{'grads GiB':>11}{'Adam GiB':>10}"]
        for c in self.components:
            name = c.name + (" (+EMA)" if c.ema else "")
            rows.append(f"{name:<22}{c.params:>14,}{c.trainable:>14,}{c.weight_bytes / GIB:>13.3f}"
                        f"{c.grad_bytes / GIB:>11.3f}{c.optimizer_bytes / GIB:>10.3f}")
        rows.append(f"{'activations (est.)':<22}{'':>14}{'':>14}{self.activation_bytes / GIB:>13.3f}")
        rows.append(f"{'total (est.)':<22}{'':>14}{'':>14}{self.total_bytes / GIB:>13.3f}")
        rows += [f"note: {n}" for n in self.notes]
        return "\n".join(rows)


# ---------------------------------------------------------------------- counting
def count(module: nn.Module, frozen: list[nn.Parameter] | None = None) -> tuple[int, int]:
    """(all parameters, trainable ones): everything but ``frozen`` trains."""
    skip = {id(p) for p in frozen or []}
    params = list(module.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if id(p) not in skip)


def saved_bytes(fn: Callable[[], Any], params: list[nn.Parameter] | None = None) -> int:
    """Bytes of the tensors autograd saves for backward while ``fn()`` runs (weights excluded)."""
    weights = {id(p) for p in params or []}
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        base = t._base if t._base is not None else t
        if id(t) not in weights and id(base) not in weights:
            total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


def autocast_dtype(precision: str) -> torch.dtype:
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)


def on_meta(build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` with every tensor on the meta device (no memory, no initialisation cost)."""
    with torch.device(META):
        return build()


# ---------------------------------------------------------------------- networks on meta
@dataclass
class MetaTeacher:
    """The networks of a teacher, on meta: the MDM (with the protocol's forward), tokenizer, text encoder."""

    kind: str
    mdm: nn.Module
    tokenizer: nn.Module
    text: nn.Module | None
    grid: tuple[int, int]
    num_tokens: int
    make_cond: Callable[[int, torch.dtype], Any]
    decode_soft: Callable[[torch.Tensor], torch.Tensor]


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; the dry run reads the model configs from the folder.")
    return read_json(path, error=CheckpointError)


def meta_native_mdm(mdm_cfg: Any, tok_dir: Path) -> MetaTeacher:
    """A native MDM (config) + its VQ tokenizer folder + MiniLM for text, on meta."""
    mdm = on_meta(lambda: MaskedTransformer(mdm_cfg))
    tok_cfg = VQTokenizer.read_config(tok_dir)
    tok = on_meta(lambda: VQTokenizer(tok_cfg))
    text = None
    if mdm_cfg.cond == "text":
        from transformers import AutoConfig, AutoModel  # heavy: transformers, only to size a text teacher's MiniLM

        text_cfg = hf_from_pretrained(AutoConfig, minilm_dir(), what="the MiniLM config")
        text = on_meta(lambda: AutoModel.from_config(text_cfg))

    def make_cond(b: int, dtype: torch.dtype) -> Any:
        if mdm_cfg.cond == "class":
            return Condition(labels=torch.zeros(b, dtype=torch.long, device=META))
        return Condition(text=torch.zeros(b, mdm_cfg.max_text_len, mdm_cfg.text_dim, dtype=dtype, device=META),
                         text_padding=torch.zeros(b, mdm_cfg.max_text_len, dtype=torch.bool, device=META))

    return MetaTeacher("native", mdm, tok, text, tuple(mdm_cfg.grid), mdm_cfg.num_tokens, make_cond, tok.decode_soft)


def meta_native(path: Path) -> MetaTeacher:
    return meta_native_mdm(MaskedTransformer.read_config(path / "mdm"), path / "tokenizer")


def meta_amused(path: Path) -> MetaTeacher:
    """An aMUSEd folder's transformer, VQ and text encoder, from their config.json files, on meta."""
    require_diffusers()
    from diffusers import UVit2DModel, VQModel  # optional dependency (the amused extra)
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection  # loaded with diffusers only

    t_cfg = _read_json(path / "transformer" / "config.json")
    v_cfg = _read_json(path / "vqvae" / "config.json")
    s_cfg = _read_json(path / "scheduler" / "scheduler_config.json")
    transformer = on_meta(lambda: UVit2DModel.from_config(t_cfg))
    vqvae = on_meta(lambda: VQModel.from_config(v_cfg))
    text_cfg = hf_from_pretrained(CLIPTextConfig, path, subfolder="text_encoder", what="the aMUSEd text encoder config")
    text = on_meta(lambda: CLIPTextModelWithProjection(text_cfg))
    grid = (int(transformer.config.sample_size),) * 2
    net = AmusedNetwork(transformer, grid, int(transformer.config.codebook_size), int(s_cfg["mask_token_id"]))
    vq = AmusedVQ(vqvae, grid)
    seq = int(getattr(text_cfg, "max_position_embeddings", 77))

    def make_cond(b: int, dtype: torch.dtype) -> Any:
        return AmusedCondition(torch.zeros(b, seq, text_cfg.hidden_size, dtype=dtype, device=META),
                               torch.zeros(b, text_cfg.projection_dim, dtype=dtype, device=META),
                               torch.zeros(b, 5, dtype=dtype, device=META))

    return MetaTeacher("amused", net, vq, text, grid, net.num_tokens, make_cond, vq.decode_soft)


def meta_maskgit(path: Path) -> MetaTeacher:
    """A converted MaskGIT folder's transformer and VQGAN, from their config.json files, on meta."""
    t_cfg = MaskGITTransformer.read_config(path / "mdm")
    v_cfg = TamingVQGAN.read_config(path / "tokenizer")
    net = on_meta(lambda: MaskGITTransformer(t_cfg))
    vq = on_meta(lambda: TamingVQGAN(v_cfg))

    def make_cond(b: int, dtype: torch.dtype) -> Any:
        return Condition(labels=torch.zeros(b, dtype=torch.long, device=META))

    return MetaTeacher("maskgit", net, vq, None, net.grid, net.num_tokens, make_cond, vq.decode_soft)


META_TEACHERS: dict[str, Callable[[Path], MetaTeacher]] = {"native": meta_native, "amused": meta_amused,
                                                            "maskgit": meta_maskgit}


def _activations(t: MetaTeacher, net: nn.Module, b: int, dtype: torch.dtype, trains: bool) -> int:
    """Saved bytes of one forward of ``net`` (the protocol's forward from embeddings) at batch ``b`` in
    ``dtype``: a network that ``trains`` (student, auxiliary), or a frozen one carrying input gradients
    (the teacher under the discriminator heads)."""
    net = net.to(dtype).requires_grad_(trains)
    d = int(net.embedding_table().shape[1])  # type: ignore[operator]
    e = torch.zeros(b, t.grid[0] * t.grid[1], d, dtype=dtype, device=META, requires_grad=not trains)
    return saved_bytes(lambda: net(e, t.make_cond(b, dtype)), list(net.parameters()))


# ---------------------------------------------------------------------- plans
def _micro_batch(train: Any) -> int:
    return max(1, train.batch_size // max(1, train.grad_accum))


def plan_teacher_training(cfg: Any) -> MemoryPlan:
    """``train-teacher``: the MDM trains (Adam + EMA); the tokenizer (and MiniLM) are frozen."""
    t = meta_native_mdm(cfg.model, resolve_tokenizer(cfg.tokenizer))
    b, dtype = _micro_batch(cfg.train), autocast_dtype(cfg.train.mixed_precision)
    plan = MemoryPlan("train-teacher", "(being trained)", b, cfg.train.mixed_precision)
    n, _ = count(t.mdm)
    plan.components.append(Component("teacher MDM", n, n, ema=bool(cfg.train.ema_decay)))
    plan.components.append(Component("VQ tokenizer (frozen)", count(t.tokenizer)[0]))
    if t.text is not None:
        plan.components.append(Component("text encoder (frozen)", count(t.text)[0]))
    plan.activation_bytes = _activations(t, t.mdm, b, dtype, trains=True)
    return plan


def plan_distillation(command: str, cfg: Any) -> MemoryPlan:
    """``distill`` / ``refine`` (module docstring)."""
    path = resolve_teacher(cfg.teacher, cfg.teacher_kind)
    kind = resolve_kind(cfg.teacher_kind, path)
    if kind not in META_TEACHERS:
        raise ConfigError(f"--dry-run has no memory plan for teacher_kind={kind} yet; it plans "
                          f"{', '.join(META_TEACHERS)} teachers.")
    t = META_TEACHERS[kind](path)
    b, dtype = _micro_batch(cfg.train), autocast_dtype(cfg.train.mixed_precision)
    plan = MemoryPlan(command, f"{kind} {path}", b, cfg.train.mixed_precision)
    frozen = list(t.mdm.embedding_parameters()) if cfg.dimo.freeze_embeddings else []  # type: ignore[operator]
    n, trainable = count(t.mdm, frozen)
    plan.components += [Component("teacher (frozen)", n),
                        Component("student", n, trainable, ema=bool(cfg.train.ema_decay)),
                        Component("auxiliary", n, trainable), Component("VQ tokenizer (frozen)", count(t.tokenizer)[0])]
    if t.text is not None:
        plan.components.append(Component("text encoder (frozen)", count(t.text)[0]))
    acts = _activations(t, t.mdm, b, dtype, trains=True)
    if command == "refine":
        if cfg.gan.w_gan > 0:
            disc = on_meta(lambda: TeacherDiscriminator(t.mdm, cfg.gan))
            heads = count(disc)[0]
            plan.components.append(Component("discriminator heads", heads, heads))
            acts += _activations(t, t.mdm, b, dtype, trains=False)
        reward = getattr(cfg, "reward", None)
        if reward is not None and getattr(reward, "w_reward", 0) > 0:
            p = torch.zeros(b, t.grid[0] * t.grid[1], t.num_tokens, device=META, dtype=dtype, requires_grad=True)
            dec_params = list(t.tokenizer.parameters())
            t.tokenizer.to(dtype)
            acts += saved_bytes(lambda: t.decode_soft(torch.softmax(p, -1)), dec_params)
            plan.notes.append("reward models are not counted; add their weights (and their activations) to the total")
    plan.activation_bytes = acts
    return plan


def plan_for(command: str, cfg: Any) -> MemoryPlan:
    """The memory plan of a training command's resolved config."""
    if command not in DRY_RUN_COMMANDS:
        raise ConfigError(f"--dry-run plans {', '.join(DRY_RUN_COMMANDS)}; `{command}` has no plan.")
    plan = plan_teacher_training(cfg) if command == "train-teacher" else plan_distillation(command, cfg)
    plan.notes.append("one process; with N data-parallel processes each holds this (micro-batch per process). "
                      "Activations: autograd's saved tensors of the heaviest phase, math attention, no checkpointing")
    return plan


__all__ = ["Component", "MemoryPlan", "plan_for", "plan_distillation", "plan_teacher_training", "saved_bytes",
           "count", "DRY_RUN_COMMANDS"]
