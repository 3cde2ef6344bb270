"""The results report: paper-style tables, plots and sample grids built from results JSON (docs/architecture.md §4, §6).

``softdimo report --results benchmarks/results --out report/`` writes ``report.md`` (+ ``assets/``)
and a self-contained ``report.html``. Every number cell carries a :class:`~.document.Source`: its
results file, the command that wrote it, its evaluator and N.

Modules: :mod:`.schema` (tolerant reading of results files), :mod:`.document` (the report as data),
:mod:`.plots` (SVG plots), :mod:`.grids` (side-by-side sample grids from generator folders),
:mod:`.markdown` and :mod:`.html` (writers), :mod:`.build` (the command), and one module per results
file under :mod:`.sections`, whose docstring gives the schema it reads:

=========================================  ==========================================================
results file                               section module
=========================================  ==========================================================
teacher_{mnist,fashion}.json,              :mod:`.sections.class_to_image` (one section per dataset)
dimo_{mnist,fashion}.json,
eval_*.json (FID against MNIST or
Fashion-MNIST)
dimo_{mnist,fashion}.json (β, τ),          :mod:`.sections.ablations` (one section per dataset)
soft_gan_{mnist,fashion}.json (ablations)
soft_gan_{mnist,fashion}.json (rows,       :mod:`.sections.soft_gan` (one section per dataset)
targets, curves, diagnostics)
teacher_world.json, dimo_world.json,       :mod:`.sections.text_to_image`
t2i_world.json
speed.json                                 :mod:`.sections.speed` (written by :mod:`softdimo.bench`)
domain/*.json                              :mod:`.sections.domain`
tokenizer_*,                               :mod:`.sections.components`
classifier_{mnist,fashion},
eval_validation, geneval_validation,
\\*_speed.json
anything else (demo.json,                  :mod:`.sections.other` (generic: ``metrics.rows`` + scalars)
faults.json, scaling.json,
amused_tiny.json, …)
=========================================  ==========================================================

The grey class-to-image datasets are those of :data:`.sections.common.DATASETS`: MNIST's files are expected
(absent ones are named "not yet measured"); Fashion-MNIST's sections appear only when its files are there.

Shared row convention (as in ``dimo_mnist.json``): a result row is an object with ``label``,
optional ``kind``, ``model``, ``options`` / ``sampler``, the metric keys (``fid``, ``precision``,
``recall``, ``geneval``, ``geneval_per_tag``, …), ``seconds_per_image``, and the provenance keys
``evaluator`` / ``evaluators`` {metric: evaluator} and ``n`` / ``ns`` {metric: N}; absent provenance
falls back to ``metrics.evaluator`` and ``metrics.n`` of the file.
"""
from __future__ import annotations

from .build import ReportOptions, ReportSummary, build, build_report
from .document import Report, Source

__all__ = ["ReportOptions", "ReportSummary", "build", "build_report", "Report", "Source"]
