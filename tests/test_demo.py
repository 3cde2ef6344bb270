"""`softdimo demo` end to end at a tiny size."""
import json

import pytest

from softdimo.cli import main


@pytest.mark.slow
def test_demo_tiny(tmp_path, capsys):
    assert main(["demo", "--tiny", "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    report = tmp_path / "report.md"
    assert report.is_file() and str(report) in out
    text = report.read_text()
    for row in ("teacher-mnist", "Di[M]O (this demo)", "Soft-Di[M]O (this demo)", "soft-dimo-mnist (shipped)",
                "teacher-world", "+ reward (this demo)", "+ reward + TTEO"):
        assert f"| {row}" in text
    assert (tmp_path / "reconstructions_mnist.png").is_file() and (tmp_path / "reconstructions_world.png").is_file()
    # every stage wrote a model, and the numbers in the report come from the results files
    for run in ("distill/mnist-dimo", "refine/mnist-soft-gan", "distill/world-dimo", "refine/world-reward"):
        assert (tmp_path / "runs" / run / "final" / "student.json").is_file()
    c2i = json.loads((tmp_path / "results" / "demo_class_to_image.json").read_text())["metrics"]
    assert [r["n"] for r in c2i["rows"]] == [16] * 5
    assert all(r["domain_fid"] > 0 for r in c2i["rows"])
    t2i = json.loads((tmp_path / "results" / "demo_text_to_image.json").read_text())["metrics"]
    assert len(t2i["rows"]) == 4 and all(0 <= r["geneval"] <= 1 for r in t2i["rows"])
    assert f"{c2i['rows'][1]['domain_fid']:.2f}" in text
    html = (tmp_path / "report" / "report.html").read_text()
    assert "demo_class_to_image.json" in html
