"""Real reward-model adapters (CLIP score, HPSv2, PickScore, ImageReward) on tiny random models.

Each test writes a tiny random-initialised model in the on-disk format of the real release
(open_clip state dict + config + BPE files; Hugging Face CLIPModel folder; ImageReward.pt +
med_config.json + vocab.txt) into a temporary folder, loads it with ``load_adapter`` with the
network switched off, and checks scores and gradients with respect to the image. The released
files are ``torch.save`` pickles, so these tests opt in to pickle (``--allow-pickle``); that a
pickle is refused without it is tested in tests/test_safe_loading.py.
"""
from __future__ import annotations

import gzip
import json
import os
import socket

import pytest
import torch
import torch.nn.functional as F

from softdimo.errors import CheckpointError, ConfigError, DataError
from softdimo.rewards import RewardTermConfig, build_reward
from softdimo.rewards.adapters import ImagePrep, load_adapter
from softdimo.rewards.adapters.clip_tokenizer import bytes_to_unicode
from softdimo.rewards.adapters.imagereward import REWARD_MEAN, REWARD_STD
from softdimo.safeload import pickle_allowed

pytestmark = pytest.mark.usefixtures("one_thread")

MERGES = ["c a", "ca t</w>", "d o", "do g</w>", "p h", "ph o", "pho t", "phot o</w>", "o f</w>"]
PROMPTS = ["a photo of a cat", "a dog"]
WIDTH, HEADS, PATCH, IMAGE, CTX, EMBED = 32, 2, 8, 16, 16, 24


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any connection attempt fails the test; HF_HUB_OFFLINE starts unset so loading must set it."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a reward adapter tried to open a network connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "unset below")  # records the original value, restored afterwards
    monkeypatch.delenv("HF_HUB_OFFLINE")


@pytest.fixture(autouse=True)
def trusted_pickles():
    """The tiny checkpoints are written with torch.save, like the released ones: the tests opt in."""
    with pickle_allowed():
        yield


# ----------------------------------------------------------------------------- tiny files
def clip_vocab() -> list[str]:
    symbols = list(bytes_to_unicode().values())
    return symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in MERGES] + [
        "<|startoftext|>", "<|endoftext|>"]


def write_bpe(folder, gz: bool = False) -> None:
    """The CLIP tokenizer files: HF vocab.json + merges.txt, or open_clip's gzip'd merges list."""
    if gz:
        with gzip.open(folder / "bpe_simple_vocab_16e6.txt.gz", "wt", encoding="utf-8") as f:
            f.write("bpe_simple_vocab_16e6.txt#version: 0.2\n" + "\n".join(MERGES) + "\n")
        return
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(clip_vocab())}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(MERGES) + "\n")


def _rand(*shape, scale=0.1):
    return torch.randn(*shape) * scale


def _ln(sd, name, width):
    sd[name + ".weight"] = 1 + _rand(width)
    sd[name + ".bias"] = _rand(width)


def _resblocks(sd, prefix, layers, width):
    for i in range(layers):
        p = f"{prefix}{i}."
        _ln(sd, p + "ln_1", width)
        _ln(sd, p + "ln_2", width)
        sd[p + "attn.in_proj_weight"] = _rand(3 * width, width, scale=width ** -0.5)
        sd[p + "attn.in_proj_bias"] = _rand(3 * width)
        sd[p + "attn.out_proj.weight"] = _rand(width, width, scale=width ** -0.5)
        sd[p + "attn.out_proj.bias"] = _rand(width)
        sd[p + "mlp.c_fc.weight"] = _rand(4 * width, width, scale=width ** -0.5)
        sd[p + "mlp.c_fc.bias"] = _rand(4 * width)
        sd[p + "mlp.c_proj.weight"] = _rand(width, 4 * width, scale=(4 * width) ** -0.5)
        sd[p + "mlp.c_proj.bias"] = _rand(width)


def openclip_state_dict(seed: int = 0, layers: int = 2) -> dict[str, torch.Tensor]:
    """A tiny open_clip ViT CLIP state dict with open_clip's parameter names."""
    torch.manual_seed(seed)
    vocab = len(clip_vocab())
    grid = IMAGE // PATCH
    sd = {"visual.conv1.weight": _rand(WIDTH, 3, PATCH, PATCH, scale=0.2),
          "visual.class_embedding": _rand(WIDTH), "visual.positional_embedding": _rand(grid * grid + 1, WIDTH),
          "visual.proj": _rand(WIDTH, EMBED, scale=WIDTH ** -0.5),
          "token_embedding.weight": _rand(vocab, WIDTH, scale=0.5), "positional_embedding": _rand(CTX, WIDTH),
          "text_projection": _rand(WIDTH, EMBED, scale=WIDTH ** -0.5), "logit_scale": torch.tensor(4.6052)}
    _ln(sd, "visual.ln_pre", WIDTH)
    _ln(sd, "visual.ln_post", WIDTH)
    _ln(sd, "ln_final", WIDTH)
    _resblocks(sd, "visual.transformer.resblocks.", layers, WIDTH)
    _resblocks(sd, "transformer.resblocks.", layers, WIDTH)
    return sd


OPENCLIP_CFG = {"embed_dim": EMBED, "quick_gelu": False,
                "vision_cfg": {"image_size": IMAGE, "layers": 2, "width": WIDTH, "head_width": WIDTH // HEADS,
                               "patch_size": PATCH},
                "text_cfg": {"context_length": CTX, "vocab_size": len(clip_vocab()), "width": WIDTH, "heads": HEADS,
                             "layers": 2}}


def write_openclip(folder, name="open_clip_pytorch_model.bin", wrap=False, config=True, gz=False):
    folder.mkdir(parents=True, exist_ok=True)
    sd = openclip_state_dict()
    torch.save({"state_dict": sd, "epoch": 3} if wrap else sd, folder / name)
    if config:
        (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": OPENCLIP_CFG}))
    write_bpe(folder, gz=gz)
    return folder


def write_hf_clip(folder):
    """A tiny transformers CLIPModel saved with save_pretrained (PickScore's layout)."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(1)
    vocab = clip_vocab()
    text = dict(vocab_size=len(vocab), hidden_size=WIDTH, intermediate_size=2 * WIDTH, num_hidden_layers=1,
                num_attention_heads=HEADS, max_position_embeddings=CTX, bos_token_id=len(vocab) - 2,
                eos_token_id=len(vocab) - 1, pad_token_id=len(vocab) - 1)
    vision = dict(hidden_size=WIDTH, intermediate_size=2 * WIDTH, num_hidden_layers=1, num_attention_heads=HEADS,
                  image_size=IMAGE, patch_size=PATCH)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=EMBED)).save_pretrained(folder)
    write_bpe(folder)
    return folder


BERT_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "photo", "of", "cat", "dog", "red", "blue"]
IR_VISION, IR_TEXT, IR_HEAD = 64, 32, (32, 16, 8, 8, 4, 1)  # ViT width 64 = one 64-wide BLIP head


def imagereward_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A tiny ImageReward.pt with the release's names (BLIP ViT + med BERT + MLP head)."""
    torch.manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    w, h, grid = IR_VISION, IR_TEXT, IMAGE // PATCH
    v = "blip.visual_encoder."
    sd[v + "cls_token"] = _rand(1, 1, w)
    sd[v + "pos_embed"] = _rand(1, grid * grid + 1, w)
    sd[v + "patch_embed.proj.weight"] = _rand(w, 3, PATCH, PATCH, scale=0.2)
    sd[v + "patch_embed.proj.bias"] = _rand(w)
    p = v + "blocks.0."
    _ln(sd, p + "norm1", w)
    _ln(sd, p + "norm2", w)
    for name, shape in (("attn.qkv", (3 * w, w)), ("attn.proj", (w, w)), ("mlp.fc1", (4 * w, w)),
                        ("mlp.fc2", (w, 4 * w))):
        sd[p + name + ".weight"] = _rand(*shape, scale=shape[1] ** -0.5)
        sd[p + name + ".bias"] = _rand(shape[0])
    _ln(sd, v + "norm", w)
    t = "blip.text_encoder."
    sd[t + "embeddings.word_embeddings.weight"] = _rand(len(BERT_VOCAB) + 2, h, scale=0.5)
    sd[t + "embeddings.position_embeddings.weight"] = _rand(40, h)
    sd[t + "embeddings.position_ids"] = torch.arange(40).unsqueeze(0)
    _ln(sd, t + "embeddings.LayerNorm", h)
    p = t + "encoder.layer.0."
    linears = {"attention.self.query": (h, h), "attention.self.key": (h, h), "attention.self.value": (h, h),
               "attention.output.dense": (h, h), "crossattention.self.query": (h, h),
               "crossattention.self.key": (h, w), "crossattention.self.value": (h, w),
               "crossattention.output.dense": (h, h), "intermediate.dense": (2 * h, h), "output.dense": (h, 2 * h)}
    for name, shape in linears.items():
        sd[p + name + ".weight"] = _rand(*shape, scale=shape[1] ** -0.5)
        sd[p + name + ".bias"] = _rand(shape[0])
    for name in ("attention.output.LayerNorm", "crossattention.output.LayerNorm", "output.LayerNorm"):
        _ln(sd, p + name, h)
    for i, (a, b) in zip((0, 2, 4, 6, 7), zip(IR_HEAD[:-1], IR_HEAD[1:])):
        sd[f"mlp.layers.{i}.weight"] = _rand(b, a, scale=a ** -0.5)
        sd[f"mlp.layers.{i}.bias"] = _rand(b)
    sd["blip.vision_proj.weight"] = _rand(8, w)  # in the release, unused by the reward
    sd["blip.text_proj.weight"] = _rand(8, h)
    return sd


MED_CONFIG = {"architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
              "hidden_dropout_prob": 0.1, "hidden_size": IR_TEXT, "initializer_range": 0.02,
              "intermediate_size": 2 * IR_TEXT, "layer_norm_eps": 1e-12, "max_position_embeddings": 40,
              "model_type": "bert", "num_attention_heads": 2, "num_hidden_layers": 1, "pad_token_id": 0,
              "type_vocab_size": 2, "vocab_size": len(BERT_VOCAB) + 2, "encoder_width": 768,
              "add_cross_attention": True}


def write_imagereward(folder, sd=None):
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(imagereward_state_dict() if sd is None else sd, folder / "ImageReward.pt")
    (folder / "med_config.json").write_text(json.dumps(MED_CONFIG))
    (folder / "vocab.txt").write_text("\n".join(BERT_VOCAB) + "\n")
    return folder


WRITERS = {"clip_score": write_openclip, "hpsv2": lambda d: write_openclip(d, "HPS_v2.1_compressed.pt", wrap=True),
           "pickscore": write_hf_clip, "imagereward": write_imagereward}


# ----------------------------------------------------------------------------- behaviour
@pytest.mark.parametrize("kind", list(WRITERS))
@pytest.mark.parametrize("channels,size", [(1, 12), (3, 20)])
def test_adapter_scores_and_gradients(tmp_path, kind, channels, size):
    folder = WRITERS[kind](tmp_path / kind)
    reward = load_adapter(kind, folder, "cpu")
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    assert reward.name == kind
    assert not any(p.requires_grad for p in reward.parameters())
    reward.train()  # a training loop may ask; dropout must stay off (ImageReward's config has 0.1)
    assert not any(m.training for m in reward.modules())
    torch.manual_seed(2)
    images = torch.rand(2, channels, size, size, requires_grad=True)
    scores = reward.score(images, PROMPTS)
    assert scores.shape == (2,) and torch.isfinite(scores).all()
    scores.sum().backward()
    assert torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0
    with torch.no_grad():  # deterministic, and each image's score depends on its own prompt
        again = reward.score(images, PROMPTS)
        swapped = reward.score(images, PROMPTS[::-1])
    torch.testing.assert_close(again, scores.detach())
    assert not torch.allclose(swapped, scores.detach())


def test_hpsv2_file_path_and_reward_config(tmp_path):
    """`path` may name the checkpoint itself; the adapter also loads through the reward config."""
    folder = write_openclip(tmp_path / "hps", "HPS_v2_compressed.pt", wrap=True)
    direct = load_adapter("hpsv2", folder / "HPS_v2_compressed.pt", "cpu")
    built = build_reward(RewardTermConfig(kind="hpsv2", path=str(folder), normalize="scale", scale=0.5))
    images = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(built.score(images, PROMPTS), 0.5 * direct.score(images, PROMPTS))


def _ref_tower(sd, prefix, x, layers, causal):
    """open_clip's residual attention blocks, written with torch.nn.functional from the raw weights."""
    n = x.shape[1]
    mask = torch.full((n, n), float("-inf")).triu(1) if causal else None
    for i in range(layers):
        p = f"{prefix}{i}."
        h = F.layer_norm(x, (WIDTH,), sd[p + "ln_1.weight"], sd[p + "ln_1.bias"]).transpose(0, 1)
        a, _ = F.multi_head_attention_forward(
            h, h, h, WIDTH, HEADS, sd[p + "attn.in_proj_weight"], sd[p + "attn.in_proj_bias"], None, None, False, 0.0,
            sd[p + "attn.out_proj.weight"], sd[p + "attn.out_proj.bias"], need_weights=False, attn_mask=mask)
        x = x + a.transpose(0, 1)
        h = F.layer_norm(x, (WIDTH,), sd[p + "ln_2.weight"], sd[p + "ln_2.bias"])
        x = x + F.linear(F.gelu(F.linear(h, sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"])),
                         sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"])
    return x


def test_openclip_conversion_matches_the_open_clip_forward(tmp_path):
    """The renamed CLIPModel computes open_clip's encode_image / encode_text (q-k-v split, transposes)."""
    folder = write_openclip(tmp_path / "oc")
    reward = load_adapter("clip_score", folder, "cpu")
    sd = openclip_state_dict()
    images = torch.rand(2, 3, IMAGE, IMAGE)
    x = F.conv2d(reward.prep(images), sd["visual.conv1.weight"], stride=PATCH).flatten(2).transpose(1, 2)
    x = torch.cat([sd["visual.class_embedding"].expand(2, 1, WIDTH), x], 1) + sd["visual.positional_embedding"]
    x = F.layer_norm(x, (WIDTH,), sd["visual.ln_pre.weight"], sd["visual.ln_pre.bias"])
    x = _ref_tower(sd, "visual.transformer.resblocks.", x, 2, causal=False)
    img = F.layer_norm(x[:, 0], (WIDTH,), sd["visual.ln_post.weight"], sd["visual.ln_post.bias"]) @ sd["visual.proj"]
    ids = reward.tokenizer(PROMPTS, padding="max_length", max_length=CTX, return_tensors="pt")["input_ids"]
    t = _ref_tower(sd, "transformer.resblocks.", sd["token_embedding.weight"][ids] + sd["positional_embedding"], 2,
                   causal=True)
    t = F.layer_norm(t, (WIDTH,), sd["ln_final.weight"], sd["ln_final.bias"])
    txt = t[torch.arange(2), ids.argmax(-1)] @ sd["text_projection"]
    with torch.no_grad():
        torch.testing.assert_close(reward.image_features(images), F.normalize(img, dim=-1), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(reward.text_features(PROMPTS), F.normalize(txt, dim=-1), atol=1e-5, rtol=1e-4)
        expected = 100 * (F.normalize(img, dim=-1) * F.normalize(txt, dim=-1)).sum(-1)
        torch.testing.assert_close(reward.score(images, PROMPTS), expected, atol=1e-4, rtol=1e-4)


def test_pickscore_uses_the_learned_logit_scale(tmp_path):
    reward = load_adapter("pickscore", write_hf_clip(tmp_path / "pick"), "cpu")
    images = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        expected = reward.model.logit_scale.exp() * reward.cosine(images, PROMPTS)
        torch.testing.assert_close(reward.score(images, PROMPTS), expected)


def test_clip_tokenizer_file_layouts_agree(tmp_path):
    """vocab.json + merges.txt, open_clip's bpe_simple_vocab_16e6.txt.gz and tokenizer.json give the same ids."""
    a = load_adapter("clip_score", write_openclip(tmp_path / "a"), "cpu").tokenizer
    b = load_adapter("clip_score", write_openclip(tmp_path / "b", gz=True), "cpu").tokenizer
    c_dir = write_openclip(tmp_path / "c")
    for name in ("vocab.json", "merges.txt"):
        (c_dir / name).unlink()
    a.backend_tokenizer.save(str(c_dir / "tokenizer.json"))
    c = load_adapter("clip_score", c_dir, "cpu").tokenizer
    ids = a(PROMPTS, padding=True)["input_ids"]
    assert ids == b(PROMPTS, padding=True)["input_ids"] == c(PROMPTS, padding=True)["input_ids"]
    assert ids[1][0] == len(clip_vocab()) - 2 and len(clip_vocab()) - 1 in ids[1]  # <|startoftext|> … <|endoftext|>


def test_imagereward_head_and_standardisation(tmp_path):
    """The head's output is standardised with ImageReward's constants: a constant head gives (b − mean) / std."""
    sd = imagereward_state_dict()
    sd["mlp.layers.7.weight"].zero_()
    sd["mlp.layers.7.bias"].fill_(2.0)
    reward = load_adapter("imagereward", write_imagereward(tmp_path / "ir", sd), "cpu")
    with torch.no_grad():
        scores = reward.score(torch.rand(2, 1, 16, 16), PROMPTS)
    torch.testing.assert_close(scores, torch.full((2,), (2.0 - REWARD_MEAN) / REWARD_STD))
    assert reward.tokenizer(PROMPTS, padding="max_length", max_length=35)["input_ids"][0][:3] == [2, 5, 6]


def test_preprocessing_fits_like_torchvision_and_open_clip():
    grey = torch.rand(1, 1, 8, 16)
    crop = ImagePrep(size=4, mean=(0, 0, 0), std=(1, 1, 1), fit="crop")(grey)
    pad = ImagePrep(size=4, mean=(0, 0, 0), std=(1, 1, 1), fit="pad")(grey)
    assert crop.shape == pad.shape == (1, 3, 4, 4)
    assert torch.equal(crop[:, 0], crop[:, 2])  # grey repeated to RGB
    assert (pad[..., :1, :] == 0).all() and (pad[..., -1:, :] == 0).all() and (pad[..., 1:3, :] != 0).any()
    norm = ImagePrep(size=8, fit="crop")(torch.full((1, 3, 8, 8), 0.5))
    torch.testing.assert_close(norm[0, :, 0, 0], (0.5 - torch.tensor(ImagePrep.mean)) / torch.tensor(ImagePrep.std))
    with pytest.raises(DataError, match=r"\[B, 1 or 3, H, W\]"):
        ImagePrep()(torch.rand(2, 4, 8, 8))


# ----------------------------------------------------------------------------- user mistakes
@pytest.mark.parametrize("kind,names", [
    ("clip_score", ["open_clip_model.safetensors", "config.json", "vocab.json", "merges.txt"]),
    ("hpsv2", ["HPS_v2.1_compressed.pt", "vocab.json", "merges.txt"]),
    ("pickscore", ["config.json", "model.safetensors", "vocab.json", "merges.txt"]),
    ("imagereward", ["ImageReward.pt", "med_config.json", "vocab.txt"]),
])
def test_missing_path_names_the_expected_files(tmp_path, kind, names):
    for path in (tmp_path / "nowhere", ""):
        with pytest.raises(CheckpointError) as e:
            load_adapter(kind, path, "cpu")
        for n in names:
            assert n in str(e.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="expected one of"):
        load_adapter(kind, empty, "cpu")


def test_incomplete_folders_say_what_is_missing(tmp_path):
    oc = write_openclip(tmp_path / "oc")
    (oc / "merges.txt").unlink()
    with pytest.raises(CheckpointError, match=r"vocab.json \+ merges.txt"):
        load_adapter("clip_score", oc, "cpu")
    ir = write_imagereward(tmp_path / "ir")
    (ir / "med_config.json").unlink()
    with pytest.raises(CheckpointError, match="med_config.json"):
        load_adapter("imagereward", ir, "cpu")
    ir2 = write_imagereward(tmp_path / "ir2")
    (ir2 / "vocab.txt").unlink()
    with pytest.raises(CheckpointError, match="vocab.txt"):
        load_adapter("imagereward", ir2, "cpu")


def test_wrong_or_unsupported_checkpoints_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="open_clip_config.json"):  # tiny model: no built-in config fits
        load_adapter("clip_score", write_openclip(tmp_path / "nocfg", config=False), "cpu")
    odd = write_openclip(tmp_path / "odd")
    sd = openclip_state_dict()
    sd["visual.transformer.resblocks.0.ls_1.gamma"] = torch.ones(WIDTH)  # layer scale: not a plain ViT
    torch.save(sd, odd / "open_clip_pytorch_model.bin")
    with pytest.raises(CheckpointError, match="ls_1.gamma"):
        load_adapter("clip_score", odd, "cpu")
    with pytest.raises(CheckpointError, match="not an open_clip CLIP state dict"):
        load_adapter("hpsv2", write_imagereward(tmp_path / "ir") / "ImageReward.pt", "cpu")
    sd = imagereward_state_dict()
    del sd["mlp.layers.7.bias"]
    with pytest.raises(CheckpointError, match="layers.7.bias"):
        load_adapter("imagereward", write_imagereward(tmp_path / "ir2", sd), "cpu")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="could not be read"):
        load_adapter("hpsv2", tmp_path / "junk.pt", "cpu")
    with pytest.raises(ConfigError, match="clip_score"):
        load_adapter("aesthetic", tmp_path, "cpu")
    reward = load_adapter("clip_score", write_openclip(tmp_path / "ok"), "cpu")
    with pytest.raises(DataError, match="one prompt per image"):
        reward.score(torch.rand(3, 3, 8, 8), PROMPTS)
