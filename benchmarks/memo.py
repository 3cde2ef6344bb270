"""A benchmark's measurements kept as they are made, so a long benchmark can be stopped and re-run.

:class:`EvalMemo` wraps :func:`softdimo.evaluate.evaluate`: every result is appended to a JSON-lines file
under a key made of what decides the number (the model folder's *content*, the metrics, N, seed, data
and sampler options), and a later call with the same key returns the stored result instead of
measuring again. A re-run after a stop (a killed process, a machine handed back, a new session)
therefore repeats only what was not finished. Keys fingerprint the weights, not the folder's path, so
a student re-written to another temporary folder still hits, and a retrained one misses.

Every entry records the commit it was measured at (``softdimo.results.git_commit``); a benchmark that
reads entries back reports them (:meth:`EvalMemo.summary`), since its numbers then come from more than
one process.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Callable

from softdimo.config import DataConfig
from softdimo.evaluate import evaluate
from softdimo.results import git_commit
from softdimo.sample import SamplingOptions

FINGERPRINTED = (".safetensors", ".json")  # the files of a model folder that decide what it generates


def _plain(x: Any) -> Any:
    """JSON for the numpy / torch values a result may hold (scalars → numbers, arrays → lists)."""
    if hasattr(x, "tolist"):
        return x.tolist()
    raise TypeError(f"a {type(x).__name__} in an evaluation result cannot be kept as JSON")


def fingerprint(model: str) -> str:
    """sha256 over a model folder's weights and configs (name, then content, sorted by name); a source
    that is not a folder (``data:mnist:train``) is its own fingerprint."""
    path = Path(model)
    if not path.is_dir():
        return model
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in FINGERPRINTED)
    if not files:
        raise ValueError(f"{model} holds no {' or '.join(FINGERPRINTED)} files to fingerprint")
    for p in files:
        h.update(str(p.relative_to(path)).encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


class EvalMemo:
    """``evaluate`` with its results kept in ``path`` (JSON lines, one ``{"key", "commit", "result"}`` each)."""

    def __init__(self, path: str | Path, evaluate_fn: Callable[..., dict[str, Any]] = evaluate) -> None:
        self.path = Path(path)
        self._evaluate = evaluate_fn
        self._entries: dict[str, dict[str, Any]] = {}
        self.hits = 0
        self.misses = 0
        self._used: set[str] = set()
        if self.path.is_file():
            text = self.path.read_text()
            if text and not text.endswith("\n"):  # end a line cut short, so the next entry starts a line of its own
                with self.path.open("a") as f:
                    f.write("\n")
            for line in text.splitlines():
                if line.strip():  # a line cut short by a kill mid-write is dropped, not fatal
                    try:
                        entry = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    self._entries[entry["key"]] = entry

    @staticmethod
    def key(model: str, metrics: list[str] | tuple[str, ...], num: int, data: DataConfig | None, seed: int,
            sampling: SamplingOptions | None, prompts: list[dict[str, Any]] | None = None,
            batch_size: int | None = None) -> str:
        """What decides the result (``batch_size`` too: it sets how the sampler's random draws are split)."""
        parts = {"model": fingerprint(model), "metrics": sorted(metrics), "num": num, "seed": seed,
                 "data": dataclasses.asdict(data or DataConfig()),
                 "sampling": dataclasses.asdict(sampling or SamplingOptions()), "prompts": prompts,
                 "batch_size": batch_size}
        return json.dumps(parts, sort_keys=True, default=_plain)

    def __call__(self, model: str, metrics: list[str] | tuple[str, ...], num: int, data: DataConfig | None = None,
                 seed: int = 0, progress: bool = True, sampling: SamplingOptions | None = None,
                 prompts: list[dict[str, Any]] | None = None, **kwargs: Any) -> dict[str, Any] | None:
        """:func:`softdimo.evaluate.evaluate`'s signature and result (a copy, with ``source`` the model asked for)."""
        key = self.key(model, metrics, num, data, seed, sampling, prompts, kwargs.get("batch_size"))
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            result = self._evaluate(model, list(metrics), num, data, seed=seed, progress=progress, sampling=sampling,
                                    prompts=prompts, **kwargs)
            if result is None:  # a process other than rank 0 under torchrun: nothing to keep
                return None
            line = json.dumps({"key": key, "commit": git_commit(), "result": result}, default=_plain)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(line + "\n")
            entry = self._entries[key] = json.loads(line)  # what a re-run reads back, from the first call on
        else:
            self.hits += 1
        self._used.add(key)
        return {**entry["result"], "source": str(model)}

    def summary(self) -> dict[str, Any]:
        """What a results file says about the memo: where it is, results reused vs measured in this process,
        and the commits the results it returned were measured at."""
        return {"file": str(self.path), "reused": self.hits, "measured": self.misses,
                "commits": sorted({self._entries[k]["commit"] for k in self._used})}
