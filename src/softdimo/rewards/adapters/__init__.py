"""Adapters for real reward models, loaded from local files only (docs/method.md §6).

:func:`load_adapter` returns a :class:`~softdimo.rewards.base.Reward` (``name`` +
``score(images [B, C, H, W] in [0, 1], prompts) -> [B]``, differentiable in the images, frozen
weights) for one of:

=================  ==========================  ==========================================================
kind               class                       local files (``path`` = folder, or the weights file)
=================  ==========================  ==========================================================
``clip_score``     :class:`ClipScore`          open_clip CLIP weights (+ ``open_clip_config.json``) or a
                                               HF ``CLIPModel`` folder; CLIP tokenizer files
``hpsv2``          :class:`HPSv2`              ``HPS_v2.1_compressed.pt`` / ``HPS_v2_compressed.pt``;
                                               CLIP tokenizer files
``pickscore``      :class:`PickScore`          HF ``CLIPModel`` folder of PickScore_v1; CLIP tokenizer files
``imagereward``    :class:`ImageReward`        ``ImageReward.pt``, ``med_config.json``, BERT ``vocab.txt``
=================  ==========================  ==========================================================

CLIP tokenizer files: ``vocab.json`` + ``merges.txt``, or ``tokenizer.json``, or open_clip's
``bpe_simple_vocab_16e6.txt.gz``. Nothing is downloaded: ``HF_HUB_OFFLINE=1`` is set and every
``from_pretrained`` uses ``local_files_only=True``. No torchvision, timm or open_clip is needed:
the networks are ``transformers``' ``CLIPModel`` and BLIP models, and open_clip / ImageReward
checkpoints are renamed into them (:mod:`.openclip_convert`, :mod:`.imagereward`).
"""
from __future__ import annotations

import os

import torch

from ...errors import ConfigError
from .clip import ClipFamilyReward, ClipScore, HPSv2, PickScore
from .imagereward import ImageReward
from .preprocess import ImagePrep

ADAPTERS = {"clip_score": ClipScore, "hpsv2": HPSv2, "pickscore": PickScore, "imagereward": ImageReward}


def load_adapter(kind: str, path: str | os.PathLike, device: torch.device | str = "cpu"):
    """The reward ``kind`` with weights from the local ``path``, frozen, on ``device``.

    Raises :class:`~softdimo.errors.CheckpointError` naming the expected files when ``path`` is
    missing or incomplete, and :class:`~softdimo.errors.ConfigError` for an unknown ``kind``.
    """
    if kind not in ADAPTERS:
        raise ConfigError(f"unknown reward adapter '{kind}'; choose one of {', '.join(ADAPTERS)}.")
    return ADAPTERS[kind].from_local(path, device=device)


__all__ = ["load_adapter", "ADAPTERS", "ClipFamilyReward", "ClipScore", "HPSv2", "PickScore", "ImageReward",
           "ImagePrep"]
