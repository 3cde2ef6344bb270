"""Bad input across the whole command line → ``benchmarks/results/bad_input.json``.

    OMP_NUM_THREADS=1 python benchmarks/bad_input.py --per-command 45 --json benchmarks/results/bad_input.json

Runs the fuzzer of the test suite (``tests/cli_fuzz.py``) at a larger budget: for every command
``softdimo --help`` lists, ``--per-command`` command lines drawn by hypothesis (seeded, so a
rerun draws the same cases) with malformed knobs (outside the ranges the typed configs
declare, wrong types, unknown keys, broken override syntax), bad files and folders (binary,
empty, truncated, wrong kind, wrong shapes), damaged run folders under ``--resume`` and pickles
(harmless and malicious) in every weights path, with and without ``--allow-pickle``. Each
runs in this process against tiny models.

Metrics: ``cases`` (total), ``by_command``, ``exit_codes`` (counts over all cases),
``tracebacks`` (cases with a traceback on stderr; must be 0), ``unsafe_loads`` (``torch.load``
calls without ``--allow-pickle`` or without ``weights_only=True``; must be 0), ``code_ran``
(pickles that ran code; must be 0), ``files_changed_on_failure`` (cases that failed and changed
a file anywhere; must be 0), ``files_changed_outside_out`` (cases that changed a file outside
their output folder; must be 0), ``bad_status`` (exit status other than 0 and 2; must be 0),
``violations`` (the first few failing cases, with their command lines) and ``passed``.

For a results file that names a clean commit, run it from a frozen copy of the committed code
(scripts/freeze.sh):

    cd "$(scripts/freeze.sh)" && PYTHONPATH=src /work/main/.venv/bin/python benchmarks/bad_input.py \\
        --json /work/main/benchmarks/results/bad_input.json
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from hypothesis import HealthCheck, Phase, given, seed, settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from cli_fuzz import Sandbox, commands, run_case, strategies, violations  # noqa: E402
from softdimo.results import now, write_results  # noqa: E402


def fuzz(command: str, n: int, sb: Sandbox, counter: list[int], seed_value: int, log) -> list:
    """Run ``n`` drawn cases of ``command``; returns their outcomes (hypothesis only generates, never shrinks)."""
    outcomes = []

    @seed(seed_value)
    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=strategies()[command])
    def draw(case):
        counter[0] += 1
        t0 = time.time()
        o = run_case(case, sb, counter[0])
        outcomes.append(o)
        bad = violations(o)
        log(f"[{counter[0]:4d}] {command:16s} exit {o.status} {time.time() - t0:5.1f}s"
            + (f"  VIOLATION {bad}: {case!r}\n        {o.stderr.strip()[-600:]}" if bad else ""))

    draw()
    return outcomes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-command", type=int, default=45, help="drawn command lines per command")
    ap.add_argument("--commands", help="comma-separated subset (default: every command)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the results JSON here")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--dump", help="also write every case (command line, exit status, last stderr line) as JSON lines")
    args = ap.parse_args()
    torch.set_num_threads(1)
    names = args.commands.split(",") if args.commands else commands()
    log = (lambda s: None) if args.quiet else (lambda s: print(s, flush=True))
    started, t0 = now(), time.time()
    counter = [0]
    with tempfile.TemporaryDirectory(prefix="softdimo-fuzz-") as tmp:
        sb = Sandbox(Path(tmp))
        outcomes = []
        for i, name in enumerate(names):
            outcomes += fuzz(name, args.per_command, sb, counter, args.seed + i, log)
    by_command = collections.Counter(o.case.command for o in outcomes)
    exit_codes = collections.Counter(str(o.status) for o in outcomes)
    failing = [o for o in outcomes if violations(o)]
    metrics = {
        "cases": len(outcomes),
        "by_command": dict(sorted(by_command.items())),
        "exit_codes": dict(sorted(exit_codes.items())),
        "exit_codes_by_command": {c: dict(sorted(collections.Counter(str(o.status) for o in outcomes
                                                                     if o.case.command == c).items()))
                                  for c in sorted(by_command)},
        "tracebacks": sum(o.traceback for o in outcomes),
        "unsafe_loads": sum(len(o.unsafe_loads) for o in outcomes),
        "code_ran": sum(o.code_ran for o in outcomes),
        "files_changed_on_failure": sum(bool(o.changed_on_failure) for o in outcomes),
        "files_changed_outside_out": sum(bool(o.changed) for o in outcomes),
        "bad_status": sum(o.status not in (0, 2) for o in outcomes),
        "pickle_cases": sum("pickle" in repr(o.case) or "payload" in repr(o.case) or ".pt" in repr(o.case)
                            or "@m/hps" in repr(o.case) or "clip_bin" in repr(o.case) or "imagereward" in repr(o.case)
                            or "maskgit" in repr(o.case) for o in outcomes),
        "violations": [{"case": repr(o.case), "problems": violations(o), "stderr": o.stderr[-800:]}
                       for o in failing[:20]],
        "commands_covered": sorted(by_command) == sorted(names),
    }
    metrics["passed"] = bool(not failing and metrics["commands_covered"])
    if args.dump:
        with open(args.dump, "w") as f:
            for o in outcomes:
                last = (o.stderr.strip().splitlines() or [""])[-1]
                f.write(json.dumps({"case": repr(o.case), "status": o.status, "stderr": last[:400],
                                    "problems": violations(o)}) + "\n")
    for k in ("cases", "tracebacks", "unsafe_loads", "code_ran", "files_changed_on_failure",
              "files_changed_outside_out", "bad_status", "passed"):
        print(f"{k:>26}: {metrics[k]}")
    print(f"{'by_command':>26}: {metrics['by_command']}")
    print(f"{'exit_codes':>26}: {metrics['exit_codes']}")
    if args.json:
        write_results(args.json, "bad_input", metrics, started=started, seconds=time.time() - t0,
                      config={"per_command": args.per_command, "seed": args.seed, "commands": names})
        print(f"wrote {args.json}")
    return 0 if metrics["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
