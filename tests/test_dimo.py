"""Di[M]O (docs/method.md §3): the equations, the distill stage on the shared loop, the one-step student."""
from __future__ import annotations

import json

import pytest
import torch

from softdimo.cli import main
from softdimo.distill import (OneStepSampler, OneStepStudent, hybrid_init, jeffreys_gradient, noise_embeddings,
                              sample_weights, surrogate_loss)
from softdimo.distill.train import DiMOConfig, DistillRunConfig, DistillStage
from softdimo.errors import CheckpointError, DataError
from softdimo.mdm import MaskGITSampler
from softdimo.sample import load_generator
from softdimo.teachers import NativeTeacher
from softdimo.train import Tick, train
from tiny_models import make_teacher, ready, tiny_train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("teacher")
    make_teacher().save_pretrained(path)
    return path


def run_cfg(teacher_dir, out, steps: int = 3, **dimo) -> DistillRunConfig:
    return DistillRunConfig(train=tiny_train(steps), teacher=str(teacher_dir), dimo=DiMOConfig(**dimo))


def make_stage(teacher_dir, tmp_path, **dimo) -> DistillStage:
    """A set-up stage outside the loop (for direct calls to its losses)."""
    return ready(DistillStage(run_cfg(teacher_dir, tmp_path, **dimo)))


# ---------------------------------------------------------------------- equations
def test_surrogate_gradient_is_g_over_batch_on_masked_positions_only():
    g0 = torch.Generator().manual_seed(0)
    b, length, k = 3, 5, 7
    z = torch.randn(b, length, k, generator=g0, requires_grad=True)
    z_t, z_a = torch.randn(b, length, k, generator=g0), torch.randn(b, length, k, generator=g0)
    mask = torch.rand(b, length, generator=g0) < 0.5
    mask[0, 0], mask[0, 1] = True, False
    g = jeffreys_gradient(z_t, z_a, beta=0.3) * mask[..., None]
    surrogate_loss(z, g).backward()
    assert torch.allclose(z.grad, g / b, atol=1e-7)
    assert (z.grad[~mask] == 0).all() and (z.grad[mask].abs().sum(-1) > 0).all()


def _divergence(beta: float, z_t: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
    log_t, log_a = torch.log_softmax(z_t, -1), torch.log_softmax(z_a, -1)
    fkl = (log_t.exp() * (log_t - log_a)).sum()
    rkl = (log_a.exp() * (log_a - log_t)).sum()
    return (1 - beta) * fkl + beta * rkl


@pytest.mark.parametrize("beta", [0.0, 1.0, -0.2, 0.5])
def test_jeffreys_gradient_matches_float64_numerical_gradient(beta):
    g0 = torch.Generator().manual_seed(1)
    z_t = torch.randn(9, generator=g0, dtype=torch.float64) * 2
    z_a = torch.randn(9, generator=g0, dtype=torch.float64) * 2
    h = 1e-6
    numeric = torch.zeros(9, dtype=torch.float64)
    for v in range(9):
        e = torch.zeros(9, dtype=torch.float64)
        e[v] = h
        numeric[v] = (_divergence(beta, z_t, z_a + e) - _divergence(beta, z_t, z_a - e)) / (2 * h)
    analytic = jeffreys_gradient(z_t[None], z_a[None], beta)[0].double()
    assert torch.allclose(analytic, numeric, atol=1e-5), (analytic, numeric)


def test_jeffreys_gradient_vanishes_when_aux_equals_teacher():
    z = torch.randn(4, 6, 11)
    for beta in (0.0, 1.0, -0.2):
        assert jeffreys_gradient(z, z.clone(), beta).abs().max() < 1e-6


@pytest.mark.parametrize("r", [0.0, 0.3, 0.6, 1.0])
def test_hybrid_init_has_exact_mask_count_and_random_tokens(r):
    length, k = 49, 16
    ids = hybrid_init(32, length, k, k, r, generator=torch.Generator().manual_seed(0))
    counts = (ids == k).sum(1)
    assert (counts == max(1, round(r * length))).all()
    assert int(ids.max()) <= k and int(ids.min()) >= 0  # image tokens in [0, K), K = mask
    if r < 1:
        assert len(torch.unique(ids[ids != k])) == k  # all K tokens appear: uniform draws


def test_noise_embeddings_is_variance_preserving():
    e = torch.randn(4000, 64)
    out = noise_embeddings(e, 0.3, generator=torch.Generator().manual_seed(0))
    assert abs(float(out.var()) - 1.0) < 0.02
    corr = float((out * e).mean() / (out.std() * e.std()))
    assert abs(corr - (1 - 0.09) ** 0.5) < 0.02
    assert noise_embeddings(e, 0.0) is e
    with pytest.raises(DataError):
        noise_embeddings(e, 1.5)


def test_sample_weights_length_norm_and_dmd():
    mask = torch.tensor([[True, True, False, False], [True, False, False, False]])
    z = torch.zeros(2, 4, 3)
    assert torch.equal(sample_weights(z, z, mask, False, "none"), torch.ones(2))
    assert torch.allclose(sample_weights(z, z, mask, True, "none"), torch.tensor([0.5, 1.0]))
    z_a = z.clone()
    z_a[..., 0] = 10.0  # p_a ≈ one-hot, p_t uniform: ‖p_a − p_t‖₁ ≈ 4/3 at every position
    w = sample_weights(z, z_a, mask, False, "dmd")
    assert torch.allclose(w, torch.full((2,), 0.75), atol=1e-3)


# ---------------------------------------------------------------------- the stage
def test_generator_and_aux_losses_and_frozen_parameters(teacher_dir, tmp_path):
    stage = make_stage(teacher_dir, tmp_path)
    # embedding layers frozen in θ and ψ; everything else trainable; teacher frozen
    for m in (stage.student, stage.aux):
        assert not m.tok_emb.weight.requires_grad and not m.pos_emb.requires_grad
        assert m.head.weight.requires_grad and m.blocks[0].attn.q.weight.requires_grad
    assert not any(p.requires_grad for p in stage.teacher.parameters())
    loss, logs = stage.generator_loss(Tick(0))
    assert loss.requires_grad and torch.isfinite(loss)
    assert {"g_abs", "fkl", "entropy", "p_max", "mask_ratio", "dropped_samples", "sigma"} <= set(logs)
    assert logs["fkl"] > 0 and logs["g_abs"] > 0  # at init ψ = φ, so the gap is CFG's: w=2 vs ψ's w=1
    stage_nocfg = make_stage(teacher_dir, tmp_path, teacher_cfg=1.0)
    loss1, logs1 = stage_nocfg.generator_loss(Tick(0))
    assert float(loss1.detach()) < 1e-10 and logs1["g_abs"] < 1e-8  # ψ = φ without CFG: nothing to match yet


def test_one_training_step_changes_trainable_weights_only(teacher_dir, tmp_path):
    cfg = run_cfg(teacher_dir, tmp_path, steps=2)
    stage = DistillStage(cfg)
    train(stage, cfg.train, tmp_path / "run", progress=False)
    teacher = NativeTeacher.from_pretrained(teacher_dir)
    t_sd = teacher.mdm.state_dict()
    for name, module in (("student", stage.student), ("aux", stage.aux)):
        sd = module.state_dict()
        assert torch.equal(sd["tok_emb.weight"], t_sd["tok_emb.weight"]), name
        assert torch.equal(sd["pos_emb"], t_sd["pos_emb"]), name
        assert not torch.equal(sd["head.weight"], t_sd["head.weight"]), name
        assert not torch.equal(sd["blocks.0.mlp.0.weight"], t_sd["blocks.0.mlp.0.weight"]), name
    for k, v in stage.teacher.mdm.state_dict().items():
        assert torch.equal(v, t_sd[k]), k
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"generator/loss", "generator/g_abs", "generator/entropy", "generator/p_max", "aux/loss",
            "nonfinite_grad"} <= set(rows[-1])


def test_aux_step_lowers_its_loss_on_a_fixed_batch(teacher_dir, tmp_path):
    stage = make_stage(teacher_dir, tmp_path)
    opt = torch.optim.Adam([p for p in stage.aux.parameters() if p.requires_grad], lr=3e-3)
    state = stage.ctx.generator.get_state()
    before, _ = stage.aux_loss(Tick(0))
    before.backward()
    opt.step()
    stage.ctx.generator.set_state(state)  # the same draws: the same batch
    after, _ = stage.aux_loss(Tick(0))
    assert float(after.detach()) < float(before.detach())


def test_nonfinite_teacher_outputs_drop_the_sample(teacher_dir, tmp_path, monkeypatch):
    stage = make_stage(teacher_dir, tmp_path, teacher_cfg=1.0)
    orig = MaskGITSampler.guided_logits

    def poisoned(model, ids, cond, null, scale):
        out = orig(model, ids, cond, null, scale).clone()
        out[0, 0, 0] = float("nan")
        out[..., 1] += 1.0  # make ψ ≠ φ so the other samples get a gradient
        return out

    monkeypatch.setattr(MaskGITSampler, "guided_logits", staticmethod(poisoned))
    state = stage.ctx.generator.get_state()
    loss, logs = stage.generator_loss(Tick(0))
    assert logs["dropped_samples"] == 1 and torch.isfinite(loss)
    stage.student.zero_grad()
    stage.ctx.generator.set_state(state)
    z = None

    def keep(module, inputs, output):
        nonlocal z
        z = output
        output.retain_grad()

    h = stage.student.head.register_forward_hook(keep)
    loss, _ = stage.generator_loss(Tick(0))
    h.remove()
    loss.backward()
    assert float(z.grad[0].abs().sum()) == 0.0 and float(z.grad[1:].abs().sum()) > 0


def test_same_seed_same_student(teacher_dir, tmp_path):
    finals = []
    for name in ("a", "b"):
        cfg = run_cfg(teacher_dir, tmp_path, steps=3)
        result = train(DistillStage(cfg), cfg.train, tmp_path / name, progress=False)
        finals.append(OneStepStudent.from_pretrained(result.final_dir).mdm.state_dict())
    assert all(torch.equal(finals[0][k], finals[1][k]) for k in finals[0])


def test_data_free_no_dataset_is_built(teacher_dir, tmp_path, monkeypatch):
    import softdimo.data as data

    def forbidden(*a, **k):
        raise AssertionError("distillation read a dataset")

    monkeypatch.setattr(data, "build_dataset", forbidden)
    cfg = run_cfg(teacher_dir, tmp_path, steps=1)
    train(DistillStage(cfg), cfg.train, tmp_path / "run", progress=False)


def test_sigma_warmup_and_r_init_range():
    d = DiMOConfig(sigma=0.2, sigma_warmup_steps=10)
    assert d.sigma_at(0) == 0.0 and abs(d.sigma_at(5) - 0.1) < 1e-9 and d.sigma_at(10) == 0.2
    assert abs(DiMOConfig(sigma=0.2, sigma_warmup_steps=10, sigma_warmup="cos").sigma_at(5) - 0.1) < 1e-9
    assert DiMOConfig(r_init_range=(0.2, 0.8)).inference_r_init() == 0.5
    with pytest.raises(ValueError):
        DiMOConfig(r_init_range=(0.8, 0.2))


# ---------------------------------------------------------------------- the one-step student
def test_student_folder_sample_and_cli(teacher_dir, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["distill", "--config", "configs/mnist/dimo.yaml", f"teacher={teacher_dir}", "train.max_steps=2",
                 "train.batch_size=4", f"train.out_dir={out}", "train.run_name=t", "train.sample_every=2",
                 "train.checkpoint_every=0", "train.threads=1", "--no-progress"]) == 0, capsys.readouterr().err
    final = out / "distill" / "t" / "final"
    manifest = json.loads((final / "student.json").read_text())
    assert manifest["kind"] == "dimo-student" and manifest["sampler"]["r_init"] == 0.6
    assert (out / "distill" / "t" / "samples" / "step-2.png").is_file()
    s = OneStepStudent.from_pretrained(final)
    assert s.sampler == OneStepSampler(r_init=0.6, sigma=0.1, temperature=s.sampler.temperature)
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    a, b = s.sample(labels=[1, 2, 3], generator=g()), s.sample(labels=[1, 2, 3], generator=g())
    assert a.shape == (3, 1, 8, 8) and torch.equal(a, b)
    # a student cannot stand in for a teacher, and vice versa
    with pytest.raises(CheckpointError, match="dimo-student"):
        NativeTeacher.from_pretrained(final)
    with pytest.raises(CheckpointError, match="student.json"):
        OneStepStudent.from_pretrained(teacher_dir)
    assert load_generator(final).kind == "dimo-student"
    assert main(["sample", "--model", str(final), "--labels", "0,1", "--temperature", "2",
                 "--out", str(tmp_path / "g.png"), "--no-progress"]) == 0
    assert (tmp_path / "g.png").is_file()
    assert main(["sample", "--model", str(final), "--steps", "4", "--out", str(tmp_path / "h.png")]) == 2
    assert "one-step" in capsys.readouterr().err


def test_temperature_zero_is_argmax_and_sampler_repr():
    t = make_teacher()
    s = OneStepStudent(t.mdm, t.tokenizer, OneStepSampler(temperature=0.0))
    cond = s.encode_condition(labels=[0, 1])
    e = s.sampler.initial_embeddings(s, 2, torch.Generator().manual_seed(0))
    ids = s.sampler.sample(s, cond, 2, torch.Generator().manual_seed(0))
    assert torch.equal(ids, s.sampler.logits(s.eval(), e, cond).argmax(-1))
    assert "r_init=0.6" in repr(s.sampler) and "temperature=0.0" in repr(s.sampler)


def test_text_teacher_distills_from_prompts(tmp_path):
    t = make_teacher(cond="text")
    t.save_pretrained(tmp_path / "t")
    pf = tmp_path / "prompts.txt"
    pf.write_text("a red 3\na blue 7 to the left of a green 1\n")
    cfg = run_cfg(tmp_path / "t", tmp_path, steps=1)
    cfg.prompts_file = str(pf)
    result = train(DistillStage(cfg), cfg.train, tmp_path / "run", progress=False)
    s = OneStepStudent.from_pretrained(result.final_dir)
    assert s.cond_kind == "text" and s.sample(prompts=["a red 3"]).shape == (1, 1, 8, 8)
