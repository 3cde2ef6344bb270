"""aMUSEd as a softdimo teacher: the Teacher protocol over a local diffusers folder (docs/architecture.md §3).

A real aMUSEd checkpoint (``amused/amused-256`` or ``-512``, downloaded elsewhere) is a diffusers
folder (``transformer/`` UVit2DModel, ``vqvae/`` VQModel, ``text_encoder/`` and ``tokenizer/``
CLIP, ``scheduler/`` AmusedScheduler). The adapter is split by concern:

* :mod:`.parts`: the folder and its parts — what must be there (every missing part listed at
  once), loading each part offline (``local_files_only``, safetensors unless pickle is allowed);
* :mod:`.network`: the seam — ``UVit2DModel`` entered at its input embeddings, so hard, noised
  and soft inputs (docs/method.md §4.1) share diffusers' own forward;
* :mod:`.vq`: ``VQModel`` as the tokenizer — ``decode`` by index lookup, ``decode_soft`` by
  ``p @ codebook`` into the decoder (§6.2);
* :mod:`.text`: the CLIP text encoder and the micro-conditions;
* :mod:`.bundle`: :class:`AmusedTeacher` and :class:`AmusedStudent` on the shared
  :class:`~softdimo.teachers.bundle.MDMBundle` base (sampling, the distillation hooks, the folders).

Only the models are used, never the deprecated pipeline; diffusers is the optional ``amused``
extra, imported only when a folder loads. Meissonic reuses all of it
(:mod:`softdimo.teachers.meissonic`).
"""
from __future__ import annotations

from .bundle import STUDENT_KIND, STUDENT_MANIFEST, AmusedBundle, AmusedStudent, AmusedTeacher, KIND, default_sampler
from .network import AmusedNetwork, EmbeddingSeam
from .parts import PARTS, is_amused_folder, load_part, quiet_hub, require_diffusers, resolve_parts
from .text import AmusedCondition, AmusedTextEncoder
from .vq import AmusedVQ

__all__ = ["AmusedBundle", "AmusedTeacher", "AmusedStudent", "AmusedNetwork", "AmusedVQ", "AmusedTextEncoder",
           "AmusedCondition", "EmbeddingSeam", "resolve_parts", "is_amused_folder", "require_diffusers", "load_part",
           "quiet_hub", "default_sampler", "KIND", "STUDENT_KIND", "STUDENT_MANIFEST", "PARTS"]
