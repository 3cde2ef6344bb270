"""The GenEval-like scorer of the digit world: detect digits, then apply GenEval's rules.

An evaluator only: it runs under ``torch.no_grad`` and is never used as a reward (docs/method.md §6.3).

**Detection** (:meth:`GenEvalScorer.detect`) on an RGB image ``[3, H, W]`` drawn on the known
:data:`~softdimo.data.BACKGROUND`:

1. *foreground*: pixels whose Euclidean RGB distance from the background is at least
   ``threshold`` (default 0.15 in [0, 1] units ≈ 38/255; every named colour is 0.45–0.87 away, so
   only the faint anti-aliased rim of a digit is lost, while quantisation and generator noise
   stay background: with i.i.d. Gaussian pixel noise of σ = 0.04 per channel the held-out renders
   still score 0.97, where a threshold of 0.1 lets noise specks merge into digits and falls to 0.48);
2. *objects*: 8-connected components of the foreground; fragments whose pixels come within
   ``merge_distance`` (Chebyshev, default 2: one background pixel between them) are merged into one
   object, since ground-truth digits are always at least 2 background pixels apart (distance ≥ 3)
   and a generated stroke may break; merged objects with fewer than ``min_pixels`` pixels are
   dropped as specks;
3. *class and confidence*: the object's ink (distance from the background, its own pixels only)
   is framed like MNIST (:mod:`softdimo.classifier.crops`) and classified by the in-project
   :class:`~softdimo.classifier.DigitClassifier`; confidence = max softmax probability;
4. *colour*: the per-channel median of the object's strongest pixels (distance ≥
   ``color_top_fraction`` × its peak: the nearly pure colour in its stroke cores), named by the
   nearest of the ten :data:`~softdimo.data.COLORS` (Euclidean RGB);
5. *box*: the tight box of its pixels, ``(x0, y0, x1, y1)`` with exclusive ends, as the world's.

**Rules** (GenEval's ``evaluate_images.py``): per class, objects with confidence > 0.3 (> 0.9
when the tag is ``counting``) are kept, most confident first (at most 16 per class). Each
``include`` clause takes the ``count`` most confident objects of its class: fewer than ``count``
fails the image; with a ``color``, fewer than ``count`` of them of that colour fails it; with a
``position`` [relation, group], each of them must stand in ``relation`` to every object matched
by include clause ``group`` (:func:`~softdimo.data.relation_holds`), and a group that did not
match fails it too. An ``exclude`` clause fails the image when ``count`` or more objects of its
class are kept. An image is correct or not; per-tag accuracy is the fraction of correct images
of that tag, and ``overall`` is the mean of the per-tag accuracies.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from ..classifier.crops import as_rgb_float, background_distance, crop_ink, frame_digit
from ..data import BACKGROUND, COLORS, relation_holds
from ..data import geneval as ge
from ..config import check_ranges, knob
from ..errors import DataError

__all__ = ["ScorerConfig", "Detection", "GenEvalScorer", "RULES", "evaluate_rules", "name_color"]

RULES: tuple[str, ...] = ("count", "color", "position", "exclude")  # which GenEval check failed


@dataclass
class ScorerConfig:
    """Knobs of :class:`GenEvalScorer`; the defaults are GenEval's thresholds."""

    threshold: float = knob(0.15, gt=0, lt=1)  # foreground = RGB distance from BACKGROUND ≥ this ([0, 1] units)
    merge_distance: int = knob(2, ge=0)  # fragments within this Chebyshev pixel distance are one object (0 = never)
    min_pixels: int = knob(8, ge=1)  # objects with fewer foreground pixels are dropped
    confidence: float = knob(0.3, ge=0, le=1)  # GenEval THRESHOLD: keep objects with confidence above this
    counting_confidence: float = knob(0.9, ge=0, le=1)  # GenEval COUNTING_THRESHOLD (tag "counting")
    max_objects: int = knob(16, ge=1)  # GenEval MAX_OBJECTS kept per class
    color_top_fraction: float = knob(0.9, gt=0, le=1)  # colour from pixels with distance ≥ this × the object's peak
    background: tuple[int, int, int] = knob(BACKGROUND, ge=0, le=255)

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass
class Detection:
    """One object found in an image."""

    label: str  # digit class "0" … "9" (the classifier's argmax)
    confidence: float  # max softmax probability
    color: str  # nearest named colour
    bbox: tuple[int, int, int, int]  # (x0, y0, x1, y1), exclusive ends, y down
    pixels: int  # foreground pixels
    rgb: tuple[float, float, float] = (0.0, 0.0, 0.0)  # the colour estimate (0…255) that was named
    crop: torch.Tensor | None = field(default=None, repr=False)  # the framed [1, 28, 28] classifier input

    def as_dict(self) -> dict[str, Any]:
        return {"class": self.label, "confidence": round(self.confidence, 4), "color": self.color,
                "bbox": list(self.bbox), "pixels": self.pixels, "rgb": [round(v, 1) for v in self.rgb]}


_COLOR_NAMES = tuple(COLORS)
_COLOR_TABLE = np.asarray([COLORS[n] for n in _COLOR_NAMES], dtype=np.float64)


def name_color(rgb: Sequence[float]) -> str:
    """The nearest of the ten named :data:`~softdimo.data.COLORS` to ``rgb`` (0…255)."""
    d = ((_COLOR_TABLE - np.asarray(rgb, dtype=np.float64)) ** 2).sum(1)
    return _COLOR_NAMES[int(d.argmin())]


def _merge_fragments(labels: np.ndarray, n: int, distance: int) -> np.ndarray:
    """Relabel components so that those within ``distance`` (Chebyshev) share a label (union-find)."""
    if n < 2 or distance < 1:
        return labels
    parent = list(range(n + 1))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    structure = np.ones((2 * distance + 1, 2 * distance + 1), dtype=bool)
    for k in range(1, n + 1):
        near = ndimage.binary_dilation(labels == k, structure=structure)
        for j in np.unique(labels[near]):
            if j > k:
                a, b = find(k), find(int(j))
                if a != b:
                    parent[b] = a
    roots = np.asarray([0] + [find(i) for i in range(1, n + 1)])
    return roots[labels]


def evaluate_rules(kept: dict[str, list[Detection]], meta: dict[str, Any]) -> tuple[bool, list[str], list[str]]:
    """GenEval's rules on the kept objects per class (most confident first).

    Returns (correct, failed rules from :data:`RULES` in order, human-readable reasons).
    """
    correct, failed, reasons = True, [], []
    matched_groups: list[list[Detection] | None] = []
    for req in meta["include"]:
        cls, count = req["class"], int(req["count"])
        matched = True
        found = kept.get(cls, [])[:count]
        if len(found) < count:
            correct = matched = False
            failed.append("count")
            reasons.append(f"expected {cls}>={count}, found {len(found)}")
        else:
            if "color" in req:
                colors = [d.color for d in found]
                if colors.count(req["color"]) < count:
                    correct = matched = False
                    failed.append("color")
                    reasons.append(f"expected {req['color']} {cls}>={count}, found "
                                   + ", ".join(f"{colors.count(c)} {c}" for c in _COLOR_NAMES if c in colors))
            if "position" in req and matched:
                relation, target = req["position"]
                targets = matched_groups[int(target)]
                if targets is None:
                    correct = matched = False
                    failed.append("position")
                    reasons.append(f"no target for {cls} to be {relation}")
                else:
                    for obj in found:
                        for t in targets:
                            if not relation_holds(obj.bbox, t.bbox, relation):
                                correct = matched = False
                                rels = ge.relative_position(obj.bbox, t.bbox)
                                reasons.append(f"expected {cls} {relation} target, found "
                                               f"{' and '.join(sorted(rels)) or 'no relation to the'} target")
                                break
                        if not matched:
                            failed.append("position")
                            break
        matched_groups.append(found if matched else None)
    for req in meta.get("exclude", []):
        cls, count = req["class"], int(req["count"])
        if len(kept.get(cls, [])) >= count:
            correct = False
            failed.append("exclude")
            reasons.append(f"expected {cls}<{count}, found {len(kept[cls])}")
    return correct, failed, reasons


class GenEvalScorer:
    """GenEval-like scorer of digit-world images (see the module docstring).

    ``classifier`` is a :class:`~softdimo.classifier.DigitClassifier` (e.g.
    ``DigitClassifier.from_pretrained(checkpoint_dir("classifier-mnist"))``).
    """

    def __init__(self, classifier: Any, config: ScorerConfig | None = None, batch_size: int = 512) -> None:
        cfg = getattr(classifier, "config", None)
        if cfg is None or (getattr(cfg, "in_channels", None), getattr(cfg, "image_size", None),
                           getattr(cfg, "num_classes", None)) != (1, 28, 10):
            raise DataError("GenEvalScorer needs the digit classifier (a DigitClassifier over grey 28×28 "
                            "images with 10 classes), e.g. DigitClassifier.from_pretrained("
                            "softdimo.paths.checkpoint_dir('classifier-mnist')).")
        self.classifier = classifier.eval()
        self.config = config or ScorerConfig()
        self.batch_size = batch_size

    # -- detection ------------------------------------------------------------------------------
    def _objects(self, image: torch.Tensor) -> list[Detection]:
        """Objects of one image with box, size, colour and framed crop (not yet classified)."""
        cfg = self.config
        rgb = as_rgb_float(image, "GenEvalScorer image")
        if rgb.shape[1] < 4 or rgb.shape[2] < 4:
            raise DataError(f"GenEvalScorer image is only {rgb.shape[1]}×{rgb.shape[2]} pixels; pass a digit-world "
                            f"image [3, H, W] (e.g. 3×32×32).")
        dist = background_distance(rgb, cfg.background)
        mask = (dist >= cfg.threshold).numpy()
        labels, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
        labels = _merge_fragments(labels, n, cfg.merge_distance)
        rgb255 = rgb.permute(1, 2, 0).numpy() * 255.0
        dist_np = dist.numpy()
        out = []
        for k in np.unique(labels[labels > 0]):
            obj = labels == k
            pixels = int(obj.sum())
            if pixels < cfg.min_pixels:
                continue
            ys, xs = np.nonzero(obj)
            bbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
            crop = frame_digit(crop_ink(dist, torch.from_numpy(obj), bbox))
            d = np.where(obj, dist_np, 0.0)
            strong = d >= cfg.color_top_fraction * d.max()
            est = np.median(rgb255[strong], axis=0)
            out.append(Detection(label="", confidence=0.0, color=name_color(est), bbox=bbox, pixels=pixels,
                                 rgb=tuple(float(v) for v in est), crop=crop))  # type: ignore[arg-type]
        return out

    @torch.no_grad()
    def detect_many(self, images: Sequence[torch.Tensor] | torch.Tensor) -> list[list[Detection]]:
        """Detections (classified) of every image; all crops go through the classifier in batches."""
        per_image = [self._objects(img) for img in self._as_list(images)]
        flat = [d for dets in per_image for d in dets]
        if flat:
            probs = self.classifier.predict_proba(torch.stack([d.crop for d in flat]), self.batch_size)
            conf, cls = probs.max(dim=1)
            for d, c, k in zip(flat, conf.tolist(), cls.tolist()):
                d.label, d.confidence = str(k), float(c)
        return per_image

    def detect(self, image: torch.Tensor) -> list[Detection]:
        """Classified detections of one image ``[3, H, W]`` in [0, 1]."""
        return self.detect_many([image])[0]

    # -- rules --------------------------------------------------------------------------------
    def kept_objects(self, detections: list[Detection], tag: str) -> dict[str, list[Detection]]:
        """Objects above the tag's confidence threshold, per class, most confident first."""
        cfg = self.config
        threshold = cfg.counting_confidence if tag == "counting" else cfg.confidence
        kept: dict[str, list[Detection]] = {}
        for d in sorted(detections, key=lambda d: -d.confidence):
            if d.confidence > threshold and len(kept.setdefault(d.label, [])) < cfg.max_objects:
                kept[d.label].append(d)
        return {k: v for k, v in kept.items() if v}

    def judge(self, detections: list[Detection], metadata: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        """Apply GenEval's rules to already computed detections."""
        ge.check_metadata(metadata)
        kept = self.kept_objects(detections, metadata["tag"])
        correct, failed, reasons = evaluate_rules(kept, metadata)
        detail = {"tag": metadata["tag"], "prompt": metadata.get("prompt", ge.caption(metadata)),
                  "correct": correct, "failed": failed, "reasons": reasons,
                  "objects": [d.as_dict() for d in detections],
                  "kept": {k: len(v) for k, v in kept.items()}}
        return correct, detail

    def score_image(self, image: torch.Tensor, metadata: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        """Whether ``image`` [3, H, W] (float in [0, 1] or uint8) satisfies GenEval ``metadata``."""
        ge.check_metadata(metadata)
        return self.judge(self.detect(image), metadata)

    def score(self, images: Sequence[torch.Tensor] | torch.Tensor, metadatas: Sequence[dict[str, Any]],
              return_details: bool = False) -> dict[str, Any]:
        """Scores of a set: ``{"overall", "per_tag", "n", "n_per_tag"}`` (+ ``"details"``).

        ``overall`` is the mean of the per-tag accuracies of the tags present (GenEval's overall
        score when all six are present: check ``n_per_tag``).
        """
        images = self._as_list(images)
        metadatas = list(metadatas)
        if len(images) != len(metadatas):
            raise DataError(f"GenEvalScorer.score got {len(images)} images but {len(metadatas)} metadata dicts; "
                            f"pass one metadata dict per image.")
        if not images:
            raise DataError("GenEvalScorer.score got no images.")
        for m in metadatas:
            ge.check_metadata(m)
        details = [self.judge(dets, m)[1] for dets, m in zip(self.detect_many(images), metadatas)]
        hits: dict[str, list[bool]] = {}
        for d in details:
            hits.setdefault(d["tag"], []).append(d["correct"])
        per_tag = {t: float(np.mean(hits[t])) for t in ge.TAGS if t in hits}
        out: dict[str, Any] = {"overall": float(np.mean(list(per_tag.values()))), "per_tag": per_tag,
                               "n": len(images), "n_per_tag": {t: len(hits[t]) for t in per_tag}}
        if return_details:
            out["details"] = details
        return out

    @staticmethod
    def _as_list(images: Sequence[torch.Tensor] | torch.Tensor) -> list[torch.Tensor]:
        if isinstance(images, torch.Tensor):
            if images.dim() == 3:
                raise DataError(f"GenEvalScorer.score expects a batch [N, 3, H, W] or a list of [3, H, W] images, "
                                f"got one image of shape {tuple(images.shape)}; use score_image for one image.")
            if images.dim() != 4:
                raise DataError(f"GenEvalScorer expects images [N, 3, H, W] (float in [0, 1] or uint8), got shape "
                                f"{tuple(images.shape)}.")
            return list(images)
        return list(images)
