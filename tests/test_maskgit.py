"""The MaskGIT teacher on a tiny random MaskGIT written in the published file formats: convert, the
released key layout, the soft paths, conditioning and sampling, distillation → sample → export →
reload through the CLI, the dry-run plan, and the clear errors (pickle opt-in, missing files,
Meissonic without its code)."""
from __future__ import annotations

import contextlib
import json
import pickle
import re
import shutil
import sys
import types

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from softdimo.cli import main
from softdimo.errors import CheckpointError, ConfigError, DataError
from softdimo.teachers import detect_teacher_kind, load_teacher
from softdimo.teachers.maskgit import MaskGITStudent, MaskGITTeacher
from softdimo.teachers.maskgit_convert import convert_maskgit, find_published
from softdimo.teachers.maskgit_tiny import TinyMaskGITConfig, write_tiny_published

pytestmark = pytest.mark.usefixtures("one_thread")
LABELS = [0, 3, 7]


@contextlib.contextmanager
def fake_modules(qualname: str):
    """A class importable as ``qualname`` while the block runs (so torch.save can pickle a reference to it)."""
    module, name = qualname.rsplit(".", 1)
    parts = module.split(".")
    added = []
    for i in range(1, len(parts) + 1):
        mod = ".".join(parts[:i])
        if mod not in sys.modules:
            sys.modules[mod] = types.ModuleType(mod)
            added.append(mod)
    cls = type(name, (), {"__module__": module, "__qualname__": name})
    setattr(sys.modules[module], name, cls)
    try:
        yield cls
    finally:
        for mod in added:
            del sys.modules[mod]


def lightning_callbacks(cls) -> dict:
    """The ``callbacks`` entry of a Lightning 1.0 checkpoint: keyed by the callback's class."""
    return {cls: {"monitor": "val/rec_loss", "best_model_score": torch.tensor(0.71), "best_model_path": "last.ckpt"}}


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """The three published files of a tiny MaskGIT (callbacks keyed by Lightning's ModelCheckpoint class)."""
    root = tmp_path_factory.mktemp("published") / "pretrained_maskgit"
    with fake_modules("pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint") as cls:
        return write_tiny_published(root, TinyMaskGITConfig(), callbacks=lightning_callbacks(cls))


@pytest.fixture(scope="module")
def teacher_dir(published, tmp_path_factory):
    dst = tmp_path_factory.mktemp("converted") / "maskgit"
    assert main(["convert", "--kind", "maskgit", str(published.parent), str(dst), "--allow-pickle"]) == 0
    return dst


@pytest.fixture(scope="module")
def teacher(teacher_dir):
    return MaskGITTeacher.from_pretrained(teacher_dir)


def cond_and_ids(t, labels=LABELS, seed=0):
    g = torch.Generator().manual_seed(seed)
    return t.encode_condition(labels=labels), torch.randint(0, t.num_tokens, (len(labels), 64), generator=g)


# ---------------------------------------------------------------------- convert
def test_published_layout_and_files_are_found(published):
    files = find_published(published.parent)  # the download's own nesting: pretrained_maskgit/{MaskGIT,VQGAN}/
    assert files.transformer.name == "MaskGIT_ImageNet_256.pth" and files.transformer.parent.name == "MaskGIT"
    assert (files.vqgan_ckpt.name, files.vqgan_yaml.name) == ("last.ckpt", "model.yaml")
    assert find_published(published).transformer == files.transformer
    with pytest.raises(pickle.UnpicklingError, match="ModelCheckpoint"):  # as with the published last.ckpt
        torch.load(files.vqgan_ckpt, weights_only=True)


def test_convert_writes_the_released_keys_unchanged(published, teacher_dir):
    raw_t = torch.load(published / "MaskGIT" / "MaskGIT_ImageNet_256.pth", weights_only=True)["model_state_dict"]
    mdm = load_file(str(teacher_dir / "mdm" / "model.safetensors"))
    assert sorted(mdm) == sorted(raw_t) and all(torch.equal(mdm[k], raw_t[k]) for k in raw_t)
    assert {"tok_emb.weight", "pos_emb", "bias", "first_layer.6.weight", "last_layer.4.bias",
            "transformer.layers.1.0.fn.mha.in_proj_weight", "transformer.layers.1.1.fn.net.3.weight"} <= set(mdm)
    with fake_modules("pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"):
        raw_v = torch.load(published / "VQGAN" / "last.ckpt", weights_only=False)["state_dict"]
    vq = load_file(str(teacher_dir / "tokenizer" / "model.safetensors"))
    kept = {k: v for k, v in raw_v.items() if not k.startswith("loss.")}
    assert sorted(vq) == sorted(kept) and all(torch.equal(vq[k], kept[k]) for k in kept)
    assert {"quantize.embedding.weight", "encoder.down.2.attn.0.q.weight", "decoder.up.0.block.1.conv2.weight",
            "decoder.up.1.upsample.conv.weight", "encoder.mid.attn_1.proj_out.bias"} <= set(vq)
    manifest = json.loads((teacher_dir / "teacher.json").read_text())
    assert manifest["kind"] == "maskgit-teacher" and manifest["num_classes"] == 10
    assert manifest["source"]["transformer"] == "MaskGIT_ImageNet_256.pth"
    assert detect_teacher_kind(teacher_dir) == "maskgit" and isinstance(load_teacher("auto", teacher_dir), MaskGITTeacher)


def test_convert_needs_allow_pickle(published, tmp_path, capsys):
    assert main(["convert", "--kind", "maskgit", str(published), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "--allow-pickle" in err and "weights_only=True" in err
    assert not (tmp_path / "out" / "teacher.json").exists()


def test_convert_lists_missing_files(published, tmp_path, capsys):
    src = tmp_path / "partial"
    shutil.copytree(published, src)
    (src / "VQGAN" / "model.yaml").unlink()
    (src / "MaskGIT" / "MaskGIT_ImageNet_256.pth").unlink()
    assert main(["convert", "--kind", "maskgit", str(src), str(tmp_path / "out"), "--allow-pickle"]) == 2
    err = capsys.readouterr().err
    assert "MaskGIT_ImageNet_256.pth" in err and "model.yaml" in err and "last.ckpt (" not in err
    assert main(["convert", "--kind", "maskgit", str(tmp_path / "nowhere"), str(tmp_path / "o"), "--allow-pickle"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_convert_refuses_other_pickled_objects(published, tmp_path):
    src = tmp_path / "odd"
    shutil.copytree(published, src)
    with fake_modules("somepackage.tools.Thing") as cls:
        write_tiny_published(src, TinyMaskGITConfig(), callbacks={"x": cls()})
    with pytest.raises(CheckpointError, match="somepackage.tools.Thing"):
        convert_maskgit(src, tmp_path / "out", allow_pickle=True)


def test_convert_512_variant_runs_the_vqgan_at_the_transformers_size(tmp_path):
    """As MaskGIT_ImageNet_512.pth with the 256-px model.yaml: twice the tokens, the same VQGAN modules."""
    write_tiny_published(tmp_path / "src", TinyMaskGITConfig(grid=16, depth=1), variant=512)
    t = MaskGITTeacher.from_pretrained(convert_maskgit(tmp_path / "src", tmp_path / "out", variant=512, allow_pickle=True))
    assert t.grid == (16, 16) and t.image_shape == (3, 64, 64) and t.tokenizer.config.resolution == 32
    ids = torch.randint(0, t.num_tokens, (1, 256))
    images = t.decode(ids)
    assert images.shape == (1, 3, 64, 64) and t.tokenizer.encode(images).shape == (1, 16, 16)
    with pytest.raises(CheckpointError, match="MaskGIT_ImageNet_256.pth"):
        find_published(tmp_path / "src")


def test_convert_checks_shapes_key_for_key(published, tmp_path):
    src = tmp_path / "bad"
    shutil.copytree(published, src)
    f = src / "MaskGIT" / "MaskGIT_ImageNet_256.pth"
    ckpt = torch.load(f, weights_only=True)
    ckpt["model_state_dict"]["extra.weight"] = torch.zeros(1)
    del ckpt["model_state_dict"]["last_layer.2.bias"]
    torch.save(ckpt, f)
    with pytest.raises(CheckpointError, match=r"missing \['last_layer.2.bias'\].*unexpected \['extra.weight'\]"):
        convert_maskgit(src, tmp_path / "out", allow_pickle=True)


# ---------------------------------------------------------------------- the protocol
def test_soft_paths_equal_the_hard_paths_on_one_hot(teacher):
    t = teacher
    cond, ids = cond_and_ids(t)
    p = F.one_hot(ids, t.num_tokens).float().requires_grad_(True)
    z_hard, z_soft = t(t.embed(ids), cond), t(p @ t.embedding_table(), cond)
    assert z_hard.shape == (3, 64, t.num_tokens) and float((z_hard - z_soft).detach().abs().max()) <= 1e-5
    released = t.mdm.forward_ids(ids.view(3, 8, 8), torch.tensor(LABELS))  # the released call: K + 1 classes
    assert released.shape == (3, 64, t.num_tokens + 1)
    assert float((released[..., : t.num_tokens] - z_hard).detach().abs().max()) <= 1e-5
    x_hard, x_soft = t.decode(ids), t.decode_soft(p)
    assert x_hard.shape == (3, 3, 32, 32) and 0 <= float(x_hard.min()) and float(x_hard.max()) <= 1
    assert float((x_hard - x_soft.detach()).abs().max()) <= 1e-5
    (z_soft.sum() + x_soft.mean()).backward()
    assert p.grad.abs().sum() > 0
    with pytest.raises(DataError, match="decode_soft"):
        t.decode(p.detach())


def test_conditioning_mask_and_hidden_states(teacher):
    t = teacher
    assert (t.num_tokens, t.mask_id, t.grid, t.cond_kind, t.num_classes) == (64, 64, (8, 8), "class", 10)
    null = t.null_condition(3)
    assert null.labels.tolist() == [10] * 3  # the null class: token K + 1 + nclass
    assert int(t.mdm.class_tokens(null, 3)[0]) == t.mdm.tok_emb.num_embeddings - 1
    cond, ids = cond_and_ids(t)
    assert not torch.equal(t(t.embed(ids), cond), t(t.embed(ids), null))
    logits, hidden = t(t.embed(ids), cond, return_hidden=True)
    assert len(hidden) == 2 and all(h.shape == (3, 64, 64) for h in hidden)  # image positions only
    masked = torch.full_like(ids, t.mask_id)
    assert torch.equal(t.embed(masked)[0, 0], t.mdm.mask_embedding())
    with pytest.raises(DataError, match=r"\[0, 9\]"):
        t.encode_condition(labels=[10])
    with pytest.raises(DataError, match="labels"):
        t.encode_condition(prompts=["a cat"])


def test_embedding_layers_are_the_released_frozen_set(teacher):
    net = teacher.trainable_copy()
    names = {n for n, p in net.named_parameters() if any(p is q for q in net.embedding_parameters())}
    assert names == {"tok_emb.weight", "pos_emb", "bias"}


def test_teacher_sampler_is_the_released_one(teacher):
    s = teacher.sampler
    assert (s.steps, s.schedule, s.temperature, s.confidence_noise, s.confidence_noise_end) == (16, "arccos", 1.0, 4.5, 0.0)
    assert (s.cfg_scale, s.cfg_scale_end) == (1.0, 4.0)  # (1 + w_k)·z_c − w_k·z_u, w_k: 0 → 3
    assert teacher.sampler_with(cfg_scale=2.0).cfg_scale_end is None  # --cfg W: a constant scale
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    a = teacher.sample_ids(labels=LABELS, sampler=teacher.sampler_with(steps=4), generator=g())
    b = teacher.sample_ids(labels=LABELS, sampler=teacher.sampler_with(steps=4), generator=g())
    assert torch.equal(a, b) and a.shape == (3, 64) and int(a.max()) < teacher.num_tokens
    assert teacher.sample(labels=LABELS, generator=g()).shape == (3, 3, 32, 32)


# ---------------------------------------------------------------------- the stages
def _train_args(out, name, steps):
    return [f"train.max_steps={steps}", "train.batch_size=4", f"train.out_dir={out}", f"train.run_name={name}",
            "train.checkpoint_every=0", "train.sample_every=0", "train.log_every=5", "train.threads=1",
            "train.device=cpu", "train.lr=0.0003", "--no-progress"]


@pytest.fixture(scope="module")
def distilled(teacher_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("maskgit-runs")
    assert main(["distill", f"teacher={teacher_dir}", *_train_args(out, "d", 20)]) == 0
    return out, out / "distill" / "d" / "final"


def test_distill_sample_export_reload(teacher, teacher_dir, distilled, tmp_path, capsys):
    out, final = distilled
    rows = [json.loads(x) for x in (out / "distill" / "d" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 20 and all(torch.isfinite(torch.tensor(r["generator/loss"])) for r in rows)
    manifest = json.loads((final / "student.json").read_text())
    assert manifest["kind"] == "maskgit-student" and manifest["distillation"]["teacher"] == str(teacher_dir)
    assert {p.name for p in final.iterdir()} >= {"mdm", "tokenizer", "aux", "student.json"}
    student = teacher.load_student(final)
    assert isinstance(student, MaskGITStudent) and isinstance(teacher.load_network(final / "aux"), type(teacher.mdm))
    moved = [k for k, v in student.mdm.state_dict().items() if not torch.equal(v, teacher.mdm.state_dict()[k])]
    assert moved and not {"tok_emb.weight", "pos_emb", "bias"} & set(moved)  # frozen embedding layers
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    x = student.sample(labels=LABELS, generator=g())
    assert x.shape == (3, 3, 32, 32) and torch.equal(x, student.sample(labels=LABELS, generator=g()))
    again = tmp_path / "exported"  # export → reload gives the same generator
    student.save_pretrained(again)
    assert torch.equal(MaskGITStudent.from_pretrained(again).sample(labels=LABELS, generator=g()), x)
    with pytest.raises(CheckpointError, match="maskgit-student"):
        MaskGITTeacher.from_pretrained(final)
    for model, extra in ((final, []), (teacher_dir, ["--steps", "3", "--cfg", "2"])):
        assert main(["sample", "--model", str(model), "--labels", "0,1", "--out", str(tmp_path / f"{len(extra)}.png"),
                     "--no-progress", *extra]) == 0
    printed = capsys.readouterr().out
    assert "maskgit-student (1 steps" in printed and "maskgit-teacher (3 steps, cfg 2.0)" in printed


@pytest.mark.slow
def test_refine_with_the_gan_on_real_class_folders(teacher_dir, distilled, tmp_path):
    import numpy as np
    from PIL import Image

    out, final = distilled
    rng = np.random.default_rng(0)
    for c in range(10):
        (tmp_path / "imgs" / f"n{c:08d}").mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "imgs" / f"n{c:08d}" / f"{i}.png")
    assert main(["refine", f"teacher={teacher_dir}", f"student={final}", "data.dataset=folder",
                 f"data.root={tmp_path / 'imgs'}", "gan.num_taps=2", *_train_args(out, "g", 2), "train.log_every=1"]) == 0
    rows = [json.loads(x) for x in (out / "refine" / "g" / "metrics.jsonl").read_text().splitlines()]
    assert {"generator/gan_loss", "disc/d_real", "generator/soft_gap"} <= set(rows[-1])
    assert json.loads((out / "refine" / "g" / "final" / "student.json").read_text())["kind"] == "maskgit-student"


def test_dry_run_plans_a_maskgit_folder_from_configs(teacher, teacher_dir, tmp_path, capsys):
    configs_only = tmp_path / "configs-only"
    shutil.copytree(teacher_dir, configs_only, ignore=shutil.ignore_patterns("*.safetensors"))
    assert main(["distill", "--dry-run", f"teacher={configs_only}", "train.batch_size=4"]) == 0
    rows = {line[:22].strip(): line[22:].split() for line in capsys.readouterr().out.splitlines()}
    n = sum(p.numel() for p in teacher.mdm.parameters())
    frozen = sum(p.numel() for p in teacher.mdm.embedding_parameters())
    assert rows["teacher (frozen)"][:2] == [f"{n:,}", "0"] and rows["student (+EMA)"][:2] == [f"{n:,}", f"{n - frozen:,}"]
    assert rows["VQ tokenizer (frozen)"][0] == f"{sum(p.numel() for p in teacher.tokenizer.parameters()):,}"


# ---------------------------------------------------------------------- Meissonic from the command line
def test_meissonic_kind_lists_what_is_missing(tmp_path, capsys):
    from softdimo.teachers.meissonic import load_meissonic

    with pytest.raises(ConfigError) as e:
        load_meissonic(tmp_path / "Meissonic", None)
    msg = str(e.value)
    assert "meissonic_code=PATH" in msg and "not set" in msg and "does not exist" in msg
    (tmp_path / "code").mkdir()
    with pytest.raises(ConfigError, match=r"src/transformer.py"):
        load_teacher("meissonic", tmp_path / "Meissonic", meissonic_code=tmp_path / "code")
    partial = tmp_path / "Meissonic"  # a download with only its transformer config
    (partial / "transformer").mkdir(parents=True)
    (partial / "transformer" / "config.json").write_text('{"_class_name": "Transformer2DModel"}')
    assert main(["distill", f"teacher={partial}", "teacher_kind=meissonic", "train.max_steps=1",
                 f"train.out_dir={tmp_path / 'runs'}", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "meissonic_code=PATH" in err and "vqvae/" in err and "text_encoder/" in err


def test_meissonic_code_checkout_provides_the_transformer(tmp_path):
    """A checkout whose src/transformer.py defines Transformer2DModel is imported by file path."""
    from softdimo.teachers.meissonic import load_transformer_class

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "transformer.py").write_text("class Transformer2DModel:\n    pass\n")
    assert load_transformer_class(tmp_path).__name__ == "Transformer2DModel"
    (tmp_path / "src" / "transformer.py").write_text("X = 1\n")
    with pytest.raises(ConfigError, match="no Transformer2DModel"):
        load_transformer_class(tmp_path)


# ---------------------------------------------------------------------- an independent implementation
def _diffusers_key(key: str, levels: int) -> str:
    """taming's VQGAN key → diffusers' VQModel key (the same architecture under other names)."""
    key = re.sub(r"^encoder\.down\.(\d+)\.block\.", r"encoder.down_blocks.\1.resnets.", key)
    key = re.sub(r"^encoder\.down\.(\d+)\.attn\.", r"encoder.down_blocks.\1.attentions.", key)
    key = re.sub(r"^encoder\.down\.(\d+)\.downsample\.", r"encoder.down_blocks.\1.downsamplers.0.", key)
    flip = lambda m: f"decoder.up_blocks.{levels - 1 - int(m.group(1))}.{m.group(2)}"  # noqa: E731
    key = re.sub(r"^decoder\.up\.(\d+)\.(block|attn|upsample)", flip, key)
    for old, new in ((".block.", ".resnets."), (".attn.", ".attentions."), (".upsample.", ".upsamplers.0."),
                     ("mid.block_1", "mid_block.resnets.0"), ("mid.block_2", "mid_block.resnets.1"),
                     ("mid.attn_1", "mid_block.attentions.0"), ("nin_shortcut", "conv_shortcut"),
                     ("norm_out", "conv_norm_out"), (".norm.", ".group_norm."), (".q.", ".to_q."), (".k.", ".to_k."),
                     (".v.", ".to_v."), (".proj_out.", ".to_out.0.")):
        key = key.replace(old, new)
    return key


def test_vqgan_matches_diffusers_vqmodel_after_a_key_mapping(teacher):
    """diffusers' VQModel is another implementation of taming's VQGAN: with the weights renamed (and the
    1×1 attention convolutions flattened to linear layers) it decodes and encodes the same."""
    diffusers = pytest.importorskip("diffusers")
    vq = teacher.tokenizer
    c, n = vq.config, len(vq.config.ch_mult)
    res = [c.resolution // 2 ** i for i in range(n)]
    attn = [r in c.attn_resolutions for r in res]
    ref = diffusers.VQModel(
        in_channels=3, out_channels=3, block_out_channels=[c.ch * m for m in c.ch_mult], layers_per_block=c.num_res_blocks,
        down_block_types=["AttnDownEncoderBlock2D" if a else "DownEncoderBlock2D" for a in attn],
        up_block_types=["AttnUpDecoderBlock2D" if a else "UpDecoderBlock2D" for a in reversed(attn)],
        latent_channels=c.z_channels, vq_embed_dim=c.embed_dim, num_vq_embeddings=c.n_embed, norm_num_groups=32,
        sample_size=c.resolution).eval()
    state = {_diffusers_key(k, n): v for k, v in vq.state_dict().items()}
    own = ref.state_dict()
    state = {k: v.reshape(own[k].shape) if k in own else v for k, v in state.items()}
    assert sorted(state) == sorted(own)
    ref.load_state_dict(state)
    ids = torch.randint(0, c.n_embed, (2, 8, 8), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        z = vq.codebook()[ids].permute(0, 3, 1, 2)
        theirs = (ref.decoder(ref.post_quant_conv(z)).clamp(-1, 1) + 1) / 2
        assert float((theirs - vq.decode(ids)).abs().max()) <= 1e-5
        x = torch.rand(2, 3, 32, 32)
        assert float((ref.quant_conv(ref.encoder(2 * x - 1)) - vq.quant_conv(vq.encoder(2 * x - 1))).abs().max()) <= 1e-5
