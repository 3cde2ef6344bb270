"""`softdimo train-teacher`: the MDM teacher φ as a stage of the shared training loop (docs/method.md §3.4, §3.6).

One phase: Adam on the masked-token loss of :meth:`~softdimo.mdm.MaskedTransformer.training_loss`
(per sample r ~ the mask schedule, exactly max(1, round(r·L)) masked positions, condition dropped
with probability ``model.cond_drop_prob`` for classifier-free guidance, label-smoothed CE on the
masked positions).

Data: the train split is tokenized **once**, at setup, by the frozen tokenizer (batched, no
grad) into an id tensor [N, L] kept in memory; each step then reads ``ctx.batch_indices`` rows
plus their labels (class teacher) or prompts (text teacher; MiniLM features cached per prompt).
For the built-in datasets (mnist, fashion, world) the ids are also cached on disk under
``$SOFTDIMO_CACHE/tokens`` (default ``~/.cache/softdimo/tokens``), keyed by a hash of the
tokenizer's weights and config plus the dataset's identity and size, so later runs skip the
encoding (:mod:`softdimo.tokenizer.cache`); ``token_cache: false`` turns this off. Image folders are
never cached (their files may change under the same path).

Sample grids use the configured MaskGIT sampler (16 steps, CFG 2 by default) with a fixed seed:
labels 0..9 twice (class teacher) or two samples each of the first 8 held-out prompts, tags
interleaved (text teacher; every GenEval tag appears). The export is a
:class:`~softdimo.teachers.NativeTeacher` folder (MDM weights = the EMA when ``train.ema_decay``
is set; floating weights in ``train.export_dtype``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..config import DataConfig, TrainConfig, check_ranges, knob, to_dict, torch_dtype
from ..data import build_dataset, heldout_prompts_interleaved
from ..errors import ConfigError
from ..mdm import MaskedTransformer, MaskGITSampler, MaskSchedule, MDMConfig, TextEncoder
from ..mdm.transformer import LossPositions
from ..paths import find_folder, project_root
from ..tokenizer import VQTokenizer
from ..tokenizer.cache import cached_token_ids, token_cache_dir, tokenize_dataset
from ..train import Context, Phase, Tick
from .native import NativeTeacher, check_compatible, default_sampler
SAMPLE_PROMPTS = 8  # held-out prompts in a text teacher's sample grid (two samples each)


@dataclass
class TeacherRunConfig:
    """Config of `softdimo train-teacher` (see configs/mnist/teacher.yaml, configs/world/teacher.yaml)."""

    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_steps=5000, batch_size=128, lr=5e-4, warmup_steps=500, grad_clip=1.0, ema_decay=0.999,
        checkpoint_every=1000, sample_every=1000, log_every=50))
    data: DataConfig = field(default_factory=DataConfig)
    model: MDMConfig = field(default_factory=MDMConfig)  # defaults = the "small" preset (K 512, 7×7)
    tokenizer: str = "checkpoints/tokenizer-mnist"  # tokenizer folder; relative: cwd, else the project root
    schedule: MaskSchedule = field(default_factory=MaskSchedule)  # training mask-ratio schedule (arccos)
    label_smoothing: float = knob(0.1, ge=0, lt=1)  # label smoothing of the masked CE (docs/method.md §3.6)
    loss_positions: LossPositions = "masked"  # CE on masked positions only, or on "all" (released MaskGit)
    init_from: str = ""  # a teacher folder whose MDM weights start this run (fine-tuning); "" = random init
    sampler: MaskGITSampler = field(default_factory=default_sampler)  # sample grids; the export's default
    max_train_images: int = knob(0, ge=0)  # train on the first N images of the split only (0 = all)
    token_cache: bool = True  # cache the tokenized train split on disk (built-in datasets only)
    tokenize_batch_size: int = knob(500, ge=1)  # images per tokenizer call at setup

    def __post_init__(self) -> None:
        check_ranges(self)


def resolve_tokenizer(value: str) -> Path:
    """A tokenizer folder: absolute, relative to the cwd, or relative to the project root."""
    found = find_folder(value, "config.json")
    if found is not None:
        return found
    p = Path(value).expanduser()
    looked = str(p) if p.is_absolute() else f"{p} or {project_root() / p}"
    raise ConfigError(f"tokenizer folder {value!r} not found (looked for config.json in {looked}). Train "
                      f"one with `softdimo train-tokenizer --config configs/<data>/tokenizer.yaml` and set "
                      f"tokenizer=<run dir>/final, or wait for the shipped checkpoints/tokenizer-*.")


class TeacherStage:
    """Trains a class- or text-conditional :class:`MaskedTransformer` on frozen-tokenizer ids."""

    def __init__(self, cfg: TeacherRunConfig):
        self.cfg = cfg

    # ------------------------------------------------------------------ setup
    def setup(self, ctx: Context) -> None:
        self.ctx = ctx
        cfg, m = self.cfg, self.cfg.model
        if m.cond not in ("class", "text"):
            raise ConfigError(f"train-teacher trains class- or text-conditional teachers; got "
                              f"model.cond={m.cond!r}.")
        self.tokenizer_dir = resolve_tokenizer(cfg.tokenizer)
        tok = VQTokenizer.from_pretrained(self.tokenizer_dir).to(ctx.device)
        self.tokenizer = tok.eval().requires_grad_(False)
        self.model = MaskedTransformer(m).to(ctx.device)
        if cfg.init_from:
            self._load_init(cfg.init_from)
        check_compatible(self.model, tok, where=f"tokenizer={self.tokenizer_dir}")
        data = build_dataset(cfg.data, "train")
        tc = tok.config
        if (data.channels, data.image_size) != (tc.in_channels, tc.image_size):
            raise ConfigError(f"dataset '{data.name}' has {data.channels}-channel {data.image_size}px images "
                              f"but the tokenizer {self.tokenizer_dir} reads {tc.in_channels}-channel "
                              f"{tc.image_size}px images. Use the tokenizer trained on this data.")
        if m.cond == "class" and (data.labels is None or data.num_classes != m.num_classes):
            raise ConfigError(f"a class teacher needs labels in {m.num_classes} classes (model.num_classes), "
                              f"but dataset '{data.name}' has {data.num_classes or 'no'} classes. Set "
                              f"model.num_classes={data.num_classes} or use model.cond=text with the world data.")
        if m.cond == "text" and not data.prompt(0):
            raise ConfigError(f"a text teacher needs prompts, but dataset '{data.name}' has none; use "
                              f"data.dataset=world (or model.cond=class).")
        n = len(data) if cfg.max_train_images == 0 else min(cfg.max_train_images, len(data))
        self.ids = self._token_ids(data, n)
        # steps read prompts only: a fresh (lazy) dataset does not keep the rendered images in memory
        self.data = build_dataset(cfg.data, "train") if m.cond == "text" else data
        self.labels = data.labels[:n].clone() if m.cond == "class" else None  # type: ignore[index]
        self.text_encoder = (TextEncoder(max_length=m.max_text_len, cache_size=16384, device=ctx.device)
                             if m.cond == "text" else None)
        self._fixed_condition()

    def _load_init(self, value: str) -> None:
        """Start from the MDM of teacher folder ``value`` (same architecture as ``model``)."""
        found = find_folder(value, "teacher.json")
        if found is None:
            raise ConfigError(f"init_from={value!r}: no teacher folder (teacher.json) there, nor under the "
                              f"project root. Give a teacher folder such as checkpoints/teacher-mnist.")
        init = NativeTeacher.from_pretrained(found).mdm
        ours, theirs = to_dict(self.cfg.model), to_dict(init.config)
        diff = sorted(k for k in ours if ours[k] != theirs.get(k))
        if diff:
            raise ConfigError(f"init_from={value!r} has a different architecture: "
                              + ", ".join(f"model.{k}={theirs.get(k)!r} there, {ours[k]!r} here" for k in diff)
                              + ". Copy its model section into this config.")
        self.model.load_state_dict(init.state_dict())

    def _token_ids(self, data, n: int) -> torch.Tensor:
        cfg = self.cfg
        return cached_token_ids(self.tokenizer, self.tokenizer_dir, cfg.data, data, n, cfg.token_cache,
                                cfg.tokenize_batch_size, self.ctx.device, self.ctx.accelerator.is_main_process)

    def _fixed_condition(self) -> None:
        """The labels or prompts of the sample grid (fixed for the whole run)."""
        if self.cfg.model.cond == "class":
            k = self.cfg.model.num_classes
            self.sample_labels = list(range(k)) * 2
            self.sample_prompts = None
            self.grid_nrow = k
        else:
            prompts = [m["prompt"] for m in heldout_prompts_interleaved()[:SAMPLE_PROMPTS]]  # all six tags
            self.sample_labels = None
            self.sample_prompts = prompts * 2
            self.grid_nrow = SAMPLE_PROMPTS

    # ------------------------------------------------------------------ loss
    def loss(self, tick: Tick) -> tuple[torch.Tensor, dict[str, float]]:
        idx = self.ctx.batch_indices(tick, len(self.ids))
        dev = self.ctx.device
        ids = self.ids[idx].to(dev).long()
        if self.labels is not None:
            cond = self.model.encode_condition(labels=self.labels[idx].to(dev))
        else:
            feats, pad, _ = self.text_encoder.encode([self.data.prompt(i) for i in idx])  # type: ignore[union-attr]
            cond = self.model.encode_condition(text_features=feats, key_padding_mask=pad)
        loss, logs = self.model.training_loss(ids, cond, schedule=self.cfg.schedule,
                                              label_smoothing=self.cfg.label_smoothing, generator=self.ctx.generator,
                                              loss_positions=self.cfg.loss_positions)
        logs.pop("loss", None)  # the loop logs the returned loss itself (a second "loss" would be summed in)
        return loss, logs

    # ------------------------------------------------------------------ loop protocol
    def modules(self) -> dict[str, nn.Module]:
        return {"mdm": self.model}

    def phases(self) -> list[Phase]:
        return [Phase.from_train("mdm", self.model, self.loss, self.cfg.train)]

    def ema_modules(self) -> list[str]:
        return ["mdm"]

    def teacher(self, mdm: MaskedTransformer) -> NativeTeacher:
        """``mdm`` bundled with this run's tokenizer (and text encoder) as a NativeTeacher."""
        t = NativeTeacher(mdm, self.tokenizer, self.cfg.sampler)
        t.train(mdm.training)
        t._text_encoder = self.text_encoder
        return t

    @torch.no_grad()
    def sample(self, models: dict[str, nn.Module]) -> torch.Tensor:
        teacher = self.teacher(models["mdm"])  # type: ignore[arg-type]
        g = torch.Generator().manual_seed(0)
        return teacher.sample(labels=self.sample_labels, prompts=self.sample_prompts, generator=g).cpu()

    def export(self, path: Path, models: dict[str, nn.Module]) -> None:
        self.teacher(models["mdm"]).save_pretrained(  # type: ignore[arg-type]
            path, dtype=torch_dtype(self.cfg.train.export_dtype))


def build(cfg: TeacherRunConfig) -> TeacherStage:
    return TeacherStage(cfg)


__all__ = ["TeacherRunConfig", "TeacherStage", "build", "resolve_tokenizer", "tokenize_dataset", "token_cache_dir",
           "cached_token_ids"]
