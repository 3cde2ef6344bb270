"""benchmarks/reward_gap.py: the within-tag AUC and the gains against the first student, from hand-made numbers."""
from __future__ import annotations

import math

import pytest
from bench_loader import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("reward_gap")


def test_auc_is_computed_within_each_tag(bench):
    # The reward orders correct above incorrect images within each tag (AUC 1), but counting's
    # scale (100s) is not position's: pooled over both tags the AUC would be 12/16.
    tags = ["counting"] * 4 + ["position"] * 4
    scores = [101.0, 102.0, 99.0, 98.0, 3.0, 4.0, 1.0, 2.0]
    correct = [True, True, False, False, True, True, False, False]
    assert bench.within_tag_auc(tags, scores, correct) == pytest.approx(1.0)
    assert bench.within_tag_auc(tags[4:], [1.0, 2.0, 3.0, 4.0], correct[4:]) == pytest.approx(0.0)


def test_auc_counts_ties_half_and_skips_one_sided_tags(bench):
    tags = ["colors"] * 2 + ["single_object"] * 2
    assert bench.within_tag_auc(tags, [1.0, 1.0, 5.0, 6.0], [True, False, True, True]) == pytest.approx(0.5)
    assert bench.within_tag_auc(["colors"], [1.0], [True]) is None


def test_gains_are_against_the_first_student_with_a_paired_se(bench):
    tags = ["colors"] * 4 + ["position"] * 4
    clusters = [0, 0, 1, 1, 2, 2, 3, 3]  # four prompts, two images each

    def row(ge, attr, correct):
        return {"geneval": ge, "geneval_se": 0.1, "reward_hard": {"attribute": attr},
                "reward_soft": {"attribute": attr + 1}, "correct": correct, "tags": tags, "clusters": clusters}
    base = [True, False, True, False, False, False, True, True]
    better = [True, True, True, True, False, False, True, True]  # +1 on one image of each colour prompt
    out = bench.gains({"dimo": row(0.50, -2.0, base), "reward": row(0.75, -1.5, better),
                       "same": row(0.50, -1.0, base)})
    assert set(out) == {"reward", "same"} and out["reward"]["minus"] == "dimo"
    assert out["reward"]["geneval"] == pytest.approx(0.25)
    assert out["same"]["geneval_se"] == 0.0  # identical images: no paired uncertainty, whatever the rows' SEs
    assert out["reward"]["geneval_se"] == 0.0  # every colour prompt gained exactly ½: no spread over prompts
    assert out["same"]["reward_hard"]["attribute"] == pytest.approx(1.0)
    assert out["same"]["reward_soft"]["attribute"] == pytest.approx(1.0)
    uneven = [True, True, True, False, False, False, True, True]  # +½ on one colour prompt, 0 on the other
    se = bench.gains({"dimo": row(0.5, 0, base), "x": row(0.625, 0, uneven)})["x"]["geneval_se"]
    assert se == pytest.approx(math.sqrt(0.125) / math.sqrt(2) / 2)  # sd(½, 0)/√2 for colours, 0 for position; /T


def test_gains_refuse_rows_of_other_prompts(bench):
    a = {"geneval": 0.5, "geneval_se": 0.0, "reward_hard": {}, "reward_soft": {}, "correct": [True],
         "tags": ["colors"], "clusters": [0]}
    with pytest.raises(ValueError, match="same prompts"):
        bench.gains({"a": a, "b": {**a, "clusters": [1]}})


def test_pairs_name_two_students_and_seeds_give_mean_and_spread(bench):
    assert bench.parse_pairs("b:a, c:b", ["a", "b", "c"]) == [("b", "a"), ("c", "b")]
    for bad in ("b-a", "b:z", "a:a"):
        with pytest.raises(SystemExit, match="--pairs"):
            bench.parse_pairs(bad, ["a", "b"])
    tags, clusters = ["colors"] * 2, [0, 1]

    def row(correct):
        return {"geneval": sum(correct) / 2, "reward_hard": {}, "reward_soft": {}, "correct": correct,
                "tags": tags, "clusters": clusters}
    g = bench.paired_gain(row([True, True]), row([True, False]), ("b", "a"))
    assert g["minus"] == "a" and g["geneval"] == pytest.approx(0.5)
    per_seed = {0: {"rows": {"a": {"geneval": 0.5}, "b": {"geneval": 0.75}},
                    "gains": {"b": {"minus": "a", "geneval": 0.25, "geneval_se": 0.1}}},
                1: {"rows": {"a": {"geneval": 0.25}, "b": {"geneval": 0.75}},
                    "gains": {"b": {"minus": "a", "geneval": 0.5, "geneval_se": 0.2}}}}
    out = bench.over_seeds(per_seed)
    assert out["seeds"] == [0, 1] and out["rows"]["a"]["mean"] == pytest.approx(0.375)
    b = out["gains"]["b"]
    assert (b["minus"], b["mean"], b["values"]) == ("a", pytest.approx(0.375), [0.25, 0.5])
    assert b["sd"] == pytest.approx(0.125 * math.sqrt(2)) and b["se_mean"] == pytest.approx(0.15)
    assert bench.over_seeds({3: per_seed[0]})["gains"]["b"]["sd"] == 0.0
