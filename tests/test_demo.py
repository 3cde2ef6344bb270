"""`softdimo demo` end to end at the tiny size: every stage measured, pictures written, a complete report."""
import json

import pytest

from softdimo.classifier import domain_evaluator
from softdimo.cli import main
from softdimo.demo.budget import BUDGETS, budget_for
from softdimo.demo.dimo_curve import curve_steps
from softdimo.demo.run import MARKER, prepare_out
from softdimo.errors import DataError
from softdimo.paths import project_root
from softdimo.report.check import check_html

STAGES = {"tokenizer_mnist", "tokenizer_world", "onestep_mnist", "onestep_fashion", "onestep_world", "dimo_curve",
          "soft_gan", "reward", "tteo"}


@pytest.mark.slow
def test_demo_tiny(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SOFTDIMO_CACHE", str(tmp_path / "cache"))  # caches cold, as on a fresh machine
    out = tmp_path / "demo"
    assert main(["demo", "--tiny", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    doc = json.loads((out / "results" / "demo.json").read_text())
    m = doc["metrics"]
    stages = {s["name"]: s for s in m["stages"]}
    assert set(stages) == STAGES
    for s in stages.values():  # every stage: two measured numbers, a metric, a verdict, a picture on disk
        assert isinstance(s["before"], float) and isinstance(s["after"], float), s["name"]
        assert s["metric"] and isinstance(s["improved"], bool)
        assert s["improved"] == (s["after"] > s["before"] if s["higher_is_better"] else s["after"] < s["before"])
        assert s["pictures"] and all((out / "results" / st["file"]).is_file()
                                     for p in s["pictures"] for st in p["strips"])
        assert s["title"] in printed
    assert m["all_improved"] == all(s["improved"] for s in stages.values())
    for domain in ("mnist", "fashion"):  # each class family is measured against its own data and classifier
        assert stages[f"onestep_{domain}"]["extra"]["quality_evaluator"] == domain_evaluator(domain)
    curve = stages["dimo_curve"]
    assert curve["kind"] == "curve" and [p["step"] for p in curve["curve"]] == [0, BUDGETS["tiny"].dimo_steps]
    assert curve["before"] == curve["curve"][0]["value"] and curve["after"] == curve["curve"][-1]["value"]
    gan = stages["soft_gan"]  # each side: the mean over the budget's sampling seeds at its best τ
    seeds = gan["extra"]["domain_fid_seeds_before"], gan["extra"]["domain_fid_seeds_after"]
    assert [len(v) for v in seeds] == [BUDGETS["tiny"].spread_seeds] * 2 and gan["extra"]["difference_se"] > 0
    assert (gan["before"], gan["after"]) == pytest.approx((sum(seeds[0]) / 2, sum(seeds[1]) / 2))
    speed = stages["onestep_mnist"]
    assert len(speed["rows"]) == 2 + 2 and all(r["seconds_per_image"] > 0 for r in speed["rows"])
    # the students of the one-step stage are what checkpoints/ holds, never a made-up name
    assert {r["label"].split(",")[0] for r in speed["rows"][2:]} == {"dimo-mnist", "soft-dimo-mnist"}
    # the report: the demo's stages and the shipped results, no placeholder, every image decodes
    html = (out / "report" / "report.html").read_text()
    assert "Demo: every stage, before → after" in html and "speed.json" in html
    page = check_html(html, project_root() / "checkpoints")
    assert page.ok, page.failures()
    assert page.images >= sum(len(p["strips"]) for s in stages.values() for p in s["pictures"])
    # a second run into the same folder replaces the first one's outputs
    prepare_out(out)
    assert (out / MARKER).is_file() and not (out / "results").exists()


def test_demo_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(DataError, match="did not make"):
        prepare_out(tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_difference_se_of_two_means():
    from softdimo.demo.soft_gan import diff_se

    assert diff_se([1.0, 3.0], [2.0, 2.0, 2.0]) == pytest.approx((2.0 / 2) ** 0.5)
    assert diff_se([1.0], [2.0, 3.0]) is None


def test_budgets_and_curve_steps():
    assert budget_for("default").dimo_steps > budget_for("tiny").dimo_steps
    with pytest.raises(Exception, match="tiny, default, full"):
        budget_for("huge")
    assert curve_steps(150, 3) == [50, 100, 150]
    assert curve_steps(2, 1) == [2]
    assert curve_steps(2, 4) == [1, 2]


def test_soft_gan_stage_finds_the_one_shipped_gan_refinement_of_its_student(tmp_path):
    from softdimo.demo.soft_gan import refined_student

    def student(name, refined_from=None, w_gan=0.0):
        (tmp_path / name).mkdir()
        dist = {"teacher": "checkpoints/teacher-mnist"}
        if refined_from:
            dist |= {"refined_from": refined_from, "refine": {"gan": {"w_gan": w_gan}}}
        (tmp_path / name / "student.json").write_text(json.dumps({"kind": "dimo-student", "distillation": dist}))

    student("dimo-mnist")
    student("reward-only", "checkpoints/dimo-mnist", 0.0)  # refined without a GAN: not the stage's "after"
    with pytest.raises(DataError, match="holds no student refined from checkpoints/dimo-mnist"):
        refined_student("checkpoints/dimo-mnist", tmp_path)
    student("soft-dimo-mnist", "checkpoints/dimo-mnist", 10.0)
    assert refined_student("checkpoints/dimo-mnist", tmp_path) == tmp_path / "soft-dimo-mnist"
    student("soft-dimo-mnist-b", "checkpoints/dimo-mnist", 1.0)
    with pytest.raises(DataError, match="holds 2 "):
        refined_student("checkpoints/dimo-mnist", tmp_path)
    assert refined_student("checkpoints/dimo-mnist") == project_root() / "checkpoints" / "soft-dimo-mnist"
