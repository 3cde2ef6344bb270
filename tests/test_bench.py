"""`softdimo bench`: rows, the physical floor, ratios from the measured medians, targets, the command."""
from __future__ import annotations

import json

import pytest
import torch

from softdimo.bench import (FLOOR, BenchConfig, build_samplers, compute_ratios, compute_targets, floor_call,
                            format_table, parse_students, run_bench, student_row, teacher_row)
from softdimo.cli import main
from softdimo.errors import DataError, SoftdimoError
from softdimo.eval.speed import SpeedResult
from softdimo.sample import load_generator
from tiny_models import write_generators

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    write_generators(root)
    return root


def test_rows_cover_every_sampler_and_batch_and_ratios_come_from_the_medians(folders):
    cfg = BenchConfig(teacher=str(folders / "teacher"), students=[("s", str(folders / "student"))],
                      batch_sizes=[1, 3], steps=[1, 2], repeats=1, warmup=0, device="cpu")
    m = run_bench(cfg)
    names = ["teacher N=1", "teacher N=1 cfg=2", "teacher N=2", "teacher N=2 cfg=2", FLOOR, "student s"]
    assert [(r["name"], r["batch_size"]) for r in m["rows"]] == [(n, b) for b in (1, 3) for n in names]
    for r in m["rows"]:
        assert r["seconds_per_image"] == pytest.approx(r["median_seconds"] / r["batch_size"])
        assert r["median_seconds"] > 0 and r["peak_memory_mb"] >= 0 and r["repeats"] == 1
    kinds = {r["name"]: (r["kind"], r["steps"], r["cfg_scale"]) for r in m["rows"]}
    assert kinds["teacher N=2 cfg=2"] == ("teacher", 2, 2.0) and kinds[FLOOR] == ("floor", 1, 1.0)
    assert kinds["student s"] == ("student", 1, 1.0)
    t = {(r["name"], r["batch_size"]): r["median_seconds"] for r in m["rows"]}
    for b in (1, 3):
        assert m["ratios"]["student_over_floor"]["s"][str(b)] == t[("student s", b)] / t[(FLOOR, b)]
        assert m["ratios"]["teacher_over_student"]["s"]["teacher N=2 cfg=2"][str(b)] == \
            t[("teacher N=2 cfg=2", b)] / t[("student s", b)]
    worst = max(m["ratios"]["student_over_floor"]["s"].values())
    assert m["targets"]["student_over_floor"]["s"]["worst"] == worst
    assert m["targets"]["teacher16_cfg_over_student"]["teacher_row"] == "teacher N=2 cfg=2"  # the most steps asked
    assert m["students"]["s"]["sampler"]["temperature"] == 2.0 and m["device"] == "cpu"
    table = format_table(m)
    assert "| student s |" in table and "| s / floor |" in table and "B=3" in table


def _fake(medians: dict[tuple[str, int], float]):
    def measure(samplers, batch_sizes, repeats, warmup, device, max_seconds_per_call):
        assert set(samplers) == {n for n, _ in medians}
        return [SpeedResult(n, b, s, b / s, s / b, 1.0, repeats, str(device)) for (n, b), s in medians.items()]
    return measure


def test_targets_pass_and_fail_from_given_times(folders):
    """Ratios and pass/fail use exactly the measured medians (a fake harness returns known times)."""
    cfg = BenchConfig(teacher=str(folders / "teacher"), students=[("fast", str(folders / "student")),
                                                                  ("slow", str(folders / "student"))],
                      batch_sizes=[64], steps=[16], repeats=1, warmup=0, device="cpu")
    medians = {(teacher_row(16, 1.0), 64): 1.5, (teacher_row(16, 2.0), 64): 3.0, (FLOOR, 64): 0.1,
               (student_row("fast"), 64): 0.105, (student_row("slow"), 64): 0.2}
    m = run_bench(cfg, measure=_fake(medians))
    fl, sp = m["targets"]["student_over_floor"], m["targets"]["teacher16_cfg_over_student"]
    assert fl["fast"] == {"worst": pytest.approx(1.05), "worst_batch": 64, "pass": True}
    assert fl["slow"]["worst"] == pytest.approx(2.0) and fl["slow"]["pass"] is False
    assert sp["fast"] == {"ratio": pytest.approx(3.0 / 0.105), "pass": True}
    assert sp["slow"] == {"ratio": pytest.approx(15.0), "pass": False}
    assert sp["threshold"] == 25.0 and sp["batch_size"] == 64 and fl["threshold"] == 1.10


def test_compute_ratios_skips_batches_a_row_did_not_reach():
    rows = [{"name": FLOOR, "kind": "floor", "batch_size": 1, "median_seconds": 1.0},
            {"name": "student a", "kind": "student", "batch_size": 1, "median_seconds": 1.2},
            {"name": "teacher N=4 cfg=2", "kind": "teacher", "batch_size": 1, "median_seconds": 6.0},
            {"name": "student a", "kind": "student", "batch_size": 8, "median_seconds": 2.0}]
    r = compute_ratios(rows, ["a"])
    assert r["student_over_floor"] == {"a": {"1": 1.2}}
    assert r["teacher_over_student"] == {"a": {"teacher N=4 cfg=2": {"1": 5.0}}}
    t = compute_targets(r, ["a"], 2.0, max_steps=4)
    assert t["student_over_floor"]["a"]["pass"] is False and "a" not in t["teacher16_cfg_over_student"]


def test_floor_is_one_forward_and_one_decode_and_teacher_rows_use_their_passes(folders, monkeypatch):
    teacher = load_generator(folders / "teacher")
    student = load_generator(folders / "student")
    cfg = BenchConfig(teacher=str(folders / "teacher"), students=[("s", str(folders / "student"))],
                      batch_sizes=[2], steps=[3], repeats=1, warmup=0)
    samplers, _ = build_samplers(teacher, {"s": student}, cfg, torch.device("cpu"))
    calls = {"forward": 0, "decode": 0}
    for bundle in (teacher.teacher, student.student):
        fwd, dec = bundle.forward, bundle.decode

        def forward(*a, _f=fwd, **k):
            calls["forward"] += 1
            return _f(*a, **k)

        def decode(*a, _d=dec, **k):
            calls["decode"] += 1
            return _d(*a, **k)
        monkeypatch.setattr(bundle, "forward", forward)
        monkeypatch.setattr(bundle, "decode", decode)
    expected = {FLOOR: (1, 1), "student s": (1, 1), "teacher N=3": (3, 1), "teacher N=3 cfg=2": (6, 1)}
    for name, (fwd_calls, dec_calls) in expected.items():
        calls.update(forward=0, decode=0)
        images = samplers[name](2)
        assert images.shape == (2, 1, 8, 8) and calls == {"forward": fwd_calls, "decode": dec_calls}, name
    out = floor_call(teacher.teacher, [0, 1], None)
    assert out.shape == (2, 1, 8, 8) and 0 <= float(out.min()) and float(out.max()) <= 1


def test_config_and_input_errors(folders):
    with pytest.raises(DataError, match="--cfg 1"):
        BenchConfig(teacher="t", cfg_scale=1.0)
    with pytest.raises(SoftdimoError, match="batch-sizes"):
        BenchConfig(teacher="t", batch_sizes=[0])
    with pytest.raises(DataError, match="unique"):
        BenchConfig(teacher="t", students=[("a", "x"), ("a", "y")])
    assert parse_students("a=x,b=y") == [("a", "x"), ("b", "y")]
    assert parse_students(["ckpt/dimo-mnist"]) == [("dimo-mnist", "ckpt/dimo-mnist")]
    with pytest.raises(SoftdimoError, match="not a teacher|Teacher protocol"):
        run_bench(BenchConfig(teacher=str(folders / "student"), batch_sizes=[1], steps=[1], repeats=1, warmup=0))
    with pytest.raises(SoftdimoError, match="teacher folder"):
        run_bench(BenchConfig(teacher=str(folders / "teacher"), students=[("t", str(folders / "teacher"))],
                              batch_sizes=[1], steps=[1], repeats=1, warmup=0))


def test_bench_command_writes_results_json(folders, tmp_path, capsys):
    out = tmp_path / "speed.json"
    rc = main(["bench", "--teacher", str(folders / "teacher"), "--students", f"s={folders / 'student'}",
               "--batch-sizes", "1,2", "--steps", "1", "--repeats", "1", "--warmup", "0", "--device", "cpu",
               "--json", str(out)])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["name"] == "speed" and doc["command"] and doc["config"]["batch_sizes"] == [1, 2]
    assert {r["name"] for r in doc["metrics"]["rows"]} == {"teacher N=1", "teacher N=1 cfg=2", FLOOR, "student s"}
    assert "| student s |" in capsys.readouterr().out
    assert main(["bench", "--teacher", str(folders / "teacher"), "--batch-sizes", "x"]) == 2
