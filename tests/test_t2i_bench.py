"""benchmarks/t2i_world.py: the rows it plans, TTEO drawn the way the benchmark draws, targets from the row values."""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from softdimo.distill import OneStepSampler, OneStepStudent
from softdimo.mdm import MDM_PRESETS, MaskedTransformer
from softdimo.rewards import CompositeReward
from softdimo.sample import StudentGenerator
from softdimo.tokenizer import VQ_PRESETS, VQTokenizer

pytestmark = pytest.mark.usefixtures("one_thread")
SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "t2i_world.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("t2i_world_bench", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


class Brightness:
    name = "bright"

    def score(self, images, prompts):
        return 1e3 * images.float().mean((1, 2, 3))


def test_rows_tteo_draw_and_targets_follow_the_row_values():
    bench = load_bench()
    args = argparse.Namespace(teacher="T", dimo="D", reward=None, gumbel_reward=None, reward_only="R",
                              tteo_iters=[4, 2], best_of=3)
    specs, skipped = bench.plan_rows(args, 2.0)
    # no reward student: TTEO and best-of-N start from Di[M]O; iterations in increasing order
    assert [(s.kind, s.model, s.tteo_iters) for s in specs] == [
        ("teacher", "T", None), ("dimo", "D", None), ("tteo", "D", 2), ("tteo", "D", 4), ("best_of_n", "D", 0),
        ("reward_only", "R", None)]
    assert skipped == ["reward", "gumbel_reward"] and specs[0].options.steps == 16 and specs[0].options.cfg_scale == 2
    assert {s.best_of for s in specs[2:5]} == {3}

    # a TTEO row draws under no_grad as the benchmark and measure_speed call it, reproducibly, one image per prompt
    torch.manual_seed(0)
    tok = VQ_PRESETS["tiny"]
    cfg = dataclasses.replace(MDM_PRESETS["tiny"], grid=tok.grid, num_tokens=tok.codebook_size, cond="text")
    gen = StudentGenerator(OneStepStudent(MaskedTransformer(cfg), VQTokenizer(tok), OneStepSampler()).eval())
    sampler = bench.batch_sampler(specs[3], gen, CompositeReward([Brightness()], [1.0]))
    prompts = ["a photo of a red 3", "a photo of two 7s", "a photo of a 1"]
    a, b = (bench.draw(sampler, prompts, batch_size=2, seed=0) for _ in range(2))
    assert a.shape == (3, 1, 8, 8) and torch.equal(a, b)
    with pytest.raises(SystemExit, match="one-step student"):
        bench.batch_sampler(specs[3], SimpleNamespace(kind="native-teacher"), None)

    values = {"teacher": (0.40, 1.0, 30.0, 0.2), "dimo": (0.30, 1.0, 40.0, 0.01), "tteo-2": (0.45, 2.0, 41.0, 0.05),
              "tteo-4": (0.52, 2.5, 42.0, 0.07), "best_of_n": (0.35, 1.5, 40.0, 0.03),
              "reward_only": (0.20, 3.0, 39.0, 0.01)}
    rows = []
    for s in specs:
        key = f"tteo-{s.tteo_iters}" if s.kind == "tteo" else s.kind
        g, r, f, sec = values[key]
        rows.append({"label": s.label, "kind": s.kind, "tteo_iters": s.tteo_iters, "geneval": g, "reward": r,
                     "fid": f, "seconds_per_image": sec})
    t = bench.compute_targets(rows)
    chain = t["geneval_chain"]
    assert chain["order"] == "dimo < tteo-2 <= tteo-4" and chain["all_hold"]
    assert chain["links"]["tteo-2 <= tteo-4"] == {"lhs": 0.45, "rhs": 0.52, "holds": True}
    tv = t["tteo_vs_teacher"]  # the most-iterations TTEO row against teacher + 0.10
    assert tv["row"] == specs[3].label and tv["threshold"] == pytest.approx(0.50) and tv["holds"]
    ro = t["reward_only_vs_dimo"]
    assert ro["reward_up"] and ro["geneval_down"] and not ro["fid_up"] and ro["hacking"]
    assert bench.latency_ratios(rows) == pytest.approx({specs[2].label: 5.0, specs[3].label: 7.0,
                                                        specs[4].label: 3.0})
    # the booleans move with the numbers, nothing is fixed in advance
    rows[3]["geneval"] = 0.44  # tteo-4 below tteo-2 and below teacher + 0.10
    rows[5]["reward"] = 0.5  # reward only no longer raises the reward
    t = bench.compute_targets(rows)
    assert not t["geneval_chain"]["links"]["tteo-2 <= tteo-4"]["holds"] and not t["geneval_chain"]["all_hold"]
    assert t["geneval_chain"]["links"]["dimo < tteo-2"]["holds"]
    assert not t["tteo_vs_teacher"]["holds"] and not t["reward_only_vs_dimo"]["hacking"]
