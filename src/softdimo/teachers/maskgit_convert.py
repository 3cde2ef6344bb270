"""`softdimo convert --kind maskgit`: the published MaskGIT files → a pickle-free teacher folder.

The MaskGIT-pytorch project publishes (Hugging Face ``llvictorll/Maskgit-pytorch``, folder
``pretrained_maskgit/``)::

    MaskGIT/MaskGIT_ImageNet_256.pth   torch.save({"iter", "global_epoch", "model_state_dict",
                                                   "optimizer_state_dict"}) of the transformer
    MaskGIT/MaskGIT_ImageNet_512.pth   the same at 512 px (32×32 tokens)
    VQGAN/last.ckpt                    a PyTorch Lightning checkpoint; the weights are under "state_dict"
    VQGAN/model.yaml                   taming's config: model.params.{embed_dim, n_embed, ddconfig}

:func:`find_published` accepts the files directly in SRC, or under ``SRC/MaskGIT`` and
``SRC/VQGAN`` (or ``SRC/pretrained_maskgit/...``, the download's own layout), and lists every
missing file at once. The ``.pth`` and ``.ckpt`` files are pickles: they are read only when the
caller allows it (``--allow-pickle``), and then with ``torch.load(weights_only=True)``, which
rebuilds tensors and plain containers and calls nothing else. A Lightning checkpoint also
pickles references to Lightning's callback classes (keys of its ``callbacks`` state, possibly with
numpy scores or argparse / OmegaConf hyper-parameters); those names, and only names under
:data:`STUB_PREFIXES`, are resolved to an inert stand-in (:class:`InertGlobal`) that runs no code;
any other global is refused, and the state dict itself must hold tensors only.

The transformer's sizes are read from the weights' shapes (K from the VQGAN's ``n_embed``,
nclass = rows of ``tok_emb`` − K − 2, L from ``pos_emb``, depth, widths); the head count is not
in the weights and defaults to the released trainer's 16. Both state dicts must then match
softdimo's networks key for key and shape for shape (the VQGAN's ``loss.*`` training weights
are dropped, nothing else), and are written unchanged as safetensors with a ``teacher.json``
manifest (:class:`~softdimo.teachers.maskgit.MaskGITTeacher`).
"""
from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
import yaml

from ..errors import CheckpointError, ConfigError
from ..files import check_writable
from .maskgit import MaskGITTeacher
from ..safeload import PickleRefused, load_pickle, pickle_is_allowed
from .maskgit_net import MaskGITConfig, MaskGITTransformer, grid_from_positions
from .vqgan import TamingVQGAN, VQGANConfig

RELEASED_HEADS = 16  # Trainer/vit.py builds MaskTransformer(..., heads=16)
RELEASED_DROPOUT = 0.1
VQGAN_CKPT = "last.ckpt"
VQGAN_YAML = "model.yaml"
# checkpoint bookkeeping (callback states, hyper-parameters, scores) that may name these packages' classes:
# they unpickle as an InertGlobal (see there); the weights are tensors and never depend on them
STUB_PREFIXES = ("pytorch_lightning.", "lightning.", "lightning_fabric.", "omegaconf.", "numpy.", "argparse.")
IGNORED_VQGAN_PREFIX = "loss."  # the VQGAN's training loss (discriminator, LPIPS): not part of the network


def transformer_file(variant: int) -> str:
    """The published transformer file of ``variant`` (256 or 512: its image size)."""
    return f"MaskGIT_ImageNet_{variant}.pth"


@dataclass
class PublishedMaskGIT:
    """The three published files of one MaskGIT model."""

    transformer: Path  # MaskGIT_ImageNet_<res>.pth
    vqgan_ckpt: Path  # VQGAN/last.ckpt
    vqgan_yaml: Path  # VQGAN/model.yaml


def _first(candidates: list[Path]) -> Path | None:
    return next((p for p in candidates if p.is_file()), None)


def find_published(src: str | Path, variant: int = 256) -> PublishedMaskGIT:
    """The published files in ``src`` (module docstring); :class:`CheckpointError` lists what is missing."""
    src = Path(src).expanduser()
    if not src.is_dir():
        raise CheckpointError(f"MaskGIT source folder {src} does not exist. Download the published files "
                              f"(README, 'Real teachers': MaskGIT) and pass their folder.")
    roots = [src, src / "pretrained_maskgit"]
    name = transformer_file(variant)
    found = {"transformer": _first([r / sub / name for r in roots for sub in ("", "MaskGIT")]),
             "vqgan_ckpt": _first([r / sub / VQGAN_CKPT for r in roots for sub in ("", "VQGAN")]),
             "vqgan_yaml": _first([r / sub / VQGAN_YAML for r in roots for sub in ("", "VQGAN")])}
    wanted = {"transformer": f"{name} (in {src} or {src}/MaskGIT)",
              "vqgan_ckpt": f"{VQGAN_CKPT} (in {src} or {src}/VQGAN)",
              "vqgan_yaml": f"{VQGAN_YAML} (in {src} or {src}/VQGAN)"}
    missing = [wanted[k] for k, v in found.items() if v is None]
    if missing:
        raise CheckpointError(f"MaskGIT source folder {src} is incomplete; missing: {'; '.join(missing)}. The "
                              f"published files are pretrained_maskgit/MaskGIT/{name}, pretrained_maskgit/VQGAN/"
                              f"{VQGAN_CKPT} and pretrained_maskgit/VQGAN/{VQGAN_YAML} of the Hugging Face repository "
                              f"llvictorll/Maskgit-pytorch.")
    return PublishedMaskGIT(**found)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- reading the files
class InertGlobal:
    """Stands in for a bookkeeping class named inside a checkpoint (Lightning, OmegaConf, numpy, argparse):
    it stores whatever the unpickler hands it and runs no code (the weights never depend on it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _stand_ins(path: Path) -> list[tuple[Any, str]]:
    """(InertGlobal, name) for every non-default global of ``path`` under :data:`STUB_PREFIXES`;
    :class:`CheckpointError` for any other one."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except (AttributeError, RuntimeError, ValueError, pickle.UnpicklingError, OSError):
        return []  # an older file format or torch: the load below reports what it cannot rebuild
    other = [n for n in names if not n.startswith(STUB_PREFIXES)]
    if other:
        raise CheckpointError(f"{path} pickles objects other than tensors and Lightning bookkeeping ({', '.join(other)}); "
                              f"softdimo does not unpickle those. Is this the published file?")
    return [(type(n.rsplit(".", 1)[-1], (InertGlobal,), {}), n) for n in names]


def read_pickled(path: Path, allow_pickle: bool | None = None) -> Any:
    """``torch.load(path, weights_only=True)`` with Lightning's class names as inert stand-ins; only when
    pickle is allowed (``allow_pickle``, or the enclosing :func:`softdimo.pretrained.pickle_allowed`)."""
    if not pickle_is_allowed(allow_pickle):
        raise PickleRefused(f"{path.name} is a pickle file (the format MaskGIT is published in), and unpickling can "
                            f"run code, so softdimo reads it only when asked: pass --allow-pickle (it is then read with "
                            f"torch.load(weights_only=True), which rebuilds tensors only). The converted folder needs "
                            f"no pickle afterwards.")
    return load_pickle(path, True, what="the published MaskGIT file (corrupt, or not the published file?)",
                       safe_globals=_stand_ins(path))


def unwrap_state(obj: Any, keys: tuple[str, ...], path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint: under the first of ``keys`` present, else ``obj`` itself."""
    if isinstance(obj, dict):
        for key in keys:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                       for k, v in obj.items()):
        raise CheckpointError(f"{path} holds no state dict (a mapping of names to tensors) under {' or '.join(keys)}.")
    if all(k.startswith("module.") for k in obj):  # saved from a DistributedDataParallel wrapper
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def vqgan_config(path: Path) -> VQGANConfig:
    """:class:`VQGANConfig` from taming's ``model.yaml`` (``model.params``: embed_dim, n_embed, ddconfig)."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, ValueError, yaml.YAMLError) as e:  # missing, not UTF-8, not YAML
        raise CheckpointError(f"could not read {path}: {e}") from e
    params = (doc or {}).get("model", {}).get("params") if isinstance(doc, dict) else None
    if not isinstance(params, dict) or not isinstance(params.get("ddconfig"), dict):
        raise CheckpointError(f"{path} has no model.params.ddconfig; it is not taming's VQGAN model.yaml.")
    known = {f.name for f in fields(VQGANConfig)}
    dd = dict(params["ddconfig"])
    unknown = sorted(set(dd) - known)
    if unknown:
        raise CheckpointError(f"{path}: ddconfig keys {unknown} are not part of taming's VQGAN encoder/decoder.")
    try:
        return VQGANConfig(embed_dim=int(params["embed_dim"]), n_embed=int(params["n_embed"]),
                           **{k: list(v) if isinstance(v, (list, tuple)) else v for k, v in dd.items()})
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: model.params needs embed_dim, n_embed and a ddconfig ({e}).") from e


def transformer_config(state: dict[str, torch.Tensor], num_tokens: int, heads: int = RELEASED_HEADS,
                       dropout: float = RELEASED_DROPOUT) -> MaskGITConfig:
    """The transformer's sizes from its weights (module docstring)."""
    need = ("tok_emb.weight", "pos_emb", "transformer.layers.0.1.fn.net.0.weight")
    missing = [k for k in need if k not in state]
    if missing:
        raise CheckpointError(f"the transformer weights have no {', '.join(missing)}: not MaskGIT-pytorch's "
                              f"MaskTransformer.")
    vocab, hidden = state["tok_emb.weight"].shape
    layers = {int(m.group(1)) for k in state if (m := re.match(r"transformer\.layers\.(\d+)\.", k))}
    nclass = int(vocab) - num_tokens - 2
    if nclass < 1:
        raise CheckpointError(f"tok_emb has {vocab} rows but the VQGAN has K={num_tokens} codes (K + 1 + nclass + 1 "
                              f"rows expected): the transformer and the VQGAN do not belong together.")
    return MaskGITConfig(grid=grid_from_positions(int(state["pos_emb"].shape[1])), hidden_dim=int(hidden),
                         codebook_size=num_tokens, depth=max(layers) + 1, heads=heads,
                         mlp_dim=int(state["transformer.layers.0.1.fn.net.0.weight"].shape[0]), dropout=dropout,
                         nclass=nclass)


def load_exact(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str, ignore_prefix: str = "") -> None:
    """Load ``state`` into ``model`` key for key (keys under ``ignore_prefix`` are dropped); lists mismatches."""
    state = {k: v for k, v in state.items() if not (ignore_prefix and k.startswith(ignore_prefix))}
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    bad = sorted(f"{k} {tuple(state[k].shape)} ≠ {tuple(own[k].shape)}" for k in set(own) & set(state)
                 if own[k].shape != state[k].shape)
    if missing or unexpected or bad:
        raise CheckpointError(f"the {what} weights do not match the released architecture: missing {missing[:6]}, "
                              f"unexpected {unexpected[:6]}, wrong shape {bad[:6]}.")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})


# ---------------------------------------------------------------------- converting
def convert_maskgit(src: str | Path, dst: str | Path, variant: int = 256, heads: int = RELEASED_HEADS,
                    overwrite: bool = False, allow_pickle: bool | None = None) -> Path:
    """Convert the published files in ``src`` (``variant`` picks MaskGIT_ImageNet_<variant>.pth) into the
    teacher folder ``dst`` (module docstring). The image size is the token grid × the VQGAN's factor."""
    files = find_published(src, variant)
    dst = check_writable(Path(dst).expanduser(), "DST", folder=True)
    if dst.exists() and any(dst.iterdir()) and not overwrite:
        raise ConfigError(f"{dst} exists and is not empty; pass --overwrite to replace its contents, or another DST.")
    vq_cfg = vqgan_config(files.vqgan_yaml)
    vq_state = unwrap_state(read_pickled(files.vqgan_ckpt, allow_pickle), ("state_dict",), files.vqgan_ckpt)
    vq = TamingVQGAN(vq_cfg)
    load_exact(vq, vq_state, f"VQGAN ({files.vqgan_ckpt.name})", ignore_prefix=IGNORED_VQGAN_PREFIX)
    del vq_state
    t_state = unwrap_state(read_pickled(files.transformer, allow_pickle), ("model_state_dict", "state_dict"),
                           files.transformer)
    t_cfg = transformer_config(t_state, vq_cfg.n_embed, heads)
    size = t_cfg.grid * vq_cfg.factor  # 16 × 16 → 256 px, 32 × 32 → 512 px
    vq.config.image_size = size if size != vq_cfg.resolution else 0  # the convolutional VQGAN runs at any size
    net = MaskGITTransformer(t_cfg)
    load_exact(net, t_state, f"transformer ({files.transformer.name})")
    del t_state
    teacher = MaskGITTeacher(net.eval(), vq.eval())
    teacher.source = {"transformer": files.transformer.name, "vqgan": [files.vqgan_ckpt.name, files.vqgan_yaml.name],
                      "project": "MaskGIT-pytorch (llvictorll/Maskgit-pytorch)", "heads": heads,
                      "dropped_keys": f"VQGAN {IGNORED_VQGAN_PREFIX}* (training loss)"}
    return teacher.save_pretrained(dst)


__all__ = ["PublishedMaskGIT", "find_published", "read_pickled", "unwrap_state", "vqgan_config", "transformer_config",
           "load_exact", "convert_maskgit", "transformer_file", "InertGlobal", "RELEASED_HEADS"]
