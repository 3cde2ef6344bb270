"""Text-to-image benchmark on the digit world: teacher, Di[M]O, + reward, + TTEO, best-of-N and ablations.

    python benchmarks/t2i_world.py --teacher checkpoints/teacher-world --dimo checkpoints/dimo-world \
        --reward checkpoints/soft-reward-world --gumbel-reward GUMBEL_RUN/final \
        --reward-only REWARD_ONLY_RUN/final --json benchmarks/results/t2i_world.json

(``GUMBEL_RUN`` / ``REWARD_ONLY_RUN``: ``softdimo refine --config configs/world/soft_reward.yaml`` runs
with ``reward.embedding=gumbel`` / ``dimo_weight=0``.) The world scored against (its test split as
FID reference) is the ``data:`` section of ``--data-config`` (default ``configs/world/teacher.yaml``,
the slots layout of docs/method.md §8.7), the rewards of TTEO those of ``--tteo-config`` (default
``configs/world/tteo.yaml``).

``metrics.rows`` is an object keyed by row name; a row whose folder is not given is skipped and
listed in ``metrics.skipped``:

* ``teacher``: the MaskGIT teacher (§2.3) at ``--teacher-steps`` (16) and ``--teacher-cfg`` (default:
  the teacher folder's own CFG), both stated in the row's ``options``;
* ``dimo``: the one-step Di[M]O student (§3.9); ``reward``: Soft-Di[M]O + reward fine-tuning (§6);
* ``tteo``: TTEO (§7, :func:`softdimo.tteo.tteo`) of the reward student (of Di[M]O when there is
  none), ``tteo_iters`` SGD steps and best of ``best_of`` candidates; ``best_of_n``: the same student
  and N with 0 iterations (§7.2);
* ``gumbel_reward``: Gumbel-ST + reward (§4.3); ``reward_only``: reward fine-tuning without the
  Di[M]O term (§6.1).

TTEO's knobs and rewards come from ``--tteo-config`` (a ``softdimo tteo`` YAML, loaded into
:class:`softdimo.tteo.TTEOConfig`: ``iters``, ``lr``, ``best_of``, ``soft_temperature``,
``temperature``, ``rewards``, ``select_rewards``); ``--tteo-iters`` and ``--best-of`` override it.

Every row draws ``--images-per-prompt`` images of each of the first ``--prompts`` prompts (image i
has prompt i mod P) in batches of ``--batch-size`` from one ``torch.Generator`` seeded with
``--seed``. The prompts are the held-out set (``heldout_prompts_interleaved()``, tags interleaved),
or those of ``--prompts-file`` (a ``.jsonl`` of GenEval metadata such as the package's
``world_prompts_paraphrased.jsonl``, §8.8; its tags interleaved in file order before the first P
are kept). The N images of a row are scored with

* ``geneval`` / ``per_tag``: the GenEval-like scorer (§8.4; overall = mean of the per-tag accuracies);
  ``geneval_se`` / ``per_tag_se``: their standard errors clustered by prompt (:func:`clustered_se`);
* ``clip_score``: mean cosine between the config's mini-CLIP image embedding and the MiniLM embedding of
  the image's prompt (the mini-CLIP reward is ``reward_scale`` × this cosine); absent when the config
  has no mini-CLIP term;
* ``reward``: mean of the config's composite Σ λ_i R̂_i (§6.1, the J of (7.1)), the objective TTEO optimises;
  ``reward_terms``: each R̂_i's mean;
* ``fid``: standard Inception FID (§8.1) against the first N test renders of ``--data-config``'s world
  (default: ``configs/world/teacher.yaml``'s).

``seconds_per_image``: all rows timed side by side in one process (``measure_speed``, §8.5: order
rotated every repeat, one warm-up call, median of ``--speed-repeats``) at batch ``--speed-batch``;
TTEO and best-of-N with their whole pipeline (N candidates, iterations, reward scoring, selection).
``tteo_latency_ratio``: their seconds per image over the one-step student's they start from.

``metrics.targets`` (:func:`compute_targets`; GenEval-like overall unless named; a target whose rows
are missing is left out): ``teacher_in_range`` (0.45 ≤ teacher ≤ 0.85), ``dimo_ge_0.85x_teacher``,
``reward_ge_dimo_plus_0.08``, ``reward_ge_teacher``, ``tteo_ge_reward_plus_0.05``, ``tteo_gt_best_of_n``
(same N), ``reward_fid_le_1.2x_dimo`` (FID) and ``reward_only_hacking`` (reward only raises the composite
reward over Di[M]O while its GenEval-like falls below, or its FID rises above, the reward student's;
§6.1). Each holds its values, standard errors, ``gap`` (positive: the target's direction), ``gap_se``
(√(se_a² + se_b²), se_b scaled with its factor), ``holds`` and ``shown`` (the gap is positive and larger
than its standard error). FID has no standard error here, so its target has no ``shown``; the
reward-only target keeps its parts.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generators import GENEVAL_EVALUATOR, _per_tag, world_data  # noqa: E402

from softdimo.classifier import load_shipped_classifier  # noqa: E402
from softdimo.config import DataConfig, to_dict  # noqa: E402
from softdimo.data.geneval import check_metadata, interleave_tags  # noqa: E402
from softdimo.data.prompts import heldout_prompts_interleaved, read_prompts_file  # noqa: E402
from softdimo.eval.fid import extract_features, fid_from_features  # noqa: E402
from softdimo.eval.geneval import GenEvalScorer  # noqa: E402
from softdimo.eval.inception import InceptionFeatures  # noqa: E402
from softdimo.eval.references import dataset_id, real_stats  # noqa: E402
from softdimo.eval.speed import measure_speed  # noqa: E402
from softdimo.results import now, write_results  # noqa: E402
from softdimo.rewards import CompositeReward, RewardTermConfig, build_composite, build_reward  # noqa: E402
from softdimo.sample import ImageGenerator, SamplingOptions, StudentGenerator, load_generator  # noqa: E402
from softdimo.tteo import TTEOConfig, load_tteo_config, tteo  # noqa: E402

DEFAULT_TTEO_CONFIG = "configs/world/tteo.yaml"
TEACHER_STEPS = 16
# targets (GenEval-like overall unless named)
TEACHER_RANGE = (0.45, 0.85)  # the teacher follows prompts, with room above it
DIMO_OVER_TEACHER = 0.85  # dimo ≥ this × teacher
REWARD_OVER_DIMO = 0.08  # reward ≥ dimo + this
TTEO_OVER_REWARD = 0.05  # tteo ≥ reward + this
REWARD_FID_OVER_DIMO = 1.2  # reward FID ≤ this × dimo FID
# row name (= the option holding its folder, e.g. --gumbel-reward) → label of the one-step student rows
STUDENTS = {"dimo": "Di[M]O", "reward": "Soft-Di[M]O + reward", "gumbel_reward": "Gumbel-ST + reward",
            "reward_only": "reward only (no Di[M]O term)"}
SPEED_METHOD = ("softdimo.eval.speed.measure_speed: all rows side by side in one process, order rotated every "
                "repeat, 1 warm-up call, median of the repeats; prompts = the benchmark's first prompts (cycled), "
                "torch.Generator().manual_seed(0) per call; TTEO / best-of-N rows: the whole tteo() call "
                "(candidates, iterations, reward scoring, selection); no evaluator time")
Sampler = Callable[[list[str], torch.Generator], torch.Tensor]


@dataclass
class Spec:
    """One row: its name, a generator folder, its sampler options and, for TTEO / best-of-N rows, iters and N."""

    name: str
    label: str
    model: str
    options: SamplingOptions = field(default_factory=SamplingOptions)
    tteo_iters: int | None = None  # None: the generator's own sampler, no TTEO
    best_of: int | None = None


# ---------------------------------------------------------------------- rows and prompts
def plan_rows(args: argparse.Namespace, teacher_cfg: float | None,
              tteo_cfg: TTEOConfig) -> tuple[list[Spec], list[str]]:
    """The rows asked for (benchmark order) and the names of those skipped because their folder was not given."""
    specs: list[Spec] = []
    skipped: list[str] = []

    def student(name: str) -> None:
        if getattr(args, name):
            specs.append(Spec(name, STUDENTS[name], getattr(args, name)))
        else:
            skipped.append(name)

    if args.teacher:
        specs.append(Spec("teacher", f"teacher N={args.teacher_steps} cfg={teacher_cfg:g}", args.teacher,
                          SamplingOptions(steps=args.teacher_steps, cfg_scale=teacher_cfg)))
    else:
        skipped.append("teacher")
    student("dimo")
    student("reward")
    base = "reward" if args.reward else "dimo"
    base_path = getattr(args, base)
    if base_path:
        name, n = STUDENTS[base], tteo_cfg.best_of
        draw_options = SamplingOptions(temperature=tteo_cfg.temperature)
        specs.append(Spec("tteo", f"{name} + TTEO {tteo_cfg.iters} iters, best of {n}", base_path, draw_options,
                          tteo_iters=tteo_cfg.iters, best_of=n))
        specs.append(Spec("best_of_n", f"{name}, best of {n}", base_path, draw_options, tteo_iters=0, best_of=n))
    else:
        skipped += ["tteo", "best_of_n"]
    student("gumbel_reward")
    student("reward_only")
    return specs, skipped


def load_prompts(prompts_file: str | None, count: int) -> list[dict[str, Any]]:
    """The first ``count`` prompts (GenEval metadata): the held-out set, or a ``.jsonl`` file's, tags interleaved."""
    if prompts_file is None:
        return heldout_prompts_interleaved()[:count]
    _, metadata = read_prompts_file(prompts_file)
    if metadata is None:
        raise SystemExit(f"--prompts-file {prompts_file}: the GenEval-like scorer needs metadata; pass a .jsonl "
                         f"with one metadata object per line (e.g. world_prompts_paraphrased.jsonl).")
    for m in metadata:
        check_metadata(m)
    return interleave_tags(metadata)[:count]


# ---------------------------------------------------------------------- drawing
def batch_sampler(spec: Spec, gen: ImageGenerator, tteo_cfg: TTEOConfig, rewards: CompositeReward,
                  select: CompositeReward) -> Sampler:
    """``f(prompts, generator) → images`` of one row (TTEO / best-of-N rows: the selected candidates)."""
    if spec.tteo_iters is None:
        return lambda prompts, g: gen.generate(prompts=prompts, options=spec.options, generator=g)
    if not isinstance(gen, StudentGenerator):
        raise SystemExit(f"{spec.model} is a '{gen.kind}'; TTEO needs a one-step student folder.")
    sampler = gen.sampler(spec.options)

    def sample(prompts: list[str], g: torch.Generator) -> torch.Tensor:
        return tteo(gen.student, rewards, prompts=prompts, iters=int(spec.tteo_iters), lr=tteo_cfg.lr,
                    best_of=int(spec.best_of or 1), select=select, sampler=sampler,
                    soft_temperature=tteo_cfg.soft_temperature, generator=g).images

    return sample


def draw(sampler: Sampler, prompts: list[str], batch_size: int, seed: int) -> torch.Tensor:
    """All images of ``prompts`` (one per entry, CPU float in [0, 1]) in batches from one seeded generator."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # as measure_speed calls the samplers
        return torch.cat([sampler(prompts[i:i + batch_size], g).float().cpu()
                          for i in range(0, len(prompts), batch_size)])


# ---------------------------------------------------------------------- scoring
def clustered_se(tags: Sequence[str], clusters: Sequence[Any],
                 correct: Sequence[bool]) -> tuple[float, dict[str, float]]:
    """Standard error of the GenEval-like overall score and of each tag's accuracy, clustered by prompt.

    Images of one prompt are not independent, so the unit is the prompt: per tag t, se_t = sample
    standard deviation of the per-prompt mean correctness of t's prompts / √(number of t's prompts)
    (0 with fewer than 2 prompts); overall = mean of the T per-tag accuracies, so se = √(Σ_t se_t²) / T.
    ``clusters[i]`` identifies image i's prompt (e.g. its index in the prompt list).
    """
    hits: dict[str, dict[Any, list[float]]] = {}
    for tag, cluster, ok in zip(tags, clusters, correct, strict=True):
        hits.setdefault(tag, {}).setdefault(cluster, []).append(float(ok))
    per_tag: dict[str, float] = {}
    for tag, prompts in hits.items():
        means = [sum(v) / len(v) for v in prompts.values()]
        per_tag[tag] = statistics.stdev(means) / math.sqrt(len(means)) if len(means) >= 2 else 0.0
    overall = math.sqrt(sum(s * s for s in per_tag.values())) / len(per_tag) if per_tag else 0.0
    return overall, per_tag


def miniclip_term(terms: Sequence[RewardTermConfig]) -> RewardTermConfig | None:
    """The composite's mini-CLIP term (the ``clip_score`` model), if it has one."""
    return next((t for t in terms if t.kind == "miniclip"), None)


class Scorer:
    """GenEval-like (with clustered SEs), mini-CLIP cosine, the TTEO composite reward and Inception FID of images."""

    def __init__(self, terms: Sequence[RewardTermConfig], data: DataConfig, num: int, device: str, batch_size: int,
                 cache_dir: str | None, progress: bool):
        self.device, self.batch_size, self.terms = device, batch_size, list(terms)
        self.rewards = build_composite(self.terms, device).eval()
        clip_term = miniclip_term(self.terms)
        self.clip = None if clip_term is None else \
            build_reward(dataclasses.replace(clip_term, normalize="none"), device).eval()
        self.clip_path = None if clip_term is None else clip_term.path
        self.geneval = GenEvalScorer(load_shipped_classifier())
        self.inception = InceptionFeatures(device=device)
        self.reference = f"{dataset_id(data)}:test[:{num}]"
        self.real = real_stats(data, "test", num, self.inception, cache_dir=cache_dir, progress=progress)

    def evaluators(self) -> dict[str, str]:
        reward = " + ".join(f"{t.weight:g}·{t.kind}({t.path}, {t.normalize} {t.scale:g})" for t in self.terms)
        out = {"geneval": GENEVAL_EVALUATOR, "per_tag": GENEVAL_EVALUATOR,
               "geneval_se": "standard error of the GenEval-like overall, clustered by prompt",
               "per_tag_se": "standard error of each per-tag accuracy, clustered by prompt",
               "reward": f"TTEO composite Σ λ_i R̂_i: {reward}, mean over images",
               "fid": f"{self.inception.evaluator_id} vs {self.reference}"}
        if self.clip is not None:
            out["clip_score"] = (f"mini-CLIP cosine ({self.clip_path} image tower vs frozen all-MiniLM-L6-v2 "
                                 f"prompt embedding), mean over images")
        return out

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, metadata: list[dict[str, Any]], clusters: list[int]) -> dict[str, Any]:
        prompts = [m["prompt"] for m in metadata]
        ge = self.geneval.score(images, metadata, return_details=True)
        se, per_tag_se = clustered_se([d["tag"] for d in ge["details"]], clusters,
                                      [d["correct"] for d in ge["details"]])
        cos: list[torch.Tensor] = []
        terms: dict[str, list[torch.Tensor]] = {}
        for i in range(0, len(images), self.batch_size):
            x, p = images[i:i + self.batch_size].to(self.device), prompts[i:i + self.batch_size]
            if self.clip is not None:  # MiniClipReward.score = reward_scale · cos
                cos.append(self.clip.score(x, p).float().cpu() / float(self.clip.encoder.config.reward_scale))
            for k, v in self.rewards.score_terms(x, p).items():
                terms.setdefault(k, []).append(v.float().cpu())
        per_term = {k: torch.cat(v) for k, v in terms.items()}
        feats = extract_features(images, self.inception, batch_size=self.batch_size, progress=False)
        return {"geneval": ge["overall"], "per_tag": ge["per_tag"], "geneval_se": se,
                "per_tag_se": {t: per_tag_se[t] for t in ge["per_tag"]}, "n_per_tag": ge["n_per_tag"],
                **({"clip_score": float(torch.cat(cos).mean())} if cos else {}),
                "reward": float(self.rewards.combine(per_term).mean()),
                "reward_terms": {k: float(v.mean()) for k, v in per_term.items()},
                "fid": fid_from_features(feats, self.real.features)}


def time_specs(specs: list[Spec], samplers: dict[str, Sampler], prompts: list[str], batch: int, repeats: int,
               device: str) -> dict[str, float]:
    """Seconds per image of every row, side by side (row name → seconds)."""
    ps = [prompts[i % len(prompts)] for i in range(batch)]
    calls = {s.name: (lambda bs, f=samplers[s.name]: f(ps[:bs], torch.Generator().manual_seed(0))) for s in specs}
    return {r.name: r.seconds_per_image for r in measure_speed(calls, [batch], repeats=repeats, warmup=1,
                                                               device=device)}


# ---------------------------------------------------------------------- summaries of the rows
def base_student(rows: dict[str, dict[str, Any]]) -> str | None:
    """The one-step row TTEO and best-of-N start from: the reward student, else Di[M]O."""
    return next((k for k in ("reward", "dimo") if k in rows), None)


def latency_ratios(rows: dict[str, dict[str, Any]]) -> dict[str, float]:
    """TTEO / best-of-N rows: seconds per image over their one-step student's (row name → ratio)."""
    base = base_student(rows)
    if base is None:
        return {}
    return {k: rows[k]["seconds_per_image"] / rows[base]["seconds_per_image"] for k in ("tteo", "best_of_n")
            if k in rows}


def at_least(rows: dict[str, dict[str, Any]], lhs: str, rhs: str, factor: float = 1.0, offset: float = 0.0,
             strict: bool = False) -> dict[str, Any]:
    """GenEval-like ``lhs ≥ factor · rhs + offset`` (``>`` when ``strict``): values, SEs, gap, its SE, verdicts."""
    a, b = rows[lhs], rows[rhs]
    threshold = factor * b["geneval"] + offset
    gap = a["geneval"] - threshold
    gap_se = math.hypot(a["geneval_se"], factor * b["geneval_se"])
    return {"metric": "geneval", "values": {lhs: a["geneval"], rhs: b["geneval"]},
            "se": {lhs: a["geneval_se"], rhs: b["geneval_se"]}, "factor": factor, "offset": offset,
            "threshold": threshold, "gap": gap, "gap_se": gap_se, "holds": gap > 0 if strict else gap >= 0,
            "shown": shown(gap, gap_se)}


def shown(gap: float, gap_se: float) -> bool:
    """The gap is in the target's direction (positive) and larger than its standard error."""
    return gap > 0 and gap > gap_se


def in_range(row: dict[str, Any], low: float, high: float) -> dict[str, Any]:
    """GenEval-like ``low ≤ value ≤ high``; the gap is the distance to the nearer bound."""
    value, se = row["geneval"], row["geneval_se"]
    gap = min(value - low, high - value)
    return {"metric": "geneval", "value": value, "se": se, "low": low, "high": high, "gap": gap, "gap_se": se,
            "holds": low <= value <= high, "shown": shown(gap, se)}


def fid_at_most(rows: dict[str, dict[str, Any]], lhs: str, rhs: str, factor: float) -> dict[str, Any]:
    """``lhs.fid ≤ factor · rhs.fid`` (no standard error for FID, so no ``shown``)."""
    threshold = factor * rows[rhs]["fid"]
    gap = threshold - rows[lhs]["fid"]
    return {"metric": "fid", "values": {lhs: rows[lhs]["fid"], rhs: rows[rhs]["fid"]}, "factor": factor,
            "threshold": threshold, "gap": gap, "holds": gap >= 0}


def reward_hacking(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Reward only raises the composite reward over Di[M]O while GenEval-like falls or FID rises against reward."""
    only, dimo, reward = rows["reward_only"], rows["dimo"], rows["reward"]
    up, down, fid_up = (only["reward"] > dimo["reward"], only["geneval"] < reward["geneval"],
                        only["fid"] > reward["fid"])
    return {"reward_only_reward": only["reward"], "dimo_reward": dimo["reward"], "reward_up": up,
            "reward_only_geneval": only["geneval"], "reward_only_geneval_se": only["geneval_se"],
            "reward_geneval": reward["geneval"], "reward_geneval_se": reward["geneval_se"], "geneval_down": down,
            "reward_only_fid": only["fid"], "reward_fid": reward["fid"], "fid_up": fid_up,
            "holds": up and (down or fid_up)}


def compute_targets(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The targets from the rows' numbers (module docstring); a target whose rows are missing is left out."""
    has = lambda *names: all(n in rows for n in names)  # noqa: E731
    out: dict[str, dict[str, Any]] = {}
    if has("teacher"):
        out["teacher_in_range"] = in_range(rows["teacher"], *TEACHER_RANGE)
    if has("dimo", "teacher"):
        out[f"dimo_ge_{DIMO_OVER_TEACHER:g}x_teacher"] = at_least(rows, "dimo", "teacher", factor=DIMO_OVER_TEACHER)
    if has("reward", "dimo"):
        out[f"reward_ge_dimo_plus_{REWARD_OVER_DIMO:g}"] = at_least(rows, "reward", "dimo", offset=REWARD_OVER_DIMO)
    if has("reward", "teacher"):
        out["reward_ge_teacher"] = at_least(rows, "reward", "teacher")
    if has("tteo", "reward"):
        out[f"tteo_ge_reward_plus_{TTEO_OVER_REWARD:g}"] = at_least(rows, "tteo", "reward", offset=TTEO_OVER_REWARD)
    if has("tteo", "best_of_n"):
        out["tteo_gt_best_of_n"] = {**at_least(rows, "tteo", "best_of_n", strict=True),
                                    "best_of": rows["tteo"].get("best_of")}
    if has("reward", "dimo"):
        out[f"reward_fid_le_{REWARD_FID_OVER_DIMO:g}x_dimo"] = fid_at_most(rows, "reward", "dimo",
                                                                           REWARD_FID_OVER_DIMO)
    if has("reward_only", "dimo", "reward"):
        out["reward_only_hacking"] = reward_hacking(rows)
    return out


# ---------------------------------------------------------------------- the run
def load_generators(specs: list[Spec], gens: dict[str, ImageGenerator], device: str) -> None:
    """Load every row's folder once into ``gens``; each must be a text-conditional generator."""
    for s in specs:
        gens.setdefault(s.model, load_generator(s.model, device))
        if gens[s.model].cond_kind != "text":
            raise SystemExit(f"{s.model} is {gens[s.model].cond_kind}-conditional; the digit world needs text.")


def score_row(spec: Spec, gen: ImageGenerator, sampler: Sampler, scorer: Scorer, metadata: list[dict[str, Any]],
              clusters: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """Draw one row's images and score them (everything but ``seconds_per_image``)."""
    t0 = time.time()
    images = draw(sampler, [m["prompt"] for m in metadata], args.batch_size, args.seed)
    t1 = time.time()
    return {"label": spec.label, "model": spec.model, "options": dataclasses.asdict(spec.options),
            "sampler": gen.describe(spec.options),
            **({"tteo_iters": spec.tteo_iters, "best_of": spec.best_of} if spec.tteo_iters is not None else {}),
            "n": len(metadata), "evaluator": GENEVAL_EVALUATOR, **scorer(images, metadata, clusters),
            "generate_seconds": t1 - t0, "eval_seconds": time.time() - t1}


def run(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    dev = args.device
    tteo_cfg = load_tteo_config(args.tteo_config, iters=args.tteo_iters, best_of=args.best_of)
    if tteo_cfg.iters < 1:
        raise SystemExit(f"the tteo row needs ≥ 1 iteration ({args.tteo_config} or --tteo-iters gives "
                         f"{tteo_cfg.iters}); 0 iterations is the best_of_n row.")
    data = world_data(args.data_config)
    gens: dict[str, ImageGenerator] = {}
    cfg = args.teacher_cfg
    if args.teacher:
        gens[args.teacher] = load_generator(args.teacher, dev)
        if cfg is None:
            cfg = float(gens[args.teacher].describe(None)["cfg_scale"])
    specs, skipped = plan_rows(args, cfg, tteo_cfg)
    if not specs:
        raise SystemExit("no rows: give at least one of --teacher, --dimo, --reward, --gumbel-reward, --reward-only.")
    load_generators(specs, gens, dev)
    prompts = load_prompts(args.prompts_file, args.prompts)
    num = len(prompts) * args.images_per_prompt
    if num < 2:
        raise SystemExit("FID needs N = prompts × images per prompt ≥ 2.")
    metadata = [prompts[i % len(prompts)] for i in range(num)]
    clusters = [i % len(prompts) for i in range(num)]
    print(f"{len(specs)} rows, N = {num} ({len(prompts)} prompts × {args.images_per_prompt}); skipped: "
          f"{', '.join(skipped) or 'none'}", flush=True)
    scorer = Scorer(tteo_cfg.rewards, data, num, dev, args.batch_size, args.cache_dir, args.progress)
    select = build_composite(tteo_cfg.select_rewards, dev).eval() if tteo_cfg.select_rewards else scorer.rewards
    samplers = {s.name: batch_sampler(s, gens[s.model], tteo_cfg, scorer.rewards, select) for s in specs}
    rows: dict[str, dict[str, Any]] = {}
    for k, s in enumerate(specs, 1):
        row = rows[s.name] = score_row(s, gens[s.model], samplers[s.name], scorer, metadata, clusters, args)
        brief = {m: round(row[m], 4) for m in ("geneval", "geneval_se", "clip_score", "reward", "fid") if m in row}
        print(f"[{k}/{len(specs)}] {s.name} ({s.label}): {brief} "
              f"({row['generate_seconds']:.0f}s + {row['eval_seconds']:.0f}s)", flush=True)
    print(f"timing {len(specs)} rows side by side (batch {args.speed_batch}, {args.speed_repeats} repeats)", flush=True)
    sec = time_specs(specs, samplers, [m["prompt"] for m in prompts], args.speed_batch, args.speed_repeats, dev)
    for name, row in rows.items():
        row["seconds_per_image"] = sec[name]
    prompt_source = args.prompts_file or "heldout_prompts_interleaved()"
    metrics = {
        "n": num, "evaluator": GENEVAL_EVALUATOR, "evaluators": scorer.evaluators(), "num_prompts": len(prompts),
        "images_per_prompt": args.images_per_prompt, "prompts_per_tag": _per_tag(prompts),
        "prompts": prompt_source, "reference": scorer.reference, "skipped": skipped,
        "tteo": {"config": args.tteo_config, "student": base_student(rows), **to_dict(tteo_cfg)},
        "speed": {"method": SPEED_METHOD, "batch_size": args.speed_batch, "repeats": args.speed_repeats,
                  "warmup": 1, "device": dev},
        "rows": rows, "tteo_latency_ratio": latency_ratios(rows), "targets": compute_targets(rows),
    }
    config = {**{k: v for k, v in vars(args).items() if k != "progress"}, "teacher_cfg_used": cfg,
              "data": to_dict(data), "prompt_list": f"{prompt_source}, tags interleaved, first {len(prompts)}",
              "rows": [dataclasses.asdict(s) for s in specs], "torch_threads": torch.get_num_threads()}
    return metrics, config


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default="checkpoints/teacher-world", help="teacher folder ('' skips the row)")
    ap.add_argument("--teacher-steps", type=int, default=TEACHER_STEPS, help="sampler steps of the teacher row")
    ap.add_argument("--teacher-cfg", type=float, help="CFG of the teacher row (default: the folder's own)")
    ap.add_argument("--dimo", help="one-step Di[M]O student folder")
    ap.add_argument("--reward", help="Soft-Di[M]O + reward student folder (TTEO and best-of-N start from it)")
    ap.add_argument("--gumbel-reward", help="Gumbel-ST + reward student folder")
    ap.add_argument("--reward-only", help="reward-only student folder (no Di[M]O term)")
    ap.add_argument("--tteo-config", default=DEFAULT_TTEO_CONFIG,
                    help="softdimo tteo YAML: TTEO knobs and the rewards it optimises, reports and selects by "
                         "(default configs/world/tteo.yaml)")
    ap.add_argument("--tteo-iters", type=int, help="TTEO iterations of the tteo row (default: the config's)")
    ap.add_argument("--best-of", type=int, help="N candidates of the tteo and best_of_n rows (default: the config's)")
    ap.add_argument("--data-config", help="YAML whose data: section is the world scored against (FID reference); "
                                          "default configs/world/teacher.yaml")
    ap.add_argument("--prompts-file", help=".jsonl of GenEval metadata to draw instead of the held-out prompts "
                                           "(e.g. the paraphrased held-out set)")
    ap.add_argument("--prompts", type=int, default=300, help="first P prompts (tags interleaved)")
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
    return ap


def main() -> None:
    ap = parser()
    args = ap.parse_args()
    if min(args.prompts, args.images_per_prompt, args.batch_size, args.speed_batch, args.speed_repeats,
           args.teacher_steps) < 1:
        ap.error("--prompts, --images-per-prompt, --batch-size, --speed-* and --teacher-steps must be ≥ 1.")
    if (args.tteo_iters is not None and args.tteo_iters < 1) or (args.best_of is not None and args.best_of < 1):
        ap.error("--tteo-iters and --best-of must be ≥ 1.")
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
