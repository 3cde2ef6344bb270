"""Training data of the in-project reward networks: rendered digit-world scenes, prompt lookup, augmentation.

:func:`render_scenes` renders the first N scenes of a split once (images, prompts and ground-truth
objects). :func:`prompt_metadata` maps a digit-world prompt back to its GenEval metadata through a
table of the world's whole prompt space (8,690 prompts), so a reward that needs the prompt's
digits, colours, counts and positions never parses English. :func:`augment` blurs and noises a
batch a little, so that reward networks trained on crisp renders also read the softer images a
tokenizer decodes (``decode_soft``) — documented choice, off with ``augment.enabled=false``.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..config import DataConfig, check_ranges, knob, torch_dtype
from ..data import geneval as ge
from ..data.world import paraphrase_table
from ..data.world import enumerate_metadata, load_world
from ..errors import DataError
from ..train import Context, Phase, Tick


@dataclass
class RewardAugmentConfig:
    """Random softening of training scenes (the reward must also read decoded, slightly blurry images)."""

    enabled: bool = True
    blur_prob: float = knob(0.5, ge=0, le=1)  # probability of mixing an image with its 3×3 box blur
    blur_max_mix: float = knob(0.7, ge=0, le=1)  # the mixing weight is uniform in [0, blur_max_mix]
    noise_std: float = knob(0.03, ge=0)  # std of additive Gaussian pixel noise (images in [0, 1])

    def __post_init__(self) -> None:
        check_ranges(self)


def augment(x: torch.Tensor, cfg: RewardAugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Blur-mix and noise a batch ``[B, 3, S, S]`` in [0, 1]; draws come from ``generator`` (CPU)."""
    if not cfg.enabled or x.shape[0] == 0:
        return x
    b = x.shape[0]
    mix = torch.rand(b, generator=generator) * cfg.blur_max_mix
    mix = torch.where(torch.rand(b, generator=generator) < cfg.blur_prob, mix, torch.zeros_like(mix))
    blurred = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    m = mix.to(x.device).view(b, 1, 1, 1)
    noise = torch.randn(x.shape, generator=generator).to(x.device) * cfg.noise_std
    return (x * (1 - m) + blurred * m + noise).clamp(0, 1)


@dataclass
class Scenes:
    """N rendered scenes: uint8 images ``[N, 3, S, S]``, prompts, GenEval metadata and objects."""

    images: torch.Tensor
    prompts: list[str]
    metadata: list[dict[str, Any]]
    objects: list[list[dict[str, Any]]]

    def __len__(self) -> int:
        return len(self.prompts)


def render_scenes(data: DataConfig, split: str, n: int | None = None) -> Scenes:
    """The first ``n`` scenes (default: all) of the digit world's ``split`` under ``data``'s knobs."""
    if data.dataset != "world":
        raise DataError(f"the in-project rewards are trained on digit-world scenes; set data.dataset=world "
                        f"(got {data.dataset!r}).")
    ds = load_world(data, split)  # type: ignore[arg-type]
    n = len(ds) if n is None else min(int(n), len(ds))
    scenes = [ds.scene(i) for i in range(n)]
    return Scenes(images=ds.images_uint8(range(n)).clone(), prompts=[s["prompt"] for s in scenes],
                  metadata=[s["metadata"] for s in scenes], objects=[s["objects"] for s in scenes])


@functools.lru_cache(maxsize=1)
def prompt_table() -> dict[str, dict[str, Any]]:
    """Every digit-world prompt → its GenEval metadata (the world's whole prompt space)."""
    return {m["prompt"]: m for tag in ge.TAGS for m in enumerate_metadata(tag)}


def prompt_metadata(prompt: str) -> dict[str, Any]:
    """GenEval metadata of a digit-world prompt, e.g. "a photo of a red 3" or one of its paraphrases
    ("the digit 3 in red", :mod:`softdimo.data.paraphrase`); DataError for others."""
    text = " ".join(str(prompt).split())
    meta = prompt_table().get(text) or paraphrase_table().get(text)
    if meta is None:
        raise DataError(f"prompt {prompt!r} is not a digit-world prompt, so the attribute reward cannot read "
                        f"its digits, colours, counts and positions. Use prompts of the world's form "
                        f"('a photo of a red 3', 'a photo of three 7s', 'a photo of a 9 right of a 2', …) "
                        f"or another reward.")
    return meta


def tag_prompts(tag: str) -> list[str]:
    """Every prompt of one GenEval tag in the digit world."""
    return [p for p, m in prompt_table().items() if m["tag"] == tag]


_INVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def scene_key(meta: dict[str, Any]) -> tuple:
    """What a prompt asks of a scene, independent of wording: digit counts, (digit, colour) pairs and
    the relation in a canonical direction. "a 3 and a 7" and "a 7 and a 3" share a key, as do
    "a 3 left of a 7" and "a 7 right of a 3"."""
    counts: dict[str, int] = {}
    colours = set()
    rel = None
    inc = meta["include"]
    for req in inc:
        counts[req["class"]] = counts.get(req["class"], 0) + int(req["count"])
        if "color" in req:
            colours.add((req["class"], req["color"]))
        if "position" in req:
            r, g = req["position"]
            a, b = req["class"], inc[g]["class"]
            rel = (a, r, b) if a < b else (b, _INVERSE[r], a)
    return tuple(sorted(counts.items())), tuple(sorted(colours)), rel


class SceneStage:
    """What the reward-network stages share: one network trained on augmented world train scenes.

    A subclass sets ``NAME`` (its module name in checkpoints), builds ``self.model`` (and whatever
    else its loss needs) in :meth:`build`, and writes :meth:`loss` from :meth:`batch`.
    """

    NAME: ClassVar[str]
    grid_nrow = 8

    def __init__(self, cfg: Any):  # cfg: softdimo.rewards.train.RewardRunConfig
        self.cfg = cfg

    def setup(self, ctx: Context) -> None:
        self.ctx = ctx
        self.scenes: Scenes = render_scenes(self.cfg.data, "train")
        self.build(ctx)
        self.fixed = self.scenes.images[: self.cfg.num_sample_images].float() / 255.0

    def build(self, ctx: Context) -> None:
        raise NotImplementedError

    def _generator(self, tick: Tick) -> torch.Generator:
        key = (((self.cfg.train.seed * 1_000_003 + tick.step) * 131 + tick.micro) * 131 + tick.repeat) * 131
        return torch.Generator().manual_seed(key + self.ctx.rank)

    def batch(self, tick: Tick) -> tuple[torch.Tensor, torch.Tensor]:
        """(scene indices, their augmented images on the device) of this process's micro-batch."""
        idx = torch.tensor(self.ctx.batch_indices(tick, len(self.scenes)))
        x = self.scenes.images[idx].to(self.ctx.device).float() / 255.0
        return idx, augment(x, self.cfg.augment, self._generator(tick))

    def loss(self, tick: Tick) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def modules(self) -> dict[str, nn.Module]:
        return {self.NAME: self.model}

    def phases(self) -> list[Phase]:
        return [Phase.from_train(self.NAME, self.model, self.loss, self.cfg.train)]

    def ema_modules(self) -> list[str]:
        return [self.NAME]

    @torch.no_grad()
    def sample(self, models: dict[str, nn.Module]) -> torch.Tensor:
        """The first training scenes under a fixed augmentation draw (what the network reads)."""
        return augment(self.fixed, self.cfg.augment, torch.Generator().manual_seed(0)).cpu()

    def export(self, path: Path, models: dict[str, nn.Module]) -> None:
        models[self.NAME].save_pretrained(path, dtype=torch_dtype(self.cfg.train.export_dtype))  # type: ignore[operator]


__all__ = ["SceneStage", "RewardAugmentConfig", "augment", "Scenes", "render_scenes", "prompt_table", "prompt_metadata",
           "tag_prompts", "scene_key"]
