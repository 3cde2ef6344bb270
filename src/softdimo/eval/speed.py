"""Speed and memory harness: images/s and peak memory of samplers, timed side by side.

Several samplers are timed *alternately* in one process (the order rotates every repeat), after
warm-up calls that are not counted, and the median of the repeats is reported, so that the
ratio between two samplers is trustworthy on a noisy shared machine even when absolute times
are not. Peak memory is the CUDA allocator's peak on a GPU; on the CPU it is the peak increase
of the process's resident set size during the call, sampled every few milliseconds by a
background thread, after handing freed heap pages back to the OS (:func:`release_freed_memory`)
so that memory kept from earlier calls does not hide the call's own peak (allocations freed
between samples can be missed; it is an estimate).
"""
from __future__ import annotations

import os
import statistics
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import torch

Sampler = Callable[[int], Any]  # sampler(batch_size) -> images (anything; the result is dropped)


@dataclass
class SpeedResult:
    """Timing of one sampler at one batch size."""

    name: str
    batch_size: int
    median_seconds: float  # median wall time of one call producing batch_size images
    images_per_second: float
    seconds_per_image: float
    peak_memory_mb: float
    repeats: int
    device: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: fall back to the (monotonic) peak reported by getrusage
        import resource  # Unix only: peak memory where the platform has it

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _PeakRSS:
    """Context manager sampling the resident set size in a background thread."""

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.peak = 0
        self.base = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(self.interval)

    def __enter__(self) -> "_PeakRSS":
        self.base = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def increase_mb(self) -> float:
        return max(0, self.peak - self.base) / 2**20


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_call(fn: Sampler, batch: int, device: torch.device) -> float:
    """Peak memory (MB) of one call: CUDA allocator peak, or RSS increase on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        with torch.no_grad():
            fn(batch)
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    release_freed_memory()
    with _PeakRSS() as m, torch.no_grad():
        fn(batch)
    return m.increase_mb


def release_freed_memory() -> None:
    """Hand memory the allocator keeps after ``free`` back to the OS (glibc ``malloc_trim``; else nothing).

    Called before a CPU memory measurement so that the RSS increase of the call is not hidden by
    pages freed by earlier calls and still held by the process.
    """
    try:
        import ctypes  # platform-specific: glibc's malloc_trim, where there is one

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure_speed(samplers: dict[str, Sampler], batch_sizes: Sequence[int], repeats: int = 5,
                  warmup: int = 1, device: torch.device | str = "cpu",
                  max_seconds_per_call: float | None = None) -> list[SpeedResult]:
    """Time every sampler at every batch size, alternating samplers within each repeat.

    ``max_seconds_per_call``: skip larger batch sizes of a sampler once one call took longer
    (keeps sweeps up to batch 256 affordable on a CPU).
    """
    device = torch.device(device)
    results: list[SpeedResult] = []
    skipped: set[str] = set()
    names = list(samplers)
    for batch in batch_sizes:
        active = [n for n in names if n not in skipped]
        if not active:
            break
        for name in active:  # warm-up, not timed
            for _ in range(warmup):
                with torch.no_grad():
                    samplers[name](batch)
        times: dict[str, list[float]] = {n: [] for n in active}
        for r in range(repeats):
            order = active[r % len(active):] + active[:r % len(active)]
            for name in order:
                _sync(device)
                t0 = time.perf_counter()
                with torch.no_grad():
                    samplers[name](batch)
                _sync(device)
                times[name].append(time.perf_counter() - t0)
        for name in active:
            med = statistics.median(times[name])
            mem = _peak_memory_call(samplers[name], batch, device)
            results.append(SpeedResult(name=name, batch_size=batch, median_seconds=med,
                                       images_per_second=batch / med, seconds_per_image=med / batch,
                                       peak_memory_mb=mem, repeats=repeats, device=str(device)))
            if max_seconds_per_call is not None and med > max_seconds_per_call:
                skipped.add(name)
    return results


def speed_ratio(results: list[SpeedResult], slow: str, fast: str, batch_size: int) -> float:
    """How many times faster ``fast`` is than ``slow`` at ``batch_size`` (median times)."""
    by = {(r.name, r.batch_size): r for r in results}
    return by[(slow, batch_size)].median_seconds / by[(fast, batch_size)].median_seconds
