"""Evaluation sampling sharded across processes, gathered back in order.

Under ``torchrun --nproc_per_node N -m softdimo eval --model GENERATOR …`` process r draws the
batches r, r + N, r + 2N, … of the evaluated set, with its own generator seeded by
``seed · N + r`` (the training loop's per-process seed rule), and the batches are gathered back in
their original order: every image keeps its condition (label or prompt) and the set is
deterministic for a given (seed, N). With one process this is exactly the plain sequential draw.
Only rank 0 goes on to compute metrics and write results. Sources that are read rather than
sampled (dataset splits, image folders) are read by rank 0 alone. A source opts in to sharding
with ``shardable = True`` and ``batches(num, batch_size, seed, rank=…, world=…)``.
"""
from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def process_group() -> tuple[int, int]:
    """(rank, world size): from torch.distributed, or torchrun's environment (joined through accelerate)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        from accelerate import PartialState  # heavy: accelerate, only under torchrun

        PartialState(cpu=not torch.cuda.is_available())
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard_starts(num: int, batch_size: int, rank: int, world: int) -> range:
    """First indices of the batches process ``rank`` of ``world`` draws: rank·B, (rank + world)·B, …"""
    return range(rank * batch_size, num, world * batch_size)


def gather_in_order(mine: list[tuple[int, Any]], world: int) -> list[Any]:
    """Every process's ``(start, batch)`` pairs, on every process, sorted by start index."""
    if world == 1:
        return [b for _, b in sorted(mine, key=lambda x: x[0])]
    parts: list[list[tuple[int, Any]] | None] = [None] * world
    dist.all_gather_object(parts, mine)
    return [b for _, b in sorted((x for part in parts for x in part or []), key=lambda x: x[0])]


def draw(source: Any, num: int, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> list[Any] | None:
    """All batches of ``source`` in order (None on ranks other than 0 when rank 0 alone reads)."""
    if world > 1 and getattr(source, "shardable", False):
        starts = shard_starts(num, batch_size, rank, world)
        mine = list(zip(starts, source.batches(num, batch_size, seed, rank=rank, world=world)))
        return gather_in_order(mine, world)
    if rank != 0:
        return None
    return list(source.batches(num, batch_size, seed))


__all__ = ["process_group", "shard_starts", "gather_in_order", "draw"]
