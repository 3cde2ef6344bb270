"""Generator benchmark: rows (a generator folder + sampler options) scored by one evaluator, timed side by side.

    python benchmarks/generators.py --preset teacher_mnist --teacher checkpoints/teacher-mnist \
        --num 2000 --json benchmarks/results/teacher_mnist.json
    python benchmarks/generators.py --preset teacher_world --teacher checkpoints/teacher-world \
        --images-per-prompt 4 --json benchmarks/results/teacher_world.json
    python benchmarks/generators.py --preset dimo_mnist --students dimo=checkpoints/dimo-mnist \
        --beta-students=-0.2=DIR,0=DIR,0.5=DIR,1=DIR   # also writes teacher_mnist.json (same run)
    python benchmarks/generators.py --preset dimo_world --students dimo=checkpoints/dimo-world
    python benchmarks/generators.py --preset dimo_mnist --dataset fashion   # Fashion-MNIST: *-fashion paths

``--dataset fashion`` runs ``teacher_mnist`` / ``dimo_mnist`` on Fashion-MNIST (default paths
``checkpoints/{teacher,dimo}-fashion``, ``benchmarks/results/{teacher,dimo}_fashion.json``; the floor is
computed; the domain metrics use the dataset's own classifier, ``classifier-fashion``), and
``--ablations-json`` (MNIST tables) is refused. ``--sweep-metric fid`` makes the students' τ sweeps use
Inception FID at the same N instead of domain FID (slower, the standard evaluator).

Every row is scored with :func:`softdimo.evaluate.evaluate` (the ``softdimo eval`` code path: the
generator's own conditions, one seeded ``torch.Generator`` for all batches), in one process.

``teacher_mnist``: FID and precision/recall (standard Inception, k = 3) of N generated images against
MNIST test[:N]. First a CFG sweep at 16 steps (``--cfg-sweep``); the CFG of lowest FID is the best
CFG, and the step sweep (``--steps``) runs at it (its 16-step row is the sweep's row, not run
twice). Every FID is read against the real-vs-real floor FID(train[:N], test[:N]) at the same N:
taken from ``benchmarks/results/eval_validation.json`` when it holds that N with the same evaluator,
computed with ``evaluate("data:mnist:train", ...)`` otherwise (``floor.how`` says which). Target:
FID at 16 steps ≤ 3 × floor.

``teacher_world``: the GenEval-like score (overall = mean of the six per-tag accuracies) on the
digit world's held-out prompts (``heldout_prompts_interleaved()``, 600 prompts, tags interleaved),
``--images-per-prompt`` images of every prompt: N = prompts × images, and the evaluator cycles
the prompt list round-robin, so prompt i gets images i, i + P, i + 2P, … (checked before running).
Steps sweep (``--steps``) at the teacher's default CFG, and a CFG sweep at 16 steps.
``--max-prompts P`` keeps the first P prompts (for quick checks only; the full set is the benchmark).

Seconds per image: :func:`softdimo.eval.speed.measure_speed` times every row of a preset side by
side (alternating order, one warm-up call, median of ``--speed-repeats``) at one batch size
(``--speed-batch``), each sampler being ``load_generator(path).generate(labels=… | prompts=…,
options=row options, generator=torch.Generator().manual_seed(0))`` on the device evaluate uses.
Generation only: no Inception / scorer time (``eval_seconds`` of a row is evaluate's total).

Adding a preset (e.g. teacher rows and one-step student folders): build a list of :class:`Row`,
call :func:`run_rows` and :func:`time_rows` + :func:`add_speed`, and register the function and
its defaults in :data:`PRESETS`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from softdimo.config import DataConfig, load_data_config, to_dict
from softdimo.paths import config_path
from softdimo.evaluate import evaluate
from softdimo.eval.speed import SpeedResult, measure_speed
from softdimo.results import now, write_results
from softdimo.sample import (ImageGenerator, SamplingOptions, conditions_for, heldout_prompts_interleaved,
                             load_generator, read_kind)

HERE = Path(__file__).resolve().parent
FLOOR_JSON = HERE / "results" / "eval_validation.json"
CFG_SWEEP_STEPS = 16  # the CFG sweeps run at the teachers' default step count
SPEED_METHOD = ("softdimo.eval.speed.measure_speed: all rows side by side in one process, order rotated "
                "every repeat, 1 warm-up call, median of the repeats; sampler = load_generator(path)"
                ".generate(labels|prompts, options, generator=torch.Generator().manual_seed(0)); "
                "generation only (no evaluator time)")
GENEVAL_EVALUATOR = "softdimo GenEvalScorer (classifier-mnist, default ScorerConfig)"
GREY_DATASETS = ("mnist", "fashion")  # --dataset of the class-conditional presets (teacher_mnist, dimo_mnist)


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"  # what evaluate's generator sources use


# ---------------------------------------------------------------------- rows
@dataclass
class Row:
    """One evaluated configuration: a generator folder and its sampler options."""

    label: str  # unique within a run (keys the speed results)
    model: str  # generator folder (teacher or, later, one-step student)
    options: SamplingOptions = field(default_factory=SamplingOptions)


def _check_labels(rows: Sequence[Row]) -> None:
    labels = [r.label for r in rows]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ValueError(f"row labels must be unique; repeated: {dup}")


def run_rows(rows: list[Row], metrics: Sequence[str], num: int, data: DataConfig, seed: int,
             progress: bool = True, prompts: list[dict[str, Any]] | None = None,
             evaluate_fn: Callable[..., dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """``evaluate`` every row (same metrics, N, data and seed); one result dict per row.

    A result is evaluate's output (``source``, ``n``, ``reference``, ``sampler``, ``evaluator``,
    the metrics) plus ``label``, ``model``, ``options`` and ``eval_seconds`` (evaluate's wall time:
    sampling + evaluator). ``prompts``: GenEval metadata list text generators draw instead of the
    whole held-out set (cycled). ``evaluate_fn``: ``evaluate`` or a stand-in with its signature
    (``memo.EvalMemo``, which keeps results for a re-run); default ``evaluate``.
    """
    evaluate_fn = evaluate_fn or evaluate
    _check_labels(rows)
    out = []
    for k, row in enumerate(rows, 1):
        res = evaluate_fn(row.model, list(metrics), num, data, seed=seed, progress=progress, sampling=row.options,
                       prompts=prompts)
        res["eval_seconds"] = res.pop("seconds")
        out.append({"label": row.label, "model": row.model, "options": dataclasses.asdict(row.options), **res})
        shown = {m: round(res[m], 4) for m in ("fid", "precision", "recall", "geneval") if m in res}
        print(f"[{k}/{len(rows)}] {row.label}: {shown} ({res['eval_seconds']:.0f}s)", flush=True)
    return out


def time_rows(rows: list[Row], batch_size: int, repeats: int = 3,
              prompts: list[dict[str, Any]] | None = None) -> dict[str, SpeedResult]:
    """Seconds per image of every row, timed side by side with ``measure_speed`` (label → result)."""
    _check_labels(rows)
    device = _device()
    gens: dict[str, ImageGenerator] = {}
    samplers: dict[str, Callable[[int], Any]] = {}
    for row in rows:
        if row.model not in gens:
            gens[row.model] = load_generator(row.model, device)
        gen = gens[row.model]
        if gen.cond_kind == "text" and prompts is not None:
            conds = conditions_for(gen, batch_size, prompts=[m["prompt"] for m in prompts], metadata=prompts)
        else:
            conds = conditions_for(gen, batch_size)

        def sampler(bs: int, gen: ImageGenerator = gen, conds: Any = conds, opt: SamplingOptions = row.options) -> Any:
            c = conds.slice(0, bs)
            return gen.generate(labels=c.labels, prompts=c.prompts, options=opt,
                                generator=torch.Generator().manual_seed(0))

        samplers[row.label] = sampler
    results = measure_speed(samplers, [batch_size], repeats=repeats, warmup=1, device=device)
    return {r.name: r for r in results}


def add_speed(results: list[dict[str, Any]], speeds: dict[str, SpeedResult]) -> str:
    """Put seconds/image (and the ratio to the fastest row) into the row results; returns the fastest label."""
    fastest = min(speeds.values(), key=lambda s: s.seconds_per_image)
    for r in results:
        s = speeds[r["label"]]
        r.update({"seconds_per_image": s.seconds_per_image, "images_per_second": s.images_per_second,
                  "time_over_fastest": s.seconds_per_image / fastest.seconds_per_image,
                  "peak_memory_mb": s.peak_memory_mb})
    return fastest.name


def _speed_info(args: argparse.Namespace, fastest: str) -> dict[str, Any]:
    return {"method": SPEED_METHOD, "batch_size": args.speed_batch, "repeats": args.speed_repeats, "warmup": 1,
            "device": _device(), "fastest": fastest}


def _evaluators(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The evaluator ids the results name (one per kind; a mismatch between rows is an error)."""
    out: dict[str, Any] = {}
    for key in ("evaluator", "domain_evaluator"):
        ids = {r[key] for r in results if key in r}
        if len(ids) > 1:
            raise RuntimeError(f"rows were scored by different evaluators ({key}): {sorted(ids)}")
        if ids:
            out["fid_pr" if key == "evaluator" else "domain"] = ids.pop()
    if any("geneval" in r for r in results):
        out["geneval"] = GENEVAL_EVALUATOR
    return out


def _by(results: list[dict[str, Any]], labels: list[str]) -> list[dict[str, Any]]:
    index = {r["label"]: r for r in results}
    return [index[x] for x in labels]


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _key(x: float) -> str:
    return f"{x:g}"


# ---------------------------------------------------------------------- floor
def mnist_floor(num: int, evaluator: str, seed: int, progress: bool, dataset: str = "mnist",
                evaluate_fn: Callable[..., dict[str, Any]] | None = None) -> dict[str, Any]:
    """FID / precision / recall of MNIST train[:N] vs test[:N]: from eval_validation.json, else computed.

    ``dataset``: another grey dataset's floor (``"fashion"``), always computed (eval_validation.json
    holds MNIST floors only). ``evaluate_fn`` as in :func:`run_rows`.
    """
    rel = FLOOR_JSON.relative_to(HERE.parent)
    reason = f"{rel} does not exist" if dataset == "mnist" else f"{rel} holds MNIST floors only"
    if dataset == "mnist" and FLOOR_JSON.is_file():
        doc = json.loads(FLOOR_JSON.read_text())
        m = doc.get("metrics", {})
        floors = m.get("floors_mnist_train_vs_test", {})
        if str(num) not in floors:
            reason = f"{rel} has floors for N = {', '.join(floors)} only"
        elif m.get("evaluator") != evaluator:
            reason = f"{rel} used evaluator {m.get('evaluator')!r}, not {evaluator!r}"
        else:
            f = floors[str(num)]
            return {"n": num, "fid": f["fid"], "precision": f["precision"], "recall": f["recall"],
                    "evaluator": evaluator, "how": "read",
                    "source": f"{rel}: metrics.floors_mnist_train_vs_test['{num}'] (commit {doc.get('commit')})"}
    print(f"floor: {reason}; computing FID(train[:{num}], test[:{num}])", flush=True)
    out = (evaluate_fn or evaluate)(f"data:{dataset}:train", ["fid", "pr"], num, DataConfig(dataset=dataset),
                                    seed=seed, progress=progress)
    if out["evaluator"] != evaluator:
        raise RuntimeError(f"floor evaluator {out['evaluator']!r} differs from the rows' {evaluator!r}")
    return {"n": num, "fid": out["fid"], "precision": out["precision"], "recall": out["recall"],
            "evaluator": evaluator, "how": "computed",
            "source": f"evaluate('data:{dataset}:train', ['fid', 'pr'], {num}) ({reason})"}


# ---------------------------------------------------------------------- presets
def _dataset(args: argparse.Namespace) -> str:
    """The grey dataset of a class-conditional preset (``--dataset``; MNIST when unset)."""
    return getattr(args, "dataset", None) or "mnist"


def teacher_mnist(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    dataset = _dataset(args)
    data = DataConfig(dataset=dataset)
    teacher = str(args.teacher)
    gen = load_generator(teacher, _device())
    if gen.cond_kind != "class":
        raise SystemExit(f"{teacher} is a {gen.cond_kind}-conditional generator; teacher_mnist needs a class teacher.")
    default_sampler = gen.describe(None)
    del gen
    label = lambda n, w: f"N={n} cfg={w:g}"  # noqa: E731
    sweep = [Row(label(CFG_SWEEP_STEPS, w), teacher, SamplingOptions(steps=CFG_SWEEP_STEPS, cfg_scale=w))
             for w in args.cfg_sweep]
    results = run_rows(sweep, ["fid", "pr"], args.num, data, args.seed, args.progress)
    best = min(zip(args.cfg_sweep, results), key=lambda t: t[1]["fid"])[0]
    done = {r.label for r in sweep}
    steps_rows = [Row(label(n, best), teacher, SamplingOptions(steps=n, cfg_scale=best)) for n in args.steps]
    results += run_rows([r for r in steps_rows if r.label not in done], ["fid", "pr"], args.num, data,
                        args.seed, args.progress)
    rows = sweep + [r for r in steps_rows if r.label not in done]
    evaluators = _evaluators(results)
    floor = mnist_floor(args.num, evaluators["fid_pr"], args.seed, args.progress, dataset)
    for r in results:
        r["fid_over_floor"] = r["fid"] / floor["fid"]
    fastest = add_speed(results, time_rows(rows, args.speed_batch, args.speed_repeats))

    sw, st = _by(results, [r.label for r in sweep]), _by(results, [r.label for r in steps_rows])
    fid_n = {n: r["fid"] for n, r in zip(args.steps, st)}
    fid16 = next(r["fid"] for w, r in zip(args.cfg_sweep, sw) if w == best)
    metrics = {
        "preset": "teacher_mnist", "dataset": dataset, "n": args.num, "evaluator": evaluators["fid_pr"],
        "floor": floor,
        "best_cfg": best,
        "target_fid16_within_3x_floor": {"pass": fid16 <= 3 * floor["fid"], "fid_16step": fid16,
                                         "floor_fid": floor["fid"], "threshold": 3 * floor["fid"],
                                         "cfg_scale": best},
        "fid_1step_over_16step": _ratio(fid_n.get(1), fid16),
        "fid_2step_over_16step": _ratio(fid_n.get(2), fid16),
        "cfg_sweep": {"steps": CFG_SWEEP_STEPS, "rows": [r["label"] for r in sw],
                      "fid_by_cfg": {_key(w): r["fid"] for w, r in zip(args.cfg_sweep, sw)},
                      "fid_over_floor_by_cfg": {_key(w): r["fid_over_floor"] for w, r in zip(args.cfg_sweep, sw)},
                      "precision_by_cfg": {_key(w): r["precision"] for w, r in zip(args.cfg_sweep, sw)},
                      "recall_by_cfg": {_key(w): r["recall"] for w, r in zip(args.cfg_sweep, sw)}},
        "steps_sweep": {"cfg_scale": best, "rows": [r["label"] for r in st],
                        "fid_by_steps": {str(n): r["fid"] for n, r in zip(args.steps, st)},
                        "fid_over_floor_by_steps": {str(n): r["fid_over_floor"] for n, r in zip(args.steps, st)},
                        "precision_by_steps": {str(n): r["precision"] for n, r in zip(args.steps, st)},
                        "recall_by_steps": {str(n): r["recall"] for n, r in zip(args.steps, st)},
                        "seconds_per_image_by_steps": {str(n): r["seconds_per_image"] for n, r in zip(args.steps, st)}},
        "speed": _speed_info(args, fastest),
        "rows": results,
    }
    config = {"preset": "teacher_mnist", "dataset": dataset, "teacher": teacher, "n": args.num, "seed": args.seed,
              "metrics": ["fid", "pr"], "data": to_dict(data), "cfg_sweep": args.cfg_sweep,
              "cfg_sweep_steps": CFG_SWEEP_STEPS, "steps": args.steps, "evaluators": evaluators,
              "teacher_default_sampler": default_sampler, "speed_batch": args.speed_batch,
              "speed_repeats": args.speed_repeats, "torch_threads": torch.get_num_threads(), "device": _device()}
    return metrics, config


def world_prompts(args: argparse.Namespace, gen: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None, int]:
    """(prompts, subset or None for all, N): the held-out prompts a world preset scores, k images each.

    Checks that evaluate's prompt cycling gives image i the prompt i mod P, so every prompt gets
    exactly ``--images-per-prompt`` images.
    """
    heldout = heldout_prompts_interleaved()
    n_prompts = len(heldout) if args.max_prompts is None else min(args.max_prompts, len(heldout))
    subset = None if n_prompts == len(heldout) else heldout[:n_prompts]
    prompts = heldout[:n_prompts]
    num = n_prompts * args.images_per_prompt
    conds = conditions_for(gen, num) if subset is None else \
        conditions_for(gen, num, prompts=[m["prompt"] for m in subset], metadata=subset)
    if len(conds) != num or conds.distinct != n_prompts or \
            any(conds.metadata[i] != prompts[i % n_prompts] for i in range(num)):
        raise RuntimeError("evaluate's prompt cycling no longer gives image i the prompt i mod P; "
                           "every prompt would not get exactly --images-per-prompt images.")
    return prompts, subset, num


WORLD_DATA_CONFIG = config_path("world", "teacher.yaml")  # the world of the shipped world models


def world_data(data_config: str | Path | None, default: str | Path = WORLD_DATA_CONFIG) -> DataConfig:
    """The digit world a world benchmark records and scores against: the ``data:`` section of
    ``--data-config``, else of ``default`` (the world teacher's preset, ``configs/world/teacher.yaml``)."""
    data_config = data_config or default
    data = load_data_config(data_config)
    if data.dataset != "world":
        raise SystemExit(f"--data-config {data_config} describes dataset {data.dataset!r}, not the digit world.")
    return data


def _per_tag(prompts: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in prompts:
        out[m["tag"]] = out.get(m["tag"], 0) + 1
    return out


def _text_teacher(path: str) -> tuple[dict[str, Any], Any]:
    gen = load_generator(path, _device())
    if gen.cond_kind != "text":
        raise SystemExit(f"{path} is a {gen.cond_kind}-conditional generator; a world preset needs a text teacher.")
    return gen.describe(None), gen


def teacher_world(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    data = world_data(args.data_config)
    teacher = str(args.teacher)
    default_sampler, gen = _text_teacher(teacher)
    default_cfg = float(default_sampler["cfg_scale"])
    prompts, subset, num = world_prompts(args, gen)
    n_prompts, k = len(prompts), args.images_per_prompt
    del gen
    per_tag = _per_tag(prompts)

    label = lambda n, w: f"N={n} cfg={w:g}"  # noqa: E731
    steps_rows = [Row(label(n, default_cfg), teacher, SamplingOptions(steps=n, cfg_scale=default_cfg))
                  for n in args.steps]
    sweep = [Row(label(CFG_SWEEP_STEPS, w), teacher, SamplingOptions(steps=CFG_SWEEP_STEPS, cfg_scale=w))
             for w in args.cfg_sweep]
    seen: set[str] = set()
    rows = [r for r in steps_rows + sweep if not (r.label in seen or seen.add(r.label))]
    results = run_rows(rows, ["geneval"], num, data, args.seed, args.progress, prompts=subset)
    fastest = add_speed(results, time_rows(rows, args.speed_batch, args.speed_repeats, prompts=subset))

    st, sw = _by(results, [r.label for r in steps_rows]), _by(results, [r.label for r in sweep])
    best = max(zip(args.cfg_sweep, sw), key=lambda t: t[1]["geneval"])[0] if sw else None
    metrics = {
        "preset": "teacher_world", "n": num, "num_prompts": n_prompts, "images_per_prompt": k,
        "prompts_per_tag": per_tag, "evaluator": GENEVAL_EVALUATOR, "default_cfg": default_cfg,
        "steps_sweep": {"cfg_scale": default_cfg, "rows": [r["label"] for r in st],
                        "geneval_by_steps": {str(n): r["geneval"] for n, r in zip(args.steps, st)},
                        "geneval_per_tag_by_steps": {str(n): r["geneval_per_tag"] for n, r in zip(args.steps, st)},
                        "seconds_per_image_by_steps": {str(n): r["seconds_per_image"] for n, r in zip(args.steps, st)}},
        "cfg_sweep": {"steps": CFG_SWEEP_STEPS, "rows": [r["label"] for r in sw],
                      "geneval_by_cfg": {_key(w): r["geneval"] for w, r in zip(args.cfg_sweep, sw)},
                      "geneval_per_tag_by_cfg": {_key(w): r["geneval_per_tag"] for w, r in zip(args.cfg_sweep, sw)}},
        "best_cfg_by_geneval": best,
        "speed": _speed_info(args, fastest),
        "rows": results,
    }
    config = {"preset": "teacher_world", "teacher": teacher, "n": num, "seed": args.seed, "metrics": ["geneval"],
              "data": to_dict(data), "prompts": (f"heldout_prompts_interleaved()[:{n_prompts}]" if subset else
                                                 "heldout_prompts_interleaved() (all)"),
              "num_prompts": n_prompts, "images_per_prompt": k, "steps": args.steps, "cfg_sweep": args.cfg_sweep,
              "cfg_sweep_steps": CFG_SWEEP_STEPS, "evaluators": {"geneval": GENEVAL_EVALUATOR},
              "teacher_default_sampler": default_sampler, "speed_batch": args.speed_batch,
              "speed_repeats": args.speed_repeats, "torch_threads": torch.get_num_threads(), "device": _device()}
    return metrics, config


def _pairs(text: str) -> list[tuple[str, str]]:
    """``"a=PATH,b=PATH"`` → [("a", PATH), ("b", PATH)]."""
    out = []
    for item in text.split(","):
        if item.strip():
            key, sep, path = item.partition("=")
            if not sep or not key.strip() or not path.strip():
                raise SystemExit(f"expected LABEL=PATH items, got {item!r}")
            out.append((key.strip(), path.strip()))
    return out


def sweep_metrics(metric: str) -> list[str]:
    """What a temperature sweep measures, the first one (``metric``, :data:`SWEEP_TEXT`) picking τ: domain FID
    with the classifier score (docs/method.md §8.3; the dataset's in-project classifier) or Inception FID
    (§8.1)."""
    return SWEEP_TEXT[metric]["metrics"]


def best_temperature(path: str, temperatures: list[float], num: int, seed: int, progress: bool,
                     data: DataConfig | None = None,
                     evaluate_fn: Callable[..., dict[str, Any]] | None = None,
                     metric: str = "domain_fid") -> tuple[float, dict[str, dict[str, float]]]:
    """The one-step sampling temperature of lowest ``metric`` at N: domain FID (the dataset's in-project
    classifier's features) or Inception FID (:func:`sweep_metrics`); ``evaluate_fn`` as in :func:`run_rows`."""
    evaluate_fn = evaluate_fn or evaluate
    data = data or DataConfig(dataset="mnist")
    metrics = sweep_metrics(metric)
    sweep = {}
    for t in temperatures:
        out = evaluate_fn(path, metrics, num, data, seed=seed, progress=progress, sampling=SamplingOptions(temperature=t))
        sweep[_key(t)] = {m: out[m] for m in metrics}
        print(f"  τ={t:g}: " + ", ".join(f"{m} {out[m]:.3f}" for m in metrics), flush=True)
    best = min(temperatures, key=lambda t: sweep[_key(t)][metrics[0]])
    return best, sweep


# the temperature sweeps' choices (--sweep-metric): what each measures (its first metric picks τ) and how the
# best-τ row is picked, as the results files say it
SWEEP_TEXT = {
    "domain_fid": {"metrics": ["domain_fid", "classifier_score"],
                   "what": "domain_fid (the dataset's in-project classifier's features), same N and seed",
                   "best_tau_rule": "lowest Inception FID of τ = 1 and the domain-FID-best τ of --temperatures "
                                    "(temperature_sweeps)"},
    "fid": {"metrics": ["fid"], "what": "fid (standard Inception), same N and seed",
            "best_tau_rule": "lowest Inception FID of τ = 1 and the Inception-FID-best τ of --temperatures "
                             "(temperature_sweeps)"},
}
ABLATIONS_MNIST_ONLY = ("--ablations-json quotes MNIST ablation tables (benchmarks/dimo_ablations.py, domain FID "
                        "of the MNIST classifier)")
# what dimo_mnist leaves out on another grey dataset than MNIST
MNIST_ONLY = {"ablations": f"{ABLATIONS_MNIST_ONLY}; refused with another --dataset"}


def best_of_tau1(swept: dict[str, Any], tau1: dict[str, Any]) -> dict[str, Any]:
    """A one-step student's best-τ row: the lower Inception FID of the row at the τ the domain-FID sweep
    chose and the τ = 1 row (the proxy can prefer a τ that the standard evaluator does not)."""
    return min((swept, tau1), key=lambda r: r["fid"])


def class_samples(path: str, options: SamplingOptions, per_class: int, seed: int) -> list[torch.Tensor]:
    """``per_class`` images of each of the 10 classes (MNIST digits or Fashion-MNIST garments) from generator
    ``path`` (one seeded generator)."""
    gen = load_generator(path, _device())
    g = torch.Generator().manual_seed(seed)
    return [gen.generate(labels=[y] * per_class, options=options, generator=g).float().cpu() for y in range(10)]


def fidelity_metrics(args: argparse.Namespace, t_metrics: dict[str, Any], student_best: dict[str, Any],
                     student_tau1: dict[str, Any], student_path: str, best_cfg: float) -> dict[str, Any]:
    """The Di[M]O fidelity keys: the teacher's best row, the student at τ = 1 and at its best τ, the
    within-class diversity ratio, the recall ratio and the near-delta token fraction (with targets).

    None of them uses the MNIST classifier (pixel variances of class-conditional samples, Inception rows, the
    student's token probabilities), so they hold on Fashion-MNIST too; the quoted ``--ablations-json`` tables
    are MNIST runs and are refused with another ``--dataset``."""
    from softdimo.distill import OneStepStudent
    from softdimo.distill.diagnostics import DELTA_PMAX, collapse_diagnostics, pixel_variance
    from softdimo.teachers import NativeTeacher

    best_row = min(t_metrics["rows"], key=lambda r: r["fid"])
    tau = student_best["options"]["temperature"]
    m = args.diversity_per_class
    teacher_imgs = class_samples(str(args.teacher), SamplingOptions(steps=16, cfg_scale=best_cfg), m, args.seed)
    student_imgs = class_samples(student_path, SamplingOptions(temperature=tau), m, args.seed)
    var_t = sum(pixel_variance(x) for x in teacher_imgs) / 10
    var_s = sum(pixel_variance(x) for x in student_imgs) / 10
    student = OneStepStudent.from_pretrained(student_path)
    teacher = NativeTeacher.from_pretrained(str(args.teacher))
    diag = collapse_diagnostics(student, teacher, [{"labels": [y]} for y in range(10)], m, temperature=1.0,
                                generator=torch.Generator().manual_seed(args.seed))
    tb = best_row["fid"]
    out = {
        "teacher_best_fid": tb, "teacher_best_row": best_row["label"],
        "student_fid_tau1": student_tau1["fid"], "student_recall_tau1": student_tau1["recall"],
        "student_best_fid": student_best["fid"], "student_best_tau": tau,
        "diversity_ratio": var_s / var_t,
        "diversity": {"student_pixel_var": var_s, "teacher_pixel_var": var_t, "per_class": m,
                      "teacher_sampler": f"16 steps, CFG {best_cfg:g}", "student_tau": tau,
                      "what": "mean over the 10 classes of Σ_pixels Var(image) of one class's samples, images in [0, 1]"},
        "recall_ratio": student_best["recall"] / best_row["recall"],
        "delta_token_fraction": diag["delta_fraction"],
        "student_diagnostics_tau1": diag,
    }
    out["fidelity_targets"] = {
        "student_best_fid_over_teacher_best": student_best["fid"] / tb, "student_best_fid_pass": student_best["fid"] <= 1.2 * tb,
        "student_fid_tau1_over_teacher_best": student_tau1["fid"] / tb, "student_fid_tau1_pass": student_tau1["fid"] <= 1.5 * tb,
        "diversity_ratio_pass": out["diversity_ratio"] >= 0.8, "recall_ratio_pass": out["recall_ratio"] >= 0.8,
        "delta_token_fraction_pass": out["delta_token_fraction"] >= 0.3,
        "delta_definition": f"p_max > {DELTA_PMAX} at eval mode over 10 classes × {m} draws",
    }
    tables = {}
    ablations = [x for x in (args.ablations_json or "").split(",") if x.strip()]
    if ablations and _dataset(args) != "mnist":
        raise SystemExit(f"{ABLATIONS_MNIST_ONLY}: not with --dataset {_dataset(args)}.")
    for path in ablations:
        doc = json.loads(Path(path).read_text())
        tables[Path(path).stem] = {"source": path, "commit": doc.get("commit"), "command": doc.get("command"),
                                   **doc["metrics"]}
    if tables:
        out["ablations"] = tables
    return out


def dimo_mnist(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """Teacher rows (the teacher_mnist preset, written to ``--teacher-json``) + one-step students, one run.

    Each student's temperature is the best of ``--temperatures`` by domain FID at the same N (a
    cheap proxy; ``--sweep-metric fid``: Inception FID, :func:`sweep_metrics`), then the student is
    scored with the standard Inception FID / precision / recall like the teacher rows.
    ``--beta-students`` (β=PATH items, equal training steps) get the same temperature sweep and its
    metrics; with ``--beta-fid`` also the Inception row.
    Speed: the teacher at 16 steps (best CFG, and CFG 2) against every student, side by side.
    """
    started, t0 = now(), time.time()
    t_metrics, t_config = teacher_mnist(args)
    write_results(args.teacher_json, "teacher_mnist", t_metrics, config=t_config, started=started,
                  seconds=time.time() - t0)
    print(f"wrote {args.teacher_json}", flush=True)
    dataset = _dataset(args)
    data = DataConfig(dataset=dataset)
    best_cfg = t_metrics["best_cfg"]
    teacher_rows = [r for r in t_metrics["rows"] if r["options"]["cfg_scale"] == best_cfg
                    and r["options"]["steps"] in args.dimo_steps]
    teacher_rows.sort(key=lambda r: r["options"]["steps"])
    students, beta = _pairs(args.students), _pairs(args.beta_students or "")
    for _, path in students + beta:  # --wait-minutes: students still training when the run starts
        deadline = time.time() + 60 * args.wait_minutes
        while read_kind(path) is None and time.time() < deadline:
            time.sleep(20)
    results, sweeps, rows = [], {}, []
    for label, path in students + [(f"beta={b}", p) for b, p in beta]:
        print(f"temperature sweep: {label}", flush=True)
        best_t, sweeps[label] = best_temperature(path, args.temperatures, args.num, args.seed, args.progress, data,
                                                 metric=args.sweep_metric)
        rows.append(Row(f"{label} τ={best_t:g}", path, SamplingOptions(temperature=best_t)))
    fid_rows = rows[: len(students)] + (rows[len(students):] if args.beta_fid else [])
    main_label, main_path = students[0]
    tau1 = Row(f"{main_label} τ=1", main_path, SamplingOptions(temperature=1.0))
    if rows[0].options.temperature != 1.0:
        fid_rows.append(tau1)
    results = run_rows(fid_rows, ["fid", "pr"], args.num, data, args.seed, args.progress)
    tau1_result = next(r for r in results if r["label"] in (tau1.label, rows[0].label)
                       and r["options"]["temperature"] == 1.0)
    if rows[0].options.temperature != 1.0:
        results.remove(tau1_result)
    floor = t_metrics["floor"]
    for r in results:
        r["fid_over_floor"] = r["fid"] / floor["fid"]
    teacher = str(args.teacher)
    speed_rows = [Row(f"teacher N=16 cfg={best_cfg:g}", teacher, SamplingOptions(steps=16, cfg_scale=best_cfg))]
    if best_cfg != 2.0:
        speed_rows.append(Row("teacher N=16 cfg=2", teacher, SamplingOptions(steps=16, cfg_scale=2.0)))
    speed_rows += rows[: len(students)]
    speeds = time_rows(speed_rows, args.speed_batch, args.speed_repeats)
    sec = {k: v.seconds_per_image for k, v in speeds.items()}
    for r in results:
        if r["label"] in sec:
            r["seconds_per_image"] = sec[r["label"]]
    fid16 = next(r["fid"] for r in teacher_rows if r["options"]["steps"] == 16)
    fid1 = next((r["fid"] for r in teacher_rows if r["options"]["steps"] == 1), None)
    main = results[0]
    metrics = {
        "preset": "dimo_mnist", "dataset": dataset, "n": args.num, "evaluator": t_metrics["evaluator"],
        "floor": floor,
        "teacher_best_cfg": best_cfg,
        "teacher_rows": [{k: r[k] for k in ("label", "options", "fid", "precision", "recall", "fid_over_floor",
                                            "seconds_per_image")} for r in teacher_rows],
        "student_rows": results[: len(students)],
        "temperature_sweeps": {"metric": SWEEP_TEXT[args.sweep_metric]["what"], **sweeps},
        "targets": {
            "student_fid_over_teacher16": main["fid"] / fid16,
            "student_fid_within_1.5x_teacher16": main["fid"] <= 1.5 * fid16,
            "teacher_1step_fid": fid1, "student_below_teacher_1step": fid1 is not None and main["fid"] < fid1,
            "speedup_vs_teacher16_cfg2": sec.get("teacher N=16 cfg=2", sec[speed_rows[0].label]) / sec[rows[0].label],
            f"speedup_vs_teacher16_cfg{best_cfg:g}": sec[speed_rows[0].label] / sec[rows[0].label],
        },
        "speed_seconds_per_image": sec,
        "speed": {"method": SPEED_METHOD, "batch_size": args.speed_batch, "repeats": args.speed_repeats,
                  "device": _device()},
    }
    # the student's best τ: the lower Inception FID of τ = 1 and the τ the sweep chose (the domain-FID
    # proxy can prefer a τ that the standard evaluator does not)
    best_measured = best_of_tau1(main, tau1_result)
    metrics.update(fidelity_metrics(args, t_metrics, best_measured, tau1_result, main_path, best_cfg))
    metrics["student_best_tau_rule"] = SWEEP_TEXT[args.sweep_metric]["best_tau_rule"]
    if dataset != "mnist":
        metrics["mnist_only_left_out"] = MNIST_ONLY
    if beta:
        metrics["beta_table"] = {
            b: {"path": p, "temperature": rows[len(students) + i].options.temperature,
                **sweeps[f"beta={b}"][_key(rows[len(students) + i].options.temperature)],
                **({k: results[len(students) + i][k] for k in ("fid", "precision", "recall")} if args.beta_fid else {})}
            for i, (b, p) in enumerate(beta)}
    config = {**t_config, "preset": "dimo_mnist", "students": students, "beta_students": beta,
              "temperatures": args.temperatures, "sweep_metric": args.sweep_metric, "dimo_steps": args.dimo_steps,
              "teacher_json": str(args.teacher_json)}
    return metrics, config


def dimo_world(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """Text teacher at ``--dimo-steps`` (its default CFG) + one-step students, GenEval-like, one run.

    Every row scores the same held-out prompts (``--images-per-prompt`` images each, see
    :func:`world_prompts`). A student's temperature is the best of ``--temperatures`` by the
    GenEval-like overall score on the first ``--sweep-prompts`` prompts (one image each), then the
    student is scored on the full prompt set like the teacher rows. Speed: the teacher at 16 steps
    with its CFG against every student, side by side.
    """
    data = world_data(args.data_config)
    teacher = str(args.teacher)
    default_sampler, gen = _text_teacher(teacher)
    cfg = float(default_sampler["cfg_scale"])
    prompts, subset, num = world_prompts(args, gen)
    del gen
    students = _pairs(args.students)
    sweep_prompts = heldout_prompts_interleaved()[: args.sweep_prompts]
    rows, sweeps = [], {}
    for label, path in students:
        sweep_rows = [Row(f"{label} τ={t:g}", path, SamplingOptions(temperature=t)) for t in args.temperatures]
        res = run_rows(sweep_rows, ["geneval"], len(sweep_prompts), data, args.seed, args.progress,
                       prompts=sweep_prompts)
        sweeps[label] = {_key(t): r["geneval"] for t, r in zip(args.temperatures, res)}
        best_t = max(args.temperatures, key=lambda t: sweeps[label][_key(t)])
        rows.append(Row(f"{label} τ={best_t:g}", path, SamplingOptions(temperature=best_t)))
    teacher_rows = [Row(f"teacher N={n} cfg={cfg:g}", teacher, SamplingOptions(steps=n, cfg_scale=cfg))
                    for n in args.dimo_steps]
    results = run_rows(teacher_rows + rows, ["geneval"], num, data, args.seed, args.progress, prompts=subset)
    t16 = next((r for r in teacher_rows if r.options.steps == 16), teacher_rows[-1])
    speeds = time_rows([t16, *rows], args.speed_batch, args.speed_repeats, prompts=subset)
    sec = {k: v.seconds_per_image for k, v in speeds.items()}
    for r in results:
        if r["label"] in sec:
            r["seconds_per_image"] = sec[r["label"]]
    by = {r["label"]: r for r in results}
    main, t16r = by[rows[0].label], by[t16.label]
    t1 = next((by[r.label] for r in teacher_rows if r.options.steps == 1), None)
    metrics = {
        "preset": "dimo_world", "n": num, "num_prompts": len(prompts), "images_per_prompt": args.images_per_prompt,
        "prompts_per_tag": _per_tag(prompts), "evaluator": GENEVAL_EVALUATOR, "teacher_cfg": cfg,
        "teacher_rows": [by[r.label] for r in teacher_rows], "student_rows": [by[r.label] for r in rows],
        "temperature_sweeps": {"metric": f"geneval overall on the first {len(sweep_prompts)} held-out prompts, "
                                         f"one image each, same seed", **sweeps},
        "targets": {
            "student_geneval_over_teacher16": _ratio(main["geneval"], t16r["geneval"]),
            "teacher16_geneval": t16r["geneval"], "student_geneval": main["geneval"],
            "teacher_1step_geneval": t1["geneval"] if t1 else None,
            "student_above_teacher_1step": t1 is not None and main["geneval"] > t1["geneval"],
            f"speedup_vs_teacher16_cfg{cfg:g}": sec[t16.label] / sec[rows[0].label],
        },
        "speed_seconds_per_image": sec,
        "speed": {"method": SPEED_METHOD, "batch_size": args.speed_batch, "repeats": args.speed_repeats,
                  "device": _device()},
    }
    config = {"preset": "dimo_world", "teacher": teacher, "students": students, "n": num, "seed": args.seed,
              "metrics": ["geneval"], "data": to_dict(data), "dimo_steps": args.dimo_steps,
              "temperatures": args.temperatures, "sweep_prompts": len(sweep_prompts),
              "prompts": (f"heldout_prompts_interleaved()[:{len(prompts)}]" if subset else
                          "heldout_prompts_interleaved() (all)"),
              "teacher_default_sampler": default_sampler, "speed_batch": args.speed_batch,
              "speed_repeats": args.speed_repeats, "torch_threads": torch.get_num_threads(), "device": _device()}
    return metrics, config


# preset -> (function, defaults for the options left unset on the command line); in the defaults of the
# class-conditional presets "{dataset}" stands for --dataset (preset_defaults)
PRESETS: dict[str, tuple[Callable[[argparse.Namespace], tuple[dict, dict]], dict[str, Any]]] = {
    "teacher_mnist": (teacher_mnist, {"teacher": "checkpoints/teacher-{dataset}",
                                      "json": "benchmarks/results/teacher_{dataset}.json", "num": 2000,
                                      "steps": [1, 2, 4, 8, 16, 32], "cfg_sweep": [1.0, 1.5, 2.0, 3.0]}),
    "teacher_world": (teacher_world, {"teacher": "checkpoints/teacher-world",
                                      "json": "benchmarks/results/teacher_world.json",
                                      "steps": [4, 8, 16, 32], "cfg_sweep": [1.0, 2.0, 3.0]}),
    "dimo_mnist": (dimo_mnist, {"teacher": "checkpoints/teacher-{dataset}",
                                "json": "benchmarks/results/dimo_{dataset}.json",
                                "teacher_json": "benchmarks/results/teacher_{dataset}.json",
                                "num": 2000, "steps": [1, 2, 4, 8, 16, 32], "cfg_sweep": [1.0, 1.5, 2.0],
                                "students": "dimo=checkpoints/dimo-{dataset}",
                                "temperatures": [1.0, 2.0, 3.0, 5.0, 7.0, 10.0]}),
    "dimo_world": (dimo_world, {"teacher": "checkpoints/teacher-world", "json": "benchmarks/results/dimo_world.json",
                                "steps": [16], "cfg_sweep": [2.0], "students": "dimo=checkpoints/dimo-world",
                                "temperatures": [0.5, 1.0, 2.0, 3.0]}),
}
DATASET_PRESETS = ("teacher_mnist", "dimo_mnist")  # the presets --dataset applies to


def preset_defaults(preset: str, dataset: str | None = None) -> dict[str, Any]:
    """The defaults of ``preset`` with ``{dataset}`` filled in (``--dataset``; MNIST when None); a copy."""
    if dataset is not None and preset not in DATASET_PRESETS:
        raise ValueError(f"--dataset is for {' and '.join(DATASET_PRESETS)}, not {preset}")
    if dataset is not None and dataset not in GREY_DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(GREY_DATASETS)}")
    fill = dataset or "mnist"
    return {k: v.format(dataset=fill) if isinstance(v, str) else v for k, v in PRESETS[preset][1].items()}


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def _floats(text: str) -> list[float]:
    return [float(t) for t in text.split(",") if t.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, checked, with the preset's defaults (for ``--dataset``) filled in where unset."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=list(PRESETS), required=True)
    ap.add_argument("--dataset", choices=list(GREY_DATASETS),
                    help="teacher_mnist / dimo_mnist: the grey dataset (default mnist); picks the default paths "
                         "(checkpoints/teacher-DATASET, benchmarks/results/dimo_DATASET.json, …)")
    ap.add_argument("--teacher", help="teacher folder (default: checkpoints/teacher-mnist, -fashion or -world)")
    ap.add_argument("--json", help="results file (default: benchmarks/results/<preset>.json, "
                                   "or teacher_fashion.json / dimo_fashion.json with --dataset fashion)")
    ap.add_argument("--num", type=int, help="teacher_mnist: images per row, N (default 2000)")
    ap.add_argument("--steps", type=_ints, help="comma-separated step counts (default 1,2,4,8,16,32 / 4,8,16,32)")
    ap.add_argument("--cfg-sweep", type=_floats, help="CFG scales at 16 steps (default 1,1.5,2,3 / 1,2,3)")
    ap.add_argument("--images-per-prompt", type=int, default=4, help="teacher_world: images of every prompt")
    ap.add_argument("--max-prompts", type=int, help="teacher_world: first P held-out prompts only (quick checks)")
    ap.add_argument("--data-config", help="teacher_world / dimo_world: YAML whose data: section is the digit world "
                                          "(default configs/world/teacher.yaml)")
    ap.add_argument("--students", help="dimo_*: LABEL=PATH one-step students (comma-separated; default "
                                         "dimo=checkpoints/dimo-mnist, -fashion or -world)")
    ap.add_argument("--beta-students", help="dimo_mnist: BETA=PATH students of the β table (equal steps)")
    ap.add_argument("--beta-fid", action="store_true", help="dimo_mnist: Inception FID for the β table too")
    ap.add_argument("--wait-minutes", type=float, default=0.0,
                    help="dimo_mnist: wait up to this long for student folders that are still being trained")
    ap.add_argument("--temperatures", type=_floats,
                    help="dimo_*: student temperatures swept (--sweep-metric / GenEval; "
                         "default 1,2,3,5,7,10 / .5,1,2,3)")
    ap.add_argument("--sweep-metric", choices=sorted(SWEEP_TEXT), default="domain_fid",
                    help="dimo_mnist: what picks each student's τ, at the same N: domain FID (the dataset's "
                         "in-project classifier) or Inception FID (slower)")
    ap.add_argument("--sweep-prompts", type=int, default=120,
                    help="dimo_world: held-out prompts (one image each) of the temperature sweep")
    ap.add_argument("--dimo-steps", type=_ints, default=[1, 2, 4, 8, 16],
                    help="dimo_*: teacher step counts reported next to the students")
    ap.add_argument("--teacher-json", help="dimo_mnist: where the teacher rows of the same run are written "
                                           "(default benchmarks/results/teacher_DATASET.json)")
    ap.add_argument("--diversity-per-class", type=int, default=64,
                    help="dimo_mnist: samples per class for the diversity ratio and the token diagnostics")
    ap.add_argument("--ablations-json", default="",
                    help="dimo_mnist: comma-separated ablation tables (benchmarks/dimo_ablations.py) quoted under "
                         "metrics.ablations, keyed by file stem (MNIST tables: not with --dataset fashion)")
    ap.add_argument("--speed-batch", type=int, default=64)
    ap.add_argument("--speed-repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (0: torch's default)")
    ap.add_argument("--no-progress", dest="progress", action="store_false")
    args = ap.parse_args(argv)
    if args.preset in ("teacher_world", "dimo_world") and args.num is not None:
        ap.error("--num is for teacher_mnist; teacher_world uses N = prompts × --images-per-prompt.")
    if args.data_config and args.preset not in ("teacher_world", "dimo_world"):
        ap.error("--data-config is for the world presets (teacher_world, dimo_world).")
    if args.dataset is not None and args.preset not in DATASET_PRESETS:
        ap.error(f"--dataset is for {' and '.join(DATASET_PRESETS)}; the world presets read --data-config.")
    if args.preset in DATASET_PRESETS:
        args.dataset = args.dataset or "mnist"
    if args.dataset not in (None, "mnist") and any(x.strip() for x in args.ablations_json.split(",")):
        ap.error(f"{ABLATIONS_MNIST_ONLY}: not with --dataset {args.dataset}.")
    for k, v in preset_defaults(args.preset, args.dataset).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.num is not None and args.num < 2:
        ap.error("--num must be at least 2.")
    if args.images_per_prompt < 1 or (args.max_prompts is not None and args.max_prompts < 1):
        ap.error("--images-per-prompt and --max-prompts must be at least 1.")
    if not args.steps or min(args.steps) < 1 or not args.cfg_sweep:
        ap.error("--steps needs step counts ≥ 1 and --cfg-sweep at least one scale.")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    fn = PRESETS[args.preset][0]
    if args.threads:
        torch.set_num_threads(args.threads)
    started, t0 = now(), time.time()
    metrics, config = fn(args)
    write_results(args.json, args.preset, metrics, config=config, started=started, seconds=time.time() - t0)
    summary = {k: v for k, v in metrics.items() if k not in ("rows", "speed", "floor")}
    print(json.dumps(summary, indent=1, default=str))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
