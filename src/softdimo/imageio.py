"""Image grids and PNG files (no torchvision needed)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import DataError


def make_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """Tile ``images`` [N,C,H,W] in [0,1] into one [C, H', W'] image, ``nrow`` per row."""
    if images.dim() != 4:
        raise ValueError(f"make_grid expects [N,C,H,W], got shape {tuple(images.shape)}")
    n, c, h, w = images.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    rows = int(math.ceil(n / nrow))
    grid = torch.full((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), pad_value, dtype=images.dtype)
    for i in range(n):
        r, k = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        grid[:, y:y + h, x:x + w] = images[i].detach().cpu()
    return grid


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """[C,H,W] float in [0,1] → HWC (or HW) uint8 array."""
    arr = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)


def save_image(image: torch.Tensor, path: str | Path) -> Path:
    """Save one [C,H,W] image (or an [N,C,H,W] batch as a grid) as PNG."""
    if image.dim() == 4:
        image = make_grid(image)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(image)).save(path)
    return path


def load_image(path: str | Path, channels: int) -> torch.Tensor:
    """Read a PNG/JPEG as float [C,H,W] in [0,1] with 1 or 3 channels; :class:`DataError` if it is unreadable."""
    try:
        with Image.open(path) as im:
            img = im.convert("L" if channels == 1 else "RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:  # PIL's ways to say "not an image"
        raise DataError(f"could not read image file {path} ({e}); it is truncated, damaged or not an image "
                        f"despite its name. Remove or replace it.") from e
    arr = torch.from_numpy(np.asarray(img).copy())
    arr = arr[None] if arr.dim() == 2 else arr.permute(2, 0, 1)
    return arr.float() / 255.0
