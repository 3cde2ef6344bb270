"""Test-Time Embedding Optimisation (TTEO) with best-of-N selection (docs/method.md §7).

For a one-step student θ (weights frozen) and a condition c, TTEO treats the student's input
embedding as the variable (ReNO-style noise optimisation):

1. draw x_init and e_in = √(1−σ²)·embed(x_init) + σ·ε exactly as the student's sampler does
   (§3.2; the mask/random structure of x_init stays as drawn); e_in becomes a leaf tensor;
2. ``iters`` steps of plain SGD (lr 0.2, no momentum, no clipping, §7) on
   ``−Σ_b Σ_i λ_i R̂_i(Dec(Emb_Dec(z_θ(e_in))), c_b)`` — the soft image of §4.1/§6, softmax
   temperature ``soft_temperature`` (1); the loss is summed over the batch so every sample's step
   is independent of the batch size;
3. the final image is the student's ordinary output at the optimised e_in: tokens drawn from
   softmax(z/τ) with the sampler's τ, decoded by the tokenizer.

**Best-of-N**: steps 1–3 run for N independent x_init draws; each candidate's final (hard) image
is scored by the selection rewards (default: the optimised ones), and per prompt the candidate
with the largest composite ``Σ_i λ_i z_i`` wins, z_i being reward i's z-score across the N
candidates (:func:`~softdimo.rewards.base.zscore_composite`; §7 leaves the formula open [I]).
``iters=0`` is plain best-of-N; ``best_of=1`` plain TTEO.

The candidate's token draw in step 3 uses the same random numbers whether or not it was optimised
(the generator state is replayed), so :attr:`TTEOResult.initial_scores` — the scores of the
same candidate *without* TTEO — is a paired baseline.

**Class labels**: a class student is conditioned on its labels, and the rewards read the labels'
digit-world prompts ("a photo of a 3", :func:`~softdimo.rewards.inputs.label_prompts`); the
in-project rewards read a grey digit as a white digit on the world's canvas.

``softdimo tteo --model M --prompts "…" --iters K --best-of N --out DIR`` writes images like
``softdimo sample`` (PNGs + samples.json with every candidate's scores, or one grid).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .config import check_ranges, knob, load_config, resolve_device, to_dict
from .errors import DataError
from .rewards import build_composite
from .rewards.base import CompositeReward, RewardTermConfig, zscore_composite
from .rewards.inputs import label_prompts
from .sample import StudentGenerator, check_output, conditions_for, load_generator, read_prompts_file, write_outputs
from .soft import sample_tokens, soft_probs


def default_reward_terms() -> list[RewardTermConfig]:
    """The shipped in-project rewards: mini-CLIP (as a cosine) and the attribute log-probability."""
    return [RewardTermConfig(kind="miniclip", path="checkpoints/reward-miniclip-world", weight=1.0,
                             normalize="scale", scale=0.1),
            RewardTermConfig(kind="attribute", path="checkpoints/reward-attribute-world", weight=1.0,
                             normalize="scale", scale=0.1)]


@dataclass
class TTEOConfig:
    """Config of `softdimo tteo` (see configs/world/tteo.yaml); flags --iters/--best-of/--lr override it."""

    iters: int = knob(4, ge=0)  # SGD steps on e_in per candidate (§7: 2 or 4; 0 = best-of-N only)
    lr: float = knob(0.2, ge=0)  # SGD learning rate (§7)
    best_of: int = knob(4, ge=1)  # N candidates (different x_init draws) per prompt
    soft_temperature: float = knob(1.0, gt=0)  # τ of softmax(z/τ) in the soft image the rewards differentiate (§4.1)
    temperature: float | None = knob(None, ge=0)  # τ of the final token draw (None = the student's own)
    rewards: list[RewardTermConfig] = field(default_factory=default_reward_terms)  # optimised Σ λ_i R̂_i
    select_rewards: list[RewardTermConfig] = field(default_factory=list)  # best-of-N composite (empty = rewards)

    def __post_init__(self) -> None:
        check_ranges(self)
        if not self.rewards:
            raise ValueError("tteo needs at least one reward term under `rewards:`")


@dataclass
class TTEOResult:
    """What :func:`tteo` returns (N candidates, B conditions)."""

    images: torch.Tensor  # [B, C, H, W] in [0, 1]: the selected candidate per condition
    ids: torch.Tensor  # [B, L] its tokens
    best: torch.Tensor  # long [B]: index of the selected candidate
    composite: torch.Tensor  # [N, B]: selection composite (sum of per-reward z-scores across N)
    scores: dict[str, torch.Tensor]  # reward name → [N, B] final score of every candidate (selection rewards)
    initial_scores: dict[str, torch.Tensor]  # the same candidates without TTEO (same x_init, same token noise)
    objective: torch.Tensor  # [N, iters + 1, B]: optimised soft objective Σ λ_i R̂_i before each step and at the end

    def selected(self, name: str) -> torch.Tensor:
        """[B]: reward ``name`` of the selected candidates."""
        return self.scores[name].gather(0, self.best[None]).squeeze(0)


def _frozen(student: Any) -> list[tuple[torch.nn.Parameter, bool]]:
    flags = [(p, p.requires_grad) for p in student.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    return flags


def tteo(student: Any, rewards: CompositeReward, labels: Sequence[int] | torch.Tensor | None = None,
         prompts: Sequence[str] | None = None, iters: int = 4, lr: float = 0.2, best_of: int = 1,
         select: CompositeReward | None = None, sampler: Any = None, soft_temperature: float = 1.0,
         generator: torch.Generator | None = None) -> TTEOResult:
    """TTEO + best-of-N for a one-step student (module docstring). ``student``'s weights never change."""
    if iters < 0 or best_of < 1 or lr < 0:
        raise DataError(f"tteo needs iters ≥ 0, best_of ≥ 1 and lr ≥ 0; got {iters}, {best_of}, {lr}.")
    sampler = sampler or student.sampler
    cond = student.encode_condition(labels=labels, prompts=prompts)
    reward_prompts = list(prompts) if prompts is not None else label_prompts(labels)  # type: ignore[arg-type]
    b = len(reward_prompts)
    select = select or rewards
    if generator is None:
        generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
    was_training = student.training
    modes = [(m, m.training) for m in {id(rewards): rewards, id(select): select}.values()]
    student.eval()
    for m, _ in modes:
        m.eval()  # frozen normalisers: no running-statistics update at test time
    flags = _frozen(student)

    def soft_objective(e: torch.Tensor) -> torch.Tensor:
        """Σ_i λ_i R̂_i of the soft image Dec(Emb_Dec(z_θ(e))) per condition, [B]."""
        z = sampler.logits(student, e, cond)
        return rewards.score(student.decode_soft(soft_probs(z, soft_temperature, num_tokens=int(student.num_tokens))),
                             reward_prompts)

    ids_all, scores, initial, objective = [], [], [], []
    try:
        for _ in range(best_of):
            with torch.no_grad():
                e0 = sampler.initial_embeddings(student, b, generator)
            state = generator.get_state()
            with torch.no_grad():
                x0 = sample_tokens(sampler.logits(student, e0, cond), sampler.temperature, generator)
                initial.append(select.score_terms(student.decode(x0), reward_prompts))
            e = e0.detach().clone().requires_grad_(True)  # the leaf TTEO optimises
            opt = torch.optim.SGD([e], lr=lr)
            trace = []
            for k in range(iters + 1):
                # objective *and* loss under grad, even inside a caller's no_grad (e.g. a timing loop)
                with torch.set_grad_enabled(k < iters):
                    obj = soft_objective(e)
                    if k < iters:
                        opt.zero_grad()
                        (-obj.sum()).backward()
                        opt.step()
                trace.append(obj.detach().float())
            objective.append(torch.stack(trace))
            generator.set_state(state)  # the same token noise as the un-optimised draw
            with torch.no_grad():
                x = sample_tokens(sampler.logits(student, e.detach(), cond), sampler.temperature, generator)
                scores.append(select.score_terms(student.decode(x), reward_prompts))
            ids_all.append(x)
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        student.train(was_training)
        for m, mode in modes:
            m.train(mode)
    names = list(scores[0])
    stack = lambda rows: {k: torch.stack([r[k].detach().float().cpu() for r in rows]) for k in names}  # noqa: E731
    final, init = stack(scores), stack(initial)
    weights = dict(zip(select.names, select.weights))
    composite = zscore_composite(final, weights)
    best = composite.argmax(0)
    ids = torch.stack(ids_all)[best.to(ids_all[0].device), torch.arange(b, device=ids_all[0].device)]
    with torch.no_grad():
        images = student.decode(ids).float().cpu()
    return TTEOResult(images=images, ids=ids.cpu(), best=best, composite=composite, scores=final,
                      initial_scores=init, objective=torch.stack(objective).cpu())


# ---------------------------------------------------------------------- command line
@dataclass
class TTEORequest:
    """Everything `softdimo tteo` was asked for (besides the config)."""

    model: str
    out: str
    labels: list[int] | None = None
    prompts: list[str] | None = None
    prompts_file: str | None = None
    num: int | None = knob(None, ge=1)
    seed: int = knob(0, ge=0, le=2**63 - 1)
    batch_size: int = knob(16, ge=1)
    nrow: int | None = knob(None, ge=1)
    overwrite: bool = False
    device: str = "auto"

    def __post_init__(self) -> None:
        check_ranges(self, flags={})


def run_tteo(req: TTEORequest, cfg: TTEOConfig, progress: bool = True) -> dict[str, Any]:
    """Load the student and the rewards, run TTEO on every condition and write the images."""
    if sum(x is not None for x in (req.labels, req.prompts, req.prompts_file)) > 1:
        raise DataError("give at most one of --labels, --prompts and --prompts-file.")
    if req.batch_size < 1:
        raise DataError(f"--batch-size must be at least 1, got {req.batch_size}.")
    check_output(req.out, req.overwrite)
    device = resolve_device(req.device)
    gen = load_generator(req.model, device)
    if not isinstance(gen, StudentGenerator):
        raise DataError(f"{req.model} is a '{gen.kind}'; TTEO optimises the input of a one-step student "
                        f"(softdimo distill / refine output).")
    student = gen.student
    sampler = student.sampler_with(temperature=cfg.temperature)
    prompts, metadata = req.prompts, None
    if req.prompts_file is not None:
        prompts, metadata = read_prompts_file(req.prompts_file)
    conds = conditions_for(gen, req.num, req.labels, prompts, metadata)
    rewards = build_composite(cfg.rewards, device)
    select = build_composite(cfg.select_rewards, device) if cfg.select_rewards else rewards
    g = torch.Generator().manual_seed(req.seed)
    t0 = time.time()
    images, per_image = [], []
    for i in tqdm(range(0, len(conds), req.batch_size), desc="tteo", disable=not progress, leave=False):
        c = conds.slice(i, min(len(conds), i + req.batch_size))
        res = tteo(student, rewards, labels=c.labels, prompts=c.prompts, iters=cfg.iters, lr=cfg.lr,
                   best_of=cfg.best_of, select=select, sampler=sampler, soft_temperature=cfg.soft_temperature,
                   generator=g)
        images.append(res.images)
        for j in range(res.best.shape[0]):
            per_image.append({"selected": int(res.best[j]),
                              "composite": [round(float(v), 4) for v in res.composite[:, j]],
                              "scores": {k: [round(float(v), 4) for v in s[:, j]] for k, s in res.scores.items()},
                              "initial_scores": {k: [round(float(v), 4) for v in s[:, j]]
                                                 for k, s in res.initial_scores.items()}})
    seconds = time.time() - t0
    info = {"model": str(req.model), "kind": "tteo", "seed": req.seed, "num": len(conds),
            "sampler": asdict(sampler), "tteo": to_dict(cfg), "tteo_scores": per_image}
    write_outputs(torch.cat(images), req.out, conds, info, req.overwrite, req.nrow)
    mean = lambda key: {k: sum(r[key][k][r["selected"]] for r in per_image) / len(per_image)  # noqa: E731
                        for k in per_image[0][key]}
    return {"out": str(req.out), "num": len(conds), "seconds": seconds, "selected_scores": mean("scores"),
            "untouched_scores": {k: sum(r["initial_scores"][k][0] for r in per_image) / len(per_image)
                                 for k in per_image[0]["initial_scores"]}}


def load_tteo_config(path: str | Path | None, overrides: Sequence[str] = (), **flags: Any) -> TTEOConfig:
    """The TTEO config from an optional YAML preset, dotted overrides and the CLI flags (flags win)."""
    extra = [f"{k}={v}" for k, v in flags.items() if v is not None]
    return load_config(TTEOConfig, path, [*overrides, *extra])


__all__ = ["TTEOConfig", "TTEOResult", "TTEORequest", "tteo", "run_tteo", "load_tteo_config",
           "default_reward_terms"]
