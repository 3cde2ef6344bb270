"""Improved precision and recall (Kynkäänniemi et al., 2019) on feature sets.

"Improved Precision and Recall Metric for Assessing Generative Models" (NeurIPS 2019)
estimates each distribution's support as the union of balls around its samples, each ball's
radius being the distance to the sample's k-th nearest neighbour in the same set (the sample
itself is the 0-th neighbour and is not counted; the paper uses k = 3)::

    precision = (1/M) sum_j 1[ fake_j lies in some real ball ]
    recall    = (1/N) sum_i 1[ real_i lies in some fake ball ]

A point lies in a ball when its distance to the centre is <= the radius. Precision measures
how many generated samples look real (quality); recall how much of the real distribution the
generator covers (diversity).

Everything runs in torch with Euclidean distances computed in row chunks (``torch.cdist``),
so no N x N matrix is held at once; N = 5000 Inception features (2048-d) take seconds. Both
sets are centred on the real mean first, which leaves distances unchanged and keeps the
float32 matrix-product distance formula accurate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from softdimo.errors import DataError

__all__ = ["PrecisionRecall", "knn_radii", "precision_recall"]


@dataclass(frozen=True)
class PrecisionRecall:
    """Improved precision and recall, with the settings that produced them."""

    precision: float
    recall: float
    k: int
    n_real: int
    n_fake: int

    def as_dict(self) -> dict[str, float | int]:
        """Plain dict for reports and JSON."""
        return {
            "precision": self.precision,
            "recall": self.recall,
            "k": self.k,
            "n_real": self.n_real,
            "n_fake": self.n_fake,
        }


def _as_tensor(x: Any, name: str, device: torch.device | None, dtype: torch.dtype) -> torch.Tensor:
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.ndim != 2:
        raise DataError(f"{name} must be a feature matrix [N, D], got shape {tuple(t.shape)}.")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    if not torch.isfinite(t).all():
        raise DataError(f"{name} contains NaN or infinite values.")
    return t.to(device=device if device is not None else t.device, dtype=dtype)


def knn_radii(features: torch.Tensor, k: int = 3, chunk_size: int = 1024) -> torch.Tensor:
    """Distance from each row of ``features`` [N, D] to its k-th nearest *other* row.

    The self-distance is set to exactly 0 and counted as the 0-th neighbour, so the result is
    the (k+1)-th smallest entry of each row of the distance matrix. Needs N > k.
    """
    n = features.shape[0]
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if n <= k:
        raise DataError(f"k-NN radii with k = {k} need more than {k} samples, got {n}.")
    radii = torch.empty(n, dtype=features.dtype, device=features.device)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        d = torch.cdist(features[start:stop], features)
        rows = torch.arange(stop - start, device=features.device)
        d[rows, rows + start] = 0.0
        radii[start:stop] = d.kthvalue(k + 1, dim=1).values
    return radii


def precision_recall(
    real: Any,
    fake: Any,
    k: int = 3,
    chunk_size: int = 1024,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> PrecisionRecall:
    """Improved precision and recall of ``fake`` [M, D] against ``real`` [N, D] features.

    Inputs may be numpy arrays or tensors. Computation runs on ``device`` (default: the real
    features' device, CPU for numpy) in ``dtype`` (float32 by default; pass float64 for
    exactness on tiny sets), in chunks of ``chunk_size`` rows.
    """
    dev = torch.device(device) if device is not None else None
    real_t = _as_tensor(real, "real features", dev, dtype)
    fake_t = _as_tensor(fake, "fake features", real_t.device, dtype)
    if real_t.shape[1] != fake_t.shape[1]:
        raise DataError(
            f"real and fake features differ in dimension: {real_t.shape[1]} vs {fake_t.shape[1]}."
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")

    centre = real_t.mean(dim=0, keepdim=True)
    real_t = real_t - centre
    fake_t = fake_t - centre
    with torch.no_grad():
        r_real = knn_radii(real_t, k, chunk_size)
        r_fake = knn_radii(fake_t, k, chunk_size)
        fake_in_real = torch.zeros(fake_t.shape[0], dtype=torch.bool, device=real_t.device)
        real_in_fake = torch.zeros(real_t.shape[0], dtype=torch.bool, device=real_t.device)
        for start in range(0, fake_t.shape[0], chunk_size):
            stop = min(start + chunk_size, fake_t.shape[0])
            d = torch.cdist(fake_t[start:stop], real_t)  # [chunk, N]
            fake_in_real[start:stop] = (d <= r_real[None, :]).any(dim=1)
            real_in_fake |= (d <= r_fake[start:stop, None]).any(dim=0)
    return PrecisionRecall(
        precision=float(fake_in_real.double().mean()),
        recall=float(real_in_fake.double().mean()),
        k=int(k),
        n_real=int(real_t.shape[0]),
        n_fake=int(fake_t.shape[0]),
    )
