"""TTEO and best-of-N (docs/method.md §7): the API, its invariants and `softdimo tteo`."""
from __future__ import annotations

import json

import pytest
import torch

from softdimo.cli import main
from softdimo.distill import OneStepStudent
from softdimo.errors import DataError
from softdimo.mdm import MaskGITSampler
from softdimo.rewards import CompositeReward, RewardTermConfig, build_composite, zscore_composite
from softdimo.rewards.attribute import AttributeClassifier, AttributeConfig
from softdimo.tteo import TTEOConfig, load_tteo_config, tteo
from tiny_models import make_teacher
from tiny_models import make_student as tiny_student

pytestmark = pytest.mark.usefixtures("one_thread")
TINY_REWARD = dict(channels=(8, 16), convs_per_stage=1, hidden=32, norm_groups=4)


class Brightness:
    """Toy reward: factor × mean pixel value."""

    def __init__(self, name: str = "bright", factor: float = 1e4):
        self.name, self.factor = name, factor

    def score(self, images, prompts):
        return self.factor * images.float().mean((1, 2, 3))


class Darkness(Brightness):
    def score(self, images, prompts):
        return -super().score(images, prompts)


def make_student(cond: str = "class", temperature: float = 1.0, seed: int = 0, **mdm) -> OneStepStudent:
    """The shared tiny student of a ``cond`` teacher, sampling at τ = ``temperature``."""
    return tiny_student(make_teacher(seed, cond=cond, **mdm), temperature=temperature)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("tteo")
    make_student().save_pretrained(root / "student")
    torch.manual_seed(1)
    AttributeClassifier(AttributeConfig(**TINY_REWARD)).save_pretrained(root / "attribute")
    return root


def test_tteo_changes_no_weight_and_raises_the_mean_reward(folders):
    student = make_student()
    before = {k: v.clone() for k, v in student.state_dict().items()}
    flags = [p.requires_grad for p in student.parameters()]
    rewards = CompositeReward([Brightness()], [1.0])
    labels = list(range(10))
    res = tteo(student, rewards, labels=labels, iters=4, lr=0.2, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(v, student.state_dict()[k]) for k, v in before.items())
    assert [p.requires_grad for p in student.parameters()] == flags and not student.training
    assert all(p.grad is None for p in student.parameters())
    # the soft objective climbs at every SGD step, and the hard images the student outputs follow
    trace = res.objective[0].mean(-1)
    assert (trace[1:] > trace[:-1]).all()
    assert res.scores["bright"].mean() > res.initial_scores["bright"].mean()
    plain = tteo(student, rewards, labels=labels, iters=0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(plain.scores["bright"], res.initial_scores["bright"])  # a paired baseline: same draws
    # the opposite reward moves the same draws the other way
    down = tteo(student, CompositeReward([Darkness("dark")], [1.0]), labels=labels, iters=4,
                generator=torch.Generator().manual_seed(0))
    assert -down.scores["dark"].mean() < plain.scores["bright"].mean()  # darker than the untouched draws
    assert res.images.shape == (10, 1, 8, 8) and res.ids.shape == (10, 16)


def test_tteo_is_reproducible_on_a_fixed_seed():
    student = make_student()
    rewards = CompositeReward([Brightness()], [1.0])
    a = tteo(student, rewards, labels=[1, 2, 3], iters=2, best_of=2, generator=torch.Generator().manual_seed(5))
    b = tteo(student, rewards, labels=[1, 2, 3], iters=2, best_of=2, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.ids, b.ids) and torch.equal(a.composite, b.composite)
    with torch.no_grad():  # a caller's no_grad (e.g. a timing loop) does not stop the optimisation
        c = tteo(student, rewards, labels=[1, 2, 3], iters=2, best_of=2, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.ids, c.ids) and torch.equal(a.objective, c.objective)


def test_best_of_n_returns_the_argmax_of_the_composite():
    student = make_student(temperature=3.0)
    rewards = CompositeReward([Brightness("b", 1e3), Brightness("c", 1.0)], [1.0, 2.0])
    select = CompositeReward([Brightness("sel_bright", 1.0), Darkness("sel_dark", 0.5)], [1.0, 3.0])
    res = tteo(student, rewards, labels=[0, 1, 2, 3], iters=1, best_of=5, select=select,
               generator=torch.Generator().manual_seed(0))
    assert set(res.scores) == {"sel_bright", "sel_dark"} and res.composite.shape == (5, 4)
    expected = zscore_composite(res.scores, {"sel_bright": 1.0, "sel_dark": 3.0})
    assert torch.allclose(res.composite, expected)
    assert torch.equal(res.best, res.composite.argmax(0))
    # the returned images are the selected candidates' tokens, decoded
    assert torch.allclose(res.images, student.decode(res.ids).float())
    bright = res.images.mean((1, 2, 3)) * 1.0
    assert torch.allclose(res.selected("sel_bright"), bright, atol=1e-5)
    single = tteo(student, rewards, labels=[0, 1], iters=0, best_of=1, generator=torch.Generator().manual_seed(0))
    assert single.best.tolist() == [0, 0] and torch.equal(single.composite, torch.zeros(1, 2))


def test_labels_work_with_the_attribute_reward_and_prompts_with_a_text_student(folders):
    rewards = build_composite([RewardTermConfig(kind="attribute", path=str(folders / "attribute"),
                                                normalize="scale", scale=100.0)])
    res = tteo(make_student(), rewards, labels=[3, 8], iters=3, best_of=2,
               generator=torch.Generator().manual_seed(0))  # scored as "a photo of a 3" / "an 8"
    assert res.scores["attribute"].shape == (2, 2) and (res.scores["attribute"] < 0).all()  # log-probabilities
    assert (res.objective[:, -1].mean() > res.objective[:, 0].mean())
    text = make_student(cond="text")
    prompts = ["a photo of a red 3", "a photo of three 7s"]
    res = tteo(text, rewards, prompts=prompts, iters=2, best_of=2, generator=torch.Generator().manual_seed(0))
    assert res.images.shape == (2, 1, 8, 8) and (res.objective[:, -1].mean() > res.objective[:, 0].mean())
    with pytest.raises(DataError, match="not a digit-world prompt"):
        tteo(text, rewards, prompts=["a photo of a cat"], iters=1)
    with pytest.raises(DataError, match="0–9"):  # a 12-class model's class 11 has no digit-world prompt
        tteo(make_student(num_classes=12), rewards, labels=[11], iters=1)


def test_tteo_argument_errors():
    student = make_student()
    rewards = CompositeReward([Brightness()], [1.0])
    with pytest.raises(DataError, match="best_of"):
        tteo(student, rewards, labels=[1], best_of=0)
    with pytest.raises(DataError, match="labels"):
        tteo(student, rewards, prompts=["a photo of a 3"])  # a class student needs labels
    with pytest.raises(ValueError, match="best_of"):
        TTEOConfig(best_of=0)


def test_tteo_config_flags_override_the_preset():
    cfg = load_tteo_config("configs/world/tteo.yaml", ["soft_temperature=0.5"], iters=2, best_of=None, lr=0.1)
    assert (cfg.iters, cfg.best_of, cfg.lr, cfg.soft_temperature) == (2, 4, 0.1, 0.5)
    assert [t.kind for t in cfg.rewards] == ["miniclip", "attribute"]


def test_tteo_command_writes_images_and_every_candidates_scores(folders, tmp_path, capsys):
    reward = f"rewards=[{{kind: attribute, path: {folders / 'attribute'}, normalize: scale, scale: 100.0}}]"
    out = tmp_path / "out"
    args = ["tteo", "--model", str(folders / "student"), "--labels", "3,8", "--num", "4", "--iters", "2",
            "--best-of", "3", "--out", str(out), "--batch-size", "3", "--no-progress", reward]
    assert main(args) == 0, capsys.readouterr().err
    assert "tteo: 4 images" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("*.png")) == [f"{i:06d}.png" for i in range(4)]
    record = json.loads((out / "samples.json").read_text())
    assert record["labels"] == [3, 8, 3, 8] and record["tteo"]["best_of"] == 3 and record["tteo"]["iters"] == 2
    rows = record["tteo_scores"]
    assert len(rows) == 4 and all(len(r["composite"]) == 3 for r in rows)
    assert all(r["selected"] == max(range(3), key=lambda n: r["composite"][n]) for r in rows)
    grid = tmp_path / "grid.png"
    assert main(["tteo", "--model", str(folders / "student"), "--labels", "1", "--iters", "1", "--best-of", "1",
                 "--out", str(grid), "--no-progress", reward]) == 0
    assert grid.is_file()
    # user mistakes: an existing output, a teacher folder, prompts for a class model
    assert main(args) == 2 and "not empty" in capsys.readouterr().err
    teacher = tmp_path / "teacher"
    make_teacher(sampler=MaskGITSampler(steps=2)).save_pretrained(teacher)
    assert main(["tteo", "--model", str(teacher), "--labels", "1", "--out", str(tmp_path / "t"), reward]) == 2
    assert "one-step student" in capsys.readouterr().err
    assert main(["tteo", "--model", str(folders / "student"), "--prompt", "a photo of a 3",
                 "--out", str(tmp_path / "p"), reward]) == 2
    assert "class-conditional" in capsys.readouterr().err
