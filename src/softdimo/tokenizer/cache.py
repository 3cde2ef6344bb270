"""A dataset's images as token ids, tokenized once and cached on disk.

The train split is tokenized **once** by the frozen tokenizer (batched, no grad) into an id
tensor [N, L]. For the built-in datasets (mnist, fashion, world) the ids are also cached under
``$SOFTDIMO_CACHE/tokens`` (default ``~/.cache/softdimo/tokens``), keyed by a hash of the
tokenizer's weights and config plus the dataset's identity and size, so later runs skip the
encoding. Image folders are never cached (their files may change under the same path). Used by
``softdimo train-teacher`` (its training data) and ``softdimo refine`` (the discriminator's real
images).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..config import DataConfig, to_dict
from ..data.world import world_identity
from ..pretrained import load_tensors, save_tensors
from .vq import VQTokenizer

CACHEABLE = ("mnist", "fashion", "world")


def token_cache_dir() -> Path:
    """``$SOFTDIMO_CACHE/tokens`` if set, else ``~/.cache/softdimo/tokens``."""
    env = os.environ.get("SOFTDIMO_CACHE")
    return (Path(env).expanduser() if env else Path.home() / ".cache" / "softdimo") / "tokens"


def _cache_key(tokenizer_dir: Path, data: DataConfig, n: int) -> str:
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        h.update((tokenizer_dir / name).read_bytes())
    ident = {"dataset": data.dataset, "split": "train", "n": n}
    if data.dataset == "world":
        # identity {} for the default layout; world_version 2: the default became the slots layout
        # (keys without it hold tokens of the earlier free default and are never read again)
        ident.update(size_px=data.world_size_px, seed=data.world_seed, train_size=data.world_train_size,
                     world_version=2, **world_identity(data))
    h.update(json.dumps(ident, sort_keys=True).encode())
    return h.hexdigest()[:24]


@torch.no_grad()
def tokenize_dataset(tokenizer: VQTokenizer, data, n: int, batch_size: int, device: torch.device,
                     progress: bool = True) -> torch.Tensor:
    """Token ids [n, L] (int16 when K ≤ 32767) of the first ``n`` images of ``data``."""
    out = []
    dtype = torch.int16 if tokenizer.num_tokens <= 32767 else torch.int32
    # disable=None: a bar on terminals only (no wall of progress lines in logs)
    for i in tqdm(range(0, n, batch_size), desc="tokenizing", disable=None if progress else True, leave=False):
        x = data.images_uint8(list(range(i, min(n, i + batch_size)))).to(device).float() / 255.0
        out.append(tokenizer.encode(x).reshape(x.shape[0], -1).to("cpu", dtype))
    return torch.cat(out)


def cached_token_ids(tokenizer: VQTokenizer, tokenizer_dir: Path, data_cfg: DataConfig, data, n: int,
                     use_cache: bool, batch_size: int, device: torch.device, is_main: bool = True) -> torch.Tensor:
    """Token ids [n, L] of the first ``n`` train images, from the disk cache when it holds them.

    Only built-in datasets are cached (key: the tokenizer's files + the dataset's identity and n);
    only the main process writes the cache.
    """
    path = None
    if use_cache and data_cfg.dataset in CACHEABLE:
        path = token_cache_dir() / f"{_cache_key(tokenizer_dir, data_cfg, n)}.safetensors"
        if path.is_file():
            ids = load_tensors(path)["ids"]
            if ids.shape == (n, tokenizer.grid[0] * tokenizer.grid[1]):
                return ids
    ids = tokenize_dataset(tokenizer, data, n, batch_size, device, progress=is_main)
    if path is not None and is_main:
        save_tensors({"ids": ids}, path, metadata={"tokenizer": str(tokenizer_dir),
                                                   "data": json.dumps(to_dict(data_cfg))})
    return ids


__all__ = ["CACHEABLE", "token_cache_dir", "tokenize_dataset", "cached_token_ids"]
