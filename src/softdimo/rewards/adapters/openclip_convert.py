"""open_clip checkpoints (CLIP ViT-B/L/H, HPSv2) as ``transformers.CLIPModel``, without open_clip.

``open_clip`` imports torchvision at import time, which softdimo does not depend on. Its plain
ViT CLIP models are, however, the same network as ``transformers.CLIPModel`` (pre-LN transformer,
class token, ``ln_pre``/``ln_post``, argmax-EOT text pooling, bias-free projections); only the
parameter names and the fused attention input projection differ. :func:`openclip_to_hf` renames
an open_clip state dict into a ``CLIPModel`` and builds the matching config.

Key mapping (``i`` = block index; the same block mapping for both towers)::

    visual.conv1.weight                     vision_model.embeddings.patch_embedding.weight
    visual.class_embedding                  vision_model.embeddings.class_embedding
    visual.positional_embedding             vision_model.embeddings.position_embedding.weight
    visual.ln_pre / visual.ln_post          vision_model.pre_layrnorm / vision_model.post_layernorm
    visual.proj            [width, embed]   visual_projection.weight       (transposed)
    visual.transformer.resblocks.i.*        vision_model.encoder.layers.i.*
    token_embedding.weight                  text_model.embeddings.token_embedding.weight
    positional_embedding                    text_model.embeddings.position_embedding.weight
    transformer.resblocks.i.*               text_model.encoder.layers.i.*
    ln_final                                text_model.final_layer_norm
    text_projection        [width, embed]   text_projection.weight         (transposed)
    logit_scale                             logit_scale                    (both store log s)
  block:
    ln_1 / ln_2                             layer_norm1 / layer_norm2
    attn.in_proj_weight / in_proj_bias      self_attn.{q,k,v}_proj.weight / .bias  (split in 3, q-k-v order)
    attn.out_proj                           self_attn.out_proj
    mlp.c_fc / mlp.c_proj                   mlp.fc1 / mlp.fc2

Anything else (layer scale, attentional pooling, timm or Hugging Face towers, SigLIP's
``logit_bias``, ...) is refused with the names of the unmapped keys.

Architecture: widths, depths, patch size, grid, context length and vocabulary come from the
tensor shapes; the number of attention heads and the activation cannot, so they come from
``open_clip_config.json`` next to the weights (open_clip's model-config JSON, either bare —
``{"embed_dim", "quick_gelu", "vision_cfg", "text_cfg"}`` as in open_clip's ``model_configs/`` —
or the hub layout ``{"model_cfg": {...}, "preprocess_cfg": {"mean", "std"}}``), or else from
:data:`KNOWN_CONFIGS` (ViT-B-32, ViT-B-16, ViT-L-14, ViT-H-14) matched by shape. Without a
config the activation is GELU (the LAION models, HPSv2); OpenAI's original weights use QuickGELU
and need ``"quick_gelu": true`` in ``open_clip_config.json``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from ...errors import CheckpointError
from ...files import read_json

CONFIG_FILE = "open_clip_config.json"

#: open_clip's model configs (``open_clip/model_configs/*.json``) for the architectures named
#: in the reward literature; head counts are ``width // head_width`` (head_width 64 unless given).
KNOWN_CONFIGS: dict[str, dict[str, Any]] = {
    "ViT-B-32": {"embed_dim": 512, "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32},
                 "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}},
    "ViT-B-16": {"embed_dim": 512, "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 16},
                 "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}},
    "ViT-L-14": {"embed_dim": 768, "vision_cfg": {"image_size": 224, "layers": 24, "width": 1024, "patch_size": 14},
                 "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 768, "heads": 12, "layers": 12}},
    "ViT-H-14": {"embed_dim": 1024,
                 "vision_cfg": {"image_size": 224, "layers": 32, "width": 1280, "head_width": 80, "patch_size": 14},
                 "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 1024, "heads": 16, "layers": 24}},
}

_BLOCK = {"ln_1.": "layer_norm1.", "ln_2.": "layer_norm2.", "attn.out_proj.": "self_attn.out_proj.",
          "mlp.c_fc.": "mlp.fc1.", "mlp.c_proj.": "mlp.fc2."}
_TOP = {"visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
        "visual.class_embedding": "vision_model.embeddings.class_embedding",
        "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
        "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
        "positional_embedding": "text_model.embeddings.position_embedding.weight",
        "logit_scale": "logit_scale"}
_LN = {"visual.ln_pre.": "vision_model.pre_layrnorm.", "visual.ln_post.": "vision_model.post_layernorm.",
       "ln_final.": "text_model.final_layer_norm."}
_TOWERS = {"visual.transformer.resblocks.": "vision_model.encoder.layers.",
           "transformer.resblocks.": "text_model.encoder.layers."}
_IGNORED = ("attn_mask", "visual.attn_mask")  # causal-mask buffers some versions saved


def is_openclip_state_dict(sd: dict[str, torch.Tensor]) -> bool:
    """Whether ``sd`` looks like an open_clip CLIP state dict (has ``visual.*`` and ``token_embedding``)."""
    return "token_embedding.weight" in sd and any(k.startswith("visual.") for k in sd)


def _count_blocks(sd: dict[str, torch.Tensor], prefix: str) -> int:
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    return len({int(m.group(1)) for k in sd if (m := pat.match(k))})


def shape_summary(sd: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The architecture numbers readable from tensor shapes (everything but heads and activation)."""
    need = ("visual.conv1.weight", "visual.positional_embedding", "visual.proj", "token_embedding.weight",
            "positional_embedding", "text_projection")
    missing = [k for k in need if k not in sd]
    if missing:
        raise CheckpointError(f"this is not an open_clip ViT CLIP state dict: {', '.join(missing)} missing.")
    conv = sd["visual.conv1.weight"]
    grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    return {"embed_dim": int(sd["visual.proj"].shape[1]),
            "vision_cfg": {"image_size": grid * int(conv.shape[-1]), "layers": _count_blocks(sd, "visual.transformer.resblocks."),
                           "width": int(conv.shape[0]), "patch_size": int(conv.shape[-1])},
            "text_cfg": {"context_length": int(sd["positional_embedding"].shape[0]),
                         "vocab_size": int(sd["token_embedding.weight"].shape[0]),
                         "width": int(sd["token_embedding.weight"].shape[1]),
                         "layers": _count_blocks(sd, "transformer.resblocks.")}}


def _agrees(cfg: dict[str, Any], shapes: dict[str, Any]) -> list[str]:
    """Where ``cfg`` contradicts the numbers read from the weights."""
    bad = []
    if cfg.get("embed_dim", shapes["embed_dim"]) != shapes["embed_dim"]:
        bad.append(f"embed_dim {cfg['embed_dim']} ≠ {shapes['embed_dim']}")
    for tower in ("vision_cfg", "text_cfg"):
        for k, v in shapes[tower].items():
            c = cfg.get(tower, {}).get(k, v)
            if c != v:
                bad.append(f"{tower}.{k} {c} ≠ {v}")
    return bad


def resolve_config(sd: dict[str, torch.Tensor], folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(model_cfg, preprocess_cfg)`` from ``open_clip_config.json`` in ``folder`` or a known config."""
    shapes = shape_summary(sd)
    file = folder / CONFIG_FILE
    if file.is_file():
        raw = read_json(file, error=CheckpointError)
        cfg = raw.get("model_cfg", raw)
        pre = raw.get("preprocess_cfg", {})
        bad = _agrees(cfg, shapes)
        if bad:
            raise CheckpointError(f"{file} does not match the weights: {'; '.join(bad)}. Use the model config "
                                  f"of the architecture the checkpoint was trained with.")
        return cfg, pre
    for name, cfg in KNOWN_CONFIGS.items():
        if not _agrees(cfg, shapes):
            return cfg, {}
    raise CheckpointError(f"the open_clip checkpoint in {folder} ({shapes}) matches none of the built-in "
                          f"configs ({', '.join(KNOWN_CONFIGS)}); put its open_clip model config next to it as "
                          f"{CONFIG_FILE} (the JSON from open_clip's model_configs/, e.g. ViT-H-14.json).")


def hf_config(cfg: dict[str, Any], sd: dict[str, torch.Tensor], tokenizer=None):
    """The ``transformers.CLIPConfig`` of an open_clip model config (intermediate sizes from ``sd``)."""
    from transformers import CLIPConfig  # heavy: transformers, only when converting

    shapes = shape_summary(sd)
    v, t = {**shapes["vision_cfg"], **cfg.get("vision_cfg", {})}, {**shapes["text_cfg"], **cfg.get("text_cfg", {})}
    act = "quick_gelu" if cfg.get("quick_gelu", False) else "gelu"
    head_width = int(v.get("head_width", 64))
    if v["width"] % head_width or t["width"] % int(t.get("heads", 8)):
        raise CheckpointError(f"open_clip config: width {v['width']} is not a multiple of head_width {head_width}, "
                              f"or text width {t['width']} of heads {t.get('heads', 8)}.")
    ids = {}
    if tokenizer is not None:
        ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
               "pad_token_id": tokenizer.pad_token_id}
    text = dict(vocab_size=t["vocab_size"], hidden_size=t["width"], num_hidden_layers=t["layers"],
                intermediate_size=int(sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0]),
                num_attention_heads=int(t.get("heads", 8)), max_position_embeddings=t["context_length"],
                hidden_act=act, layer_norm_eps=1e-5, projection_dim=shapes["embed_dim"], **ids)
    vision = dict(hidden_size=v["width"], num_hidden_layers=v["layers"],
                  intermediate_size=int(sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0]),
                  num_attention_heads=v["width"] // head_width, image_size=v["image_size"],
                  patch_size=v["patch_size"], hidden_act=act, layer_norm_eps=1e-5,
                  projection_dim=shapes["embed_dim"])
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=shapes["embed_dim"])


def rename(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """open_clip parameter names → ``CLIPModel`` names (see the module docstring)."""
    out: dict[str, torch.Tensor] = {}
    unmapped = []
    for k, x in sd.items():
        if k in _IGNORED:
            continue
        if k in _TOP:
            out[_TOP[k]] = x
        elif k == "visual.proj":
            out["visual_projection.weight"] = x.t().contiguous()
        elif k == "text_projection":
            out["text_projection.weight"] = x.t().contiguous()
        elif (ln := next((p for p in _LN if k.startswith(p)), None)) is not None:
            out[_LN[ln] + k[len(ln):]] = x
        elif (tw := next((p for p in _TOWERS if k.startswith(p)), None)) is not None:
            idx, rest = k[len(tw):].split(".", 1)
            base = f"{_TOWERS[tw]}{idx}."
            if rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
                kind = rest.rsplit("_", 1)[1]
                for name, part in zip("qkv", x.chunk(3, dim=0)):
                    out[f"{base}self_attn.{name}_proj.{kind}"] = part.contiguous()
            elif (b := next((p for p in _BLOCK if rest.startswith(p)), None)) is not None:
                out[base + _BLOCK[b] + rest[len(b):]] = x
            else:
                unmapped.append(k)
        else:
            unmapped.append(k)
    if unmapped:
        shown = ", ".join(unmapped[:8]) + (f" (+{len(unmapped) - 8} more)" if len(unmapped) > 8 else "")
        raise CheckpointError(f"the open_clip checkpoint has parameters the converter does not map: {shown}. "
                              f"Only plain ViT CLIP models (ViT-B/L/H and their open_clip relatives) are supported.")
    return out


def openclip_to_hf(sd: dict[str, torch.Tensor], folder: Path, tokenizer=None):
    """``(CLIPModel, preprocess_cfg)`` holding the weights of an open_clip state dict."""
    from transformers import CLIPModel  # heavy: transformers, only when converting

    cfg, pre = resolve_config(sd, folder)
    model = CLIPModel(hf_config(cfg, sd, tokenizer))
    try:
        missing, unexpected = model.load_state_dict(rename(sd), strict=False)
    except RuntimeError as e:  # a shape that contradicts the config
        raise CheckpointError(f"the open_clip checkpoint does not fit its config: {e}") from e
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise CheckpointError(f"the converted open_clip checkpoint does not fill CLIPModel: missing "
                              f"{missing[:8]}, unexpected {unexpected[:8]}.")
    return model, pre
