"""benchmarks/generators.py: the digit world a world preset scores and records (``--data-config``), and the
grey dataset of the class-conditional presets (``--dataset``: default paths, refusals, what is evaluated)."""
import pytest

from bench_loader import load_benchmark


def test_world_presets_read_the_world_of_data_config():
    gen = load_benchmark("generators")
    default = gen.world_data(None)  # the world teacher's preset: the slots layout
    assert default == gen.world_data("configs/world/teacher.yaml")
    assert (default.dataset, default.world_layout, default.world_slots) == ("world", "slots", 2)
    assert gen.world_data(None, "configs/world/reward_attribute.yaml").world_train_size == 30000  # another default
    with pytest.raises(SystemExit, match="not the digit world"):
        gen.world_data("configs/mnist/teacher.yaml")


# ---------------------------------------------------------------------- --dataset (teacher_mnist, dimo_mnist)
@pytest.fixture(scope="module")
def gen():
    return load_benchmark("generators")


def _paths(ns):
    return {k: getattr(ns, k) for k in ("dataset", "teacher", "json", "teacher_json", "students")}


def test_dataset_picks_the_default_paths_and_flags_win(gen):
    # MNIST: the defaults of before --dataset existed, with or without the flag
    mnist = {"dataset": "mnist", "teacher": "checkpoints/teacher-mnist", "json": "benchmarks/results/dimo_mnist.json",
             "teacher_json": "benchmarks/results/teacher_mnist.json", "students": "dimo=checkpoints/dimo-mnist"}
    assert _paths(gen.parse_args(["--preset", "dimo_mnist"])) == mnist
    assert _paths(gen.parse_args(["--preset", "dimo_mnist", "--dataset", "mnist"])) == mnist
    t = gen.parse_args(["--preset", "teacher_mnist"])
    assert (t.dataset, t.teacher, t.json, t.num) == ("mnist", "checkpoints/teacher-mnist",
                                                     "benchmarks/results/teacher_mnist.json", 2000)
    # Fashion-MNIST: every path names the dataset
    assert _paths(gen.parse_args(["--preset", "dimo_mnist", "--dataset", "fashion"])) == {
        "dataset": "fashion", "teacher": "checkpoints/teacher-fashion", "json": "benchmarks/results/dimo_fashion.json",
        "teacher_json": "benchmarks/results/teacher_fashion.json", "students": "dimo=checkpoints/dimo-fashion"}
    t = gen.parse_args(["--preset", "teacher_mnist", "--dataset", "fashion"])
    assert (t.teacher, t.json) == ("checkpoints/teacher-fashion", "benchmarks/results/teacher_fashion.json")
    # an explicit flag wins over the dataset's default; the others still follow --dataset
    ns = gen.parse_args(["--preset", "dimo_mnist", "--dataset", "fashion", "--teacher", "T", "--json", "o.json",
                         "--teacher-json", "t.json", "--students", "a=S", "--temperatures", "1,2"])
    assert _paths(ns) == {"dataset": "fashion", "teacher": "T", "json": "o.json", "teacher_json": "t.json",
                          "students": "a=S"}
    assert ns.temperatures == [1.0, 2.0] and ns.cfg_sweep == [1.0, 1.5, 2.0]
    # the table itself stays a template; preset_defaults fills it
    assert "{dataset}" in gen.PRESETS["dimo_mnist"][1]["teacher"]
    assert gen.preset_defaults("dimo_world")["teacher"] == "checkpoints/teacher-world"
    with pytest.raises(ValueError, match="--dataset is for"):
        gen.preset_defaults("dimo_world", "fashion")


def test_dataset_refusals(gen, capsys):
    # the world presets have their own data (--data-config); the MNIST ablation tables are not Fashion-MNIST's
    with pytest.raises(SystemExit):
        gen.parse_args(["--preset", "teacher_world", "--dataset", "fashion"])
    assert "--dataset is for teacher_mnist and dimo_mnist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        gen.parse_args(["--preset", "dimo_mnist", "--dataset", "fashion", "--ablations-json", "abl.json"])
    err = capsys.readouterr().err
    assert "MNIST ablation tables" in err and "not with --dataset fashion" in err
    # empty is no table at all; on MNIST the tables are quoted as before
    assert gen.parse_args(["--preset", "dimo_mnist", "--dataset", "fashion", "--ablations-json", " , "]).dataset == "fashion"
    assert gen.parse_args(["--preset", "dimo_mnist", "--ablations-json", "abl.json"]).ablations_json == "abl.json"


@pytest.mark.parametrize("dataset, sweep_metric", [("mnist", "domain_fid"), ("fashion", "domain_fid"),
                                                   ("fashion", "fid")])
def test_dimo_preset_scores_against_its_dataset(gen, dataset, sweep_metric, tmp_path, monkeypatch):
    """The whole dimo_mnist run (teacher_mnist included) on tiny generators with a stand-in evaluate: every
    evaluation gets the dataset's data, and the domain metrics (the dataset's classifier) are asked for only
    when they pick τ."""
    import json

    from tiny_models import write_generators

    teacher, student = write_generators(tmp_path)
    calls = []

    def fake_evaluate(model, metrics, num, data, seed=0, progress=True, sampling=None, **_):
        calls.append((str(model), tuple(metrics), data.dataset))
        t = sampling.temperature if sampling is not None and sampling.temperature is not None else 1.0
        steps = sampling.steps if sampling is not None and sampling.steps is not None else 1
        fid = 10.0 + abs(t - 2.0) + 1.0 / steps  # the student is best at τ = 2
        return {"source": str(model), "n": num, "evaluator": "fake-inception", "fid": fid, "precision": 0.5,
                "recall": 0.4, "domain_fid": 2 * fid, "classifier_score": 9.0, "seconds": 0.0}

    monkeypatch.setattr(gen, "evaluate", fake_evaluate)
    out, t_out = tmp_path / "dimo.json", tmp_path / "teacher.json"
    gen.main(["--preset", "dimo_mnist", "--dataset", dataset, "--teacher", str(teacher),
              "--students", f"dimo={student}", "--json", str(out), "--teacher-json", str(t_out), "--num", "4",
              "--steps", "1,16", "--cfg-sweep", "1,2", "--dimo-steps", "1,16", "--temperatures", "1,2",
              "--diversity-per-class", "2", "--speed-batch", "2", "--speed-repeats", "1", "--threads", "0",
              "--sweep-metric", sweep_metric, "--no-progress"])
    assert {d for _, _, d in calls} == {dataset}
    domain = {"domain_fid", "classifier_score"}
    assert any(domain & set(m) for _, m, _ in calls) == (sweep_metric == "domain_fid")
    assert (f"data:{dataset}:train", ("fid", "pr"), dataset) in calls  # the real-vs-real floor of the dataset

    doc, t_doc = json.loads(out.read_text()), json.loads(t_out.read_text())
    assert (doc["name"], t_doc["name"]) == ("dimo_mnist", "teacher_mnist")  # the preset names stay
    m, tm = doc["metrics"], t_doc["metrics"]
    assert m["dataset"] == tm["dataset"] == doc["config"]["dataset"] == t_doc["config"]["dataset"] == dataset
    assert t_doc["config"]["data"]["dataset"] == dataset and tm["floor"]["how"] == "computed"
    assert m["temperature_sweeps"]["metric"].startswith(sweep_metric) and doc["config"]["sweep_metric"] == sweep_metric
    assert set(m["temperature_sweeps"]["dimo"]["2"]) == ({"domain_fid", "classifier_score"}
                                                          if sweep_metric == "domain_fid" else {"fid"})
    assert m["student_best_tau"] == 2.0 and m["diversity_ratio"] > 0
    assert ("mnist_only_left_out" in m) == (dataset == "fashion")
    assert m["student_best_tau_rule"] == gen.SWEEP_TEXT[sweep_metric]["best_tau_rule"]
    assert ("domain-FID-best" if sweep_metric == "domain_fid" else "Inception-FID-best") in m["student_best_tau_rule"]
