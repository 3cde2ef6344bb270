"""Digit crops: from an RGB digit-world scene to the grey, MNIST-framed input of the classifier.

The one preprocessing shared by the classifier's training data (crops of world-train scenes) and
the GenEval-like scorer (crops of found objects), so that both see digits the same way:

1. **ink map** (:func:`background_distance`): the Euclidean RGB distance of every pixel from the
   known :data:`~softdimo.data.BACKGROUND`, in [0, 1] units (black and white digits reach ≈ 0.87).
   A world pixel is ``bg·(1 − a) + colour·a``, so this distance is ``a·|colour − bg|``: the
   digit's coverage up to a per-digit factor, whatever its colour;
2. **foreground**: pixels whose distance is at least ``threshold`` (default
   :data:`FG_THRESHOLD` = 0.1 ≈ 25/255 for the exact renders the classifier trains on, below
   every colour's distance 0.45–0.87 from the background; the scorer defaults to a stricter 0.15,
   which only trims the faint rim further and keeps generator noise out);
3. **crop** (:func:`crop_ink`): the ink of the object's foreground pixels inside its box (other
   pixels 0), divided by its peak so the strongest pixel is 1, as in MNIST;
4. **framing** (:func:`frame_digit`): MNIST's own normalisation: resized (bilinear, anti-aliased
   when shrinking) so its longer side is 20 px with the aspect ratio kept, then pasted into a
   28×28 black field with its centre of mass at the centre.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from ..data import BACKGROUND, WorldDataset
from ..data.world import WorldLayout
from ..data.dataset import ArrayDataset, Split, check_split
from ..config import check_ranges, knob
from ..errors import DataError

FG_THRESHOLD = 0.1  # foreground: RGB distance from BACKGROUND ≥ this (in [0, 1] units)
FRAME_SIZE = 28  # MNIST field
FRAME_BOX = 20  # MNIST fits each digit's longer side to this many pixels
DIGIT_CLASS_NAMES: tuple[str, ...] = tuple(str(d) for d in range(10))


def as_rgb_float(image: torch.Tensor, what: str = "image") -> torch.Tensor:
    """``image`` as float ``[3, H, W]`` in [0, 1] (uint8 is divided by 255); DataError otherwise."""
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] != 3:
        got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise DataError(f"{what} must be one RGB digit-world image, a tensor [3, H, W] with values in [0, 1] "
                        f"(or uint8 0…255); got {got}. Pass batches image by image or as a list.")
    if image.dtype == torch.uint8:
        return image.float() / 255.0
    if not image.is_floating_point():
        raise DataError(f"{what} must be float in [0, 1] or uint8; got dtype {image.dtype}.")
    return image.detach().float().cpu()


def background_distance(image: torch.Tensor, background: Sequence[int] = BACKGROUND) -> torch.Tensor:
    """Euclidean RGB distance ``[H, W]`` of each pixel of ``image`` [3, H, W] from ``background``."""
    image = as_rgb_float(image)
    bg = torch.tensor([float(v) / 255.0 for v in background]).view(3, 1, 1)
    return (image - bg).pow(2).sum(0).sqrt()


def crop_ink(distance: torch.Tensor, mask: torch.Tensor, bbox: Sequence[int]) -> torch.Tensor:
    """Ink ``[h, w]`` of the ``mask`` pixels inside ``bbox`` = (x0, y0, x1, y1) (exclusive ends),
    zero elsewhere, scaled so its peak is 1."""
    x0, y0, x1, y1 = (int(v) for v in bbox)
    ink = distance[y0:y1, x0:x1] * mask[y0:y1, x0:x1].to(distance.dtype)
    peak = float(ink.max()) if ink.numel() else 0.0
    if peak <= 0:
        raise DataError(f"no foreground pixels inside box {tuple(bbox)}; nothing to classify.")
    return ink / peak


def frame_digit(ink: torch.Tensor, size: int = FRAME_SIZE, box: int = FRAME_BOX) -> torch.Tensor:
    """MNIST framing of a tight digit crop ``ink`` [h, w] (values ≥ 0): ``[1, size, size]`` in [0, 1]."""
    if ink.dim() != 2 or ink.numel() == 0:
        raise DataError(f"frame_digit expects a non-empty [h, w] crop, got shape {tuple(ink.shape)}.")
    ink = ink.float().clamp_min(0)
    peak = float(ink.max())
    if peak <= 0:
        raise DataError("frame_digit got an empty crop (all zeros); nothing to frame.")
    ink = ink / peak
    ys, xs = torch.nonzero(ink > 0, as_tuple=True)  # tighten to the ink
    ink = ink[int(ys.min()):int(ys.max()) + 1, int(xs.min()):int(xs.max()) + 1]
    h, w = ink.shape
    scale = box / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = F.interpolate(ink[None, None], size=(nh, nw), mode="bilinear", align_corners=False,
                          antialias=scale < 1.0)[0, 0].clamp(0, 1)
    mass = small.sum()
    cy = float((small.sum(1) * torch.arange(nh, dtype=small.dtype)).sum() / mass)
    cx = float((small.sum(0) * torch.arange(nw, dtype=small.dtype)).sum() / mass)
    # put the centre of mass (pixel centres at integer coordinates) on the field's centre
    top = min(max(round((size - 1) / 2 - cy), 0), size - nh)
    left = min(max(round((size - 1) / 2 - cx), 0), size - nw)
    out = torch.zeros(1, size, size)
    out[0, top:top + nh, left:left + nw] = small
    return out


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


@dataclass
class WorldCropConfig:
    """Digit crops cut from digit-world scenes with their ground-truth boxes (classifier training data)."""

    scenes: int = knob(0, ge=0)  # world scenes whose digits join the training set (0 = MNIST only)
    size_px: int = knob(32, ge=24, le=1024)  # canvas size of those scenes
    seed: int = knob(0, ge=0, le=2**31 - 1)  # world seed of those scenes
    threshold: float = knob(FG_THRESHOLD, gt=0, lt=1)  # foreground threshold used when cutting them
    layout: Literal["free", "slots"] = "slots"  # world layout of those scenes (docs/method.md §8.7)

    def __post_init__(self) -> None:
        check_ranges(self)


def world_crops(cfg: WorldCropConfig, split: Split, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Framed crops (uint8 ``[M, 1, 28, 28]``) and labels (int64 ``[M]``) of every digit in world
    ``split`` scenes ``start … start + cfg.scenes − 1`` (boxes from the scenes' ground truth)."""
    check_split(split)
    if cfg.scenes < 1:
        raise DataError(f"world_crops needs scenes ≥ 1, got {cfg.scenes}.")
    world = WorldDataset(split, start + cfg.scenes, cfg.size_px, cfg.seed, WorldLayout(kind=cfg.layout))
    crops, labels = [], []
    for i in range(start, start + cfg.scenes):
        scene = world.scene(i)
        dist = background_distance(world.image_uint8(i))
        mask = dist >= cfg.threshold
        for obj in scene["objects"]:
            crops.append(frame_digit(crop_ink(dist, mask, obj["bbox"])))
            labels.append(int(obj["class"]))
    return to_uint8(torch.stack(crops)), torch.tensor(labels, dtype=torch.int64)


def load_world_crops(cfg: WorldCropConfig, split: Split, start: int = 0) -> ArrayDataset:
    """:func:`world_crops` as an :class:`~softdimo.data.ArrayDataset` named ``world-crops``."""
    images, labels = world_crops(cfg, split, start)
    return ArrayDataset("world-crops", split, images, labels, num_classes=10, class_names=DIGIT_CLASS_NAMES)


__all__ = ["FG_THRESHOLD", "FRAME_SIZE", "FRAME_BOX", "WorldCropConfig", "as_rgb_float", "background_distance",
           "crop_ink", "frame_digit", "world_crops", "load_world_crops"]
