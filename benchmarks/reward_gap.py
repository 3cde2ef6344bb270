"""Does reward fine-tuning raise what the evaluator sees? Rewards and GenEval-like on the same one-step samples.

    python benchmarks/reward_gap.py --students dimo=checkpoints/dimo-world,reward=checkpoints/soft-reward-world \
        --max-prompts 300 --images-per-prompt 2 --json benchmarks/results/reward_gap_world.json

For every text-conditioned one-step student, on the digit world's held-out prompts
(``heldout_prompts_interleaved()[:max_prompts]``, each drawn ``--images-per-prompt`` times with the
same seeds for every student), from one forward pass z = f_θ(e_in, c):

* ``reward_soft``: each reward term, **raw** (no running z-score), on the image the reward path
  of ``softdimo refine`` trains on, ``Dec(Cᵀ softmax(z / τ_r))`` (docs/method.md eq. 6.1; τ_r =
  ``--reward-temperature``, the preset's 1);
* ``reward_hard``: the same terms on the image a user gets, ``Dec(C[x])`` with x drawn from
  softmax(z / τ) at the sampling τ (``--temperature``, the students' 0.5);
* ``geneval`` (with ``geneval_se`` clustered by prompt and ``per_tag``) of those hard images;
* ``auc``: per reward term, how well its raw value on a hard image separates the images the
  evaluator judges correct from the others: the Mann–Whitney AUC within each tag (rewards of
  different tags have different scales), averaged over the tags with both outcomes (0.5 = no
  agreement with the evaluator).

``metrics.gains`` gives each student minus the first (``--students``' first entry): the reward
terms and GenEval-like, the latter with the standard error of the paired difference (every student
draws the same prompts with the same seeds, so image i of one student is compared with image i of
the other; clustered by prompt, :func:`clustered_se` of the per-image differences). A reward that rises while GenEval-like does not, with an AUC that falls,
is the student learning what the reward network reads but the evaluator does not (reward hacking,
docs/method.md §6.1); a reward that rises on soft images but not on hard ones is a soft-vs-hard gap.
``--pairs a:b`` adds the paired difference a minus b under the key ``a-b``.

``--seeds 0,1,2`` repeats the whole measurement with each evaluation seed (new draws of the same
prompts): ``rows`` and ``gains`` are the first seed's, ``per_seed`` every seed's, and ``over_seeds``
the mean and standard deviation over seeds of each row's GenEval-like and of each gain.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generators import GENEVAL_EVALUATOR  # noqa: E402
from soft_gan import mean_sd  # noqa: E402
from t2i_world import clustered_se  # noqa: E402

from softdimo.bench import parse_students
from softdimo.classifier import load_shipped_classifier
from softdimo.data.prompts import heldout_prompts_interleaved
from softdimo.eval.geneval import GenEvalScorer
from softdimo.results import now, write_results
from softdimo.rewards import RewardTermConfig, build_reward
from softdimo.sample import StudentGenerator, load_generator
from softdimo.soft import sample_tokens, soft_probs

DEFAULT_TERMS = {"attribute": "checkpoints/reward-attribute-world", "miniclip": "checkpoints/reward-miniclip-world"}


def within_tag_auc(tags: list[str], scores: list[float], correct: list[bool]) -> float | None:
    """Mean over tags of P(score of a correct image > score of an incorrect one) (ties count ½)."""
    aucs = []
    for tag in sorted(set(tags)):
        pos = [s for t, s, c in zip(tags, scores, correct) if t == tag and c]
        neg = [s for t, s, c in zip(tags, scores, correct) if t == tag and not c]
        if pos and neg:
            wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
            aucs.append(wins / (len(pos) * len(neg)))
    return sum(aucs) / len(aucs) if aucs else None


def load_student(path: str) -> Any:
    """The one-step student of ``path`` in eval mode (refused unless it is text-conditioned)."""
    gen = load_generator(path)
    if gen.cond_kind != "text" or not isinstance(gen, StudentGenerator):
        raise SystemExit(f"{path} is not a text-conditioned one-step student ({gen.kind}, {gen.cond_kind}-conditioned).")
    return gen.student.eval()


@torch.no_grad()
def measure_student(student: Any, path: str, prompts: list[dict[str, Any]], repeats: int, rewards: dict[str, Any],
                    scorer: GenEvalScorer, temperature: float, reward_temperature: float, seed: int,
                    batch: int) -> dict[str, Any]:
    sampler = student.sampler_with(temperature=temperature)
    k = int(student.num_tokens)
    meta = [p for p in prompts for _ in range(repeats)]
    clusters = [i for i in range(len(prompts)) for _ in range(repeats)]
    g = torch.Generator().manual_seed(seed)
    soft: dict[str, list[torch.Tensor]] = {n: [] for n in rewards}
    hard: dict[str, list[torch.Tensor]] = {n: [] for n in rewards}
    images = []
    for i in range(0, len(meta), batch):
        texts = [m["prompt"] for m in meta[i:i + batch]]
        cond = student.encode_condition(prompts=texts)
        z = sampler.logits(student, sampler.initial_embeddings(student, len(texts), g), cond)
        x_soft = student.decode_soft(soft_probs(z, reward_temperature, num_tokens=k))
        x_hard = student.decode(sample_tokens(z, temperature, g))
        for name, r in rewards.items():
            soft[name].append(r.score(x_soft, texts).float())
            hard[name].append(r.score(x_hard, texts).float())
        images.append(x_hard)
    ge = scorer.score(torch.cat(images), meta, return_details=True)
    tags = [d["tag"] for d in ge["details"]]
    correct = [d["correct"] for d in ge["details"]]
    se, _ = clustered_se(tags, clusters, correct)
    hard_all = {n: torch.cat(v) for n, v in hard.items()}
    return {"model": path, "n": len(meta), "geneval": ge["overall"], "geneval_se": se, "per_tag": ge["per_tag"],
            "correct": correct, "tags": tags, "clusters": clusters,
            "reward_soft": {n: float(torch.cat(v).mean()) for n, v in soft.items()},
            "reward_hard": {n: float(v.mean()) for n, v in hard_all.items()},
            "auc": {n: within_tag_auc(tags, v.tolist(), correct) for n, v in hard_all.items()}}


def paired_gain(row: dict[str, Any], base: dict[str, Any], names: tuple[str, str]) -> dict[str, Any]:
    """``row`` minus ``base``: rewards and GenEval-like, the latter with the standard error of the paired
    per-image differences (both rows list the same prompts in the same order; clustered by prompt)."""
    if row["tags"] != base["tags"] or row["clusters"] != base["clusters"]:
        raise ValueError(f"{names[0]} and {names[1]} were not scored on the same prompts in the same order")
    diff = [float(a) - float(b) for a, b in zip(row["correct"], base["correct"], strict=True)]
    return {"minus": names[1],
            "reward_hard": {n: row["reward_hard"][n] - base["reward_hard"][n] for n in row["reward_hard"]},
            "reward_soft": {n: row["reward_soft"][n] - base["reward_soft"][n] for n in row["reward_soft"]},
            "geneval": row["geneval"] - base["geneval"],
            "geneval_se": clustered_se(row["tags"], row["clusters"], diff)[0]}


def gains(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each row minus the first (:func:`paired_gain`)."""
    base_name = next(iter(rows))
    return {name: paired_gain(row, rows[base_name], (name, base_name)) for name, row in list(rows.items())[1:]}


def parse_pairs(text: str, names: list[str]) -> list[tuple[str, str]]:
    """``"a:b,c:d"`` → [(a, b), (c, d)]: a minus b, both names of ``--students``."""
    pairs = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        a, sep, b = item.partition(":")
        if not sep or a not in names or b not in names or a == b:
            raise SystemExit(f"--pairs wants 'a:b' with two different student names of --students {names}, "
                             f"got {item!r}.")
        pairs.append((a, b))
    return pairs


def over_seeds(per_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Mean and spread over the evaluation seeds of each row's GenEval-like and of each gain.

    ``sd`` is the sample standard deviation over seeds (0 with one seed); ``se_mean`` the mean paired
    standard error of one seed's gain, for comparison with that spread.
    """
    def summary(values: list[float]) -> dict[str, Any]:
        m, sd = mean_sd(values)
        return {"mean": m, "sd": sd if sd is not None else 0.0, "values": values}

    seeds = list(per_seed)
    first = per_seed[seeds[0]]
    out: dict[str, Any] = {"seeds": seeds, "rows": {}, "gains": {}}
    for name in first["rows"]:
        out["rows"][name] = summary([per_seed[s]["rows"][name]["geneval"] for s in seeds])
    for name, g in first["gains"].items():
        out["gains"][name] = {"minus": g["minus"], **summary([per_seed[s]["gains"][name]["geneval"] for s in seeds]),
                              "se_mean": sum(per_seed[s]["gains"][name]["geneval_se"] for s in seeds) / len(seeds)}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--students", required=True, help="name=path,… (the first is the baseline of the gains)")
    ap.add_argument("--max-prompts", type=int, default=300)
    ap.add_argument("--images-per-prompt", type=int, default=2)
    ap.add_argument("--temperature", type=float, default=0.5, help="sampling τ of the hard images")
    ap.add_argument("--reward-temperature", type=float, default=1.0, help="τ_r of the soft images (refine's reward.temperature)")
    ap.add_argument("--seeds", default="0", help="evaluation seeds, comma-separated: each draws every student anew")
    ap.add_argument("--pairs", default="", help="more paired differences 'a:b,…' (a minus b) beside those "
                                               "against the first student")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    started, t0 = now(), time.time()
    students = parse_students(args.students)
    if len(students) < 2:
        raise SystemExit("--students needs a baseline and at least one other student.")
    pairs = parse_pairs(args.pairs, [n for n, _ in students])
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if not seeds or len(set(seeds)) != len(seeds):
        raise SystemExit(f"--seeds wants distinct integers, got {args.seeds!r}.")
    prompts = heldout_prompts_interleaved()[: args.max_prompts]
    rewards = {n: build_reward(RewardTermConfig(kind=n, path=p, normalize="none")) for n, p in DEFAULT_TERMS.items()}
    scorer = GenEvalScorer(load_shipped_classifier())
    per_seed: dict[int, dict[str, Any]] = {}
    loaded = {name: load_student(path) for name, path in students}
    for seed in seeds:
        rows = {}
        for name, path in students:
            rows[name] = measure_student(loaded[name], path, prompts, args.images_per_prompt, rewards, scorer, args.temperature,
                                         args.reward_temperature, seed, args.batch)
            r = rows[name]
            print(f"seed {seed} {name:>14}: GenEval-like {r['geneval']:.3f} ± {r['geneval_se']:.3f}  "
                  + "  ".join(f"{n} soft {r['reward_soft'][n]:.3f} hard {r['reward_hard'][n]:.3f} "
                              f"auc {r['auc'][n]:.3f}" for n in rewards), flush=True)
        diffs = gains(rows)
        diffs.update({f"{a}-{b}": paired_gain(rows[a], rows[b], (a, b)) for a, b in pairs})
        for r in rows.values():  # per-image lists: used for the paired differences, not written
            for k in ("correct", "tags", "clusters"):
                del r[k]
        per_seed[seed] = {"rows": rows, "gains": diffs}
    first = per_seed[seeds[0]]
    metrics = {"rows": first["rows"], "gains": first["gains"], "seed": seeds[0],
               "n": len(prompts) * args.images_per_prompt, "evaluator": GENEVAL_EVALUATOR,
               "evaluators": {"geneval": GENEVAL_EVALUATOR,
                              "reward_terms": {n: f"{p} (raw, normalize: none)" for n, p in DEFAULT_TERMS.items()}}}
    if len(seeds) > 1:
        metrics["per_seed"] = {str(s): v for s, v in per_seed.items()}
        metrics["over_seeds"] = over_seeds(per_seed)
    config = {k: v for k, v in vars(args).items() if k != "json"}
    config["prompts"] = f"heldout_prompts_interleaved()[:{len(prompts)}]"
    write_results(args.json, name="reward_gap", command=" ".join(["python", *sys.argv]), config=config,
                  metrics=metrics, started=started, seconds=time.time() - t0)
    return metrics


if __name__ == "__main__":
    main()
