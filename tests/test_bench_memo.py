"""benchmarks/memo.py: a benchmark's evaluations kept on disk, so that a stopped benchmark re-run measures only
what it had not finished, keyed by what decides the number (the weights' content, not the folder's path)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench_loader import load_benchmark

from softdimo.config import DataConfig
from softdimo.sample import SamplingOptions


@pytest.fixture(scope="module")
def memo_mod():
    return load_benchmark("memo")


class Counting:
    """A stand-in for ``evaluate`` that counts its calls and returns a number that differs per call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []

    def __call__(self, model, metrics, num, data=None, seed=0, progress=True, sampling=None, prompts=None, **_):
        self.calls.append((model, sampling.temperature))
        return {"source": model, "n": num, "fid": 10.0 + len(self.calls), "seconds": 1.0}


def model_folder(path: Path, weights: bytes) -> str:
    path.mkdir(parents=True, exist_ok=True)
    (path / "mdm").mkdir(exist_ok=True)
    (path / "mdm" / "model.safetensors").write_bytes(weights)
    (path / "student.json").write_text(json.dumps({"sampler": {"temperature": 1.0}}))
    return str(path)


def test_a_repeated_evaluation_is_read_back_across_processes(memo_mod, tmp_path):
    model = model_folder(tmp_path / "a", b"weights-1")
    data, t1 = DataConfig(dataset="mnist"), SamplingOptions(temperature=1.0)
    fake = Counting()
    memo = memo_mod.EvalMemo(tmp_path / "memo.jsonl", fake)
    first = memo(model, ["fid"], 8, data, seed=0, progress=False, sampling=t1)
    again = memo(model, ["fid"], 8, data, seed=0, progress=False, sampling=t1)
    assert first == again and first["fid"] == 11.0 and len(fake.calls) == 1
    assert memo.summary()["reused"] == 1 and memo.summary()["measured"] == 1
    # a new process (a new EvalMemo on the same file): nothing measured again
    fake2 = Counting()
    memo2 = memo_mod.EvalMemo(tmp_path / "memo.jsonl", fake2)
    assert memo2(model, ["fid"], 8, data, seed=0, progress=False, sampling=t1)["fid"] == 11.0 and fake2.calls == []
    # what decides the number is in the key: τ, N, seed, metrics
    memo2(model, ["fid"], 8, data, seed=0, progress=False, sampling=SamplingOptions(temperature=2.0))
    memo2(model, ["fid"], 16, data, seed=0, progress=False, sampling=t1)
    memo2(model, ["fid"], 8, data, seed=1, progress=False, sampling=t1)
    memo2(model, ["fid", "pr"], 8, data, seed=0, progress=False, sampling=t1)
    assert len(fake2.calls) == 4
    s = memo2.summary()
    assert (s["reused"], s["measured"]) == (1, 4) and len(s["commits"]) == 1


def test_the_key_is_the_weights_content_not_the_path(memo_mod, tmp_path):
    a = model_folder(tmp_path / "a", b"weights-1")
    same = model_folder(tmp_path / "elsewhere", b"weights-1")  # the same student written to another folder
    retrained = model_folder(tmp_path / "b", b"weights-2")
    fake = Counting()
    memo = memo_mod.EvalMemo(tmp_path / "memo.jsonl", fake)
    opts = dict(seed=0, progress=False, sampling=SamplingOptions(temperature=1.0))
    memo(a, ["fid"], 8, DataConfig(), **opts)
    out = memo(same, ["fid"], 8, DataConfig(), **opts)
    assert len(fake.calls) == 1 and out["source"] == same  # the result names the folder asked for
    memo(retrained, ["fid"], 8, DataConfig(), **opts)
    assert len(fake.calls) == 2
    assert memo_mod.fingerprint("data:mnist:train") == "data:mnist:train"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .safetensors"):
        memo_mod.fingerprint(str(tmp_path / "empty"))


def test_a_line_cut_short_by_a_kill_is_measured_again(memo_mod, tmp_path):
    model = model_folder(tmp_path / "a", b"w")
    path = tmp_path / "memo.jsonl"
    opts = dict(seed=0, progress=False, sampling=SamplingOptions(temperature=1.0))
    memo_mod.EvalMemo(path, Counting())(model, ["fid"], 8, DataConfig(), **opts)
    whole = path.read_text()
    path.write_text(whole + whole[: len(whole) // 2])  # a second entry half written
    fake = Counting()
    memo = memo_mod.EvalMemo(path, fake)
    assert memo(model, ["fid"], 8, DataConfig(), **opts)["fid"] == 11.0 and fake.calls == []
    memo(model, ["fid"], 4, DataConfig(), **opts)
    assert len(fake.calls) == 1 and json.loads(path.read_text().splitlines()[-1])["result"]["n"] == 4
    # the entry written after the cut line is on a line of its own: a third process reads it back
    third = Counting()
    assert memo_mod.EvalMemo(path, third)(model, ["fid"], 4, DataConfig(), **opts)["n"] == 4 and third.calls == []


def test_numpy_and_torch_numbers_are_kept_as_numbers(memo_mod, tmp_path):
    import numpy as np
    import torch

    def evaluate(model, metrics, num, data=None, seed=0, progress=True, sampling=None, prompts=None, **_):
        return {"fid": np.float32(12.5), "recall": torch.tensor(0.25), "per_tag": np.array([1.0, 0.5]), "seconds": 1.0}

    model = model_folder(tmp_path / "a", b"w")
    opts = dict(seed=0, progress=False, sampling=SamplingOptions(temperature=1.0))
    first = memo_mod.EvalMemo(tmp_path / "memo.jsonl", evaluate)(model, ["fid"], 8, DataConfig(), **opts)
    again = memo_mod.EvalMemo(tmp_path / "memo.jsonl", evaluate)(model, ["fid"], 8, DataConfig(), **opts)
    assert first == again and first["fid"] == 12.5 and first["recall"] == 0.25 and first["per_tag"] == [1.0, 0.5]

    def odd(*a, **k):
        return {"fid": object()}

    with pytest.raises(TypeError, match="cannot be kept as JSON"):
        memo_mod.EvalMemo(tmp_path / "other.jsonl", odd)(model, ["fid"], 8, DataConfig(), **opts)
