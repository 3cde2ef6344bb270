"""Fashion-MNIST (60k train / 10k test, 28×28 grey) from the Debian package, offline.

The Debian package ``dataset-fashion-mnist`` installs the original gzip'd IDX files in
``/usr/share/datasets/fashion-mnist/``; set ``SOFTDIMO_FASHION_DIR`` to read them from another
folder. IDX image files have a 16-byte header (magic 2051, count, rows, cols), label files an
8-byte one (magic 2049, count); all integers big-endian.
"""
from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .dataset import ArrayDataset, Split, check_split

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_VAR = "SOFTDIMO_FASHION_DIR"
FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CLASS_NAMES: tuple[str, ...] = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def fashion_dir() -> Path:
    """Folder holding the Fashion-MNIST IDX files (``$SOFTDIMO_FASHION_DIR`` or the Debian path)."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_DIR)


def _read_idx(path: Path, magic: int, header: int, n_dims: int) -> np.ndarray:
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"could not read Fashion-MNIST file {path}: {e}. Reinstall it with "
                        f"`apt-get install --reinstall dataset-fashion-mnist`.") from e
    head = np.frombuffer(raw[:header], dtype=">u4") if len(raw) >= header else np.zeros(0, ">u4")
    shape = tuple(int(x) for x in head[1:1 + n_dims]) if head.size else ()
    if not head.size or int(head[0]) != magic or len(raw) - header != int(np.prod(shape)):
        raise DataError(f"{path} is not a valid IDX file (expected magic {magic} and a payload matching "
                        f"its header). Reinstall it with `apt-get install --reinstall dataset-fashion-mnist`.")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


@functools.lru_cache(maxsize=4)
def _load(folder: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    root = Path(folder)
    image_file, label_file = (root / f for f in FILES[split])
    missing = [p.name for p in (image_file, label_file) if not p.is_file()]
    if missing:
        raise DataError(f"Fashion-MNIST files {', '.join(missing)} not found in {root}. They come from the "
                        f"Debian package 'dataset-fashion-mnist': run `apt-get update && apt-get install -y "
                        f"dataset-fashion-mnist`, or set {ENV_VAR} to a folder holding the original "
                        f"gzip'd IDX files.")
    images = _read_idx(image_file, 2051, 16, 3)
    labels = _read_idx(label_file, 2049, 8, 1)
    if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28) or int(labels.max(initial=0)) > 9:
        raise DataError(f"Fashion-MNIST {split} files in {root} disagree: {images.shape[0]} images of "
                        f"{images.shape[1:]} and {labels.shape[0]} labels (expected 28×28 images, one "
                        f"label 0–9 each). Reinstall with `apt-get install --reinstall dataset-fashion-mnist`.")
    return images, labels


def load_fashion_arrays(split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST ``split`` as read-only (images uint8 ``[N, 28, 28]``, labels uint8 ``[N]``)."""
    check_split(split)
    return _load(str(fashion_dir()), split)


def load_fashion(split: Split) -> ArrayDataset:
    """Fashion-MNIST as an :class:`ArrayDataset` (1×28×28, 10 classes)."""
    images, labels = load_fashion_arrays(split)
    return ArrayDataset("fashion", split, torch.from_numpy(images.copy()).unsqueeze(1),
                        torch.from_numpy(labels.astype(np.int64)), num_classes=10, class_names=CLASS_NAMES)


__all__ = ["load_fashion", "load_fashion_arrays", "fashion_dir", "ENV_VAR", "CLASS_NAMES"]
