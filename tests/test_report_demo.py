"""The report's demo section (demo.json stages, curves, pictures), results folders laid over each other, and the page check."""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import torch
from PIL import Image

from softdimo.demo.stage import Picture, StageResult, Strip, save_strip
from softdimo.paths import project_root
from softdimo.report import ReportOptions, build, build_report
from softdimo.report.check import check_html
from softdimo.report.document import ImageGrid, Table
from softdimo.results import write_results

DEMO_CMD = "softdimo demo --tiny"


def stages(results: Path) -> list[dict]:
    strip = save_strip(torch.rand(4, 1, 8, 8), results, "fixture-before", 4)
    strip2 = save_strip(torch.rand(4, 1, 8, 8), results, "fixture-after", 4)
    gan = StageResult("soft_gan", "GAN refinement (fixture)", "domain FID", False, 91.25, 78.5, "dimo-mnist, τ 5",
                      "refined, τ 3", "fixture-domain-evaluator", 500,
                      rows=[{"label": "before", "domain_fid": 91.25, "n": 500},
                            {"label": "after", "domain_fid": 78.5, "seconds_per_image": 0.002, "n": 500,
                             "evaluators": {"seconds_per_image": "fixture-clock"}}],
                      pictures=[Picture("before / after", ["0", "1", "2", "3"],
                                        [Strip("before", strip, "τ 5"), Strip("after", strip2, "τ 3")])],
                      note="A fixture stage.", seconds=12.0)
    curve = StageResult("dimo_curve", "Di[M]O curve (fixture)", "domain FID", False, 546.5, 134.0, "step 0",
                        "step 150", "fixture-domain-evaluator", 300, kind="curve",
                        curve=[{"step": 0, "value": 546.5}, {"step": 75, "value": 300.25}, {"step": 150, "value": 134.0}],
                        pictures=[Picture("along the run", ["0", "1", "2", "3"], [Strip("step 0", strip)])])
    worse = StageResult("reward", "reward (fixture)", "GenEval-like overall", True, 0.0625, 0.05, "before", "after",
                        "fixture-geneval", 240)
    return [s.to_json() for s in (gan, curve, worse)]


def write_demo(results: Path) -> None:
    results.mkdir(parents=True, exist_ok=True)
    st = stages(results)
    write_results(results / "demo.json", "demo", {"size": "tiny", "seconds": 42.0, "setup_seconds": 95.0,
                                                  "all_improved": all(s["improved"] for s in st), "stages": st},
                  command=DEMO_CMD)


def test_stage_result_improved_is_a_plain_comparison():
    assert StageResult("a", "t", "m", False, 2.0, 1.0, "b", "a", "e", 1).improved
    assert not StageResult("a", "t", "m", True, 2.0, 1.0, "b", "a", "e", 1).improved
    assert not StageResult("a", "t", "m", True, None, 1.0, "b", "a", "e", 1).improved
    assert not StageResult("a", "t", "m", False, float("nan"), 1.0, "b", "a", "e", 1).improved
    d = StageResult("a", "t", "m", True, 0.25, 0.5, "b", "a", "e", 1).to_json()
    assert d["improved"] is True and d["delta"] == 0.25 and json.dumps(d)


def test_demo_section_over_the_shipped_results(tmp_path):
    shipped, run = tmp_path / "shipped", tmp_path / "run"
    shipped.mkdir()
    write_results(shipped / "demo.json", "demo", {"rows": [{"label": "old", "x": 1.0}]}, command="old demo")
    write_results(shipped / "speed.json", "speed", {"device": "cpu", "rows": []}, command="softdimo bench fixture")
    write_demo(run)
    report = build(ReportOptions(results=str(shipped), overlay=[str(run)], out=str(tmp_path / "rep"), grids=False))
    demo = next(s for s in report.sections if s.title.startswith("Demo"))
    assert not demo.problems, demo.problems
    summary = next(b for b in demo.blocks if isinstance(b, Table) and b.title.startswith("Before → after"))
    assert [r[0].text for r in summary.rows][1].endswith("(learning curve)")
    gan = summary.rows[0]
    assert [c.text for c in gan[3:6]] == ["91.2", "78.5", "yes"]  # before, after, improved
    assert gan[3].source.command == DEMO_CMD and gan[3].source.evaluator == "fixture-domain-evaluator"
    assert gan[3].source.n == "500"
    assert summary.rows[2][5].text == "no"  # the stage that did not improve says so
    rows = next(b for b in demo.blocks if isinstance(b, Table) and b.title.startswith("GAN refinement (fixture)"))
    speed_cell = rows.rows[1][rows.columns.index("s / image")]
    assert speed_cell.source.evaluator == "fixture-clock"  # a row's own evaluator per metric
    grids = [b for b in demo.blocks if isinstance(b, ImageGrid)]
    assert [len(g.rows) for g in grids] == [2, 1] and grids[0].rows[0].png.startswith(b"\x89PNG")
    assert any(b.name == "demo-dimo_curve" for b in demo.blocks if hasattr(b, "svg"))
    # the overlay's demo.json replaces the shipped one; the shipped speed.json is still read
    inventory = report.sections[-1].blocks[0]
    by_file = {r[0].text: r for r in inventory.rows}
    assert str(run) in by_file["demo.json"][-1].text and str(shipped) in by_file["speed.json"][-1].text
    summary_files = build_report(ReportOptions(results=str(shipped), overlay=[str(run)], out=str(tmp_path / "rep"),
                                               grids=False))
    html = summary_files.html.read_text()
    page = check_html(html, project_root() / "checkpoints")
    assert not page.broken_images and not page.missing_checkpoints and page.images == 3
    assert "softdimo demo --tiny" in html and "old demo" not in html


def test_missing_picture_is_named_and_flagged(tmp_path):
    write_demo(tmp_path)
    (tmp_path / "demo" / "fixture-after.png").unlink()
    summary = build_report(ReportOptions(results=str(tmp_path), out=str(tmp_path / "rep"), grids=False))
    assert any("fixture-after.png" in p for p in summary.problems)
    page = check_html(summary.html.read_text())
    assert any("fixture-after.png" in p for p in page.placeholders)


def test_page_check_finds_placeholders_broken_images_and_missing_checkpoints(tmp_path):
    (tmp_path / "checkpoints" / "teacher-mnist").mkdir(parents=True)
    (tmp_path / "checkpoints" / "teacher-world").mkdir()
    buf = io.BytesIO()
    Image.new("L", (4, 4), 255).save(buf, format="PNG")
    good = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    html = (f'<html><body><p>uses checkpoints/teacher-mnist and checkpoints/soft-dimo-world.</p>'
            f'<p>ran with checkpoints/teacher-world-slots, since renamed.</p>'
            f'<img alt="ok" src="{good}"><img alt="bad" src="data:image/png;base64,AAAA">'
            f'<img alt="remote" src="https://example.com/x.png"><img alt="undrawn" data-natural-width="0" src="{good}">'
            f'<td>not yet measured</td><div class="problem">`x.json`: lacks metrics</div></body></html>')
    page = check_html(html, tmp_path / "checkpoints")
    assert not page.ok and page.images == 4
    assert page.missing_checkpoints == ["soft-dimo-world"] and "teacher-mnist" in page.checkpoints
    assert "teacher-world-slots" in page.checkpoints  # found under the name it was renamed to
    assert sorted(b.split(":")[0] for b in page.broken_images) == ["bad", "remote", "undrawn"]
    assert any("not yet measured" in p for p in page.placeholders)
    assert any("lacks metrics" in p for p in page.placeholders)
    clean = check_html(f'<html><body><p>checkpoints/teacher-mnist</p><img alt="ok" src="{good}"><td>—</td></body></html>',
                       tmp_path / "checkpoints")
    assert clean.ok, clean.failures()
