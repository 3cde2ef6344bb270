"""`softdimo report`: Markdown + self-contained HTML from a fixture of results JSON; sources; grids; plots."""
from __future__ import annotations

import base64
import io
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from softdimo.classifier import domain_evaluator
from softdimo.cli import main
from softdimo.errors import DataError
from softdimo.report import ReportOptions, build, build_report
from softdimo.report.document import Table, Text
from softdimo.report.grids import GridModel, GridSpec, draw
from softdimo.report.plots import LEFT, HLine, Series, nice_step, svg_plot
from softdimo.report.schema import ResultsDir, ResultsFile, points
from tiny_models import write_generators

FID_EVAL = "fixture-inception"
TEACHER_CMD = "generators.py --preset fixture-teacher"
DIMO_CMD = "generators.py --preset fixture-dimo"


def doc(name: str, command: str, metrics: dict) -> dict:
    return {"name": name, "command": command, "commit": "abc123", "machine": {}, "started": "2026-01-01T00:00:00",
            "seconds": 1.0, "config": {}, "metrics": metrics}


def row(label: str, steps, cfg, fid: float, model: str, sampler: str = "MaskGITSampler", **extra) -> dict:
    return {"label": label, "model": model, "options": {"steps": steps, "cfg_scale": cfg, "temperature": None},
            "sampler": {"sampler": sampler, "steps": steps or 1, "cfg_scale": cfg or 1.0, "temperature": 5.0},
            "n": 500, "evaluator": FID_EVAL, "fid": fid, "precision": 0.5, "recall": 0.4, "fid_over_floor": fid / 10,
            **extra}


def fixture_files() -> dict[str, object]:
    floor = {"n": 500, "fid": 10.0, "precision": 0.8, "recall": 0.8, "evaluator": FID_EVAL}
    speed = {"batch_size": 8, "repeats": 2, "device": "cpu"}
    per_tag = {"single_object": 0.9, "two_object": 0.7, "counting": 0.5, "colors": 0.8, "position": 0.3,
               "color_attr": 0.2}
    t_rows = [row(f"N={n} cfg=1.5", n, 1.5, f, "checkpoints/teacher-mnist", seconds_per_image=0.01 * n)
              for n, f in ((1, 61.5), (4, 21.25), (16, 23.75))]
    return {
        "teacher_mnist.json": doc("teacher_mnist", TEACHER_CMD, {
            "n": 500, "evaluator": FID_EVAL, "floor": floor, "best_cfg": 1.5, "rows": t_rows,
            "steps_sweep": {"cfg_scale": 1.5, "fid_by_steps": {"1": 61.5, "4": 21.25, "16": 23.75}},
            "cfg_sweep": {"steps": 16, "fid_by_cfg": {"1": 24.5, "1.5": 23.75}, "precision_by_cfg": {"1": 0.6},
                          "recall_by_cfg": {"1": 0.5}},
            "target_fid16_within_3x_floor": {"pass": True, "fid_16step": 23.75}, "speed": speed}),
        "dimo_mnist.json": doc("dimo_mnist", DIMO_CMD, {
            "n": 500, "evaluator": FID_EVAL, "floor": floor,
            "student_rows": [row("dimo τ=5", None, None, 44.25, "checkpoints/dimo-mnist", "OneStepSampler",
                                 seconds_per_image=0.002)],
            "temperature_sweeps": {"metric": "domain_fid",
                                   "dimo": {"1": {"domain_fid": 140.5}, "5": {"domain_fid": 70.5}}},
            "beta_table": {"-0.2": {"temperature": 2.0, "domain_fid": 97.5, "classifier_score": 8.5}},
            "targets": {"student_fid_over_teacher16": 1.86, "speedup_vs_teacher16_cfg2": 22.5}, "speed": speed,
            "teacher_best_fid": 21.25, "student_fid_tau1": 48.75, "student_best_fid": 44.25, "student_best_tau": 5.0,
            "diversity_ratio": 0.8125, "recall_ratio": 0.9375, "delta_token_fraction": 0.0234,
            "fidelity_targets": {"student_best_fid_pass": False, "delta_token_fraction_pass": False}}),
        "soft_gan_mnist.json": soft_gan_doc(floor),
        "eval_soft_fixture.json": doc("eval:soft", "softdimo eval --model checkpoints/soft-dimo-mnist", {
            "source": "dimo-student:checkpoints/soft-dimo-mnist", "n": 500, "reference": "mnist:test[:500]",
            "sampler": {"sampler": "OneStepSampler", "steps": 1, "temperature": 2.0}, "evaluator": FID_EVAL,
            "fid": 28.5, "precision": 0.55, "recall": 0.35}),
        "teacher_world.json": doc("teacher_world", "generators.py --preset teacher_world", {
            "n": 120, "evaluator": "fixture-geneval",
            "rows": [{"label": "N=16 cfg=3", "options": {"steps": 16, "cfg_scale": 3.0}, "geneval": 0.55,
                      "geneval_per_tag": per_tag, "seconds_per_image": 0.05}],
            "steps_sweep": {"geneval_by_steps": {"1": 0.1, "16": 0.55}}, "speed": speed}),
        "t2i_world.json": doc("t2i_world", "t2i.py --fixture", {
            "n": 120, "evaluator": "fixture-geneval",
            "evaluators": {"clip_score": "fixture-mini-clip", "geneval_se": "fixture-clustered-se", "fid": FID_EVAL},
            "skipped": ["gumbel_reward"], "speed": speed,
            "tteo": {"config": "configs/world/tteo.yaml", "student": "dimo", "iters": 2, "lr": 0.2, "best_of": 4},
            "rows": {"tteo": {"label": "Di[M]O + TTEO 2 iters, best of 4", "tteo_iters": 2, "best_of": 4,
                              "geneval": 0.61, "geneval_se": 0.04, "per_tag": per_tag, "clip_score": 0.3125,
                              "fid": 35.5, "seconds_per_image": 0.125, "ns": {"fid": 1000},
                              "evaluators": {"fid": FID_EVAL}},
                     "dimo": {"label": "Di[M]O", "geneval": 0.48, "geneval_se": 0.0375, "per_tag": per_tag,
                              "fid": 30.5, "seconds_per_image": 0.0125}},
            "tteo_latency_ratio": {"tteo": 10.0},
            "targets": {"teacher_in_range": {"metric": "geneval", "value": 0.55, "se": 0.03, "low": 0.45,
                                             "high": 0.85, "gap": 0.1, "gap_se": 0.03, "holds": True, "shown": True},
                        "tteo_gt_best_of_n": {"metric": "geneval", "values": {"tteo": 0.61, "best_of_n": 0.6},
                                              "threshold": 0.6, "gap": 0.01, "gap_se": 0.05, "holds": True,
                                              "shown": False},
                        "reward_only_hacking": {"reward_up": True, "reward_only_fid": 48.25, "holds": False}}}),
        "domain/dimo_t5.json": doc("eval:dimo", "softdimo eval --metrics domain_fid --model checkpoints/dimo-mnist", {
            "source": "dimo-student:checkpoints/dimo-mnist", "n": 300, "domain_fid": 82.5, "classifier_score": 9.25,
            "domain_evaluator": "fixture-classifier", "sampler": {"sampler": "OneStepSampler", "temperature": 5.0}}),
        "scaling.json": doc("scaling", "scaling.py", {
            "evaluator": "wall clock", "n": 3, "rows": [{"label": "1 proc", "steps_per_second": 4.5}],
            "efficiency": {"two_processes": 0.875}}),
        # malformed: not JSON / no metrics / wrong types inside a valid file
        "demo.json": "{not json",
        "faults.json": {"name": "faults", "command": "faults.py"},
        "dimo_world.json": doc("dimo_world", "generators.py --preset dimo_world", {"teacher_rows": "oops"}),
        # speed.json, amused_tiny.json: absent (not yet measured)
    }


def student_row(label: str, tau: float, fid: float, model: str, **extra) -> dict:
    r = row(label, None, None, fid, model, "OneStepSampler", **extra)
    r["options"]["temperature"] = tau
    return r


def soft_gan_doc(floor: dict) -> dict:
    """soft_gan_mnist.json as benchmarks/soft_gan.py writes it (runs at the top of curves and diagnostics)."""
    soft_seeds = [student_row(f"Soft-Di[M]O (soft + GAN), seed {s} τ={t:g}", t, f, f"tmp/soft-s{s}-row", kind="soft",
                              seed=s) for s, t, f in ((0, 2.0, 27.25), (0, 1.0, 29.5), (1, 2.0, 28.75))]
    return doc("soft_gan_mnist", "soft_gan.py --runs RUNS --seeds 0,1", {
        "n": 500, "evaluator": FID_EVAL, "floor": floor,
        "teacher_best_fid": 21.25, "dimo_fid": 44.25, "dimo_tau": 5.0, "dimo_fid_tau1": 48.75,
        "soft_fid": 27.5, "soft_tau": 2.0, "soft_fid_tau1": 31.25,
        "teacher_rows": [row("teacher 4 steps cfg 1.5", 4, 1.5, 21.25, "checkpoints/teacher-mnist", kind="teacher")],
        "dimo_rows": [student_row("Di[M]O τ=5", 5.0, 44.25, "checkpoints/dimo-mnist", kind="dimo")],
        "soft_rows": [student_row(f"Soft-Di[M]O shipped τ={t:g}", t, f, "checkpoints/soft-dimo-mnist", kind="soft",
                                  shipped=True) for t, f in ((2.0, 27.5), (1.0, 31.25))],
        "ablations": {
            "soft": {"fids": [27.25, 28.75], "fid_mean": 28.0, "fid_sd": 1.0625, "seeds": [0, 1],
                     "temperatures": [2.0, 2.0], "what": "none (the preset)", "row_step": 100, "rows": soft_seeds},
            "gumbel": {"fids": [39.5], "fid_mean": 39.5, "fid_sd": None, "seeds": [0], "temperatures": [1.0],
                       "what": "gan.embedding=gumbel", "row_step": 100,
                       "rows": [student_row("Gumbel-ST + GAN, seed 0 τ=1", 1.0, 39.5, "tmp/gumbel-s0-row",
                                            kind="gumbel", seed=0)]}},
        "curves": {"metric": "domain_fid at N = 250, seed 0, EMA weights",
                   "soft-s0": [{"step": 0, "domain_fid": 44.0}, {"step": 100, "domain_fid": 30.5}],
                   "gumbel-s0": {"steps": [0, 100], "domain_fid": [44.0, 41.5]}},
        "diagnostics": {"source": "metrics.jsonl", "soft-s0": [{"step": 50, "soft_entropy": 1.25, "soft_p_max": 0.6,
                                                               "soft_cov_trace": 0.125, "soft_gap": 0.0625}],
                        "no_gan-s0": [{"step": 50, "dimo_loss": 1.5}]},  # no discriminator: no soft diagnostics
        "targets": {"soft_le_0.95x_teacher": {"soft_fid": 27.5, "teacher_best_fid": 21.25, "holds": False},
                    "refine_step_le_1.6x": {"refine_over_distill": 1.375, "threshold": 1.6, "holds": True}},
        "targets_left_out": ["soft_beats_gumbel_by_pooled_sd"],
        "controls": {"soft_beats_no_gan_by_pooled_sd": {"soft_mean": 28.0, "no_gan_mean": 28.5, "pooled_sd": 1.0,
                                                        "holds": False}},
        "step_cost": {"seconds_per_step": {"refine": 0.55, "distill": 0.4}, "repeats": 3}})


FASHION_CMD = "generators.py --preset dimo_mnist --dataset fashion"
FASHION_SOFT_CMD = "soft_gan.py --dataset fashion --runs RUNS --seeds 0,1"


def fashion_files() -> dict[str, object]:
    """The Fashion-MNIST chain: the same schema as MNIST's files, with numbers of its own."""
    floor = {"n": 500, "fid": 12.5, "precision": 0.75, "recall": 0.78, "evaluator": FID_EVAL}
    speed = {"batch_size": 8, "repeats": 2, "device": "cpu"}
    t_rows = [row(f"N={n} cfg=1", n, 1.0, f, "checkpoints/teacher-fashion", seconds_per_image=0.01 * n)
              for n, f in ((1, 71.5), (4, 33.25), (16, 35.75))]
    sg = soft_gan_doc(floor)
    sg.update(name="soft_gan_fashion", command=FASHION_SOFT_CMD)
    m = sg["metrics"]
    m.update(soft_fid=36.5, soft_tau=3.0, teacher_best_fid=33.25, dimo_fid=41.75,
             teacher_rows=[row("teacher 4 steps cfg 1", 4, 1.0, 33.25, "checkpoints/teacher-fashion", kind="teacher")],
             dimo_rows=[student_row("Di[M]O τ=1", 1.0, 41.75, "checkpoints/dimo-fashion", kind="dimo")],
             soft_rows=[student_row("Soft-Di[M]O shipped τ=3", 3.0, 36.5, "checkpoints/soft-dimo-fashion", kind="soft",
                                    shipped=True)],
             curves={"metric": "domain_fid at N = 250, seed 0",
                     "soft-s0": [{"step": 0, "domain_fid": 52.0}, {"step": 100, "domain_fid": 46.5}]})
    m["ablations"]["soft"]["fid_mean"] = 37.25
    return {
        "teacher_fashion.json": doc("teacher_mnist", FASHION_CMD, {
            "dataset": "fashion", "n": 500, "evaluator": FID_EVAL, "floor": floor, "best_cfg": 1.0, "rows": t_rows,
            "steps_sweep": {"cfg_scale": 1.0, "fid_by_steps": {"1": 71.5, "4": 33.25, "16": 35.75}},
            "cfg_sweep": {"steps": 16, "fid_by_cfg": {"1": 35.75, "2": 38.5}}, "speed": speed}),
        "dimo_fashion.json": doc("dimo_mnist", FASHION_CMD, {
            "dataset": "fashion", "n": 500, "evaluator": FID_EVAL, "floor": floor,
            "student_rows": [row("dimo τ=1", None, None, 41.75, "checkpoints/dimo-fashion", "OneStepSampler",
                                 seconds_per_image=0.002)],
            "temperature_sweeps": {"metric": "domain_fid (the dataset's in-project classifier's features)",
                                   "dimo": {"1": {"domain_fid": 150.25}, "3": {"domain_fid": 88.75}}},
            "targets": {"student_fid_over_teacher16": 1.17}, "speed": speed}),
        "soft_gan_fashion.json": sg,
        "eval_dimo_fashion.json": doc("eval:dimo", "softdimo eval --model checkpoints/dimo-fashion", {
            "source": "dimo-student:checkpoints/dimo-fashion", "n": 500, "reference": "fashion:test[:500]",
            "sampler": {"sampler": "OneStepSampler", "steps": 1, "temperature": 1.0}, "evaluator": FID_EVAL,
            "fid": 43.25, "precision": 0.5, "recall": 0.3}),
        "classifier_fashion.json": doc("classifier_fashion", "classifier.py --dataset fashion", {
            "fashion_test_accuracy": 0.8958, "fashion_test_n": 10000, "fashion_test_mean_confidence": 0.8996}),
    }


def write_files(root: Path, files: dict[str, object]) -> Path:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content if isinstance(content, str) else json.dumps(content))
    return root


@pytest.fixture()
def results(tmp_path) -> Path:
    return write_files(tmp_path / "results", fixture_files())


def _is_number(text: str) -> bool:
    return re.fullmatch(r"-?[\d ]+(\.\d+)?(e[-+]\d+)?×?", text) is not None


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.srcs: list[str] = []
        self.num_titles: list[str] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        a = dict(attrs)
        if "src" in a:
            self.srcs.append(a["src"])
        if tag == "td" and a.get("class") == "num":
            self.num_titles.append(a.get("title") or "")


def test_report_builds_from_fixture_and_every_number_has_its_source(results, tmp_path, capsys):
    rc = main(["report", "--results", str(results), "--out", str(tmp_path / "rep"), "--no-grids"])
    assert rc == 0 and "report:" in capsys.readouterr().out
    md = (tmp_path / "rep" / "report.md").read_text()
    html = (tmp_path / "rep" / "report.html").read_text()
    # the paper-style rows, with the numbers of the fixture
    for text in ("61.50", "21.25", "23.75", "44.25", "27.50", "39.50", "28.50", "0.550", "0.610", "0.312",
                 "82.50", "97.50", "0.875"):
        assert text in md and text in html, text
    assert TEACHER_CMD in md and DIMO_CMD in md and FID_EVAL in md and "N = 500" in md
    assert "Di[M]O fidelity" in md and "48.750" in md and "0.938" in md and "| delta_token_fraction | 0.023 |" in md
    # every number cell of every table carries a source with evaluator, N and command
    report = build(ReportOptions(results=str(results), out=str(tmp_path / "x"), grids=False))
    numbers = 0
    for s in report.sections:
        for b in s.blocks:
            if isinstance(b, Table):
                for r in b.rows:
                    for k, c in enumerate(r):  # column 0 holds row labels (a CFG, a β, a step count)
                        if k and _is_number(c.text) and b.title != "Every expected and every present file":
                            assert c.source is not None, (s.title, b.title, c.text)
                        if c.source is not None:
                            numbers += 1
                            assert c.source.command not in ("", "not stated") and c.source.n
    assert numbers == report.numbers() > 60
    # per-metric provenance: t2i FID has its own evaluator and N; rows in benchmark order, not file order
    t2i = next(s for s in report.sections if s.title.startswith("Text-to-image"))
    tbl = next(b for b in t2i.blocks if isinstance(b, Table) and "rewards" in b.title)
    assert [r[0].text for r in tbl.rows] == ["dimo", "tteo"] and "Not run: gumbel_reward" in tbl.note
    fid_cell = tbl.rows[1][tbl.columns.index("FID")]
    clip_cell = tbl.rows[1][tbl.columns.index("mini-CLIP")]
    se_cell = tbl.rows[1][tbl.columns.index("± SE")]
    assert (fid_cell.source.evaluator, fid_cell.source.n) == (FID_EVAL, "1000")
    assert (clip_cell.source.evaluator, clip_cell.source.n) == ("fixture-mini-clip", "120")
    assert (se_cell.text, se_cell.source.evaluator) == ("0.040", "fixture-clustered-se")
    assert tbl.rows[0][tbl.columns.index("mini-CLIP")].text == "—"  # a row without the number
    # targets: value, threshold, gap and its SE, holds, shown (a gap within its SE is not shown)
    tt = next(b for b in t2i.blocks if isinstance(b, Table) and b.title.startswith("Text-to-image targets"))
    assert [[c.text for c in r] for r in tt.rows] == [
        ["teacher_in_range", "0.550", "[0.45, 0.85]", "0.100", "0.030", "yes", "yes"],
        ["tteo_gt_best_of_n", "0.610", "0.600", "0.010", "0.050", "yes", "no"],
        ["reward_only_hacking", "—", "—", "—", "—", "no", "—"]]
    hack = next(b for b in t2i.blocks if isinstance(b, Table) and b.title.startswith("Reward only"))
    assert [r[0].text for r in hack.rows] == ["reward_up", "reward_only_fid", "holds"]
    assert (hack.rows[0][1].source.evaluator, hack.rows[1][1].source.evaluator) == ("fixture-geneval", FID_EVAL)
    assert "| tteo | 10.000 |" in md
    # HTML: self-contained, parses, number cells have a hover title naming the command
    tags = Tags()
    tags.feed(html)
    assert "script" not in tags.tags and all(s.startswith("data:") for s in tags.srcs)
    assert not re.search(r"(href|src)=\"https?:", html)
    assert tags.tags["table"] >= 12 and tags.tags["svg"] >= 5
    assert tags.num_titles and all("command:" in t and "N = " in t and "evaluator:" in t for t in tags.num_titles)
    for svg in re.findall(r"<svg.*?</svg>", html, re.S):
        ET.fromstring(svg)  # every plot is well-formed XML
    # Markdown assets: the plots as files
    assets = sorted(p.name for p in (tmp_path / "rep" / "assets").iterdir())
    assert {"fig-fid-vs-steps.svg", "fig-fid-vs-step.svg", "fig-diag-soft_gap.svg", "fig-geneval-vs-steps.svg",
            "fig-tau-sweep.svg"} <= set(assets)
    # soft_gan_mnist.json: the shipped Soft-Di[M]O rows join the main table; curves read from the top-level runs
    c2i = next(s for s in report.sections if s.title.startswith("Class-to-image (MNIST)"))
    main_rows = [r[0].text for r in c2i.blocks[0].rows]
    assert main_rows.count("Soft-Di[M]O") == 3 and main_rows[0] == "real-vs-real floor"  # τ = 2, τ = 1, eval file
    sg = next(s for s in report.sections if s.title.startswith("Soft-Di[M]O vs the teacher and Di[M]O"))
    cmp_ = next(b for b in sg.blocks if isinstance(b, Table) and b.title.startswith("Soft-Di[M]O vs the teacher"))
    assert [[c.text for c in r][:4] for r in cmp_.rows] == [
        ["real-vs-real floor", "train vs test, N = 500", "", "10.00"],
        ["teacher", "teacher 4 steps cfg 1.5", "N=4, cfg 1.5", "21.25"], ["Di[M]O", "Di[M]O τ=5", "1 step, τ 5", "44.25"],
        ["Soft-Di[M]O", "Soft-Di[M]O shipped τ=2", "1 step, τ 2", "27.50"],
        ["Soft-Di[M]O", "Soft-Di[M]O shipped τ=1", "1 step, τ 1", "31.25"]]
    tg = next(b for b in sg.blocks if isinstance(b, Table) and b.title.startswith("Soft-Di[M]O targets"))
    assert ["soft_le_0.95x_teacher.holds", "no"] in [[c.text for c in r] for r in tg.rows]
    assert "soft_beats_gumbel_by_pooled_sd" in tg.note
    assert next(r for r in tg.rows if r[0].text.startswith("refine_step"))[1].source.evaluator.startswith("wall clock")
    assert "(no data)" not in html  # a run without the diagnostics is left out of their plots
    ctl = next(b for b in sg.blocks if isinstance(b, Table) and b.title.startswith("Control: the GAN's gain"))
    assert ["soft_beats_no_gan_by_pooled_sd.holds", "no"] in [[c.text for c in r] for r in ctl.rows]
    curve = next(b for b in sg.blocks if isinstance(b, Table) and "first and the last" in b.title)
    assert [[c.text for c in r] for r in curve.rows] == [["soft-s0", "0", "44.00", "100", "30.50"],
                                                          ["gumbel-s0", "0", "44.00", "100", "41.50"]]
    assert curve.rows[0][2].source.n == "250"
    cost = next(b for b in sg.blocks if isinstance(b, Table) and b.title.startswith("Cost"))
    assert cost.rows[0][1].source.evaluator.startswith("wall clock")
    # the ablations over training seeds: mean, sd (none with one seed), and every seed at its chosen τ
    abl = next(s for s in report.sections if s.title.startswith("Class-to-image ablations"))
    summary, per_seed = [b for b in abl.blocks if isinstance(b, Table) and b.title.startswith("Soft-Di[M]O ablations")]
    assert [[c.text for c in r] for r in summary.rows] == [
        ["soft", "`none (the preset)`", "s0, s1", "28.00", "1.06", "27.25", "28.75"],
        ["gumbel", "`gan.embedding=gumbel`", "s0", "39.50", "—", "39.50", "39.50"]]
    assert [[c.text for c in r][:4] for r in per_seed.rows] == [
        ["soft", "s0", "1 step, τ 2", "27.25"], ["soft", "s1", "1 step, τ 2", "28.75"],
        ["gumbel", "s0", "1 step, τ 1", "39.50"]]
    for a in re.findall(r"\]\((assets/[^)]+)\)", md):
        assert (tmp_path / "rep" / a).is_file()


def test_missing_and_malformed_files_are_named_not_fatal(results, tmp_path):
    summary = build_report(ReportOptions(results=str(results), out=str(tmp_path / "rep"), grids=False))
    assert {"speed.json", "amused_tiny.json"} <= set(summary.not_measured)
    assert "demo.json" not in summary.not_measured  # present, though malformed
    md = summary.markdown.read_text()
    problems = "\n".join(summary.problems)
    assert "`speed.json`: not yet measured" in problems and "softdimo bench" in problems
    assert "`demo.json`: malformed, not valid JSON" in problems
    assert "`faults.json`: malformed" in problems and "lacks metrics" in problems
    assert "dimo_world.json: metrics.teacher_rows is not a list" in problems
    assert "not yet measured" in md and "malformed" in md
    # the generic section shows unknown files (rows + scalars)
    assert "scaling.json: rows" in md and "efficiency.two_processes" in md
    # inventory: one line per expected or present file
    assert md.count("| speed.json | not yet measured |") == 1


def test_t2i_world_of_the_earlier_schema_is_shown_as_it_stands(tmp_path):
    root = tmp_path / "results"
    root.mkdir()
    rows = [{"label": "Di[M]O", "kind": "dimo", "geneval": 0.055, "geneval_per_tag": {"colors": 0.25}, "fid": 91.5}]
    (root / "t2i_world.json").write_text(json.dumps(doc("t2i_world", "t2i.py --old", {
        "n": 1200, "evaluator": "fixture-geneval", "rows": rows,
        "targets": {"geneval_chain": {"all_hold": False}}})))
    report = build(ReportOptions(results=str(root), out=str(tmp_path / "rep"), grids=False))
    t2i = next(s for s in report.sections if s.title.startswith("Text-to-image"))
    assert "t2i_world.json" in t2i.files and not any("t2i_world.json" in p for p in t2i.problems)
    assert any(isinstance(b, Text) and "earlier version of benchmarks/t2i_world.py" in b.text for b in t2i.blocks)
    tbl = next(b for b in t2i.blocks if isinstance(b, Table) and b.title == "t2i_world.json: rows")
    assert [c.text for c in tbl.rows[0]][:3] == ["Di[M]O", "0.055", "91.500"]
    assert not any(isinstance(b, Table) and b.title.startswith("Text-to-image targets") for b in t2i.blocks)


def test_soft_gan_mnist_of_the_earlier_schema_is_shown_as_it_stands(tmp_path):
    root = tmp_path / "results"
    root.mkdir()
    floor = {"n": 500, "fid": 10.0, "precision": 0.8, "recall": 0.8, "evaluator": FID_EVAL}
    (root / "soft_gan_mnist.json").write_text(json.dumps(doc("soft_gan_mnist", "soft_gan.py --runs OLD/refine", {
        "n": 500, "evaluator": FID_EVAL, "floor": floor,  # one run per variant, no seeds
        "rows": [row("Soft-Di[M]O (soft + GAN) τ=2", None, None, 27.5, "runs/soft", "OneStepSampler"),
                 row("Gumbel-ST + GAN τ=2", None, None, 39.5, "runs/gumbel", "OneStepSampler")],
        "curves": {"metric": "domain_fid, N = 250", "soft": [{"step": 0, "domain_fid": 44.0}]},
        "targets": {"soft_beats_gumbel": True}})))
    summary = build_report(ReportOptions(results=str(root), out=str(tmp_path / "rep"), grids=False))
    md = summary.markdown.read_text()
    assert "27.5" in md and "39.5" in md  # its measured rows, as they stand
    assert "earlier version of benchmarks/soft_gan.py" in md and "--seeds" in md
    assert not any("soft_gan_mnist.json" in p for p in summary.problems)
    assert "| soft_gan_mnist.json | measured (earlier schema) |" in md
    assert "| MNIST Soft-Di[M]O FID (one step) | not yet measured |" in md


def test_empty_or_absent_results_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    s = build_report(ReportOptions(results=str(tmp_path / "empty"), out=str(tmp_path / "rep"), grids=False))
    assert s.numbers == 0 and "teacher_mnist.json" in s.not_measured and s.html.is_file()
    with pytest.raises(DataError, match="not a folder"):
        build_report(ReportOptions(results=str(tmp_path / "nope"), out=str(tmp_path / "rep2"), grids=False))
    assert main(["report", "--results", str(tmp_path / "nope"), "--out", str(tmp_path / "r3"), "--no-grids"]) == 2


def test_schema_reader_records_missing_keys_and_reads_point_lists(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(doc("a", "cmd", {"x": {"y": 2}, "n": 7})))
    rd = ResultsDir(tmp_path)
    f = rd.file("a.json")
    assert f.ok and f.get("metrics.x.y") == 2 and f.get("metrics.x.z", 5) == 5
    assert f.problems == ["a.json: metrics.x.z is missing"]
    assert f.get("metrics.x", kind=list) is None and "not a list" in f.problems[-1]
    assert f.source().n == "7" and f.source().command == "cmd" and rd.used == ["a.json"]
    assert ResultsFile.read(tmp_path, "b.json").status == "missing"
    assert points([{"step": 2, "fid": 1.0}, {"step": 1, "fid": 3.0}, {"step": 3}], "fid") == [(1, 3.0), (2, 1.0)]
    assert points({"steps": [0, 5], "fid": [9, 8]}, "fid") == [(0, 9), (5, 8)]
    assert points({"16": 23.5, "1": 65.0}, "fid") == [(1.0, 65.0), (16.0, 23.5)]


def test_svg_plot_positions_and_log_axes():
    svg = svg_plot("t", [Series("line", [(1, 10.0), (16, 40.0)]), Series("pts", [(1, 20.0)], "points"),
                         Series("none", [])], "steps", "FID", log_x=2, hlines=[HLine(5.0, "floor")])
    root = ET.fromstring(svg)
    circles = root.findall("{http://www.w3.org/2000/svg}circle")
    assert {float(c.get("cx")) for c in circles} >= {float(LEFT)}  # x = 1 sits on the left axis of a log2 axis
    assert "(no data)" in svg and "floor" in svg and "(log scale)" in svg
    assert nice_step(0.7) == 1 and nice_step(3.2) == 5 and nice_step(12) == 20


def test_grids_same_labels_side_by_side_and_the_printed_command_reproduces_a_strip(tmp_path, one_thread):
    teacher, student = write_generators(tmp_path)
    spec = GridSpec("tiny", "tiny grid", [GridModel("teacher N=2", str(teacher), 2),
                                          GridModel("student", str(student)),
                                          GridModel("broken", str(tmp_path / "nope"))], labels=[3, 1, 4], seed=7)
    problems: list[str] = []
    grid = draw(spec, "cpu", problems)
    assert grid.conditions == ["3", "1", "4"] and [r.label for r in grid.rows] == ["teacher N=2", "student"]
    assert len(problems) == 1 and "broken" in problems[0]
    sizes = {Image.open(io.BytesIO(r.png)).size for r in grid.rows}
    assert sizes == {(3 * (8 + 2) + 2, 2 * (8 + 2) + 2)}  # 3 labels per row, 2 rows, 8 px images, 2 px padding
    assert grid.rows[0].sampler.startswith("N=2, cfg 2") and grid.rows[1].sampler.startswith("1 step, τ 2")
    # the command under the strip draws the same pixels
    cmd = grid.rows[0].source.command.split()
    assert cmd[:2] == ["softdimo", "sample"] and "--seed" in cmd and "3,1,4" in cmd
    out = tmp_path / "again.png"
    args = cmd[1:]
    args[args.index("--out") + 1] = str(out)
    assert main(args + ["--no-progress", "--device", "cpu"]) == 0
    assert Image.open(out).tobytes() == Image.open(io.BytesIO(grid.rows[0].png)).tobytes()


def test_report_with_grids_embeds_the_strips(results, tmp_path, one_thread):
    ckpt = tmp_path / "ckpt"
    teacher, student = write_generators(tmp_path / "models")
    ckpt.mkdir()
    (ckpt / "teacher-mnist").symlink_to(teacher)
    (ckpt / "dimo-mnist").symlink_to(student)
    manifest = json.loads((student / "student.json").read_text())
    manifest["distillation"] = {"teacher": "checkpoints/teacher-mnist"}  # its provenance joins it to its teacher
    (student / "student.json").write_text(json.dumps(manifest))
    s = build_report(ReportOptions(results=str(results), out=str(tmp_path / "rep"), grids=True,
                                   checkpoints=str(ckpt), device="cpu"))
    html = s.html.read_text()
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(pngs) == 4  # teacher at 1, 4, 16 steps + its one student; only what the folder holds is drawn
    for p in pngs:
        Image.open(io.BytesIO(base64.b64decode(p))).verify()
    assert sorted(re.findall(r'<img class="grid" alt="([^"]+)"', html)) == [
        "dimo-mnist, 1 step", "teacher-mnist, N=1", "teacher-mnist, N=16", "teacher-mnist, N=4"]
    assert not [p for p in s.problems if "grid" in p.lower() or "absent" in p]
    assert len([a for a in s.assets if a.suffix == ".png"]) == 4


def test_domain_checks_are_grouped_by_dataset(tmp_path):
    def check(dataset: str, fid: float) -> dict:
        d = doc("eval", "softdimo eval --metrics domain_fid", {
            "source": "dimo-student:m", "n": 300, "domain_fid": fid, "classifier_score": 8.0,
            "domain_evaluator": f"classifier-{dataset}", "sampler": {"sampler": "OneStepSampler"}})
        d["config"] = {"model": f"checkpoints/dimo-{dataset}", "data": {"dataset": dataset}}
        return d

    (tmp_path / "domain").mkdir()
    for name, dataset, fid in (("a_mnist", "mnist", 12.5), ("b_fashion", "fashion", 30.5), ("c_mnist", "mnist", 9.5)):
        (tmp_path / "domain" / f"{name}.json").write_text(json.dumps(check(dataset, fid)))
    (tmp_path / "domain" / "d_old.json").write_text(json.dumps(doc("eval", "softdimo eval", {
        "source": "dimo-student:x", "n": 300, "domain_fid": 50.0, "domain_evaluator": "e"})))
    from softdimo.report.sections.domain import section
    (table,) = [b for b in section(ResultsDir(tmp_path)).blocks if isinstance(b, Table)]
    assert table.columns[0] == "dataset"
    assert [(r[0].text, r[4].text) for r in table.rows] == [
        ("not stated", "50.00"), ("fashion", "30.50"), ("mnist", "12.50"), ("mnist", "9.50")]
    assert [r[4].source.evaluator for r in table.rows[1:]] == ["classifier-fashion", "classifier-mnist",
                                                               "classifier-mnist"]


FASHION_FILES = {"teacher_fashion.json", "dimo_fashion.json", "soft_gan_fashion.json", "eval_dimo_fashion.json",
                 "classifier_fashion.json"}


def test_fashion_sections_read_their_own_files(tmp_path):
    root = write_files(tmp_path / "results", {**fixture_files(), **fashion_files()})
    report = build(ReportOptions(results=str(root), out=str(tmp_path / "x"), grids=False))
    by_title = {s.title: s for s in report.sections}

    def titled(start: str):
        return next(s for t, s in by_title.items() if t.startswith(start))

    c2i, abl = titled("Class-to-image (Fashion-MNIST)"), titled("Class-to-image ablations (Fashion-MNIST)")
    sg = titled("Soft-Di[M]O vs the teacher and Di[M]O (Fashion-MNIST)")
    assert c2i.files == ["teacher_fashion.json", "dimo_fashion.json", "soft_gan_fashion.json", "eval_dimo_fashion.json"]
    assert not c2i.problems and not abl.problems and not sg.problems
    # every Fashion number comes from a Fashion file, with its command, and no MNIST evaluator beside it
    for s in (c2i, abl, sg):
        for b in s.blocks:
            for src in (b.sources() if isinstance(b, Table) else []):
                assert src.file in FASHION_FILES and "mnist" not in src.evaluator, (s.title, b.title, src)
                assert src.command in (FASHION_CMD, FASHION_SOFT_CMD, "softdimo eval --model checkpoints/dimo-fashion")
    main_rows = [[c.text for c in r] for r in c2i.blocks[0].rows]
    assert [r[0] for r in main_rows] == ["real-vs-real floor", "teacher", "teacher", "teacher", "Di[M]O",
                                         "Soft-Di[M]O", "Di[M]O"]
    assert [r[2] for r in main_rows] == ["12.50", "71.50", "33.25", "35.75", "41.75", "36.50", "43.25"]
    assert c2i.blocks[0].rows[1][2].source.file == "teacher_fashion.json"
    assert any(isinstance(b, Table) and b.title == "Di[M]O targets (dimo_fashion.json)" for b in c2i.blocks)
    # the MNIST section keeps its own rows only
    mnist = titled("Class-to-image (MNIST)")
    assert "eval_dimo_fashion.json" not in mnist.files and "41.75" not in [r[2].text for r in mnist.blocks[0].rows]
    # τ sweep: the domain numbers name Fashion-MNIST's own classifier
    tau = next(b for b in abl.blocks if isinstance(b, Table) and b.title.startswith("One-step sampling temperature"))
    assert [[c.text for c in r] for r in tau.rows] == [["dimo", "150.25", "88.75"]]
    assert tau.rows[0][1].source.evaluator == domain_evaluator("fashion")
    summary = next(b for b in abl.blocks if isinstance(b, Table) and b.title.startswith("Soft-Di[M]O ablations over"))
    assert summary.rows[0][3].text == "37.25" and summary.rows[0][3].source.file == "soft_gan_fashion.json"
    cmp_ = next(b for b in sg.blocks if isinstance(b, Table) and b.title.startswith("Soft-Di[M]O vs the teacher"))
    assert [r[3].text for r in cmp_.rows] == ["12.50", "33.25", "41.75", "36.50"]
    assert any(isinstance(b, Table) and b.title == "Soft-Di[M]O targets (soft_gan_fashion.json)" for b in sg.blocks)
    # the classifier of each dataset, with its own evaluator (no digit-world crops for Fashion-MNIST)
    comp = titled("Components and evaluators")
    clf = next(b for b in comp.blocks if isinstance(b, Table) and "(Fashion-MNIST)" in b.title)
    assert [[c.text for c in r] for r in clf.rows] == [["Fashion-MNIST test", "0.8958", "0.8996"]]
    assert (clf.rows[0][1].source.evaluator, clf.rows[0][1].source.n) == ("classifier-fashion", "10000")
    # the files of the Fashion sections are not shown again as "other results"
    other = titled("Other results")
    assert not FASHION_FILES & set(other.files) and "scaling.json" in other.files
    # each dataset's plots are their own assets
    summary_files = build_report(ReportOptions(results=str(root), out=str(tmp_path / "rep"), grids=False))
    assets = {p.name for p in summary_files.assets}
    assert {"fig-fid-vs-steps.svg", "fig-fid-vs-steps-fashion.svg", "fig-tau-sweep.svg", "fig-tau-sweep-fashion.svg",
            "fig-fid-vs-step.svg", "fig-fid-vs-step-fashion.svg"} <= assets
    md = summary_files.markdown.read_text()
    assert "## Class-to-image (Fashion-MNIST)" in md and FASHION_SOFT_CMD in md and "classifier-fashion" in md
    assert not any("fashion" in p for p in summary_files.problems)


def test_fashion_without_its_files_adds_no_placeholder(results, tmp_path):
    from softdimo.report.check import check_html
    none = build_report(ReportOptions(results=str(results), out=str(tmp_path / "rep0"), grids=False))
    md = none.markdown.read_text()
    assert "Fashion-MNIST" not in md and "_fashion.json" not in md
    # part of the chain (no soft_gan_fashion.json): its sections, and no note on the absent file
    fashion = fashion_files()
    write_files(results, {k: fashion[k] for k in ("teacher_fashion.json", "dimo_fashion.json")})
    part = build_report(ReportOptions(results=str(results), out=str(tmp_path / "rep1"), grids=False))
    report = build(ReportOptions(results=str(results), out=str(tmp_path / "x"), grids=False))
    titles = [s.title for s in report.sections]
    assert any(t.startswith("Class-to-image (Fashion-MNIST)") for t in titles)
    assert any(t.startswith("Class-to-image ablations (Fashion-MNIST)") for t in titles)
    assert not any("Fashion-MNIST" in t and t.startswith("Soft-Di[M]O") for t in titles)
    assert not any("fashion" in p for p in part.problems) and "soft_gan_fashion.json" not in part.not_measured
    # the page check finds the same placeholders (MNIST's) with or without the Fashion files
    assert check_html(part.html.read_text()).placeholders == check_html(none.html.read_text()).placeholders


def test_headline_names_each_measured_dataset_and_the_t2i_run(tmp_path):
    def headline(files):
        root = write_files(tmp_path / f"results{len(files)}", files)
        report = build(ReportOptions(results=str(root), out=str(tmp_path / "x"), grids=False))
        table = next(s for s in report.sections if s.title == "Overview").blocks[0]
        return {r[0].text: r[1] for r in table.rows}

    plain = headline(fixture_files())
    assert not any("Fashion-MNIST" in k for k in plain)
    # the text-to-image lines come from the one run that decides them, each with its row's N and evaluator
    assert plain["digit world: Di[M]O GenEval-like overall"].text == "0.480"
    tteo = plain["digit world: + reward + TTEO GenEval-like overall"]
    assert (tteo.text, tteo.source.file, tteo.source.evaluator) == ("0.610", "t2i_world.json", "fixture-geneval")
    assert plain["digit world: Soft-Di[M]O + reward GenEval-like overall"].text == "not yet measured"
    both = headline({**fixture_files(), **fashion_files()})
    fashion = {k: v for k, v in both.items() if k.startswith("Fashion-MNIST")}
    assert [v.text for v in fashion.values()] == ["33.25", "41.75", "36.50"]
    assert {v.source.file for v in fashion.values()} == {"soft_gan_fashion.json"}
