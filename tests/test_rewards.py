"""Rewards (docs/method.md §6–§7): protocol, normalisation, composites, the in-project reward networks, train-reward."""
from __future__ import annotations

import json
import sys
import types

import pytest
import torch

from softdimo.cli import main
from softdimo.config import DataConfig, load_config
from softdimo.data.world import WorldLayout
from softdimo.errors import ConfigError, DataError
from softdimo.mdm.text import TextEncoder
from softdimo.rewards import (CompositeReward, Reward, RewardTermConfig, RunningZScore, ScaledReward, build_composite,
                              build_reward, zscore_composite)
from softdimo.rewards.attribute import (AttributeClassifier, AttributeConfig, AttributeReward, log_prob_matrix,
                                        prompt_log_prob, prompt_specs, scene_targets)
from softdimo.rewards.evaluate import evaluate_reward
from softdimo.rewards.inputs import label_prompts, world_canvas
from softdimo.rewards.miniclip import MiniClipConfig, MiniClipImageEncoder, MiniClipReward
from softdimo.rewards.scenes import prompt_metadata, render_scenes, scene_key
from softdimo.rewards.train import RewardRunConfig
from softdimo.tokenizer import VQ_PRESETS, VQTokenizer

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(channels=(8, 16), convs_per_stage=1, hidden=32, norm_groups=4)
PROMPTS = ["a photo of a red 3", "a photo of three 7s", "a photo of a 9 right of a 2",
           "a photo of a white 4 and a red 6"]


class Brightness:
    """A toy reward: mean pixel value times a per-prompt factor (differentiable in the images)."""

    def __init__(self, name: str = "bright", factor: float = 1.0):
        self.name = name
        self.factor = factor

    def score(self, images, prompts):
        return self.factor * images.float().mean((1, 2, 3))


@pytest.fixture(scope="module")
def text():
    return TextEncoder(max_length=32)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("rewards")
    torch.manual_seed(0)
    AttributeClassifier(AttributeConfig(**TINY)).save_pretrained(root / "attribute")
    MiniClipImageEncoder(MiniClipConfig(**TINY)).save_pretrained(root / "miniclip")
    return root


# ---------------------------------------------------------------------- protocol, normalisation, composites
def test_reward_protocol_is_structural(folders):
    assert isinstance(Brightness(), Reward)
    assert isinstance(AttributeReward.from_pretrained(folders / "attribute"), Reward)


def test_scaled_reward_is_affine_and_keeps_gradients():
    x = torch.rand(3, 3, 8, 8, requires_grad=True)
    r = ScaledReward(Brightness(), scale=100.0, shift=0.5)
    out = r.score(x, ["p"] * 3)
    assert torch.allclose(out, (x.mean((1, 2, 3)) - 0.5) * 100)
    out.sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, 100 / x[0].numel()))
    assert r.name == "bright"


def test_running_zscore_updates_in_training_and_freezes_in_eval():
    r = RunningZScore(Brightness(), momentum=0.5, eps=1e-6)
    first = torch.stack([torch.full((3, 4, 4), v) for v in (0.2, 0.4, 0.6)])
    z = r.score(first, ["p"] * 3)  # the first batch initialises the moments
    assert torch.allclose(r.mean, torch.tensor(0.4)) and torch.allclose(z.mean(), torch.tensor(0.0), atol=1e-6)
    assert torch.allclose(z.std(unbiased=False), torch.tensor(1.0), atol=1e-4)
    second = first + 1.0
    var0 = torch.tensor([0.2, 0.4, 0.6]).var(unbiased=False)
    z2 = r.score(second, ["p"] * 3)  # normalised with the moments *before* this batch
    assert torch.allclose(z2, (torch.tensor([1.2, 1.4, 1.6]) - 0.4) / (var0.sqrt() + 1e-6), rtol=1e-4)
    assert torch.allclose(r.mean, torch.tensor(0.4 + 0.5 * 1.0)) and int(r.count) == 2
    r.eval()
    frozen = (r.mean.clone(), r.var.clone())
    r.score(second * 0, ["p"] * 3)
    assert torch.equal(r.mean, frozen[0]) and torch.equal(r.var, frozen[1])
    x = second.clone().requires_grad_(True)
    r.score(x, ["p"] * 3).sum().backward()  # gradient = ∇R / (σ + eps)
    assert torch.allclose(x.grad, torch.full_like(x, 1 / x[0].numel()) / (r.var.sqrt() + 1e-6))


def test_reward_loss_logs_the_raw_score_that_a_zscore_hides():
    from softdimo.distill.reward import reward_loss
    c = CompositeReward([RunningZScore(Brightness("z"), momentum=0.5), ScaledReward(Brightness("s"), scale=10.0),
                         Brightness("plain")], [1.0, 1.0, 1.0])
    for level in (0.2, 0.7):  # the raw reward rises; its z-score of a constant batch stays 0 on the first call
        x = torch.full((4, 3, 8, 8), level)
        _, logs = reward_loss(c, x, ["p"] * 4)
        assert logs["reward_raw_z"] == pytest.approx(level) and logs["reward_raw_s"] == pytest.approx(level)
        assert "reward_raw_plain" not in logs  # a term without a normaliser is logged raw as reward_plain
    assert logs["reward_s"] == pytest.approx(7.0) and logs["reward_plain"] == pytest.approx(0.7)
    assert c.raw_means() == pytest.approx({"z": 0.7, "s": 0.7})


def test_composite_is_the_weighted_sum_and_names_must_be_unique():
    x = torch.rand(2, 1, 4, 4)
    c = CompositeReward([Brightness("a", 1.0), Brightness("b", 3.0)], [2.0, -1.0])
    terms = c.score_terms(x, ["p", "q"])
    assert set(terms) == {"a", "b"} and c.names == ["a", "b"]
    assert torch.allclose(c.score(x, ["p", "q"]), 2 * x.mean((1, 2, 3)) - 3 * x.mean((1, 2, 3)))
    with pytest.raises(ConfigError, match="unique"):
        CompositeReward([Brightness(), Brightness()], [1.0, 1.0])
    with pytest.raises(ConfigError, match="at least one"):
        CompositeReward([], [])


def test_zscore_composite_sums_per_reward_zscores_across_candidates():
    a = torch.tensor([[1.0, 5.0], [2.0, 5.0], [6.0, 5.0]])  # [N=3, B=2]; column 1 is constant
    b = torch.tensor([[300.0, 1.0], [100.0, 3.0], [200.0, 2.0]])
    comp = zscore_composite({"a": a, "b": b})
    za = (a - a.mean(0)) / (a.std(0, unbiased=False) + 1e-6)
    zb = (b - b.mean(0)) / (b.std(0, unbiased=False) + 1e-6)
    assert torch.allclose(comp, za + zb)
    assert torch.allclose(comp[:, 1], zb[:, 1])  # a constant reward contributes nothing
    assert comp.argmax(0).tolist() == [2, 1]
    scaled = zscore_composite({"a": 1000 * a - 7, "b": b})  # invariant to each reward's scale
    assert torch.allclose(scaled, comp, atol=1e-4)
    weighted = zscore_composite({"a": a, "b": b}, {"a": 0.0, "b": 1.0})
    assert torch.allclose(weighted, zb)


# ---------------------------------------------------------------------- config and building
def test_build_reward_loads_in_project_kinds_and_normalises(folders):
    r = build_reward(RewardTermConfig(kind="attribute", path=str(folders / "attribute"), normalize="zscore",
                                      name="attr"))
    assert isinstance(r, RunningZScore) and r.name == "attr"
    m = build_reward(RewardTermConfig(kind="miniclip", path=str(folders / "miniclip"), normalize="none"))
    assert isinstance(m, MiniClipReward) and m.name == "miniclip"
    assert all(not p.requires_grad for p in m.parameters())  # rewards are frozen


def test_reward_config_errors(folders, monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="needs `path:`"):
        build_reward(RewardTermConfig(kind="miniclip"))
    with pytest.raises(ConfigError, match="not found"):
        build_reward(RewardTermConfig(kind="attribute", path=str(tmp_path / "missing")))
    with pytest.raises(ConfigError, match="no reward terms"):
        build_composite([])
    with pytest.raises(ConfigError, match="kind"):
        load_config(RewardTermConfig, None, ["kind=aesthetic"])
    with pytest.raises(ConfigError, match="zscore_momentum"):
        build_reward(RewardTermConfig(kind="attribute", path=str(folders / "attribute"), normalize="zscore",
                                      zscore_momentum=0.0))
    monkeypatch.setitem(sys.modules, "softdimo.rewards.adapters", types.ModuleType("softdimo.rewards.adapters"))
    with pytest.raises(ConfigError, match="load_adapter"):
        build_reward(RewardTermConfig(kind="hpsv2", path="somewhere"))


def test_adapter_kinds_go_through_load_adapter(monkeypatch):
    calls = []
    mod = types.ModuleType("softdimo.rewards.adapters")

    def load_adapter(kind, path, device):
        calls.append((kind, path, str(device)))
        return Brightness(kind)

    mod.load_adapter = load_adapter
    monkeypatch.setitem(sys.modules, "softdimo.rewards.adapters", mod)
    r = build_reward(RewardTermConfig(kind="imagereward", path="/weights/ir", normalize="scale", scale=2.0))
    assert calls == [("imagereward", "/weights/ir", "cpu")]
    x = torch.rand(2, 3, 8, 8)
    assert r.name == "imagereward" and torch.allclose(r.score(x, ["a", "b"]), 2 * x.mean((1, 2, 3)))


# ---------------------------------------------------------------------- inputs
def test_world_canvas_pastes_grey_digits_as_white_digits_and_resizes_rgb():
    grey = torch.zeros(2, 1, 28, 28)
    grey[:, :, 10:18, 12:16] = 1.0
    grey.requires_grad_(True)
    canvas = world_canvas(grey, 32)  # the default (slots) layout: centred in the first cell
    assert canvas.shape == (2, 3, 32, 32)
    bg = torch.tensor([128 / 255] * 3).view(1, 3, 1, 1)
    assert torch.allclose(canvas[..., 16:, :], bg.expand(2, 3, 16, 32))  # the world's background
    assert torch.allclose(canvas[..., :, 16:], bg.expand(2, 3, 32, 16))  # outside the first cell
    assert torch.allclose(canvas[:, :, 8, 8], torch.ones(2, 3), atol=1e-3)  # white ink at the cell's centre
    canvas.sum().backward()
    assert grey.grad.abs().sum() > 0
    free = world_canvas(grey, 32, WorldLayout(kind="free"))  # the free layout: the canvas centre
    assert torch.allclose(free[..., :3, :3], bg.expand(2, 3, 3, 3))
    assert torch.allclose(free[:, :, 16, 16], torch.ones(2, 3), atol=1e-3)
    assert torch.equal(world_canvas(grey, 32, WorldLayout(kind="slots")), canvas)
    with pytest.raises(DataError, match="slots-world canvas"):
        world_canvas(grey, 31)  # 31 px cannot be cut into 2×2 equal cells
    rgb = torch.rand(2, 3, 16, 16)
    assert world_canvas(rgb, 32).shape == (2, 3, 32, 32) and torch.equal(world_canvas(rgb, 16), rgb)
    with pytest.raises(DataError, match="C = 1 or 3"):
        world_canvas(torch.rand(2, 2, 8, 8))


def test_label_prompts_are_single_object_world_prompts():
    assert label_prompts([3, 8]) == ["a photo of a 3", "a photo of an 8"]
    assert prompt_metadata(label_prompts([3])[0])["tag"] == "single_object"
    with pytest.raises(DataError, match="0–9"):
        label_prompts([10])


# ---------------------------------------------------------------------- attribute reward
def test_scene_targets_and_prompt_specs_match_the_world_rules():
    objects = [[{"class": "3", "color": "red", "bbox": (0, 0, 8, 12)},
                {"class": "7", "color": "blue", "bbox": (20, 0, 28, 12)}]]
    t = scene_targets(objects, max_count=4)
    assert t.counts[0].tolist() == [0, 0, 0, 1, 0, 0, 0, 1, 0, 0]
    assert t.colors[0, 3, 0] == 1 and t.colors[0, 7, 4] == 1 and t.colors[0].sum() == 2
    assert t.relations[0, 3, 7, 0] == 1 and t.relations[0, 7, 3, 1] == 1 and t.relations[0].sum() == 2  # left/right
    s = prompt_specs(PROMPTS, max_count=4)
    assert s.counts[1, 7] == 3 and s.counts[1].sum() == 3
    assert s.colors[0, 0].tolist() == [3, 0] and s.color_mask[0].tolist() == [True, False]
    assert s.relation[2].tolist() == [9, 2, 1] and s.relation_mask.tolist() == [False, False, True, False]
    assert s.color_mask[3].tolist() == [True, True]
    with pytest.raises(DataError, match="not a digit-world prompt"):
        prompt_specs(["a photo of a cat"], max_count=4)


def test_attribute_log_prob_is_the_diagonal_of_the_matrix_and_a_log_probability():
    torch.manual_seed(0)
    model = AttributeClassifier(AttributeConfig(**TINY)).eval()
    x = torch.rand(4, 3, 32, 32)
    logits = model(x)
    spec = prompt_specs(PROMPTS, 4)
    diag = prompt_log_prob(logits, spec)
    mat = log_prob_matrix(logits, spec)
    assert mat.shape == (4, 4) and torch.allclose(torch.diagonal(mat), diag, atol=1e-5)
    assert (diag < 0).all()
    # only named digits: fewer (negative) terms, so a higher log-probability
    assert (prompt_log_prob(logits, spec, absent_digits=False) > diag).all()
    # the count part is a proper distribution: exp-sum over every count of digit 3 is 1
    lc = torch.log_softmax(logits.counts, -1)
    assert torch.allclose(lc[:, 3].exp().sum(-1), torch.ones(4))


def test_reward_gradients_reach_the_logits_through_decode_soft(folders, text):
    """§6: R(Dec(Emb_Dec(z)), c) is differentiable in the student's logits z."""
    torch.manual_seed(0)
    tok = VQTokenizer(VQ_PRESETS["tiny"])
    h, w = tok.grid
    rewards = [AttributeReward.from_pretrained(folders / "attribute"),
               MiniClipReward.from_pretrained(folders / "miniclip", text=text)]
    for reward in rewards:
        z = torch.randn(4, h * w, tok.num_tokens, requires_grad=True)
        images = tok.decode_soft(torch.softmax(z, -1))
        reward.score(images, PROMPTS).sum().backward()
        assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0, reward.name
        assert all(p.grad is None for p in reward.parameters())  # the reward's own weights get nothing


def test_miniclip_reward_is_scaled_cosine(folders, text):
    r = MiniClipReward.from_pretrained(folders / "miniclip", text=text)
    x = torch.rand(4, 3, 32, 32)
    s = r.score(x, PROMPTS)
    v = r.encoder(x)
    _, _, t = text.encode(PROMPTS)
    assert torch.allclose(s, 100 * torch.nn.functional.cosine_similarity(v, t), atol=1e-4)
    assert torch.allclose(torch.diagonal(r.score_matrix(x, PROMPTS)), s, atol=1e-4)
    with pytest.raises(DataError, match="one prompt per image"):
        r.score(x, PROMPTS[:2])


# ---------------------------------------------------------------------- evaluation helper
def test_scene_key_ignores_wording():
    same = [("a photo of a 3 and a 7", "a photo of a 7 and a 3"),
            ("a photo of a 3 left of a 7", "a photo of a 7 right of a 3"),
            ("a photo of a red 3 and a blue 7", "a photo of a blue 7 and a red 3")]
    for a, b in same:
        assert scene_key(prompt_metadata(a)) == scene_key(prompt_metadata(b))
    assert scene_key(prompt_metadata("a photo of a red 3 and a blue 7")) != \
        scene_key(prompt_metadata("a photo of a blue 3 and a red 7"))


def test_evaluate_reward_scores_an_oracle_perfectly_and_an_indifferent_reward_never():
    scenes = render_scenes(DataConfig(dataset="world", world_test_size=12), "test")
    truth = {scenes.images[i].numpy().tobytes(): scene_key(scenes.metadata[i]) for i in range(len(scenes))}

    class Oracle:  # 1 for the prompts that ask for the scene shown, 0 otherwise
        def score_matrix(self, images, prompts):
            keys = [truth[(img * 255).round().to(torch.uint8).numpy().tobytes()] for img in images]
            return torch.tensor([[float(k == scene_key(prompt_metadata(p))) for p in prompts] for k in keys])

    class Flat:
        def score_matrix(self, images, prompts):
            return torch.zeros(images.shape[0], len(prompts))

    good = evaluate_reward(Oracle(), scenes, batch_size=5)
    assert good["top1"] == 1.0 and good["pairwise"] == 1.0
    assert {k.split("/")[0] for k in good if "/" in k} == {m["tag"] for m in scenes.metadata}
    assert evaluate_reward(Flat(), scenes)["pairwise"] == 0.0  # a tie is not a win


# ---------------------------------------------------------------------- train-reward
def test_reward_run_config_checks_its_data():
    with pytest.raises(ValueError, match="world"):
        RewardRunConfig(data=DataConfig(dataset="mnist"))
    with pytest.raises(ConfigError, match="image_size"):
        load_config(RewardRunConfig, None, ["data.dataset=world", "data.world_size_px=48"])


@pytest.mark.parametrize("kind", ["attribute", "miniclip"])
def test_train_reward_command_writes_a_loadable_reward(tmp_path, capsys, kind):
    out = tmp_path / "runs"
    arch = [f"{kind}.channels=[8, 16]", f"{kind}.hidden=32", f"{kind}.norm_groups=4"]
    args = ["train-reward", "--config", f"configs/world/reward_{kind}.yaml", "data.world_train_size=24",
            "train.max_steps=3", "train.batch_size=8", f"train.out_dir={out}", "train.run_name=r",
            "train.sample_every=3", "train.checkpoint_every=0", "train.log_every=1", "--no-progress", *arch]
    assert main(args) == 0, capsys.readouterr().err
    run = out / "train-reward" / "r"
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(torch.isfinite(torch.tensor(r[f"{kind}/loss"])) for r in rows)
    assert (run / "samples" / "step-3.png").is_file()
    reward = build_reward(RewardTermConfig(kind=kind, path=str(run / "final"), normalize="none"))
    assert reward.score(torch.rand(2, 3, 32, 32), PROMPTS[:2]).shape == (2,)


def test_attribute_training_fits_a_few_scenes(tmp_path):
    """The stage's loss goes down on a handful of scenes (the heads learn from the scene targets)."""
    from softdimo.config import TrainConfig
    from softdimo.rewards.attribute import AttributeStage
    from softdimo.train import train

    cfg = RewardRunConfig(kind="attribute", attribute=AttributeConfig(**TINY),
                          data=DataConfig(dataset="world", world_train_size=16),
                          train=TrainConfig(max_steps=40, batch_size=16, lr=3e-3, checkpoint_every=0, sample_every=0,
                                            log_every=1, seed=0, device="cpu"))
    cfg.augment.enabled = False
    train(AttributeStage(cfg), cfg.train, tmp_path / "run", progress=False)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    first, last = rows[0]["attribute/loss"], sum(r["attribute/loss"] for r in rows[-5:]) / 5
    assert last < 0.7 * first
