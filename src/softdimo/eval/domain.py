"""Fast in-domain metrics from the in-project digit classifier: "domain FID" and "classifier score".

Both read grey 28×28 digits (MNIST-like; ``[N, 1, 28, 28]`` or ``[N, 28, 28]``, float in [0, 1] or
uint8) through a :class:`~softdimo.classifier.DigitClassifier` and are meant for training
curves and quick comparisons, not as substitutes for the standard metrics:

* **domain FID** (:func:`domain_fid`): the Fréchet distance
  (:func:`softdimo.eval.fid.frechet_distance`) between Gaussians fitted to the classifier's
  penultimate features of two image sets. It is *not* FID (no Inception network) and must always
  be reported as "domain FID", at a stated N: like FID it is biased by the sample size.
* **classifier score** (:func:`classifier_score`): ``exp(E_x KL(p(y|x) ‖ p(y)))`` with ``p(y|x)``
  the classifier's softmax and ``p(y)`` its mean over the set: the Inception Score's formula on
  this classifier, between 1 and the number of classes (10 = every image confidently classified,
  classes balanced). It is an IS-like score and must never be called "IS".
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ..errors import DataError
from .fid import FeatureStats, frechet_distance

__all__ = ["DOMAIN_FID_NAME", "CLASSIFIER_SCORE_NAME", "domain_features", "domain_stats", "domain_fid",
           "classifier_probs", "classifier_score"]

DOMAIN_FID_NAME = "domain FID"
CLASSIFIER_SCORE_NAME = "classifier score"


def _check_images(images: Any, classifier: Any, what: str) -> torch.Tensor:
    cfg = classifier.config
    c, s = cfg.in_channels, cfg.image_size
    ok = isinstance(images, torch.Tensor) and (
        (images.dim() == 4 and tuple(images.shape[1:]) == (c, s, s)) or
        (images.dim() == 3 and c == 1 and tuple(images.shape[1:]) == (s, s)))
    if not ok:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise DataError(
            f"{what} reads grey {s}×{s} digit images: a tensor [N, {c}, {s}, {s}] (or [N, {s}, {s}]), float "
            f"in [0, 1] or uint8; got {got}. It does not read RGB digit-world scenes: for those use the "
            f"GenEval-like scorer (softdimo.eval.geneval), or cut their digits into 28×28 crops with "
            f"softdimo.classifier.crops first.")
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dtype == torch.uint8:
        return images
    if not images.is_floating_point():
        raise DataError(f"{what}: images must be float in [0, 1] or uint8, got dtype {images.dtype}.")
    return images


def _batches(images: torch.Tensor, batch_size: int, device: torch.device):
    for i in range(0, images.shape[0], batch_size):
        x = images[i:i + batch_size].to(device)
        yield x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def _device(classifier: Any) -> torch.device:
    return next(classifier.parameters()).device


@torch.no_grad()
def _map_batches(images: torch.Tensor, classifier: Any, batch_size: int, what: str,
                 fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``fn`` over checked image batches with the classifier in eval mode, as float64 CPU rows."""
    images = _check_images(images, classifier, what)
    was = classifier.training
    classifier.eval()
    try:
        out = [fn(x).double().cpu() for x in _batches(images, batch_size, _device(classifier))]
    finally:
        classifier.train(was)
    if not out:
        raise DataError(f"{what} got no images.")
    return torch.cat(out)


def domain_features(images: torch.Tensor, classifier: Any, batch_size: int = 500) -> np.ndarray:
    """Penultimate classifier features ``[N, D]`` (float64 numpy), in eval mode, batched."""
    return _map_batches(images, classifier, batch_size, "domain FID", classifier.features).numpy()


def domain_stats(images: torch.Tensor, classifier: Any, batch_size: int = 500) -> FeatureStats:
    """Gaussian statistics of :func:`domain_features` (N ≥ 2), for reuse across comparisons."""
    feats = domain_features(images, classifier, batch_size)
    if feats.shape[0] < 2:
        raise DataError(f"domain FID needs at least 2 images per set, got {feats.shape[0]}.")
    return FeatureStats.from_features(feats, keep_features=False, meta={"metric": DOMAIN_FID_NAME})


def domain_fid(real_images: torch.Tensor | FeatureStats, fake_images: torch.Tensor | FeatureStats,
               classifier: Any, batch_size: int = 500) -> float:
    """Domain FID: Fréchet distance between classifier-feature Gaussians of two image sets.

    Either argument may be precomputed :class:`~softdimo.eval.fid.FeatureStats` (see
    :func:`domain_stats`). Compare values only at equal N.
    """
    a = real_images if isinstance(real_images, FeatureStats) else domain_stats(real_images, classifier, batch_size)
    b = fake_images if isinstance(fake_images, FeatureStats) else domain_stats(fake_images, classifier, batch_size)
    return max(frechet_distance(a.mu, a.sigma, b.mu, b.sigma), 0.0)


def classifier_probs(images: torch.Tensor, classifier: Any, batch_size: int = 500) -> torch.Tensor:
    """Softmax ``p(y|x)`` ``[N, classes]`` (float64), in eval mode, batched."""
    return _map_batches(images, classifier, batch_size, "classifier score",
                        lambda x: torch.softmax(classifier(x).double(), dim=-1))


def classifier_score(images: torch.Tensor, classifier: Any, batch_size: int = 500) -> float:
    """Classifier score ``exp(E_x KL(p(y|x) ‖ p(y)))`` (IS-like; between 1 and the number of classes)."""
    p = classifier_probs(images, classifier, batch_size)
    marginal = p.mean(0, keepdim=True)
    eps = 1e-12
    kl = (p * ((p + eps).log() - (marginal + eps).log())).sum(1)
    return float(torch.exp(kl.mean()))
