"""Fréchet Inception Distance (FID) from feature sets, with cached reference statistics.

FID (Heusel et al., 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local
Nash Equilibrium") fits a Gaussian to each feature set and reports the Fréchet (2-Wasserstein)
distance between the two Gaussians::

    FID = ||mu_1 - mu_2||^2 + Tr(Sigma_1 + Sigma_2 - 2 (Sigma_1 Sigma_2)^{1/2})

with ``mu`` the feature mean and ``Sigma`` the unbiased (``N - 1``) feature covariance. The
matrix square root is ``scipy.linalg.sqrtm`` in float64. When the product is singular and
the square root comes out non-finite, ``eps * I`` is added to both covariances and it is
retried; a complex result (round-off on a nearly singular product) keeps its real part, with
a warning when the imaginary part of the diagonal is not negligible.

FID is biased by the sample size: compare models only at equal ``N`` and read every value
against the real-vs-real floor at that ``N`` (see docs / ``OFFLINE.md``).

Reference statistics (real images) are expensive (Inception costs ~0.15 s per image on two
CPU cores), so :func:`reference_stats` caches them on disk, together with the features
themselves (precision/recall reuse them), under a key built from the evaluator, the
dataset name, the split and ``N``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
import torch
from torch import nn
from tqdm import tqdm

from softdimo.errors import DataError, SoftdimoError

__all__ = [
    "FeatureStats",
    "default_cache_dir",
    "extract_features",
    "fid_from_features",
    "fid_from_stats",
    "fid_torchmetrics",
    "frechet_distance",
    "reference_cache_key",
    "reference_stats",
]

#: Bump when the layout of cached files changes, so that old files are not read. 2: the digit
#: world's default layout became slots (docs/method.md §8.7), so version-1 files named
#: ``world-<S>px-seed<N>`` hold statistics of the earlier free default.
_CACHE_VERSION = 2


def _as_float64(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def frechet_distance(
    mu1: Any, sigma1: Any, mu2: Any, sigma2: Any, eps: float = 1e-6, method: str = "eigh"
) -> float:
    """Fréchet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)`` (the FID formula).

    ``‖μ1−μ2‖² + tr Σ1 + tr Σ2 − 2 tr((Σ1 Σ2)^½)``. Inputs may be numpy arrays or tensors;
    everything is computed in float64. ``method="eigh"`` (default) takes the trace term from
    symmetric eigendecompositions; ``method="sqrtm"`` uses scipy's ``sqrtm`` (the independent
    check the evaluation benchmark compares against).
    """
    mu1, mu2 = _as_float64(mu1), _as_float64(mu2)
    sigma1, sigma2 = _as_float64(sigma1), _as_float64(sigma2)
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise DataError(
            f"frechet_distance: means must be 1-D of equal length, got {mu1.shape} and {mu2.shape}."
        )
    d = mu1.shape[0]
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise DataError(
            f"frechet_distance: covariances must be [{d}, {d}], got {sigma1.shape} and {sigma2.shape}."
        )
    for name, arr in (("mu1", mu1), ("mu2", mu2), ("sigma1", sigma1), ("sigma2", sigma2)):
        if not np.isfinite(arr).all():
            raise DataError(f"frechet_distance: {name} contains NaN or infinite values.")

    diff = mu1 - mu2
    if method == "eigh":
        tr_covmean = _trace_sqrt_product(sigma1, sigma2)
    elif method == "sqrtm":
        tr_covmean = _trace_sqrtm_scipy(sigma1, sigma2, eps)
    else:
        raise ValueError(f"frechet_distance: method must be 'eigh' or 'sqrtm', got {method!r}")
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean
    return float(value)


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr((Σ1 Σ2)^½) through symmetric eigendecompositions (fast, exact for PSD inputs).

    Σ1 Σ2 is similar to A = Σ1^½ Σ2 Σ1^½ (symmetric PSD), so both have the same eigenvalues λ and
    tr((Σ1 Σ2)^½) = Σ √λ. Two ``eigh`` calls replace the general Schur-based ``sqrtm``
    (≈ 20× faster at 2048-d); tiny negative eigenvalues from rounding are clipped to 0.
    """
    w, v = np.linalg.eigh(sigma1)
    root1 = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    lam = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
    return float(np.sqrt(np.clip(lam, 0.0, None)).sum())


def _trace_sqrtm_scipy(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> float:
    """tr(sqrtm(Σ1 Σ2)) with scipy's general matrix square root (the classic FID code path)."""
    d = sigma1.shape[0]
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(d) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
        if not np.isfinite(covmean).all():
            raise SoftdimoError(
                "frechet_distance: the matrix square root of Sigma1 @ Sigma2 is not finite even "
                f"after adding {eps:g} * I; the covariances are degenerate (too few samples?)."
            )
    if np.iscomplexobj(covmean):
        imag = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if imag > 1e-3:
            warnings.warn(
                f"frechet_distance: sqrtm(Sigma1 @ Sigma2) has an imaginary diagonal component "
                f"up to {imag:.3g}; using its real part. This happens with nearly singular "
                "covariances (fewer samples than feature dimensions); FID at such N is noisy.",
                RuntimeWarning,
                stacklevel=2,
            )
        covmean = covmean.real
    return float(np.trace(covmean))


@dataclass
class FeatureStats:
    """Gaussian statistics of a feature set: mean ``mu`` [D], covariance ``sigma`` [D, D].

    ``n`` is the number of samples; ``features`` ([n, D]) is kept when available so that
    precision/recall can reuse them; ``meta`` holds strings describing where they came from
    (evaluator, dataset, split, cache key).
    """

    mu: np.ndarray
    sigma: np.ndarray
    n: int
    features: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_features(
        cls, features: Any, keep_features: bool = True, meta: dict[str, Any] | None = None
    ) -> "FeatureStats":
        """Mean and unbiased covariance (float64) of ``features`` [N, D], N >= 2."""
        if isinstance(features, torch.Tensor):
            features = features.detach().cpu().numpy()
        feats = np.asarray(features)
        if feats.ndim != 2 or feats.shape[0] < 2:
            raise DataError(
                f"FeatureStats needs features shaped [N, D] with N >= 2, got {feats.shape}."
            )
        if not np.isfinite(feats).all():
            raise DataError("FeatureStats: the features contain NaN or infinite values.")
        mu = feats.mean(axis=0, dtype=np.float64)
        sigma = np.cov(feats, rowvar=False).astype(np.float64, copy=False)
        return cls(
            mu=mu,
            sigma=sigma,
            n=int(feats.shape[0]),
            features=feats if keep_features else None,
            meta=dict(meta or {}),
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write to a ``.npz`` file atomically (temporary file + rename); return its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {
            "mu": np.asarray(self.mu, np.float64),
            "sigma": np.asarray(self.sigma, np.float64),
            "n": np.asarray(self.n, np.int64),
            "meta": np.asarray(json.dumps(self.meta, sort_keys=True)),
            "version": np.asarray(_CACHE_VERSION, np.int64),
        }
        if self.features is not None:
            arrays["features"] = np.asarray(self.features)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "FeatureStats":
        """Read a file written by :meth:`save`; :class:`DataError` if missing or unreadable."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                version = int(data["version"]) if "version" in data else -1
                if version != _CACHE_VERSION:
                    raise DataError(
                        f"{path} was written by another softdimo version (format {version}, "
                        f"expected {_CACHE_VERSION}); delete it to recompute."
                    )
                return cls(
                    mu=data["mu"],
                    sigma=data["sigma"],
                    n=int(data["n"]),
                    features=data["features"] if "features" in data else None,
                    meta=json.loads(str(data["meta"])),
                )
        except DataError:
            raise
        except (OSError, KeyError, ValueError, EOFError) as exc:
            raise DataError(f"Could not read feature statistics from {path}: {exc}") from exc


def _module_device(module: Any) -> torch.device | None:
    if isinstance(module, nn.Module):
        for t in module.parameters():
            return t.device
        for t in module.buffers():
            return t.device
    return None


def _batches(images: Any, batch_size: int) -> Iterable[torch.Tensor]:
    """Yield image tensors of at most ``batch_size`` from a tensor or an iterable of batches."""
    source: Iterable[Any] = [images] if isinstance(images, torch.Tensor) else images
    for item in source:
        if isinstance(item, (tuple, list)) and item:  # (images, labels) from a DataLoader
            item = item[0]
        if not isinstance(item, torch.Tensor) or item.ndim != 4:
            got = tuple(item.shape) if isinstance(item, torch.Tensor) else type(item).__name__
            raise DataError(
                "extract_features expects image batches as tensors [B, C, H, W] in [0, 1] "
                f"(or (images, labels) tuples), got {got}."
            )
        for start in range(0, item.shape[0], batch_size):
            yield item[start : start + batch_size]


def extract_features(
    images: torch.Tensor | Iterable[Any],
    extractor: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 64,
    progress: bool = True,
    device: torch.device | str | None = None,
    limit: int | None = None,
    desc: str = "features",
) -> np.ndarray:
    """Run ``extractor`` over images and return float32 features ``[N, D]`` as numpy.

    ``images`` is a tensor ``[N, C, H, W]`` in ``[0, 1]`` or an iterable of such batches
    (``(images, labels)`` tuples are accepted; only the images are used). Batches are streamed
    and re-split into at most ``batch_size`` images; at most ``limit`` images are used. If
    ``device`` is given, the extractor (when it is a module) and each batch are moved there;
    otherwise batches go to the extractor's own device. Runs under ``torch.no_grad``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 or None, got {limit}")
    if device is not None and isinstance(extractor, nn.Module):
        extractor.to(device)
    target = torch.device(device) if device is not None else _module_device(extractor)
    if isinstance(extractor, nn.Module):
        extractor.eval()

    total: int | None = limit
    if isinstance(images, torch.Tensor):
        total = images.shape[0] if limit is None else min(limit, images.shape[0])
    out: list[np.ndarray] = []
    done = 0
    with torch.no_grad(), tqdm(total=total, desc=desc, unit="img", disable=not progress) as bar:
        for batch in _batches(images, batch_size):
            if limit is not None:
                batch = batch[: limit - done]
            if batch.shape[0] == 0:
                break
            if target is not None:
                batch = batch.to(target)
            feats = extractor(batch)
            if not isinstance(feats, torch.Tensor) or feats.ndim != 2 or feats.shape[0] != batch.shape[0]:
                got = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
                raise SoftdimoError(
                    f"The feature extractor must return a tensor [B, D] for a batch of "
                    f"{batch.shape[0]} images, got {got}."
                )
            out.append(feats.detach().to("cpu", torch.float32).numpy())
            done += batch.shape[0]
            bar.update(batch.shape[0])
            if limit is not None and done >= limit:
                break
    if not out:
        raise DataError("extract_features got no images.")
    return np.concatenate(out, axis=0)


def default_cache_dir() -> Path:
    """``$SOFTDIMO_CACHE`` if set, else ``~/.cache/softdimo/fid``."""
    env = os.environ.get("SOFTDIMO_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "softdimo" / "fid"


def reference_cache_key(evaluator_id: str, name: str, split: str, n: int) -> str:
    """Hex digest identifying reference statistics (evaluator, dataset, split, N)."""
    payload = json.dumps(
        {"version": _CACHE_VERSION, "evaluator": evaluator_id, "name": name, "split": split, "n": int(n)},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x"


def reference_stats(
    name: str,
    split: str,
    n: int,
    images_fn: Callable[[], Iterable[Any]],
    extractor: Callable[[torch.Tensor], torch.Tensor],
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    batch_size: int = 64,
    progress: bool = True,
    device: torch.device | str | None = None,
) -> FeatureStats:
    """Feature statistics of the first ``n`` images of a real dataset split, cached on disk.

    ``images_fn()`` is called only on a cache miss and must return a tensor or an iterable of
    image batches in ``[0, 1]`` with at least ``n`` images. ``extractor`` must have a string
    attribute ``evaluator_id`` (e.g. :class:`~softdimo.eval.inception.InceptionFeatures`).
    The cache file (under ``cache_dir``, default :func:`default_cache_dir`) is keyed by
    ``(evaluator_id, name, split, n)`` and also stores the features.
    """
    if int(n) < 2:
        raise DataError(f"reference_stats needs n >= 2 images, got {n}.")
    n = int(n)
    evaluator_id = getattr(extractor, "evaluator_id", None)
    if not isinstance(evaluator_id, str) or not evaluator_id:
        raise SoftdimoError(
            "reference_stats needs an extractor with a string attribute `evaluator_id` (it "
            "names the network and preprocessing in the cache key), e.g. InceptionFeatures()."
        )
    key = reference_cache_key(evaluator_id, name, split, n)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = root / f"{_slug(name)}-{_slug(split)}-n{n}-{key[:16]}.npz"

    if path.is_file():
        try:
            cached = FeatureStats.load(path)
        except DataError as exc:
            warnings.warn(f"Ignoring unreadable FID cache file ({exc}); recomputing.", stacklevel=2)
        else:
            if cached.meta.get("key") == key and cached.n == n:
                return cached
            warnings.warn(f"FID cache file {path} does not match its key; recomputing.", stacklevel=2)

    larger = _features_from_larger_cache(root, name, split, n, evaluator_id)
    if larger is not None:
        meta = {"key": key, "evaluator_id": evaluator_id, "name": name, "split": split, "n": n}
        stats = FeatureStats.from_features(larger, keep_features=True, meta=meta)
        stats.save(path)
        return stats

    feats = extract_features(
        images_fn(),
        extractor,
        batch_size=batch_size,
        progress=progress,
        device=device,
        limit=n,
        desc=f"{name}/{split} reference",
    )
    if feats.shape[0] < n:
        raise DataError(
            f"reference_stats: the images of {name!r}/{split!r} gave only {feats.shape[0]} "
            f"images, but n = {n} were requested."
        )
    meta = {"key": key, "evaluator_id": evaluator_id, "name": name, "split": split, "n": n}
    stats = FeatureStats.from_features(feats, keep_features=True, meta=meta)
    stats.save(path)
    return stats


def _features_from_larger_cache(root: Path, name: str, split: str, n: int,
                                evaluator_id: str) -> np.ndarray | None:
    """The first ``n`` features of a cached entry with more images of the same split, if any.

    ``images_fn`` yields the split in a fixed order, so the first ``n`` of a larger cached set
    are exactly the features of the first ``n`` images.
    """
    best = None
    for cand in root.glob(f"{_slug(name)}-{_slug(split)}-n*-*.npz"):
        try:
            cached = FeatureStats.load(cand)
        except DataError:
            continue
        meta = cached.meta
        if (cached.features is not None and cached.n > n and meta.get("evaluator_id") == evaluator_id
                and meta.get("name") == name and meta.get("split") == split
                and meta.get("key") == reference_cache_key(evaluator_id, name, split, cached.n)):
            if best is None or cached.n < best.n:
                best = cached
    return None if best is None else np.asarray(best.features[:n])


def fid_from_stats(a: FeatureStats, b: FeatureStats) -> float:
    """FID between two :class:`FeatureStats`."""
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma)


def fid_from_features(f1: Any, f2: Any) -> float:
    """FID between two feature sets ``[N1, D]`` and ``[N2, D]`` (numpy or torch)."""
    return fid_from_stats(
        FeatureStats.from_features(f1, keep_features=False),
        FeatureStats.from_features(f2, keep_features=False),
    )


class _FeatureLookup(nn.Module):
    """Maps index tensors to rows of a fixed feature table (feeds torchmetrics' FID)."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("table", table)
        self.num_features = int(table.shape[1])

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.table[idx]


def fid_torchmetrics(f_real: Any, f_fake: Any, batch_size: int = 1024) -> float:
    """FID of the same features computed by torchmetrics' ``FrechetInceptionDistance``.

    A cross-check of :func:`fid_from_features`: the metric gets a feature module that looks
    rows up in a table of the given features, and index tensors as "images". torchmetrics is
    an optional (test/benchmark) dependency, imported here.
    """
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance  # optional (test extra): the cross-check only
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SoftdimoError(
            "fid_torchmetrics needs torchmetrics: `pip install 'torchmetrics>=1.0,<2'` "
            "(or install softdimo with the [test] extra)."
        ) from exc
    real = torch.as_tensor(np.asarray(f_real), dtype=torch.float64)
    fake = torch.as_tensor(np.asarray(f_fake), dtype=torch.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise DataError(
            f"fid_torchmetrics needs features [N1, D] and [N2, D], got {tuple(real.shape)} "
            f"and {tuple(fake.shape)}."
        )
    metric = FrechetInceptionDistance(feature=_FeatureLookup(torch.cat([real, fake])))
    n_real = real.shape[0]
    for start in range(0, n_real, batch_size):
        metric.update(torch.arange(start, min(start + batch_size, n_real)), real=True)
    for start in range(0, fake.shape[0], batch_size):
        stop = min(start + batch_size, fake.shape[0])
        metric.update(torch.arange(n_real + start, n_real + stop), real=False)
    return float(metric.compute())
