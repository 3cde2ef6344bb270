"""The attribute reward: log-probability of a prompt's digits, counts, colours and positions (docs/method.md §6).

An in-project, differentiable stand-in for the "does the image show what the prompt says" part
of text-to-image rewards, on the digit world. It is **not** the evaluator: the GenEval-like
scorer (:mod:`softdimo.eval.geneval`) finds connected components and classifies digit crops with
``classifier-mnist``; this is a different network that reads the whole scene at once.

**Classifier** (:class:`AttributeClassifier`, a :class:`~softdimo.rewards.backbone.SceneCNN`
plus three heads), for a scene image x:

* ``counts`` ``[B, 10, C+1]``: for every digit d, a softmax over how many d's the scene holds,
  0 … C (``max_count`` = 4, the world's largest count);
* ``colors`` ``[B, 10, 10]``: for every digit d and colour k, a sigmoid logit of "some d is k",
  **conditional on d being present** (trained only on scenes that contain d);
* ``relations`` ``[B, 10, 10, 4]``: for digits a ≠ b and relation r (left of, right of, above,
  below, GenEval's rule), a sigmoid logit of "some a stands in r to some b", **conditional on both
  being present**.

The conditional heads make the prompt's probability factorise without double counting.

**Reward** (:class:`AttributeReward`): for a world prompt c with metadata (its digit counts n_d,
colour clauses (d, k), relation clause (a, r, b)),

``R(x, c) = Σ_d log p(count_d = n_d | x) + Σ_(d,k) log σ(colors[d, k]) + log σ(relations[a, b, r])``

with n_d = 0 for the digits the prompt does not name (``absent_digits=True``): every digit-world
scene holds exactly the digits its prompt names, so this is the log-probability of the scene the
prompt describes. Class labels 0–9 are scored as the prompts "a photo of a 3"
(:func:`~softdimo.rewards.inputs.label_prompts`) and grey digit images are read as white digits on
the world's canvas (:func:`~softdimo.rewards.inputs.world_canvas`).

**Training** (``softdimo train-reward --config configs/world/reward_attribute.yaml``): rendered
world train scenes with their ground-truth objects; loss = mean CE of the ten count heads + masked
BCE of the colour and relation heads (each averaged over its valid entries).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..data import geneval as ge
from ..config import knob
from ..errors import ConfigError, DataError
from ..paths import find_folder
from ..pretrained import PretrainedMixin
from ..train import Context, Tick
from .backbone import BackboneConfig, SceneCNN
from .base import freeze
from .scenes import SceneStage, prompt_metadata

NUM_DIGITS = 10
COLOR_INDEX = {c: i for i, c in enumerate(ge.COLOR_NAMES)}
RELATION_INDEX = {r: i for i, r in enumerate(ge.RELATIONS)}


@dataclass
class AttributeConfig(BackboneConfig):
    """Architecture of :class:`AttributeClassifier` (backbone knobs plus the count range)."""

    max_count: int = knob(4, ge=1)  # the count head predicts 0 … max_count of each digit


class AttributeLogits(NamedTuple):
    counts: torch.Tensor  # [B, 10, max_count + 1]
    colors: torch.Tensor  # [B, 10, 10] (digit, colour)
    relations: torch.Tensor  # [B, 10, 10, 4] (a, b, relation)


class AttributeClassifier(nn.Module, PretrainedMixin):
    """Scene CNN with count, colour and relation heads (module docstring)."""

    config_class = AttributeConfig

    def __init__(self, config: AttributeConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = SceneCNN(config)
        self.counts = nn.Linear(config.hidden, NUM_DIGITS * (config.max_count + 1))
        self.colors = nn.Linear(config.hidden, NUM_DIGITS * len(ge.COLOR_NAMES))
        self.relations = nn.Linear(config.hidden, NUM_DIGITS * NUM_DIGITS * len(ge.RELATIONS))

    def forward(self, images: torch.Tensor) -> AttributeLogits:
        h = self.backbone(images)
        b = h.shape[0]
        return AttributeLogits(self.counts(h).view(b, NUM_DIGITS, -1),
                               self.colors(h).view(b, NUM_DIGITS, len(ge.COLOR_NAMES)),
                               self.relations(h).view(b, NUM_DIGITS, NUM_DIGITS, len(ge.RELATIONS)))


# ---------------------------------------------------------------------- targets
@dataclass
class SceneTargets:
    """Ground truth of a batch of scenes, shaped like :class:`AttributeLogits`, plus the head masks."""

    counts: torch.Tensor  # long [N, 10]
    colors: torch.Tensor  # float [N, 10, 10]
    relations: torch.Tensor  # float [N, 10, 10, 4]
    present: torch.Tensor  # bool [N, 10]

    def index(self, idx: torch.Tensor) -> "SceneTargets":
        return SceneTargets(self.counts[idx], self.colors[idx], self.relations[idx], self.present[idx])

    def to(self, device: torch.device | str) -> "SceneTargets":
        return SceneTargets(*(t.to(device) for t in (self.counts, self.colors, self.relations, self.present)))


def scene_targets(objects: Sequence[Sequence[dict[str, Any]]], max_count: int) -> SceneTargets:
    """Targets of scenes from their drawn objects (``render_prompt``'s class, colour and box)."""
    n = len(objects)
    counts = torch.zeros(n, NUM_DIGITS, dtype=torch.long)
    colors = torch.zeros(n, NUM_DIGITS, len(ge.COLOR_NAMES))
    relations = torch.zeros(n, NUM_DIGITS, NUM_DIGITS, len(ge.RELATIONS))
    for i, objs in enumerate(objects):
        for o in objs:
            d = int(o["class"])
            counts[i, d] += 1
            colors[i, d, COLOR_INDEX[o["color"]]] = 1.0
        for o in objs:
            for q in objs:
                a, b = int(o["class"]), int(q["class"])
                if a != b:
                    for r in ge.relative_position(o["bbox"], q["bbox"]):
                        relations[i, a, b, RELATION_INDEX[r]] = 1.0
    if counts.numel() and int(counts.max()) > max_count:
        raise DataError(f"a scene holds {int(counts.max())} copies of one digit but the classifier counts up to "
                        f"max_count={max_count}; raise model max_count.")
    return SceneTargets(counts, colors, relations, counts > 0)


def attribute_loss(logits: AttributeLogits, t: SceneTargets) -> tuple[torch.Tensor, dict[str, float]]:
    """CE of the count heads + masked BCE of the colour (digit present) and relation (both present) heads."""
    l_count = F.cross_entropy(logits.counts.flatten(0, 1), t.counts.flatten())
    cmask = t.present[..., None].expand_as(t.colors).float()
    l_col = (F.binary_cross_entropy_with_logits(logits.colors, t.colors, reduction="none") * cmask).sum() \
        / cmask.sum().clamp(min=1)
    pair = t.present[:, :, None] & t.present[:, None, :] & ~torch.eye(NUM_DIGITS, dtype=torch.bool,
                                                                        device=t.present.device)
    rmask = pair[..., None].expand_as(t.relations).float()
    l_rel = (F.binary_cross_entropy_with_logits(logits.relations, t.relations, reduction="none") * rmask).sum() \
        / rmask.sum().clamp(min=1)
    with torch.no_grad():
        count_acc = (logits.counts.argmax(-1) == t.counts).all(-1).float().mean()
        col_ok = ((logits.colors > 0).float() == t.colors).float() * cmask
        rel_ok = ((logits.relations > 0).float() == t.relations).float() * rmask
        logs = {"count_loss": float(l_count), "color_loss": float(l_col), "relation_loss": float(l_rel),
                "count_acc": float(count_acc), "color_acc": float(col_ok.sum() / cmask.sum().clamp(min=1)),
                "relation_acc": float(rel_ok.sum() / rmask.sum().clamp(min=1))}
    return l_count + l_col + l_rel, logs


# ---------------------------------------------------------------------- prompts → log-probability
@dataclass
class PromptSpec:
    """What P prompts ask for, as index tensors (see :func:`prompt_specs`)."""

    counts: torch.Tensor  # long [P, 10]: n_d
    colors: torch.Tensor  # long [P, 2, 2]: (digit, colour) clauses, padded
    color_mask: torch.Tensor  # bool [P, 2]
    relation: torch.Tensor  # long [P, 3]: (a, b, relation), padded
    relation_mask: torch.Tensor  # bool [P]

    def to(self, device: torch.device | str) -> "PromptSpec":
        return PromptSpec(*(t.to(device) for t in (self.counts, self.colors, self.color_mask, self.relation,
                                                    self.relation_mask)))


def prompt_specs(prompts: Sequence[str], max_count: int) -> PromptSpec:
    """Digit-world prompts → :class:`PromptSpec` (DataError for prompts outside the world's space)."""
    p = len(prompts)
    counts = torch.zeros(p, NUM_DIGITS, dtype=torch.long)
    colors = torch.zeros(p, 2, 2, dtype=torch.long)
    cmask = torch.zeros(p, 2, dtype=torch.bool)
    rel = torch.zeros(p, 3, dtype=torch.long)
    rmask = torch.zeros(p, dtype=torch.bool)
    for i, prompt in enumerate(prompts):
        inc = prompt_metadata(prompt)["include"]
        for req in inc:
            counts[i, int(req["class"])] += int(req["count"])
        for j, req in enumerate(r for r in inc if "color" in r):
            colors[i, j] = torch.tensor([int(req["class"]), COLOR_INDEX[req["color"]]])
            cmask[i, j] = True
        for req in inc:
            if "position" in req:
                r, g = req["position"]
                rel[i] = torch.tensor([int(req["class"]), int(inc[g]["class"]), RELATION_INDEX[r]])
                rmask[i] = True
    if counts.numel() and int(counts.max()) > max_count:
        raise DataError(f"a prompt asks for {int(counts.max())} copies of a digit; this attribute classifier "
                        f"counts up to {max_count}.")
    return PromptSpec(counts, colors, cmask, rel, rmask)


def log_prob_matrix(logits: AttributeLogits, spec: PromptSpec, absent_digits: bool = True) -> torch.Tensor:
    """``[B, P]``: log-probability of every prompt of ``spec`` for every image (module docstring)."""
    lc = torch.log_softmax(logits.counts.float(), -1)  # [B, 10, C]
    digits = torch.arange(NUM_DIGITS, device=lc.device)
    count_terms = lc[:, digits[None, :], spec.counts]  # [B, P, 10]
    if not absent_digits:
        count_terms = count_terms * (spec.counts > 0)
    out = count_terms.sum(-1)
    col = F.logsigmoid(logits.colors.float())[:, spec.colors[..., 0], spec.colors[..., 1]]  # [B, P, 2]
    out = out + (col * spec.color_mask).sum(-1)
    a, b, r = spec.relation.unbind(-1)
    rel = F.logsigmoid(logits.relations.float())[:, a, b, r]  # [B, P]
    return out + rel * spec.relation_mask


def prompt_log_prob(logits: AttributeLogits, spec: PromptSpec, absent_digits: bool = True) -> torch.Tensor:
    """``[B]``: log-probability of prompt i for image i (the diagonal of :func:`log_prob_matrix`)."""
    lc = torch.log_softmax(logits.counts.float(), -1)
    count_terms = lc.gather(-1, spec.counts[..., None]).squeeze(-1)  # [B, 10]
    if not absent_digits:
        count_terms = count_terms * (spec.counts > 0)
    rows = torch.arange(lc.shape[0], device=lc.device)
    col = F.logsigmoid(logits.colors.float())[rows[:, None], spec.colors[..., 0], spec.colors[..., 1]]  # [B, 2]
    a, b, r = spec.relation.unbind(-1)
    rel = F.logsigmoid(logits.relations.float())[rows, a, b, r]
    return count_terms.sum(-1) + (col * spec.color_mask).sum(-1) + rel * spec.relation_mask


class AttributeReward(nn.Module):
    """``R(x, c)`` = log-probability of prompt c's digits, counts, colours and positions (module docstring)."""

    def __init__(self, model: AttributeClassifier, absent_digits: bool = True, name: str = "attribute") -> None:
        super().__init__()
        self.model = freeze(model)
        self.absent_digits = absent_digits
        self.name = name

    @classmethod
    def from_pretrained(cls, path: str | Path, device: torch.device | str = "cpu", **kw: Any) -> "AttributeReward":
        found = find_folder(str(path), "config.json")
        if found is None:
            raise ConfigError(f"attribute reward folder {str(path)!r} not found. Train one with `softdimo "
                              f"train-reward --config configs/world/reward_attribute.yaml` or use "
                              f"checkpoints/reward-attribute-world.")
        return cls(AttributeClassifier.from_pretrained(found, map_location=device), **kw)

    def train(self, mode: bool = True) -> "AttributeReward":
        super().train(mode)
        self.model.eval()  # frozen: no dropout, ever
        return self

    def spec(self, prompts: Sequence[str]) -> PromptSpec:
        return prompt_specs(list(prompts), self.model.config.max_count).to(next(self.model.parameters()).device)

    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        if len(prompts) != images.shape[0]:
            raise DataError(f"{images.shape[0]} images but {len(prompts)} prompts; give one prompt per image.")
        return prompt_log_prob(self.model(images), self.spec(prompts), self.absent_digits)

    def score_matrix(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """``[B, P]``: every image against every prompt (for retrieval-style evaluation)."""
        return log_prob_matrix(self.model(images), self.spec(prompts), self.absent_digits)


# ---------------------------------------------------------------------- training stage
class AttributeStage(SceneStage):
    """Trains an :class:`AttributeClassifier` on rendered world train scenes (module docstring)."""

    NAME = "attribute"

    def build(self, ctx: Context) -> None:
        m = self.cfg.attribute
        self.targets = scene_targets(self.scenes.objects, m.max_count)
        self.model = AttributeClassifier(m).to(ctx.device)

    def loss(self, tick: Tick) -> tuple[torch.Tensor, dict[str, float]]:
        idx, x = self.batch(tick)
        return attribute_loss(self.model(x), self.targets.index(idx).to(self.ctx.device))


__all__ = ["AttributeConfig", "AttributeClassifier", "AttributeLogits", "AttributeReward", "AttributeStage",
           "SceneTargets", "scene_targets", "attribute_loss", "PromptSpec", "prompt_specs", "log_prob_matrix",
           "prompt_log_prob"]
