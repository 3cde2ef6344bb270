"""Speed harness: alternation, warm-up exclusion, ratios and memory accounting."""
import time

import torch

from softdimo.eval.speed import measure_speed, speed_ratio


def test_ratio_of_known_sleeps():
    calls = []

    def slow(b):
        calls.append(("slow", b))
        time.sleep(0.02)

    def fast(b):
        calls.append(("fast", b))
        time.sleep(0.005)

    res = measure_speed({"slow": slow, "fast": fast}, [1, 4], repeats=3, warmup=1)
    assert [(r.name, r.batch_size) for r in res] == [("slow", 1), ("fast", 1), ("slow", 4), ("fast", 4)]
    assert 2.5 < speed_ratio(res, "slow", "fast", 4) < 5.5
    r4 = next(r for r in res if r.name == "fast" and r.batch_size == 4)
    assert abs(r4.images_per_second - 4 / r4.median_seconds) < 1e-9
    # per batch size and sampler: 1 warm-up + 3 timed + 1 memory call; order alternates
    assert sum(1 for c in calls if c == ("slow", 1)) == 5
    timed = [c[0] for c in calls if c[1] == 1][2:8]
    assert timed == ["slow", "fast", "fast", "slow", "slow", "fast"]


def test_memory_sees_a_large_allocation():
    def alloc(b):
        x = torch.ones(b * 2**20 // 4 * 64)  # 64 MB per batch element
        time.sleep(0.05)
        return x.sum()

    res = measure_speed({"alloc": alloc}, [2], repeats=1, warmup=0)
    assert res[0].peak_memory_mb > 64


def test_slow_sampler_skips_larger_batches():
    res = measure_speed({"s": lambda b: time.sleep(0.01 * b)}, [1, 8, 64], repeats=1, warmup=0,
                        max_seconds_per_call=0.05)
    assert [r.batch_size for r in res] == [1, 8]
