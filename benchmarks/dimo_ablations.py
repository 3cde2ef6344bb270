"""Di[M]O ablations on MNIST: one knob changed per run, equal steps, collapse diagnostics + domain FID.

    python benchmarks/dimo_ablations.py --out runs/dimo-ablations --steps 600 \
        --setting baseline= --setting teacher_all=teacher=runs/train-teacher/mnist-teacher_all/final \
        --setting sigma_rel=dimo.sigma_scale=embedding --json benchmarks/results/dimo_ablations_mnist.json

Every ``--setting NAME=OVERRIDE[,OVERRIDE…]`` is a `softdimo distill` run of ``--config``
(default ``configs/mnist/dimo.yaml``) with ``train.max_steps=--steps`` and those dotted overrides
(an empty list is the preset itself), written to ``--out/distill/NAME``. A finished run (``final/``) is
reused, an unfinished one continues with ``--resume``, so the script can be stopped and started
again. Runs go one after another (one CPU-heavy job at a time).

Each finished student is then measured the same way (seed ``--seed``):

* the collapse diagnostics of :func:`softdimo.distill.diagnostics.collapse_diagnostics` at τ = 1:
  10 classes × ``--per-class`` draws, ψ from the run's ``final/aux``, the run's teacher as the
  judge of ``teacher_nll``, and real MNIST test images of each class (``--per-class`` of them) as
  the recall reference;
* the domain FID (in-project classifier features) and classifier score of ``--num`` images
  against MNIST test[:N], at every τ of ``--temperatures``; ``domain_fid_tau1`` and the best τ.

``metrics.rows`` maps each setting to its overrides, wall time, diagnostics and domain FIDs.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from softdimo.config import DataConfig
from softdimo.data import build_dataset
from softdimo.distill import OneStepStudent
from softdimo.distill.diagnostics import collapse_diagnostics
from softdimo.distill.train import AUX_DIR, resolve_teacher
from softdimo.evaluate import evaluate
from softdimo.mdm import MaskedTransformer
from softdimo.results import git_commit, now, write_results
from softdimo.sample import SamplingOptions
from softdimo.teachers import NativeTeacher


def parse_setting(text: str) -> tuple[str, list[str]]:
    name, _, rest = text.partition("=")
    if not name:
        raise SystemExit(f"--setting {text!r}: expected NAME=OVERRIDE[,OVERRIDE…]")
    return name, [o for o in rest.split(",") if o]


def train_run(name: str, overrides: list[str], args: argparse.Namespace) -> float:
    """Run (or finish) the distillation of one setting; returns the training wall time (s) of this call."""
    run_dir = Path(args.out) / "distill" / name
    if (run_dir / "final" / "student.json").is_file():
        return 0.0
    cmd = [sys.executable, "-m", "softdimo", "distill", "--config", args.config, f"train.max_steps={args.steps}",
           f"train.out_dir={args.out}", f"train.run_name={name}", f"train.threads={args.threads}",
           f"train.sample_every={args.sample_every}", f"train.checkpoint_every={args.checkpoint_every}",
           "--no-progress", *overrides]
    if run_dir.exists():
        cmd.append("--resume")
    print("$", " ".join(cmd[2:]), flush=True)
    t0 = time.time()
    subprocess.run(cmd, check=True)
    return time.time() - t0


def real_by_class(per_class: int) -> list[torch.Tensor]:
    ds = build_dataset(DataConfig(dataset="mnist"), "test")
    out = []
    for y in range(10):
        idx = (ds.labels == y).nonzero().flatten()[:per_class].tolist()
        out.append(ds.images_uint8(idx).float() / 255.0)
    return out


def measure(name: str, args: argparse.Namespace, reference: list[torch.Tensor]) -> dict[str, Any]:
    final = Path(args.out) / "distill" / name / "final"
    student = OneStepStudent.from_pretrained(final)
    teacher_path = student.training_info.get("teacher", "checkpoints/teacher-mnist")
    teacher = NativeTeacher.from_pretrained(resolve_teacher(teacher_path))
    aux = MaskedTransformer.from_pretrained(final / AUX_DIR) if (final / AUX_DIR).is_dir() else None
    g = torch.Generator().manual_seed(args.seed)
    diag = collapse_diagnostics(student, teacher, [{"labels": [y]} for y in range(10)], args.per_class, aux=aux,
                                reference=reference, temperature=1.0, generator=g)
    fids = {}
    for t in args.temperatures:
        res = evaluate(str(final), ["domain_fid", "classifier_score"], args.num, DataConfig(dataset="mnist"),
                       seed=args.seed, progress=False, sampling=SamplingOptions(temperature=t))
        fids[f"{t:g}"] = {"domain_fid": res["domain_fid"], "classifier_score": res["classifier_score"]}
    best = min(fids, key=lambda k: fids[k]["domain_fid"])
    return {"diagnostics_tau1": diag, "domain_fid_by_tau": fids, "domain_fid_tau1": fids.get("1", {}).get("domain_fid"),
            "best_tau": float(best), "domain_fid_best": fids[best]["domain_fid"]}


def last_logs(name: str, args: argparse.Namespace) -> dict[str, float]:
    """The last training-log row (generator/aux losses, entropy, p_max, …) of a run."""
    path = Path(args.out) / "distill" / name / "metrics.jsonl"
    rows = [json.loads(r) for r in path.read_text().splitlines() if r.strip()] if path.is_file() else []
    rows = [r for r in rows if "generator/loss" in r]
    return rows[-1] if rows else {}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="configs/mnist/dimo.yaml")
    p.add_argument("--setting", action="append", required=True, help="NAME=OVERRIDE[,OVERRIDE…]")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--out", default="runs/dimo-ablations")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sample-every", type=int, default=200)
    p.add_argument("--checkpoint-every", type=int, default=200)
    p.add_argument("--num", type=int, default=1000)
    p.add_argument("--per-class", type=int, default=32)
    p.add_argument("--temperatures", type=lambda s: [float(x) for x in s.split(",")], default=[1.0, 2.0, 3.0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default="benchmarks/results/dimo_ablations_mnist.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    started, t0 = now(), time.time()
    settings = [parse_setting(s) for s in args.setting]
    reference = real_by_class(args.per_class)
    path = Path(args.json)
    old = json.loads(path.read_text())["metrics"]["rows"] if path.is_file() else {}
    rows: dict[str, Any] = {}
    for name, overrides in settings:
        seconds = train_run(name, overrides, args)
        prev = old.get(name, {})
        rows[name] = {"overrides": overrides, "steps": args.steps, "commit": git_commit(),
                      "train_seconds": seconds or prev.get("train_seconds"),
                      "train_logs_last": last_logs(name, args), **measure(name, args, reference)}
        r = rows[name]
        print(f"{name}: domain FID τ=1 {r['domain_fid_tau1']:.1f}, best {r['domain_fid_best']:.1f} "
              f"(τ={r['best_tau']:g}); " + ", ".join(f"{k} {v:.3f}" for k, v in r["diagnostics_tau1"].items()),
              flush=True)
        merged = {**old, **rows}
        write_results(path, "dimo_ablations_mnist", {
            "n": args.num, "steps": args.steps, "domain_evaluator": "softdimo classifier-mnist (penultimate features)",
            "diagnostics": f"collapse_diagnostics, 10 classes × {args.per_class}, τ = 1, recall vs MNIST test "
                           f"images of the class (pixels), seed {args.seed}",
            "rows": merged}, config=vars(args), started=started, seconds=time.time() - t0)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
