"""Determinism on CPU: the same seed gives bit-identical samples, metrics and trained weights.

Checked for a teacher (N-step MaskGIT sampler), a one-step student, `softdimo eval` metrics and a
training run repeated in a fresh process; a different seed must change the result (so the
checks cannot pass on a constant).
"""
from __future__ import annotations

import pytest
import torch

from softdimo.cli import main
from softdimo.config import DataConfig
from softdimo.distill import OneStepStudent
from softdimo.evaluate import evaluate
from softdimo.mdm import MaskGITSampler
from softdimo.sample import conditions_for, generate_images, load_generator
from tiny_models import TOK28, distill_args, folder_tensors, make_teacher, run_cli, same_tensors, write_generators

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    write_generators(root)
    make_teacher(tok=TOK28, sampler=MaskGITSampler(steps=3)).save_pretrained(root / "t28")
    return root


@pytest.mark.parametrize("kind", ["teacher", "student"])
def test_same_seed_same_samples(folders, kind):
    gen = load_generator(folders / kind)
    conds = conditions_for(gen, 12)
    draw = lambda seed, bs=5: generate_images(gen, conds, seed=seed, batch_size=bs)  # noqa: E731
    a = draw(7)
    assert torch.equal(a, draw(7))
    assert torch.equal(a, generate_images(load_generator(folders / kind), conds, seed=7, batch_size=5))  # reloaded
    assert not torch.equal(a, draw(8))


@pytest.mark.parametrize("kind", ["teacher", "student"])
def test_same_seed_same_png_files(folders, tmp_path, kind):
    """`softdimo sample` twice with one seed writes byte-identical PNGs."""
    outs = []
    for run, seed in (("a", 3), ("b", 3), ("c", 4)):
        out = tmp_path / f"{run}.png"
        assert main(["sample", "--model", str(folders / kind), "--labels", "0,1,2,3", "--num", "8",
                     "--seed", str(seed), "--out", str(out), "--no-progress"]) == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] and outs[0] != outs[2]


def test_same_seed_same_metrics(folders):
    run = lambda seed: evaluate(str(folders / "t28"), ["classifier_score", "domain_fid"], 8,  # noqa: E731
                                DataConfig(dataset="mnist"), batch_size=4, seed=seed, progress=False)
    a, b, c = run(1), run(1), run(2)
    strip = lambda d: {k: v for k, v in d.items() if k != "seconds"}  # noqa: E731
    assert strip(a) == strip(b)
    assert a["classifier_score"] != c["classifier_score"]


@pytest.mark.slow
def test_training_is_deterministic_across_processes(folders, tmp_path):
    """The same distill command in a fresh process and in this one ends with bit-identical weights."""
    res = run_cli(distill_args(folders / "teacher", tmp_path, "a", 3))
    assert res.returncode == 0, res.stderr[-2000:]
    assert main(distill_args(folders / "teacher", tmp_path, "b", 3)) == 0
    assert main(distill_args(folders / "teacher", tmp_path, "c", 3, "train.seed=1")) == 0
    final = lambda n: folder_tensors(tmp_path / "distill" / n / "final")  # noqa: E731
    assert same_tensors(final("a"), final("b"))
    assert not same_tensors(final("a"), final("c"))


# ---------------------------------------------------------------------- evaluation sampling over processes
class LabelImages:
    """A stand-in generator: image i is filled with its label plus a small seeded draw."""

    kind, cond_kind, num_classes = "label-images", "class", 10

    def generate(self, labels=None, prompts=None, options=None, generator=None):
        noise = torch.rand(len(labels), generator=generator) * 1e-3
        return (torch.tensor(labels, dtype=torch.float32) + noise)[:, None, None, None].expand(-1, 1, 2, 2)

    def describe(self, options=None):
        return {}


def test_sharded_evaluation_sampling_keeps_every_condition_in_order():
    from pathlib import Path

    from softdimo.evaluate import GeneratorSource
    from softdimo.eval.shard import draw, gather_in_order, shard_starts

    src = GeneratorSource(Path("x"), LabelImages())
    plain = torch.cat([b.images for b in draw(src, 10, 3, seed=5)])
    g = torch.Generator().manual_seed(5)  # one process: the plain sequential draw with the seed itself
    expected = torch.cat([LabelImages().generate(labels=list(range(i, min(10, i + 3))), generator=g)
                          for i in range(0, 10, 3)])
    assert torch.equal(plain, expected)
    # two processes: rank r draws batches r, r + 2, … with seed·2 + r; gathered back in order
    shares = {r: list(zip(shard_starts(10, 3, r, 2), src.batches(10, 3, 5, rank=r, world=2))) for r in (0, 1)}
    assert [s for s, _ in shares[0]] == [0, 6] and [s for s, _ in shares[1]] == [3, 9]
    gathered = torch.cat([b.images for b in gather_in_order(shares[1] + shares[0], world=1)])
    assert gathered[:, 0, 0, 0].round().tolist() == list(range(10))  # every label once, in order
    g10 = torch.Generator().manual_seed(10)
    assert torch.equal(gathered[:3], LabelImages().generate(labels=[0, 1, 2], generator=g10))
    assert not torch.equal(gathered, plain)  # other seeds than the single process (documented)
    src.shardable = False  # sources that are read, not sampled (folders, datasets): rank 0 reads them alone
    assert draw(src, 10, 3, seed=5, rank=1, world=2) is None
    assert torch.equal(torch.cat([b.images for b in draw(src, 10, 3, seed=5, rank=0, world=2)]), plain)


# ---------------------------------------------------------------------- test-time embedding optimisation
class Brightness:
    """A tiny differentiable reward: mean image brightness."""

    name = "brightness"

    def score(self, images, prompts):
        return images.float().mean(dim=(1, 2, 3))


def test_tteo_same_seed_same_images_and_scores(folders):
    from softdimo.rewards.base import CompositeReward
    from softdimo.tteo import tteo

    student = OneStepStudent.from_pretrained(folders / "student")
    rewards = CompositeReward([Brightness()], [1.0])
    run = lambda seed: tteo(student, rewards, labels=[1, 2, 3], iters=2, best_of=3,  # noqa: E731
                            generator=torch.Generator().manual_seed(seed))
    a, b, c = run(4), run(4), run(5)
    assert torch.equal(a.images, b.images) and torch.equal(a.ids, b.ids) and torch.equal(a.best, b.best)
    assert torch.equal(a.objective, b.objective) and torch.equal(a.scores["brightness"], b.scores["brightness"])
    assert not torch.equal(a.objective, c.objective)
