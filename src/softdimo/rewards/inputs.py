"""Images and prompts as the in-project reward networks read them (digit-world canvases).

The mini-CLIP and the attribute classifier are trained on digit-world scenes: RGB canvases of
``size`` pixels, mid-grey background (:data:`softdimo.data.world.BACKGROUND`), coloured MNIST
digits laid out by the world's layout (:class:`~softdimo.data.world.WorldLayout`; the default
``slots`` layout: each digit 13 px long and centred in a cell of a 2×2 grid on a 32 px canvas).
:func:`world_canvas` brings any image batch a generator may produce into that form,
differentiably (gradients flow back to the input pixels):

* ``[B, 3, H, W]``: resized to ``size`` (bilinear, antialiased) when H or W differ;
* ``[B, 1, H, W]``: a class-conditional digit generator's grey image (white ink on black, MNIST
  framing: the digit fills about 20/28 of the side). It is read as a **white digit** on the
  world's background — pixel = bg·(1 − a) + 1·a with ``a`` the grey value — resized so the digit
  is as tall as a world digit and pasted where the layout puts a lone digit. In the ``slots``
  layout the 28 px frame becomes ``round(slot_digit_px · 28/20)`` px (18 px for the 13 px digits
  of a 32 px canvas), centred in the **first cell** (top left; the frame's empty border is
  clipped at the canvas edge): a slots-world scene "a photo of a white 3" with its digit in that
  cell looks exactly like that. The shipped rewards only ever saw digits centred in a cell: they
  name 93–94 % of MNIST test digits pasted there and 2 % of those pasted at the canvas centre,
  where the four cells meet (below the 10 % of chance). In the ``free`` layout the frame
  becomes ``round(18·size/32)`` px (its digit ≈ 13 px, the free world's 12–14) in the canvas
  centre, where a free-world digit may lie.

That is what lets the text rewards score a class model's digits: :func:`label_prompts` turns class
labels 0–9 into the world's single-object prompts ("a photo of a 3"), so that TTEO and reward
fine-tuning of class-to-image models use the same rewards.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..data import geneval as ge
from ..data.world import BACKGROUND, DEFAULT_LAYOUT, WorldLayout
from ..errors import DataError

DIGIT_FRAME_32 = 18  # free layout: side of a 28 px MNIST frame on a 32 px canvas (its 20 px digit → ≈ 13 px)
MNIST_FRAME_PER_DIGIT = 28 / 20  # an MNIST frame's side over its digit's longer side


def _background(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(BACKGROUND, device=device, dtype=dtype).view(1, 3, 1, 1) / 255.0


def world_canvas(images: torch.Tensor, size: int = 32, layout: WorldLayout | None = None) -> torch.Tensor:
    """``[B, C, H, W]`` in [0, 1] (C = 1 or 3) → ``[B, 3, size, size]`` world canvases of ``layout``
    (default: the default layout, :data:`~softdimo.data.world.DEFAULT_LAYOUT`; module docstring)."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise DataError(f"rewards take images [B, C, H, W] with C = 1 or 3 in [0, 1]; got shape "
                        f"{tuple(images.shape)}.")
    x = images.float()
    if x.shape[1] == 3:
        if tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return x
    layout = layout or DEFAULT_LAYOUT
    if layout.kind == "slots":
        try:
            layout.check(size)
        except DataError as e:
            raise DataError(f"cannot paste a grey digit into a {size} px slots-world canvas: {e}") from e
        side = max(4, round(layout.slot_digit_px(size) * MNIST_FRAME_PER_DIGIT))
        lo = (layout.cell_px(size) - side) // 2  # centred in the first cell; < 0 clips the frame's border
    else:
        side = max(4, round(DIGIT_FRAME_32 * size / 32))
        lo = (size - side) // 2
    a = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
    a = F.pad(a, (lo, size - side - lo, lo, size - side - lo))  # negative padding crops
    bg = _background(x.device, x.dtype)
    return bg * (1 - a) + a


def label_prompts(labels: Sequence[int] | torch.Tensor) -> list[str]:
    """Class labels 0–9 → the digit world's single-object prompts, e.g. 3 → "a photo of a 3"."""
    out = []
    for lab in torch.as_tensor(labels).reshape(-1).tolist():
        if not 0 <= int(lab) <= 9:
            raise DataError(f"the in-project rewards know the digits 0–9 only; label {lab} has no prompt. "
                            f"Use a reward adapter for other class sets.")
        out.append(ge.single_object(str(int(lab)))["prompt"])
    return out


__all__ = ["world_canvas", "label_prompts"]
