"""Evaluation validation: FID cross-checks, real-vs-real floors, GenEval-like scorer, Inception speed.

    python benchmarks/eval_validation.py --json benchmarks/results/eval_validation.json

* FID on identical features (MNIST train[:N] vs test[:N], standard Inception, N = 2000) by our
  fast eigendecomposition path, by scipy ``sqrtm`` and by torchmetrics; relative differences.
* The real-vs-real floor, FID(MNIST train[:N], test[:N]), for N = 1000, 2000, 5000 (every later
  FID is read against the floor at its N), with precision/recall (k = 3) of the same pairs.
* The GenEval-like scorer on ground-truth renders of the held-out prompts and on shuffled
  pairs (runs benchmarks/geneval_validation.py and embeds its summary).
* Inception throughput (images/s) at batch 32 with the speed harness.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from softdimo.config import DataConfig
from softdimo.eval.fid import fid_torchmetrics, frechet_distance
from softdimo.eval.inception import InceptionFeatures
from softdimo.eval.prdc import precision_recall
from softdimo.eval.references import real_stats
from softdimo.eval.speed import measure_speed
from softdimo.results import now, write_results

HERE = Path(__file__).resolve().parent


def stats(f):
    import numpy as np

    f = np.asarray(f, dtype=np.float64)
    return f.mean(0), np.cov(f, rowvar=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default="benchmarks/results/eval_validation.json")
    ap.add_argument("--ns", type=int, nargs="+", default=[1000, 2000, 5000])
    ap.add_argument("--check-n", type=int, default=2000)
    args = ap.parse_args()
    started, t0 = now(), time.time()
    ext = InceptionFeatures()
    data = DataConfig(dataset="mnist")
    nmax = max(args.ns)
    test = real_stats(data, "test", nmax, ext).features
    train = real_stats(data, "train", nmax, ext).features

    n = args.check_n
    a, b = stats(train[:n]), stats(test[:n])
    t = time.time()
    ours = frechet_distance(*a, *b, method="eigh")
    t_ours = time.time() - t
    t = time.time()
    scipy_fid = frechet_distance(*a, *b, method="sqrtm")
    t_scipy = time.time() - t
    tm = fid_torchmetrics(test[:n], train[:n])
    check = {"n": n, "fid_ours_eigh": ours, "fid_scipy_sqrtm": scipy_fid, "fid_torchmetrics": tm,
             "rel_diff_scipy": abs(ours - scipy_fid) / scipy_fid, "rel_diff_torchmetrics": abs(ours - tm) / tm,
             "seconds_ours": t_ours, "seconds_scipy": t_scipy}

    floors = {}
    for k in args.ns:
        pr = precision_recall(test[:k], train[:k], k=3)
        floors[str(k)] = {"fid": frechet_distance(*stats(train[:k]), *stats(test[:k])),
                          "precision": pr.precision, "recall": pr.recall}

    gv_json = Path("/tmp") / "softdimo_geneval_validation.json"
    subprocess.run([sys.executable, str(HERE / "geneval_validation.py"), "--json", str(gv_json)], check=True)
    gv = json.loads(gv_json.read_text())["metrics"]
    geneval = {k: gv[k] for k in ("n_images", "matched_overall", "matched_per_tag", "shuffled_overall",
                                  "shuffled_per_tag", "chance_overall", "chance_per_tag", "confusion")}

    images = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    speed = measure_speed({"inception": lambda bs: ext(images[:bs])}, [32], repeats=3, warmup=1)[0]
    metrics = {"fid_cross_check": check, "floors_mnist_train_vs_test": floors, "geneval_like": geneval,
               "inception_images_per_second": speed.images_per_second,
               "inception_speed": speed.as_dict(), "evaluator": ext.evaluator_id}
    write_results(args.json, "eval_validation", metrics,
                  config={"ns": args.ns, "check_n": n, "data": "mnist", "torch_threads": torch.get_num_threads()},
                  started=started, seconds=time.time() - t0)
    print(json.dumps({"fid_cross_check": check, "floors": floors,
                      "geneval_matched": geneval["matched_overall"], "geneval_shuffled": geneval["shuffled_overall"],
                      "inception_img_s": speed.images_per_second}, indent=1))


if __name__ == "__main__":
    main()
