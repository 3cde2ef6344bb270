"""benchmarks/soft_gan.py: its targets from hand-made numbers, the teacher candidates and Di[M]O τ it reads, the
dataset defaults, and benchmarks/soft_gan_runs.sh training exactly the runs (folders, seeds, overrides) the
benchmark looks for."""
from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from bench_loader import load_benchmark

ROOT = Path(__file__).resolve().parents[1]
RUNS_SCRIPT = ROOT / "benchmarks" / "soft_gan_runs.sh"


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("soft_gan")


def ablation(mean: float, sd: float | None) -> dict:
    return {"fid_mean": mean, "fid_sd": sd}


def test_targets_that_hold(bench):
    abl = {"soft": ablation(20.0, 1.0), "gumbel": ablation(23.0, 2.0), "mask_none": ablation(21.0, 0.5),
           "gan_only": ablation(40.0, 5.0)}
    t = bench.compute_targets(teacher_best_fid=22.0, dimo_fid=28.0, soft_fid=20.0, ablations=abl,
                              refine_over_distill=1.5)
    assert set(t) == set(bench.TARGET_NAMES) and all(v["holds"] is True for v in t.values())
    assert t["soft_le_0.95x_teacher"]["threshold"] == pytest.approx(20.9)
    assert t["soft_le_0.75x_dimo"]["ratio"] == pytest.approx(20 / 28)
    g = t["soft_beats_gumbel_by_pooled_sd"]
    assert g["pooled_sd"] == pytest.approx(math.sqrt((1 + 4) / 2)) and g["threshold"] == pytest.approx(23 - g["pooled_sd"])


def test_targets_that_fail(bench):
    # soft 21 vs teacher 22: above 0.95 × 22 = 20.9; 21 > 0.75 × 27; 21 is not below 23 − 1.58; mask [0,0] and
    # GAN only better than soft; a refine step 1.7 × a Di[M]O step
    abl = {"soft": ablation(21.0, 1.0), "gumbel": ablation(22.0, 2.0), "mask_none": ablation(20.5, 0.5),
           "gan_only": ablation(19.0, 5.0)}
    t = bench.compute_targets(22.0, 27.0, 21.0, abl, 1.7)
    assert set(t) == set(bench.TARGET_NAMES) and all(v["holds"] is False for v in t.values())
    # the edges: ≤ holds at equality, < and > do not
    equal = {k: ablation(20.0, 0.0) for k in ("soft", "gumbel", "mask_none", "gan_only")}
    t = bench.compute_targets(20.0, 24.0, 18.0, equal, 1.6)  # 18 vs 0.95 × 20 = 19, 18 vs 0.75 × 24 = 18
    assert t["soft_le_0.95x_teacher"]["holds"] and t["soft_le_0.75x_dimo"]["holds"] and t["refine_step_le_1.6x"]["holds"]
    assert not any(t[k]["holds"] for k in ("soft_beats_gumbel_by_pooled_sd", "soft_below_mask_none",
                                           "gan_only_worse_than_soft"))


def test_targets_without_their_inputs_are_left_out(bench):
    t = bench.compute_targets(22.0, 28.0, 20.0, {}, None)  # no finished runs, step cost skipped
    assert set(t) == {"soft_le_0.95x_teacher", "soft_le_0.75x_dimo"}
    # one seed of gumbel: no sd, no pooled sd; the comparisons of means stay
    t = bench.compute_targets(22.0, 28.0, 20.0, {"soft": ablation(20.0, 1.0), "gumbel": ablation(30.0, None),
                                                 "gan_only": ablation(35.0, 2.0)}, 1.2)
    assert set(t) == {"soft_le_0.95x_teacher", "soft_le_0.75x_dimo", "gan_only_worse_than_soft", "refine_step_le_1.6x"}
    assert bench.pooled_sd(1.0, None) is None and bench.pooled_sd(3.0, 4.0) == pytest.approx(math.sqrt(12.5))


def test_the_no_gan_control(bench):
    near = bench.compute_controls({"soft": ablation(20.0, 1.0), "no_gan": ablation(20.5, 1.0)})
    assert near["soft_beats_no_gan_by_pooled_sd"]["holds"] is False
    assert near["soft_beats_no_gan_by_pooled_sd"]["threshold"] == pytest.approx(19.5)
    assert bench.compute_controls({"soft": ablation(20.0, 1.0), "no_gan": ablation(25.0, 1.0)}
                                  )["soft_beats_no_gan_by_pooled_sd"]["holds"] is True
    assert bench.compute_controls({"soft": ablation(20.0, 1.0)}) == {}
    assert bench.compute_controls({"soft": ablation(20.0, 1.0), "no_gan": ablation(25.0, None)}) == {}


def test_mean_and_sample_sd(bench):
    assert bench.mean_sd([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert bench.mean_sd([4.0]) == (4.0, None)


def teacher_row(label: str, steps: int, cfg: float, fid: float) -> dict:
    return {"label": label, "options": {"steps": steps, "cfg_scale": cfg, "temperature": None}, "fid": fid}


def test_teacher_candidates_lowest_fid_at_most_16_steps_each_setting_once(bench):
    doc = {"metrics": {"rows": [teacher_row("N=32", 32, 1.5, 18.0), teacher_row("N=16 cfg=1", 16, 1.0, 23.9),
                                teacher_row("N=4", 4, 1.5, 20.2), teacher_row("N=16 cfg=1.5", 16, 1.5, 23.6),
                                teacher_row("N=16 again", 16, 1.5, 23.7), teacher_row("N=8", 8, 1.5, 21.5),
                                teacher_row("N=1", 1, 1.5, 65.2)]}}
    got = bench.teacher_candidates(doc, 3)
    assert [c["options"] for c in got] == [{"steps": 4, "cfg_scale": 1.5}, {"steps": 8, "cfg_scale": 1.5},
                                           {"steps": 16, "cfg_scale": 1.5}]
    assert [c["fid_there"] for c in got] == [20.2, 21.5, 23.6] and got[0]["label_there"] == "N=4"
    assert len(bench.teacher_candidates(doc, 10)) == 5


def test_dimo_tau_is_the_files_best_tau(bench):
    rows = [{"label": "dimo τ=3", "options": {"temperature": 3.0}, "fid": 16.1}]
    assert bench.dimo_best_tau({"metrics": {"student_rows": rows, "student_best_tau": 1.0}}) == 1.0
    assert bench.dimo_best_tau({"metrics": {"student_rows": rows}}) == 3.0  # a file written before the key


def test_dataset_picks_the_default_paths(bench):
    a = bench.parse_args(["--runs", "R"])
    assert (a.teacher, a.dimo, a.shipped, a.config, a.json) == (
        "checkpoints/teacher-mnist", "checkpoints/dimo-mnist", "checkpoints/soft-dimo-mnist",
        "configs/mnist/soft_gan.yaml", "benchmarks/results/soft_gan_mnist.json")
    assert (a.teacher_json, a.dimo_json, a.teacher_candidates, a.num) == (
        "benchmarks/results/teacher_mnist.json", "benchmarks/results/dimo_mnist.json", 3, 2000)
    f = bench.parse_args(["--runs", "R", "--dataset", "fashion", "--dimo", "D"])
    assert (f.teacher, f.dimo, f.shipped, f.config, f.json, f.teacher_json) == (
        "checkpoints/teacher-fashion", "D", "checkpoints/soft-dimo-fashion", "configs/fashion/soft_gan.yaml",
        "benchmarks/results/soft_gan_fashion.json", "benchmarks/results/teacher_fashion.json")
    assert a.memo == str(Path("R") / "soft_gan_mnist.memo.jsonl")
    assert f.memo == str(Path("R") / "soft_gan_fashion.memo.jsonl")


STUB = """#!{python}
# softdimo stand-in: logs its arguments and writes the run folder the real command would (train/rundir.py)
import json, sys
from pathlib import Path
from softdimo.config import load_config
from softdimo.distill.refine import RefineRunConfig
from softdimo.train.rundir import run_dir_for
args = sys.argv[1:]
config = args[args.index("--config") + 1]
cfg = load_config(RefineRunConfig, config, [a for a in args if "=" in a and not a.startswith("-")])
run = run_dir_for(args[0], cfg, config)
with open({log!r}, "a") as f:
    f.write(json.dumps({{"args": args, "run": str(run), "seed": cfg.train.seed}}) + "\\n")
(run / "final").mkdir(parents=True, exist_ok=True)
(run / "final" / "student.json").write_text("{{}}")
"""


def run_script(tmp_path: Path, *args: str) -> list[dict]:
    log = tmp_path / "calls.jsonl"
    log.unlink(missing_ok=True)
    stub_dir = tmp_path / "bin"
    stub_dir.mkdir(exist_ok=True)
    stub = stub_dir / "softdimo"
    stub.write_text(STUB.format(python=sys.executable, log=str(log)))
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{stub_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT / "src")}
    subprocess.run(["bash", str(RUNS_SCRIPT), *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return [json.loads(x) for x in log.read_text().splitlines()] if log.is_file() else []


def test_runs_script_trains_the_runs_the_benchmark_reads(bench, tmp_path):
    runs = tmp_path / "runs"
    calls = run_script(tmp_path, str(runs), "4", "2", "0 1", "train.threads=1")
    assert len(calls) == 2 * len(bench.VARIANTS)
    by_run = {Path(c["run"]): c for c in calls}
    for name, variant in bench.VARIANTS.items():
        for seed in (0, 1):
            c = by_run[bench.run_dir(runs, name, seed)]
            args = c["args"]
            assert c["seed"] == seed and args[:3] == ["refine", "--config", "configs/mnist/soft_gan.yaml"]
            assert "--resume" not in args
            assert {"train.max_steps=4", "train.checkpoint_every=2", "train.checkpoints_total_limit=0",
                    "train.threads=1"} <= set(args)
            overrides = [a for a in args if "=" in a and not a.startswith(("train.", "--"))]
            assert overrides == list(variant.overrides), (name, args)
    found = bench.finished_runs(runs, [0, 1, 2])  # seed 2 was not trained: left out
    assert {n: sorted(s) for n, s in found.items()} == {n: [0, 1] for n in bench.VARIANTS}
    # repeated: finished runs are skipped; a run whose folder exists without final/ is resumed
    assert run_script(tmp_path, str(runs), "4", "2", "0 1") == []
    gone = bench.run_dir(runs, "gumbel", 1)
    (gone / "final" / "student.json").unlink()
    (calls,) = run_script(tmp_path, "--config", "configs/mnist/soft_gan.yaml", str(runs), "4", "2", "0 1")
    assert Path(calls["run"]) == gone and calls["args"][-1] == "--resume"
    assert "gan.embedding=gumbel" in calls["args"], shlex.join(calls["args"])


def test_runs_script_only_trains_the_named_variants(bench, tmp_path):
    runs = tmp_path / "runs"
    calls = run_script(tmp_path, "--only", "gan_only mask_none", str(runs), "4", "2", "0 2")
    assert sorted(Path(c["run"]).name for c in calls) == ["gan_only-s0", "gan_only-s2", "mask_none-s0", "mask_none-s2"]
    # the other variants of the same seeds are left for another process
    calls = run_script(tmp_path, str(runs), "4", "2", "0 2")
    assert sorted(Path(c["run"]).name for c in calls) == ["gumbel-s0", "gumbel-s2", "no_gan-s0", "no_gan-s2",
                                                          "soft-s0", "soft-s2"]
    bad = subprocess.run(["bash", str(RUNS_SCRIPT), "--only", "soft gumble", str(runs), "4", "2", "0"], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown variant 'gumble'" in bad.stderr


BASE = {"teacher": 20.0, "dimo": 25.0, "soft-dimo": 17.0, "soft": 18.0, "gumbel": 22.0, "gan_only": 40.0,
        "mask_none": 21.0, "no_gan": 19.5, "data": 5.0}


def fake_fid(model: str, sampling) -> float:
    """A made-up FID by model folder and sampler: lowest at τ = 2 for students, at 8 steps for the teacher."""
    name = Path(model).name
    if model.startswith("data:"):
        return BASE["data"]
    if name.startswith("teacher"):
        return BASE["teacher"] + abs(sampling.steps - 8) * 0.25
    variant, _, rest = name.partition("-s")
    base = BASE[variant] + (int(rest.split("-")[0]) * 0.5 if rest else 0.0)
    return base + (sampling.temperature - 2.0) ** 2 + (0.5 if "step-2" in name else 0.0)


def fake_evaluate(model, metrics, num, data=None, seed=0, progress=True, sampling=None, **_):
    fid = fake_fid(str(model), sampling)
    return {"source": str(model), "n": num, "reference": f"{data.dataset}:test[:{num}]", "evaluator": "fake-inception",
            "fid": fid, "precision": 0.5, "recall": 0.4, "domain_fid": 2 * fid, "classifier_score": 9.0,
            "seconds": 0.0}


def salted(state: dict, salt: float) -> dict:
    """A copy of a state dict whose first floating tensor is shifted by ``salt``: other weights, as another run's."""
    out = {k: v.detach().clone().contiguous() for k, v in state.items()}
    first = next(k for k, v in out.items() if v.is_floating_point())
    out[first] += salt
    return out


def write_run(run: Path, student: Path, steps: list[int], salt: float = 0.0) -> None:
    """A refine run folder as the benchmark reads it: final/, checkpoint-N/models.safetensors, metrics.jsonl;
    each checkpoint's weights differ from the others' by ``salt`` and the step."""
    from safetensors.torch import save_file

    from softdimo.distill import OneStepStudent

    s = OneStepStudent.from_pretrained(student)
    for step in steps:
        ema = {f"ema.student.{k}": v for k, v in salted(s.mdm.state_dict(), salt + 1e-3 * step).items()}
        (run / f"checkpoint-{step}").mkdir(parents=True)
        save_file(ema, str(run / f"checkpoint-{step}" / "models.safetensors"))
    s.save_pretrained(run / "final")
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(
        {"step": k, "generator/soft_entropy": 2.0 - 0.1 * k, "generator/soft_gap": 0.01, "disc/d_acc": 0.6})
        for k in (1, 2, 3, 4)))


def test_main_writes_the_schema_from_made_up_numbers(bench, tmp_path, monkeypatch, one_thread):
    """The whole benchmark with every evaluation replaced by made-up FIDs (tiny models, no data): the keys it
    writes, the τ it picks, the means over seeds, and the report rendering that file."""
    from tiny_models import make_student

    student = tmp_path / "dimo"
    make_student().save_pretrained(student)
    shipped, teacher = tmp_path / "soft-dimo", tmp_path / "teacher"
    soft = make_student()
    soft.mdm.load_state_dict(salted(soft.mdm.state_dict(), 0.5))  # other weights than the Di[M]O student's
    soft.save_pretrained(shipped)
    runs = tmp_path / "runs"
    for i, name in enumerate(bench.VARIANTS):
        for seed in (0, 1):
            write_run(bench.run_dir(runs, name, seed), student, [2, 4], salt=0.1 * (i + 1) + 0.01 * seed)
    t_rows = [teacher_row(f"N={n} cfg=1.5", n, 1.5, 30.0 - n) for n in (1, 4, 8, 16, 32)]
    (tmp_path / "teacher.json").write_text(json.dumps({"commit": "c0", "metrics": {"rows": t_rows}}))
    (tmp_path / "dimo.json").write_text(json.dumps({"metrics": {"student_best_tau": 3.0, "student_rows": []}}))
    monkeypatch.setattr(bench, "evaluate", fake_evaluate)
    monkeypatch.setattr(sys.modules["generators"], "evaluate", fake_evaluate)
    out = tmp_path / "results" / "soft_gan_mnist.json"
    monkeypatch.setattr(sys, "argv", ["soft_gan.py", "--runs", str(runs), "--seeds", "0,1,2", "--row-step", "4",
                                      "--teacher", str(teacher), "--dimo", str(student), "--shipped", str(shipped),
                                      "--teacher-json", str(tmp_path / "teacher.json"),
                                      "--dimo-json", str(tmp_path / "dimo.json"), "--json", str(out),
                                      "--num", "8", "--curve-num", "4", "--skip-cost"])
    bench.main()
    doc = json.loads(out.read_text())
    assert doc["name"] == "soft_gan_mnist"
    m = doc["metrics"]
    # teacher: the 3 best settings of ≤ 16 steps of its file (16, 8, 4), re-measured here; the minimum
    assert [r["options"]["steps"] for r in m["teacher_rows"]] == [16, 8, 4] and m["teacher_best_fid"] == 20.0
    # Di[M]O at its file's τ (3) and at τ = 1; Soft-Di[M]O at its best τ (2, by the sweep and the lower FID)
    assert (m["dimo_tau"], m["dimo_fid"], m["dimo_fid_tau1"]) == (3.0, 26.0, 26.0)
    assert (m["soft_tau"], m["soft_fid"], m["soft_fid_tau1"]) == (2.0, 17.0, 18.0)
    assert {r["kind"] for r in m["soft_rows"]} == {"soft"} and all(r["shipped"] for r in m["soft_rows"])
    a = m["ablations"]
    assert set(a) == set(bench.VARIANTS)
    assert a["gumbel"]["seeds"] == [0, 1] and a["gumbel"]["fids"] == [22.0, 22.5]
    assert a["gumbel"]["fid_mean"] == 22.25 and a["gumbel"]["fid_sd"] == pytest.approx(math.sqrt(0.125))
    assert a["gumbel"]["temperatures"] == [2.0, 2.0] and a["gumbel"]["what"] == "gan.embedding=gumbel"
    assert a["gumbel"]["run_dirs"] == [str(bench.run_dir(runs, "gumbel", s)) for s in (0, 1)]
    assert {r["seed"] for r in a["soft"]["rows"]} == {0, 1} and a["soft"]["what"].startswith("none")
    # the ablation runs at the sweep's τ alone (one Inception FID a run); the shipped student at τ* and τ = 1
    assert [r["options"]["temperature"] for r in a["soft"]["rows"]] == [2.0, 2.0] and len(m["soft_rows"]) == 2
    assert m["ablation_tau_rule"] == bench.ABLATION_TAU_RULES["sweep"]
    # curves: step 0 = the Di[M]O student, then every checkpoint at the run's τ (domain FID = 2 × fake FID)
    assert m["curves"]["soft-s1"] == [{"step": 0, "domain_fid": 50.0}, {"step": 2, "domain_fid": 38.0},
                                      {"step": 4, "domain_fid": 37.0}]
    assert m["diagnostics"]["mask_none-s0"][0] == {"step": 1, "soft_entropy": 1.9, "soft_gap": 0.01, "d_acc": 0.6}
    assert m["floor"]["fid"] == 5.0 and m["teacher_rows"][0]["fid_over_floor"] == 22.0 / 5.0
    assert m["step_cost"] is None and m["targets_left_out"] == ["refine_step_le_1.6x"]
    assert m["targets"]["soft_le_0.95x_teacher"]["holds"] and m["targets"]["soft_le_0.75x_dimo"]["holds"]
    assert m["targets"]["soft_beats_gumbel_by_pooled_sd"]["holds"] and m["targets"]["gan_only_worse_than_soft"]["holds"]
    # the control: soft (18, 18.5) vs the same steps without the GAN (19.5, 20): apart by more than the pooled sd
    c = m["controls"]["soft_beats_no_gan_by_pooled_sd"]
    assert (c["soft_mean"], c["no_gan_mean"], c["holds"]) == (18.25, 19.75, True)
    assert m["memo"]["file"] == str(runs / "soft_gan_mnist.memo.jsonl") and m["memo"]["reused"] == 0

    # re-run (as after a stop): every number is read back from the memo, none measured again
    def no_evaluation(*a, **k):
        raise AssertionError("measured again")

    monkeypatch.setattr(bench, "evaluate", no_evaluation)
    monkeypatch.setattr(sys.modules["generators"], "evaluate", no_evaluation)
    bench.main()
    m2 = json.loads(out.read_text())["metrics"]
    assert m2["memo"]["measured"] == 0 and m2["memo"]["reused"] == m["memo"]["measured"] > 20
    strip = {"memo", "source", "model", "run_dirs", "eval_seconds"}

    def same(x):  # the numbers, not the temporary folders they were written to
        if isinstance(x, dict):
            return {k: same(v) for k, v in x.items() if k not in strip}
        return [same(v) for v in x] if isinstance(x, list) else x

    assert same(m2) == same(m)

    # the report reads this file: the comparison, the ablations over seeds and the targets
    from softdimo.report import ReportOptions, build
    from softdimo.report.document import Table

    report = build(ReportOptions(results=str(out.parent), out=str(tmp_path / "rep"), grids=False))
    tables = {b.title: b for s in report.sections for b in s.blocks if isinstance(b, Table)}
    abl = next(t for k, t in tables.items() if k.startswith("Soft-Di[M]O ablations over training seeds"))
    assert [r[0].text for r in abl.rows] == list(bench.VARIANTS)
    assert "22.25" in [c.text for c in abl.rows[1]]
    assert any(k.startswith("Soft-Di[M]O targets") for k in tables)


def test_step_cost_runs_both_commands_at_the_same_threads(bench, monkeypatch):
    """The presets differ in train.threads (distill 2, refine 1); the step cost overrides both with --threads."""
    import softdimo.cli as cli

    calls = []

    class Result:
        def __init__(self, run_dir: Path):
            self.run_dir = run_dir

    def fake_run_training(command, config, overrides, resume, progress):
        kv = dict(o.split("=", 1) for o in overrides)
        calls.append((command, kv["train.threads"]))
        run_dir = Path(kv["train.out_dir"]) / kv["train.run_name"]
        run_dir.mkdir(parents=True)
        per_step = 2.0 if command == "refine" else 1.0
        rows = [{"step": s, "seconds": per_step * s} for s in range(1, int(kv["train.max_steps"]) + 1)]
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return Result(run_dir)

    monkeypatch.setattr(cli, "run_training", fake_run_training)
    cost = bench.step_cost("configs/mnist/dimo.yaml", "configs/mnist/soft_gan.yaml", 6, 2, 2, threads=3)
    assert sorted(calls) == [("distill", "3"), ("distill", "3"), ("refine", "3"), ("refine", "3")]
    assert cost["threads"] == 3 and cost["refine_over_distill"] == pytest.approx(2.0)
