"""aMUSEd as a softdimo teacher: the Teacher protocol over a local diffusers folder (docs/architecture.md §3).

A real aMUSEd checkpoint (``amused/amused-256`` or ``-512``, downloaded elsewhere) is a folder::

    model_index.json
    transformer/   UVit2DModel                  (the MDM: logits over the K = codebook_size tokens)
    vqvae/         VQModel                      (the image tokenizer; images in [0, 1])
    text_encoder/  CLIPTextModelWithProjection  (pooled projection + penultimate hidden states)
    tokenizer/     CLIPTokenizer
    scheduler/     AmusedScheduler              (mask_token_id, masking schedule)

:meth:`AmusedTeacher.from_pretrained` loads each part with diffusers' / transformers' own
``from_pretrained(root, subfolder=…)`` — or from the part's own folder when ``parts`` names one —
always with ``local_files_only=True`` and ``HF_HUB_OFFLINE=1`` (nothing is downloaded). A folder
with missing parts fails with the list of what is missing. Only the models are used, never the
deprecated pipeline.

**The seam (soft embeddings, docs/method.md §4.1).** ``UVit2DModel.embed`` is Embedding → RMSNorm →
1×1 conv. The protocol's *input embeddings* are the Embedding rows, before the norm:
``embed(ids) = E[ids]`` with E = ``embed.embeddings.weight`` (vocab × d, mask row included), and
``forward(e, c)`` runs the rest of the network — the block's own RMSNorm and conv, then
everything after — exactly as the id path does. A soft embedding is ``softmax(z) @ E[:K]``; on a
one-hot p it equals ``E[ids]`` and so gives the id path's logits bit for bit. The network is
diffusers' own ``forward``: the Embedding is swapped for :class:`EmbeddingSeam`, which looks ids
up as before and passes floating-point inputs (embeddings) through, so no line of the network is
re-implemented here (and Meissonic, which reuses ``UVit2DConvEmbed``, fits the same way).

**Decoding.** ``decode(ids)`` is ``VQModel.decode(ids, force_not_quantize=True)`` (the index
lookup); ``decode_soft(p)`` bypasses it: ``p @ quantize.embedding.weight`` → [B, C, h, w] →
``post_quant_conv`` → ``decoder`` (with the latent for ``norm_type="spatial"``). Both clip to [0, 1].

**Distillation hooks.** ``trainable_copy`` (θ and ψ start as copies of the network; Di[M]O
freezes its embedding block and ``mlm_layer`` head, Meissonic's recipe), ``make_student`` /
``load_student`` (the student folder), ``load_network`` (ψ in a student's ``aux/``). The
student's σ noise enters at the same seam as the soft embedding, before the RMSNorm (Di[M]O's
Meissonic code adds it after the conv): one entry point for hard, noised and soft inputs.

**Conditioning.** The CLIP text encoder's penultimate hidden states and pooled projection, and
the micro-conditions [width, height, crop top, crop left, aesthetic score] = [W, H, 0, 0, 6] as
the aMUSEd pipeline and training script use them; the null condition of CFG is the negative
prompt (empty by default). The mask id comes from the scheduler config (``mask_token_id``, the
last vocabulary row), not from ``codebook_size``.

**Sampling.** The teacher samples with softdimo's :class:`~softdimo.mdm.MaskGITSampler`, set up
as ``AmusedScheduler`` samples: multinomial draws at τ = 1, confidence = log p + g·Gumbel with g
annealed linearly 2 → 0, the scheduler's masking schedule; 12 steps and CFG 10 by default (the
pipeline's defaults). A distilled student is an :class:`AmusedStudent`: the same folder layout
with the distilled ``transformer/`` and a ``student.json`` manifest (kind ``amused-student``).
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import shutil
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, ConfigError, DataError
from ..mdm.sampler import MaskGITSampler
from ..pretrained import pickle_is_allowed
from .protocol import CondKind

KIND = "amused-teacher"
STUDENT_KIND = "amused-student"
STUDENT_MANIFEST = "student.json"
PARTS = ("transformer", "vqvae", "text_encoder", "tokenizer", "scheduler")
INSTALL_HINT = 'install the aMUSEd extra: pip install "softdimo[amused]" (diffusers>=0.42,<0.43)'
_SAFE_WEIGHTS = ("*.safetensors", "*.safetensors.index.json")
_PICKLE_WEIGHTS = ("*.bin", "*.bin.index.json")
MODEL_PARTS = ("transformer", "vqvae", "text_encoder")  # parts with weights


def require_diffusers() -> None:
    """Raise :class:`ConfigError` (what to install) when diffusers is missing."""
    try:
        import diffusers  # noqa: F401
    except ImportError as e:
        raise ConfigError(f"aMUSEd teachers need diffusers, which is not installed; {INSTALL_HINT}.") from e


# ---------------------------------------------------------------------- the folder
def _part_problems(part: str, folder: Path) -> list[str]:
    """What is missing from one part's folder (empty: complete)."""
    if not folder.is_dir():
        return [f"{part}/ (folder {folder} does not exist)"]
    if part == "scheduler":
        return [] if (folder / "scheduler_config.json").is_file() else [f"{part}/scheduler_config.json"]
    if part == "tokenizer":
        if (folder / "tokenizer.json").is_file() or all((folder / f).is_file() for f in ("vocab.json", "merges.txt")):
            return []
        return [f"{part}/vocab.json + merges.txt (or tokenizer.json)"]
    out = [] if (folder / "config.json").is_file() else [f"{part}/config.json"]
    if not any(any(folder.glob(p)) for p in _SAFE_WEIGHTS):
        if not any(any(folder.glob(p)) for p in _PICKLE_WEIGHTS):
            out.append(f"{part}/ weights (*.safetensors)")
        elif not pickle_is_allowed():
            out.append(f"{part}/ safetensors weights (only pickle-based *.bin there: pass --allow-pickle to read them)")
    return out


def resolve_parts(path: str | os.PathLike | None, parts: dict[str, str | os.PathLike] | None = None) -> dict[str, Path]:
    """The folder of each part: ``parts[name]`` when given, else ``<path>/<name>``; checked complete.

    Raises :class:`CheckpointError` listing every missing part (and file) at once.
    """
    parts = dict(parts or {})
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ConfigError(f"unknown aMUSEd parts {unknown}; the parts are {', '.join(PARTS)}.")
    root = Path(path).expanduser() if path else None
    if root is not None and not root.is_dir():
        raise CheckpointError(f"aMUSEd folder {root} does not exist. Download amused/amused-256 (or -512) "
                              f"on a machine with network access (see the README, 'Real teachers') and pass its "
                              f"local folder.")
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name in PARTS:
        if name in parts:
            folder = Path(parts[name]).expanduser()
        elif root is not None:
            folder = root / name
        else:
            missing.append(f"{name}/ (no folder given)")
            continue
        missing += _part_problems(name, folder)
        found[name] = folder
    if missing:
        where = f"aMUSEd folder {root}" if root is not None else "the aMUSEd parts"
        raise CheckpointError(f"{where} is incomplete; missing: {'; '.join(missing)}. A complete folder holds "
                              f"{', '.join(p + '/' for p in PARTS)} (as written by diffusers' save_pretrained or "
                              f"downloaded from the hub); copy the missing parts there or name their folders.")
    return found


def is_amused_folder(path: str | os.PathLike) -> bool:
    """True when ``path`` looks like an aMUSEd checkpoint (model_index.json of an aMUSEd pipeline, or
    a ``transformer/`` holding a UVit2DModel config)."""
    path = Path(path)
    for f, key in ((path / "model_index.json", "_class_name"), (path / "transformer" / "config.json", "_class_name")):
        if f.is_file():
            try:
                name = json.loads(f.read_text()).get(key, "")
            except (OSError, json.JSONDecodeError, AttributeError):
                continue
            if isinstance(name, str) and (name.startswith("Amused") or name == "UVit2DModel"):
                return True
    return False


@contextlib.contextmanager
def quiet_hub() -> Iterator[None]:
    """No per-file progress bars from diffusers / transformers while loading or saving parts."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    was = dlog.is_progress_bar_enabled(), tlog.is_progress_bar_enabled()
    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        if was[0]:
            dlog.enable_progress_bar()
        if was[1]:
            tlog.enable_progress_bar()


def _from_pretrained(cls: Any, part: str, folder: Path, root: Path | None, **kwargs: Any) -> Any:
    """``cls.from_pretrained`` offline: ``(root, subfolder=part)`` for a part in place, else ``(folder)``."""
    if part in MODEL_PARTS and not pickle_is_allowed():
        kwargs["use_safetensors"] = True  # never unpickle unless the user opted in (softdimo.pretrained)
    try:
        with quiet_hub():
            if root is not None and folder == root / part:
                return cls.from_pretrained(str(root), subfolder=part, local_files_only=True, **kwargs)
            return cls.from_pretrained(str(folder), local_files_only=True, **kwargs)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"could not load the aMUSEd {part} from {folder}: {e}") from e


# ---------------------------------------------------------------------- conditions
@dataclass
class AmusedCondition:
    """The conditioning of one batch: CLIP hidden states [B, T, D], pooled projection [B, P], micro-conds [B, 5]."""

    hidden: torch.Tensor
    pooled: torch.Tensor
    micro_conds: torch.Tensor
    labels: None = None  # no class labels (the discriminator heads read this field)

    @property
    def batch_size(self) -> int:
        return int(self.hidden.shape[0])

    def to(self, device: torch.device | str) -> "AmusedCondition":
        return AmusedCondition(self.hidden.to(device), self.pooled.to(device), self.micro_conds.to(device))

    def index(self, idx: torch.Tensor | slice) -> "AmusedCondition":
        """The condition of a subset of the batch."""
        return AmusedCondition(self.hidden[idx], self.pooled[idx], self.micro_conds[idx])

    @staticmethod
    def cat(conds: Sequence["AmusedCondition"]) -> "AmusedCondition":
        """Concatenate along the batch (e.g. conditional + null for one CFG pass)."""
        return AmusedCondition(torch.cat([c.hidden for c in conds]), torch.cat([c.pooled for c in conds]),
                               torch.cat([c.micro_conds for c in conds]))


class AmusedTextEncoder(nn.Module):
    """CLIP tokenizer + frozen ``CLIPTextModelWithProjection``: prompts → (hidden states[-2], text_embeds).

    Encodings are cached per prompt (``cache_size`` most recent), as distillation redraws the
    same prompts many times; the encoder never trains.
    """

    def __init__(self, tokenizer: Any, model: nn.Module, cache_size: int = 1024) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.model = model.eval().requires_grad_(False)
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    def train(self, mode: bool = True) -> "AmusedTextEncoder":
        super().train(mode)
        self.model.eval()  # frozen: always eval
        return self

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> "AmusedTextEncoder":
        self._cache.clear()  # device or dtype changes invalidate the cache
        return super()._apply(fn, *args, **kwargs)

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states [B, T, D] (penultimate layer) and pooled projections [B, P] of ``prompts``."""
        todo = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        if todo:
            device = next(self.model.parameters()).device
            ids = self.tokenizer(todo, padding="max_length", truncation=True,
                                 max_length=self.tokenizer.model_max_length, return_tensors="pt").input_ids
            out = self.model(ids.to(device), return_dict=True, output_hidden_states=True)
            for i, p in enumerate(todo):
                self._cache[p] = (out.hidden_states[-2][i], out.text_embeds[i])
        rows = []
        for p in prompts:
            self._cache.move_to_end(p)
            rows.append(self._cache[p])
        hidden, pooled = torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return hidden, pooled


# ---------------------------------------------------------------------- the network
class EmbeddingSeam(nn.Embedding):
    """``nn.Embedding`` that looks integer ids up and passes floating-point inputs (embeddings) through.

    Installed in place of ``UVit2DConvEmbed.embeddings`` (same parameter, same state-dict key), it
    lets the network's own forward start from input embeddings: hard ``E[ids]``, noised, or soft.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if x.is_floating_point():
            return x
        return super().forward(x)


class AmusedNetwork(nn.Module):
    """A ``UVit2DModel`` entered at its input embeddings (module docstring): the teacher's, the student's
    and the auxiliary's network.

    ``embed(ids)`` → E[ids] [B, L, d]; ``forward(embeds, cond, return_hidden)`` → logits [B, L, K]
    (and the output [B, L, hidden] of every transformer layer). Subclasses for other networks
    with the same embedding block override :meth:`run` (the call) and :meth:`hidden_blocks` (the taps).
    """

    WEIGHTS_CLASS: ClassVar[str] = "UVit2DModel"

    def __init__(self, transformer: nn.Module, grid: tuple[int, int], num_tokens: int, mask_id: int) -> None:
        super().__init__()
        emb = self.embedding_module(transformer)
        if not isinstance(emb, nn.Embedding):
            raise CheckpointError(f"the transformer's embed.embeddings is a {type(emb).__name__}, not an "
                                  f"nn.Embedding; this is not an aMUSEd-style network.")
        if not mask_id < emb.num_embeddings:
            raise CheckpointError(f"mask id {mask_id} is outside the embedding table ({emb.num_embeddings} rows); "
                                  f"the scheduler and transformer configs do not belong together.")
        if not num_tokens <= mask_id:
            raise CheckpointError(f"mask id {mask_id} falls inside the codebook (K={num_tokens}); the scheduler "
                                  f"config's mask_token_id must be ≥ codebook_size.")
        emb.__class__ = EmbeddingSeam  # same parameter and key: the id path is unchanged
        self.transformer = transformer
        self.grid = (int(grid[0]), int(grid[1]))
        self.num_tokens = int(num_tokens)
        self.mask_id = int(mask_id)

    @staticmethod
    def embedding_module(transformer: nn.Module) -> nn.Module:
        return transformer.embed.embeddings  # type: ignore[union-attr,return-value]

    @property
    def table(self) -> torch.Tensor:
        """E: the full input embedding table (vocab × d), mask row included."""
        return self.embedding_module(self.transformer).weight  # type: ignore[return-value]

    # ------------------------------------------------------------------ protocol surface
    def embedding_table(self) -> torch.Tensor:
        """E[:K]: the rows a soft embedding averages."""
        return self.table[: self.num_tokens]

    def mask_embedding(self) -> torch.Tensor:
        """E[mask_id] [d]."""
        return self.table[self.mask_id]

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Ids [B, L] or [B, h, w] in [0, vocab) → E[ids] [B, L, d]."""
        if ids.is_floating_point():
            raise DataError(f"embed takes integer token ids, got {ids.dtype}; a soft embedding is p @ "
                            f"embedding_table().")
        return self.embedding_module(self.transformer)(ids.reshape(ids.shape[0], -1).long())

    def embedding_parameters(self) -> list[nn.Parameter]:
        """What Di[M]O freezes in θ and ψ (docs/method.md §3.1, Meissonic's recipe): the whole embedding
        block (table, RMSNorm, 1×1 conv) and the output head (``mlm_layer``)."""
        t = self.transformer
        return [*t.embed.parameters(), *t.mlm_layer.parameters()]  # type: ignore[union-attr]

    @property
    def num_hidden_layers(self) -> int:
        """How many hidden states ``forward(..., return_hidden=True)`` returns."""
        return len(self.hidden_blocks())

    @property
    def hidden_width(self) -> int:
        """Width of those hidden states."""
        return int(self.transformer.config.hidden_size)  # type: ignore[union-attr]

    def hidden_blocks(self) -> list[nn.Module]:
        """The blocks whose outputs are the per-layer hidden states (discriminator taps)."""
        return list(self.transformer.transformer_layers)  # type: ignore[union-attr,arg-type]

    def tap(self, output: Any, n_text: int) -> torch.Tensor:
        """A hidden block's output as image-token states [B, L', hidden] (UVit: the output itself)."""
        return output

    def run(self, grid_embeds: torch.Tensor, cond: AmusedCondition) -> torch.Tensor:
        """The network's own forward on embeddings [B, h, w, d] → logits [B, K, h, w]."""
        return self.transformer(grid_embeds, encoder_hidden_states=cond.hidden, pooled_text_emb=cond.pooled,
                                micro_conds=cond.micro_conds)

    def forward(self, embeds: torch.Tensor, cond: AmusedCondition,
                return_hidden: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Embeddings [B, L, d] → logits [B, L, K] (and the per-layer hidden states [B, L', hidden];
        L' = L, or L/4 inside a network that down-samples the grid, as amused-512 does)."""
        b, length, d = embeds.shape
        h, w = self.grid
        if length != h * w:
            raise DataError(f"this aMUSEd network takes {h}×{w} = {h * w} tokens per image, got {length}.")
        if cond is None or cond.batch_size != b:
            raise DataError(f"the condition holds {None if cond is None else cond.batch_size} rows for a batch of "
                            f"{b}; build it with encode_condition(prompts=…) or null_condition({b}).")
        hidden: list[torch.Tensor] = []
        n_text = int(cond.hidden.shape[1])
        hooks = [blk.register_forward_hook(lambda _m, _i, out: hidden.append(self.tap(out, n_text)))
                 for blk in self.hidden_blocks()] if return_hidden else []
        try:
            logits = self.run(embeds.reshape(b, h, w, d), cond)
        finally:
            for hook in hooks:
                hook.remove()
        logits = logits.permute(0, 2, 3, 1).reshape(b, length, -1)
        return (logits, hidden) if return_hidden else logits

    # ------------------------------------------------------------------ weights
    def save_pretrained(self, path: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        """The transformer as a diffusers folder (config.json + diffusion_pytorch_model.safetensors)."""
        model = self.transformer
        if dtype is not None and any(t.is_floating_point() and t.dtype != dtype for t in model.state_dict().values()):
            model = copy.deepcopy(model)
            for t in (*model.parameters(), *model.buffers()):  # a plain cast (ModelMixin.to warns on dtypes)
                if t.is_floating_point():
                    t.data = t.data.to(dtype)
        with quiet_hub():
            model.save_pretrained(str(path))
        return Path(path)

    def load_weights(self, path: str | os.PathLike) -> None:
        """Load the transformer weights of a diffusers folder written by :meth:`save_pretrained`."""
        other = _from_pretrained(type(self.transformer), "transformer", Path(path), None)
        self.transformer.load_state_dict(other.state_dict())


# ---------------------------------------------------------------------- the tokenizer
class AmusedVQ(nn.Module):
    """``VQModel`` as softdimo's tokenizer surface: encode, decode (index lookup), decode_soft (bypass)."""

    def __init__(self, vqvae: nn.Module, grid: tuple[int, int]) -> None:
        super().__init__()
        self.vqvae = vqvae.eval().requires_grad_(False)
        self.grid = (int(grid[0]), int(grid[1]))

    def train(self, mode: bool = True) -> "AmusedVQ":
        super().train(mode)
        self.vqvae.eval()
        return self

    @property
    def num_tokens(self) -> int:
        return int(self.vqvae.config.num_vq_embeddings)  # type: ignore[union-attr]

    @property
    def scale(self) -> int:
        """Pixels per token side: 2^(levels − 1), as the pipeline's vae_scale_factor."""
        return 2 ** (len(self.vqvae.config.block_out_channels) - 1)  # type: ignore[union-attr]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images."""
        return (int(self.vqvae.config.out_channels), self.grid[0] * self.scale,  # type: ignore[union-attr]
                self.grid[1] * self.scale)

    def codebook(self) -> torch.Tensor:
        """The K code vectors [K, C]."""
        return self.vqvae.quantize.embedding.weight  # type: ignore[union-attr,return-value]

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] in [0, 1] → token ids [B, h, w] (nearest code of each latent)."""
        c, hh, ww = self.image_shape
        if images.dim() != 4 or tuple(images.shape[1:]) != (c, hh, ww):
            raise DataError(f"this aMUSEd VQ reads {c}-channel {hh}×{ww} images; got {tuple(images.shape)}. For the "
                            f"discriminator's real images use RGB data of that size (e.g. data.dataset=world "
                            f"data.world_size_px={hh}, or an image folder with data.image_size={hh}).")
        latents = self.vqvae.encode(images).latents  # type: ignore[union-attr]
        ids = self.vqvae.quantize(latents)[2][2]  # type: ignore[union-attr]
        return ids.reshape(images.shape[0], *self.grid)

    def _grid_ids(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.is_floating_point():
            raise DataError(f"decode takes integer token ids, got {ids.dtype}; for probabilities use decode_soft.")
        ids = ids.reshape(ids.shape[0], *self.grid).long()
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.num_tokens):
            raise DataError(f"token ids must be in [0, {self.num_tokens - 1}] (the mask id is not decodable), got "
                            f"range [{int(ids.min())}, {int(ids.max())}].")
        return ids

    def decode_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Continuous latent [B, h, w, C] (code vectors or their averages) → images in [0, 1]:
        post_quant_conv → decoder, no quantiser (the native tokenizer's signature)."""
        v, quant = self.vqvae, z.permute(0, 3, 1, 2).contiguous()
        dec = v.decoder(v.post_quant_conv(quant), quant if v.config.norm_type == "spatial" else None)  # type: ignore
        return dec.clamp(0, 1)

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """Ids [B, L] or [B, h, w] in [0, K) → images [B, C, H, W] in [0, 1] (VQModel's own index lookup)."""
        ids = self._grid_ids(ids)
        b, (h, w), dim = ids.shape[0], self.grid, self.codebook().shape[1]
        if self.vqvae.config.lookup_from_codebook:  # type: ignore[union-attr]
            out = self.vqvae.decode(ids, force_not_quantize=True, shape=(b, h, w, dim)).sample  # type: ignore
            return out.clamp(0, 1)
        return self.decode_latent(F.embedding(ids, self.codebook()))

    def decode_soft(self, p: torch.Tensor) -> torch.Tensor:
        """Probabilities [B, L, K] or [B, h, w, K] → images, differentiable in ``p`` (p @ codebook → decoder)."""
        k, (h, w) = self.num_tokens, self.grid
        if p.shape[-1] != k or p.numel() != p.shape[0] * h * w * k:
            raise DataError(f"decode_soft takes probabilities [B, {h * w}, {k}] or [B, {h}, {w}, {k}], got "
                            f"{tuple(p.shape)}.")
        book = self.codebook()
        return self.decode_latent((p.to(book.dtype) @ book).reshape(p.shape[0], h, w, -1))


# ---------------------------------------------------------------------- the teacher
def default_sampler(schedule: str = "cosine") -> MaskGITSampler:
    """aMUSEd's sampling as a MaskGITSampler: 12 steps, τ 1, confidence noise 2 → 0, CFG 10."""
    return MaskGITSampler(steps=12, schedule=schedule if schedule in ("cosine", "linear") else "cosine",  # type: ignore
                          temperature=1.0, confidence_noise=2.0, confidence_noise_end=0.0, cfg_scale=10.0)


class AmusedTeacher(nn.Module):
    """aMUSEd as a Teacher (module docstring): ``mdm`` (:class:`AmusedNetwork`), ``tokenizer``
    (:class:`AmusedVQ`), ``text`` (:class:`AmusedTextEncoder`), and the default ``sampler``.

    ``negative_prompt`` is the null condition of CFG; ``aesthetic_score`` the last micro-condition.
    """

    KIND: ClassVar[str] = KIND
    ROLE: ClassVar[str] = "teacher"
    NETWORK: ClassVar[type] = AmusedNetwork

    def __init__(self, network: AmusedNetwork, vq: AmusedVQ, text: AmusedTextEncoder, sampler: Any = None,
                 negative_prompt: str = "", aesthetic_score: float = 6.0,
                 part_dirs: dict[str, Path] | None = None, scheduler_config: dict[str, Any] | None = None) -> None:
        super().__init__()
        if vq.num_tokens != network.num_tokens:
            raise CheckpointError(f"the VQ has {vq.num_tokens} codes but the transformer predicts "
                                  f"codebook_size={network.num_tokens}; the parts do not belong together.")
        self.mdm = network
        self.tokenizer = vq
        self.text = text
        self.negative_prompt = negative_prompt
        self.aesthetic_score = float(aesthetic_score)
        self.part_dirs = {k: Path(v) for k, v in (part_dirs or {}).items()}
        self.scheduler_config = dict(scheduler_config or {})
        self.sampler = sampler if sampler is not None else self.default_sampler()

    def default_sampler(self) -> Any:
        return default_sampler(str(self.scheduler_config.get("masking_schedule", "cosine")))

    def train(self, mode: bool = True) -> "AmusedTeacher":
        """Set the network's mode; the VQ and the text encoder always stay in eval mode (frozen)."""
        super().train(mode)
        self.tokenizer.eval()
        self.text.eval()
        return self

    # ------------------------------------------------------------------ protocol properties
    @property
    def num_tokens(self) -> int:
        return self.mdm.num_tokens

    @property
    def mask_id(self) -> int:
        return self.mdm.mask_id

    @property
    def grid(self) -> tuple[int, int]:
        return self.mdm.grid

    @property
    def cond_kind(self) -> CondKind:
        return "text"

    @property
    def num_classes(self) -> int:
        return 0

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.tokenizer.image_shape

    @property
    def device(self) -> torch.device:
        return self.mdm.table.device

    # ------------------------------------------------------------------ network
    def embedding_table(self) -> torch.Tensor:
        return self.mdm.embedding_table()

    def mask_embedding(self) -> torch.Tensor:
        return self.mdm.mask_embedding()

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.mdm.embed(ids)

    def forward(self, embeds: torch.Tensor, cond: AmusedCondition,
                return_hidden: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        return self.mdm(embeds, cond, return_hidden=return_hidden)

    # ------------------------------------------------------------------ conditions
    def micro_conds(self, batch: int) -> torch.Tensor:
        """[B, 5]: [width, height, crop top, crop left, aesthetic score] (the pipeline's order)."""
        _, hh, ww = self.image_shape
        row = torch.tensor([ww, hh, 0.0, 0.0, self.aesthetic_score], device=self.device)
        return row.expand(batch, -1)

    def _condition(self, prompts: Sequence[str]) -> AmusedCondition:
        hidden, pooled = self.text.encode(prompts)
        return AmusedCondition(hidden, pooled, self.micro_conds(len(prompts)).to(hidden.dtype))

    def encode_condition(self, labels: torch.Tensor | Sequence[int] | None = None,
                         prompts: Sequence[str] | None = None) -> AmusedCondition:
        """The condition of ``prompts`` (aMUSEd is text-to-image: labels are refused)."""
        if labels is not None:
            raise DataError("aMUSEd is text-conditional: pass prompts=[…] (strings), not labels.")
        if prompts is None:
            raise DataError("encode_condition needs prompts=[…] (strings) for an aMUSEd teacher.")
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = list(prompts)
        if not prompts:
            raise DataError("encode_condition got an empty list of prompts; give at least one.")
        bad = [i for i, p in enumerate(prompts) if not isinstance(p, str) or not p.strip()]
        if bad:
            raise DataError(f"prompt {bad[0]} is empty or not a string; every image needs a non-empty prompt "
                            f"(the unconditional branch is null_condition).")
        return self._condition(prompts)

    def null_condition(self, batch: int) -> AmusedCondition:
        """The negative prompt (empty by default) for ``batch`` samples: CFG's unconditional branch."""
        return self._condition([self.negative_prompt] * batch)

    # ------------------------------------------------------------------ images
    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        return self.tokenizer.decode(ids)

    def decode_soft(self, p: torch.Tensor) -> torch.Tensor:
        return self.tokenizer.decode_soft(p)

    # ------------------------------------------------------------------ sampling
    def sampler_with(self, **overrides: Any) -> Any:
        """The default sampler with some fields replaced (None values are ignored)."""
        kept = {k: v for k, v in overrides.items() if v is not None}
        try:
            return dataclasses.replace(self.sampler, **kept)
        except TypeError as e:
            raise ConfigError(f"bad sampler override {sorted(kept)}: {e}") from e

    @torch.no_grad()
    def sample_ids(self, labels: Any = None, prompts: Sequence[str] | None = None, sampler: Any = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """Token grids [B, L]: the MaskGIT sampler with CFG against the negative prompt."""
        cond = self.encode_condition(labels=labels, prompts=prompts)
        b = cond.batch_size
        return (sampler or self.sampler).sample(self, cond, self.null_condition(b), batch=b, generator=generator)

    @torch.no_grad()
    def sample(self, labels: Any = None, prompts: Sequence[str] | None = None, sampler: Any = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Images [B, 3, H, W] in [0, 1]."""
        return self.decode(self.sample_ids(labels, prompts, sampler, generator))

    # ------------------------------------------------------------------ distillation hooks
    def trainable_copy(self) -> AmusedNetwork:
        """A deep copy of the network: the start of the student θ and of the auxiliary ψ (§3.1)."""
        return copy.deepcopy(self.mdm)

    def load_network(self, path: str | os.PathLike) -> AmusedNetwork | None:
        """A copy of the network with the weights of the diffusers folder ``path`` (None if absent)."""
        path = Path(path)
        if not (path / "config.json").is_file():
            return None
        net = self.trainable_copy()
        net.load_weights(path)
        return net

    def make_student(self, network: AmusedNetwork, sampler: Any, training: dict[str, Any]) -> "AmusedStudent":
        """The one-step student made of ``network`` and this teacher's frozen parts."""
        s = AmusedStudent(network, self.tokenizer, self.text, sampler, self.negative_prompt, self.aesthetic_score,
                          self.part_dirs, self.scheduler_config, training=training)
        s.train(network.training)
        return s

    def load_student(self, path: str | os.PathLike, map_location: str | torch.device = "cpu") -> "AmusedStudent":
        """The aMUSEd student folder ``path``."""
        return AmusedStudent.from_pretrained(path, map_location=map_location)

    # ------------------------------------------------------------------ folders
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None, parts: dict[str, str | os.PathLike] | None = None,
                        map_location: str | torch.device = "cpu", negative_prompt: str = "",
                        aesthetic_score: float = 6.0, text_cache_size: int = 1024,
                        transformer_class: type | None = None) -> Any:
        """Load an aMUSEd folder (root + subfolders), or its parts from their own folders (``parts``), offline.

        ``transformer_class`` replaces ``UVit2DModel`` (a network with the same embedding block,
        e.g. Meissonic's; see :mod:`softdimo.teachers.meissonic`).
        """
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download (unless the user set otherwise)
        require_diffusers()
        from diffusers import VQModel
        from transformers import CLIPTextModelWithProjection, CLIPTokenizer

        dirs = resolve_parts(path, parts)
        root = Path(path).expanduser() if path else None
        extra = cls.read_extras(root) if root is not None else {}
        transformer = _from_pretrained(transformer_class or cls.transformer_class(), "transformer",
                                       dirs["transformer"], root)
        vqvae = _from_pretrained(VQModel, "vqvae", dirs["vqvae"], root)
        text_model = _from_pretrained(CLIPTextModelWithProjection, "text_encoder", dirs["text_encoder"], root)
        tok = _from_pretrained(CLIPTokenizer, "tokenizer", dirs["tokenizer"], root)
        scheduler = cls.read_scheduler_config(dirs["scheduler"], root)
        if "mask_token_id" not in scheduler:
            raise CheckpointError(f"{dirs['scheduler']}/scheduler_config.json has no mask_token_id; the folder is not "
                                  f"an aMUSEd-style checkpoint.")
        sample_size = int(transformer.config.sample_size)
        grid = (sample_size, sample_size)
        network = cls.NETWORK(transformer, grid, int(transformer.config.codebook_size), int(scheduler["mask_token_id"]))
        text = AmusedTextEncoder(tok, text_model, cache_size=text_cache_size)
        out = cls(network, AmusedVQ(vqvae, grid), text, extra.get("sampler"),
                  extra.get("negative_prompt", negative_prompt), extra.get("aesthetic_score", aesthetic_score),
                  dirs, scheduler)
        out.load_extras(extra)
        return out.to(map_location).eval()

    @classmethod
    def transformer_class(cls) -> type:
        """The network class of ``transformer/`` (``UVit2DModel``)."""
        from diffusers import UVit2DModel

        return UVit2DModel

    @classmethod
    def read_scheduler_config(cls, folder: Path, root: Path | None) -> dict[str, Any]:
        """The scheduler config (``mask_token_id``, ``masking_schedule``), loaded as ``AmusedScheduler``."""
        from diffusers import AmusedScheduler

        return dict(_from_pretrained(AmusedScheduler, "scheduler", folder, root).config)

    @classmethod
    def read_extras(cls, root: Path) -> dict[str, Any]:
        """Manifest fields of the folder (students); a teacher folder has none, and a student is refused."""
        if (root / STUDENT_MANIFEST).is_file():
            raise CheckpointError(f"{root} holds a distilled student ({STUDENT_MANIFEST}); a student cannot stand in "
                                  f"for its teacher. Pass the original aMUSEd folder as the teacher.")
        return {}

    def load_extras(self, extra: dict[str, Any]) -> None:
        """Hook: apply manifest fields after loading."""


# ---------------------------------------------------------------------- the student


class AmusedStudent(AmusedTeacher):
    """A Di[M]O student of an aMUSEd teacher: the aMUSEd folder layout with the distilled
    ``transformer/`` and ``student.json`` (kind ``amused-student``, the one-step sampler's knobs,
    the distillation's provenance). Samples in one forward pass (:class:`~softdimo.distill.OneStepSampler`)."""

    KIND = STUDENT_KIND
    ROLE = "student"

    def __init__(self, *args: Any, training: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.training_info: dict[str, Any] = dict(training or {})

    def default_sampler(self) -> Any:
        from ..distill.student import OneStepSampler

        return OneStepSampler()

    @torch.no_grad()
    def sample_ids(self, labels: Any = None, prompts: Sequence[str] | None = None, sampler: Any = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """Token grids [B, L] from one forward pass (no CFG)."""
        cond = self.encode_condition(labels=labels, prompts=prompts)
        return (sampler or self.sampler).sample(self, cond, cond.batch_size, generator)

    def manifest(self) -> dict[str, Any]:
        c, h, w = self.image_shape
        return {"kind": self.KIND, "format_version": 1, "cond": "text", "num_tokens": self.num_tokens,
                "mask_id": self.mask_id, "grid": list(self.grid), "image": {"channels": c, "height": h, "width": w},
                "sampler": dataclasses.asdict(self.sampler), "negative_prompt": self.negative_prompt,
                "aesthetic_score": self.aesthetic_score, "distillation": self.training_info}

    def save_pretrained(self, path: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        """Write the aMUSEd layout (frozen parts copied from the teacher's folders) and, last, student.json."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.mdm.save_pretrained(path / "transformer", dtype=dtype)
        for part in ("vqvae", "text_encoder", "tokenizer", "scheduler"):
            src, dst = self.part_dirs.get(part), path / part
            if src is None:
                self._save_part(part, dst)
            elif Path(src).resolve() != dst.resolve():
                shutil.copytree(src, dst, dirs_exist_ok=True)
        src_index = Path(self.part_dirs["transformer"]).parent / "model_index.json" if "transformer" in self.part_dirs \
            else None
        dst_index = path / "model_index.json"
        if src_index is not None and src_index.is_file() and src_index.resolve() != dst_index.resolve():
            shutil.copyfile(src_index, dst_index)
        from ..pretrained import atomic_write_bytes

        atomic_write_bytes(path / STUDENT_MANIFEST, (json.dumps(self.manifest(), indent=2) + "\n").encode())
        return path

    def _save_part(self, part: str, dst: Path) -> None:
        """Write a frozen part held only in memory (a teacher built without folders)."""
        if part == "vqvae":
            with quiet_hub():
                self.tokenizer.vqvae.save_pretrained(str(dst))
        elif part == "text_encoder":
            with quiet_hub():
                self.text.model.save_pretrained(str(dst))
        elif part == "tokenizer":
            self.text.tokenizer.save_pretrained(str(dst))
        else:
            dst.mkdir(parents=True, exist_ok=True)
            cfg = {k: v for k, v in self.scheduler_config.items() if not k.startswith("_")}
            (dst / "scheduler_config.json").write_text(json.dumps({"_class_name": "AmusedScheduler", **cfg}, indent=2))

    @classmethod
    def read_extras(cls, root: Path) -> dict[str, Any]:
        from ..config import from_dict
        from ..distill.student import OneStepSampler
        from .bundle import read_manifest

        m = read_manifest(root, STUDENT_MANIFEST)
        if m is None:
            raise CheckpointError(f"{root} is not an aMUSEd student folder: {STUDENT_MANIFEST} is missing. Pass the "
                                  f"folder written by `softdimo distill` with teacher_kind=amused (<run dir>/final).")
        if m.get("kind") != STUDENT_KIND:
            raise CheckpointError(f"{root}/{STUDENT_MANIFEST} describes a '{m.get('kind')}', not an "
                                  f"'{STUDENT_KIND}'.")
        raw = m.get("sampler")
        out: dict[str, Any] = {"manifest": m}
        if isinstance(raw, dict):
            out["sampler"] = from_dict(OneStepSampler, raw, where=f"{root}/{STUDENT_MANIFEST}", prefix="sampler.")
        for key in ("negative_prompt", "aesthetic_score"):
            if key in m:
                out[key] = m[key]
        return out

    def load_extras(self, extra: dict[str, Any]) -> None:
        info = extra.get("manifest", {}).get("distillation")
        self.training_info = dict(info) if isinstance(info, dict) else {}


__all__ = ["AmusedTeacher", "AmusedStudent", "AmusedNetwork", "AmusedVQ", "AmusedTextEncoder", "AmusedCondition",
           "EmbeddingSeam", "resolve_parts", "is_amused_folder", "require_diffusers", "default_sampler", "KIND",
           "STUDENT_KIND", "STUDENT_MANIFEST", "PARTS"]
