"""CLIP-family rewards: CLIP score, HPSv2 and PickScore (docs/method.md §6, §7).

All three are a CLIP dual encoder scoring an image against its prompt by the cosine of their
unit-norm embeddings; they differ in weights, input fit and scale:

==============  ==========================================  =====  =====================================
reward          weights                                     fit    score
==============  ==========================================  =====  =====================================
``clip_score``  any CLIP (open_clip file or HF folder)      crop   ``100 · cos`` (see below)
``hpsv2``       ``HPS_v2(.1)_compressed.pt`` (ViT-H-14)     pad    ``100 · cos`` (HPSv2's benchmark scale)
``pickscore``   PickScore_v1 (HF ``CLIPModel`` folder)      crop   ``exp(logit_scale) · cos`` (≈ 100 · cos)
==============  ==========================================  =====  =====================================

CLIP score follows Hessel et al. / torchmetrics (``100 · cos``) **without** their clamp at 0:
``max(cos, 0)`` would stop the gradient of any image whose cosine is negative, and a reward for
fine-tuning must always have one. Divide by 100 (``scale: 0.01``) for the raw cosine.

A folder is read in one of two layouts (detected by ``config.json``):

* Hugging Face ``CLIPModel``: ``config.json`` + ``model.safetensors`` (or ``pytorch_model.bin``),
  optionally ``preprocessor_config.json`` (``image_mean``/``image_std``), + tokenizer files;
* open_clip: a state-dict file (``open_clip_model.safetensors``, ``open_clip_pytorch_model.bin``,
  ``HPS_v2.1_compressed.pt``, ``HPS_v2_compressed.pt``, or the folder's only ``*.pt|*.pth|*.bin|
  *.safetensors``; ``path`` may also be that file), optionally ``open_clip_config.json``, + tokenizer
  files; converted by :mod:`.openclip_convert`.

Tokenizer files (same folder or ``tokenizer/``): see :mod:`.clip_tokenizer`.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import CheckpointError, DataError
from ...files import read_json
from ...safeload import hf_from_pretrained
from ..base import freeze
from .clip_tokenizer import TOKENIZER_EXPECTED, load_clip_tokenizer
from .local import find_weights, offline, read_state_dict, require_path
from .openclip_convert import is_openclip_state_dict, openclip_to_hf
from .preprocess import CLIP_MEAN, CLIP_STD, ImagePrep

OPENCLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin", "HPS_v2.1_compressed.pt",
                    "HPS_v2_compressed.pt")


def load_clip_folder(kind: str, path: str | os.PathLike, expected: str, fit: Literal["crop", "pad"]):
    """``(CLIPModel, CLIPTokenizer, ImagePrep)`` from a local folder or file in either layout."""
    p = require_path(kind, path, expected)
    folder = p if p.is_dir() else p.parent
    offline()
    pre: dict = {}
    if p.is_dir() and (p / "config.json").is_file():
        from transformers import CLIPModel  # heavy: transformers, only for this adapter

        mtype = read_json(p / "config.json", f"reward '{kind}':", CheckpointError).get("model_type")
        if mtype != "clip":
            raise CheckpointError(f"reward '{kind}': {p / 'config.json'} describes a '{mtype}' model, not a "
                                  f"CLIPModel. Expected {expected}.")
        tokenizer = load_clip_tokenizer(kind, folder, expected)
        model = hf_from_pretrained(CLIPModel, p, what=f"reward '{kind}' (a CLIPModel: config.json + "
                                                      f"model.safetensors)").float()
        if (p / "preprocessor_config.json").is_file():
            proc = read_json(p / "preprocessor_config.json", f"reward '{kind}':", CheckpointError)
            pre = {"mean": proc.get("image_mean"), "std": proc.get("image_std")}
    else:
        weights = find_weights(kind, p, OPENCLIP_WEIGHTS, expected)
        sd = read_state_dict(kind, weights)
        if not is_openclip_state_dict(sd):
            raise CheckpointError(f"reward '{kind}': {weights} is not an open_clip CLIP state dict (no visual.* "
                                  f"and token_embedding.weight). Expected {expected}.")
        tokenizer = load_clip_tokenizer(kind, folder, expected)
        model, pre = openclip_to_hf(sd, folder, tokenizer)
    prep = ImagePrep(size=int(model.config.vision_config.image_size), mean=tuple(pre.get("mean") or CLIP_MEAN),
                     std=tuple(pre.get("std") or CLIP_STD), fit=fit)
    return freeze(model), tokenizer, prep


class ClipFamilyReward(nn.Module):
    """``scale · cos(f_image, f_text)`` of a frozen ``CLIPModel``; a subclass fixes the kind and scale."""

    kind: ClassVar[str] = ""
    fit: ClassVar[Literal["crop", "pad"]] = "crop"
    expected: ClassVar[str] = ""  # the files a user must provide, for error messages

    def __init__(self, model: nn.Module, tokenizer, prep: ImagePrep):
        super().__init__()
        self.name = self.kind
        self.model = model
        self.tokenizer = tokenizer
        self.prep = prep
        self.context_length = int(model.config.text_config.max_position_embeddings)

    @classmethod
    def from_local(cls, path: str | os.PathLike, device: torch.device | str = "cpu") -> "ClipFamilyReward":
        """Load from a local folder or file (see the module docstring); never downloads."""
        model, tokenizer, prep = load_clip_folder(cls.kind, path, cls.expected, cls.fit)
        return cls(model, tokenizer, prep).to(device)

    def train(self, mode: bool = True) -> "ClipFamilyReward":
        """The frozen network stays in eval mode whatever a wrapping module asks (no dropout noise)."""
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return self.model.logit_scale.device

    @torch.no_grad()
    def text_features(self, prompts: Sequence[str]) -> torch.Tensor:
        """Unit-norm text embeddings ``[B, D]`` (constant w.r.t. the images, so without gradient)."""
        tok = self.tokenizer(list(prompts), padding=True, truncation=True, max_length=self.context_length,
                             return_tensors="pt").to(self.device)
        out = self.model.text_model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
        return F.normalize(self.model.text_projection(out.pooler_output), dim=-1)

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-norm image embeddings ``[B, D]``, differentiable in ``images``."""
        x = self.prep(images.to(self.device))
        out = self.model.vision_model(pixel_values=x)
        return F.normalize(self.model.visual_projection(out.pooler_output), dim=-1)

    def cosine(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """``cos(f_image_b, f_text_b)`` for each pair, ``[B]``."""
        if len(prompts) != images.shape[0]:
            raise DataError(f"reward '{self.name}' got {images.shape[0]} images but {len(prompts)} prompts; "
                            f"pass one prompt per image.")
        return (self.image_features(images) * self.text_features(prompts)).sum(-1)

    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        return 100.0 * self.cosine(images, prompts)


class ClipScore(ClipFamilyReward):
    """CLIP score ``100 · cos`` (no clamp at 0; see the module docstring)."""

    kind = "clip_score"
    fit = "crop"
    expected = ("a CLIP folder: open_clip weights (open_clip_model.safetensors, open_clip_pytorch_model.bin or "
                f"one *.pt/*.bin file; optional open_clip_config.json) or a Hugging Face CLIPModel "
                f"(config.json + model.safetensors), with tokenizer files {TOKENIZER_EXPECTED}")


class HPSv2(ClipFamilyReward):
    """Human Preference Score v2: ``100 · cos`` of the HPS-fine-tuned open_clip ViT-H-14."""

    kind = "hpsv2"
    fit = "pad"
    expected = ("a folder with HPS_v2.1_compressed.pt (or HPS_v2_compressed.pt; the file itself is accepted too) "
                f"and the CLIP tokenizer files {TOKENIZER_EXPECTED}")


class PickScore(ClipFamilyReward):
    """PickScore: ``exp(logit_scale) · cos`` of the PickScore_v1 CLIP-H model."""

    kind = "pickscore"
    fit = "crop"
    expected = ("a Hugging Face CLIPModel folder of PickScore_v1 (config.json + model.safetensors or "
                f"pytorch_model.bin) with the CLIP tokenizer files {TOKENIZER_EXPECTED}")

    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        return self.model.logit_scale.exp() * self.cosine(images, prompts)
