"""Class-to-image ablations: Jeffreys β, the one-step sampling temperature τ, and the Soft-Di[M]O ablations over seeds.

One section per grey dataset D (:data:`~softdimo.report.sections.common.DATASETS`; a dataset other than MNIST
with none of its files adds none). Reads ``dimo_D.json``: ``metrics.beta_table`` (present when the run had β
students; {β: {``temperature``, ``domain_fid``, ``classifier_score``, optional ``fid``/``precision``/``recall``}})
and ``metrics.temperature_sweeps`` ({``metric``: text, STUDENT: {τ: {``domain_fid``, ``classifier_score``}}});
and ``soft_gan_D.json``: ``metrics.ablations`` (soft, Gumbel-ST, GAN only, mask [0, 0]: FID per training seed,
mean and sd; schema and tables in :mod:`~softdimo.report.sections.soft_gan`; a file of its earlier schema is left
out here, and that section shows it as it stands). The domain numbers name D's own classifier
(:func:`softdimo.classifier.domain_evaluator`).
"""
from __future__ import annotations

from ...classifier import domain_evaluator
from ..document import Figure, Section, Source, Table, label, num
from ..plots import Series, svg_plot
from ..schema import ResultsDir, as_float
from .common import MAIN_DATASET, absent, dataset_title, figure_name, finish_dataset, grey_file
from .soft_gan import ablation_tables, is_current

TITLE = "Class-to-image ablations ({dataset}): β, τ, Soft-Di[M]O variants"  # {dataset}: the name in DATASETS


def section(rd: ResultsDir, dataset: str = MAIN_DATASET) -> Section | None:
    """The section of grey ``dataset`` (None: another dataset than MNIST with none of its files)."""
    df, sg = rd.file(grey_file("dimo", dataset)), rd.file(grey_file("soft_gan", dataset))
    s = Section(dataset_title(TITLE, dataset), files=[f.rel for f in (df, sg) if f.ok and (f is df or is_current(f))])
    absent(s, df, dataset)
    absent(s, sg, dataset)  # a file of the earlier schema is shown by the Soft-Di[M]O section as it stands
    if df.ok:
        src = df.source(domain_evaluator(dataset), df.metrics.get("n"))
        beta = df.get("metrics.beta_table", None, dict, required=False)  # only with --beta-students
        if beta:
            t = Table("Generalised Jeffreys β (equal distillation steps; each at its best τ)",
                      ["β", "τ", "domain FID", "classifier score", "FID (Inception)"],
                      note="β = 0 is forward KL, β = 1 reverse KL (docs/method.md §3.5). The τ of each student is the "
                           "best of the sweep below by domain FID.")
            for b, row in beta.items():
                if isinstance(row, dict):
                    t.add(label(b), num(row.get("temperature"), src, 1), num(row.get("domain_fid"), src),
                          num(row.get("classifier_score"), src, 3), num(row.get("fid"), df.source(), 2))
            s.blocks.append(t)
        sweeps = df.get("metrics.temperature_sweeps", None, dict)
        if sweeps:
            s.blocks += temperature_blocks(sweeps, src, dataset)
    if is_current(sg):
        s.blocks += ablation_tables(sg)
    return finish_dataset(s, dataset, df, sg)


def temperature_blocks(sweeps: dict, src: Source, dataset: str = MAIN_DATASET) -> list:
    """The τ sweep as a table (students × τ) and a plot of domain FID against τ."""
    students = {k: v for k, v in sweeps.items() if isinstance(v, dict)}
    temps = sorted({t for v in students.values() for t in v}, key=lambda t: as_float(_f(t)) or 0.0)
    t = Table("One-step sampling temperature τ: domain FID (lower is better)", ["student"] + [f"τ={x}" for x in temps],
              note=str(sweeps.get("metric", "")))
    series = []
    for name, per_t in students.items():
        t.add(label(name), *[num((per_t.get(x) or {}).get("domain_fid"), src) for x in temps])
        pts = [(float(_f(x)), float(v["domain_fid"])) for x, v in per_t.items()
               if isinstance(v, dict) and as_float(v.get("domain_fid")) is not None and as_float(_f(x)) is not None]
        series.append(Series(name, sorted(pts)))
    svg = svg_plot("Domain FID vs one-step temperature τ", series, "τ", "domain FID", log_y=10)
    return [t, Figure(figure_name("tau-sweep", dataset), "Domain FID vs τ per student", svg, [src])]


def _f(x: str) -> float | None:
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


__all__ = ["section", "TITLE"]
