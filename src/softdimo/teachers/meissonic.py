"""Meissonic as a teacher: the aMUSEd adapter with Meissonic's transformer call (a small subclass).

Meissonic (``MeissonFlow/Meissonic``) keeps aMUSEd's folder layout, VQ model, CLIP text encoder
(pooled projection + penultimate hidden states), micro-conditions and the *same* embedding block
(``UVit2DConvEmbed``: Embedding → RMSNorm → 1×1 conv), so the seam of
:mod:`softdimo.teachers.amused` — soft embeddings are ``p @ E[:K]`` before the RMSNorm — carries
over unchanged (docs/method.md §4.1: "Meissonic: the expectation on the raw embedding-table output").
What differs is only

* the network class, ``Transformer2DModel`` of Meissonic's repository (not on PyPI): the user
  passes it (``transformer_class=``) from a checkout of that code;
* its call: ``transformer(hidden_states=…, encoder_hidden_states=…, pooled_projections=…,
  micro_conds=…, img_ids=…, txt_ids=…, timestep=…)`` with RoPE ids for the image and text
  tokens and a timestep that Di[M]O's Meissonic code always passes as 0 (a code artefact);
* the per-layer taps: the dual-stream ``transformer_blocks`` (image stream) and the
  ``single_transformer_blocks`` (text tokens first, dropped);
* the scheduler config, read as JSON (Meissonic's own ``Scheduler`` class, same ``mask_token_id``).

Usage (offline, from local folders)::

    from meissonic_src.transformer import Transformer2DModel          # the user's checkout
    from meissonic_src.pipeline import _prepare_latent_image_ids
    teacher = MeissonicTeacher.from_pretrained("Meissonic/", transformer_class=Transformer2DModel,
                                               prepare_image_ids=_prepare_latent_image_ids)

or, as ``teacher_kind=meissonic`` does, :func:`load_meissonic` (``"Meissonic/"``, ``"meissonic-code/"``):
it imports ``Transformer2DModel`` from the checkout's ``src/transformer.py`` (that file imports
only diffusers) and keeps :func:`grid_image_ids`, which equals the pipeline's
``_prepare_latent_image_ids`` at 1024 px. Whatever is missing — the code path, the file, the
class, a part of the folder — is listed in one :class:`ConfigError`.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import CheckpointError, ConfigError
from .amused import AmusedCondition, AmusedNetwork, AmusedTeacher, require_diffusers, resolve_parts

ImageIds = Callable[[int, int, int, torch.device, torch.dtype], torch.Tensor]


def grid_image_ids(batch: int, height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """RoPE position ids [(h/2)·(w/2), 3] = (0, row, column) of the 2× down-sampled token grid (Flux style)."""
    ids = torch.zeros(height // 2, width // 2, 3, device=device, dtype=dtype)
    ids[..., 1] = torch.arange(height // 2, device=device, dtype=dtype)[:, None]
    ids[..., 2] = torch.arange(width // 2, device=device, dtype=dtype)[None, :]
    return ids.reshape(-1, 3)


class MeissonicNetwork(AmusedNetwork):
    """Meissonic's ``Transformer2DModel`` entered at the same seam (module docstring)."""

    prepare_image_ids: ImageIds = staticmethod(grid_image_ids)  # type: ignore[assignment]

    def hidden_blocks(self) -> list[torch.nn.Module]:
        t = self.transformer
        return [*getattr(t, "transformer_blocks", []), *getattr(t, "single_transformer_blocks", [])]

    @property
    def hidden_width(self) -> int:
        cfg = self.transformer.config  # type: ignore[union-attr]
        heads, dim = getattr(cfg, "num_attention_heads", 0), getattr(cfg, "attention_head_dim", 0)
        return int(heads * dim) if heads and dim else int(cfg.hidden_size)

    def tap(self, output: Any, n_text: int) -> torch.Tensor:
        """Dual-stream blocks return (text, image) streams: the image one."""
        return output[-1] if isinstance(output, tuple) else output

    def run(self, grid_embeds: torch.Tensor, cond: AmusedCondition) -> torch.Tensor:
        b, h, w, _ = grid_embeds.shape
        dtype, device = cond.hidden.dtype, grid_embeds.device
        out = self.transformer(hidden_states=grid_embeds, encoder_hidden_states=cond.hidden,
                               pooled_projections=cond.pooled, micro_conds=cond.micro_conds,
                               img_ids=self.prepare_image_ids(b, h, w, device, dtype),
                               txt_ids=torch.zeros(cond.hidden.shape[1], 3, device=device, dtype=dtype),
                               timestep=torch.zeros(1, dtype=torch.long, device=device))
        if isinstance(out, tuple):
            out = out[0]
        return getattr(out, "sample", out)

    def forward(self, embeds: torch.Tensor, cond: AmusedCondition, return_hidden: bool = False) -> Any:
        # single-stream blocks see [text; image]: only their outputs lose the text prefix
        singles = {id(m) for m in getattr(self.transformer, "single_transformer_blocks", [])}
        if not singles or not return_hidden:
            return super().forward(embeds, cond, return_hidden)
        hidden: list[torch.Tensor] = []
        n_text = int(cond.hidden.shape[1])
        hooks = [blk.register_forward_hook(
            lambda m, _i, out: hidden.append(out[:, n_text:] if id(m) in singles and not isinstance(out, tuple)
                                             else self.tap(out, n_text))) for blk in self.hidden_blocks()]
        try:
            logits = super().forward(embeds, cond, return_hidden=False)
        finally:
            for hook in hooks:
                hook.remove()
        return logits, hidden


class MeissonicTeacher(AmusedTeacher):
    """The aMUSEd adapter with :class:`MeissonicNetwork` and a user-supplied transformer class."""

    NETWORK = MeissonicNetwork

    @classmethod
    def transformer_class(cls) -> type:
        raise ConfigError("Meissonic's Transformer2DModel is not on PyPI: pass transformer_class=Transformer2DModel "
                          "imported from a local checkout of Meissonic's code (src/transformer.py).")

    @classmethod
    def read_scheduler_config(cls, folder: Path, root: Path | None) -> dict[str, Any]:
        f = Path(folder) / "scheduler_config.json"
        try:
            return dict(json.loads(f.read_text()))
        except (OSError, ValueError, TypeError) as e:  # missing, not UTF-8, not JSON, not an object
            raise CheckpointError(f"could not read {f}: {e}") from e

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None, parts: dict[str, str | os.PathLike] | None = None,
                        map_location: str | torch.device = "cpu", negative_prompt: str = "",
                        aesthetic_score: float = 6.0, text_cache_size: int = 1024,
                        transformer_class: type | None = None, prepare_image_ids: ImageIds | None = None) -> Any:
        """As :meth:`AmusedTeacher.from_pretrained`; ``transformer_class`` is required, ``prepare_image_ids``
        (Meissonic's ``_prepare_latent_image_ids``) defaults to :func:`grid_image_ids`."""
        out = super().from_pretrained(path, parts, map_location, negative_prompt, aesthetic_score, text_cache_size,
                                      transformer_class=transformer_class or cls.transformer_class())
        if prepare_image_ids is not None:
            out.mdm.prepare_image_ids = prepare_image_ids
        return out


CODE_FILE = Path("src") / "transformer.py"  # Transformer2DModel in a checkout of Meissonic's code
CODE_HINT = ("meissonic_code=PATH, a local checkout of Meissonic's code (github.com/viiika/Meissonic) that holds "
             "src/transformer.py")


def _code_problems(code: str | os.PathLike | None) -> list[str]:
    if code is None or str(code) == "":
        return [f"{CODE_HINT} (not set)"]
    root = Path(code).expanduser()
    if not root.is_dir():
        return [f"{CODE_HINT} ({root} does not exist)"]
    if not (root / CODE_FILE).is_file():
        return [f"{root / CODE_FILE} (meissonic_code must be the checkout's root folder)"]
    return []


def load_transformer_class(code: str | os.PathLike) -> type:
    """``Transformer2DModel`` of the checkout ``code`` (imported from ``src/transformer.py`` by file path)."""
    file = Path(code).expanduser() / CODE_FILE
    spec = importlib.util.spec_from_file_location("softdimo_meissonic_transformer", file)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import {file}.")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)  # the user's own checkout: its file defines the network
    except ImportError as e:
        raise ConfigError(f"{file} could not be imported ({e}); it needs diffusers ({e.name or 'a module'} is "
                          f"missing).") from e
    cls = getattr(module, "Transformer2DModel", None)
    if not isinstance(cls, type):
        raise ConfigError(f"{file} defines no Transformer2DModel class; is {Path(code)} a checkout of Meissonic's code?")
    return cls


def load_meissonic(path: str | os.PathLike, code: str | os.PathLike | None,
                   map_location: str | torch.device = "cpu") -> MeissonicTeacher:
    """The Meissonic teacher in folder ``path`` with the transformer class of the checkout ``code``.

    Raises one :class:`ConfigError` listing everything missing (the code path or its file, the
    folder's parts).
    """
    problems = _code_problems(code)
    try:
        resolve_parts(path)
    except CheckpointError as e:
        problems.append(str(e))
    if problems:
        raise ConfigError("teacher_kind=meissonic needs the downloaded MeissonFlow/Meissonic folder (teacher=DIR) and "
                          "the Meissonic code; missing: " + "; ".join(problems))
    require_diffusers()
    return MeissonicTeacher.from_pretrained(path, map_location=map_location,
                                            transformer_class=load_transformer_class(code))  # type: ignore[arg-type]


__all__ = ["MeissonicNetwork", "MeissonicTeacher", "grid_image_ids", "load_meissonic", "load_transformer_class"]
