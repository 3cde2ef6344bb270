"""The aMUSEd teacher adapter on a tiny random aMUSEd folder: loading, the soft paths, conditioning,
sampling, the stages through the CLI, and the dry-run memory plan."""
from __future__ import annotations

import json
import os
import shutil
import socket

import pytest
import torch
import torch.nn.functional as F

from softdimo.cli import main
from softdimo.errors import CheckpointError, DataError
from softdimo.teachers import detect_teacher_kind, load_teacher
from softdimo.teachers.amused import AmusedStudent, AmusedTeacher, resolve_parts
from softdimo.teachers.amused_tiny import TinyAmusedConfig, write_tiny_amused

pytestmark = pytest.mark.usefixtures("one_thread")
PROMPTS = ["a photo of a red 3", "a photo of a 9 right of a 2"]  # world-style (the attribute reward parses them)


@pytest.fixture(scope="module")
def amused_dir(tmp_path_factory):
    return write_tiny_amused(tmp_path_factory.mktemp("amused") / "tiny-amused")


@pytest.fixture(scope="module")
def teacher(amused_dir) -> AmusedTeacher:
    return AmusedTeacher.from_pretrained(amused_dir)


def cond_and_ids(t: AmusedTeacher, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, t.num_tokens, (len(PROMPTS), t.grid[0] * t.grid[1]), generator=g)
    return t.encode_condition(prompts=PROMPTS), ids


# ---------------------------------------------------------------------- loading
def test_loads_from_root_subfolders_and_from_component_folders(amused_dir, teacher, tmp_path):
    elsewhere = {}
    for part in ("transformer", "vqvae", "text_encoder", "tokenizer", "scheduler"):
        elsewhere[part] = tmp_path / f"my-{part}"
        shutil.copytree(amused_dir / part, elsewhere[part])
    from_parts = AmusedTeacher.from_pretrained(None, parts=elsewhere)
    mixed = AmusedTeacher.from_pretrained(amused_dir, parts={"vqvae": elsewhere["vqvae"]})
    ref = teacher.state_dict()
    for other in (from_parts, mixed):
        sd = other.state_dict()
        assert sd.keys() == ref.keys() and all(torch.equal(sd[k], ref[k]) for k in ref)
        assert (other.num_tokens, other.mask_id, other.grid) == (teacher.num_tokens, teacher.mask_id, teacher.grid)
    assert teacher.num_tokens == 32 and teacher.mask_id == 39 and teacher.image_shape == (3, 32, 32)
    assert detect_teacher_kind(amused_dir) == "amused"
    assert isinstance(load_teacher("auto", amused_dir), AmusedTeacher)


def test_incomplete_folder_lists_every_missing_part(amused_dir, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(amused_dir, broken)
    shutil.rmtree(broken / "vqvae")
    (broken / "scheduler" / "scheduler_config.json").unlink()
    (broken / "tokenizer" / "merges.txt").unlink()
    next((broken / "text_encoder").glob("*.safetensors")).unlink()
    with pytest.raises(CheckpointError) as e:
        AmusedTeacher.from_pretrained(broken)
    msg = str(e.value)
    for missing in ("vqvae/", "scheduler/scheduler_config.json", "tokenizer/vocab.json + merges.txt",
                    "text_encoder/ weights"):
        assert missing in msg, msg
    assert "transformer" not in msg.split("missing:")[1].split(". A complete")[0]
    assert main(["distill", f"teacher={broken}", "teacher_kind=amused", f"train.out_dir={tmp_path / 'runs'}",
                 "train.max_steps=1", "--no-progress"]) == 2
    assert "scheduler/scheduler_config.json" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_parts(tmp_path / "nowhere")


def test_pickle_weights_need_an_opt_in(amused_dir, teacher, tmp_path):
    from safetensors.torch import load_file

    from softdimo.pretrained import pickle_allowed

    folder = tmp_path / "pickled"
    shutil.copytree(amused_dir, folder)
    st = folder / "vqvae" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(str(st)), folder / "vqvae" / "diffusion_pytorch_model.bin")
    st.unlink()
    with pytest.raises(CheckpointError, match="allow-pickle"):
        AmusedTeacher.from_pretrained(folder)
    with pickle_allowed():
        t = AmusedTeacher.from_pretrained(folder)
    assert torch.equal(t.tokenizer.codebook(), teacher.tokenizer.codebook())


def test_loading_is_offline(amused_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "unset below")  # restored after the test
    monkeypatch.delenv("HF_HUB_OFFLINE")
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    t = AmusedTeacher.from_pretrained(amused_dir)
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # set by the loader
    t.sample(prompts=PROMPTS[:1], sampler=t.sampler_with(steps=2), generator=torch.Generator().manual_seed(0))
    assert attempts == []


# ---------------------------------------------------------------------- the soft paths
def test_soft_embedding_equals_the_id_path_on_one_hot(teacher):
    cond, ids = cond_and_ids(teacher)
    t = teacher
    z_hard = t(t.embed(ids), cond)
    p = F.one_hot(ids, t.num_tokens).float().requires_grad_(True)
    z_soft = t(p @ t.embedding_table(), cond)
    b, (h, w) = ids.shape[0], t.grid
    z_lib = t.mdm.transformer(ids.view(b, h, w), encoder_hidden_states=cond.hidden, pooled_text_emb=cond.pooled,
                              micro_conds=cond.micro_conds)  # diffusers' own id path
    assert z_hard.shape == (b, h * w, t.num_tokens)
    assert torch.equal(z_hard, z_soft)
    assert torch.equal(z_hard, z_lib.permute(0, 2, 3, 1).reshape(b, h * w, -1))
    z_soft.sum().backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    # the mask is the last vocabulary row (scheduler config), not codebook_size
    assert t.mask_id == t.mdm.table.shape[0] - 1 != t.num_tokens
    masked = torch.full_like(ids, t.mask_id)
    assert torch.equal(t.embed(masked)[0, 0], t.mask_embedding())


def test_decode_soft_bypasses_the_index_lookup(teacher):
    _, ids = cond_and_ids(teacher)
    t, b = teacher, ids.shape[0]
    hard = t.decode(ids)
    p = F.one_hot(ids, t.num_tokens).float().requires_grad_(True)
    soft = t.decode_soft(p)
    v = t.tokenizer.vqvae
    lib = v.decode(ids.view(b, *t.grid), force_not_quantize=True, shape=(b, *t.grid, v.config.latent_channels))
    assert hard.shape == (b, 3, 32, 32) and 0 <= float(hard.min()) and float(hard.max()) <= 1
    assert torch.equal(hard, soft) and torch.equal(hard, lib.sample.clamp(0, 1))
    soft.mean().backward()
    assert p.grad.abs().sum() > 0
    with pytest.raises(DataError, match="decode_soft"):
        t.decode(p.detach())


def test_conditioning_text_micro_conds_and_null(teacher):
    t = teacher
    cond = t.encode_condition(prompts=PROMPTS)
    tok = t.text.tokenizer(PROMPTS, padding="max_length", truncation=True, max_length=t.text.tokenizer.model_max_length,
                           return_tensors="pt")
    out = t.text.model(tok.input_ids, output_hidden_states=True)
    assert torch.equal(cond.hidden, out.hidden_states[-2]) and torch.equal(cond.pooled, out.text_embeds)
    assert cond.micro_conds.tolist() == [[32.0, 32.0, 0.0, 0.0, 6.0]] * 2
    null = t.null_condition(2)  # the negative prompt, empty by default (as the pipeline's CFG)
    empty_hidden, empty_pooled = t.text.encode([""])
    assert null.batch_size == 2 and torch.equal(null.hidden[1], empty_hidden[0])
    assert torch.equal(null.pooled[0], empty_pooled[0])
    assert not torch.equal(null.hidden[0], cond.hidden[0])
    with pytest.raises(DataError, match="text-conditional"):
        t.encode_condition(labels=[1])
    with pytest.raises(DataError, match="empty"):
        t.encode_condition(prompts=["  "])


def test_hidden_states_feed_the_discriminator(teacher):
    from softdimo.distill.gan import GANConfig, TeacherDiscriminator

    cond, ids = cond_and_ids(teacher)
    logits, hidden = teacher(teacher.embed(ids), cond, return_hidden=True)
    assert len(hidden) == teacher.mdm.num_hidden_layers == 2
    assert all(h.shape == (2, 64, teacher.mdm.hidden_width) for h in hidden)
    disc = TeacherDiscriminator(teacher.mdm, GANConfig(num_taps=2))
    assert sum(p.numel() for p in disc.parameters()) > 0 and not any(p.requires_grad for p in teacher.parameters())
    e = (F.softmax(torch.randn(2, 64, teacher.num_tokens), -1) @ teacher.embedding_table()).requires_grad_(True)
    score = disc.score(e, cond, torch.tensor([0.0, 0.5]), generator=torch.Generator().manual_seed(0))
    score.sum().backward()
    assert score.shape == (2,) and e.grad.abs().sum() > 0


def test_teacher_samples_with_cfg(teacher):
    t = teacher
    s = t.sampler_with(steps=3, cfg_scale=3.0)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    a = t.sample_ids(prompts=PROMPTS, sampler=s, generator=g())
    b = t.sample_ids(prompts=PROMPTS, sampler=s, generator=g())
    assert torch.equal(a, b) and a.shape == (2, 64) and int(a.max()) < t.num_tokens
    assert t.sample(prompts=PROMPTS, sampler=s, generator=g()).shape == (2, 3, 32, 32)
    assert "steps=12" in repr(t.sampler) and "cfg_scale=10.0" in repr(t.sampler)  # aMUSEd's defaults


# ---------------------------------------------------------------------- the stages through the CLI
def _train_args(out, name, steps=2):
    return [f"train.max_steps={steps}", "train.batch_size=2", f"train.out_dir={out}", f"train.run_name={name}",
            "train.checkpoint_every=0", "train.sample_every=0", "train.log_every=1", "train.threads=1",
            "train.device=cpu", "--no-progress"]


@pytest.fixture(scope="module")
def distilled(amused_dir, tmp_path_factory):
    """`softdimo distill` for 2 steps on the tiny aMUSEd: the run folder's parent and final/."""
    out = tmp_path_factory.mktemp("amused-runs")
    assert main(["distill", f"teacher={amused_dir}", *_train_args(out, "d")]) == 0
    return out, out / "distill" / "d" / "final"


@pytest.fixture(scope="module")
def attribute_reward(tmp_path_factory):
    """A random tiny attribute reward (reads 32 px RGB scenes and world prompts)."""
    from softdimo.rewards.attribute import AttributeClassifier, AttributeConfig

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("reward") / "attribute"
    config = AttributeConfig(image_size=32, channels=(8, 16), hidden=16, norm_groups=4)
    AttributeClassifier(config).save_pretrained(path)
    return path


@pytest.mark.slow
def test_distill_exports_an_amused_student_and_sample_reads_both(amused_dir, distilled, tmp_path, capsys):
    _, final = distilled
    manifest = json.loads((final / "student.json").read_text())
    assert manifest["kind"] == "amused-student" and manifest["distillation"]["teacher"] == str(amused_dir)
    for part in ("transformer", "vqvae", "text_encoder", "tokenizer", "scheduler", "aux"):
        assert (final / part).is_dir(), part
    student = AmusedStudent.from_pretrained(final)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(student.sample(prompts=PROMPTS, generator=g()), student.sample(prompts=PROMPTS, generator=g()))
    with pytest.raises(CheckpointError, match="cannot stand in"):
        AmusedTeacher.from_pretrained(final)
    # the teacher's weights did not move; the student's did, outside the frozen embedding block and head
    t0 = AmusedTeacher.from_pretrained(amused_dir).mdm.state_dict()
    moved = [k for k, v in student.mdm.state_dict().items() if not torch.equal(v, t0[k])]
    assert moved and not any(k.startswith("transformer.embed.") or "mlm_layer" in k for k in moved)
    for model, extra in ((final, []), (amused_dir, ["--steps", "3", "--cfg", "2"])):
        out_png = str(tmp_path / f"{len(extra)}.png")
        assert main(["sample", "--model", str(model), "--prompts", *PROMPTS, "--out", out_png, "--no-progress",
                     *extra]) == 0
    printed = capsys.readouterr().out
    assert "amused-student (1 steps" in printed and "amused-teacher (3 steps, cfg 2.0)" in printed


@pytest.mark.slow
def test_refine_with_the_gan_on_the_frozen_amused_teacher(amused_dir, distilled, capsys):
    out, final = distilled
    assert main(["refine", f"teacher={amused_dir}", f"student={final}", "data.dataset=world", "max_real_images=8",
                 "gan.num_taps=2", *_train_args(out, "g")]) == 0, capsys.readouterr().err
    rows = [json.loads(x) for x in (out / "refine" / "g" / "metrics.jsonl").read_text().splitlines()]
    assert {"generator/gan_loss", "disc/d_real", "generator/soft_gap"} <= set(rows[-1])
    assert json.loads((out / "refine" / "g" / "final" / "student.json").read_text())["kind"] == "amused-student"


@pytest.mark.slow
def test_refine_with_a_reward_through_the_amused_decoder(amused_dir, distilled, attribute_reward, capsys):
    out, final = distilled
    terms = f"reward.terms=[{{kind: attribute, path: {attribute_reward}}}]"
    assert main(["refine", f"teacher={amused_dir}", f"student={final}", "gan.w_gan=0", "reward.w_reward=1.0", terms,
                 *_train_args(out, "r")]) == 0, capsys.readouterr().err
    rows = [json.loads(x) for x in (out / "refine" / "r" / "metrics.jsonl").read_text().splitlines()]
    assert "generator/reward" in rows[-1] and "disc/loss" not in rows[-1]


@pytest.mark.slow
def test_tteo_optimises_the_amused_students_input(distilled, attribute_reward, tmp_path, capsys):
    _, final = distilled
    grid = tmp_path / "tteo"
    assert main(["tteo", f"rewards=[{{kind: attribute, path: {attribute_reward}}}]", "--model", str(final),
                 "--iters", "1", "--best-of", "2", "--out", str(grid), "--no-progress", "--prompts", *PROMPTS]) == 0, \
        capsys.readouterr().err
    record = json.loads((grid / "samples.json").read_text())
    assert len(record["tteo_scores"]) == 2 and (grid / "000001.png").is_file()


# ---------------------------------------------------------------------- dry run
def test_dry_run_plans_from_configs_only(amused_dir, teacher, tmp_path, capsys):
    configs_only = tmp_path / "configs-only"
    shutil.copytree(amused_dir, configs_only, ignore=shutil.ignore_patterns("*.safetensors"))
    assert main(["distill", "--dry-run", f"teacher={configs_only}", "teacher_kind=amused", "train.batch_size=4"]) == 0
    text = capsys.readouterr().out
    n = sum(p.numel() for p in teacher.mdm.parameters())
    rows = {line[:22].strip(): line[22:].split() for line in text.splitlines()}
    assert rows["teacher (frozen)"][:2] == [f"{n:,}", "0"]
    assert "student (+EMA)" in rows  # the distill stage's default train.ema_decay is kept by train.batch_size=4
    for name in ("auxiliary", "VQ tokenizer (frozen)", "text encoder (frozen)", "activations (est.)",
                 "total (est.)"):
        assert name in rows, text
    from softdimo.config import load_config
    from softdimo.distill.refine import RefineRunConfig
    from softdimo.dryrun import plan_for

    cfg = load_config(RefineRunConfig, None, [f"teacher={configs_only}", "train.batch_size=4"])
    plan = plan_for("refine", cfg)
    by_name = {c.name: c for c in plan.components}
    frozen = sum(p.numel() for p in teacher.mdm.embedding_parameters())
    assert by_name["student"].params == n and by_name["student"].trainable == n - frozen
    assert by_name["text encoder (frozen)"].params == sum(p.numel() for p in teacher.text.parameters())
    assert by_name["discriminator heads"].trainable > 0 and plan.activation_bytes > 0
    bigger = plan_for("refine", load_config(RefineRunConfig, None, [f"teacher={configs_only}", "train.batch_size=8"]))
    assert bigger.activation_bytes > plan.activation_bytes and bigger.total_bytes > plan.total_bytes


def test_tiny_config_is_configurable(tmp_path):
    path = write_tiny_amused(tmp_path / "t", TinyAmusedConfig(codebook_size=16, grid=4, vq_levels=2, layers=1))
    t = AmusedTeacher.from_pretrained(path)
    assert (t.num_tokens, t.grid, t.image_shape, t.mdm.num_hidden_layers) == (16, (4, 4), (3, 8, 8), 1)


# ---------------------------------------------------------------------- Meissonic fits by a subclass
def test_meissonic_subclass_calls_its_own_signature(amused_dir, teacher):
    from softdimo.errors import ConfigError
    from softdimo.teachers.meissonic import MeissonicTeacher
    from tiny_models import meissonic_like

    MeissonicLike = meissonic_like()
    calls = MeissonicLike.calls
    with pytest.raises(ConfigError, match="transformer_class"):
        MeissonicTeacher.from_pretrained(amused_dir)
    m = MeissonicTeacher.from_pretrained(amused_dir, transformer_class=MeissonicLike)
    cond, ids = cond_and_ids(teacher)
    z, hidden = m(m.embed(ids), cond, return_hidden=True)
    assert torch.equal(z, teacher(teacher.embed(ids), cond)) and len(hidden) == 2
    assert calls[-1] == ((16, 3), (16, 3), 0)  # RoPE ids of the 4×4 down-sampled grid, 16 text tokens, t = 0
