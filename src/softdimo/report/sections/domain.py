"""Quick domain checks: ``domain/*.json``, single ``softdimo eval`` runs with in-project classifier features.

Each file: ``metrics.source``, ``sampler``, ``n``, ``domain_fid``, ``classifier_score``,
``domain_evaluator`` (and ``config.model``, ``config.data.dataset``). Rows are grouped by dataset: each
dataset has its own classifier and reference, so numbers compare only within a group.
"""
from __future__ import annotations

from ..document import Section, Table, label, num
from ..schema import ResultsDir
from .common import finish, method_name, sampler_text

TITLE = "Quick domain checks (in-project classifier features)"


def section(rd: ResultsDir) -> Section:
    files = [rd.file(r) for r in rd.glob("domain/*.json")]
    s = Section(TITLE, files=[f.rel for f in files if f.ok])
    bad = [f for f in files if not f.ok]
    s.problems += [f"`{f.rel}`: {f.status}, {f.error}." for f in bad]
    t = Table("Domain FID and classifier score",
              ["dataset", "method", "model", "sampler", "domain FID", "classifier score"],
              note="A fast proxy for training curves and sweeps; the standard Inception FID is the reported metric. "
                   "Each dataset is scored with its own classifier against its own images: compare rows within a "
                   "dataset only.")
    by_dataset = [(str(f.get("config.data.dataset", "", required=False)), f) for f in files if f.ok]
    for dataset, f in sorted(by_dataset, key=lambda pair: pair[0]):
        m = f.metrics
        model = f.get("config.model", m.get("source", "?"), required=False)
        src = f.source(m.get("domain_evaluator"), m.get("n"))
        t.add(dataset or "not stated", method_name(model), label(model), sampler_text(m),
              num(m.get("domain_fid"), src), num(m.get("classifier_score"), src, 3))
    if t.rows:
        s.blocks.append(t)
    return finish(s, *files)


__all__ = ["section", "TITLE"]
