"""`softdimo demo`: the main job on the embedded default, every stage with its effect measured in the run.

Starting from the shipped checkpoints, each stage reports a before → after number and pictures
(:mod:`.stage`):

1. **tokenizers** (:mod:`.tokenizers`): PSNR of test images through the token grid, patch means →
   the tokenizer's reconstructions;
2. **one step vs N steps** (:mod:`.onestep`): every shipped teacher at 16 steps and its shipped
   one-step students, timed side by side, with their quality at the same N;
3. **Di[M]O** (:mod:`.dimo_curve`): a short distillation of ``teacher-mnist`` shown as what it is,
   a learning curve from step 0;
4. **Soft-Di[M]O GAN** (:mod:`.soft_gan`): the shipped Di[M]O student and its shipped GAN
   refinement, domain FID of each measured in the run;
5. **reward fine-tuning** (:mod:`.reward`): the shipped text-to-image student, GenEval-like score
   on held-out prompts before → after;
6. **TTEO + best-of-N** (:mod:`.tteo_stage`): the same score, one step → TTEO;
7. **report**: ``OUT/results/demo.json`` and ``OUT/report/report.html`` with the shipped results.

Sizes (:mod:`.budget`): ``tiny`` (tests), ``default`` (minutes on two CPU cores), ``full``.
"""
from __future__ import annotations

from .budget import BUDGETS, DemoBudget, budget_for
from .run import run_demo
from .stage import Picture, StageResult, Strip

__all__ = ["run_demo", "BUDGETS", "DemoBudget", "budget_for", "StageResult", "Picture", "Strip"]
