"""The one dataset type every stage reads: :class:`ImageDataset`.

A dataset is a sequence of square uint8 images (``[C, H, W]``, C = 1 or 3) with an optional
integer class label and an optional text prompt per item. ``ds[i]`` returns the form the
training loop wants (float image in [0, 1], label ``-1`` when there is none, prompt ``""`` when
there is none); :meth:`ImageDataset.images_uint8` gives fast batched access for evaluators
(FID, sample grids) that want the raw bytes.

:class:`ArrayDataset` is the in-memory form used by MNIST, Fashion-MNIST and image folders; the
digit world (:mod:`softdimo.data.world`) subclasses :class:`ImageDataset` and renders lazily.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch.utils.data import Dataset

from ..errors import DataError

Split = Literal["train", "test"]
SPLITS: tuple[str, ...] = ("train", "test")


def check_split(split: str) -> Split:
    """Return ``split`` if it is ``"train"`` or ``"test"``; raise :class:`DataError` otherwise."""
    if split not in SPLITS:
        raise DataError(f"unknown dataset split {split!r}: every dataset has exactly two splits, "
                        f"'train' and 'test'; pass one of those.")
    return split  # type: ignore[return-value]


def index_tensor(indices: Sequence[int] | torch.Tensor, n: int) -> torch.Tensor:
    """Indices as an int64 tensor, negative ones wrapped, each checked against ``n`` items."""
    idx = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
    idx = torch.where(idx < 0, idx + n, idx)
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise IndexError(f"image index out of range for a dataset of {n} items")
    return idx


class ImageDataset(Dataset):
    """Square uint8 images with optional labels and prompts (the contract every stage relies on).

    Subclasses implement :meth:`__len__` and :meth:`image_uint8`; they may override
    :meth:`images_uint8` (batched access), :meth:`label` and :meth:`prompt`.

    Attributes:
        name: dataset name (``"mnist"``, ``"fashion"``, ``"world"``, ``"folder"``).
        split: ``"train"`` or ``"test"``.
        channels: 1 (grey) or 3 (RGB).
        image_size: side of the square images, in pixels.
        num_classes: number of label classes; 0 when items carry no label.
        class_names: a name per class id (empty when there are no labels).
    """

    def __init__(self, name: str, split: Split, channels: int, image_size: int,
                 num_classes: int = 0, class_names: Sequence[str] = ()) -> None:
        self.name = name
        self.split = split
        self.channels = int(channels)
        self.image_size = int(image_size)
        self.num_classes = int(num_classes)
        self.class_names: tuple[str, ...] = tuple(class_names)

    # -- to implement -------------------------------------------------------------------------
    def __len__(self) -> int:
        raise NotImplementedError

    def image_uint8(self, index: int) -> torch.Tensor:
        """Image ``index`` as a uint8 tensor ``[C, H, W]``."""
        raise NotImplementedError

    # -- defaults -----------------------------------------------------------------------------
    @property
    def labels(self) -> torch.Tensor | None:
        """All labels as an int64 tensor ``[N]``, or ``None`` when the dataset has no labels."""
        return None

    def label(self, index: int) -> int:
        """Label of item ``index`` (``-1`` when there is none)."""
        labels = self.labels
        return -1 if labels is None else int(labels[index])

    def prompt(self, index: int) -> str:
        """Text prompt of item ``index`` (``""`` when there is none)."""
        return ""

    def images_uint8(self, indices: Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
        """Images ``indices`` (all when ``None``) stacked as a uint8 tensor ``[n, C, H, W]``.

        The result may share memory with the dataset: copy it before modifying it in place.
        """
        idx = index_tensor(range(len(self)) if indices is None else indices, len(self))
        if idx.numel() == 0:
            return torch.empty(0, self.channels, self.image_size, self.image_size, dtype=torch.uint8)
        return torch.stack([self.image_uint8(int(i)) for i in idx])

    def _normalise_index(self, index: int) -> int:
        n = len(self)
        i = int(index)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {index} out of range for {self.name} {self.split} ({n} items)")
        return i

    def __getitem__(self, index: int) -> dict[str, Any]:
        i = self._normalise_index(index)
        image = self.image_uint8(i).to(torch.float32).div_(255.0)
        return {"image": image, "label": self.label(i), "prompt": self.prompt(i), "index": i}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, split={self.split!r}, n={len(self)}, "
                f"channels={self.channels}, image_size={self.image_size}, num_classes={self.num_classes})")


class ArrayDataset(ImageDataset):
    """An :class:`ImageDataset` held in memory as one uint8 tensor ``[N, C, H, W]``."""

    def __init__(self, name: str, split: Split, images: torch.Tensor, labels: torch.Tensor | None = None,
                 num_classes: int = 0, class_names: Sequence[str] = ()) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != images.shape[-2]:
            raise DataError(f"{name}: images must be a uint8 tensor [N, C, S, S]; got dtype {images.dtype} "
                            f"and shape {tuple(images.shape)}. This is a bug in the loader; please report it.")
        if images.shape[1] not in (1, 3):
            raise DataError(f"{name}: images must have 1 or 3 channels, got {images.shape[1]}.")
        if labels is not None:
            labels = torch.as_tensor(labels, dtype=torch.int64)
            if labels.shape != (images.shape[0],):
                raise DataError(f"{name}: {labels.numel()} labels for {images.shape[0]} images; "
                                f"every image needs exactly one label.")
        super().__init__(name, split, images.shape[1], images.shape[-1], num_classes, class_names)
        self._images = images.contiguous()
        self._labels = labels

    def __len__(self) -> int:
        return int(self._images.shape[0])

    def image_uint8(self, index: int) -> torch.Tensor:
        return self._images[index]

    @property
    def labels(self) -> torch.Tensor | None:
        return self._labels

    def label(self, index: int) -> int:
        return -1 if self._labels is None else int(self._labels[index])

    def images_uint8(self, indices: Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
        if indices is None:
            return self._images
        return self._images[index_tensor(indices, len(self))]


__all__ = ["ImageDataset", "ArrayDataset", "Split", "SPLITS", "check_split", "index_tensor"]
