"""`softdimo refine` with reward terms (docs/method.md §6): L = dimo_weight·L_DiMO + w_reward·L_reward, no GAN."""
from __future__ import annotations

import json

import pytest
import torch

from softdimo.cli import main
from softdimo.config import DataConfig, load_config
from softdimo.distill import OneStepStudent
from softdimo.distill.gan import GANConfig
from softdimo.distill.refine import RefineRunConfig, RefineStage
from softdimo.distill.reward import RewardLossConfig, random_shift, reward_images
from softdimo.errors import ConfigError
from softdimo.rewards import RewardTermConfig
from softdimo.rewards.attribute import AttributeClassifier, AttributeConfig
from softdimo.rewards.miniclip import MiniClipConfig, MiniClipImageEncoder
from softdimo.teachers import NativeTeacher
from softdimo.train import Tick, train
from tiny_models import ready, tiny_train, write_distilled

pytestmark = pytest.mark.usefixtures("one_thread")
TINY_REWARD = dict(channels=(8, 16), convs_per_stage=1, hidden=32, norm_groups=4)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny class teacher, a 2-step Di[M]O student of it and two tiny (random) in-project rewards."""
    root = tmp_path_factory.mktemp("reward_refine")
    teacher, student = write_distilled(root)
    AttributeClassifier(AttributeConfig(**TINY_REWARD)).save_pretrained(root / "attribute")
    MiniClipImageEncoder(MiniClipConfig(**TINY_REWARD)).save_pretrained(root / "miniclip")
    terms = [RewardTermConfig(kind="attribute", path=str(root / "attribute"), normalize="zscore"),
             RewardTermConfig(kind="miniclip", path=str(root / "miniclip"), weight=0.5, normalize="scale", scale=0.1)]
    return {"teacher": teacher, "student": student, "terms": terms, "root": root}


def reward_cfg(world, steps: int = 2, w_reward: float = 1.0, **kw) -> RefineRunConfig:
    reward = kw.pop("reward", RewardLossConfig(terms=list(world["terms"]), w_reward=w_reward))
    # a folder that does not exist: with the GAN off, no real image may be read
    data = DataConfig(dataset="folder", root=str(world["root"] / "no-such-images"))
    return RefineRunConfig(train=tiny_train(steps), teacher=str(world["teacher"]), student=str(world["student"]),
                           gan=GANConfig(w_gan=0.0), data=data, reward=reward, **kw)


def test_soft_reward_images_are_decode_soft_of_the_softmax_and_gumbel_decodes_a_hard_draw(world):
    teacher = NativeTeacher.from_pretrained(world["teacher"])
    z = torch.randn(2, 16, teacher.num_tokens, requires_grad=True)
    soft = reward_images(teacher, z, RewardLossConfig())
    assert torch.allclose(soft, teacher.decode_soft(torch.softmax(z, -1)), atol=1e-6)
    g = torch.Generator().manual_seed(0)
    hard = reward_images(teacher, z, RewardLossConfig(embedding="gumbel"), generator=g)
    from softdimo.soft import gumbel_noise

    ids = (z.detach() + gumbel_noise(z.shape, torch.Generator().manual_seed(0))).argmax(-1)
    assert torch.allclose(hard, teacher.decode(ids), atol=1e-5)  # forward: exactly the hard draw
    hard.sum().backward()
    assert z.grad.abs().sum() > 0  # backward: the Gumbel-softmax relaxation


def test_random_shift_translates_each_image_within_its_range_and_keeps_the_gradient():
    x = torch.zeros(64, 1, 9, 9)
    x[:, :, 4, 4] = 1.0  # one bright pixel at the centre of every image
    x.requires_grad_(True)
    out = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    where = out.detach().flatten(1).argmax(1)
    rows, cols = where // 9, where % 9
    assert rows.min() >= 2 and rows.max() <= 6 and cols.min() >= 2 and cols.max() <= 6
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 10  # one draw per image, not one per batch
    out.sum().backward()
    assert torch.all(x.grad[:, :, 4, 4] == 1.0)  # the pixel is moved, not lost
    again = random_shift(x.detach(), 2, torch.Generator().manual_seed(0))
    assert torch.equal(again, out.detach())


def test_reward_images_shift_only_when_asked(world):
    teacher = NativeTeacher.from_pretrained(world["teacher"])
    z = torch.randn(4, 16, teacher.num_tokens)
    plain = reward_images(teacher, z, RewardLossConfig(), generator=torch.Generator().manual_seed(0))
    shifted = reward_images(teacher, z, RewardLossConfig(shift_px=3), generator=torch.Generator().manual_seed(0))
    assert torch.equal(plain, teacher.decode_soft(torch.softmax(z, -1)))
    assert shifted.shape == plain.shape and not torch.equal(shifted, plain)
    with pytest.raises(ValueError):
        RewardLossConfig(shift_px=-1)


def test_reward_refinement_trains_without_a_gan_or_real_data(world, tmp_path):
    cfg = reward_cfg(world, steps=2)
    stage = RefineStage(cfg)
    result = train(stage, cfg.train, tmp_path / "run", progress=False)
    assert stage.disc is None and [ph.name for ph in stage.phases()] == ["generator", "aux"]
    assert "rewards" in stage.modules() and "disc" not in stage.modules()
    start = OneStepStudent.from_pretrained(world["student"]).mdm.state_dict()
    assert not torch.equal(stage.student.state_dict()["head.weight"], start["head.weight"])
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"generator/reward", "generator/reward_attribute", "generator/reward_miniclip", "generator/dimo_loss",
            "generator/soft_cov_trace", "generator/soft_gap"} <= set(rows[-1])
    assert "generator/gan_loss" not in rows[-1]
    zs = stage.rewards.terms[0]
    assert int(zs.count) > 0  # the running z-score saw the training batches
    info = OneStepStudent.from_pretrained(result.final_dir).training_info["refine"]
    assert info["reward"]["w_reward"] == 1.0 and info["reward"]["terms"][0]["kind"] == "attribute"


def test_reward_gradient_reaches_the_student(world):
    stage = ready(RefineStage(reward_cfg(world, w_reward=1.0)))
    grads = {}
    for w in (1.0, 3.0):  # L = L_DiMO + w·L_reward on the same draws: the parts separate linearly
        stage.cfg.reward.w_reward = w
        stage.rewards.eval()  # freeze the running z-score so both passes normalise alike
        stage.student.zero_grad()
        stage.ctx.generator.manual_seed(1)
        loss, logs = stage.generator_loss(Tick(0))
        loss.backward()
        grads[w] = stage.student.head.weight.grad.clone()
    reward_part = (grads[3.0] - grads[1.0]) / 2
    assert reward_part.abs().sum() > 0 and torch.isfinite(reward_part).all()
    assert (grads[1.0] - reward_part).abs().sum() > 0  # and the Di[M]O part is still there


@pytest.mark.parametrize("variant", ["reward_only", "gumbel", "with_gan"])
def test_reward_ablations_run_by_config_alone(world, tmp_path, variant):
    from toy_data import digit_folder

    kw: dict = {}
    if variant == "reward_only":
        kw["dimo_weight"] = 0.0
    if variant == "gumbel":
        kw["reward"] = RewardLossConfig(terms=list(world["terms"]), w_reward=1.0, embedding="gumbel")
    cfg = reward_cfg(world, steps=1, **kw)
    if variant == "with_gan":
        digit_folder(tmp_path / "data", per_class=1)
        cfg.gan = GANConfig(w_gan=1.0)
        cfg.data = DataConfig(dataset="folder", root=str(tmp_path / "data"))
        cfg.token_cache = False
    stage = RefineStage(cfg)
    result = train(stage, cfg.train, tmp_path / "run", progress=False)
    expected = {"reward_only": ["generator"], "gumbel": ["generator", "aux"],
                "with_gan": ["generator", "aux", "disc"]}[variant]
    assert [ph.name for ph in stage.phases()] == expected
    assert OneStepStudent.from_pretrained(result.final_dir).sample(labels=[0, 1]).shape == (2, 1, 8, 8)


def test_reward_config_errors(world):
    with pytest.raises(ValueError, match="needs at least one entry"):
        RewardLossConfig(w_reward=1.0)
    with pytest.raises(ValueError, match="nothing would train"):
        reward_cfg(world, w_reward=0.0, dimo_weight=0.0)
    with pytest.raises(ConfigError, match="reward.w_reward"):
        load_config(RefineRunConfig, "configs/world/soft_reward.yaml", ["reward.w_reward=-1"])
    with pytest.raises(ConfigError, match="reward.terms\\[0\\].kind"):
        load_config(RefineRunConfig, "configs/world/soft_reward.yaml", ["reward.terms=[{kind: aesthetics}]"])
    cfg = reward_cfg(world)
    cfg.reward.terms = [RewardTermConfig(kind="miniclip", path=str(world["root"] / "missing"))]
    with pytest.raises(ConfigError, match="not found"):
        ready(RefineStage(cfg))


def test_refine_command_with_the_soft_reward_preset(world, tmp_path, capsys):
    out = tmp_path / "runs"
    terms = (f"reward.terms=[{{kind: attribute, path: {world['root'] / 'attribute'}, normalize: zscore}}, "
             f"{{kind: miniclip, path: {world['root'] / 'miniclip'}}}]")
    args = ["refine", "--config", "configs/world/soft_reward.yaml", f"teacher={world['teacher']}",
            f"student={world['student']}", "train.max_steps=2", "train.batch_size=4", f"train.out_dir={out}",
            "train.run_name=r", "train.sample_every=2", "train.checkpoint_every=0", "train.log_every=1",
            "dimo.teacher_cfg=1.0", terms, "--no-progress"]
    assert main(args) == 0, capsys.readouterr().err
    final = out / "refine" / "r" / "final"
    manifest = json.loads((final / "student.json").read_text())
    assert manifest["distillation"]["refine"]["gan"]["w_gan"] == 0.0
    assert [t["kind"] for t in manifest["distillation"]["refine"]["reward"]["terms"]] == ["attribute", "miniclip"]
    assert (out / "refine" / "r" / "samples" / "step-2.png").is_file()
