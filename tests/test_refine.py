"""`softdimo refine` (Soft-Di[M]O, docs/method.md §5): the stage on the shared loop, its ablations and the CLI."""
from __future__ import annotations

import json

import pytest
import torch
from toy_data import digit_folder

from softdimo.cli import main
from softdimo.config import DataConfig
from softdimo.distill import OneStepStudent
from softdimo.distill.gan import GANConfig
from softdimo.distill.refine import RefineRunConfig, RefineStage
from softdimo.distill.train import DiMOConfig
from softdimo.errors import ConfigError
from softdimo.mdm import MaskedTransformer
from softdimo.teachers import NativeTeacher
from softdimo.train import train
from tiny_models import ready, tiny_train, write_distilled

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny teacher, a 2-step Di[M]O student of it, and a labelled 8×8 image folder."""
    root = tmp_path_factory.mktemp("refine")
    teacher, student = write_distilled(root)
    digit_folder(root / "data", per_class=2)
    return {"teacher": teacher, "student": student, "data": root / "data"}


def refine_cfg(world, steps: int = 2, **kw) -> RefineRunConfig:
    gan = kw.pop("gan", GANConfig())
    return RefineRunConfig(train=tiny_train(steps), teacher=str(world["teacher"]), student=str(world["student"]),
                           data=DataConfig(dataset="folder", root=str(world["data"])), token_cache=False,
                           gan=gan, dimo=DiMOConfig(), **kw)


def test_refine_updates_student_and_heads_never_the_teacher(world, tmp_path):
    cfg = refine_cfg(world, steps=2)
    cfg.train.log_every = 1
    stage = RefineStage(cfg)
    result = train(stage, cfg.train, tmp_path / "run", progress=False)
    teacher = NativeTeacher.from_pretrained(world["teacher"]).mdm.state_dict()
    for k, v in stage.teacher.mdm.state_dict().items():
        assert torch.equal(v, teacher[k]), k  # the discriminator's backbone is the frozen teacher
    start = OneStepStudent.from_pretrained(world["student"]).mdm.state_dict()
    assert not torch.equal(stage.student.state_dict()["head.weight"], start["head.weight"])
    assert torch.equal(stage.student.state_dict()["tok_emb.weight"], start["tok_emb.weight"])  # still frozen
    fresh = RefineStage(refine_cfg(world))
    fresh.setup(stage.ctx)
    heads = {k: v for k, v in stage.disc.state_dict().items()}
    assert any(not torch.equal(v, fresh.disc.state_dict()[k]) for k, v in heads.items())
    assert not any(p is q for p in stage.disc.parameters() for q in stage.teacher.parameters())
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]
    assert {"generator/gan_loss", "generator/dimo_loss", "generator/soft_entropy", "generator/soft_p_max",
            "generator/soft_cov_trace", "generator/soft_gap", "aux/loss", "disc/loss", "disc/d_real",
            "disc/d_fake", "generator/grad_z_dimo", "generator/grad_z_gan", "generator/grad_z_cos"} <= set(last)
    refined = OneStepStudent.from_pretrained(result.final_dir)
    assert refined.training_info["refine"]["gan"]["embedding"] == "soft"


def test_generator_gets_gradient_from_both_terms(world, tmp_path):
    stage = RefineStage(refine_cfg(world))
    ready(stage)
    grads = {}
    for w_gan in (1.0, 2.0):  # L = L_DiMO + w·L_GAN on the same draws: the two parts separate linearly
        stage.cfg.gan.w_gan = w_gan
        stage.student.zero_grad()
        stage.ctx.generator.manual_seed(1)
        loss, _ = stage.generator_loss(stage_tick())
        loss.backward()
        grads[w_gan] = stage.student.head.weight.grad.clone()
    gan_part = grads[2.0] - grads[1.0]
    dimo_part = grads[1.0] - gan_part
    # teacher CFG 2 vs ψ (= φ, no CFG) gives a Di[M]O gradient; the discriminator gives the GAN one
    assert gan_part.abs().sum() > 0 and dimo_part.abs().sum() > 0


def test_gradient_balance_separates_the_weighted_terms():
    from softdimo.distill.refine import gradient_balance

    z = torch.randn(2, 3, 4, requires_grad=True)
    a, b = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    out = gradient_balance(z, (z * a).sum(), 3.0 * (z * b).sum())  # ∂/∂z: a and 3b
    assert out["grad_z_dimo"] == pytest.approx(float(a.norm()), rel=1e-5)
    assert out["grad_z_gan"] == pytest.approx(3 * float(b.norm()), rel=1e-5)
    cos = float((a * b).sum() / (a.norm() * b.norm()))
    assert out["grad_z_cos"] == pytest.approx(cos, abs=1e-5)
    assert gradient_balance(z, (z * a).sum(), -(z * a).sum())["grad_z_cos"] == pytest.approx(-1.0, abs=1e-5)


def stage_tick():
    from softdimo.train import Tick

    return Tick(0)


@pytest.mark.parametrize("override", [
    {"gan": GANConfig(embedding="gumbel")},
    {"dimo_weight": 0.0},
    {"gan": GANConfig(mask_ratio_range=(0.0, 0.0))},
    {"gan": GANConfig(disc_loss="hinge", r1_gamma=1.0, w_gan=5.0)},
])
def test_ablations_run_by_config_alone(world, tmp_path, override):
    cfg = refine_cfg(world, steps=1, **override)
    stage = RefineStage(cfg)
    result = train(stage, cfg.train, tmp_path / "run", progress=False)
    phases = [ph.name for ph in stage.phases()]
    assert phases == (["generator", "disc"] if cfg.dimo_weight == 0 else ["generator", "aux", "disc"])
    assert OneStepStudent.from_pretrained(result.final_dir).sample(labels=[0, 1]).shape == (2, 1, 8, 8)


def test_refine_config_errors(world, tmp_path):
    with pytest.raises(ValueError, match="nothing would train"):
        refine_cfg(world, dimo_weight=0.0, gan=GANConfig(w_gan=0.0))
    cfg = refine_cfg(world)
    cfg.student = str(world["teacher"])  # a teacher folder is not a student
    with pytest.raises(ConfigError, match="student folder"):
        train(RefineStage(cfg), cfg.train, tmp_path / "run", progress=False)


def test_refine_command(world, tmp_path, capsys):
    out = tmp_path / "runs"
    args = ["refine", "--config", "configs/mnist/soft_gan.yaml", f"teacher={world['teacher']}",
            f"student={world['student']}", "data.dataset=folder", f"data.root={world['data']}", "token_cache=false",
            "train.max_steps=2", "train.batch_size=4", f"train.out_dir={out}", "train.run_name=r",
            "train.sample_every=2", "train.checkpoint_every=0", "train.log_every=1", "--no-progress"]
    assert main(args) == 0, capsys.readouterr().err
    final = out / "refine" / "r" / "final"
    assert json.loads((final / "student.json").read_text())["kind"] == "dimo-student"
    assert (out / "refine" / "r" / "samples" / "step-2.png").is_file()


def test_refine_continues_the_exported_auxiliary(world, tmp_path):
    assert (world["student"] / "aux" / "model.safetensors").is_file()
    stage = RefineStage(refine_cfg(world))
    ready(stage)
    saved = MaskedTransformer.from_pretrained(world["student"] / "aux").state_dict()
    teacher = stage.teacher.mdm.state_dict()
    assert all(torch.equal(v, saved[k]) for k, v in stage.aux.state_dict().items())
    assert any(not torch.equal(v, teacher[k]) for k, v in stage.aux.state_dict().items())
