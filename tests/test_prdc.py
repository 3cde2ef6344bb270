"""Improved precision and recall (Kynkäänniemi et al., 2019) on toy point clouds."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from softdimo.errors import DataError
from softdimo.eval.prdc import knn_radii, precision_recall


def _cloud(n: int, d: int, seed: int, centre: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)) + centre


def test_identical_sets_have_full_precision_and_recall():
    x = _cloud(200, 8, seed=0)
    pr = precision_recall(x, x.copy(), k=3)
    assert pr.precision == 1.0 and pr.recall == 1.0
    assert (pr.k, pr.n_real, pr.n_fake) == (3, 200, 200)


def test_far_apart_sets_have_zero_precision_and_recall():
    real = _cloud(150, 8, seed=1)
    fake = _cloud(120, 8, seed=2, centre=100.0)
    pr = precision_recall(real, fake)
    assert pr.precision == 0.0 and pr.recall == 0.0


def test_fake_covering_one_of_two_real_clusters():
    a = _cloud(100, 4, seed=3)
    b = _cloud(100, 4, seed=4, centre=50.0)
    real = np.concatenate([a, b])
    pr = precision_recall(real, a.copy(), dtype=torch.float64)
    assert pr.precision == 1.0  # every fake sample is a real sample
    assert pr.recall == pytest.approx(0.5)  # cluster b is missed, cluster a fully covered


def test_knn_radii_exclude_self():
    pts = torch.tensor([[0.0], [1.0], [3.0], [6.0], [10.0]], dtype=torch.float64)
    # neighbour distances of 0: 1, 3, 6, 10 -> k=1 gives 1, k=3 gives 6
    assert knn_radii(pts, k=1)[0].item() == 1.0
    assert knn_radii(pts, k=3, chunk_size=2).tolist() == [6.0, 5.0, 3.0, 5.0, 9.0]


def test_chunking_and_input_types_do_not_change_results():
    real = _cloud(90, 6, seed=5)
    fake = _cloud(70, 6, seed=6, centre=0.7)
    ref = precision_recall(real, fake, chunk_size=1000, dtype=torch.float64)
    small = precision_recall(torch.as_tensor(real), torch.as_tensor(fake), chunk_size=7, dtype=torch.float64)
    assert ref == small
    assert 0.0 < ref.precision < 1.0 and 0.0 < ref.recall < 1.0


def test_errors():
    with pytest.raises(DataError):
        precision_recall(np.zeros((10, 3)), np.zeros((10, 4)))
    with pytest.raises(DataError):
        precision_recall(np.zeros((3, 3)), np.zeros((10, 3)), k=3)
    with pytest.raises(DataError):
        precision_recall(np.zeros(10), np.zeros((10, 3)))
