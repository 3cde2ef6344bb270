"""Differentiable image preprocessing for reward networks (docs/method.md §6, "Resizing and normalisation").

The reward models were trained on PIL images passed through torchvision transforms; a reward
for fine-tuning must instead take the generator's tensor in [0, 1] and keep gradients. This
module redoes those transforms with ``torch`` only:

* 1 channel → 3 (grey repeated), as ``Image.convert("RGB")`` would;
* ``fit="crop"``: resize the short side to ``size`` (bicubic, antialiased) and centre-crop —
  torchvision's ``Resize(size) + CenterCrop(size)`` used by CLIP, PickScore and ImageReward;
* ``fit="pad"``: resize the long side to ``size`` and pad the short side with black, centred —
  open_clip's ``ResizeMaxSize`` used by HPSv2's evaluation transform;
* ``(x - mean) / std`` with the network's own constants.

For square images both fits are a plain resize. Bicubic upsampling may overshoot [0, 1] slightly;
it is not clamped, so that the gradient never vanishes at saturated pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from ...errors import DataError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ImagePrep:
    """Maps ``[B, C, H, W]`` images in [0, 1] to a network's normalised ``[B, 3, size, size]`` input."""

    size: int = 224  # the network's square input size
    mean: tuple[float, float, float] = CLIP_MEAN  # per-channel mean of the network's normalisation
    std: tuple[float, float, float] = CLIP_STD  # per-channel std of the network's normalisation
    fit: Literal["crop", "pad"] = "crop"  # short side + centre crop, or long side + black padding

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise DataError(f"a reward expects images of shape [B, 1 or 3, H, W] in [0, 1]; got "
                            f"{tuple(images.shape)}.")
        x = images.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        h, w = x.shape[-2:]
        s = self.size
        if self.fit == "crop":  # torchvision Resize(int): short side = s, long side = int(s * long / short)
            nh, nw = (s, int(s * w / h)) if h <= w else (int(s * h / w), s)
        else:  # open_clip ResizeMaxSize: round(dim * s / long side)
            nh, nw = round(h * s / max(h, w)), round(w * s / max(h, w))
        if (nh, nw) != (h, w):
            x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
        if self.fit == "crop":
            top, left = int(round((nh - s) / 2.0)), int(round((nw - s) / 2.0))
            x = x[..., top:top + s, left:left + s]
        else:
            ph, pw = s - nh, s - nw
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=0.0)
        mean = x.new_tensor(self.mean).view(1, 3, 1, 1)
        std = x.new_tensor(self.std).view(1, 3, 1, 1)
        return (x - mean) / std
