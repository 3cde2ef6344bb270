"""ImageReward (Xu et al. 2023) as a differentiable reward, without its torchvision/timm stack.

ImageReward is BLIP: a ViT image encoder whose tokens feed, by cross-attention, a BERT text
encoder ("med"); the text encoder's ``[CLS]`` state goes through an MLP head and the result is
standardised. This module recomputes exactly the path of the package's differentiable
``ImageReward.score_gard(prompt_ids, prompt_attention_mask, image)``::

    image_embeds = visual_encoder(image)                                   # [B, 1 + N, Dv]
    h = text_encoder(ids, mask, encoder_hidden_states=image_embeds).last_hidden_state[:, 0]
    reward = (mlp(h) - 0.16717362830052426) / 1.0333394966054072

with ``transformers``' ``BlipVisionModel`` (same ViT: fused ``qkv``, LayerNorm eps 1e-6, GELU)
and ``BlipTextModel`` (BLIP's ``med.py`` BERT with cross-attention, built as a decoder so that
the cross-attention layers exist, run with the bidirectional mask as ``med.py``'s encoder mode).
The head is the package's ``MLP``: five linear layers with dropout between and no activation.

Preprocessing (the package's ``_transform(224)``): short side to 224, bicubic, centre crop, CLIP
mean/std (:mod:`.preprocess`). Prompts: the BERT uncased tokenizer, ``padding="max_length"``,
``truncation=True``, ``max_length=35`` — as ``score`` and ReFL tokenise them.

Expected files, in one folder (``path`` may also be ``ImageReward.pt`` itself):

* ``ImageReward.pt`` — the released state dict (``blip.visual_encoder.*``, ``blip.text_encoder.*``,
  ``mlp.layers.*``; ``blip.vision_proj/text_proj`` are unused and ignored);
* ``med_config.json`` — the BERT config released with it;
* ``vocab.txt`` — bert-base-uncased's vocabulary (or ``tokenizer.json``), in the folder or in
  ``tokenizer/``; ImageReward's added ``[DEC]``/``[ENC]`` tokens are not used on this path.

Key mapping (``blip.visual_encoder.`` → ``BlipVisionModel``)::

    cls_token / pos_embed                   embeddings.class_embedding / embeddings.position_embedding
    patch_embed.proj                        embeddings.patch_embedding
    blocks.i.norm1 / norm2                  encoder.layers.i.layer_norm1 / layer_norm2
    blocks.i.attn.qkv / attn.proj           encoder.layers.i.self_attn.qkv / self_attn.projection
    blocks.i.mlp.fc1 / fc2                  encoder.layers.i.mlp.fc1 / fc2
    norm                                    post_layernorm

``blip.text_encoder.*`` keeps its names in ``BlipTextModel``; ``mlp.*`` its names in
:class:`RewardHead`. The ViT's widths, depth, patch and image size come from the tensor shapes and
its heads from BLIP's 64-wide heads (``width // 64``: 16 for ViT-L); the text model from
``med_config.json`` (``encoder_width`` = the ViT width, as ImageReward sets it).
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from ...errors import CheckpointError, DataError
from ...files import read_json
from ...safeload import hf_from_pretrained
from ..base import freeze
from .local import find_weights, offline, read_state_dict, require_files, require_path
from .preprocess import ImagePrep

REWARD_MEAN = 0.16717362830052426  # ImageReward.mean: the head's output is standardised with these
REWARD_STD = 1.0333394966054072  # ImageReward.std
MAX_PROMPT_TOKENS = 35  # max_length of ImageReward's tokenizer calls
HEAD_DIM = 64  # BLIP's ViT-B (768/12) and ViT-L (1024/16) both use 64-wide heads
WEIGHTS = "ImageReward.pt"
MED_CONFIG = "med_config.json"
EXPECTED = (f"a folder with {WEIGHTS}, {MED_CONFIG} and bert-base-uncased's vocab.txt (or tokenizer.json; "
            f"in the folder or in tokenizer/)")
_VIT = [(r"cls_token$", "embeddings.class_embedding"), (r"pos_embed$", "embeddings.position_embedding"),
        (r"patch_embed\.proj\.", "embeddings.patch_embedding."), (r"norm\.", "post_layernorm."),
        (r"blocks\.(\d+)\.norm1\.", r"encoder.layers.\1.layer_norm1."),
        (r"blocks\.(\d+)\.norm2\.", r"encoder.layers.\1.layer_norm2."),
        (r"blocks\.(\d+)\.attn\.qkv\.", r"encoder.layers.\1.self_attn.qkv."),
        (r"blocks\.(\d+)\.attn\.proj\.", r"encoder.layers.\1.self_attn.projection."),
        (r"blocks\.(\d+)\.mlp\.", r"encoder.layers.\1.mlp.")]


class RewardHead(nn.Module):
    """ImageReward's ``MLP``: Linear-Dropout(0.2)-Linear-Dropout(0.2)-Linear-Dropout(0.1)-Linear-Linear.

    No activations (they are commented out in the original). Sizes are read from the weights
    (768 → 1024 → 128 → 64 → 16 → 1 in the release), so the layer indices — and the state-dict
    keys ``layers.{0,2,4,6,7}`` — are the original's.
    """

    def __init__(self, sizes: Sequence[int]):
        super().__init__()
        if len(sizes) != 6:
            raise CheckpointError(f"ImageReward's head has 5 linear layers; the weights give sizes {list(sizes)}.")
        a, b, c, d, e, f = sizes
        self.layers = nn.Sequential(nn.Linear(a, b), nn.Dropout(0.2), nn.Linear(b, c), nn.Dropout(0.2),
                                    nn.Linear(c, d), nn.Dropout(0.1), nn.Linear(d, e), nn.Linear(e, f))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def split_state_dict(sd: dict[str, torch.Tensor]) -> tuple[dict, dict, dict]:
    """ImageReward.pt → ``(vision, text, head)`` state dicts with the target modules' names."""
    vision, text, head = {}, {}, {}
    for k, x in sd.items():
        if k.startswith("blip.visual_encoder."):
            rest = k[len("blip.visual_encoder."):]
            for pat, rep in _VIT:
                if re.match(pat, rest):
                    vision[re.sub("^" + pat, rep, rest)] = x
                    break
            else:
                vision["<unmapped>." + rest] = x
        elif k.startswith("blip.text_encoder."):
            rest = k[len("blip.text_encoder."):]
            if not rest.endswith("position_ids"):
                text[rest] = x
        elif k.startswith("mlp."):
            head[k[len("mlp."):]] = x
    return vision, text, head


def _load(module: nn.Module, sd: dict, what: str, file: Path) -> None:
    try:
        missing, unexpected = module.load_state_dict(sd, strict=False)
    except RuntimeError as e:
        raise CheckpointError(f"{file}: the {what} weights do not fit ({e}).") from e
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise CheckpointError(f"{file} is not an ImageReward checkpoint: {what} keys missing {missing[:6]}, "
                              f"unexpected {unexpected[:6]}. Expected the released {WEIGHTS}.")


def build_models(sd: dict[str, torch.Tensor], med: dict, file: Path):
    """``(BlipVisionModel, BlipTextModel, RewardHead)`` filled with the weights of ``ImageReward.pt``."""
    # heavy: transformers, only for this adapter
    from transformers import BlipTextConfig, BlipTextModel, BlipVisionConfig, BlipVisionModel

    vsd, tsd, hsd = split_state_dict(sd)
    need = ("embeddings.patch_embedding.weight", "embeddings.position_embedding", "encoder.layers.0.mlp.fc1.weight")
    if any(k not in vsd for k in need) or not tsd or not hsd:
        raise CheckpointError(f"{file} is not an ImageReward checkpoint (expected keys blip.visual_encoder.*, "
                              f"blip.text_encoder.* and mlp.layers.*).")
    conv = vsd["embeddings.patch_embedding.weight"]
    width, patch = int(conv.shape[0]), int(conv.shape[-1])
    grid = round((vsd["embeddings.position_embedding"].shape[1] - 1) ** 0.5)
    layers = len({k.split(".")[2] for k in vsd if k.startswith("encoder.layers.")})
    vision = BlipVisionModel(BlipVisionConfig(
        hidden_size=width, intermediate_size=int(vsd["encoder.layers.0.mlp.fc1.weight"].shape[0]),
        num_hidden_layers=layers, num_attention_heads=max(1, width // HEAD_DIM), image_size=grid * patch,
        patch_size=patch, hidden_act="gelu", layer_norm_eps=1e-6))
    if med.get("position_embedding_type", "absolute") != "absolute":
        raise CheckpointError(f"{MED_CONFIG}: only absolute position embeddings are supported (ImageReward's).")
    keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "max_position_embeddings", "hidden_act", "layer_norm_eps", "pad_token_id")
    missing = [k for k in keys if k not in med]
    if missing:
        raise CheckpointError(f"{MED_CONFIG} lacks {', '.join(missing)}; use the med_config.json released with "
                              f"ImageReward.")
    text = BlipTextModel(BlipTextConfig(**{k: med[k] for k in keys}, encoder_hidden_size=width, is_decoder=True,
                                        bos_token_id=None, sep_token_id=None, eos_token_id=None),
                         add_pooling_layer=False)
    linears = [hsd[f"layers.{i}.weight"] for i in (0, 2, 4, 6, 7) if f"layers.{i}.weight" in hsd]
    head = RewardHead([int(linears[0].shape[1])] + [int(w.shape[0]) for w in linears] if linears else [])
    _load(vision, vsd, "vision (blip.visual_encoder)", file)
    _load(text, tsd, "text (blip.text_encoder)", file)
    _load(head, hsd, "head (mlp)", file)
    return vision, text, head


class ImageReward(nn.Module):
    """ImageReward's ``score_gard`` on images in [0, 1]: one standardised reward per image."""

    kind: ClassVar[str] = "imagereward"

    def __init__(self, vision: nn.Module, text: nn.Module, head: RewardHead, tokenizer, prep: ImagePrep):
        super().__init__()
        self.name = self.kind
        self.vision = vision
        self.text = text
        self.head = head
        self.tokenizer = tokenizer
        self.prep = prep

    @classmethod
    def from_local(cls, path: str | os.PathLike, device: torch.device | str = "cpu") -> "ImageReward":
        """Load ``ImageReward.pt`` + ``med_config.json`` + ``vocab.txt`` from a local folder; never downloads."""
        from transformers import BertTokenizerFast as BertTokenizer  # the tokenizers-backed class

        p = require_path(cls.kind, path, EXPECTED)
        folder = p if p.is_dir() else p.parent
        weights = find_weights(cls.kind, p, (WEIGHTS,), EXPECTED)
        require_files(cls.kind, folder, [(MED_CONFIG,)], EXPECTED)
        tok_dir = next((f for f in (folder, folder / "tokenizer")
                        if (f / "vocab.txt").is_file() or (f / "tokenizer.json").is_file()), None)
        if tok_dir is None:
            require_files(cls.kind, folder, [("vocab.txt",), ("tokenizer.json",)], EXPECTED)
        offline()
        med = read_json(folder / MED_CONFIG, f"reward '{cls.kind}':", CheckpointError)
        tokenizer = hf_from_pretrained(BertTokenizer, tok_dir, what=f"reward '{cls.kind}': the BERT tokenizer "
                                                                    f"(bert-base-uncased's vocab.txt)")
        vision, text, head = build_models(read_state_dict(cls.kind, weights), med, weights)
        prep = ImagePrep(size=int(vision.config.image_size), fit="crop")
        return cls(freeze(vision), freeze(text), freeze(head), tokenizer, prep).to(device)

    def train(self, mode: bool = True) -> "ImageReward":
        """The frozen networks stay in eval mode whatever a wrapping module asks (BLIP and the head
        have dropout, which would make the reward random)."""
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return self.head.layers[0].weight.device

    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        if len(prompts) != images.shape[0]:
            raise DataError(f"reward '{self.name}' got {images.shape[0]} images but {len(prompts)} prompts; "
                            f"pass one prompt per image.")
        tok = self.tokenizer(list(prompts), padding="max_length", truncation=True, max_length=MAX_PROMPT_TOKENS,
                             return_tensors="pt").to(self.device)
        image_embeds = self.vision(pixel_values=self.prep(images.to(self.device))).last_hidden_state
        image_atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=self.device)
        out = self.text(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"],
                        encoder_hidden_states=image_embeds, encoder_attention_mask=image_atts)
        reward = self.head(out.last_hidden_state[:, 0, :])
        return ((reward - REWARD_MEAN) / REWARD_STD).squeeze(-1)
