"""A folder of image files as a dataset (``data.dataset=folder``, ``data.root=<dir>``).

Rules, in order:

* **Files:** every ``.png``, ``.jpg``, ``.jpeg``, ``.bmp`` and ``.webp`` under ``root``, found
  recursively (hidden files and folders skipped) and sorted by their path relative to ``root``.
* **Split:** the sorted list is split deterministically: the 1st, 11th, 21st, … image (sorted
  position ``i`` with ``i % 10 == 0``) form ``test``; all others form ``train``. A folder needs at
  least two images so that both splits are non-empty.
* **Labels:** when every image sits inside a first-level subfolder of ``root``, the sorted
  subfolder names are the classes (ids 0, 1, …) and ``num_classes`` is their number; when every
  image sits directly in ``root`` there are no labels (``num_classes = 0``). A mix is an error.
* **Channels:** ``channels`` 1 converts to grey, 3 to RGB (alpha dropped); 0 takes 1 when the
  first image is grey (PIL modes ``1``, ``L``, ``LA``, ``I``, ``I;16``, ``F``) and 3 otherwise.
* **Size:** with ``image_size > 0`` each image is centre-cropped to a square and resized to
  ``image_size`` (bicubic, antialiased); with ``image_size = 0`` all images must already be square
  and of one size.

The images of the requested split are decoded once, at construction, into memory.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..config import DataConfig
from ..errors import DataError
from .dataset import ArrayDataset, Split, check_split

EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})
GREY_MODES: frozenset[str] = frozenset({"1", "L", "LA", "I", "I;16", "F"})
TEST_EVERY = 10


def list_images(root: Path) -> list[Path]:
    """Image files under ``root`` (recursive, hidden entries skipped), sorted by relative path."""
    files = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if p.suffix.lower() in EXTENSIONS and p.is_file() and not any(part.startswith(".") for part in rel.parts):
            files.append(rel)
    return [root / rel for rel in sorted(files, key=lambda r: r.as_posix())]


def _class_names(root: Path, files: list[Path]) -> tuple[str, ...]:
    depths = {len(f.relative_to(root).parts) for f in files}
    if depths == {1}:
        return ()
    top = [f.relative_to(root).parts[0] for f in files if len(f.relative_to(root).parts) > 1]
    if len(top) != len(files):
        loose = next(f for f in files if len(f.relative_to(root).parts) == 1)
        raise DataError(f"image folder {root} mixes images directly in it (e.g. '{loose.name}') with images "
                        f"in subfolders. Either put every image in a class subfolder (labels = sorted "
                        f"subfolder names) or put them all directly in {root} (no labels).")
    return tuple(sorted(set(top)))


def _open(path: Path, channels: int) -> Image.Image:
    try:
        with Image.open(path) as im:
            im.load()
            mode = "L" if channels == 1 else "RGB"
            if im.mode in ("RGBA", "LA", "P", "PA") and mode == "RGB":
                im = im.convert("RGBA").convert("RGB")
            return im.convert(mode)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise DataError(f"could not read image file {path}: {e}. Remove or replace this file (it may be "
                        f"truncated or not an image despite its extension) and run again.") from e


def _square_resize(im: Image.Image, size: int) -> Image.Image:
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    im = im.crop((left, top, left + side, top + side))
    return im if side == size else im.resize((size, size), Image.Resampling.BICUBIC)


def _header(path: Path) -> tuple[str, tuple[int, int]]:
    """Mode and size of an image file, reading only its header."""
    try:
        with Image.open(path) as im:
            return im.mode, im.size
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise DataError(f"could not read image file {path}: {e}. Remove or replace this file (it may be "
                        f"truncated or not an image despite its extension) and run again.") from e


def _check_sizes(root: Path, files: list[Path]) -> None:
    """With no resize, every image must be square and of one size."""
    first_size = _header(files[0])[1]
    if first_size[0] != first_size[1]:
        raise DataError(f"image {files[0]} is {first_size[0]}×{first_size[1]}, not square. Set data.image_size "
                        f"to centre-crop and resize every image to one square size.")
    for f in files[1:]:
        size = _header(f)[1]
        if size != first_size:
            raise DataError(f"images in {root} have different sizes ({files[0].name} is {first_size[0]}×"
                            f"{first_size[1]}, {f.name} is {size[0]}×{size[1]}). Set data.image_size to "
                            f"resize them all to one square size.")


def load_folder(cfg: DataConfig, split: Split) -> ArrayDataset:
    """The ``split`` of the image folder ``cfg.root`` (see the module docstring for the rules)."""
    check_split(split)
    if not cfg.root:
        raise DataError("data.dataset=folder needs data.root, the folder holding the images "
                        "(e.g. data.root=/path/to/images).")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a folder. Set data.root to a folder "
                        f"of .png/.jpg/.jpeg/.bmp/.webp files.")
    if cfg.channels not in (0, 1, 3):
        raise DataError(f"data.channels must be 0 (infer), 1 (grey) or 3 (RGB); got {cfg.channels}.")
    if cfg.image_size < 0:
        raise DataError(f"data.image_size must be 0 (keep) or a positive size; got {cfg.image_size}.")
    files = list_images(root)
    if not files:
        raise DataError(f"image folder {root} holds no images (looked recursively for "
                        f"{', '.join(sorted(EXTENSIONS))}). Point data.root at a folder with images.")
    if len(files) < 2:
        raise DataError(f"image folder {root} holds only one image; the folder is split into train (9 of "
                        f"every 10 images) and test (every 10th), so it needs at least two.")
    class_names = _class_names(root, files)
    if not cfg.image_size:
        _check_sizes(root, files)
    channels = cfg.channels or (1 if _header(files[0])[0] in GREY_MODES else 3)
    picked = [i for i in range(len(files)) if (i % TEST_EVERY == 0) == (split == "test")]

    arrays = []
    for i in picked:
        im = _open(files[i], channels)
        if cfg.image_size:
            im = _square_resize(im, cfg.image_size)
        a = np.asarray(im, dtype=np.uint8)
        arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    images = torch.from_numpy(np.stack(arrays))
    labels = None
    if class_names:
        ids = {name: k for k, name in enumerate(class_names)}
        labels = torch.tensor([ids[files[i].relative_to(root).parts[0]] for i in picked], dtype=torch.int64)
    return ArrayDataset("folder", split, images, labels, num_classes=len(class_names), class_names=class_names)


__all__ = ["load_folder", "list_images", "EXTENSIONS", "TEST_EVERY"]
