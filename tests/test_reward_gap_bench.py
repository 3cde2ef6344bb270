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


def test_gains_are_against_the_first_student(bench):
    def row(ge, se, attr):
        return {"geneval": ge, "geneval_se": se, "reward_hard": {"attribute": attr}, "reward_soft": {"attribute": attr + 1}}
    out = bench.gains({"dimo": row(0.50, 0.03, -2.0), "reward": row(0.56, 0.04, -1.5), "only": row(0.45, 0.0, -1.0)})
    assert set(out) == {"reward", "only"}
    assert out["reward"]["minus"] == "dimo"
    assert out["reward"]["geneval"] == pytest.approx(0.06)
    assert out["reward"]["geneval_se"] == pytest.approx(math.hypot(0.03, 0.04))
    assert out["only"]["reward_hard"]["attribute"] == pytest.approx(1.0)
    assert out["only"]["reward_soft"]["attribute"] == pytest.approx(1.0)
