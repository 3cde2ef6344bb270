"""benchmarks/t2i_world.py: the rows it plans, its prompts, TTEO drawn the way the benchmark draws, the prompt-clustered
standard error and the targets from the row values."""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from bench_loader import load_benchmark

from softdimo.distill import OneStepSampler, OneStepStudent
from softdimo.mdm import MDM_PRESETS, MaskedTransformer
from softdimo.rewards import CompositeReward
from softdimo.sample import StudentGenerator
from softdimo.tokenizer import VQ_PRESETS, VQTokenizer
from softdimo.tteo import TTEOConfig, load_tteo_config

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("t2i_world")


class Brightness:
    name = "bright"

    def score(self, images, prompts):
        return 1e3 * images.float().mean((1, 2, 3))


@pytest.fixture(scope="module")
def tiny_gen(one_thread):
    torch.manual_seed(0)
    tok = VQ_PRESETS["tiny"]
    cfg = dataclasses.replace(MDM_PRESETS["tiny"], grid=tok.grid, num_tokens=tok.codebook_size, cond="text")
    return StudentGenerator(OneStepStudent(MaskedTransformer(cfg), VQTokenizer(tok), OneStepSampler()).eval())


class StandInScorer:
    """The benchmark's Scorer without checkpoints: an image is "correct" when brighter than 0.5, FID = 100 · mean."""

    made: list = []
    clustered_se = None  # the benchmark's, set by the test

    def __init__(self, terms, data, num, device, batch_size, cache_dir, progress):
        self.terms, self.data, self.num = terms, data, num
        self.rewards = CompositeReward([Brightness()], [1.0])
        self.reference = f"stand-in:test[:{num}]"
        StandInScorer.made.append(self)

    def evaluators(self):
        return {"geneval": "stand-in"}

    def __call__(self, images, metadata, clusters):
        correct = [bool(x.mean() > 0.5) for x in images]
        tags = [m["tag"] for m in metadata]
        per_tag = {t: sum(c for c, u in zip(correct, tags) if u == t) / tags.count(t) for t in dict.fromkeys(tags)}
        se, per_tag_se = self.clustered_se(tags, clusters, correct)
        reward = float(self.rewards.score(images, [m["prompt"] for m in metadata]).mean())
        return {"geneval": sum(per_tag.values()) / len(per_tag), "per_tag": per_tag, "geneval_se": se,
                "per_tag_se": per_tag_se, "reward": reward, "fid": 100 * float(images.mean())}


def rows_args(**folders) -> argparse.Namespace:
    names = ("teacher", "dimo", "reward", "gumbel_reward", "reward_only")
    return argparse.Namespace(teacher_steps=16, **{n: folders.get(n) for n in names})


def test_rows_keyed_by_name_and_the_tteo_knobs_from_the_config(bench):
    cfg = TTEOConfig(iters=3, best_of=2, temperature=0.5)
    specs, skipped = bench.plan_rows(rows_args(teacher="T", dimo="D", reward_only="R"), 2.0, cfg)
    # no reward student: TTEO and best-of-N start from Di[M]O, with the config's iterations and N
    assert [(s.name, s.model, s.tteo_iters, s.best_of) for s in specs] == [
        ("teacher", "T", None, None), ("dimo", "D", None, None), ("tteo", "D", 3, 2), ("best_of_n", "D", 0, 2),
        ("reward_only", "R", None, None)]
    assert skipped == ["reward", "gumbel_reward"]
    assert (specs[0].options.steps, specs[0].options.cfg_scale) == (16, 2.0) and "N=16 cfg=2" in specs[0].label
    assert specs[2].options.temperature == specs[3].options.temperature == 0.5  # the config's final-draw τ
    assert "3 iters, best of 2" in specs[2].label
    specs, skipped = bench.plan_rows(rows_args(reward="W"), None, cfg)
    assert [(s.name, s.model) for s in specs] == [("reward", "W"), ("tteo", "W"), ("best_of_n", "W")]
    assert skipped == ["teacher", "dimo", "gumbel_reward", "reward_only"]
    assert bench.plan_rows(rows_args(teacher="T"), 3.0, cfg)[1] == [
        "dimo", "reward", "tteo", "best_of_n", "gumbel_reward", "reward_only"]


def test_default_tteo_configs_load_and_flags_override(bench):
    cfg = load_tteo_config(ROOT / "configs/world/tteo.yaml", iters=2, best_of=None)
    assert cfg.iters == 2 and cfg.best_of == 4 and cfg.lr == pytest.approx(0.0025)
    assert [t.kind for t in cfg.rewards] == ["miniclip", "attribute"]
    assert [t.path for t in cfg.rewards] == ["checkpoints/reward-miniclip-world", "checkpoints/reward-attribute-world"]
    assert all((ROOT / t.path).is_dir() for t in cfg.rewards)  # the shipped rewards
    assert (ROOT / bench.DEFAULT_TTEO_CONFIG).is_file()
    assert bench.miniclip_term(cfg.rewards) is cfg.rewards[0]
    assert bench.miniclip_term(cfg.rewards[1:]) is None  # no mini-CLIP term: no clip_score


def test_prompts_held_out_or_from_a_file_tags_interleaved(bench, tmp_path):
    held = bench.load_prompts(None, 12)
    assert [m["tag"] for m in held[:6]] == [m["tag"] for m in held[6:]] and len({m["tag"] for m in held}) == 6
    # a file listed tag by tag (as the paraphrased set is): every prefix still covers the tags
    meta = [{"tag": "colors", "include": [{"class": "1", "count": 1, "color": "red"}], "prompt": f"red one {i}"}
            for i in range(3)] + [{"tag": "single_object", "include": [{"class": "2", "count": 1}], "prompt": "a two"}]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(m) + "\n" for m in meta))
    assert [m["prompt"] for m in bench.load_prompts(str(path), 3)] == ["red one 0", "a two", "red one 1"]
    paraphrased = ROOT / "src" / "softdimo" / "data" / "world_prompts_paraphrased.jsonl"
    assert len({m["tag"] for m in bench.load_prompts(str(paraphrased), 6)}) == 6
    (tmp_path / "p.txt").write_text("a photo of a 3\n")
    with pytest.raises(SystemExit, match="metadata"):
        bench.load_prompts(str(tmp_path / "p.txt"), 3)


def test_tteo_rows_draw_reproducibly_with_the_config_knobs(bench, tiny_gen):
    gen = tiny_gen
    tcfg = TTEOConfig(iters=2, best_of=3, lr=0.5)
    specs, _ = bench.plan_rows(rows_args(dimo="D"), None, tcfg)
    rewards = CompositeReward([Brightness()], [1.0])
    prompts = ["a photo of a red 3", "a photo of two 7s", "a photo of a 1"]
    for spec in specs[1:]:  # tteo and best_of_n: under no_grad, as the benchmark and measure_speed call them
        sampler = bench.batch_sampler(spec, gen, tcfg, rewards, rewards)
        a, b = (bench.draw(sampler, prompts, batch_size=2, seed=0) for _ in range(2))
        assert a.shape == (3, 1, 8, 8) and torch.equal(a, b)
    with pytest.raises(SystemExit, match="one-step student"):
        bench.batch_sampler(specs[1], SimpleNamespace(kind="native-teacher"), tcfg, rewards, rewards)


def test_clustered_se_by_hand(bench):
    # tag A: prompts p0 (1, 1), p1 (0, 1), p2 (0, 0) → means 1, ½, 0: sd ½, se_A = ½ / √3
    # tag B: p3 (1, 1), p4 (0, 0) → means 1, 0: sd 1/√2, se_B = ½
    # tag C: one prompt → 0;  overall = √(se_A² + se_B² + 0) / 3 = √(1/12 + 1/4) / 3
    tags = ["A"] * 6 + ["B"] * 4 + ["C"] * 2
    clusters = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    correct = [1, 1, 0, 1, 0, 0, 1, 1, 0, 0, 1, 0]
    overall, per_tag = bench.clustered_se(tags, clusters, [bool(c) for c in correct])
    assert per_tag == pytest.approx({"A": 0.5 / math.sqrt(3), "B": 0.5, "C": 0.0})
    assert overall == pytest.approx(math.sqrt(1 / 12 + 1 / 4) / 3)
    # images of one prompt are one unit: the order of the images does not matter, the clustering does
    assert bench.clustered_se(tags[::-1], clusters[::-1], correct[::-1])[0] == pytest.approx(overall)
    assert bench.clustered_se(["A"] * 4, [0, 1, 2, 3], [True, True, False, False])[0] == \
        pytest.approx(math.sqrt(1 / 3) / 2)  # four prompts of one image each: sd √(1/3), se √(1/3)/2


def row(geneval: float, se: float, fid: float = 40.0, reward: float = 0.0, seconds: float = 0.01, **extra) -> dict:
    return {"geneval": geneval, "geneval_se": se, "fid": fid, "reward": reward, "seconds_per_image": seconds, **extra}


def test_targets_hold_fail_and_are_shown_only_beyond_their_standard_error(bench):
    rows = {"teacher": row(0.60, 0.02), "dimo": row(0.55, 0.02, fid=40.0, reward=0.1),
            "reward": row(0.66, 0.02, fid=50.0, reward=0.8, seconds=0.02),
            "tteo": row(0.70, 0.03, seconds=0.1, tteo_iters=4, best_of=4),
            "best_of_n": row(0.69, 0.03, seconds=0.06, tteo_iters=0, best_of=4),
            "reward_only": row(0.50, 0.02, fid=45.0, reward=1.5)}
    t = bench.compute_targets(rows)
    assert set(t) == {"teacher_in_range", "dimo_ge_0.85x_teacher", "reward_ge_dimo_plus_0.08", "reward_ge_teacher",
                      "tteo_ge_reward_plus_0.05", "tteo_gt_best_of_n", "reward_fid_le_1.2x_dimo",
                      "reward_only_hacking"}
    # holds and shown: 0.60 is 0.15 inside [0.45, 0.85], se 0.02
    assert t["teacher_in_range"]["holds"] and t["teacher_in_range"]["shown"]
    assert t["teacher_in_range"]["gap"] == pytest.approx(0.15)
    # holds, shown: 0.55 ≥ 0.85 · 0.60 = 0.51; gap 0.04 > √(0.02² + (0.85 · 0.02)²) ≈ 0.026
    d = t["dimo_ge_0.85x_teacher"]
    assert d["threshold"] == pytest.approx(0.51) and d["gap"] == pytest.approx(0.04)
    assert d["gap_se"] == pytest.approx(math.hypot(0.02, 0.017)) and d["holds"] and d["shown"]
    assert d["values"] == {"dimo": 0.55, "teacher": 0.60} and d["se"] == {"dimo": 0.02, "teacher": 0.02}
    # holds, shown: 0.66 ≥ 0.55 + 0.08 by 0.03 > √(0.02² + 0.02²) ≈ 0.028
    r = t["reward_ge_dimo_plus_0.08"]
    assert r["gap"] == pytest.approx(0.03) and r["holds"] and r["shown"]
    # holds, shown: 0.66 ≥ 0.60 by 0.06 > 0.028
    assert t["reward_ge_teacher"]["holds"] and t["reward_ge_teacher"]["shown"]
    # fails: 0.70 < 0.66 + 0.05
    f = t["tteo_ge_reward_plus_0.05"]
    assert f["gap"] == pytest.approx(-0.01) and not f["holds"] and not f["shown"]
    # holds, but a gap (0.01) smaller than its se (√2 · 0.03) is not shown
    b = t["tteo_gt_best_of_n"]
    assert b["holds"] and not b["shown"] and b["gap_se"] == pytest.approx(math.hypot(0.03, 0.03)) and b["best_of"] == 4
    # FID: 50 > 1.2 · 40 = 48 fails; no standard error, so no `shown`
    fid = t["reward_fid_le_1.2x_dimo"]
    assert fid["threshold"] == pytest.approx(48.0) and not fid["holds"] and "shown" not in fid
    # reward only raises the reward over Di[M]O while GenEval-like falls below the reward student's: hacking
    h = t["reward_only_hacking"]
    assert h["reward_up"] and h["geneval_down"] and not h["fid_up"] and h["holds"]
    assert bench.latency_ratios(rows) == pytest.approx({"tteo": 5.0, "best_of_n": 3.0})

    # the verdicts move with the numbers
    rows["reward_only"] = row(0.70, 0.02, fid=45.0, reward=0.05)
    rows["reward"]["fid"] = 47.0
    rows["teacher"] = row(0.84, 0.02)  # inside the range by 0.01 < se: holds, not shown
    t = bench.compute_targets(rows)
    assert not t["reward_only_hacking"]["holds"] and t["reward_fid_le_1.2x_dimo"]["holds"]
    assert t["teacher_in_range"]["holds"] and not t["teacher_in_range"]["shown"]
    assert not t["reward_ge_teacher"]["holds"]

    # a target whose rows are missing is left out; with no reward student TTEO starts from Di[M]O
    t = bench.compute_targets({"dimo": rows["dimo"], "tteo": rows["tteo"], "best_of_n": rows["best_of_n"]})
    assert set(t) == {"tteo_gt_best_of_n"}
    assert bench.base_student({"dimo": rows["dimo"], "tteo": rows["tteo"]}) == "dimo"
    assert bench.latency_ratios({"dimo": rows["dimo"], "tteo": rows["tteo"]}) == pytest.approx({"tteo": 10.0})
    assert bench.compute_targets({}) == {} and bench.latency_ratios({"teacher": rows["teacher"]}) == {}


def test_run_writes_rows_keyed_by_name_with_their_se_timing_and_targets(bench, tiny_gen, monkeypatch):
    monkeypatch.setattr(bench, "load_generator", lambda path, device: tiny_gen)
    monkeypatch.setattr(bench, "Scorer", StandInScorer)
    monkeypatch.setattr(StandInScorer, "clustered_se", staticmethod(bench.clustered_se))
    args = bench.parser().parse_args([
        "--teacher", "", "--dimo", "D", "--reward", "W", "--tteo-config", str(ROOT / "configs/world/tteo.yaml"),
        "--tteo-iters", "1", "--best-of", "2", "--data-config", str(ROOT / "configs/world/teacher.yaml"),
        "--prompts", "3", "--images-per-prompt", "2", "--batch-size", "4", "--speed-batch", "2",
        "--speed-repeats", "1", "--no-progress"])
    metrics, config = bench.run(args)
    json.dumps(metrics), json.dumps(config)  # what write_results stores
    scorer = StandInScorer.made[-1]
    assert scorer.data.world_layout == "slots" and scorer.num == 6  # FID reference: the data config's world, N
    assert [t.path for t in scorer.terms] == ["checkpoints/reward-miniclip-world",
                                              "checkpoints/reward-attribute-world"]
    rows = metrics["rows"]
    assert list(rows) == ["dimo", "reward", "tteo", "best_of_n"]
    assert metrics["skipped"] == ["teacher", "gumbel_reward", "reward_only"]
    assert (rows["tteo"]["tteo_iters"], rows["tteo"]["best_of"], rows["best_of_n"]["tteo_iters"]) == (1, 2, 0)
    assert rows["dimo"]["model"] == "D" and rows["tteo"]["model"] == "W" and metrics["tteo"]["student"] == "reward"
    for r in rows.values():
        assert {"label", "geneval", "per_tag", "geneval_se", "fid", "seconds_per_image", "n", "sampler"} <= set(r)
        assert r["n"] == 6 and r["seconds_per_image"] > 0
    assert rows["dimo"]["geneval"] == rows["reward"]["geneval"]  # same folder, same seed: the same images
    assert (metrics["tteo"]["iters"], metrics["tteo"]["best_of"], metrics["tteo"]["lr"]) == (1, 2, 0.0025)
    assert set(metrics["tteo_latency_ratio"]) == {"tteo", "best_of_n"}
    assert set(metrics["targets"]) == {"reward_ge_dimo_plus_0.08", "tteo_ge_reward_plus_0.05", "tteo_gt_best_of_n",
                                       "reward_fid_le_1.2x_dimo"}
    assert metrics["num_prompts"] == 3 and len(metrics["prompts_per_tag"]) == 3


def test_tteo_lr_settings_parse_and_reject_bad_items():
    lr_bench = load_benchmark("tteo_lr")
    assert lr_bench.parse_settings("0x0,8x0.0025") == [(0, 0.0), (8, 0.0025)]
    for bad in ("8", "x0.1", "8x", "-1x0.1", "4x-0.2"):
        with pytest.raises(SystemExit):
            lr_bench.parse_settings(bad)
