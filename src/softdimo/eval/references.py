"""Reference feature statistics of real dataset splits (what every FID is measured against)."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterator

import torch

from ..config import DataConfig
from ..data import build_dataset
from ..data.world import world_identity
from .fid import FeatureStats, reference_stats


def dataset_id(cfg: DataConfig) -> str:
    """A name that changes whenever the images of the dataset would change."""
    if cfg.dataset == "world":
        extra = "".join(f"-{k.removeprefix('world_')}{v}" for k, v in sorted(world_identity(cfg).items()))
        return f"world-{cfg.world_size_px}px-seed{cfg.world_seed}{extra}"
    if cfg.dataset == "folder":
        digest = hashlib.sha256(str(Path(cfg.root).resolve()).encode()).hexdigest()[:10]
        return f"folder-{digest}-{cfg.image_size}px-c{cfg.channels}"
    return cfg.dataset


def image_batches(ds: Any, n: int, batch_size: int = 100, start: int = 0) -> Iterator[torch.Tensor]:
    """Images ``start … start+n-1`` of ``ds`` as float batches in [0, 1], in order."""
    end = min(len(ds), start + n)
    for i in range(start, end, batch_size):
        yield ds.images_uint8(list(range(i, min(i + batch_size, end)))).float() / 255.0


def real_stats(cfg: DataConfig, split: str, n: int, extractor: Any, cache_dir: str | None = None,
               progress: bool = True, batch_size: int = 50) -> FeatureStats:
    """Cached feature statistics (with features) of the first ``n`` images of a split."""
    ds = build_dataset(cfg, split)
    return reference_stats(dataset_id(cfg), split, n, lambda: image_batches(ds, n), extractor,
                           cache_dir=cache_dir, progress=progress, batch_size=batch_size)
