"""How the demo measures generators: domain FID, the GenEval-like score, pictures.

* :func:`domain_quality`: domain FID and classifier score of N images against a grey dataset's test
  split (the dataset's in-project classifier features; ``softdimo eval --metrics domain_fid,classifier_score``);
* :func:`world_images` + :func:`geneval`: one image per held-out digit-world prompt (the first N
  of the interleaved list, so every prefix covers the six tags), scored by the GenEval-like scorer
  with per-image outcomes, so that two models on the same prompts give a paired standard error
  (:func:`paired_se`);
* :func:`picture`: one strip per model, same conditions and seed (the ``softdimo sample`` path).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..classifier import domain_evaluator, load_shipped_classifier
from ..config import DataConfig
from ..data import heldout_prompts_interleaved
from ..eval.geneval import GenEvalScorer
from ..evaluate import evaluate
from ..sample import SamplingOptions, conditions_for, generate_images, load_generator
from .stage import Picture, Strip, save_strip

DOMAIN_EVALUATOR = domain_evaluator("mnist")
GENEVAL_EVALUATOR = "GenEval-like scorer (components + classifier-mnist; softdimo eval --metrics geneval)"
PICTURE_PROMPTS = 6  # one held-out prompt per GenEval tag
SEED = 0


@dataclass
class Model:
    """A generator folder and the sampler knobs it is drawn with (None = its own defaults)."""

    label: str
    path: str
    options: SamplingOptions | None = None

    def sampler_text(self) -> str:
        o = self.options or SamplingOptions()
        parts = [f"{k} {v:g}" for k, v in (("steps", o.steps), ("CFG", o.cfg_scale), ("τ", o.temperature))
                 if v is not None]
        return ", ".join(parts) or "its default sampler"


def domain_quality(model: Model, n: int, seed: int = SEED, dataset: str = "mnist") -> dict[str, float]:
    """Domain FID and classifier score of ``n`` images of ``model`` (labels cycled 0–9) against ``dataset``."""
    res = evaluate(model.path, ["domain_fid", "classifier_score"], n, DataConfig(dataset=dataset), progress=False,
                   seed=seed, sampling=model.options)
    return {"domain_fid": float(res["domain_fid"]), "classifier_score": float(res["classifier_score"])}


def heldout(n: int) -> list[dict[str, Any]]:
    """The first ``n`` held-out prompts (GenEval metadata), tags interleaved."""
    meta = heldout_prompts_interleaved()
    return meta[:min(n, len(meta))]


def world_images(model: Model, meta: Sequence[dict[str, Any]], seed: int = SEED) -> torch.Tensor:
    """One image of ``model`` per prompt of ``meta``, drawn with one seeded generator."""
    gen = load_generator(model.path)
    conds = conditions_for(gen, len(meta), prompts=[m["prompt"] for m in meta], metadata=list(meta))
    return generate_images(gen, conds, model.options, seed=seed)


_SCORER: list[GenEvalScorer] = []


def geneval(images: torch.Tensor, meta: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """GenEval-like overall, per tag, and each image's outcome (``correct``, in order)."""
    if not _SCORER:
        _SCORER.append(GenEvalScorer(load_shipped_classifier()))
    res = _SCORER[0].score(images, list(meta), return_details=True)
    return {"geneval": float(res["overall"]), "per_tag": res["per_tag"],
            "correct": [bool(d["correct"]) for d in res["details"]], "tags": [d["tag"] for d in res["details"]]}


def paired_se(before: dict[str, Any], after: dict[str, Any]) -> float:
    """Standard error of ``after.geneval − before.geneval`` on the same prompts.

    The overall score is the mean of the T per-tag accuracies, so its paired difference has variance
    Σ_t Var(d_t) / n_t / T², d_t the per-image differences (−1, 0, 1) of tag t.
    """
    by_tag: dict[str, list[float]] = {}
    for tag, b, a in zip(before["tags"], before["correct"], after["correct"]):
        by_tag.setdefault(tag, []).append(float(a) - float(b))
    if not by_tag:
        return math.nan
    var = sum(float(np.var(d, ddof=1)) / len(d) if len(d) > 1 else 0.0 for d in by_tag.values())
    return math.sqrt(var) / len(by_tag)


def picture_conditions(cond: str, per_condition: int) -> dict[str, Any]:
    """Labels 0–9 (class models) or one held-out prompt per tag (text models), each repeated per row."""
    if cond == "class":
        return {"labels": list(range(10)), "num": 10 * per_condition}
    prompts = [m["prompt"] for m in heldout(PICTURE_PROMPTS)]
    return {"prompts": prompts, "num": len(prompts) * per_condition}


def picture(title: str, models: Sequence[Model], cond: str, results: Path, stem: str, per_condition: int,
            notes: dict[str, str] | None = None, caption: str = "", seed: int = SEED) -> Picture:
    """One strip per model: the same conditions (cycled ``per_condition`` times) and seed."""
    spec = picture_conditions(cond, per_condition)
    columns = [str(x) for x in spec.get("labels") or spec.get("prompts")]
    pic = Picture(title, columns, caption=caption or f"Same {'labels' if cond == 'class' else 'prompts'} and seed "
                                                      f"({seed}) for every row; {per_condition} row(s) per model.")
    for m in models:
        gen = load_generator(m.path)
        conds = conditions_for(gen, spec["num"], labels=spec.get("labels"), prompts=spec.get("prompts"))
        images = generate_images(gen, conds, m.options, seed=seed)
        note = (notes or {}).get(m.label, m.sampler_text())
        pic.strips.append(Strip(m.label, save_strip(images, results, f"{stem}-{m.label}", len(columns)), note))
    return pic


__all__ = ["Model", "domain_quality", "heldout", "world_images", "geneval", "paired_se",
           "picture", "picture_conditions", "DOMAIN_EVALUATOR", "GENEVAL_EVALUATOR", "SEED"]
