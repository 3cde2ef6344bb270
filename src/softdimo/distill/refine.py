"""`softdimo refine`: Soft-Di[M]O refinement of a Di[M]O student: GAN and/or rewards (docs/method.md §4–§6).

Starts from a one-step student folder (``softdimo distill``'s ``final/``; its ``aux/`` holds ψ,
which continues here, else ψ restarts from the teacher's weights) and keeps training it
with the generator objective ``L = dimo_weight·L_DiMO + w_GAN·L_GAN + w_reward·L_reward`` (§5, §6):

* ``L_DiMO``: the Di[M]O surrogate of :class:`~softdimo.distill.train.DistillStage` (hard sampled
  tokens, teacher with CFG, auxiliary ψ), computed on the same student logits z;
* ``L_GAN = mean softplus(−D(ẽ_r, r))`` (non-saturating) with ẽ = E_φᵀ softmax(z), the soft
  embedding in the **teacher's** input table (§4.1; ``gan.embedding=gumbel`` swaps in the
  Gumbel straight-through baseline, §4.3), mask-augmented by r ~ U(gan.mask_ratio_range);
* ``L_reward = −mean Σ_i λ_i R̂_i(Dec(Emb_Dec(z)), c)`` (§6, :mod:`softdimo.distill.reward`): the
  configured reward terms (``reward.terms``) of the image decoded from the soft embedding in the
  **tokenizer decoder's** codebook (``reward.embedding=gumbel``: the straight-through baseline).
  Class students are scored with their labels' prompts ("a photo of a 3").

``gan.w_gan=0`` switches the GAN off entirely: no discriminator, no discriminator phase and no
real images are loaded (a text-to-image reward refinement needs no data, only prompts).

A third phase trains the discriminator heads (:class:`~softdimo.distill.gan.TeacherDiscriminator`,
frozen teacher backbone) on real token embeddings E_φ[x] of real training images (tokenized once
and cached, the only real data in the recipe) against detached fake embeddings of fresh student
draws: BCE or hinge, optional R1 on the real embeddings, lr = ``gan.lr_disc_mult`` × train.lr.

Ablations by config alone (§5.5): ``gan.embedding=gumbel``; ``dimo_weight=0`` (GAN only: the
teacher/ψ passes and the ψ phase are skipped); ``gan.mask_ratio_range=[0,0]``; ``gan.w_gan=…``;
reward-only: ``dimo_weight=0 gan.w_gan=0``; ``reward.embedding=gumbel``. Reward runs:
``configs/world/soft_reward.yaml``.
The "long stage" of §5 (resume from the previous stage, lower lr, AdamW with weight decay 0.01)
is ``configs/mnist/soft_gan_long.yaml``: ``train.optimizer: adamw``, ``train.weight_decay: 0.01``.

Logged (generator phase) besides Di[M]O's: ``gan_loss``, ``dimo_loss`` and, every log step, the
soft-vs-hard diagnostics of §4.2 on the current batch: ``soft_entropy``, ``soft_p_max``,
``soft_cov_trace`` (tr Σ) and ``soft_gap`` (Monte-Carlo |D(ẽ) − E_{x~p} D(E[x])|; without a GAN, f is
the reward of the decoded image and the table the decoder codebook); with rewards ``reward`` (the
weighted sum) and ``reward_<name>`` per term (normalised); with both Di[M]O and the GAN, their gradient
balance on the logits (:func:`gradient_balance`: ``grad_z_dimo``, ``grad_z_gan``, ``grad_z_cos``).
Discriminator phase: ``d_real``,
``d_fake`` (mean logits) and ``d_acc``.
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..config import DataConfig, TrainConfig, knob
from ..data import build_dataset
from ..errors import ConfigError
from ..paths import find_folder
from ..rewards import build_composite
from ..rewards.inputs import label_prompts
from ..soft import soft_diagnostics
from ..teachers.student import OneStepStudent
from ..tokenizer.cache import cached_token_ids
from ..train import Context, Phase, Tick
from .dimo import surrogate_loss
from .reward import RewardLossConfig, reward_images, reward_loss
from .gan import (GANConfig, TeacherDiscriminator, discriminator_loss, draw_mask_ratios, fake_embeddings,
                  generator_gan_loss, mask_augment, r1_penalty)
from .train import AUX_DIR, DistillRunConfig, DistillStage, _plain


@dataclass
class RefineRunConfig(DistillRunConfig):
    """Config of `softdimo refine` (see configs/mnist/soft_gan.yaml): a distill config plus the GAN."""

    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_steps=1000, batch_size=32, lr=1e-4, warmup_steps=100, grad_clip=1.0, ema_decay=0.999,
        checkpoint_every=500, sample_every=250, log_every=25))
    student: str = "checkpoints/dimo-mnist"  # the Di[M]O student folder to refine
    dimo_weight: float = knob(1.0, ge=0)  # weight of L_DiMO; 0 = the GAN-only ablation (§5.5)
    gan: GANConfig = field(default_factory=GANConfig)
    data: DataConfig = field(default_factory=DataConfig)  # real images for the discriminator (train split)
    max_real_images: int = knob(0, ge=0)  # use the first N real images only (0 = all)
    token_cache: bool = True  # cache the tokenized real images on disk (built-in datasets)
    tokenize_batch_size: int = knob(500, ge=1)
    diag_samples: int = knob(4, ge=0)  # Monte-Carlo draws of the soft-vs-hard gap at each log step (0 = off)
    reward: RewardLossConfig = field(default_factory=RewardLossConfig)  # reward terms (§6); off by default

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dimo_weight == 0 and self.gan.w_gan == 0 and self.reward.w_reward == 0:
            raise ValueError("dimo_weight, gan.w_gan and reward.w_reward are all 0: nothing would train the student")


def gradient_balance(z: torch.Tensor, l_dimo: torch.Tensor, l_gan: torch.Tensor) -> dict[str, float]:
    """How the weighted Di[M]O and GAN terms pull on the student's logits z (docs/method.md §5.4).

    ``grad_z_dimo`` and ``grad_z_gan``: the norms of ∂(dimo_weight·L_DiMO)/∂z and ∂(w_GAN·L_GAN)/∂z;
    ``grad_z_cos``: the cosine between them. Both terms reach the weights only through z, so their
    ratio is the share of each in the generator's update before clipping: a GAN whose gradient is a
    hundredth of Di[M]O's hardly moves the student whatever the discriminator learns.
    """
    g_dimo, = torch.autograd.grad(l_dimo, z, retain_graph=True)
    g_gan, = torch.autograd.grad(l_gan, z, retain_graph=True)
    a, b = g_dimo.float().flatten(), g_gan.float().flatten()
    cos = float(torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-30))
    return {"grad_z_dimo": float(a.norm()), "grad_z_gan": float(b.norm()), "grad_z_cos": cos}


def resolve_student(value: str) -> Path:
    found = find_folder(value, "student.json")
    if found is None:
        raise ConfigError(f"student folder {value!r} not found (no student.json there, nor under the project "
                          f"root). Distil one first: `softdimo distill --config configs/mnist/dimo.yaml`, then "
                          f"set student=<run dir>/final.")
    return found


class RefineStage(DistillStage):
    """Soft-Di[M]O: Di[M]O + a GAN on the frozen teacher and/or rewards, from a distilled student (module docstring)."""

    cfg: RefineRunConfig

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        cfg = self.cfg
        self.student_dir = resolve_student(cfg.student)
        start = self.teacher.load_student(self.student_dir, map_location=ctx.device)
        if (start.num_tokens, tuple(start.grid), start.cond_kind) != (
                self.teacher.num_tokens, tuple(self.teacher.grid), self.teacher.cond_kind):
            raise ConfigError(f"student {self.student_dir} (K={start.num_tokens}, grid {start.grid}, "
                              f"{start.cond_kind}) does not fit teacher {self.teacher_dir} (K={self.teacher.num_tokens}, "
                              f"grid {self.teacher.grid}, {self.teacher.cond_kind}); refine the student of this teacher.")
        self.student.load_state_dict(start.mdm.state_dict())
        aux = self.teacher.load_network(self.student_dir / AUX_DIR)
        if aux is not None:  # continue ψ; without it ψ restarts from φ
            self.aux.load_state_dict(aux.state_dict())
        self.rewards = self._build_rewards(ctx)
        self.disc = None
        if cfg.gan.w_gan == 0:  # GAN off: no discriminator, no discriminator phase, no real images
            return
        self.disc = TeacherDiscriminator(self.teacher.mdm, cfg.gan).to(ctx.device).train()
        data = build_dataset(cfg.data, "train")
        if self.teacher.cond_kind == "class" and (data.labels is None or data.num_classes != self.teacher.num_classes):
            raise ConfigError(f"the discriminator's real images need labels in {self.teacher.num_classes} classes; "
                              f"dataset '{data.name}' has {data.num_classes or 'no'} classes.")
        n = len(data) if cfg.max_real_images == 0 else min(cfg.max_real_images, len(data))
        tok_dir = self.teacher_dir / "tokenizer"
        use_cache = cfg.token_cache and self.teacher_kind == "native"  # the cache key reads a native tokenizer/
        self.real_ids = cached_token_ids(self.teacher.tokenizer, tok_dir, cfg.data, data, n, use_cache,
                                         cfg.tokenize_batch_size, ctx.device, ctx.accelerator.is_main_process)
        self.real_labels = data.labels[:n].clone() if self.teacher.cond_kind == "class" else None
        self.real_data = data

    def _build_rewards(self, ctx: Context):
        """The weighted composite of ``reward.terms`` (None without terms), in training mode (running z-scores)."""
        if not self.cfg.reward.terms:
            return None

        return build_composite(self.cfg.reward.terms, ctx.device).train()

    def reward_prompts(self, inputs: dict) -> list[str]:
        """The prompts the rewards read: the drawn prompts, or the labels' prompts ("a photo of a 3")."""
        if "prompts" in inputs:
            return list(inputs["prompts"])

        return label_prompts(inputs["labels"])

    # ------------------------------------------------------------------ generator
    def generator_loss(self, tick: Tick) -> tuple[torch.Tensor, dict[str, float]]:
        cfg, b, g = self.cfg, self.ctx.micro_batch_size, self.ctx.generator
        inputs = self.draw_inputs(b)
        cond = self.teacher.encode_condition(**inputs)
        z = self.student_logits(b, tick.step, cond)
        loss = z.new_zeros(())
        logs: dict[str, float] = {}
        log_step = cfg.diag_samples and (tick.step + 1) % cfg.train.log_every == 0
        terms: dict[str, torch.Tensor] = {}  # each weighted term of L, for the gradient balance
        if cfg.dimo_weight > 0:
            grad, logs = self.dimo_gradient(z, cond, tick)
            l_dimo = surrogate_loss(z, grad)
            terms["dimo"] = cfg.dimo_weight * l_dimo
            loss = loss + terms["dimo"]
            logs["dimo_loss"] = float(l_dimo.detach())
        prompts = None
        if self.rewards is not None:
            prompts = self.reward_prompts(inputs)
            l_reward, reward_logs = reward_loss(self.rewards, reward_images(self.teacher, z, cfg.reward, g), prompts)
            loss = loss + cfg.reward.w_reward * l_reward
            logs.update(reward_logs)
        if self.disc is not None:
            table = self.teacher.embedding_table()
            fake = fake_embeddings(z, table, cfg.gan, generator=g)
            r = draw_mask_ratios(b, cfg.gan.mask_ratio_range, generator=g).to(z.device)
            l_gan = generator_gan_loss(self.disc.score(fake, cond, r, generator=g))
            terms["gan"] = cfg.gan.w_gan * l_gan
            loss = loss + terms["gan"]
            logs["gan_loss"] = float(l_gan.detach())
            if log_step:
                logs.update(self._diagnostics(z, table, cond, r))
        elif log_step:
            logs.update(self._reward_diagnostics(z, prompts))
        if log_step and len(terms) == 2:
            logs.update(gradient_balance(z, terms["dimo"], terms["gan"]))
        return loss, logs

    @torch.no_grad()
    def _reward_diagnostics(self, z: torch.Tensor, prompts: list[str] | None) -> dict[str, float]:
        """§4.2 on the reward path: tr Σ over the decoder codebook and the soft-vs-hard gap of the reward."""
        tok = self.teacher.tokenizer
        if not hasattr(tok, "codebook") or not hasattr(tok, "decode_latent"):
            return {f"soft_{k}": v for k, v in soft_diagnostics(z.detach(), self.teacher.embedding_table(),
                                                                 samples=0).items()}
        f = None
        if self.rewards is not None and prompts is not None:
            h, w = tok.grid
            rewards = self.rewards

            def f(e: torch.Tensor) -> torch.Tensor:
                was = rewards.training
                rewards.eval()  # no running-statistics update from diagnostic draws
                try:
                    return rewards.score(tok.decode_latent(e.reshape(e.shape[0], h, w, -1)), prompts)
                finally:
                    rewards.train(was)

        diag = soft_diagnostics(z.detach(), tok.codebook(), f=f, samples=self.cfg.diag_samples,
                                generator=self.ctx.generator)
        return {f"soft_{k}": v for k, v in diag.items()}

    @torch.no_grad()
    def _diagnostics(self, z: torch.Tensor, table: torch.Tensor, cond, r: torch.Tensor) -> dict[str, float]:
        """§4.2 made observable on this batch: entropy, p_max, tr Σ, and the discriminator's soft-vs-hard gap."""
        mask_emb = self.disc.mask_embedding()

        def d_of(e: torch.Tensor) -> torch.Tensor:  # the same masked positions for ẽ and every hard draw
            masked, _ = mask_augment(e, mask_emb, r, generator=torch.Generator().manual_seed(0))
            return self.disc(masked, cond, r)

        diag = soft_diagnostics(z.detach(), table, f=d_of, samples=self.cfg.diag_samples,
                                generator=self.ctx.generator)
        return {f"soft_{k}": v for k, v in diag.items()}

    # ------------------------------------------------------------------ discriminator
    def real_batch(self, tick: Tick):
        """Embeddings E_φ[x] of real-image tokens and their condition."""
        idx = self.ctx.batch_indices(tick, len(self.real_ids))
        ids = self.real_ids[idx].to(self.ctx.device).long()
        if self.real_labels is not None:
            cond = self.teacher.encode_condition(labels=self.real_labels[idx].to(self.ctx.device))
        else:
            cond = self.teacher.encode_condition(prompts=[self.real_data.prompt(i) for i in idx])
        return self.teacher.embed(ids), cond

    def disc_loss(self, tick: Tick) -> tuple[torch.Tensor, dict[str, float]]:
        gan, b, g = self.cfg.gan, self.ctx.micro_batch_size, self.ctx.generator
        real, cond_real = self.real_batch(tick)
        if gan.r1_gamma > 0:
            real = real.detach().requires_grad_(True)
        r_real = draw_mask_ratios(real.shape[0], gan.mask_ratio_range, generator=g).to(real.device)
        # R1 differentiates D's input gradient again: the fused CPU attention kernels have no double
        # backward, so the real pass then runs the math attention (same values).
        with sdpa_kernel(SDPBackend.MATH) if gan.r1_gamma > 0 else contextlib.nullcontext():
            s_real = self.disc.score(real, cond_real, r_real, generator=g)
        with torch.no_grad():
            cond = self.draw_condition(b)
            fake = fake_embeddings(self.student_logits(b, tick.step, cond), self.teacher.embedding_table(), gan,
                                   generator=g)
        r_fake = draw_mask_ratios(b, gan.mask_ratio_range, generator=g).to(fake.device)
        s_fake = self.disc.score(fake, cond, r_fake, generator=g)
        loss = discriminator_loss(s_real, s_fake, gan.disc_loss)
        logs = {"d_real": float(s_real.detach().mean()), "d_fake": float(s_fake.detach().mean()),
                "d_acc": float(((s_real > 0).float().mean() + (s_fake < 0).float().mean()) / 2)}
        if gan.r1_gamma > 0:
            r1 = r1_penalty(s_real, real)
            loss = loss + 0.5 * gan.r1_gamma * r1
            logs["r1"] = float(r1.detach())
        return loss, logs

    # ------------------------------------------------------------------ loop protocol
    def modules(self) -> dict[str, nn.Module]:
        out = dict(super().modules())
        if self.disc is not None:
            out["disc"] = self.disc
        if self.rewards is not None:  # frozen networks, but running z-score statistics are state
            out["rewards"] = self.rewards
        return out

    def phases(self) -> list[Phase]:
        t, gan = self.cfg.train, self.cfg.gan
        gen, aux = super().phases()
        out = [gen] if self.cfg.dimo_weight == 0 else [gen, aux]
        if self.disc is not None:
            out.append(Phase.from_train("disc", self.disc, self.disc_loss, t, lr=t.lr * gan.lr_disc_mult,
                                        grad_clip=None))
        return out

    def student_bundle(self, mdm: nn.Module) -> OneStepStudent:
        s = super().student_bundle(mdm)
        s.training_info = {**s.training_info, "refined_from": str(self.cfg.student),
                           "refine": {"dimo_weight": self.cfg.dimo_weight, "gan": _plain(asdict(self.cfg.gan)),
                                      "reward": _plain(asdict(self.cfg.reward))}}
        return s


def build(cfg: RefineRunConfig) -> RefineStage:
    return RefineStage(cfg)


__all__ = ["RefineRunConfig", "RefineStage", "build", "resolve_student"]
