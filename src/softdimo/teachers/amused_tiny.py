"""A tiny, randomly initialised aMUSEd folder, built offline (tests, benchmarks, documentation).

:func:`write_tiny_amused` writes the diffusers layout of a real aMUSEd checkpoint
(``model_index.json``, ``transformer/``, ``vqvae/``, ``text_encoder/``, ``tokenizer/``,
``scheduler/``) with every component at a few dozen channels, so that the whole adapter path of
:mod:`softdimo.teachers.amused` (``from_pretrained(root, subfolder=…)``, conditioning, soft
embedding, soft decoding, sampling, distillation) runs on a CPU in seconds, without downloads.

The CLIP tokenizer is made from files written here: a byte-level BPE vocabulary of the 256 byte
symbols, their end-of-word forms and the two special tokens, with no merges (each character is a
token). The shapes mirror amused-256 where it matters: the mask id is the *last* vocabulary row,
not ``codebook_size`` (``vocab_size`` = K + 8 as the real 8256 = 8192 + 64), the VQ decodes with
``lookup_from_codebook``, and the text encoder gives a pooled projection and hidden states.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .amused import quiet_hub, require_diffusers


@dataclass
class TinyAmusedConfig:
    """Sizes of the tiny aMUSEd (defaults: K = 32, 8×8 grid, 32×32 RGB images, width 32)."""

    codebook_size: int = 32  # K image tokens
    extra_vocab: int = 8  # unused rows after the codebook; the mask is the last one
    grid: int = 8  # token grid (grid × grid)
    vq_levels: int = 3  # VQ down-sampling levels: image size = grid · 2^(levels − 1)
    hidden: int = 32  # transformer width
    layers: int = 2  # transformer blocks (the discriminator taps)
    embed_dim: int = 16  # token embedding width (UVit2DConvEmbed's in_channels)
    text_hidden: int = 32  # CLIP text width (= the transformer's encoder_hidden_size)
    text_layers: int = 2
    max_text_len: int = 16  # the tokenizer's model_max_length
    seed: int = 0


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins of byte-level BPE (GPT-2's byte-to-unicode table)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes, extra = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def write_clip_tokenizer(path: str | Path, max_length: int = 16) -> int:
    """Write a character-level CLIP tokenizer (vocab.json, merges.txt, tokenizer_config.json); returns its size."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    symbols = _byte_symbols()
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + "</w>": i + len(symbols) for i, s in enumerate(symbols)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n")
    (path / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": max_length, "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}, indent=2))
    return len(vocab)


def write_tiny_amused(path: str | Path, config: TinyAmusedConfig | None = None) -> Path:
    """Write a random tiny aMUSEd folder at ``path`` (see the module docstring); returns ``path``."""
    require_diffusers()
    c = config or TinyAmusedConfig()
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(c.seed)
    with quiet_hub():
        _write_parts(path, c)
    return path


def _write_parts(path: Path, c: TinyAmusedConfig) -> None:
    from diffusers import AmusedScheduler, UVit2DModel, VQModel  # optional dependency (the amused extra)
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection  # loaded with diffusers only

    vocab = write_clip_tokenizer(path / "tokenizer", c.max_text_len)
    text = CLIPTextModelWithProjection(CLIPTextConfig(
        vocab_size=vocab, hidden_size=c.text_hidden, intermediate_size=2 * c.text_hidden,
        num_hidden_layers=c.text_layers, num_attention_heads=2, projection_dim=c.text_hidden,
        max_position_embeddings=c.max_text_len, bos_token_id=vocab - 2, eos_token_id=vocab - 1,
        pad_token_id=vocab - 1))
    text.save_pretrained(path / "text_encoder")
    chans = tuple(min(16, 8 * 2 ** i) for i in range(c.vq_levels))
    VQModel(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * c.vq_levels,
            up_block_types=("UpDecoderBlock2D",) * c.vq_levels, block_out_channels=chans, layers_per_block=1,
            latent_channels=8, num_vq_embeddings=c.codebook_size, norm_num_groups=4,
            sample_size=c.grid * 2 ** (c.vq_levels - 1), mid_block_add_attention=False,
            lookup_from_codebook=True).save_pretrained(path / "vqvae")
    UVit2DModel(hidden_size=c.hidden, cond_embed_dim=c.text_hidden, micro_cond_encode_dim=4,
                micro_cond_embed_dim=5 * 4, encoder_hidden_size=c.text_hidden,
                vocab_size=c.codebook_size + c.extra_vocab, codebook_size=c.codebook_size,
                in_channels=c.embed_dim, block_out_channels=c.embed_dim, num_res_blocks=1, block_num_heads=2,
                num_hidden_layers=c.layers, num_attention_heads=2, intermediate_size=2 * c.hidden,
                sample_size=c.grid).save_pretrained(path / "transformer")
    AmusedScheduler(mask_token_id=c.codebook_size + c.extra_vocab - 1).save_pretrained(path / "scheduler")
    (path / "model_index.json").write_text(json.dumps({
        "_class_name": "AmusedPipeline", "scheduler": ["diffusers", "AmusedScheduler"],
        "text_encoder": ["transformers", "CLIPTextModelWithProjection"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "transformer": ["diffusers", "UVit2DModel"],
        "vqvae": ["diffusers", "VQModel"]}, indent=2))


__all__ = ["TinyAmusedConfig", "write_tiny_amused", "write_clip_tokenizer"]
