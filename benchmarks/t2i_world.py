"""Text-to-image benchmark on the digit world: teacher, Di[M]O, + reward, + TTEO, best-of-N and ablations.

    python benchmarks/t2i_world.py --teacher checkpoints/teacher-world --dimo checkpoints/dimo-world \
        --reward checkpoints/soft-reward-world --gumbel-reward checkpoints/gumbel-reward-world \
        --reward-only checkpoints/reward-only-world --json benchmarks/results/t2i_world.json

Rows (each optional: a row whose folder is not given is skipped and listed in ``metrics.skipped``):
the teacher (MaskGIT, 16 steps, its default CFG), the one-step Di[M]O student, Soft-Di[M]O + reward,
TTEO of the reward student (of Di[M]O when there is none) at every ``--tteo-iters`` with best of
``--best-of``, plain best-of-N of the same student (0 iterations), Gumbel-ST + reward, and reward only
(no Di[M]O term). TTEO (:func:`softdimo.tteo.tteo`) optimises the default reward terms
(``default_reward_terms()``: mini-CLIP + attribute) with SGD at lr 0.2, and selects by the same rewards.

Every row draws ``--images-per-prompt`` images of each of the first ``--prompts`` held-out prompts
(``heldout_prompts_interleaved()``, tags interleaved; image i has prompt i mod P, checked by
``generators.world_prompts``) in batches of ``--batch-size`` from one ``torch.Generator`` seeded with
``--seed``: the draw of ``generators.py``'s world presets. The N images of a row are scored with

* ``geneval`` / ``geneval_per_tag``: the GenEval-like scorer (``generators.GENEVAL_EVALUATOR``);
* ``clip_score``: mean cosine between mini-CLIP's image embedding (checkpoints/reward-miniclip-world)
  and the MiniLM embedding of the image's prompt (the mini-CLIP reward is 100 × this cosine);
* ``reward``: mean of the composite Σ λ_i R̂_i that TTEO optimises (``reward_terms``: each R̂_i's mean);
* ``fid``: standard Inception FID against the first N world test renders (cached reference features).

``seconds_per_image``: all rows timed side by side in one process (``measure_speed``: order rotated
every repeat, one warm-up call, median of ``--speed-repeats``) at batch ``--speed-batch``; TTEO and
best-of-N rows with their whole pipeline (N candidates, iterations, reward scoring, selection).
``tteo_latency_ratio``: their seconds per image over the one-step student's they start from.
``targets`` (values and booleans): the GenEval-like chain Di[M]O < + reward < + TTEO (fewer iters) ≤
+ TTEO (more iters); + TTEO (most iters) ≥ teacher + 0.10; reward only against Di[M]O (reward,
GenEval-like, FID; "hacking" = the reward goes up while GenEval-like goes down or FID up).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generators import GENEVAL_EVALUATOR, _per_tag, world_prompts  # noqa: E402

from softdimo.config import DataConfig, to_dict  # noqa: E402
from softdimo.classifier import load_shipped_classifier  # noqa: E402
from softdimo.eval.fid import extract_features, fid_from_features  # noqa: E402
from softdimo.eval.geneval import GenEvalScorer  # noqa: E402
from softdimo.eval.inception import InceptionFeatures  # noqa: E402
from softdimo.eval.references import dataset_id, real_stats  # noqa: E402
from softdimo.eval.speed import measure_speed  # noqa: E402
from softdimo.results import now, write_results  # noqa: E402
from softdimo.rewards import build_composite, build_reward  # noqa: E402
from softdimo.sample import ImageGenerator, SamplingOptions, StudentGenerator, load_generator  # noqa: E402
from softdimo.tteo import default_reward_terms, tteo  # noqa: E402

TTEO_LR = 0.2
TEACHER_STEPS = 16
TEACHER_MARGIN = 0.10  # target: + TTEO ≥ teacher + this (GenEval-like overall)
# kind (= the option holding its folder, e.g. --gumbel-reward) → row label of the one-step student rows
STUDENTS = {"dimo": "Di[M]O", "reward": "Soft-Di[M]O + reward", "gumbel_reward": "Gumbel-ST + reward",
            "reward_only": "reward only (no Di[M]O term)"}
SPEED_METHOD = ("softdimo.eval.speed.measure_speed: all rows side by side in one process, order rotated every "
                "repeat, 1 warm-up call, median of the repeats; prompts = the first held-out prompts (cycled), "
                "torch.Generator().manual_seed(0) per call; TTEO / best-of-N rows: the whole tteo() call "
                "(candidates, iterations, reward scoring, selection); no evaluator time")


@dataclass
class Spec:
    """One row: a generator folder, its sampler options and, for TTEO / best-of-N rows, iters and N."""

    label: str
    kind: str
    model: str
    options: SamplingOptions = field(default_factory=SamplingOptions)
    tteo_iters: int | None = None  # None: the generator's own sampler, no TTEO
    best_of: int | None = None


def plan_rows(args: argparse.Namespace, teacher_cfg: float | None) -> tuple[list[Spec], list[str]]:
    """The rows asked for (benchmark order) and the kinds skipped because their folder was not given."""
    specs: list[Spec] = []
    skipped: list[str] = []

    def student(kind: str) -> None:
        if getattr(args, kind):
            specs.append(Spec(STUDENTS[kind], kind, getattr(args, kind)))
        else:
            skipped.append(kind)

    if args.teacher:
        specs.append(Spec(f"teacher N={TEACHER_STEPS} cfg={teacher_cfg:g}", "teacher", args.teacher,
                          SamplingOptions(steps=TEACHER_STEPS, cfg_scale=teacher_cfg)))
    else:
        skipped.append("teacher")
    student("dimo")
    student("reward")
    base = "reward" if args.reward else "dimo"
    base_path = getattr(args, base)
    if base_path:
        name = STUDENTS[base]
        specs += [Spec(f"{name} + TTEO {k} iters, best of {args.best_of}", "tteo", base_path, tteo_iters=k,
                       best_of=args.best_of) for k in sorted(args.tteo_iters)]
        specs.append(Spec(f"{name}, best of {args.best_of}", "best_of_n", base_path, tteo_iters=0,
                          best_of=args.best_of))
    else:
        skipped += ["tteo", "best_of_n"]
    student("gumbel_reward")
    student("reward_only")
    return specs, skipped


def batch_sampler(spec: Spec, gen: ImageGenerator, rewards: Any) -> Callable[[list[str], torch.Generator], Any]:
    """``f(prompts, generator) → images`` of one row (TTEO rows: the selected candidates)."""
    if spec.tteo_iters is None:
        return lambda prompts, g: gen.generate(prompts=prompts, options=spec.options, generator=g)
    if not isinstance(gen, StudentGenerator):
        raise SystemExit(f"{spec.model} is a '{gen.kind}'; TTEO needs a one-step student folder.")

    def sample(prompts: list[str], g: torch.Generator) -> torch.Tensor:
        return tteo(gen.student, rewards, prompts=prompts, iters=int(spec.tteo_iters), lr=TTEO_LR,
                    best_of=int(spec.best_of or 1), generator=g).images

    return sample


def draw(sampler: Callable[[list[str], torch.Generator], Any], prompts: list[str], batch_size: int,
         seed: int) -> torch.Tensor:
    """All images of ``prompts`` (one per entry, CPU float in [0, 1]) in batches from one seeded generator."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # as measure_speed calls the samplers
        return torch.cat([sampler(prompts[i:i + batch_size], g).float().cpu()
                          for i in range(0, len(prompts), batch_size)])


class Scorer:
    """GenEval-like, mini-CLIP cosine, the TTEO composite reward and Inception FID of a set of images."""

    def __init__(self, num: int, device: str, batch_size: int, cache_dir: str | None, progress: bool):
        self.device, self.batch_size = device, batch_size
        self.terms = default_reward_terms()
        self.rewards = build_composite(self.terms, device).eval()
        clip_term = next(t for t in self.terms if t.kind == "miniclip")
        self.clip = build_reward(dataclasses.replace(clip_term, normalize="none"), device).eval()
        self.clip_path = clip_term.path
        self.geneval = GenEvalScorer(load_shipped_classifier())
        self.inception = InceptionFeatures(device=device)
        data = DataConfig(dataset="world")
        self.reference = f"{dataset_id(data)}:test[:{num}]"
        self.real = real_stats(data, "test", num, self.inception, cache_dir=cache_dir, progress=progress)

    def evaluators(self) -> dict[str, str]:
        reward = " + ".join(f"{t.weight:g}·{t.kind}({t.normalize} {t.scale:g})" for t in self.terms)
        return {"geneval": GENEVAL_EVALUATOR, "geneval_per_tag": GENEVAL_EVALUATOR,
                "clip_score": f"mini-CLIP cosine ({self.clip_path} image tower vs frozen all-MiniLM-L6-v2 "
                              f"prompt embedding), mean over images",
                "reward": f"TTEO composite Σ λ_i R̂_i of default_reward_terms(): {reward}, mean over images",
                "fid": f"{self.inception.evaluator_id} vs {self.reference}"}

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, metadata: list[dict[str, Any]]) -> dict[str, Any]:
        prompts = [m["prompt"] for m in metadata]
        ge = self.geneval.score(images, metadata)
        cos: list[torch.Tensor] = []
        terms: dict[str, list[torch.Tensor]] = {}
        scale = float(self.clip.encoder.config.reward_scale)  # MiniClipReward.score = reward_scale · cos
        for i in range(0, len(images), self.batch_size):
            x, p = images[i:i + self.batch_size].to(self.device), prompts[i:i + self.batch_size]
            cos.append(self.clip.score(x, p).float().cpu() / scale)
            for k, v in self.rewards.score_terms(x, p).items():
                terms.setdefault(k, []).append(v.float().cpu())
        per_term = {k: torch.cat(v) for k, v in terms.items()}
        feats = extract_features(images, self.inception, batch_size=self.batch_size, progress=False)
        return {"geneval": ge["overall"], "geneval_per_tag": ge["per_tag"], "clip_score": float(torch.cat(cos).mean()),
                "reward": float(self.rewards.combine(per_term).mean()),
                "reward_terms": {k: float(v.mean()) for k, v in per_term.items()},
                "fid": fid_from_features(feats, self.real.features)}


def time_specs(specs: list[Spec], samplers: dict[str, Callable], prompts: list[str], batch: int, repeats: int,
               device: str) -> dict[str, float]:
    """Seconds per image of every row, side by side (label → seconds)."""
    ps = [prompts[i % len(prompts)] for i in range(batch)]
    calls = {s.label: (lambda bs, f=samplers[s.label]: f(ps[:bs], torch.Generator().manual_seed(0))) for s in specs}
    return {r.name: r.seconds_per_image for r in measure_speed(calls, [batch], repeats=repeats, warmup=1,
                                                               device=device)}


def _name(row: dict[str, Any]) -> str:
    return f"tteo-{row['tteo_iters']}" if row["kind"] == "tteo" else row["kind"]


def _first(rows: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["kind"] == kind), None)


def base_student(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The one-step row TTEO and best-of-N start from: the reward student, else Di[M]O."""
    return _first(rows, "reward") or _first(rows, "dimo")


def latency_ratios(rows: list[dict[str, Any]]) -> dict[str, float]:
    """TTEO / best-of-N rows: seconds per image over their one-step student's."""
    base = base_student(rows)
    if base is None:
        return {}
    return {r["label"]: r["seconds_per_image"] / base["seconds_per_image"] for r in rows
            if r["kind"] in ("tteo", "best_of_n")}


def compute_targets(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The targets from the rows' numbers (values and whether each holds; missing rows are left out)."""
    tteo_rows = sorted((r for r in rows if r["kind"] == "tteo"), key=lambda r: r["tteo_iters"])
    chain = [r for r in (_first(rows, "dimo"), _first(rows, "reward")) if r is not None] + tteo_rows
    links = {}
    for a, b in zip(chain, chain[1:]):
        rel = "<=" if a["kind"] == b["kind"] == "tteo" else "<"
        holds = a["geneval"] <= b["geneval"] if rel == "<=" else a["geneval"] < b["geneval"]
        links[f"{_name(a)} {rel} {_name(b)}"] = {"lhs": a["geneval"], "rhs": b["geneval"], "holds": holds}
    out: dict[str, Any] = {}
    if links:
        out["geneval_chain"] = {"order": " ".join([_name(chain[0])] + [k.split(" ", 1)[1] for k in links]),
                                "links": links, "all_hold": all(v["holds"] for v in links.values())}
    teacher = _first(rows, "teacher")
    if teacher is not None and tteo_rows:
        best = tteo_rows[-1]  # the most iterations asked (decided before any number is seen)
        threshold = teacher["geneval"] + TEACHER_MARGIN
        out["tteo_vs_teacher"] = {"row": best["label"], "geneval": best["geneval"],
                                  "teacher_geneval": teacher["geneval"], "margin": best["geneval"] - teacher["geneval"],
                                  "threshold": threshold, "holds": best["geneval"] >= threshold}
    only, dimo = _first(rows, "reward_only"), _first(rows, "dimo")
    if only is not None and dimo is not None:
        up, down, fid_up = (only["reward"] > dimo["reward"], only["geneval"] < dimo["geneval"],
                            only["fid"] > dimo["fid"])
        out["reward_only_vs_dimo"] = {
            "reward": only["reward"], "dimo_reward": dimo["reward"], "reward_up": up,
            "geneval": only["geneval"], "dimo_geneval": dimo["geneval"], "geneval_down": down,
            "fid": only["fid"], "dimo_fid": dimo["fid"], "fid_up": fid_up, "hacking": up and (down or fid_up)}
    return out


def run(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    dev = args.device
    gens: dict[str, ImageGenerator] = {}
    cfg = None
    if args.teacher:
        gens[args.teacher] = load_generator(args.teacher, dev)
        cfg = float(gens[args.teacher].describe(None)["cfg_scale"])
    specs, skipped = plan_rows(args, cfg)
    if not specs:
        raise SystemExit("no rows: give at least one of --teacher, --dimo, --reward, --gumbel-reward, --reward-only.")
    for s in specs:
        gens.setdefault(s.model, load_generator(s.model, dev))
        if gens[s.model].cond_kind != "text":
            raise SystemExit(f"{s.model} is {gens[s.model].cond_kind}-conditional; the digit world needs text.")
    prompts, _, num = world_prompts(argparse.Namespace(max_prompts=args.prompts,
                                                       images_per_prompt=args.images_per_prompt), gens[specs[0].model])
    metadata = [prompts[i % len(prompts)] for i in range(num)]
    texts = [m["prompt"] for m in metadata]
    print(f"{len(specs)} rows, N = {num} ({len(prompts)} prompts × {args.images_per_prompt}); skipped: "
          f"{', '.join(skipped) or 'none'}", flush=True)
    scorer = Scorer(num, dev, args.batch_size, args.cache_dir, args.progress)
    samplers = {s.label: batch_sampler(s, gens[s.model], scorer.rewards) for s in specs}
    rows = []
    for k, s in enumerate(specs, 1):
        t0 = time.time()
        images = draw(samplers[s.label], texts, args.batch_size, args.seed)
        t1 = time.time()
        row = {"label": s.label, "kind": s.kind, "model": s.model, "options": dataclasses.asdict(s.options),
               "sampler": gens[s.model].describe(s.options),
               **({"tteo_iters": s.tteo_iters, "best_of": s.best_of} if s.tteo_iters is not None else {}),
               "n": num, "evaluator": GENEVAL_EVALUATOR, **scorer(images, metadata),
               "generate_seconds": t1 - t0, "eval_seconds": time.time() - t1}
        rows.append(row)
        shown = {m: round(row[m], 4) for m in ("geneval", "clip_score", "reward", "fid")}
        print(f"[{k}/{len(specs)}] {s.label}: {shown} ({row['generate_seconds']:.0f}s + {row['eval_seconds']:.0f}s)",
              flush=True)
    print(f"timing {len(specs)} rows side by side (batch {args.speed_batch}, {args.speed_repeats} repeats)", flush=True)
    sec = time_specs(specs, samplers, texts, args.speed_batch, args.speed_repeats, dev)
    for r in rows:
        r["seconds_per_image"] = sec[r["label"]]
    base = base_student(rows)
    metrics = {
        "n": num, "evaluator": GENEVAL_EVALUATOR, "evaluators": scorer.evaluators(), "num_prompts": len(prompts),
        "images_per_prompt": args.images_per_prompt, "prompts_per_tag": _per_tag(prompts),
        "reference": scorer.reference, "skipped": skipped,
        "tteo": {"student": base["label"] if base else None, "lr": TTEO_LR, "soft_temperature": 1.0,
                 "rewards": [to_dict(t) for t in scorer.terms], "selection": "z-score composite of the same rewards"},
        "speed": {"method": SPEED_METHOD, "batch_size": args.speed_batch, "repeats": args.speed_repeats,
                  "warmup": 1, "device": dev},
        "rows": rows, "tteo_latency_ratio": latency_ratios(rows), "targets": compute_targets(rows),
    }
    config = {**{k: v for k, v in vars(args).items() if k != "progress"},
              "prompt_list": f"heldout_prompts_interleaved()[:{len(prompts)}]",
              "rows": [dataclasses.asdict(s) for s in specs], "torch_threads": torch.get_num_threads()}
    return metrics, config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default="checkpoints/teacher-world", help="teacher folder ('' skips the row)")
    ap.add_argument("--dimo", help="one-step Di[M]O student folder")
    ap.add_argument("--reward", help="Soft-Di[M]O + reward student folder (TTEO and best-of-N start from it)")
    ap.add_argument("--gumbel-reward", help="Gumbel-ST + reward student folder")
    ap.add_argument("--reward-only", help="reward-only student folder (no Di[M]O term)")
    ap.add_argument("--tteo-iters", type=int, nargs="+", default=[2, 4], help="TTEO iterations, one row each")
    ap.add_argument("--best-of", type=int, default=4, help="N candidates of the TTEO and best-of-N rows")
    ap.add_argument("--prompts", type=int, default=300, help="first P held-out prompts (tags interleaved)")
    ap.add_argument("--images-per-prompt", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=50, help="generation and scoring batch")
    ap.add_argument("--speed-batch", type=int, default=16)
    ap.add_argument("--speed-repeats", type=int, default=3)
    ap.add_argument("--json", default="benchmarks/results/t2i_world.json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (0: torch's default)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--cache-dir", help="FID reference cache (default: $SOFTDIMO_CACHE or ~/.cache/softdimo/fid)")
    ap.add_argument("--no-progress", dest="progress", action="store_false")
    args = ap.parse_args()
    if min(args.prompts, args.images_per_prompt, args.batch_size, args.speed_batch, args.speed_repeats,
           args.best_of) < 1 or min(args.tteo_iters) < 1:
        ap.error("--prompts, --images-per-prompt, --batch-size, --speed-*, --best-of and --tteo-iters must be ≥ 1.")
    if args.prompts * args.images_per_prompt < 2:
        ap.error("FID needs N = prompts × images per prompt ≥ 2.")
    if args.threads:
        torch.set_num_threads(args.threads)
    started, t0 = now(), time.time()
    metrics, config = run(args)
    write_results(args.json, "t2i_world", metrics, config=config, started=started, seconds=time.time() - t0)
    print(json.dumps({k: metrics[k] for k in ("tteo_latency_ratio", "targets", "skipped")}, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
