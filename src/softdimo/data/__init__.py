"""Datasets: MNIST, Fashion-MNIST, the text-to-image digit world and image folders.

:func:`build_dataset` turns a :class:`~softdimo.config.DataConfig` and a split name into an
:class:`ImageDataset`; every dataset returns ``{"image", "label", "prompt", "index"}`` items and
offers batched uint8 access. All sources are offline (packages installed with pip or apt).
"""
from __future__ import annotations

from ..config import DataConfig
from ..errors import DataError
from .dataset import SPLITS, ArrayDataset, ImageDataset, Split, check_split
from .fashion import load_fashion
from .folder import load_folder
from .mnist import load_mnist
from .prompts import heldout_prompts_interleaved, read_prompts_file
from .world import (BACKGROUND, COLORS, WorldDataset, generate_heldout_prompts, heldout_prompts,
                    load_world, relation_holds, relative_position, render_prompt)

DATASETS: tuple[str, ...] = ("mnist", "fashion", "world", "folder")


def build_dataset(cfg: DataConfig, split: Split) -> ImageDataset:
    """The ``split`` (``"train"`` or ``"test"``) of the dataset named by ``cfg.dataset``.

    ``cfg.root``, ``cfg.image_size`` and ``cfg.channels`` apply to ``folder`` only; the
    ``world_*`` fields to ``world`` only. MNIST and Fashion-MNIST are always 1×28×28.
    """
    check_split(split)
    if cfg.dataset == "mnist":
        return load_mnist(split)
    if cfg.dataset == "fashion":
        return load_fashion(split)
    if cfg.dataset == "world":
        return load_world(cfg, split)
    if cfg.dataset == "folder":
        return load_folder(cfg, split)
    raise DataError(f"unknown data.dataset {cfg.dataset!r}; choose one of {', '.join(DATASETS)}.")


__all__ = ["build_dataset", "ImageDataset", "ArrayDataset", "WorldDataset", "DATASETS", "SPLITS", "Split",
           "BACKGROUND", "COLORS", "render_prompt", "relation_holds", "relative_position",
           "heldout_prompts", "generate_heldout_prompts", "heldout_prompts_interleaved", "read_prompts_file"]
