"""How well an in-project reward reads scenes: prompt retrieval on rendered world test scenes.

For scenes of each GenEval tag, a reward with ``score_matrix(images, prompts) → [B, P]`` is asked

* ``top1``: does the best-scoring prompt of the tag's **whole prompt space** (10 single-object
  prompts … 8,100 colour-attribution prompts) describe the scene? A prompt counts as right when it
  asks for the same scene as the true caption (:func:`~softdimo.rewards.scenes.scene_key`: "a 3 and
  a 7" = "a 7 and a 3", "a 3 left of a 7" = "a 7 right of a 3");
* ``pairwise``: does the true caption score higher than one random caption of the same tag that
  asks for a different scene (chance 0.5)?

Both are reported per tag and as the mean over the six tags. Draws of the mismatched captions
come from a seeded generator, so the numbers are reproducible.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data import geneval as ge
from .scenes import Scenes, prompt_table, scene_key, tag_prompts


@torch.no_grad()
def evaluate_reward(reward: Any, scenes: Scenes, batch_size: int = 200, seed: int = 0) -> dict[str, float]:
    """``top1`` and ``pairwise`` per tag and overall (module docstring)."""
    rng = np.random.default_rng(seed)
    table = prompt_table()
    by_tag: dict[str, list[int]] = {}
    for i, m in enumerate(scenes.metadata):
        by_tag.setdefault(m["tag"], []).append(i)
    out: dict[str, float] = {}
    for tag in ge.TAGS:
        idx = by_tag.get(tag, [])
        if not idx:
            continue
        space = tag_prompts(tag)
        keys = [scene_key(table[p]) for p in space]
        top1 = pair = 0
        for s in range(0, len(idx), batch_size):
            rows = idx[s:s + batch_size]
            x = scenes.images[rows].float() / 255.0
            scores = reward.score_matrix(x, space)  # [b, P]
            best = scores.argmax(-1).tolist()
            true_pos = {p: j for j, p in enumerate(space)}
            for r, i in enumerate(rows):
                key = scene_key(scenes.metadata[i])
                top1 += keys[best[r]] == key
                t = true_pos[scenes.prompts[i]]
                while True:
                    j = int(rng.integers(len(space)))
                    if keys[j] != key:
                        break
                pair += bool(scores[r, t] > scores[r, j])
        out[f"{tag}/top1"] = top1 / len(idx)
        out[f"{tag}/pairwise"] = pair / len(idx)
        out[f"{tag}/n"] = float(len(idx))
    for m in ("top1", "pairwise"):
        vals = [v for k, v in out.items() if k.endswith("/" + m)]
        out[m] = float(np.mean(vals)) if vals else float("nan")
    return out


__all__ = ["evaluate_reward"]
