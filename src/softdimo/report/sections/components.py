"""Components and evaluators: tokenizers, the grey datasets' classifiers, evaluator validation, training speed.

Reads ``tokenizer_*.json`` (``psnr``, ``codebook_usage``, ``perplexity``, ``n_images``, ``rfid``,
``rfid_floor``, ``n``, ``evaluator``), ``classifier_D.json`` for each grey dataset D
(:data:`~softdimo.report.sections.common.DATASETS`: ``classifier_mnist.json``, ``classifier_fashion.json``;
``D_test_accuracy``, ``D_test_n``, ``D_test_mean_confidence``, and, when the file has them,
``world_crop_accuracy``, ``world_crop_n``, ``world_crop_mean_confidence``), ``eval_validation.json``
(``fid_cross_check``, ``floors_mnist_train_vs_test`` {N: {fid, precision, recall}}, ``evaluator``),
``geneval_validation.json`` (``matched_per_tag``, ``shuffled_per_tag``, ``chance_per_tag``,
``*_overall``, ``n_images``) and ``*_speed.json`` training-speed files (``threads`` {T: {steps_per_second}}).
"""
from __future__ import annotations

from ...classifier import SHIPPED_BY_DATASET
from ..document import Section, Table, label, num
from ..schema import ResultsDir, ResultsFile
from .common import DATASETS, GENEVAL_TAGS, finish, grey_file

TITLE = "Components and evaluators"


def section(rd: ResultsDir) -> Section:
    s = Section(TITLE)
    used = []
    toks = [rd.file(r) for r in rd.glob("tokenizer_*.json") if not r.endswith("_speed.json")]
    toks = [f for f in toks if f.ok]
    if toks:
        t = Table("VQ tokenizers: reconstruction", ["tokenizer", "PSNR (dB)", "codebook usage", "perplexity",
                                                     "rFID", "real floor FID"],
                  note="PSNR and usage on the test split (N = n_images); rFID against the real-vs-real floor at N.")
        for f in toks:
            m = f.metrics
            ps = f.source("pixel PSNR / code histogram", m.get("n_images"))
            fs = f.source(m.get("evaluator"), m.get("n"))
            t.add(label(f.rel.removesuffix(".json")), num(m.get("psnr"), ps), num(m.get("codebook_usage"), ps, 3),
                  num(m.get("perplexity"), ps, 1), num(m.get("rfid"), fs), num(m.get("rfid_floor"), fs))
        s.blocks.append(t)
        used += toks
    for dataset in DATASETS:
        cl = rd.peek(grey_file("classifier", dataset))
        if cl.ok:
            rd.file(cl.rel)
            s.blocks.append(classifier_table(cl, dataset))
            used.append(cl)
    ev = rd.peek("eval_validation.json")
    if ev.ok:
        rd.file(ev.rel)
        floors = ev.get("metrics.floors_mnist_train_vs_test", {}, dict)
        t = Table("Real-vs-real FID floors (MNIST train[:N] vs test[:N])", ["N", "FID", "precision", "recall"],
                  note="FID is biased by N: compare models only at equal N, against this floor.")
        for n, v in floors.items():
            if isinstance(v, dict):
                src = ev.source(ev.metrics.get("evaluator"), n)
                t.add(label(n), num(v.get("fid"), src), num(v.get("precision"), src, 3), num(v.get("recall"), src, 3))
        s.blocks.append(t)
        cc = ev.get("metrics.fid_cross_check", {}, dict)
        if cc:
            src = ev.source(ev.metrics.get("evaluator"), cc.get("n"))
            t = Table("FID cross-check (same features, three implementations)", ["implementation", "FID"])
            for k, name in (("fid_ours_eigh", "softdimo (eigh)"), ("fid_scipy_sqrtm", "scipy sqrtm"),
                            ("fid_torchmetrics", "torchmetrics")):
                t.add(name, num(cc.get(k), src, 6))
            s.blocks.append(t)
        used.append(ev)
    gv = rd.peek("geneval_validation.json")
    if gv.ok:
        rd.file(gv.rel)
        m = gv.metrics
        src = gv.source("GenEval-like scorer on ground-truth renders", m.get("n_images"))
        t = Table("GenEval-like scorer validation: matched vs shuffled prompts vs chance",
                  ["tag", "matched", "shuffled", "chance"],
                  note="Ground-truth renders scored against their own prompt (matched) or another prompt (shuffled).")
        for tag in GENEVAL_TAGS + ["overall"]:
            def pick(k: str) -> object:
                return m.get(f"{k}_overall") if tag == "overall" else (m.get(f"{k}_per_tag") or {}).get(tag)
            t.add(tag, num(pick("matched"), src, 3), num(pick("shuffled"), src, 3), num(pick("chance"), src, 4))
        s.blocks.append(t)
        used.append(gv)
    speeds = [f for f in (rd.file(r) for r in rd.glob("*_speed.json")) if f.ok]
    if speeds:
        t = Table("Training speed (steps per second by torch threads)", ["file", "threads", "steps / s",
                                                                          "projected minutes for max_steps"])
        for f in speeds:
            src = f.source("wall clock, training steps", f.metrics.get("measured_steps"))
            for th, v in (f.get("metrics.threads", {}, dict)).items():
                if isinstance(v, dict):
                    threads = label(f"{th} thread{'' if th == '1' else 's'}")
                    t.add(label(f.rel), threads, num(v.get("steps_per_second"), src),
                          num(v.get("projected_minutes_for_max_steps"), src, 1))
        s.blocks.append(t)
        used += speeds
    s.files = [f.rel for f in used]
    return finish(s, *used)


def classifier_table(cl: ResultsFile, dataset: str) -> Table:
    """Accuracy of the shipped classifier of ``dataset`` on its test split (and on digit-world crops, when measured)."""
    m, name = cl.metrics, SHIPPED_BY_DATASET[dataset]
    t = Table(f"Classifier of the domain metrics ({DATASETS[dataset]}): {name}, evaluator only, never a reward",
              ["split", "accuracy", "mean confidence"])
    src = cl.source(name, m.get(f"{dataset}_test_n"))
    t.add(f"{DATASETS[dataset]} test", num(m.get(f"{dataset}_test_accuracy"), src, 4),
          num(m.get(f"{dataset}_test_mean_confidence"), src, 4))
    if "world_crop_accuracy" in m:
        src = cl.source(name, m.get("world_crop_n"))
        t.add("digit-world crops", num(m.get("world_crop_accuracy"), src, 4),
              num(m.get("world_crop_mean_confidence"), src, 4))
    return t


__all__ = ["section", "classifier_table", "TITLE"]
